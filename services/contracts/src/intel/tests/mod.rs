//! The intel decider, given/when/then, without NATS or disk: one module per
//! aggregate, `wire` for commands and events as they travel and are stored,
//! `audience` for who sees a stream after each kind of event.

mod arrest;
mod audience;
mod lead;
mod notice;
mod wire;

use concord_core::decider::{Aggregate, Ctx, Rejection};
use concord_core::tagged::{from_tagged, to_tagged};
use concord_core::{Actor, Role};
use concord_testkit::decider::Given;
use serde_json::Value;
use uuid::Uuid;

use concord_testkit::actors::*;

use super::*;
use crate::operations::membership::OperationsView;
use crate::operations::{Event as OpsEvent, OperationClosed, OperationOpened, ParticipantAdded, ParticipantRemoved};

// ------------------------------------------------------------ fixtures

/// FR leads; DE, ES and MC take part.
const OP: Uuid = Uuid::from_u128(0x019a_b0c4_5e00_7000_8000_0000_0000_00aa);
/// FR leads, DE takes part; closed.
const CLOSED_OP: Uuid = Uuid::from_u128(0x019a_b0c4_5e00_7000_8000_0000_0000_00bb);
/// Known to nobody.
const UNKNOWN_OP: Uuid = Uuid::from_u128(0x019a_b0c4_5e00_7000_8000_0000_0000_00cc);
const LEAD: Uuid = Uuid::from_u128(0x019a_b0c4_5e00_7000_8000_0000_0001_0001);
const ARREST: Uuid = Uuid::from_u128(0x019a_b0c4_5e00_7000_8000_0000_0002_0001);
const NOTICE: Uuid = Uuid::from_u128(0x019a_b0c4_5e00_7000_8000_0000_0003_0001);
const NOW: &str = concord_testkit::decider::NOW;
const LATER: &str = "2026-12-01T17:00:00.000000Z";

// The operations view, folded from the operations contract's own events as
// the service folds them.
fn fold(view: &mut OperationsView, op: Uuid, event: OpsEvent) {
    view.apply(op, &event).unwrap_or_else(|e| panic!("{event:?}: {e}"));
}
fn opened(op: Uuid, lead: &str, participants: &[&str]) -> OpsEvent {
    OpsEvent::OperationOpened(OperationOpened {
        operation_id: op,
        title: "Opération Rocher".into(),
        objective: "identify and arrest the burglar".into(),
        lead_country: cc(lead),
        participants: ccs(participants),
        opened_at: NOW.into(),
    })
}
fn op_closed(at: &str) -> OpsEvent {
    OpsEvent::OperationClosed(OperationClosed {
        outcome: "done".into(),
        closed_at: at.into(),
    })
}
fn ops() -> OperationsView {
    let mut v = OperationsView::default();
    fold(&mut v, OP, opened(OP, "FR", &["DE", "ES", "MC"]));
    fold(&mut v, CLOSED_OP, opened(CLOSED_OP, "FR", &["DE"]));
    fold(&mut v, CLOSED_OP, op_closed(NOW));
    v
}
/// `ops()` after one more event of `OP`.
fn ops_and(event: OpsEvent) -> OperationsView {
    let mut v = ops();
    fold(&mut v, OP, event);
    v
}
fn ops_with(country: &str) -> OperationsView {
    ops_and(OpsEvent::ParticipantAdded(ParticipantAdded { country: cc(country) }))
}
fn ops_without(country: &str) -> OperationsView {
    ops_and(OpsEvent::ParticipantRemoved(ParticipantRemoved {
        country: cc(country),
    }))
}
fn ops_closed() -> OperationsView {
    ops_and(op_closed(LATER))
}

