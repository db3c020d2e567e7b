//! The crisis decider, given/when/then, without NATS or disk; and who sees
//! a crisis after each kind of event.

use std::collections::BTreeSet;

use concord_core::decider::{Aggregate, Viewer};
use concord_core::reply::ErrorCode;
use concord_core::tagged::{from_tagged, to_tagged, variant_names};
use concord_core::{Actor, Role};
use concord_testkit::decider::Given;

use concord_testkit::actors::*;

use super::*;
use crate::deployments::{self, DeploymentStatus};

// ------------------------------------------------------------ fixtures

/// Declared by FR, severity 3.
const CRISIS: Uuid = Uuid::from_u128(0x019a_b0c4_5e00_7000_8000_0000_0000_00c1);
/// Another crisis (NL has a team there).
const OTHER_CRISIS: Uuid = Uuid::from_u128(0x019a_b0c4_5e00_7000_8000_0000_0000_00c2);
const OPERATION: Uuid = Uuid::from_u128(0x019a_b0c4_5e00_7000_8000_0000_0000_00aa);
/// To `CRISIS` from DE and GS: approved.
const DEP_APPROVED: Uuid = Uuid::from_u128(0x019a_b0c4_5e00_7000_8000_0000_0004_0001);
/// To `CRISIS` from IT: only requested.
const DEP_REQUESTED: Uuid = Uuid::from_u128(0x019a_b0c4_5e00_7000_8000_0000_0004_0002);
/// To `CRISIS` from ES: approved, arrived, ended.
const DEP_ENDED: Uuid = Uuid::from_u128(0x019a_b0c4_5e00_7000_8000_0000_0004_0003);
/// To `CRISIS` from PT: declined.
const DEP_DECLINED: Uuid = Uuid::from_u128(0x019a_b0c4_5e00_7000_8000_0000_0004_0004);
/// To `CRISIS` from AT: approved, arrived, recalled.
const DEP_RECALLED: Uuid = Uuid::from_u128(0x019a_b0c4_5e00_7000_8000_0000_0004_0005);
/// To `OTHER_CRISIS` from NL: arrived.
const DEP_ELSEWHERE: Uuid = Uuid::from_u128(0x019a_b0c4_5e00_7000_8000_0000_0004_0006);
/// To `OPERATION` from BE: arrived.
const DEP_OPERATION: Uuid = Uuid::from_u128(0x019a_b0c4_5e00_7000_8000_0000_0004_0007);
const SITREP: Uuid = Uuid::from_u128(0x019a_b0c4_5e00_7000_8000_0000_0005_0001);
const SITREP_2: Uuid = Uuid::from_u128(0x019a_b0c4_5e00_7000_8000_0000_0005_0002);
const REQUEST: Uuid = Uuid::from_u128(0x019a_b0c4_5e00_7000_8000_0000_0006_0001);
const NOW: &str = "2026-11-23T09:30:00.000000Z";
const LATER: &str = "2026-11-24T17:00:00.000000Z";

fn sev(n: u8) -> Severity {
    Severity::try_from(n).expect("test severities are 1 to 5")
}

// The teams view, built the way the service builds it: from the
// deployments contract's events, folded by its own fold.
fn apply(view: &mut TeamsView, deployment: Uuid, event: deployments::Event) {
    view.apply(deployment, &event)
        .unwrap_or_else(|e| panic!("{event:?}: {e}"));
}
fn requested_deployment(deployment: Uuid, crisis: Option<Uuid>, contributing: &[&str]) -> deployments::Event {
    deployments::Event::DeploymentRequested(deployments::DeploymentRequested {
        deployment_id: deployment,
        team: deployments::Team::Dvi,
        host_country: cc("FR"),
        crisis_id: crisis,
        operation_id: if crisis.is_none() { Some(OPERATION) } else { None },
        contributing_countries: contributing.iter().map(|c| cc(c)).collect(),
        members: vec![deployments::Member {
            name: "Dr A. Weber".into(),
            role: "odontologist".into(),
            country: cc(contributing[0]),
        }],
        reason: "victim identification".into(),
        requesting_country: cc(contributing[0]),
        requested_by: sub(Role::Liaison, contributing[0]),
        requested_at: NOW.into(),
    })
}
/// The deployments event that moves a deployment to `to`, or asks it to
/// stand down (`None`).
fn deployment_moved(to: Option<DeploymentStatus>) -> deployments::Event {
    use DeploymentStatus as S;
    use deployments::Event as E;
    match to {
        Some(S::Approved) => E::DeploymentApproved(deployments::DeploymentApproved {
            approved_by: "fr-liaison".into(),
            approved_at: NOW.into(),
        }),
        Some(S::Declined) => E::DeploymentDeclined(deployments::DeploymentDeclined {
            reason: "no need".into(),
            declined_by: "fr-liaison".into(),
            declined_at: NOW.into(),
        }),
        Some(S::Arrived) => E::DeploymentArrived(deployments::DeploymentArrived {
            arrived_at: NOW.into(),
            marked_by: "fr-liaison".into(),
        }),
        Some(S::Ended) => E::DeploymentEnded(deployments::DeploymentEnded {
            report: "42 victims identified".into(),
            ended_by: "fr-liaison".into(),
            ended_at: NOW.into(),
        }),
        Some(S::Recalled) => E::DeploymentRecalled(deployments::DeploymentRecalled {
            reason: "needed at home".into(),
            recalled_by: "at-liaison".into(),
            recalled_at: NOW.into(),
        }),
        Some(S::Requested) => panic!("a deployment is requested by deployment.requested"),
        None => E::StandDownRequested(deployments::StandDownRequested {
            crisis_id: CRISIS,
            reason: "crisis winding down".into(),
            requested_at: NOW.into(),
        }),
    }
}
fn deploy(
    view: &mut TeamsView,
    deployment: Uuid,
    crisis: Option<Uuid>,
    contributing: &[&str],
    then: &[DeploymentStatus],
) {
    apply(view, deployment, requested_deployment(deployment, crisis, contributing));
    for to in then {
        apply(view, deployment, deployment_moved(Some(*to)));
    }
}
fn teams() -> TeamsView {
    use DeploymentStatus::*;
    let mut v = TeamsView::default();
    deploy(&mut v, DEP_APPROVED, Some(CRISIS), &["DE", "GS"], &[Approved]);
    deploy(&mut v, DEP_REQUESTED, Some(CRISIS), &["IT"], &[]);
    deploy(&mut v, DEP_ENDED, Some(CRISIS), &["ES"], &[Approved, Arrived, Ended]);
    deploy(&mut v, DEP_DECLINED, Some(CRISIS), &["PT"], &[Declined]);
    deploy(
        &mut v,
        DEP_RECALLED,
        Some(CRISIS),
        &["AT"],
        &[Approved, Arrived, Recalled],
    );
    deploy(&mut v, DEP_ELSEWHERE, Some(OTHER_CRISIS), &["NL"], &[Approved, Arrived]);
    deploy(&mut v, DEP_OPERATION, None, &["BE"], &[Approved, Arrived]);
    v
}

