//! `concord bench peers`: Concord's command path beside two peers that also
//! answer a write only once it is durable (or say they do), measured in the
//! same run on the same machine with the same load: JetStream with every
//! message fsynced before its ack, JetStream as shipped (acks before the
//! fsync), and PostgreSQL with `synchronous_commit=on`. Figures for
//! docs/benchmarks.md. Measures, never asserts: a peer that is faster is
//! information, not a failure.
//!
//! Every system gets the same shape of work so the ratio means something:
//! 512 bytes of data per write, N workers each with a stream of its own,
//! one write in flight per worker, and each write conditional on the
//! worker's last acknowledged version (Concord's expected version,
//! JetStream's `Nats-Expected-Last-Subject-Sequence`, PostgreSQL's primary
//! key on `(stream, version)`). The load runs in this process for all of
//! them, on the same tokio runtime, so the client's cost is alike too.

use std::fmt::Write as _;
use std::io::Write as _;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use anyhow::Context;
use async_nats::jetstream;

use crate::bench::{EVENT_DATA_BYTES, Latency, OperationsUnderLoad, drive, fsync_latency, gather, task_data};
use crate::benchmem::{proc_field_mib, proc_status_mib};

#[derive(Clone, Copy, PartialEq, Eq, Debug, clap::ValueEnum)]
pub enum System {
    /// `bench ops`: NATS command → decide → fsynced append → publish → reply
    Concord,
    /// JetStream, `sync_interval: always`: every message fsynced before its ack
    JetstreamAlways,
    /// JetStream as shipped: acked before it is fsynced (every 2 minutes)
    Jetstream,
    /// PostgreSQL, one INSERT a transaction, `synchronous_commit=on`
    Postgres,
}

impl System {
    fn label(self) -> &'static str {
        match self {
            System::Concord => "Concord (bench ops path)",
            System::JetstreamAlways => "JetStream, sync always",
            System::Jetstream => "JetStream, default sync",
            System::Postgres => "PostgreSQL, synchronous_commit=on",
        }
    }
}

#[derive(clap::Args)]
pub struct PeersBenchArgs {
    /// Seconds per system and concurrency level
    #[arg(long, default_value_t = 5)]
    seconds: u64,
    /// Writes in flight: workers, each on a stream of its own
    #[arg(long, value_delimiter = ',', default_values_t = [1, 16, 64])]
    in_flight: Vec<usize>,
    /// Systems to measure, in this order
    #[arg(long, value_enum, value_delimiter = ',',
          default_values = ["concord", "jetstream-always", "jetstream", "postgres"])]
    systems: Vec<System>,
}

/// The tasks a Concord worker assigns to one operation before opening the
/// next: `bench ops`' default.
const TASKS_PER_OPERATION: usize = 100;

struct Row {
    system: System,
    in_flight: usize,
    latency: Latency,
    /// Peak memory while the level ran, MiB.
    peak_mib: Option<f64>,
}

/// Microseconds a single command cannot beat on this machine: Concord's
/// path makes two NATS hops (caller → service, service → caller) where a
/// peer makes one, and waits for one fsync, so its honest floor is a no-op
/// request-reply on the same nats-server plus a write + fdatasync on the
/// same disk, measured in the same run, plus 100 µs for the work itself.
struct Floor {
    request_reply: Latency,
    fdatasync: Latency,
}

/// Allowance for Concord's own work (parse, checks, decide, seal, reply)
/// in the floor.
const FLOOR_WORK_US: u128 = 100;

/// Writes + fdatasyncs timed for the floor: ~1 s on this disk.
const FLOOR_FSYNCS: usize = 5_000;

impl Floor {
    fn us(&self) -> u128 {
        self.request_reply.p50_us + self.fdatasync.p50_us + FLOOR_WORK_US
    }

    async fn measure(ops: &OperationsUnderLoad, dir: &Path, run: Duration) -> anyhow::Result<Floor> {
        let request_reply = noop_request_reply(ops, run).await?;
        std::fs::create_dir_all(dir)?;
        let dir = dir.to_owned();
        let fdatasync = tokio::task::spawn_blocking(move || fsync_latency(&dir, FLOOR_FSYNCS)).await??;
        Ok(Floor {
            request_reply,
            fdatasync,
        })
    }
}

