//! Who sees a stream right after each kind of event (`Intel::audience`,
//! the one place visibility is written), and the `get` query that asks it.

use std::collections::BTreeSet;

use concord_core::decider::Viewer;
use concord_core::reply::ErrorCode;
use concord_core::tagged::variant_names;
use serde_json::json;

use super::*;

/// The viewers of the table, in its column order: the country that created
/// the stream (DE posts the leads and reports the arrest, MC requests the
/// notices), ES (takes part in `OP`; listed in the restricted lead; a
/// recipient of the diffusion), FR (leads `OP`; listed nowhere), US (takes
/// part in nothing), a reviewer of GS, an auditor of US.
const COLUMNS: [&str; 6] = ["owner", "ES", "FR", "US", "GS reviewer", "US auditor"];

fn viewers(owner: &str) -> [Viewer; 6] {
    let v = |role, country| Viewer {
        country: cc(country),
        role,
    };
    [
        v(Role::Liaison, owner),
        v(Role::Liaison, "ES"),
        v(Role::Coordinator, "FR"),
        v(Role::Liaison, "US"),
        v(Role::Reviewer, "GS"),
        v(Role::Auditor, "US"),
    ]
}

struct Row {
    /// What the stream is; it ends with the event the row is about.
    what: &'static str,
    history: Vec<Event>,
    audience: Audience,
    /// Admitted, per column.
    admits: [bool; 6],
}

fn countries(codes: &[&str]) -> Audience {
    Audience::countries(ccs(codes))
}

fn with(mut history: Vec<Event>, more: impl IntoIterator<Item = Event>) -> Vec<Event> {
    history.extend(more);
    history
}

fn table() -> Vec<Row> {
    let diffusion = || vec![requested("MC", Some(&["ES", "RS"]))];
    let requested_audience = || countries(&["MC"]).and_role(Role::Reviewer);
    let diffusion_audience = || countries(&["ES", "MC", "RS"]).and_role(Role::Reviewer);
    const T: bool = true;
    const F: bool = false;
    vec![
        Row {
            what: "an unrestricted lead",
            history: lead(),
            audience: countries(&["DE", "ES", "FR", "MC"]),
            admits: [T, T, T, F, F, T],
        },
        Row {
            what: "a lead restricted to ES",
            history: vec![posted("DE", &["DE", "ES"])],
            audience: countries(&["DE", "ES"]),
            admits: [T, T, F, F, F, T],
        },
        Row {
            what: "an amended lead",
            history: with(lead(), [amended()]),
            audience: countries(&["DE", "ES", "FR", "MC"]),
            admits: [T, T, T, F, F, T],
        },
        Row {
            what: "a retracted lead (it still warns)",
            history: with(lead(), [retracted()]),
            audience: countries(&["DE", "ES", "FR", "MC"]),
            admits: [T, T, T, F, F, T],
        },
        Row {
            what: "an arrest",
            history: vec![reported("DE")],
            audience: countries(&["DE", "ES", "FR", "MC"]),
            admits: [T, T, T, F, F, T],
        },
        Row {
            what: "a requested notice",
            history: notice(NoticeStatus::Requested),
            audience: requested_audience(),
            admits: [T, F, F, F, T, T],
        },
        Row {
            what: "a requested diffusion",
            history: diffusion(),
            audience: requested_audience(),
            admits: [T, F, F, F, T, T],
        },
        Row {
            what: "a published notice",
            history: notice(NoticeStatus::Published),
            audience: Audience::everyone(),
            admits: [T, T, T, T, T, T],
        },
        Row {
            what: "a published diffusion",
            history: with(diffusion(), [published()]),
            audience: diffusion_audience(),
            admits: [T, T, F, F, T, T],
        },
        Row {
            what: "a rejected notice (it stays private)",
            history: notice(NoticeStatus::Rejected),
            audience: requested_audience(),
            admits: [T, F, F, F, T, T],
        },
        Row {
            what: "a notice cancelled before publication",
            history: with(notice(NoticeStatus::Requested), [cancelled(&liaison("MC"))]),
            audience: requested_audience(),
            admits: [T, F, F, F, T, T],
        },
        Row {
            what: "a published notice, cancelled",
            history: notice(NoticeStatus::Cancelled),
            audience: Audience::everyone(),
            admits: [T, T, T, T, T, T],
        },
        Row {
            what: "a published diffusion, cancelled",
            history: with(diffusion(), [published(), cancelled(&reviewer("GS"))]),
            audience: diffusion_audience(),
            admits: [T, T, F, F, T, T],
        },
    ]
}

