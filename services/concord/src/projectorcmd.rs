//! `concord projector rebuild`: asks the running projector to rebuild its
//! views from the logs beside the live ones (which keep serving) and
//! switch over, and draws the progress (events done / total, rate, ETA)
//! until it has switched. Connects as the operator.

use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::Duration;

use anyhow::{Context, anyhow, bail};
use concord_bus::credentials;
use concord_bus::permissions::{Identity, PROJECTOR};
use concord_bus::tls;
use concord_core::reply::Reply;
use concord_core::subjects;
use serde_json::{Value, json};

/// How an operator's tool finds and joins the bus of a running system.
#[derive(clap::Args)]
pub struct OperatorArgs {
    /// The data directory of `concord up` (where it wrote its NATS URL and
    /// the operator's seed)
    #[arg(long, default_value = "data")]
    pub data: PathBuf,
    /// NATS URL (else NATS_URL, else the one `concord up` on --data serves)
    #[arg(long)]
    pub nats: Option<String>,
    /// The operator's seed file (else CONCORD_NATS_SEED, else
    /// <data>/nats/identities/operator.nk)
    #[arg(long)]
    pub creds: Option<PathBuf>,
    /// The CA to trust for a tls:// URL (else CONCORD_NATS_CA, else the
    /// one `concord up --tls` made)
    #[arg(long)]
    pub nats_ca: Option<PathBuf>,
}

#[derive(clap::Args)]
pub struct RebuildArgs {
    #[command(flatten)]
    pub operator: OperatorArgs,
}

/// How often the progress is asked.
const POLL: Duration = Duration::from_millis(200);
const BAR: usize = 30;

async fn ask(client: &async_nats::Client, verb: &str) -> anyhow::Result<Result<Value, String>> {
    let msg = tokio::time::timeout(
        Duration::from_secs(10),
        client.request(subjects::control(PROJECTOR, verb), json!({}).to_string().into()),
    )
    .await
    .map_err(|_| anyhow!("the projector did not answer {verb} within 10 s"))?
    .with_context(|| format!("asking the projector to {verb} (is it running?)"))?;
    Ok(
        match Reply::parse(&msg.payload).map_err(|e| anyhow!("a malformed answer: {e}"))? {
            Reply::Ok(map) => Ok(Value::Object(map)),
            Reply::Err(e) => Err(e.message),
        },
    )
}

fn line(p: &Value) -> String {
    let (done, total) = (p["done"].as_u64().unwrap_or(0), p["total"].as_u64().unwrap_or(0));
    let secs = p["elapsed_ms"].as_u64().unwrap_or(0) as f64 / 1000.0;
    let rate = if secs > 0.0 { done as f64 / secs } else { 0.0 };
    let filled = (done.min(total) * BAR as u64)
        .checked_div(total)
        .map_or(BAR, |f| usize::try_from(f).unwrap_or(BAR));
    let eta = if rate > 0.0 && total > done {
        format!("ETA {:.0} s", (total - done) as f64 / rate)
    } else {
        "ETA -".to_owned()
    };
    format!(
        "views-{} [{}{}] {done}/{total} events  {rate:.0} ev/s  {eta}",
        p["generation"].as_u64().unwrap_or(0),
        "#".repeat(filled),
        "-".repeat(BAR - filled),
    )
}

/// A connection to the NATS of the system on `data` as the operator:
/// `--nats`/NATS_URL/what `concord up` wrote, `--creds`/CONCORD_NATS_SEED/
/// the operator's seed beside the data, `--nats-ca`/CONCORD_NATS_CA/the CA
/// `concord up --tls` made.
pub async fn operator_client(args: &OperatorArgs) -> anyhow::Result<async_nats::Client> {
    let (data, creds, nats_ca) = (&args.data, args.creds.as_deref(), args.nats_ca.as_deref());
    let url = crate::system::operator_url(args.nats.clone(), data);
    let beside = data
        .join("nats")
        .join(credentials::SEEDS_DIR)
        .join(format!("{}.nk", Identity::Operator));
    let seed = crate::system::nats_seed(creds, Some(&beside))?;
    let ca = crate::system::nats_ca(nats_ca).or_else(|| {
        let made: &Path = &data.join("nats").join(tls::TLS_DIR).join(tls::CA_CERT);
        (url.starts_with("tls://") && made.is_file()).then(|| made.to_owned())
    });
    credentials::connect_options(Identity::Operator, seed.as_ref(), ca.as_deref())
        .connect(credentials::server_urls(&url))
        .await
        .with_context(|| format!("connecting to NATS at {url} (set --nats or NATS_URL)"))
}

pub fn rebuild(args: RebuildArgs) -> anyhow::Result<ExitCode> {
    let rt = tokio::runtime::Builder::new_current_thread().enable_all().build()?;
    rt.block_on(async {
        let client = operator_client(&args.operator).await?;
        match ask(&client, "rebuild").await? {
            Ok(_) => {}
            // One already running: follow it.
            Err(why) if why.contains("is running") => eprintln!("{why}; following it"),
            Err(why) => bail!("the projector refused to rebuild: {why}"),
        }
        let tty = std::io::IsTerminal::is_terminal(&std::io::stderr());
        let mut last_printed = std::time::Instant::now();
        loop {
            tokio::time::sleep(POLL).await;
            let p = match ask(&client, "progress").await? {
                Ok(p) => p,
                Err(why) => bail!("the projector's progress: {why}"),
            };
            let running = p["running"].as_bool().unwrap_or(false);
            if tty {
                eprint!("\r{}   ", line(&p));
            } else if last_printed.elapsed() >= Duration::from_secs(2) || !running {
                eprintln!("{}", line(&p));
                last_printed = std::time::Instant::now();
            }
            if running {
                continue;
            }
            if tty {
                eprintln!();
            }
            if let Some(why) = p["error"].as_str() {
                bail!("the rebuild failed: {why}");
            }
            let secs = p["elapsed_ms"].as_u64().unwrap_or(0) as f64 / 1000.0;
            println!(
                "rebuilt views-{} from the logs: {} events in {secs:.1} s; they serve now",
                p["generation"].as_u64().unwrap_or(0),
                p["done"].as_u64().unwrap_or(0)
            );
            return Ok(ExitCode::SUCCESS);
        }
    })
}
