//! `concord audit verify --checkpoint FILE`: proves that a log still
//! extends a checkpoint someone saved earlier (a C2SP signed note from
//! `/v1/audit/checkpoints/latest`): the signature verifies with the
//! audit's key, the log answering is the one checkpointed, it is not
//! shorter, the event at the checkpoint's size still has the checkpoint's
//! hash, and every event after it links to it up to the head. Connects as
//! the operator; exits 1 naming what fails.

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
        while consumer.position().seq < head.seq {
            if let Err(e) = consumer.next().await {
                return failed(format!("the {service} log after the checkpoint: {e}"));
            }
            checked += 1;
        }
        println!(
            "verified: the {service} log {identity} extends the checkpoint of {} events (hash {hash}); {checked} events after it link to it, up to seq {}",
            cp.size, head.seq
        );
        Ok(ExitCode::SUCCESS)
    })
}
