//! `/v1/crises`: crises, sitreps and assistance requests (crisis service).

use axum::Router;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::Response;
use axum::routing::{get, post};
use concord_core::{Role, Service};
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value, json};
use utoipa::ToSchema;

use crate::auth::Caller;
use crate::body::{JsonObject, path_uuid};
use crate::operations::Accepted;
use crate::problem::{Problem, ProblemBody};
use crate::respond::{answer, from_path, item, mint};
use crate::{AppState, call};

pub fn routes() -> Router<AppState> {
    Router::new()
        .route("/v1/crises", post(declare))
        .route("/v1/crises/{id}", get(get_crisis))
        .route("/v1/crises/{id}/sitreps", post(post_sitrep))
        .route("/v1/crises/{id}/assistance-requests", post(request_assistance))
        .route("/v1/crises/{id}/escalate", post(escalate))
        .route("/v1/crises/{id}/deescalate", post(deescalate))
        .route("/v1/crises/{id}/close", post(close))
}

#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct DeclareCrisis {
    /// terrorist_attack, natural_disaster, mass_casualty, cyber_incident, major_event, other
    pub kind: String,
    pub title: String,
    /// The affected country: the caller's own.
    pub country: String,
    /// 1 (lowest) to 5
    pub severity: u8,
}

#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct PostSitrep {
    pub text: String,
    /// `{dead?, injured?, missing?}`
    #[schema(value_type = Option<Object>)]
    pub casualties: Option<Value>,
    pub needs: Option<Vec<String>>,
}

#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct RequestAssistance {
    /// dvi, forensics, investigation, liaison, cyber, search_rescue, medical, logistics, other
    pub needs: Vec<String>,
    pub details: Option<String>,
}

#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct ChangeSeverity {
    pub severity: u8,
    pub reason: String,
}

#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct CloseCrisis {
    pub summary: String,
}

async fn on_crisis(
    gw: &AppState,
    caller: &Caller,
    headers: &HeaderMap,
    command: &str,
    id: &str,
    mut data: Map<String, Value>,
) -> Result<Map<String, Value>, Problem> {
    caller.require(&[Role::Liaison], "act on a crisis")?;
    from_path(&mut data, "crisis_id", id, "crisis")?;
    call::command(gw, &caller.0, headers, Service::Crisis, command, data).await
}

/// Declare a crisis in the caller's country.
#[utoipa::path(post, path = "/v1/crises", tag = "crisis", request_body = DeclareCrisis,
    params(("Idempotency-Key" = Option<String>, Header)),
    responses((status = 201, description = "declared", body = Accepted), (status = "4XX", body = ProblemBody, content_type = "application/problem+json")),
    security(("bearer" = [])))]
pub async fn declare(
    State(gw): State<AppState>,
    caller: Caller,
    headers: HeaderMap,
    JsonObject(mut data): JsonObject,
) -> Result<Response, Problem> {
    caller.require(&[Role::Liaison], "declare a crisis")?;
    mint(&mut data, "crisis_id")?;
    let reply = call::command(&gw, &caller.0, &headers, Service::Crisis, "declare_crisis", data).await?;
    Ok(answer(StatusCode::CREATED, reply, Some("/v1/crises")))
}

/// A crisis with its sitreps (every country may see it).
#[utoipa::path(get, path = "/v1/crises/{id}", tag = "crisis", params(("id" = Uuid, Path)),
    responses((status = 200, body = Object), (status = 404, body = ProblemBody, content_type = "application/problem+json")),
    security(("bearer" = [])))]
pub async fn get_crisis(
    State(gw): State<AppState>,
    caller: Caller,
    headers: HeaderMap,
    Path(id): Path<String>,
) -> Result<Response, Problem> {
    let id = path_uuid(&id, "crisis")?;
    let body = json!({"crisis_id": id, "country": caller.0.country, "role": caller.0.role});
    item(&gw, &headers, Service::Crisis, body, "crisis").await
}

