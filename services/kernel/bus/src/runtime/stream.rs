//! Commands to one stream, decided one after another on the state each
//! leaves, appended in that order, and sharing the fsync.
//!
//! The commands waiting for a stream form a queue; one of their tasks at a
//! time leads it: it takes every command queued, decides each on the state
//! the ones before it leave, submits each append (expecting that version)
//! without waiting for the one before to be durable, then waits for all of
//! them, caches the state they leave and only then replies, so that a read
//! after any of these replies sees its command. Commands queued meanwhile
//! are the next round's, led by one of them. Rationale: a stream's commands
//! cannot be decided in parallel, and waiting for each one's fsync before
//! deciding the next held a busy stream to one command per fsync.
//!
//! A state decided on but not yet durable is only ever this round's: the
//! cache (what queries read) holds durable states alone. A command that
//! must know what the log recorded (a refusal, a version other than the
//! caller named, nothing to append) first waits for the appends before it.
//! An append refused in a round makes the ones after it conflict: they are
//! decided again on the state read afresh, once, as a conflict always was.

use std::collections::VecDeque;
use std::sync::Arc;

use concord_core::decider::{Aggregate, Ctx, Viewer};
use concord_core::envelope::ExpectedVersion;
use concord_core::reply::{ErrorCode, Reply};
use concord_log::{AppendRequest, Appended, Fingerprint, LogError, Submitted};
use serde_json::json;
use tracing::Instrument;

use super::{Runtime, log_reply, refused, reply};
use crate::cache::Entry;
use crate::logs::publish_appended_traced;

/// Commands one round takes, at most; the rest are the next round's.
/// Rationale: a round answers its commands once all are durable, so its
/// size bounds how long the first of them waits for the others' decisions.
const ROUND_COMMANDS_MAX: usize = 256;

/// One command on its way to its stream, checked and read.
pub(super) struct Work<A: Aggregate> {
    pub command: A::Command,
    pub stream: String,
    pub command_id: String,
    pub expected_version: Option<u64>,
    pub correlation_id: String,
    pub causation_id: Option<String>,
    pub causation_hlc: Option<concord_core::envelope::Hlc>,
    pub ctx: Ctx,
    pub fingerprint: Fingerprint,
    pub traceparent: Option<String>,
    /// The command's span: what is done for it in another command's task
    /// is still traced under it.
    pub span: tracing::Span,
    /// 1 once it conflicted and is decided again.
    pub attempt: u8,
}

/// A command queued for its stream and how its task hears back.
pub(super) struct Waiting<A: Aggregate> {
    work: Work<A>,
    reply: tokio::sync::oneshot::Sender<Reply>,
    /// Told when this task is to lead the stream's next round.
    lead: Option<tokio::sync::oneshot::Sender<()>>,
}

/// A stream's queue, and whether a task leads it.
pub(super) struct Slot<A: Aggregate> {
    queue: Vec<Waiting<A>>,
    led: bool,
}

impl<A: Aggregate> Default for Slot<A> {
    fn default() -> Self {
        Slot {
            queue: Vec::new(),
            led: false,
        }
    }
}

/// Held by the leading task: when it ends (or its task is dropped), the
/// next queued command's task leads, or the stream leaves the map.
struct Leading<'a, A: Aggregate> {
    rt: &'a Runtime<A>,
    stream: &'a str,
}

impl<A: Aggregate> Drop for Leading<'_, A> {
    fn drop(&mut self) {
        let mut turns = self.rt.turns.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        let Some(slot) = turns.get_mut(self.stream) else { return };
        loop {
            let Some(next) = slot.queue.iter_mut().find_map(|w| w.lead.take()) else {
                turns.remove(self.stream);
                return;
            };
            if next.send(()).is_ok() {
                return;
            }
            // That task is gone; its command is still answered by whoever
            // leads, so another queued task is asked.
        }
    }
}

/// An append submitted in this round, waiting to be durable.
struct Pending<A: Aggregate> {
    work: Work<A>,
    events: Vec<A::Event>,
    submitted: Submitted,
}

/// One round's state: the durable entry it started from, what it decided
/// on top of it, and the appends not yet durable.
struct Round<A: Aggregate> {
    base: Entry<A::State>,
    /// The state after the commands decided this round, but for the last
    /// one's events while `deferred`: a round of one folds the durable
    /// state itself once its append is durable, moved, not cloned.
    spec: Option<(A::State, u64)>,
    /// The version after the last submitted command, whose events are
    /// not folded into `spec` yet.
    deferred: Option<u64>,
    pending: Vec<Pending<A>>,
    /// `false` once the contract's fold refused the round's own events:
    /// no state of this round is cached.
    trusted: bool,
}

