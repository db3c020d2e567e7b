//! The crisis service: crises declared by a country's liaison, their
//! situation reports (sitreps), assistance requests, changes of severity and
//! closing.
//!
//! Owns one kind of aggregate (`domain`): a crisis, with the commands it
//! accepts, the events it records, `decide` and `try_evolve`, and the rules
//! that refuse a command. Every country sees a crisis and its sitreps
//! (DESIGN.md, Visibility). What it knows of deployments (which countries
//! have a team at a crisis) it folds from the deployments service's events
//! into `domain::TeamsView`; it never calls that service.
//!
//! Architecture invariant: `domain` does no IO and imports neither tokio,
//! async-nats nor fjall; time, ids, the actor and the teams view arrive in
//! the command, its `Ctx` or as arguments, so `decide` is deterministic and
//! a replay gives the same state as live. Must not: read or write the log,
//! the bus or the clock from `domain`.

pub mod domain;
pub mod service;
