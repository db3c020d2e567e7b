//! What the black-box tests share: `concord up` started on a data dir and
//! a free port (stopped with SIGTERM on drop), tokens, and HTTP calls with
//! assertions on answers and problems.

#![allow(dead_code)]

use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use concord_testkit::http::{Response, request};
use serde_json::Value;

pub const BIN: &str = env!("CARGO_BIN_EXE_concord");
pub const START_TIMEOUT: Duration = Duration::from_secs(60);

pub struct Up {
    pub child: Child,
    pub addr: String,
    pub tokens: std::collections::HashMap<String, String>,
    /// What it printed up to `ready`.
    pub banner: Vec<String>,
}

impl Drop for Up {
    /// A clean stop (SIGTERM), so `concord up` also stops its nats-server;
    /// SIGKILL only if it does not stop in time. A test never leaves
    /// processes behind.
    fn drop(&mut self) {
        if let Ok(None) = self.child.try_wait() {
            let _ = Command::new("kill")
                .args(["-TERM", &self.child.id().to_string()])
                .status();
            let deadline = Instant::now() + Duration::from_secs(10);
            while matches!(self.child.try_wait(), Ok(None)) && Instant::now() < deadline {
                std::thread::sleep(Duration::from_millis(20));
            }
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

pub fn free_addr() -> String {
    let l = std::net::TcpListener::bind("127.0.0.1:0").expect("port");
    l.local_addr().expect("addr").to_string()
}

/// Starts `concord up` and reads its banner up to the `ready` line.
pub fn up(data: &Path, addr: &str) -> Up {
    up_with(data, addr, &[])
}

/// `up` with more arguments (e.g. `--tls`).
pub fn up_with(data: &Path, addr: &str, extra: &[&str]) -> Up {
    start_up(data, addr, extra, None)
}

/// `up` on NATS servers it does not run (`NATS_URL`, e.g. a cluster's
/// nodes), which must run `data`'s `nats/concord.conf`.
pub fn up_on(data: &Path, addr: &str, nats_url: &str) -> Up {
    start_up(data, addr, &[], Some(nats_url))
}

fn start_up(data: &Path, addr: &str, extra: &[&str], nats_url: Option<&str>) -> Up {
    let mut cmd = Command::new(BIN);
    match nats_url {
        Some(url) => cmd.env("NATS_URL", url),
        None => cmd.env_remove("NATS_URL"),
    };
    // Its own process group, as a shell gives a job: `interrupt` can
    // then do what Ctrl-C in a terminal does, to it and its nats-server.
    std::os::unix::process::CommandExt::process_group(&mut cmd, 0);
    let mut child = cmd
        .args(["up", "--data"])
        .arg(data)
        .args(["--http", addr])
        .args(extra)
        .env_remove("CONCORD_JWT_SECRET")
        .stdout(Stdio::piped())
        // Kept beside the data dir: a start that fails says why.
        .stderr(std::fs::File::create(data.with_extension("stderr")).expect("a file for its stderr"))
        .spawn()
        .expect("spawn concord up");
    let stdout = child.stdout.take().expect("stdout");
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(stdout).lines() {
            let Ok(line) = line else { break };
            if tx.send(line).is_err() {
                break;
            }
        }
    });
    let mut tokens = std::collections::HashMap::new();
    let mut banner = Vec::new();
    let deadline = Instant::now() + START_TIMEOUT;
    loop {
        let left = deadline.saturating_duration_since(Instant::now());
        let line = rx.recv_timeout(left).unwrap_or_else(|e| {
            let said = std::fs::read_to_string(data.with_extension("stderr")).unwrap_or_default();
            let tail: Vec<&str> = said.lines().rev().take(30).collect();
            let tail: Vec<&str> = tail.into_iter().rev().collect();
            panic!(
                "concord up did not print `ready` ({e}); its stderr ends:\n{}",
                tail.join("\n")
            )
        });
        if let Some((name, tok)) = line.split_once('=')
            && name.chars().all(|c| c.is_ascii_uppercase() || c == '_')
            && tok.starts_with("eyJ")
        {
            tokens.insert(name.to_owned(), tok.to_owned());
        }
        let ready = line.ends_with("ready");
        banner.push(line);
        if ready {
            break;
        }
    }
    Up {
        child,
        addr: addr.to_owned(),
        tokens,
        banner,
    }
}

impl Up {
    /// The URL of its nats-server, as the banner names it.
    pub fn nats_url(&self) -> String {
        self.banner
            .iter()
            .find_map(|l| l.trim().strip_prefix("NATS"))
            .and_then(|rest| rest.split_whitespace().next())
            .expect("the banner names the NATS URL")
            .to_owned()
    }