/// What the round does after one command.
enum Step<A: Aggregate> {
    Next,
    /// Decided on a state an append of this round did not make durable:
    /// this command and the rest wait for a round on the state read
    /// afresh.
    Restart(Box<Work<A>>),
}

impl<A: Aggregate> Runtime<A> {
    /// Decides and appends `work` in its stream's turn; its reply.
    pub(super) async fn on_stream(&self, work: Work<A>) -> Reply {
        let stream = work.stream.clone();
        let (reply_tx, mut reply_rx) = tokio::sync::oneshot::channel();
        let (lead_tx, lead_rx) = tokio::sync::oneshot::channel();
        let leads_now = {
            let mut turns = self.turns.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
            let slot = turns.entry(stream.clone()).or_default();
            slot.queue.push(Waiting {
                work,
                reply: reply_tx,
                lead: Some(lead_tx),
            });
            !std::mem::replace(&mut slot.led, true)
        };
        if !leads_now {
            tokio::select! {
                biased;
                answer = &mut reply_rx => return answered(answer),
                lead = lead_rx => {
                    if lead.is_err() {
                        // Taken into a round: its leader answers.
                        return answered(reply_rx.await);
                    }
                }
            }
        }
        let leading = Leading {
            rt: self,
            stream: &stream,
        };
        self.lead(&stream).await;
        drop(leading);
        answered(reply_rx.await)
    }

    /// Works through the stream's queue as it stands (up to
    /// `ROUND_COMMANDS_MAX` commands), each command answered.
    async fn lead(&self, stream: &str) {
        let waiting = {
            let mut turns = self.turns.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
            turns
                .get_mut(stream)
                .map(|s| {
                    let n = s.queue.len().min(ROUND_COMMANDS_MAX);
                    s.queue.drain(..n).collect::<Vec<_>>()
                })
                .unwrap_or_default()
        };
        let mut replies = Vec::with_capacity(waiting.len());
        let mut items: VecDeque<(usize, Work<A>)> = VecDeque::with_capacity(waiting.len());
        for (i, w) in waiting.into_iter().enumerate() {
            replies.push(Some(w.reply));
            items.push_back((i, w.work));
        }
        let mut answer = |i: usize, r: Reply| {
            if let Some(tx) = replies.get_mut(i).and_then(Option::take) {
                let _ = tx.send(r);
            }
        };
        let mut fresh = false;
        while !items.is_empty() {
            let base = match self.load(stream, fresh).await {
                Ok(e) => e,
                Err(r) => {
                    for (i, _) in items.drain(..) {
                        answer(i, r.clone());
                    }
                    return;
                }
            };
            let mut round = Round {
                base,
                spec: None,
                deferred: None,
                pending: Vec::new(),
                trusted: true,
            };
            let mut again: VecDeque<(usize, Work<A>)> = VecDeque::new();
            let mut ids = VecDeque::new();
            while let Some((i, work)) = items.pop_front() {
                ids.push_back(i);
                match self
                    .step(stream, &mut round, work, &mut ids, &mut again, &mut answer)
                    .await
                {
                    Step::Next => {}
                    Step::Restart(work) => {
                        again.push_back((i, *work));
                        again.extend(items.drain(..));
                        break;
                    }
                }
            }
            self.settle(stream, &mut round, &mut ids, &mut again, &mut answer).await;
            items = again;
            fresh = true;
        }
    }

