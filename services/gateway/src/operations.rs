//! `/v1/operations`: joint operations, their participants and tasks, as
//! commands and queries of the operations service.

use axum::Router;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::Response;
use axum::routing::{delete, get, post};
use concord_core::{Role, Service};
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value, json};
use utoipa::ToSchema;
use uuid::Uuid;

use crate::auth::Caller;
use crate::body::JsonObject;
use crate::problem::{Problem, ProblemBody};
use crate::respond::{answer, from_path, item, mint};
use crate::{AppState, call};

pub fn routes() -> Router<AppState> {
    Router::new()
        .route("/v1/operations", post(open))
        .route("/v1/operations/{id}", get(get_operation))
        .route("/v1/operations/{id}/participants", post(add_participant))
        .route("/v1/operations/{id}/participants/{country}", delete(remove_participant))
        .route("/v1/operations/{id}/tasks", post(assign_task))
        .route("/v1/operations/{id}/tasks/{task}/status", post(update_task_status))
        .route("/v1/operations/{id}/close", post(close))
}

/// `POST /v1/operations` body (checked by the service against
/// `schemas/commands/operations/open.schema.json`).
#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct OpenOperation {
    pub title: String,
    pub objective: String,
    /// The caller's own country: a coordinator opens for its country.
    pub lead_country: String,
    /// Initial participant countries (ISO 3166-1 alpha-2 or GS).
    pub countries: Vec<String>,
}

#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct AddParticipant {
    pub country: String,
}

#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct AssignTask {
    pub assignee_country: String,
    pub title: String,
    pub details: String,
    /// RFC 3339.
    pub due_at: Option<String>,
}

#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct UpdateTaskStatus {
    /// accepted | declined | in_progress | done
    pub status: String,
    pub note: Option<String>,
}

#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct CloseOperation {
    pub outcome: String,
}

/// What a command answers.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct Accepted {
    /// What the command created or changed: the task for task commands,
    /// the operation otherwise.
    pub id: String,
    pub operation_id: String,
    /// The operation's version after the command (send it back as If-Match).
    pub version: u64,
    /// The events appended: `{seq, type}`.
    #[schema(value_type = Vec<Object>)]
    pub events: Vec<Value>,
}

fn operation_id(raw: &str) -> Result<Uuid, Problem> {
    crate::body::path_uuid(raw, "operation")
}

/// Open a joint operation led by the caller's country.
#[utoipa::path(post, path = "/v1/operations", tag = "operations",
    request_body = OpenOperation,
    params(
        ("Idempotency-Key" = Option<String>, Header, description = "a retried POST with the same key returns the first answer"),
    ),
    responses(
        (status = 201, description = "opened", body = Accepted),
        (status = "4XX", description = "refused", body = ProblemBody, content_type = "application/problem+json"),
        (status = 503, description = "the service did not answer in time", body = ProblemBody, content_type = "application/problem+json"),
    ),
    security(("bearer" = [])))]
pub async fn open(
    State(gw): State<AppState>,
    caller: Caller,
    headers: HeaderMap,
    JsonObject(mut data): JsonObject,
) -> Result<Response, Problem> {
    caller.require(&[Role::Coordinator], "open an operation")?;
    mint(&mut data, "operation_id")?;
    let reply = call::command(&gw, &caller.0, &headers, Service::Operations, "open", data).await?;
    Ok(answer(StatusCode::CREATED, reply, Some("/v1/operations")))
}

/// An operation as the caller's country sees it (404 when it may not).
#[utoipa::path(get, path = "/v1/operations/{id}", tag = "operations",
    params(("id" = Uuid, Path, description = "operation id")),
    responses(
        (status = 200, description = "the operation; ETag is its version", body = Object),
        (status = 404, description = "unknown, or not visible to the caller's country", body = ProblemBody, content_type = "application/problem+json"),
    ),
    security(("bearer" = [])))]
pub async fn get_operation(
    State(gw): State<AppState>,
    caller: Caller,
    headers: HeaderMap,
    Path(id): Path<String>,
) -> Result<Response, Problem> {
    let id = operation_id(&id)?;
    let body = json!({"operation_id": id, "country": caller.0.country, "role": caller.0.role});
    item(&gw, &headers, Service::Operations, body, "operation").await
}

