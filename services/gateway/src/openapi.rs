//! `/openapi.json`: an OpenAPI 3.1 document built from the route table and
//! the services' JSON Schemas, the one description of each command.
//!
//! A command's request body is its schema as embedded in the binary
//! (`concord_bus::schema`), less the fields the path and the gateway fill.
//! OpenAPI 3.1 takes JSON Schema 2020-12 as is; what changes is where a
//! `$ref` points: the document must stand alone, so each `$defs` entry a
//! body reaches (in its own file or a shared one such as `common`) becomes
//! a component named after its file (`commands.intel.post_lead.grading`,
//! `common.country`), and the body itself a component named after its
//! operation (`intel.post_lead`).

use std::collections::{BTreeMap, HashMap};
use std::sync::LazyLock;

use axum::body::Bytes;
use axum::http::header;
use axum::response::{IntoResponse, Response};
use concord_bus::schema::ID_BASE;
use concord_core::reply::ErrorCode;
use concord_core::{Role, Service, subjects};
use serde_json::{Map, Value, json};

use crate::call::KEY_BYTES_MAX;
use crate::problem::{CODES, Problem, Subtype, TYPE_BASE};
use crate::routes::{Action, Method, ROUTES, Route};
use crate::{BODY_BYTES_MAX, OWN};

/// Built once: it depends on nothing but the binary.
static DOCUMENT: LazyLock<Result<Bytes, String>> =
    LazyLock::new(|| document().and_then(|d| serde_json::to_vec(&d).map(Bytes::from).map_err(|e| e.to_string())));

pub async fn serve() -> Response {
    match &*DOCUMENT {
        Ok(bytes) => ([(header::CONTENT_TYPE, "application/json")], bytes.clone()).into_response(),
        Err(e) => Problem::new(
            ErrorCode::Internal,
            format!("the API description could not be built: {e}"),
        )
        .into_response(),
    }
}

const SCHEMAS: &str = "#/components/schemas/";
const JSON: &str = "application/json";

/// The document; an error names the schema or route that could not be
/// described (a test builds it, so that never reaches a client).
pub fn document() -> Result<Value, String> {
    let mut components = Components::new(&load);
    components.add("Problem", "the problem body".into(), problem_schema())?;
    components.add("CommandReply", "the command reply".into(), reply_schema())?;
    let mut paths: BTreeMap<&str, Map<String, Value>> = BTreeMap::new();
    for route in ROUTES {
        let op = operation(route, &mut components).map_err(|e| format!("{}: {e}", route.operation_id()))?;
        paths
            .entry(route.path)
            .or_default()
            .insert(route.method.as_str().into(), op);
    }
    for view in crate::views::VIEWS {
        paths
            .entry(view.path)
            .or_default()
            .insert(Method::Get.as_str().into(), view_operation(view));
    }
    for own in OWN {
        paths
            .entry(own.path)
            .or_default()
            .insert(Method::Get.as_str().into(), own_operation(own));
    }
    components.resolve_pending()?;
    for schema in components.schemas.values_mut() {
        plain_texts(schema);
    }
    let tags: Vec<Value> = Service::ALL
        .iter()
        .map(|s| (s.as_str(), tag_description(*s)))
        .chain([
            (
                "projector",
                "What each country may see: its view, its feed and lists, built from every log",
            ),
            ("audit", tag_description(Service::Audit)),
            ("health", "The gateway itself"),
        ])
        .map(|(name, description)| json!({"name": name, "description": description}))
        .collect();
    Ok(json!({
        "openapi": "3.1.0",
        "info": {
            "title": "Concord",
            "version": env!("CARGO_PKG_VERSION"),
            "description": "Coordination of cross-border police operations. Each command's body is \
                validated by its service against the JSON Schema embedded here; every error is an \
                RFC 9457 problem.",
            "license": {"name": "Apache-2.0", "identifier": "Apache-2.0"},
        },
        "tags": tags,
        "security": [{"bearer": []}],
        "paths": paths,
        "components": {
            "schemas": components.schemas,
            "parameters": parameters(),
            "headers": headers(),
            "responses": responses(),
            "securitySchemes": {
                "bearer": {"type": "http", "scheme": "bearer", "bearerFormat": "JWT"},
            },
        },
    }))
}

/// A route's tag is its service's name.
fn tag_description(service: Service) -> &'static str {
    match service {
        Service::Operations => "Joint operations, their participants and tasks",
        Service::Intel => "Leads, arrests and notices",
        Service::Crisis => "Crises, sitreps and assistance requests",
        Service::Deployments => "Specialist teams deployed to a host country",
        Service::Audit => {
            "Who did what and when, who read what, states as of an instant, and whether every log's chain checks (auditors)"
        }
    }
}

fn problem_schema() -> Value {
    let codes: Vec<&str> = CODES.iter().map(ErrorCode::as_str).collect();
    let types: Vec<String> = crate::problem::types().into_iter().map(|(uri, _)| uri).collect();
    let subtypes: Vec<String> = Subtype::ALL
        .iter()
        .map(|s| {
            let status = crate::problem::status_of(s.code()).as_u16();
            format!("`{}` ({status}): {}", s.uri(), s.description())
        })
        .collect();
    json!({
        "description": "An RFC 9457 problem, with Concord's reply code as an extension member",
        "type": "object",
        "required": ["type", "title", "status", "detail", "code"],
        "properties": {
            "type": {
                "type": "string",
                "format": "uri",
                "enum": types,
                "description": format!(
                    "`{TYPE_BASE}<code>`, or a type of its own for a refusal a client must tell apart: {}",
                    subtypes.join("; "),
                ),
            },
            "title": {"type": "string"},
            "status": {"type": "integer", "minimum": 400, "maximum": 599},
            "detail": {"type": "string"},
            "code": {"enum": codes},
            "details": {"description": "machine-readable particulars (schema paths that failed, versions)"},
        },
    })
}

