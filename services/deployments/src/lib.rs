//! The deployments service: specialist teams (incident response, victim
//! identification, major events support, cyber, forensics) sent by one or
//! more countries to a host country, for a crisis or for a joint operation.
//!
//! Owns one kind of aggregate (`domain`): a deployment, requested by a
//! contributing country, approved or declined by the host (no team lands
//! without the host's consent), arrived, ended or recalled, and asked to
//! stand down when its crisis closes; the commands it accepts, the events it
//! records, `decide` and `try_evolve`, the rules that refuse a command and
//! who may see it (DESIGN.md, Visibility). What it knows of crises (their
//! country, whether closed) and of operations (who takes part, whether
//! closed) it folds from those services' events into `domain::CrisesView`
//! and `domain::OperationsView`; it never calls them.
//!
//! Architecture invariant: `domain` does no IO and imports neither tokio,
//! async-nats nor fjall; time, ids, the actor and the views arrive in the
//! command, its `Ctx` or as arguments, so `decide` is deterministic and a
//! replay gives the same state as live. Must not: read or write the log, the
//! bus or the clock from `domain`.

pub mod domain;
pub mod service;
