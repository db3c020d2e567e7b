//! JSON Schema validation at the service boundary: every schema compiled
//! once at start, every input checked before anything else looks at it.
//! A failure names the instance path and the schema path that failed.

use std::collections::HashMap;

use serde_json::Value;

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
                .build(&schema)
                .map_err(|e| err(e.to_string()))?;
            compiled.insert(name.to_owned(), v);
        }
        Ok(Schemas { compiled })
    }

    pub fn names(&self) -> impl Iterator<Item = &str> {
        self.compiled.keys().map(String::as_str)
    }

    /// Validates `instance`; the violations, at most a few, in order.
    pub fn check(&self, name: &str, instance: &Value) -> Result<Result<(), Vec<Violation>>, SchemaError> {
        /// Enough to fix the input; a hostile body cannot make the reply huge.
        const VIOLATIONS_MAX: usize = 5;
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