fn reply_schema() -> Value {
    json!({
        "description": "What a command answers",
        "type": "object",
        "required": ["id", "version", "events"],
        "properties": {
            "id": {
                "type": "string",
                "description": "what the command created or changed (the task for a task command, \
                    the operation otherwise)",
            },
            "version": {
                "type": "integer",
                "minimum": 0,
                "description": "the stream's version after the command, also the ETag; send it back as If-Match",
            },
            "events": {
                "type": "array",
                "description": "the events appended",
                "items": {
                    "type": "object",
                    "required": ["seq", "type"],
                    "properties": {"seq": {"type": "integer", "minimum": 1}, "type": {"type": "string"}},
                },
            },
        },
        "patternProperties": {
            "_id$": {
                "type": "string",
                "description": "the id of the stream changed, by its kind (`operation_id`, `crisis_id`…)",
            },
        },
    })
}

fn parameters() -> Value {
    fn header(name: &str, schema: Value, description: &str) -> Value {
        json!({"name": name, "in": "header", "required": false, "schema": schema, "description": description})
    }
    // The patterns are what `call` accepts, so a generated value the
    // document allows is never refused as malformed.
    let key = json!({"type": "string", "minLength": 1, "maxLength": KEY_BYTES_MAX, "pattern": "^[!-~]+$"});
    // A structured-field String of 1 to KEY_BYTES_MAX characters (each
    // a visible ASCII character or space, `"` and `\` escaped), or the
    // bare form `call` also takes: exactly what `call` accepts.
    let idempotency_key = json!({
        "type": "string",
        "minLength": 1,
        "maxLength": 2 * KEY_BYTES_MAX + 2,
        "pattern": format!(
            r#"^(?:"(?:[ !#-\[\]-~]|\\["\\]){{1,{KEY_BYTES_MAX}}}"|[!#-~][!-~]{{0,{}}})$"#,
            KEY_BYTES_MAX - 1
        ),
    });
    let idempotency = format!(
        "a structured-field String (`\"8e03978e-40d5-43e8-bc93-6894a57f9324\"`, as the IETF \
         Idempotency-Key draft has it; a bare value is taken too, as a key of its own) that \
         names one request of the caller: its retry (same route, body and role) gets the first answer \
         and changes nothing, and the ids the command creates are derived from the key; the key on \
         another request is refused with 422 (type `{}`)",
        Subtype::IdempotencyKeyReused.uri()
    );
    let mut out = Map::new();
    for (name, schema, description) in [
        ("Idempotency-Key", idempotency_key, idempotency.as_str()),
        (
            "If-Match",
            json!({"type": "string", "pattern": "^([*]|(W/)?\"[0-9]{1,15}\"|[0-9]{1,15})$"}),
            "the version the command expects, as the ETag gave it (`\"3\"`; `W/\"3\"` and `3` too); \
             `*` or none expects nothing; another version is a 409",
        ),
        (
            "X-Request-Id",
            key,
            "the correlation id recorded on the events; a fresh one without it",
        ),
        (
            "traceparent",
            json!({"type": "string"}),
            "W3C trace context: the request continues the caller's trace",
        ),
        (
            "Concord-Seen",
            json!({"type": "string", "pattern": "^(operations|intel|crisis|deployments):[0-9]{1,15}(, ?(operations|intel|crisis|deployments):[0-9]{1,15})*$"}),
            "read your writes: the `Concord-Position` of commands the caller sent (comma-separated); the answer \
             shows them, or is a 503 after a bounded wait (retry after Retry-After)",
        ),
    ] {
        out.insert(name.to_owned(), header(name, schema, description));
    }
    Value::Object(out)
}

fn headers() -> Value {
    json!({
        "ETag": {"description": "the version, quoted (`\"3\"`)", "schema": {"type": "string"}},
        "Concord-Position": {
            "description": "`<service>:<seq>`: where the command left its service's log; send it back in `Concord-Seen` to read what it wrote",
            "schema": {"type": "string"},
        },
        "Location": {
            "description": "where what was created is read",
            "schema": {"type": "string", "format": "uri-reference"},
        },
        "Retry-After": {"description": "seconds to wait before retrying", "schema": {"type": "integer"}},
        "WWW-Authenticate": {"description": "`Bearer`", "schema": {"type": "string"}},
    })
}

/// The refusals, one component each, named by how [`responses`] lists them.
const REFUSALS: &[(u16, &str, &str)] = &[
    (
        400,
        "Invalid",
        "malformed: the body (`details` names what fails the command's schema), a header or a path id",
    ),
    (401, "Unauthorized", "no valid bearer token"),
    (403, "Forbidden", "the caller's role or country may not do this"),
    (
        404,
        "NotFound",
        "unknown, or not visible to the caller's country (the two are not told apart)",
    ),
    (
        409,
        "Conflict",
        "If-Match is not the current version (`details.actual` is)",
    ),
    (413, "TooLarge", "the body is larger than the limit"),
    (415, "UnsupportedMediaType", "the body is not sent as JSON"),
    (422, "RuleViolated", "well-formed, but a business rule refuses it"),
    (
        429,
        "TooManyStreams",
        "too many event streams are open with this token; retry after Retry-After once one is closed",
    ),
    (
        503,
        "Unavailable",
        "the service did not answer in time, or the gateway is not ready; retry after Retry-After",
    ),
];

fn responses() -> Value {
    let mut out = Map::new();
    for (status, name, description) in REFUSALS {
        let mut description = match status {
            413 => format!("{description} ({BODY_BYTES_MAX} bytes)"),
            _ => (*description).to_owned(),
        };
        for s in Subtype::ALL {
            if crate::problem::status_of(s.code()).as_u16() == *status {
                description.push_str(&format!("; or {} (type `{}`)", s.description(), s.uri()));
            }
        }
        let mut r = json!({
            "description": description,
            "content": {crate::problem::CONTENT_TYPE: {"schema": {"$ref": format!("{SCHEMAS}Problem")}}},
        });
        match status {
            401 => r["headers"] = json!({"WWW-Authenticate": {"$ref": "#/components/headers/WWW-Authenticate"}}),
            429 | 503 => r["headers"] = json!({"Retry-After": {"$ref": "#/components/headers/Retry-After"}}),
            _ => {}
        }
        out.insert((*name).to_owned(), r);
    }
    Value::Object(out)
}

