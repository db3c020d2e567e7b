//! What a log stores matches `schemas/envelope/event.schema.json` (as the
//! binary embeds it, with the shared definitions it refers to).

use concord_bus::schema::{self, Schemas};
use concord_core::{Actor, CountryCode, ExpectedVersion, Role, Service};
use concord_log::{AppendRequest, Fingerprint, Log, NewEvent};
use serde_json::json;

#[tokio::test]
async fn stored_envelopes_match_the_envelope_schema() {
    let text = schema::text("envelope/event").expect("the envelope schema is embedded");
    let schemas = Schemas::compile([("envelope/event", text)]).expect("compiles");
    let dir = tempfile::TempDir::new().expect("tmp");
    let log = Log::open(dir.path(), Service::Operations).expect("open");
    let actor = Actor {
        sub: "fr-coordinator".into(),
        role: Role::Coordinator,
        country: CountryCode::parse("FR").expect("FR"),
    };
    log.append(AppendRequest {
        stream: "operation-1".into(),
        expected: ExpectedVersion::NoStream,
        command_id: "c1".into(),
        fingerprint: Fingerprint::new("open", "operation-1", &json!({}), &actor).expect("canonical"),
        actor,
        correlation_id: "r1".into(),
        causation_id: Some("evt-9".into()),
        observed_hlc: None,
        events: (0..2)
            .map(|i| NewEvent {
                event_type: "operation.opened".into(),
                schema_version: 1,
                data: json!({"n": i}),
            })
            .collect(),
    })
    .await
    .expect("append");
    let events = log.read_from(1, 10).expect("read").events;
    assert_eq!(events.len(), 2);
    for raw in &events {
        let v: serde_json::Value = serde_json::from_slice(&raw.bytes).expect("json");
        assert_eq!(schemas.check("envelope/event", &v), Ok(Ok(())), "{v}");
    }
    let mut bad: serde_json::Value = serde_json::from_slice(&events[0].bytes).expect("json");
    bad["seq"] = json!(0);
    assert!(
        schemas.check("envelope/event", &bad).expect("known").is_err(),
        "the schema must refuse seq 0"
    );
}