async fn operation_command(
    gw: &AppState,
    caller: &Caller,
    headers: &HeaderMap,
    command: &str,
    id: &str,
    mut data: Map<String, Value>,
) -> Result<Map<String, Value>, Problem> {
    from_path(&mut data, "operation_id", id, "operation")?;
    call::command(gw, &caller.0, headers, Service::Operations, command, data).await
}

/// Invite a country into the operation (lead coordinator).
#[utoipa::path(post, path = "/v1/operations/{id}/participants", tag = "operations",
    request_body = AddParticipant,
    params(("id" = Uuid, Path), ("If-Match" = Option<String>, Header, description = "expected operation version")),
    responses((status = 200, body = Accepted), (status = "4XX", body = ProblemBody, content_type = "application/problem+json")),
    security(("bearer" = [])))]
pub async fn add_participant(
    State(gw): State<AppState>,
    caller: Caller,
    headers: HeaderMap,
    Path(id): Path<String>,
    JsonObject(data): JsonObject,
) -> Result<Response, Problem> {
    caller.require(&[Role::Coordinator], "invite a country")?;
    let reply = operation_command(&gw, &caller, &headers, "add_participant", &id, data).await?;
    Ok(answer(StatusCode::OK, reply, None))
}

/// Remove a participant without open tasks (lead coordinator).
#[utoipa::path(delete, path = "/v1/operations/{id}/participants/{country}", tag = "operations",
    params(("id" = Uuid, Path), ("country" = String, Path), ("If-Match" = Option<String>, Header)),
    responses((status = 200, body = Accepted), (status = "4XX", body = ProblemBody, content_type = "application/problem+json")),
    security(("bearer" = [])))]
pub async fn remove_participant(
    State(gw): State<AppState>,
    caller: Caller,
    headers: HeaderMap,
    Path((id, country)): Path<(String, String)>,
) -> Result<Response, Problem> {
    caller.require(&[Role::Coordinator], "remove a country")?;
    let mut data = Map::new();
    data.insert("country".into(), json!(country));
    let reply = operation_command(&gw, &caller, &headers, "remove_participant", &id, data).await?;
    Ok(answer(StatusCode::OK, reply, None))
}

/// Task a participating country (lead coordinator).
#[utoipa::path(post, path = "/v1/operations/{id}/tasks", tag = "operations",
    request_body = AssignTask,
    params(("id" = Uuid, Path), ("Idempotency-Key" = Option<String>, Header), ("If-Match" = Option<String>, Header)),
    responses((status = 201, description = "assigned; `id` is the task's", body = Accepted), (status = "4XX", body = ProblemBody, content_type = "application/problem+json")),
    security(("bearer" = [])))]
pub async fn assign_task(
    State(gw): State<AppState>,
    caller: Caller,
    headers: HeaderMap,
    Path(id): Path<String>,
    JsonObject(mut data): JsonObject,
) -> Result<Response, Problem> {
    caller.require(&[Role::Coordinator], "assign a task")?;
    mint(&mut data, "task_id")?;
    let reply = operation_command(&gw, &caller, &headers, "assign_task", &id, data).await?;
    Ok(answer(StatusCode::CREATED, reply, None))
}

/// Accept, decline, start or complete a task of the caller's country.
#[utoipa::path(post, path = "/v1/operations/{id}/tasks/{task}/status", tag = "operations",
    request_body = UpdateTaskStatus,
    params(("id" = Uuid, Path), ("task" = Uuid, Path), ("If-Match" = Option<String>, Header)),
    responses((status = 200, body = Accepted), (status = "4XX", body = ProblemBody, content_type = "application/problem+json")),
    security(("bearer" = [])))]
pub async fn update_task_status(
    State(gw): State<AppState>,
    caller: Caller,
    headers: HeaderMap,
    Path((id, task)): Path<(String, String)>,
    JsonObject(mut data): JsonObject,
) -> Result<Response, Problem> {
    caller.require(&[Role::Liaison], "change a task's status")?;
    from_path(&mut data, "task_id", &task, "task")?;
    let reply = operation_command(&gw, &caller, &headers, "update_task_status", &id, data).await?;
    Ok(answer(StatusCode::OK, reply, None))
}

/// Close the operation with its outcome (lead coordinator).
#[utoipa::path(post, path = "/v1/operations/{id}/close", tag = "operations",
    request_body = CloseOperation,
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
    caller.require(&[Role::Coordinator], "close an operation")?;
    let reply = operation_command(&gw, &caller, &headers, "close", &id, data).await?;
    Ok(answer(StatusCode::OK, reply, None))
}