fn refusal(status: u16) -> Value {
    // A status without a component points nowhere, which the document's
    // tests catch.
    let name = REFUSALS
        .iter()
        .find(|(s, ..)| *s == status)
        .map_or_else(|| status.to_string(), |(_, n, _)| (*n).to_owned());
    json!({"$ref": format!("#/components/responses/{name}")})
}

fn roles(roles: &[Role]) -> String {
    roles.iter().map(Role::as_str).collect::<Vec<_>>().join(" or ")
}

fn operation(route: &Route, components: &mut Components) -> Result<Value, String> {
    let schema_name = route.schema();
    let source = (components.load)(&schema_name)?;
    let op_id = route.operation_id();
    let mut parameters = Vec::new();
    for p in route.params {
        let field = source
            .pointer(&format!("/properties/{}", p.field))
            .ok_or_else(|| format!("{schema_name} has no property {}", p.field))?;
        let what = p
            .uuid_of
            .map_or_else(|| format!("the {}", p.field), |of| format!("the {of}'s id"));
        parameters.push(json!({
            "name": p.name,
            "in": "path",
            "required": true,
            "schema": inline(components.load, &schema_name, field, 0)?,
            "description": what,
        }));
    }
    let mut op = json!({
        "operationId": op_id,
        "summary": route.summary,
        "tags": [route.service.as_str()],
    });
    let mut responses = Map::new();
    match route.action {
        Action::Command(cmd) => {
            for h in ["Idempotency-Key", "If-Match", "X-Request-Id", "traceparent"] {
                parameters.push(json!({"$ref": format!("#/components/parameters/{h}")}));
            }
            let supplied = route.supplied();
            let mut description = format!(
                "The command `{}` of the {} service; takes a {}.",
                subjects::command(route.service.as_str(), route.name),
                route.service,
                roles(cmd.roles),
            );
            if route.method.takes_body() {
                let body = body_schema(components.load, &schema_name, &supplied)?;
                let required = body["required"].as_array().is_some_and(|r| !r.is_empty());
                components.add_rewritten(&op_id, &schema_name, body)?;
                op["requestBody"] = json!({
                    "required": required,
                    "content": {JSON: {"schema": {"$ref": format!("{SCHEMAS}{op_id}")}}},
                });
                description.push_str(&format!(" The body is the service's schema `{schema_name}`"));
                if !supplied.is_empty() {
                    description.push_str(&format!(" less {}, which the gateway fills", code_list(&supplied)));
                }
                description.push('.');
            }
            op["description"] = json!(description);
            let mut headers = json!({
                "ETag": {"$ref": "#/components/headers/ETag"},
                "Concord-Position": {"$ref": "#/components/headers/Concord-Position"},
            });
            if cmd.location.is_some() {
                headers["Location"] = json!({"$ref": "#/components/headers/Location"});
            }
            let success = if cmd.mints.is_some() { "created" } else { "done" };
            responses.insert(
                cmd.status.as_u16().to_string(),
                json!({
                    "description": success,
                    "headers": headers,
                    "content": {JSON: {"schema": {"$ref": format!("{SCHEMAS}CommandReply")}}},
                }),
            );
            let mut refusals = vec![400, 401, 403, 404, 409, 422, 503];
            if route.method.takes_body() {
                refusals.extend([413, 415]);
            }
            for s in refusals {
                responses.insert(s.to_string(), refusal(s));
            }
        }
        Action::Query(q) => {
            parameters.push(json!({"$ref": "#/components/parameters/traceparent"}));
            op["description"] = json!(format!(
                "The query `{}` of the {} service, asked with the caller's country and role: \
                 the service decides what the caller may see.",
                subjects::query(route.service.as_str(), route.name),
                route.service,
            ));
            responses.insert(
                "200".into(),
                json!({
                    "description": format!("the {}", q.reply),
                    "headers": {"ETag": {"$ref": "#/components/headers/ETag"}},
                    "content": {JSON: {"schema": {
                        "type": "object",
                        "properties": {"version": {"type": "integer", "minimum": 1}},
                    }}},
                }),
            );
            for s in [400, 401, 404, 503] {
                responses.insert(s.to_string(), refusal(s));
            }
        }
    }
    op["parameters"] = Value::Array(parameters);
    op["responses"] = Value::Object(responses);
    Ok(op)
}

/// "`a`", "`a` and `b`", "`a`, `b` and `c`".
fn code_list(fields: &[&str]) -> String {
    let quoted: Vec<String> = fields.iter().map(|f| format!("`{f}`")).collect();
    match quoted.split_last() {
        Some((last, [])) => last.clone(),
        Some((last, rest)) => format!("{} and {last}", rest.join(", ")),
        None => String::new(),
    }
}

/// The schema of a query or path parameter of `kind`.
fn param_schema(kind: crate::views::Kind) -> Value {
    use crate::views::Kind;
    match kind {
        Kind::Number => json!({"type": "integer", "minimum": 0, "maximum": concord_core::chain::INTEGER_MAX}),
        Kind::Country => json!({"$ref": format!("{SCHEMAS}common.country")}),
        Kind::OneOf(values) => json!({"enum": values()}),
        Kind::Log => json!({"enum": crate::views::logs()}),
        Kind::Note => {
            json!({"type": "string", "contentEncoding": "base64", "pattern": format!("^[A-Za-z0-9+/=]{{1,{}}}$", crate::views::NOTE_CHARS_MAX)})
        }
        Kind::Count => json!({"type": "integer", "minimum": 1, "maximum": crate::views::PAGE_MAX}),
        Kind::Cursor => json!({"type": "string", "pattern": crate::views::CURSOR_PATTERN}),
        Kind::Text => json!({
            "type": "string",
            "minLength": 1,
            "maxLength": crate::views::QUERY_CHARS_MAX,
            "pattern": concord_bus::runtime::PLAIN_TEXT_PATTERN,
        }),
        Kind::Uuid => json!({"type": "string", "format": "uuid"}),
        Kind::Instant => json!({"type": "string", "format": "date-time"}),
        Kind::Subject => json!({
            "type": "string",
            "minLength": 1,
            "maxLength": concord_core::auth::SUB_BYTES_MAX,
            "pattern": concord_bus::runtime::PLAIN_TEXT_PATTERN,
        }),
    }
}