// Commands.
fn declare_crisis() -> DeclareCrisis {
    DeclareCrisis {
        crisis_id: CRISIS,
        kind: CrisisKind::NaturalDisaster,
        title: "Floods in the Var".into(),
        country: cc("FR"),
        severity: sev(3),
    }
}
fn declare() -> Command {
    Command::DeclareCrisis(declare_crisis())
}
fn declare_in(country: &str) -> Command {
    Command::DeclareCrisis(DeclareCrisis {
        country: cc(country),
        ..declare_crisis()
    })
}
fn post_sitrep() -> PostSitrep {
    PostSitrep {
        crisis_id: CRISIS,
        sitrep_id: SITREP,
        text: "water receding in Draguignan".into(),
        casualties: None,
        needs: None,
    }
}
fn sitrep() -> Command {
    Command::PostSitrep(post_sitrep())
}
fn request_assistance() -> RequestAssistance {
    RequestAssistance {
        crisis_id: CRISIS,
        request_id: REQUEST,
        needs: vec![Need::Dvi],
        details: None,
    }
}
fn assistance() -> Command {
    Command::RequestAssistance(request_assistance())
}
fn change(severity: u8, reason: &str) -> ChangeSeverity {
    ChangeSeverity {
        crisis_id: CRISIS,
        severity: sev(severity),
        reason: reason.into(),
    }
}
fn escalate(to: u8) -> Command {
    Command::Escalate(change(to, "second dam failed"))
}
fn deescalate(to: u8) -> Command {
    Command::Deescalate(change(to, "water receding"))
}
fn close() -> Command {
    Command::CloseCrisis(CloseCrisis {
        crisis_id: CRISIS,
        summary: "all missing persons accounted for".into(),
    })
}
/// One of each command on `CRISIS`, each allowed to FR's liaison on an
/// active crisis of severity 3.
fn every_command() -> Vec<Command> {
    vec![declare(), sitrep(), assistance(), escalate(4), deescalate(2), close()]
}

// Events.
fn declared() -> Event {
    Event::CrisisDeclared(CrisisDeclared {
        crisis_id: CRISIS,
        kind: CrisisKind::NaturalDisaster,
        title: "Floods in the Var".into(),
        country: cc("FR"),
        severity: sev(3),
        declared_by: "fr-liaison".into(),
        declared_at: NOW.into(),
    })
}
fn posted(id: Uuid, by: &str) -> Event {
    Event::SitrepPosted(SitrepPosted {
        sitrep_id: id,
        text: "water receding in Draguignan".into(),
        casualties: None,
        needs: None,
        country: cc(by),
        posted_by: sub(Role::Liaison, by),
        posted_at: NOW.into(),
    })
}
fn requested() -> Event {
    Event::AssistanceRequested(AssistanceRequested {
        request_id: REQUEST,
        needs: vec![Need::Dvi],
        details: None,
        requested_by: "fr-liaison".into(),
        requested_at: NOW.into(),
    })
}
fn changed(from: u8, to: u8) -> SeverityChanged {
    SeverityChanged {
        from: sev(from),
        to: sev(to),
        reason: if to > from {
            "second dam failed".into()
        } else {
            "water receding".into()
        },
        by: "fr-liaison".into(),
        at: NOW.into(),
    }
}
fn escalated(from: u8, to: u8) -> Event {
    Event::CrisisEscalated(changed(from, to))
}
fn deescalated(from: u8, to: u8) -> Event {
    Event::CrisisDeescalated(changed(from, to))
}
fn closed() -> Event {
    Event::CrisisClosed(CrisisClosed {
        crisis_id: CRISIS,
        summary: "all missing persons accounted for".into(),
        closed_by: "fr-liaison".into(),
        closed_at: NOW.into(),
    })
}

fn crisis() -> Vec<Event> {
    vec![declared()]
}
fn closed_crisis() -> Vec<Event> {
    vec![declared(), posted(SITREP, "FR"), closed()]
}

// ------------------------------------------------------------ given / when / then

/// The stream's history, with the stories' teams (`teams()`) as facts.
fn given(history: impl IntoIterator<Item = Event>) -> Given<Crisis> {
    concord_testkit::decider::given(history).with_facts(teams())
}

fn replay(events: &[Event]) -> State {
    concord_testkit::decider::replay::<Crisis>(events)
}

fn the_crisis(history: &[Event]) -> CrisisRecord {
    match replay(history) {
        State::Crisis(c) => c,
        State::Empty => panic!("no crisis"),
    }
}

// ------------------------------------------------------------ the story

