//! The deployment manifests (`deploy/systemd/`, `deploy/compose.yaml`)
//! checked against the code: every process `concord serve` runs has a unit
//! and a container and nothing else is there, every flag is one the built
//! binary takes, every environment variable one the code reads, every
//! process gets its own NATS seed and never another's, writes only its own
//! directory, and is hardened. The checkers return what is wrong, so the
//! tests below also feed them broken copies and expect to hear of it.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::process::Command;

use concord_bus::permissions::Identity;
use serde_norway::Value;

/// Files of `deploy/systemd/` that run no `concord serve`.
const OTHER_UNIT_FILES: [&str; 2] = ["nats-server.service", "concord.sysusers"];

/// `Key=value` every unit must have: the process gets the network, its own
/// directory and its own credentials, nothing else.
const HARDENING: &[(&str, &str)] = &[
    ("NoNewPrivileges", "yes"),
    ("ProtectSystem", "strict"),
    ("ProtectHome", "yes"),
    ("PrivateTmp", "yes"),
    ("PrivateDevices", "yes"),
    ("PrivateUsers", "yes"),
    ("ProtectKernelTunables", "yes"),
    ("ProtectKernelModules", "yes"),
    ("ProtectKernelLogs", "yes"),
    ("ProtectControlGroups", "yes"),
    ("ProtectClock", "yes"),
    ("ProtectHostname", "yes"),
    ("CapabilityBoundingSet", ""),
    ("AmbientCapabilities", ""),
    ("RestrictAddressFamilies", "AF_INET AF_INET6 AF_UNIX"),
    ("RestrictNamespaces", "yes"),
    ("RestrictRealtime", "yes"),
    ("RestrictSUIDSGID", "yes"),
    ("LockPersonality", "yes"),
    ("MemoryDenyWriteExecute", "yes"),
    ("SystemCallArchitectures", "native"),
    ("SystemCallFilter", "@system-service"),
    ("UMask", "0077"),
];

/// Where systemd puts a unit's `LoadCredential=` files.
const CREDENTIALS_DIR: &str = "${CREDENTIALS_DIRECTORY}";
/// Where compose mounts a service's `secrets:`.
const SECRETS_DIR: &str = "/run/secrets";
/// The port every container serves its metrics on.
const CONTAINER_METRICS: &str = "0.0.0.0:9100";

fn repo() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..")
}

// ---------------------------------------------------------------------------
// What the code says
// ---------------------------------------------------------------------------

/// What the manifests are checked against, read from the code and the
/// built binary.
struct Code {
    /// Every name `concord serve` takes: each NATS identity but the operator's.
    serveable: BTreeSet<String>,
    global_flags: BTreeSet<String>,
    serve_flags: BTreeSet<String>,
    env: BTreeSet<String>,
    /// The file under `--data` the gateway reads its HS256 secret from.
    jwt_secret_file: String,
    nats_min: (u32, u32, u32),
}

impl Code {
    fn read() -> Code {
        let serveable = Identity::ALL
            .into_iter()
            .filter(|i| *i != Identity::Operator)
            .map(Identity::name)
            .collect();
        let global_flags = flags_in(&help(&["--help"]));
        let serve_flags = flags_in(&help(&["serve", "--help"]));
        // What a process of the product reads: tests and the dev-only
        // crates read their own variables, which no manifest sets.
        let sources: Vec<(PathBuf, String)> = rust_sources(&repo().join("services"))
            .into_iter()
            .filter(|(path, _)| {
                let p = path.to_string_lossy();
                !(p.contains("/tests/")
                    || p.ends_with("tests.rs")
                    || p.contains("/testkit/")
                    || p.contains("/powercut/"))
            })
            .collect();
        let env = env_vars_read(&sources);
        let secret_rs = repo().join("services/concord/src/secret.rs");
        let jwt_secret_file = const_str(&[(secret_rs.clone(), read(&secret_rs))], "FILE")
            .into_iter()
            .next()
            .expect("secret.rs names the JWT secret's FILE");
        Code {
            serveable,
            global_flags,
            serve_flags,
            env,
            jwt_secret_file,
            nats_min: concord_bus::nats_server::NATS_SERVER_VERSION_MIN,
        }
    }

    /// The one directory `concord serve name --data data` writes, as the
    /// code computes it; none for the gateway.
    fn writes(&self, name: &str, data: &str) -> Option<String> {
        let data = Path::new(data);
        let dir = match Identity::parse(name)? {
            Identity::Service(concord_core::Service::Audit) => concord_audit::dir_in(data),
            Identity::Service(s) => concord_bus::service::Config::in_data_dir(data, s).log_dir,
            Identity::Projector => concord_projector::dir_in(data),
            Identity::Gateway | Identity::Operator | Identity::Site(_) => return None,
        };
        Some(dir.display().to_string())
    }
}

fn read(path: &Path) -> String {
    std::fs::read_to_string(path).unwrap_or_else(|e| panic!("reading {}: {e}", path.display()))
}

fn help(args: &[&str]) -> String {
    let out = Command::new(env!("CARGO_BIN_EXE_concord"))
        .args(args)
        .output()
        .expect("concord runs");
    assert!(out.status.success(), "concord {args:?} failed");
    String::from_utf8(out.stdout).expect("help is UTF-8")
}

/// Every `--long-flag` a help text names.
fn flags_in(help: &str) -> BTreeSet<String> {
    help.split(|c: char| !(c.is_ascii_alphanumeric() || c == '-'))
        .filter(|w| w.starts_with("--") && w.len() > 2)
        .map(str::to_owned)
        .collect()
}

fn rust_sources(dir: &Path) -> Vec<(PathBuf, String)> {
    let mut out = Vec::new();
    let mut stack = vec![dir.to_owned()];
    while let Some(d) = stack.pop() {
        for entry in std::fs::read_dir(&d).expect("services/ is readable") {
            let path = entry.expect("a directory entry").path();
            if path.is_dir() {
                if path.file_name().is_some_and(|n| n != "target") {
                    stack.push(path);
                }
            } else if path.extension().is_some_and(|e| e == "rs") {
                out.push((path.clone(), read(&path)));
            }
        }
    }
    out
}

