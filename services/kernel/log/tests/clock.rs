//! The log's hybrid logical clock on a wall clock that runs behind: every
//! event is stamped after every stamp the log observed (an event its
//! service consumed, the event that caused the command), and a stamp too
//! far ahead of the clock is left out rather than followed.

use chrono::{DateTime, TimeDelta, Utc};
use concord_core::{Actor, CountryCode, ExpectedVersion, Hlc, Role, Service};
use concord_log::{AppendRequest, Fingerprint, Log, NewEvent, OBSERVED_HLC_AHEAD_MAX_MS, WallClock};
use serde_json::json;

fn req(command_id: &str, observed_hlc: Option<Hlc>) -> AppendRequest {
    let actor = Actor {
        sub: "fr".into(),
        role: Role::Coordinator,
        country: CountryCode::parse("FR").expect("FR"),
    };
    AppendRequest {
        stream: "operation-1".into(),
        expected: ExpectedVersion::Any,
        command_id: command_id.into(),
        fingerprint: Fingerprint::new("open", "operation-1", &json!({}), &actor).expect("canonical"),
        actor,
        correlation_id: "r".into(),
        causation_id: None,
        observed_hlc,
        events: vec![NewEvent {
            event_type: "operation.opened".into(),
            schema_version: 1,
            data: json!({}),
        }],
    }
}

fn now_ms() -> u64 {
    u64::try_from(Utc::now().timestamp_millis()).expect("after 1970")
}

#[test]
fn events_are_stamped_after_what_the_log_observed_on_a_clock_behind() {
    let dir = tempfile::TempDir::new().expect("tmp");
    let behind = WallClock::shifted(TimeDelta::seconds(-5));
    let log = Log::open_with_clock(dir.path(), Service::Deployments, behind).expect("open");
    let rt = tokio::runtime::Runtime::new().expect("runtime");

    // An event of another service, whose clock is right: 5 s ahead of ours.
    let consumed = Hlc {
        wall_ms: now_ms(),
        logical: 7,
    };
    log.observe(consumed);
    let first = rt.block_on(log.append(req("c1", None))).expect("append");
    let stamped = first.events[0].hlc;
    assert!(stamped > consumed, "{stamped:?} after the consumed {consumed:?}");
    let recorded: DateTime<Utc> = first.events[0].recorded_at.parse().expect("rfc 3339");
    assert!(
        recorded < Utc::now() - TimeDelta::seconds(4),
        "recorded_at {recorded} comes from the clock that runs behind"
    );

    // The event that caused a command, later still.
    let cause = Hlc {
        wall_ms: now_ms() + 2_000,
        logical: 3,
    };
    let second = rt.block_on(log.append(req("c2", Some(cause)))).expect("append");
    assert!(
        second.events[0].hlc > cause,
        "{:?} after the cause {cause:?}",
        second.events[0].hlc
    );

    // A stamp from a clock gone wrong is not followed, by either way in.
    let wild = Hlc {
        wall_ms: now_ms() + OBSERVED_HLC_AHEAD_MAX_MS + 3_600_000,
        logical: 0,
    };
    log.observe(wild);
    let third = rt.block_on(log.append(req("c3", Some(wild)))).expect("append");
    let stamped = third.events[0].hlc;
    assert!(stamped > second.events[0].hlc, "still after the log's own events");
    assert!(stamped.wall_ms < wild.wall_ms, "{stamped:?} did not follow {wild:?}");
}
