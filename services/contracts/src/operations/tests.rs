//! The operations decider, given/when/then, without NATS or disk.

use concord_core::reply::ErrorCode;
use concord_core::tagged::{from_tagged, to_tagged, variant_names};
use concord_testkit::decider::Given;

use concord_testkit::actors::*;

use super::*;

// ------------------------------------------------------------ fixtures

const OP: Uuid = Uuid::from_u128(0x019a_b0c4_5e00_7000_8000_0000_0000_00aa);
const NOW: &str = "2026-11-23T09:30:00.000000Z";
const LATER: &str = "2026-12-01T17:00:00.000000Z";

/// 51 real countries, FR (the lead of every story) not among them.
const OTHERS: [&str; 51] = [
    "AT", "BE", "BG", "HR", "CY", "CZ", "DK", "EE", "FI", "DE", "GR", "HU", "IE", "IT", "LV", "LT", "LU", "MT", "NL",
    "PL", "PT", "RO", "SK", "SI", "ES", "SE", "AL", "AD", "AM", "AZ", "BA", "GE", "IS", "LI", "MD", "MC", "ME", "MK",
    "NO", "RS", "SM", "CH", "TR", "UA", "GB", "CA", "US", "MX", "BR", "AR", "JP",
];

fn task_id(n: u128) -> Uuid {
    Uuid::from_u128(0x019a_b0c4_5e00_7000_8000_0000_0001_0000 + n)
}

// Commands.
fn open(lead: &str, countries: &[&str]) -> Command {
    Command::Open(Open {
        operation_id: OP,
        title: "Opération Héron".into(),
        objective: "dismantle the trafficking network".into(),
        lead_country: cc(lead),
        countries: countries.iter().map(|c| cc(c)).collect(),
    })
}
fn add(country: &str) -> Command {
    Command::AddParticipant(AddParticipant {
        operation_id: OP,
        country: cc(country),
    })
}
fn remove(country: &str) -> Command {
    Command::RemoveParticipant(RemoveParticipant {
        operation_id: OP,
        country: cc(country),
    })
}
fn assign(n: u128, country: &str) -> Command {
    Command::AssignTask(AssignTask {
        operation_id: OP,
        task_id: task_id(n),
        assignee_country: cc(country),
        title: format!("task {n}"),
        details: "search the warehouse".into(),
        due_at: None,
    })
}
fn set_status(n: u128, to: TaskStatus) -> Command {
    Command::UpdateTaskStatus(UpdateTaskStatus {
        operation_id: OP,
        task_id: task_id(n),
        status: to,
        note: None,
    })
}
fn close(outcome: &str) -> Command {
    Command::Close(Close {
        operation_id: OP,
        outcome: outcome.into(),
    })
}
/// One of each command but `open`, each allowed on the `heron` story for
/// the right actor (DE and ES take part, IT does not, task 1 is DE's).
fn every_command_but_open() -> Vec<Command> {
    vec![
        add("IT"),
        remove("ES"),
        assign(2, "DE"),
        set_status(1, TaskStatus::Accepted),
        close("done"),
    ]
}

// Events.
fn opened(lead: &str, participants: &[&str]) -> Event {
    Event::OperationOpened(OperationOpened {
        operation_id: OP,
        title: "Opération Héron".into(),
        objective: "dismantle the trafficking network".into(),
        lead_country: cc(lead),
        participants: participants.iter().map(|c| cc(c)).collect(),
        opened_at: NOW.into(),
    })
}
fn added(country: &str) -> Event {
    Event::ParticipantAdded(ParticipantAdded { country: cc(country) })
}
fn removed(country: &str) -> Event {
    Event::ParticipantRemoved(ParticipantRemoved { country: cc(country) })
}
fn assigned(n: u128, country: &str) -> Event {
    Event::TaskAssigned(TaskAssigned {
        task_id: task_id(n),
        assignee_country: cc(country),
        title: format!("task {n}"),
        details: "search the warehouse".into(),
        due_at: None,
    })
}
fn changed(n: u128, from: TaskStatus, to: TaskStatus) -> Event {
    Event::TaskStatusChanged(TaskStatusChanged {
        task_id: task_id(n),
        from,
        to,
        note: None,
    })
}
fn closed(outcome: &str) -> Event {
    Event::OperationClosed(OperationClosed {
        outcome: outcome.into(),
        closed_at: NOW.into(),
    })
}

/// FR leads, DE and ES take part, task 1 is assigned to DE.
fn heron() -> Vec<Event> {
    vec![opened("FR", &["DE", "ES"]), assigned(1, "DE")]
}

// ------------------------------------------------------------ given / when / then

fn given(history: impl IntoIterator<Item = Event>) -> Given<Operations> {
    concord_testkit::decider::given(history)
}

fn replay(events: &[Event]) -> State {
    concord_testkit::decider::replay::<Operations>(events)
}

// ------------------------------------------------------------ the story

