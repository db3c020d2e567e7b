//! Leads, arrests and notices: commands and queries of the intel service.

use axum::Router;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::Response;
use axum::routing::{get, post};
use concord_core::{Role, Service};
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value, json};
use utoipa::ToSchema;
use uuid::Uuid;

use crate::auth::Caller;
use crate::body::{JsonObject, path_uuid};
use crate::operations::Accepted;
use crate::problem::{Problem, ProblemBody};
use crate::respond::{answer, from_path, item, mint};
use crate::{AppState, call};

pub fn routes() -> Router<AppState> {
    Router::new()
        .route("/v1/operations/{id}/leads", post(post_lead))
        .route("/v1/operations/{id}/arrests", post(report_arrest))
        .route("/v1/leads/{id}", get(get_lead))
        .route("/v1/leads/{id}/amend", post(amend_lead))
        .route("/v1/leads/{id}/retract", post(retract_lead))
        .route("/v1/arrests/{id}", get(get_arrest))
        .route("/v1/notices", post(request_notice))
        .route("/v1/notices/{id}", get(get_notice))
        .route("/v1/notices/{id}/review", post(review_notice))
        .route("/v1/notices/{id}/cancel", post(cancel_notice))
}

/// `POST /v1/operations/{id}/leads` (schema: `commands/intel/post_lead`).
#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct PostLead {
    pub summary: String,
    pub details: Option<String>,
    /// `{kind: person|object, description, name?, date_of_birth?, nationality?}`
    #[schema(value_type = Option<Object>)]
    pub subject: Option<Value>,
    /// Countries besides the owner that may see it (each a participant).
    pub restricted_to: Option<Vec<String>>,
    /// `{reliability: A|B|C|X, accuracy: 1..4}`
    #[schema(value_type = Option<Object>)]
    pub grading: Option<Value>,
}

#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct AmendLead {
    pub reason: String,
    pub summary: Option<String>,
    pub details: Option<String>,
    #[schema(value_type = Option<Object>)]
    pub subject: Option<Value>,
    #[schema(value_type = Option<Object>)]
    pub grading: Option<Value>,
}

#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct Reason {
    pub reason: String,
}

#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct ReportArrest {
    /// `{name, date_of_birth?, nationality?}`
    #[schema(value_type = Object)]
    pub person: Value,
    pub location_country: String,
    pub lead_id: Option<Uuid>,
    pub notice_id: Option<Uuid>,
}

#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct RequestNotice {
    /// red, yellow, blue, black, green, orange, purple, silver, un_special
    pub color: String,
    #[schema(value_type = Object)]
    pub subject: Value,
    /// The facts.
    pub reason: String,
    pub offence: Option<String>,
    /// Arrest warrant reference (red notices).
    pub warrant: Option<String>,
    pub operation_id: Option<Uuid>,
    /// A diffusion: the countries alerted directly (still reviewed).
    pub recipients: Option<Vec<String>>,
}

#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct ReviewNotice {
    /// approve | reject
    pub decision: String,
    pub reason: String,
    /// `{not_political, not_military, not_religious, not_racial, facts_support_purpose}`, each a boolean.
    #[schema(value_type = Object)]
    pub grounds: Value,
}

async fn intel(
    gw: &AppState,
    caller: &Caller,
    headers: &HeaderMap,
    command: &str,
    data: Map<String, Value>,
) -> Result<Map<String, Value>, Problem> {
    call::command(gw, &caller.0, headers, Service::Intel, command, data).await
}

async fn get_item(
    gw: AppState,
    caller: Caller,
    headers: HeaderMap,
    kind: &str,
    raw: &str,
) -> Result<Response, Problem> {
    let id = path_uuid(raw, kind)?;
    let body = json!({"kind": kind, "id": id, "country": caller.0.country, "role": caller.0.role});
    item(&gw, &headers, Service::Intel, body, kind).await
}

