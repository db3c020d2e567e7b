//! `concord log verify|export|migrate`: offline tools over log directories.

use std::io::{BufWriter, Write};
use std::path::Path;
use std::process::ExitCode;

use anyhow::Context;
use concord_core::Service;
use concord_log::{Log, Migration, READ_BATCH_EVENTS_MAX};

pub fn verify(dir: &Path) -> anyhow::Result<ExitCode> {
    let log = Log::open_existing(dir)?;
    let report = log.verify()?;
    match &report.first_bad {
        None => {
            println!(
                "ok: {} log, {} events verified, head seq {} hash {}",
                report.service, report.events_verified, report.head.seq, report.head.hash
            );
            Ok(ExitCode::SUCCESS)
        }
        Some(bad) => {
            println!(
                "BROKEN: {} log, first bad seq {}: {} ({} events verified before it)",
                report.service, bad.seq, bad.reason, report.events_verified
            );
            Ok(ExitCode::from(1))
        }
    }
}

pub fn export(dir: &Path, from: u64) -> anyhow::Result<ExitCode> {
    let log = Log::open_existing(dir)?;
    let stdout = std::io::stdout();
    let mut out = BufWriter::new(stdout.lock());
    let mut next = from.max(1);
    loop {
        let batch = log.read_from(next, READ_BATCH_EVENTS_MAX)?;
        let Some(last) = batch.events.last() else { break };
        next = last.seq + 1;
        for e in &batch.events {
            out.write_all(&e.bytes).context("writing the export")?;
            out.write_all(b"\n").context("writing the export")?;
        }
    }
    out.flush().context("writing the export")?;
    Ok(ExitCode::SUCCESS)
}

/// Migrates the log of every service found under `data_dir` (see
/// `concord_log::migrate`); one line per log.
pub fn migrate(data_dir: &Path) -> anyhow::Result<ExitCode> {
    let dirs: Vec<_> = Service::ALL
        .into_iter()
        .map(|s| data_dir.join(s.as_str()))
        .filter(|d| d.is_dir())
        .collect();
    if dirs.is_empty() {
        anyhow::bail!(
            "no service log under {} (expected {})",
            data_dir.display(),
            Service::ALL.map(|s| s.as_str()).join(", ")
        );
    }
    for dir in dirs {
        match concord_log::migrate(&dir)? {
            Migration::Current { service, events } => {
                println!("{service} log: already in the current chain format ({events} events), nothing to do");
            }
            Migration::Migrated {
                service,
                events,
                old_head,
                new_head,
            } => println!("migrated: {service} log, {events} events, head hash {old_head} is now {new_head}"),
        }
    }
    Ok(ExitCode::SUCCESS)
}