    /// Ctrl-C in the terminal it runs in: SIGINT to its whole process
    /// group, its nats-server with it, then waits (a minute at most, a
    /// guard against a hang, not a measure) for it to end.
    pub fn interrupt(&mut self) -> std::process::ExitStatus {
        let group = format!("-{}", self.child.id());
        let sent = Command::new("kill")
            .args(["-INT", "--", &group])
            .status()
            .expect("kill");
        assert!(sent.success(), "SIGINT to the process group {group}");
        let deadline = Instant::now() + Duration::from_secs(60);
        loop {
            if let Some(status) = self.child.try_wait().expect("wait") {
                return status;
            }
            assert!(Instant::now() < deadline, "concord up did not end after SIGINT");
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    pub fn token(&self, name: &str) -> &str {
        self.tokens
            .get(name)
            .map(String::as_str)
            .unwrap_or_else(|| panic!("no demo token {name}"))
    }

    pub async fn call(
        &self,
        method: &str,
        path: &str,
        who: Option<&str>,
        extra: &[(&str, &str)],
        body: Option<Value>,
    ) -> Response {
        let auth = who.map(|w| format!("Bearer {}", self.token(w)));
        let mut headers = extra.to_vec();
        if let Some(a) = &auth {
            headers.push(("Authorization", a));
        }
        let bytes = body.map(|b| serde_json::to_vec(&b).expect("json"));
        if bytes.is_some() {
            headers.push(("Content-Type", "application/json"));
        }
        request(&self.addr, method, path, &headers, bytes.as_deref())
            .await
            .expect("http")
    }

    pub async fn post(&self, path: &str, who: &str, body: Value) -> Response {
        self.call("POST", path, Some(who), &[], Some(body)).await
    }

    pub async fn get(&self, path: &str, who: &str) -> Response {
        self.call("GET", path, Some(who), &[], None).await
    }

    /// Opens an operation led by FR with DE taking part, as FR's
    /// coordinator: its id.
    pub async fn open_operation(&self) -> String {
        let body = serde_json::json!({"title": "Op Lys", "objective": "o", "lead_country": "FR", "countries": ["DE"]});
        id(&ok(&self.post("/v1/operations", "FR_COORDINATOR", body).await, 201))
    }
}

pub fn ok(r: &Response, status: u16) -> Value {
    assert_eq!(r.status, status, "{}", String::from_utf8_lossy(&r.body));
    r.json()
}

pub fn problem(r: &Response, status: u16, code: &str) {
    assert_eq!(r.status, status, "{}", String::from_utf8_lossy(&r.body));
    assert_eq!(r.header("content-type"), Some("application/problem+json"));
    assert_eq!(r.json()["code"], code);
}

/// A token from `concord token` with the data dir's secret.
pub fn token_for(data: &Path, role: &str, country: &str) -> String {
    token_as(data, role, country, &format!("{}-{role}", country.to_ascii_lowercase()))
}

/// A token for `sub` in `role`: one person may hold several roles.
pub fn token_as(data: &Path, role: &str, country: &str, sub: &str) -> String {
    let out = Command::new(BIN)
        .args(["token", "--role", role, "--country", country, "--sub", sub])
        .arg("--data")
        .arg(data)
        .env_remove("CONCORD_JWT_SECRET")
        .output()
        .expect("concord token");
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .last()
        .expect("a token line")
        .to_owned()
}

/// The service of the route `method path` among `/openapi.json`'s (`doc`):
/// its operation's tag. `path` is a concrete path (`/v1/operations/<id>`).
pub fn service_of(doc: &Value, method: &str, path: &str) -> Option<String> {
    let segments: Vec<&str> = path.split('/').collect();
    doc["paths"].as_object()?.iter().find_map(|(template, item)| {
        let t: Vec<&str> = template.split('/').collect();
        let matches = t.len() == segments.len() && t.iter().zip(&segments).all(|(a, b)| a.starts_with('{') || a == b);
        matches
            .then(|| item[method.to_ascii_lowercase()]["tags"][0].as_str().map(str::to_owned))
            .flatten()
    })
}

/// Adds `(service, seq)` of each event a command's 2xx `answer` lists.
pub fn acknowledge(service: &str, answer: &Value, acknowledged: &mut std::collections::BTreeSet<(String, u64)>) {
    for event in answer["events"].as_array().into_iter().flatten() {
        acknowledged.insert((service.to_owned(), event["seq"].as_u64().expect("seq")));
    }
}

/// What the logs under `data` (the system stopped) disagree with the
/// answers on: every event no 2xx answer `acknowledged` (a refused request
/// that wrote something), except the stand-downs the deployments service
/// sends itself when a crisis closes, and every acknowledged event missing
/// from its log. Empty when every refusal left every log as it was.
pub fn unacknowledged(data: &Path, mut acknowledged: std::collections::BTreeSet<(String, u64)>) -> Vec<String> {
    let mut stray = Vec::new();
    for service in ["operations", "intel", "crisis", "deployments"] {
        let out = Command::new(BIN)
            .args(["log", "export"])
            .arg(data.join(service))
            .output()
            .expect("concord log export");
        assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
        for line in String::from_utf8_lossy(&out.stdout).lines() {
            let e: Value = serde_json::from_str(line).expect("an exported event");
            let seq = e["seq"].as_u64().expect("seq");
            let own_reaction = e["command_id"].as_str().is_some_and(|c| c.starts_with("stand-down:"));
            if !acknowledged.remove(&(service.to_owned(), seq)) && !own_reaction {
                stray.push(format!(
                    "{service} seq {seq}: {} by {} unacknowledged",
                    e["type"], e["actor"]
                ));
            }
        }
    }
    stray.extend(
        acknowledged
            .into_iter()
            .map(|(service, seq)| format!("{service} seq {seq}: acknowledged but not in its log")),
    );
    stray
}

/// Asserts [`unacknowledged`] finds nothing: every refusal left every log
/// as it was.
pub fn assert_only_acknowledged(data: &Path, acknowledged: std::collections::BTreeSet<(String, u64)>) {
    let stray = unacknowledged(data, acknowledged);
    assert!(
        stray.is_empty(),
        "the logs and the answers disagree:\n{}",
        stray.join("\n")
    );
}

/// The `id` of a command's answer.
pub fn id(v: &Value) -> String {
    v["id"].as_str().expect("id").to_owned()
}

/// An instant between two steps, RFC 3339: HLC wall times are ms, so what
/// comes next is stamped at least a few ms later.
pub async fn instant() -> String {
    tokio::time::sleep(Duration::from_millis(20)).await;
    let t = chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Millis, true);
    tokio::time::sleep(Duration::from_millis(20)).await;
    t
}

/// What a NATS server reported to a connection (permission violations …).
pub type Reported = std::sync::Arc<std::sync::Mutex<Vec<String>>>;

/// A connection to `url` as `identity`, named `name`, that records every
/// error the server reports to it.
pub async fn connect_recording(
    url: &str,
    identity: concord_bus::permissions::Identity,
    seed: Option<&concord_bus::credentials::Seed>,
    name: String,
) -> Result<(async_nats::Client, Reported), String> {
    let seen: Reported = std::sync::Arc::default();
    let sink = seen.clone();
    concord_bus::credentials::connect_options(identity, seed, None)
        .name(name)
        .connection_timeout(Duration::from_secs(5))
        .event_callback(move |event| {
            let sink = sink.clone();
            async move {
                if let async_nats::Event::ServerError(e) = event {
                    sink.lock().expect("lock").push(e.to_string());
                }
            }
        })
        .connect(url)
        .await
        .map(|c| (c, seen))
        .map_err(|e| e.to_string())
}