#[test]
fn the_full_story_of_an_operation() {
    use TaskStatus::*;
    let h = given([])
        .when(open("FR", &["DE", "ES"]), coordinator("FR"))
        .then([opened("FR", &["DE", "ES"])]);
    let h = given(h)
        .when(assign(1, "DE"), coordinator("FR"))
        .then([assigned(1, "DE")]);
    let h = given(h)
        .when(set_status(1, Accepted), liaison("DE"))
        .then([changed(1, Assigned, Accepted)]);
    let h = given(h)
        .when(
            Command::UpdateTaskStatus(UpdateTaskStatus {
                operation_id: OP,
                task_id: task_id(1),
                status: Done,
                note: Some("warehouse searched, 2 arrests".into()),
            }),
            liaison("DE"),
        )
        .then([Event::TaskStatusChanged(TaskStatusChanged {
            task_id: task_id(1),
            from: Accepted,
            to: Done,
            note: Some("warehouse searched, 2 arrests".into()),
        })]);
    let h = given(h).when(add("IT"), coordinator("FR")).then([added("IT")]);
    let h = given(h)
        .when_at(close("network dismantled"), coordinator("FR"), LATER)
        .then([Event::OperationClosed(OperationClosed {
            outcome: "network dismantled".into(),
            closed_at: LATER.into(),
        })]);

    let op = replay(&h).expect("opened");
    assert_eq!(op.status, OperationStatus::Closed);
    assert_eq!(
        op.view(),
        json!({
            "id": OP,
            "title": "Opération Héron",
            "objective": "dismantle the trafficking network",
            "lead_country": "FR",
            "participants": ["DE", "ES", "IT"],
            "status": "closed",
            "outcome": "network dismantled",
            "opened_at": NOW,
            "closed_at": LATER,
            "tasks": [{
                "id": task_id(1),
                "assignee_country": "DE",
                "title": "task 1",
                "details": "search the warehouse",
                "due_at": null,
                "status": "done",
                "note": "warehouse searched, 2 arrests",
            }],
        })
    );
    for c in ["FR", "DE", "ES", "IT"] {
        assert!(op.visible_to(cc(c)), "{c}");
    }
}

#[test]
fn live_evolve_and_replay_from_stored_events_give_the_same_state() {
    use TaskStatus::*;
    let story = [
        (open("FR", &["DE", "ES", "FR", "DE"]), coordinator("FR")),
        (assign(2, "ES"), coordinator("FR")),
        (assign(1, "DE"), coordinator("FR")),
        (assign(3, "FR"), coordinator("FR")),
        (set_status(1, Accepted), liaison("DE")),
        (set_status(1, InProgress), liaison("DE")),
        (set_status(2, Declined), liaison("ES")),
        (remove("ES"), coordinator("FR")),
        (add("IT"), coordinator("FR")),
        (set_status(1, Done), liaison("DE")),
        (close("network dismantled"), coordinator("FR")),
    ];
    let mut live = State::default();
    let mut stored: Vec<(String, Value)> = Vec::new();
    for (cmd, actor) in story {
        let ctx = Ctx { actor, now: NOW.into() };
        let events = Operations::decide(&live, &cmd, &(), &ctx).expect("every step of the story is allowed");
        for e in &events {
            live = Operations::evolve(live, e).expect("decided events evolve");
            stored.push(to_tagged(e).expect("events serialize"));
        }
    }
    let loaded: Vec<Event> = stored
        .iter()
        .map(|(t, data)| from_tagged(t, data).expect("stored events load"))
        .collect();
    assert_eq!(replay(&loaded), live);
    let op = live.expect("opened");
    assert_eq!(op.participants, [cc("DE"), cc("IT")].into());
    let ids: Vec<Uuid> = op.tasks.keys().copied().collect();
    assert_eq!(ids, vec![task_id(1), task_id(2), task_id(3)]);
    let view_ids: Vec<Value> = op.view()["tasks"]
        .as_array()
        .expect("tasks is an array")
        .iter()
        .map(|t| t["id"].clone())
        .collect();
    assert_eq!(view_ids, ids.iter().map(|id| json!(id)).collect::<Vec<_>>());
    assert!(!op.visible_to(cc("ES")), "a removed participant no longer sees it");
}

#[test]
fn the_default_state_is_not_opened() {
    assert_eq!(State::default(), None);
    assert_eq!(replay(&[]), None);
}

// ------------------------------------------------------------ open

#[test]
fn open_drops_the_lead_and_duplicates_from_the_countries() {
    given([])
        .when(open("FR", &["ES", "DE", "FR", "ES"]), coordinator("FR"))
        .then([opened("FR", &["DE", "ES"])]);
    given([])
        .when(open("FR", &[]), coordinator("FR"))
        .then([opened("FR", &[])]);
}

#[test]
fn the_secretariat_may_lead_an_operation() {
    given([])
        .when(open("GS", &["DE"]), coordinator("GS"))
        .then([opened("GS", &["DE"])]);
}

#[test]
fn only_a_coordinator_opens() {
    for who in [liaison("FR"), auditor("FR"), actor(Role::Reviewer, "FR")] {
        given([])
            .when(open("FR", &["DE"]), who)
            .then_rejected(ErrorCode::Forbidden, "only a coordinator can open");
    }
}