fn owner_of(state: &State) -> &'static str {
    match state {
        State::Notice(_) => "MC",
        _ => "DE",
    }
}

#[test]
fn the_audience_after_every_kind_of_event() {
    for row in table() {
        let state = replay(&row.history);
        let audience = Intel::audience(&state, &ops());
        assert_eq!(audience, row.audience, "{}", row.what);
        for ((column, viewer), admitted) in COLUMNS.iter().zip(viewers(owner_of(&state))).zip(row.admits) {
            assert_eq!(audience.admits(&viewer), admitted, "{}: {column}", row.what);
        }
    }
}

#[test]
fn the_audience_table_covers_every_event_type() {
    let last = |row: &Row| crate::tag_of(row.history.last().expect("a row has a history"));
    let covered: BTreeSet<String> = table().iter().map(last).collect();
    let all: BTreeSet<String> = variant_names::<Event>().iter().map(|t| t.to_string()).collect();
    assert_eq!(covered, all);
}

#[test]
fn decide_refuses_as_unknown_exactly_whom_the_audience_leaves_out() {
    // An arrest is never addressed again once reported, so only leads and
    // notices have a command to try; whoever is admitted is refused later,
    // for another reason, or not at all.
    for row in table() {
        let state = replay(&row.history);
        let cmd = match &state {
            State::Lead(_) => retract(),
            State::Notice(_) => cancel(),
            _ => continue,
        };
        let audience = Intel::audience(&state, &ops());
        for (column, viewer) in COLUMNS.iter().zip(viewers(owner_of(&state))) {
            let who = Actor {
                sub: (*column).to_owned(),
                role: viewer.role,
                country: viewer.country,
            };
            let result = given(row.history.clone()).when(cmd.clone(), who).result;
            let unknown = matches!(result, Err(Rejection::NotFound(_)));
            assert_eq!(unknown, !audience.admits(&viewer), "{}: {column}: {result:?}", row.what);
        }
    }
}

// ------------------------------------------------------------ the get query

fn get(kind: Kind, id: Uuid, country: &str, role: Option<Role>) -> Query {
    Query::Get(Get {
        kind,
        id,
        country: cc(country),
        role,
    })
}

#[test]
fn get_answers_the_audience_with_the_view_and_version() {
    let state = replay(&lead());
    let answer = Intel::answer(&get(Kind::Lead, LEAD, "ES", None), &state, 1, &ops()).expect("ES sees it");
    let mut view = state.view();
    view["version"] = json!(1);
    assert_eq!(answer, json!({ "lead": view }));
    // Anyone but an auditor or a reviewer asks as a liaison.
    for (country, role, seen) in [
        ("US", None, false),
        ("US", Some(Role::Auditor), true),
        ("US", Some(Role::Coordinator), false),
        ("FR", Some(Role::Coordinator), true),
    ] {
        let r = Intel::answer(&get(Kind::Lead, LEAD, country, role), &state, 1, &ops());
        assert_eq!(r.is_ok(), seen, "{country} {role:?}");
    }
    let requested = replay(&notice(NoticeStatus::Requested));
    for (country, role, seen) in [
        ("MC", None, true),
        ("GS", Some(Role::Reviewer), true),
        ("DE", None, false),
    ] {
        let r = Intel::answer(&get(Kind::Notice, NOTICE, country, role), &requested, 1, &ops());
        assert_eq!(r.is_ok(), seen, "{country} {role:?}");
        if let Ok(v) = r {
            assert_eq!(v["notice"]["status"], "requested");
        }
    }
}

#[test]
fn get_answers_not_found_alike_for_unknown_and_invisible() {
    for (kind, state, what) in [
        (Kind::Lead, replay(&lead()), "lead not found"),
        (Kind::Arrest, replay(&[reported("DE")]), "arrest not found"),
        (
            Kind::Notice,
            replay(&notice(NoticeStatus::Rejected)),
            "notice not found",
        ),
    ] {
        let invisible = Intel::answer(&get(kind, LEAD, "US", None), &state, 1, &ops());
        let unknown = Intel::answer(&get(kind, LEAD, "US", None), &State::Empty, 0, &ops());
        assert_eq!(invisible, Err(Rejection::NotFound(what.into())));
        assert_eq!(unknown, invisible);
        // Not even an auditor sees what does not exist.
        let r = Intel::answer(&get(kind, LEAD, "US", Some(Role::Auditor)), &State::Empty, 0, &ops());
        assert_eq!(r.map_err(|e| e.code()), Err(ErrorCode::NotFound));
    }
}
