//! Commands and events as they travel and are stored: read from their name
//! and data, refused when they do not fit precisely, and matched by the
//! JSON Schemas the runtime checks them against.

use std::collections::BTreeSet;

use concord_core::reply::ErrorCode;
use concord_core::tagged::variant_names;
use concord_testkit::schemas::{assert_valid, compile_dir, schema_files, violations};
use serde_json::json;

use super::*;

const COMMAND_SCHEMAS: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/../../schemas/commands/intel");
const QUERY_SCHEMAS: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/../../schemas/queries/intel");

fn names(v: &Value) -> BTreeSet<String> {
    match v {
        Value::Object(o) => o.keys().cloned().collect(),
        Value::Array(a) => a.iter().filter_map(Value::as_str).map(str::to_owned).collect(),
        _ => panic!("neither object nor array: {v}"),
    }
}
fn set(names: &[&str]) -> BTreeSet<String> {
    names.iter().map(|n| (*n).to_owned()).collect()
}

// ------------------------------------------------------------ commands

/// The command names, exactly as clients send them: the last token of
/// `concord.cmd.intel.<name>`.
const COMMAND_NAMES: [&str; 7] = [
    "post_lead",
    "amend_lead",
    "retract_lead",
    "report_arrest",
    "request_notice",
    "review_notice",
    "cancel_notice",
];

/// A body with every field, in the order of `COMMAND_NAMES`.
fn full_bodies() -> [Value; 7] {
    let subject = json!({"kind": "person", "description": "burglar", "name": "Ivan Petrov",
                         "date_of_birth": "1985-04-12", "nationality": "RS"});
    let grading = json!({"reliability": "A", "accuracy": 1});
    [
        json!({"lead_id": LEAD, "operation_id": OP, "summary": "s", "details": "d", "subject": subject,
               "restricted_to": ["FR"], "grading": grading}),
        json!({"lead_id": LEAD, "reason": "r", "summary": "s", "details": "d", "subject": subject,
               "grading": grading}),
        json!({"lead_id": LEAD, "reason": "r"}),
        json!({"arrest_id": ARREST, "operation_id": OP,
               "person": {"name": "Ivan Petrov", "date_of_birth": "1985-04-12", "nationality": "RS"},
               "location_country": "DE", "lead_id": LEAD, "notice_id": NOTICE}),
        json!({"notice_id": NOTICE, "color": "un_special", "subject": subject, "reason": "r", "offence": "o",
               "warrant": "w", "operation_id": OP, "recipients": ["DE"]}),
        json!({"notice_id": NOTICE, "decision": "reject", "reason": "r",
               "grounds": {"not_political": true, "not_military": true, "not_religious": false,
                           "not_racial": true, "facts_support_purpose": true}}),
        json!({"notice_id": NOTICE, "reason": "r"}),
    ]
}

#[test]
fn commands_read_from_their_name_and_data_and_name_their_stream() {
    assert_eq!(variant_names::<Command>(), COMMAND_NAMES, "names clients rely on");
    let streams = [
        format!("lead-{LEAD}"),
        format!("lead-{LEAD}"),
        format!("lead-{LEAD}"),
        format!("arrest-{ARREST}"),
        format!("notice-{NOTICE}"),
        format!("notice-{NOTICE}"),
        format!("notice-{NOTICE}"),
    ];
    for ((name, data), stream) in COMMAND_NAMES.into_iter().zip(full_bodies()).zip(streams) {
        let cmd = parse_command(name, data.clone()).unwrap_or_else(|e| panic!("{name}: {e}"));
        assert_eq!(to_tagged(&cmd).expect("serializes"), (name.to_owned(), data), "{name}");
        assert_eq!(Intel::stream(&cmd), stream);
    }
    // Optional fields may be left out.
    let cmd = parse_command(
        "post_lead",
        json!({"lead_id": LEAD, "operation_id": OP, "summary": "s"}),
    );
    assert_eq!(
        cmd,
        Ok(Command::PostLead(PostLead {
            summary: "s".into(),
            ..post_lead()
        }))
    );
}

