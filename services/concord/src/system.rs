//! `concord up` (the whole system on one machine) and `concord serve`
//! (one service per process): starting, wiring to NATS, stopping cleanly.
//! Every service gets its own NATS connection, as it would on its own host.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use anyhow::{Context, bail};
use concord_bus::credentials::{self, SEED_ENV, Seed};
use concord_bus::nats_server::{NATS_SERVER_VERSION_MIN, NatsServer, nats_server_version};
use concord_bus::permissions::Identity;
use concord_bus::tls;
use concord_core::{CountryCode, Role, Service};
use tokio::sync::watch;

use crate::secret;

/// Services `concord up` runs and the gateway's `/readyz` expects.
pub const SERVICES: [Service; 4] = [
    Service::Operations,
    Service::Intel,
    Service::Crisis,
    Service::Deployments,
];
/// Demo users `concord up` prints tokens for: (role, country).
pub const DEMO_USERS: [(Role, &str); 9] = [
    (Role::Coordinator, "FR"),
    (Role::Liaison, "DE"),
    (Role::Liaison, "ES"),
    (Role::Liaison, "IT"),
    (Role::Liaison, "NL"),
    (Role::Liaison, "PL"),
    (Role::Liaison, "US"),
    (Role::Reviewer, "GS"),
    (Role::Auditor, "GS"),
];
/// How long printed demo tokens stay valid.
const DEMO_TOKEN_TTL_SECS: i64 = 12 * 3600;
/// How long stopping may take before the process gives up waiting.
const STOP_TIMEOUT: Duration = Duration::from_secs(15);

/// Set once the process is stopping: its nats-server goes away (stopped
/// by it, or by the same Ctrl-C), and the clients' reconnect errors are
/// then expected, not worth a warning each.
static STOPPING: std::sync::atomic::AtomicBool = std::sync::atomic::AtomicBool::new(false);

#[derive(clap::Args)]
pub struct UpArgs {
    /// Data directory: one log per service, the JWT secret, nats-server's files
    #[arg(long, default_value = "data")]
    data: PathBuf,
    /// Address of the HTTP API
    #[arg(long, default_value = "127.0.0.1:8080")]
    http: SocketAddr,
    /// TLS on every NATS connection: makes a private CA and the server's
    /// certificate once (`<data>/nats/tls/`), runs nats-server with
    /// `<data>/nats/concord-tls.conf` (a plaintext client is refused) and
    /// connects every service trusting that CA only
    #[arg(long)]
    tls: bool,
}

#[derive(clap::Args)]
pub struct ServeArgs {
    /// operations | intel | crisis | deployments | projector | audit | gateway
    name: String,
    /// Data directory (the service's log is `<data>/<service>`)
    #[arg(long, default_value = "data")]
    data: PathBuf,
    /// Address of the HTTP API (gateway only)
    #[arg(long, default_value = "127.0.0.1:8080")]
    http: SocketAddr,
    /// Gateway only: verify bearer tokens with this identity provider's
    /// JWKS file (EdDSA, ES256, RS256 keys) instead of the demo's shared
    /// secret, which is then not accepted at all
    #[arg(long)]
    jwks: Option<PathBuf>,
    /// Gateway only: a token's `iss` must be this
    #[arg(long)]
    token_issuer: Option<String>,
    /// Gateway only: a token's `aud` must include this
    #[arg(long)]
    token_audience: Option<String>,
    /// Gateway only: longest accepted token lifetime (e.g. 30m, 8h, 1d)
    #[arg(long, default_value = "24h", value_parser = secret::parse_ttl)]
    token_lifetime_max: i64,
    /// The service's NATS identity: its nkey seed file (`concord up` and
    /// `concord nats-identities` write `<data>/nats/identities/<name>.nk`).
    /// Else the seed itself in CONCORD_NATS_SEED; else none, which a
    /// server configured by Concord refuses.
    #[arg(long)]
    creds: Option<PathBuf>,
    /// Require TLS on the NATS connection and trust this CA certificate
    /// (PEM) for the server's: `<data>/nats/tls/ca.pem` of `concord up
    /// --tls`, or your own. Else the CA in CONCORD_NATS_CA; else TLS only
    /// for a `tls://` NATS_URL, against the system's CAs.
    #[arg(long)]
    nats_ca: Option<PathBuf>,
    /// Serve this process's metrics in Prometheus text at
    /// `http://ADDR/metrics` (the gateway also serves them on its own
    /// address)
    #[arg(long)]
    metrics: Option<SocketAddr>,
}

