//! Which countries have a team deployed for a crisis, as other services
//! see it (crisis): a pure fold of the deployments events, kept with the
//! contract because it owns what its events mean and its status table.
//! Followers get it from the log through the kernel consumer; they never
//! ask the deployments service.
//!
//! Must not: do IO, or hold a rule of the services that use it.

use std::collections::{BTreeMap, BTreeSet};

use concord_core::CountryCode;
use uuid::Uuid;

use super::{DeploymentStatus, Event};
use crate::tag_of;

/// One deployment as another service knows it.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct DeploymentInfo {
    /// `None` for a deployment to an operation.
    pub crisis_id: Option<Uuid>,
    pub contributing_countries: BTreeSet<CountryCode>,
    pub status: DeploymentStatus,
}

/// What another service knows of deployments, folded from the deployments
/// service's events (it never calls that service).
#[derive(Default, Clone, Debug, serde::Serialize, serde::Deserialize)]
pub struct TeamsView {
    deployments: BTreeMap<Uuid, DeploymentInfo>,
}

impl TeamsView {
    /// Folds one event of deployment `deployment_id` (the id in its stream
    /// name). An event of a deployment never requested is Err (a gap in what
    /// was read), and so is a request whose `deployment_id` is not its
    /// stream's, or a change of status the contract's table
    /// (`DeploymentStatus::can_become`) does not allow (a log misread).
    /// Folding an event again changes nothing: a second
    /// `deployment.requested` of the same deployment is ignored, and so is a
    /// status it already has.
    pub fn apply(&mut self, deployment_id: Uuid, event: &Event) -> Result<(), String> {
        if let Event::DeploymentRequested(e) = event {
            if e.deployment_id != deployment_id {
                return Err(format!(
                    "deployments deployment.requested of {} on stream of {deployment_id}",
                    e.deployment_id
                ));
            }
            self.deployments.entry(deployment_id).or_insert_with(|| DeploymentInfo {
                crisis_id: e.crisis_id,
                contributing_countries: e.contributing_countries.iter().copied().collect(),
                status: DeploymentStatus::Requested,
            });
            return Ok(());
        }
        let deployment = self.deployments.get_mut(&deployment_id).ok_or_else(|| {
            format!(
                "deployments {} of deployment {deployment_id}, never requested",
                tag_of(event)
            )
        })?;
        match event.moves_to() {
            Some(next) if next == deployment.status => Ok(()),
            Some(next) if deployment.status.can_become(next) => {
                deployment.status = next;
                Ok(())
            }
            Some(_) => Err(format!(
                "deployments {} of deployment {deployment_id} that is {}",
                tag_of(event),
                deployment.status
            )),
            // A stand-down request: the team stays until ended or recalled.
            None => Ok(()),
        }
    }

    pub fn get(&self, deployment_id: Uuid) -> Option<&DeploymentInfo> {
        self.deployments.get(&deployment_id)
    }

    /// `country` contributes to a deployment linked to `crisis_id` that is
    /// approved or arrived (not requested, declined, ended or recalled).
    pub fn has_team(&self, crisis_id: Uuid, country: CountryCode) -> bool {
        self.deployments.values().any(|d| {
            d.crisis_id == Some(crisis_id) && d.status.is_under_way() && d.contributing_countries.contains(&country)
        })
    }
}

#[cfg(test)]
mod tests {
    use super::super::{
        DeploymentApproved, DeploymentArrived, DeploymentDeclined, DeploymentEnded, DeploymentRecalled,
        DeploymentRequested, Member, StandDownRequested, Team,
    };
    use super::*;

    const CRISIS: Uuid = Uuid::from_u128(0x019a_b0c4_5e00_7000_8000_0000_0000_00c1);
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
    const NOW: &str = "2026-11-23T09:30:00.000000Z";

    fn cc(code: &str) -> CountryCode {
        CountryCode::parse(code).expect("test country codes are real")
    }

