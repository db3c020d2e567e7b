//! The two handlers every row of the route table shares: a command (role,
//! path ids, minted id, NATS request, answer) and a get (path id, the
//! caller's country and role, NATS query, item).

use std::collections::{BTreeMap, HashMap};

use axum::Router;
use axum::extract::rejection::PathRejection;
use axum::extract::{FromRequest, Path, Request, State};
use axum::http::HeaderMap;
use axum::response::Response;
use axum::routing::MethodRouter;
use concord_core::reply::ErrorCode;
use serde_json::{Map, Value, json};

use crate::auth::Caller;
use crate::body::JsonObject;
use crate::problem::Problem;
use crate::respond::{answer, from_path, item, mint};
use crate::routes::{Action, Param, ROUTES, Route};
use crate::{AppState, call};

type Segments = Result<Path<HashMap<String, String>>, PathRejection>;

/// Every row of [`ROUTES`], each served by the handler of its kind, and
/// the projector's reads ([`crate::views::VIEWS`]).
pub fn routes() -> Router<AppState> {
    // Rows may share a path with different methods; axum takes each path
    // once, with all its methods.
    let mut paths: BTreeMap<&'static str, MethodRouter<AppState>> = BTreeMap::new();
    for route in ROUTES {
        let methods = paths.remove(route.path).unwrap_or_default();
        let methods = match route.action {
            Action::Command(_) => methods.on(
                route.method.filter(),
                move |State(gw), caller, headers, segments, req| command(route, gw, caller, headers, segments, req),
            ),
            Action::Query(_) => methods.on(route.method.filter(), move |State(gw), caller, headers, segments| {
                query(route, gw, caller, headers, segments)
            }),
        };
        paths.insert(route.path, methods);
    }
    // The projector's reads share paths with commands (`GET` and `POST
    // /v1/operations`).
    for (path, get) in crate::views::handlers() {
        let methods = paths.remove(path).unwrap_or_default();
        paths.insert(path, methods.merge(get));
    }
    paths
        .into_iter()
        .fold(Router::new(), |router, (path, methods)| router.route(path, methods))
}

/// Each param the row declares, with its raw segment.
fn params(route: &'static Route, segments: Segments) -> Result<Vec<(&'static Param, String)>, Problem> {
    let Path(mut by_name) = segments.map_err(|e| Problem::new(ErrorCode::Invalid, e.body_text()))?;
    route
        .params
        .iter()
        .map(|p| {
            by_name.remove(p.name).map(|raw| (p, raw)).ok_or_else(|| {
                // The table's tests tie each row's params to its template.
                Problem::new(
                    ErrorCode::Internal,
                    format!("{} has no {{{}}} segment", route.path, p.name),
                )
            })
        })
        .collect()
}

async fn command(
    route: &'static Route,
    gw: AppState,
    caller: Caller,
    headers: HeaderMap,
    segments: Segments,
    req: Request,
) -> Result<Response, Problem> {
    let Action::Command(cmd) = route.action else {
        return Err(Problem::new(
            ErrorCode::Internal,
            format!("{} is not a command", route.path),
        ));
    };
    let params = params(route, segments)?;
    let mut data = if route.method.takes_body() {
        JsonObject::from_request(req, &gw).await?.0
    } else {
        Map::new()
    };
    caller.require(cmd.roles, cmd.may_not)?;
    for (param, raw) in &params {
        from_path(&mut data, param, raw)?;
    }
    let command_id = call::CommandId::of(&headers, &caller.0)?;
    if let Some(field) = cmd.mints {
        mint(&mut data, field, &command_id)?;
    }
    let reply = call::command(&gw, &caller.0, &headers, &command_id, route.service, route.name, data).await?;
    Ok(answer(cmd.status, route.service, reply, cmd.location))
}

async fn query(
    route: &'static Route,
    gw: AppState,
    caller: Caller,
    headers: HeaderMap,
    segments: Segments,
) -> Result<Response, Problem> {
    let Action::Query(q) = route.action else {
        return Err(Problem::new(
            ErrorCode::Internal,
            format!("{} is not a query", route.path),
        ));
    };
    let mut body: Map<String, Value> = q.with.iter().map(|(k, v)| ((*k).to_owned(), json!(v))).collect();
    for (param, raw) in params(route, segments)? {
        from_path(&mut body, param, &raw)?;
    }
    body.insert("country".into(), json!(caller.0.country));
    body.insert("role".into(), json!(caller.0.role));
    item(&gw, &headers, route.service, route.name, Value::Object(body), q.reply).await
}