/// One request at a time to a responder that answers at once with an
/// empty body, on the nats-server Concord runs on and over a connection of
/// its own, as the service has: the two hops without the service's work.
async fn noop_request_reply(ops: &OperationsUnderLoad, run: Duration) -> anyhow::Result<Latency> {
    use futures::StreamExt;
    const SUBJECT: &str = "bench.noop";
    let responder = async_nats::connect(ops.nats.url()).await?;
    let mut requests = responder.subscribe(SUBJECT).await?;
    // The subscription is registered before the first request is sent.
    responder.flush().await?;
    let answering = {
        let responder = responder.clone();
        tokio::spawn(async move {
            while let Some(m) = requests.next().await {
                if let Some(reply) = m.reply {
                    let _ = responder.publish(reply, Vec::new().into()).await;
                }
            }
        })
    };
    let payload = vec![b'x'; EVENT_DATA_BYTES];
    let start = Instant::now();
    let deadline = start + run;
    let mut us = Vec::new();
    while Instant::now() < deadline {
        let t = Instant::now();
        ops.load.request(SUBJECT, payload.clone().into()).await?;
        us.push(t.elapsed().as_micros());
    }
    let elapsed = start.elapsed();
    answering.abort();
    Ok(crate::bench::summarize(us, elapsed))
}

pub fn peers(args: PeersBenchArgs) -> anyhow::Result<()> {
    // Fail before measuring anything when a peer cannot run at all.
    let nats_version = command_version(&concord_bus::nats_server::nats_server_binary()?)?;
    let pg_bin = if args.systems.contains(&System::Postgres) {
        Some(postgres_bin()?)
    } else {
        None
    };
    let mut pg_version = match &pg_bin {
        Some(bin) => command_version(&bin.join("postgres"))?,
        None => "not measured".into(),
    };
    let rt = tokio::runtime::Builder::new_multi_thread().enable_all().build()?;
    let base = tempfile::TempDir::new().context("creating the bench directory")?;
    let run = Duration::from_secs(args.seconds);
    let mut rows = Vec::new();
    let mut concord_nats_mib = None;
    let mut pg_settings = None;
    let mut floor = None;
    rt.block_on(async {
        for &system in &args.systems {
            match system {
                System::Concord => {
                    let ops = OperationsUnderLoad::start(&base.path().join("concord")).await?;
                    floor = Some(Floor::measure(&ops, &base.path().join("floor"), run).await?);
                    let details = padded_details()?;
                    let me = Memory::Peak(std::process::id());
                    let nats = ops.nats.pid().map(Memory::Peak);
                    if let Some(n) = &nats {
                        n.reset();
                    }
                    for &n in &args.in_flight {
                        let (latency, peak_mib) = me
                            .during(drive(&ops.load, n, run, TASKS_PER_OPERATION, &details))
                            .await?;
                        rows.push(progress(Row {
                            system,
                            in_flight: n,
                            latency,
                            peak_mib,
                        }));
                    }
                    concord_nats_mib = nats.and_then(|n| n.read());
                    ops.stop().await;
                }
                System::JetstreamAlways | System::Jetstream => {
                    let always = system == System::JetstreamAlways;
                    let dir = base.path().join(if always { "jetstream-always" } else { "jetstream" });
                    let (nats, js) = start_jetstream(&dir, always).await?;
                    let mem = Memory::Peak(nats.pid().context("nats-server is not running")?);
                    for &n in &args.in_flight {
                        let (latency, peak_mib) = mem.during(drive_jetstream(&js, n, run)).await?;
                        rows.push(progress(Row {
                            system,
                            in_flight: n,
                            latency,
                            peak_mib,
                        }));
                    }
                    drop(js);
                    drop(nats);
                }
                System::Postgres => {
                    let bin = pg_bin.as_deref().context("PostgreSQL's binaries")?;
                    let pg = Postgres::start(bin)?;
                    pg_settings = Some(pg.ready().await?);
                    let mem = Memory::PssTree(pg.child.id());
                    for &n in &args.in_flight {
                        let (latency, peak_mib) = mem.during(drive_postgres(&pg, n, run)).await?;
                        rows.push(progress(Row {
                            system,
                            in_flight: n,
                            latency,
                            peak_mib,
                        }));
                    }
                }
            }
        }
        anyhow::Ok(())
    })?;
    if let Some(settings) = pg_settings {
        pg_version = format!("{pg_version} ({settings})");
    }
    print!("{}", table(&args, &nats_version, &pg_version, &rows, concord_nats_mib));
    if let Some(floor) = &floor {
        print!("{}", floor_lines(floor, &rows));
    }
    std::io::stdout().flush().ok();
    Ok(())
}

