//! The JSON Schemas of the intel events (`schemas/events/intel`) against
//! the events `decide` really produces: one schema per event type and no
//! other, every real event's `data` valid (optional fields given and left
//! out), and what the Rust types and `decide` refuse refused by the schemas
//! too. Pure: no NATS, no log; the operations view is folded from events
//! the operations domain really produces.

use std::collections::{BTreeMap, BTreeSet};

use concord_bus::schema::Schemas;
use concord_core::{Actor, CountryCode, Role};
use concord_intel::domain::{
    Accuracy, AmendLead, CancelNotice, Color, Command, Ctx, Decision, EVENT_TYPES, Event, Grading, Grounds,
    OperationsView, Person, PostLead, Reliability, ReportArrest, RequestNotice, RetractLead, ReviewNotice, State,
    Subject, SubjectKind, decide, try_evolve,
};
use concord_testkit::schemas::{assert_refused, assert_valid, violations};
use serde_json::{Value, json};
use uuid::Uuid;

const SCHEMA_DIR: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/../../schemas/events/intel");
const SUFFIX: &str = ".schema.json";

/// FR leads; DE, ES and MC take part.
const OP: Uuid = Uuid::from_u128(0x019a_b0c4_5e00_7000_8000_0000_0000_00aa);
/// The runtime's clock: RFC 3339 UTC with microseconds.
const NOW: &str = "2026-11-23T09:30:00.000000Z";

// ------------------------------------------------------------ schemas

/// Every `<type>.schema.json` of the directory, by event type.
fn schema_files() -> BTreeMap<String, String> {
    concord_testkit::schemas::schema_files(SCHEMA_DIR)
}

fn schemas() -> Schemas {
    let files = schema_files();
    Schemas::compile(files.iter().map(|(t, text)| (t.as_str(), text.as_str()))).expect("every schema compiles")
}

/// `data` with the member at JSON pointer `at` set to `value` (or removed,
/// for `None`); its parent must exist.
fn with(data: &Value, at: &str, value: Option<Value>) -> Value {
    let mut data = data.clone();
    let (parent, key) = at.rsplit_once('/').expect("a JSON pointer");
    let object = data
        .pointer_mut(parent)
        .and_then(Value::as_object_mut)
        .unwrap_or_else(|| panic!("{parent} is not an object"));
    match value {
        Some(v) => object.insert(key.to_owned(), v),
        None => object.remove(key),
    };
    data
}

// ------------------------------------------------------------ a story through decide

fn cc(code: &str) -> CountryCode {
    CountryCode::parse(code).expect("test country codes are real")
}
fn ccs(codes: &[&str]) -> Vec<CountryCode> {
    codes.iter().map(|c| cc(c)).collect()
}

fn actor(role: Role, country: &str) -> Actor {
    Actor {
        sub: format!("{}-{}", country.to_lowercase(), role.as_str()),
        role,
        country: cc(country),
    }
}
fn liaison(country: &str) -> Actor {
    actor(Role::Liaison, country)
}
fn reviewer(country: &str) -> Actor {
    actor(Role::Reviewer, country)
}

fn id(kind: u128, n: u128) -> Uuid {
    Uuid::from_u128(0x019a_b0c4_5e00_7000_8000_0000_0000_0000 + (kind << 16) + n)
}
fn lead_id(n: u128) -> Uuid {
    id(1, n)
}
fn arrest_id(n: u128) -> Uuid {
    id(2, n)
}
fn notice_id(n: u128) -> Uuid {
    id(3, n)
}

/// What intel knows of `OP`, folded from the events the operations domain
/// decides, as the service folds them from the operations log.
fn ops() -> OperationsView {
    use concord_operations::domain as operations;
    let ctx = operations::Ctx {
        actor: actor(Role::Coordinator, "FR"),
        operation_id: OP,
        now: NOW.into(),
    };
    let open = operations::Command::Open(operations::Open {
        title: "Opération Rocher".into(),
        objective: "identify and arrest the burglar".into(),
        lead_country: cc("FR"),
        countries: ccs(&["DE", "ES", "MC"]),
    });
    let events = operations::decide(&None, &open, &ctx).expect("FR opens the operation");
    let mut view = OperationsView::default();
    for e in events {
        view.apply(&format!("operation-{OP}"), e.event_type(), &e.data())
            .expect("the view folds operations events");
    }
    view
}

