//! Leads: posting, amending, retracting, and who sees them.

use concord_core::reply::ErrorCode;
use serde_json::json;

use super::*;

// ------------------------------------------------------------ leads: the story

#[test]
fn the_story_of_a_lead() {
    let grading = Grading {
        reliability: Reliability::A,
        accuracy: Accuracy::try_from(1).expect("1 is an accuracy"),
    };
    let h = given([])
        .when(
            Command::PostLead(PostLead {
                details: Some("latent prints on the display case".into()),
                subject: Some(object_subject()),
                grading: Some(grading),
                ..post_lead()
            }),
            liaison("MC"),
        )
        .then([Event::LeadPosted(LeadPosted {
            details: Some("latent prints on the display case".into()),
            subject: Some(object_subject()),
            grading: Some(grading),
            owner_country: cc("MC"),
            posted_by: "mc-liaison".into(),
            ..match posted("DE", &[]) {
                Event::LeadPosted(e) => e,
                _ => unreachable!(),
            }
        })]);
    let h = given(h)
        .when_at(
            Command::AmendLead(AmendLead {
                summary: None,
                subject: Some(person_subject()),
                ..amend_lead()
            }),
            liaison("MC"),
            LATER,
        )
        .then([Event::LeadAmended(LeadAmended {
            reason: "AFIS match".into(),
            summary: None,
            details: None,
            subject: Some(person_subject()),
            grading: None,
            amended_at: LATER.into(),
        })]);
    let h = given(h).when(retract(), liaison("MC")).then([retracted()]);

    let State::Lead(lead) = replay(&h) else {
        panic!("a lead")
    };
    assert_eq!(lead.status, LeadStatus::Retracted);
    assert_eq!(
        lead.subject,
        Some(person_subject()),
        "the amendment replaced the subject"
    );
    assert_eq!(
        replay(&h).view(),
        json!({
            "kind": "lead",
            "id": LEAD,
            "status": "retracted",
            "operation_id": OP,
            "owner_country": "MC",
            "summary": "fingerprints at the jeweller's",
            "details": "latent prints on the display case",
            "subject": {"kind": "person", "description": "burglar", "name": "Ivan Petrov",
                        "date_of_birth": "1985-04-12", "nationality": "RS"},
            "restricted_to": [],
            "grading": {"reliability": "A", "accuracy": 1},
            "posted_by": "mc-liaison",
            "posted_at": NOW,
            "amendments": [{"reason": "AFIS match",
                            "subject": {"kind": "person", "description": "burglar", "name": "Ivan Petrov",
                                        "date_of_birth": "1985-04-12", "nationality": "RS"},
                            "amended_at": LATER}],
            "retraction": {"reason": "wrong prints", "retracted_at": NOW},
        })
    );
}

// ------------------------------------------------------------ leads: posting

#[test]
fn only_a_liaison_posts_a_lead() {
    for who in [
        coordinator("FR"),
        coordinator("DE"),
        reviewer("DE"),
        auditor("DE"),
        auditor("GS"),
    ] {
        given([])
            .when(post(), who)
            .then_rejected(ErrorCode::Forbidden, "only a liaison can post a lead");
    }
    given([]).when(post(), liaison("FR")).then([posted("FR", &[])]);
}

#[test]
fn a_lead_on_an_unknown_operation_is_not_found() {
    let unknown = Command::PostLead(PostLead {
        operation_id: UNKNOWN_OP,
        ..post_lead()
    });
    for who in [liaison("DE"), coordinator("DE"), auditor("GS")] {
        given([])
            .when(unknown.clone(), who)
            .then_rejected(ErrorCode::NotFound, "operation not found");
    }
}

#[test]
fn a_country_outside_the_operation_gets_the_same_not_found() {
    // Open or closed, the answer says nothing more than for an unknown id.
    for operation_id in [OP, CLOSED_OP] {
        let cmd = Command::PostLead(PostLead {
            operation_id,
            ..post_lead()
        });
        for who in [liaison("IT"), liaison("US"), coordinator("IT"), reviewer("GS")] {
            let result = given([]).when(cmd.clone(), who).result;
            assert_eq!(result, Err(Rejection::NotFound("operation not found".into())));
        }
    }
}

#[test]
fn a_removed_participant_can_no_longer_post_and_an_added_one_can() {
    given([])
        .with_facts(ops_without("DE"))
        .when(post(), liaison("DE"))
        .then_rejected(ErrorCode::NotFound, "operation not found");
    given([])
        .with_facts(ops_with("IT"))
        .when(post(), liaison("IT"))
        .then([posted("IT", &[])]);
}

