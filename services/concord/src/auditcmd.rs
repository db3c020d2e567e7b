//! `concord audit verify --checkpoint FILE`: proves that a log still
//! extends a checkpoint someone saved earlier (a C2SP signed note from
//! `/v1/audit/checkpoints/latest`): the signature verifies with the
//! audit's key, the log answering is the one checkpointed, it is not
//! shorter, the event at the checkpoint's size still has the checkpoint's
//! hash, and every event after it links to it up to the head. Connects as
//! the operator; exits 1 naming what fails.
//!
//! `concord audit export --service S --out FILE`: the log as JSON Lines
//! exactly as stored (what `GET /v1/audit/export` streams), up to the
//! latest checkpoint the audit signed of it (read from the audit's
//! directory, which the operator holds), and that signed note in
//! `FILE.checkpoint`.

use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::{Context, anyhow};
use concord_audit::checkpoint;
use concord_bus::consumer::{Checkpoint, Consumer};
use concord_core::Service;

#[derive(clap::Args)]
pub struct VerifyArgs {
    /// The signed checkpoint saved earlier
    #[arg(long)]
    pub checkpoint: PathBuf,
    /// A file holding the verifier key (`<name>+<id>+<key>`, from
    /// /v1/audit/checkpoints/key); else the key of the audit on --data
    #[arg(long)]
    pub key: Option<PathBuf>,
    #[command(flatten)]
    pub operator: crate::projectorcmd::OperatorArgs,
}

#[derive(clap::Args)]
pub struct ExportArgs {
    /// The log: operations, intel, crisis or deployments
    #[arg(long)]
    pub service: String,
    /// The first seq
    #[arg(long, default_value_t = 1)]
    pub from: u64,
    /// The last seq (the checkpoint's size when not given, never past it)
    #[arg(long)]
    pub to: Option<u64>,
    /// Where the lines go; the checkpoint goes to FILE.checkpoint
    #[arg(long)]
    pub out: PathBuf,
    #[command(flatten)]
    pub operator: crate::projectorcmd::OperatorArgs,
}

/// Events asked at once.
const EXPORT_BATCH: usize = 1000;

pub fn export(args: ExportArgs) -> anyhow::Result<ExitCode> {
    use std::io::Write as _;
    let service = Service::parse(&args.service).ok_or_else(|| anyhow!("no log {:?}", args.service))?;
    if args.from == 0 {
        anyhow::bail!("--from is a seq: 1 or more");
    }
    let dir = concord_audit::dir_in(&args.operator.data);
    let note = concord_audit::latest_signed(&dir).remove(&service).ok_or_else(|| {
        anyhow!(
            "the audit in {} has signed no checkpoint of the {service} log yet",
            dir.display()
        )
    })?;
    let cp = checkpoint::Checkpoint::stated_by(&note)?;
    let (_, identity) = cp
        .log()
        .ok_or_else(|| anyhow!("origin {:?} is not a Concord log", cp.origin))?;
    let identity = identity.to_owned();
    let to = args.to.map_or(cp.size, |t| t.min(cp.size));
    let rt = tokio::runtime::Builder::new_current_thread().enable_all().build()?;
    rt.block_on(async {
        let client = crate::projectorcmd::operator_client(&args.operator).await?;
        let file = std::fs::File::create(&args.out).with_context(|| format!("creating {}", args.out.display()))?;
        let mut out = std::io::BufWriter::new(file);
        let started = std::time::Instant::now();
        let mut shown = started;
        let mut next = args.from;
        while next <= to {
            let want = usize::try_from(to - next + 1).unwrap_or(usize::MAX).min(EXPORT_BATCH);
            let read = concord_bus::logs::fetch_log(&client, service, next, want).await?;
            let answering = read.identity.map(|i| i.to_string());
            if answering.as_deref() != Some(identity.as_str()) {
                anyhow::bail!(
                    "the {service} log answering is {}, not the log {identity} checkpointed",
                    answering.unwrap_or_else(|| "a log without identity".into())
                );
            }
            if read.raw.is_empty() {
                anyhow::bail!(
                    "the {service} log holds no seq {next} (head {}), below the checkpoint's size {}: it was cut short",
                    read.head_seq,
                    cp.size
                );
            }
            for raw in read.raw.iter().take(want) {
                out.write_all(raw.as_bytes())?;
                out.write_all(b"\n")?;
                next += 1;
            }
            if shown.elapsed() >= std::time::Duration::from_secs(2) {
                progress(service, next - args.from, to + 1 - args.from, started);
                shown = std::time::Instant::now();
            }
        }
        out.flush()?;
        out.get_ref().sync_all()?;
        let mut note_file = args.out.clone().into_os_string();
        note_file.push(".checkpoint");
        std::fs::write(&note_file, &note).with_context(|| format!("writing {note_file:?}"))?;
        eprintln!(
            "exported seq {} to {to} of the {service} log {identity} to {}; its checkpoint (size {}) to {}",
            args.from,
            args.out.display(),
            cp.size,
            PathBuf::from(note_file).display()
        );
        Ok(ExitCode::SUCCESS)
    })
}