/// The gateway's token keys and rules from `serve` arguments.
fn token_config(args: &ServeArgs) -> anyhow::Result<(concord_core::auth::Keys, concord_core::auth::Rules)> {
    let keys = match &args.jwks {
        Some(path) => {
            let bytes = std::fs::read(path).with_context(|| format!("reading the JWKS {}", path.display()))?;
            let public =
                concord_core::auth::parse_jwks(&bytes).with_context(|| format!("the JWKS {}", path.display()))?;
            concord_core::auth::Keys { secret: None, public }
        }
        None => concord_core::auth::Keys::secret(secret::load(&args.data, false)?),
    };
    let rules = concord_core::auth::Rules {
        issuer: args.token_issuer.clone(),
        audience: args.token_audience.clone(),
        lifetime_max_secs: args.token_lifetime_max,
        ..concord_core::auth::Rules::default()
    };
    Ok((keys, rules))
}

/// The seed a command-line process connects with: `creds` (a seed file),
/// else the seed in `CONCORD_NATS_SEED`, else `fallback` when that file
/// exists, else none (with a warning).
/// The file under `<data>/nats/` naming the NATS URL `concord up` serves on.
pub const URL_FILE: &str = "url";

/// The NATS URL an operator's tool uses: `--nats`, else `NATS_URL`, else
/// what `concord up` on `data` wrote, else the default local server.
pub fn operator_url(flag: Option<String>, data: &Path) -> String {
    flag.or_else(nats_url_from_env)
        .or_else(|| {
            std::fs::read_to_string(data.join("nats").join(URL_FILE))
                .ok()
                .map(|s| s.trim().to_owned())
                .filter(|s| !s.is_empty())
        })
        .unwrap_or_else(|| "nats://127.0.0.1:4222".to_owned())
}

pub fn nats_seed(creds: Option<&Path>, fallback: Option<&Path>) -> anyhow::Result<Option<Seed>> {
    if let Some(file) = creds {
        return Ok(Some(Seed::read_file(file)?));
    }
    match std::env::var(SEED_ENV) {
        Ok(text) if !text.trim().is_empty() => Ok(Some(Seed::parse(&text, SEED_ENV)?)),
        _ => {
            if let Some(file) = fallback.filter(|f| f.is_file()) {
                return Ok(Some(Seed::read_file(file)?));
            }
            eprintln!(
                "warning: no NATS credentials (--creds FILE or {SEED_ENV}): connecting anonymously, \
                 which only an unsecured nats-server accepts (docs/security.md)"
            );
            Ok(None)
        }
    }
}

/// The CA a command-line process trusts for NATS: `flag` (`--nats-ca`),
/// else the file named in `CONCORD_NATS_CA`, else none.
pub fn nats_ca(flag: Option<&Path>) -> Option<PathBuf> {
    flag.map(Path::to_owned).or_else(|| {
        std::env::var_os(tls::CA_ENV)
            .filter(|v| !v.is_empty())
            .map(PathBuf::from)
    })
}

fn nats_url_from_env() -> Option<String> {
    std::env::var("NATS_URL").ok().filter(|s| !s.trim().is_empty())
}