    /// Decides one command on the round's state and submits its append,
    /// or answers it. `ids` holds the reply slots of the appends pending,
    /// then this command's.
    async fn step(
        &self,
        stream: &str,
        round: &mut Round<A>,
        work: Work<A>,
        ids: &mut VecDeque<usize>,
        again: &mut VecDeque<(usize, Work<A>)>,
        answer: &mut impl FnMut(usize, Reply),
    ) -> Step<A> {
        let Some(i) = ids.pop_back() else { return Step::Next };
        if !fold_deferred(round) {
            // The contract's fold refused its own events: past the
            // durable state nothing is trusted.
            round.trusted = false;
            self.settle(stream, round, ids, again, answer).await;
            self.cache.forget(stream);
            return Step::Restart(Box::new(work));
        }
        let mut version = round.spec.as_ref().map_or(round.base.version, |(_, v)| *v);
        if let Some(expected) = work.expected_version
            && expected != version
        {
            // What the caller named is judged against the durable version,
            // once the appends before it are: one may be refused.
            if !self.settle(stream, round, ids, again, answer).await {
                return Step::Restart(Box::new(work));
            }
            version = round.base.version;
            if expected != version {
                answer(i, self.mismatch(&work, expected, &round.base).await);
                return Step::Next;
            }
        }
        let decided = {
            let state = round.spec.as_ref().map_or(&*round.base.state, |(s, _)| s);
            match self.facts() {
                Ok(facts) => work.span.in_scope(|| {
                    tracing::info_span!("decide").in_scope(|| A::decide(state, &work.command, &facts, &work.ctx))
                }),
                Err(r) => {
                    answer(i, r);
                    return Step::Next;
                }
            }
        };
        let events = match decided {
            Ok(e) => e,
            Err(rejection) => {
                // A retry of a command that already took effect is often
                // refused by the state it produced; it answers its first
                // result instead (once the appends before it are durable).
                if !self.settle(stream, round, ids, again, answer).await {
                    return Step::Restart(Box::new(work));
                }
                let first = self
                    .first_result(&work.command_id, &work.fingerprint, &work.command, stream)
                    .await;
                answer(i, first.unwrap_or_else(|| refused(&rejection)));
                return Step::Next;
            }
        };
        let new_events = match self.new_events(&events) {
            Ok(n) => n,
            Err(r) => {
                answer(i, r);
                return Step::Next;
            }
        };
        if new_events.is_empty() {
            // Nothing to append, so the log never sees the id: a retry of
            // a command that took effect, or another request under a used
            // id, is told here.
            if !self.settle(stream, round, ids, again, answer).await {
                return Step::Restart(Box::new(work));
            }
            let first = self
                .first_result(&work.command_id, &work.fingerprint, &work.command, stream)
                .await;
            answer(
                i,
                first.unwrap_or_else(|| reply::<A>(&work.command, stream, &[], round.base.version)),
            );
            return Step::Next;
        }
        let req = AppendRequest {
            stream: stream.to_owned(),
            expected: if version == 0 {
                ExpectedVersion::NoStream
            } else {
                ExpectedVersion::Exact(version)
            },
            command_id: work.command_id.clone(),
            fingerprint: work.fingerprint.clone(),
            actor: work.ctx.actor.clone(),
            correlation_id: work.correlation_id.clone(),
            causation_id: work.causation_id.clone(),
            observed_hlc: work.causation_hlc,
            events: new_events,
        };
        let span = work.span.in_scope(|| tracing::info_span!("append"));
        match self.log.submit(req).instrument(span).await {
            Ok(submitted) => {
                round.deferred = Some(version + events.len() as u64);
                round.pending.push(Pending {
                    work,
                    events,
                    submitted,
                });
                ids.push_back(i);
            }
            Err(e) => answer(i, log_reply(&e)),
        }
        Step::Next
    }