    fn requested(deployment: Uuid, crisis: Option<Uuid>, contributing: &[&str]) -> Event {
        Event::DeploymentRequested(DeploymentRequested {
            deployment_id: deployment,
            team: Team::Dvi,
            host_country: cc("FR"),
            crisis_id: crisis,
            operation_id: if crisis.is_none() { Some(OPERATION) } else { None },
            contributing_countries: contributing.iter().map(|c| cc(c)).collect(),
            members: vec![Member {
                name: "Dr A. Weber".into(),
                role: "odontologist".into(),
                country: cc(contributing[0]),
            }],
            reason: "victim identification".into(),
            requesting_country: cc(contributing[0]),
            requested_by: "de-liaison".into(),
            requested_at: NOW.into(),
        })
    }

    /// The event that moves a deployment to `to`.
    fn moved(to: DeploymentStatus) -> Event {
        match to {
            DeploymentStatus::Requested => panic!("a deployment is requested by deployment.requested"),
            DeploymentStatus::Approved => Event::DeploymentApproved(DeploymentApproved {
                approved_by: "fr-liaison".into(),
                approved_at: NOW.into(),
            }),
            DeploymentStatus::Declined => Event::DeploymentDeclined(DeploymentDeclined {
                reason: "no need".into(),
                declined_by: "fr-liaison".into(),
                declined_at: NOW.into(),
            }),
            DeploymentStatus::Arrived => Event::DeploymentArrived(DeploymentArrived {
                arrived_at: NOW.into(),
                marked_by: "fr-liaison".into(),
            }),
            DeploymentStatus::Ended => Event::DeploymentEnded(DeploymentEnded {
                report: "42 victims identified".into(),
                ended_by: "fr-liaison".into(),
                ended_at: NOW.into(),
            }),
            DeploymentStatus::Recalled => Event::DeploymentRecalled(DeploymentRecalled {
                reason: "needed at home".into(),
                recalled_by: "at-liaison".into(),
                recalled_at: NOW.into(),
            }),
        }
    }

    fn stood_down() -> Event {
        Event::StandDownRequested(StandDownRequested {
            crisis_id: CRISIS,
            reason: "crisis winding down".into(),
            requested_at: NOW.into(),
        })
    }

    #[track_caller]
    fn apply(view: &mut TeamsView, deployment: Uuid, event: Event) {
        view.apply(deployment, &event)
            .unwrap_or_else(|e| panic!("{event:?}: {e}"));
    }

