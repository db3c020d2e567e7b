//! Who is calling: the bearer token checked with the kernel's token
//! verification (`concord_core::auth`), and the role a route needs.

use axum::extract::FromRequestParts;
use axum::http::header::AUTHORIZATION;
use axum::http::request::Parts;
use concord_core::Role;
use concord_core::auth::{self, Claims};
use concord_core::reply::ErrorCode;

use crate::AppState;
use crate::problem::Problem;

/// The verified claims of the request's bearer token.
#[derive(Debug, Clone)]
pub struct Caller(pub Claims);

impl FromRequestParts<AppState> for Caller {
    type Rejection = Problem;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, Self::Rejection> {
        let unauthorized = |m: String| Problem::new(ErrorCode::Unauthorized, m);
        let value = parts
            .headers
            .get(AUTHORIZATION)
            .ok_or_else(|| unauthorized("missing Authorization: Bearer <token>".into()))?;
        let value = value
            .to_str()
            .map_err(|_| unauthorized("Authorization header is not ASCII".into()))?;
        let (scheme, token) = value
            .split_once(' ')
            .ok_or_else(|| unauthorized("Authorization must be `Bearer <token>`".into()))?;
        if !scheme.eq_ignore_ascii_case("bearer") {
            return Err(unauthorized(format!("authorization scheme {scheme:?} is not Bearer")));
        }
        let now = chrono::Utc::now().timestamp();
        auth::verify(token.trim(), &state.config.keys, &state.config.token_rules, now)
            .map(Caller)
            .map_err(|e| unauthorized(e.to_string()))
    }
}

impl Caller {
    /// 403 unless the caller has one of `roles`; `what` names the action.
    pub fn require(&self, roles: &[Role], what: &str) -> Result<(), Problem> {
        if roles.contains(&self.0.role) {
            return Ok(());
        }
        let needed = roles.iter().map(Role::as_str).collect::<Vec<_>>().join(" or ");
        Err(Problem::new(
            ErrorCode::Forbidden,
            format!("a {} may not {what}; it takes a {needed}", self.0.role.as_str()),
        ))
    }
}