#[test]
fn a_coordinator_opens_only_for_its_own_country() {
    given([])
        .when(open("DE", &["FR"]), coordinator("FR"))
        .then_rejected(ErrorCode::Forbidden, "can only open operations led by FR");
}

#[test]
fn open_needs_a_title_and_an_objective_within_limits() {
    let with = |title: String, objective: String| {
        Command::Open(Open {
            operation_id: OP,
            title,
            objective,
            lead_country: cc("FR"),
            countries: vec![cc("DE")],
        })
    };
    let ok = || "x".to_owned();
    // Limits count characters, not bytes.
    let at_limit = with("é".repeat(TITLE_CHARS_MAX), "é".repeat(OBJECTIVE_CHARS_MAX));
    assert!(matches!(given([]).when(at_limit, coordinator("FR")).result, Ok(ref e) if e.len() == 1));
    for (cmd, contains) in [
        (with(String::new(), ok()), "title must not be empty"),
        (with("  \t".into(), ok()), "title must not be empty"),
        (
            with("é".repeat(TITLE_CHARS_MAX + 1), ok()),
            "title is longer than 200 characters",
        ),
        (with(ok(), String::new()), "objective must not be empty"),
        (
            with(ok(), "é".repeat(OBJECTIVE_CHARS_MAX + 1)),
            "objective is longer than 4000 characters",
        ),
    ] {
        given([])
            .when(cmd, coordinator("FR"))
            .then_rejected(ErrorCode::Invalid, contains);
    }
}

#[test]
fn open_takes_at_most_50_participants() {
    let fifty = &OTHERS[..PARTICIPANTS_MAX];
    let mut with_lead_and_duplicates = fifty.to_vec();
    with_lead_and_duplicates.extend(["FR", "DE", "DE"]);
    let mut sorted = fifty.to_vec();
    sorted.sort_unstable();
    given([])
        .when(open("FR", &with_lead_and_duplicates), coordinator("FR"))
        .then([opened("FR", &sorted)]);
    given([])
        .when(open("FR", &OTHERS[..PARTICIPANTS_MAX + 1]), coordinator("FR"))
        .then_rejected(ErrorCode::RuleViolated, "at most 50 participants, 51 given");
}

#[test]
fn opening_an_opened_operation_is_a_conflict() {
    let id = OP.to_string();
    given(heron())
        .when(open("FR", &["DE"]), coordinator("FR"))
        .then_rejected(ErrorCode::Conflict, &format!("operation {id} already exists"));
    let mut closed_history = heron();
    closed_history.push(closed("done"));
    given(closed_history)
        .when(open("FR", &["DE"]), coordinator("FR"))
        .then_rejected(ErrorCode::Conflict, "already exists");
}

// ------------------------------------------------------------ existence and visibility

#[test]
fn every_command_but_open_on_no_operation_is_not_found() {
    for cmd in every_command_but_open() {
        for who in [coordinator("FR"), liaison("DE"), auditor("FR")] {
            given([])
                .when(cmd.clone(), who)
                .then_rejected(ErrorCode::NotFound, "operation not found");
        }
    }
}

#[test]
fn a_country_that_cannot_see_the_operation_gets_not_found_for_everything() {
    let mut closed_history = heron();
    closed_history.push(closed("done"));
    let mut removed_history = heron();
    removed_history.push(removed("ES"));
    for history in [heron(), closed_history] {
        for cmd in every_command_but_open() {
            for who in [coordinator("IT"), liaison("IT"), actor(Role::Reviewer, "GS")] {
                given(history.clone())
                    .when(cmd.clone(), who)
                    .then_rejected(ErrorCode::NotFound, "operation not found");
            }
        }
    }
    // A removed participant is an outsider again.
    for cmd in every_command_but_open() {
        for who in [coordinator("ES"), liaison("ES")] {
            given(removed_history.clone())
                .when(cmd.clone(), who)
                .then_rejected(ErrorCode::NotFound, "operation not found");
        }
    }
}

#[test]
fn an_auditor_sees_every_operation_so_is_forbidden_not_kept_in_the_dark() {
    for cmd in every_command_but_open() {
        given(heron())
            .when(cmd, auditor("IT"))
            .then_rejected(ErrorCode::Forbidden, "only a");
    }
}

#[test]
fn visibility_is_the_lead_and_the_current_participants() {
    let mut h = heron();
    h.push(added("IT"));
    h.push(removed("ES"));
    let op = replay(&h).expect("opened");
    for (c, sees) in [
        ("FR", true),
        ("DE", true),
        ("IT", true),
        ("ES", false),
        ("JP", false),
        ("GS", false),
    ] {
        assert_eq!(op.visible_to(cc(c)), sees, "{c}");
    }
}

// ------------------------------------------------------------ lead coordinator only

#[test]
fn only_a_coordinator_of_the_lead_country_manages_the_operation() {
    for cmd in [add("IT"), remove("ES"), assign(2, "DE"), close("done")] {
        for who in [
            liaison("FR"),
            coordinator("DE"),
            liaison("DE"),
            actor(Role::Reviewer, "FR"),
        ] {
            given(heron())
                .when(cmd.clone(), who)
                .then_rejected(ErrorCode::Forbidden, "only a coordinator of the lead country FR");
        }
    }
}