/// One intel stream (a lead, an arrest or a notice), driven through
/// `decide` and `try_evolve` as the service drives it.
struct Stream<'a> {
    ops: &'a OperationsView,
    state: State,
    events: Vec<Event>,
}

impl<'a> Stream<'a> {
    fn new(ops: &'a OperationsView) -> Stream<'a> {
        Stream {
            ops,
            state: State::default(),
            events: Vec::new(),
        }
    }

    fn decide(&self, cmd: &Command, actor: Actor) -> Result<Vec<Event>, String> {
        let ctx = Ctx { actor, now: NOW.into() };
        decide(&self.state, cmd, self.ops, &ctx).map_err(|r| r.to_string())
    }

    /// Decides `cmd`, which must be accepted, and applies its events.
    fn run(&mut self, cmd: Command, actor: Actor) -> &mut Stream<'a> {
        let events = self
            .decide(&cmd, actor)
            .unwrap_or_else(|r| panic!("{} refused: {r}", cmd.name()));
        for e in events {
            self.state = try_evolve(std::mem::take(&mut self.state), &e).unwrap_or_else(|why| panic!("{why}"));
            self.events.push(e);
        }
        self
    }
}

fn grading(reliability: Reliability, accuracy: u8) -> Grading {
    Grading {
        reliability,
        accuracy: Accuracy::try_from(accuracy).expect("1 to 4"),
    }
}
/// A person with everything known.
fn person_subject() -> Subject {
    Subject {
        kind: SubjectKind::Person,
        description: "burglar, scar on the left hand".into(),
        name: Some("Ivan Petrov".into()),
        date_of_birth: Some("1985-04-12".into()),
        nationality: Some(cc("RS")),
    }
}
/// A person of whom only a description is known.
fn unknown_person() -> Subject {
    Subject {
        kind: SubjectKind::Person,
        description: "tall man seen at the jeweller's".into(),
        name: None,
        date_of_birth: None,
        nationality: None,
    }
}
fn object_subject(name: Option<&str>) -> Subject {
    Subject {
        kind: SubjectKind::Object,
        description: "stolen watch".into(),
        name: name.map(Into::into),
        date_of_birth: None,
        nationality: None,
    }
}

fn post(n: u128, details: Option<&str>, subject: Option<Subject>, restricted_to: Option<&[&str]>) -> PostLead {
    PostLead {
        lead_id: lead_id(n),
        operation_id: OP,
        summary: "fingerprints at the jeweller's".into(),
        details: details.map(Into::into),
        subject,
        restricted_to: restricted_to.map(ccs),
        grading: None,
    }
}
fn amend(n: u128) -> AmendLead {
    AmendLead {
        lead_id: lead_id(n),
        reason: "AFIS match".into(),
        summary: None,
        details: None,
        subject: None,
        grading: None,
    }
}
fn person(name: &str, date_of_birth: Option<&str>, nationality: Option<&str>) -> Person {
    Person {
        name: name.into(),
        date_of_birth: date_of_birth.map(Into::into),
        nationality: nationality.map(cc),
    }
}
fn request(n: u128, color: Color, subject: Subject) -> RequestNotice {
    RequestNotice {
        notice_id: notice_id(n),
        color,
        subject,
        reason: "wanted in five countries for aggravated burglary".into(),
        offence: None,
        warrant: None,
        operation_id: None,
        recipients: None,
    }
}
const ALL_HOLD: Grounds = Grounds {
    not_political: true,
    not_military: true,
    not_religious: true,
    not_racial: true,
    facts_support_purpose: true,
};
fn review(n: u128, decision: Decision, grounds: Grounds, reason: &str) -> Command {
    Command::ReviewNotice(ReviewNotice {
        notice_id: notice_id(n),
        decision,
        reason: reason.into(),
        grounds,
    })
}
fn cancel(n: u128, reason: &str) -> Command {
    Command::CancelNotice(CancelNotice {
        notice_id: notice_id(n),
        reason: reason.into(),
    })
}

