//! `concord bench memory`: what a long history costs at start. Fills the
//! operations log with real operations events through the log API (decided
//! by the contract, so every follower can fold them), then runs the
//! services as separate `concord serve` processes and reports each one's
//! resident memory and how long a following service takes from start to
//! its first accepted command, on its first start (folding the whole
//! history) and on a restart (resuming its kept view). Measures, never
//! asserts.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use concord_contracts::operations::{self, AssignTask, Open, Operations};
use concord_core::decider::{Aggregate, Ctx};
use concord_core::reply::Reply;
use concord_core::tagged::to_tagged;
use concord_core::{Actor, CountryCode, ExpectedVersion, Role, Service, subjects};
use concord_log::{AppendRequest, Fingerprint, Log, NewEvent};
use serde_json::{Value, json};
use uuid::Uuid;

#[derive(clap::Args)]
pub struct MemoryBenchArgs {
    /// Events to put in the operations log before the services start
    #[arg(long, default_value_t = 1_000_000)]
    events: u64,
    /// Commands sent after the start (16 in flight)
    #[arg(long, default_value_t = 10_000)]
    commands: usize,
    /// Where to put the data (a fresh temp dir under it); default: system temp
    #[arg(long)]
    dir: Option<PathBuf>,
}

/// Events per operation in the fill: one `operation.opened` and tasks, below
/// the contract's 1,000 tasks an operation.
const EVENTS_PER_OPERATION: u64 = 1_000;
/// Operations filled at once (each one's events go in order).
const FILL_WRITERS: u64 = 64;
/// How long to wait for a service to answer after its start.
const START_TIMEOUT: Duration = Duration::from_secs(600);

/// A fresh bench directory (under `dir`, else the system's temp) and the
/// runtime the bench runs on.
pub(crate) fn bench_base(dir: Option<&Path>) -> anyhow::Result<(tempfile::TempDir, tokio::runtime::Runtime)> {
    let base = match dir {
        Some(d) => tempfile::TempDir::new_in(d),
        None => tempfile::TempDir::new(),
    }
    .context("creating the bench directory")?;
    let rt = tokio::runtime::Builder::new_multi_thread().enable_all().build()?;
    Ok((base, rt))
}

pub fn memory(args: MemoryBenchArgs) -> anyhow::Result<()> {
    let (base, rt) = bench_base(args.dir.as_deref())?;
    let data = base.path().join("data");
    rt.block_on(async {
        println!(
            "# concord bench memory: {} events in the operations log, services as separate processes",
            args.events
        );
        let filled = Instant::now();
        let ops = fill(&data.join(Service::Operations.as_str()), args.events).await?;
        println!(
            "filled {} events ({} operations) through the log API in {:.1} s",
            args.events,
            ops.len(),
            filled.elapsed().as_secs_f64()
        );
        let nats = concord_bus::nats_server::NatsServer::start_in(&base.path().join("nats"))?;
        let client = async_nats::connect(nats.url()).await?;
        let op = *ops.first().context("the fill made no operation")?;

        println!();
        println!("| service | moment | RSS MiB | time |");
        println!("|---|---|---:|---:|");
        let row = |svc: &str, moment: &str, pid: u32, time: Option<Duration>| {
            let rss = rss_mib(pid).map_or_else(|e| format!("? ({e})"), |m| format!("{m:.0}"));
            let time = time.map_or_else(String::new, |t| format!("{:.2} s", t.as_secs_f64()));
            println!("| {svc} | {moment} | {rss} | {time} |");
            std::io::stdout().flush().ok();
        };

        let started = Instant::now();
        let mut operations = Served::start("operations", &data, &nats.url())?;
        wait_for(START_TIMEOUT, || async { get(&client, op).await }).await?;
        row(
            "operations",
            "started, first query answered",
            operations.pid(),
            Some(started.elapsed()),
        );
        get(&client, op).await?;
        row("operations", "after a query", operations.pid(), None);
        let sent = Instant::now();
        commands(&client, args.commands).await?;
        row(
            "operations",
            &format!(
                "after {} commands ({:.1} s)",
                args.commands,
                sent.elapsed().as_secs_f64()
            ),
            operations.pid(),
            None,
        );

        for start in ["first start: folds the whole log", "restart: resumes its kept view"] {
            let started = Instant::now();
            let mut intel = Served::start("intel", &data, &nats.url())?;
            wait_for(START_TIMEOUT, || async { post_lead(&client, op).await }).await?;
            row("intel", start, intel.pid(), Some(started.elapsed()));
            intel.stop()?;
        }
        operations.stop()?;
        anyhow::Ok(())
    })
}

/// A `concord serve` child process, stopped with SIGTERM (a graceful stop:
/// it keeps its views) or killed when dropped.
pub(crate) struct Served(Child);