    /// Waits for the round's appends, caches the state they leave when all
    /// are durable (else forgets it), then answers them: `true` when all
    /// were appended, so the round goes on from what they left.
    async fn settle(
        &self,
        stream: &str,
        round: &mut Round<A>,
        ids: &mut VecDeque<usize>,
        again: &mut VecDeque<(usize, Work<A>)>,
        answer: &mut impl FnMut(usize, Reply),
    ) -> bool {
        if round.pending.is_empty() {
            return true;
        }
        let pending = std::mem::take(&mut round.pending);
        let mut results = Vec::with_capacity(pending.len());
        for p in pending {
            let result = p.submitted.durable().await;
            results.push((p.work, p.events, result));
        }
        let whole = round.trusted && results.iter().all(|(_, _, r)| matches!(r, Ok(a) if !a.duplicate));
        let mut kept = whole;
        if whole {
            let added: u64 = results
                .iter()
                .filter_map(|(_, _, r)| r.as_ref().ok())
                .flat_map(|a| a.raw.iter().map(|r| r.len() as u64))
                .sum();
            let version = results
                .last()
                .and_then(|(_, _, r)| r.as_ref().ok())
                .map_or(round.base.version, Appended::version);
            // The last command's events, unless already folded (a round
            // goes on past its appends only after folding them).
            let last_events = match round.deferred.take() {
                Some(_) => results.last().map(|(_, e, _)| e.as_slice()).unwrap_or_default(),
                None => &[],
            };
            let folded = match round.spec.take() {
                Some((state, _)) => fold::<A>(state, last_events),
                None => {
                    // Moved out of the cache unless a query holds it now:
                    // states grow with their stream.
                    let state = std::mem::take(&mut round.base.state);
                    self.cache.take_if_same(stream, &state);
                    fold::<A>(Arc::unwrap_or_clone(state), last_events)
                }
            };
            match folded {
                Some(state) => {
                    let entry = Entry {
                        version,
                        state: Arc::new(state),
                        bytes: round.base.bytes.saturating_add(added),
                    };
                    round.base = self.cache.offer(stream, entry);
                }
                None => {
                    self.cache.forget(stream);
                    kept = false;
                }
            }
        } else {
            self.cache.forget(stream);
            round.spec = None;
            round.deferred = None;
        }
        for (work, _, result) in results {
            let Some(i) = ids.pop_front() else { continue };
            match result {
                Ok(appended) => {
                    // The events name the span that published them, when
                    // spans are exported; else the command's trace goes on.
                    let publishing = work.span.in_scope(|| tracing::info_span!("publish"));
                    let named = crate::trace::traceparent_of(&publishing);
                    let sent = publish_appended_traced(
                        &self.client,
                        &appended,
                        named.as_deref().or(work.traceparent.as_deref()),
                    );
                    if let Err(e) = sent.instrument(publishing).await {
                        // Durable already; consumers will read it from the log.
                        tracing::warn!(error = %e, "publishing events failed");
                    }
                    answer(
                        i,
                        reply::<A>(&work.command, stream, &appended.events, appended.version()),
                    );
                }
                Err(LogError::Conflict { .. }) if work.attempt == 0 && work.expected_version.is_none() => {
                    again.push_back((i, Work { attempt: 1, ..work }));
                }
                Err(e @ LogError::Conflict { .. }) => {
                    let first = self
                        .first_result(&work.command_id, &work.fingerprint, &work.command, stream)
                        .await;
                    answer(i, first.unwrap_or_else(|| log_reply(&e)));
                }
                Err(e) => answer(i, log_reply(&e)),
            }
        }
        kept
    }

    /// The answer to a command that named another version than the
    /// stream's durable one.
    async fn mismatch(&self, work: &Work<A>, expected: u64, base: &Entry<A::State>) -> Reply {
        let stream = work.stream.as_str();
        let version = base.version;
        if let Some(first) = self
            .first_result(&work.command_id, &work.fingerprint, &work.command, stream)
            .await
        {
            return first;
        }
        // Existence must not leak, whatever the headers: to a caller who
        // may not see the stream (or of one that does not exist), the
        // answer is the decider's, as without If-Match (`not_found`); a
        // version only to one who sees it.
        let viewer = Viewer {
            country: work.ctx.actor.country,
            role: work.ctx.actor.role,
        };
        match self.facts() {
            Ok(facts) => {
                let seen = version > 0 && A::audience(&base.state, &facts).admits(&viewer);
                if !seen && let Err(r) = A::decide(&base.state, &work.command, &facts, &work.ctx) {
                    return refused(&r);
                }
            }
            Err(reply) => return reply,
        }
        Reply::error_with(
            ErrorCode::Conflict,
            format!("{stream} is at version {version}, expected {expected}"),
            json!({"expected": expected, "actual": version}),
        )
    }
}

/// Folds the last submitted command's events into the round's state
/// (cloning the durable one the first time); `false` when the contract's
/// fold refuses them.
fn fold_deferred<A: Aggregate>(round: &mut Round<A>) -> bool {
    let Some(version) = round.deferred.take() else {
        return true;
    };
    let Some(last) = round.pending.last() else { return true };
    let state = match round.spec.take() {
        Some((s, _)) => s,
        None => (*round.base.state).clone(),
    };
    match fold::<A>(state, &last.events) {
        Some(state) => {
            round.spec = Some((state, version));
            true
        }
        None => false,
    }
}

/// `state` after `events`, or `None` when the contract's fold refuses one.
fn fold<A: Aggregate>(mut state: A::State, events: &[A::Event]) -> Option<A::State> {
    for e in events {
        state = A::evolve(state, e).ok()?;
    }
    Some(state)
}

fn answered(answer: Result<Reply, tokio::sync::oneshot::error::RecvError>) -> Reply {
    answer.unwrap_or_else(|_| {
        Reply::error(
            ErrorCode::Unavailable,
            "the command's stream stopped being worked on before it was answered; retry",
        )
    })
}
