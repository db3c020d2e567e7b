//! The event envelope every writing service stores and publishes, and the
//! small value types it is made of. Pure data: no IO, no fjall, no NATS.

use std::fmt;

use serde::{Deserialize, Serialize};
use serde_json::Value;
use uuid::Uuid;

use crate::country::CountryCode;

/// A writing service, i.e. the owner of one event log.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Service {
    Operations,
    Intel,
    Crisis,
    Deployments,
    /// The audit service's access log: who read what through the gateway.
    Audit,
}

impl Service {
    /// The services whose events make the domain (operations, leads,
    /// crises, deployments): what the projector folds, the gateway's
    /// commands address and an operation's timeline holds.
    pub const ALL: [Service; 4] = [
        Service::Operations,
        Service::Intel,
        Service::Crisis,
        Service::Deployments,
    ];

    /// Every writing service's log: the domain's and the audit's access
    /// log (what the audit verifies and signs, the operator backs up).
    pub const LOGS: [Service; 5] = [
        Service::Operations,
        Service::Intel,
        Service::Crisis,
        Service::Deployments,
        Service::Audit,
    ];

    pub fn as_str(&self) -> &'static str {
        match self {
            Service::Operations => "operations",
            Service::Intel => "intel",
            Service::Crisis => "crisis",
            Service::Deployments => "deployments",
            Service::Audit => "audit",
        }
    }

    pub fn parse(s: &str) -> Option<Self> {
        Self::LOGS.into_iter().find(|svc| svc.as_str() == s)
    }
}

impl fmt::Display for Service {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// What a user may do (the JWT `role` claim).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Role {
    Coordinator,
    Liaison,
    Reviewer,
    Auditor,
}

impl Role {
    pub fn as_str(&self) -> &'static str {
        match self {
            Role::Coordinator => "coordinator",
            Role::Liaison => "liaison",
            Role::Reviewer => "reviewer",
            Role::Auditor => "auditor",
        }
    }
}

/// Who did it: recorded on every event so auditors can replay who did what.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Actor {
    pub sub: String,
    pub role: Role,
    pub country: CountryCode,
}

/// Hybrid logical clock stamp: wall-clock milliseconds, and a counter that
/// orders stamps within one millisecond or when a peer's clock runs ahead.
/// Ordered by `(wall_ms, logical)`, which is consistent with causality
/// across services when every service merges the stamps it observes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Hlc {
    pub wall_ms: u64,
    pub logical: u32,
}

impl Hlc {
    /// The next stamp after `self`, given the local wall clock and an
    /// optional stamp observed on a message that caused this one.
    pub fn tick(self, now_ms: u64, observed: Option<Hlc>) -> Hlc {
        let obs = observed.unwrap_or_default();
        let wall_ms = now_ms.max(self.wall_ms).max(obs.wall_ms);
        let logical = match (wall_ms == self.wall_ms, wall_ms == obs.wall_ms) {
            (true, true) => self.logical.max(obs.logical).saturating_add(1),
            (true, false) => self.logical.saturating_add(1),
            (false, true) => obs.logical.saturating_add(1),
            (false, false) => 0,
        };
        Hlc { wall_ms, logical }
    }
}

/// A stored event, exactly the shape of `schemas/envelope/event.schema.json`.
/// Field order here is the order of the stored JSON; the hash does not depend
/// on it (see `chain`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct EventEnvelope {
    pub id: Uuid,
    pub service: Service,
    pub seq: u64,
    pub stream: String,
    pub version: u64,
    #[serde(rename = "type")]
    pub event_type: String,
    pub schema_version: u32,
    pub recorded_at: String,
    pub hlc: Hlc,
    pub actor: Actor,
    pub command_id: String,
    pub correlation_id: String,
    pub causation_id: Option<String>,
    pub data: Value,
    /// Lowercase hex SHA-256 of `data`'s canonical bytes: what the hash
    /// chain covers of the data (`chain::seal`).
    pub data_digest: String,
    pub prev_hash: String,
    pub hash: String,
}

/// What a writer expects a stream's current version to be.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(try_from = "Value", into = "Value")]
pub enum ExpectedVersion {
    /// Append whatever the stream's version.
    Any,
    /// The stream must not exist yet (version 0).
    NoStream,
    /// The stream must be exactly at this version (>= 1).
    Exact(u64),
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("invalid expected version {0}: expected \"any\", \"no_stream\" or a version number >= 1")]
pub struct BadExpectedVersion(pub String);