#[test]
fn no_lead_is_posted_to_a_closed_operation() {
    for who in [liaison("DE"), liaison("FR"), coordinator("DE"), auditor("GS")] {
        given([])
            .with_facts(ops_closed())
            .when(post(), who)
            .then_rejected(ErrorCode::RuleViolated, "operation is closed");
    }
}

#[test]
fn restricted_to_names_only_countries_taking_part() {
    given([])
        .when(post_restricted(&["ES", "US"]), liaison("DE"))
        .then_rejected(
            ErrorCode::RuleViolated,
            &format!("US does not take part in operation {OP}"),
        );
    given([])
        .with_facts(ops_without("ES"))
        .when(post_restricted(&["ES"]), liaison("DE"))
        .then_rejected(ErrorCode::RuleViolated, "ES does not take part");
    // The lead country takes part.
    given([])
        .when(post_restricted(&["FR"]), liaison("DE"))
        .then([posted("DE", &["DE", "FR"])]);
}

#[test]
fn restricted_to_drops_duplicates_is_sorted_and_implies_the_owner() {
    given([])
        .when(post_restricted(&["MC", "FR", "MC", "DE"]), liaison("DE"))
        .then([posted("DE", &["DE", "FR", "MC"])]);
    // A restriction to nobody else is the owner alone, not "no restriction".
    for only_me in [&[][..], &["DE"][..]] {
        let h = given([])
            .when(post_restricted(only_me), liaison("DE"))
            .then([posted("DE", &["DE"])]);
        assert!(sees(&h, &ops(), &liaison("DE")));
        assert!(!sees(&h, &ops(), &liaison("FR")));
    }
}

#[test]
fn restricted_to_is_bounded() {
    let many = vec!["FR"; RESTRICTED_TO_MAX + 1];
    given([])
        .when(post_restricted(&many), liaison("DE"))
        .then_rejected(ErrorCode::Invalid, "restricted_to lists at most 51 countries, 52 given");
}

#[test]
fn a_lead_needs_a_summary_and_bounded_details() {
    let with = |summary: String, details: Option<String>| {
        Command::PostLead(PostLead {
            summary,
            details,
            ..post_lead()
        })
    };
    for (cmd, contains) in [
        (with(String::new(), None), "summary must not be empty"),
        (with(" \n\t".into(), None), "summary must not be empty"),
        (
            with("é".repeat(SUMMARY_CHARS_MAX + 1), None),
            "summary is longer than 500 characters",
        ),
        (
            with("s".into(), Some("d".repeat(DETAILS_CHARS_MAX + 1))),
            "details is longer than 4000 characters",
        ),
    ] {
        given([])
            .when(cmd, liaison("DE"))
            .then_rejected(ErrorCode::Invalid, contains);
    }
    // Limits count characters, not bytes; empty details are fine.
    let at_limit = with("é".repeat(SUMMARY_CHARS_MAX), Some(String::new()));
    assert!(matches!(given([]).when(at_limit, liaison("DE")).result, Ok(ref e) if e.len() == 1));
}

#[test]
fn a_subject_is_checked() {
    let with = |f: &dyn Fn(&mut Subject), base: Subject| {
        let mut subject = base;
        f(&mut subject);
        Command::PostLead(PostLead {
            subject: Some(subject),
            ..post_lead()
        })
    };
    for (cmd, contains) in [
        (
            with(&|s| s.description = " ".into(), person_subject()),
            "subject.description must not be empty",
        ),
        (
            with(
                &|s| s.description = "d".repeat(DESCRIPTION_CHARS_MAX + 1),
                person_subject(),
            ),
            "subject.description is longer than 2000 characters",
        ),
        (
            with(&|s| s.name = Some(String::new()), person_subject()),
            "subject.name must not be empty",
        ),
        (
            with(&|s| s.name = Some("n".repeat(NAME_CHARS_MAX + 1)), person_subject()),
            "subject.name is longer than 200 characters",
        ),
        (
            with(&|s| s.date_of_birth = Some("1985-02-29".into()), person_subject()),
            "subject.date_of_birth \"1985-02-29\" is not a YYYY-MM-DD date",
        ),
        (
            with(&|s| s.date_of_birth = Some("12/04/1985".into()), person_subject()),
            "is not a YYYY-MM-DD date",
        ),
        (
            with(&|s| s.nationality = Some(cc("GS")), person_subject()),
            "subject.nationality GS is the secretariat, not a country",
        ),
        (
            with(&|s| s.date_of_birth = Some("1985-04-12".into()), object_subject()),
            "subject.date_of_birth is for a person, not an object",
        ),
        (
            with(&|s| s.nationality = Some(cc("RS")), object_subject()),
            "subject.nationality is for a person, not an object",
        ),
    ] {
        given([])
            .when(cmd, liaison("DE"))
            .then_rejected(ErrorCode::Invalid, contains);
    }
    // Born after today: well-formed, refused by a rule of the day.
    given([])
        .when(
            with(&|s| s.date_of_birth = Some("2026-11-24".into()), person_subject()),
            liaison("DE"),
        )
        .then_rejected(
            ErrorCode::RuleViolated,
            "subject.date_of_birth 2026-11-24 is in the future",
        );
    // Born today is fine; an object may have a name (a ship, a car).
    for ok in [
        with(&|s| s.date_of_birth = Some("2026-11-23".into()), person_subject()),
        with(&|s| s.name = Some("MV Aurora".into()), object_subject()),
    ] {
        assert!(given([]).when(ok, liaison("DE")).result.is_ok());
    }
}