/// A progress line on a long run: events done of the total, the rate and
/// the time left.
fn progress(service: Service, done: u64, total: u64, started: std::time::Instant) {
    let rate = done as f64 / started.elapsed().as_secs_f64().max(0.001);
    let left = total.saturating_sub(done) as f64 / rate.max(1.0);
    eprintln!("{service}: {done}/{total} events  {rate:.0} ev/s  ETA {left:.0} s");
}

fn failed(what: String) -> anyhow::Result<ExitCode> {
    eprintln!("NOT VERIFIED: {what}");
    Ok(ExitCode::from(1))
}

pub fn verify(args: VerifyArgs) -> anyhow::Result<ExitCode> {
    let note =
        std::fs::read_to_string(&args.checkpoint).with_context(|| format!("reading {}", args.checkpoint.display()))?;
    let key = match &args.key {
        Some(file) => std::fs::read_to_string(file).with_context(|| format!("reading {}", file.display()))?,
        None => {
            let dir = concord_audit::dir_in(&args.operator.data);
            if !dir.join(concord_audit::KEY_FILE).is_file() {
                anyhow::bail!("no --key, and no audit key in {}", dir.display());
            }
            concord_audit::signer(&dir)?.verifier_key()
        }
    };
    let cp = match checkpoint::verify(&note, &key) {
        Ok(cp) => cp,
        Err(e) => return failed(format!("{}: {e}", args.checkpoint.display())),
    };
    let (service, identity) = cp
        .log()
        .ok_or_else(|| anyhow!("origin {:?} is not a Concord log", cp.origin))?;
    let service = Service::parse(service).ok_or_else(|| anyhow!("origin {:?}: no service {service}", cp.origin))?;
    let identity = identity.to_owned();
    let hash = hex::encode(cp.hash);
    let rt = tokio::runtime::Builder::new_current_thread().enable_all().build()?;
    rt.block_on(async {
        let client = crate::projectorcmd::operator_client(&args.operator).await?;
        let head = concord_bus::logs::fetch_head(&client, service).await?;
        let answering = head.identity.map(|i| i.to_string());
        if answering.as_deref() != Some(identity.as_str()) {
            return failed(format!(
                "the {service} log answering is {}, not the log {identity} checkpointed",
                answering.unwrap_or_else(|| "a log without identity".into())
            ));
        }
        if head.seq < cp.size {
            return failed(format!(
                "the {service} log is cut short: its head is seq {}, the checkpoint saw {} events",
                head.seq, cp.size
            ));
        }
        let at = concord_bus::logs::fetch_log(&client, service, cp.size, 1).await?;
        match at.events.first() {
            Some(e) if e.seq == cp.size && e.hash == hash => {}
            Some(e) => {
                return failed(format!(
                    "the {service} log was rewritten at or before seq {}: it now holds hash {} there, the checkpoint {hash}",
                    cp.size, e.hash
                ));
            }
            None => return failed(format!("the {service} log does not serve seq {}", cp.size)),
        }
        // From the checkpointed event on, every event links to it.
        let identity_value = serde_json::from_value(serde_json::json!(identity)).ok();
        let from = Checkpoint {
            seq: cp.size,
            hash: hash.clone(),
            identity: identity_value,
        };
        let mut consumer = Consumer::start(client.clone(), service, from).await?;
        let mut checked = 0u64;
        let started = std::time::Instant::now();
        let mut shown = started;
        while consumer.position().seq < head.seq {
            if let Err(e) = consumer.next().await {
                return failed(format!("the {service} log after the checkpoint: {e}"));
            }
            checked += 1;
            if shown.elapsed() >= std::time::Duration::from_secs(2) {
                progress(service, checked, head.seq - cp.size, started);
                shown = std::time::Instant::now();
            }
        }
        println!(
            "verified: the {service} log {identity} extends the checkpoint of {} events (hash {hash}); {checked} events after it link to it, up to seq {}",
            cp.size, head.seq
        );
        Ok(ExitCode::SUCCESS)
    })
}
