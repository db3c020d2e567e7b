//! Checking JSON Schemas in tests: the schema files of a directory, and
//! assertions that name the data, the schema and the rule that refused it.

use std::collections::BTreeMap;

use serde_json::Value;

use concord_bus::schema::{Schemas, Violation};

/// Every `<name>.schema.json` of `dir`, by name; any other file panics
/// (it does not belong there).
pub fn schema_files(dir: &str) -> BTreeMap<String, String> {
    let mut files = BTreeMap::new();
    for entry in std::fs::read_dir(dir).unwrap_or_else(|e| panic!("{dir}: {e}")) {
        let path = entry.unwrap_or_else(|e| panic!("{dir}: {e}")).path();
        let file = path.file_name().and_then(|n| n.to_str()).unwrap_or_default().to_owned();
        let name = file
            .strip_suffix(".schema.json")
            .unwrap_or_else(|| panic!("{file}: only <name>.schema.json files belong in {dir}"));
        let text = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{file}: {e}"));
        files.insert(name.to_owned(), text);
    }
    files
}

/// The schemas of `dir`, compiled, by name.
pub fn compile_dir(dir: &str) -> Schemas {
    let files = schema_files(dir);
    Schemas::compile(files.iter().map(|(n, t)| (n.as_str(), t.as_str()))).unwrap_or_else(|e| panic!("{dir}: {e}"))
}

pub fn violations(schemas: &Schemas, name: &str, data: &Value) -> Vec<Violation> {
    match schemas.check(name, data).unwrap_or_else(|e| panic!("{name}: {e}")) {
        Ok(()) => Vec::new(),
        Err(v) => v,
    }
}

pub fn assert_valid(schemas: &Schemas, name: &str, data: &Value) {
    let v = violations(schemas, name, data);
    assert!(v.is_empty(), "{name} {data} refused: {v:#?}");
}

/// Refused, and for the schema rule `keyword` (the last segment of a
/// violation's schema path, e.g. `required`, `maxLength`).
pub fn assert_refused(schemas: &Schemas, name: &str, data: &Value, keyword: &str) {
    let v = violations(schemas, name, data);
    assert!(!v.is_empty(), "{name} {data} accepted");
    assert!(
        v.iter().any(|v| v.schema_path.ends_with(&format!("/{keyword}"))),
        "{name} {data} refused, but not by {keyword}: {v:#?}"
    );
}