#[test]
fn commands_refuse_what_does_not_fit_precisely() {
    for (name, data, contains) in [
        (
            "delete_lead",
            json!({}),
            "unknown variant `delete_lead`, expected one of `post_lead`, `amend_lead`",
        ),
        ("PostLead", json!({}), "unknown variant `PostLead`"),
        (
            "post_lead",
            json!({"lead_id": LEAD, "operation_id": OP, "summary": "s", "sneaky": true}),
            "invalid post_lead command: unknown field `sneaky`",
        ),
        (
            "post_lead",
            json!({"lead_id": LEAD, "summary": "s"}),
            "missing field `operation_id`",
        ),
        ("post_lead", json!(null), "data must be a JSON object, not null"),
        (
            "retract_lead",
            json!([LEAD, "r"]),
            "data must be a JSON object, not an array",
        ),
        (
            "post_lead",
            json!({"lead_id": "42", "operation_id": OP, "summary": "s"}),
            "invalid post_lead command",
        ),
        (
            "post_lead",
            json!({"lead_id": LEAD, "operation_id": OP, "summary": "s", "grading": {"reliability": "A", "accuracy": 5}}),
            "accuracy 5 is not 1, 2, 3 or 4",
        ),
        (
            "post_lead",
            json!({"lead_id": LEAD, "operation_id": OP, "summary": "s", "grading": {"reliability": "A", "accuracy": 0}}),
            "accuracy 0 is not 1, 2, 3 or 4",
        ),
        (
            "post_lead",
            json!({"lead_id": LEAD, "operation_id": OP, "summary": "s", "grading": {"reliability": "D", "accuracy": 1}}),
            "unknown variant `D`",
        ),
        (
            "post_lead",
            json!({"lead_id": LEAD, "operation_id": OP, "summary": "s", "subject": {"kind": "animal", "description": "d"}}),
            "unknown variant `animal`",
        ),
        (
            "post_lead",
            json!({"lead_id": LEAD, "operation_id": OP, "summary": "s", "subject": {"kind": "person", "description": "d", "eyes": "blue"}}),
            "unknown field `eyes`",
        ),
        (
            "post_lead",
            json!({"lead_id": LEAD, "operation_id": OP, "summary": "s", "restricted_to": ["fr"]}),
            "\"fr\" is not an ISO 3166-1",
        ),
        (
            "review_notice",
            json!({"notice_id": NOTICE, "decision": "maybe", "reason": "r", "grounds": ALL_HOLD}),
            "unknown variant `maybe`",
        ),
        (
            "review_notice",
            json!({"notice_id": NOTICE, "decision": "approve", "reason": "r",
                   "grounds": {"not_political": true}}),
            "missing field `not_military`",
        ),
        (
            "review_notice",
            json!({"notice_id": NOTICE, "decision": "approve", "reason": "r",
                   "grounds": {"not_political": "yes", "not_military": true, "not_religious": true,
                               "not_racial": true, "facts_support_purpose": true}}),
            "invalid type: string \"yes\", expected a boolean",
        ),
        ("cancel_notice", json!({"notice_id": NOTICE}), "missing field `reason`"),
        (
            "report_arrest",
            json!({"arrest_id": ARREST, "operation_id": OP, "person": {"name": "n", "alias": "x"}, "location_country": "DE"}),
            "unknown field `alias`",
        ),
    ] {
        match parse_command(name, data) {
            Ok(cmd) => panic!("{name} accepted: {cmd:?}"),
            Err(r) => {
                assert_eq!(r.code(), ErrorCode::Invalid, "{r}");
                assert!(r.to_string().contains(contains), "{r} does not contain {contains:?}");
            }
        }
    }
}

// ------------------------------------------------------------ command schemas

#[test]
fn the_schemas_accept_what_the_commands_accept() {
    let schemas = compile_dir(COMMAND_SCHEMAS);
    for (name, full) in COMMAND_NAMES.into_iter().zip(full_bodies()) {
        assert_valid(&schemas, name, &full);
        let mut more = full.clone();
        more["extra"] = json!(1);
        assert!(!violations(&schemas, name, &more).is_empty(), "{name} with extra");
    }
    for (name, data) in [
        ("post_lead", json!({"lead_id": LEAD, "operation_id": OP, "summary": ""})),
        (
            "post_lead",
            json!({"lead_id": "42", "operation_id": OP, "summary": "s"}),
        ),
        (
            "post_lead",
            json!({"lead_id": LEAD, "operation_id": OP, "summary": "s", "subject": {"kind": "person", "description": "d", "date_of_birth": "12/04/1985"}}),
        ),
        // An amendment changes something.
        ("amend_lead", json!({"lead_id": LEAD, "reason": "r"})),
        (
            "request_notice",
            json!({"notice_id": NOTICE, "color": "crimson", "subject": {"kind": "person", "description": "d"}, "reason": "r"}),
        ),
        (
            "request_notice",
            json!({"notice_id": NOTICE, "color": "blue", "subject": {"kind": "person", "description": "d"}, "reason": "r", "recipients": []}),
        ),
        (
            "report_arrest",
            json!({"arrest_id": ARREST, "operation_id": OP, "person": {"name": "n"}, "location_country": "de"}),
        ),
    ] {
        assert!(!violations(&schemas, name, &data).is_empty(), "{name} accepted {data}");
    }
}

// ------------------------------------------------------------ the get query