/// Real events of three leads, two arrests and three notices: every event
/// type, every optional field both given and not (stored as `null`, or
/// left out of `lead.amended`), persons and objects.
fn story() -> Vec<Event> {
    let ops = ops();
    let mut events = Vec::new();

    // A lead with nothing optional, amended three ways, then retracted.
    let mut lead = Stream::new(&ops);
    lead.run(Command::PostLead(post(1, None, None, None)), liaison("DE"))
        .run(
            Command::AmendLead(AmendLead {
                summary: Some("fingerprints matched".into()),
                ..amend(1)
            }),
            liaison("DE"),
        )
        .run(
            Command::AmendLead(AmendLead {
                details: Some(String::new()),
                subject: Some(object_subject(None)),
                grading: Some(grading(Reliability::C, 3)),
                ..amend(1)
            }),
            liaison("DE"),
        )
        .run(
            Command::AmendLead(AmendLead {
                details: Some("seen twice".into()),
                subject: Some(person_subject()),
                ..amend(1)
            }),
            liaison("DE"),
        )
        .run(
            Command::RetractLead(RetractLead {
                lead_id: lead_id(1),
                reason: "wrong prints".into(),
            }),
            liaison("DE"),
        );
    events.append(&mut lead.events);

    // A lead with everything; its restriction loses the duplicate and
    // gains the owner.
    let mut lead = Stream::new(&ops);
    lead.run(
        Command::PostLead(PostLead {
            grading: Some(grading(Reliability::A, 1)),
            ..post(
                2,
                Some("d\n\"quoted\""),
                Some(person_subject()),
                Some(&["DE", "MC", "DE"]),
            )
        }),
        liaison("FR"),
    );
    events.append(&mut lead.events);

    // Restricted to no one else: the owner alone.
    let mut lead = Stream::new(&ops);
    lead.run(
        Command::PostLead(post(3, Some(""), Some(object_subject(None)), Some(&[]))),
        liaison("ES"),
    );
    events.append(&mut lead.events);

    let mut arrest = Stream::new(&ops);
    arrest.run(
        Command::ReportArrest(ReportArrest {
            arrest_id: arrest_id(1),
            operation_id: OP,
            person: person("Ivan Petrov", Some("1985-04-12"), Some("RS")),
            location_country: cc("DE"),
            lead_id: Some(lead_id(2)),
            notice_id: Some(notice_id(1)),
        }),
        liaison("DE"),
    );
    events.append(&mut arrest.events);

    let mut arrest = Stream::new(&ops);
    arrest.run(
        Command::ReportArrest(ReportArrest {
            arrest_id: arrest_id(2),
            operation_id: OP,
            person: person("unknown accomplice", None, None),
            location_country: cc("ES"),
            lead_id: None,
            notice_id: None,
        }),
        liaison("ES"),
    );
    events.append(&mut arrest.events);

    // A red notice of the operation: approved with an empty reason (allowed
    // on approval), then cancelled by its requester.
    let mut notice = Stream::new(&ops);
    notice
        .run(
            Command::RequestNotice(RequestNotice {
                offence: Some("aggravated burglary".into()),
                warrant: Some("MC-2026-0457".into()),
                operation_id: Some(OP),
                ..request(1, Color::Red, person_subject())
            }),
            liaison("MC"),
        )
        .run(review(1, Decision::Approve, ALL_HOLD, ""), reviewer("FR"))
        .run(cancel(1, "arrested"), liaison("MC"));
    events.append(&mut notice.events);

    // A diffusion (GS may receive one) without offence, warrant or
    // operation, rejected on failing grounds.
    let mut notice = Stream::new(&ops);
    notice
        .run(
            Command::RequestNotice(RequestNotice {
                recipients: Some(ccs(&["RS", "GS", "RS"])),
                ..request(2, Color::Yellow, unknown_person())
            }),
            liaison("DE"),
        )
        .run(
            review(
                2,
                Decision::Reject,
                Grounds {
                    not_political: false,
                    facts_support_purpose: false,
                    ..ALL_HOLD
                },
                "facts too thin",
            ),
            reviewer("GS"),
        );
    events.append(&mut notice.events);

    // An object's notice with an offence alone, cancelled by a reviewer
    // before any review.
    let mut notice = Stream::new(&ops);
    notice
        .run(
            Command::RequestNotice(RequestNotice {
                offence: Some("receiving stolen goods".into()),
                ..request(3, Color::Purple, object_subject(Some("Rolex Daytona")))
            }),
            liaison("ES"),
        )
        .run(cancel(3, "requested in error"), reviewer("GS"));
    events.append(&mut notice.events);

    events
}

