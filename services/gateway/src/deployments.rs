//! `/v1/deployments`: specialist teams deployed to a host country
//! (deployments service). The stand-down after a crisis closes is the
//! service's own choreography, not a route.

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
        .route("/v1/deployments", post(request))
        .route("/v1/deployments/{id}", get(get_deployment))
        .route("/v1/deployments/{id}/approve", post(approve))
        .route("/v1/deployments/{id}/decline", post(decline))
        .route("/v1/deployments/{id}/arrive", post(arrive))
        .route("/v1/deployments/{id}/end", post(end))
        .route("/v1/deployments/{id}/recall", post(recall))
}

#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct Member {
    pub name: String,
    pub role: String,
    pub country: String,
}

#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct RequestDeployment {
    /// irt, dvi, imest, cyber, forensics
    pub team: String,
    pub host_country: String,
    /// Exactly one of crisis_id and operation_id.
    pub crisis_id: Option<Uuid>,
    pub operation_id: Option<Uuid>,
    pub reason: String,
    pub members: Vec<Member>,
}

#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct EndDeployment {
    pub report: String,
}

async fn on_deployment(
    gw: &AppState,
    caller: &Caller,
    headers: &HeaderMap,
    command: &str,
    id: &str,
    mut data: Map<String, Value>,
) -> Result<Response, Problem> {
    caller.require(&[Role::Liaison], "act on a deployment")?;
    from_path(&mut data, "deployment_id", id, "deployment")?;
    let reply = call::command(gw, &caller.0, headers, Service::Deployments, command, data).await?;
    Ok(answer(StatusCode::OK, reply, None))
}

/// Offer a team to a host country, for an open crisis there or an open operation.
#[utoipa::path(post, path = "/v1/deployments", tag = "deployments", request_body = RequestDeployment,
    params(("Idempotency-Key" = Option<String>, Header)),
    responses((status = 201, description = "requested", body = Accepted), (status = "4XX", body = ProblemBody, content_type = "application/problem+json")),
    security(("bearer" = [])))]
pub async fn request(
    State(gw): State<AppState>,
    caller: Caller,
    headers: HeaderMap,
    JsonObject(mut data): JsonObject,
) -> Result<Response, Problem> {
    caller.require(&[Role::Liaison], "request a deployment")?;
    mint(&mut data, "deployment_id")?;
    let reply = call::command(
        &gw,
        &caller.0,
        &headers,
        Service::Deployments,
        "request_deployment",
        data,
    )
    .await?;
    Ok(answer(StatusCode::CREATED, reply, Some("/v1/deployments")))
}

/// A deployment (host and contributing countries, auditors).
#[utoipa::path(get, path = "/v1/deployments/{id}", tag = "deployments", params(("id" = Uuid, Path)),
    responses((status = 200, body = Object), (status = 404, body = ProblemBody, content_type = "application/problem+json")),
    security(("bearer" = [])))]
pub async fn get_deployment(
    State(gw): State<AppState>,
    caller: Caller,
    headers: HeaderMap,
    Path(id): Path<String>,
) -> Result<Response, Problem> {
    let id = path_uuid(&id, "deployment")?;
    let body = json!({"deployment_id": id, "country": caller.0.country, "role": caller.0.role});
    item(&gw, &headers, Service::Deployments, body, "deployment").await
}

/// The host country consents (no team lands without it).
#[utoipa::path(post, path = "/v1/deployments/{id}/approve", tag = "deployments",
    params(("id" = Uuid, Path), ("If-Match" = Option<String>, Header)),
    responses((status = 200, body = Accepted), (status = "4XX", body = ProblemBody, content_type = "application/problem+json")),
    security(("bearer" = [])))]
pub async fn approve(
    State(gw): State<AppState>,
    caller: Caller,
    headers: HeaderMap,
    Path(id): Path<String>,
    JsonObject(data): JsonObject,
) -> Result<Response, Problem> {
    on_deployment(&gw, &caller, &headers, "approve_deployment", &id, data).await
}

/// The host country declines, with a reason.
#[utoipa::path(post, path = "/v1/deployments/{id}/decline", tag = "deployments", request_body = crate::intel::Reason,
    params(("id" = Uuid, Path), ("If-Match" = Option<String>, Header)),
    responses((status = 200, body = Accepted), (status = "4XX", body = ProblemBody, content_type = "application/problem+json")),
    security(("bearer" = [])))]
pub async fn decline(
    State(gw): State<AppState>,
    caller: Caller,
    headers: HeaderMap,
    Path(id): Path<String>,
    JsonObject(data): JsonObject,
) -> Result<Response, Problem> {
    on_deployment(&gw, &caller, &headers, "decline_deployment", &id, data).await
}

/// The team has arrived (host or contributing country).
#[utoipa::path(post, path = "/v1/deployments/{id}/arrive", tag = "deployments",
    params(("id" = Uuid, Path), ("If-Match" = Option<String>, Header)),
    responses((status = 200, body = Accepted), (status = "4XX", body = ProblemBody, content_type = "application/problem+json")),
    security(("bearer" = [])))]
pub async fn arrive(
    State(gw): State<AppState>,
    caller: Caller,
    headers: HeaderMap,
    Path(id): Path<String>,
    JsonObject(data): JsonObject,
) -> Result<Response, Problem> {
    on_deployment(&gw, &caller, &headers, "mark_arrived", &id, data).await
}

/// The deployment ends, with a report.
#[utoipa::path(post, path = "/v1/deployments/{id}/end", tag = "deployments", request_body = EndDeployment,
    params(("id" = Uuid, Path), ("If-Match" = Option<String>, Header)),
    responses((status = 200, body = Accepted), (status = "4XX", body = ProblemBody, content_type = "application/problem+json")),
    security(("bearer" = [])))]
pub async fn end(
    State(gw): State<AppState>,
    caller: Caller,
    headers: HeaderMap,
    Path(id): Path<String>,
    JsonObject(data): JsonObject,
) -> Result<Response, Problem> {
    on_deployment(&gw, &caller, &headers, "end_deployment", &id, data).await
}

/// A contributing country recalls its team, with a reason.
#[utoipa::path(post, path = "/v1/deployments/{id}/recall", tag = "deployments", request_body = crate::intel::Reason,
    params(("id" = Uuid, Path), ("If-Match" = Option<String>, Header)),
    responses((status = 200, body = Accepted), (status = "4XX", body = ProblemBody, content_type = "application/problem+json")),
    security(("bearer" = [])))]
pub async fn recall(
    State(gw): State<AppState>,
    caller: Caller,
    headers: HeaderMap,
    Path(id): Path<String>,
    JsonObject(data): JsonObject,
) -> Result<Response, Problem> {
    on_deployment(&gw, &caller, &headers, "recall", &id, data).await
}
