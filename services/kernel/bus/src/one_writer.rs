//! One writing instance per service log: before an instance binds its
//! subjects, it asks whoever answers the service's `log.head` which log
//! they write, and refuses to start beside another log.
//!
//! Rationale: commands go to the service's queue group, so two instances on
//! two data directories would split them between two diverging logs, and
//! every follower would end in a regression. The same log answering (the
//! instance it replaces, still draining) may be taken over: it is one
//! history.
//!
//! Must not: guess. An instance that subscribes but does not answer may be
//! a hung writer of another log, so it is refused too, with what to do.
//! Two instances started at the very same moment can both find nobody; a
//! lease that closes that window is for the issue that brings standbys.

use std::time::Duration;

use concord_core::envelope::Service;
use concord_core::subjects;
use concord_log::{Log, LogIdentity};

use crate::logs::{BusError, fetch_head};

/// How long one ask for the head may take.
const ASK_TIMEOUT: Duration = Duration::from_millis(500);
/// Asks before an unanswered subscription is taken for a live instance.
/// Rationale: a stopped instance's subscription can outlive it for a moment
/// (its unsubscribe is still on its way to the server); a live one answers.
const ASKS: u32 = 4;

#[derive(Debug, thiserror::Error)]
pub enum NotAlone {
    #[error(
        "refusing to start the {service} service: another instance already writes the {service} log {theirs}, \
         and this instance's log in {dir} is another one ({ours}); one instance writes a service's log, so stop \
         the other instance first if this log is to replace it (a standby that takes over is not built yet)"
    )]
    AnotherLog {
        service: Service,
        ours: LogIdentity,
        theirs: LogIdentity,
        dir: String,
    },
    #[error(
        "refusing to start the {service} service: another instance of a release before log identities already \
         writes a {service} log, and this instance's log in {dir} is {ours}; stop the other instance first"
    )]
    Unidentified {
        service: Service,
        ours: LogIdentity,
        dir: String,
    },
    #[error(
        "refusing to start the {service} service: something subscribes to {subject} but did not say which log \
         it writes within {waited:?}; another {service} instance may be hung, or gone without NATS noticing yet: \
         stop it, or retry once NATS has dropped its connection (this instance's log in {dir} is {ours})"
    )]
    Unanswered {
        service: Service,
        subject: String,
        waited: Duration,
        ours: LogIdentity,
        dir: String,
    },
    #[error("refusing to start the {service} service: cannot ask which log its instances write: {source}")]
    Bus {
        service: Service,
        #[source]
        source: BusError,
    },
}

/// Ok when no other instance answers for `log`'s service, or one answers
/// with `log`'s own identity.
pub async fn ensure_alone(client: &async_nats::Client, log: &Log) -> Result<(), NotAlone> {
    let service = log.service();
    let ours = log.identity();
    let dir = log.dir().display().to_string();
    for _ in 0..ASKS {
        match tokio::time::timeout(ASK_TIMEOUT, fetch_head(client, service)).await {
            Err(_) => continue,
            Ok(Err(BusError::NoResponders { .. })) => return Ok(()),
            Ok(Err(source)) => return Err(NotAlone::Bus { service, source }),
            Ok(Ok(head)) => {
                return match head.identity {
                    Some(theirs) if theirs == ours => Ok(()),
                    Some(theirs) => Err(NotAlone::AnotherLog {
                        service,
                        ours,
                        theirs,
                        dir,
                    }),
                    None => Err(NotAlone::Unidentified { service, ours, dir }),
                };
            }
        }
    }
    Err(NotAlone::Unanswered {
        service,
        subject: subjects::log_head(service),
        waited: ASK_TIMEOUT * ASKS,
        ours,
        dir,
    })
}