impl ExpectedVersion {
    /// Whether a stream currently at `actual` satisfies the expectation.
    pub fn admits(&self, actual: u64) -> bool {
        match self {
            ExpectedVersion::Any => true,
            ExpectedVersion::NoStream => actual == 0,
            ExpectedVersion::Exact(v) => *v == actual,
        }
    }
}

impl std::str::FromStr for ExpectedVersion {
    type Err = BadExpectedVersion;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "any" => Ok(Self::Any),
            "no_stream" => Ok(Self::NoStream),
            _ => match s.parse::<u64>() {
                Ok(v) if v >= 1 && s.bytes().all(|b| b.is_ascii_digit()) => Ok(Self::Exact(v)),
                _ => Err(BadExpectedVersion(format!("{s:?}"))),
            },
        }
    }
}

impl TryFrom<Value> for ExpectedVersion {
    type Error = BadExpectedVersion;
    fn try_from(v: Value) -> Result<Self, Self::Error> {
        match &v {
            Value::String(s) => s.parse(),
            Value::Number(n) => match n.as_u64() {
                Some(x) if x >= 1 => Ok(Self::Exact(x)),
                _ => Err(BadExpectedVersion(n.to_string())),
            },
            other => Err(BadExpectedVersion(other.to_string())),
        }
    }
}

impl From<ExpectedVersion> for Value {
    fn from(v: ExpectedVersion) -> Value {
        match v {
            ExpectedVersion::Any => Value::from("any"),
            ExpectedVersion::NoStream => Value::from("no_stream"),
            ExpectedVersion::Exact(n) => Value::from(n),
        }
    }
}

impl fmt::Display for ExpectedVersion {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ExpectedVersion::Any => f.write_str("any"),
            ExpectedVersion::NoStream => f.write_str("no_stream"),
            ExpectedVersion::Exact(n) => write!(f, "{n}"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn expected_version_forms() {
        assert_eq!("any".parse(), Ok(ExpectedVersion::Any));
        assert_eq!("no_stream".parse(), Ok(ExpectedVersion::NoStream));
        assert_eq!("7".parse(), Ok(ExpectedVersion::Exact(7)));
        for bad in ["latest", "0", "-1", "+3", "", "1.5", "ANY"] {
            let e = bad.parse::<ExpectedVersion>().expect_err(bad);
            assert!(e.to_string().starts_with("invalid expected version"), "{e}");
        }
        let from_json: Result<ExpectedVersion, _> = serde_json::from_str("3");
        assert_eq!(from_json.ok(), Some(ExpectedVersion::Exact(3)));
        assert!(serde_json::from_str::<ExpectedVersion>("true").is_err());
        assert!(serde_json::from_str::<ExpectedVersion>("\"sometimes\"").is_err());
    }

    #[test]
    fn expected_version_admits() {
        assert!(ExpectedVersion::Any.admits(0) && ExpectedVersion::Any.admits(9));
        assert!(ExpectedVersion::NoStream.admits(0) && !ExpectedVersion::NoStream.admits(1));
        assert!(ExpectedVersion::Exact(2).admits(2) && !ExpectedVersion::Exact(2).admits(3));
    }

    #[test]
    fn hlc_is_monotonic_and_merges_observed_stamps() {
        let a = Hlc {
            wall_ms: 100,
            logical: 0,
        };
        // Clock went backwards: still after a.
        assert_eq!(
            a.tick(50, None),
            Hlc {
                wall_ms: 100,
                logical: 1
            }
        );
        // Clock moved on: counter resets.
        assert_eq!(
            a.tick(200, None),
            Hlc {
                wall_ms: 200,
                logical: 0
            }
        );
        // A peer ahead of us: we follow it, after it.
        let peer = Hlc {
            wall_ms: 300,
            logical: 4,
        };
        assert_eq!(
            a.tick(200, Some(peer)),
            Hlc {
                wall_ms: 300,
                logical: 5
            }
        );
        // Same millisecond everywhere: after both.
        let b = Hlc {
            wall_ms: 300,
            logical: 9,
        };
        assert_eq!(
            b.tick(300, Some(peer)),
            Hlc {
                wall_ms: 300,
                logical: 10
            }
        );
    }

    #[test]
    fn service_names_round_trip() {
        for s in Service::ALL {
            assert_eq!(Service::parse(s.as_str()), Some(s));
        }
        assert_eq!(Service::parse("gateway"), None);
    }
}