/// A read of the projector: its path and query parameters, what it
/// answers and refuses.
fn view_operation(view: &crate::views::View) -> Value {
    let mut parameters = Vec::new();
    if view.country {
        parameters.push(json!({
            "name": "cc", "in": "path", "required": true,
            "schema": {"$ref": format!("{SCHEMAS}common.country")},
            "description": "the country whose view or feed it is",
        }));
    }
    for p in view.path_ids {
        parameters.push(json!({"name": p.name, "in": "path", "required": true, "schema": param_schema(p.kind), "description": p.description}));
    }
    for p in view.params {
        let schema = param_schema(p.kind);
        parameters.push(
            json!({"name": p.name, "in": "query", "required": p.kind.required(), "schema": schema, "description": p.description}),
        );
    }
    parameters.push(json!({"$ref": "#/components/parameters/traceparent"}));
    parameters.push(json!({"$ref": "#/components/parameters/Concord-Seen"}));
    let mut responses = Map::new();
    let mut refusals = vec![400, 401, 403, 503];
    if !view.path_ids.is_empty() {
        refusals.push(404);
    }
    if view.asks == concord_bus::permissions::AUDIT {
        refusals.push(409);
    }
    // A well-formed note that is not one the audit signed.
    if view.params.iter().any(|p| matches!(p.kind, crate::views::Kind::Note)) {
        refusals.push(422);
    }
    if view.query == "feed" {
        parameters.push(json!({
            "name": "Last-Event-ID", "in": "header", "required": false,
            "schema": {"type": "string", "pattern": "^[0-9]{1,16}$"},
            "description": "with `Accept: text/event-stream`: the `id` of the last event received; the stream resumes after it (takes the place of `after`)",
        }));
        responses.insert(
            "200".into(),
            json!({"description": format!(
                "the events after `after` (`last`: the position to read after next). With `Accept: text/event-stream`, \
                 Server-Sent Events instead, live: each event as `id: <position>` and `data: {{\"position\", \"event\"}}`, \
                 a comment line `: heartbeat` after {}s without one; at most {} streams per token; the stream ends when the token expires",
                crate::sse::HEARTBEAT.as_secs(), crate::sse::PER_TOKEN_MAX),
                   "content": {
                       JSON: {"schema": {"type": "object"}},
                       "text/event-stream": {"schema": {"type": "string"}},
                   }}),
        );
        refusals.push(429);
    } else if view.query == "export" {
        responses.insert(
            "200".into(),
            json!({"description": "JSON Lines: each line one event exactly as the log stores it, from `from` to `to` (or the checkpoint's size), streamed; a body cut before its end (no last chunk) means the export failed midway",
                   "headers": {
                       "Concord-Checkpoint": {"schema": {"type": "string"},
                           "description": "the C2SP signed note of the checkpoint the export was taken against, base64"},
                       "Concord-Checkpoint-Size": {"schema": {"type": "integer", "minimum": 0},
                           "description": "the checkpoint's size: the seq whose hash it states"},
                       "Concord-Export-To": {"schema": {"type": "integer", "minimum": 0},
                           "description": "the last seq the body holds"},
                   },
                   "content": {crate::export::JSONL: {"schema": {"type": "string"}}}}),
        );
    } else {
        responses.insert(
            "200".into(),
            json!({"description": "the page (`next`: the cursor of the following one, null at the end)",
                   "content": {JSON: {"schema": {"type": "object"}}}}),
        );
    }
    for status in refusals {
        responses.insert(status.to_string(), refusal(status));
    }
    json!({
        "operationId": view.operation_id,
        "summary": view.summary,
        "tags": [view.asks],
        "parameters": parameters,
        "responses": responses,
    })
}

fn own_operation(own: &crate::Own) -> Value {
    let mut responses = Map::new();
    for (status, description) in own.responses {
        let r = if *status >= 400 {
            refusal(*status)
        } else {
            let schema = if own.media == JSON {
                json!({"type": "object"})
            } else {
                json!({"type": "string"})
            };
            json!({"description": description, "content": {own.media: {"schema": schema}}})
        };
        responses.insert(status.to_string(), r);
    }
    json!({
        "operationId": own.operation_id,
        "summary": own.summary,
        "tags": ["health"],
        "security": [],
        "responses": responses,
    })
}

/// A schema file by name, parsed: [`load`] in the binary, made-up files in
/// tests.
type Load<'a> = &'a dyn Fn(&str) -> Result<Value, String>;

fn load(name: &str) -> Result<Value, String> {
    let text = concord_bus::schema::text(name).ok_or_else(|| format!("no schema named {name}"))?;
    serde_json::from_str(text).map_err(|e| format!("schema {name}: {e}"))
}

