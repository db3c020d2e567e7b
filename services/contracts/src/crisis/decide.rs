//! The crisis contract's `decide` and `evolve` (the rules are in the
//! parent module's doc).

use std::collections::BTreeSet;

use concord_core::decider::{Ctx, Rejection, required_text};
use concord_core::{Actor, Role};

use super::*;
use crate::deployments::teams::TeamsView;
use crate::tag_of;

// ---------------------------------------------------------------- decide

/// The events `cmd` produces on `state`, or why it is refused (then nothing
/// is recorded). Deterministic: everything it needs is in its arguments.
pub(super) fn decide(state: &State, cmd: &Command, teams: &TeamsView, ctx: &Ctx) -> Result<Vec<Event>, Rejection> {
    match cmd {
        Command::DeclareCrisis(c) => decide_declare(state, c, ctx),
        Command::PostSitrep(c) => decide_post_sitrep(state, c, teams, ctx),
        Command::RequestAssistance(c) => decide_request_assistance(state, c, ctx),
        Command::Escalate(c) => decide_change_severity(state, c, Direction::Up, ctx),
        Command::Deescalate(c) => decide_change_severity(state, c, Direction::Down, ctx),
        Command::CloseCrisis(c) => decide_close(state, c, ctx),
    }
}

fn decide_declare(state: &State, cmd: &DeclareCrisis, ctx: &Ctx) -> Result<Vec<Event>, Rejection> {
    let actor = &ctx.actor;
    if let State::Crisis(crisis) = state {
        not_closed(crisis)?;
    }
    if actor.role != Role::Liaison || actor.country != cmd.country {
        return Err(Rejection::Forbidden(format!(
            "only a liaison of {} can declare a crisis in {}",
            cmd.country, cmd.country
        )));
    }
    if cmd.country.is_secretariat() {
        return Err(Rejection::Invalid(
            "country GS is the secretariat, not a country a crisis can strike".into(),
        ));
    }
    required_text("title", &cmd.title, TITLE_CHARS_MAX)?;
    if *state != State::Empty {
        return Err(Rejection::Conflict(format!("crisis {} already exists", cmd.crisis_id)));
    }
    Ok(vec![Event::CrisisDeclared(CrisisDeclared {
        crisis_id: cmd.crisis_id,
        kind: cmd.kind,
        title: cmd.title.clone(),
        country: cmd.country,
        severity: cmd.severity,
        declared_by: actor.sub.clone(),
        declared_at: ctx.now.clone(),
    })])
}

fn decide_post_sitrep(state: &State, cmd: &PostSitrep, teams: &TeamsView, ctx: &Ctx) -> Result<Vec<Event>, Rejection> {
    let actor = &ctx.actor;
    let crisis = open_crisis(state)?;
    let reporter = actor.country == crisis.country || teams.has_team(crisis.id, actor.country);
    if actor.role != Role::Liaison || !reporter {
        return Err(Rejection::Forbidden(format!(
            "only a liaison of the affected country {} or of a country with a team deployed there can post a sitrep",
            crisis.country
        )));
    }
    required_text("text", &cmd.text, SITREP_TEXT_CHARS_MAX)?;
    if cmd.casualties.is_some_and(|c| !c.reports_any()) {
        return Err(Rejection::Invalid(
            "casualties reports at least one of dead, injured, missing; leave it out when none is known".into(),
        ));
    }
    if crisis.sitreps.iter().any(|s| s.sitrep_id == cmd.sitrep_id) {
        return Err(Rejection::Conflict(format!("sitrep {} already exists", cmd.sitrep_id)));
    }
    if crisis.sitreps.len() >= SITREPS_MAX {
        return Err(Rejection::RuleViolated(format!(
            "a crisis holds at most {SITREPS_MAX} sitreps; declare a follow-up crisis"
        )));
    }
    Ok(vec![Event::SitrepPosted(SitrepPosted {
        sitrep_id: cmd.sitrep_id,
        text: cmd.text.clone(),
        casualties: cmd.casualties,
        needs: cmd.needs.as_deref().map(canonical_needs),
        country: actor.country,
        posted_by: actor.sub.clone(),
        posted_at: ctx.now.clone(),
    })])
}