/// The names the code reads with `env::var(..)` / `env::var_os(..)`: a
/// string literal, or a `const NAME: &str = "…"` named there (searched in
/// the same file first, then in every source).
fn env_vars_read(sources: &[(PathBuf, String)]) -> BTreeSet<String> {
    let mut names = BTreeSet::new();
    for (path, text) in sources {
        for call in ["env::var(", "env::var_os("] {
            for (at, _) in text.match_indices(call) {
                let arg = text[at + call.len()..].split(')').next().unwrap_or_default().trim();
                if let Some(lit) = arg.strip_prefix('"').and_then(|a| a.strip_suffix('"')) {
                    names.insert(lit.to_owned());
                    continue;
                }
                let ident = arg.rsplit("::").next().unwrap_or_default();
                let own = const_str(&[(path.clone(), text.clone())], ident);
                let found = if own.is_empty() { const_str(sources, ident) } else { own };
                assert!(
                    !found.is_empty(),
                    "{}: env::var({arg}) names no string constant",
                    path.display()
                );
                names.extend(found);
            }
        }
    }
    names
}

/// The values of `const <ident>: &str = "…";` in `sources`.
fn const_str(sources: &[(PathBuf, String)], ident: &str) -> Vec<String> {
    let pattern = format!("const {ident}: &str = \"");
    let mut out = Vec::new();
    for (_, text) in sources {
        for (at, p) in text.match_indices(&pattern) {
            out.extend(text[at + p.len()..].split('"').next().map(str::to_owned));
        }
    }
    out
}

// ---------------------------------------------------------------------------
// One `concord … serve NAME …` command line, from a unit or a container
// ---------------------------------------------------------------------------

#[derive(Debug, Default)]
struct Launch {
    globals: Vec<(String, Option<String>)>,
    name: String,
    flags: Vec<(String, Option<String>)>,
}

impl Launch {
    /// `args` after the program's name.
    fn parse(args: &[String]) -> Result<Launch, String> {
        let at = args
            .iter()
            .position(|a| a == "serve")
            .ok_or_else(|| format!("runs no `concord serve`: {args:?}"))?;
        let name = args.get(at + 1).cloned().ok_or("`serve` without a name")?;
        Ok(Launch {
            globals: flag_pairs(&args[..at])?,
            name,
            flags: flag_pairs(&args[at + 2..])?,
        })
    }

    fn flag(&self, f: &str) -> Option<&str> {
        self.flags.iter().find(|(k, _)| k == f).and_then(|(_, v)| v.as_deref())
    }

    fn global(&self, f: &str) -> Option<&str> {
        self.globals
            .iter()
            .find(|(k, _)| k == f)
            .and_then(|(_, v)| v.as_deref())
    }

    /// Flags the binary does not know.
    fn unknown_flags(&self, code: &Code) -> Vec<String> {
        let globals = self.globals.iter().filter(|(f, _)| !code.global_flags.contains(f));
        let serve = self.flags.iter().filter(|(f, _)| !code.serve_flags.contains(f));
        globals
            .map(|(f, _)| format!("`concord {f}` is not in `concord --help`"))
            .chain(serve.map(|(f, _)| format!("`concord serve {f}` is not in `concord serve --help`")))
            .collect()
    }
}

/// `--flag value`, `--flag=value` and `--switch` pairs.
fn flag_pairs(args: &[String]) -> Result<Vec<(String, Option<String>)>, String> {
    let mut out = Vec::new();
    let mut i = 0;
    while i < args.len() {
        let a = &args[i];
        if !a.starts_with("--") {
            return Err(format!("{a:?} is not a flag"));
        }
        if let Some((k, v)) = a.split_once('=') {
            out.push((k.to_owned(), Some(v.to_owned())));
        } else if args.get(i + 1).is_some_and(|v| !v.starts_with("--")) {
            out.push((a.clone(), args.get(i + 1).cloned()));
            i += 1;
        } else {
            out.push((a.clone(), None));
        }
        i += 1;
    }
    Ok(out)
}

// ---------------------------------------------------------------------------
// systemd units
// ---------------------------------------------------------------------------

/// A unit file: each section's `Key=value` lines in order (a key may
/// repeat), and the directives written commented out as alternatives
/// (`#ExecStart=…`), which are checked too so they stay true.
#[derive(Debug, Default)]
struct Unit {
    sections: BTreeMap<String, Vec<(String, String)>>,
    commented: Vec<(String, String)>,
}

impl Unit {
    fn parse(text: &str) -> Result<Unit, String> {
        let mut unit = Unit::default();
        let mut section = None;
        let mut joined = String::new();
        for raw in text.lines() {
            // A trailing backslash continues the line (systemd.syntax(7)).
            if let Some(head) = raw.strip_suffix('\\') {
                joined.push_str(head);
                joined.push(' ');
                continue;
            }
            joined.push_str(raw);
            let line = std::mem::take(&mut joined);
            let line = line.trim();
            if line.is_empty() {
                continue;
            }
            if let Some(c) = line.strip_prefix('#').or_else(|| line.strip_prefix(';')) {
                if let Some((k, v)) = c.split_once('=')
                    && ["ExecStart", "Environment", "LoadCredential"].contains(&k)
                {
                    unit.commented.push((k.to_owned(), v.to_owned()));
                }
                continue;
            }
            if let Some(name) = line.strip_prefix('[').and_then(|l| l.strip_suffix(']')) {
                section = Some(name.to_owned());
                unit.sections.entry(name.to_owned()).or_default();
                continue;
            }
            let Some((k, v)) = line.split_once('=') else {
                return Err(format!("not `Key=value`: {line:?}"));
            };
            let Some(s) = &section else {
                return Err(format!("{line:?} is outside a section"));
            };
            unit.sections
                .entry(s.clone())
                .or_default()
                .push((k.trim().to_owned(), v.trim().to_owned()));
        }
        Ok(unit)
    }

    fn all(&self, key: &str) -> Vec<&str> {
        self.sections
            .get("Service")
            .into_iter()
            .flatten()
            .filter(|(k, _)| k == key)
            .map(|(_, v)| v.as_str())
            .collect()
    }

    fn one(&self, key: &str) -> Option<&str> {
        self.all(key).last().copied()
    }

    fn commented(&self, key: &str) -> Vec<&str> {
        self.commented
            .iter()
            .filter(|(k, _)| k == key)
            .map(|(_, v)| v.as_str())
            .collect()
    }
}

/// The hardening every unit of `deploy/systemd/` has, Concord's or NATS'.
fn check_hardening(unit: &Unit) -> Vec<String> {
    let mut problems = Vec::new();
    for (key, want) in HARDENING {
        let values = unit.all(key);
        if !values.iter().any(|v| v == want) {
            problems.push(format!("{key}={want} is missing (found {values:?})"));
        }
    }
    match (unit.one("User"), unit.one("DynamicUser")) {
        (Some("root") | Some("0"), _) => problems.push("runs as root".to_owned()),
        (None, None | Some("no")) => problems.push("no User= nor DynamicUser=yes: it would run as root".to_owned()),
        _ => {}
    }
    problems
}