#[test]
fn the_story_of_a_crisis() {
    let h = given([]).when(declare(), liaison("FR")).then([declared()]);
    let h = given(h)
        .when(
            Command::PostSitrep(PostSitrep {
                casualties: Some(Casualties {
                    dead: Some(3),
                    injured: None,
                    missing: Some(12),
                }),
                needs: Some(vec![Need::SearchRescue, Need::Dvi, Need::SearchRescue]),
                ..post_sitrep()
            }),
            liaison("FR"),
        )
        .then([Event::SitrepPosted(SitrepPosted {
            casualties: Some(Casualties {
                dead: Some(3),
                injured: None,
                missing: Some(12),
            }),
            needs: Some(vec![Need::Dvi, Need::SearchRescue]),
            ..match posted(SITREP, "FR") {
                Event::SitrepPosted(e) => e,
                _ => unreachable!(),
            }
        })]);
    // DE has an approved team there.
    let h = given(h)
        .when(
            Command::PostSitrep(PostSitrep {
                sitrep_id: SITREP_2,
                ..post_sitrep()
            }),
            liaison("DE"),
        )
        .then([posted(SITREP_2, "DE")]);
    let h = given(h)
        .when(
            Command::RequestAssistance(RequestAssistance {
                needs: vec![Need::Medical, Need::Dvi, Need::Medical],
                details: Some("two DVI teams for a week".into()),
                ..request_assistance()
            }),
            liaison("FR"),
        )
        .then([Event::AssistanceRequested(AssistanceRequested {
            needs: vec![Need::Dvi, Need::Medical],
            details: Some("two DVI teams for a week".into()),
            ..match requested() {
                Event::AssistanceRequested(e) => e,
                _ => unreachable!(),
            }
        })]);
    let h = given(h).when(escalate(5), liaison("FR")).then([escalated(3, 5)]);
    let h = given(h).when(deescalate(2), liaison("FR")).then([deescalated(5, 2)]);
    let h = given(h)
        .when_at(close(), liaison("FR"), LATER)
        .then([Event::CrisisClosed(CrisisClosed {
            closed_at: LATER.into(),
            ..match closed() {
                Event::CrisisClosed(e) => e,
                _ => unreachable!(),
            }
        })]);

    let c = the_crisis(&h);
    assert_eq!(c.status, CrisisStatus::Closed);
    assert_eq!(c.severity, sev(2));
    assert_eq!(
        replay(&h).view(),
        json!({
            "id": CRISIS,
            "status": "closed",
            "kind": "natural_disaster",
            "title": "Floods in the Var",
            "country": "FR",
            "severity": 2,
            "declared_by": "fr-liaison",
            "declared_at": NOW,
            "sitreps": [
                {"sitrep_id": SITREP, "text": "water receding in Draguignan",
                 "casualties": {"dead": 3, "injured": null, "missing": 12},
                 "needs": ["dvi", "search_rescue"],
                 "country": "FR", "posted_by": "fr-liaison", "posted_at": NOW},
                {"sitrep_id": SITREP_2, "text": "water receding in Draguignan",
                 "casualties": null, "needs": null,
                 "country": "DE", "posted_by": "de-liaison", "posted_at": NOW},
            ],
            "assistance_requests": [
                {"request_id": REQUEST, "needs": ["dvi", "medical"], "details": "two DVI teams for a week",
                 "requested_by": "fr-liaison", "requested_at": NOW},
            ],
            "severity_changes": [
                {"from": 3, "to": 5, "reason": "second dam failed", "by": "fr-liaison", "at": NOW},
                {"from": 5, "to": 2, "reason": "water receding", "by": "fr-liaison", "at": NOW},
            ],
            "closure": {"crisis_id": CRISIS, "summary": "all missing persons accounted for",
                        "closed_by": "fr-liaison", "closed_at": LATER},
        })
    );
}

#[test]
fn nobody_sees_an_empty_stream() {
    assert_eq!(State::Empty.view(), Value::Null);
    assert_eq!(replay(&crisis()).view()["status"], "active");
}

// ------------------------------------------------------------ declaring

#[test]
fn only_a_liaison_of_the_country_declares_a_crisis_there() {
    for who in [
        liaison("DE"),
        liaison("GS"),
        coordinator("FR"),
        coordinator("GS"),
        reviewer("FR"),
        auditor("FR"),
    ] {
        given([])
            .when(declare(), who)
            .then_rejected(ErrorCode::Forbidden, "only a liaison of FR can declare a crisis in FR");
    }
    given([]).when(declare(), liaison("FR")).then([declared()]);
}

#[test]
fn the_secretariat_is_no_place_for_a_crisis() {
    given([])
        .when(declare_in("GS"), liaison("GS"))
        .then_rejected(ErrorCode::Invalid, "country GS is the secretariat");
    // Another country's liaison is refused first for who it is.
    given([])
        .when(declare_in("GS"), liaison("FR"))
        .then_rejected(ErrorCode::Forbidden, "only a liaison of GS");
}

#[test]
fn a_crisis_has_a_title_of_bounded_length() {
    for (title, contains) in [
        ("", "title must not be empty"),
        (" \t\n", "title must not be empty"),
        (&"t".repeat(TITLE_CHARS_MAX + 1), "title is longer than 200 characters"),
    ] {
        given([])
            .when(
                Command::DeclareCrisis(DeclareCrisis {
                    title: title.into(),
                    ..declare_crisis()
                }),
                liaison("FR"),
            )
            .then_rejected(ErrorCode::Invalid, contains);
    }
    let longest = "é".repeat(TITLE_CHARS_MAX);
    let h = given([])
        .when(
            Command::DeclareCrisis(DeclareCrisis {
                title: longest.clone(),
                ..declare_crisis()
            }),
            liaison("FR"),
        )
        .then([Event::CrisisDeclared(CrisisDeclared {
            title: longest,
            ..match declared() {
                Event::CrisisDeclared(e) => e,
                _ => unreachable!(),
            }
        })]);
    assert_eq!(the_crisis(&h).title.chars().count(), TITLE_CHARS_MAX);
}

#[test]
fn severity_holds_1_to_5_only() {
    for n in 1..=5u8 {
        assert_eq!(Severity::try_from(n).map(Severity::get), Ok(n));
    }
    for n in [0u8, 6, 255] {
        assert_eq!(Severity::try_from(n), Err(format!("severity {n} is not 1 to 5")), "{n}");
    }
    for severity in [json!(0), json!(6), json!(-1), json!(256), json!(2.5), json!("3")] {
        let body = json!({"crisis_id": CRISIS, "kind": "other", "title": "t", "country": "FR", "severity": severity});
        if let Ok(cmd) = parse_command("declare_crisis", body) {
            panic!("severity {severity} accepted: {cmd:?}");
        }
    }
}

