//! The intel service: leads (tips), arrests and notices with their
//! compliance review.
//!
//! Owns three kinds of aggregate in one log (`domain`): leads posted to an
//! operation, arrests reported in one, and notices requested, reviewed,
//! published or rejected, and cancelled; the commands they accept, the events
//! they record, `decide` and `try_evolve`, the rules that refuse a command
//! and who may see each (DESIGN.md, Visibility). What it knows of operations
//! (who takes part, whether closed) it folds from the operations service's
//! events into `domain::OperationsView`; it never calls that service.
//!
//! Architecture invariant: `domain` does no IO and imports neither tokio,
//! async-nats nor fjall; time, ids, the actor and the operations view arrive
//! in the command, its `Ctx` or as arguments, so `decide` is deterministic
//! and a replay gives the same state as live. Must not: read or write the
//! log, the bus or the clock from `domain`.

pub mod domain;
pub mod service;
