//! The JSON Schemas of the operations events (`schemas/events/operations`)
//! against the events `decide` really produces: one schema per event type
//! and no other, every real event's `data` valid (optional fields given and
//! left out), and what the Rust types refuse refused by the schemas too.
//! Pure: no NATS, no log.

use std::collections::{BTreeMap, BTreeSet};

use concord_bus::schema::Schemas;
use concord_core::{Actor, CountryCode, Role};
use concord_operations::domain::{
    AddParticipant, AssignTask, Close, Command, Ctx, EVENT_TYPES, Event, Open, RemoveParticipant, State, TaskStatus,
    UpdateTaskStatus, decide, try_evolve,
};
use concord_testkit::schemas::{assert_refused, assert_valid, violations};
use serde_json::{Value, json};
use uuid::Uuid;

const SCHEMA_DIR: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/../../schemas/events/operations");
const SUFFIX: &str = ".schema.json";

const OP: Uuid = Uuid::from_u128(0x019a_b0c4_5e00_7000_8000_0000_0000_00aa);
const OTHER_OP: Uuid = Uuid::from_u128(0x019a_b0c4_5e00_7000_8000_0000_0000_00bb);
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

/// `data` with `key` set to `value` (or removed, for `None`).
fn with(data: &Value, key: &str, value: Option<Value>) -> Value {
    let mut data = data.clone();
    let object = data.as_object_mut().expect("event data is an object");
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

fn actor(role: Role, country: &str) -> Actor {
    Actor {
        sub: format!("{}-{}", country.to_lowercase(), role.as_str()),
        role,
        country: cc(country),
    }
}
fn coordinator(country: &str) -> Actor {
    actor(Role::Coordinator, country)
}
fn liaison(country: &str) -> Actor {
    actor(Role::Liaison, country)
}

fn task_id(n: u128) -> Uuid {
    Uuid::from_u128(0x019a_b0c4_5e00_7000_8000_0000_0001_0000 + n)
}

/// One operation's stream, driven through `decide` and `try_evolve` as the
/// service drives it.
struct Stream {
    id: Uuid,
    state: State,
    events: Vec<Event>,
}

impl Stream {
    fn new(id: Uuid) -> Stream {
        Stream {
            id,
            state: State::default(),
            events: Vec::new(),
        }
    }

    fn ctx(&self, actor: Actor) -> Ctx {
        Ctx {
            actor,
            operation_id: self.id,
            now: NOW.into(),
        }
    }

    fn decide(&self, cmd: &Command, actor: Actor) -> Result<Vec<Event>, String> {
        decide(&self.state, cmd, &self.ctx(actor)).map_err(|r| r.to_string())
    }

    /// Decides `cmd`, which must be accepted, and applies its events.
    fn run(&mut self, cmd: Command, actor: Actor) -> &mut Stream {
        let events = self
            .decide(&cmd, actor)
            .unwrap_or_else(|r| panic!("{} refused: {r}", cmd.name()));
        for e in events {
            self.state = try_evolve(self.state.take(), &e).unwrap_or_else(|why| panic!("{why}"));
            self.events.push(e);
        }
        self
    }
}

fn open(lead: &str, countries: &[&str]) -> Command {
    Command::Open(Open {
        title: "Opération Héron".into(),
        objective: "dismantle the trafficking network".into(),
        lead_country: cc(lead),
        countries: countries.iter().map(|c| cc(c)).collect(),
    })
}
fn assign(n: u128, country: &str, details: &str, due_at: Option<&str>) -> Command {
    Command::AssignTask(AssignTask {
        task_id: task_id(n),
        assignee_country: cc(country),
        title: format!("task {n}"),
        details: details.into(),
        due_at: due_at.map(Into::into),
    })
}
fn set_status(n: u128, status: TaskStatus, note: Option<&str>) -> Command {
    Command::UpdateTaskStatus(UpdateTaskStatus {
        task_id: task_id(n),
        status,
        note: note.map(Into::into),
    })
}

/// Two operations' worth of real events: every event type, every optional
/// field both given (a string) and not (stored as `null`), every allowed
/// task status change, an operation without participants.
fn story() -> Vec<Event> {
    use TaskStatus::*;
    let mut heron = Stream::new(OP);
    heron
        // Duplicates and the lead itself are dropped from the participants.
        .run(open("FR", &["ES", "DE", "FR", "DE"]), coordinator("FR"))
        .run(
            Command::AddParticipant(AddParticipant { country: cc("IT") }),
            coordinator("FR"),
        )
        .run(assign(1, "DE", "search the warehouse", None), coordinator("FR"))
        .run(
            assign(2, "IT", "", Some("2026-12-01T18:00:00.123+01:00")),
            coordinator("FR"),
        )
        .run(
            assign(3, "FR", "d\n\"quoted\"", Some("2026-12-01T18:00:00Z")),
            coordinator("FR"),
        )
        .run(assign(4, "ES", "watch the port", None), coordinator("FR"))
        .run(set_status(1, Accepted, None), liaison("DE"))
        .run(set_status(1, InProgress, Some("on it")), liaison("DE"))
        .run(set_status(1, Done, Some("")), liaison("DE"))
        .run(set_status(2, Declined, Some("no officers free")), liaison("IT"))
        .run(set_status(3, Accepted, None), liaison("FR"))
        .run(set_status(3, Done, None), liaison("FR"))
        .run(
            Command::RemoveParticipant(RemoveParticipant { country: cc("IT") }),
            coordinator("FR"),
        )
        .run(
            Command::Close(Close {
                outcome: "network dismantled; task 4 left open, the port was closed".into(),
            }),
            coordinator("FR"),
        );
    let mut alone = Stream::new(OTHER_OP);
    alone.run(open("GS", &[]), coordinator("GS"));
    heron.events.into_iter().chain(alone.events).collect()
}

/// The first event of `event_type` in the story, as stored.
fn sample(event_type: &str) -> Value {
    story()
        .iter()
        .find(|e| e.event_type() == event_type)
        .map(Event::data)
        .unwrap_or_else(|| panic!("the story has no {event_type}"))
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
            format!("https://concord.example/schemas/events/operations/{event_type}{SUFFIX}"),
        );
        assert_eq!(schema["title"], format!("operations {event_type}"));
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
    for (event_type, field) in [("task.assigned", "due_at"), ("task.status_changed", "note")] {
        let values: Vec<Value> = events
            .iter()
            .filter(|e| e.event_type() == event_type)
            .map(|e| e.data()[field].clone())
            .collect();
        assert!(values.iter().any(Value::is_null), "{event_type}.{field} null");
        assert!(values.iter().any(Value::is_string), "{event_type}.{field} given");
    }
    // An operation without participants.
    assert!(
        events
            .iter()
            .any(|e| e.event_type() == "operation.opened" && e.data()["participants"] == json!([])),
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
            &with(&data, "extra", Some(json!("x"))),
            "additionalProperties",
        );
        let fields: Vec<String> = data.as_object().expect("an object").keys().cloned().collect();
        for field in fields {
            // Nullable fields included: the stored data always holds them.
            assert_refused(&schemas, event_type, &with(&data, &field, None), "required");
        }
        for not_an_object in [json!(null), json!([]), json!("x")] {
            assert_refused(&schemas, event_type, &not_an_object, "type");
        }
    }
}

