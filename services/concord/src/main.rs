//! The `concord` binary: parses arguments and hands over to the library
//! code that does the work. It owns no logic of its own.

/// glibc malloc showed up as ~15% of the append path (arena contention
/// between the writer thread and the runtime); mimalloc does not.
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

mod auditcmd;
mod backup;
mod bench;
mod benchaudit;
mod benchhttp;
mod benchmem;
mod benchpeers;
mod benchproj;
mod logcmd;
mod projectorcmd;
mod secret;
mod system;

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand};

#[derive(Parser)]
#[command(
    name = "concord",
    version,
    about = "Concord: coordination backend for cross-border police operations"
)]
struct Cli {
    #[command(subcommand)]
    command: Cmd,
    /// How `up` and `serve` write their log lines on stderr: `text` for
    /// people, `json` (one object per line, with the span's fields such as
    /// `trace_id`) for a log collector
    #[arg(long, global = true, value_enum, default_value_t = LogFormat::Text)]
    log_format: LogFormat,
}

#[derive(Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
enum LogFormat {
    Text,
    Json,
}

#[derive(Subcommand)]
enum Cmd {
    /// Run the whole system on this machine: nats-server (unless NATS_URL is
    /// set), every service and the HTTP API; prints demo tokens.
    Up(system::UpArgs),
    /// Run one service against NATS_URL (default nats://127.0.0.1:4222).
    Serve(system::ServeArgs),
    /// Print a signed token (the JWT alone on the last line).
    Token(TokenArgs),
    /// Make the NATS identities that do not exist yet (one nkey seed per
    /// service, the gateway and the operator, owner-only) and write the
    /// nats-server configuration that admits them, as `concord up` does.
    NatsIdentities {
        /// Data directory: writes `<data>/nats/concord.conf`,
        /// `identities.conf` and `identities/<name>.nk`
        #[arg(long, default_value = "data")]
        data: PathBuf,
        /// Also the TLS certificates `concord up --tls` makes, if missing
        /// (`<data>/nats/tls/`: a private CA and a server certificate for
        /// localhost, 127.0.0.1 and ::1) and `<data>/nats/concord-tls.conf`
        #[arg(long)]
        tls: bool,
        /// Give these countries a national site each (repeatable): an
        /// identity `site-<cc>` that may only hear the country's feed
        /// (`concord.feed.<CC>.<service>.>`) and read its gaps; kept from
        /// then on
        #[arg(long = "site", value_parser = parse_country)]
        sites: Vec<concord_core::CountryCode>,
    },
    /// Inspect, back up and restore a service's event log.
    Log {
        #[command(subcommand)]
        command: LogCmd,
    },
    /// Check the record of a running system.
    Audit {
        #[command(subcommand)]
        command: AuditCmd,
    },
    /// Operate the projector of a running system.
    Projector {
        #[command(subcommand)]
        command: ProjectorCmd,
    },
    /// Measure this machine: prints figures, asserts nothing.
    Bench {
        #[command(subcommand)]
        command: BenchCmd,
    },
}

#[derive(clap::Args)]
struct TokenArgs {
    /// coordinator | liaison | reviewer | auditor
    #[arg(long, value_parser = parse_role)]
    role: concord_core::Role,
    /// ISO 3166-1 alpha-2 country, or GS
    #[arg(long, value_parser = parse_country)]
    country: concord_core::CountryCode,
    /// Who the token names
    #[arg(long)]
    sub: String,
    /// Data directory holding the secret (unless CONCORD_JWT_SECRET is set)
    #[arg(long, default_value = "data")]
    data: PathBuf,
    /// Validity, e.g. 90s, 30m, 12h, 7d
    #[arg(long, default_value = "12h", value_parser = secret::parse_ttl)]
    ttl: i64,
}

fn parse_role(s: &str) -> Result<concord_core::Role, String> {
    serde_json::from_value(serde_json::Value::String(s.to_owned()))
        .map_err(|_| format!("{s:?} is not a role: coordinator, liaison, reviewer or auditor"))
}

fn parse_country(s: &str) -> Result<concord_core::CountryCode, String> {
    concord_core::CountryCode::parse(s).map_err(|e| e.to_string())
}

