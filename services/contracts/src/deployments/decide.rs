//! The deployments contract's `decide` and `evolve` (the rules are in the
//! parent module's doc).

use concord_core::decider::{Aggregate, Ctx, Rejection, Viewer, required_text};
use concord_core::{Actor, Role};

use super::*;
use crate::crisis::status::CrisisInfo;
use crate::operations::membership::OperationInfo;
use crate::tag_of;

// ---------------------------------------------------------------- decide

/// The events `cmd` produces on `state`, or why it is refused (then nothing
/// is recorded). `Ok(vec![])` means there is nothing to do (a stand-down
/// already requested or no longer needed). Deterministic: everything it
/// needs is in its arguments.
pub(super) fn decide(
    state: &State,
    cmd: &Command,
    facts: &DeploymentsFacts,
    ctx: &Ctx,
) -> Result<Vec<Event>, Rejection> {
    match cmd {
        Command::RequestDeployment(c) => decide_request(state, c, facts, ctx),
        Command::ApproveDeployment(_) => decide_approve(state, facts, ctx),
        Command::DeclineDeployment(c) => decide_decline(state, c, facts, ctx),
        Command::MarkArrived(_) => decide_mark_arrived(state, facts, ctx),
        Command::EndDeployment(c) => decide_end(state, c, facts, ctx),
        Command::Recall(c) => decide_recall(state, c, facts, ctx),
        Command::RequestStandDown(c) => decide_request_stand_down(state, c, &facts.crises, ctx),
    }
}

