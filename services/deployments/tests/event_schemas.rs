//! The JSON Schemas of the deployments events (`schemas/events/deployments`)
//! against the events `decide` really produces: one schema per event type
//! and no other, every real event's `data` valid (a deployment for a crisis
//! and one for an operation), and what the Rust types and `decide` refuse
//! refused by the schemas too. Also the command schemas
//! (`schemas/commands/deployments`): each lists exactly the fields its
//! command struct accepts, and accepts the commands of the story. Pure: no
//! NATS, no log; the operations view is folded from events the operations
//! domain really produces, the crises view from crisis event data as the
//! crisis service records it.

use std::collections::{BTreeMap, BTreeSet};

use concord_bus::schema::Schemas;
use concord_core::{Actor, CountryCode, Role};
use concord_deployments::domain::{
    ApproveDeployment, COMMANDS, Command, CrisesView, Ctx, DeclineDeployment, EVENT_TYPES, EndDeployment, Event,
    MEMBERS_MAX, MarkArrived, Member, OperationsView, Recall, RequestDeployment, RequestStandDown, State, Team, decide,
    parse_command, try_evolve,
};
use concord_testkit::schemas::{assert_refused, assert_valid, violations};
use serde_json::{Value, json};
use uuid::Uuid;

const EVENT_SCHEMA_DIR: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/../../schemas/events/deployments");
const COMMAND_SCHEMA_DIR: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/../../schemas/commands/deployments");
const QUERY_SCHEMA: &str = include_str!("../../../schemas/queries/deployments/get.schema.json");
const SUFFIX: &str = ".schema.json";

/// FR leads; DE, ES and IT take part.
const OP: Uuid = Uuid::from_u128(0x019a_b0c4_5e00_7000_8000_0000_0000_00aa);
/// An earthquake in IT.
const CRISIS: Uuid = Uuid::from_u128(0x019a_b0c4_5e00_7000_8000_0000_0000_0c01);
/// The runtime's clock: RFC 3339 UTC with microseconds.
const NOW: &str = "2026-11-23T09:30:00.000000Z";

// ------------------------------------------------------------ schemas

/// Every `<name>.schema.json` of `dir`, by name.
fn schema_files(dir: &str) -> BTreeMap<String, String> {
    concord_testkit::schemas::schema_files(dir)
}

fn compile(dir: &str) -> Schemas {
    let files = schema_files(dir);
    Schemas::compile(files.iter().map(|(t, text)| (t.as_str(), text.as_str()))).expect("every schema compiles")
}