/// Post a lead to an operation the caller's country takes part in.
#[utoipa::path(post, path = "/v1/operations/{id}/leads", tag = "intel", request_body = PostLead,
    params(("id" = Uuid, Path), ("Idempotency-Key" = Option<String>, Header)),
    responses((status = 201, description = "posted; `id` is the lead's", body = Accepted), (status = "4XX", body = ProblemBody, content_type = "application/problem+json")),
    security(("bearer" = [])))]
pub async fn post_lead(
    State(gw): State<AppState>,
    caller: Caller,
    headers: HeaderMap,
    Path(id): Path<String>,
    JsonObject(mut data): JsonObject,
) -> Result<Response, Problem> {
    caller.require(&[Role::Liaison], "post a lead")?;
    from_path(&mut data, "operation_id", &id, "operation")?;
    mint(&mut data, "lead_id")?;
    let reply = intel(&gw, &caller, &headers, "post_lead", data).await?;
    Ok(answer(StatusCode::CREATED, reply, Some("/v1/leads")))
}

/// A lead as the caller's country may see it.
#[utoipa::path(get, path = "/v1/leads/{id}", tag = "intel", params(("id" = Uuid, Path)),
    responses((status = 200, body = Object), (status = 404, body = ProblemBody, content_type = "application/problem+json")),
    security(("bearer" = [])))]
pub async fn get_lead(
    State(gw): State<AppState>,
    caller: Caller,
    headers: HeaderMap,
    Path(id): Path<String>,
) -> Result<Response, Problem> {
    get_item(gw, caller, headers, "lead", &id).await
}

/// Amend a lead of the caller's country, with a reason.
#[utoipa::path(post, path = "/v1/leads/{id}/amend", tag = "intel", request_body = AmendLead,
    params(("id" = Uuid, Path), ("If-Match" = Option<String>, Header)),
    responses((status = 200, body = Accepted), (status = "4XX", body = ProblemBody, content_type = "application/problem+json")),
    security(("bearer" = [])))]
pub async fn amend_lead(
    State(gw): State<AppState>,
    caller: Caller,
    headers: HeaderMap,
    Path(id): Path<String>,
    JsonObject(mut data): JsonObject,
) -> Result<Response, Problem> {
    caller.require(&[Role::Liaison], "amend a lead")?;
    from_path(&mut data, "lead_id", &id, "lead")?;
    let reply = intel(&gw, &caller, &headers, "amend_lead", data).await?;
    Ok(answer(StatusCode::OK, reply, None))
}

/// Retract a lead of the caller's country; it stays in history.
#[utoipa::path(post, path = "/v1/leads/{id}/retract", tag = "intel", request_body = Reason,
    params(("id" = Uuid, Path), ("If-Match" = Option<String>, Header)),
    responses((status = 200, body = Accepted), (status = "4XX", body = ProblemBody, content_type = "application/problem+json")),
    security(("bearer" = [])))]
pub async fn retract_lead(
    State(gw): State<AppState>,
    caller: Caller,
    headers: HeaderMap,
    Path(id): Path<String>,
    JsonObject(mut data): JsonObject,
) -> Result<Response, Problem> {
    caller.require(&[Role::Liaison], "retract a lead")?;
    from_path(&mut data, "lead_id", &id, "lead")?;
    let reply = intel(&gw, &caller, &headers, "retract_lead", data).await?;
    Ok(answer(StatusCode::OK, reply, None))
}

/// Report an arrest in an operation the caller's country takes part in.
#[utoipa::path(post, path = "/v1/operations/{id}/arrests", tag = "intel", request_body = ReportArrest,
    params(("id" = Uuid, Path), ("Idempotency-Key" = Option<String>, Header)),
    responses((status = 201, description = "reported; `id` is the arrest's", body = Accepted), (status = "4XX", body = ProblemBody, content_type = "application/problem+json")),
    security(("bearer" = [])))]
pub async fn report_arrest(
    State(gw): State<AppState>,
    caller: Caller,
    headers: HeaderMap,
    Path(id): Path<String>,
    JsonObject(mut data): JsonObject,
) -> Result<Response, Problem> {
    caller.require(&[Role::Liaison], "report an arrest")?;
    from_path(&mut data, "operation_id", &id, "operation")?;
    mint(&mut data, "arrest_id")?;
    let reply = intel(&gw, &caller, &headers, "report_arrest", data).await?;
    Ok(answer(StatusCode::CREATED, reply, Some("/v1/arrests")))
}

