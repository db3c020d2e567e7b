//! `concord log verify|export`: offline tools over one log directory.

use std::io::{BufWriter, Write};
use std::path::Path;
use std::process::ExitCode;

use anyhow::Context;
use concord_log::{Log, READ_BATCH_EVENTS_MAX};

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
