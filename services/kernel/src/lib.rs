//! The Concord kernel: what every service shares.
//!
//! Owns the event envelope and its value types (`envelope`, `country`), the
//! hash chain (`chain`) and, behind the `store` feature, the durable event
//! log on fjall (`log`), the subjects and reply shape of the bus (`subjects`,
//! `reply`) and, behind `bus`, serving logs over NATS (`bus`) and the test
//! harness that starts a real nats-server (`harness`).
//!
//! Architecture invariant: `envelope`, `country` and `chain` do no IO and
//! import neither fjall nor async-nats, so a service's pure domain code can
//! depend on them (`default-features = false`) and stay deterministic.
//! Must not: hold any domain rule of a particular service.

pub mod auth;
#[cfg(feature = "bus")]
pub mod bus;
pub mod chain;
#[cfg(feature = "bus")]
pub mod consumer;
pub mod country;
pub mod decider;
pub mod envelope;
#[cfg(feature = "bus")]
pub mod follow;
#[cfg(feature = "bus")]
pub mod harness;
#[cfg(feature = "store")]
pub mod log;
pub mod reply;
#[cfg(feature = "bus")]
pub mod runtime;
#[cfg(feature = "bus")]
pub mod schema;
pub mod subjects;

pub use country::CountryCode;
pub use envelope::{Actor, EventEnvelope, ExpectedVersion, Hlc, Role, Service};