/// The first event of `event_type` in the story that `pick` likes, as
/// stored.
fn sample_where(event_type: &str, pick: impl Fn(&Value) -> bool) -> Value {
    story()
        .iter()
        .filter(|e| e.event_type() == event_type)
        .map(Event::data)
        .find(pick)
        .unwrap_or_else(|| panic!("the story has no such {event_type}"))
}

fn sample(event_type: &str) -> Value {
    sample_where(event_type, |_| true)
}

// ------------------------------------------------------------ tests

#[test]
fn there_is_one_schema_per_event_type_and_no_other() {
    let files: BTreeSet<String> = schema_files().into_keys().collect();
    let types: BTreeSet<String> = EVENT_TYPES.iter().map(|t| (*t).to_owned()).collect();
    let missing: Vec<&String> = types.difference(&files).collect();
    let extra: Vec<&String> = files.difference(&types).collect();
    assert!(missing.is_empty(), "event types without a schema: {missing:?}");
    assert!(extra.is_empty(), "schemas without an event type: {extra:?}");
}

#[test]
fn every_schema_names_itself() {
    for (event_type, text) in schema_files() {
        let schema: Value = serde_json::from_str(&text).unwrap_or_else(|e| panic!("{event_type}: {e}"));
        assert_eq!(
            schema["$schema"], "https://json-schema.org/draft/2020-12/schema",
            "{event_type}"
        );
        assert_eq!(
            schema["$id"],
            format!("https://concord.example/schemas/events/intel/{event_type}{SUFFIX}"),
        );
        assert_eq!(schema["title"], format!("intel {event_type}"));
        assert_eq!(schema["type"], "object", "{event_type}");
        assert_eq!(schema["additionalProperties"], false, "{event_type}");
        assert!(schema["description"].is_string(), "{event_type} has a description");
    }
}

#[test]
fn every_event_decide_produces_matches_its_schema() {
    let schemas = schemas();
    let events = story();
    let kinds: BTreeSet<&str> = events.iter().map(Event::event_type).collect();
    assert_eq!(
        kinds,
        EVENT_TYPES.into_iter().collect(),
        "the story holds every event type"
    );
    for e in &events {
        assert_valid(&schemas, e.event_type(), &e.data());
    }

    // Both forms of every field that is `null` when not given.
    let data_of = |event_type: &str| -> Vec<Value> {
        events
            .iter()
            .filter(|e| e.event_type() == event_type)
            .map(Event::data)
            .collect()
    };
    for (event_type, pointer) in [
        ("lead.posted", "/details"),
        ("lead.posted", "/subject"),
        ("lead.posted", "/grading"),
        ("lead.posted", "/subject/name"),
        ("lead.amended", "/subject/name"),
        ("lead.amended", "/subject/date_of_birth"),
        ("lead.amended", "/subject/nationality"),
        ("arrest.reported", "/person/date_of_birth"),
        ("arrest.reported", "/person/nationality"),
        ("arrest.reported", "/lead_id"),
        ("arrest.reported", "/notice_id"),
        ("notice.requested", "/offence"),
        ("notice.requested", "/warrant"),
        ("notice.requested", "/operation_id"),
        ("notice.requested", "/recipients"),
        ("notice.requested", "/subject/name"),
        ("notice.requested", "/subject/date_of_birth"),
        ("notice.requested", "/subject/nationality"),
    ] {
        let values: Vec<Value> = data_of(event_type)
            .iter()
            .filter_map(|d| d.pointer(pointer).cloned())
            .collect();
        assert!(values.iter().any(Value::is_null), "{event_type}{pointer} null");
        assert!(values.iter().any(|v| !v.is_null()), "{event_type}{pointer} given");
    }
    // What lead.amended leaves out rather than storing as `null`.
    for field in ["summary", "details", "subject", "grading"] {
        let amended = data_of("lead.amended");
        assert!(
            amended.iter().any(|d| d.get(field).is_some()),
            "lead.amended {field} given"
        );
        assert!(
            amended.iter().any(|d| d.get(field).is_none()),
            "lead.amended {field} left out"
        );
    }
    // An unrestricted lead and restricted ones.
    let restrictions: BTreeSet<String> = data_of("lead.posted")
        .iter()
        .map(|d| d["restricted_to"].to_string())
        .collect();
    assert_eq!(
        restrictions,
        BTreeSet::from([json!([]), json!(["DE", "FR", "MC"]), json!(["ES"])].map(|v| v.to_string())),
    );
}