// ------------------------------------------------------------ participants

#[test]
fn adding_the_lead_or_a_participant_again_is_refused() {
    given(heron())
        .when(add("FR"), coordinator("FR"))
        .then_rejected(ErrorCode::RuleViolated, "FR leads the operation");
    given(heron())
        .when(add("DE"), coordinator("FR"))
        .then_rejected(ErrorCode::RuleViolated, "DE already takes part in the operation");
}

#[test]
fn adding_a_51st_participant_is_refused() {
    let mut sorted = OTHERS[..PARTICIPANTS_MAX].to_vec();
    sorted.sort_unstable();
    given([opened("FR", &sorted)])
        .when(add(OTHERS[PARTICIPANTS_MAX]), coordinator("FR"))
        .then_rejected(ErrorCode::RuleViolated, "at most 50 participants");
    given([opened("FR", &sorted[1..])])
        .when(add(sorted[0]), coordinator("FR"))
        .then([added(sorted[0])]);
}

#[test]
fn a_removed_country_may_be_invited_again() {
    let mut h = heron();
    h.push(removed("ES"));
    given(h).when(add("ES"), coordinator("FR")).then([added("ES")]);
}

#[test]
fn removing_the_lead_or_a_non_participant_is_refused() {
    given(heron())
        .when(remove("FR"), coordinator("FR"))
        .then_rejected(ErrorCode::RuleViolated, "the lead country cannot be removed");
    given(heron())
        .when(remove("IT"), coordinator("FR"))
        .then_rejected(ErrorCode::RuleViolated, "IT does not take part in the operation");
}

#[test]
fn a_participant_with_open_tasks_cannot_be_removed() {
    use TaskStatus::*;
    given(heron())
        .when(remove("DE"), coordinator("FR"))
        .then_rejected(ErrorCode::RuleViolated, "DE still has 1 open task (");
    let mut h = heron();
    h.extend([
        assigned(2, "DE"),
        changed(2, Assigned, Accepted),
        assigned(3, "DE"),
        changed(3, Assigned, Accepted),
        changed(3, Accepted, InProgress),
        assigned(4, "DE"),
        changed(4, Assigned, Declined),
        assigned(5, "DE"),
        changed(5, Assigned, Accepted),
        changed(5, Accepted, Done),
        assigned(6, "ES"),
    ]);
    // Tasks 1 (assigned), 2 (accepted), 3 (in progress) are open; 4 and 5 are not.
    given(h)
        .when(remove("DE"), coordinator("FR"))
        .then_rejected(ErrorCode::RuleViolated, "DE still has 3 open tasks");
}

#[test]
fn a_participant_whose_tasks_are_all_finished_can_be_removed() {
    use TaskStatus::*;
    let mut h = heron();
    h.extend([
        changed(1, Assigned, Declined),
        assigned(2, "DE"),
        changed(2, Assigned, Accepted),
        changed(2, Accepted, Done),
    ]);
    let h = given(h).when(remove("DE"), coordinator("FR")).then([removed("DE")]);
    // Its finished tasks stay on the record.
    assert_eq!(replay(&h).expect("opened").tasks.len(), 2);
}

// ------------------------------------------------------------ tasks

#[test]
fn a_task_goes_to_the_lead_or_a_participant_only() {
    given(heron())
        .when(assign(2, "FR"), coordinator("FR"))
        .then([assigned(2, "FR")]);
    given(heron())
        .when(assign(2, "ES"), coordinator("FR"))
        .then([assigned(2, "ES")]);
    given(heron())
        .when(assign(2, "IT"), coordinator("FR"))
        .then_rejected(ErrorCode::RuleViolated, "IT does not take part in the operation");
    let mut h = heron();
    h.push(removed("ES"));
    given(h)
        .when(assign(2, "ES"), coordinator("FR"))
        .then_rejected(ErrorCode::RuleViolated, "ES does not take part");
}

#[test]
fn a_task_needs_a_title_and_bounded_details_and_due_date() {
    let with = |title: &str, details: String, due_at: Option<&str>| {
        Command::AssignTask(AssignTask {
            operation_id: OP,
            task_id: task_id(2),
            assignee_country: cc("DE"),
            title: title.into(),
            details,
            due_at: due_at.map(str::to_owned),
        })
    };
    let long_title = "t".repeat(TITLE_CHARS_MAX + 1);
    for (cmd, contains) in [
        (with("", String::new(), None), "title must not be empty"),
        (with(" ", String::new(), None), "title must not be empty"),
        (
            with(&long_title, String::new(), None),
            "title is longer than 200 characters",
        ),
        (
            with("t", "d".repeat(DETAILS_CHARS_MAX + 1), None),
            "details is longer than 4000 characters",
        ),
        (
            with("t", String::new(), Some("next friday")),
            "due_at \"next friday\" is not an RFC 3339 date-time",
        ),
    ] {
        given(heron())
            .when(cmd, coordinator("FR"))
            .then_rejected(ErrorCode::Invalid, contains);
    }
    // Empty details, the longest title and a due date are fine.
    let title = "t".repeat(TITLE_CHARS_MAX);
    given(heron())
        .when(
            with(&title, String::new(), Some("2026-12-01T18:00:00+01:00")),
            coordinator("FR"),
        )
        .then([Event::TaskAssigned(TaskAssigned {
            task_id: task_id(2),
            assignee_country: cc("DE"),
            title,
            details: String::new(),
            due_at: Some("2026-12-01T18:00:00+01:00".into()),
        })]);
}

