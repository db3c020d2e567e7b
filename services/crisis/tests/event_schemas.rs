//! The JSON Schemas of the crisis events (`schemas/events/crisis`) against
//! the events `decide` really produces: one schema per event type and no
//! other, every real event's `data` valid (optional fields given and left
//! out), and what the Rust types and `decide` refuse refused by the schemas
//! too. Then the command schemas (`schemas/commands/crisis`) against the
//! command structs: the same fields, the same required ones, the same
//! limits, and the query schema. Pure: no NATS, no log; the teams view is
//! folded from deployments event data shaped as that service records it.

use std::collections::{BTreeMap, BTreeSet};

use concord_bus::schema::Schemas;
use concord_core::{Actor, CountryCode, Role};
use concord_crisis::domain::{
    COMMANDS, Casualties, ChangeSeverity, CloseCrisis, Command, CrisisKind, Ctx, DETAILS_CHARS_MAX, DeclareCrisis,
    EVENT_TYPES, Event, Need, PostSitrep, REASON_CHARS_MAX, RequestAssistance, SEVERITY_MAX, SEVERITY_MIN,
    SITREP_TEXT_CHARS_MAX, SUMMARY_CHARS_MAX, Severity, State, TITLE_CHARS_MAX, TeamsView, decide, parse_command,
    try_evolve,
};
use concord_testkit::schemas::{assert_refused, assert_valid, violations};
use serde_json::{Value, json};
use uuid::Uuid;

const SCHEMA_DIR: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/../../schemas/events/crisis");
const COMMAND_SCHEMA_DIR: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/../../schemas/commands/crisis");
const SUFFIX: &str = ".schema.json";

/// The runtime's clock: RFC 3339 UTC with microseconds.
const NOW: &str = "2026-11-23T09:30:00.000000Z";

// ------------------------------------------------------------ schemas

/// Every `<name>.schema.json` of `dir`, by name.
fn schema_files_in(dir: &str) -> BTreeMap<String, String> {
    concord_testkit::schemas::schema_files(dir)
}

fn schema_files() -> BTreeMap<String, String> {
    schema_files_in(SCHEMA_DIR)
}

fn compile(files: &BTreeMap<String, String>) -> Schemas {
    Schemas::compile(files.iter().map(|(t, text)| (t.as_str(), text.as_str()))).expect("every schema compiles")
}

fn schemas() -> Schemas {
    compile(&schema_files())
}