#[test]
fn each_schema_refuses_what_the_rust_types_refuse() {
    let schemas = schemas();
    let s = |event_type: &str, key: &str, value: Value, keyword: &str| {
        let data = with(&sample(event_type), key, Some(value));
        assert_refused(&schemas, event_type, &data, keyword);
    };

    s("operation.opened", "operation_id", json!("42"), "format");
    s("operation.opened", "operation_id", json!(null), "type");
    s("operation.opened", "title", json!(""), "minLength");
    s("operation.opened", "title", json!(" \t\n"), "pattern");
    s("operation.opened", "title", json!("t".repeat(201)), "maxLength");
    s("operation.opened", "objective", json!("o".repeat(4001)), "maxLength");
    s("operation.opened", "lead_country", json!("fr"), "pattern");
    s("operation.opened", "lead_country", json!("FRA"), "pattern");
    s("operation.opened", "participants", json!(["DE", "DE"]), "uniqueItems");
    s("operation.opened", "participants", json!(["de"]), "pattern");
    s("operation.opened", "participants", json!("DE"), "type");
    let fifty_one: Vec<String> = (0..51u8)
        .map(|i| format!("{}{}", char::from(b'A' + i / 26), char::from(b'A' + i % 26)))
        .collect();
    s("operation.opened", "participants", json!(fifty_one), "maxItems");
    s("operation.opened", "opened_at", json!("yesterday"), "format");
    s(
        "operation.opened",
        "opened_at",
        json!("2026-02-30T09:30:00.000000Z"),
        "format",
    );
    s(
        "operation.opened",
        "opened_at",
        json!("2026-11-23T09:30:00Z"),
        "pattern",
    );
    s(
        "operation.opened",
        "opened_at",
        json!("2026-11-23T10:30:00.000000+01:00"),
        "pattern",
    );

    s("participant.added", "country", json!("X"), "pattern");
    s("participant.added", "country", json!(null), "type");
    s("participant.removed", "country", json!("es"), "pattern");
    s("participant.removed", "country", json!(34), "type");

    s("task.assigned", "task_id", json!("task-1"), "format");
    s("task.assigned", "assignee_country", json!("Germany"), "pattern");
    s("task.assigned", "title", json!("\u{3000}"), "pattern");
    s("task.assigned", "title", json!(null), "type");
    s("task.assigned", "details", json!(null), "type");
    s("task.assigned", "details", json!("d".repeat(4001)), "maxLength");
    s("task.assigned", "due_at", json!("2026-12-01"), "format");
    s("task.assigned", "due_at", json!("2026-12-01T18:00:00"), "format");
    s(
        "task.assigned",
        "due_at",
        json!("2026-12-01T18:00:00.1234567890Z"),
        "pattern",
    );
    s("task.assigned", "due_at", json!(1_795_426_200), "type");

    s("task.status_changed", "from", json!("done"), "enum");
    s("task.status_changed", "from", json!("new"), "enum");
    s("task.status_changed", "to", json!("finished"), "enum");
    s("task.status_changed", "to", json!("assigned"), "enum");
    s("task.status_changed", "note", json!(3), "type");
    s("task.status_changed", "note", json!("n".repeat(4001)), "maxLength");
    // Each from → to pair the table does not allow.
    let data = sample("task.status_changed");
    for (from, to) in [
        ("assigned", "in_progress"),
        ("assigned", "done"),
        ("accepted", "declined"),
        ("accepted", "accepted"),
        ("in_progress", "accepted"),
        ("in_progress", "declined"),
    ] {
        let data = with(&with(&data, "from", Some(json!(from))), "to", Some(json!(to)));
        assert_refused(&schemas, "task.status_changed", &data, "anyOf");
    }

    s("operation.closed", "outcome", json!(""), "minLength");
    s("operation.closed", "outcome", json!("\n"), "pattern");
    s("operation.closed", "outcome", json!("o".repeat(4001)), "maxLength");
    s("operation.closed", "closed_at", json!(null), "type");
    s(
        "operation.closed",
        "closed_at",
        json!("2026-11-23 09:30:00.000000Z"),
        "format",
    );
}