#[test]
fn a_task_id_is_used_once() {
    given(heron())
        .when(assign(1, "ES"), coordinator("FR"))
        .then_rejected(ErrorCode::Conflict, &format!("task {} already exists", task_id(1)));
}

#[test]
fn an_operation_holds_at_most_1000_tasks() {
    let mut h = vec![opened("FR", &["DE"])];
    h.extend((0..TASKS_MAX as u128).map(|n| assigned(n, "DE")));
    given(h)
        .when(assign(TASKS_MAX as u128, "DE"), coordinator("FR"))
        .then_rejected(ErrorCode::RuleViolated, "at most 1000 tasks");
}

// ------------------------------------------------------------ task status

/// The history that brings task 1 (DE's) to `status`.
fn task_in(status: TaskStatus) -> Vec<Event> {
    use TaskStatus::*;
    let mut h = heron();
    h.extend(match status {
        Assigned => vec![],
        Accepted => vec![changed(1, Assigned, Accepted)],
        Declined => vec![changed(1, Assigned, Declined)],
        InProgress => vec![changed(1, Assigned, Accepted), changed(1, Accepted, InProgress)],
        Done => vec![changed(1, Assigned, Accepted), changed(1, Accepted, Done)],
    });
    assert_eq!(replay(&h).expect("opened").tasks[&task_id(1)].status, status);
    h
}

#[test]
fn task_status_follows_the_transition_table_and_nothing_else() {
    use TaskStatus::*;
    let table = [
        (Assigned, Accepted),
        (Assigned, Declined),
        (Accepted, InProgress),
        (Accepted, Done),
        (InProgress, Done),
    ];
    for from in TaskStatus::ALL {
        for to in TaskStatus::ALL {
            let allowed = table.contains(&(from, to));
            assert_eq!(from.can_become(to), allowed, "{from} -> {to}");
            let when = given(task_in(from)).when(set_status(1, to), liaison("DE"));
            if allowed {
                when.then([changed(1, from, to)]);
            } else {
                when.then_rejected(
                    ErrorCode::RuleViolated,
                    &format!("task status cannot change from {from} to {to}"),
                );
            }
        }
    }
    assert_eq!(
        TaskStatus::ALL.iter().filter(|s| s.is_open()).count(),
        3,
        "assigned, accepted and in_progress are open"
    );
}

#[test]
fn only_a_liaison_of_the_assignee_country_changes_a_task() {
    use TaskStatus::*;
    for who in [
        coordinator("DE"),
        liaison("ES"),
        liaison("FR"),
        coordinator("FR"),
        auditor("DE"),
    ] {
        given(heron())
            .when(set_status(1, Accepted), who)
            .then_rejected(ErrorCode::Forbidden, "only a liaison of the assignee country DE");
    }
    given(heron())
        .when(set_status(1, Accepted), liaison("IT"))
        .then_rejected(ErrorCode::NotFound, "operation not found");
    // The lead's own tasks are its liaison's.
    let mut h = heron();
    h.push(assigned(2, "FR"));
    given(h)
        .when(set_status(2, Declined), liaison("FR"))
        .then([changed(2, Assigned, Declined)]);
}

#[test]
fn an_unknown_task_is_not_found() {
    given(heron())
        .when(set_status(9, TaskStatus::Accepted), liaison("DE"))
        .then_rejected(ErrorCode::NotFound, &format!("task {} not found", task_id(9)));
}

#[test]
fn a_status_note_is_bounded_and_kept_until_the_next_change() {
    use TaskStatus::*;
    let with_note = |to: TaskStatus, note: String| {
        Command::UpdateTaskStatus(UpdateTaskStatus {
            operation_id: OP,
            task_id: task_id(1),
            status: to,
            note: Some(note),
        })
    };
    given(heron())
        .when(with_note(Accepted, "n".repeat(NOTE_CHARS_MAX + 1)), liaison("DE"))
        .then_rejected(ErrorCode::Invalid, "note is longer than 4000 characters");
    let h = given(heron())
        .when(with_note(Accepted, "on it".into()), liaison("DE"))
        .then([Event::TaskStatusChanged(TaskStatusChanged {
            task_id: task_id(1),
            from: Assigned,
            to: Accepted,
            note: Some("on it".into()),
        })]);
    assert_eq!(
        replay(&h).expect("opened").tasks[&task_id(1)].note.as_deref(),
        Some("on it")
    );
    let h = given(h)
        .when(set_status(1, InProgress), liaison("DE"))
        .then([changed(1, Accepted, InProgress)]);
    assert_eq!(replay(&h).expect("opened").tasks[&task_id(1)].note, None);
}