#[test]
fn the_get_query_schema_names_the_three_kinds() {
    assert_eq!(variant_names::<Query>(), ["get"]);
    let files = schema_files(QUERY_SCHEMAS);
    assert_eq!(files.keys().collect::<Vec<_>>(), ["get"]);
    let schema: Value = serde_json::from_str(&files["get"]).expect("get schema is JSON");
    assert_eq!(schema["additionalProperties"], false);
    assert_eq!(names(&schema["properties"]), set(&["kind", "id", "country", "role"]));
    assert_eq!(names(&schema["required"]), set(&["kind", "id", "country"]));
    let kinds: Vec<Value> = [Kind::Lead, Kind::Arrest, Kind::Notice]
        .iter()
        .map(|k| json!(k.as_str()))
        .collect();
    assert_eq!(schema["properties"]["kind"]["enum"], json!(kinds));
    let schemas = compile_dir(QUERY_SCHEMAS);
    let ok = json!({"kind": "lead", "id": LEAD, "country": "DE", "role": "auditor"});
    assert_valid(&schemas, "get", &ok);
    let bad = json!({"kind": "operation", "id": LEAD, "country": "DE"});
    assert!(!violations(&schemas, "get", &bad).is_empty());
    // What the schema lets through, the query reads, and it names its stream.
    let query: Query = from_tagged("get", &ok).expect("reads");
    assert_eq!(Intel::query_stream(&query), format!("lead-{LEAD}"));
    for (kind, stream) in [
        ("arrest", format!("arrest-{LEAD}")),
        ("notice", format!("notice-{LEAD}")),
    ] {
        let q: Query = from_tagged("get", &json!({"kind": kind, "id": LEAD, "country": "DE"})).expect("reads");
        assert_eq!(Intel::query_stream(&q), stream);
    }
}

// ------------------------------------------------------------ events as stored

fn every_kind_of_event() -> Vec<Event> {
    vec![
        posted("DE", &[]),
        Event::LeadPosted(LeadPosted {
            details: Some("d\n\"quoted\"".into()),
            subject: Some(person_subject()),
            grading: Some(Grading {
                reliability: Reliability::X,
                accuracy: Accuracy::try_from(4).expect("4 is an accuracy"),
            }),
            ..match posted("DE", &["DE", "FR"]) {
                Event::LeadPosted(e) => e,
                _ => unreachable!(),
            }
        }),
        amended(),
        Event::LeadAmended(LeadAmended {
            reason: "r".into(),
            summary: Some("s".into()),
            details: Some(String::new()),
            subject: Some(object_subject()),
            grading: Some(Grading {
                reliability: Reliability::C,
                accuracy: Accuracy::try_from(3).expect("3 is an accuracy"),
            }),
            amended_at: LATER.into(),
        }),
        retracted(),
        reported("DE"),
        Event::ArrestReported(ArrestReported {
            lead_id: None,
            notice_id: None,
            ..match reported("ES") {
                Event::ArrestReported(e) => e,
                _ => unreachable!(),
            }
        }),
        requested("MC", None),
        requested("MC", Some(&["DE", "RS"])),
        published(),
        rejected(),
        cancelled(&reviewer("GS")),
    ]
}

/// The event types, exactly as stored in existing logs.
const EVENT_TYPES: [&str; 8] = [
    "lead.posted",
    "lead.amended",
    "lead.retracted",
    "arrest.reported",
    "notice.requested",
    "notice.published",
    "notice.rejected",
    "notice.cancelled",
];

fn data(e: &Event) -> Value {
    to_tagged(e).expect("events serialize").1
}

#[test]
fn every_event_round_trips_through_type_and_data() {
    assert_eq!(variant_names::<Event>(), EVENT_TYPES, "types existing logs hold");
    let events = every_kind_of_event();
    let kinds: BTreeSet<String> = events.iter().map(crate::tag_of).collect();
    assert_eq!(kinds, set(&EVENT_TYPES), "every kind is covered");
    for e in events {
        let (t, data) = to_tagged(&e).expect("serializes");
        assert!(data.is_object(), "{data}");
        assert_eq!(from_tagged::<Event>(&t, &data), Ok(e));
    }
}

