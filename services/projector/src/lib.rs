//! The projector: what each country may see, built from the four writing
//! services' logs (docs/design.md, Visibility).
//!
//! Owns: the pure projection of typed events into per-country items and
//! feed reach ([`projection`]), and the causal order in which events of
//! several logs are applied ([`merge`]).
//!
//! Must not: decide who sees what (each contract's `audience` does, with
//! the facts its own service decides with), write to another service's
//! log, or send a command.

pub mod merge;
pub mod projection;

#[cfg(test)]
mod tests;