// Commands.
fn post_lead() -> PostLead {
    PostLead {
        lead_id: LEAD,
        operation_id: OP,
        summary: "fingerprints at the jeweller's".into(),
        details: None,
        subject: None,
        restricted_to: None,
        grading: None,
    }
}
fn post() -> Command {
    Command::PostLead(post_lead())
}
fn post_restricted(to: &[&str]) -> Command {
    Command::PostLead(PostLead {
        restricted_to: Some(ccs(to)),
        ..post_lead()
    })
}
fn amend_lead() -> AmendLead {
    AmendLead {
        lead_id: LEAD,
        reason: "AFIS match".into(),
        summary: Some("fingerprints matched".into()),
        details: None,
        subject: None,
        grading: None,
    }
}
fn amend() -> Command {
    Command::AmendLead(amend_lead())
}
fn retract() -> Command {
    Command::RetractLead(RetractLead {
        lead_id: LEAD,
        reason: "wrong prints".into(),
    })
}
fn person_subject() -> Subject {
    Subject {
        kind: SubjectKind::Person,
        description: "burglar".into(),
        name: Some("Ivan Petrov".into()),
        date_of_birth: Some("1985-04-12".into()),
        nationality: Some(cc("RS")),
    }
}
fn object_subject() -> Subject {
    Subject {
        kind: SubjectKind::Object,
        description: "latent fingerprints".into(),
        name: None,
        date_of_birth: None,
        nationality: None,
    }
}
fn report_arrest() -> ReportArrest {
    ReportArrest {
        arrest_id: ARREST,
        operation_id: OP,
        person: Person {
            name: "Ivan Petrov".into(),
            date_of_birth: None,
            nationality: Some(cc("RS")),
        },
        location_country: cc("DE"),
        lead_id: Some(LEAD),
        notice_id: Some(NOTICE),
    }
}
fn report() -> Command {
    Command::ReportArrest(report_arrest())
}
fn request_notice() -> RequestNotice {
    RequestNotice {
        notice_id: NOTICE,
        color: Color::Red,
        subject: person_subject(),
        reason: "wanted in five countries for aggravated burglary".into(),
        offence: Some("aggravated burglary".into()),
        warrant: Some("MC-2026-0457".into()),
        operation_id: None,
        recipients: None,
    }
}
fn request() -> Command {
    Command::RequestNotice(request_notice())
}
fn diffusion(to: &[&str]) -> Command {
    Command::RequestNotice(RequestNotice {
        recipients: Some(ccs(to)),
        ..request_notice()
    })
}
const ALL_HOLD: Grounds = Grounds {
    not_political: true,
    not_military: true,
    not_religious: true,
    not_racial: true,
    facts_support_purpose: true,
};
fn review(decision: Decision, grounds: Grounds, reason: &str) -> Command {
    Command::ReviewNotice(ReviewNotice {
        notice_id: NOTICE,
        decision,
        reason: reason.into(),
        grounds,
    })
}
fn approve() -> Command {
    review(
        Decision::Approve,
        ALL_HOLD,
        "ordinary crime, facts support a red notice",
    )
}
fn reject() -> Command {
    review(Decision::Reject, ALL_HOLD, "facts too thin")
}
fn cancel() -> Command {
    Command::CancelNotice(CancelNotice {
        notice_id: NOTICE,
        reason: "arrested".into(),
    })
}

// Events.
fn posted(owner: &str, restricted_to: &[&str]) -> Event {
    Event::LeadPosted(LeadPosted {
        lead_id: LEAD,
        operation_id: OP,
        owner_country: cc(owner),
        summary: "fingerprints at the jeweller's".into(),
        details: None,
        subject: None,
        restricted_to: ccs(restricted_to),
        grading: None,
        posted_by: sub(Role::Liaison, owner),
        posted_at: NOW.into(),
    })
}
fn amended() -> Event {
    Event::LeadAmended(LeadAmended {
        reason: "AFIS match".into(),
        summary: Some("fingerprints matched".into()),
        details: None,
        subject: None,
        grading: None,
        amended_at: NOW.into(),
    })
}
fn retracted() -> Event {
    Event::LeadRetracted(LeadRetracted {
        reason: "wrong prints".into(),
        retracted_at: NOW.into(),
    })
}
fn reported(by: &str) -> Event {
    let c = report_arrest();
    Event::ArrestReported(ArrestReported {
        arrest_id: ARREST,
        operation_id: OP,
        person: c.person,
        location_country: c.location_country,
        lead_id: c.lead_id,
        notice_id: c.notice_id,
        reporting_country: cc(by),
        reported_by: sub(Role::Liaison, by),
        reported_at: NOW.into(),
    })
}
fn requested(by: &str, recipients: Option<&[&str]>) -> Event {
    let c = request_notice();
    Event::NoticeRequested(NoticeRequested {
        notice_id: NOTICE,
        color: c.color,
        subject: c.subject,
        reason: c.reason,
        offence: c.offence,
        warrant: c.warrant,
        operation_id: None,
        recipients: recipients.map(ccs),
        requesting_country: cc(by),
        requested_by: sub(Role::Liaison, by),
        requested_at: NOW.into(),
    })
}
fn published() -> Event {
    Event::NoticePublished(NoticePublished {
        reviewed_by: sub(Role::Reviewer, "GS"),
        reviewer_country: cc("GS"),
        reason: "ordinary crime, facts support a red notice".into(),
        grounds: ALL_HOLD,
        published_at: NOW.into(),
    })
}
fn rejected() -> Event {
    Event::NoticeRejected(NoticeRejected {
        reviewed_by: sub(Role::Reviewer, "GS"),
        reviewer_country: cc("GS"),
        reason: "facts too thin".into(),
        grounds: ALL_HOLD,
        rejected_at: NOW.into(),
    })
}
fn cancelled(by: &Actor) -> Event {
    Event::NoticeCancelled(NoticeCancelled {
        reason: "arrested".into(),
        cancelled_by: by.sub.clone(),
        cancelled_at: NOW.into(),
    })
}