fn token(args: TokenArgs) -> anyhow::Result<ExitCode> {
    if args.ttl > concord_core::auth::LIFETIME_MAX_SECS {
        anyhow::bail!(
            "--ttl: the gateway accepts tokens that live at most {} s by default",
            concord_core::auth::LIFETIME_MAX_SECS
        );
    }
    let secret = secret::load(&args.data, false)?;
    let token = secret::token(&secret, args.role, args.country, &args.sub, args.ttl)?;
    eprintln!(
        "token for {} ({} of {}), valid {}s:",
        args.sub,
        args.role.as_str(),
        args.country.as_str(),
        args.ttl
    );
    println!("{token}");
    Ok(ExitCode::SUCCESS)
}

fn nats_identities(data: &std::path::Path, tls: bool, sites: &[concord_core::CountryCode]) -> anyhow::Result<ExitCode> {
    use concord_bus::permissions::Identity;
    let mut identities = concord_bus::credentials::ensure(&data.join("nats"))?;
    for &cc in sites {
        identities = concord_bus::credentials::add_site(&data.join("nats"), cc)?;
    }
    if tls {
        let tls = concord_bus::tls::ensure(&data.join("nats"))?;
        println!("nats-server configuration (TLS required): {}", tls.config().display());
        println!("server certificate: {}", tls.cert().display());
        println!("server key: {}", tls.key().display());
        println!("CA clients trust (--nats-ca): {}", tls.ca().display());
    } else {
        println!("nats-server configuration: {}", identities.config().display());
    }
    for id in Identity::ALL
        .into_iter()
        .chain(identities.sites().into_iter().map(Identity::Site))
    {
        println!("{id}: {}", identities.seed_file(id).display());
    }
    Ok(ExitCode::SUCCESS)
}

fn run_async(f: impl Future<Output = anyhow::Result<()>>, format: LogFormat) -> anyhow::Result<ExitCode> {
    use tracing_subscriber::Layer;
    use tracing_subscriber::layer::SubscriberExt;
    use tracing_subscriber::util::SubscriberInitExt;

    let filter = tracing_subscriber::EnvFilter::try_from_default_env().unwrap_or_else(|_| {
        tracing_subscriber::EnvFilter::new(
            "warn,concord=info,concord_gateway=info,concord_core=info,concord_bus=info,concord_projector=info,tower_http=info",
        )
    });
    let fmt = tracing_subscriber::fmt::layer().with_writer(std::io::stderr);
    let fmt = match format {
        LogFormat::Text => fmt.boxed(),
        LogFormat::Json => fmt.json().with_current_span(true).with_span_list(true).boxed(),
    };
    let traces = tracing_exporter()?;
    let otel = traces.as_ref().map(|(provider, _)| {
        use opentelemetry::trace::TracerProvider;
        tracing_opentelemetry::layer().with_tracer(provider.tracer("concord"))
    });
    tracing_subscriber::registry().with(filter).with(fmt).with(otel).init();
    if let Some((_, endpoint)) = &traces {
        concord_bus::trace::set_exporting();
        tracing::info!(%endpoint, "spans are exported over OTLP");
    }
    // Recorded from the start, rendered by the gateway's `/metrics` or
    // `serve --metrics`.
    concord_bus::metrics::install();
    let ran = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?
        .block_on(f);
    if let Some((provider, _)) = traces {
        // The spans of the last moments too.
        if let Err(e) = provider.shutdown() {
            eprintln!("warning: the last spans were not exported: {e}");
        }
    }
    ran?;
    Ok(ExitCode::SUCCESS)
}

/// The variable naming the OpenTelemetry collector spans go to (OTLP over
/// HTTP with protobuf, e.g. `http://127.0.0.1:4318`); unset or empty: no
/// spans are exported.
const OTLP_ENDPOINT_ENV: &str = "OTEL_EXPORTER_OTLP_ENDPOINT";

