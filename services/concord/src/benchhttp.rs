//! `concord bench http`: the HTTP API under an open-loop load. A child
//! `concord up` on a temp data dir (the whole system: nats-server, every
//! service, the projector, the audit, the gateway) is sent
//! `POST /v1/operations/{id}/tasks` at a fixed offered rate whatever it
//! answers, and each request's latency is taken from the moment it was
//! *scheduled* to be sent: a system that falls behind shows its queueing
//! in the figures instead of slowing the load down (coordinated omission).
//! Figures for docs/benchmarks.md. Measures, never asserts.

use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use concord_core::{CountryCode, Role};
use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader};
use tokio::net::TcpStream;

#[derive(clap::Args)]
pub struct HttpBenchArgs {
    /// Requests offered per second
    #[arg(long, default_value_t = 2000)]
    rate: u32,
    /// Seconds of load
    #[arg(long, default_value_t = 10)]
    seconds: u64,
}

/// Tasks put on one operation before the next: below the contract's limit
/// of 1,000 tasks an operation.
const TASKS_PER_OPERATION: u64 = 900;

pub fn http(args: HttpBenchArgs) -> anyhow::Result<()> {
    let rt = tokio::runtime::Builder::new_multi_thread().enable_all().build()?;
    let data = tempfile::TempDir::new()?;
    let addr = std::net::TcpListener::bind("127.0.0.1:0")?.local_addr()?;
    let up = Up::start(data.path(), addr)?;
    rt.block_on(async {
        up.ready(addr).await?;
        let secret = crate::secret::load(data.path(), false)?;
        let fr = CountryCode::parse("FR").map_err(|e| anyhow::anyhow!("{e}"))?;
        let token = crate::secret::token(&secret, Role::Coordinator, fr, "bench-fr", 3600)?;
        let pool = Pool {
            addr,
            idle: Arc::new(Mutex::new(Vec::new())),
        };
        let total = u64::from(args.rate) * args.seconds;
        let mut operations = Vec::new();
        for _ in 0..total.div_ceil(TASKS_PER_OPERATION) {
            let body = r#"{"title":"bench","objective":"measure","lead_country":"FR","countries":["DE","ES"]}"#;
            let (status, answer) = pool.post("/v1/operations", &token, body).await?;
            if status != 201 {
                bail!("opening an operation: {status} {}", String::from_utf8_lossy(&answer));
            }
            let answer: serde_json::Value = serde_json::from_slice(&answer)?;
            operations.push(
                answer["operation_id"]
                    .as_str()
                    .context("no operation_id in the answer")?
                    .to_owned(),
            );
        }
        let interval = Duration::from_secs_f64(1.0 / f64::from(args.rate));
        let body = r#"{"assignee_country":"DE","title":"trace the boat","details":"port of Hamburg"}"#;
        let start = Instant::now() + Duration::from_millis(100);
        let mut requests = Vec::with_capacity(total as usize);
        for i in 0..total {
            let scheduled = start + interval.mul_f64(i as f64);
            tokio::time::sleep_until(scheduled.into()).await;
            let (pool, token) = (pool.clone(), token.clone());
            let path = format!(
                "/v1/operations/{}/tasks",
                operations[(i / TASKS_PER_OPERATION) as usize]
            );
            requests.push(tokio::spawn(async move {
                let answer = pool.post(&path, &token, body).await;
                (scheduled.elapsed(), answer.map(|(status, _)| status))
            }));
        }
        let mut us = Vec::with_capacity(requests.len());
        let mut failed = Vec::new();
        for r in requests {
            let (took, status) = r.await?;
            match status {
                Ok(201) => us.push(took.as_micros()),
                Ok(s) => failed.push(s.to_string()),
                Err(e) => failed.push(e.to_string()),
            }
        }
        let elapsed = start.elapsed();
        print_report(&args, &mut us, &failed, elapsed);
        anyhow::Ok(())
    })?;
    drop(up);
    Ok(())
}

fn print_report(args: &HttpBenchArgs, us: &mut [u128], failed: &[String], elapsed: Duration) {
    us.sort_unstable();
    let pick = |q: f64| {
        us.get(((us.len() as f64 * q) as usize).min(us.len().saturating_sub(1)))
            .copied()
            .unwrap_or(0)
    };
    println!(
        "# concord bench http: POST /v1/operations/{{id}}/tasks, open loop, latency from each request's scheduled send (command: `concord {}`)",
        std::env::args().skip(1).collect::<Vec<_>>().join(" ")
    );
    println!();
    println!("| offered/s | answered 201/s | failed | p50 µs | p99 µs | p99.9 µs | max µs |");
    println!("|---:|---:|---:|---:|---:|---:|---:|");
    println!(
        "| {} | {:.0} | {} | {} | {} | {} | {} |",
        args.rate,
        us.len() as f64 / elapsed.as_secs_f64(),
        failed.len(),
        pick(0.50),
        pick(0.99),
        pick(0.999),
        us.last().copied().unwrap_or(0)
    );
    if let Some(first) = failed.first() {
        println!();
        println!("first failure: {first}");
    }
}