#[test]
fn posting_an_existing_lead_is_a_conflict() {
    given(lead())
        .when(post(), liaison("DE"))
        .then_rejected(ErrorCode::Conflict, &format!("lead {LEAD} already exists"));
}

// ------------------------------------------------------------ leads: amend and retract

#[test]
fn amending_or_retracting_no_lead_is_not_found() {
    for cmd in [amend(), retract()] {
        for who in [liaison("DE"), auditor("GS")] {
            given([])
                .when(cmd.clone(), who)
                .then_rejected(ErrorCode::NotFound, "lead not found");
        }
    }
}

#[test]
fn amending_or_retracting_a_lead_one_cannot_see_is_not_found() {
    let restricted = vec![posted("DE", &["DE", "ES"])];
    for cmd in [amend(), retract()] {
        for who in [liaison("IT"), coordinator("US")] {
            given(lead())
                .when(cmd.clone(), who)
                .then_rejected(ErrorCode::NotFound, "lead not found");
        }
        // MC takes part, but the lead is restricted to DE and ES.
        given(restricted.clone())
            .when(cmd.clone(), liaison("MC"))
            .then_rejected(ErrorCode::NotFound, "lead not found");
        // A removed participant is an outsider again.
        given(lead())
            .with_facts(ops_without("ES"))
            .when(cmd.clone(), liaison("ES"))
            .then_rejected(ErrorCode::NotFound, "lead not found");
    }
}

#[test]
fn only_a_liaison_of_the_owner_country_amends_or_retracts() {
    for (cmd, what) in [(amend(), "amend the lead"), (retract(), "retract the lead")] {
        for who in [
            liaison("ES"),
            liaison("FR"),
            coordinator("DE"),
            coordinator("FR"),
            auditor("GS"),
        ] {
            given(lead()).when(cmd.clone(), who).then_rejected(
                ErrorCode::Forbidden,
                &format!("only a liaison of the owner country DE can {what}"),
            );
        }
    }
    given(lead()).when(amend(), liaison("DE")).then([amended()]);
    given(lead()).when(retract(), liaison("DE")).then([retracted()]);
}

#[test]
fn a_retracted_lead_is_neither_amended_nor_retracted_again() {
    let mut h = lead();
    h.push(retracted());
    given(h.clone())
        .when(amend(), liaison("DE"))
        .then_rejected(ErrorCode::RuleViolated, "lead is retracted");
    given(h.clone())
        .when(retract(), liaison("DE"))
        .then_rejected(ErrorCode::RuleViolated, "lead is already retracted");
    // The status comes before the role: nobody may, so say that.
    given(h)
        .when(retract(), liaison("ES"))
        .then_rejected(ErrorCode::RuleViolated, "lead is already retracted");
}

#[test]
fn a_lead_of_a_closed_operation_is_not_amended_but_may_be_retracted() {
    for who in [liaison("DE"), liaison("ES")] {
        given(lead())
            .with_facts(ops_closed())
            .when(amend(), who)
            .then_rejected(ErrorCode::RuleViolated, "operation is closed");
    }
    given(lead())
        .with_facts(ops_closed())
        .when(retract(), liaison("DE"))
        .then([retracted()]);
}

/// Write access follows current membership: once its country is removed
/// from the operation, an owner is refused exactly as a country that never
/// took part (it still sees its own lead).
#[test]
fn a_country_removed_from_the_operation_no_longer_amends_or_retracts_its_leads() {
    for cmd in [amend(), retract()] {
        given(lead())
            .with_facts(ops_without("DE"))
            .when(cmd, liaison("DE"))
            .then_rejected(ErrorCode::NotFound, "operation not found");
    }
    // Taken back in, it may again.
    let mut back = ops_without("DE");
    fold(
        &mut back,
        OP,
        OpsEvent::ParticipantAdded(ParticipantAdded { country: cc("DE") }),
    );
    given(lead())
        .with_facts(back)
        .when(retract(), liaison("DE"))
        .then([retracted()]);
}