/// What a deployment is for, once looked up.
enum Purpose<'a> {
    Crisis(Uuid, &'a CrisisInfo),
    Operation(Uuid, &'a OperationInfo),
}

fn decide_request(
    state: &State,
    cmd: &RequestDeployment,
    facts: &DeploymentsFacts,
    ctx: &Ctx,
) -> Result<Vec<Event>, Rejection> {
    let actor = &ctx.actor;
    // Before step 1: see the module's choices.
    let purpose = match (cmd.crisis_id, cmd.operation_id) {
        (Some(_), Some(_)) => {
            return Err(Rejection::Invalid(
                "a deployment is for a crisis or for an operation, not both: give crisis_id or operation_id".into(),
            ));
        }
        (None, None) => {
            return Err(Rejection::Invalid(
                "a deployment is for a crisis or for an operation: give crisis_id or operation_id".into(),
            ));
        }
        // Steps 1 and 2.
        (Some(id), None) => match facts.crises.get(id) {
            None => return Err(Rejection::NotFound("crisis not found".into())),
            Some(crisis) if crisis.closed => return Err(Rejection::RuleViolated("crisis is closed".into())),
            Some(crisis) => Purpose::Crisis(id, crisis),
        },
        (None, Some(id)) => Purpose::Operation(id, facts.operations.open_operation_seen_by(id, actor)?),
    };
    // Step 3.
    if actor.role != Role::Liaison {
        return Err(Rejection::Forbidden("only a liaison can request a deployment".into()));
    }
    let contributing: BTreeSet<CountryCode> = cmd.members.iter().map(|m| m.country).collect();
    if !contributing.contains(&actor.country) {
        return Err(Rejection::Forbidden(format!(
            "{} contributes no member to the team; a liaison requests a deployment its own country contributes to",
            actor.country
        )));
    }
    // Step 4.
    let host = cmd.host_country;
    if host.is_secretariat() {
        return Err(Rejection::Invalid(
            "host_country GS is the secretariat, not a country".into(),
        ));
    }
    if cmd.members.len() > MEMBERS_MAX {
        return Err(Rejection::Invalid(format!(
            "a team has at most {MEMBERS_MAX} members, {} given",
            cmd.members.len()
        )));
    }
    for (i, member) in cmd.members.iter().enumerate() {
        required_text(&format!("members[{i}].name"), &member.name, NAME_CHARS_MAX)?;
        required_text(&format!("members[{i}].role"), &member.role, MEMBER_ROLE_CHARS_MAX)?;
        if cmd.members[..i].contains(member) {
            return Err(Rejection::Invalid(format!(
                "members lists {} ({}, {}) twice",
                member.name, member.role, member.country
            )));
        }
    }
    required_text("reason", &cmd.reason, REASON_CHARS_MAX)?;
    if contributing.contains(&host) {
        return Err(Rejection::RuleViolated(format!(
            "{host} hosts the deployment and cannot also contribute to it"
        )));
    }
    match purpose {
        Purpose::Crisis(id, crisis) if crisis.country != host => {
            return Err(Rejection::RuleViolated(format!(
                "crisis {id} is in {}, not in the host country {host}",
                crisis.country
            )));
        }
        Purpose::Crisis(..) => {}
        Purpose::Operation(id, op) => {
            if let Some(outsider) = [host].iter().chain(&contributing).find(|c| !op.takes_part(**c)) {
                return Err(Rejection::RuleViolated(format!(
                    "{outsider} does not take part in operation {id}"
                )));
            }
        }
    }
    if *state != State::Empty {
        return Err(Rejection::Conflict(format!(
            "deployment {} already exists",
            cmd.deployment_id
        )));
    }
    Ok(vec![Event::DeploymentRequested(DeploymentRequested {
        deployment_id: cmd.deployment_id,
        team: cmd.team,
        host_country: host,
        crisis_id: cmd.crisis_id,
        operation_id: cmd.operation_id,
        contributing_countries: contributing.into_iter().collect(),
        members: cmd.members.clone(),
        reason: cmd.reason.clone(),
        requesting_country: actor.country,
        requested_by: actor.sub.clone(),
        requested_at: ctx.now.clone(),
    })])
}

fn decide_approve(state: &State, facts: &DeploymentsFacts, ctx: &Ctx) -> Result<Vec<Event>, Rejection> {
    let actor = &ctx.actor;
    let d = deployment_seen_by(state, facts, actor)?;
    status_in(
        d,
        &[DeploymentStatus::Requested],
        "only a requested deployment is approved",
    )?;
    purpose_still_open(d, facts)?;
    host_liaison_only(d, actor, "approve")?;
    Ok(vec![Event::DeploymentApproved(DeploymentApproved {
        approved_by: actor.sub.clone(),
        approved_at: ctx.now.clone(),
    })])
}

fn decide_decline(
    state: &State,
    cmd: &DeclineDeployment,
    facts: &DeploymentsFacts,
    ctx: &Ctx,
) -> Result<Vec<Event>, Rejection> {
    let actor = &ctx.actor;
    let d = deployment_seen_by(state, facts, actor)?;
    status_in(
        d,
        &[DeploymentStatus::Requested],
        "only a requested deployment is declined",
    )?;
    host_liaison_only(d, actor, "decline")?;
    required_text("reason", &cmd.reason, REASON_CHARS_MAX)?;
    Ok(vec![Event::DeploymentDeclined(DeploymentDeclined {
        reason: cmd.reason.clone(),
        declined_by: actor.sub.clone(),
        declined_at: ctx.now.clone(),
    })])
}

fn decide_mark_arrived(state: &State, facts: &DeploymentsFacts, ctx: &Ctx) -> Result<Vec<Event>, Rejection> {
    let actor = &ctx.actor;
    let d = deployment_seen_by(state, facts, actor)?;
    status_in(
        d,
        &[DeploymentStatus::Approved],
        "a team arrives once, after the host approved its deployment",
    )?;
    host_or_contributor_liaison_only(d, actor, "mark the team arrived")?;
    Ok(vec![Event::DeploymentArrived(DeploymentArrived {
        arrived_at: ctx.now.clone(),
        marked_by: actor.sub.clone(),
    })])
}

fn decide_end(
    state: &State,
    cmd: &EndDeployment,
    facts: &DeploymentsFacts,
    ctx: &Ctx,
) -> Result<Vec<Event>, Rejection> {
    let actor = &ctx.actor;
    let d = deployment_seen_by(state, facts, actor)?;
    status_in(
        d,
        &[DeploymentStatus::Approved, DeploymentStatus::Arrived],
        "only an approved or arrived deployment is ended",
    )?;
    host_or_contributor_liaison_only(d, actor, "end the deployment")?;
    required_text("report", &cmd.report, REPORT_CHARS_MAX)?;
    Ok(vec![Event::DeploymentEnded(DeploymentEnded {
        report: cmd.report.clone(),
        ended_by: actor.sub.clone(),
        ended_at: ctx.now.clone(),
    })])
}

fn decide_recall(state: &State, cmd: &Recall, facts: &DeploymentsFacts, ctx: &Ctx) -> Result<Vec<Event>, Rejection> {
    let actor = &ctx.actor;
    let d = deployment_seen_by(state, facts, actor)?;
    status_in(
        d,
        &[
            DeploymentStatus::Requested,
            DeploymentStatus::Approved,
            DeploymentStatus::Arrived,
        ],
        "only a requested, approved or arrived deployment is recalled",
    )?;
    if !(actor.role == Role::Liaison && d.contributing_countries.contains(&actor.country)) {
        return Err(Rejection::Forbidden(
            "only a liaison of a contributing country can recall the team".into(),
        ));
    }
    required_text("reason", &cmd.reason, REASON_CHARS_MAX)?;
    Ok(vec![Event::DeploymentRecalled(DeploymentRecalled {
        reason: cmd.reason.clone(),
        recalled_by: actor.sub.clone(),
        recalled_at: ctx.now.clone(),
    })])
}

fn decide_request_stand_down(
    state: &State,
    cmd: &RequestStandDown,
    crises: &CrisesView,
    ctx: &Ctx,
) -> Result<Vec<Event>, Rejection> {
    // No visibility, role or country step: see the module's choices.
    let State::Deployment(d) = state else {
        return Err(Rejection::NotFound("deployment not found".into()));
    };
    match d.crisis_id {
        Some(id) if id == cmd.crisis_id => {}
        Some(id) => {
            return Err(Rejection::RuleViolated(format!(
                "deployment is for crisis {id}, not for crisis {}",
                cmd.crisis_id
            )));
        }
        None => {
            return Err(Rejection::RuleViolated(format!(
                "deployment is for an operation, not for crisis {}",
                cmd.crisis_id
            )));
        }
    }
    match crises.get(cmd.crisis_id) {
        Some(crisis) if crisis.closed => {}
        Some(_) => {
            return Err(Rejection::RuleViolated(format!(
                "crisis {} is not closed; a stand-down follows its closing",
                cmd.crisis_id
            )));
        }
        None => {
            return Err(Rejection::RuleViolated(format!(
                "crisis {} is unknown to deployments",
                cmd.crisis_id
            )));
        }
    }
    if d.stand_down.is_some() || d.status.is_final() {
        // Already asked, or nothing left to stand down.
        return Ok(vec![]);
    }
    status_in(
        d,
        &[DeploymentStatus::Approved, DeploymentStatus::Arrived],
        "only an approved or arrived team is asked to stand down",
    )?;
    required_text("reason", &cmd.reason, REASON_CHARS_MAX)?;
    Ok(vec![Event::StandDownRequested(StandDownRequested {
        crisis_id: cmd.crisis_id,
        reason: cmd.reason.clone(),
        requested_at: ctx.now.clone(),
    })])
}

/// Step 2 for an approval: the crisis or the operation is still open. One
/// deployments does not know cannot be checked, so it is refused too (the
/// service brings the views up to date before deciding, so this does not
/// happen).
fn purpose_still_open(d: &Deployment, facts: &DeploymentsFacts) -> Result<(), Rejection> {
    if let Some(id) = d.crisis_id {
        match facts.crises.get(id) {
            Some(crisis) if !crisis.closed => {}
            Some(_) => return Err(Rejection::RuleViolated("crisis is closed".into())),
            None => {
                return Err(Rejection::RuleViolated(format!(
                    "crisis {id} is unknown to deployments"
                )));
            }
        }
    }
    if let Some(id) = d.operation_id {
        match facts.operations.get(id) {
            Some(op) if !op.closed => {}
            Some(_) => return Err(Rejection::RuleViolated("operation is closed".into())),
            None => {
                return Err(Rejection::RuleViolated(format!(
                    "operation {id} is unknown to deployments"
                )));
            }
        }
    }
    Ok(())
}

/// Step 1 for a command on an existing deployment: the actor may see it
/// (auditors see every deployment, so they pass).
fn deployment_seen_by<'a>(
    state: &'a State,
    facts: &DeploymentsFacts,
    actor: &Actor,
) -> Result<&'a Deployment, Rejection> {
    let viewer = Viewer {
        country: actor.country,
        role: actor.role,
    };
    match state {
        State::Deployment(d) if Deployments::audience(state, facts).admits(&viewer) => Ok(d),
        _ => Err(Rejection::NotFound("deployment not found".into())),
    }
}

