//! The contracts of Concord's writing services: for each service, its
//! commands, events, queries and state as typed values, its pure `decide`
//! and `evolve`, and its `audience` (who may see what), each a
//! `concord_core::decider::Aggregate`; and the folds of its events that
//! other services keep (`operations::membership`, `crisis::status`,
//! `deployments::teams`); and the `projection` of all four into who may
//! see what (the projector serves it, the audit replays it as of an
//! instant).
//!
//! A service that follows another's events depends on this crate, never on
//! that service's runtime; the projector and the audit service fold and
//! filter with these very functions.
//!
//! Architecture invariant: no IO, no clock, no randomness (built on
//! `concord-core` alone, checked by `scripts/check-pure`); time and ids
//! arrive in the command or its `Ctx`, so replay gives the state live gave.
//! Must not: read or write the log, the bus or the clock.

pub mod audit;
pub mod crisis;
pub mod deployments;
pub mod intel;
pub mod operations;
pub mod projection;

/// The variant name of `value`, an event or a command (its type or name),
/// for messages: it is written once, in the serde attributes.
pub(crate) fn tag_of<T: serde::Serialize>(value: &T) -> String {
    concord_core::tagged::to_tagged(value).map_or_else(|e| e.0, |(tag, _)| tag)
}