// ------------------------------------------------------------ close

#[test]
fn close_needs_an_outcome() {
    for (outcome, contains) in [
        (String::new(), "outcome must not be empty"),
        ("\n".into(), "outcome must not be empty"),
        (
            "o".repeat(OUTCOME_CHARS_MAX + 1),
            "outcome is longer than 4000 characters",
        ),
    ] {
        given(heron())
            .when(close(&outcome), coordinator("FR"))
            .then_rejected(ErrorCode::Invalid, contains);
    }
}

#[test]
fn open_tasks_do_not_prevent_closing_and_stay_as_they_were() {
    let h = given(heron())
        .when(close("done"), coordinator("FR"))
        .then([closed("done")]);
    let op = replay(&h).expect("opened");
    assert_eq!(op.tasks[&task_id(1)].status, TaskStatus::Assigned);
    assert_eq!(op.outcome.as_deref(), Some("done"));
}

#[test]
fn nothing_changes_a_closed_operation() {
    let mut h = heron();
    h.push(closed("done"));
    for (cmd, who) in [
        (add("IT"), coordinator("FR")),
        (remove("ES"), coordinator("FR")),
        (assign(2, "DE"), coordinator("FR")),
        (set_status(1, TaskStatus::Accepted), liaison("DE")),
        (close("again"), coordinator("FR")),
        // Closed comes before the role: nobody may change it, so say that.
        (add("IT"), liaison("DE")),
    ] {
        given(h.clone())
            .when(cmd, who)
            .then_rejected(ErrorCode::RuleViolated, "operation is closed");
    }
}

// ------------------------------------------------------------ commands from the wire

fn parse_command(name: &str, data: Value) -> Result<Command, String> {
    from_tagged(name, &data).map_err(|e| e.to_string())
}

#[test]
fn commands_read_from_their_name_and_data() {
    let task = task_id(1).to_string();
    let bodies = [
        json!({"operation_id": OP, "title": "Héron", "objective": "o", "lead_country": "FR", "countries": ["DE", "ES"]}),
        json!({"operation_id": OP, "country": "IT"}),
        json!({"operation_id": OP, "country": "ES"}),
        json!({"operation_id": OP, "task_id": task, "assignee_country": "DE", "title": "t", "details": "d", "due_at": "2026-12-01T18:00:00Z"}),
        json!({"operation_id": OP, "task_id": task, "status": "in_progress", "note": "n"}),
        json!({"operation_id": OP, "outcome": "done"}),
    ];
    let names = variant_names::<Command>();
    assert_eq!(
        names,
        [
            "open",
            "add_participant",
            "remove_participant",
            "assign_task",
            "update_task_status",
            "close"
        ]
    );
    for (name, data) in names.iter().zip(bodies) {
        let cmd = parse_command(name, data).unwrap_or_else(|e| panic!("{name}: {e}"));
        assert_eq!(cmd.operation_id(), OP, "{name}");
        let (tag, _) = to_tagged(&cmd).expect("serializes");
        assert_eq!(tag, *name);
    }
    // Optional fields may be left out.
    let cmd = parse_command(
        "assign_task",
        json!({"operation_id": OP, "task_id": task, "assignee_country": "DE", "title": "t", "details": ""}),
    );
    assert!(matches!(
        cmd,
        Ok(Command::AssignTask(AssignTask {
            operation_id: OP,
            due_at: None,
            ..
        }))
    ));
    let cmd = parse_command(
        "update_task_status",
        json!({"operation_id": OP, "task_id": task, "status": "done"}),
    );
    assert!(matches!(
        cmd,
        Ok(Command::UpdateTaskStatus(UpdateTaskStatus {
            operation_id: OP,
            note: None,
            status: TaskStatus::Done,
            ..
        }))
    ));
}

