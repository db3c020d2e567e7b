//! `concord bench audit`: how fast the audit service replays and verifies
//! a long history (against a raw sequential read of the same log over the
//! same bus, measured in the same run), how long an operation's timeline
//! takes to answer, and what recording a read in the access log adds to
//! it. Fills the operations log through the log API with events decided by
//! the contract, runs the operations and audit services as separate
//! `concord serve` processes, and reports; measures, never asserts.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use concord_contracts::operations::{self, AddParticipant, AssignTask, Open, RemoveParticipant};
use concord_contracts::operations::{TaskStatus, UpdateTaskStatus};
use concord_core::decider::Ctx;
use concord_core::{Actor, CountryCode, Role, Service, subjects};
use concord_log::Log;
use serde::Deserialize;
use serde_json::value::RawValue;
use serde_json::{Value, json};
use uuid::Uuid;

use crate::benchmem::{Served, bench_base, decide_and_append, envelope, fill_with, proc_status_mib, request};

#[derive(clap::Args)]
pub struct AuditBenchArgs {
    /// Events in the operations log (the long operation's included)
    #[arg(long, default_value_t = 1_000_000)]
    events: u64,
    /// Events of the one operation whose timeline is timed
    #[arg(long, default_value_t = 10_000)]
    timeline_events: u64,
    /// Reads timed with and without their access record
    #[arg(long, default_value_t = 2_000)]
    reads: usize,
    /// Where to put the data (a fresh temp dir under it); default: system temp
    #[arg(long)]
    dir: Option<PathBuf>,
}

/// Events per operation of the bulk fill (the contract allows 1,000 tasks).
const EVENTS_PER_OPERATION: u64 = 1_000;
/// Events asked per read of the raw scan.
const SCAN_BATCH: usize = 1_000;
const CATCH_UP_MAX: Duration = Duration::from_secs(3600);

fn cc(code: &str) -> CountryCode {
    CountryCode::parse(code).unwrap_or_else(|_| unreachable!("{code} is a country"))
}

fn pair(i: u64) -> (CountryCode, CountryCode) {
    let all: Vec<CountryCode> = CountryCode::all().filter(|c| !c.is_secretariat()).collect();
    let n = all.len() as u64;
    let at = |k: u64| all[usize::try_from(k % n).unwrap_or(0)];
    (at(i), at(i + 1))
}

/// One operation of `events` events: opened by FR with DE, tasks for DE,
/// each taken through accepted, in progress and done by DE, then IT added
/// and removed again as often as it takes (what the contract allows an
/// operation to hold).
async fn fill_long(dir: &Path, events: u64) -> anyhow::Result<Uuid> {
    let log = Log::open(dir, Service::Operations)?;
    let op = Uuid::now_v7();
    let (fr, de, it) = (cc("FR"), cc("DE"), cc("IT"));
    let coordinator = Actor {
        sub: "bench-fr".into(),
        role: Role::Coordinator,
        country: fr,
    };
    let liaison = Actor {
        sub: "bench-de".into(),
        role: Role::Liaison,
        country: de,
    };
    let mut plan: Vec<(operations::Command, &Actor)> = vec![(
        operations::Command::Open(Open {
            operation_id: op,
            title: "the long one".into(),
            objective: "measure a timeline".into(),
            lead_country: fr,
            countries: vec![de],
        }),
        &coordinator,
    )];
    let mut tasks = 0;
    while (plan.len() as u64) + 4 <= events && tasks < 1_000 {
        let task_id = Uuid::now_v7();
        tasks += 1;
        plan.push((
            operations::Command::AssignTask(AssignTask {
                operation_id: op,
                task_id,
                assignee_country: de,
                title: format!("task {tasks}"),
                details: "watch the port".into(),
                due_at: None,
            }),
            &coordinator,
        ));
        for status in [TaskStatus::Accepted, TaskStatus::InProgress, TaskStatus::Done] {
            plan.push((
                operations::Command::UpdateTaskStatus(UpdateTaskStatus {
                    operation_id: op,
                    task_id,
                    status,
                    note: None,
                }),
                &liaison,
            ));
        }
    }
    while (plan.len() as u64) + 2 <= events {
        plan.push((
            operations::Command::AddParticipant(AddParticipant {
                operation_id: op,
                country: it,
            }),
            &coordinator,
        ));
        plan.push((
            operations::Command::RemoveParticipant(RemoveParticipant {
                operation_id: op,
                country: it,
            }),
            &coordinator,
        ));
    }
    let mut state = operations::State::default();
    let mut version = 0;
    for (command, actor) in plan {
        let ctx = Ctx {
            actor: actor.clone(),
            now: chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Micros, true),
        };
        version = decide_and_append(&log, &mut state, &command, &ctx, version).await?;
    }
    Ok(op)
}