/// One `concord-NAME.service`.
fn check_unit(file: &str, text: &str, code: &Code) -> Vec<String> {
    let unit = match Unit::parse(text) {
        Ok(u) => u,
        Err(e) => return vec![e],
    };
    let mut problems = check_hardening(&unit);
    let Some(name) = file.strip_prefix("concord-").and_then(|f| f.strip_suffix(".service")) else {
        return vec!["not a concord-NAME.service".to_owned()];
    };
    if !code.serveable.contains(name) {
        problems.push(format!("`concord serve` runs no {name:?}"));
    }
    if unit.one("EnvironmentFile").is_some() {
        // The one secret a process takes besides its seed (the gateway's
        // JWT secret) comes as a credential, never through the environment.
        problems.push("EnvironmentFile=: secrets come with LoadCredential=".to_owned());
    }
    for env in unit.all("Environment").into_iter().chain(unit.commented("Environment")) {
        let key = env.split_once('=').map_or(env, |(k, _)| k);
        if !code.env.contains(key) {
            problems.push(format!("Environment={key}: the code reads no such variable"));
        }
    }
    let loaded = check_credentials(name, unit.all("LoadCredential"), code, &mut problems);
    check_credentials(name, unit.commented("LoadCredential"), code, &mut problems);

    let starts = unit.all("ExecStart");
    let [exec] = starts.as_slice() else {
        problems.push(format!("{} ExecStart= lines, not one", starts.len()));
        return problems;
    };
    let alternatives: Vec<Launch> = unit
        .commented("ExecStart")
        .iter()
        .filter_map(|e| match launch_of_exec(e) {
            Ok(l) => Some(l),
            Err(e) => {
                problems.push(e);
                None
            }
        })
        .collect();
    for alt in &alternatives {
        problems.extend(alt.unknown_flags(code).into_iter().map(|p| format!("#ExecStart: {p}")));
        if alt.name != name {
            problems.push(format!("#ExecStart serves {:?}, not {name:?}", alt.name));
        }
    }
    let launch = match launch_of_exec(exec) {
        Ok(l) => l,
        Err(e) => {
            problems.push(e);
            return problems;
        }
    };
    problems.extend(launch.unknown_flags(code));
    check_launch(name, &launch, &mut problems);
    match launch.flag("--creds") {
        Some(creds) => {
            let seed = format!("{CREDENTIALS_DIR}/{name}.nk");
            if creds != seed || !loaded.iter().any(|id| *id == format!("{name}.nk")) {
                problems.push(format!("--creds {creds}: not its own loaded seed {seed}"));
            }
        }
        None => problems.push("no --creds: it would connect anonymously".to_owned()),
    }
    if let Some(m) = launch.flag("--metrics")
        && !m.starts_with("127.0.0.1:")
    {
        problems.push(format!("--metrics {m}: not on loopback"));
    }
    let writable = unit.all("ReadWritePaths");
    match (
        code.writes(name, launch.flag("--data").unwrap_or("data")),
        launch.flag("--data"),
    ) {
        (Some(dir), Some(_)) => {
            if writable != [dir.as_str()] {
                problems.push(format!("ReadWritePaths={writable:?}: it writes {dir} and nothing else"));
            }
            let state = dir.strip_prefix("/var/lib/");
            if state.is_some() && unit.one("StateDirectory") != state {
                problems.push(format!("StateDirectory= is not {state:?}, the directory it writes"));
            }
        }
        (Some(_), None) => problems.push("no --data: it would write under its working directory".to_owned()),
        (None, data) => {
            if !writable.is_empty() {
                problems.push(format!("ReadWritePaths={writable:?}: the {name} writes nothing"));
            }
            if loaded.iter().any(|id| *id == code.jwt_secret_file) && data != Some(CREDENTIALS_DIR) {
                problems.push(format!(
                    "--data {data:?}: the gateway reads <data>/{} from its credentials",
                    code.jwt_secret_file
                ));
            }
        }
    }
    problems
}

/// `LoadCredential=ID:PATH` lines: a seed only the process's own, other
/// files only the gateway's token keys. Returns the IDs loaded.
fn check_credentials<'a>(name: &str, lines: Vec<&'a str>, code: &Code, problems: &mut Vec<String>) -> Vec<&'a str> {
    let mut ids = Vec::new();
    for line in lines {
        let Some((id, path)) = line.split_once(':') else {
            problems.push(format!("LoadCredential={line}: not ID:PATH"));
            continue;
        };
        ids.push(id);
        let file = Path::new(path).file_name().and_then(|f| f.to_str()).unwrap_or_default();
        let own = format!("{name}.nk");
        if id.ends_with(".nk") || file.ends_with(".nk") {
            if id != own || file != own {
                problems.push(format!(
                    "LoadCredential={line}: another identity's seed (its own is {own})"
                ));
            }
        } else if !(name == "gateway" && (id == code.jwt_secret_file || id.ends_with(".json"))) {
            problems.push(format!("LoadCredential={line}: {name} needs no such credential"));
        }
    }
    ids
}

fn launch_of_exec(exec: &str) -> Result<Launch, String> {
    let argv: Vec<String> = exec.split_whitespace().map(str::to_owned).collect();
    match argv.split_first() {
        Some((bin, rest)) if bin.ends_with("/concord") => Launch::parse(rest),
        _ => Err(format!("ExecStart={exec}: not the concord binary")),
    }
}

/// What a unit's and a container's command line must both say.
fn check_launch(name: &str, launch: &Launch, problems: &mut Vec<String>) {
    if launch.name != name {
        problems.push(format!("serves {:?}, not {name:?}", launch.name));
    }
    if launch.global("--log-format") != Some("json") {
        problems.push("no --log-format json: logs are collected as JSON".to_owned());
    }
    if launch.flag("--metrics").is_none() {
        problems.push("no --metrics ADDR".to_owned());
    }
}