#[test]
fn declaring_an_existing_crisis_is_a_conflict() {
    given(crisis()).when(declare(), liaison("FR")).then_rejected(
        ErrorCode::Conflict,
        "crisis 019ab0c4-5e00-7000-8000-0000000000c1 already exists",
    );
    // Whoever asks, with whatever kind.
    given(crisis())
        .when(
            Command::DeclareCrisis(DeclareCrisis {
                kind: CrisisKind::TerroristAttack,
                ..declare_crisis()
            }),
            liaison("FR"),
        )
        .then_rejected(ErrorCode::Conflict, "already exists");
    given(crisis())
        .when(declare(), liaison("DE"))
        .then_rejected(ErrorCode::Forbidden, "only a liaison of FR");
}

// ------------------------------------------------------------ no crisis, closed crisis

#[test]
fn every_command_but_declare_on_no_crisis_is_not_found() {
    for cmd in every_command().into_iter().skip(1) {
        for who in [liaison("FR"), liaison("DE"), coordinator("FR"), auditor("GS")] {
            given([])
                .when(cmd.clone(), who)
                .then_rejected(ErrorCode::NotFound, "crisis not found");
        }
    }
}

#[test]
fn a_closed_crisis_refuses_everything() {
    assert_eq!(every_command().len(), variant_names::<Command>().len(), "every command");
    for cmd in every_command() {
        // The affected liaison, and whoever else: closed comes before who.
        for who in [liaison("FR"), liaison("DE"), liaison("US"), auditor("GS")] {
            given(closed_crisis())
                .when(cmd.clone(), who)
                .then_rejected(ErrorCode::RuleViolated, "crisis is closed");
        }
    }
}

// ------------------------------------------------------------ sitreps

#[test]
fn the_affected_country_and_countries_with_a_team_there_post_sitreps() {
    given(crisis())
        .when(sitrep(), liaison("FR"))
        .then([posted(SITREP, "FR")]);
    // DE and the secretariat contribute to an approved deployment.
    given(crisis())
        .when(sitrep(), liaison("DE"))
        .then([posted(SITREP, "DE")]);
    given(crisis())
        .when(sitrep(), liaison("GS"))
        .then([posted(SITREP, "GS")]);
    // Still once the team arrived.
    let mut arrived = teams();
    apply(
        &mut arrived,
        DEP_APPROVED,
        deployment_moved(Some(DeploymentStatus::Arrived)),
    );
    given(crisis())
        .with_facts(arrived.clone())
        .when(sitrep(), liaison("DE"))
        .then([posted(SITREP, "DE")]);
    // A stand-down request changes nothing until the deployment ends.
    apply(&mut arrived, DEP_APPROVED, deployment_moved(None));
    given(crisis())
        .with_facts(arrived.clone())
        .when(sitrep(), liaison("DE"))
        .then([posted(SITREP, "DE")]);
    apply(
        &mut arrived,
        DEP_APPROVED,
        deployment_moved(Some(DeploymentStatus::Ended)),
    );
    given(crisis())
        .with_facts(arrived)
        .when(sitrep(), liaison("DE"))
        .then_rejected(ErrorCode::Forbidden, "only a liaison of the affected country FR");
}

#[test]
fn a_country_whose_team_is_not_there_may_not_post_a_sitrep() {
    // IT: requested only; ES: ended; PT: declined; AT: recalled.
    for country in ["IT", "ES", "PT", "AT"] {
        given(crisis()).when(sitrep(), liaison(country)).then_rejected(
            ErrorCode::Forbidden,
            "only a liaison of the affected country FR or of a country with a team deployed there can post a sitrep",
        );
    }
}

#[test]
fn an_unrelated_country_may_not_post_a_sitrep() {
    // US: no team at all; NL: a team at another crisis; BE: a team on an
    // operation.
    for country in ["US", "NL", "BE"] {
        given(crisis())
            .when(sitrep(), liaison(country))
            .then_rejected(ErrorCode::Forbidden, "only a liaison of the affected country FR");
    }
    // With no deployments known at all, only FR.
    given(crisis())
        .with_facts(TeamsView::default())
        .when(sitrep(), liaison("DE"))
        .then_rejected(ErrorCode::Forbidden, "with a team deployed there");
}

#[test]
fn only_a_liaison_posts_a_sitrep() {
    for who in [
        coordinator("FR"),
        coordinator("DE"),
        reviewer("GS"),
        auditor("FR"),
        auditor("GS"),
    ] {
        given(crisis())
            .when(sitrep(), who)
            .then_rejected(ErrorCode::Forbidden, "only a liaison of the affected country FR");
    }
}

#[test]
fn a_sitrep_has_a_text_and_reports_casualties_and_needs_when_given() {
    let with = |f: fn(&mut PostSitrep)| {
        let mut c = post_sitrep();
        f(&mut c);
        Command::PostSitrep(c)
    };
    for (cmd, contains) in [
        (with(|c| c.text = String::new()), "text must not be empty"),
        (with(|c| c.text = "\u{3000}\n".into()), "text must not be empty"),
        (
            with(|c| c.text = "x".repeat(SITREP_TEXT_CHARS_MAX + 1)),
            "text is longer than 8000 characters",
        ),
        (
            with(|c| {
                c.casualties = Some(Casualties {
                    dead: None,
                    injured: None,
                    missing: None,
                })
            }),
            "casualties reports at least one of dead, injured, missing",
        ),
    ] {
        given(crisis())
            .when(cmd, liaison("FR"))
            .then_rejected(ErrorCode::Invalid, contains);
    }
    // Zero is a count; no needs is an answer.
    let h = given(crisis())
        .when(
            with(|c| {
                c.casualties = Some(Casualties {
                    dead: Some(0),
                    injured: None,
                    missing: None,
                });
                c.needs = Some(vec![]);
            }),
            liaison("FR"),
        )
        .then([Event::SitrepPosted(SitrepPosted {
            casualties: Some(Casualties {
                dead: Some(0),
                injured: None,
                missing: None,
            }),
            needs: Some(vec![]),
            ..match posted(SITREP, "FR") {
                Event::SitrepPosted(e) => e,
                _ => unreachable!(),
            }
        })]);
    assert_eq!(data(&h[1])["needs"], json!([]));
    // Negative counts do not parse.
    let body = json!({"crisis_id": CRISIS, "sitrep_id": SITREP, "text": "t", "casualties": {"dead": -1}});
    assert!(parse_command("post_sitrep", body).is_err());
}