async fn connect(
    url: &str,
    identity: Identity,
    seed: Option<&Seed>,
    ca: Option<&Path>,
) -> anyhow::Result<async_nats::Client> {
    if let Some(ca) = ca {
        // The client reads it only when it connects, and with
        // `retry_on_initial_connect` it would retry a missing file forever.
        std::fs::metadata(ca).with_context(|| format!("the NATS CA certificate {}", ca.display()))?;
    }
    credentials::connect_options(identity, seed, ca)
        // A restarted nats-server is expected; reconnect rather than die.
        .retry_on_initial_connect()
        // A refused key or a permission violation is a misconfiguration
        // (or a bug) an operator must see; the client only reports them
        // here.
        .event_callback(move |event| async move {
            match event {
                async_nats::Event::ServerError(e) => {
                    tracing::error!(%identity, error = %e, "the NATS server refused something");
                }
                async_nats::Event::ClientError(e) if STOPPING.load(std::sync::atomic::Ordering::Relaxed) => {
                    tracing::debug!(%identity, error = %e, "NATS client error while stopping");
                }
                async_nats::Event::ClientError(e) => tracing::warn!(%identity, error = %e, "NATS client error"),
                _ => {}
            }
        })
        // A cluster's nodes, comma-separated: the client moves between them.
        .connect(credentials::server_urls(url))
        .await
        .with_context(|| format!("connecting to NATS at {url} as {identity}"))
}

/// Shortest and longest wait before the nats-server child is started
/// again. Rationale: a server that dies at once (a bad config, a port
/// taken) is retried without spinning; one that ran a while is back
/// within a fraction of a second, and the services' clients reconnect.
const NATS_RESTART_BACKOFF_MIN: Duration = Duration::from_millis(100);
const NATS_RESTART_BACKOFF_MAX: Duration = Duration::from_secs(10);
/// A child that ran this long before dying is restarted without waiting.
const NATS_HEALTHY_RUN: Duration = Duration::from_secs(30);

/// Keeps `concord up`'s own nats-server running: restarts it on the same
/// port whenever it exits, waiting longer each time it dies soon after a
/// start. Never resolves (pending when NATS is external).
async fn keep_nats(own: Option<&mut NatsServer>, data: &Path) {
    let Some(nats) = own else {
        return std::future::pending().await;
    };
    let log = data.join("nats").join("nats.log");
    let mut backoff = NATS_RESTART_BACKOFF_MIN;
    let mut started = std::time::Instant::now();
    loop {
        tokio::time::sleep(Duration::from_millis(100)).await;
        let Some(status) = nats.exited() else { continue };
        if started.elapsed() >= NATS_HEALTHY_RUN {
            backoff = NATS_RESTART_BACKOFF_MIN;
        }
        tracing::error!(%status, log = %log.display(), "the nats-server child exited; restarting it in {backoff:?}");
        metrics::counter!(concord_bus::metrics::NATS_RESTARTS).increment(1);
        loop {
            tokio::time::sleep(backoff).await;
            backoff = (backoff * 2).min(NATS_RESTART_BACKOFF_MAX);
            match nats.restart() {
                Ok(()) => {
                    tracing::warn!(url = %nats.url(), "the nats-server child was restarted; the services reconnect");
                    started = std::time::Instant::now();
                    break;
                }
                Err(e) => {
                    tracing::error!(error = %e, "restarting the nats-server child failed; trying again in {backoff:?}")
                }
            }
        }
    }
}

/// Resolves on Ctrl-C or SIGTERM.
async fn signalled() {
    let term = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut s) => {
                s.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    tokio::select! {
        _ = tokio::signal::ctrl_c() => {}
        () = term => {}
    }
}

/// Runs `bound` under `service::supervise`: when its log is poisoned, it
/// is bound again with `bind` on the same data directory and connection.
fn supervised<A, B, Fut>(
    bound: concord_bus::runtime::Bound<A>,
    bind: B,
    cfg: concord_bus::service::Config,
    client: async_nats::Client,
    stop: &watch::Receiver<bool>,
) -> tokio::task::JoinHandle<Result<(), concord_bus::service::Error>>
where
    A: concord_core::decider::Aggregate,
    B: Fn(concord_bus::service::Config, async_nats::Client) -> Fut + Send + 'static,
    Fut: Future<Output = Result<concord_bus::runtime::Bound<A>, concord_bus::service::Error>> + Send + 'static,
{
    tokio::spawn(concord_bus::service::supervise(
        bound,
        move || bind(cfg.clone(), client.clone()),
        stop.clone(),
    ))
}

