//! The operations service: joint operations, their participants and tasks.
//!
//! Owns the operations aggregate (`domain`): the commands it accepts, the
//! events it records, `decide` and `evolve`, the rules that refuse a command
//! and who may see an operation (the lead and the participating countries).
//!
//! Architecture invariant: `domain` does no IO and imports neither tokio,
//! async-nats nor fjall; time, ids and the actor arrive in the command or its
//! `Ctx`, so `decide` is deterministic and a replay gives the same state as
//! live. Must not: read or write the log, the bus or the clock from `domain`;
//! `service` is the only IO edge (the kernel runtime over NATS and the log).

pub mod domain;
pub mod membership;
pub mod service;

pub use service::{Config, Operations, run};