/// Step 2: the deployment is in one of `allowed`.
fn status_in(d: &Deployment, allowed: &[DeploymentStatus], rule: &str) -> Result<(), Rejection> {
    if allowed.contains(&d.status) {
        Ok(())
    } else {
        Err(Rejection::RuleViolated(format!("deployment is {}; {rule}", d.status)))
    }
}

fn host_liaison_only(d: &Deployment, actor: &Actor, what: &str) -> Result<(), Rejection> {
    if actor.role == Role::Liaison && actor.country == d.host_country {
        Ok(())
    } else {
        Err(Rejection::Forbidden(format!(
            "only a liaison of the host country {} can {what} the deployment",
            d.host_country
        )))
    }
}

fn host_or_contributor_liaison_only(d: &Deployment, actor: &Actor, what: &str) -> Result<(), Rejection> {
    if actor.role == Role::Liaison && d.countries().any(|c| c == actor.country) {
        Ok(())
    } else {
        Err(Rejection::Forbidden(format!(
            "only a liaison of the host or of a contributing country can {what}"
        )))
    }
}

// ---------------------------------------------------------------- evolve

/// The state after `event`, or why `event` cannot follow `state`.
///
/// It cannot when the stream would make no sense: a first event that does
/// not request a deployment, or a request for both or neither of a crisis
/// and an operation; a second request; a move the status table does not
/// allow; a stand-down of a deployment that is not approved or arrived, is
/// already asked to stand down, or is for another crisis. The log only ever
/// holds what `decide` produced, under a hash chain, so such a sequence
/// means a corrupt log, and carrying on from a silently skipped event would
/// answer with a wrong state.
pub(super) fn evolve(state: State, event: &Event) -> Result<State, String> {
    use DeploymentStatus as S;
    let corrupt = |state: &State| format!("corrupt deployments stream: {} on {}", tag_of(event), state.describe());
    match (state, event) {
        (State::Empty, Event::DeploymentRequested(e)) if e.crisis_id.is_some() != e.operation_id.is_some() => {
            Ok(State::Deployment(Deployment {
                id: e.deployment_id,
                team: e.team,
                host_country: e.host_country,
                crisis_id: e.crisis_id,
                operation_id: e.operation_id,
                contributing_countries: e.contributing_countries.iter().copied().collect(),
                members: e.members.clone(),
                reason: e.reason.clone(),
                requesting_country: e.requesting_country,
                requested_by: e.requested_by.clone(),
                requested_at: e.requested_at.clone(),
                status: S::Requested,
                approval: None,
                decline: None,
                arrival: None,
                end: None,
                recall: None,
                stand_down: None,
            }))
        }
        (State::Empty, Event::DeploymentRequested(_)) => Err(
            "corrupt deployments stream: deployment.requested for both or neither of a crisis and an operation".into(),
        ),
        (State::Deployment(mut d), Event::DeploymentApproved(e)) if d.status.can_become(S::Approved) => {
            d.status = S::Approved;
            d.approval = Some(e.clone());
            Ok(State::Deployment(d))
        }
        (State::Deployment(mut d), Event::DeploymentDeclined(e)) if d.status.can_become(S::Declined) => {
            d.status = S::Declined;
            d.decline = Some(e.clone());
            Ok(State::Deployment(d))
        }
        (State::Deployment(mut d), Event::DeploymentArrived(e)) if d.status.can_become(S::Arrived) => {
            d.status = S::Arrived;
            d.arrival = Some(e.clone());
            Ok(State::Deployment(d))
        }
        (State::Deployment(mut d), Event::DeploymentEnded(e)) if d.status.can_become(S::Ended) => {
            d.status = S::Ended;
            d.end = Some(e.clone());
            Ok(State::Deployment(d))
        }
        (State::Deployment(mut d), Event::DeploymentRecalled(e)) if d.status.can_become(S::Recalled) => {
            d.status = S::Recalled;
            d.recall = Some(e.clone());
            Ok(State::Deployment(d))
        }
        (State::Deployment(mut d), Event::StandDownRequested(e))
            if d.status.is_under_way() && d.stand_down.is_none() && d.crisis_id == Some(e.crisis_id) =>
        {
            d.stand_down = Some(e.clone());
            Ok(State::Deployment(d))
        }
        (state, _) => Err(corrupt(&state)),
    }
}