#[test]
fn every_status_change_the_table_allows_matches_the_schema() {
    use TaskStatus::*;
    let schemas = schemas();
    let data = sample("task.status_changed");
    for from in TaskStatus::ALL {
        for to in TaskStatus::ALL {
            let changed = with(&with(&data, "from", Some(json!(from))), "to", Some(json!(to)));
            let accepted = violations(&schemas, "task.status_changed", &changed).is_empty();
            assert_eq!(accepted, from.can_become(to), "{from} -> {to}");
        }
    }
    // And `decide` agrees with the table: the story made each allowed change.
    let made: BTreeSet<(String, String)> = story()
        .iter()
        .filter(|e| e.event_type() == "task.status_changed")
        .map(|e| {
            let d = e.data();
            (d["from"].to_string(), d["to"].to_string())
        })
        .collect();
    for (from, to) in [
        (Assigned, Accepted),
        (Assigned, Declined),
        (Accepted, InProgress),
        (Accepted, Done),
        (InProgress, Done),
    ] {
        assert!(
            made.contains(&(json!(from).to_string(), json!(to).to_string())),
            "{from} -> {to}"
        );
    }
}

/// The schema's "not blank" is `decide`'s (`str::trim` is empty): a title
/// `decide` refuses for blankness, the schema refuses, and the other way.
#[test]
fn blank_means_the_same_to_the_schema_and_to_decide() {
    let schemas = schemas();
    let data = sample("operation.opened");
    for title in [
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
        let cmd = Command::Open(Open {
            title: title.into(),
            ..match open("FR", &["DE"]) {
                Command::Open(o) => o,
                _ => unreachable!(),
            }
        });
        let decided = Stream::new(OP).decide(&cmd, coordinator("FR"));
        let schema_ok = violations(&schemas, "operation.opened", &with(&data, "title", Some(json!(title)))).is_empty();
        assert_eq!(schema_ok, decided.is_ok(), "title {title:?}: decide says {decided:?}");
    }
}