#[test]
fn every_field_is_required_and_no_other_is_allowed() {
    let schemas = schemas();
    for event_type in EVENT_TYPES {
        let data = sample(event_type);
        assert_valid(&schemas, event_type, &data);
        assert_refused(
            &schemas,
            event_type,
            &with(&data, "/extra", Some(json!("x"))),
            "additionalProperties",
        );
        let optional: &[&str] = match event_type {
            "lead.amended" => &["summary", "details", "subject", "grading"],
            _ => &[],
        };
        let fields: Vec<String> = data.as_object().expect("an object").keys().cloned().collect();
        for field in fields.iter().filter(|f| !optional.contains(&f.as_str())) {
            // Nullable fields included: the stored data always holds them.
            assert_refused(
                &schemas,
                event_type,
                &with(&data, &format!("/{field}"), None),
                "required",
            );
        }
        for not_an_object in [json!(null), json!([]), json!("x")] {
            assert_refused(&schemas, event_type, &not_an_object, "type");
        }
    }
    // The objects inside events are as closed.
    let amended = sample_where("lead.amended", |d| d.get("grading").is_some());
    let arrest = sample("arrest.reported");
    let published = sample("notice.published");
    for (event_type, data, object) in [
        ("lead.amended", &amended, "/subject"),
        ("lead.amended", &amended, "/grading"),
        ("arrest.reported", &arrest, "/person"),
        ("notice.published", &published, "/grounds"),
    ] {
        let inner = data.pointer(object).expect("present");
        assert_refused(
            &schemas,
            event_type,
            &with(data, &format!("{object}/extra"), Some(json!(1))),
            "additionalProperties",
        );
        for field in inner.as_object().expect("an object").keys() {
            assert_refused(
                &schemas,
                event_type,
                &with(data, &format!("{object}/{field}"), None),
                "required",
            );
        }
    }
}

