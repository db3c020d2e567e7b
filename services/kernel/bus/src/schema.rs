//! JSON Schema validation at the service boundary: every schema compiled
//! once at start, every input checked before anything else looks at it.
//! A failure names the instance path and the schema path that failed.
//!
//! Every schema file of the repository's `schemas/` is embedded in the
//! binary ([`FILES`]) and named by its path without `.schema.json`
//! (`commands/operations/open`); names are built here and nowhere else.
//! A schema may `$ref` another by its `$id`
//! (`https://concord.example/schemas/<name>.schema.json`, e.g. the shared
//! `$defs` of `common`): references resolve from the embedded files, never
//! from the network.

use std::collections::HashMap;

use concord_core::envelope::Service;
use serde_json::Value;

include!(concat!(env!("OUT_DIR"), "/schema_files.rs"));

/// The `$id` prefix every schema file's `$id` starts with.
pub const ID_BASE: &str = "https://concord.example/schemas/";
/// The command envelope schema, shared by every service.
pub const COMMAND_ENVELOPE: &str = "envelope/command";

/// `commands/<service>/<command>`
pub fn command_name(service: Service, command: &str) -> String {
    format!("commands/{service}/{command}")
}

/// `events/<service>/<event type>`
pub fn event_name(service: Service, event_type: &str) -> String {
    format!("events/{service}/{event_type}")
}

/// `queries/<service>/<query>`
pub fn query_name(service: Service, query: &str) -> String {
    format!("queries/{service}/{query}")
}

/// The text of the embedded schema `name`.
pub fn text(name: &str) -> Option<&'static str> {
    FILES.iter().find(|(n, _)| *n == name).map(|(_, t)| *t)
}

/// Serves `$ref`s to `ID_BASE…` from the embedded files.
struct Embedded;

impl jsonschema::Retrieve for Embedded {
    fn retrieve(&self, uri: &jsonschema::Uri<String>) -> Result<Value, Box<dyn std::error::Error + Send + Sync>> {
        let name = uri
            .as_str()
            .strip_prefix(ID_BASE)
            .and_then(|rest| rest.strip_suffix(".schema.json"))
            .ok_or_else(|| format!("{uri} is not a Concord schema; only {ID_BASE}… is resolved"))?;
        let text = text(name).ok_or_else(|| format!("no schema named {name}"))?;
        Ok(serde_json::from_str(text)?)
    }
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SchemaError {
    #[error("schema {name} does not compile: {reason}")]
    Compile { name: String, reason: String },
    #[error("no schema named {0}")]
    Unknown(String),
}

/// One rejected input: where in the input, and which schema rule.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct Violation {
    pub instance_path: String,
    pub schema_path: String,
    pub message: String,
}

impl std::fmt::Display for Violation {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let at = if self.instance_path.is_empty() {
            "/"
        } else {
            &self.instance_path
        };
        write!(f, "{at}: {} (schema {})", self.message, self.schema_path)
    }
}

/// Most violations one refusal names: enough to fix the input; a hostile
/// body cannot make the reply huge (docs/limits.md).
pub const VIOLATIONS_MAX: usize = 5;

/// Compiled schemas by name (e.g. `envelope/command`, `commands/operations/open`).
pub struct Schemas {
    compiled: HashMap<String, jsonschema::Validator>,
}

impl Schemas {
    /// Compiles every `(name, schema text)`; any failure is fatal at start.
    pub fn compile<'a>(sources: impl IntoIterator<Item = (&'a str, &'a str)>) -> Result<Schemas, SchemaError> {
        let mut compiled = HashMap::new();
        for (name, text) in sources {
            let err = |reason: String| SchemaError::Compile {
                name: name.to_owned(),
                reason,
            };
            let schema: Value = serde_json::from_str(text).map_err(|e| err(e.to_string()))?;
            let v = jsonschema::draft202012::options()
                .should_validate_formats(true)
                .with_retriever(Embedded)
                .build(&schema)
                .map_err(|e| err(e.to_string()))?;
            compiled.insert(name.to_owned(), v);
        }
        Ok(Schemas { compiled })
    }

    /// The envelope, and the schema of each of a service's commands,
    /// queries and event types (each must exist).
    pub fn for_service(
        service: Service,
        commands: &[&str],
        queries: &[&str],
        events: &[&str],
    ) -> Result<Schemas, SchemaError> {
        let names: Vec<String> = std::iter::once(COMMAND_ENVELOPE.to_owned())
            .chain(commands.iter().map(|c| command_name(service, c)))
            .chain(queries.iter().map(|q| query_name(service, q)))
            .chain(events.iter().map(|e| event_name(service, e)))
            .collect();
        let mut sources = Vec::with_capacity(names.len());
        for name in &names {
            let text = text(name).ok_or_else(|| SchemaError::Unknown(name.clone()))?;
            sources.push((name.as_str(), text));
        }
        Schemas::compile(sources)
    }

    pub fn names(&self) -> impl Iterator<Item = &str> {
        self.compiled.keys().map(String::as_str)
    }

    /// Validates `instance`; the violations, at most [`VIOLATIONS_MAX`],
    /// in order.
    pub fn check(&self, name: &str, instance: &Value) -> Result<Result<(), Vec<Violation>>, SchemaError> {
        let v = self
            .compiled
            .get(name)
            .ok_or_else(|| SchemaError::Unknown(name.to_owned()))?;
        let errors: Vec<Violation> = v
            .iter_errors(instance)
            .take(VIOLATIONS_MAX)
            .map(|e| Violation {
                instance_path: e.instance_path().to_string(),
                schema_path: e.schema_path().to_string(),
                message: e.to_string(),
            })
            .collect();
        Ok(if errors.is_empty() { Ok(()) } else { Err(errors) })
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    #[test]
    fn violations_name_the_paths() {
        let s = Schemas::compile([(
            "t",
            r#"{"type":"object","required":["n"],"properties":{"n":{"type":"integer","minimum":1}},"additionalProperties":false}"#,
        )])
        .expect("compiles");
        assert_eq!(s.check("t", &json!({"n": 2})), Ok(Ok(())));
        let v = s.check("t", &json!({"n": 0})).expect("known").expect_err("invalid");
        assert_eq!(v[0].instance_path, "/n");
        assert!(v[0].schema_path.ends_with("/minimum"), "{}", v[0].schema_path);
        assert!(s.check("nope", &json!({})).is_err());
        assert!(Schemas::compile([("bad", "{\"type\": 3}")]).is_err());
    }
}
