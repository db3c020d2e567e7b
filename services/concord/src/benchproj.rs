//! `concord bench projector`: how fast the projector builds the views of a
//! long history, what it holds in memory, and how long an acknowledged
//! event takes to be visible. Fills the operations log with real events
//! through the log API (operations across 196 countries), runs the
//! operations service and the projector as separate `concord serve`
//! processes, and reports; measures, never asserts.

use std::io::Write;
use std::path::PathBuf;
use std::sync::OnceLock;
use std::time::{Duration, Instant};

use concord_core::{CountryCode, subjects};
use serde_json::{Value, json};
use uuid::Uuid;

use crate::benchmem::{Served, bench_base, envelope, fill_with, proc_status_mib, request};

#[derive(clap::Args)]
pub struct ProjectorBenchArgs {
    /// Events in the operations log before the projector starts
    #[arg(long, default_value_t = 1_000_000)]
    events: u64,
    /// Append rates to measure append → visible at (commands per second)
    #[arg(long, value_delimiter = ',', default_value = "2000,5000")]
    rates: Vec<u32>,
    /// Seconds of each rate
    #[arg(long, default_value_t = 5)]
    seconds: u64,
    /// Where to put the data (a fresh temp dir under it); default: system temp
    #[arg(long)]
    dir: Option<PathBuf>,
}

/// Events per operation of the fill: an opening and nine tasks.
const EVENTS_PER_OPERATION: u64 = 10;
const COUNTRIES: usize = 196;
/// How long the projector may take to catch up before the bench gives up.
const CATCH_UP_MAX: Duration = Duration::from_secs(3600);

/// 196 countries (not the secretariat).
fn countries() -> &'static [CountryCode] {
    static ALL: OnceLock<Vec<CountryCode>> = OnceLock::new();
    ALL.get_or_init(|| {
        CountryCode::all()
            .filter(|c| !c.is_secretariat())
            .take(COUNTRIES)
            .collect()
    })
}

fn pair(i: u64) -> (CountryCode, CountryCode) {
    let all = countries();
    let n = all.len() as u64;
    let at = |k: u64| all[usize::try_from(k % n).unwrap_or(0)];
    (at(i), at(i + 1))
}

/// The projector's answer once it has applied `seq` of the operations log
/// (its read-your-writes wait), as an auditor. The read itself is the
/// cheapest there is (a feed past its end), so the figure is the wait.
async fn applied(client: &async_nats::Client, seq: u64) -> anyhow::Result<Value> {
    request(
        client,
        subjects::query(concord_bus::permissions::PROJECTOR, "feed"),
        json!({"caller": {"country": "GS", "role": "auditor"}, "country": "FR",
               "after": concord_core::chain::INTEGER_MAX, "max": 1, "wait_for": {"operations": seq}}),
    )
    .await
}

fn percentile(sorted: &[Duration], p: f64) -> Duration {
    if sorted.is_empty() {
        return Duration::ZERO;
    }
    let at = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    sorted[at.min(sorted.len() - 1)]
}

pub fn projector(args: ProjectorBenchArgs) -> anyhow::Result<()> {
    let (base, rt) = bench_base(args.dir.as_deref())?;
    let data = base.path().join("data");
    rt.block_on(async {
        println!(
            "# concord bench projector: {} operations events across {COUNTRIES} countries; services as separate processes",
            args.events
        );
        let filled = Instant::now();
        fill_with(&data.join("operations"), args.events, EVENTS_PER_OPERATION, pair).await?;
        println!(
            "filled {} events through the log API in {:.1} s",
            args.events,
            filled.elapsed().as_secs_f64()
        );
        let nats = concord_bus::nats_server::NatsServer::start_in(&base.path().join("nats"))?;
        let client = async_nats::connect(nats.url()).await?;
        let _operations = Served::start("operations", &data, &nats.url())?;

        let started = Instant::now();
        let projector = Served::start("projector", &data, &nats.url())?;
        let deadline = Instant::now() + CATCH_UP_MAX;
        while applied(&client, args.events).await.is_err() {
            anyhow::ensure!(Instant::now() < deadline, "the projector did not catch up in time");
        }
        let took = started.elapsed();
        println!();
        println!("| projection of the history | figure |");
        println!("|---|---:|");
        println!("| events | {} |", args.events);
        println!("| seconds, start to all applied | {:.1} |", took.as_secs_f64());
        println!("| events/s | {:.0} |", args.events as f64 / took.as_secs_f64());
        println!(
            "| peak RSS MiB | {:.0} |",
            proc_status_mib(projector.pid(), "VmHWM:").unwrap_or(f64::NAN)
        );
        println!(
            "| RSS MiB after | {:.0} |",
            proc_status_mib(projector.pid(), "VmRSS:").unwrap_or(f64::NAN)
        );
        std::io::stdout().flush().ok();

        println!();
        println!("| rate asked (commands/s) | achieved | acknowledged → visible p50 | p99 | max |");
        println!("|---:|---:|---:|---:|---:|");
        let actor = json!({"sub": "bench-fr", "role": "coordinator", "country": "FR"});
        for &rate in &args.rates {
            // One operation per 100 tasks, opened beforehand.
            let total = u64::from(rate) * args.seconds;
            let ops: Vec<Uuid> = (0..total.div_ceil(100)).map(|_| Uuid::now_v7()).collect();
            for op in &ops {
                let data = json!({"operation_id": op, "title": "bench", "objective": "measure",
                    "lead_country": "FR", "countries": ["DE"]});
                request(&client, subjects::command("operations", "open"), envelope(actor.clone(), data)).await?;
            }
            let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel();
            let period = Duration::from_secs_f64(1.0 / f64::from(rate));
            let mut tick = tokio::time::interval(period);
            tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Burst);
            let began = Instant::now();
            for i in 0..total {
                tick.tick().await;
                let (client, actor, tx) = (client.clone(), actor.clone(), tx.clone());
                let op = ops[usize::try_from(i / 100)?];
                tokio::spawn(async move {
                    let data = json!({"operation_id": op, "task_id": Uuid::now_v7(), "assignee_country": "DE",
                        "title": "t", "details": ""});
                    let r = request(&client, subjects::command("operations", "assign_task"), envelope(actor, data)).await;
                    let seq = r.ok().and_then(|v| v["events"][0]["seq"].as_u64());
                    let Some(seq) = seq else { return };
                    let acked = Instant::now();
                    if applied(&client, seq).await.is_ok() {
                        let _ = tx.send(acked.elapsed());
                    }
                });
            }
            drop(tx);
            let mut latencies = Vec::new();
            while let Some(l) = rx.recv().await {
                latencies.push(l);
            }
            let elapsed = began.elapsed();
            latencies.sort();
            let ms = |d: Duration| format!("{:.1} ms", d.as_secs_f64() * 1000.0);
            println!(
                "| {rate} | {:.0} | {} | {} | {} |",
                latencies.len() as f64 / elapsed.as_secs_f64(),
                ms(percentile(&latencies, 0.50)),
                ms(percentile(&latencies, 0.99)),
                ms(latencies.last().copied().unwrap_or_default()),
            );
            std::io::stdout().flush().ok();
        }
        println!();
        println!(
            "projector RSS after the rates: {:.0} MiB (peak {:.0} MiB)",
            proc_status_mib(projector.pid(), "VmRSS:").unwrap_or(f64::NAN),
            proc_status_mib(projector.pid(), "VmHWM:").unwrap_or(f64::NAN)
        );
        anyhow::Ok(())
    })
}