#[test]
fn a_sitrep_id_is_used_once() {
    let mut h = crisis();
    h.push(posted(SITREP, "DE"));
    given(h).when(sitrep(), liaison("FR")).then_rejected(
        ErrorCode::Conflict,
        "sitrep 019ab0c4-5e00-7000-8000-000000050001 already exists",
    );
}

#[test]
fn a_crisis_holds_at_most_2000_sitreps() {
    let mut h = crisis();
    h.extend((0..SITREPS_MAX as u128).map(|n| posted(Uuid::from_u128(n + 1), "FR")));
    given(h.clone())
        .when(sitrep(), liaison("FR"))
        .then_rejected(ErrorCode::RuleViolated, "at most 2000 sitreps");
    h.pop();
    given(h).when(sitrep(), liaison("FR")).then([posted(SITREP, "FR")]);
}

// ------------------------------------------------------------ assistance, severity, closing

#[test]
fn only_the_affected_liaison_requests_assistance_changes_severity_and_closes() {
    for (cmd, what) in [
        (assistance(), "request assistance"),
        (escalate(4), "escalate the crisis"),
        (deescalate(2), "de-escalate the crisis"),
        (close(), "close the crisis"),
    ] {
        // DE has a team there: it reports, it does not steer.
        for who in [
            liaison("DE"),
            liaison("US"),
            coordinator("FR"),
            reviewer("FR"),
            auditor("FR"),
        ] {
            given(crisis()).when(cmd.clone(), who).then_rejected(
                ErrorCode::Forbidden,
                &format!("only a liaison of the affected country FR can {what}"),
            );
        }
    }
}

#[test]
fn an_assistance_request_names_needs_and_bounded_details() {
    let with = |f: fn(&mut RequestAssistance)| {
        let mut c = request_assistance();
        f(&mut c);
        Command::RequestAssistance(c)
    };
    for (cmd, contains) in [
        (with(|c| c.needs = vec![]), "needs names at least one need"),
        (with(|c| c.details = Some(" ".into())), "details must not be empty"),
        (
            with(|c| c.details = Some("d".repeat(DETAILS_CHARS_MAX + 1))),
            "details is longer than 4000 characters",
        ),
    ] {
        given(crisis())
            .when(cmd, liaison("FR"))
            .then_rejected(ErrorCode::Invalid, contains);
    }
    let h = given(crisis())
        .when(
            with(|c| c.needs = Need::ALL.iter().rev().chain(Need::ALL.iter()).copied().collect()),
            liaison("FR"),
        )
        .then([Event::AssistanceRequested(AssistanceRequested {
            needs: Need::ALL.to_vec(),
            ..match requested() {
                Event::AssistanceRequested(e) => e,
                _ => unreachable!(),
            }
        })]);
    given(h).when(assistance(), liaison("FR")).then_rejected(
        ErrorCode::Conflict,
        "assistance request 019ab0c4-5e00-7000-8000-000000060001 already exists",
    );
    let unknown = json!({"crisis_id": CRISIS, "request_id": REQUEST, "needs": ["helicopters"]});
    match parse_command("request_assistance", unknown) {
        Err(r) => assert!(r.to_string().contains("unknown variant `helicopters`"), "{r}"),
        Ok(cmd) => panic!("accepted: {cmd:?}"),
    }
}

#[test]
fn escalating_raises_the_severity() {
    for to in [1, 2, 3] {
        given(crisis()).when(escalate(to), liaison("FR")).then_rejected(
            ErrorCode::RuleViolated,
            &format!("severity {to} is not higher than the current 3"),
        );
    }
    let h = given(crisis()).when(escalate(4), liaison("FR")).then([escalated(3, 4)]);
    assert_eq!(the_crisis(&h).severity, sev(4));
    let h = given(h).when(escalate(5), liaison("FR")).then([escalated(4, 5)]);
    given(h)
        .when(escalate(5), liaison("FR"))
        .then_rejected(ErrorCode::RuleViolated, "severity 5 is not higher than the current 5");
}

#[test]
fn deescalating_lowers_the_severity() {
    for to in [3, 4, 5] {
        given(crisis()).when(deescalate(to), liaison("FR")).then_rejected(
            ErrorCode::RuleViolated,
            &format!("severity {to} is not lower than the current 3"),
        );
    }
    let h = given(crisis())
        .when(deescalate(1), liaison("FR"))
        .then([deescalated(3, 1)]);
    assert_eq!(the_crisis(&h).severity, sev(1));
    given(h)
        .when(deescalate(1), liaison("FR"))
        .then_rejected(ErrorCode::RuleViolated, "severity 1 is not lower than the current 1");
}

#[test]
fn a_change_of_severity_has_a_reason() {
    for cmd in [Command::Escalate(change(4, "")), Command::Deescalate(change(2, "\t"))] {
        given(crisis())
            .when(cmd, liaison("FR"))
            .then_rejected(ErrorCode::Invalid, "reason must not be empty");
    }
    given(crisis())
        .when(
            Command::Escalate(change(4, &"r".repeat(REASON_CHARS_MAX + 1))),
            liaison("FR"),
        )
        .then_rejected(ErrorCode::Invalid, "reason is longer than 4000 characters");
    // Fields come after the rule on who: a forbidden caller learns nothing more.
    given(crisis())
        .when(Command::Escalate(change(1, "")), liaison("DE"))
        .then_rejected(ErrorCode::Forbidden, "can escalate the crisis");
}

#[test]
fn severity_changes_are_bounded() {
    let mut h = crisis();
    for n in 0..SEVERITY_CHANGES_MAX {
        h.push(if n % 2 == 0 { escalated(3, 4) } else { deescalated(4, 3) });
    }
    given(h)
        .when(escalate(4), liaison("FR"))
        .then_rejected(ErrorCode::RuleViolated, "at most 200 times");
}