fn command_schemas() -> Schemas {
    compile(&schema_files_in(COMMAND_SCHEMA_DIR))
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
fn sev(n: u8) -> Severity {
    Severity::try_from(n).expect("1 to 5")
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

fn id(kind: u128, n: u128) -> Uuid {
    Uuid::from_u128(0x019a_b0c4_5e00_7000_8000_0000_0000_0000 + (kind << 16) + n)
}
fn crisis_id(n: u128) -> Uuid {
    id(1, n)
}
fn sitrep_id(n: u128) -> Uuid {
    id(2, n)
}
fn request_id(n: u128) -> Uuid {
    id(3, n)
}
fn deployment_id(n: u128) -> Uuid {
    id(4, n)
}

/// What crisis knows of deployments: DE and GS contribute an approved team
/// to crisis 1, as the deployments service would record it.
fn teams() -> TeamsView {
    let dep = deployment_id(1);
    let stream = format!("deployment-{dep}");
    let mut view = TeamsView::default();
    for (event_type, data) in [
        (
            "deployment.requested",
            json!({
                "deployment_id": dep,
                "team": "DVI team",
                "host_country": "FR",
                "crisis_id": crisis_id(1),
                "operation_id": null,
                "contributing_countries": ["DE", "GS"],
                "members": [{"name": "Dr A. Weber", "role": "odontologist", "country": "DE"}],
                "reason": "victim identification",
                "requesting_country": "FR",
                "requested_by": "fr-liaison",
                "requested_at": NOW,
            }),
        ),
        (
            "deployment.approved",
            json!({"approved_by": "fr-liaison", "approved_at": NOW}),
        ),
    ] {
        view.apply(&stream, event_type, &data)
            .expect("the view folds deployments events");
    }
    view
}

/// One crisis stream, driven through `decide` and `try_evolve` as the
/// service drives it.
struct Stream<'a> {
    teams: &'a TeamsView,
    state: State,
    events: Vec<Event>,
}

impl<'a> Stream<'a> {
    fn new(teams: &'a TeamsView) -> Stream<'a> {
        Stream {
            teams,
            state: State::default(),
            events: Vec::new(),
        }
    }

    fn decide(&self, cmd: &Command, actor: Actor) -> Result<Vec<Event>, String> {
        let ctx = Ctx { actor, now: NOW.into() };
        decide(&self.state, cmd, self.teams, &ctx).map_err(|r| r.to_string())
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

fn declare(n: u128, kind: CrisisKind, country: &str, severity: u8) -> Command {
    Command::DeclareCrisis(DeclareCrisis {
        crisis_id: crisis_id(n),
        kind,
        title: "Floods in the Var".into(),
        country: cc(country),
        severity: sev(severity),
    })
}
fn sitrep(crisis: u128, n: u128, casualties: Option<Casualties>, needs: Option<&[Need]>) -> Command {
    Command::PostSitrep(PostSitrep {
        crisis_id: crisis_id(crisis),
        sitrep_id: sitrep_id(n),
        text: "water receding in Draguignan".into(),
        casualties,
        needs: needs.map(<[Need]>::to_vec),
    })
}
fn assistance(crisis: u128, n: u128, needs: &[Need], details: Option<&str>) -> Command {
    Command::RequestAssistance(RequestAssistance {
        crisis_id: crisis_id(crisis),
        request_id: request_id(n),
        needs: needs.to_vec(),
        details: details.map(Into::into),
    })
}
fn change(crisis: u128, severity: u8, reason: &str) -> ChangeSeverity {
    ChangeSeverity {
        crisis_id: crisis_id(crisis),
        severity: sev(severity),
        reason: reason.into(),
    }
}
fn close(crisis: u128, summary: &str) -> Command {
    Command::CloseCrisis(CloseCrisis {
        crisis_id: crisis_id(crisis),
        summary: summary.into(),
    })
}

/// Real events of two crises: every event type, every optional field both
/// given and not (stored as `null`), casualties with some counts reported
/// and some not, needs stated, empty and not stated, and a sitrep from a
/// country with a team there.
fn story() -> Vec<Event> {
    let teams = teams();
    let mut events = Vec::new();

    let mut crisis = Stream::new(&teams);
    crisis
        .run(declare(1, CrisisKind::NaturalDisaster, "FR", 3), liaison("FR"))
        .run(sitrep(1, 1, None, None), liaison("FR"))
        .run(
            sitrep(
                1,
                2,
                Some(Casualties {
                    dead: Some(3),
                    injured: None,
                    missing: Some(12),
                }),
                Some(&[Need::SearchRescue, Need::Dvi, Need::SearchRescue]),
            ),
            liaison("FR"),
        )
        .run(
            sitrep(
                1,
                3,
                Some(Casualties {
                    dead: None,
                    injured: Some(0),
                    missing: None,
                }),
                Some(&[]),
            ),
            liaison("DE"),
        )
        .run(
            sitrep(
                1,
                4,
                Some(Casualties {
                    dead: Some(0),
                    injured: Some(40),
                    missing: Some(u32::MAX),
                }),
                Some(&Need::ALL),
            ),
            liaison("GS"),
        )
        .run(assistance(1, 1, &[Need::Dvi], None), liaison("FR"))
        .run(
            assistance(
                1,
                2,
                &[Need::Medical, Need::Logistics, Need::Medical],
                Some("two field hospitals"),
            ),
            liaison("FR"),
        )
        .run(Command::Escalate(change(1, 5, "second dam failed")), liaison("FR"))
        .run(Command::Deescalate(change(1, 4, "water receding")), liaison("FR"))
        .run(Command::Deescalate(change(1, 1, "roads open again")), liaison("FR"))
        .run(Command::Escalate(change(1, 2, "landslide")), liaison("FR"))
        .run(close(1, "all missing persons accounted for"), liaison("FR"));
    events.append(&mut crisis.events);

    let mut crisis = Stream::new(&teams);
    crisis
        .run(declare(2, CrisisKind::CyberIncident, "GR", 1), liaison("GR"))
        .run(close(2, "false alarm"), liaison("GR"));
    events.append(&mut crisis.events);

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

// ------------------------------------------------------------ event schemas

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
    for (dir, files, title) in [
        ("events", schema_files(), "crisis "),
        ("commands", schema_files_in(COMMAND_SCHEMA_DIR), "crisis."),
    ] {
        for (name, text) in files {
            let schema: Value = serde_json::from_str(&text).unwrap_or_else(|e| panic!("{name}: {e}"));
            assert_eq!(
                schema["$schema"], "https://json-schema.org/draft/2020-12/schema",
                "{name}"
            );
            assert_eq!(
                schema["$id"],
                format!("https://concord.example/schemas/{dir}/crisis/{name}{SUFFIX}"),
            );
            assert_eq!(schema["title"], format!("{title}{name}"));
            assert_eq!(schema["type"], "object", "{name}");
            assert_eq!(schema["additionalProperties"], false, "{name}");
            assert!(schema["description"].is_string(), "{name} has a description");
        }
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
        ("sitrep.posted", "/casualties"),
        ("sitrep.posted", "/casualties/dead"),
        ("sitrep.posted", "/casualties/injured"),
        ("sitrep.posted", "/casualties/missing"),
        ("sitrep.posted", "/needs"),
        ("assistance.requested", "/details"),
    ] {
        let values: Vec<Value> = data_of(event_type)
            .iter()
            .filter_map(|d| d.pointer(pointer).cloned())
            .collect();
        assert!(values.iter().any(Value::is_null), "{event_type}{pointer} null");
        assert!(values.iter().any(|v| !v.is_null()), "{event_type}{pointer} given");
    }
    // Needs as decide stores them: deduplicated, in the order of Need::ALL.
    let needs: BTreeSet<String> = data_of("sitrep.posted")
        .iter()
        .map(|d| d["needs"].to_string())
        .collect();
    let all: Vec<&str> = Need::ALL.iter().map(Need::as_str).collect();
    assert_eq!(
        needs,
        BTreeSet::from([json!(null), json!(["dvi", "search_rescue"]), json!([]), json!(all)].map(|v| v.to_string())),
    );
    assert_eq!(
        sample_where("assistance.requested", |d| !d["details"].is_null())["needs"],
        json!(["medical", "logistics"])
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
        for field in fields {
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
    // The casualties inside a sitrep are as closed.
    let posted = sample_where("sitrep.posted", |d| !d["casualties"].is_null());
    assert_refused(
        &schemas,
        "sitrep.posted",
        &with(&posted, "/casualties/wounded", Some(json!(1))),
        "additionalProperties",
    );
    for count in ["dead", "injured", "missing"] {
        assert_refused(
            &schemas,
            "sitrep.posted",
            &with(&posted, &format!("/casualties/{count}"), None),
            "required",
        );
    }
}

#[test]
fn each_schema_refuses_what_the_rust_types_refuse() {
    let schemas = schemas();
    let refused = |event_type: &str, data: &Value, at: &str, value: Value, keyword: &str| {
        assert_refused(&schemas, event_type, &with(data, at, Some(value)), keyword);
    };

    let declared = sample("crisis.declared");
    let s = |at: &str, value: Value, keyword: &str| refused("crisis.declared", &declared, at, value, keyword);
    s("/crisis_id", json!("crisis-1"), "format");
    s("/kind", json!("alien_invasion"), "enum");
    s("/kind", json!(null), "enum");
    s("/title", json!(""), "minLength");
    s("/title", json!(" \u{a0} "), "pattern");
    s("/title", json!("t".repeat(TITLE_CHARS_MAX + 1)), "maxLength");
    s("/country", json!("GS"), "not");
    s("/country", json!("fr"), "pattern");
    s("/severity", json!(0), "minimum");
    s("/severity", json!(6), "maximum");
    s("/severity", json!("3"), "type");
    s("/severity", json!(2.5), "type");
    s("/declared_by", json!(""), "minLength");
    s("/declared_by", json!("x".repeat(129)), "maxLength");
    s("/declared_at", json!("2026-11-23T09:30:00Z"), "pattern");
    s("/declared_at", json!("2026-11-31T09:30:00.000000Z"), "format");

    let posted = sample_where("sitrep.posted", |d| !d["casualties"].is_null() && !d["needs"].is_null());
    let s = |at: &str, value: Value, keyword: &str| refused("sitrep.posted", &posted, at, value, keyword);
    s("/sitrep_id", json!(42), "type");
    s("/text", json!(""), "minLength");
    s("/text", json!("\u{3000}"), "pattern");
    s("/text", json!("t".repeat(SITREP_TEXT_CHARS_MAX + 1)), "maxLength");
    s("/casualties", json!("many"), "type");
    s(
        "/casualties",
        json!({"dead": null, "injured": null, "missing": null}),
        "anyOf",
    );
    s("/casualties/dead", json!(-1), "minimum");
    s("/casualties/dead", json!(u64::from(u32::MAX) + 1), "maximum");
    s("/casualties/injured", json!(1.5), "type");
    s("/casualties/missing", json!("12"), "type");
    s("/needs", json!(["helicopters"]), "enum");
    s("/needs", json!(["dvi", "dvi"]), "uniqueItems");
    s("/needs", json!("dvi"), "type");
    s("/country", json!("DEU"), "pattern");
    s("/posted_by", json!(null), "type");
    s("/posted_at", json!("now"), "format");

    let requested = sample_where("assistance.requested", |d| !d["details"].is_null());
    let s = |at: &str, value: Value, keyword: &str| refused("assistance.requested", &requested, at, value, keyword);
    s("/request_id", json!("request-1"), "format");
    s("/needs", json!([]), "minItems");
    s("/needs", json!(null), "type");
    s("/needs", json!(["medical", "medical"]), "uniqueItems");
    s("/needs", json!(["tanks"]), "enum");
    s("/details", json!(""), "minLength");
    s("/details", json!("\r\n"), "pattern");
    s("/details", json!("d".repeat(DETAILS_CHARS_MAX + 1)), "maxLength");
    s("/details", json!(5), "type");
    s("/requested_by", json!(""), "minLength");
    s("/requested_at", json!("2026-11-23"), "format");

    for (event_type, same, wrong_way) in [
        (
            "crisis.escalated",
            json!({"from": 3, "to": 3}),
            json!({"from": 3, "to": 2}),
        ),
        (
            "crisis.deescalated",
            json!({"from": 3, "to": 3}),
            json!({"from": 3, "to": 4}),
        ),
    ] {
        let data = sample(event_type);
        let s = |at: &str, value: Value, keyword: &str| refused(event_type, &data, at, value, keyword);
        s("/from", json!(0), "minimum");
        s("/to", json!(6), "maximum");
        s("/to", json!(null), "type");
        s("/reason", json!(""), "minLength");
        s("/reason", json!(" "), "pattern");
        s("/reason", json!("r".repeat(REASON_CHARS_MAX + 1)), "maxLength");
        s("/by", json!(""), "minLength");
        s("/at", json!("2026-11-23T09:30:00.000000+00:00"), "pattern");
        for change in [same, wrong_way] {
            let moved = with(
                &with(&data, "/from", Some(change["from"].clone())),
                "/to",
                Some(change["to"].clone()),
            );
            assert_refused(&schemas, event_type, &moved, "anyOf");
        }
    }

    let closed = sample("crisis.closed");
    let s = |at: &str, value: Value, keyword: &str| refused("crisis.closed", &closed, at, value, keyword);
    s("/crisis_id", json!(null), "type");
    s("/summary", json!(""), "minLength");
    s("/summary", json!("\t"), "pattern");
    s("/summary", json!("s".repeat(SUMMARY_CHARS_MAX + 1)), "maxLength");
    s("/closed_by", json!(""), "minLength");
    s("/closed_at", json!("2026-11-23"), "format");
}

/// `decide` escalates exactly when the new severity is higher, and the
/// escalated schema takes exactly those changes; the same for
/// de-escalating and lower.
#[test]
fn a_change_of_severity_means_the_same_to_the_schema_and_to_decide() {
    let schemas = schemas();
    let teams = teams();
    for from in SEVERITY_MIN..=SEVERITY_MAX {
        let mut crisis = Stream::new(&teams);
        crisis.run(declare(9, CrisisKind::Other, "FR", from), liaison("FR"));
        for to in SEVERITY_MIN..=SEVERITY_MAX {
            for (event_type, cmd) in [
                ("crisis.escalated", Command::Escalate(change(9, to, "r"))),
                ("crisis.deescalated", Command::Deescalate(change(9, to, "r"))),
            ] {
                let decided = crisis.decide(&cmd, liaison("FR"));
                let as_stored = with(
                    &with(&sample(event_type), "/from", Some(json!(from))),
                    "/to",
                    Some(json!(to)),
                );
                let schema_ok = violations(&schemas, event_type, &as_stored).is_empty();
                assert_eq!(
                    schema_ok,
                    decided.is_ok(),
                    "{event_type} {from} → {to}: decide says {decided:?}"
                );
            }
        }
    }
}

/// The schema's "not blank" is `decide`'s (`str::trim` is empty).
#[test]
fn blank_means_the_same_to_the_schema_and_to_decide() {
    let schemas = schemas();
    let teams = teams();
    let data = sample("crisis.declared");
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
        let cmd = Command::DeclareCrisis(DeclareCrisis {
            title: title.into(),
            crisis_id: crisis_id(9),
            kind: CrisisKind::Other,
            country: cc("FR"),
            severity: sev(1),
        });
        let decided = Stream::new(&teams).decide(&cmd, liaison("FR"));
        let schema_ok = violations(&schemas, "crisis.declared", &with(&data, "/title", Some(json!(title)))).is_empty();
        assert_eq!(schema_ok, decided.is_ok(), "title {title:?}: decide says {decided:?}");
    }
}

/// Casualties `decide` takes, the schema takes, and the other way.
#[test]
fn casualties_mean_the_same_to_the_schema_and_to_decide() {
    let schemas = schemas();
    let teams = teams();
    let mut crisis = Stream::new(&teams);
    crisis.run(declare(9, CrisisKind::MassCasualty, "FR", 4), liaison("FR"));
    let data = sample("sitrep.posted");
    let counts = [None, Some(0), Some(7), Some(u32::MAX)];
    for dead in counts {
        for injured in counts {
            for missing in [None, Some(1)] {
                let casualties = Casualties { dead, injured, missing };
                let decided = crisis.decide(&sitrep(9, 9, Some(casualties), None), liaison("FR"));
                let as_stored = with(&data, "/casualties", Some(json!(casualties)));
                let schema_ok = violations(&schemas, "sitrep.posted", &as_stored).is_empty();
                assert_eq!(schema_ok, decided.is_ok(), "{casualties:?}: decide says {decided:?}");
            }
        }
    }
}

/// GS, the secretariat, is no place for a crisis: `decide` refuses it and
/// so does the schema; it may post a sitrep when it has a team there.
#[test]
fn the_secretariat_is_no_place_for_a_crisis_to_the_schema_either() {
    let schemas = schemas();
    let teams = teams();
    let data = sample("crisis.declared");
    for country in ["GS", "FR", "MC"] {
        let decided = Stream::new(&teams).decide(&declare(9, CrisisKind::Other, country, 2), liaison(country));
        let schema_ok = violations(
            &schemas,
            "crisis.declared",
            &with(&data, "/country", Some(json!(country))),
        )
        .is_empty();
        assert_eq!(schema_ok, decided.is_ok(), "{country}: decide says {decided:?}");
    }
    assert!(
        story()
            .iter()
            .map(Event::data)
            .any(|d| d.get("sitrep_id").is_some() && d["country"] == "GS")
    );
}

// ------------------------------------------------------------ command schemas

/// Each command as its struct, with every optional field given; the same
/// with every optional field left out. `serde_json::to_value` of the struct
/// names exactly the fields it accepts.
fn command_structs() -> Vec<(&'static str, Value, Value)> {
    fn both<T: serde::Serialize>(name: &'static str, full: T, minimal: T) -> (&'static str, Value, Value) {
        let full = serde_json::to_value(full).expect("a command serializes");
        let minimal = serde_json::to_value(minimal).expect("a command serializes");
        (name, full, minimal)
    }
    let declare = DeclareCrisis {
        crisis_id: crisis_id(1),
        kind: CrisisKind::TerroristAttack,
        title: "t".into(),
        country: cc("FR"),
        severity: sev(5),
    };
    let sitrep = PostSitrep {
        crisis_id: crisis_id(1),
        sitrep_id: sitrep_id(1),
        text: "t".into(),
        casualties: Some(Casualties {
            dead: Some(1),
            injured: Some(2),
            missing: Some(3),
        }),
        needs: Some(vec![Need::Cyber, Need::Dvi]),
    };
    let assistance = RequestAssistance {
        crisis_id: crisis_id(1),
        request_id: request_id(1),
        needs: vec![Need::Other],
        details: Some("d".into()),
    };
    let close = CloseCrisis {
        crisis_id: crisis_id(1),
        summary: "s".into(),
    };
    vec![
        both("declare_crisis", declare.clone(), declare),
        both(
            "post_sitrep",
            sitrep.clone(),
            PostSitrep {
                casualties: None,
                needs: None,
                ..sitrep
            },
        ),
        both(
            "request_assistance",
            assistance.clone(),
            RequestAssistance {
                details: None,
                ..assistance
            },
        ),
        both("escalate", change(1, 4, "r"), change(1, 4, "r")),
        both("deescalate", change(1, 2, "r"), change(1, 2, "r")),
        both("close_crisis", close.clone(), close),
    ]
}

fn names(v: &Value) -> BTreeSet<String> {
    match v {
        Value::Object(o) => o.keys().cloned().collect(),
        Value::Array(a) => a.iter().filter_map(Value::as_str).map(str::to_owned).collect(),
        _ => panic!("neither object nor array: {v}"),
    }
}
/// The members of an object that are not `null`.
fn given(v: &Value) -> Value {
    Value::Object(
        v.as_object()
            .expect("an object")
            .iter()
            .filter(|(_, x)| !x.is_null())
            .map(|(k, x)| (k.clone(), x.clone()))
            .collect(),
    )
}

#[test]
fn there_is_one_schema_per_command_and_no_other() {
    let files: BTreeSet<String> = schema_files_in(COMMAND_SCHEMA_DIR).into_keys().collect();
    let commands: BTreeSet<String> = COMMANDS.iter().map(|c| (*c).to_owned()).collect();
    assert_eq!(files, commands);
    let structs: Vec<&str> = command_structs().iter().map(|(name, _, _)| *name).collect();
    assert_eq!(structs, COMMANDS, "every command struct, in the order of COMMANDS");
}

#[test]
fn every_command_schema_lists_exactly_the_fields_its_command_accepts() {
    let files = schema_files_in(COMMAND_SCHEMA_DIR);
    let schemas = command_schemas();
    for (name, full, minimal) in command_structs() {
        let schema: Value = serde_json::from_str(&files[name]).unwrap_or_else(|e| panic!("{name}: {e}"));
        // The struct's fields are the schema's properties; the ones that
        // are not `Option` are the schema's required ones.
        assert_eq!(names(&schema["properties"]), names(&full), "{name} properties");
        assert_eq!(names(&schema["required"]), names(&given(&minimal)), "{name} required");
        // What the struct writes, the schema and parse_command take, and
        // parse_command gives the same command back.
        for body in [full.clone(), given(&minimal)] {
            assert_valid(&schemas, name, &body);
            let cmd = parse_command(name, body.clone()).unwrap_or_else(|e| panic!("{name} {body}: {e}"));
            assert_eq!(cmd.name(), name);
        }
        // Without a required field or with one more, neither takes it.
        for field in names(&schema["required"]) {
            let without = with(&full, &format!("/{field}"), None);
            assert_refused(&schemas, name, &without, "required");
            assert!(parse_command(name, without).is_err(), "{name} without {field}");
        }
        let more = with(&full, "/extra", Some(json!(1)));
        assert_refused(&schemas, name, &more, "additionalProperties");
        assert!(parse_command(name, more).is_err(), "{name} with extra");
    }
    // The casualties object too.
    let sitrep: Value = serde_json::from_str(&files["post_sitrep"]).expect("json");
    let casualties = serde_json::to_value(Casualties {
        dead: None,
        injured: None,
        missing: None,
    })
    .expect("serializes");
    assert_eq!(
        names(&sitrep["properties"]["casualties"]["properties"]),
        names(&casualties)
    );
    assert_eq!(sitrep["properties"]["casualties"]["additionalProperties"], false);
}

#[test]
fn the_command_schemas_hold_the_domain_s_values_and_limits() {
    let files = schema_files_in(COMMAND_SCHEMA_DIR);
    let schema = |name: &str| -> Value { serde_json::from_str(&files[name]).expect("json") };
    let kinds: Vec<&str> = CrisisKind::ALL.iter().map(CrisisKind::as_str).collect();
    let needs: Vec<&str> = Need::ALL.iter().map(Need::as_str).collect();
    let declare = schema("declare_crisis");
    assert_eq!(declare["properties"]["kind"]["enum"], json!(kinds));
    assert_eq!(declare["$defs"]["severity"]["minimum"], SEVERITY_MIN);
    assert_eq!(declare["$defs"]["severity"]["maximum"], SEVERITY_MAX);
    assert_eq!(declare["properties"]["title"]["maxLength"], TITLE_CHARS_MAX);
    let sitrep = schema("post_sitrep");
    assert_eq!(sitrep["$defs"]["need"]["enum"], json!(needs));
    assert_eq!(sitrep["$defs"]["count"]["maximum"], u32::MAX);
    assert_eq!(sitrep["properties"]["text"]["maxLength"], SITREP_TEXT_CHARS_MAX);
    let assistance = schema("request_assistance");
    assert_eq!(assistance["$defs"]["need"]["enum"], json!(needs));
    assert_eq!(assistance["properties"]["details"]["maxLength"], DETAILS_CHARS_MAX);
    for name in ["escalate", "deescalate"] {
        let s = schema(name);
        assert_eq!(s["$defs"]["severity"], declare["$defs"]["severity"], "{name}");
        assert_eq!(s["properties"]["reason"]["maxLength"], REASON_CHARS_MAX, "{name}");
    }
    assert_eq!(
        schema("close_crisis")["properties"]["summary"]["maxLength"],
        SUMMARY_CHARS_MAX
    );
    // The event schemas list the same values.
    let events = schema_files();
    let event = |t: &str| -> Value { serde_json::from_str(&events[t]).expect("json") };
    assert_eq!(event("crisis.declared")["properties"]["kind"]["enum"], json!(kinds));
    assert_eq!(event("sitrep.posted")["$defs"]["need"]["enum"], json!(needs));
    assert_eq!(event("assistance.requested")["$defs"]["need"]["enum"], json!(needs));
    for t in ["crisis.declared", "crisis.escalated", "crisis.deescalated"] {
        assert_eq!(event(t)["$defs"]["severity"]["minimum"], SEVERITY_MIN, "{t}");
        assert_eq!(event(t)["$defs"]["severity"]["maximum"], SEVERITY_MAX, "{t}");
    }
}

/// What the command schemas refuse, `parse_command` or `decide` refuses
/// (the service checks the schema first, so these never reach the domain).
#[test]
fn the_command_schemas_refuse_what_the_domain_refuses() {
    let schemas = command_schemas();
    let c = crisis_id(1);
    for (name, data, keyword) in [
        (
            "declare_crisis",
            json!({"crisis_id": c, "kind": "other", "title": "t", "country": "FR", "severity": 0}),
            "minimum",
        ),
        (
            "declare_crisis",
            json!({"crisis_id": c, "kind": "other", "title": "t", "country": "FR", "severity": 6}),
            "maximum",
        ),
        (
            "declare_crisis",
            json!({"crisis_id": c, "kind": "flood", "title": "t", "country": "FR", "severity": 1}),
            "enum",
        ),
        (
            "declare_crisis",
            json!({"crisis_id": c, "kind": "other", "title": "", "country": "FR", "severity": 1}),
            "minLength",
        ),
        (
            "declare_crisis",
            json!({"crisis_id": c, "kind": "other", "title": "t", "country": "fr", "severity": 1}),
            "pattern",
        ),
        (
            "declare_crisis",
            json!({"crisis_id": "1", "kind": "other", "title": "t", "country": "FR", "severity": 1}),
            "format",
        ),
        (
            "post_sitrep",
            json!({"crisis_id": c, "sitrep_id": sitrep_id(1), "text": "t", "casualties": {}}),
            "minProperties",
        ),
        (
            "post_sitrep",
            json!({"crisis_id": c, "sitrep_id": sitrep_id(1), "text": "t", "casualties": {"dead": -1}}),
            "minimum",
        ),
        (
            "post_sitrep",
            json!({"crisis_id": c, "sitrep_id": sitrep_id(1), "text": "t", "needs": ["tanks"]}),
            "enum",
        ),
        (
            "post_sitrep",
            json!({"crisis_id": c, "sitrep_id": sitrep_id(1), "text": "t".repeat(SITREP_TEXT_CHARS_MAX + 1)}),
            "maxLength",
        ),
        (
            "request_assistance",
            json!({"crisis_id": c, "request_id": request_id(1), "needs": []}),
            "minItems",
        ),
        (
            "request_assistance",
            json!({"crisis_id": c, "request_id": request_id(1), "needs": ["dvi"], "details": ""}),
            "minLength",
        ),
        (
            "escalate",
            json!({"crisis_id": c, "severity": 6, "reason": "r"}),
            "maximum",
        ),
        (
            "deescalate",
            json!({"crisis_id": c, "severity": 0, "reason": "r"}),
            "minimum",
        ),
        (
            "escalate",
            json!({"crisis_id": c, "severity": 4, "reason": ""}),
            "minLength",
        ),
        ("close_crisis", json!({"crisis_id": c, "summary": ""}), "minLength"),
    ] {
        assert_refused(&schemas, name, &data, keyword);
        // The domain refuses it too, when parsing or when deciding.
        let refused_by_domain = match parse_command(name, data.clone()) {
            Err(_) => true,
            Ok(cmd) => {
                let teams = teams();
                let mut crisis = Stream::new(&teams);
                if name != "declare_crisis" {
                    crisis.run(declare(1, CrisisKind::Other, "FR", 3), liaison("FR"));
                }
                crisis.decide(&cmd, liaison("FR")).is_err()
            }
        };
        assert!(
            refused_by_domain,
            "{name} {data}: the domain takes what the schema refuses"
        );
    }
}

#[test]
fn the_get_query_schema_names_the_crisis_and_the_asker() {
    let text = include_str!("../../../schemas/queries/crisis/get.schema.json");
    let schema: Value = serde_json::from_str(text).expect("get schema is JSON");
    assert_eq!(schema["$schema"], "https://json-schema.org/draft/2020-12/schema");
    assert_eq!(schema["title"], "crisis.get");
    assert_eq!(schema["additionalProperties"], false);
    assert_eq!(
        names(&schema["properties"]),
        names(&json!(["crisis_id", "country", "role"]))
    );
    assert_eq!(names(&schema["required"]), names(&json!(["crisis_id", "country"])));
    assert_eq!(
        schema["properties"]["role"]["enum"],
        json!(["coordinator", "liaison", "reviewer", "auditor"])
    );
    let schemas = Schemas::compile([("get", text)]).expect("compiles");
    for ok in [
        json!({"crisis_id": crisis_id(1), "country": "DE"}),
        json!({"crisis_id": crisis_id(1), "country": "GS", "role": "auditor"}),
    ] {
        assert_eq!(schemas.check("get", &ok).expect("known"), Ok(()), "{ok}");
    }
    for bad in [
        json!({"crisis_id": "crisis-1", "country": "DE"}),
        json!({"crisis_id": crisis_id(1)}),
        json!({"crisis_id": crisis_id(1), "country": "de"}),
        json!({"crisis_id": crisis_id(1), "country": "DE", "role": "admin"}),
        json!({"crisis_id": crisis_id(1), "country": "DE", "kind": "crisis"}),
    ] {
        assert!(schemas.check("get", &bad).expect("known").is_err(), "{bad} accepted");
    }
}