#[test]
fn each_schema_refuses_what_the_rust_types_refuse() {
    let schemas = schemas();
    let refused = |event_type: &str, data: &Value, at: &str, value: Value, keyword: &str| {
        assert_refused(&schemas, event_type, &with(data, at, Some(value)), keyword);
    };

    let posted = sample_where("lead.posted", |d| !d["grading"].is_null());
    let s = |at: &str, value: Value, keyword: &str| refused("lead.posted", &posted, at, value, keyword);
    s("/lead_id", json!("lead-1"), "format");
    s("/operation_id", json!(null), "type");
    s("/owner_country", json!("de"), "pattern");
    s("/summary", json!(""), "minLength");
    s("/summary", json!(" \u{a0} "), "pattern");
    s("/summary", json!("s".repeat(501)), "maxLength");
    s("/details", json!("d".repeat(4001)), "maxLength");
    s("/details", json!(5), "type");
    s("/subject", json!("burglar"), "anyOf");
    s("/subject/nationality", json!("GS"), "anyOf");
    s("/grading", json!({"reliability": "A"}), "anyOf");
    s("/grading/accuracy", json!(5), "anyOf");
    s("/restricted_to", json!(null), "type");
    s("/restricted_to", json!(["DE", "DE"]), "uniqueItems");
    s("/restricted_to", json!(["Germany"]), "pattern");
    let fifty_two: Vec<String> = (0..52u8)
        .map(|i| format!("{}{}", char::from(b'A' + i / 26), char::from(b'A' + i % 26)))
        .collect();
    s("/restricted_to", json!(fifty_two), "maxItems");
    s("/posted_by", json!(""), "minLength");
    s("/posted_by", json!("x".repeat(129)), "maxLength");
    s("/posted_at", json!("2026-11-23T09:30:00Z"), "pattern");
    s("/posted_at", json!("2026-11-31T09:30:00.000000Z"), "format");

    // A subject, where it is not nullable (so the rule that fails shows).
    let amended = sample_where("lead.amended", |d| d["subject"]["kind"] == "person");
    let s = |at: &str, value: Value, keyword: &str| refused("lead.amended", &amended, at, value, keyword);
    s("/subject", json!(null), "type");
    s("/subject/kind", json!("animal"), "enum");
    s("/subject/description", json!(""), "minLength");
    s("/subject/description", json!("\u{2003}"), "pattern");
    s("/subject/description", json!("d".repeat(2001)), "maxLength");
    s("/subject/name", json!(""), "minLength");
    s("/subject/name", json!("\t"), "pattern");
    s("/subject/name", json!("n".repeat(201)), "maxLength");
    s("/subject/date_of_birth", json!("1985-02-29"), "format");
    s("/subject/date_of_birth", json!("12/04/1985"), "format");
    s("/subject/nationality", json!("GS"), "not");
    s("/subject/nationality", json!("rs"), "pattern");
    let object = with(
        &with(
            &with(&amended, "/subject/kind", Some(json!("object"))),
            "/subject/date_of_birth",
            Some(json!(null)),
        ),
        "/subject/nationality",
        Some(json!(null)),
    );
    assert_valid(&schemas, "lead.amended", &object);
    for (field, value) in [("date_of_birth", json!("1985-04-12")), ("nationality", json!("RS"))] {
        refused("lead.amended", &object, &format!("/subject/{field}"), value, "type");
    }
    s("/summary", json!(null), "type");
    s("/summary", json!("\n"), "pattern");
    s("/details", json!(null), "type");
    let graded = sample_where("lead.amended", |d| d.get("grading").is_some());
    let s = |at: &str, value: Value, keyword: &str| refused("lead.amended", &graded, at, value, keyword);
    s("/grading", json!(null), "type");
    s("/grading/reliability", json!("D"), "enum");
    s("/grading/accuracy", json!(0), "minimum");
    s("/grading/accuracy", json!(5), "maximum");
    s("/grading/accuracy", json!("1"), "type");
    s("/reason", json!(" "), "pattern");
    s("/reason", json!("r".repeat(4001)), "maxLength");
    s("/amended_at", json!("now"), "format");
    // Not one change.
    let only_reason = json!({"reason": "AFIS match", "amended_at": NOW});
    assert_refused(&schemas, "lead.amended", &only_reason, "anyOf");

    let retracted = sample("lead.retracted");
    refused("lead.retracted", &retracted, "/reason", json!(""), "minLength");
    refused("lead.retracted", &retracted, "/reason", json!("\u{3000}"), "pattern");
    refused("lead.retracted", &retracted, "/retracted_at", json!(null), "type");

    let arrest = sample_where("arrest.reported", |d| !d["lead_id"].is_null());
    let s = |at: &str, value: Value, keyword: &str| refused("arrest.reported", &arrest, at, value, keyword);
    s("/arrest_id", json!(42), "type");
    s("/person", json!(null), "type");
    s("/person/name", json!(""), "minLength");
    s("/person/name", json!(null), "type");
    s("/person/date_of_birth", json!("1985-4-12"), "format");
    s("/person/nationality", json!("GS"), "not");
    s("/location_country", json!("GS"), "not");
    s("/location_country", json!(null), "type");
    s("/lead_id", json!("LEAD-1"), "format");
    s("/notice_id", json!(1), "type");
    s("/reporting_country", json!("D"), "pattern");
    s("/reported_by", json!(null), "type");

    let red = sample_where("notice.requested", |d| d["color"] == "red");
    let s = |at: &str, value: Value, keyword: &str| refused("notice.requested", &red, at, value, keyword);
    s("/color", json!("pink"), "enum");
    s("/color", json!("Red"), "enum");
    s("/subject", json!(null), "type");
    s("/subject/kind", json!(null), "enum");
    s("/reason", json!(""), "minLength");
    // A red notice needs both.
    s("/offence", json!(null), "type");
    s("/warrant", json!(null), "type");
    s("/offence", json!(" "), "pattern");
    s("/offence", json!("o".repeat(501)), "maxLength");
    s("/warrant", json!(""), "minLength");
    s("/warrant", json!("w".repeat(201)), "maxLength");
    s("/operation_id", json!("operation"), "format");
    s("/recipients", json!([]), "minItems");
    s("/recipients", json!("DE"), "type");
    s("/recipients", json!(["DE", "DE"]), "uniqueItems");
    let hundred_one: Vec<String> = (0..101u8)
        .map(|i| format!("{}{}", char::from(b'A' + i / 26), char::from(b'A' + i % 26)))
        .collect();
    s("/recipients", json!(hundred_one), "maxItems");
    s("/requesting_country", json!("MCO"), "pattern");
    s("/requested_at", json!("2026-11-23"), "format");
    // Another colour needs neither.
    let yellow = with(
        &with(&red, "/color", Some(json!("yellow"))),
        "/offence",
        Some(json!(null)),
    );
    assert_valid(
        &schemas,
        "notice.requested",
        &with(&yellow, "/warrant", Some(json!(null))),
    );

    let published = sample("notice.published");
    let s = |at: &str, value: Value, keyword: &str| refused("notice.published", &published, at, value, keyword);
    for ground in [
        "not_political",
        "not_military",
        "not_religious",
        "not_racial",
        "facts_support_purpose",
    ] {
        s(&format!("/grounds/{ground}"), json!(false), "const");
    }
    s("/reason", json!(null), "type");
    s("/reason", json!("r".repeat(4001)), "maxLength");
    s("/reviewer_country", json!("gs"), "pattern");
    s("/reviewed_by", json!(""), "minLength");

    let rejected = sample("notice.rejected");
    let s = |at: &str, value: Value, keyword: &str| refused("notice.rejected", &rejected, at, value, keyword);
    s("/reason", json!(""), "minLength");
    s("/grounds/not_political", json!("yes"), "type");
    s("/grounds/not_racial", json!(null), "type");
    s("/rejected_at", json!("2026-11-23T09:30:00.000000+00:00"), "pattern");

    let cancelled = sample("notice.cancelled");
    let s = |at: &str, value: Value, keyword: &str| refused("notice.cancelled", &cancelled, at, value, keyword);
    s("/reason", json!("\r\n"), "pattern");
    s("/cancelled_by", json!(""), "minLength");
    s("/cancelled_at", json!("2026-11-23"), "format");
}

