//! The pure core of the Concord kernel: what every crate shares and what a
//! service's contract is written in.
//!
//! Owns the event envelope and its value types (`envelope`, `country`), the
//! hash chain and canonical JSON (`chain`), the one strict JSON parser for
//! input from outside (`json`), the subjects of the bus
//! (`subjects`), the `{ok, error}` reply and its codes (`reply`), bearer
//! tokens (`auth`), and what every decider shares (`decider`: the typed
//! `Aggregate`, its `Rejection`, audiences; `tagged`: commands and events as
//! serde enums named once).
//!
//! Architecture invariant: no IO. This crate depends on neither fjall, nor
//! async-nats, nor tokio (CI builds it alone to prove it), so a contract
//! written on it is deterministic and replay gives the same state as live.
//! Must not: hold a domain rule of any service.

pub mod auth;
pub mod chain;
pub mod country;
pub mod decider;
pub mod envelope;
pub mod json;
pub mod reply;
pub mod subjects;
pub mod tagged;

pub use country::CountryCode;
pub use envelope::{Actor, EventEnvelope, ExpectedVersion, Hlc, Role, Service};
