//! `concord log verify|export|migrate`: offline tools over log directories.
//!
//! verify and export read a private copy of the directory (`Log::open_read_only`): they
//! never change a byte of what they inspect, so running them after an
//! incident keeps the evidence. A log that holds less than its high-water
//! mark is reported, never taken for a shorter good log.

use std::io::{BufWriter, Write};
use std::path::Path;
use std::process::ExitCode;

use anyhow::Context;
use concord_core::Service;
use concord_log::{Head, Log, LogError, MarkBreach, MarkCheck, Migration, READ_BATCH_EVENTS_MAX};

/// Exit code of a log found damaged or short (an export cut short).
const EXIT_BROKEN: u8 = 1;

/// Parses `SEQ:HASH` (`verify --head`).
pub fn parse_head(s: &str) -> Result<Head, String> {
    let (seq, hash) = s.split_once(':').ok_or_else(|| format!("{s:?} is not SEQ:HASH"))?;
    let seq = seq
        .parse::<u64>()
        .map_err(|_| format!("{seq:?} is not a seq (a whole number)"))?;
    if hash.len() != 64 || !hash.bytes().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f')) {
        return Err(format!("{hash:?} is not a hash (64 lowercase hex digits)"));
    }
    Ok(Head {
        seq,
        hash: hash.to_owned(),
    })
}

pub fn verify(dir: &Path, expected: Option<&Head>) -> anyhow::Result<ExitCode> {
    let log = Log::open_read_only(dir)?;
    let service = log.service();
    let mut broken = Vec::new();
    let mut verified = None;
    match log.verify() {
        Ok(report) => match &report.first_bad {
            None => verified = Some(report),
            Some(bad) => broken.push(format!(
                "first bad seq {}: {} ({} events verified before it)",
                bad.seq, bad.reason, report.events_verified
            )),
        },
        // Damage the store itself reports is a finding, not a failure of
        // the tool.
        Err(e @ LogError::Storage { seqs, .. }) => broken.push(format!(
            "first bad seq {}: unreadable: {e}",
            seqs.first().map_or_else(|| "unknown".to_owned(), |s| s.to_string())
        )),
        Err(e) => return Err(e.into()),
    }
    let mark = match log.mark_check() {
        MarkCheck::Absent => "no high-water mark (a log of a release before marks)".to_owned(),
        MarkCheck::Holds(h) => format!("high-water mark seq {} holds", h.seq),
        MarkCheck::Unusable(reason) => {
            broken.push(format!("its high-water mark cannot be used: {reason}"));
            String::new()
        }
        MarkCheck::Breach(b) => {
            broken.push(short_of("its high-water mark", b));
            String::new()
        }
    };
    if let Some(expected) = expected {
        match log.check_head(expected) {
            Ok(None) => {}
            Ok(Some(b)) => broken.push(short_of(&format!("the head {}:{}", expected.seq, expected.hash), &b)),
            Err(e) => broken.push(format!(
                "the head {}:{} cannot be checked: {e}",
                expected.seq, expected.hash
            )),
        }
    }
    if broken.is_empty()
        && let Some(report) = verified
    {
        let given = expected.map_or_else(String::new, |h| format!(", extends to the given head seq {}", h.seq));
        println!(
            "ok: {} log, {} events verified, head seq {} hash {}; {mark}{given}",
            report.service, report.events_verified, report.head.seq, report.head.hash
        );
        return Ok(ExitCode::SUCCESS);
    }
    for b in broken {
        println!("BROKEN: {service} log, {b}");
    }
    Ok(ExitCode::from(EXIT_BROKEN))
}

fn short_of(what: &str, breach: &MarkBreach) -> String {
    format!("does not extend to {what}: {breach}")
}

pub fn export(dir: &Path, from: u64) -> anyhow::Result<ExitCode> {
    let log = Log::open_read_only(dir)?;
    let stdout = std::io::stdout();
    let mut out = BufWriter::new(stdout.lock());
    let mut next = from.max(1);
    let mut written = 0u64;
    loop {
        let batch = match log.read_from(next, READ_BATCH_EVENTS_MAX) {
            Ok(b) => b,
            Err(e) => {
                out.flush().context("writing the export")?;
                eprintln!("error: {e}");
                return Ok(incomplete(next, written, "the events from there on cannot be read"));
            }
        };
        let Some(last) = batch.events.last() else { break };
        next = last.seq + 1;
        for e in &batch.events {
            out.write_all(&e.bytes).context("writing the export")?;
            out.write_all(b"\n").context("writing the export")?;
            written += 1;
        }
    }
    out.flush().context("writing the export")?;
    // Every stored event was written; whether they are all the log
    // acknowledged, its mark says.
    match log.mark_check() {
        MarkCheck::Absent | MarkCheck::Holds(_) => Ok(ExitCode::SUCCESS),
        MarkCheck::Unusable(reason) => {
            eprintln!(
                "error: {} log at {}: its high-water mark cannot be used: {reason}",
                log.service(),
                dir.display()
            );
            Ok(incomplete(1, written, "whether events are missing cannot be told"))
        }
        MarkCheck::Breach(b) => {
            eprintln!("error: {} log at {}: {b}", log.service(), dir.display());
            Ok(match b {
                MarkBreach::Missing { head_seq, expected } => incomplete(
                    head_seq + 1,
                    written,
                    &format!(
                        "seqs {}–{} were acknowledged and are missing",
                        head_seq + 1,
                        expected.seq
                    ),
                ),
                MarkBreach::Diverged { expected, .. } => incomplete(
                    1,
                    written,
                    &format!("the events up to seq {} are not the acknowledged ones", expected.seq),
                ),
                MarkBreach::AnotherLog { .. } => incomplete(1, written, "whether events are missing cannot be told"),
            })
        }
    }
}

/// The last line of an export cut short: on stderr, after everything else,
/// so a pipeline that ignores the exit code still shows it last.
fn incomplete(from_seq: u64, written: u64, why: &str) -> ExitCode {
    eprintln!("export incomplete from seq {from_seq}: {written} events written, {why}");
    ExitCode::from(EXIT_BROKEN)
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