/// The whole directory: a unit per serveable name, nothing unknown, every
/// metrics port its own.
fn check_units_dir(dir: &Path, code: &Code) -> Vec<String> {
    let mut problems = Vec::new();
    let mut files = BTreeSet::new();
    let mut ports: BTreeMap<String, String> = BTreeMap::new();
    for entry in std::fs::read_dir(dir).expect("deploy/systemd is readable") {
        let file = entry.expect("an entry").file_name().to_string_lossy().into_owned();
        let text = read(&dir.join(&file));
        files.insert(file.clone());
        let found = if file.starts_with("concord-") {
            let found = check_unit(&file, &text, code);
            if let Ok(unit) = Unit::parse(&text)
                && let Some(Ok(launch)) = unit.one("ExecStart").map(launch_of_exec)
                && let Some(m) = launch.flag("--metrics")
                && let Some(other) = ports.insert(m.to_owned(), file.clone())
            {
                problems.push(format!("{file}: --metrics {m} is {other}'s too"));
            }
            found
        } else if file.ends_with(".service") && OTHER_UNIT_FILES.contains(&file.as_str()) {
            match Unit::parse(&text) {
                Ok(u) => check_hardening(&u),
                Err(e) => vec![e],
            }
        } else if OTHER_UNIT_FILES.contains(&file.as_str()) {
            vec![]
        } else {
            vec!["unknown file: neither a concord-NAME.service nor one of OTHER_UNIT_FILES".to_owned()]
        };
        problems.extend(found.into_iter().map(|p| format!("{file}: {p}")));
    }
    for name in &code.serveable {
        if !files.contains(&format!("concord-{name}.service")) {
            problems.push(format!("no concord-{name}.service"));
        }
    }
    problems
}

// ---------------------------------------------------------------------------
// compose.yaml
// ---------------------------------------------------------------------------

fn strings(v: &Value) -> Vec<String> {
    match v {
        Value::Sequence(s) => s.iter().filter_map(|x| x.as_str().map(str::to_owned)).collect(),
        Value::String(s) => s.split_whitespace().map(str::to_owned).collect(),
        _ => vec![],
    }
}

/// A service's `environment:` (mapping or `KEY=value` list).
fn environment(svc: &Value) -> BTreeMap<String, String> {
    match &svc["environment"] {
        Value::Mapping(m) => m
            .iter()
            .filter_map(|(k, v)| {
                let v = match v {
                    Value::String(s) => s.clone(),
                    Value::Null => String::new(),
                    other => serde_norway::to_string(other).unwrap_or_default().trim().to_owned(),
                };
                Some((k.as_str()?.to_owned(), v))
            })
            .collect(),
        Value::Sequence(_) => strings(&svc["environment"])
            .into_iter()
            .map(|kv| match kv.split_once('=') {
                Some((k, v)) => (k.to_owned(), v.to_owned()),
                None => (kv, String::new()),
            })
            .collect(),
        _ => BTreeMap::new(),
    }
}

/// `name` or `{source: name, target: …}`: (source, file name in /run/secrets).
fn secret_refs(svc: &Value) -> Vec<(String, String)> {
    let Value::Sequence(list) = &svc["secrets"] else {
        return vec![];
    };
    list.iter()
        .filter_map(|s| match s {
            Value::String(n) => Some((n.clone(), n.clone())),
            Value::Mapping(_) => {
                let source = s["source"].as_str()?.to_owned();
                let target = s["target"].as_str().map_or(source.clone(), str::to_owned);
                Some((source, target))
            }
            _ => None,
        })
        .collect()
}

fn check_compose(text: &str, code: &Code) -> Vec<String> {
    let mut doc: Value = match serde_norway::from_str(text) {
        Ok(v) => v,
        Err(e) => return vec![format!("not YAML: {e}")],
    };
    if let Err(e) = doc.apply_merge() {
        return vec![format!("its `<<:` merges: {e}")];
    }
    let mut problems = Vec::new();
    let Some(services) = doc["services"].as_mapping() else {
        return vec!["no services".to_owned()];
    };
    let mut nats_nodes = BTreeSet::new();
    let mut served = BTreeSet::new();
    let mut volumes_used: BTreeMap<String, String> = BTreeMap::new();
    for (key, svc) in services {
        let key = key.as_str().unwrap_or_default().to_owned();
        let mut say = |p: String| problems.push(format!("{key}: {p}"));
        let hardened = svc["read_only"].as_bool() == Some(true)
            && strings(&svc["cap_drop"]) == ["ALL"]
            && strings(&svc["security_opt"]).contains(&"no-new-privileges:true".to_owned());
        if !hardened {
            say("not read_only, cap_drop [ALL] and no-new-privileges".to_owned());
        }
        let image = svc["image"].as_str().unwrap_or_default();
        if let Some(tag) = image.strip_prefix("nats:") {
            nats_nodes.insert(key.clone());
            let v: Vec<u32> = tag.split(['.', '-']).take(3).filter_map(|n| n.parse().ok()).collect();
            if v.len() < 3 || (v[0], v[1], v[2]) < code.nats_min {
                say(format!("nats:{tag} is not a release from {:?} on", code.nats_min));
            }
            continue;
        }
        let launch = match Launch::parse(&strings(&svc["command"])) {
            Ok(l) => l,
            Err(e) => {
                say(e);
                continue;
            }
        };
        let mut found = launch.unknown_flags(code);
        check_launch(&key, &launch, &mut found);
        if !code.serveable.contains(&key) {
            found.push("`concord serve` runs no such process".to_owned());
        }
        // A container counts as serving its process only under that name.
        if launch.name == key && !served.insert(launch.name.clone()) {
            found.push(format!("a second container serving {}", launch.name));
        }
        if launch.flag("--metrics") != Some(CONTAINER_METRICS) {
            found.push(format!("--metrics is not {CONTAINER_METRICS}"));
        }
        for var in environment(svc).keys() {
            if !code.env.contains(var) {
                found.push(format!("environment {var}: the code reads no such variable"));
            }
        }
        // Secrets: its own seed, and the gateway its token secret.
        let refs = secret_refs(svc);
        let own = format!("{key}.nk");
        for (source, target) in &refs {
            let file = doc["secrets"][source.as_str()]["file"].as_str().unwrap_or_default();
            let base = Path::new(file).file_name().and_then(|f| f.to_str()).unwrap_or_default();
            if base.ends_with(".nk") || target.ends_with(".nk") {
                if base != own || target != &own {
                    found.push(format!(
                        "secret {source} ({file}): another identity's seed (its own is {own})"
                    ));
                }
            } else if !(key == "gateway" && target == &code.jwt_secret_file && base == code.jwt_secret_file) {
                found.push(format!("secret {source} ({file}): {key} needs no such secret"));
            }
        }
        let seed = format!("{SECRETS_DIR}/{own}");
        if launch.flag("--creds") != Some(seed.as_str()) || !refs.iter().any(|(_, t)| *t == own) {
            found.push(format!("--creds is not its own seed {seed}"));
        }
        let mounts: Vec<(String, String)> = strings(&svc["volumes"])
            .iter()
            .filter_map(|v| {
                v.split_once(':')
                    .map(|(a, b)| (a.to_owned(), b.split(':').next().unwrap_or(b).to_owned()))
            })
            .collect();
        match (
            code.writes(&key, launch.flag("--data").unwrap_or("data")),
            launch.flag("--data"),
        ) {
            (Some(dir), Some(_)) => {
                let targets: Vec<&str> = mounts.iter().map(|(_, t)| t.as_str()).collect();
                if targets != [dir.as_str()] {
                    found.push(format!("volumes at {targets:?}: it writes {dir} and nothing else"));
                }
                for (vol, _) in &mounts {
                    if doc["volumes"].get(vol.as_str()).is_none() {
                        found.push(format!("volume {vol} is not a named volume of the file"));
                    }
                    if let Some(other) = volumes_used.insert(vol.clone(), key.clone()) {
                        found.push(format!("volume {vol} is {other}'s too"));
                    }
                }
            }
            (Some(_), None) => found.push("no --data".to_owned()),
            (None, data) => {
                if !mounts.is_empty() {
                    found.push(format!("volumes {mounts:?}: the {key} writes nothing"));
                }
                if refs.iter().any(|(_, t)| *t == code.jwt_secret_file) && data != Some(SECRETS_DIR) {
                    found.push(format!(
                        "--data {data:?}: it reads <data>/{} from {SECRETS_DIR}",
                        code.jwt_secret_file
                    ));
                }
            }
        }
        if key == "gateway" {
            let http = launch.flag("--http").unwrap_or("127.0.0.1:8080");
            let port = http.rsplit(':').next().unwrap_or_default();
            let published = strings(&svc["ports"]);
            if !published.iter().any(|p| p.rsplit(':').next() == Some(port)) {
                found.push(format!(
                    "ports {published:?}: none publishes --http {http}'s port {port}"
                ));
            }
            if http.starts_with("127.") {
                found.push(format!("--http {http}: loopback inside a container answers nobody"));
            }
        } else if !svc["ports"].is_null() {
            found.push("publishes ports: only the gateway is reached from outside".to_owned());
        }
        problems.extend(found.into_iter().map(|p| format!("{key}: {p}")));
    }
    for name in &code.serveable {
        if !served.contains(name) {
            problems.push(format!("no container serves {name}"));
        }
    }
    if nats_nodes.len() != 3 {
        problems.push(format!("NATS nodes {nats_nodes:?}: a cluster of three"));
    }
    let want: BTreeSet<String> = nats_nodes.iter().map(|n| format!("nats://{n}:4222")).collect();
    for (key, svc) in services {
        let Some(url) = environment(svc).get("NATS_URL").cloned() else {
            if !svc["image"].as_str().unwrap_or_default().starts_with("nats:") {
                problems.push(format!("{}: no NATS_URL", key.as_str().unwrap_or_default()));
            }
            continue;
        };
        let listed: BTreeSet<String> = url.split(',').map(str::to_owned).collect();
        if listed != want {
            problems.push(format!(
                "{}: NATS_URL {url} does not list every node {want:?}",
                key.as_str().unwrap_or_default()
            ));
        }
    }
    problems
}