#[test]
fn stored_data_has_the_documented_shape() {
    assert_eq!(
        data(&posted("DE", &["DE", "FR"])),
        json!({
            "lead_id": LEAD,
            "operation_id": OP,
            "owner_country": "DE",
            "summary": "fingerprints at the jeweller's",
            "details": null,
            "subject": null,
            "restricted_to": ["DE", "FR"],
            "grading": null,
            "posted_by": "de-liaison",
            "posted_at": NOW,
        })
    );
    // Only what changed.
    assert_eq!(
        data(&amended()),
        json!({"reason": "AFIS match", "summary": "fingerprints matched", "amended_at": NOW})
    );
    assert_eq!(
        data(&retracted()),
        json!({"reason": "wrong prints", "retracted_at": NOW})
    );
    let requested_data = data(&requested("MC", None));
    assert_eq!(requested_data["recipients"], Value::Null);
    assert_eq!(requested_data["operation_id"], Value::Null);
    assert_eq!(requested_data["color"], "red");
    assert_eq!(requested_data["requesting_country"], "MC");
    assert_eq!(requested_data["requested_by"], "mc-liaison");
    assert_eq!(
        names(&requested_data),
        set(&[
            "notice_id",
            "color",
            "subject",
            "reason",
            "offence",
            "warrant",
            "operation_id",
            "recipients",
            "requesting_country",
            "requested_by",
            "requested_at"
        ])
    );
    assert_eq!(
        names(&data(&published())),
        set(&["reviewed_by", "reviewer_country", "reason", "grounds", "published_at"])
    );
    assert_eq!(
        names(&data(&rejected())),
        set(&["reviewed_by", "reviewer_country", "reason", "grounds", "rejected_at"])
    );
    assert_eq!(
        data(&cancelled(&liaison("MC"))),
        json!({"reason": "arrested", "cancelled_by": "mc-liaison", "cancelled_at": NOW})
    );
    assert_eq!(
        names(&data(&reported("DE"))),
        set(&[
            "arrest_id",
            "operation_id",
            "person",
            "location_country",
            "lead_id",
            "notice_id",
            "reporting_country",
            "reported_by",
            "reported_at"
        ])
    );
}

#[test]
fn stored_events_refuse_unknown_types_and_malformed_data() {
    let e = from_tagged::<Event>("lead.deleted", &json!({}));
    assert!(e.is_err_and(|e| e.0.contains("unknown variant `lead.deleted`")));
    for (t, data, contains) in [
        (
            "lead.retracted",
            json!({"reason": "r", "retracted_at": NOW, "extra": "x"}),
            "unknown field `extra`",
        ),
        ("lead.retracted", json!({"reason": "r"}), "missing field `retracted_at`"),
        (
            "notice.cancelled",
            json!(["r"]),
            "data must be a JSON object, not an array",
        ),
        (
            "notice.published",
            json!({"reviewed_by": "x", "reviewer_country": "XX", "reason": "r", "grounds": ALL_HOLD, "published_at": NOW}),
            "\"XX\" is not an ISO 3166-1",
        ),
        (
            "lead.amended",
            json!({"reason": "r", "grading": {"reliability": "A", "accuracy": 9}, "amended_at": NOW}),
            "accuracy 9 is not 1, 2, 3 or 4",
        ),
    ] {
        match from_tagged::<Event>(t, &data) {
            Ok(e) => panic!("{t} accepted: {e:?}"),
            Err(msg) => assert!(msg.0.contains(contains), "{msg} does not contain {contains:?}"),
        }
    }
}

#[test]
fn evolve_refuses_what_cannot_follow() {
    let mut retracted_lead = lead();
    retracted_lead.push(retracted());
    for (history, next, contains) in [
        (vec![], amended(), "lead.amended on an empty stream"),
        (vec![], published(), "notice.published on an empty stream"),
        (lead(), posted("DE", &[]), "lead.posted on a lead that is active"),
        (lead(), published(), "notice.published on a lead that is active"),
        (
            retracted_lead.clone(),
            amended(),
            "lead.amended on a lead that is retracted",
        ),
        (
            retracted_lead,
            retracted(),
            "lead.retracted on a lead that is retracted",
        ),
        (
            vec![reported("DE")],
            reported("DE"),
            "arrest.reported on an arrest already reported",
        ),
        (vec![reported("DE")], retracted(), "lead.retracted on an arrest"),
        (
            notice(NoticeStatus::Published),
            rejected(),
            "notice.rejected on a notice that is published",
        ),
        (
            notice(NoticeStatus::Rejected),
            published(),
            "notice.published on a notice that is rejected",
        ),
        (
            notice(NoticeStatus::Rejected),
            cancelled(&liaison("MC")),
            "notice.cancelled on a notice that is rejected",
        ),
        (
            notice(NoticeStatus::Cancelled),
            cancelled(&liaison("MC")),
            "notice.cancelled on a notice that is cancelled",
        ),
        (
            notice(NoticeStatus::Requested),
            requested("MC", None),
            "notice.requested on a notice that is requested",
        ),
    ] {
        let state = replay(&history);
        match Intel::evolve(state, &next) {
            Ok(s) => panic!("{} accepted: {s:?}", crate::tag_of(&next)),
            Err(msg) => {
                assert!(msg.starts_with("corrupt intel stream: "), "{msg}");
                assert!(msg.contains(contains), "{msg} does not contain {contains:?}");
            }
        }
    }
}

#[test]
#[should_panic(expected = "corrupt intel stream: lead.retracted on an empty stream")]
fn evolve_panics_on_a_corrupt_stream() {
    let _ = replay(&[retracted()]);
}