/// An arrest as the caller's country may see it.
#[utoipa::path(get, path = "/v1/arrests/{id}", tag = "intel", params(("id" = Uuid, Path)),
    responses((status = 200, body = Object), (status = 404, body = ProblemBody, content_type = "application/problem+json")),
    security(("bearer" = [])))]
pub async fn get_arrest(
    State(gw): State<AppState>,
    caller: Caller,
    headers: HeaderMap,
    Path(id): Path<String>,
) -> Result<Response, Problem> {
    get_item(gw, caller, headers, "arrest", &id).await
}

/// Request a colour notice (or, with `recipients`, a diffusion): it is
/// published only after a reviewer approves it.
#[utoipa::path(post, path = "/v1/notices", tag = "intel", request_body = RequestNotice,
    params(("Idempotency-Key" = Option<String>, Header)),
    responses((status = 201, description = "requested; `id` is the notice's", body = Accepted), (status = "4XX", body = ProblemBody, content_type = "application/problem+json")),
    security(("bearer" = [])))]
pub async fn request_notice(
    State(gw): State<AppState>,
    caller: Caller,
    headers: HeaderMap,
    JsonObject(mut data): JsonObject,
) -> Result<Response, Problem> {
    caller.require(&[Role::Liaison], "request a notice")?;
    mint(&mut data, "notice_id")?;
    let reply = intel(&gw, &caller, &headers, "request_notice", data).await?;
    Ok(answer(StatusCode::CREATED, reply, Some("/v1/notices")))
}

/// A notice as the caller's country may see it.
#[utoipa::path(get, path = "/v1/notices/{id}", tag = "intel", params(("id" = Uuid, Path)),
    responses((status = 200, body = Object), (status = 404, body = ProblemBody, content_type = "application/problem+json")),
    security(("bearer" = [])))]
pub async fn get_notice(
    State(gw): State<AppState>,
    caller: Caller,
    headers: HeaderMap,
    Path(id): Path<String>,
) -> Result<Response, Problem> {
    get_item(gw, caller, headers, "notice", &id).await
}

/// Approve (publish) or reject a notice request, recording the compliance
/// grounds checked.
#[utoipa::path(post, path = "/v1/notices/{id}/review", tag = "intel", request_body = ReviewNotice,
    params(("id" = Uuid, Path), ("If-Match" = Option<String>, Header)),
    responses((status = 200, body = Accepted), (status = "4XX", body = ProblemBody, content_type = "application/problem+json")),
    security(("bearer" = [])))]
pub async fn review_notice(
    State(gw): State<AppState>,
    caller: Caller,
    headers: HeaderMap,
    Path(id): Path<String>,
    JsonObject(mut data): JsonObject,
) -> Result<Response, Problem> {
    caller.require(&[Role::Reviewer], "review a notice")?;
    from_path(&mut data, "notice_id", &id, "notice")?;
    let reply = intel(&gw, &caller, &headers, "review_notice", data).await?;
    Ok(answer(StatusCode::OK, reply, None))
}

/// Cancel a notice (requesting country or a reviewer); never deleted.
#[utoipa::path(post, path = "/v1/notices/{id}/cancel", tag = "intel", request_body = Reason,
    params(("id" = Uuid, Path), ("If-Match" = Option<String>, Header)),
    responses((status = 200, body = Accepted), (status = "4XX", body = ProblemBody, content_type = "application/problem+json")),
    security(("bearer" = [])))]
pub async fn cancel_notice(
    State(gw): State<AppState>,
    caller: Caller,
    headers: HeaderMap,
    Path(id): Path<String>,
    JsonObject(mut data): JsonObject,
) -> Result<Response, Problem> {
    caller.require(&[Role::Liaison, Role::Reviewer], "cancel a notice")?;
    from_path(&mut data, "notice_id", &id, "notice")?;
    let reply = intel(&gw, &caller, &headers, "cancel_notice", data).await?;
    Ok(answer(StatusCode::OK, reply, None))
}
