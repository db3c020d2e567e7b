//! Notices and diffusions: requests, the review, cancellation, and who
//! sees them.

use concord_core::reply::ErrorCode;
use serde_json::json;

use super::*;

// ------------------------------------------------------------ notices: requests

#[test]
fn the_story_of_a_red_notice() {
    let with_op = Command::RequestNotice(RequestNotice {
        operation_id: Some(OP),
        ..request_notice()
    });
    let mut first = requested("MC", None);
    if let Event::NoticeRequested(e) = &mut first {
        e.operation_id = Some(OP);
    }
    let h = given([]).when(with_op, liaison("MC")).then([first]);
    for (who, seen) in [
        (liaison("MC"), true),
        (reviewer("GS"), true),
        (liaison("DE"), false),
        (liaison("US"), false),
    ] {
        assert_eq!(sees(&h, &ops(), &who), seen, "requested: {who:?}");
    }
    let h = given(h).when(approve(), reviewer("GS")).then([published()]);
    for who in [liaison("DE"), liaison("US"), coordinator("PL")] {
        assert!(sees(&h, &ops(), &who), "published: {who:?}");
    }
    let h = given(h).when(cancel(), liaison("MC")).then([cancelled(&liaison("MC"))]);
    assert!(sees(&h, &ops(), &liaison("US")), "cancelled, never deleted");
    let view = replay(&h).view();
    assert_eq!(view["kind"], "notice");
    assert_eq!(view["id"], json!(NOTICE));
    assert_eq!(view["status"], "cancelled");
    assert_eq!(view["color"], "red");
    assert_eq!(view["operation_id"], json!(OP));
    assert_eq!(view["diffusion"], false);
    assert_eq!(view["recipients"], Value::Null);
    assert_eq!(view["requesting_country"], "MC");
    assert_eq!(view["warrant"], "MC-2026-0457");
    assert_eq!(
        view["review"],
        json!({"decision": "approve", "reviewed_by": "gs-reviewer", "reviewer_country": "GS",
               "reason": "ordinary crime, facts support a red notice",
               "grounds": {"not_political": true, "not_military": true, "not_religious": true,
                           "not_racial": true, "facts_support_purpose": true},
               "at": NOW})
    );
    assert_eq!(
        view["cancellation"],
        json!({"reason": "arrested", "cancelled_by": "mc-liaison", "cancelled_at": NOW})
    );
}

#[test]
fn an_unknown_colour_is_invalid() {
    for colour in ["crimson", "Red", "RED", "un-special", ""] {
        let data = json!({"notice_id": NOTICE, "color": colour, "subject": {"kind": "person", "description": "d"}, "reason": "r"});
        let r = parse_command("request_notice", data).expect_err("not a colour");
        assert_eq!(r.code(), ErrorCode::Invalid, "{colour}");
        assert!(r.to_string().contains("unknown variant"), "{r}");
    }
}

#[test]
fn only_red_needs_an_offence_and_a_warrant() {
    for color in Color::ALL {
        let bare = Command::RequestNotice(RequestNotice {
            color,
            offence: None,
            warrant: None,
            ..request_notice()
        });
        let result = given([]).when(bare, liaison("MC")).result;
        assert_eq!(result.is_ok(), color != Color::Red, "{color}");
        // The colour round-trips under its name.
        assert_eq!(serde_json::to_value(color).expect("serializes"), json!(color.as_str()));
    }
}

#[test]
fn a_red_notice_without_warrant_or_offence_is_refused_naming_what_is_missing() {
    let with = |offence: Option<&str>, warrant: Option<&str>| {
        Command::RequestNotice(RequestNotice {
            offence: offence.map(str::to_owned),
            warrant: warrant.map(str::to_owned),
            ..request_notice()
        })
    };
    for (cmd, contains) in [
        (with(Some("burglary"), None), "a red notice needs a warrant"),
        (with(None, Some("W-1")), "a red notice needs an offence"),
        (with(None, None), "a red notice needs an offence and a warrant"),
    ] {
        given([])
            .when(cmd, liaison("MC"))
            .then_rejected(ErrorCode::RuleViolated, contains);
    }
    // Given but blank is no offence or warrant either, and says so.
    given([])
        .when(with(Some("burglary"), Some("  ")), liaison("MC"))
        .then_rejected(ErrorCode::Invalid, "warrant must not be empty");
    given([])
        .when(with(Some(""), Some("W-1")), liaison("MC"))
        .then_rejected(ErrorCode::Invalid, "offence must not be empty");
}