fn schemas() -> Schemas {
    compile(EVENT_SCHEMA_DIR)
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

fn names(v: &Value) -> BTreeSet<String> {
    match v {
        Value::Object(o) => o.keys().cloned().collect(),
        Value::Array(a) => a.iter().filter_map(Value::as_str).map(str::to_owned).collect(),
        _ => panic!("neither object nor array: {v}"),
    }
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
fn liaison(country: &str) -> Actor {
    actor(Role::Liaison, country)
}

fn deployment_id(n: u128) -> Uuid {
    Uuid::from_u128(0x019a_b0c4_5e00_7000_8000_0000_0004_0000 + n)
}

/// What deployments knows of `OP`, folded from the events the operations
/// domain decides, as the service folds them from the operations log.
fn ops() -> OperationsView {
    use concord_operations::domain as operations;
    let ctx = operations::Ctx {
        actor: actor(Role::Coordinator, "FR"),
        operation_id: OP,
        now: NOW.into(),
    };
    let open = operations::Command::Open(operations::Open {
        title: "Operazione Rete".into(),
        objective: "take the botnet down".into(),
        lead_country: cc("FR"),
        countries: ["DE", "ES", "IT"].map(cc).to_vec(),
    });
    let events = operations::decide(&None, &open, &ctx).expect("FR opens the operation");
    let mut view = OperationsView::default();
    for e in events {
        view.apply(&format!("operation-{OP}"), e.event_type(), &e.data())
            .expect("the view folds operations events");
    }
    view
}

/// What deployments knows of `CRISIS`, declared in IT and, with `closed`,
/// closed; folded from the data the crisis service records.
fn crises(closed: bool) -> CrisesView {
    let stream = format!("crisis-{CRISIS}");
    let mut view = CrisesView::default();
    view.apply(
        &stream,
        "crisis.declared",
        &json!({"crisis_id": CRISIS, "kind": "earthquake", "title": "Terremoto in Umbria", "country": "IT",
                "severity": "high", "declared_by": "it-liaison", "declared_at": NOW}),
    )
    .expect("the view folds crisis.declared");
    if closed {
        view.apply(
            &stream,
            "crisis.closed",
            &json!({"crisis_id": CRISIS, "summary": "relief over", "closed_by": "it-liaison", "closed_at": NOW}),
        )
        .expect("the view folds crisis.closed");
    }
    view
}

/// One deployment stream, driven through `decide` and `try_evolve` as the
/// service drives it.
struct Stream {
    crises: CrisesView,
    ops: OperationsView,
    state: State,
    events: Vec<Event>,
    /// Every command accepted, as its JSON body.
    commands: Vec<(&'static str, Value)>,
}

impl Stream {
    fn new() -> Stream {
        Stream {
            crises: crises(false),
            ops: ops(),
            state: State::default(),
            events: Vec::new(),
            commands: Vec::new(),
        }
    }

    fn close_crisis(&mut self) -> &mut Stream {
        self.crises = crises(true);
        self
    }

    fn decide(&self, cmd: &Command, actor: Actor) -> Result<Vec<Event>, String> {
        let ctx = Ctx { actor, now: NOW.into() };
        decide(&self.state, cmd, &self.crises, &self.ops, &ctx).map_err(|r| r.to_string())
    }

    /// Decides `cmd`, which must be accepted with events, and applies them.
    fn run(&mut self, cmd: Command, actor: Actor) -> &mut Stream {
        let events = self
            .decide(&cmd, actor)
            .unwrap_or_else(|r| panic!("{} refused: {r}", cmd.name()));
        assert!(!events.is_empty(), "{} decided nothing", cmd.name());
        for e in events {
            self.state = try_evolve(std::mem::take(&mut self.state), &e).unwrap_or_else(|why| panic!("{why}"));
            self.events.push(e);
        }
        self.commands.push((cmd.name(), body(&cmd)));
        self
    }
}

/// Every field the command's struct accepts, as serde writes it (`null` for
/// an optional field left out).
fn accepted_fields(cmd: &Command) -> Value {
    let v = match cmd {
        Command::RequestDeployment(c) => serde_json::to_value(c),
        Command::ApproveDeployment(c) => serde_json::to_value(c),
        Command::DeclineDeployment(c) => serde_json::to_value(c),
        Command::MarkArrived(c) => serde_json::to_value(c),
        Command::EndDeployment(c) => serde_json::to_value(c),
        Command::Recall(c) => serde_json::to_value(c),
        Command::RequestStandDown(c) => serde_json::to_value(c),
    };
    v.expect("commands serialize")
}

/// The command's JSON body as a client sends it: optional fields left out.
fn body(cmd: &Command) -> Value {
    let mut v = accepted_fields(cmd);
    v.as_object_mut().expect("an object").retain(|_, v| !v.is_null());
    v
}

fn member(name: &str, role: &str, country: &str) -> Member {
    Member {
        name: name.into(),
        role: role.into(),
        country: cc(country),
    }
}
/// A DVI team of DE, NL and the secretariat to IT, for `CRISIS`.
fn crisis_request(n: u128) -> RequestDeployment {
    RequestDeployment {
        deployment_id: deployment_id(n),
        team: Team::Dvi,
        host_country: cc("IT"),
        crisis_id: Some(CRISIS),
        operation_id: None,
        reason: "identify the victims of the earthquake".into(),
        members: vec![
            member("Anna Schmidt", "team leader", "DE"),
            member("Jan de Vries", "forensic odontologist", "NL"),
            member("Karl Weber", "fingerprint expert", "DE"),
            member("Ines Moreau", "IRT coordinator", "GS"),
        ],
    }
}
/// A cyber team of FR and DE to ES, for `OP`.
fn operation_request(n: u128) -> RequestDeployment {
    RequestDeployment {
        deployment_id: deployment_id(n),
        team: Team::Cyber,
        host_country: cc("ES"),
        crisis_id: None,
        operation_id: Some(OP),
        reason: "image the seized servers".into(),
        members: vec![
            member("Claire Martin", "team leader", "FR"),
            member("Lukas Braun", "malware analyst", "DE"),
        ],
    }
}
fn approve(n: u128) -> Command {
    Command::ApproveDeployment(ApproveDeployment {
        deployment_id: deployment_id(n),
    })
}
fn arrive(n: u128) -> Command {
    Command::MarkArrived(MarkArrived {
        deployment_id: deployment_id(n),
    })
}
fn end(n: u128, report: &str) -> Command {
    Command::EndDeployment(EndDeployment {
        deployment_id: deployment_id(n),
        report: report.into(),
    })
}

/// Real events of four deployments: every event type, a deployment for a
/// crisis and one for an operation, the secretariat contributing.
fn story() -> (Vec<Event>, Vec<(&'static str, Value)>) {
    let mut events = Vec::new();
    let mut commands = Vec::new();
    let mut keep = |s: &mut Stream| {
        events.append(&mut s.events);
        commands.append(&mut s.commands);
    };

    // To a crisis: requested, approved, arrived, asked to stand down once
    // the crisis closed, ended.
    let mut s = Stream::new();
    s.run(Command::RequestDeployment(crisis_request(1)), liaison("DE"))
        .run(approve(1), liaison("IT"))
        .run(arrive(1), liaison("NL"))
        .close_crisis()
        .run(
            Command::RequestStandDown(RequestStandDown {
                deployment_id: deployment_id(1),
                crisis_id: CRISIS,
                reason: "crisis closed: relief over".into(),
            }),
            actor(Role::Coordinator, "GS"),
        )
        .run(end(1, "212 victims identified\n\"handed over\""), liaison("IT"));
    keep(&mut s);

    // For an operation: declined by the host.
    let mut s = Stream::new();
    s.run(Command::RequestDeployment(operation_request(2)), liaison("FR"))
        .run(
            Command::DeclineDeployment(DeclineDeployment {
                deployment_id: deployment_id(2),
                reason: "our own unit has it in hand".into(),
            }),
            liaison("ES"),
        );
    keep(&mut s);

    // An incident response team of one, recalled after approval.
    let mut s = Stream::new();
    s.run(
        Command::RequestDeployment(RequestDeployment {
            team: Team::Irt,
            members: vec![member("Ana Novak", "liaison officer", "SI")],
            ..crisis_request(3)
        }),
        liaison("SI"),
    )
    .run(approve(3), liaison("IT"))
    .run(
        Command::Recall(Recall {
            deployment_id: deployment_id(3),
            reason: "needed at home".into(),
        }),
        liaison("SI"),
    );
    keep(&mut s);

    // For an operation, approved and ended before arriving.
    let mut s = Stream::new();
    s.run(
        Command::RequestDeployment(RequestDeployment {
            team: Team::Forensics,
            ..operation_request(4)
        }),
        liaison("DE"),
    )
    .run(approve(4), liaison("ES"))
    .run(end(4, "no longer needed"), liaison("FR"));
    keep(&mut s);

    (events, commands)
}

fn events() -> Vec<Event> {
    story().0
}

/// The first event of `event_type` in the story that `pick` likes, as
/// stored.
fn sample_where(event_type: &str, pick: impl Fn(&Value) -> bool) -> Value {
    events()
        .iter()
        .filter(|e| e.event_type() == event_type)
        .map(Event::data)
        .find(pick)
        .unwrap_or_else(|| panic!("the story has no such {event_type}"))
}

fn sample(event_type: &str) -> Value {
    sample_where(event_type, |_| true)
}

/// `n` distinct officers of DE.
fn officers(n: usize) -> Value {
    (0..n)
        .map(|i| json!({"name": format!("officer {i}"), "role": "officer", "country": "DE"}))
        .collect()
}

// ------------------------------------------------------------ event schemas

#[test]
fn there_is_one_schema_per_event_type_and_no_other() {
    let files: BTreeSet<String> = schema_files(EVENT_SCHEMA_DIR).into_keys().collect();
    let types: BTreeSet<String> = EVENT_TYPES.iter().map(|t| (*t).to_owned()).collect();
    let missing: Vec<&String> = types.difference(&files).collect();
    let extra: Vec<&String> = files.difference(&types).collect();
    assert!(missing.is_empty(), "event types without a schema: {missing:?}");
    assert!(extra.is_empty(), "schemas without an event type: {extra:?}");
}

#[test]
fn every_event_schema_names_itself() {
    for (event_type, text) in schema_files(EVENT_SCHEMA_DIR) {
        let schema: Value = serde_json::from_str(&text).unwrap_or_else(|e| panic!("{event_type}: {e}"));
        assert_eq!(
            schema["$schema"], "https://json-schema.org/draft/2020-12/schema",
            "{event_type}"
        );
        assert_eq!(
            schema["$id"],
            format!("https://concord.example/schemas/events/deployments/{event_type}{SUFFIX}"),
        );
        assert_eq!(schema["title"], format!("deployments {event_type}"));
        assert_eq!(schema["type"], "object", "{event_type}");
        assert_eq!(schema["additionalProperties"], false, "{event_type}");
        assert!(schema["description"].is_string(), "{event_type} has a description");
    }
}

#[test]
fn every_event_decide_produces_matches_its_schema() {
    let schemas = schemas();
    let events = events();
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
    let requested: Vec<Value> = events
        .iter()
        .filter(|e| e.event_type() == "deployment.requested")
        .map(Event::data)
        .collect();
    for field in ["crisis_id", "operation_id"] {
        assert!(requested.iter().any(|d| d[field].is_null()), "{field} null");
        assert!(requested.iter().any(|d| !d[field].is_null()), "{field} given");
    }
    // The secretariat contributes, sorted among the countries.
    assert!(
        requested
            .iter()
            .any(|d| d["contributing_countries"] == json!(["DE", "GS", "NL"]))
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
        let fields: Vec<String> = data.as_object().expect("an object").keys().cloned().collect();
        for field in &fields {
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
    // A member is as closed.
    let requested = sample("deployment.requested");
    assert_refused(
        &schemas,
        "deployment.requested",
        &with(&requested, "/members/0/extra", Some(json!(1))),
        "additionalProperties",
    );
    for field in ["name", "role", "country"] {
        assert_refused(
            &schemas,
            "deployment.requested",
            &with(&requested, &format!("/members/0/{field}"), None),
            "required",
        );
    }
}

#[test]
fn each_event_schema_refuses_what_the_rust_types_refuse() {
    let schemas = schemas();
    let refused = |event_type: &str, data: &Value, at: &str, value: Value, keyword: &str| {
        assert_refused(&schemas, event_type, &with(data, at, Some(value)), keyword);
    };

    let requested = sample_where("deployment.requested", |d| !d["crisis_id"].is_null());
    let s = |at: &str, value: Value, keyword: &str| refused("deployment.requested", &requested, at, value, keyword);
    s("/deployment_id", json!("deployment-1"), "format");
    s("/deployment_id", json!(null), "type");
    s("/team", json!("swat"), "enum");
    s("/team", json!("DVI"), "enum");
    s("/host_country", json!("GS"), "not");
    s("/host_country", json!("it"), "pattern");
    s("/crisis_id", json!("crisis-1"), "format");
    s("/crisis_id", json!(7), "type");
    // Both or neither.
    s("/operation_id", json!(OP), "oneOf");
    s("/crisis_id", json!(null), "oneOf");
    s("/contributing_countries", json!([]), "minItems");
    s("/contributing_countries", json!(["DE", "DE"]), "uniqueItems");
    s("/contributing_countries", json!(["Germany"]), "pattern");
    s("/contributing_countries", json!(null), "type");
    s("/members", json!([]), "minItems");
    s("/members", officers(MEMBERS_MAX + 1), "maxItems");
    s(
        "/members",
        json!([{"name": "a", "role": "r", "country": "DE"}, {"name": "a", "role": "r", "country": "DE"}]),
        "uniqueItems",
    );
    s("/members/0/name", json!(""), "minLength");
    s("/members/0/name", json!(" \u{a0} "), "pattern");
    s("/members/0/name", json!("n".repeat(201)), "maxLength");
    s("/members/0/role", json!("\t"), "pattern");
    s("/members/0/role", json!("r".repeat(201)), "maxLength");
    s("/members/0/country", json!("DEU"), "pattern");
    s("/reason", json!(""), "minLength");
    s("/reason", json!("\u{3000}"), "pattern");
    s("/reason", json!("r".repeat(4001)), "maxLength");
    s("/requesting_country", json!(null), "type");
    s("/requested_by", json!(""), "minLength");
    s("/requested_by", json!("x".repeat(129)), "maxLength");
    s("/requested_at", json!("2026-11-23T09:30:00Z"), "pattern");
    s("/requested_at", json!("2026-11-31T09:30:00.000000Z"), "format");
    assert_valid(
        &schemas,
        "deployment.requested",
        &with(&requested, "/members", Some(officers(MEMBERS_MAX))),
    );

    let for_op = sample_where("deployment.requested", |d| !d["operation_id"].is_null());
    refused("deployment.requested", &for_op, "/operation_id", json!("op"), "format");
    refused("deployment.requested", &for_op, "/operation_id", json!(null), "oneOf");

    let approved = sample("deployment.approved");
    refused("deployment.approved", &approved, "/approved_by", json!(""), "minLength");
    refused("deployment.approved", &approved, "/approved_by", json!(null), "type");
    refused("deployment.approved", &approved, "/approved_at", json!("now"), "format");

    let declined = sample("deployment.declined");
    let s = |at: &str, value: Value, keyword: &str| refused("deployment.declined", &declined, at, value, keyword);
    s("/reason", json!(""), "minLength");
    s("/reason", json!("\r\n"), "pattern");
    s("/reason", json!("r".repeat(4001)), "maxLength");
    s("/declined_by", json!("x".repeat(129)), "maxLength");
    s("/declined_at", json!("2026-11-23T09:30:00.000000+00:00"), "pattern");

    let arrived = sample("deployment.arrived");
    refused(
        "deployment.arrived",
        &arrived,
        "/arrived_at",
        json!("2026-11-23"),
        "format",
    );
    refused("deployment.arrived", &arrived, "/marked_by", json!(null), "type");

    let ended = sample("deployment.ended");
    let s = |at: &str, value: Value, keyword: &str| refused("deployment.ended", &ended, at, value, keyword);
    s("/report", json!(" "), "pattern");
    s("/report", json!("r".repeat(4001)), "maxLength");
    s("/ended_by", json!(""), "minLength");
    s("/ended_at", json!(null), "type");

    let recalled = sample("deployment.recalled");
    let s = |at: &str, value: Value, keyword: &str| refused("deployment.recalled", &recalled, at, value, keyword);
    s("/reason", json!(""), "minLength");
    s("/recalled_by", json!(1), "type");
    s("/recalled_at", json!("2026-11-23T09:30:00.000Z"), "pattern");

    let stood_down = sample("deployment.stand_down_requested");
    let s = |at: &str, value: Value, keyword: &str| {
        refused("deployment.stand_down_requested", &stood_down, at, value, keyword)
    };
    s("/crisis_id", json!("crisis-1"), "format");
    s("/crisis_id", json!(null), "type");
    s("/reason", json!("\u{2028}"), "pattern");
    s("/reason", json!("r".repeat(4001)), "maxLength");
    s("/requested_at", json!("yesterday"), "format");
}

/// The schema's "not blank" is `decide`'s (`str::trim` is empty), and so
/// are its lengths, in characters.
#[test]
fn blank_and_long_mean_the_same_to_the_schema_and_to_decide() {
    let schemas = schemas();
    let data = sample_where("deployment.requested", |d| !d["crisis_id"].is_null());
    let texts: Vec<String> = [
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
    ]
    .into_iter()
    .map(str::to_owned)
    .chain(["é".repeat(200), "é".repeat(201), "é".repeat(4000), "é".repeat(4001)])
    .collect();
    for text in &texts {
        for (at, change) in [
            (
                "/reason",
                Box::new(|c: &mut RequestDeployment| c.reason = text.clone()) as Box<dyn Fn(&mut RequestDeployment)>,
            ),
            (
                "/members/0/name",
                Box::new(|c: &mut RequestDeployment| c.members[0].name = text.clone()),
            ),
            (
                "/members/0/role",
                Box::new(|c: &mut RequestDeployment| c.members[0].role = text.clone()),
            ),
        ] {
            let mut cmd = crisis_request(9);
            change(&mut cmd);
            let decided = Stream::new().decide(&Command::RequestDeployment(cmd), liaison("DE"));
            let schema_ok =
                violations(&schemas, "deployment.requested", &with(&data, at, Some(json!(text)))).is_empty();
            assert_eq!(
                schema_ok,
                decided.is_ok(),
                "{at} of {} characters {:?}: decide says {decided:?}",
                text.chars().count(),
                text.get(..8)
            );
        }
    }
    // The report of an end.
    let ended = sample("deployment.ended");
    for text in &texts {
        let mut s = Stream::new();
        s.run(Command::RequestDeployment(crisis_request(9)), liaison("DE"))
            .run(approve(9), liaison("IT"));
        let decided = s.decide(&end(9, text), liaison("IT"));
        let schema_ok = violations(
            &schemas,
            "deployment.ended",
            &with(&ended, "/report", Some(json!(text))),
        )
        .is_empty();
        assert_eq!(
            schema_ok,
            decided.is_ok(),
            "report {:?}: decide says {decided:?}",
            text.get(..8)
        );
    }
}

// ------------------------------------------------------------ command schemas

#[test]
fn there_is_one_schema_per_command_and_each_names_itself() {
    let files = schema_files(COMMAND_SCHEMA_DIR);
    let names: BTreeSet<&str> = files.keys().map(String::as_str).collect();
    assert_eq!(names, COMMANDS.into_iter().collect());
    for (name, text) in files {
        let schema: Value = serde_json::from_str(&text).unwrap_or_else(|e| panic!("{name}: {e}"));
        assert_eq!(
            schema["$schema"], "https://json-schema.org/draft/2020-12/schema",
            "{name}"
        );
        assert_eq!(
            schema["$id"],
            format!("https://concord.example/schemas/commands/deployments/{name}{SUFFIX}"),
        );
        assert_eq!(schema["title"], format!("deployments.{name}"));
        assert_eq!(schema["type"], "object", "{name}");
        assert_eq!(schema["additionalProperties"], false, "{name}");
        assert!(schema["description"].is_string(), "{name} has a description");
    }
}

/// A body of each command with every field it accepts given, in the order
/// of `COMMANDS`.
fn full_bodies() -> [Value; 7] {
    let id = deployment_id(1);
    [
        json!({"deployment_id": id, "team": "imest", "host_country": "IT", "crisis_id": CRISIS, "operation_id": OP,
               "reason": "r", "members": [{"name": "n", "role": "r", "country": "DE"}]}),
        json!({"deployment_id": id}),
        json!({"deployment_id": id, "reason": "r"}),
        json!({"deployment_id": id}),
        json!({"deployment_id": id, "report": "r"}),
        json!({"deployment_id": id, "reason": "r"}),
        json!({"deployment_id": id, "crisis_id": CRISIS, "reason": "r"}),
    ]
}

/// The properties of each command schema are exactly the fields its struct
/// accepts (as serde writes them back), its required ones exactly those the
/// struct cannot do without, and neither takes one more.
#[test]
fn every_command_schema_lists_exactly_the_fields_its_command_accepts() {
    let files = schema_files(COMMAND_SCHEMA_DIR);
    for (name, full) in COMMANDS.into_iter().zip(full_bodies()) {
        let schema: Value = serde_json::from_str(&files[name]).unwrap_or_else(|e| panic!("{name}: {e}"));
        let cmd = parse_command(name, full.clone()).unwrap_or_else(|e| panic!("{name}: {e}"));
        assert_eq!(cmd.name(), name);
        let accepted = names(&accepted_fields(&cmd));
        assert_eq!(names(&schema["properties"]), accepted, "{name} properties");
        assert_eq!(names(&full), accepted, "{name}: the full body gives every field");
        let required = names(&schema["required"]);
        for field in &accepted {
            let parses = parse_command(name, with(&full, &format!("/{field}"), None)).is_ok();
            assert_eq!(
                !parses,
                required.contains(field),
                "{name}.{field}: required by the schema iff the struct needs it"
            );
        }
        assert!(
            parse_command(name, with(&full, "/extra", Some(json!(1)))).is_err(),
            "{name} takes an unknown field"
        );
    }
    // A member, likewise.
    let schema: Value = serde_json::from_str(&files["request_deployment"]).expect("JSON");
    let member_schema = &schema["$defs"]["member"];
    assert_eq!(member_schema["additionalProperties"], false);
    let member = serde_json::to_value(Member {
        name: "n".into(),
        role: "r".into(),
        country: cc("DE"),
    })
    .expect("serializes");
    assert_eq!(names(&member_schema["properties"]), names(&member));
    assert_eq!(names(&member_schema["required"]), names(&member));
    let full = &full_bodies()[0];
    for field in names(&member) {
        let body = with(full, &format!("/members/0/{field}"), None);
        assert!(
            parse_command("request_deployment", body).is_err(),
            "member without {field}"
        );
    }
    let body = with(full, "/members/0/extra", Some(json!(1)));
    assert!(parse_command("request_deployment", body).is_err(), "member with extra");
}

#[test]
fn the_command_schemas_accept_what_decide_accepts_and_refuse_the_rest() {
    let schemas = compile(COMMAND_SCHEMA_DIR);
    let (_, commands) = story();
    let used: BTreeSet<&str> = commands.iter().map(|(name, _)| *name).collect();
    assert_eq!(used, COMMANDS.into_iter().collect(), "the story sends every command");
    for (name, body) in &commands {
        assert_valid(&schemas, name, body);
        assert_refused(
            &schemas,
            name,
            &with(body, "/extra", Some(json!(1))),
            "additionalProperties",
        );
    }

    let crisis = body(&Command::RequestDeployment(crisis_request(1)));
    let operation = body(&Command::RequestDeployment(operation_request(2)));
    let refused = |body: &Value, at: &str, value: Option<Value>, keyword: &str| {
        assert_refused(&schemas, "request_deployment", &with(body, at, value), keyword);
    };
    refused(&crisis, "/operation_id", Some(json!(OP)), "oneOf");
    refused(&crisis, "/crisis_id", None, "oneOf");
    refused(&operation, "/operation_id", None, "oneOf");
    refused(&crisis, "/crisis_id", Some(json!(null)), "type");
    refused(&crisis, "/team", Some(json!("swat")), "enum");
    refused(&crisis, "/host_country", Some(json!("GS")), "not");
    refused(&crisis, "/host_country", Some(json!("Italy")), "pattern");
    refused(&crisis, "/reason", Some(json!("")), "minLength");
    refused(&crisis, "/reason", Some(json!("r".repeat(4001))), "maxLength");
    refused(&crisis, "/members", Some(json!([])), "minItems");
    refused(&crisis, "/members", Some(officers(MEMBERS_MAX + 1)), "maxItems");
    refused(
        &crisis,
        "/members",
        Some(json!([{"name": "a", "role": "r", "country": "DE"}, {"name": "a", "role": "r", "country": "DE"}])),
        "uniqueItems",
    );
    refused(&crisis, "/members/0/name", Some(json!("")), "minLength");
    refused(&crisis, "/members/0/role", Some(json!("r".repeat(201))), "maxLength");
    refused(&crisis, "/members/0/country", Some(json!("de")), "pattern");
    let end = json!({"deployment_id": deployment_id(1), "report": ""});
    assert_refused(&schemas, "end_deployment", &end, "minLength");
    let stand_down = json!({"deployment_id": deployment_id(1), "crisis_id": "c", "reason": "r"});
    assert_refused(&schemas, "request_stand_down", &stand_down, "format");
}

#[test]
fn the_get_query_schema_names_a_deployment_and_the_asker() {
    let schema: Value = serde_json::from_str(QUERY_SCHEMA).expect("get schema is JSON");
    assert_eq!(schema["title"], "deployments.get");
    assert_eq!(schema["additionalProperties"], false);
    assert_eq!(
        names(&schema["properties"]),
        ["deployment_id", "country", "role"].map(str::to_owned).into()
    );
    assert_eq!(
        names(&schema["required"]),
        ["deployment_id", "country"].map(str::to_owned).into()
    );
    let schemas = Schemas::compile([("get", QUERY_SCHEMA)]).expect("compiles");
    let id = deployment_id(1);
    for ok in [
        json!({"deployment_id": id, "country": "IT"}),
        json!({"deployment_id": id, "country": "GS", "role": "auditor"}),
    ] {
        assert_valid(&schemas, "get", &ok);
    }
    assert_refused(&schemas, "get", &json!({"country": "IT"}), "required");
    assert_refused(&schemas, "get", &json!({"deployment_id": id}), "required");
    assert_refused(
        &schemas,
        "get",
        &json!({"deployment_id": "d-1", "country": "IT"}),
        "format",
    );
    assert_refused(
        &schemas,
        "get",
        &json!({"deployment_id": id, "country": "it"}),
        "pattern",
    );
    assert_refused(
        &schemas,
        "get",
        &json!({"deployment_id": id, "country": "IT", "role": "admin"}),
        "enum",
    );
    assert_refused(
        &schemas,
        "get",
        &json!({"deployment_id": id, "country": "IT", "kind": "deployment"}),
        "additionalProperties",
    );
}
