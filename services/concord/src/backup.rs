//! `concord log backup` and `concord log restore`.
//!
//! A backup is a directory of two files: `events.jsonl`, every event of the
//! log from seq 1 to a head, one per line exactly as stored (what `concord
//! log export` prints), and `backup.json`, which names the service, the
//! log's identity and that head. Rationale: the events are the log; the
//! stream index and the command records are derived from them, so this
//! is the smallest copy that rebuilds it, and anyone can re-verify it with
//! `schemas/verify_export.py`.
//!
//! Consistent without stopping anything: a log is append-only, so the
//! events up to a head taken once never change; the backup reads exactly
//! those. It reads the log from disk (a private copy) when no service holds
//! it, and otherwise from the running service over `concord.log.<svc>.read`
//! (which only ever answers durable events), checking that the log
//! answering is the one whose directory was named (its identity, from the
//! directory's `head.json`). Either way every event's chain link is checked
//! as it is written and the last hash must be the head's: a backup that
//! exists is verified. It is written to a sibling directory and renamed
//! into place once complete and fsynced.

use std::fs::File;
use std::io::{BufRead, BufReader, BufWriter, Write};
use std::path::{Path, PathBuf};
use std::process::ExitCode;

use anyhow::{Context, anyhow, bail};
use concord_bus::credentials::{self, Seed};
use concord_bus::permissions::Identity;
use concord_bus::tls;
use concord_core::Service;
use concord_core::chain::ChainVerifier;
use concord_log::{Head, Log, LogError, LogIdentity, MarkCheck, READ_BATCH_EVENTS_MAX};
use serde::{Deserialize, Serialize};

const MANIFEST: &str = "backup.json";
const EVENTS: &str = "events.jsonl";
const FORMAT: u32 = 1;

/// What `backup.json` holds.
#[derive(Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct Manifest {
    format: u32,
    service: String,
    identity: LogIdentity,
    /// The last event of `events.jsonl`: the restored log's head and
    /// high-water mark.
    head: Head,
    taken_at: String,
    /// `disk` or `nats`: where the events were read.
    read_from: String,
}

/// Where a backup writes while it runs.
struct Staging {
    dir: PathBuf,
    verifier: ChainVerifier,
    events: BufWriter<File>,
}

impl Staging {
    fn new(out: &Path) -> anyhow::Result<Staging> {
        if out.exists() {
            bail!("{} exists: a backup goes to a new directory", out.display());
        }
        let name = out
            .file_name()
            .ok_or_else(|| anyhow!("{} names no directory", out.display()))?;
        let dir = out.with_file_name(format!(".{}.partial-{}", name.to_string_lossy(), std::process::id()));
        std::fs::create_dir_all(&dir).with_context(|| format!("creating {}", dir.display()))?;
        let events = File::create(dir.join(EVENTS)).with_context(|| format!("creating {}", dir.display()))?;
        Ok(Staging {
            dir,
            verifier: ChainVerifier::new(),
            events: BufWriter::new(events),
        })
    }

    fn push(&mut self, seq: u64, bytes: &[u8]) -> anyhow::Result<()> {
        self.verifier.check(Some(seq), bytes).map_err(|bad| {
            anyhow!(
                "not backed up: the log's chain breaks at seq {}: {}",
                bad.seq,
                bad.reason
            )
        })?;
        self.events.write_all(bytes).context("writing the backup")?;
        self.events.write_all(b"\n").context("writing the backup")?;
        Ok(())
    }