/// The span exporter, when `OTEL_EXPORTER_OTLP_ENDPOINT` names a collector.
/// Spans are batched and sent from the exporter's own thread, so a slow or
/// absent collector costs requests nothing (spans beyond its queue are
/// dropped).
fn tracing_exporter() -> anyhow::Result<Option<(opentelemetry_sdk::trace::SdkTracerProvider, String)>> {
    let Some(endpoint) = std::env::var(OTLP_ENDPOINT_ENV).ok().filter(|e| !e.trim().is_empty()) else {
        return Ok(None);
    };
    let exporter = opentelemetry_otlp::SpanExporter::builder()
        .with_http()
        .build()
        .map_err(|e| anyhow::anyhow!("{OTLP_ENDPOINT_ENV}={endpoint}: {e}"))?;
    let provider = opentelemetry_sdk::trace::SdkTracerProvider::builder()
        .with_batch_exporter(exporter)
        .with_resource(
            opentelemetry_sdk::Resource::builder()
                .with_service_name("concord")
                .build(),
        )
        .build();
    Ok(Some((provider, endpoint)))
}

#[derive(Subcommand)]
enum AuditCmd {
    /// Prove that a log still extends a signed checkpoint saved earlier
    /// (its signature, the log's identity, not shorter, the same hash at
    /// its size, every later event linked); exit 1 naming what fails.
    Verify(auditcmd::VerifyArgs),
    /// Write one log as JSON Lines exactly as stored, up to the latest
    /// checkpoint the audit signed of it, and that checkpoint beside it
    /// (`<out>.checkpoint`), with a progress line on long runs.
    Export(auditcmd::ExportArgs),
}

#[derive(Subcommand)]
enum ProjectorCmd {
    /// Rebuild every view from the logs beside the live ones (which keep
    /// serving) and switch over when done, with a progress bar; exit 1 if
    /// it fails (the live views serve on). A rebuild renumbers the feed
    /// positions.
    Rebuild(projectorcmd::RebuildArgs),
}

#[derive(Subcommand)]
enum LogCmd {
    /// Walk the whole hash chain and check the log extends to its
    /// high-water mark (and to --head); exit 1 naming what is wrong.
    /// Reads a private copy: never changes a byte of DIR.
    Verify {
        /// The log directory, e.g. data/operations
        dir: PathBuf,
        /// A head the log must extend to, with this hash at this seq (as a
        /// consumer or an auditor recorded it): SEQ:HASH
        #[arg(long, value_parser = logcmd::parse_head)]
        head: Option<concord_log::Head>,
    },
    /// Print events as JSON Lines, one envelope per line, exactly as stored.
    /// Reads a private copy: never changes a byte of DIR. A log that cannot
    /// be read to its end exits 1, the last line on stderr saying from
    /// which seq the export is incomplete.
    Export {
        dir: PathBuf,
        /// First seq to print (its prev_hash, the hash of seq FROM-1, is the
        /// partial export's anchor: schemas/README.md)
        #[arg(long, default_value_t = 1)]
        from: u64,
    },
    /// Write a verified copy of a log (every event to its head, and which
    /// log and head it is) to a new directory OUT. Reads the log from disk
    /// when no service holds it, else from the running service over NATS.
    Backup {
        /// The log directory, e.g. data/operations
        dir: PathBuf,
        /// The backup directory to create
        #[arg(long)]
        out: PathBuf,
        /// NATS of the running service (default: NATS_URL, else
        /// nats://127.0.0.1:4222)
        #[arg(long)]
        nats: Option<String>,
        /// The operator's NATS identity (its seed file) to read a running
        /// service's log with; default: CONCORD_NATS_SEED, else
        /// `<DIR>/../nats/identities/operator.nk` as `concord up` makes it
        #[arg(long)]
        creds: Option<PathBuf>,
        /// Require TLS and trust this CA certificate for the NATS server
        /// (as `concord serve --nats-ca`); default: CONCORD_NATS_CA, else,
        /// for a `tls://` URL, `<DIR>/../nats/tls/ca.pem` as `concord up
        /// --tls` makes it
        #[arg(long)]
        nats_ca: Option<PathBuf>,
    },
    /// Rebuild a log directory from a backup, verifying its chain: the log
    /// keeps its identity and its high-water mark is the backup's head.
    Restore {
        /// The backup directory (made by `concord log backup`)
        #[arg(long)]
        from: PathBuf,
        /// The log directory to create, e.g. data/operations
        dir: PathBuf,
    },
    /// One-off: rewrite every service log under a data directory from an
    /// older chain format into the current one (services stopped).
    Migrate {
        /// The data directory, e.g. data (holding data/operations, …)
        #[arg(long)]
        data_dir: PathBuf,
    },
}