#[test]
fn closing_needs_a_summary() {
    for (summary, contains) in [
        (String::new(), "summary must not be empty"),
        (
            "s".repeat(SUMMARY_CHARS_MAX + 1),
            "summary is longer than 8000 characters",
        ),
    ] {
        given(crisis())
            .when(
                Command::CloseCrisis(CloseCrisis {
                    crisis_id: CRISIS,
                    summary,
                }),
                liaison("FR"),
            )
            .then_rejected(ErrorCode::Invalid, contains);
    }
    given(crisis()).when(close(), liaison("FR")).then([closed()]);
}

// ------------------------------------------------------------ one story, live and replayed

#[test]
fn live_evolve_and_replay_from_stored_events_give_the_same_state() {
    let story: Vec<(Command, Actor)> = vec![
        (declare(), liaison("FR")),
        (sitrep(), liaison("GS")),
        (assistance(), liaison("FR")),
        (escalate(5), liaison("FR")),
        (deescalate(1), liaison("FR")),
        (close(), liaison("FR")),
    ];
    let mut live = State::default();
    let mut stored: Vec<(String, Value)> = Vec::new();
    for (cmd, actor) in story {
        assert_eq!(Crisis::stream(&cmd), format!("crisis-{CRISIS}"));
        let ctx = Ctx { actor, now: NOW.into() };
        let events = Crisis::decide(&live, &cmd, &teams(), &ctx).expect("every step of the story is allowed");
        for e in &events {
            live = Crisis::evolve(live, e).expect("decided events evolve");
            stored.push(to_tagged(e).expect("events serialize"));
        }
    }
    let loaded: Vec<Event> = stored
        .iter()
        .map(|(t, data)| from_tagged(t, data).expect("stored events load"))
        .collect();
    assert_eq!(replay(&loaded), live);
    assert_eq!(stored.len(), variant_names::<Event>().len(), "one of each");
}

// ------------------------------------------------------------ commands from the wire

fn parse_command(name: &str, data: Value) -> Result<Command, String> {
    from_tagged(name, &data).map_err(|e| e.to_string())
}

fn full_bodies() -> [Value; 6] {
    [
        json!({"crisis_id": CRISIS, "kind": "cyber_incident", "title": "t", "country": "FR", "severity": 5}),
        json!({"crisis_id": CRISIS, "sitrep_id": SITREP, "text": "t",
               "casualties": {"dead": 1, "injured": 2, "missing": 3}, "needs": ["dvi", "cyber"]}),
        json!({"crisis_id": CRISIS, "request_id": REQUEST, "needs": ["other"], "details": "d"}),
        json!({"crisis_id": CRISIS, "severity": 4, "reason": "r"}),
        json!({"crisis_id": CRISIS, "severity": 1, "reason": "r"}),
        json!({"crisis_id": CRISIS, "summary": "s"}),
    ]
}

#[test]
fn commands_read_from_their_name_and_data_and_name_their_stream() {
    let names = variant_names::<Command>();
    assert_eq!(
        names,
        [
            "declare_crisis",
            "post_sitrep",
            "request_assistance",
            "escalate",
            "deescalate",
            "close_crisis"
        ]
    );
    for (name, data) in names.iter().zip(full_bodies()) {
        let cmd = parse_command(name, data).unwrap_or_else(|e| panic!("{name}: {e}"));
        assert_eq!(to_tagged(&cmd).expect("serializes").0, *name);
        assert_eq!(cmd.crisis_id(), CRISIS);
        assert_eq!(Crisis::stream(&cmd), format!("crisis-{CRISIS}"));
    }
    // Optional fields may be left out.
    let cmd = parse_command(
        "post_sitrep",
        json!({"crisis_id": CRISIS, "sitrep_id": SITREP, "text": "water receding in Draguignan"}),
    );
    assert_eq!(cmd, Ok(sitrep()));
    let cmd = parse_command(
        "post_sitrep",
        json!({"crisis_id": CRISIS, "sitrep_id": SITREP, "text": "t", "casualties": {"injured": 4}}),
    )
    .expect("one count is enough");
    let Command::PostSitrep(c) = cmd else {
        panic!("a sitrep")
    };
    assert_eq!(
        c.casualties,
        Some(Casualties {
            dead: None,
            injured: Some(4),
            missing: None
        })
    );
}

#[test]
fn commands_refuse_what_does_not_fit_precisely() {
    for (name, data, contains) in [
        (
            "reopen_crisis",
            json!({}),
            "unknown variant `reopen_crisis`, expected one of `declare_crisis`, `post_sitrep`",
        ),
        (
            "close_crisis",
            json!({"crisis_id": CRISIS, "summary": "s", "sneaky": true}),
            "unknown field `sneaky`",
        ),
        ("close_crisis", json!({"summary": "s"}), "missing field `crisis_id`"),
        ("close_crisis", json!(null), "data must be a JSON object, not null"),
        (
            "close_crisis",
            json!([CRISIS, "s"]),
            "data must be a JSON object, not an array",
        ),
        (
            "close_crisis",
            json!({"crisis_id": "42", "summary": "s"}),
            "UUID parsing failed",
        ),
        (
            "declare_crisis",
            json!({"crisis_id": CRISIS, "kind": "alien_invasion", "title": "t", "country": "FR", "severity": 1}),
            "unknown variant `alien_invasion`",
        ),
        (
            "declare_crisis",
            json!({"crisis_id": CRISIS, "kind": "other", "title": "t", "country": "XX", "severity": 1}),
            "\"XX\" is not an ISO 3166-1",
        ),
        (
            "declare_crisis",
            json!({"crisis_id": CRISIS, "kind": "other", "title": "t", "country": "FR", "severity": 6}),
            "severity 6 is not 1 to 5",
        ),
        (
            "post_sitrep",
            json!({"crisis_id": CRISIS, "sitrep_id": SITREP, "text": "t", "casualties": {"wounded": 1}}),
            "unknown field `wounded`",
        ),
        (
            "post_sitrep",
            json!({"crisis_id": CRISIS, "sitrep_id": SITREP, "text": "t", "casualties": {"dead": 1.5}}),
            "invalid type: floating point `1.5`",
        ),
        (
            "post_sitrep",
            json!({"crisis_id": CRISIS, "sitrep_id": SITREP, "text": "t", "country": "DE"}),
            "unknown field `country`",
        ),
        (
            "request_assistance",
            json!({"crisis_id": CRISIS, "request_id": REQUEST}),
            "missing field `needs`",
        ),
        (
            "escalate",
            json!({"crisis_id": CRISIS, "reason": "r"}),
            "missing field `severity`",
        ),
        (
            "deescalate",
            json!({"crisis_id": CRISIS, "severity": 0, "reason": "r"}),
            "severity 0 is not 1 to 5",
        ),
    ] {
        match parse_command(name, data) {
            Ok(cmd) => panic!("{name} accepted: {cmd:?}"),
            Err(r) => assert!(r.contains(contains), "{r} does not contain {contains:?}"),
        }
    }
}