#[test]
fn commands_refuse_what_does_not_fit_precisely() {
    let task = task_id(1).to_string();
    for (name, data, contains) in [
        (
            "delete",
            json!({}),
            "unknown variant `delete`, expected one of `open`, `add_participant`",
        ),
        ("Open", json!({}), "unknown variant `Open`"),
        (
            "open",
            json!({"title": "t", "objective": "o", "lead_country": "FR", "countries": [], "secret": 1}),
            "unknown field `secret`",
        ),
        (
            "open",
            json!({"title": "t", "objective": "o", "lead_country": "FR"}),
            "missing field `countries`",
        ),
        (
            "open",
            json!({"title": "t", "objective": "o", "lead_country": "XX", "countries": []}),
            "\"XX\" is not an ISO 3166-1 alpha-2 country code",
        ),
        (
            "open",
            json!({"title": "t", "objective": "o", "lead_country": "FR", "countries": ["DE", "XX"]}),
            "\"XX\" is not an ISO 3166-1",
        ),
        (
            "open",
            json!({"title": 5, "objective": "o", "lead_country": "FR", "countries": []}),
            "invalid type: integer `5`, expected a string",
        ),
        (
            "open",
            json!({"title": "t", "objective": "o", "lead_country": "FR", "countries": "DE"}),
            "invalid type: string \"DE\", expected a sequence",
        ),
        (
            "add_participant",
            json!({"country": "fr"}),
            "\"fr\" is not an ISO 3166-1",
        ),
        (
            "add_participant",
            json!(null),
            "add_participant: data must be a JSON object, not null",
        ),
        // serde would take an array by position; a body has named fields.
        (
            "remove_participant",
            json!(["DE"]),
            "data must be a JSON object, not an array",
        ),
        (
            "assign_task",
            json!({"task_id": "42", "assignee_country": "DE", "title": "t", "details": ""}),
            "UUID parsing failed",
        ),
        (
            "update_task_status",
            json!({"task_id": task, "status": "finished"}),
            "unknown variant `finished`",
        ),
        (
            "update_task_status",
            json!({"task_id": task, "status": "done", "note": 3}),
            "invalid type",
        ),
        (
            "close",
            json!({"outcome": "done", "lead_country": "FR"}),
            "unknown field `lead_country`",
        ),
        ("close", json!({"outcome": true}), "invalid type: boolean `true`"),
    ] {
        let mut data = data;
        if let Some(map) = data.as_object_mut() {
            map.insert("operation_id".into(), json!(OP));
        }
        match parse_command(name, data) {
            Ok(cmd) => panic!("{name} accepted: {cmd:?}"),
            Err(r) => assert!(r.contains(contains), "{r} does not contain {contains:?}"),
        }
    }
}

// ------------------------------------------------------------ events as stored

fn every_kind_of_event() -> Vec<Event> {
    vec![
        opened("FR", &["DE", "ES"]),
        opened("GS", &[]),
        added("IT"),
        removed("ES"),
        assigned(1, "DE"),
        Event::TaskAssigned(TaskAssigned {
            task_id: task_id(2),
            assignee_country: cc("FR"),
            title: "t".into(),
            details: "d\n\"quoted\"".into(),
            due_at: Some("2026-12-01T18:00:00Z".into()),
        }),
        changed(1, TaskStatus::Assigned, TaskStatus::Accepted),
        Event::TaskStatusChanged(TaskStatusChanged {
            task_id: task_id(1),
            from: TaskStatus::InProgress,
            to: TaskStatus::Done,
            note: Some("n".into()),
        }),
        closed("done"),
    ]
}

fn holds_no_number(v: &Value) -> bool {
    match v {
        Value::Number(_) => false,
        Value::Array(a) => a.iter().all(holds_no_number),
        Value::Object(o) => o.values().all(holds_no_number),
        _ => true,
    }
}

fn data(e: &Event) -> Value {
    to_tagged(e).expect("events serialize").1
}

#[test]
fn every_event_round_trips_through_type_and_data() {
    let events = every_kind_of_event();
    let kinds: BTreeSet<String> = events.iter().map(|e| to_tagged(e).expect("serializes").0).collect();
    let all: BTreeSet<String> = variant_names::<Event>().iter().map(|s| s.to_string()).collect();
    assert_eq!(kinds, all, "every kind is covered");
    for e in events {
        let (t, data) = to_tagged(&e).expect("serializes");
        assert!(data.is_object(), "{data}");
        assert!(holds_no_number(&data), "no floats, in fact no numbers: {data}");
        assert_eq!(from_tagged::<Event>(&t, &data), Ok(e));
    }
}

#[test]
fn stored_data_has_the_documented_shape() {
    assert_eq!(
        data(&opened("FR", &["DE", "ES"])),
        json!({
            "operation_id": OP,
            "title": "Opération Héron",
            "objective": "dismantle the trafficking network",
            "lead_country": "FR",
            "participants": ["DE", "ES"],
            "opened_at": NOW,
        })
    );
    assert_eq!(data(&assigned(1, "DE"))["due_at"], Value::Null);
    assert_eq!(
        data(&changed(1, TaskStatus::Accepted, TaskStatus::InProgress)),
        json!({"task_id": task_id(1), "from": "accepted", "to": "in_progress", "note": null})
    );
}

#[test]
fn stored_events_refuse_unknown_types_and_malformed_data() {
    let e = from_tagged::<Event>("operation.deleted", &json!({}));
    assert!(e.is_err_and(|e| e.0.contains("unknown variant `operation.deleted`")));
    for (t, data, contains) in [
        (
            "participant.added",
            json!({"country": "DE", "extra": "x"}),
            "unknown field `extra`",
        ),
        ("participant.added", json!({}), "missing field `country`"),
        ("participant.added", json!(["DE"]), "data must be a JSON object"),
        ("operation.closed", json!({"outcome": "x"}), "missing field `closed_at`"),
        (
            "task.status_changed",
            json!({"task_id": task_id(1), "from": "new", "to": "done", "note": null}),
            "unknown variant `new`",
        ),
    ] {
        match from_tagged::<Event>(t, &data) {
            Ok(e) => panic!("{t} accepted: {e:?}"),
            Err(msg) => assert!(msg.0.contains(contains), "{msg} does not contain {contains:?}"),
        }
    }
}