impl Served {
    pub(crate) fn start(name: &str, data: &Path, nats_url: &str) -> anyhow::Result<Served> {
        let exe = std::env::current_exe().context("finding the concord binary")?;
        let child = Command::new(exe)
            .args(["serve", name, "--data"])
            .arg(data)
            .env("NATS_URL", nats_url)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            // Its start banner would break the table; errors still show.
            .stderr(Stdio::null())
            .spawn()
            .with_context(|| format!("starting concord serve {name}"))?;
        Ok(Served(child))
    }

    pub(crate) fn pid(&self) -> u32 {
        self.0.id()
    }

    pub(crate) fn stop(&mut self) -> anyhow::Result<()> {
        let status = Command::new("kill")
            .args(["-TERM", &self.0.id().to_string()])
            .status()
            .context("running kill")?;
        if !status.success() {
            bail!("kill -TERM {} failed", self.0.id());
        }
        self.0.wait().context("waiting for the service to stop")?;
        Ok(())
    }
}

impl Drop for Served {
    fn drop(&mut self) {
        if matches!(self.0.try_wait(), Ok(None)) {
            let _ = self.0.kill();
            let _ = self.0.wait();
        }
    }
}

fn rss_mib(pid: u32) -> anyhow::Result<f64> {
    proc_status_mib(pid, "VmRSS:")
}

/// A memory figure of `/proc/<pid>/status` (`VmRSS:`, `VmHWM:` the peak), in MiB.
pub(crate) fn proc_status_mib(pid: u32, field: &str) -> anyhow::Result<f64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status"))?;
    proc_field_mib(&status, field).with_context(|| format!("no {field} in /proc/<pid>/status"))
}

/// `field` of a `/proc` file of `Name:   1234 kB` lines (`status`,
/// `smaps_rollup`), in MiB.
pub(crate) fn proc_field_mib(text: &str, field: &str) -> Option<f64> {
    text.lines()
        .find_map(|l| l.strip_prefix(field))
        .and_then(|v| v.split_whitespace().next())
        .and_then(|v| v.parse::<f64>().ok())
        .map(|kb| kb / 1024.0)
}

async fn wait_for<F, Fut>(limit: Duration, mut attempt: F) -> anyhow::Result<()>
where
    F: FnMut() -> Fut,
    Fut: Future<Output = anyhow::Result<()>>,
{
    let deadline = Instant::now() + limit;
    loop {
        match attempt().await {
            Ok(()) => return Ok(()),
            Err(e) if Instant::now() >= deadline => return Err(e.context("the service did not answer in time")),
            Err(_) => tokio::time::sleep(Duration::from_millis(20)).await,
        }
    }
}

fn fr() -> CountryCode {
    CountryCode::parse("FR").unwrap_or_else(|_| unreachable!("FR is a country"))
}

fn coordinator() -> Actor {
    Actor {
        sub: "bench-fr".into(),
        role: Role::Coordinator,
        country: fr(),
    }
}

/// Puts `events` operations events in the log at `dir`: operations of
/// `EVENTS_PER_OPERATION` events, each decided by the operations contract
/// and appended one command at a time, as the service would.
async fn fill(dir: &Path, events: u64) -> anyhow::Result<Vec<Uuid>> {
    fill_with(dir, events, EVENTS_PER_OPERATION, |_| {
        (
            fr(),
            CountryCode::parse("DE").unwrap_or_else(|_| unreachable!("DE is a country")),
        )
    })
    .await
}

/// [`fill`] with `per_operation` events an operation, operation `i` led by
/// `countries(i).0` with `countries(i).1` taking part and tasked.
pub(crate) async fn fill_with(
    dir: &Path,
    events: u64,
    per_operation: u64,
    countries: fn(u64) -> (CountryCode, CountryCode),
) -> anyhow::Result<Vec<Uuid>> {
    let log = Log::open(dir, Service::Operations)?;
    let count = events.div_ceil(per_operation);
    let ops: Vec<Uuid> = (0..count).map(|_| Uuid::now_v7()).collect();
    let next = Arc::new(std::sync::atomic::AtomicU64::new(0));
    let tasks: Vec<_> = (0..FILL_WRITERS)
        .map(|_| {
            let (log, next, ops) = (log.clone(), next.clone(), ops.clone());
            tokio::spawn(async move {
                loop {
                    let i = next.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                    let Some(&op) = ops.get(usize::try_from(i)?) else {
                        return anyhow::Ok(());
                    };
                    let n = per_operation.min(events - i * per_operation);
                    let (lead, other) = countries(i);
                    fill_operation(&log, op, n, lead, other).await?;
                }
            })
        })
        .collect();
    for t in tasks {
        t.await??;
    }
    Ok(ops)
}