/// A situation report, by the affected country or one with a team there.
#[utoipa::path(post, path = "/v1/crises/{id}/sitreps", tag = "crisis", request_body = PostSitrep,
    params(("id" = Uuid, Path), ("Idempotency-Key" = Option<String>, Header)),
    responses((status = 201, description = "posted; `id` is the sitrep's", body = Accepted), (status = "4XX", body = ProblemBody, content_type = "application/problem+json")),
    security(("bearer" = [])))]
pub async fn post_sitrep(
    State(gw): State<AppState>,
    caller: Caller,
    headers: HeaderMap,
    Path(id): Path<String>,
    JsonObject(mut data): JsonObject,
) -> Result<Response, Problem> {
    mint(&mut data, "sitrep_id")?;
    let reply = on_crisis(&gw, &caller, &headers, "post_sitrep", &id, data).await?;
    Ok(answer(StatusCode::CREATED, reply, None))
}

/// Ask for help (affected country).
#[utoipa::path(post, path = "/v1/crises/{id}/assistance-requests", tag = "crisis", request_body = RequestAssistance,
    params(("id" = Uuid, Path), ("Idempotency-Key" = Option<String>, Header)),
    responses((status = 201, description = "requested; `id` is the request's", body = Accepted), (status = "4XX", body = ProblemBody, content_type = "application/problem+json")),
    security(("bearer" = [])))]
pub async fn request_assistance(
    State(gw): State<AppState>,
    caller: Caller,
    headers: HeaderMap,
    Path(id): Path<String>,
    JsonObject(mut data): JsonObject,
) -> Result<Response, Problem> {
    mint(&mut data, "request_id")?;
    let reply = on_crisis(&gw, &caller, &headers, "request_assistance", &id, data).await?;
    Ok(answer(StatusCode::CREATED, reply, None))
}

/// Raise the severity (affected country).
#[utoipa::path(post, path = "/v1/crises/{id}/escalate", tag = "crisis", request_body = ChangeSeverity,
    params(("id" = Uuid, Path), ("If-Match" = Option<String>, Header)),
    responses((status = 200, body = Accepted), (status = "4XX", body = ProblemBody, content_type = "application/problem+json")),
    security(("bearer" = [])))]
pub async fn escalate(
    State(gw): State<AppState>,
    caller: Caller,
    headers: HeaderMap,
    Path(id): Path<String>,
    JsonObject(data): JsonObject,
) -> Result<Response, Problem> {
    let reply = on_crisis(&gw, &caller, &headers, "escalate", &id, data).await?;
    Ok(answer(StatusCode::OK, reply, None))
}

/// Lower the severity (affected country).
#[utoipa::path(post, path = "/v1/crises/{id}/deescalate", tag = "crisis", request_body = ChangeSeverity,
    params(("id" = Uuid, Path), ("If-Match" = Option<String>, Header)),
    responses((status = 200, body = Accepted), (status = "4XX", body = ProblemBody, content_type = "application/problem+json")),
    security(("bearer" = [])))]
pub async fn deescalate(
    State(gw): State<AppState>,
    caller: Caller,
    headers: HeaderMap,
    Path(id): Path<String>,
    JsonObject(data): JsonObject,
) -> Result<Response, Problem> {
    let reply = on_crisis(&gw, &caller, &headers, "deescalate", &id, data).await?;
    Ok(answer(StatusCode::OK, reply, None))
}

/// Close the crisis with a summary (affected country); linked deployments
/// are then asked to stand down.
#[utoipa::path(post, path = "/v1/crises/{id}/close", tag = "crisis", request_body = CloseCrisis,
    params(("id" = Uuid, Path), ("If-Match" = Option<String>, Header)),
    responses((status = 200, body = Accepted), (status = "4XX", body = ProblemBody, content_type = "application/problem+json")),
    security(("bearer" = [])))]
pub async fn close(
    State(gw): State<AppState>,
    caller: Caller,
    headers: HeaderMap,
    Path(id): Path<String>,
    JsonObject(data): JsonObject,
) -> Result<Response, Problem> {
    let reply = on_crisis(&gw, &caller, &headers, "close_crisis", &id, data).await?;
    Ok(answer(StatusCode::OK, reply, None))
}
