//! `concord bench log`: figures for docs/benchmarks.md. Measures, never
//! asserts: a number that is slower than hoped is information, not a failure.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::Context;
use concord_core::{Actor, CountryCode, ExpectedVersion, Role, Service};
use concord_log::{AppendRequest, Fingerprint, Log, NewEvent};
use serde_json::json;

/// Bytes of `data` per benchmark event (the "512-byte events").
pub(crate) const EVENT_DATA_BYTES: usize = 512;

#[derive(clap::Args)]
pub struct LogBenchArgs {
    /// Where to put the logs (a fresh temp dir under it); default: system temp
    #[arg(long)]
    dir: Option<PathBuf>,
    /// Seconds per concurrency level
    #[arg(long, default_value_t = 3)]
    seconds: u64,
    /// Events to write, then read and verify
    #[arg(long, default_value_t = 1_000_000)]
    verify_events: u64,
    /// Concurrency levels
    #[arg(long, value_delimiter = ',', default_values_t = [1, 8, 64, 256])]
    appenders: Vec<usize>,
}

pub fn log(args: LogBenchArgs) -> anyhow::Result<()> {
    let base = match &args.dir {
        Some(d) => tempfile::TempDir::new_in(d),
        None => tempfile::TempDir::new(),
    }
    .context("creating the bench directory")?;
    println!("# concord bench log ({} B of data per event)", EVENT_DATA_BYTES);
    println!("directory: {}", base.path().display());

    let f = fsync_latency(base.path(), 2000)?;
    println!(
        "raw write({EVENT_DATA_BYTES} B)+fdatasync: p50 {} µs, p99 {} µs, {:.0} syncs/s (the physical limit of one appender)",
        f.p50_us, f.p99_us, f.per_sec
    );

    let rt = tokio::runtime::Runtime::new()?;
    println!();
    println!("| appenders | appends/s | events/s | p50 µs | p99 µs | appends |");
    println!("|---:|---:|---:|---:|---:|---:|");
    let mut single = None;
    for &c in &args.appenders {
        let dir = base.path().join(format!("append-{c}"));
        let r = rt.block_on(appends(&dir, c, Duration::from_secs(args.seconds)))?;
        println!(
            "| {c} | {:.0} | {:.0} | {} | {} | {} |",
            r.per_sec, r.per_sec, r.p50_us, r.p99_us, r.count
        );
        std::io::stdout().flush().ok();
        if c == 1 {
            single = Some(r.per_sec);
        } else if let Some(s) = single {
            println!("|   ({c} vs 1: {:.1}×) | | | | | |", r.per_sec / s);
        }
    }

    println!();
    let dir = base.path().join("verify");
    let filled = rt.block_on(fill(&dir, args.verify_events))?;
    println!(
        "filled {} events in {:.2} s ({:.0} events/s, 64 appenders × 64 events per append)",
        args.verify_events,
        filled.as_secs_f64(),
        args.verify_events as f64 / filled.as_secs_f64()
    );
    let log = Log::open(&dir, Service::Operations)?;
    let t = Instant::now();
    let mut next = 1;
    let mut n = 0u64;
    loop {
        let b = log.read_from(next, concord_log::READ_BATCH_EVENTS_MAX)?;
        let Some(last) = b.events.last() else { break };
        next = last.seq + 1;
        n += b.events.len() as u64;
    }
    let read = t.elapsed();
    println!(
        "sequential read: {n} events in {:.2} s = {:.0} events/s",
        read.as_secs_f64(),
        n as f64 / read.as_secs_f64()
    );
    let t = Instant::now();
    let report = log.verify()?;
    let v = t.elapsed();
    println!(
        "sequential read + hash verification: {} events in {:.2} s = {:.0} events/s (chain ok: {})",
        report.events_verified,
        v.as_secs_f64(),
        report.events_verified as f64 / v.as_secs_f64(),
        report.first_bad.is_none()
    );
    Ok(())
}