#[test]
fn a_notice_request_has_a_subject_a_reason_and_bounded_texts() {
    let with = |f: &dyn Fn(&mut RequestNotice)| {
        let mut r = request_notice();
        f(&mut r);
        Command::RequestNotice(r)
    };
    for (cmd, contains) in [
        (with(&|r| r.reason = "\n".into()), "reason must not be empty"),
        (
            with(&|r| r.reason = "r".repeat(REASON_CHARS_MAX + 1)),
            "reason is longer than 4000 characters",
        ),
        (
            with(&|r| r.offence = Some("o".repeat(OFFENCE_CHARS_MAX + 1))),
            "offence is longer than 500 characters",
        ),
        (
            with(&|r| r.warrant = Some("w".repeat(WARRANT_CHARS_MAX + 1))),
            "warrant is longer than 200 characters",
        ),
        (
            with(&|r| r.subject.description = String::new()),
            "subject.description must not be empty",
        ),
    ] {
        given([])
            .when(cmd, liaison("MC"))
            .then_rejected(ErrorCode::Invalid, contains);
    }
}

#[test]
fn only_a_liaison_requests_a_notice() {
    for who in [coordinator("MC"), reviewer("GS"), auditor("GS")] {
        given([])
            .when(request(), who)
            .then_rejected(ErrorCode::Forbidden, "only a liaison can request a notice");
    }
}

#[test]
fn a_notice_for_an_operation_needs_a_country_taking_part_in_an_open_one() {
    let for_op = |operation_id| {
        Command::RequestNotice(RequestNotice {
            operation_id: Some(operation_id),
            ..request_notice()
        })
    };
    given([])
        .when(for_op(UNKNOWN_OP), liaison("MC"))
        .then_rejected(ErrorCode::NotFound, "operation not found");
    given([])
        .when(for_op(OP), liaison("IT"))
        .then_rejected(ErrorCode::NotFound, "operation not found");
    given([])
        .when(for_op(CLOSED_OP), liaison("MC"))
        .then_rejected(ErrorCode::NotFound, "operation not found");
    given([])
        .when(for_op(CLOSED_OP), liaison("DE"))
        .then_rejected(ErrorCode::RuleViolated, "operation is closed");
    // Without an operation, any liaison may ask.
    assert!(given([]).when(request(), liaison("IT")).result.is_ok());
}

#[test]
fn requesting_an_existing_notice_is_a_conflict() {
    given(notice(NoticeStatus::Requested))
        .when(request(), liaison("MC"))
        .then_rejected(ErrorCode::Conflict, &format!("notice {NOTICE} already exists"));
}

#[test]
fn a_diffusion_goes_to_other_real_countries_without_duplicates() {
    given([])
        .when(diffusion(&["RS", "DE", "RS", "GS"]), liaison("MC"))
        .then([requested("MC", Some(&["DE", "GS", "RS"]))]);
    given([]).when(diffusion(&["DE", "MC"]), liaison("MC")).then_rejected(
        ErrorCode::RuleViolated,
        "MC requests the notice and cannot be one of its recipients",
    );
    given([])
        .when(diffusion(&[]), liaison("MC"))
        .then_rejected(ErrorCode::Invalid, "recipients must name at least one country");
    let many = vec!["DE"; RECIPIENTS_MAX + 1];
    given([])
        .when(diffusion(&many), liaison("MC"))
        .then_rejected(ErrorCode::Invalid, "a diffusion has at most 100 recipients, 101 given");
    let r = parse_command(
        "request_notice",
        json!({"notice_id": NOTICE, "color": "blue", "subject": {"kind": "person", "description": "d"},
               "reason": "r", "recipients": ["DE", "QQ"]}),
    )
    .expect_err("QQ is no country");
    assert!(r.to_string().contains("\"QQ\" is not an ISO 3166-1"), "{r}");
}

#[test]
fn a_published_diffusion_is_seen_by_its_requester_recipients_and_reviewers_only() {
    let requested_h = vec![requested("MC", Some(&["DE", "RS"]))];
    let mut published_h = requested_h.clone();
    published_h.push(published());
    let mut cancelled_h = published_h.clone();
    cancelled_h.push(cancelled(&reviewer("GS")));
    for (who, before, after) in [
        (liaison("MC"), true, true),
        (reviewer("GS"), true, true),
        (reviewer("FR"), true, true),
        (liaison("DE"), false, true),
        (coordinator("RS"), false, true),
        (liaison("US"), false, false),
        (liaison("FR"), false, false),
        (auditor("US"), true, true),
    ] {
        assert_eq!(sees(&requested_h, &ops(), &who), before, "requested: {who:?}");
        assert_eq!(sees(&published_h, &ops(), &who), after, "published: {who:?}");
        assert_eq!(sees(&cancelled_h, &ops(), &who), after, "cancelled: {who:?}");
    }
    assert_eq!(replay(&published_h).view()["diffusion"], true);
    assert_eq!(replay(&published_h).view()["recipients"], json!(["DE", "RS"]));
}

