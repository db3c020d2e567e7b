//! Decider tests that read `given(events).when(command, actor).then(events)`
//! for any contract: the history is folded with the contract's own `evolve`,
//! the command decided with its own `decide`, and the decided events are
//! checked against their JSON Schemas (the runtime refuses to append an
//! event that does not match) and folded again (what `decide` produced,
//! `evolve` must accept). So every decider test is also a schema test.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, OnceLock};

use concord_bus::schema::{self, Schemas};
use concord_core::decider::{Aggregate, Ctx, Rejection};
use concord_core::envelope::{Actor, Service};
use concord_core::reply::ErrorCode;
use concord_core::tagged::{to_tagged, variant_names};

/// The clock every story runs at unless it says otherwise.
pub const NOW: &str = "2026-11-23T09:30:00.000000Z";

/// The state after `events`, in order; panics (naming the event) when the
/// contract's `evolve` refuses one: a test history must be a possible one.
#[track_caller]
pub fn replay<'a, A: Aggregate>(events: impl IntoIterator<Item = &'a A::Event>) -> A::State {
    events.into_iter().fold(A::State::default(), |state, e| {
        A::evolve(state, e).unwrap_or_else(|why| panic!("{why}"))
    })
}

pub struct Given<A: Aggregate> {
    history: Vec<A::Event>,
    facts: A::Facts,
}

/// A stream whose history is `events`, with default facts.
pub fn given<A: Aggregate>(events: impl IntoIterator<Item = A::Event>) -> Given<A> {
    Given {
        history: events.into_iter().collect(),
        facts: A::Facts::default(),
    }
}

impl<A: Aggregate> Given<A> {
    /// What the service knows from the logs it follows.
    pub fn with_facts(mut self, facts: A::Facts) -> Given<A> {
        self.facts = facts;
        self
    }

    pub fn when(self, command: A::Command, actor: Actor) -> When<A> {
        self.when_at(command, actor, NOW)
    }

    pub fn when_at(self, command: A::Command, actor: Actor, now: &str) -> When<A> {
        let state = replay::<A>(&self.history);
        let ctx = Ctx {
            actor,
            now: now.to_owned(),
        };
        let result = A::decide(&state, &command, &self.facts, &ctx);
        When {
            history: self.history,
            facts: self.facts,
            result,
        }
    }
}

pub struct When<A: Aggregate> {
    history: Vec<A::Event>,
    facts: A::Facts,
    pub result: Result<Vec<A::Event>, Rejection>,
}

impl<A: Aggregate> When<A>
where
    A::Event: PartialEq + Clone,
{
    /// Asserts the events decided and returns the history with them, so a
    /// story can go on.
    #[track_caller]
    pub fn then(self, expected: impl IntoIterator<Item = A::Event>) -> Vec<A::Event> {
        self.then_with_facts(expected).0
    }

    /// `then`, giving back the facts too.
    #[track_caller]
    pub fn then_with_facts(self, expected: impl IntoIterator<Item = A::Event>) -> (Vec<A::Event>, A::Facts) {
        let expected: Vec<A::Event> = expected.into_iter().collect();
        match self.result {
            Ok(events) => assert_eq!(events, expected),
            Err(r) => panic!("refused with {}: {r}", r.code().as_str()),
        }
        assert_match_schemas::<A>(&expected);
        let mut history = self.history;
        history.extend(expected);
        let _ = replay::<A>(&history);
        (history, self.facts)
    }

    /// Asserts a refusal with `code` whose message contains `contains`, is
    /// lowercase (it may start with a country code) and has no final period.
    #[track_caller]
    pub fn then_rejected(self, code: ErrorCode, contains: &str) {
        match self.result {
            Ok(events) => panic!("accepted, expected {}: {events:?}", code.as_str()),
            Err(r) => {
                let message = r.to_string();
                assert_eq!(r.code(), code, "{message}");
                assert!(message.contains(contains), "{message:?} does not contain {contains:?}");
                assert!(!message.ends_with('.'), "{message:?} ends with a period");
                let mut first = message.chars();
                let capitalized =
                    matches!((first.next(), first.next()), (Some(a), Some(b)) if a.is_uppercase() && b.is_lowercase());
                assert!(!capitalized, "{message:?} is capitalized");
            }
        }
    }
}

/// The service's schemas, compiled once per test process: each of its
/// commands, queries and event types must have one.
pub fn schemas<A: Aggregate>() -> Arc<Schemas> {
    static COMPILED: OnceLock<Mutex<HashMap<Service, Arc<Schemas>>>> = OnceLock::new();
    let mut compiled = COMPILED
        .get_or_init(Mutex::default)
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner);
    compiled
        .entry(A::SERVICE)
        .or_insert_with(|| {
            let s = Schemas::for_service(
                A::SERVICE,
                variant_names::<A::Command>(),
                variant_names::<A::Query>(),
                variant_names::<A::Event>(),
            )
            .unwrap_or_else(|e| panic!("{} schemas: {e}", A::SERVICE));
            Arc::new(s)
        })
        .clone()
}

/// Each event's data matches its type's schema, as the runtime requires
/// before it appends.
#[track_caller]
pub fn assert_match_schemas<A: Aggregate>(events: &[A::Event]) {
    let schemas = schemas::<A>();
    for e in events {
        let (event_type, data) = to_tagged(e).unwrap_or_else(|err| panic!("{e:?} does not serialize: {err}"));
        let name = schema::event_name(A::SERVICE, &event_type);
        match schemas.check(&name, &data) {
            Ok(Ok(())) => {}
            Ok(Err(v)) => panic!("{event_type} {data} does not match {name}: {v:#?}"),
            Err(err) => panic!("{name}: {err}"),
        }
    }
}