fn percentile(sorted: &[Duration], p: f64) -> Duration {
    if sorted.is_empty() {
        return Duration::ZERO;
    }
    let at = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    sorted[at.min(sorted.len() - 1)]
}

fn ms(d: Duration) -> String {
    format!("{:.2} ms", d.as_secs_f64() * 1000.0)
}

fn auditor() -> Value {
    json!({"country": "GS", "role": "auditor"})
}

/// Reads the whole log over the bus as the audit does, keeping each
/// event's bytes and checking nothing: the floor the replay is held to.
async fn raw_scan(client: &async_nats::Client, head: u64) -> anyhow::Result<u64> {
    #[derive(Deserialize)]
    struct Wire<'a> {
        #[serde(borrow)]
        events: Vec<&'a RawValue>,
    }
    let mut next = 1;
    let mut bytes = 0u64;
    while next <= head {
        let body = json!({"from_seq": next, "max_events": SCAN_BATCH});
        let msg = client
            .request(
                subjects::log_read(Service::Operations),
                serde_json::to_vec(&body)?.into(),
            )
            .await?;
        let wire: Wire<'_> = serde_json::from_slice(&msg.payload)?;
        anyhow::ensure!(!wire.events.is_empty(), "the log served nothing at seq {next}");
        next += wire.events.len() as u64;
        bytes += wire.events.iter().map(|e| e.get().len() as u64).sum::<u64>();
    }
    Ok(bytes)
}