pub(crate) struct Latency {
    pub(crate) p50_us: u128,
    pub(crate) p99_us: u128,
    pub(crate) max_us: u128,
    pub(crate) per_sec: f64,
    pub(crate) count: usize,
}

/// Every worker's latencies, summarized over the run that began at
/// `start`.
pub(crate) async fn gather(
    workers: Vec<tokio::task::JoinHandle<anyhow::Result<Vec<u128>>>>,
    start: Instant,
) -> anyhow::Result<Latency> {
    let mut all = Vec::new();
    for w in workers {
        all.extend(w.await??);
    }
    Ok(summarize(all, start.elapsed()))
}

pub(crate) fn summarize(mut us: Vec<u128>, elapsed: Duration) -> Latency {
    us.sort_unstable();
    let pick = |q: f64| {
        us.get(((us.len() as f64 * q) as usize).min(us.len().saturating_sub(1)))
            .copied()
            .unwrap_or(0)
    };
    Latency {
        p50_us: pick(0.50),
        p99_us: pick(0.99),
        max_us: us.last().copied().unwrap_or(0),
        per_sec: us.len() as f64 / elapsed.as_secs_f64(),
        count: us.len(),
    }
}

pub(crate) fn fsync_latency(dir: &Path, n: usize) -> anyhow::Result<Latency> {
    let path = dir.join("fsync-probe");
    let mut f = std::fs::File::create(&path)?;
    let buf = vec![b'x'; EVENT_DATA_BYTES];
    let mut us = Vec::with_capacity(n);
    let start = Instant::now();
    for _ in 0..n {
        let t = Instant::now();
        f.write_all(&buf)?;
        f.sync_data()?;
        us.push(t.elapsed().as_micros());
    }
    let elapsed = start.elapsed();
    std::fs::remove_file(&path).ok();
    Ok(summarize(us, elapsed))
}

fn request(stream: String, command_id: String, events: usize) -> anyhow::Result<AppendRequest> {
    let pad = "x".repeat(EVENT_DATA_BYTES - 20);
    let actor = Actor {
        sub: "bench".into(),
        role: Role::Coordinator,
        country: CountryCode::parse("FR").unwrap_or_else(|_| unreachable!("FR is a country")),
    };
    Ok(AppendRequest {
        fingerprint: Fingerprint::new("bench", &stream, &json!({ "events": events }), &actor)?,
        stream,
        expected: ExpectedVersion::Any,
        command_id: command_id.clone(),
        actor,
        correlation_id: command_id,
        causation_id: None,
        observed_hlc: None,
        events: (0..events)
            .map(|_| NewEvent {
                event_type: "bench.appended".into(),
                schema_version: 1,
                data: json!({ "pad": pad }),
            })
            .collect(),
    })
}

async fn appends(dir: &Path, appenders: usize, run: Duration) -> anyhow::Result<Latency> {
    let log = Log::open(dir, Service::Operations)?;
    let start = Instant::now();
    let deadline = start + run;
    let tasks: Vec<_> = (0..appenders)
        .map(|a| {
            let log = log.clone();
            tokio::spawn(async move {
                let mut us = Vec::new();
                let mut i = 0u64;
                while Instant::now() < deadline {
                    let t = Instant::now();
                    log.append(request(format!("bench-{a}"), format!("{a}-{i}"), 1)?)
                        .await?;
                    us.push(t.elapsed().as_micros());
                    i += 1;
                }
                anyhow::Ok(us)
            })
        })
        .collect();
    gather(tasks, start).await
}

async fn fill(dir: &Path, events: u64) -> anyhow::Result<Duration> {
    const WRITERS: u64 = 64;
    const PER_APPEND: u64 = 64;
    let log = Log::open(dir, Service::Operations)?;
    let appends = events.div_ceil(PER_APPEND);
    let next = Arc::new(std::sync::atomic::AtomicU64::new(0));
    let start = Instant::now();
    let tasks: Vec<_> = (0..WRITERS)
        .map(|w| {
            let (log, next) = (log.clone(), next.clone());
            tokio::spawn(async move {
                loop {
                    let i = next.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                    if i >= appends {
                        return anyhow::Ok(());
                    }
                    let n = PER_APPEND.min(events - i * PER_APPEND) as usize;
                    log.append(request(format!("fill-{w}"), format!("fill-{i}"), n)?)
                        .await?;
                }
            })
        })
        .collect();
    for t in tasks {
        t.await??;
    }
    Ok(start.elapsed())
}