// ------------------------------------------------------------ notices: review

#[test]
fn reviewing_or_cancelling_no_notice_is_not_found() {
    for cmd in [approve(), reject(), cancel()] {
        for who in [reviewer("GS"), liaison("MC"), auditor("GS")] {
            given([])
                .when(cmd.clone(), who)
                .then_rejected(ErrorCode::NotFound, "notice not found");
        }
    }
}

#[test]
fn a_country_that_cannot_see_the_notice_gets_not_found() {
    for status in [NoticeStatus::Requested, NoticeStatus::Rejected] {
        for cmd in [approve(), cancel()] {
            for who in [liaison("DE"), coordinator("US")] {
                given(notice(status))
                    .when(cmd.clone(), who)
                    .then_rejected(ErrorCode::NotFound, "notice not found");
            }
        }
    }
    // A diffusion's outsider, once published, too.
    let mut h = vec![requested("MC", Some(&["DE"]))];
    h.push(published());
    given(h)
        .when(cancel(), liaison("US"))
        .then_rejected(ErrorCode::NotFound, "notice not found");
}

#[test]
fn only_a_reviewer_of_the_secretariat_reviews() {
    // A US "reviewer" approving MC's notice was accepted before.
    for who in [
        liaison("MC"),
        coordinator("MC"),
        auditor("GS"),
        reviewer("US"),
        reviewer("MC"),
    ] {
        for cmd in [approve(), reject()] {
            given(notice(NoticeStatus::Requested))
                .when(cmd, who.clone())
                .then_rejected(
                    ErrorCode::Forbidden,
                    "only a reviewer of the secretariat (GS) can review a notice",
                );
        }
    }
    given(notice(NoticeStatus::Requested))
        .when(approve(), reviewer("GS"))
        .then([published()]);
}

#[test]
fn the_secretariat_does_not_review_its_own_notice() {
    for cmd in [approve(), reject()] {
        given([requested("GS", None)]).when(cmd, reviewer("GS")).then_rejected(
            ErrorCode::Forbidden,
            "a reviewer of GS cannot review a notice GS requested",
        );
    }
}

#[test]
fn a_notice_is_reviewed_once() {
    for (status, now) in [
        (NoticeStatus::Published, "published"),
        (NoticeStatus::Rejected, "rejected"),
        (NoticeStatus::Cancelled, "cancelled"),
    ] {
        for cmd in [approve(), reject()] {
            given(notice(status)).when(cmd, reviewer("GS")).then_rejected(
                ErrorCode::RuleViolated,
                &format!("notice is already {now}; it is reviewed once"),
            );
        }
    }
}

#[test]
fn approval_needs_every_ground_and_names_the_failing_ones() {
    let names = [
        "not_political",
        "not_military",
        "not_religious",
        "not_racial",
        "facts_support_purpose",
    ];
    for (i, name) in names.iter().enumerate() {
        let mut g = ALL_HOLD;
        match i {
            0 => g.not_political = false,
            1 => g.not_military = false,
            2 => g.not_religious = false,
            3 => g.not_racial = false,
            _ => g.facts_support_purpose = false,
        }
        assert_eq!(g.failing(), vec![*name]);
        given(notice(NoticeStatus::Requested))
            .when(review(Decision::Approve, g, "looks fine"), reviewer("GS"))
            .then_rejected(
                ErrorCode::RuleViolated,
                &format!("a notice is approved only when every ground holds; failing: {name}"),
            );
    }
    let mut two = ALL_HOLD;
    two.not_political = false;
    two.not_racial = false;
    given(notice(NoticeStatus::Requested))
        .when(review(Decision::Approve, two, "r"), reviewer("GS"))
        .then_rejected(ErrorCode::RuleViolated, "failing: not_political, not_racial");
    // An approval needs no reason; it is bounded all the same.
    given(notice(NoticeStatus::Requested))
        .when(review(Decision::Approve, ALL_HOLD, ""), reviewer("GS"))
        .then([Event::NoticePublished(NoticePublished {
            reason: String::new(),
            ..match published() {
                Event::NoticePublished(e) => e,
                _ => unreachable!(),
            }
        })]);
    given(notice(NoticeStatus::Requested))
        .when(
            review(Decision::Approve, ALL_HOLD, &"r".repeat(REASON_CHARS_MAX + 1)),
            reviewer("GS"),
        )
        .then_rejected(ErrorCode::Invalid, "reason is longer than 4000 characters");
}