/// One line on stderr per level as it ends: the run takes minutes.
fn progress(row: Row) -> Row {
    eprintln!(
        "{} @ {}: {:.0} ops/s, p50 {} µs, p99 {} µs",
        row.system.label(),
        row.in_flight,
        row.latency.per_sec,
        row.latency.p50_us,
        row.latency.p99_us
    );
    row
}

/// A task's `details` that make its command's `data` `EVENT_DATA_BYTES`
/// long, as the peers' payloads are.
fn padded_details() -> anyhow::Result<String> {
    let bare = serde_json::to_vec(&task_data(uuid::Uuid::now_v7(), ""))?.len();
    Ok("x".repeat(EVENT_DATA_BYTES.saturating_sub(bare)))
}

fn table(
    args: &PeersBenchArgs,
    nats_version: &str,
    pg_version: &str,
    rows: &[Row],
    concord_nats_mib: Option<f64>,
) -> String {
    let mut out = String::new();
    let cores = std::thread::available_parallelism().map_or(0, usize::from);
    let cpu = cpu_model().unwrap_or_else(|| "unknown CPU".into());
    let command: Vec<String> = std::env::args().skip(1).collect();
    let _ = writeln!(out, "# concord bench peers");
    let _ = writeln!(out);
    let _ = writeln!(out, "- command: `concord {}`", command.join(" "));
    let _ = writeln!(out, "- machine: {cores} cores ({cpu}); servers and load share them");
    let _ = writeln!(out, "- versions: {nats_version}; {pg_version}");
    let _ = writeln!(
        out,
        "- {} s per level; {EVENT_DATA_BYTES} B of data per write; each worker one stream, one write in flight, conditional on its last acknowledged version",
        args.seconds
    );
    let _ = writeln!(
        out,
        "- peak RSS: of the server process while the level ran (VmHWM); Concord: this bench process (operations service and load generator){}; PostgreSQL: the peak of the postmaster's and backends' PSS summed, sampled every {} ms",
        concord_nats_mib.map_or(String::new(), |m| format!(", its nats-server {m:.0} MiB more")),
        PSS_SAMPLE_INTERVAL.as_millis()
    );
    let _ = writeln!(out);
    let _ = writeln!(
        out,
        "| system | in flight | ops/s | p50 µs | p99 µs | max µs | peak RSS MiB | Concord ÷ this (ops/s) |"
    );
    let _ = writeln!(out, "|---|---:|---:|---:|---:|---:|---:|---:|");
    for r in rows {
        let concord = rows
            .iter()
            .find(|c| c.system == System::Concord && c.in_flight == r.in_flight)
            .map(|c| c.latency.per_sec);
        let ratio = match concord {
            Some(c) if r.system != System::Concord && r.latency.per_sec > 0.0 => {
                format!("{:.2}×", c / r.latency.per_sec)
            }
            _ => "—".into(),
        };
        let _ = writeln!(
            out,
            "| {} | {} | {} | {} | {} | {} | {} | {ratio} |",
            r.system.label(),
            r.in_flight,
            thousands(r.latency.per_sec.round() as u128),
            thousands(r.latency.p50_us),
            thousands(r.latency.p99_us),
            thousands(r.latency.max_us),
            r.peak_mib.map_or("?".into(), |m| format!("{m:.0}")),
        );
    }
    out
}

