//! The route table: every `/v1` route as one row, from which the router
//! ([`crate::handler`]) and `/openapi.json` ([`crate::openapi`]) are both
//! built, so neither can know a route the other does not.
//!
//! A row says how an HTTP request becomes a command or a query of a
//! service: which path segments fill which fields (and the 400 a malformed
//! id gets), which role may send the command (and the 403 wording), which
//! id the gateway mints for what the command creates, and what the success
//! looks like. It says nothing of the command's fields: those are the
//! service's JSON Schema, which the service checks and the docs embed.

use axum::http::StatusCode;
use axum::routing::MethodFilter;
use concord_core::{Role, Service};

use Service::{Crisis, Deployments, Intel, Operations};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Method {
    Get,
    Post,
    Delete,
}

impl Method {
    pub fn filter(self) -> MethodFilter {
        match self {
            Method::Get => MethodFilter::GET,
            Method::Post => MethodFilter::POST,
            Method::Delete => MethodFilter::DELETE,
        }
    }

    /// The key of the operation in an OpenAPI path item.
    pub fn as_str(self) -> &'static str {
        match self {
            Method::Get => "get",
            Method::Post => "post",
            Method::Delete => "delete",
        }
    }

    /// A DELETE says everything in its path: content in it has no defined
    /// meaning (RFC 9110, 9.3.5), so the gateway does not read it.
    pub fn takes_body(self) -> bool {
        self == Method::Post
    }
}

/// A `{name}` segment of the path and the field it fills.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Param {
    pub name: &'static str,
    pub field: &'static str,
    /// What the id identifies, when the segment must be a UUID: a malformed
    /// one is a 400 "`<uuid_of>` id "…" is not a UUID" before anything is
    /// sent. `None` passes the segment on as text for the service to check.
    pub uuid_of: Option<&'static str>,
}

impl Param {
    pub const fn id(name: &'static str, field: &'static str, uuid_of: &'static str) -> Param {
        Param {
            name,
            field,
            uuid_of: Some(uuid_of),
        }
    }