// ---------------------------------------------------------------------------
// The tests
// ---------------------------------------------------------------------------

#[test]
fn every_unit_matches_the_code() {
    let code = Code::read();
    let problems = check_units_dir(&repo().join("deploy/systemd"), &code);
    assert!(problems.is_empty(), "deploy/systemd:\n{}", problems.join("\n"));
}

#[test]
fn the_compose_file_matches_the_code() {
    let code = Code::read();
    let problems = check_compose(&read(&repo().join("deploy/compose.yaml")), &code);
    assert!(problems.is_empty(), "deploy/compose.yaml:\n{}", problems.join("\n"));
}

#[test]
fn the_code_is_read_as_the_checks_assume() {
    let code = Code::read();
    let want: BTreeSet<String> = [
        "operations",
        "intel",
        "crisis",
        "deployments",
        "projector",
        "audit",
        "gateway",
    ]
    .map(str::to_owned)
    .into();
    assert_eq!(code.serveable, want);
    for var in ["NATS_URL", "CONCORD_NATS_SEED", "CONCORD_NATS_CA", "CONCORD_JWT_SECRET"] {
        assert!(code.env.contains(var), "{var} not found among {:?}", code.env);
    }
    for flag in ["--data", "--http", "--creds", "--nats-ca", "--jwks"] {
        assert!(code.serve_flags.contains(flag), "{flag} not in {:?}", code.serve_flags);
    }
    assert_eq!(code.jwt_secret_file, "jwt-secret");
    assert_eq!(code.writes("intel", "/d").as_deref(), Some("/d/intel"));
    assert_eq!(code.writes("projector", "/d").as_deref(), Some("/d/projector"));
    assert_eq!(code.writes("gateway", "/d"), None);
}

/// A copy of `deploy/systemd` with `change` applied must be refused with a
/// problem containing `expect`.
fn broken_units(code: &Code, change: impl FnOnce(&Path), expect: &str) {
    let tmp = tempfile::tempdir().expect("temp dir");
    for entry in std::fs::read_dir(repo().join("deploy/systemd")).expect("deploy/systemd") {
        let from = entry.expect("entry").path();
        std::fs::copy(&from, tmp.path().join(from.file_name().expect("a name"))).expect("copy");
    }
    assert!(
        check_units_dir(tmp.path(), code).is_empty(),
        "the copy is fine before the change"
    );
    change(tmp.path());
    let problems = check_units_dir(tmp.path(), code);
    assert!(
        problems.iter().any(|p| p.contains(expect)),
        "expected a problem with {expect:?}, got {problems:#?}"
    );
}

fn edit(dir: &Path, file: &str, from: &str, to: &str) {
    let path = dir.join(file);
    let text = read(&path);
    assert!(text.contains(from), "{file} has no {from:?}");
    std::fs::write(&path, text.replacen(from, to, 1)).expect("write");
}