#[derive(Subcommand)]
enum BenchCmd {
    /// Durable appends with 1, 8, 64 and 256 concurrent appenders, then
    /// sequential read + hash verification.
    Log(bench::LogBenchArgs),
    /// assign_task commands over NATS request-reply with 1, 16, 64 in flight.
    Ops(bench::OpsBenchArgs),
    /// Memory and start time of the services over a long history
    Memory(benchmem::MemoryBenchArgs),
    /// The projector: building the views of a long history, memory, and
    /// acknowledged → visible latency at given append rates
    Projector(benchproj::ProjectorBenchArgs),
    /// The audit: replay and verification of a long history against a raw
    /// read of it, an operation's timeline, and what the access log adds
    /// to a read
    Audit(benchaudit::AuditBenchArgs),
    /// Concord's command path beside JetStream (fsync always, and as
    /// shipped) and PostgreSQL, same payloads and concurrency, one table
    Peers(benchpeers::PeersBenchArgs),
    /// The HTTP API of a child `concord up` under an open-loop load of
    /// assign-task requests; latency from each request's scheduled send
    Http(benchhttp::HttpBenchArgs),
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let result = match cli.command {
        Cmd::Up(args) => run_async(system::up(args), cli.log_format),
        Cmd::Serve(args) => run_async(system::serve(args), cli.log_format),
        Cmd::Token(args) => token(args),
        Cmd::NatsIdentities { data, tls, sites } => nats_identities(&data, tls, &sites),
        Cmd::Log { command } => match command {
            LogCmd::Verify { dir, head } => logcmd::verify(&dir, head.as_ref()),
            LogCmd::Export { dir, from } => logcmd::export(&dir, from),
            LogCmd::Backup {
                dir,
                out,
                nats,
                creds,
                nats_ca,
            } => backup::backup(&dir, &out, nats, creds.as_deref(), nats_ca.as_deref()),
            LogCmd::Restore { from, dir } => backup::restore(&from, &dir),
            LogCmd::Migrate { data_dir } => logcmd::migrate(&data_dir),
        },
        Cmd::Audit { command } => match command {
            AuditCmd::Verify(args) => auditcmd::verify(args),
            AuditCmd::Export(args) => auditcmd::export(args),
        },
        Cmd::Projector { command } => match command {
            ProjectorCmd::Rebuild(args) => projectorcmd::rebuild(args),
        },
        Cmd::Bench { command } => match command {
            BenchCmd::Log(args) => bench::log(args).map(|()| ExitCode::SUCCESS),
            BenchCmd::Ops(args) => bench::ops(args).map(|()| ExitCode::SUCCESS),
            BenchCmd::Memory(args) => benchmem::memory(args).map(|()| ExitCode::SUCCESS),
            BenchCmd::Projector(args) => benchproj::projector(args).map(|()| ExitCode::SUCCESS),
            BenchCmd::Audit(args) => benchaudit::audit(args).map(|()| ExitCode::SUCCESS),
            BenchCmd::Peers(args) => benchpeers::peers(args).map(|()| ExitCode::SUCCESS),
            BenchCmd::Http(args) => benchhttp::http(args).map(|()| ExitCode::SUCCESS),
        },
    };
    match result {
        Ok(code) => code,
        Err(e) => {
            eprintln!("error: {e:#}");
            ExitCode::from(2)
        }
    }
}

#[cfg(test)]
mod tests {
    /// The gateway documents and checks the projector's page bound.
    #[test]
    fn one_page_bound() {
        assert_eq!(concord_gateway::views::PAGE_MAX, concord_projector::api::PAGE_MAX);
        assert_eq!(
            concord_gateway::views::QUERY_CHARS_MAX,
            concord_projector::api::QUERY_CHARS_MAX
        );
    }
}