/// The floor and Concord's single command against it.
fn floor_lines(floor: &Floor, rows: &[Row]) -> String {
    let mut out = String::new();
    let _ = writeln!(out);
    let _ = writeln!(
        out,
        "- floor of one command, same run: no-op request-reply p50 {} µs (p99 {}) + write {EVENT_DATA_BYTES} B + fdatasync p50 {} µs (p99 {}) + {FLOOR_WORK_US} µs = {} µs",
        thousands(floor.request_reply.p50_us),
        thousands(floor.request_reply.p99_us),
        thousands(floor.fdatasync.p50_us),
        thousands(floor.fdatasync.p99_us),
        thousands(floor.us()),
    );
    if let Some(one) = rows.iter().find(|r| r.system == System::Concord && r.in_flight == 1) {
        let verdict = if one.latency.p50_us <= floor.us() {
            "within"
        } else {
            "above"
        };
        let _ = writeln!(
            out,
            "- Concord at 1 in flight: p50 {} µs, {verdict} the floor ({:+} µs)",
            thousands(one.latency.p50_us),
            one.latency.p50_us as i128 - floor.us() as i128,
        );
    }
    out
}

/// `12345` → `12,345`, as the figures in docs/benchmarks.md are written.
fn thousands(n: u128) -> String {
    let digits = n.to_string();
    let mut out = String::new();
    for (i, c) in digits.chars().enumerate() {
        if i > 0 && (digits.len() - i).is_multiple_of(3) {
            out.push(',');
        }
        out.push(c);
    }
    out
}

fn cpu_model() -> Option<String> {
    let info = std::fs::read_to_string("/proc/cpuinfo").ok()?;
    info.lines()
        .find(|l| l.starts_with("model name"))
        .and_then(|l| l.split_once(':'))
        .map(|(_, m)| m.trim().to_owned())
}

/// The first line `BIN --version` prints.
fn command_version(bin: &Path) -> anyhow::Result<String> {
    let out = Command::new(bin)
        .arg("--version")
        .output()
        .with_context(|| format!("running {} --version", bin.display()))?;
    Ok(String::from_utf8_lossy(&out.stdout)
        .lines()
        .next()
        .unwrap_or("")
        .trim()
        .to_owned())
}

// ---------------------------------------------------------------- memory

const PSS_SAMPLE_INTERVAL: Duration = Duration::from_millis(200);

/// How a system's memory is read.
enum Memory {
    /// One process: its kernel-kept peak, reset before each level.
    Peak(u32),
    /// A process and its children sharing memory (PostgreSQL's shared
    /// buffers are mapped by every backend): their PSS summed, so shared
    /// pages count once, sampled since the kernel keeps no peak of it.
    PssTree(u32),
}

impl Memory {
    async fn during<F>(&self, work: F) -> anyhow::Result<(Latency, Option<f64>)>
    where
        F: std::future::Future<Output = anyhow::Result<Latency>>,
    {
        match *self {
            Memory::Peak(_) => {
                self.reset();
                let latency = work.await?;
                Ok((latency, self.read()))
            }
            Memory::PssTree(root) => {
                let stop = Arc::new(AtomicBool::new(false));
                let sampler = {
                    let stop = Arc::clone(&stop);
                    std::thread::spawn(move || {
                        let mut peak: Option<f64> = None;
                        loop {
                            let now = pss_tree_mib(root);
                            peak = match (peak, now) {
                                (Some(p), Some(n)) => Some(p.max(n)),
                                (p, n) => p.or(n),
                            };
                            if stop.load(Ordering::Relaxed) {
                                return peak;
                            }
                            std::thread::sleep(PSS_SAMPLE_INTERVAL);
                        }
                    })
                };
                let latency = work.await;
                stop.store(true, Ordering::Relaxed);
                let peak = sampler.join().ok().flatten();
                Ok((latency?, peak))
            }
        }
    }

    /// Starts the kernel's peak afresh (`clear_refs` 5); when it cannot,
    /// the peak read is since the process started.
    fn reset(&self) {
        if let Memory::Peak(pid) = *self {
            let _ = std::fs::write(format!("/proc/{pid}/clear_refs"), "5");
        }
    }