/// The child `concord up`, stopped as an operator would (SIGTERM, then
/// SIGKILL if it lingers) even when the bench fails.
struct Up(Child);

impl Up {
    fn start(data: &Path, addr: std::net::SocketAddr) -> anyhow::Result<Up> {
        let exe = std::env::current_exe().context("finding the concord binary")?;
        let child = Command::new(exe)
            .args(["up", "--data"])
            .arg(data)
            .args(["--http", &addr.to_string()])
            .env_remove("NATS_URL")
            .stdin(Stdio::null())
            // Its banner (tokens included) is not the bench's output.
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .context("starting concord up")?;
        Ok(Up(child))
    }

    /// Until `/readyz` answers 200 (every part of the system answers).
    async fn ready(&self, addr: std::net::SocketAddr) -> anyhow::Result<()> {
        let deadline = Instant::now() + Duration::from_secs(60);
        loop {
            let answer = async {
                let mut conn = BufReader::new(TcpStream::connect(addr).await?);
                exchange(&mut conn, "GET", "/readyz", None, "").await
            };
            match answer.await {
                Ok((200, _)) => return Ok(()),
                other if Instant::now() > deadline => bail!("concord up was not ready within 60 s: {other:?}"),
                _ => tokio::time::sleep(Duration::from_millis(200)).await,
            }
        }
    }
}

impl Drop for Up {
    fn drop(&mut self) {
        let _ = Command::new("kill").args(["-TERM", &self.0.id().to_string()]).status();
        let deadline = Instant::now() + Duration::from_secs(20);
        while Instant::now() < deadline {
            if let Ok(Some(_)) = self.0.try_wait() {
                return;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// Kept-alive connections: a request takes an idle one or opens another,
/// so an open-loop load is never held back by a fixed number of them.
#[derive(Clone)]
struct Pool {
    addr: std::net::SocketAddr,
    idle: Arc<Mutex<Vec<Idle>>>,
}

/// A kept-alive connection and when its last answer was read.
type Idle = (Instant, BufReader<TcpStream>);

/// An idle connection older than this is closed rather than used: the
/// gateway closes one that sends no request within its header read
/// timeout (10 s), and a request sent as it does would read an empty
/// answer that is the pool's doing, not the gateway's.
const IDLE_KEPT: Duration = Duration::from_secs(5);

impl Pool {
    async fn post(&self, path: &str, token: &str, body: &str) -> anyhow::Result<(u16, Vec<u8>)> {
        let idle = self.idle.lock().ok().and_then(|mut idle| {
            idle.retain(|(since, _)| since.elapsed() < IDLE_KEPT);
            idle.pop()
        });
        let mut conn = match idle {
            Some((_, c)) => c,
            None => BufReader::new(TcpStream::connect(self.addr).await?),
        };
        let answer = exchange(&mut conn, "POST", path, Some(token), body).await?;
        if let Ok(mut idle) = self.idle.lock() {
            idle.push((Instant::now(), conn));
        }
        Ok(answer)
    }
}

/// One HTTP/1.1 request and its answer on a kept-alive connection: enough
/// for the gateway's JSON answers, which carry a `Content-Length`.
async fn exchange(
    conn: &mut BufReader<TcpStream>,
    method: &str,
    path: &str,
    token: Option<&str>,
    body: &str,
) -> anyhow::Result<(u16, Vec<u8>)> {
    let auth = token.map_or(String::new(), |t| format!("Authorization: Bearer {t}\r\n"));
    let head = format!(
        "{method} {path} HTTP/1.1\r\nHost: bench\r\n{auth}Content-Type: application/json\r\nContent-Length: {}\r\n\r\n",
        body.len()
    );
    conn.get_mut().write_all(format!("{head}{body}").as_bytes()).await?;
    let mut line = String::new();
    conn.read_line(&mut line).await?;
    let status: u16 = line
        .split_whitespace()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .with_context(|| format!("not an HTTP status line: {line:?}"))?;
    let mut length = 0usize;
    loop {
        line.clear();
        if conn.read_line(&mut line).await? == 0 {
            bail!("the connection closed in the headers");
        }
        let header = line.trim_end();
        if header.is_empty() {
            break;
        }
        if let Some((name, value)) = header.split_once(':') {
            if name.eq_ignore_ascii_case("content-length") {
                length = value.trim().parse()?;
            } else if name.eq_ignore_ascii_case("transfer-encoding") {
                bail!("a chunked answer is not read by this bench");
            }
        }
    }
    let mut answer = vec![0; length];
    conn.read_exact(&mut answer).await?;
    Ok((status, answer))
}