/// Says in every string schema what the services check of every text
/// (`runtime::plain_text`): no control character but line feed and tab,
/// not white space alone. A schema with its own `pattern` gets this one
/// beside it (`allOf`); one of an `enum`, a `const` or a `format` admits
/// no such text anyway. So a text the document admits is one the
/// services take, and a client generating requests from it finds out.
fn plain_texts(schema: &mut Value) {
    let Some(m) = schema.as_object_mut() else {
        if let Some(items) = schema.as_array_mut() {
            items.iter_mut().for_each(plain_texts);
        }
        return;
    };
    let is_string = match m.get("type") {
        Some(Value::String(t)) => t == "string",
        Some(Value::Array(ts)) => ts.iter().any(|t| t == "string"),
        _ => false,
    };
    if is_string && !["enum", "const", "format"].iter().any(|k| m.contains_key(*k)) {
        let rule = json!({"pattern": concord_bus::runtime::PLAIN_TEXT_PATTERN});
        if m.contains_key("pattern") {
            match m.entry("allOf").or_insert_with(|| json!([])) {
                Value::Array(all) => all.push(rule),
                other => *other = json!([rule]),
            }
        } else {
            m.insert("pattern".into(), rule["pattern"].clone());
        }
    }
    for (k, v) in m.iter_mut() {
        if !is_data(k) {
            plain_texts(v);
        }
    }
}

/// The keywords that carry values, not schemas: a `$ref` in them is data.
fn is_data(keyword: &str) -> bool {
    matches!(keyword, "enum" | "const" | "default" | "examples")
}

/// A schema file as a component: without the keywords that only make
/// sense at the root of a file (its `$defs` become components of their own).
fn strip_root(mut schema: Value) -> Value {
    if let Some(m) = schema.as_object_mut() {
        for k in ["$schema", "$id", "$defs"] {
            m.remove(k);
        }
    }
    schema
}

/// The command's schema as a client sends it: without the fields the path
/// and the gateway fill, which the service then always finds. A `required`
/// naming one is therefore always met, so dropping it there (and in the
/// subschemas that apply to the same object) keeps the meaning.
fn body_schema(load: Load, name: &str, supplied: &[&str]) -> Result<Value, String> {
    fn trim(schema: &mut Value, supplied: &[&str]) {
        let Some(m) = schema.as_object_mut() else {
            return;
        };
        if let Some(props) = m.get_mut("properties").and_then(Value::as_object_mut) {
            for f in supplied {
                props.remove(*f);
            }
        }
        if let Some(required) = m.get_mut("required").and_then(Value::as_array_mut) {
            required.retain(|r| !r.as_str().is_some_and(|r| supplied.contains(&r)));
            if required.is_empty() {
                m.remove("required");
            }
        }
        for k in ["allOf", "anyOf", "oneOf"] {
            for sub in m.get_mut(k).and_then(Value::as_array_mut).into_iter().flatten() {
                trim(sub, supplied);
            }
        }
        for k in ["not", "if", "then", "else"] {
            if let Some(sub) = m.get_mut(k) {
                trim(sub, supplied);
            }
        }
    }
    let mut schema = strip_root(load(name)?);
    trim(&mut schema, supplied);
    Ok(schema)
}

/// `(schema name, JSON pointer)` a `$ref` of schema `base` points to: a
/// fragment of `base` itself, or of another Concord schema named by its
/// `$id` (absolute, or relative to `base`'s). Nothing else is resolved, as
/// in `concord_bus::schema`.
fn target(base: &str, reference: &str) -> Result<(String, String), String> {
    let (uri, pointer) = reference.split_once('#').unwrap_or((reference, ""));
    if !pointer.is_empty() && !pointer.starts_with('/') {
        return Err(format!("$ref {reference:?}: only JSON pointer fragments are resolved"));
    }
    if uri.is_empty() {
        return Ok((base.to_owned(), pointer.to_owned()));
    }
    let path = if let Some(rest) = uri.strip_prefix(ID_BASE) {
        rest.to_owned()
    } else if !uri.contains(':') && !uri.starts_with('/') {
        let mut parts: Vec<&str> = base.split('/').collect();
        parts.pop();
        for seg in uri.split('/') {
            match seg {
                ".." => {
                    parts.pop();
                }
                "." | "" => {}
                s => parts.push(s),
            }
        }
        parts.join("/")
    } else {
        return Err(format!("$ref {reference:?} is not a Concord schema ({ID_BASE}…)"));
    };
    let name = path
        .strip_suffix(".schema.json")
        .ok_or_else(|| format!("$ref {reference:?} does not name a .schema.json file"))?;
    Ok((name.to_owned(), pointer.to_owned()))
}

/// `schema` (of file `base`) with every `$ref` replaced by what it points
/// to; for the few small schemas that are not bodies (path parameters).
fn inline(load: Load, base: &str, schema: &Value, depth: usize) -> Result<Value, String> {
    /// Deeper than any schema of the repository nests; a cycle otherwise.
    const DEPTH_MAX: usize = 32;
    if depth > DEPTH_MAX {
        return Err(format!("$refs of {base} nest deeper than {DEPTH_MAX}: a cycle?"));
    }
    match schema {
        Value::Object(m) => {
            let mut out = Map::new();
            let mut resolved = None;
            for (k, v) in m {
                if k == "$ref" {
                    let r = v.as_str().ok_or_else(|| format!("{base}: $ref is not a string"))?;
                    let (file, pointer) = target(base, r)?;
                    let doc = load(&file)?;
                    let t = doc
                        .pointer(&pointer)
                        .ok_or_else(|| format!("{base}: $ref {r:?} points nowhere"))?;
                    resolved = Some(inline(load, &file, t, depth + 1)?);
                } else if is_data(k) {
                    out.insert(k.clone(), v.clone());
                } else {
                    out.insert(k.clone(), inline(load, base, v, depth + 1)?);
                }
            }
            Ok(match resolved {
                // `$ref` next to other keywords applies with them.
                Some(t) if !out.is_empty() => {
                    let mut all = vec![t];
                    if let Some(Value::Array(a)) = out.remove("allOf") {
                        all.extend(a);
                    }
                    out.insert("allOf".into(), Value::Array(all));
                    Value::Object(out)
                }
                Some(t) => t,
                None => Value::Object(out),
            })
        }
        Value::Array(a) => a.iter().map(|v| inline(load, base, v, depth + 1)).collect(),
        v => Ok(v.clone()),
    }
}