    fn read(&self) -> Option<f64> {
        match *self {
            Memory::Peak(pid) => proc_status_mib(pid, "VmHWM:").ok(),
            Memory::PssTree(root) => pss_tree_mib(root),
        }
    }
}

fn pss_tree_mib(root: u32) -> Option<f64> {
    let pss = |pid: u32| {
        std::fs::read_to_string(format!("/proc/{pid}/smaps_rollup"))
            .ok()
            .and_then(|t| proc_field_mib(&t, "Pss:"))
    };
    let mut total = pss(root)?;
    for entry in std::fs::read_dir("/proc").ok()?.flatten() {
        let Some(pid) = entry.file_name().to_str().and_then(|n| n.parse::<u32>().ok()) else {
            continue;
        };
        let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
        if parent_pid(&stat) == Some(root) {
            total += pss(pid).unwrap_or(0.0);
        }
    }
    Some(total)
}

/// The parent's pid in a `/proc/<pid>/stat` line (after the command's
/// closing parenthesis: state, then ppid).
fn parent_pid(stat: &str) -> Option<u32> {
    stat.rsplit_once(')')?.1.split_whitespace().nth(1)?.parse().ok()
}

// ---------------------------------------------------------------- JetStream

/// A nats-server with JetStream on `dir` and a file-storage stream over
/// `bench.>`.
async fn start_jetstream(
    dir: &Path,
    sync_always: bool,
) -> anyhow::Result<(concord_bus::nats_server::NatsServer, jetstream::Context)> {
    std::fs::create_dir_all(dir)?;
    let config = dir.join("jetstream.conf");
    // The store directory is the `-sd` NatsServer gives on the command line.
    let block = if sync_always {
        "jetstream {\n  sync_interval: always\n}\n"
    } else {
        "jetstream {}\n"
    };
    std::fs::write(&config, block)?;
    let nats = concord_bus::nats_server::NatsServer::start_with_config(dir, &config)?;
    let js = jetstream::new(async_nats::connect(nats.url()).await?);
    js.create_stream(jetstream::stream::Config {
        name: "BENCH".into(),
        subjects: vec!["bench.>".into()],
        storage: jetstream::stream::StorageType::File,
        ..Default::default()
    })
    .await
    .context("creating the JetStream stream")?;
    Ok((nats, js))
}

async fn drive_jetstream(js: &jetstream::Context, workers: usize, run: Duration) -> anyhow::Result<Latency> {
    let message = jetstream::message::PublishMessage::build().payload(vec![b'x'; EVENT_DATA_BYTES].into());
    let start = Instant::now();
    let deadline = start + run;
    let tasks: Vec<_> = (0..workers)
        .map(|w| {
            let (js, message) = (js.clone(), message.clone());
            // A fresh subject per level and worker: its first write expects
            // none before it (sequence 0).
            let subject = format!("bench.{workers}.{w}");
            tokio::spawn(async move {
                let mut us = Vec::new();
                let mut last = 0u64;
                while Instant::now() < deadline {
                    let publish = message.clone().expected_last_subject_sequence(last);
                    let t = Instant::now();
                    let ack = js.send_publish(subject.clone(), publish).await?.await?;
                    us.push(t.elapsed().as_micros());
                    last = ack.sequence;
                }
                anyhow::Ok(us)
            })
        })
        .collect();
    gather(tasks, start).await
}

// ---------------------------------------------------------------- PostgreSQL

/// Where Debian's packages put PostgreSQL's server binaries: the newest
/// version installed.
fn postgres_bin() -> anyhow::Result<PathBuf> {
    let mut found: Vec<(u32, PathBuf)> = std::fs::read_dir("/usr/lib/postgresql")
        .into_iter()
        .flatten()
        .flatten()
        .filter_map(|e| {
            let version = e.file_name().to_str()?.parse::<u32>().ok()?;
            let bin = e.path().join("bin");
            bin.join("postgres").is_file().then_some((version, bin))
        })
        .collect();
    found.sort();
    found
        .pop()
        .map(|(_, bin)| bin)
        .context("PostgreSQL's server is not installed (Debian: apt-get install -y postgresql)")
}