// ------------------------------------------------------------ evolve on a corrupt stream

#[test]
#[should_panic(expected = "corrupt operations stream: participant.added before operation.opened")]
fn evolve_refuses_an_event_before_opened() {
    let _ = replay(&[added("DE")]);
}

#[test]
#[should_panic(expected = "corrupt operations stream: operation.opened on an operation already opened")]
fn evolve_refuses_a_second_opened() {
    let _ = replay(&[opened("FR", &[]), opened("FR", &[])]);
}

#[test]
#[should_panic(expected = "corrupt operations stream: task.status_changed of unknown task")]
fn evolve_refuses_a_status_change_of_an_unknown_task() {
    let _ = replay(&[
        opened("FR", &[]),
        changed(1, TaskStatus::Assigned, TaskStatus::Accepted),
    ]);
}

#[test]
#[should_panic(expected = "from accepted while it is assigned")]
fn evolve_refuses_a_status_change_from_another_status() {
    let _ = replay(&[
        opened("FR", &["DE"]),
        assigned(1, "DE"),
        changed(1, TaskStatus::Accepted, TaskStatus::Done),
    ]);
}

// ------------------------------------------------------------ RFC 3339

#[test]
fn due_dates_are_rfc_3339_date_times() {
    for ok in [
        "2026-12-01T18:00:00Z",
        "2026-12-01t18:00:00z",
        "2026-12-01T18:00:00.123456Z",
        "2026-12-01T18:00:00.123456789-05:30",
        "2024-02-29T00:00:00+01:00",
        "2000-02-29T00:00:00Z",
        "2026-12-31T23:59:60Z",
    ] {
        assert!(is_rfc3339(ok), "{ok} refused");
    }
    for bad in [
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
        assert!(!is_rfc3339(bad), "{bad} accepted");
    }
}

#[test]
fn rejections_carry_their_stable_code() {
    for (r, code) in [
        (Rejection::Invalid("x".into()), "invalid"),
        (Rejection::Forbidden("x".into()), "forbidden"),
        (Rejection::NotFound("x".into()), "not_found"),
        (Rejection::RuleViolated("x".into()), "rule_violated"),
        (Rejection::Conflict("x".into()), "conflict"),
    ] {
        assert_eq!(r.code().as_str(), code);
        assert_eq!(r.to_string(), "x");
    }
}

// ------------------------------------------------------------ audience

/// Who sees the stream right after each kind of event: the lead and the
/// current participants, every auditor, nobody else.
#[test]
fn the_audience_after_every_kind_of_event() {
    let viewer = |country: &str, role: Role| Viewer {
        country: cc(country),
        role,
    };
    let lead = viewer("FR", Role::Coordinator);
    let de = viewer("DE", Role::Liaison);
    let es = viewer("ES", Role::Liaison);
    let it = viewer("IT", Role::Liaison);
    let reviewer = viewer("GS", Role::Reviewer);
    let auditor = viewer("GS", Role::Auditor);
    // (event, who sees the stream after it, who does not)
    let table: Vec<(Event, Vec<Viewer>, Vec<Viewer>)> = vec![
        (
            opened("FR", &["DE", "ES"]),
            vec![lead, de, es, auditor],
            vec![it, reviewer],
        ),
        (added("IT"), vec![lead, de, es, it, auditor], vec![reviewer]),
        (removed("ES"), vec![lead, de, it, auditor], vec![es, reviewer]),
        (assigned(1, "DE"), vec![lead, de, it, auditor], vec![es, reviewer]),
        (
            changed(1, TaskStatus::Assigned, TaskStatus::Accepted),
            vec![lead, de, it, auditor],
            vec![es],
        ),
        (closed("done"), vec![lead, de, it, auditor], vec![es, reviewer]),
    ];
    let covered: BTreeSet<String> = table.iter().map(|(e, _, _)| to_tagged(e).expect("tag").0).collect();
    let all: BTreeSet<String> = variant_names::<Event>().iter().map(|s| s.to_string()).collect();
    assert_eq!(covered, all, "the table covers every event type");
    assert!(
        !Operations::audience(&None, &()).admits(&lead),
        "no operation, no audience"
    );
    assert!(Operations::audience(&None, &()).admits(&auditor));
    let mut history = Vec::new();
    for (event, sees, does_not) in table {
        history.push(event.clone());
        let audience = Operations::audience(&replay(&history), &());
        for v in sees {
            assert!(audience.admits(&v), "after {event:?}: {v:?} should see it");
        }
        for v in does_not {
            assert!(!audience.admits(&v), "after {event:?}: {v:?} should not see it");
        }
    }
}

#[test]
#[should_panic(expected = "does not match events/operations/operation.closed")]
fn an_event_off_its_schema_fails_the_story() {
    concord_testkit::decider::assert_match_schemas::<Operations>(&[Event::OperationClosed(OperationClosed {
        outcome: "done".into(),
        closed_at: "yesterday".into(),
    })]);
}