#[test]
fn the_enums_list_every_value_once() {
    let kinds: BTreeSet<&str> = CrisisKind::ALL.iter().map(CrisisKind::as_str).collect();
    assert_eq!(kinds.len(), CrisisKind::ALL.len());
    for k in CrisisKind::ALL {
        assert_eq!(serde_json::to_value(k).expect("serializes"), json!(k.as_str()));
    }
    let needs: BTreeSet<&str> = Need::ALL.iter().map(Need::as_str).collect();
    assert_eq!(needs.len(), Need::ALL.len());
    for n in Need::ALL {
        assert_eq!(serde_json::to_value(n).expect("serializes"), json!(n.as_str()));
    }
    // Need::ALL is the order needs are stored in.
    assert!(Need::ALL.windows(2).all(|w| w[0] < w[1]));
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
        declared(),
        posted(SITREP, "FR"),
        Event::SitrepPosted(SitrepPosted {
            text: "t\n\"quoted\"".into(),
            casualties: Some(Casualties {
                dead: Some(0),
                injured: Some(u32::MAX),
                missing: None,
            }),
            needs: Some(vec![Need::Dvi, Need::Other]),
            ..match posted(SITREP_2, "GS") {
                Event::SitrepPosted(e) => e,
                _ => unreachable!(),
            }
        }),
        requested(),
        Event::AssistanceRequested(AssistanceRequested {
            details: Some("d".into()),
            ..match requested() {
                Event::AssistanceRequested(e) => e,
                _ => unreachable!(),
            }
        }),
        escalated(1, 5),
        deescalated(5, 1),
        closed(),
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
            "crisis.declared",
            "sitrep.posted",
            "assistance.requested",
            "crisis.escalated",
            "crisis.deescalated",
            "crisis.closed"
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
        data(&declared()),
        json!({
            "crisis_id": CRISIS,
            "kind": "natural_disaster",
            "title": "Floods in the Var",
            "country": "FR",
            "severity": 3,
            "declared_by": "fr-liaison",
            "declared_at": NOW,
        })
    );
    assert_eq!(
        data(&posted(SITREP, "DE")),
        json!({
            "sitrep_id": SITREP,
            "text": "water receding in Draguignan",
            "casualties": null,
            "needs": null,
            "country": "DE",
            "posted_by": "de-liaison",
            "posted_at": NOW,
        })
    );
    assert_eq!(
        data(&every_kind_of_event()[2])["casualties"],
        json!({"dead": 0, "injured": u32::MAX, "missing": null})
    );
    assert_eq!(
        data(&requested()),
        json!({"request_id": REQUEST, "needs": ["dvi"], "details": null,
               "requested_by": "fr-liaison", "requested_at": NOW})
    );
    assert_eq!(
        data(&escalated(3, 4)),
        json!({"from": 3, "to": 4, "reason": "second dam failed", "by": "fr-liaison", "at": NOW})
    );
    assert_eq!(data(&deescalated(4, 3))["to"], 3);
    assert_eq!(
        data(&closed()),
        json!({"crisis_id": CRISIS, "summary": "all missing persons accounted for",
               "closed_by": "fr-liaison", "closed_at": NOW})
    );
}