/// A throwaway cluster: `initdb` in a temp dir, `postgres` on a Unix socket
/// only, stopped (fast shutdown, then SIGKILL) and removed on drop.
struct Postgres {
    child: Child,
    port: u16,
    log: PathBuf,
    /// Its own temp dir, not under the bench's: as root it is handed to
    /// `POSTGRES_USER`, who could not reach into a root-only parent.
    /// Removed after the server has stopped (fields drop after `drop`).
    dir: tempfile::TempDir,
}

/// PostgreSQL refuses to run as root: as root, it runs as this user (the
/// one Debian's package creates).
const POSTGRES_USER: &str = "postgres";
/// The role `initdb` creates and the bench connects as.
const BENCH_ROLE: &str = "bench";

impl Postgres {
    fn start(bin: &Path) -> anyhow::Result<Postgres> {
        let tmp = tempfile::TempDir::new()?;
        let dir = tmp.path();
        let as_user = if effective_uid()? == 0 {
            let (uid, gid) = user_ids(POSTGRES_USER).with_context(|| {
                format!("running as root, PostgreSQL needs the user {POSTGRES_USER} (Debian's package creates it)")
            })?;
            std::os::unix::fs::chown(dir, Some(uid), Some(gid))?;
            Some((uid, gid))
        } else {
            None
        };
        let run = |program: &str| {
            let mut c = match as_user {
                Some((uid, gid)) => {
                    let mut c = Command::new("setpriv");
                    c.arg(format!("--reuid={uid}"))
                        .arg(format!("--regid={gid}"))
                        .args(["--clear-groups", "--pdeathsig", "KILL", "--"])
                        .arg(bin.join(program));
                    c
                }
                None => Command::new(bin.join(program)),
            };
            c.stdin(Stdio::null());
            c
        };
        let data = dir.join("data");
        let init_log = dir.join("initdb.log");
        let status = run("initdb")
            .arg("-D")
            .arg(&data)
            .args(["-U", BENCH_ROLE, "-A", "trust", "-E", "UTF8", "--locale=C", "--no-sync"])
            .stdout(std::fs::File::create(&init_log)?)
            .stderr(std::fs::File::create(dir.join("initdb.err"))?)
            .status()
            .context("running initdb (setpriv from util-linux is needed as root)")?;
        if !status.success() {
            let why = std::fs::read_to_string(dir.join("initdb.err")).unwrap_or_default();
            anyhow::bail!("initdb failed: {}", why.trim());
        }
        let port = std::net::TcpListener::bind("127.0.0.1:0")?.local_addr()?.port();
        let log = dir.join("postgres.log");
        let child = run("postgres")
            .arg("-D")
            .arg(&data)
            .args(["-p", &port.to_string(), "-k"])
            .arg(dir)
            .args([
                "-c",
                "listen_addresses=",
                "-c",
                "fsync=on",
                "-c",
                "synchronous_commit=on",
            ])
            .stdout(Stdio::null())
            .stderr(std::fs::File::create(&log)?)
            .spawn()
            .context("starting postgres")?;
        Ok(Postgres {
            child,
            port,
            log,
            dir: tmp,
        })
    }

    async fn connect(&self) -> anyhow::Result<tokio_postgres::Client> {
        let (client, connection) = tokio_postgres::Config::new()
            .host_path(self.dir.path())
            .port(self.port)
            .user(BENCH_ROLE)
            .dbname("postgres")
            .connect(tokio_postgres::NoTls)
            .await?;
        tokio::spawn(connection);
        Ok(client)
    }

    /// Waits until it accepts a connection, then makes the table; answers
    /// the settings that decide what a durable commit costs.
    async fn ready(&self) -> anyhow::Result<String> {
        let deadline = Instant::now() + Duration::from_secs(30);
        let client = loop {
            match self.connect().await {
                Ok(c) => break c,
                Err(e) if Instant::now() > deadline => {
                    let why = std::fs::read_to_string(&self.log).unwrap_or_default();
                    anyhow::bail!("postgres did not start: {e}; its log: {}", why.trim());
                }
                Err(_) => tokio::time::sleep(Duration::from_millis(100)).await,
            }
        };
        client
            .batch_execute(
                "CREATE TABLE events (stream text, version bigint, data bytea, PRIMARY KEY (stream, version))",
            )
            .await?;
        let mut settings = Vec::new();
        for name in [
            "fsync",
            "synchronous_commit",
            "wal_sync_method",
            "commit_delay",
            "shared_buffers",
        ] {
            let row = client.query_one(&format!("SHOW {name}"), &[]).await?;
            settings.push(format!("{name}={}", row.get::<_, String>(0)));
        }
        Ok(settings.join(", "))
    }
}

