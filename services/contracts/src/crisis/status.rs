//! Crises as other services see them (deployments): where each crisis is
//! and whether it closed, a pure fold of the crisis events, kept with the
//! contract because it owns what its events mean. Followers get it from the
//! log through the kernel consumer; they never ask the crisis service.
//!
//! Must not: do IO, or hold a rule of the services that use it.

use std::collections::BTreeMap;

use concord_core::CountryCode;
use uuid::Uuid;

use super::Event;
use crate::tag_of;

/// One crisis as another service knows it.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct CrisisInfo {
    /// Where the crisis is: the only possible host of its deployments.
    pub country: CountryCode,
    pub closed: bool,
}

/// What another service knows of crises, folded from the crisis service's
/// events (it never calls that service).
#[derive(Default, Clone, Debug, serde::Serialize, serde::Deserialize)]
pub struct CrisesView {
    crises: BTreeMap<Uuid, CrisisInfo>,
}

impl CrisesView {
    /// Folds one event of crisis `crisis_id` (the id in its stream name).
    /// Sitreps, assistance requests and changes of severity change nothing.
    /// A `crisis.closed` of a crisis never declared is Err (a gap in what
    /// was read), and so is an event whose `crisis_id` is not its stream's.
    /// A second `crisis.declared` of the same crisis is ignored, and closing
    /// twice is closing, so that folding an event again changes nothing.
    pub fn apply(&mut self, crisis_id: Uuid, event: &Event) -> Result<(), String> {
        let same_crisis = |id: Uuid| {
            if id == crisis_id {
                Ok(())
            } else {
                Err(format!("crisis {} of {id} on stream of {crisis_id}", tag_of(event)))
            }
        };
        match event {
            Event::CrisisDeclared(e) => {
                same_crisis(e.crisis_id)?;
                self.crises.entry(crisis_id).or_insert(CrisisInfo {
                    country: e.country,
                    closed: false,
                });
            }
            Event::CrisisClosed(e) => {
                same_crisis(e.crisis_id)?;
                let crisis = self
                    .crises
                    .get_mut(&crisis_id)
                    .ok_or_else(|| format!("crisis crisis.closed of crisis {crisis_id}, never declared"))?;
                crisis.closed = true;
            }
            Event::SitrepPosted(_)
            | Event::AssistanceRequested(_)
            | Event::CrisisEscalated(_)
            | Event::CrisisDeescalated(_) => {}
        }
        Ok(())
    }

    pub fn get(&self, id: Uuid) -> Option<&CrisisInfo> {
        self.crises.get(&id)
    }
}

#[cfg(test)]
mod tests {
    use super::super::{
        AssistanceRequested, CrisisClosed, CrisisDeclared, CrisisKind, Need, Severity, SeverityChanged, SitrepPosted,
    };
    use super::*;

    /// An earthquake in IT; open.
    const CRISIS: Uuid = Uuid::from_u128(0x019a_b0c4_5e00_7000_8000_0000_0000_0c01);
    /// A wildfire in GR; closed.
    const CLOSED_CRISIS: Uuid = Uuid::from_u128(0x019a_b0c4_5e00_7000_8000_0000_0000_0c03);
    /// Known to nobody.
    const UNKNOWN_CRISIS: Uuid = Uuid::from_u128(0x019a_b0c4_5e00_7000_8000_0000_0000_0c04);
    const NOW: &str = "2026-11-23T09:30:00.000000Z";

    fn cc(code: &str) -> CountryCode {
        CountryCode::parse(code).expect("test country codes are real")
    }
    fn sev(n: u8) -> Severity {
        Severity::try_from(n).expect("test severities are 1 to 5")
    }

    fn declared(crisis: Uuid, country: &str) -> Event {
        Event::CrisisDeclared(CrisisDeclared {
            crisis_id: crisis,
            kind: CrisisKind::NaturalDisaster,
            title: "Terremoto in Umbria".into(),
            country: cc(country),
            severity: sev(4),
            declared_by: "it-liaison".into(),
            declared_at: NOW.into(),
        })
    }
    fn closed(crisis: Uuid) -> Event {
        Event::CrisisClosed(CrisisClosed {
            crisis_id: crisis,
            summary: "relief over".into(),
            closed_by: "it-liaison".into(),
            closed_at: NOW.into(),
        })
    }