#[test]
fn stored_events_refuse_unknown_types_and_malformed_data() {
    let e = from_tagged::<Event>("crisis.reopened", &json!({}));
    assert!(e.is_err_and(|e| e.0.contains("unknown variant `crisis.reopened`")));
    for (t, data, contains) in [
        (
            "crisis.closed",
            json!({"crisis_id": CRISIS, "summary": "s", "closed_by": "x", "closed_at": NOW, "extra": 1}),
            "unknown field `extra`",
        ),
        (
            "crisis.closed",
            json!({"crisis_id": CRISIS, "summary": "s"}),
            "missing field `closed_by`",
        ),
        ("crisis.escalated", json!(["r"]), "data must be a JSON object"),
        (
            "crisis.escalated",
            json!({"from": 3, "to": 9, "reason": "r", "by": "x", "at": NOW}),
            "severity 9 is not 1 to 5",
        ),
        (
            "crisis.declared",
            json!({"crisis_id": CRISIS, "kind": "other", "title": "t", "country": "XX", "severity": 1,
                   "declared_by": "x", "declared_at": NOW}),
            "\"XX\" is not an ISO 3166-1",
        ),
        (
            "sitrep.posted",
            json!({"sitrep_id": SITREP, "text": "t", "casualties": {"dead": -3}, "needs": null,
                   "country": "FR", "posted_by": "x", "posted_at": NOW}),
            "invalid value: integer `-3`",
        ),
        (
            "assistance.requested",
            json!({"request_id": REQUEST, "needs": ["tanks"], "details": null,
                   "requested_by": "x", "requested_at": NOW}),
            "unknown variant `tanks`",
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
    let with_sitrep = vec![declared(), posted(SITREP, "FR")];
    let with_request = vec![declared(), requested()];
    let other_closed = Event::CrisisClosed(CrisisClosed {
        crisis_id: OTHER_CRISIS,
        ..match closed() {
            Event::CrisisClosed(e) => e,
            _ => unreachable!(),
        }
    });
    for (history, next, contains) in [
        (vec![], posted(SITREP, "FR"), "sitrep.posted on an empty stream"),
        (vec![], closed(), "crisis.closed on an empty stream"),
        (
            crisis(),
            declared(),
            "crisis.declared on a crisis that is active at severity 3",
        ),
        (with_sitrep, posted(SITREP, "DE"), "sitrep.posted on a crisis"),
        (with_request, requested(), "assistance.requested on a crisis"),
        (
            crisis(),
            escalated(2, 4),
            "crisis.escalated on a crisis that is active at severity 3",
        ),
        (crisis(), escalated(3, 3), "crisis.escalated on a crisis"),
        (crisis(), escalated(3, 2), "crisis.escalated on a crisis"),
        (crisis(), deescalated(4, 1), "crisis.deescalated on a crisis"),
        (crisis(), deescalated(3, 4), "crisis.deescalated on a crisis"),
        (crisis(), other_closed, "crisis.closed on a crisis that is active"),
        (closed_crisis(), closed(), "crisis.closed on a crisis that is closed"),
        (
            closed_crisis(),
            posted(SITREP_2, "FR"),
            "sitrep.posted on a crisis that is closed",
        ),
        (
            closed_crisis(),
            escalated(3, 4),
            "crisis.escalated on a crisis that is closed",
        ),
    ] {
        let state = replay(&history);
        match Crisis::evolve(state, &next) {
            Ok(s) => panic!("{} accepted: {s:?}", type_of(&next)),
            Err(msg) => {
                assert!(msg.starts_with("corrupt crisis stream: "), "{msg}");
                assert!(msg.contains(contains), "{msg} does not contain {contains:?}");
            }
        }
    }
}

#[test]
#[should_panic(expected = "corrupt crisis stream: crisis.closed on an empty stream")]
fn a_corrupt_stream_does_not_replay() {
    let _ = replay(&[closed()]);
}

// ------------------------------------------------------------ who sees a crisis

fn viewer(role: Role, country: &str) -> Viewer {
    Viewer {
        country: cc(country),
        role,
    }
}

fn get(country: &str, role: Option<Role>) -> Query {
    Query::Get(Get {
        crisis_id: CRISIS,
        country: cc(country),
        role,
    })
}

/// For every event type, the stream right after it: who may see it. Every
/// country sees a crisis, whatever happened to it; nobody but auditors an
/// empty stream.
#[test]
fn the_audience_after_each_kind_of_event() {
    let askers = [
        viewer(Role::Liaison, "FR"),
        viewer(Role::Liaison, "DE"),
        viewer(Role::Coordinator, "US"),
        viewer(Role::Reviewer, "GS"),
        viewer(Role::Auditor, "GS"),
    ];
    let table: Vec<(Vec<Event>, [bool; 5])> = vec![
        (crisis(), [true; 5]),
        (vec![declared(), posted(SITREP, "DE")], [true; 5]),
        (vec![declared(), requested()], [true; 5]),
        (vec![declared(), escalated(3, 5)], [true; 5]),
        (vec![declared(), deescalated(3, 1)], [true; 5]),
        (closed_crisis(), [true; 5]),
    ];
    let covered: BTreeSet<String> = table
        .iter()
        .map(|(h, _)| type_of(h.last().expect("a history")))
        .collect();
    let all: BTreeSet<String> = variant_names::<Event>().iter().map(|s| s.to_string()).collect();
    assert_eq!(covered, all, "the table covers every event type");
    for (history, seen) in table {
        let audience = Crisis::audience(&replay(&history), &teams());
        let last = type_of(history.last().expect("a history"));
        for (who, seen) in askers.iter().zip(seen) {
            assert_eq!(audience.admits(who), seen, "after {last}: {who:?}");
        }
    }
    let nobody = Crisis::audience(&State::Empty, &teams());
    for who in &askers {
        assert_eq!(
            nobody.admits(who),
            who.role == Role::Auditor,
            "an empty stream: {who:?}"
        );
    }
}

#[test]
fn get_answers_every_country_and_not_found_for_no_crisis() {
    let h = closed_crisis();
    for (country, role) in [
        ("FR", None),
        ("US", Some(Role::Coordinator)),
        ("GS", Some(Role::Auditor)),
    ] {
        let answer = Crisis::answer(&get(country, role), &replay(&h), 3, &teams()).expect("every country sees it");
        assert_eq!(answer["crisis"]["version"], 3);
        assert_eq!(answer["crisis"]["status"], "closed");
        assert_eq!(answer["crisis"]["sitreps"][0]["sitrep_id"], json!(SITREP));
    }
    for role in [None, Some(Role::Auditor)] {
        assert_eq!(
            Crisis::answer(&get("FR", role), &State::Empty, 0, &teams()),
            Err(Rejection::NotFound("crisis not found".into()))
        );
    }
    assert_eq!(Crisis::query_stream(&get("FR", None)), format!("crisis-{CRISIS}"));
}

#[test]
fn a_reply_names_the_sitrep_or_request_it_created_else_the_crisis() {
    let first_sitrep = posted(SITREP_2, "FR");
    assert_eq!(
        Crisis::reply_id(&sitrep(), Some(&first_sitrep)),
        Some(SITREP_2.to_string()),
        "a retry names what the first attempt recorded"
    );
    assert_eq!(Crisis::reply_id(&sitrep(), None), Some(SITREP.to_string()));
    assert_eq!(
        Crisis::reply_id(&assistance(), Some(&requested())),
        Some(REQUEST.to_string())
    );
    assert_eq!(Crisis::reply_id(&assistance(), None), Some(REQUEST.to_string()));
    for cmd in [declare(), escalate(4), deescalate(2), close()] {
        assert_eq!(Crisis::reply_id(&cmd, None), None, "{cmd:?}: the crisis");
    }
}

#[test]
fn streams_read_back_to_their_crisis() {
    assert_eq!(STREAM.id_of(&stream_of(CRISIS)), Ok(CRISIS));
    for stream in ["crisis-42", "deployment-019ab0c4-5e00-7000-8000-0000000000c1", "crisis"] {
        let err = STREAM.id_of(stream).expect_err(stream);
        assert!(err.contains("not crisis-<uuid>"), "{err}");
    }
}

// ------------------------------------------------------------ small parts

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