impl Drop for Postgres {
    fn drop(&mut self) {
        let pid = self.child.id().to_string();
        // SIGINT: fast shutdown, which ends the backends and leaves no
        // shared memory behind.
        let _ = Command::new("kill").args(["-INT", &pid]).status();
        let deadline = Instant::now() + Duration::from_secs(15);
        while Instant::now() < deadline {
            if let Ok(Some(_)) = self.child.try_wait() {
                return;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn effective_uid() -> anyhow::Result<u32> {
    let status = std::fs::read_to_string("/proc/self/status")?;
    // `Uid:` lists the real, effective, saved and filesystem uids.
    status
        .lines()
        .find_map(|l| l.strip_prefix("Uid:"))
        .and_then(|ids| ids.split_whitespace().nth(1))
        .and_then(|id| id.parse().ok())
        .context("no effective uid in /proc/self/status")
}

fn user_ids(name: &str) -> Option<(u32, u32)> {
    let passwd = std::fs::read_to_string("/etc/passwd").ok()?;
    passwd.lines().find_map(|l| {
        let mut f = l.split(':');
        (f.next()? == name).then_some(())?;
        let mut ids = f.skip(1);
        Some((ids.next()?.parse().ok()?, ids.next()?.parse().ok()?))
    })
}

async fn drive_postgres(pg: &Postgres, workers: usize, run: Duration) -> anyhow::Result<Latency> {
    // Connections are made before the clock starts, as a pooled
    // application's would be.
    let mut clients = Vec::with_capacity(workers);
    for _ in 0..workers {
        clients.push(pg.connect().await?);
    }
    let payload = vec![b'x'; EVENT_DATA_BYTES];
    let start = Instant::now();
    let deadline = start + run;
    let tasks: Vec<_> = clients
        .into_iter()
        .enumerate()
        .map(|(w, client)| {
            let payload = payload.clone();
            let stream = format!("{workers}-{w}");
            tokio::spawn(async move {
                let insert = client
                    .prepare("INSERT INTO events (stream, version, data) VALUES ($1, $2, $3)")
                    .await?;
                let mut us = Vec::new();
                let mut version = 0i64;
                while Instant::now() < deadline {
                    version += 1;
                    let t = Instant::now();
                    client.execute(&insert, &[&stream, &version, &payload]).await?;
                    us.push(t.elapsed().as_micros());
                }
                anyhow::Ok(us)
            })
        })
        .collect();
    gather(tasks, start).await
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn proc_fields_parse() {
        let status = "Name:\tnats-server\nVmPeak:\t 1300 kB\nVmHWM:\t   2048 kB\n";
        assert_eq!(proc_field_mib(status, "VmHWM:"), Some(2.0));
        assert_eq!(proc_field_mib(status, "VmRSS:"), None);
        assert_eq!(parent_pid("412 (postgres: bench) S 400 412 412 0 -1"), Some(400));
        assert_eq!(parent_pid("7 (a) b) R 1 7"), Some(1));
    }

    #[test]
    fn figures_have_thousands_separators() {
        assert_eq!(thousands(0), "0");
        assert_eq!(thousands(999), "999");
        assert_eq!(thousands(1000), "1,000");
        assert_eq!(thousands(12_345_678), "12,345,678");
    }

    #[test]
    fn concord_writes_as_much_data_as_the_peers() {
        let details = padded_details().expect("details");
        let data = task_data(uuid::Uuid::now_v7(), &details);
        assert_eq!(serde_json::to_vec(&data).expect("json").len(), EVENT_DATA_BYTES);
    }
}