/// `decide` approves exactly when every ground holds, and the published
/// schema takes exactly those grounds; a rejection takes any.
#[test]
fn grounds_mean_the_same_to_the_schema_and_to_decide() {
    let schemas = schemas();
    let ops = ops();
    let mut notice = Stream::new(&ops);
    notice.run(
        Command::RequestNotice(request(1, Color::Blue, person_subject())),
        liaison("DE"),
    );
    let published = sample("notice.published");
    let rejected = sample("notice.rejected");
    for bits in 0..32u8 {
        let bit = |n: u8| bits & (1 << n) != 0;
        let grounds = Grounds {
            not_political: bit(0),
            not_military: bit(1),
            not_religious: bit(2),
            not_racial: bit(3),
            facts_support_purpose: bit(4),
        };
        let approved = notice.decide(&review(1, Decision::Approve, grounds, "ok"), reviewer("FR"));
        let as_published = with(&published, "/grounds", Some(json!(grounds)));
        let schema_ok = violations(&schemas, "notice.published", &as_published).is_empty();
        assert_eq!(schema_ok, approved.is_ok(), "{grounds:?}: decide says {approved:?}");
        assert_valid(
            &schemas,
            "notice.rejected",
            &with(&rejected, "/grounds", Some(json!(grounds))),
        );
    }
}