fn stop_signal(rx: &watch::Receiver<bool>) -> impl Future<Output = ()> + Send + 'static {
    let mut rx = rx.clone();
    async move {
        let _ = rx.wait_for(|s| *s).await;
    }
}

fn warn_if_old_nats_server() {
    match nats_server_version() {
        Ok(v) if v < NATS_SERVER_VERSION_MIN => {
            let (a, b, c) = v;
            let (x, y, z) = NATS_SERVER_VERSION_MIN;
            eprintln!(
                "warning: nats-server {a}.{b}.{c} has known security advisories (fixed by {x}.{y}.{z}); \
                 fine for a demo, run a current release in production (see deploy/README.md)"
            );
        }
        Ok(_) => {}
        Err(e) => eprintln!("warning: could not read the nats-server version: {e}"),
    }
}

fn print_banner(
    http: SocketAddr,
    nats: &str,
    own_nats: bool,
    tls: Option<&tls::Tls>,
    data: &Path,
    audit_key: &str,
    tokens: &[(String, String)],
) {
    println!("Concord is up.");
    println!("  API      http://{http}   (OpenAPI: http://{http}/openapi.json)");
    if own_nats {
        println!(
            "  NATS     {nats}   (own nats-server; its log is in {}/nats)",
            data.display()
        );
    } else {
        let config = match tls {
            Some(t) => t.config(),
            None => data.join("nats").join(concord_bus::permissions::CONFIG_FILE),
        };
        println!("  NATS     {nats}   (NATS_URL; it must run {})", config.display());
    }
    if let Some(t) = tls {
        println!(
            "  TLS      required of every NATS client; they trust the CA {} (--nats-ca or {})",
            t.ca().display(),
            tls::CA_ENV
        );
    }
    println!(
        "  bus      one NATS identity per service, the projector, the gateway and the operator; keys in {} (owner only); \
         no anonymous access",
        data.join("nats").join(credentials::SEEDS_DIR).display()
    );
    println!("  data     {}", data.display());
    println!("  audit    checkpoints signed with {audit_key} (GET /v1/audit/checkpoints/latest; keep them)");
    println!();
    println!(
        "Demo tokens (valid {}h; also in {}; more with `concord token`):",
        DEMO_TOKEN_TTL_SECS / 3600,
        data.join("demo-tokens.env").display()
    );
    for (name, token) in tokens {
        println!("{name}={token}");
    }
    println!();
    println!("Try:");
    println!("  source {}", data.join("demo-tokens.env").display());
    println!(
        "  curl -s -X POST http://{http}/v1/operations -H \"Authorization: Bearer $FR_COORDINATOR\" \
         -H 'Content-Type: application/json' \
         -d '{{\"title\":\"Op Lys\",\"objective\":\"dismantle the network\",\"lead_country\":\"FR\",\"countries\":[\"DE\",\"ES\"]}}'"
    );
    println!();
    println!("Ctrl-C stops it. ready");
}

fn demo_tokens(secret: &[u8], data: &Path) -> anyhow::Result<Vec<(String, String)>> {
    let mut out = Vec::new();
    for (role, country) in DEMO_USERS {
        let cc = CountryCode::parse(country).map_err(|e| anyhow::anyhow!("{e}"))?;
        let name = format!("{country}_{}", role.as_str()).to_ascii_uppercase();
        let sub = format!("demo-{}-{}", country.to_ascii_lowercase(), role.as_str());
        out.push((name, secret::token(secret, role, cc, &sub, DEMO_TOKEN_TTL_SECS)?));
    }
    let env: String = out.iter().map(|(n, t)| format!("export {n}={t}\n")).collect();
    std::fs::write(data.join("demo-tokens.env"), env).context("writing demo-tokens.env")?;
    Ok(out)
}

