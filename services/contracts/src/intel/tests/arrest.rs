//! Arrests: reporting, and who sees them.

use concord_core::reply::ErrorCode;
use serde_json::json;

use super::*;

// ------------------------------------------------------------ arrests

#[test]
fn the_story_of_an_arrest() {
    let h = given([]).when(report(), liaison("DE")).then([reported("DE")]);
    assert_eq!(
        replay(&h).view(),
        json!({
            "kind": "arrest",
            "id": ARREST,
            "status": "reported",
            "operation_id": OP,
            "person": {"name": "Ivan Petrov", "date_of_birth": null, "nationality": "RS"},
            "location_country": "DE",
            "lead_id": LEAD,
            "notice_id": NOTICE,
            "reporting_country": "DE",
            "reported_by": "de-liaison",
            "reported_at": NOW,
        })
    );
}

#[test]
fn an_arrest_needs_an_open_operation_the_reporter_takes_part_in() {
    let unknown = Command::ReportArrest(ReportArrest {
        operation_id: UNKNOWN_OP,
        ..report_arrest()
    });
    given([])
        .when(unknown, liaison("DE"))
        .then_rejected(ErrorCode::NotFound, "operation not found");
    for who in [liaison("IT"), liaison("US")] {
        given([])
            .when(report(), who)
            .then_rejected(ErrorCode::NotFound, "operation not found");
    }
    given([])
        .with_facts(ops_without("DE"))
        .when(report(), liaison("DE"))
        .then_rejected(ErrorCode::NotFound, "operation not found");
    given([])
        .with_facts(ops_closed())
        .when(report(), liaison("DE"))
        .then_rejected(ErrorCode::RuleViolated, "operation is closed");
}

#[test]
fn only_a_liaison_reports_an_arrest() {
    for who in [coordinator("DE"), coordinator("FR"), reviewer("DE"), auditor("GS")] {
        given([])
            .when(report(), who)
            .then_rejected(ErrorCode::Forbidden, "only a liaison can report an arrest");
    }
}

#[test]
fn an_arrest_names_a_person_and_a_real_place() {
    let with = |f: &dyn Fn(&mut ReportArrest)| {
        let mut r = report_arrest();
        f(&mut r);
        Command::ReportArrest(r)
    };
    for (cmd, contains) in [
        (with(&|r| r.person.name = " ".into()), "person.name must not be empty"),
        (
            with(&|r| r.person.name = "n".repeat(NAME_CHARS_MAX + 1)),
            "person.name is longer than 200 characters",
        ),
        (
            with(&|r| r.person.date_of_birth = Some("1985-13-01".into())),
            "person.date_of_birth \"1985-13-01\" is not a YYYY-MM-DD date",
        ),
        (
            with(&|r| r.person.nationality = Some(cc("GS"))),
            "person.nationality GS is the secretariat",
        ),
        (
            with(&|r| r.location_country = cc("GS")),
            "location_country GS is the secretariat, not a country",
        ),
    ] {
        given([])
            .when(cmd, liaison("DE"))
            .then_rejected(ErrorCode::Invalid, contains);
    }
    // Born after today: well-formed, refused by a rule of the day.
    given([])
        .when(
            with(&|r| r.person.date_of_birth = Some("2030-01-01".into())),
            liaison("DE"),
        )
        .then_rejected(
            ErrorCode::RuleViolated,
            "person.date_of_birth 2030-01-01 is in the future",
        );
    // Anywhere in the world, not only in a participating country.
    given([])
        .when(with(&|r| r.location_country = cc("TH")), liaison("DE"))
        .then([Event::ArrestReported(ArrestReported {
            location_country: cc("TH"),
            ..match reported("DE") {
                Event::ArrestReported(e) => e,
                _ => unreachable!(),
            }
        })]);
    let bad = json!({"arrest_id": ARREST, "operation_id": OP, "person": {"name": "n"}, "location_country": "XX"});
    let r = parse_command("report_arrest", bad).expect_err("XX is no country");
    assert_eq!(r.code(), ErrorCode::Invalid);
    assert!(r.to_string().contains("\"XX\" is not an ISO 3166-1"), "{r}");
}

#[test]
fn reporting_an_existing_arrest_is_a_conflict() {
    given([reported("DE")])
        .when(report(), liaison("ES"))
        .then_rejected(ErrorCode::Conflict, &format!("arrest {ARREST} already exists"));
}

#[test]
fn an_arrest_is_seen_by_the_countries_taking_part_and_its_reporter() {
    let h = vec![reported("DE")];
    for (c, seen) in [
        ("DE", true),
        ("FR", true),
        ("ES", true),
        ("MC", true),
        ("US", false),
        ("GS", false),
    ] {
        assert_eq!(sees(&h, &ops(), &liaison(c)), seen, "{c}");
    }
    assert!(!sees(&h, &ops_without("ES"), &liaison("ES")));
    assert!(
        sees(&h, &ops_without("DE"), &liaison("DE")),
        "the reporter keeps its record"
    );
    assert!(sees(&h, &ops_closed(), &liaison("ES")), "closing changes nothing");
}