#[test]
fn a_broken_unit_is_refused() {
    let code = Code::read();
    let ops = "concord-operations.service";
    let seed = "LoadCredential=operations.nk:/var/lib/concord/nats/identities/operations.nk";
    broken_units(
        &code,
        |d| {
            edit(
                d,
                ops,
                seed,
                "LoadCredential=operations.nk:/var/lib/concord/nats/identities/intel.nk",
            )
        },
        "another identity's seed",
    );
    broken_units(
        &code,
        |d| {
            edit(
                d,
                ops,
                seed,
                &format!("{seed}\nLoadCredential=gateway.nk:/x/gateway.nk"),
            )
        },
        "another identity's seed",
    );
    broken_units(
        &code,
        |d| {
            edit(
                d,
                ops,
                "--data /var/lib/concord",
                "--data /var/lib/concord --frobnicate 3",
            )
        },
        "--frobnicate",
    );
    broken_units(
        &code,
        |d| edit(d, ops, "serve operations", "--verbose serve operations"),
        "concord --verbose",
    );
    broken_units(
        &code,
        |d| edit(d, ops, "NoNewPrivileges=yes", "NoNewPrivileges=no"),
        "NoNewPrivileges=yes is missing",
    );
    broken_units(
        &code,
        |d| edit(d, "nats-server.service", "ProtectSystem=strict\n", ""),
        "ProtectSystem=strict",
    );
    broken_units(
        &code,
        |d| {
            edit(
                d,
                ops,
                "CapabilityBoundingSet=\n",
                "CapabilityBoundingSet=CAP_NET_BIND_SERVICE\n",
            )
        },
        "CapabilityBoundingSet",
    );
    broken_units(&code, |d| edit(d, ops, "User=concord\n", ""), "run as root");
    broken_units(
        &code,
        |d| {
            edit(
                d,
                ops,
                "ReadWritePaths=/var/lib/concord/operations",
                "ReadWritePaths=/var/lib/concord",
            )
        },
        "it writes /var/lib/concord/operations and nothing else",
    );
    broken_units(
        &code,
        |d| edit(d, ops, "--data /var/lib/concord ", "--data /srv/concord "),
        "nothing else",
    );
    broken_units(
        &code,
        |d| edit(d, ops, "Environment=NATS_URL", "Environment=CONCORD_NATS_URL"),
        "CONCORD_NATS_URL",
    );
    broken_units(
        &code,
        |d| edit(d, ops, "#Environment=CONCORD_NATS_CA", "#Environment=CONCORD_CA"),
        "CONCORD_CA",
    );
    broken_units(
        &code,
        |d| edit(d, ops, "--log-format json", "--log-format text"),
        "--log-format json",
    );
    broken_units(
        &code,
        |d| edit(d, "concord-intel.service", "127.0.0.1:9102", "127.0.0.1:9101"),
        "9101 is",
    );
    broken_units(
        &code,
        |d| edit(d, "concord-gateway.service", "--data ${CREDENTIALS_DIRECTORY} ", ""),
        "jwt-secret from its credentials",
    );
    broken_units(
        &code,
        |d| edit(d, "concord-gateway.service", "--token-issuer", "--token-issuer-url"),
        "--token-issuer-url",
    );
    broken_units(
        &code,
        |d| std::fs::remove_file(d.join("concord-audit.service")).expect("rm"),
        "no concord-audit.service",
    );
    broken_units(
        &code,
        |d| {
            std::fs::copy(d.join(ops), d.join("concord-billing.service"))
                .map(drop)
                .expect("cp")
        },
        "runs no \"billing\"",
    );
    broken_units(
        &code,
        |d| std::fs::write(d.join("notes.txt"), "x").expect("write"),
        "unknown file",
    );
}

#[test]
fn a_broken_compose_file_is_refused() {
    let code = Code::read();
    let good = read(&repo().join("deploy/compose.yaml"));
    assert!(check_compose(&good, &code).is_empty());
    let cases = [
        (
            "secrets: [intel.nk]",
            "secrets: [operations.nk]",
            "another identity's seed",
        ),
        (
            "secrets: [gateway.nk, jwt-secret]",
            "secrets: [gateway.nk, jwt-secret, audit.nk]",
            "another identity's seed",
        ),
        (
            "secrets: [crisis.nk]",
            "secrets: [crisis.nk, jwt-secret]",
            "crisis needs no such secret",
        ),
        (
            "--creds, /run/secrets/audit.nk",
            "--creds, /run/secrets/gateway.nk",
            "not its own seed",
        ),
        ("127.0.0.1:8080:8080", "127.0.0.1:8080:8081", "none publishes --http"),
        (
            "--http, \"0.0.0.0:8080\"",
            "--http, \"0.0.0.0:9090\"",
            "none publishes --http",
        ),
        (",nats://nats-c:4222", "", "does not list every node"),
        ("NATS_URL:", "CONCORD_NATS_URL:", "CONCORD_NATS_URL"),
        (
            "--data, /var/lib/concord,\n              --creds, /run/secrets/intel.nk",
            "--data, /srv,\n              --creds, /run/secrets/intel.nk",
            "it writes /srv/intel",
        ),
        (
            "- projector-data:/var/lib/concord/projector",
            "- audit-data:/var/lib/concord/projector",
            "audit-data is projector's too",
        ),
        (
            "serve, deployments,",
            "serve, deployments, --replicas, \"2\",",
            "--replicas",
        ),
        (
            "--log-format, json, serve, crisis",
            "--log-format, text, serve, crisis",
            "--log-format json",
        ),
        (
            "read_only: true\n  cap_drop",
            "read_only: false\n  cap_drop",
            "not read_only",
        ),
        ("image: nats:2.12.6", "image: nats:2.10.0", "nats:2.10.0"),
        (
            "--data, /run/secrets,",
            "--data, /var/lib/concord,",
            "reads <data>/jwt-secret",
        ),
    ];
    for (from, to, expect) in cases {
        assert!(good.contains(from), "compose.yaml has no {from:?}");
        let problems = check_compose(&good.replacen(from, to, 1), &code);
        assert!(
            problems.iter().any(|p| p.contains(expect)),
            "{from:?} → {to:?}: expected {expect:?}, got {problems:#?}"
        );
    }
    // A service removed, and one that is no Concord process.
    let without_audit = good.replacen("  audit:\n", "  audit-old:\n", 1);
    let problems = check_compose(&without_audit, &code);
    assert!(
        problems.iter().any(|p| p.contains("no container serves audit")),
        "{problems:#?}"
    );
    assert!(
        problems
            .iter()
            .any(|p| p.contains("audit-old: `concord serve` runs no such process")),
        "{problems:#?}"
    );
}

// ---------------------------------------------------------------------------
// docs/limits.md
// ---------------------------------------------------------------------------