#[derive(clap::Args)]
pub struct OpsBenchArgs {
    /// Seconds per concurrency level
    #[arg(long, default_value_t = 5)]
    seconds: u64,
    /// Commands in flight
    #[arg(long, value_delimiter = ',', default_values_t = [1, 16, 64])]
    in_flight: Vec<usize>,
    /// Tasks assigned per operation before a worker opens a fresh one (a
    /// real operation has tens of tasks, not thousands)
    #[arg(long, default_value_t = 100)]
    tasks_per_operation: usize,
    /// All commands in flight on ONE operation (decided one at a time),
    /// moving to a fresh operation every `SAME_STREAM_TASKS` tasks
    #[arg(long)]
    same_stream: bool,
}

/// Tasks one operation takes in `--same-stream` before the workers move to
/// a fresh one: below the contract's limit of 1,000 tasks an operation.
const SAME_STREAM_TASKS: usize = 900;

/// `concord bench ops`: `assign_task` commands over NATS request-reply,
/// through the whole service path (schema validation, state, decide,
/// durable append, publish, reply) against a real nats-server on this
/// machine.
pub fn ops(args: OpsBenchArgs) -> anyhow::Result<()> {
    let rt = tokio::runtime::Builder::new_multi_thread().enable_all().build()?;
    rt.block_on(async {
        let dir = tempfile::TempDir::new()?;
        let system = OperationsUnderLoad::start(dir.path()).await?;
        println!(
            "# concord bench ops: assign_task over NATS request-reply (nats-server, service and load on this machine){}",
            if args.same_stream {
                ", every command in flight on one operation"
            } else {
                ""
            }
        );
        println!();
        println!("| in flight | commands/s | p50 µs | p99 µs | commands |");
        println!("|---:|---:|---:|---:|---:|");
        for &n in &args.in_flight {
            let run = Duration::from_secs(args.seconds);
            let r = if args.same_stream {
                drive_one_stream(&system.load, n, run).await?
            } else {
                drive(&system.load, n, run, args.tasks_per_operation, TASK_DETAILS).await?
            };
            println!("| {n} | {:.0} | {} | {} | {} |", r.per_sec, r.p50_us, r.p99_us, r.count);
            std::io::stdout().flush().ok();
        }
        system.stop().await;
        anyhow::Ok(())
    })
}

/// The `details` of every task `bench ops` assigns.
const TASK_DETAILS: &str = "port of Hamburg";

/// A nats-server child and the operations service bound to it in this
/// process, with a client of its own for the load: what `bench ops` and
/// `bench peers` drive.
pub(crate) struct OperationsUnderLoad {
    pub(crate) nats: concord_bus::nats_server::NatsServer,
    pub(crate) load: async_nats::Client,
    stop: tokio::sync::watch::Sender<bool>,
    service: tokio::task::JoinHandle<Result<(), concord_bus::runtime::RuntimeError>>,
}

impl OperationsUnderLoad {
    /// Starts both with their files under `dir`. Call it from the thread
    /// that owns the runtime, not from a spawned task: the child belongs
    /// to the caller.
    pub(crate) async fn start(dir: &Path) -> anyhow::Result<OperationsUnderLoad> {
        let nats = concord_bus::nats_server::NatsServer::start_in(&dir.join("nats"))?;
        let svc_client = async_nats::connect(nats.url()).await?;
        let svc =
            concord_operations::bind(&concord_bus::service::Config::new(dir.join("operations")), svc_client).await?;
        let (stop, mut stop_rx) = tokio::sync::watch::channel(false);
        let service = tokio::spawn(svc.run(async move {
            let _ = stop_rx.wait_for(|s| *s).await;
        }));
        let load = async_nats::connect(nats.url()).await?;
        Ok(OperationsUnderLoad {
            nats,
            load,
            stop,
            service,
        })
    }

