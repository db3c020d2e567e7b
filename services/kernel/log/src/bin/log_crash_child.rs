//! Appends to a log in a loop from several tasks and prints `ACK <seq> <hash>`
//! for every acknowledged event, flushing each line, until it is killed.
//! Used by `tests/crash.rs`; a line on stdout is a promise the log must keep.

use std::io::Write;
use std::sync::{Arc, Mutex};

use concord_core::{Actor, CountryCode, ExpectedVersion, Role, Service};
use concord_log::{AppendRequest, Fingerprint, Log, NewEvent};
use serde_json::json;

const APPENDERS: usize = 8;

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let dir = std::env::args().nth(1).ok_or("usage: log-crash-child DIR")?;
    let log = Log::open(&dir, Service::Intel)?;
    let country = CountryCode::parse("DE")?;
    let out = Arc::new(Mutex::new(std::io::stdout()));
    let rt = tokio::runtime::Runtime::new()?;
    rt.block_on(async move {
        let tasks: Vec<_> = (0..APPENDERS)
            .map(|w| {
                let (log, out) = (log.clone(), out.clone());
                tokio::spawn(async move {
                    let pid = std::process::id();
                    for i in 0u64.. {
                        let stream = format!("lead-{}", i % 5);
                        let actor = Actor {
                            sub: "crash-child".into(),
                            role: Role::Liaison,
                            country,
                        };
                        let fingerprint = match Fingerprint::new("post_lead", &stream, &json!({"i": i}), &actor) {
                            Ok(f) => f,
                            Err(e) => {
                                eprintln!("fingerprint failed: {e}");
                                return;
                            }
                        };
                        let req = AppendRequest {
                            fingerprint,
                            stream,
                            expected: ExpectedVersion::Any,
                            command_id: format!("{pid}-{w}-{i}"),
                            actor,
                            correlation_id: format!("corr-{w}-{i}"),
                            causation_id: None,
                            observed_hlc: None,
                            events: (0..1 + i % 3)
                                .map(|k| NewEvent {
                                    event_type: "lead.posted".into(),
                                    schema_version: 1,
                                    data: json!({"writer": w, "i": i, "k": k, "pad": "x".repeat(400)}),
                                })
                                .collect(),
                        };
                        match log.append(req).await {
                            Ok(a) => {
                                let Ok(mut o) = out.lock() else { return };
                                for e in &a.events {
                                    let _ = writeln!(o, "ACK {} {}", e.seq, e.hash);
                                }
                                let _ = o.flush();
                            }
                            Err(e) => {
                                eprintln!("append failed: {e}");
                                return;
                            }
                        }
                    }
                })
            })
            .collect();
        for t in tasks {
            let _ = t.await;
        }
    });
    Ok(())
}