pub async fn up(args: UpArgs) -> anyhow::Result<()> {
    let data = args.data;
    std::fs::create_dir_all(&data).with_context(|| format!("creating {}", data.display()))?;
    let secret = secret::load(&data, true)?;
    // Made on the first start, kept after; the server's configuration is
    // rewritten from the permission table on every start.
    let nats_dir = data.join("nats");
    let identities = credentials::ensure(&nats_dir).context("the NATS identities")?;
    // Likewise the certificates; the server's configuration then includes
    // the permissions above and requires TLS.
    let tls = match args.tls {
        true => Some(tls::ensure(&nats_dir).context("the NATS TLS certificates")?),
        false => None,
    };
    let server_config = tls.as_ref().map_or_else(|| identities.config(), tls::Tls::config);
    let ca = tls.as_ref().map(tls::Tls::ca);

    let mut own_nats = match nats_url_from_env() {
        Some(_) => None,
        None => {
            warn_if_old_nats_server();
            Some(NatsServer::start_tied(&nats_dir, &server_config)?)
        }
    };
    let url = match (&own_nats, nats_url_from_env()) {
        (Some(n), _) if tls.is_some() => n.tls_url(),
        (Some(n), _) => n.url(),
        (None, Some(u)) => u,
        (None, None) => bail!("no NATS: neither NATS_URL nor an own nats-server"),
    };
    // Where the operator's tools (`concord projector rebuild`, `log backup
    // --nats`) find this system's NATS without being told.
    std::fs::write(nats_dir.join(URL_FILE), &url)
        .with_context(|| format!("writing {}", nats_dir.join(URL_FILE).display()))?;

    let as_ = |identity: Identity| {
        let seed = identities.seed(identity).cloned();
        let url = url.clone();
        let ca = ca.clone();
        async move { connect(&url, identity, seed.as_ref(), ca.as_deref()).await }
    };
    let ops_client = as_(Identity::Service(Service::Operations)).await?;
    let intel_client = as_(Identity::Service(Service::Intel)).await?;
    let crisis_client = as_(Identity::Service(Service::Crisis)).await?;
    let deployments_client = as_(Identity::Service(Service::Deployments)).await?;
    let gw_client = as_(Identity::Gateway).await?;
    let projector_client = as_(Identity::Projector).await?;
    let audit_client = as_(Identity::Service(concord_core::Service::Audit)).await?;
    let cfg = |service| concord_bus::service::Config::in_data_dir(&data, service);
    let ops = concord_operations::bind(&cfg(Service::Operations), ops_client.clone())
        .await
        .context("starting the operations service")?;
    let intel = concord_intel::bind(&cfg(Service::Intel), intel_client.clone())
        .await
        .context("starting the intel service")?;
    let crisis = concord_crisis::bind(&cfg(Service::Crisis), crisis_client.clone())
        .await
        .context("starting the crisis service")?;
    let deployments = concord_deployments::bind(&cfg(Service::Deployments), deployments_client.clone())
        .await
        .context("starting the deployments service")?;
    let mut projector = concord_projector::Projector::bind(&concord_projector::dir_in(&data), projector_client)
        .await
        .context("starting the projector")?;
    let mut audit = concord_audit::Audit::bind(&concord_audit::dir_in(&data), audit_client)
        .await
        .context("starting the audit service")?;
    let listener = tokio::net::TcpListener::bind(args.http)
        .await
        .with_context(|| format!("listening on {} (in use? choose another with --http)", args.http))?;

    let (stop_tx, stop_rx) = watch::channel(false);
    let mut ops_task = supervised(
        ops,
        |cfg, c| async move { concord_operations::bind(&cfg, c).await },
        cfg(Service::Operations),
        ops_client,
        &stop_rx,
    );
    let mut intel_task = supervised(
        intel,
        |cfg, c| async move { concord_intel::bind(&cfg, c).await },
        cfg(Service::Intel),
        intel_client,
        &stop_rx,
    );
    let mut crisis_task = supervised(
        crisis,
        |cfg, c| async move { concord_crisis::bind(&cfg, c).await },
        cfg(Service::Crisis),
        crisis_client,
        &stop_rx,
    );
    let mut deployments_task = supervised(
        deployments,
        |cfg, c| async move { concord_deployments::bind(&cfg, c).await },
        cfg(Service::Deployments),
        deployments_client,
        &stop_rx,
    );
    let mut config = concord_gateway::Config::new(secret.clone(), SERVICES.to_vec());
    config.projector = true;
    config.access_log = true;
    let mut gw_task = tokio::spawn(concord_gateway::serve(
        listener,
        gw_client,
        config,
        stop_signal(&stop_rx),
    ));

    let tokens = demo_tokens(&secret, &data)?;
    print_banner(
        args.http,
        &url,
        own_nats.is_some(),
        tls.as_ref(),
        &data,
        audit.verifier_key(),
        &tokens,
    );

    // Polled on this (the main) thread: a restarted child is tied to the
    // thread that starts it (`NatsServer::start_tied`).
    let nats_kept = keep_nats(own_nats.as_mut(), &data);
    let outcome: anyhow::Result<()> = tokio::select! {
        () = signalled() => Ok(()),
        () = nats_kept => Ok(()),
        r = &mut ops_task => Err(anyhow::anyhow!("the operations service stopped: {r:?}")),
        r = &mut intel_task => Err(anyhow::anyhow!("the intel service stopped: {r:?}")),
        r = &mut crisis_task => Err(anyhow::anyhow!("the crisis service stopped: {r:?}")),
        r = &mut deployments_task => Err(anyhow::anyhow!("the deployments service stopped: {r:?}")),
        r = &mut gw_task => Err(anyhow::anyhow!("the gateway stopped: {r:?}")),
        r = projector.stopped() => Err(anyhow::anyhow!("the projector stopped: {r:?}")),
        r = audit.stopped() => Err(anyhow::anyhow!("the audit's access log stopped: {r:?}")),
    };
    eprintln!("stopping");
    STOPPING.store(true, std::sync::atomic::Ordering::Relaxed);
    let _ = stop_tx.send(true);
    let stopped = tokio::time::timeout(STOP_TIMEOUT, async {
        // The gateway first (its last requests' access records reach the
        // audit), then the readers, while the logs they read still
        // answer: else they see their sources vanish and warn of it.
        let _ = (&mut gw_task).await;
        let _ = tokio::join!(projector.stop(), audit.stop());
        let _ = (&mut ops_task).await;
        let _ = (&mut intel_task).await;
        let _ = (&mut crisis_task).await;
        let _ = (&mut deployments_task).await;
    })
    .await;
    if stopped.is_err() {
        tracing::warn!("not every service stopped within {STOP_TIMEOUT:?}; stopping anyway");
    }
    // Services first (they stop reading NATS), then their nats-server.
    drop(own_nats);
    outcome
}