    pub const fn text(name: &'static str, field: &'static str) -> Param {
        Param {
            name,
            field,
            uuid_of: None,
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Command {
    /// Who may send it; any other role is refused before NATS is asked.
    /// Empty refuses everyone, so a row that forgets its roles fails closed.
    pub roles: &'static [Role],
    /// Ends the 403 "a liaison may not `<may_not>`; it takes a coordinator".
    pub may_not: &'static str,
    /// 201 for a creation, 200 otherwise.
    pub status: StatusCode,
    /// The field the gateway fills with the id of what the command creates
    /// (derived from the `Idempotency-Key`, else a fresh UUIDv7); the
    /// client may not send it.
    pub mints: Option<&'static str>,
    /// Where the created item is read (`Location: <prefix>/<id>`); `None`
    /// when it has no route of its own (a task, a sitrep).
    pub location: Option<&'static str>,
}

/// A read. Any authenticated caller may ask: what it may see is the
/// service's decision, made on the caller's country and role, which the
/// gateway always adds to the query.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Query {
    /// Constant fields of the query besides the path's and the caller's
    /// (intel's one `get` serves leads, arrests and notices by `kind`).
    pub with: &'static [(&'static str, &'static str)],
    /// The member of the reply that holds the item.
    pub reply: &'static str,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Action {
    Command(Command),
    Query(Query),
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Route {
    pub method: Method,
    /// An axum path template (`/v1/operations/{id}`), also OpenAPI's.
    pub path: &'static str,
    pub service: Service,
    /// The command or query name on NATS, and of its schema.
    pub name: &'static str,
    pub params: &'static [Param],
    pub action: Action,
    pub summary: &'static str,
}

const fn command(method: Method, path: &'static str, service: Service, name: &'static str) -> Route {
    Route {
        method,
        path,
        service,
        name,
        params: &[],
        action: Action::Command(Command {
            roles: &[],
            may_not: "",
            status: StatusCode::OK,
            mints: None,
            location: None,
        }),
        summary: "",
    }
}

const fn post(path: &'static str, service: Service, name: &'static str) -> Route {
    command(Method::Post, path, service, name)
}

const fn delete(path: &'static str, service: Service, name: &'static str) -> Route {
    command(Method::Delete, path, service, name)
}

/// `GET` of one item by the service's `get` query; `reply` is the member
/// of the reply that holds it.
const fn get(path: &'static str, service: Service, reply: &'static str) -> Route {
    Route {
        method: Method::Get,
        path,
        service,
        name: "get",
        params: &[],
        action: Action::Query(Query { with: &[], reply }),
        summary: "",
    }
}

// A builder misused on the wrong kind of row is a table bug: as `ROUTES`
// is evaluated at compile time, the panics below stop the build.
impl Route {
    const fn params(mut self, params: &'static [Param]) -> Route {
        self.params = params;
        self
    }

    const fn roles(mut self, roles: &'static [Role], may_not: &'static str) -> Route {
        match &mut self.action {
            Action::Command(c) => {
                c.roles = roles;
                c.may_not = may_not;
            }
            Action::Query(_) => panic!("a query takes no roles: visibility is the service's"),
        }
        self
    }

    const fn creates(mut self, mints: &'static str, location: Option<&'static str>) -> Route {
        match &mut self.action {
            Action::Command(c) => {
                c.status = StatusCode::CREATED;
                c.mints = Some(mints);
                c.location = location;
            }
            Action::Query(_) => panic!("a query creates nothing"),
        }
        self
    }

    const fn with(mut self, with: &'static [(&'static str, &'static str)]) -> Route {
        match &mut self.action {
            Action::Query(q) => q.with = with,
            Action::Command(_) => panic!("a command's fields are its body's"),
        }
        self
    }

    const fn summary(mut self, summary: &'static str) -> Route {
        self.summary = summary;
        self
    }

    /// Unique over the table: `operations.close`, `crisis.close_crisis`,
    /// `intel.get_lead`.
    pub fn operation_id(&self) -> String {
        match self.action {
            Action::Command(_) => format!("{}.{}", self.service, self.name),
            Action::Query(q) => format!("{}.{}_{}", self.service, self.name, q.reply),
        }
    }

    /// The name of the command's or query's schema in `concord_bus::schema`.
    pub fn schema(&self) -> String {
        match self.action {
            Action::Command(_) => concord_bus::schema::command_name(self.service, self.name),
            Action::Query(_) => concord_bus::schema::query_name(self.service, self.name),
        }
    }

    /// The fields the path and the gateway fill, which a body may not hold.
    pub fn supplied(&self) -> Vec<&'static str> {
        let mut fields: Vec<&'static str> = self.params.iter().map(|p| p.field).collect();
        if let Action::Command(Command { mints: Some(f), .. }) = self.action {
            fields.push(f);
        }
        fields
    }
}

const COORDINATOR: &[Role] = &[Role::Coordinator];
const LIAISON: &[Role] = &[Role::Liaison];
const REVIEWER: &[Role] = &[Role::Reviewer];
const LIAISON_OR_REVIEWER: &[Role] = &[Role::Liaison, Role::Reviewer];

const OPERATION: &[Param] = &[Param::id("id", "operation_id", "operation")];
const CRISIS: &[Param] = &[Param::id("id", "crisis_id", "crisis")];
const DEPLOYMENT: &[Param] = &[Param::id("id", "deployment_id", "deployment")];
const LEAD: &[Param] = &[Param::id("id", "lead_id", "lead")];
const NOTICE: &[Param] = &[Param::id("id", "notice_id", "notice")];

pub static ROUTES: &[Route] = &[
    // operations
    post("/v1/operations", Operations, "open")
        .roles(COORDINATOR, "open an operation")
        .creates("operation_id", Some("/v1/operations"))
        .summary("Open a joint operation led by the caller's country"),
    get("/v1/operations/{id}", Operations, "operation")
        .params(OPERATION)
        .summary("An operation as the caller's country sees it (404 when it may not)"),
    post("/v1/operations/{id}/participants", Operations, "add_participant")
        .params(OPERATION)
        .roles(COORDINATOR, "invite a country")
        .summary("Invite a country into the operation (lead coordinator)"),
    delete(
        "/v1/operations/{id}/participants/{country}",
        Operations,
        "remove_participant",
    )
    .params(&[
        Param::id("id", "operation_id", "operation"),
        Param::text("country", "country"),
    ])
    .roles(COORDINATOR, "remove a country")
    .summary("Remove a participant without open tasks (lead coordinator)"),
    post("/v1/operations/{id}/tasks", Operations, "assign_task")
        .params(OPERATION)
        .roles(COORDINATOR, "assign a task")
        .creates("task_id", None)
        .summary("Task a participating country (lead coordinator); `id` in the answer is the task's"),
    post(
        "/v1/operations/{id}/tasks/{task}/status",
        Operations,
        "update_task_status",
    )
    .params(&[
        Param::id("id", "operation_id", "operation"),
        Param::id("task", "task_id", "task"),
    ])
    .roles(LIAISON, "change a task's status")
    .summary("Accept, decline, start or complete a task of the caller's country"),
    post("/v1/operations/{id}/close", Operations, "close")
        .params(OPERATION)
        .roles(COORDINATOR, "close an operation")
        .summary("Close the operation with its outcome (lead coordinator)"),
    // intel
    post("/v1/operations/{id}/leads", Intel, "post_lead")
        .params(OPERATION)
        .roles(LIAISON, "post a lead")
        .creates("lead_id", Some("/v1/leads"))
        .summary("Post a lead to an operation the caller's country takes part in"),
    post("/v1/operations/{id}/arrests", Intel, "report_arrest")
        .params(OPERATION)
        .roles(LIAISON, "report an arrest")
        .creates("arrest_id", Some("/v1/arrests"))
        .summary("Report an arrest in an operation the caller's country takes part in"),
    get("/v1/leads/{id}", Intel, "lead")
        .params(&[Param::id("id", "id", "lead")])
        .with(&[("kind", "lead")])
        .summary("A lead as the caller's country may see it"),
    post("/v1/leads/{id}/amend", Intel, "amend_lead")
        .params(LEAD)
        .roles(LIAISON, "amend a lead")
        .summary("Amend a lead of the caller's country, with a reason"),
    post("/v1/leads/{id}/retract", Intel, "retract_lead")
        .params(LEAD)
        .roles(LIAISON, "retract a lead")
        .summary("Retract a lead of the caller's country; it stays in history"),
    get("/v1/arrests/{id}", Intel, "arrest")
        .params(&[Param::id("id", "id", "arrest")])
        .with(&[("kind", "arrest")])
        .summary("An arrest as the caller's country may see it"),
    post("/v1/notices", Intel, "request_notice")
        .roles(LIAISON, "request a notice")
        .creates("notice_id", Some("/v1/notices"))
        .summary("Request a colour notice (or, with `recipients`, a diffusion), published once a reviewer approves it"),
    get("/v1/notices/{id}", Intel, "notice")
        .params(&[Param::id("id", "id", "notice")])
        .with(&[("kind", "notice")])
        .summary("A notice as the caller's country may see it"),
    post("/v1/notices/{id}/review", Intel, "review_notice")
        .params(NOTICE)
        .roles(REVIEWER, "review a notice")
        .summary("Approve (publish) or reject a notice request, recording the compliance grounds checked"),
    post("/v1/notices/{id}/cancel", Intel, "cancel_notice")
        .params(NOTICE)
        .roles(LIAISON_OR_REVIEWER, "cancel a notice")
        .summary("Cancel a notice (requesting country or a reviewer); it is never deleted"),
    // crisis
    post("/v1/crises", Crisis, "declare_crisis")
        .roles(LIAISON, "declare a crisis")
        .creates("crisis_id", Some("/v1/crises"))
        .summary("Declare a crisis in the caller's country"),
    get("/v1/crises/{id}", Crisis, "crisis")
        .params(CRISIS)
        .summary("A crisis with its sitreps (every country may see it)"),
    post("/v1/crises/{id}/sitreps", Crisis, "post_sitrep")
        .params(CRISIS)
        .roles(LIAISON, "act on a crisis")
        .creates("sitrep_id", None)
        .summary(
            "A situation report, by the affected country or one with a team there; `id` in the answer is the sitrep's",
        ),
    post("/v1/crises/{id}/assistance-requests", Crisis, "request_assistance")
        .params(CRISIS)
        .roles(LIAISON, "act on a crisis")
        .creates("request_id", None)
        .summary("Ask for help (affected country); `id` in the answer is the request's"),
    post("/v1/crises/{id}/escalate", Crisis, "escalate")
        .params(CRISIS)
        .roles(LIAISON, "act on a crisis")
        .summary("Raise the severity (affected country)"),
    post("/v1/crises/{id}/deescalate", Crisis, "deescalate")
        .params(CRISIS)
        .roles(LIAISON, "act on a crisis")
        .summary("Lower the severity (affected country)"),
    post("/v1/crises/{id}/close", Crisis, "close_crisis")
        .params(CRISIS)
        .roles(LIAISON, "act on a crisis")
        .summary("Close the crisis with a summary (affected country); its deployments are then asked to stand down"),
    // deployments; the stand-down after a crisis closes is the service's
    // own choreography, not a route
    post("/v1/deployments", Deployments, "request_deployment")
        .roles(LIAISON, "request a deployment")
        .creates("deployment_id", Some("/v1/deployments"))
        .summary("Offer a team to a host country, for an open crisis there or an open operation"),
    get("/v1/deployments/{id}", Deployments, "deployment")
        .params(DEPLOYMENT)
        .summary("A deployment (host and contributing countries, auditors)"),
    post("/v1/deployments/{id}/approve", Deployments, "approve_deployment")
        .params(DEPLOYMENT)
        .roles(LIAISON, "act on a deployment")
        .summary("The host country consents (no team lands without it)"),
    post("/v1/deployments/{id}/decline", Deployments, "decline_deployment")
        .params(DEPLOYMENT)
        .roles(LIAISON, "act on a deployment")
        .summary("The host country declines, with a reason"),
    post("/v1/deployments/{id}/arrive", Deployments, "mark_arrived")
        .params(DEPLOYMENT)
        .roles(LIAISON, "act on a deployment")
        .summary("The team has arrived (host or contributing country)"),
    post("/v1/deployments/{id}/end", Deployments, "end_deployment")
        .params(DEPLOYMENT)
        .roles(LIAISON, "act on a deployment")
        .summary("The deployment ends, with a report"),
    post("/v1/deployments/{id}/recall", Deployments, "recall")
        .params(DEPLOYMENT)
        .roles(LIAISON, "act on a deployment")
        .summary("A contributing country recalls its team, with a reason"),
];

#[cfg(test)]
mod tests {
    use std::collections::BTreeSet;

    use serde_json::Value;

    use super::*;

    fn template_params(path: &str) -> Vec<&str> {
        path.split('/')
            .filter_map(|s| s.strip_prefix('{').and_then(|s| s.strip_suffix('}')))
            .collect()
    }

    fn schema(route: &Route) -> Value {
        let name = route.schema();
        let text = concord_bus::schema::text(&name).unwrap_or_else(|| panic!("{name}: no such schema"));
        serde_json::from_str(text).unwrap_or_else(|e| panic!("{name}: {e}"))
    }

    #[test]
    fn each_method_and_path_is_one_row() {
        let mut seen = BTreeSet::new();
        for r in ROUTES {
            assert!(
                seen.insert((r.path, r.method.as_str())),
                "{} {} twice",
                r.method.as_str(),
                r.path
            );
        }
    }

    #[test]
    fn params_are_the_path_templates() {
        for r in ROUTES {
            let declared: Vec<&str> = r.params.iter().map(|p| p.name).collect();
            assert_eq!(declared, template_params(r.path), "{}", r.path);
        }
    }

    #[test]
    fn commands_are_guarded_and_creations_minted() {
        for r in ROUTES {
            let id = r.operation_id();
            assert!(!r.summary.is_empty(), "{id}: no summary");
            match r.action {
                Action::Command(c) => {
                    assert_ne!(r.method, Method::Get, "{id}: a GET must be safe");
                    assert!(!c.roles.is_empty() && !c.may_not.is_empty(), "{id}: no roles");
                    let created = c.status == StatusCode::CREATED;
                    assert!(created || c.status == StatusCode::OK, "{id}: {}", c.status);
                    assert_eq!(created, c.mints.is_some(), "{id}: a creation mints its id");
                    assert!(c.location.is_none() || created, "{id}: Location without a creation");
                }
                Action::Query(_) => assert_eq!(r.method, Method::Get, "{id}: a query is a GET"),
            }
        }
    }

    /// Every field a row fills is one its schema defines: a misspelt field
    /// would otherwise be refused by the service on every request.
    #[test]
    fn supplied_fields_are_in_the_schemas() {
        for r in ROUTES {
            let s = schema(r);
            let props = s["properties"].as_object().expect("properties");
            let mut fields = r.supplied();
            if let Action::Query(q) = r.action {
                fields.extend(q.with.iter().map(|(k, _)| *k));
                fields.extend(["country", "role"]);
            }
            for f in fields {
                assert!(props.contains_key(f), "{}: {f} not in {}", r.operation_id(), r.schema());
            }
        }
    }

    #[test]
    fn operation_ids_are_unique() {
        let mut seen = BTreeSet::new();
        for r in ROUTES {
            assert!(seen.insert(r.operation_id()), "{} twice", r.operation_id());
        }
    }
}
