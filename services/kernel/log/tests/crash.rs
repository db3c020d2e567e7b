//! Kill -9 a process that is appending, many times, at seeded random
//! moments: every event it acknowledged is still there after reopen, the
//! chain verifies and seqs stay gapless.

use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};
use std::time::Duration;

use concord_core::Service;
use concord_log::Log;
use rand::{Rng, SeedableRng, rngs::StdRng};

const KILLS: usize = 24;

#[test]
fn sigkill_never_loses_an_acknowledged_event() {
    let dir = tempfile::TempDir::new().expect("tmp");
    let mut rng = StdRng::seed_from_u64(0x5EED_C4A5);
    let mut acked: Vec<(u64, String)> = Vec::new();
    for round in 0..KILLS {
        let mut child = Command::new(env!("CARGO_BIN_EXE_log-crash-child"))
            .arg(dir.path())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .expect("spawn child");
        let stdout = child.stdout.take().expect("piped");
        let (tx, rx) = std::sync::mpsc::channel::<String>();
        let reader = std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines() {
                let Ok(line) = line else { break };
                if tx.send(line).is_err() {
                    break;
                }
            }
        });
        // Wait for the first acknowledgement so the kill lands mid-stream,
        // then let it run a random while longer.
        let first = rx
            .recv_timeout(Duration::from_secs(30))
            .expect("child acknowledges something");
        std::thread::sleep(Duration::from_millis(rng.random_range(0..60)));
        child.kill().expect("SIGKILL");
        child.wait().expect("reap");
        reader.join().expect("reader");
        let lines: Vec<String> = std::iter::once(first).chain(rx.try_iter()).collect();
        let before = acked.len();
        for line in lines {
            let mut parts = line.split(' ');
            // The kill can cut the last line short; an unfinished line was
            // never a complete acknowledgement.
            if let (Some("ACK"), Some(seq), Some(hash)) = (parts.next(), parts.next(), parts.next())
                && hash.len() == 64
            {
                acked.push((seq.parse().expect("seq"), hash.to_owned()));
            }
        }
        assert!(acked.len() > before, "round {round} acknowledged nothing");

        let log = Log::open(dir.path(), Service::Intel).expect("reopens after kill -9");
        let report = log.verify().expect("verify");
        assert_eq!(report.first_bad, None, "round {round}: chain breaks");
        assert_eq!(
            report.events_verified, report.head.seq,
            "round {round}: gapless from 1 to head"
        );
        let max = acked.iter().map(|(s, _)| *s).max().unwrap_or(0);
        assert!(
            report.head.seq >= max,
            "round {round}: head {} < acknowledged {max}",
            report.head.seq
        );
        for (seq, hash) in &acked {
            let got = log.read_events(*seq, 1).expect("read");
            assert_eq!(
                got.first().map(|e| (e.seq, e.hash.as_str())),
                Some((*seq, hash.as_str())),
                "round {round}"
            );
        }
    }
}
