//! `/openapi.json`, generated from the route annotations and types.

use axum::Json;
use utoipa::openapi::security::{HttpAuthScheme, HttpBuilder, SecurityScheme};
use utoipa::{Modify, OpenApi};

use crate::problem::ProblemBody;
use crate::{crisis, deployments, intel, operations};

#[derive(OpenApi)]
#[openapi(
    info(title = "Concord", description = "Coordination of cross-border police operations. Errors are RFC 9457 problems."),
    paths(
        operations::open,
        operations::get_operation,
        operations::add_participant,
        operations::remove_participant,
        operations::assign_task,
        operations::update_task_status,
        operations::close,
        intel::post_lead,
        intel::get_lead,
        intel::amend_lead,
        intel::retract_lead,
        intel::report_arrest,
        intel::get_arrest,
        intel::request_notice,
        intel::get_notice,
        intel::review_notice,
        intel::cancel_notice,
        crisis::declare,
        crisis::get_crisis,
        crisis::post_sitrep,
        crisis::request_assistance,
        crisis::escalate,
        crisis::deescalate,
        crisis::close,
        deployments::request,
        deployments::get_deployment,
        deployments::approve,
        deployments::decline,
        deployments::arrive,
        deployments::end,
        deployments::recall,
        crate::healthz,
        crate::readyz,
    ),
    components(schemas(ProblemBody)),
    modifiers(&Bearer),
)]
pub struct ApiDoc;

struct Bearer;

impl Modify for Bearer {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        let components = openapi.components.get_or_insert_with(Default::default);
        components.add_security_scheme(
            "bearer",
            SecurityScheme::Http(
                HttpBuilder::new()
                    .scheme(HttpAuthScheme::Bearer)
                    .bearer_format("JWT")
                    .build(),
            ),
        );
    }
}

pub async fn serve() -> Json<utoipa::openapi::OpenApi> {
    Json(ApiDoc::openapi())
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::Value;
    use std::collections::BTreeSet;

    fn properties(schema: &Value) -> BTreeSet<String> {
        schema["properties"]
            .as_object()
            .map(|m| m.keys().cloned().collect())
            .unwrap_or_default()
    }

    /// The documented bodies are the command schemas minus the ids the
    /// path or the gateway supplies: the docs cannot drift from what the
    /// service validates.
    #[test]
    fn documented_bodies_match_the_command_schemas() {
        let doc = serde_json::to_value(ApiDoc::openapi()).expect("json");
        let schemas = &doc["components"]["schemas"];
        // (documented body, command schema, fields the path or the gateway supplies)
        let ids = &["operation_id", "task_id"][..];
        let pairs = [
            ("OpenOperation", "operations/open", ids),
            ("AddParticipant", "operations/add_participant", ids),
            ("AssignTask", "operations/assign_task", ids),
            ("UpdateTaskStatus", "operations/update_task_status", ids),
            ("CloseOperation", "operations/close", ids),
            ("PostLead", "intel/post_lead", &["operation_id", "lead_id"][..]),
            ("AmendLead", "intel/amend_lead", &["lead_id"][..]),
            ("Reason", "intel/retract_lead", &["lead_id"][..]),
            (
                "ReportArrest",
                "intel/report_arrest",
                &["operation_id", "arrest_id"][..],
            ),
            ("RequestNotice", "intel/request_notice", &["notice_id"][..]),
            ("ReviewNotice", "intel/review_notice", &["notice_id"][..]),
            ("Reason", "intel/cancel_notice", &["notice_id"][..]),
            ("DeclareCrisis", "crisis/declare_crisis", &["crisis_id"][..]),
            ("PostSitrep", "crisis/post_sitrep", &["crisis_id", "sitrep_id"][..]),
            (
                "RequestAssistance",
                "crisis/request_assistance",
                &["crisis_id", "request_id"][..],
            ),
            ("ChangeSeverity", "crisis/escalate", &["crisis_id"][..]),
            ("ChangeSeverity", "crisis/deescalate", &["crisis_id"][..]),
            ("CloseCrisis", "crisis/close_crisis", &["crisis_id"][..]),
            (
                "RequestDeployment",
                "deployments/request_deployment",
                &["deployment_id"][..],
            ),
            ("Reason", "deployments/decline_deployment", &["deployment_id"][..]),
            ("EndDeployment", "deployments/end_deployment", &["deployment_id"][..]),
            ("Reason", "deployments/recall", &["deployment_id"][..]),
        ];
        let root = concat!(env!("CARGO_MANIFEST_DIR"), "/../../schemas/commands");
        for (doc_name, command, supplied) in pairs {
            let text = std::fs::read_to_string(format!("{root}/{command}.schema.json")).expect("schema");
            let schema: Value = serde_json::from_str(&text).expect("json");
            let mut want = properties(&schema);
            for f in supplied {
                want.remove(*f);
            }
            assert_eq!(properties(&schemas[doc_name]), want, "{doc_name} vs {command}");
        }
    }

    #[test]
    fn every_route_is_documented() {
        let doc = serde_json::to_value(ApiDoc::openapi()).expect("json");
        let paths: BTreeSet<&str> = doc["paths"]
            .as_object()
            .expect("paths")
            .keys()
            .map(String::as_str)
            .collect();
        for p in [
            "/v1/operations",
            "/v1/operations/{id}",
            "/v1/operations/{id}/participants",
            "/v1/operations/{id}/participants/{country}",
            "/v1/operations/{id}/tasks",
            "/v1/operations/{id}/tasks/{task}/status",
            "/v1/operations/{id}/close",
            "/v1/operations/{id}/leads",
            "/v1/operations/{id}/arrests",
            "/v1/leads/{id}",
            "/v1/leads/{id}/amend",
            "/v1/leads/{id}/retract",
            "/v1/arrests/{id}",
            "/v1/notices",
            "/v1/notices/{id}",
            "/v1/notices/{id}/review",
            "/v1/notices/{id}/cancel",
            "/v1/crises",
            "/v1/crises/{id}",
            "/v1/crises/{id}/sitreps",
            "/v1/crises/{id}/assistance-requests",
            "/v1/crises/{id}/close",
            "/v1/deployments",
            "/v1/deployments/{id}",
            "/v1/deployments/{id}/approve",
            "/v1/deployments/{id}/arrive",
            "/v1/deployments/{id}/end",
            "/healthz",
            "/readyz",
        ] {
            assert!(paths.contains(p), "{p} missing from {paths:?}");
        }
        assert!(doc["components"]["securitySchemes"]["bearer"].is_object());
    }
}