pub fn audit(args: AuditBenchArgs) -> anyhow::Result<()> {
    let (base, rt) = bench_base(args.dir.as_deref())?;
    let data = base.path().join("data");
    rt.block_on(async {
        println!(
            "# concord bench audit: {} operations events, one operation of {}; services as separate processes",
            args.events, args.timeline_events
        );
        let filled = Instant::now();
        let bulk = args.events.saturating_sub(args.timeline_events);
        fill_with(&data.join("operations"), bulk, EVENTS_PER_OPERATION, pair).await?;
        let long = fill_long(&data.join("operations"), args.timeline_events).await?;
        println!("filled the log in {:.1} s", filled.elapsed().as_secs_f64());
        let nats = concord_bus::nats_server::NatsServer::start_in(&base.path().join("nats"))?;
        let client = async_nats::connect(nats.url()).await?;
        let _operations = Served::start("operations", &data, &nats.url())?;
        let deadline = Instant::now() + CATCH_UP_MAX;
        let head = loop {
            match concord_bus::logs::fetch_head(&client, Service::Operations).await {
                Ok(h) => break h.seq,
                Err(e) => anyhow::ensure!(Instant::now() < deadline, "the operations service did not start: {e}"),
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        };

        let scanned = Instant::now();
        let bytes = raw_scan(&client, head).await?;
        let scan = scanned.elapsed();

        let started = Instant::now();
        let audit = Served::start("audit", &data, &nats.url())?;
        let deadline = Instant::now() + CATCH_UP_MAX;
        loop {
            let v = request(
                &client,
                subjects::query("audit", "verify"),
                json!({"caller": auditor()}),
            )
            .await;
            if v.as_ref()
                .is_ok_and(|v| v["logs"]["operations"]["head_seq"].as_u64() >= Some(head))
            {
                break;
            }
            anyhow::ensure!(Instant::now() < deadline, "the audit did not catch up in time");
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        let replay = started.elapsed();
        let per_s = |d: Duration| head as f64 / d.as_secs_f64();
        println!();
        println!(
            "| replay of {head} events ({:.0} MiB) | seconds | events/s | vs raw scan |",
            bytes as f64 / 1048576.0
        );
        println!("|---|---:|---:|---:|");
        println!(
            "| raw sequential read over NATS (bytes kept, nothing checked) | {:.2} | {:.0} | 1.00 |",
            scan.as_secs_f64(),
            per_s(scan)
        );
        println!(
            "| audit: start, replay, verify every hash and link, index | {:.2} | {:.0} | {:.2}× slower |",
            replay.as_secs_f64(),
            per_s(replay),
            replay.as_secs_f64() / scan.as_secs_f64()
        );
        println!(
            "audit RSS after the replay: {:.0} MiB (peak {:.0} MiB)",
            proc_status_mib(audit.pid(), "VmRSS:").unwrap_or(f64::NAN),
            proc_status_mib(audit.pid(), "VmHWM:").unwrap_or(f64::NAN)
        );
        std::io::stdout().flush().ok();

        // The long operation's timeline, first page (the whole timeline is
        // gathered and ordered to answer it) and a page from the middle.
        let mut first = Vec::new();
        let mut middle = Vec::new();
        for i in 0..200 {
            let after = if i % 2 == 0 { 0 } else { args.timeline_events / 2 };
            let began = Instant::now();
            let page = request(
                &client,
                subjects::query("audit", "timeline"),
                json!({"caller": auditor(), "operation_id": long, "after": after, "limit": 500}),
            )
            .await?;
            let took = began.elapsed();
            anyhow::ensure!(
                page["events"].as_array().is_some_and(|e| !e.is_empty()),
                "an empty page"
            );
            if i % 2 == 0 {
                first.push(took)
            } else {
                middle.push(took)
            }
        }
        first.sort();
        middle.sort();
        println!();
        println!(
            "| timeline of an operation of {} events, 500 a page | p50 | p99 | max |",
            args.timeline_events
        );
        println!("|---|---:|---:|---:|");
        for (what, l) in [("first page", &first), ("a middle page", &middle)] {
            println!(
                "| {what} | {} | {} | {} |",
                ms(percentile(l, 0.5)),
                ms(percentile(l, 0.99)),
                ms(l.last().copied().unwrap_or_default())
            );
        }
        std::io::stdout().flush().ok();

        // A read (the operations service's `get`), then its access record
        // made durable (what the gateway waits for before answering).
        let actor = json!({"sub": "bench-fr", "role": "coordinator", "country": "FR"});
        let mut read = Vec::with_capacity(args.reads);
        let mut recorded = Vec::with_capacity(args.reads);
        for _ in 0..args.reads {
            let began = Instant::now();
            request(
                &client,
                subjects::query("operations", "get"),
                json!({"operation_id": long, "country": "FR", "role": "coordinator"}),
            )
            .await?;
            read.push(began.elapsed());
            let data = json!({"access_id": Uuid::now_v7(), "method": "GET", "path": format!("/v1/operations/{long}"),
                "query": null, "status": 200, "items": [operations::stream_of(long)]});
            request(
                &client,
                subjects::command("audit", "record_access"),
                envelope(actor.clone(), data),
            )
            .await?;
            recorded.push(began.elapsed());
        }
        read.sort();
        recorded.sort();
        println!();
        println!("| a read, {} one after another | p50 | p99 | max |", args.reads);
        println!("|---|---:|---:|---:|");
        for (what, l) in [
            ("without its access record", &read),
            ("with it (recorded, fsynced, then answered)", &recorded),
        ] {
            println!(
                "| {what} | {} | {} | {} |",
                ms(percentile(l, 0.5)),
                ms(percentile(l, 0.99)),
                ms(l.last().copied().unwrap_or_default())
            );
        }
        anyhow::Ok(())
    })
}