/// DE's unrestricted lead on `OP`.
fn lead() -> Vec<Event> {
    vec![posted("DE", &[])]
}
/// MC's red notice, not a diffusion, in `status`.
fn notice(status: NoticeStatus) -> Vec<Event> {
    let mut h = vec![requested("MC", None)];
    h.extend(match status {
        NoticeStatus::Requested => vec![],
        NoticeStatus::Published => vec![published()],
        NoticeStatus::Rejected => vec![rejected()],
        NoticeStatus::Cancelled => vec![published(), cancelled(&liaison("MC"))],
    });
    h
}

// ------------------------------------------------------------ given / when / then

/// A stream whose history is `history`, decided with `ops()` unless the
/// test says otherwise (`with_facts`).
fn given(history: impl IntoIterator<Item = Event>) -> Given<Intel> {
    concord_testkit::decider::given::<Intel>(history).with_facts(ops())
}

fn replay(events: &[Event]) -> State {
    concord_testkit::decider::replay::<Intel>(events)
}

/// A command read from its name and data as the runtime reads it: whatever
/// does not fit is `invalid`.
fn parse_command(name: &str, data: Value) -> Result<Command, Rejection> {
    from_tagged(name, &data).map_err(|e| Rejection::Invalid(format!("invalid {name} command: {e}")))
}

/// Whether `who` sees the stream `history` builds, with `ops`: the very
/// question `decide` asks before anything else.
fn sees(history: &[Event], ops: &OperationsView, who: &Actor) -> bool {
    seen_by(&replay(history), ops, &viewer(who))
}

// ------------------------------------------------------------ every kind

#[test]
fn auditors_see_everything_and_nobody_sees_an_empty_stream() {
    let histories = [
        lead(),
        vec![posted("DE", &["DE"])],
        vec![reported("DE")],
        notice(NoticeStatus::Requested),
        notice(NoticeStatus::Rejected),
        notice(NoticeStatus::Published),
        notice(NoticeStatus::Cancelled),
    ];
    for h in &histories {
        for view in [ops(), OperationsView::default()] {
            assert!(sees(h, &view, &auditor("US")), "{h:?}");
            assert!(sees(h, &view, &auditor("GS")), "{h:?}");
        }
    }
    for who in [auditor("GS"), liaison("FR"), reviewer("GS"), coordinator("FR")] {
        assert!(!sees(&[], &ops(), &who));
    }
    assert_eq!(Intel::audience(&State::Empty, &ops()), Audience::nobody());
    assert_eq!(State::Empty.view(), Value::Null);
}

#[test]
fn live_evolve_and_replay_from_stored_events_give_the_same_state() {
    let streams: [Vec<(Command, Actor)>; 3] = [
        vec![
            (post_restricted(&["ES"]), liaison("DE")),
            (amend(), liaison("DE")),
            (retract(), liaison("DE")),
        ],
        vec![(report(), liaison("ES"))],
        vec![(diffusion(&["DE", "RS"]), liaison("MC")), (reject(), reviewer("GS"))],
    ];
    for story in streams {
        let mut live = State::default();
        let mut stored: Vec<(String, Value)> = Vec::new();
        let mut stream = None;
        for (cmd, actor) in story {
            let s = Intel::stream(&cmd);
            assert_eq!(stream.get_or_insert_with(|| s.clone()), &s, "one stream per story");
            let ctx = Ctx { actor, now: NOW.into() };
            let events = Intel::decide(&live, &cmd, &ops(), &ctx).expect("every step of the story is allowed");
            for e in &events {
                live = Intel::evolve(live, e).expect("decided events evolve");
                stored.push(to_tagged(e).expect("events serialize"));
            }
        }
        let loaded: Vec<Event> = stored
            .iter()
            .map(|(t, data)| from_tagged(t, data).expect("stored events load"))
            .collect();
        assert_eq!(replay(&loaded), live);
        assert_ne!(live, State::Empty);
    }
}

// ------------------------------------------------------------ small parts

#[test]
fn dates_of_birth_are_calendar_dates() {
    for ok in ["1985-04-12", "2000-02-29", "2024-02-29", "1900-12-31", "0001-01-01"] {
        assert!(is_full_date(ok), "{ok} refused");
    }
    for bad in [
        "",
        "1985-4-12",
        "1985-04-12T00:00:00Z",
        "1900-02-29",
        "2026-02-29",
        "2026-04-31",
        "2026-13-01",
        "2026-00-10",
        "2026-01-00",
        "+985-04-12",
        "1985/04/12",
        "１９８５-04-12",
    ] {
        assert!(!is_full_date(bad), "{bad} accepted");
    }
}

#[test]
fn accuracy_holds_1_to_4_only() {
    for n in 1..=4u8 {
        assert_eq!(Accuracy::try_from(n).map(Accuracy::get), Ok(n));
    }
    for n in [0u8, 5, 255] {
        assert!(Accuracy::try_from(n).is_err(), "{n}");
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