/// A due date `decide` takes, the schema takes, and the other way; except
/// a leap second at another time than 23:59:60 UTC, which `decide` takes
/// and the `date-time` format does not (no real leap second is one).
#[test]
fn due_dates_mean_the_same_to_the_schema_and_to_decide() {
    let schemas = schemas();
    let data = sample("task.assigned");
    let mut heron = Stream::new(OP);
    heron.run(open("FR", &["DE"]), coordinator("FR"));
    for due_at in [
        "2026-12-01T18:00:00Z",
        "2026-12-01t18:00:00z",
        "2026-12-01T18:00:00.123456Z",
        "2026-12-01T18:00:00.123456789-05:30",
        "2024-02-29T00:00:00+01:00",
        "2000-02-29T00:00:00Z",
        "2026-12-31T23:59:60Z",
        "",
        "tomorrow",
        "2026-12-01",
        "2026-12-01T18:00:00",
        "2026-12-01 18:00:00Z",
        "2026-12-01T18:00Z",
        "2026-12-01T18:00:00.Z",
        "2026-12-01T18:00:00.1234567890Z",
        "2026-12-01T18:00:00+0100",
        "2026-12-01T18:00:00+1:00",
        "2026-12-01T18:00:00+24:00",
        "2026-12-01T18:00:00Z ",
        "2026-02-29T00:00:00Z",
        "1900-02-29T00:00:00Z",
        "2026-13-01T00:00:00Z",
        "2026-00-01T00:00:00Z",
        "2026-04-31T00:00:00Z",
        "2026-12-00T00:00:00Z",
        "2026-12-01T24:00:00Z",
        "2026-12-01T18:60:00Z",
        "2026-12-01T18:00:61Z",
        "+026-12-01T18:00:00Z",
        "2026-12-01T18:00:00ZZ",
        "２０２６-12-01T18:00:00Z",
    ] {
        let decided = heron.decide(&assign(1, "DE", "", Some(due_at)), coordinator("FR"));
        let schema_ok = violations(&schemas, "task.assigned", &with(&data, "due_at", Some(json!(due_at)))).is_empty();
        assert_eq!(schema_ok, decided.is_ok(), "due_at {due_at:?}: decide says {decided:?}");
    }
}