/// `components/schemas`, and what each name stands for, so that two
/// sources never share a name.
struct Components<'a> {
    load: Load<'a>,
    schemas: Map<String, Value>,
    origins: HashMap<String, String>,
    /// Referenced `(file, $defs entry or the whole file)` not yet added.
    pending: Vec<(String, Option<String>)>,
}

impl<'a> Components<'a> {
    fn new(load: Load<'a>) -> Self {
        Components {
            load,
            schemas: Map::new(),
            origins: HashMap::new(),
            pending: Vec::new(),
        }
    }

    fn add(&mut self, name: &str, origin: String, schema: Value) -> Result<(), String> {
        self.claim(name, origin)?;
        self.schemas.insert(name.to_owned(), schema);
        Ok(())
    }

    /// Takes `name` for `origin`: false when it already stands for it.
    fn claim(&mut self, name: &str, origin: String) -> Result<bool, String> {
        if !name.bytes().all(|b| b.is_ascii_alphanumeric() || b"._-".contains(&b)) {
            return Err(format!("{origin} would be the component {name:?}, not a valid name"));
        }
        match self.origins.get(name) {
            Some(o) if *o == origin => Ok(false),
            Some(o) => Err(format!("component {name} would stand for both {o} and {origin}")),
            None => {
                self.origins.insert(name.to_owned(), origin);
                Ok(true)
            }
        }
    }

    /// Adds `schema` (of file `base`) with its `$ref`s pointing into the
    /// document.
    fn add_rewritten(&mut self, name: &str, base: &str, mut schema: Value) -> Result<(), String> {
        self.rewrite(base, &mut schema)?;
        self.add(name, format!("the body of {name}"), schema)
    }

    fn rewrite(&mut self, base: &str, schema: &mut Value) -> Result<(), String> {
        match schema {
            Value::Object(m) => {
                for k in ["$id", "$anchor", "$dynamicRef", "$dynamicAnchor"] {
                    if m.contains_key(k) {
                        return Err(format!("{base}: {k} inside a schema is not resolved"));
                    }
                }
                for (k, v) in m.iter_mut() {
                    if k == "$ref" {
                        let r = v.as_str().ok_or_else(|| format!("{base}: $ref is not a string"))?;
                        *v = Value::String(self.reference(base, r)?);
                    } else if !is_data(k) {
                        self.rewrite(base, v)?;
                    }
                }
            }
            Value::Array(a) => {
                for v in a {
                    self.rewrite(base, v)?;
                }
            }
            _ => {}
        }
        Ok(())
    }

    /// Where `reference` of file `base` points in the document: the
    /// component of the `$defs` entry (or file) it names, and the rest of
    /// the pointer inside it.
    fn reference(&mut self, base: &str, reference: &str) -> Result<String, String> {
        let (file, pointer) = target(base, reference)?;
        let tokens: Vec<&str> = pointer.split('/').skip(1).collect();
        let dotted = file.replace('/', ".");
        let (name, def, rest) = match tokens.as_slice() {
            ["$defs", def, rest @ ..] => {
                let def = def.replace("~1", "/").replace("~0", "~");
                (format!("{dotted}.{def}"), Some(def), rest)
            }
            rest => (dotted, None, rest),
        };
        let origin = match &def {
            Some(d) => format!("{file}#/$defs/{d}"),
            None => file.clone(),
        };
        if self.claim(&name, origin)? {
            self.pending.push((file, def));
        }
        let mut out = format!("{SCHEMAS}{name}");
        for t in rest {
            out.push('/');
            out.push_str(t);
        }
        Ok(out)
    }