fn decide_request_assistance(state: &State, cmd: &RequestAssistance, ctx: &Ctx) -> Result<Vec<Event>, Rejection> {
    let actor = &ctx.actor;
    let crisis = open_crisis(state)?;
    affected_liaison_only(crisis, actor, "request assistance")?;
    if cmd.needs.is_empty() {
        return Err(Rejection::Invalid("needs names at least one need".into()));
    }
    if let Some(details) = &cmd.details {
        required_text("details", details, DETAILS_CHARS_MAX)?;
    }
    if crisis
        .assistance_requests
        .iter()
        .any(|r| r.request_id == cmd.request_id)
    {
        return Err(Rejection::Conflict(format!(
            "assistance request {} already exists",
            cmd.request_id
        )));
    }
    if crisis.assistance_requests.len() >= ASSISTANCE_REQUESTS_MAX {
        return Err(Rejection::RuleViolated(format!(
            "a crisis holds at most {ASSISTANCE_REQUESTS_MAX} assistance requests"
        )));
    }
    Ok(vec![Event::AssistanceRequested(AssistanceRequested {
        request_id: cmd.request_id,
        needs: canonical_needs(&cmd.needs),
        details: cmd.details.clone(),
        requested_by: actor.sub.clone(),
        requested_at: ctx.now.clone(),
    })])
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Direction {
    Up,
    Down,
}

fn decide_change_severity(
    state: &State,
    cmd: &ChangeSeverity,
    direction: Direction,
    ctx: &Ctx,
) -> Result<Vec<Event>, Rejection> {
    let actor = &ctx.actor;
    let crisis = open_crisis(state)?;
    let what = match direction {
        Direction::Up => "escalate the crisis",
        Direction::Down => "de-escalate the crisis",
    };
    affected_liaison_only(crisis, actor, what)?;
    required_text("reason", &cmd.reason, REASON_CHARS_MAX)?;
    let (from, to) = (crisis.severity, cmd.severity);
    match direction {
        Direction::Up if to <= from => {
            return Err(Rejection::RuleViolated(format!(
                "severity {to} is not higher than the current {from}; escalating raises it"
            )));
        }
        Direction::Down if to >= from => {
            return Err(Rejection::RuleViolated(format!(
                "severity {to} is not lower than the current {from}; de-escalating lowers it"
            )));
        }
        _ => {}
    }
    if crisis.severity_changes.len() >= SEVERITY_CHANGES_MAX {
        return Err(Rejection::RuleViolated(format!(
            "a crisis changes severity at most {SEVERITY_CHANGES_MAX} times"
        )));
    }
    let change = SeverityChanged {
        from,
        to,
        reason: cmd.reason.clone(),
        by: actor.sub.clone(),
        at: ctx.now.clone(),
    };
    Ok(vec![match direction {
        Direction::Up => Event::CrisisEscalated(change),
        Direction::Down => Event::CrisisDeescalated(change),
    }])
}

fn decide_close(state: &State, cmd: &CloseCrisis, ctx: &Ctx) -> Result<Vec<Event>, Rejection> {
    let actor = &ctx.actor;
    let crisis = open_crisis(state)?;
    affected_liaison_only(crisis, actor, "close the crisis")?;
    required_text("summary", &cmd.summary, SUMMARY_CHARS_MAX)?;
    Ok(vec![Event::CrisisClosed(CrisisClosed {
        crisis_id: crisis.id,
        summary: cmd.summary.clone(),
        closed_by: actor.sub.clone(),
        closed_at: ctx.now.clone(),
    })])
}

/// Steps 1 and 2 for a command on an existing crisis.
fn open_crisis(state: &State) -> Result<&CrisisRecord, Rejection> {
    match state {
        State::Empty => Err(Rejection::NotFound("crisis not found".into())),
        State::Crisis(crisis) => {
            not_closed(crisis)?;
            Ok(crisis)
        }
    }
}

fn not_closed(crisis: &CrisisRecord) -> Result<(), Rejection> {
    match crisis.status {
        CrisisStatus::Active => Ok(()),
        CrisisStatus::Closed => Err(Rejection::RuleViolated("crisis is closed".into())),
    }
}

fn affected_liaison_only(crisis: &CrisisRecord, actor: &Actor, what: &str) -> Result<(), Rejection> {
    if actor.role == Role::Liaison && actor.country == crisis.country {
        Ok(())
    } else {
        Err(Rejection::Forbidden(format!(
            "only a liaison of the affected country {} can {what}",
            crisis.country
        )))
    }
}

/// Without duplicates, in the order of `Need::ALL`.
fn canonical_needs(needs: &[Need]) -> Vec<Need> {
    needs.iter().copied().collect::<BTreeSet<_>>().into_iter().collect()
}

// ---------------------------------------------------------------- evolve

/// The state after `event`, or why `event` cannot follow `state`.
///
/// It cannot when the stream would make no sense: a first event that does
/// not declare a crisis; a declaration on a stream that already holds one;
/// anything after the closing; a sitrep or an assistance request whose id
/// the crisis already holds; a change of severity that does not start from
/// the current one or goes the wrong way; a closing of another crisis. The
/// log only ever holds what `decide` produced, under a hash chain, so such
/// a sequence means a corrupt log, and carrying on from a silently skipped
/// event would answer with a wrong state.
pub(super) fn evolve(state: State, event: &Event) -> Result<State, String> {
    let corrupt = |state: &State| format!("corrupt crisis stream: {} on {}", tag_of(event), state.describe());
    match (state, event) {
        (State::Empty, Event::CrisisDeclared(e)) => Ok(State::Crisis(CrisisRecord {
            id: e.crisis_id,
            kind: e.kind,
            title: e.title.clone(),
            country: e.country,
            severity: e.severity,
            declared_by: e.declared_by.clone(),
            declared_at: e.declared_at.clone(),
            status: CrisisStatus::Active,
            sitreps: Vec::new(),
            assistance_requests: Vec::new(),
            severity_changes: Vec::new(),
            closure: None,
        })),
        (State::Crisis(mut c), Event::SitrepPosted(e))
            if c.status == CrisisStatus::Active && !c.sitreps.iter().any(|s| s.sitrep_id == e.sitrep_id) =>
        {
            c.sitreps.push(e.clone());
            Ok(State::Crisis(c))
        }
        (State::Crisis(mut c), Event::AssistanceRequested(e))
            if c.status == CrisisStatus::Active
                && !c.assistance_requests.iter().any(|r| r.request_id == e.request_id) =>
        {
            c.assistance_requests.push(e.clone());
            Ok(State::Crisis(c))
        }
        (State::Crisis(mut c), Event::CrisisEscalated(e))
            if c.status == CrisisStatus::Active && e.from == c.severity && e.to > e.from =>
        {
            c.severity = e.to;
            c.severity_changes.push(e.clone());
            Ok(State::Crisis(c))
        }
        (State::Crisis(mut c), Event::CrisisDeescalated(e))
            if c.status == CrisisStatus::Active && e.from == c.severity && e.to < e.from =>
        {
            c.severity = e.to;
            c.severity_changes.push(e.clone());
            Ok(State::Crisis(c))
        }
        (State::Crisis(mut c), Event::CrisisClosed(e)) if c.status == CrisisStatus::Active && e.crisis_id == c.id => {
            c.status = CrisisStatus::Closed;
            c.closure = Some(e.clone());
            Ok(State::Crisis(c))
        }
        (state, _) => Err(corrupt(&state)),
    }
}