    fn deploy(
        view: &mut TeamsView,
        deployment: Uuid,
        crisis: Option<Uuid>,
        contributing: &[&str],
        then: &[DeploymentStatus],
    ) {
        apply(view, deployment, requested(deployment, crisis, contributing));
        for to in then {
            apply(view, deployment, moved(*to));
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

    #[test]
    fn the_teams_view_follows_a_deployment_from_request_to_end() {
        use DeploymentStatus::*;
        let mut v = TeamsView::default();
        let dep = DEP_APPROVED;
        let de = cc("DE");
        assert!(!v.has_team(CRISIS, de));
        apply(&mut v, dep, requested(dep, Some(CRISIS), &["DE", "GS"]));
        assert_eq!(v.get(dep).map(|d| d.status), Some(Requested));
        assert!(!v.has_team(CRISIS, de), "requested is not there");
        apply(&mut v, dep, moved(Approved));
        assert!(v.has_team(CRISIS, de));
        assert!(v.has_team(CRISIS, cc("GS")));
        assert!(!v.has_team(CRISIS, cc("FR")), "the host is no contributor");
        assert!(!v.has_team(OTHER_CRISIS, de), "another crisis");
        apply(&mut v, dep, moved(Arrived));
        assert!(v.has_team(CRISIS, de));
        // A stand-down request changes nothing until the deployment ends.
        apply(&mut v, dep, stood_down());
        assert!(v.has_team(CRISIS, de));
        apply(&mut v, dep, moved(Ended));
        assert_eq!(v.get(dep).map(|d| d.status), Some(Ended));
        assert!(!v.has_team(CRISIS, de), "ended is gone");

        // Approved then ended directly (without arriving).
        let mut v = TeamsView::default();
        deploy(&mut v, dep, Some(CRISIS), &["DE"], &[Approved]);
        assert!(v.has_team(CRISIS, de));
        apply(&mut v, dep, moved(Ended));
        assert!(!v.has_team(CRISIS, de));

        // Recalled while only requested, as the contract allows.
        let mut v = TeamsView::default();
        deploy(&mut v, dep, Some(CRISIS), &["DE"], &[Recalled]);
        assert_eq!(v.get(dep).map(|d| d.status), Some(Recalled));
        assert!(!v.has_team(CRISIS, de));

        // Two deployments from one country: one is enough.
        let mut v = teams();
        let second = Uuid::from_u128(0x019a_b0c4_5e00_7000_8000_0000_0004_0100);
        deploy(&mut v, second, Some(CRISIS), &["ES"], &[Approved]);
        assert!(v.has_team(CRISIS, cc("ES")), "ES has a second team, approved");
        let v = teams();
        for (country, there) in [
            ("DE", true),
            ("GS", true),
            ("IT", false),
            ("ES", false),
            ("PT", false),
            ("AT", false),
            ("NL", false),
            ("BE", false),
        ] {
            assert_eq!(v.has_team(CRISIS, cc(country)), there, "{country}");
        }
        assert!(v.has_team(OTHER_CRISIS, cc("NL")));
    }

    #[test]
    fn the_teams_view_folds_an_event_twice_the_same() {
        use DeploymentStatus::*;
        let mut v = teams();
        let new = Uuid::from_u128(0x019a_b0c4_5e00_7000_8000_0000_0004_00ff);
        deploy(&mut v, new, Some(CRISIS), &["SE"], &[Approved]);
        assert!(v.has_team(CRISIS, cc("SE")));
        // A second request of the same deployment, and a status it already
        // has, change nothing.
        apply(&mut v, new, requested(new, Some(OTHER_CRISIS), &["NO"]));
        apply(&mut v, new, moved(Approved));
        apply(&mut v, DEP_ENDED, moved(Ended));
        assert!(v.has_team(CRISIS, cc("SE")));
        assert!(!v.has_team(OTHER_CRISIS, cc("NO")));
        assert_eq!(v.get(DEP_ENDED).map(|d| d.status), Some(Ended));
    }

    #[test]
    fn the_teams_view_refuses_gaps_foreign_streams_and_moves_the_table_forbids() {
        use DeploymentStatus::*;
        let never = Uuid::from_u128(0x019a_b0c4_5e00_7000_8000_0000_0004_0eee);
        for (deployment, event, contains) in [
            (
                never,
                moved(Approved),
                "deployments deployment.approved of deployment 019ab0c4-5e00-7000-8000-000000040eee, never requested",
            ),
            (never, stood_down(), "never requested"),
            (
                never,
                requested(DEP_APPROVED, Some(CRISIS), &["DE"]),
                "deployments deployment.requested of 019ab0c4-5e00-7000-8000-000000040001 on stream of 019ab0c4-5e00-7000-8000-000000040eee",
            ),
            // Changes of status the deployments contract never records.
            (
                DEP_ENDED,
                moved(Approved),
                "deployments deployment.approved of deployment 019ab0c4-5e00-7000-8000-000000040003 that is ended",
            ),
            (DEP_DECLINED, moved(Arrived), "that is declined"),
            (DEP_REQUESTED, moved(Arrived), "that is requested"),
            (DEP_REQUESTED, moved(Ended), "that is requested"),
            (DEP_RECALLED, moved(Ended), "that is recalled"),
        ] {
            let mut v = teams();
            match v.apply(deployment, &event) {
                Ok(()) => panic!("{event:?} of {deployment} accepted"),
                Err(msg) => assert!(msg.contains(contains), "{msg} does not contain {contains:?}"),
            }
        }
    }
}