    /// Adds every component referenced so far, and those they reference.
    fn resolve_pending(&mut self) -> Result<(), String> {
        while let Some((file, def)) = self.pending.pop() {
            let doc = (self.load)(&file)?;
            let dotted = file.replace('/', ".");
            let (name, mut schema) = match &def {
                Some(d) => {
                    let s = doc
                        .get("$defs")
                        .and_then(|defs| defs.get(d))
                        .ok_or_else(|| format!("{file} has no $defs/{d}"))?
                        .clone();
                    (format!("{dotted}.{d}"), s)
                }
                None => (dotted, strip_root(doc)),
            };
            self.rewrite(&file, &mut schema)?;
            self.schemas.insert(name, schema);
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeSet;

    use super::*;

    fn doc() -> Value {
        document().unwrap_or_else(|e| panic!("{e}"))
    }

    fn operations(doc: &Value) -> BTreeSet<(String, String)> {
        let mut out = BTreeSet::new();
        for (path, item) in doc["paths"].as_object().expect("paths") {
            for method in item.as_object().expect("path item").keys() {
                out.insert((method.clone(), path.clone()));
            }
        }
        out
    }

    /// Every route the router serves is documented, and nothing else: both
    /// come from `ROUTES`, `VIEWS` and `OWN`, which this compares the
    /// document to.
    #[test]
    fn the_document_has_exactly_the_routes() {
        let doc = doc();
        let routed: BTreeSet<(String, String)> = ROUTES
            .iter()
            .map(|r| (r.method.as_str().to_owned(), r.path.to_owned()))
            .chain(OWN.iter().map(|o| ("get".to_owned(), o.path.to_owned())))
            .chain(
                crate::views::VIEWS
                    .iter()
                    .map(|v| ("get".to_owned(), v.path.to_owned())),
            )
            .collect();
        assert_eq!(operations(&doc), routed);
        for r in ROUTES {
            let op = &doc["paths"][r.path][r.method.as_str()];
            assert_eq!(op["operationId"], r.operation_id().as_str());
        }
        assert!(doc["components"]["securitySchemes"]["bearer"].is_object());
    }

    /// Every problem type is listed, and a refusal with a type of its own
    /// is told where its status is.
    #[test]
    fn problem_types_are_documented() {
        let doc = doc();
        let listed = &doc["components"]["schemas"]["Problem"]["properties"]["type"]["enum"];
        let types: Vec<Value> = crate::problem::types().into_iter().map(|(t, _)| json!(t)).collect();
        assert_eq!(listed, &json!(types));
        let reused = Subtype::IdempotencyKeyReused.uri();
        assert!(
            listed.as_array().is_some_and(|l| l.contains(&json!(reused))),
            "{listed}"
        );
        let unprocessable = doc["components"]["responses"]["RuleViolated"]["description"]
            .as_str()
            .unwrap_or_default();
        assert!(unprocessable.contains(&reused), "{unprocessable}");
        let key = doc["components"]["parameters"]["Idempotency-Key"]["description"]
            .as_str()
            .unwrap_or_default();
        assert!(key.contains(&reused), "{key}");
    }

    /// The document's pattern for `Idempotency-Key` is what the gateway
    /// accepts: a client that builds its header from the document is never
    /// refused, and one the document disallows is refused.
    #[test]
    fn the_idempotency_key_pattern_is_what_the_gateway_accepts() {
        let doc = doc();
        let schema = doc["components"]["parameters"]["Idempotency-Key"]["schema"].to_string();
        let schemas = concord_bus::schema::Schemas::compile([("key", schema.as_str())]).expect("compiles");
        let long = "k".repeat(KEY_BYTES_MAX);
        let values = [
            "k1".to_owned(),
            "\"k1\"".to_owned(),
            "\"a b\"".to_owned(),
            r#""a\"b\\c""#.to_owned(),
            r#"a"b\c"#.to_owned(),
            format!("\"{long}\""),
            long.clone(),
            format!("\"{long}k\""),
            format!("{long}k"),
            "\"\"".to_owned(),
            "\"k1".to_owned(),
            "\"k1\";p=1".to_owned(),
            r#""a\nb""#.to_owned(),
            "a b".to_owned(),
        ];
        for v in values {
            let allowed = schemas.check("key", &json!(v)).expect("checked").is_ok();
            let mut headers = axum::http::HeaderMap::new();
            headers.insert("idempotency-key", v.parse().expect("a header value"));
            let accepted = crate::call::idempotency_key(&headers).is_ok();
            assert_eq!(
                allowed, accepted,
                "{v}: the document allows it: {allowed}, the gateway accepts it: {accepted}"
            );
        }
    }

    #[test]
    fn operation_ids_are_unique() {
        let doc = doc();
        let mut seen = BTreeSet::new();
        for (method, path) in operations(&doc) {
            let id = doc["paths"][&path][&method]["operationId"]
                .as_str()
                .expect("operationId");
            assert!(seen.insert(id.to_owned()), "{id} twice");
        }
    }

    /// `value` with every `$ref` into `doc` replaced as [`inline`] does for
    /// a schema file: the two sides then compare as plain JSON.
    fn inline_doc(doc: &Value, value: &Value, depth: usize) -> Value {
        assert!(depth < 64, "a $ref cycle");
        match value {
            Value::Object(m) => {
                let mut out = Map::new();
                let mut resolved = None;
                for (k, v) in m {
                    if k == "$ref" {
                        let r = v.as_str().expect("string $ref");
                        let pointer = r.strip_prefix('#').unwrap_or_else(|| panic!("{r} leaves the document"));
                        let t = doc.pointer(pointer).unwrap_or_else(|| panic!("{r} points nowhere"));
                        resolved = Some(inline_doc(doc, t, depth + 1));
                    } else if is_data(k) {
                        out.insert(k.clone(), v.clone());
                    } else {
                        out.insert(k.clone(), inline_doc(doc, v, depth + 1));
                    }
                }
                match resolved {
                    Some(t) if !out.is_empty() => {
                        let mut all = vec![t];
                        if let Some(Value::Array(a)) = out.remove("allOf") {
                            all.extend(a);
                        }
                        out.insert("allOf".into(), Value::Array(all));
                        Value::Object(out)
                    }
                    Some(t) => t,
                    None => Value::Object(out),
                }
            }
            Value::Array(a) => Value::Array(a.iter().map(|v| inline_doc(doc, v, depth + 1)).collect()),
            v => v.clone(),
        }
    }

    fn refs<'a>(value: &'a Value, out: &mut Vec<&'a str>) {
        match value {
            Value::Object(m) => {
                for (k, v) in m {
                    match v {
                        Value::String(s) if k == "$ref" => out.push(s),
                        _ => refs(v, out),
                    }
                }
            }
            Value::Array(a) => a.iter().for_each(|v| refs(v, out)),
            _ => {}
        }
    }

    /// Every `$ref` of the document points into it, at something.
    #[test]
    fn the_document_stands_alone() {
        let doc = doc();
        let mut all = Vec::new();
        refs(&doc, &mut all);
        assert!(!all.is_empty());
        for r in all {
            let pointer = r.strip_prefix('#').unwrap_or_else(|| panic!("{r} leaves the document"));
            assert!(doc.pointer(pointer).is_some(), "{r} points nowhere");
        }
        let text = doc.to_string();
        assert!(!text.contains("\"$schema\"") && !text.contains("\"$id\"") && !text.contains("\"$defs\""));
    }

    /// Each command's body is its service's schema less the fields the path
    /// and the gateway fill, read from the embedded files independently of
    /// how the document is assembled; a body-less DELETE documents none.
    #[test]
    fn request_bodies_are_the_service_schemas() {
        let doc = doc();
        for r in ROUTES {
            let op = &doc["paths"][r.path][r.method.as_str()];
            let body = &op["requestBody"]["content"][JSON]["schema"];
            if !matches!(r.action, Action::Command(_)) || !r.method.takes_body() {
                assert!(
                    op.get("requestBody").is_none(),
                    "{}: a body it does not read",
                    r.operation_id()
                );
                continue;
            }
            let id = r.operation_id();
            let name = r.schema();
            let source = load(&name).expect("schema");
            let supplied = r.supplied();
            let trimmed = body_schema(&load, &name, &supplied).expect("body");
            let names = |s: &Value, key: &str| -> BTreeSet<String> {
                match &s[key] {
                    Value::Object(m) => m.keys().cloned().collect(),
                    Value::Array(a) => a.iter().filter_map(Value::as_str).map(str::to_owned).collect(),
                    _ => BTreeSet::new(),
                }
            };
            for key in ["properties", "required"] {
                let mut want = names(&source, key);
                for f in &supplied {
                    want.remove(*f);
                }
                assert_eq!(names(&trimmed, key), want, "{id}: {key}");
            }
            // The service's schema, plus what it checks of every text.
            let mut want = inline(&load, &name, &trimmed, 0).expect("inline");
            plain_texts(&mut want);
            assert_eq!(inline_doc(&doc, body, 0), want, "{id}");
            let required = !names(&trimmed, "required").is_empty();
            assert_eq!(op["requestBody"]["required"], required, "{id}");
        }
    }

    /// Path parameters carry the schema of the field they fill.
    #[test]
    fn path_parameters_are_typed_by_the_schemas() {
        let doc = doc();
        let op = &doc["paths"]["/v1/operations/{id}/participants/{country}"]["delete"];
        let params = op["parameters"].as_array().expect("parameters");
        assert_eq!(params[0]["schema"]["format"], "uuid");
        let countries = params[1]["schema"]["enum"].as_array().expect("the country codes");
        assert!(countries.contains(&json!("DE")) && !countries.contains(&json!("XX")));
        let op = &doc["paths"]["/v1/leads/{id}"]["get"];
        assert_eq!(op["parameters"][0]["schema"]["format"], "uuid");
    }

    #[test]
    fn refs_resolve_locally_and_across_files() {
        assert_eq!(
            target("commands/intel/post_lead", "#/$defs/uuid").expect("local"),
            ("commands/intel/post_lead".into(), "/$defs/uuid".into())
        );
        assert_eq!(
            target(
                "commands/intel/post_lead",
                &format!("{ID_BASE}common.schema.json#/$defs/country")
            )
            .expect("abs"),
            ("common".into(), "/$defs/country".into())
        );
        assert_eq!(
            target("commands/intel/post_lead", "../../common.schema.json#/$defs/country").expect("rel"),
            ("common".into(), "/$defs/country".into())
        );
        assert!(target("commands/intel/post_lead", "https://elsewhere.example/x.schema.json").is_err());
        assert!(target("commands/intel/post_lead", "#anchor").is_err());

        let mut c = Components::new(&load);
        let abs = format!("{ID_BASE}common.schema.json#/$defs/country");
        assert_eq!(
            c.reference("commands/intel/post_lead", &abs).expect("ref"),
            "#/components/schemas/common.country"
        );
        assert_eq!(
            c.reference("commands/intel/post_lead", "#/$defs/subject/properties/kind")
                .expect("ref"),
            "#/components/schemas/commands.intel.post_lead.subject/properties/kind"
        );
        // Asked twice, added once.
        c.reference("commands/crisis/close_crisis", &abs).expect("ref");
        assert_eq!(c.pending.len(), 2);
    }

    /// A body whose schema uses a shared file (`common`, by absolute or
    /// relative id) and `$ref`s with siblings: each def it reaches becomes
    /// one component, and the document says what the files say.
    #[test]
    fn shared_defs_become_components() {
        let files = |name: &str| -> Result<Value, String> {
            match name {
                "commands/x/act" => Ok(json!({
                    "$schema": "https://json-schema.org/draft/2020-12/schema",
                    "$id": format!("{ID_BASE}commands/x/act.schema.json"),
                    "type": "object",
                    "additionalProperties": false,
                    "required": ["act_id", "country"],
                    "properties": {
                        "act_id": {"$ref": "#/$defs/uuid"},
                        "country": {
                            "$ref": format!("{ID_BASE}common.schema.json#/$defs/country"),
                            "description": "where",
                        },
                        "team": {"$ref": "../../common.schema.json#/$defs/team"},
                    },
                    "$defs": {"uuid": {"type": "string", "format": "uuid"}},
                })),
                "common" => Ok(json!({
                    "$id": format!("{ID_BASE}common.schema.json"),
                    "$defs": {
                        "country": {"$ref": "#/$defs/code"},
                        "code": {"type": "string", "pattern": "^[A-Z]{2}$"},
                        "team": {"enum": [{"$ref": "not a ref"}]},
                        "unused": {"type": "null"},
                    },
                })),
                other => Err(format!("no schema named {other}")),
            }
        };
        let mut c = Components::new(&files);
        let body = body_schema(&files, "commands/x/act", &["act_id"]).expect("body");
        c.add_rewritten("x.act", "commands/x/act", body.clone()).expect("add");
        c.resolve_pending().expect("resolve");
        let names: BTreeSet<&str> = c.schemas.keys().map(String::as_str).collect();
        assert_eq!(
            names,
            BTreeSet::from(["x.act", "common.country", "common.code", "common.team"])
        );
        let act = &c.schemas["x.act"];
        assert_eq!(act["required"], json!(["country"]));
        assert_eq!(
            act["properties"]["country"],
            json!({"$ref": "#/components/schemas/common.country", "description": "where"})
        );
        assert_eq!(
            act["properties"]["team"],
            json!({"$ref": "#/components/schemas/common.team"})
        );
        assert_eq!(
            c.schemas["common.country"],
            json!({"$ref": "#/components/schemas/common.code"})
        );
        assert_eq!(c.schemas["common.team"], json!({"enum": [{"$ref": "not a ref"}]}));
        let doc = json!({"components": {"schemas": c.schemas}});
        assert_eq!(
            inline_doc(&doc, &doc["components"]["schemas"]["x.act"], 0),
            inline(&files, "commands/x/act", &body, 0).expect("inline"),
        );
        // A shared def and a body may not take one name.
        let mut c = Components::new(&files);
        c.add("common.country", "a body".into(), json!({})).expect("add");
        assert!(c.add_rewritten("x.act", "commands/x/act", body).is_err());
    }
}