#[test]
fn an_amendment_has_a_reason_and_changes_something_valid() {
    let with = |f: &dyn Fn(&mut AmendLead)| {
        let mut a = amend_lead();
        f(&mut a);
        Command::AmendLead(a)
    };
    for (cmd, contains) in [
        (with(&|a| a.reason = String::new()), "reason must not be empty"),
        (
            with(&|a| a.reason = "r".repeat(REASON_CHARS_MAX + 1)),
            "reason is longer than 4000 characters",
        ),
        (
            with(&|a| a.summary = None),
            "an amendment changes at least one of summary, details, subject, grading",
        ),
        (with(&|a| a.summary = Some(" ".into())), "summary must not be empty"),
        (
            with(&|a| a.details = Some("d".repeat(DETAILS_CHARS_MAX + 1))),
            "details is longer than 4000 characters",
        ),
        (
            with(&|a| {
                a.subject = Some(Subject {
                    description: String::new(),
                    ..object_subject()
                })
            }),
            "subject.description must not be empty",
        ),
    ] {
        given(lead())
            .when(cmd, liaison("DE"))
            .then_rejected(ErrorCode::Invalid, contains);
    }
}

#[test]
fn an_amendment_replaces_the_given_fields_only_and_is_kept() {
    let grading = Grading {
        reliability: Reliability::B,
        accuracy: Accuracy::try_from(2).expect("2 is an accuracy"),
    };
    let h = given(lead())
        .when(
            Command::AmendLead(AmendLead {
                summary: None,
                details: Some("seen twice".into()),
                grading: Some(grading),
                ..amend_lead()
            }),
            liaison("DE"),
        )
        .then([Event::LeadAmended(LeadAmended {
            reason: "AFIS match".into(),
            summary: None,
            details: Some("seen twice".into()),
            subject: None,
            grading: Some(grading),
            amended_at: NOW.into(),
        })]);
    let h = given(h).when(amend(), liaison("DE")).then([amended()]);
    let State::Lead(l) = replay(&h) else { panic!("a lead") };
    assert_eq!(l.summary, "fingerprints matched");
    assert_eq!(l.details.as_deref(), Some("seen twice"));
    assert_eq!(l.grading, Some(grading));
    assert_eq!(l.subject, None);
    assert_eq!(l.amendments.len(), 2);
    assert_eq!(l.status, LeadStatus::Active);
}

#[test]
fn a_lead_is_amended_at_most_1000_times() {
    let mut h = lead();
    h.extend(std::iter::repeat_n(amended(), AMENDMENTS_MAX));
    given(h)
        .when(amend(), liaison("DE"))
        .then_rejected(ErrorCode::RuleViolated, "a lead is amended at most 1000 times");
}

// ------------------------------------------------------------ leads: visibility

#[test]
fn an_unrestricted_lead_is_seen_by_every_country_taking_part() {
    let h = lead();
    for (c, seen) in [
        ("DE", true),
        ("FR", true),
        ("ES", true),
        ("MC", true),
        ("IT", false),
        ("GS", false),
    ] {
        for role in [Role::Liaison, Role::Coordinator, Role::Reviewer] {
            assert_eq!(sees(&h, &ops(), &actor(role, c)), seen, "{c} {role:?}");
        }
    }
    // Removed, ES no longer sees it; added, IT does.
    assert!(!sees(&h, &ops_without("ES"), &liaison("ES")));
    assert!(sees(&h, &ops_with("IT"), &liaison("IT")));
    // The owner always sees its own lead, even once removed.
    assert!(sees(&h, &ops_without("DE"), &liaison("DE")));
    // A retracted lead stays visible: it warns.
    let mut retracted_lead = h.clone();
    retracted_lead.push(retracted());
    assert!(sees(&retracted_lead, &ops(), &liaison("ES")));
}

#[test]
fn a_restricted_lead_is_seen_by_its_owner_and_the_listed_countries_only() {
    let h = given([])
        .when(post_restricted(&["FR", "MC"]), liaison("DE"))
        .then([posted("DE", &["DE", "FR", "MC"])]);
    for (c, seen) in [("DE", true), ("FR", true), ("MC", true), ("ES", false), ("IT", false)] {
        assert_eq!(sees(&h, &ops(), &liaison(c)), seen, "{c}");
        assert_eq!(sees(&h, &ops(), &coordinator(c)), seen, "{c}");
    }
    // A listed country removed from the operation no longer sees it.
    assert!(!sees(&h, &ops_without("MC"), &liaison("MC")));
}