    /// Stops the service (its log closed cleanly), then the nats-server.
    pub(crate) async fn stop(self) {
        let _ = self.stop.send(true);
        let _ = self.service.await;
    }
}

async fn ops_command(client: &async_nats::Client, command: &str, data: serde_json::Value) -> anyhow::Result<()> {
    let env = json!({
        "command_id": uuid::Uuid::now_v7().to_string(),
        "actor": {"sub": "bench-fr", "role": "coordinator", "country": "FR"},
        "issued_at": chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Micros, true),
        "correlation_id": uuid::Uuid::now_v7().to_string(),
        "data": data,
    });
    let msg = client
        .request(
            concord_core::subjects::command("operations", command),
            serde_json::to_vec(&env)?.into(),
        )
        .await?;
    match concord_core::reply::Reply::parse(&msg.payload) {
        Ok(concord_core::reply::Reply::Ok(_)) => Ok(()),
        other => anyhow::bail!("{command} refused: {other:?}"),
    }
}

async fn open_operation(client: &async_nats::Client) -> anyhow::Result<uuid::Uuid> {
    let id = uuid::Uuid::now_v7();
    let data = json!({"operation_id": id, "title": "bench", "objective": "measure",
        "lead_country": "FR", "countries": ["DE", "ES"]});
    ops_command(client, "open", data).await?;
    Ok(id)
}

/// The `data` of an `assign_task` of a fresh task on `op`.
pub(crate) fn task_data(op: uuid::Uuid, details: &str) -> serde_json::Value {
    json!({"operation_id": op, "task_id": uuid::Uuid::now_v7(),
        "assignee_country": "DE", "title": "trace the boat", "details": details})
}

/// Every worker assigns tasks to the one current operation; the worker
/// that finds it full opens the next while the others wait.
async fn drive_one_stream(client: &async_nats::Client, workers: usize, run: Duration) -> anyhow::Result<Latency> {
    let start = Instant::now();
    let deadline = start + run;
    let current = Arc::new(tokio::sync::Mutex::new((open_operation(client).await?, 0usize)));
    let tasks: Vec<_> = (0..workers)
        .map(|_| {
            let client = client.clone();
            let current = Arc::clone(&current);
            tokio::spawn(async move {
                let mut us = Vec::new();
                while Instant::now() < deadline {
                    let op = {
                        let mut current = current.lock().await;
                        if current.1 == SAME_STREAM_TASKS {
                            *current = (open_operation(&client).await?, 0);
                        }
                        current.1 += 1;
                        current.0
                    };
                    let data = task_data(op, TASK_DETAILS);
                    let t = Instant::now();
                    ops_command(&client, "assign_task", data).await?;
                    us.push(t.elapsed().as_micros());
                }
                anyhow::Ok(us)
            })
        })
        .collect();
    gather(tasks, start).await
}

pub(crate) async fn drive(
    client: &async_nats::Client,
    workers: usize,
    run: Duration,
    per_op: usize,
    details: &str,
) -> anyhow::Result<Latency> {
    let start = Instant::now();
    let deadline = start + run;
    let tasks: Vec<_> = (0..workers)
        .map(|_| {
            let client = client.clone();
            let details = details.to_owned();
            tokio::spawn(async move {
                let mut us = Vec::new();
                let mut op = open_operation(&client).await?;
                let mut on_op = 0;
                while Instant::now() < deadline {
                    if on_op == per_op {
                        op = open_operation(&client).await?;
                        on_op = 0;
                    }
                    let data = task_data(op, &details);
                    let t = Instant::now();
                    ops_command(&client, "assign_task", data).await?;
                    us.push(t.elapsed().as_micros());
                    on_op += 1;
                }
                anyhow::Ok(us)
            })
        })
        .collect();
    gather(tasks, start).await
}