    #[track_caller]
    fn apply(view: &mut CrisesView, crisis: Uuid, event: Event) {
        view.apply(crisis, &event).unwrap_or_else(|e| panic!("{event:?}: {e}"));
    }

    fn crises() -> CrisesView {
        let mut v = CrisesView::default();
        apply(&mut v, CRISIS, declared(CRISIS, "IT"));
        apply(&mut v, CLOSED_CRISIS, declared(CLOSED_CRISIS, "GR"));
        apply(&mut v, CLOSED_CRISIS, closed(CLOSED_CRISIS));
        v
    }

    #[test]
    fn the_crises_view_follows_declarations_and_closings() {
        let v = crises();
        assert_eq!(
            v.get(CRISIS),
            Some(&CrisisInfo {
                country: cc("IT"),
                closed: false
            })
        );
        assert_eq!(
            v.get(CLOSED_CRISIS),
            Some(&CrisisInfo {
                country: cc("GR"),
                closed: true
            })
        );
        assert_eq!(v.get(UNKNOWN_CRISIS), None);

        let mut v = crises();
        apply(&mut v, CRISIS, closed(CRISIS));
        assert!(v.get(CRISIS).expect("declared").closed);
        // Folding an event again changes nothing: a second declaration does
        // not reopen, a second closing stays closed.
        apply(&mut v, CRISIS, declared(CRISIS, "AT"));
        apply(&mut v, CRISIS, closed(CRISIS));
        assert_eq!(
            v.get(CRISIS),
            Some(&CrisisInfo {
                country: cc("IT"),
                closed: true
            })
        );
    }

    #[test]
    fn the_crises_view_ignores_sitreps_requests_and_changes_of_severity() {
        let change = SeverityChanged {
            from: sev(4),
            to: sev(5),
            reason: "aftershocks".into(),
            by: "it-liaison".into(),
            at: NOW.into(),
        };
        let others = [
            Event::SitrepPosted(SitrepPosted {
                sitrep_id: UNKNOWN_CRISIS,
                text: "aftershocks".into(),
                casualties: None,
                needs: None,
                country: cc("IT"),
                posted_by: "it-liaison".into(),
                posted_at: NOW.into(),
            }),
            Event::AssistanceRequested(AssistanceRequested {
                request_id: UNKNOWN_CRISIS,
                needs: vec![Need::Dvi],
                details: None,
                requested_by: "it-liaison".into(),
                requested_at: NOW.into(),
            }),
            Event::CrisisEscalated(change.clone()),
            Event::CrisisDeescalated(SeverityChanged {
                from: sev(5),
                to: sev(4),
                ..change
            }),
        ];
        let mut v = crises();
        for e in &others {
            assert_eq!(v.apply(CRISIS, e), Ok(()), "{e:?}");
            // Of a crisis never declared too: nothing of them is kept.
            assert_eq!(v.apply(UNKNOWN_CRISIS, e), Ok(()), "{e:?}");
        }
        assert!(!v.get(CRISIS).expect("declared").closed);
        assert_eq!(v.get(UNKNOWN_CRISIS), None);
    }

    #[test]
    fn the_crises_view_refuses_gaps_and_foreign_streams() {
        for (crisis, event, contains) in [
            (
                UNKNOWN_CRISIS,
                closed(UNKNOWN_CRISIS),
                "crisis crisis.closed of crisis 019ab0c4-5e00-7000-8000-000000000c04, never declared",
            ),
            (
                UNKNOWN_CRISIS,
                declared(CRISIS, "IT"),
                "crisis crisis.declared of 019ab0c4-5e00-7000-8000-000000000c01 on stream of 019ab0c4-5e00-7000-8000-000000000c04",
            ),
            (CRISIS, closed(CLOSED_CRISIS), "crisis crisis.closed of"),
        ] {
            let mut v = crises();
            match v.apply(crisis, &event) {
                Ok(()) => panic!("{event:?} of {crisis} accepted"),
                Err(msg) => assert!(msg.contains(contains), "{msg} does not contain {contains:?}"),
            }
        }
    }
}