pub async fn serve(args: ServeArgs) -> anyhow::Result<()> {
    let url = nats_url_from_env().unwrap_or_else(|| "nats://127.0.0.1:4222".to_owned());
    let Some(identity) = Identity::parse(&args.name).filter(|i| *i != Identity::Operator) else {
        bail!(
            "unknown service {:?}: the services are operations, intel, crisis, deployments, projector, audit and gateway",
            args.name
        )
    };
    let seed = nats_seed(args.creds.as_deref(), None)?;
    let ca = nats_ca(args.nats_ca.as_deref());
    let client = connect(&url, identity, seed.as_ref(), ca.as_deref()).await?;
    let (stop_tx, stop_rx) = watch::channel(false);
    if let Some(addr) = args.metrics {
        let listener = tokio::net::TcpListener::bind(addr)
            .await
            .with_context(|| format!("listening for metrics scrapes on {addr}"))?;
        eprintln!("metrics at http://{addr}/metrics");
        tokio::spawn(concord_bus::metrics::serve(listener, stop_signal(&stop_rx)));
    }
    let task = match args.name.as_str() {
        "operations" => {
            let cfg = concord_bus::service::Config::in_data_dir(&args.data, Service::Operations);
            let ops = concord_operations::bind(&cfg, client.clone()).await?;
            eprintln!(
                "operations serving on {url}, log in {}",
                args.data.join("operations").display()
            );
            {
                let task = supervised(
                    ops,
                    |cfg, c| async move { concord_operations::bind(&cfg, c).await },
                    cfg,
                    client,
                    &stop_rx,
                );
                tokio::spawn(async move { task.await?.map_err(anyhow::Error::from) })
            }
        }
        "intel" => {
            let cfg = concord_bus::service::Config::in_data_dir(&args.data, Service::Intel);
            let intel = concord_intel::bind(&cfg, client.clone()).await?;
            eprintln!("intel serving on {url}, log in {}", args.data.join("intel").display());
            {
                let task = supervised(
                    intel,
                    |cfg, c| async move { concord_intel::bind(&cfg, c).await },
                    cfg,
                    client,
                    &stop_rx,
                );
                tokio::spawn(async move { task.await?.map_err(anyhow::Error::from) })
            }
        }
        "crisis" => {
            let cfg = concord_bus::service::Config::in_data_dir(&args.data, Service::Crisis);
            let svc = concord_crisis::bind(&cfg, client.clone()).await?;
            eprintln!("crisis serving on {url}, log in {}", args.data.join("crisis").display());
            {
                let task = supervised(
                    svc,
                    |cfg, c| async move { concord_crisis::bind(&cfg, c).await },
                    cfg,
                    client,
                    &stop_rx,
                );
                tokio::spawn(async move { task.await?.map_err(anyhow::Error::from) })
            }
        }
        "deployments" => {
            let cfg = concord_bus::service::Config::in_data_dir(&args.data, Service::Deployments);
            let svc = concord_deployments::bind(&cfg, client.clone()).await?;
            eprintln!(
                "deployments serving on {url}, log in {}",
                args.data.join("deployments").display()
            );
            {
                let task = supervised(
                    svc,
                    |cfg, c| async move { concord_deployments::bind(&cfg, c).await },
                    cfg,
                    client,
                    &stop_rx,
                );
                tokio::spawn(async move { task.await?.map_err(anyhow::Error::from) })
            }
        }
        "audit" => {
            let mut audit = concord_audit::Audit::bind(&concord_audit::dir_in(&args.data), client).await?;
            eprintln!(
                "audit serving on {url}, access log in {}, checkpoints signed with {}",
                concord_audit::dir_in(&args.data).display(),
                audit.verifier_key()
            );
            let mut stop = stop_rx.clone();
            tokio::spawn(async move {
                tokio::select! {
                    r = audit.stopped() => return r.map_err(anyhow::Error::from),
                    _ = stop.changed() => {}
                }
                audit.stop().await;
                Ok(())
            })
        }
        "projector" => {
            let dir = concord_projector::dir_in(&args.data);
            let projector = concord_projector::Projector::bind(&dir, client).await?;
            eprintln!("projector serving on {url}, views in {}", dir.display());
            let mut stop = stop_rx.clone();
            tokio::spawn(async move {
                let mut projector = projector;
                tokio::select! {
                    r = projector.stopped() => return r.map_err(anyhow::Error::from),
                    _ = stop.changed() => {}
                }
                projector.stop().await.map_err(anyhow::Error::from)
            })
        }
        "gateway" => {
            let (keys, rules) = token_config(&args)?;
            let listener = tokio::net::TcpListener::bind(args.http)
                .await
                .with_context(|| format!("listening on {}", args.http))?;
            let mut config = concord_gateway::Config::with_keys(keys, SERVICES.to_vec());
            config.token_rules = rules;
            config.projector = true;
            config.access_log = true;
            eprintln!("gateway serving http://{} on {url}", args.http);
            tokio::spawn(async move {
                concord_gateway::serve(listener, client, config, stop_signal(&stop_rx))
                    .await
                    .map_err(anyhow::Error::from)
            })
        }
        other => bail!("unknown service {other:?}"),
    };
    tokio::pin!(task);
    tokio::select! {
        () = signalled() => {
            let _ = stop_tx.send(true);
            if tokio::time::timeout(STOP_TIMEOUT, &mut task).await.is_err() {
                tracing::warn!(service = %args.name, "the service did not stop within {STOP_TIMEOUT:?}; stopping anyway");
            }
            Ok(())
        }
        r = &mut task => r.context("the service task")?,
    }
}