/// The schema's "not blank" is `decide`'s (`str::trim` is empty).
#[test]
fn blank_means_the_same_to_the_schema_and_to_decide() {
    let schemas = schemas();
    let ops = ops();
    let data = sample("lead.posted");
    for summary in [
        "x",
        " x ",
        "",
        " ",
        "\t\n\r",
        "\u{b}\u{c}",
        "\u{85}",
        "\u{a0}",
        "\u{1680}",
        "\u{2000}\u{200a}",
        "\u{2028}",
        "\u{2029}",
        "\u{202f}",
        "\u{205f}",
        "\u{3000}",
        "\u{feff}",
        "\u{200b}",
        "\u{180e}",
        "\u{2060}",
        "é",
    ] {
        let cmd = Command::PostLead(PostLead {
            summary: summary.into(),
            ..post(9, None, None, None)
        });
        let decided = Stream::new(&ops).decide(&cmd, liaison("DE"));
        let schema_ok = violations(&schemas, "lead.posted", &with(&data, "/summary", Some(json!(summary)))).is_empty();
        assert_eq!(
            schema_ok,
            decided.is_ok(),
            "summary {summary:?}: decide says {decided:?}"
        );
    }
}

/// A date of birth `decide` takes, the schema takes, and the other way; a
/// date after the day of the report is `decide`'s alone (a schema has no
/// clock).
#[test]
fn dates_of_birth_mean_the_same_to_the_schema_and_to_decide() {
    let schemas = schemas();
    let ops = ops();
    let data = sample("arrest.reported");
    for dob in [
        "1985-04-12",
        "2000-02-29",
        "2026-11-23",
        "0001-01-01",
        "1900-02-29",
        "1985-02-29",
        "1985-13-01",
        "1985-00-10",
        "1985-04-31",
        "1985-04-00",
        "1985-4-12",
        "85-04-12",
        "12/04/1985",
        "1985-04-12T00:00:00Z",
        "1985-04-12 ",
        "",
        "１９８５-04-12",
    ] {
        let cmd = Command::ReportArrest(ReportArrest {
            arrest_id: arrest_id(9),
            operation_id: OP,
            person: person("Ivan Petrov", Some(dob), None),
            location_country: cc("DE"),
            lead_id: None,
            notice_id: None,
        });
        let decided = Stream::new(&ops).decide(&cmd, liaison("DE"));
        let as_stored = with(&data, "/person/date_of_birth", Some(json!(dob)));
        let schema_ok = violations(&schemas, "arrest.reported", &as_stored).is_empty();
        assert_eq!(
            schema_ok,
            decided.is_ok(),
            "date_of_birth {dob:?}: decide says {decided:?}"
        );
    }
}

/// GS, the secretariat, is no place nor nationality: `decide` refuses it
/// there and so does the schema; it may report and receive a diffusion.
#[test]
fn the_secretariat_is_no_place_nor_nationality_to_the_schema_either() {
    let schemas = schemas();
    let ops = ops();
    let data = sample("arrest.reported");
    for (location, nationality) in [("GS", None), ("DE", Some("GS")), ("DE", Some("RS")), ("DE", None)] {
        let cmd = Command::ReportArrest(ReportArrest {
            arrest_id: arrest_id(9),
            operation_id: OP,
            person: person("Ivan Petrov", None, nationality),
            location_country: cc(location),
            lead_id: None,
            notice_id: None,
        });
        let decided = Stream::new(&ops).decide(&cmd, liaison("DE"));
        let as_stored = with(
            &with(&data, "/location_country", Some(json!(location))),
            "/person/nationality",
            Some(json!(nationality)),
        );
        let schema_ok = violations(&schemas, "arrest.reported", &as_stored).is_empty();
        assert_eq!(
            schema_ok,
            decided.is_ok(),
            "{location} {nationality:?}: decide says {decided:?}"
        );
    }
    let diffusion = sample_where("notice.requested", |d| !d["recipients"].is_null());
    assert!(
        diffusion["recipients"]
            .as_array()
            .is_some_and(|r| r.contains(&json!("GS")))
    );
}