async fn fill_operation(log: &Log, op: Uuid, events: u64, lead: CountryCode, de: CountryCode) -> anyhow::Result<()> {
    let ctx = Ctx {
        actor: Actor {
            country: lead,
            ..coordinator()
        },
        now: chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Micros, true),
    };
    let mut state = operations::State::default();
    for n in 0..events {
        let command = if n == 0 {
            operations::Command::Open(Open {
                operation_id: op,
                title: "bench".into(),
                objective: "measure".into(),
                lead_country: lead,
                countries: vec![de],
            })
        } else {
            operations::Command::AssignTask(AssignTask {
                operation_id: op,
                task_id: Uuid::now_v7(),
                assignee_country: de,
                title: format!("task {n}"),
                details: "watch the port".into(),
                due_at: None,
            })
        };
        decide_and_append(log, &mut state, &command, &ctx, n).await?;
    }
    Ok(())
}

pub(crate) async fn request(client: &async_nats::Client, subject: String, body: Value) -> anyhow::Result<Value> {
    let msg = client.request(subject, serde_json::to_vec(&body)?.into()).await?;
    match Reply::parse(&msg.payload) {
        Ok(Reply::Ok(v)) => Ok(Value::Object(v)),
        other => bail!("refused: {other:?}"),
    }
}

async fn get(client: &async_nats::Client, op: Uuid) -> anyhow::Result<()> {
    request(
        client,
        subjects::query("operations", "get"),
        json!({"operation_id": op, "country": "FR"}),
    )
    .await
    .map(drop)
}

pub(crate) fn envelope(actor: Value, data: Value) -> Value {
    json!({
        "command_id": Uuid::now_v7().to_string(),
        "actor": actor,
        "issued_at": chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Micros, true),
        "correlation_id": Uuid::now_v7().to_string(),
        "data": data,
    })
}

async fn post_lead(client: &async_nats::Client, op: Uuid) -> anyhow::Result<()> {
    let data = json!({"lead_id": Uuid::now_v7(), "operation_id": op, "summary": "a lead"});
    let actor = json!({"sub": "bench-de", "role": "liaison", "country": "DE"});
    request(client, subjects::command("intel", "post_lead"), envelope(actor, data))
        .await
        .map(drop)
}

/// `n` commands, 16 in flight: operations opened and tasked (a fresh
/// operation every 100 tasks).
async fn commands(client: &async_nats::Client, n: usize) -> anyhow::Result<()> {
    const IN_FLIGHT: usize = 16;
    let actor = json!({"sub": "bench-fr", "role": "coordinator", "country": "FR"});
    let workers: Vec<_> = (0..IN_FLIGHT)
        .map(|w| {
            let (client, actor) = (client.clone(), actor.clone());
            let mine = n / IN_FLIGHT + usize::from(w < n % IN_FLIGHT);
            tokio::spawn(async move {
                let mut op = Uuid::nil();
                for i in 0..mine {
                    if i % 100 == 0 {
                        op = Uuid::now_v7();
                        let data = json!({"operation_id": op, "title": "bench", "objective": "measure",
                            "lead_country": "FR", "countries": ["DE"]});
                        request(
                            &client,
                            subjects::command("operations", "open"),
                            envelope(actor.clone(), data),
                        )
                        .await?;
                        continue;
                    }
                    let data = json!({"operation_id": op, "task_id": Uuid::now_v7(), "assignee_country": "DE",
                        "title": format!("task {i}"), "details": ""});
                    request(
                        &client,
                        subjects::command("operations", "assign_task"),
                        envelope(actor.clone(), data),
                    )
                    .await?;
                }
                anyhow::Ok(())
            })
        })
        .collect();
    for w in workers {
        w.await??;
    }
    Ok(())
}

/// Decides `command` on `state` as `ctx`'s actor with the operations
/// contract and appends what it decided to `log` at stream version
/// `version` (0: a new stream), folding it into `state`; the new version.
/// What the benches fill logs with: events the contract itself decided.
pub(crate) async fn decide_and_append(
    log: &Log,
    state: &mut operations::State,
    command: &operations::Command,
    ctx: &Ctx,
    version: u64,
) -> anyhow::Result<u64> {
    let decided = Operations::decide(state, command, &(), ctx).map_err(|r| anyhow::anyhow!("{r:?}"))?;
    let mut new = Vec::with_capacity(decided.len());
    for e in &decided {
        let (event_type, data) = to_tagged(e)?;
        new.push(NewEvent {
            schema_version: Operations::schema_version(&event_type),
            event_type,
            data,
        });
        *state = Operations::evolve(std::mem::take(state), e).map_err(|why| anyhow::anyhow!(why))?;
    }
    let (name, data) = to_tagged(command)?;
    let stream = operations::stream_of(command.operation_id());
    let command_id = Uuid::now_v7().to_string();
    let appended = new.len() as u64;
    log.append(AppendRequest {
        fingerprint: Fingerprint::new(&name, &stream, &data, &ctx.actor)?,
        expected: if version == 0 {
            ExpectedVersion::NoStream
        } else {
            ExpectedVersion::Exact(version)
        },
        stream,
        correlation_id: command_id.clone(),
        command_id,
        actor: ctx.actor.clone(),
        causation_id: None,
        observed_hlc: None,
        events: new,
    })
    .await?;
    Ok(version + appended)
}
