//! The deployments decider, given/when/then, without NATS or disk; and who
//! sees a deployment after each kind of event.

use std::collections::BTreeSet;

use concord_core::decider::{Aggregate, Viewer};
use concord_core::reply::ErrorCode;
use concord_core::tagged::{from_tagged, to_tagged, variant_names};
use concord_core::{Actor, Role};
use concord_testkit::decider::{Given, When};

use concord_testkit::actors::*;

use super::*;
use crate::{crisis, operations};

// ------------------------------------------------------------ fixtures

/// An earthquake in IT; open.
const CRISIS: Uuid = Uuid::from_u128(0x019a_b0c4_5e00_7000_8000_0000_0000_0c01);
/// A flood in IT; open.
const OTHER_CRISIS: Uuid = Uuid::from_u128(0x019a_b0c4_5e00_7000_8000_0000_0000_0c02);
/// A wildfire in GR; closed.
const CLOSED_CRISIS: Uuid = Uuid::from_u128(0x019a_b0c4_5e00_7000_8000_0000_0000_0c03);
/// Known to nobody.
const UNKNOWN_CRISIS: Uuid = Uuid::from_u128(0x019a_b0c4_5e00_7000_8000_0000_0000_0c04);
/// FR leads; DE, ES and IT take part.
const OP: Uuid = Uuid::from_u128(0x019a_b0c4_5e00_7000_8000_0000_0000_00aa);
/// FR leads, ES takes part; closed.
const CLOSED_OP: Uuid = Uuid::from_u128(0x019a_b0c4_5e00_7000_8000_0000_0000_00bb);
/// Known to nobody.
const UNKNOWN_OP: Uuid = Uuid::from_u128(0x019a_b0c4_5e00_7000_8000_0000_0000_00cc);
const DEPLOYMENT: Uuid = Uuid::from_u128(0x019a_b0c4_5e00_7000_8000_0000_0004_0001);
const NOW: &str = "2026-11-23T09:30:00.000000Z";
const LATER: &str = "2026-12-01T17:00:00.000000Z";

// The crises view, built the way the service builds it: from the crisis
// contract's events, folded by its own fold.
fn apply_crisis(view: &mut CrisesView, crisis: Uuid, event: crisis::Event) {
    view.apply(crisis, &event).unwrap_or_else(|e| panic!("{event:?}: {e}"));
}
fn declared(crisis: Uuid, country: &str) -> crisis::Event {
    crisis::Event::CrisisDeclared(crisis::CrisisDeclared {
        crisis_id: crisis,
        kind: crisis::CrisisKind::NaturalDisaster,
        title: "Terremoto in Umbria".into(),
        country: cc(country),
        severity: crisis::Severity::try_from(4).expect("4 is a severity"),
        declared_by: "it-liaison".into(),
        declared_at: NOW.into(),
    })
}
fn crisis_closed_event(crisis: Uuid) -> crisis::Event {
    crisis::Event::CrisisClosed(crisis::CrisisClosed {
        crisis_id: crisis,
        summary: "relief over".into(),
        closed_by: "it-liaison".into(),
        closed_at: LATER.into(),
    })
}
fn crises() -> CrisesView {
    let mut v = CrisesView::default();
    apply_crisis(&mut v, CRISIS, declared(CRISIS, "IT"));
    apply_crisis(&mut v, OTHER_CRISIS, declared(OTHER_CRISIS, "IT"));
    apply_crisis(&mut v, CLOSED_CRISIS, declared(CLOSED_CRISIS, "GR"));
    apply_crisis(&mut v, CLOSED_CRISIS, crisis_closed_event(CLOSED_CRISIS));
    v
}
/// `crises()` with `CRISIS` closed.
fn crisis_closed() -> CrisesView {
    let mut v = crises();
    apply_crisis(&mut v, CRISIS, crisis_closed_event(CRISIS));
    v
}

// The operations view, built the way the service builds it: from the
// operations contract's events, folded by its own fold.
fn apply_op(view: &mut OperationsView, op: Uuid, event: operations::Event) {
    view.apply(op, &event).unwrap_or_else(|e| panic!("{event:?}: {e}"));
}
fn opened(op: Uuid, lead: &str, participants: &[&str]) -> operations::Event {
    operations::Event::OperationOpened(operations::OperationOpened {
        operation_id: op,
        title: "Operazione Rete".into(),
        objective: "take the botnet down".into(),
        lead_country: cc(lead),
        participants: ccs(participants),
        opened_at: NOW.into(),
    })
}
fn op_closed(at: &str) -> operations::Event {
    operations::Event::OperationClosed(operations::OperationClosed {
        outcome: "done".into(),
        closed_at: at.into(),
    })
}
fn op_added(country: &str) -> operations::Event {
    operations::Event::ParticipantAdded(operations::ParticipantAdded { country: cc(country) })
}
fn op_removed(country: &str) -> operations::Event {
    operations::Event::ParticipantRemoved(operations::ParticipantRemoved { country: cc(country) })
}
fn ops() -> OperationsView {
    let mut v = OperationsView::default();
    apply_op(&mut v, OP, opened(OP, "FR", &["DE", "ES", "IT"]));
    apply_op(&mut v, CLOSED_OP, opened(CLOSED_OP, "FR", &["ES"]));
    apply_op(&mut v, CLOSED_OP, op_closed(NOW));
    v
}
/// `ops()` after one more event of `OP`.
fn ops_and(event: operations::Event) -> OperationsView {
    let mut v = ops();
    apply_op(&mut v, OP, event);
    v
}