    fn finish(mut self, out: &Path, manifest: &Manifest) -> anyhow::Result<()> {
        if self.verifier.verified() != manifest.head.seq || self.verifier.head_hash() != manifest.head.hash {
            bail!(
                "not backed up: read to seq {} hash {}, not to the head {}:{}",
                self.verifier.verified(),
                self.verifier.head_hash(),
                manifest.head.seq,
                manifest.head.hash
            );
        }
        self.events.flush().context("writing the backup")?;
        self.events.get_ref().sync_all().context("syncing the backup")?;
        let mut m = File::create(self.dir.join(MANIFEST)).context("writing the manifest")?;
        m.write_all(&serde_json::to_vec_pretty(manifest)?)
            .context("writing the manifest")?;
        m.sync_all().context("syncing the manifest")?;
        File::open(&self.dir)
            .and_then(|d| d.sync_all())
            .context("syncing the backup")?;
        std::fs::rename(&self.dir, out).with_context(|| format!("renaming the backup to {}", out.display()))?;
        if let Some(parent) = out.parent().filter(|p| !p.as_os_str().is_empty()) {
            File::open(parent)
                .and_then(|d| d.sync_all())
                .context("syncing the backup's directory")?;
        }
        Ok(())
    }
}

impl Drop for Staging {
    fn drop(&mut self) {
        // Renamed away on success; anything left is a failed backup's.
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

pub fn backup(
    dir: &Path,
    out: &Path,
    nats: Option<String>,
    creds: Option<&Path>,
    nats_ca: Option<&Path>,
) -> anyhow::Result<ExitCode> {
    let mut staging = Staging::new(out)?;
    let manifest = match Log::open_read_only(dir) {
        Ok(log) => from_disk(&log, &mut staging)?,
        Err(LogError::InUse { .. }) => {
            let url = nats
                .or_else(|| std::env::var("NATS_URL").ok().filter(|s| !s.trim().is_empty()))
                .unwrap_or_else(|| "nats://127.0.0.1:4222".to_owned());
            // The operator's identity reads a running service's log; under
            // `concord up` its seed is beside the log directory.
            let beside = dir
                .parent()
                .map(|data| data.join("nats").join(credentials::SEEDS_DIR).join("operator.nk"));
            let seed = crate::system::nats_seed(creds, beside.as_deref())?;
            // Likewise the CA of `concord up --tls`, when the URL says TLS
            // and no CA was named.
            let ca = crate::system::nats_ca(nats_ca).or_else(|| {
                dir.parent()
                    .map(|data| data.join("nats").join(tls::TLS_DIR).join(tls::CA_CERT))
                    .filter(|ca| url.starts_with("tls://") && ca.is_file())
            });
            from_service(dir, &url, seed.as_ref(), ca.as_deref(), &mut staging)?
        }
        Err(e) => return Err(e.into()),
    };
    staging.finish(out, &manifest)?;
    println!(
        "backed up the {} log {}: {} events, head seq {} hash {}, read from {}, in {}",
        manifest.service,
        manifest.identity,
        manifest.head.seq,
        manifest.head.seq,
        manifest.head.hash,
        manifest.read_from,
        out.display()
    );
    Ok(ExitCode::SUCCESS)
}

fn manifest(service: Service, identity: LogIdentity, head: Head, read_from: &str) -> Manifest {
    Manifest {
        format: FORMAT,
        service: service.to_string(),
        identity,
        head,
        taken_at: chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Micros, true),
        read_from: read_from.to_owned(),
    }
}

fn from_disk(log: &Log, staging: &mut Staging) -> anyhow::Result<Manifest> {
    match log.mark_check() {
        MarkCheck::Absent | MarkCheck::Holds(_) => {}
        MarkCheck::Breach(b) => bail!("not backed up: the {} log {b}", log.service()),
        MarkCheck::Unusable(r) => bail!(
            "not backed up: the {} log's high-water mark cannot be used: {r}",
            log.service()
        ),
    }
    let head = log.head();
    let mut next = 1;
    while next <= head.seq {
        let batch = log.read_from(next, READ_BATCH_EVENTS_MAX)?;
        let Some(last) = batch.events.last() else { break };
        next = last.seq + 1;
        for e in &batch.events {
            staging.push(e.seq, &e.bytes)?;
        }
    }
    Ok(manifest(log.service(), log.identity(), head, "disk"))
}

fn from_service(
    dir: &Path,
    url: &str,
    seed: Option<&Seed>,
    ca: Option<&Path>,
    staging: &mut Staging,
) -> anyhow::Result<Manifest> {
    // The directory's mark names the log a service holds there: the one
    // that must answer.
    let mark = concord_log::read_mark(dir)?.ok_or_else(|| {
        anyhow!(
            "{} is in use and has no high-water mark ({}) to say which log it is",
            dir.display(),
            concord_log::MARK_FILE
        )
    })?;
    let service = Service::parse(&mark.service)
        .ok_or_else(|| anyhow!("{}: unknown service {:?}", dir.display(), mark.service))?;
    let rt = tokio::runtime::Builder::new_current_thread().enable_all().build()?;
    rt.block_on(async {
        let client = credentials::connect_options(Identity::Operator, seed, ca)
            .connect(credentials::server_urls(url))
            .await
            .with_context(|| format!("connecting to NATS at {url} (set --nats or NATS_URL)"))?;
        let head = concord_bus::logs::fetch_head(&client, service).await?;
        let answering = |identity: Option<LogIdentity>| -> anyhow::Result<()> {
            if identity != Some(mark.identity) {
                bail!(
                    "not backed up: the {service} log answering on NATS is {}, not the log in {} ({})",
                    identity.map_or_else(|| "of a release without identities".to_owned(), |i| i.to_string()),
                    dir.display(),
                    mark.identity
                );
            }
            Ok(())
        };
        answering(head.identity)?;
        let mut next = 1;
        while next <= head.seq {
            let want = usize::try_from(head.seq - next + 1).unwrap_or(usize::MAX);
            let read = concord_bus::logs::fetch_log(&client, service, next, want.min(READ_BATCH_EVENTS_MAX)).await?;
            answering(read.identity)?;
            if read.events.is_empty() {
                bail!(
                    "not backed up: the {service} log answered no event at seq {next}, below its head {}",
                    head.seq
                );
            }
            for raw in read.raw.iter().take(want) {
                staging.push(next, raw.as_bytes())?;
                next += 1;
            }
        }
        Ok(manifest(
            service,
            mark.identity,
            Head {
                seq: head.seq,
                hash: head.hash,
            },
            "nats",
        ))
    })
}

pub fn restore(from: &Path, dir: &Path) -> anyhow::Result<ExitCode> {
    let path = from.join(MANIFEST);
    let manifest: Manifest =
        serde_json::from_slice(&std::fs::read(&path).with_context(|| format!("reading {}", path.display()))?)
            .with_context(|| format!("{} is not a backup manifest", path.display()))?;
    if manifest.format != FORMAT {
        bail!("{}: backup format {} is not {FORMAT}", path.display(), manifest.format);
    }
    let service = Service::parse(&manifest.service)
        .ok_or_else(|| anyhow!("{}: unknown service {:?}", path.display(), manifest.service))?;
    let events_path = from.join(EVENTS);
    let events =
        BufReader::new(File::open(&events_path).with_context(|| format!("reading {}", events_path.display()))?);
    let lines = events.split(b'\n').map(|line| line.map_err(|e| e.to_string()));
    let head = concord_log::restore(dir, service, manifest.identity, &manifest.head, lines)?;
    // What was built opens and verifies as any log does.
    let log = Log::open_read_only(dir)?;
    let report = log.verify()?;
    if report.first_bad.is_some() || report.head != head || log.mark_check() != &MarkCheck::Holds(head.clone()) {
        bail!("the restored log in {} does not verify: {report:?}", dir.display());
    }
    println!(
        "restored the {service} log {} in {}: {} events verified, head seq {} hash {}; its high-water mark is that head",
        manifest.identity,
        dir.display(),
        report.events_verified,
        head.seq,
        head.hash
    );
    Ok(ExitCode::SUCCESS)
}
