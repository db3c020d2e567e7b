//! Black-box: the `/openapi.json` that `concord up` serves is a valid
//! OpenAPI 3.1 document by a standard validator (PyPI
//! `openapi-spec-validator`, pinned in requirements-test.txt).

mod common;

use std::process::Command;

use common::{free_addr, up};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_served_api_description_validates() {
    let dir = tempfile::TempDir::new().expect("tmp");
    let sys = up(&dir.path().join("data"), &free_addr());
    let r = sys.call("GET", "/openapi.json", None, &[], None).await;
    assert_eq!(r.status, 200);
    let doc = r.json();
    assert!(
        doc["openapi"].as_str().is_some_and(|v| v.starts_with("3.1")),
        "{}",
        doc["openapi"]
    );
    let file = dir.path().join("openapi.json");
    std::fs::write(&file, &r.body).expect("write");
    let out = Command::new(concord_testkit::test_python())
        .args(["-m", "openapi_spec_validator"])
        .arg(&file)
        .output()
        .expect("run openapi-spec-validator");
    let said = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        out.status.success(),
        "openapi-spec-validator refused /openapi.json:\n{said}"
    );
}