// Commands.
fn member(name: &str, role: &str, country: &str) -> Member {
    Member {
        name: name.into(),
        role: role.into(),
        country: cc(country),
    }
}
/// Two officers of DE and one of NL.
fn dvi_team() -> Vec<Member> {
    vec![
        member("Anna Schmidt", "team leader", "DE"),
        member("Jan de Vries", "forensic odontologist", "NL"),
        member("Karl Weber", "fingerprint expert", "DE"),
    ]
}
/// A DVI team of DE and NL to IT, for `CRISIS`.
fn crisis_request() -> RequestDeployment {
    RequestDeployment {
        deployment_id: DEPLOYMENT,
        team: Team::Dvi,
        host_country: cc("IT"),
        crisis_id: Some(CRISIS),
        operation_id: None,
        reason: "identify the victims of the earthquake".into(),
        members: dvi_team(),
    }
}
fn request() -> Command {
    Command::RequestDeployment(crisis_request())
}
fn request_with(change: impl FnOnce(&mut RequestDeployment)) -> Command {
    let mut c = crisis_request();
    change(&mut c);
    Command::RequestDeployment(c)
}
/// A cyber team of FR and DE to ES, for `OP`.
fn operation_request() -> RequestDeployment {
    RequestDeployment {
        deployment_id: DEPLOYMENT,
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
fn request_op_with(change: impl FnOnce(&mut RequestDeployment)) -> Command {
    let mut c = operation_request();
    change(&mut c);
    Command::RequestDeployment(c)
}
fn approve() -> Command {
    Command::ApproveDeployment(ApproveDeployment {
        deployment_id: DEPLOYMENT,
    })
}
fn decline(reason: &str) -> Command {
    Command::DeclineDeployment(DeclineDeployment {
        deployment_id: DEPLOYMENT,
        reason: reason.into(),
    })
}
fn arrive() -> Command {
    Command::MarkArrived(MarkArrived {
        deployment_id: DEPLOYMENT,
    })
}
fn end(report: &str) -> Command {
    Command::EndDeployment(EndDeployment {
        deployment_id: DEPLOYMENT,
        report: report.into(),
    })
}
fn recall(reason: &str) -> Command {
    Command::Recall(Recall {
        deployment_id: DEPLOYMENT,
        reason: reason.into(),
    })
}
fn stand_down(crisis: Uuid) -> Command {
    Command::RequestStandDown(RequestStandDown {
        deployment_id: DEPLOYMENT,
        crisis_id: crisis,
        reason: "the crisis is closed".into(),
    })
}

// Events.
fn requested() -> Event {
    Event::DeploymentRequested(DeploymentRequested {
        deployment_id: DEPLOYMENT,
        team: Team::Dvi,
        host_country: cc("IT"),
        crisis_id: Some(CRISIS),
        operation_id: None,
        contributing_countries: ccs(&["DE", "NL"]),
        members: dvi_team(),
        reason: "identify the victims of the earthquake".into(),
        requesting_country: cc("DE"),
        requested_by: "de-liaison".into(),
        requested_at: NOW.into(),
    })
}
fn requested_for_operation() -> Event {
    let c = operation_request();
    Event::DeploymentRequested(DeploymentRequested {
        deployment_id: DEPLOYMENT,
        team: c.team,
        host_country: c.host_country,
        crisis_id: None,
        operation_id: Some(OP),
        contributing_countries: ccs(&["DE", "FR"]),
        members: c.members,
        reason: c.reason,
        requesting_country: cc("FR"),
        requested_by: "fr-liaison".into(),
        requested_at: NOW.into(),
    })
}
fn approved() -> Event {
    Event::DeploymentApproved(DeploymentApproved {
        approved_by: "it-liaison".into(),
        approved_at: NOW.into(),
    })
}
fn declined() -> Event {
    Event::DeploymentDeclined(DeploymentDeclined {
        reason: "national teams suffice".into(),
        declined_by: "it-liaison".into(),
        declined_at: NOW.into(),
    })
}
fn arrived(by: &str) -> Event {
    Event::DeploymentArrived(DeploymentArrived {
        arrived_at: NOW.into(),
        marked_by: sub(Role::Liaison, by),
    })
}
fn ended(by: &str) -> Event {
    Event::DeploymentEnded(DeploymentEnded {
        report: "212 victims identified".into(),
        ended_by: sub(Role::Liaison, by),
        ended_at: NOW.into(),
    })
}
fn recalled(by: &str) -> Event {
    Event::DeploymentRecalled(DeploymentRecalled {
        reason: "needed at home".into(),
        recalled_by: sub(Role::Liaison, by),
        recalled_at: NOW.into(),
    })
}
fn stood_down(crisis: Uuid) -> Event {
    Event::StandDownRequested(StandDownRequested {
        crisis_id: crisis,
        reason: "the crisis is closed".into(),
        requested_at: NOW.into(),
    })
}

/// The DVI team to IT for `CRISIS`, in `status`.
fn deployment(status: DeploymentStatus) -> Vec<Event> {
    let mut h = vec![requested()];
    h.extend(match status {
        DeploymentStatus::Requested => vec![],
        DeploymentStatus::Approved => vec![approved()],
        DeploymentStatus::Declined => vec![declined()],
        DeploymentStatus::Arrived => vec![approved(), arrived("IT")],
        DeploymentStatus::Ended => vec![approved(), arrived("IT"), ended("DE")],
        DeploymentStatus::Recalled => vec![approved(), recalled("NL")],
    });
    h
}
fn status_of(history: &[Event]) -> DeploymentStatus {
    match replay(history) {
        State::Deployment(d) => d.status,
        State::Empty => panic!("no deployment"),
    }
}

// ------------------------------------------------------------ given / when / then

fn facts(crises: CrisesView, operations: OperationsView) -> DeploymentsFacts {
    DeploymentsFacts { crises, operations }
}

/// The stream's history, with the stories' crises and operations
/// (`crises()`, `ops()`) as facts.
fn given(history: impl IntoIterator<Item = Event>) -> Given<Deployments> {
    concord_testkit::decider::given(history).with_facts(facts(crises(), ops()))
}

/// One of the facts other than the stories'.
trait WithFacts {
    /// `crises` instead of `crises()`, with `ops()`.
    fn with_crises(self, crises: CrisesView) -> Self;
    /// `operations` instead of `ops()`, with `crises()`.
    fn with_ops(self, operations: OperationsView) -> Self;
}

impl WithFacts for Given<Deployments> {
    fn with_crises(self, crises: CrisesView) -> Self {
        self.with_facts(facts(crises, ops()))
    }

    fn with_ops(self, operations: OperationsView) -> Self {
        self.with_facts(facts(crises(), operations))
    }
}

/// Accepted; the events, whatever they are.
#[track_caller]
fn accepted(when: When<Deployments>) -> Vec<Event> {
    when.result
        .unwrap_or_else(|r| panic!("refused with {}: {r}", r.code().as_str()))
}

fn replay(events: &[Event]) -> State {
    concord_testkit::decider::replay::<Deployments>(events)
}

/// Whether `who`'s `get` finds the deployment after `history`.
fn sees(history: &[Event], who: &Actor) -> bool {
    let get = Query::Get(Get {
        deployment_id: DEPLOYMENT,
        country: who.country,
        role: Some(who.role),
    });
    Deployments::answer(&get, &replay(history), 1, &facts(crises(), ops())).is_ok()
}

// ------------------------------------------------------------ the stories

#[test]
fn the_story_of_a_deployment_to_a_crisis() {
    let h = given([]).when(request(), liaison("DE")).then([requested()]);
    assert_eq!(status_of(&h), DeploymentStatus::Requested);
    let h = given(h).when(approve(), liaison("IT")).then([approved()]);
    assert_eq!(status_of(&h), DeploymentStatus::Approved);
    // A contributor other than the requester marks the arrival.
    let h = given(h).when(arrive(), liaison("NL")).then([arrived("NL")]);
    assert_eq!(status_of(&h), DeploymentStatus::Arrived);
    // Whether the crisis is closed is the choreography's to know.
    assert!(replay(&h).awaits_stand_down(CRISIS), "arrived, not asked yet");
    // The crisis closes: the choreography asks the team to stand down,
    // under any actor.
    let h = given(h)
        .with_crises(crisis_closed())
        .when(stand_down(CRISIS), coordinator("GS"))
        .then([stood_down(CRISIS)]);
    assert_eq!(
        status_of(&h),
        DeploymentStatus::Arrived,
        "a stand-down changes no status"
    );
    assert!(!replay(&h).awaits_stand_down(CRISIS));
    let h = given(h)
        .when(end("212 victims identified"), liaison("IT"))
        .then([ended("IT")]);
    assert_eq!(status_of(&h), DeploymentStatus::Ended);

    let view = replay(&h).view();
    assert_eq!(view["id"], json!(DEPLOYMENT));
    assert_eq!(view["status"], "ended");
    assert_eq!(view["team"], "dvi");
    assert_eq!(view["host_country"], "IT");
    assert_eq!(view["crisis_id"], json!(CRISIS));
    assert_eq!(view["operation_id"], Value::Null);
    assert_eq!(view["contributing_countries"], json!(["DE", "NL"]));
    assert_eq!(
        view["members"][1],
        json!({"name": "Jan de Vries", "role": "forensic odontologist", "country": "NL"})
    );
    assert_eq!(view["requesting_country"], "DE");
    assert_eq!(view["requested_by"], "de-liaison");
    assert_eq!(
        view["approval"],
        json!({"approved_by": "it-liaison", "approved_at": NOW})
    );
    assert_eq!(view["arrival"], json!({"arrived_at": NOW, "marked_by": "nl-liaison"}));
    assert_eq!(view["stand_down"]["crisis_id"], json!(CRISIS));
    assert_eq!(view["end"]["ended_by"], "it-liaison");
    assert_eq!(view["decline"], Value::Null);
    assert_eq!(view["recall"], Value::Null);
    assert_eq!(State::Empty.view(), Value::Null);
}

#[test]
fn the_story_of_a_deployment_for_an_operation() {
    let h = given([])
        .when(Command::RequestDeployment(operation_request()), liaison("FR"))
        .then([requested_for_operation()]);
    let h = given(h).when(approve(), liaison("ES")).then([approved_by("ES")]);
    let h = given(h)
        .when(recall("needed at home"), liaison("DE"))
        .then([recalled("DE")]);
    assert_eq!(status_of(&h), DeploymentStatus::Recalled);
    let state = replay(&h);
    assert_eq!(state.crisis_id(), None);
    assert!(!state.awaits_stand_down(CRISIS));
    assert_eq!(state.view()["operation_id"], json!(OP));
    assert_eq!(state.view()["recall"]["recalled_by"], "de-liaison");
}

fn approved_by(country: &str) -> Event {
    Event::DeploymentApproved(DeploymentApproved {
        approved_by: sub(Role::Liaison, country),
        approved_at: NOW.into(),
    })
}

#[test]
fn the_host_declines_with_a_reason() {
    let h = given(deployment(DeploymentStatus::Requested))
        .when(decline("national teams suffice"), liaison("IT"))
        .then([declined()]);
    assert_eq!(status_of(&h), DeploymentStatus::Declined);
    assert_eq!(replay(&h).view()["decline"]["reason"], "national teams suffice");
    for reason in ["", " \n"] {
        given(deployment(DeploymentStatus::Requested))
            .when(decline(reason), liaison("IT"))
            .then_rejected(ErrorCode::Invalid, "reason must not be empty");
    }
    given(deployment(DeploymentStatus::Requested))
        .when(decline(&"r".repeat(REASON_CHARS_MAX + 1)), liaison("IT"))
        .then_rejected(ErrorCode::Invalid, "reason is longer than 4000 characters");
    given(deployment(DeploymentStatus::Requested))
        .when(decline(&"r".repeat(REASON_CHARS_MAX)), liaison("IT"))
        .then([Event::DeploymentDeclined(DeploymentDeclined {
            reason: "r".repeat(REASON_CHARS_MAX),
            declined_by: "it-liaison".into(),
            declined_at: NOW.into(),
        })]);
}

// ------------------------------------------------------------ request_deployment

#[test]
fn a_deployment_is_for_exactly_one_crisis_or_operation() {
    given([])
        .when(request_with(|c| c.operation_id = Some(OP)), liaison("DE"))
        .then_rejected(ErrorCode::Invalid, "not both");
    given([])
        .when(request_with(|c| c.crisis_id = None), liaison("DE"))
        .then_rejected(ErrorCode::Invalid, "give crisis_id or operation_id");
}

#[test]
fn a_deployment_to_an_unknown_crisis_is_not_found() {
    given([])
        .when(request_with(|c| c.crisis_id = Some(UNKNOWN_CRISIS)), liaison("DE"))
        .then_rejected(ErrorCode::NotFound, "crisis not found");
}

#[test]
fn no_team_is_sent_to_a_closed_crisis() {
    given([])
        .when(
            request_with(|c| {
                c.crisis_id = Some(CLOSED_CRISIS);
                c.host_country = cc("GR");
            }),
            liaison("DE"),
        )
        .then_rejected(ErrorCode::RuleViolated, "crisis is closed");
    // Step 2 before step 3: a coordinator learns it too.
    given([])
        .when(request_with(|c| c.crisis_id = Some(CLOSED_CRISIS)), coordinator("DE"))
        .then_rejected(ErrorCode::RuleViolated, "crisis is closed");
}

#[test]
fn a_crisis_deployment_is_hosted_by_the_crisis_country() {
    given([])
        .when(request_with(|c| c.host_country = cc("AT")), liaison("DE"))
        .then_rejected(
            ErrorCode::RuleViolated,
            &format!("crisis {CRISIS} is in IT, not in the host country AT"),
        );
}

#[test]
fn a_deployment_for_an_unknown_operation_or_one_the_caller_is_not_in_is_not_found() {
    given([])
        .when(request_op_with(|c| c.operation_id = Some(UNKNOWN_OP)), liaison("FR"))
        .then_rejected(ErrorCode::NotFound, "operation not found");
    // NL takes no part in OP: the same answer.
    given([])
        .when(
            request_op_with(|c| c.members.push(member("Piet Jansen", "analyst", "NL"))),
            liaison("NL"),
        )
        .then_rejected(ErrorCode::NotFound, "operation not found");
    // Removed from it: no longer.
    given([])
        .with_ops(ops_and(op_removed("DE")))
        .when(Command::RequestDeployment(operation_request()), liaison("DE"))
        .then_rejected(ErrorCode::NotFound, "operation not found");
}

#[test]
fn no_team_is_sent_for_a_closed_operation() {
    given([])
        .when(request_op_with(|c| c.operation_id = Some(CLOSED_OP)), liaison("FR"))
        .then_rejected(ErrorCode::RuleViolated, "operation is closed");
    given([])
        .with_ops(ops_and(op_closed(LATER)))
        .when(Command::RequestDeployment(operation_request()), liaison("FR"))
        .then_rejected(ErrorCode::RuleViolated, "operation is closed");
}

#[test]
fn the_host_and_every_contributor_take_part_in_the_operation() {
    // AT is not in OP.
    given([])
        .when(request_op_with(|c| c.host_country = cc("AT")), liaison("FR"))
        .then_rejected(
            ErrorCode::RuleViolated,
            &format!("AT does not take part in operation {OP}"),
        );
    given([])
        .with_ops(ops_and(op_removed("ES")))
        .when(Command::RequestDeployment(operation_request()), liaison("FR"))
        .then_rejected(
            ErrorCode::RuleViolated,
            &format!("ES does not take part in operation {OP}"),
        );
    given([])
        .when(
            request_op_with(|c| c.members.push(member("Piet Jansen", "analyst", "NL"))),
            liaison("FR"),
        )
        .then_rejected(
            ErrorCode::RuleViolated,
            &format!("NL does not take part in operation {OP}"),
        );
    // An added participant does.
    given([])
        .with_ops(ops_and(op_added("NL")))
        .when(
            request_op_with(|c| c.members.push(member("Piet Jansen", "analyst", "NL"))),
            liaison("NL"),
        )
        .then([Event::DeploymentRequested(DeploymentRequested {
            contributing_countries: ccs(&["DE", "FR", "NL"]),
            members: {
                let mut m = operation_request().members;
                m.push(member("Piet Jansen", "analyst", "NL"));
                m
            },
            requesting_country: cc("NL"),
            requested_by: "nl-liaison".into(),
            ..match requested_for_operation() {
                Event::DeploymentRequested(e) => e,
                _ => unreachable!(),
            }
        })]);
}

#[test]
fn only_a_liaison_of_a_contributing_country_requests() {
    for who in [coordinator("DE"), reviewer("DE"), auditor("DE")] {
        given([])
            .when(request(), who)
            .then_rejected(ErrorCode::Forbidden, "only a liaison can request a deployment");
    }
    for country in ["IT", "FR"] {
        given([]).when(request(), liaison(country)).then_rejected(
            ErrorCode::Forbidden,
            &format!("{country} contributes no member to the team"),
        );
    }
    // Any contributor, not only the first listed.
    let h = given([])
        .when(request(), liaison("NL"))
        .then([Event::DeploymentRequested(DeploymentRequested {
            requesting_country: cc("NL"),
            requested_by: "nl-liaison".into(),
            ..match requested() {
                Event::DeploymentRequested(e) => e,
                _ => unreachable!(),
            }
        })]);
    assert!(sees(&h, &liaison("NL")));
    // An auditor passes the operation lookup and is refused at step 3.
    given([])
        .when(Command::RequestDeployment(operation_request()), auditor("NL"))
        .then_rejected(ErrorCode::Forbidden, "only a liaison can request a deployment");
}

#[test]
fn the_secretariat_contributes_but_never_hosts() {
    given([])
        .when(
            request_with(|c| c.members.push(member("Ines Moreau", "IRT coordinator", "GS"))),
            liaison("GS"),
        )
        .then([Event::DeploymentRequested(DeploymentRequested {
            contributing_countries: ccs(&["DE", "GS", "NL"]),
            members: {
                let mut m = dvi_team();
                m.push(member("Ines Moreau", "IRT coordinator", "GS"));
                m
            },
            requesting_country: cc("GS"),
            requested_by: "gs-liaison".into(),
            ..match requested() {
                Event::DeploymentRequested(e) => e,
                _ => unreachable!(),
            }
        })]);
    given([])
        .when(request_with(|c| c.host_country = cc("GS")), liaison("DE"))
        .then_rejected(ErrorCode::Invalid, "host_country GS is the secretariat, not a country");
}

#[test]
fn the_host_is_no_contributor() {
    let mut crises = crises();
    apply_crisis(&mut crises, UNKNOWN_CRISIS, declared(UNKNOWN_CRISIS, "DE"));
    given([])
        .with_crises(crises)
        .when(
            request_with(|c| {
                c.crisis_id = Some(UNKNOWN_CRISIS);
                c.host_country = cc("DE");
            }),
            liaison("DE"),
        )
        .then_rejected(
            ErrorCode::RuleViolated,
            "DE hosts the deployment and cannot also contribute to it",
        );
}

#[test]
fn a_team_has_1_to_100_members_each_named_once() {
    given([])
        .when(request_with(|c| c.members.clear()), liaison("DE"))
        .then_rejected(ErrorCode::Forbidden, "DE contributes no member");
    let many: Vec<Member> = (0..=MEMBERS_MAX)
        .map(|i| member(&format!("officer {i}"), "officer", "DE"))
        .collect();
    given([])
        .when(request_with(|c| c.members = many.clone()), liaison("DE"))
        .then_rejected(ErrorCode::Invalid, "a team has at most 100 members, 101 given");
    let hundred = many[..MEMBERS_MAX].to_vec();
    let events = given([])
        .when(request_with(|c| c.members = hundred.clone()), liaison("DE"))
        .then(match requested() {
            Event::DeploymentRequested(e) => [Event::DeploymentRequested(DeploymentRequested {
                contributing_countries: ccs(&["DE"]),
                members: hundred.clone(),
                ..e
            })],
            _ => unreachable!(),
        });
    assert_eq!(events.len(), 1);
    for (change, contains) in [
        (member("", "officer", "DE"), "members[3].name must not be empty"),
        (member("x", "\t", "DE"), "members[3].role must not be empty"),
        (
            member(&"n".repeat(NAME_CHARS_MAX + 1), "officer", "DE"),
            "members[3].name is longer than 200 characters",
        ),
        (
            member("x", &"r".repeat(MEMBER_ROLE_CHARS_MAX + 1), "DE"),
            "members[3].role is longer than 200 characters",
        ),
        (
            member("Jan de Vries", "forensic odontologist", "NL"),
            "members lists Jan de Vries (forensic odontologist, NL) twice",
        ),
    ] {
        given([])
            .when(request_with(|c| c.members.push(change)), liaison("DE"))
            .then_rejected(ErrorCode::Invalid, contains);
    }
    // The same name in another role or country is another entry.
    given([])
        .when(
            request_with(|c| c.members.push(member("Jan de Vries", "team leader", "NL"))),
            liaison("DE"),
        )
        .then(match requested() {
            Event::DeploymentRequested(e) => [Event::DeploymentRequested(DeploymentRequested {
                members: {
                    let mut m = dvi_team();
                    m.push(member("Jan de Vries", "team leader", "NL"));
                    m
                },
                ..e
            })],
            _ => unreachable!(),
        });
}

#[test]
fn a_request_has_a_reason() {
    for reason in ["", "\u{3000}"] {
        given([])
            .when(request_with(|c| c.reason = reason.into()), liaison("DE"))
            .then_rejected(ErrorCode::Invalid, "reason must not be empty");
    }
    given([])
        .when(
            request_with(|c| c.reason = "r".repeat(REASON_CHARS_MAX + 1)),
            liaison("DE"),
        )
        .then_rejected(ErrorCode::Invalid, "reason is longer than 4000 characters");
}

#[test]
fn contributing_countries_are_sorted_and_distinct() {
    let events = accepted(given([]).when(
        request_with(|c| {
            c.members = vec![
                member("a", "officer", "NL"),
                member("b", "officer", "DE"),
                member("c", "officer", "NL"),
                member("d", "officer", "AT"),
            ];
        }),
        liaison("NL"),
    ));
    match &events[..] {
        [Event::DeploymentRequested(e)] => assert_eq!(e.contributing_countries, ccs(&["AT", "DE", "NL"])),
        other => panic!("{other:?}"),
    }
}

#[test]
fn requesting_an_existing_deployment_is_a_conflict() {
    for status in [DeploymentStatus::Requested, DeploymentStatus::Ended] {
        given(deployment(status))
            .when(request(), liaison("DE"))
            .then_rejected(ErrorCode::Conflict, &format!("deployment {DEPLOYMENT} already exists"));
    }
}

// ------------------------------------------------------------ approve, decline

#[test]
fn commands_on_no_deployment_are_not_found() {
    for cmd in [
        approve(),
        decline("r"),
        arrive(),
        end("r"),
        recall("r"),
        stand_down(CRISIS),
    ] {
        given([])
            .with_crises(crisis_closed())
            .when(cmd, liaison("IT"))
            .then_rejected(ErrorCode::NotFound, "deployment not found");
    }
}

#[test]
fn a_stranger_gets_not_found_not_forbidden() {
    for (cmd, status) in [
        (approve(), DeploymentStatus::Requested),
        (decline("r"), DeploymentStatus::Requested),
        (arrive(), DeploymentStatus::Approved),
        (end("r"), DeploymentStatus::Arrived),
        (recall("r"), DeploymentStatus::Arrived),
    ] {
        for who in [liaison("FR"), coordinator("AT"), reviewer("GS")] {
            given(deployment(status))
                .when(cmd.clone(), who)
                .then_rejected(ErrorCode::NotFound, "deployment not found");
        }
        // Even when the status would refuse it: step 1 comes first.
        given(deployment(DeploymentStatus::Ended))
            .when(cmd, liaison("FR"))
            .then_rejected(ErrorCode::NotFound, "deployment not found");
    }
}

#[test]
fn only_a_liaison_of_the_host_approves_or_declines() {
    for cmd in [approve(), decline("no")] {
        for who in [liaison("DE"), liaison("NL"), coordinator("IT"), auditor("FR")] {
            given(deployment(DeploymentStatus::Requested))
                .when(cmd.clone(), who)
                .then_rejected(ErrorCode::Forbidden, "only a liaison of the host country IT can");
        }
    }
}

#[test]
fn a_deployment_is_approved_or_declined_once_while_requested() {
    for status in [
        DeploymentStatus::Approved,
        DeploymentStatus::Declined,
        DeploymentStatus::Arrived,
        DeploymentStatus::Ended,
        DeploymentStatus::Recalled,
    ] {
        given(deployment(status)).when(approve(), liaison("IT")).then_rejected(
            ErrorCode::RuleViolated,
            &format!("deployment is {status}; only a requested deployment is approved"),
        );
        given(deployment(status))
            .when(decline("no"), liaison("IT"))
            .then_rejected(
                ErrorCode::RuleViolated,
                &format!("deployment is {status}; only a requested deployment is declined"),
            );
    }
    // Step 2 before step 3: a contributor learns it too.
    given(deployment(DeploymentStatus::Approved))
        .when(approve(), liaison("DE"))
        .then_rejected(ErrorCode::RuleViolated, "deployment is approved");
}

#[test]
fn no_approval_once_the_crisis_or_operation_closed() {
    given(deployment(DeploymentStatus::Requested))
        .with_crises(crisis_closed())
        .when(approve(), liaison("IT"))
        .then_rejected(ErrorCode::RuleViolated, "crisis is closed");
    given(deployment(DeploymentStatus::Requested))
        .with_crises(CrisesView::default())
        .when(approve(), liaison("IT"))
        .then_rejected(
            ErrorCode::RuleViolated,
            &format!("crisis {CRISIS} is unknown to deployments"),
        );
    given([requested_for_operation()])
        .with_ops(ops_and(op_closed(LATER)))
        .when(approve(), liaison("ES"))
        .then_rejected(ErrorCode::RuleViolated, "operation is closed");
    given([requested_for_operation()])
        .with_ops(OperationsView::default())
        .when(approve(), liaison("ES"))
        .then_rejected(
            ErrorCode::RuleViolated,
            &format!("operation {OP} is unknown to deployments"),
        );
    // Declining still works.
    given(deployment(DeploymentStatus::Requested))
        .with_crises(crisis_closed())
        .when(decline("national teams suffice"), liaison("IT"))
        .then([declined()]);
}

// ------------------------------------------------------------ arrive, end, recall

#[test]
fn a_team_arrives_only_after_approval_and_once() {
    for status in [
        DeploymentStatus::Requested,
        DeploymentStatus::Arrived,
        DeploymentStatus::Declined,
        DeploymentStatus::Ended,
        DeploymentStatus::Recalled,
    ] {
        given(deployment(status)).when(arrive(), liaison("IT")).then_rejected(
            ErrorCode::RuleViolated,
            &format!("deployment is {status}; a team arrives once, after the host approved"),
        );
    }
}

#[test]
fn the_host_or_a_contributor_marks_the_arrival_and_ends() {
    for country in ["IT", "DE", "NL"] {
        given(deployment(DeploymentStatus::Approved))
            .when(arrive(), liaison(country))
            .then([arrived(country)]);
        for status in [DeploymentStatus::Approved, DeploymentStatus::Arrived] {
            given(deployment(status))
                .when(end("212 victims identified"), liaison(country))
                .then([ended(country)]);
        }
    }
    for who in [coordinator("IT"), auditor("FR"), reviewer("DE")] {
        given(deployment(DeploymentStatus::Approved))
            .when(arrive(), who.clone())
            .then_rejected(
                ErrorCode::Forbidden,
                "only a liaison of the host or of a contributing country",
            );
        given(deployment(DeploymentStatus::Arrived))
            .when(end("r"), who)
            .then_rejected(
                ErrorCode::Forbidden,
                "only a liaison of the host or of a contributing country",
            );
    }
}

#[test]
fn only_an_approved_or_arrived_deployment_is_ended() {
    for status in [
        DeploymentStatus::Requested,
        DeploymentStatus::Declined,
        DeploymentStatus::Ended,
        DeploymentStatus::Recalled,
    ] {
        given(deployment(status)).when(end("r"), liaison("IT")).then_rejected(
            ErrorCode::RuleViolated,
            &format!("deployment is {status}; only an approved or arrived deployment is ended"),
        );
    }
}

#[test]
fn an_end_has_a_report() {
    given(deployment(DeploymentStatus::Arrived))
        .when(end(" "), liaison("IT"))
        .then_rejected(ErrorCode::Invalid, "report must not be empty");
    given(deployment(DeploymentStatus::Arrived))
        .when(end(&"r".repeat(REPORT_CHARS_MAX + 1)), liaison("IT"))
        .then_rejected(ErrorCode::Invalid, "report is longer than 4000 characters");
}

#[test]
fn only_a_liaison_of_a_contributing_country_recalls() {
    for status in [
        DeploymentStatus::Requested,
        DeploymentStatus::Approved,
        DeploymentStatus::Arrived,
    ] {
        for country in ["DE", "NL"] {
            let h = given(deployment(status))
                .when(recall("needed at home"), liaison(country))
                .then([recalled(country)]);
            assert_eq!(status_of(&h), DeploymentStatus::Recalled);
        }
    }
    for who in [liaison("IT"), coordinator("DE"), auditor("NL")] {
        given(deployment(DeploymentStatus::Arrived))
            .when(recall("r"), who)
            .then_rejected(
                ErrorCode::Forbidden,
                "only a liaison of a contributing country can recall",
            );
    }
}

#[test]
fn a_recall_has_a_reason_and_comes_before_the_end() {
    for status in [
        DeploymentStatus::Declined,
        DeploymentStatus::Ended,
        DeploymentStatus::Recalled,
    ] {
        given(deployment(status))
            .when(recall("r"), liaison("DE"))
            .then_rejected(
                ErrorCode::RuleViolated,
                &format!("deployment is {status}; only a requested, approved or arrived deployment is recalled"),
            );
    }
    given(deployment(DeploymentStatus::Approved))
        .when(recall(""), liaison("DE"))
        .then_rejected(ErrorCode::Invalid, "reason must not be empty");
}

// ------------------------------------------------------------ the stand-down

#[test]
fn no_stand_down_before_the_crisis_closed() {
    given(deployment(DeploymentStatus::Arrived))
        .when(stand_down(CRISIS), liaison("IT"))
        .then_rejected(ErrorCode::RuleViolated, &format!("crisis {CRISIS} is not closed"));
    given(deployment(DeploymentStatus::Arrived))
        .with_crises(CrisesView::default())
        .when(stand_down(CRISIS), liaison("IT"))
        .then_rejected(
            ErrorCode::RuleViolated,
            &format!("crisis {CRISIS} is unknown to deployments"),
        );
}

#[test]
fn a_stand_down_is_for_the_deployment_s_own_crisis() {
    // Another crisis, closed or not.
    given(deployment(DeploymentStatus::Arrived))
        .with_crises(crisis_closed())
        .when(stand_down(CLOSED_CRISIS), liaison("IT"))
        .then_rejected(
            ErrorCode::RuleViolated,
            &format!("deployment is for crisis {CRISIS}, not for crisis {CLOSED_CRISIS}"),
        );
    given(deployment(DeploymentStatus::Ended))
        .when(stand_down(OTHER_CRISIS), liaison("IT"))
        .then_rejected(ErrorCode::RuleViolated, "not for crisis");
    given([requested_for_operation(), approved_by("ES")])
        .when(stand_down(CLOSED_CRISIS), liaison("ES"))
        .then_rejected(
            ErrorCode::RuleViolated,
            &format!("deployment is for an operation, not for crisis {CLOSED_CRISIS}"),
        );
}

#[test]
fn a_stand_down_is_requested_once_and_not_after_the_end() {
    for status in [DeploymentStatus::Approved, DeploymentStatus::Arrived] {
        let h = given(deployment(status))
            .with_crises(crisis_closed())
            .when(stand_down(CRISIS), liaison("IT"))
            .then([stood_down(CRISIS)]);
        assert_eq!(status_of(&h), status);
        given(h)
            .with_crises(crisis_closed())
            .when(stand_down(CRISIS), liaison("IT"))
            .then([]);
    }
    for status in [
        DeploymentStatus::Ended,
        DeploymentStatus::Declined,
        DeploymentStatus::Recalled,
    ] {
        given(deployment(status))
            .with_crises(crisis_closed())
            .when(stand_down(CRISIS), liaison("IT"))
            .then([]);
    }
    // Nothing to do, even with a blank reason: there is nothing to record.
    let mut h = deployment(DeploymentStatus::Arrived);
    h.push(stood_down(CRISIS));
    given(h)
        .with_crises(crisis_closed())
        .when(
            Command::RequestStandDown(RequestStandDown {
                deployment_id: DEPLOYMENT,
                crisis_id: CRISIS,
                reason: String::new(),
            }),
            liaison("IT"),
        )
        .then([]);
}

#[test]
fn a_requested_deployment_is_not_stood_down() {
    given(deployment(DeploymentStatus::Requested))
        .with_crises(crisis_closed())
        .when(stand_down(CRISIS), liaison("IT"))
        .then_rejected(
            ErrorCode::RuleViolated,
            "deployment is requested; only an approved or arrived team is asked to stand down",
        );
}

#[test]
fn any_actor_may_ask_for_a_stand_down_that_is_true() {
    for who in [
        liaison("FR"),
        coordinator("GS"),
        reviewer("AT"),
        auditor("US"),
        liaison("DE"),
    ] {
        given(deployment(DeploymentStatus::Approved))
            .with_crises(crisis_closed())
            .when(stand_down(CRISIS), who)
            .then([stood_down(CRISIS)]);
    }
}

#[test]
fn a_stand_down_has_a_reason() {
    for (reason, contains) in [
        (String::new(), "reason must not be empty"),
        (
            "r".repeat(REASON_CHARS_MAX + 1),
            "reason is longer than 4000 characters",
        ),
    ] {
        given(deployment(DeploymentStatus::Approved))
            .with_crises(crisis_closed())
            .when(
                Command::RequestStandDown(RequestStandDown {
                    deployment_id: DEPLOYMENT,
                    crisis_id: CRISIS,
                    reason,
                }),
                liaison("IT"),
            )
            .then_rejected(ErrorCode::Invalid, contains);
    }
}

#[test]
fn a_team_asked_to_stand_down_still_arrives_ends_or_is_recalled() {
    let mut h = deployment(DeploymentStatus::Approved);
    h.push(stood_down(CRISIS));
    let arrived_h = given(h.clone()).when(arrive(), liaison("IT")).then([arrived("IT")]);
    assert!(replay(&arrived_h).view()["stand_down"].is_object(), "the flag stays");
    given(arrived_h)
        .when(end("r"), liaison("DE"))
        .then([Event::DeploymentEnded(DeploymentEnded {
            report: "r".into(),
            ended_by: "de-liaison".into(),
            ended_at: NOW.into(),
        })]);
    given(h)
        .when(recall("needed at home"), liaison("NL"))
        .then([recalled("NL")]);
}

#[test]
fn awaits_stand_down_names_the_approved_and_arrived_of_the_crisis_not_yet_asked() {
    for (status, awaits) in [
        (DeploymentStatus::Requested, false),
        (DeploymentStatus::Approved, true),
        (DeploymentStatus::Arrived, true),
        (DeploymentStatus::Declined, false),
        (DeploymentStatus::Ended, false),
        (DeploymentStatus::Recalled, false),
    ] {
        let state = replay(&deployment(status));
        assert_eq!(state.awaits_stand_down(CRISIS), awaits, "{status}");
        assert!(!state.awaits_stand_down(OTHER_CRISIS), "{status}");
        assert_eq!(state.crisis_id(), Some(CRISIS));
    }
    let mut h = deployment(DeploymentStatus::Arrived);
    h.push(stood_down(CRISIS));
    assert!(!replay(&h).awaits_stand_down(CRISIS));
    let op = replay(&[requested_for_operation(), approved_by("ES")]);
    assert!(!op.awaits_stand_down(CRISIS));
    assert_eq!(op.crisis_id(), None);
    assert!(!State::Empty.awaits_stand_down(CRISIS));
    assert_eq!(State::Empty.crisis_id(), None);
}

/// What `awaits_stand_down` says is what `decide` accepts with events.
#[test]
fn awaits_stand_down_agrees_with_decide() {
    let mut histories: Vec<Vec<Event>> = [
        DeploymentStatus::Requested,
        DeploymentStatus::Approved,
        DeploymentStatus::Arrived,
        DeploymentStatus::Declined,
        DeploymentStatus::Ended,
        DeploymentStatus::Recalled,
    ]
    .into_iter()
    .map(deployment)
    .collect();
    let mut asked = deployment(DeploymentStatus::Approved);
    asked.push(stood_down(CRISIS));
    histories.push(asked);
    for h in histories {
        let state = replay(&h);
        let ctx = Ctx {
            actor: liaison("IT"),
            now: NOW.into(),
        };
        let decided = Deployments::decide(&state, &stand_down(CRISIS), &facts(crisis_closed(), ops()), &ctx);
        let records = matches!(&decided, Ok(events) if !events.is_empty());
        assert_eq!(state.awaits_stand_down(CRISIS), records, "{h:?}: {decided:?}");
    }
}

// ------------------------------------------------------------ visibility

#[test]
fn a_deployment_is_seen_by_its_host_its_contributors_and_auditors() {
    let h = deployment(DeploymentStatus::Arrived);
    for (who, seen) in [
        (liaison("IT"), true),
        (coordinator("IT"), true),
        (liaison("DE"), true),
        (reviewer("NL"), true),
        (auditor("FR"), true),
        (liaison("FR"), false),
        (coordinator("GS"), false),
        (reviewer("AT"), false),
    ] {
        assert_eq!(sees(&h, &who), seen, "{who:?}");
    }
    // Nobody sees an empty stream, auditors included.
    assert!(!sees(&[], &auditor("FR")));
    assert!(!sees(&[], &liaison("IT")));
    // Operation participants that neither host nor contribute do not.
    let op = [requested_for_operation()];
    assert!(sees(&op, &liaison("ES")));
    assert!(
        !sees(&op, &liaison("IT")),
        "IT takes part in OP but not in the deployment"
    );
}

fn viewer(role: Role, country: &str) -> Viewer {
    Viewer {
        country: cc(country),
        role,
    }
}

/// For every event type, the stream right after it: who may see it. The
/// host (IT) and the contributors (DE, NL) whatever their role, auditors,
/// and nobody else, whatever happened to the deployment.
#[test]
fn the_audience_after_each_kind_of_event() {
    let askers = [
        viewer(Role::Liaison, "IT"),
        viewer(Role::Coordinator, "DE"),
        viewer(Role::Reviewer, "NL"),
        viewer(Role::Auditor, "FR"),
        viewer(Role::Liaison, "FR"),
        viewer(Role::Coordinator, "GS"),
        viewer(Role::Reviewer, "GS"),
    ];
    let parties = [true, true, true, true, false, false, false];
    let mut asked = deployment(DeploymentStatus::Arrived);
    asked.push(stood_down(CRISIS));
    let table: Vec<(Vec<Event>, [bool; 7])> = vec![
        (deployment(DeploymentStatus::Requested), parties),
        (deployment(DeploymentStatus::Approved), parties),
        (deployment(DeploymentStatus::Declined), parties),
        (vec![requested(), approved(), arrived("NL")], parties),
        (deployment(DeploymentStatus::Ended), parties),
        (deployment(DeploymentStatus::Recalled), parties),
        (asked, parties),
    ];
    let covered: BTreeSet<String> = table
        .iter()
        .map(|(h, _)| type_of(h.last().expect("a history")))
        .collect();
    let all: BTreeSet<String> = variant_names::<Event>().iter().map(|s| s.to_string()).collect();
    assert_eq!(covered, all, "the table covers every event type");
    let facts = facts(crises(), ops());
    for (history, seen) in table {
        let audience = Deployments::audience(&replay(&history), &facts);
        let last = type_of(history.last().expect("a history"));
        for (who, seen) in askers.iter().zip(seen) {
            assert_eq!(audience.admits(who), seen, "after {last}: {who:?}");
        }
    }
    // For an operation: its other participants (IT) do not see it.
    let op = Deployments::audience(&replay(&[requested_for_operation()]), &facts);
    for (who, seen) in [
        (viewer(Role::Liaison, "ES"), true),
        (viewer(Role::Liaison, "FR"), true),
        (viewer(Role::Liaison, "DE"), true),
        (viewer(Role::Liaison, "IT"), false),
    ] {
        assert_eq!(op.admits(&who), seen, "{who:?}");
    }
    let nobody = Deployments::audience(&State::Empty, &facts);
    for who in &askers {
        assert_eq!(
            nobody.admits(who),
            who.role == Role::Auditor,
            "an empty stream: {who:?}"
        );
    }
}

#[test]
fn get_answers_the_audience_and_not_found_alike_for_unknown_and_hidden() {
    let h = deployment(DeploymentStatus::Arrived);
    let get = |country: &str, role: Option<Role>| {
        Query::Get(Get {
            deployment_id: DEPLOYMENT,
            country: cc(country),
            role,
        })
    };
    let facts = facts(crises(), ops());
    let answer = Deployments::answer(&get("NL", None), &replay(&h), 3, &facts).expect("a contributor sees it");
    assert_eq!(answer["deployment"]["version"], 3);
    assert_eq!(answer["deployment"]["status"], "arrived");
    assert!(Deployments::answer(&get("FR", Some(Role::Auditor)), &replay(&h), 3, &facts).is_ok());
    let not_found = Err(Rejection::NotFound("deployment not found".into()));
    assert_eq!(Deployments::answer(&get("FR", None), &replay(&h), 3, &facts), not_found);
    assert_eq!(
        Deployments::answer(&get("IT", None), &State::Empty, 0, &facts),
        not_found
    );
    assert_eq!(
        Deployments::answer(&get("FR", Some(Role::Auditor)), &State::Empty, 0, &facts),
        not_found
    );
    assert_eq!(
        Deployments::query_stream(&get("FR", None)),
        format!("deployment-{DEPLOYMENT}")
    );
}

#[test]
fn streams_read_back_to_their_deployment() {
    assert_eq!(STREAM.id_of(&stream_of(DEPLOYMENT)), Ok(DEPLOYMENT));
    for stream in [
        "deployment-42",
        "crisis-019ab0c4-5e00-7000-8000-000000040001",
        "deployment",
    ] {
        let err = STREAM.id_of(stream).expect_err(stream);
        assert!(err.contains("not deployment-<uuid>"), "{err}");
    }
}

/// `DeploymentStatus::can_become` is the table `evolve` follows: one
/// table, which the `teams` fold checks moves against too.
#[test]
fn the_status_table_is_what_evolve_accepts() {
    use DeploymentStatus as S;
    let moves = [
        (S::Approved, approved()),
        (S::Declined, declined()),
        (S::Arrived, arrived("IT")),
        (S::Ended, ended("IT")),
        (S::Recalled, recalled("DE")),
    ];
    for from in [
        S::Requested,
        S::Approved,
        S::Declined,
        S::Arrived,
        S::Ended,
        S::Recalled,
    ] {
        for (to, event) in &moves {
            assert_eq!(event.moves_to(), Some(*to));
            let accepted = Deployments::evolve(replay(&deployment(from)), event).is_ok();
            assert_eq!(accepted, from.can_become(*to), "{from} → {to}");
        }
    }
    assert_eq!(requested().moves_to(), None);
    assert_eq!(stood_down(CRISIS).moves_to(), None);
}

// ------------------------------------------------------------ one story, live and replayed

#[test]
fn live_evolve_and_replay_from_stored_events_give_the_same_state() {
    let stories: [(CrisesView, Vec<(Command, Actor)>); 3] = [
        (
            crises(),
            vec![
                (request(), liaison("DE")),
                (approve(), liaison("IT")),
                (arrive(), liaison("DE")),
            ],
        ),
        (
            crises(),
            vec![
                (Command::RequestDeployment(operation_request()), liaison("FR")),
                (decline("no"), liaison("ES")),
            ],
        ),
        (
            crisis_closed(),
            vec![(stand_down(CRISIS), coordinator("GS")), (end("done"), liaison("NL"))],
        ),
    ];
    let mut previous = Vec::new();
    for (i, (crises, story)) in stories.into_iter().enumerate() {
        // The third story goes on from the first.
        let mut live = if i == 2 { replay(&previous) } else { State::default() };
        let mut stored: Vec<(String, Value)> = Vec::new();
        let facts = facts(crises, ops());
        for (cmd, actor) in story {
            assert_eq!(Deployments::stream(&cmd), format!("deployment-{DEPLOYMENT}"));
            let ctx = Ctx { actor, now: NOW.into() };
            let events = Deployments::decide(&live, &cmd, &facts, &ctx).expect("every step of the story is allowed");
            assert!(!events.is_empty());
            for e in &events {
                live = Deployments::evolve(live, e).expect("decided events evolve");
                stored.push(to_tagged(e).expect("events serialize"));
            }
        }
        let loaded: Vec<Event> = stored
            .iter()
            .map(|(t, data)| from_tagged(t, data).expect("stored events load"))
            .collect();
        let base = if i == 2 { previous.clone() } else { Vec::new() };
        assert_eq!(
            concord_testkit::decider::replay::<Deployments>(base.iter().chain(&loaded)),
            live
        );
        assert_ne!(live, State::Empty);
        if i == 0 {
            previous = loaded;
        }
    }
}

// ------------------------------------------------------------ commands from the wire

fn parse_command(name: &str, data: Value) -> Result<Command, String> {
    from_tagged(name, &data).map_err(|e| e.to_string())
}

fn full_bodies() -> [Value; 7] {
    [
        json!({"deployment_id": DEPLOYMENT, "team": "imest", "host_country": "IT", "crisis_id": CRISIS,
               "reason": "r", "members": [{"name": "n", "role": "r", "country": "DE"}]}),
        json!({"deployment_id": DEPLOYMENT}),
        json!({"deployment_id": DEPLOYMENT, "reason": "r"}),
        json!({"deployment_id": DEPLOYMENT}),
        json!({"deployment_id": DEPLOYMENT, "report": "r"}),
        json!({"deployment_id": DEPLOYMENT, "reason": "r"}),
        json!({"deployment_id": DEPLOYMENT, "crisis_id": CRISIS, "reason": "r"}),
    ]
}

#[test]
fn commands_read_from_their_name_and_data_and_name_their_stream() {
    let names = variant_names::<Command>();
    assert_eq!(
        names,
        [
            "request_deployment",
            "approve_deployment",
            "decline_deployment",
            "mark_arrived",
            "end_deployment",
            "recall",
            "request_stand_down"
        ]
    );
    for (name, data) in names.iter().zip(full_bodies()) {
        let cmd = parse_command(name, data).unwrap_or_else(|e| panic!("{name}: {e}"));
        assert_eq!(to_tagged(&cmd).expect("serializes").0, *name);
        assert_eq!(cmd.deployment_id(), DEPLOYMENT);
        assert_eq!(Deployments::stream(&cmd), format!("deployment-{DEPLOYMENT}"));
    }
    let cmd = parse_command(
        "request_deployment",
        json!({"deployment_id": DEPLOYMENT, "team": "cyber", "host_country": "ES", "operation_id": OP,
               "reason": "image the seized servers",
               "members": [{"name": "Claire Martin", "role": "team leader", "country": "FR"},
                           {"name": "Lukas Braun", "role": "malware analyst", "country": "DE"}]}),
    );
    assert_eq!(cmd, Ok(Command::RequestDeployment(operation_request())));
    for team in Team::ALL {
        let mut body = full_bodies()[0].clone();
        body["team"] = json!(team.as_str());
        match parse_command("request_deployment", body) {
            Ok(Command::RequestDeployment(c)) => assert_eq!(c.team, team),
            other => panic!("{other:?}"),
        }
        assert_eq!(team.to_string(), team.as_str());
    }
}

#[test]
fn commands_refuse_what_does_not_fit_precisely() {
    let member = json!({"name": "n", "role": "r", "country": "DE"});
    for (name, data, contains) in [
        (
            "deploy",
            json!({}),
            "unknown variant `deploy`, expected one of `request_deployment`, `approve_deployment`",
        ),
        (
            "approve_deployment",
            json!({"deployment_id": DEPLOYMENT, "sneaky": true}),
            "unknown field `sneaky`",
        ),
        ("approve_deployment", json!({}), "missing field `deployment_id`"),
        (
            "approve_deployment",
            json!(null),
            "data must be a JSON object, not null",
        ),
        (
            "recall",
            json!([DEPLOYMENT, "r"]),
            "data must be a JSON object, not an array",
        ),
        ("mark_arrived", json!({"deployment_id": "42"}), "UUID parsing failed"),
        (
            "request_deployment",
            json!({"deployment_id": DEPLOYMENT, "team": "swat", "host_country": "IT", "crisis_id": CRISIS,
                   "reason": "r", "members": [member]}),
            "unknown variant `swat`",
        ),
        (
            "request_deployment",
            json!({"deployment_id": DEPLOYMENT, "team": "dvi", "host_country": "XX", "crisis_id": CRISIS,
                   "reason": "r", "members": [member]}),
            "\"XX\" is not an ISO 3166-1",
        ),
        (
            "request_deployment",
            json!({"deployment_id": DEPLOYMENT, "team": "dvi", "host_country": "IT", "crisis_id": CRISIS,
                   "reason": "r", "members": [{"name": "n", "role": "r", "country": "DE", "rank": "x"}]}),
            "unknown field `rank`",
        ),
        (
            "request_deployment",
            json!({"deployment_id": DEPLOYMENT, "team": "dvi", "host_country": "IT", "crisis_id": CRISIS,
                   "reason": "r", "members": [{"name": "n", "country": "DE"}]}),
            "missing field `role`",
        ),
        (
            "request_deployment",
            json!({"deployment_id": DEPLOYMENT, "team": "dvi", "host_country": "IT", "crisis_id": CRISIS,
                   "reason": "r"}),
            "missing field `members`",
        ),
        (
            "end_deployment",
            json!({"deployment_id": DEPLOYMENT}),
            "missing field `report`",
        ),
        (
            "request_stand_down",
            json!({"deployment_id": DEPLOYMENT, "reason": "r"}),
            "missing field `crisis_id`",
        ),
    ] {
        match parse_command(name, data) {
            Ok(cmd) => panic!("{name} accepted: {cmd:?}"),
            Err(r) => assert!(r.contains(contains), "{r} does not contain {contains:?}"),
        }
    }
}

// ------------------------------------------------------------ events as stored

fn type_of(e: &Event) -> String {
    to_tagged(e).expect("events serialize").0
}

fn data(e: &Event) -> Value {
    to_tagged(e).expect("events serialize").1
}

fn every_kind_of_event() -> Vec<Event> {
    vec![
        requested(),
        requested_for_operation(),
        approved(),
        declined(),
        arrived("NL"),
        ended("IT"),
        recalled("DE"),
        stood_down(CRISIS),
    ]
}

#[test]
fn every_event_round_trips_through_type_and_data() {
    let events = every_kind_of_event();
    let kinds: BTreeSet<String> = events.iter().map(type_of).collect();
    let all: BTreeSet<String> = variant_names::<Event>().iter().map(|s| s.to_string()).collect();
    assert_eq!(kinds, all, "every kind is covered");
    assert_eq!(
        variant_names::<Event>(),
        [
            "deployment.requested",
            "deployment.approved",
            "deployment.declined",
            "deployment.arrived",
            "deployment.ended",
            "deployment.recalled",
            "deployment.stand_down_requested"
        ]
    );
    for e in events {
        let (t, data) = to_tagged(&e).expect("serializes");
        assert!(data.is_object(), "{data}");
        assert_eq!(from_tagged::<Event>(&t, &data), Ok(e));
    }
}

#[test]
fn stored_data_has_the_documented_shape() {
    assert_eq!(
        data(&requested()),
        json!({
            "deployment_id": DEPLOYMENT,
            "team": "dvi",
            "host_country": "IT",
            "crisis_id": CRISIS,
            "operation_id": null,
            "contributing_countries": ["DE", "NL"],
            "members": [
                {"name": "Anna Schmidt", "role": "team leader", "country": "DE"},
                {"name": "Jan de Vries", "role": "forensic odontologist", "country": "NL"},
                {"name": "Karl Weber", "role": "fingerprint expert", "country": "DE"},
            ],
            "reason": "identify the victims of the earthquake",
            "requesting_country": "DE",
            "requested_by": "de-liaison",
            "requested_at": NOW,
        })
    );
    let for_op = data(&requested_for_operation());
    assert_eq!(for_op["crisis_id"], Value::Null);
    assert_eq!(for_op["operation_id"], json!(OP));
    assert_eq!(
        data(&approved()),
        json!({"approved_by": "it-liaison", "approved_at": NOW})
    );
    assert_eq!(
        data(&declined()),
        json!({"reason": "national teams suffice", "declined_by": "it-liaison", "declined_at": NOW})
    );
    assert_eq!(
        data(&arrived("NL")),
        json!({"arrived_at": NOW, "marked_by": "nl-liaison"})
    );
    assert_eq!(
        data(&ended("IT")),
        json!({"report": "212 victims identified", "ended_by": "it-liaison", "ended_at": NOW})
    );
    assert_eq!(
        data(&recalled("DE")),
        json!({"reason": "needed at home", "recalled_by": "de-liaison", "recalled_at": NOW})
    );
    assert_eq!(
        data(&stood_down(CRISIS)),
        json!({"crisis_id": CRISIS, "reason": "the crisis is closed", "requested_at": NOW})
    );
}

#[test]
fn stored_events_refuse_unknown_types_and_malformed_data() {
    let e = from_tagged::<Event>("deployment.cancelled", &json!({}));
    assert!(e.is_err_and(|e| e.0.contains("unknown variant `deployment.cancelled`")));
    let mut requested_data = data(&requested());
    requested_data["team"] = json!("swat");
    for (t, data, contains) in [
        (
            "deployment.approved",
            json!({"approved_by": "x", "approved_at": NOW, "extra": "x"}),
            "unknown field `extra`",
        ),
        (
            "deployment.ended",
            json!({"report": "r", "ended_by": "x"}),
            "missing field `ended_at`",
        ),
        ("deployment.recalled", json!(["r"]), "data must be a JSON object"),
        ("deployment.requested", requested_data, "unknown variant `swat`"),
        (
            "deployment.stand_down_requested",
            json!({"crisis_id": "c", "reason": "r", "requested_at": NOW}),
            "UUID parsing failed",
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
    use DeploymentStatus as S;
    let both = match requested() {
        Event::DeploymentRequested(e) => Event::DeploymentRequested(DeploymentRequested {
            operation_id: Some(OP),
            ..e
        }),
        _ => unreachable!(),
    };
    let neither = match requested() {
        Event::DeploymentRequested(e) => Event::DeploymentRequested(DeploymentRequested { crisis_id: None, ..e }),
        _ => unreachable!(),
    };
    let mut asked = deployment(S::Arrived);
    asked.push(stood_down(CRISIS));
    for (history, next, contains) in [
        (vec![], approved(), "deployment.approved on an empty stream"),
        (
            vec![],
            stood_down(CRISIS),
            "deployment.stand_down_requested on an empty stream",
        ),
        (vec![], both, "for both or neither"),
        (vec![], neither, "for both or neither"),
        (
            deployment(S::Requested),
            requested(),
            "deployment.requested on a deployment that is requested",
        ),
        (
            deployment(S::Approved),
            approved(),
            "deployment.approved on a deployment that is approved",
        ),
        (
            deployment(S::Declined),
            approved(),
            "deployment.approved on a deployment that is declined",
        ),
        (
            deployment(S::Approved),
            declined(),
            "deployment.declined on a deployment that is approved",
        ),
        (
            deployment(S::Requested),
            arrived("IT"),
            "deployment.arrived on a deployment that is requested",
        ),
        (
            deployment(S::Arrived),
            arrived("IT"),
            "deployment.arrived on a deployment that is arrived",
        ),
        (
            deployment(S::Requested),
            ended("IT"),
            "deployment.ended on a deployment that is requested",
        ),
        (
            deployment(S::Ended),
            ended("IT"),
            "deployment.ended on a deployment that is ended",
        ),
        (
            deployment(S::Recalled),
            recalled("DE"),
            "deployment.recalled on a deployment that is recalled",
        ),
        (
            deployment(S::Declined),
            recalled("DE"),
            "deployment.recalled on a deployment that is declined",
        ),
        (
            deployment(S::Requested),
            stood_down(CRISIS),
            "deployment.stand_down_requested on a deployment that is requested",
        ),
        (
            deployment(S::Ended),
            stood_down(CRISIS),
            "deployment.stand_down_requested on a deployment that is ended",
        ),
        (
            deployment(S::Arrived),
            stood_down(OTHER_CRISIS),
            "deployment.stand_down_requested on a deployment that is arrived",
        ),
        (
            asked,
            stood_down(CRISIS),
            "deployment.stand_down_requested on a deployment that is arrived, asked to stand down",
        ),
    ] {
        let state = replay(&history);
        match Deployments::evolve(state, &next) {
            Ok(s) => panic!("{} accepted: {s:?}", type_of(&next)),
            Err(msg) => {
                assert!(msg.starts_with("corrupt deployments stream: "), "{msg}");
                assert!(msg.contains(contains), "{msg} does not contain {contains:?}");
            }
        }
    }
}

#[test]
#[should_panic(expected = "corrupt deployments stream: deployment.ended on an empty stream")]
fn a_corrupt_stream_does_not_replay() {
    let _ = replay(&[ended("IT")]);
}

// ------------------------------------------------------------ small parts

#[test]
fn statuses_and_teams_have_their_names() {
    use DeploymentStatus as S;
    for (s, name, is_final, under_way) in [
        (S::Requested, "requested", false, false),
        (S::Approved, "approved", false, true),
        (S::Declined, "declined", true, false),
        (S::Arrived, "arrived", false, true),
        (S::Ended, "ended", true, false),
        (S::Recalled, "recalled", true, false),
    ] {
        assert_eq!(s.as_str(), name);
        assert_eq!(json!(s), json!(name));
        assert_eq!(s.is_final(), is_final, "{s}");
        assert_eq!(s.is_under_way(), under_way, "{s}");
    }
    let names: Vec<&str> = Team::ALL.iter().map(Team::as_str).collect();
    assert_eq!(names, ["irt", "dvi", "imest", "cyber", "forensics"]);
    for team in Team::ALL {
        assert_eq!(json!(team), json!(team.as_str()));
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