#[test]
fn a_rejection_needs_a_reason_and_stays_private() {
    for blank in ["", "  "] {
        given(notice(NoticeStatus::Requested))
            .when(review(Decision::Reject, ALL_HOLD, blank), reviewer("GS"))
            .then_rejected(ErrorCode::Invalid, "reason must not be empty");
    }
    let mut political = ALL_HOLD;
    political.not_political = false;
    let h = given(notice(NoticeStatus::Requested))
        .when(
            review(Decision::Reject, political, "predominantly political"),
            reviewer("GS"),
        )
        .then([Event::NoticeRejected(NoticeRejected {
            reason: "predominantly political".into(),
            grounds: political,
            ..match rejected() {
                Event::NoticeRejected(e) => e,
                _ => unreachable!(),
            }
        })]);
    for (who, seen) in [
        (liaison("MC"), true),
        (reviewer("GS"), true),
        (auditor("US"), true),
        (liaison("DE"), false),
        (liaison("US"), false),
    ] {
        assert_eq!(sees(&h, &ops(), &who), seen, "{who:?}");
    }
    assert_eq!(replay(&h).view()["status"], "rejected");
}

// ------------------------------------------------------------ notices: cancel

#[test]
fn a_rejected_notice_cannot_be_cancelled() {
    for who in [liaison("MC"), reviewer("GS")] {
        given(notice(NoticeStatus::Rejected))
            .when(cancel(), who)
            .then_rejected(ErrorCode::RuleViolated, "a rejected notice cannot be cancelled");
    }
}

#[test]
fn a_notice_is_cancelled_once() {
    given(notice(NoticeStatus::Cancelled))
        .when(cancel(), liaison("MC"))
        .then_rejected(ErrorCode::RuleViolated, "notice is already cancelled");
}

#[test]
fn the_requesting_liaison_or_any_reviewer_cancels() {
    for status in [NoticeStatus::Requested, NoticeStatus::Published] {
        for who in [liaison("MC"), reviewer("GS"), reviewer("MC"), reviewer("FR")] {
            given(notice(status))
                .when(cancel(), who.clone())
                .then([cancelled(&who)]);
        }
        for who in [coordinator("MC"), auditor("GS")] {
            given(notice(status)).when(cancel(), who).then_rejected(
                ErrorCode::Forbidden,
                "only a liaison of the requesting country MC or a reviewer can cancel the notice",
            );
        }
    }
    // Published, every country sees it, yet only those may cancel.
    given(notice(NoticeStatus::Published))
        .when(cancel(), liaison("DE"))
        .then_rejected(ErrorCode::Forbidden, "only a liaison of the requesting country MC");
}

#[test]
fn a_cancellation_needs_a_reason() {
    let with = |reason: String| {
        Command::CancelNotice(CancelNotice {
            notice_id: NOTICE,
            reason,
        })
    };
    given(notice(NoticeStatus::Published))
        .when(with(" ".into()), liaison("MC"))
        .then_rejected(ErrorCode::Invalid, "reason must not be empty");
    given(notice(NoticeStatus::Published))
        .when(with("r".repeat(REASON_CHARS_MAX + 1)), liaison("MC"))
        .then_rejected(ErrorCode::Invalid, "reason is longer than 4000 characters");
}

#[test]
fn a_cancelled_notice_keeps_the_visibility_it_had() {
    let mut never_published = notice(NoticeStatus::Requested);
    never_published.push(cancelled(&liaison("MC")));
    let was_published = notice(NoticeStatus::Cancelled);
    for (who, private_seen, public_seen) in [
        (liaison("MC"), true, true),
        (reviewer("GS"), true, true),
        (liaison("DE"), false, true),
        (liaison("US"), false, true),
    ] {
        assert_eq!(sees(&never_published, &ops(), &who), private_seen, "{who:?}");
        assert_eq!(sees(&was_published, &ops(), &who), public_seen, "{who:?}");
    }
}