/// Every constant docs/limits.md may name, with its value (durations in
/// seconds).
fn limits() -> BTreeMap<&'static str, u64> {
    use concord_contracts::{crisis, deployments, intel, operations};
    let n = |v: usize| v as u64;
    BTreeMap::from([
        ("concord_gateway::BODY_BYTES_MAX", n(concord_gateway::BODY_BYTES_MAX)),
        ("concord_gateway::HEADERS_MAX", n(concord_gateway::HEADERS_MAX)),
        (
            "concord_gateway::HEADER_READ_TIMEOUT",
            concord_gateway::HEADER_READ_TIMEOUT.as_secs(),
        ),
        (
            "concord_gateway::REQUEST_TIMEOUT_TOTAL",
            concord_gateway::REQUEST_TIMEOUT_TOTAL.as_secs(),
        ),
        (
            "concord_gateway::call::REQUEST_TIMEOUT",
            concord_gateway::call::REQUEST_TIMEOUT.as_secs(),
        ),
        ("concord_gateway::CONNECTIONS_MAX", n(concord_gateway::CONNECTIONS_MAX)),
        (
            "concord_core::auth::TOKEN_BYTES_MAX",
            n(concord_core::auth::TOKEN_BYTES_MAX),
        ),
        (
            "concord_core::auth::SUB_BYTES_MAX",
            n(concord_core::auth::SUB_BYTES_MAX),
        ),
        (
            "concord_gateway::call::KEY_BYTES_MAX",
            n(concord_gateway::call::KEY_BYTES_MAX),
        ),
        ("concord_core::chain::INTEGER_MAX", concord_core::chain::INTEGER_MAX),
        ("concord_gateway::views::PAGE_MAX", n(concord_gateway::views::PAGE_MAX)),
        ("concord_projector::api::PAGE_MAX", n(concord_projector::api::PAGE_MAX)),
        ("concord_audit::PAGE_MAX", n(concord_audit::PAGE_MAX)),
        (
            "concord_gateway::views::QUERY_CHARS_MAX",
            n(concord_gateway::views::QUERY_CHARS_MAX),
        ),
        (
            "concord_projector::api::QUERY_CHARS_MAX",
            n(concord_projector::api::QUERY_CHARS_MAX),
        ),
        (
            "concord_gateway::views::NOTE_CHARS_MAX",
            n(concord_gateway::views::NOTE_CHARS_MAX),
        ),
        (
            "concord_projector::WAIT_FOR_MAX",
            concord_projector::WAIT_FOR_MAX.as_secs(),
        ),
        ("concord_audit::WAIT_FOR_MAX", concord_audit::WAIT_FOR_MAX.as_secs()),
        (
            "concord_gateway::sse::PER_TOKEN_MAX",
            n(concord_gateway::sse::PER_TOKEN_MAX),
        ),
        (
            "concord_gateway::access::ANSWER_BYTES_MAX",
            n(concord_gateway::access::ANSWER_BYTES_MAX),
        ),
        (
            "concord_bus::runtime::REQUESTS_IN_FLIGHT_MAX",
            n(concord_bus::runtime::REQUESTS_IN_FLIGHT_MAX),
        ),
        (
            "concord_bus::schema::VIOLATIONS_MAX",
            n(concord_bus::schema::VIOLATIONS_MAX),
        ),
        (
            "concord_contracts::operations::TITLE_CHARS_MAX",
            n(operations::TITLE_CHARS_MAX),
        ),
        (
            "concord_contracts::operations::OBJECTIVE_CHARS_MAX",
            n(operations::OBJECTIVE_CHARS_MAX),
        ),
        (
            "concord_contracts::operations::DETAILS_CHARS_MAX",
            n(operations::DETAILS_CHARS_MAX),
        ),
        (
            "concord_contracts::operations::NOTE_CHARS_MAX",
            n(operations::NOTE_CHARS_MAX),
        ),
        (
            "concord_contracts::operations::OUTCOME_CHARS_MAX",
            n(operations::OUTCOME_CHARS_MAX),
        ),
        (
            "concord_contracts::operations::PARTICIPANTS_MAX",
            n(operations::PARTICIPANTS_MAX),
        ),
        ("concord_contracts::operations::TASKS_MAX", n(operations::TASKS_MAX)),
        ("concord_contracts::intel::REASON_CHARS_MAX", n(intel::REASON_CHARS_MAX)),
        (
            "concord_contracts::intel::DESCRIPTION_CHARS_MAX",
            n(intel::DESCRIPTION_CHARS_MAX),
        ),
        ("concord_contracts::intel::NAME_CHARS_MAX", n(intel::NAME_CHARS_MAX)),
        (
            "concord_contracts::intel::lead::SUMMARY_CHARS_MAX",
            n(intel::lead::SUMMARY_CHARS_MAX),
        ),
        (
            "concord_contracts::intel::lead::DETAILS_CHARS_MAX",
            n(intel::lead::DETAILS_CHARS_MAX),
        ),
        (
            "concord_contracts::intel::lead::RESTRICTED_TO_MAX",
            n(intel::lead::RESTRICTED_TO_MAX),
        ),
        (
            "concord_contracts::intel::lead::AMENDMENTS_MAX",
            n(intel::lead::AMENDMENTS_MAX),
        ),
        (
            "concord_contracts::intel::notice::OFFENCE_CHARS_MAX",
            n(intel::notice::OFFENCE_CHARS_MAX),
        ),
        (
            "concord_contracts::intel::notice::WARRANT_CHARS_MAX",
            n(intel::notice::WARRANT_CHARS_MAX),
        ),
        (
            "concord_contracts::intel::notice::RECIPIENTS_MAX",
            n(intel::notice::RECIPIENTS_MAX),
        ),
        ("concord_contracts::crisis::TITLE_CHARS_MAX", n(crisis::TITLE_CHARS_MAX)),
        (
            "concord_contracts::crisis::SITREP_TEXT_CHARS_MAX",
            n(crisis::SITREP_TEXT_CHARS_MAX),
        ),
        (
            "concord_contracts::crisis::DETAILS_CHARS_MAX",
            n(crisis::DETAILS_CHARS_MAX),
        ),
        (
            "concord_contracts::crisis::REASON_CHARS_MAX",
            n(crisis::REASON_CHARS_MAX),
        ),
        (
            "concord_contracts::crisis::SUMMARY_CHARS_MAX",
            n(crisis::SUMMARY_CHARS_MAX),
        ),
        (
            "concord_contracts::crisis::SEVERITY_MIN",
            u64::from(crisis::SEVERITY_MIN),
        ),
        (
            "concord_contracts::crisis::SEVERITY_MAX",
            u64::from(crisis::SEVERITY_MAX),
        ),
        ("concord_contracts::crisis::SITREPS_MAX", n(crisis::SITREPS_MAX)),
        (
            "concord_contracts::crisis::ASSISTANCE_REQUESTS_MAX",
            n(crisis::ASSISTANCE_REQUESTS_MAX),
        ),
        (
            "concord_contracts::crisis::SEVERITY_CHANGES_MAX",
            n(crisis::SEVERITY_CHANGES_MAX),
        ),
        (
            "concord_contracts::deployments::REASON_CHARS_MAX",
            n(deployments::REASON_CHARS_MAX),
        ),
        (
            "concord_contracts::deployments::REPORT_CHARS_MAX",
            n(deployments::REPORT_CHARS_MAX),
        ),
        (
            "concord_contracts::deployments::NAME_CHARS_MAX",
            n(deployments::NAME_CHARS_MAX),
        ),
        (
            "concord_contracts::deployments::MEMBER_ROLE_CHARS_MAX",
            n(deployments::MEMBER_ROLE_CHARS_MAX),
        ),
        (
            "concord_contracts::deployments::MEMBERS_MAX",
            n(deployments::MEMBERS_MAX),
        ),
    ])
}

/// `pub const *_MAX|*_MIN` of these crates that no client reaches, so
/// docs/limits.md need not list them.
const NOT_A_CLIENT_S_LIMIT: &[(&str, &str)] = &[
    (
        "concord_contracts::audit::ITEMS_MAX",
        "the gateway's record of a read, never a client's input",
    ),
    (
        "concord_contracts::audit::URI_PART_BYTES_MAX",
        "the gateway's record of a read, never a client's input",
    ),
    (
        "concord_core::auth::SECRET_BYTES_MIN",
        "the operator's JWT secret, checked at start",
    ),
    ("concord_projector::BATCH_MAX", "how the projector groups its writes"),
];

/// The crates whose public limits docs/limits.md must cover, by directory.
const LIMIT_CRATES: [(&str, &str); 5] = [
    ("services/contracts", "concord_contracts"),
    ("services/kernel/core", "concord_core"),
    ("services/gateway", "concord_gateway"),
    ("services/projector", "concord_projector"),
    ("services/audit", "concord_audit"),
];

/// What docs/limits.md says wrong: a constant it names that is not known
/// here, a number that is not the constant's, a public limit it misses.
fn check_limits_doc(doc: &str, known: &BTreeMap<&str, u64>, public: &[String]) -> Vec<String> {
    let mut problems = Vec::new();
    let mut named = BTreeSet::new();
    for line in doc.lines() {
        for (at, _) in line.match_indices("`concord_") {
            let path: String = line[at + 1..].chars().take_while(|c| *c != '`').collect();
            named.insert(path.clone());
            let Some(&value) = known.get(path.as_str()) else {
                problems.push(format!(
                    "{path}: no such limit in the test's table (a typo, or a constant gone)"
                ));
                continue;
            };
            // A table row: the value is the second cell; in prose, "(N)"
            // right after the name.
            let said = if line.starts_with('|') {
                line.split('|').nth(2).and_then(first_number)
            } else {
                line[at + path.len() + 2..].strip_prefix(" (").and_then(first_number)
            };
            match said {
                Some(n) if n == value => {}
                Some(n) => problems.push(format!("{path} is {value}, the page says {n}")),
                None => problems.push(format!("{path}: no number beside it: {line:?}")),
            }
        }
    }
    for path in public {
        if !named.contains(path) && !NOT_A_CLIENT_S_LIMIT.iter().any(|(p, _)| p == path) {
            problems.push(format!("{path} is not in docs/limits.md"));
        }
    }
    problems
}

fn first_number(text: &str) -> Option<u64> {
    let digits: String = text
        .chars()
        .skip_while(|c| !c.is_ascii_digit())
        .take_while(char::is_ascii_digit)
        .collect();
    digits.parse().ok()
}

/// `crate::module::NAME` of every `pub const NAME` ending in `_MAX` or
/// `_MIN` in [`LIMIT_CRATES`] (tests left out).
fn public_limits() -> Vec<String> {
    let mut out = Vec::new();
    for (dir, krate) in LIMIT_CRATES {
        let src = repo().join(dir).join("src");
        for (path, text) in rust_sources(&src) {
            let rel = path.strip_prefix(&src).expect("under src").with_extension("");
            let parts: Vec<String> = rel.iter().map(|p| p.to_string_lossy().into_owned()).collect();
            if parts.iter().any(|p| p == "tests") {
                continue;
            }
            let module: Vec<&str> = parts
                .iter()
                .map(String::as_str)
                .filter(|p| *p != "lib" && *p != "mod")
                .collect();
            for line in text.lines() {
                let Some(rest) = line.strip_prefix("pub const ") else {
                    continue;
                };
                let name: String = rest
                    .chars()
                    .take_while(|c| c.is_ascii_alphanumeric() || *c == '_')
                    .collect();
                if name.ends_with("_MAX") || name.ends_with("_MIN") {
                    out.push(
                        [krate]
                            .into_iter()
                            .chain(module.iter().copied())
                            .chain([name.as_str()])
                            .collect::<Vec<_>>()
                            .join("::"),
                    );
                }
            }
        }
    }
    out
}

#[test]
fn every_documented_limit_is_the_code_s() {
    let doc = read(&repo().join("docs/limits.md"));
    let public = public_limits();
    assert!(
        public.contains(&"concord_contracts::intel::lead::AMENDMENTS_MAX".to_owned()),
        "{public:?}"
    );
    assert!(
        public.contains(&"concord_gateway::BODY_BYTES_MAX".to_owned()),
        "{public:?}"
    );
    let problems = check_limits_doc(&doc, &limits(), &public);
    assert!(problems.is_empty(), "docs/limits.md:\n{}", problems.join("\n"));
}

#[test]
fn a_wrong_limit_in_the_doc_is_refused() {
    let doc = read(&repo().join("docs/limits.md"));
    let (known, public) = (limits(), public_limits());
    let cases = [
        (
            "| tasks | 1000 |",
            "| tasks | 100 |",
            "TASKS_MAX is 1000, the page says 100",
        ),
        (
            "`concord_bus::schema::VIOLATIONS_MAX` (5)",
            "`concord_bus::schema::VIOLATIONS_MAX` (6)",
            "the page says 6",
        ),
        (
            "`concord_gateway::BODY_BYTES_MAX`",
            "`concord_gateway::BODY_BYTE_MAX`",
            "BODY_BYTE_MAX: no such limit",
        ),
        (
            "`concord_contracts::crisis::SITREPS_MAX`",
            "`the sitreps' limit`",
            "SITREPS_MAX is not in docs/limits.md",
        ),
    ];
    for (from, to, expect) in cases {
        assert!(doc.contains(from), "the page has no {from:?}");
        let problems = check_limits_doc(&doc.replacen(from, to, 1), &known, &public);
        assert!(
            problems.iter().any(|p| p.contains(expect)),
            "{from:?}: expected {expect:?}, got {problems:#?}"
        );
    }
}
