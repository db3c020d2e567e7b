//! Black-box: the authorization matrix. Every `/v1` operation of
//! `/openapi.json` × every role (and no token) × an object of the caller's
//! own country, one of another country and an id nobody has, against
//! `concord up`, each answer checked against ONE table of rules written
//! from docs/design.md (Users, Visibility), not from the gateway's code:
//!
//! - no token → 401; a role the operation does not admit → 403, whatever
//!   the object (auditors are read-only: every command refuses them);
//! - an admitted role: its own country's object → 2xx; an id nobody has →
//!   404; another country's object → the same 404 (the same problem: its
//!   existence does not leak), unless the caller sees it (every country
//!   sees every crisis, reviewers every notice request, auditors
//!   everything): a read then answers 200, a command what its rules say;
//! - a creation has no object in its path: its body names the caller's
//!   country (→ 201) or another's (a crisis elsewhere, an operation led by
//!   another country → 403; an operation the caller's country is not in →
//!   the same 404 as one that does not exist).
//!
//! Every operation of the document must have exactly one rule and every
//! rule an operation: a route added without a rule fails here. A command
//! expected to succeed acts on an object made for it alone. At the end the
//! system is stopped and each service's log exported: every event in it
//! must be one a 2xx answer listed, so no refusal wrote anything.

mod common;

use std::collections::{BTreeMap, BTreeSet, HashMap};

use common::{Up, acknowledge, assert_only_acknowledged, free_addr, service_of, token_for, up};
use concord_testkit::http::Response;
use serde_json::{Map, Value, json};

/// An id nobody has (minted ids are UUIDv7; this is no v7).
const UNKNOWN: &str = "5e1f9a0c-7b2d-4c8e-9f31-000000000404";
/// A second one, for a task of an unknown operation.
const UNKNOWN_TASK: &str = "5e1f9a0c-7b2d-4c8e-9f31-000000000405";

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
enum Role {
    Coordinator,
    Liaison,
    Reviewer,
    Auditor,
}

use Role::*;

impl Role {
    /// The caller in this role: a coordinator and a liaison of IT, a
    /// country like any; a reviewer and an auditor of the secretariat (GS),
    /// where they sit. `(token name, country)`.
    fn caller(self) -> (&'static str, &'static str) {
        match self {
            Coordinator => ("IT_COORDINATOR", "IT"),
            Liaison => ("IT_LIAISON", "IT"),
            Reviewer => ("GS_REVIEWER", "GS"),
            Auditor => ("GS_AUDITOR", "GS"),
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
enum Object {
    /// Made for the caller's country: what it is entitled to.
    Own,
    /// Another country's, which the caller's country is not entitled to.
    Foreign,
    /// An id nobody has.
    Unknown,
}

/// What kind of thing an object is, for who sees it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Kind {
    Operation,
    Lead,
    Arrest,
    Notice,
    Crisis,
    Deployment,
}

/// Whether a caller in `role` sees another country's object of `kind`
/// (docs/design.md, Visibility): auditors see everything; every country
/// sees every crisis; reviewers see notice requests until they are
/// published, and everyone sees a published one.
fn sees_others(role: Role, kind: Kind) -> bool {
    role == Auditor || kind == Kind::Crisis || (kind == Kind::Notice && role == Reviewer)
}

/// What an operation acts on, and how the own, foreign and unknown cases
/// of it are made.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
enum Subject {
    /// Creations, with nothing in the path: the body says for what.
    /// An operation led by the caller's country (foreign: led by FR).
    NewOperation,
    /// A notice (foreign: in an operation the caller's country is not in;
    /// unknown: in one nobody has).
    NewNotice,
    /// A crisis in the caller's country (foreign: in ES).
    NewCrisis,
    /// A team of the caller's country sent to a crisis in ES (foreign: for
    /// an operation the caller's country is not in; unknown: for one
    /// nobody has).
    NewDeployment,
    /// An operation led by the caller's country.
    Operation,
    /// An operation led by the caller's country and a participant of it
    /// without tasks (DE).
    Participant,
    /// An operation led by the caller's country and a task of it assigned
    /// to the caller's country.
    Task,
    /// A lead the caller's country posted.
    Lead,
    /// An arrest the caller's country reported.
    Arrest,
    /// A notice the caller's country requested.
    Notice,
    /// A notice requested by a country the secretariat reviews: the
    /// caller's, or IT's when the caller is of the secretariat.
    NoticeToReview,
    /// A crisis in the caller's country (in IT when the caller is of the
    /// secretariat, which is no place).
    Crisis,
    /// A deployment requested by DE to the caller's country, for a crisis
    /// there (when the caller is of the secretariat, which hosts nothing, a
    /// `TeamRequested`).
    ToHost,
    /// A deployment of a team of the caller's country to a crisis in ES,
    /// requested.
    TeamRequested,
    /// The same, approved by ES.
    TeamApproved,
}

/// What a creation answers when its body names another country's thing,
/// and whether it has an unknown case: `(foreign, unknown)`.
fn creation(subject: Subject) -> Option<(u16, Option<u16>)> {
    match subject {
        // Only for the caller's own country: forbidden elsewhere, where the
        // country is no secret (it is in the request).
        Subject::NewOperation | Subject::NewCrisis => Some((403, None)),
        // In an operation: one the caller's country is not in is not found,
        // like one that does not exist.
        Subject::NewNotice | Subject::NewDeployment => Some((404, Some(404))),
        _ => None,
    }
}

impl Subject {
    fn kind(self) -> Kind {
        match self {
            Subject::NewOperation | Subject::Operation | Subject::Participant | Subject::Task => Kind::Operation,
            Subject::Lead => Kind::Lead,
            Subject::Arrest => Kind::Arrest,
            Subject::NewNotice | Subject::Notice | Subject::NoticeToReview => Kind::Notice,
            Subject::NewCrisis | Subject::Crisis => Kind::Crisis,
            Subject::NewDeployment | Subject::ToHost | Subject::TeamRequested | Subject::TeamApproved => {
                Kind::Deployment
            }
        }
    }

    fn objects(self) -> &'static [Object] {
        match creation(self) {
            Some((_, None)) => &[Object::Own, Object::Foreign],
            _ => &[Object::Own, Object::Foreign, Object::Unknown],
        }
    }
}

/// One operation of the API and who may do what with it.
struct Rule {
    method: &'static str,
    /// The document's path template.
    path: &'static str,
    /// The roles that may send it; empty for a read, which every role may
    /// ask (what it shows is the visibility rules').
    roles: &'static [Role],
    subject: Subject,
    /// The answer to an admitted caller on its own country's object.
    ok: u16,
    /// The answer to an admitted caller on another country's object it
    /// sees (`sees_others`); 0 where no admitted role sees one.
    seen: u16,
    /// A valid body (before what the subject adds to a creation's).
    body: Option<Value>,
}

fn read(path: &'static str, subject: Subject) -> Rule {
    Rule {
        method: "GET",
        path,
        roles: &[],
        subject,
        ok: 200,
        seen: 200,
        body: None,
    }
}

fn command(
    method: &'static str,
    path: &'static str,
    roles: &'static [Role],
    subject: Subject,
    ok: u16,
    body: Option<Value>,
) -> Rule {
    Rule {
        method,
        path,
        roles,
        subject,
        ok,
        seen: 0,
        body,
    }
}

impl Rule {
    fn seen(mut self, status: u16) -> Rule {
        self.seen = status;
        self
    }

    /// The answer for `role` (`None`: no token) on `object`.
    fn expected(&self, role: Option<Role>, object: Object) -> u16 {
        let Some(role) = role else { return 401 };
        if !self.roles.is_empty() && !self.roles.contains(&role) {
            return 403;
        }
        match (object, creation(self.subject)) {
            (Object::Own, _) => self.ok,
            (Object::Foreign, Some((foreign, _))) => foreign,
            (Object::Unknown, Some((_, unknown))) => unknown.expect("a creation with an unknown case"),
            (Object::Foreign, None) if sees_others(role, self.subject.kind()) => {
                assert_ne!(
                    self.seen, 0,
                    "{} {}: what does a {role:?} who sees it get?",
                    self.method, self.path
                );
                self.seen
            }
            (Object::Foreign | Object::Unknown, None) => 404,
        }
    }
}

/// THE table: every `/v1` operation, with who may call it (docs/design.md,
/// Users: coordinators run operations; liaisons act for their country on
/// tasks, leads, arrests, notices, crises and deployments; reviewers review
/// notices and may cancel them; auditors only read) and what it acts on.
fn table() -> Vec<Rule> {
    use Subject::*;
    const COORDINATOR: &[Role] = &[Role::Coordinator];
    const LIAISON: &[Role] = &[Role::Liaison];
    const REVIEWER: &[Role] = &[Role::Reviewer];
    const LIAISON_OR_REVIEWER: &[Role] = &[Role::Liaison, Role::Reviewer];
    let reason = || Some(json!({"reason": "r"}));
    vec![
        // operations
        command(
            "POST",
            "/v1/operations",
            COORDINATOR,
            NewOperation,
            201,
            Some(json!({"title": "t", "objective": "o", "countries": ["DE"]})),
        ),
        read("/v1/operations/{id}", Operation),
        command(
            "POST",
            "/v1/operations/{id}/participants",
            COORDINATOR,
            Operation,
            200,
            Some(json!({"country": "PL"})),
        ),
        command(
            "DELETE",
            "/v1/operations/{id}/participants/{country}",
            COORDINATOR,
            Participant,
            200,
            None,
        ),
        command(
            "POST",
            "/v1/operations/{id}/tasks",
            COORDINATOR,
            Operation,
            201,
            Some(json!({"assignee_country": "DE", "title": "t", "details": "d"})),
        ),
        command(
            "POST",
            "/v1/operations/{id}/tasks/{task}/status",
            LIAISON,
            Task,
            200,
            Some(json!({"status": "accepted"})),
        ),
        command(
            "POST",
            "/v1/operations/{id}/close",
            COORDINATOR,
            Operation,
            200,
            Some(json!({"outcome": "o"})),
        ),
        // intel
        command(
            "POST",
            "/v1/operations/{id}/leads",
            LIAISON,
            Operation,
            201,
            Some(json!({"summary": "s"})),
        ),
        command(
            "POST",
            "/v1/operations/{id}/arrests",
            LIAISON,
            Operation,
            201,
            Some(json!({"person": {"name": "n"}, "location_country": "FR"})),
        ),
        read("/v1/leads/{id}", Lead),
        command(
            "POST",
            "/v1/leads/{id}/amend",
            LIAISON,
            Lead,
            200,
            Some(json!({"reason": "r", "summary": "s2"})),
        ),
        command("POST", "/v1/leads/{id}/retract", LIAISON, Lead, 200, reason()),
        read("/v1/arrests/{id}", Arrest),
        command(
            "POST",
            "/v1/notices",
            LIAISON,
            NewNotice,
            201,
            Some(
                json!({"color": "blue", "subject": {"kind": "person", "description": "a witness"}, "reason": "locate"}),
            ),
        ),
        read("/v1/notices/{id}", Notice),
        // A reviewer sees every notice request, and reviews any but its
        // own country's.
        command(
            "POST",
            "/v1/notices/{id}/review",
            REVIEWER,
            NoticeToReview,
            200,
            Some(json!({"decision": "approve", "reason": "r", "grounds": {
                "not_political": true, "not_military": true, "not_religious": true,
                "not_racial": true, "facts_support_purpose": true}})),
        )
        .seen(200),
        command(
            "POST",
            "/v1/notices/{id}/cancel",
            LIAISON_OR_REVIEWER,
            Notice,
            200,
            reason(),
        )
        .seen(200),
        // crisis: every country sees every crisis, and only the affected
        // country's liaison (or one with a team there, for sitreps) acts
        command(
            "POST",
            "/v1/crises",
            LIAISON,
            NewCrisis,
            201,
            Some(json!({"kind": "other", "title": "t", "severity": 2})),
        ),
        read("/v1/crises/{id}", Crisis),
        command(
            "POST",
            "/v1/crises/{id}/sitreps",
            LIAISON,
            Crisis,
            201,
            Some(json!({"text": "t"})),
        )
        .seen(403),
        command(
            "POST",
            "/v1/crises/{id}/assistance-requests",
            LIAISON,
            Crisis,
            201,
            Some(json!({"needs": ["medical"]})),
        )
        .seen(403),
        command(
            "POST",
            "/v1/crises/{id}/escalate",
            LIAISON,
            Crisis,
            200,
            Some(json!({"severity": 3, "reason": "r"})),
        )
        .seen(403),
        command(
            "POST",
            "/v1/crises/{id}/deescalate",
            LIAISON,
            Crisis,
            200,
            Some(json!({"severity": 1, "reason": "r"})),
        )
        .seen(403),
        command(
            "POST",
            "/v1/crises/{id}/close",
            LIAISON,
            Crisis,
            200,
            Some(json!({"summary": "s"})),
        )
        .seen(403),
        // deployments
        command(
            "POST",
            "/v1/deployments",
            LIAISON,
            NewDeployment,
            201,
            Some(json!({"team": "irt", "reason": "r"})),
        ),
        read("/v1/deployments/{id}", TeamRequested),
        command("POST", "/v1/deployments/{id}/approve", LIAISON, ToHost, 200, None),
        command("POST", "/v1/deployments/{id}/decline", LIAISON, ToHost, 200, reason()),
        command("POST", "/v1/deployments/{id}/arrive", LIAISON, TeamApproved, 200, None),
        command(
            "POST",
            "/v1/deployments/{id}/end",
            LIAISON,
            TeamApproved,
            200,
            Some(json!({"report": "r"})),
        ),
        command(
            "POST",
            "/v1/deployments/{id}/recall",
            LIAISON,
            TeamRequested,
            200,
            reason(),
        ),
    ]
}

/// What a cell sends: the path's segments, and for a creation what its
/// body adds.
#[derive(Debug, Clone)]
struct Target {
    id: String,
    task: String,
    country: String,
    body: Map<String, Value>,
}

impl Target {
    fn of(id: &str) -> Target {
        Target {
            id: id.to_owned(),
            task: UNKNOWN_TASK.to_owned(),
            country: "DE".to_owned(),
            body: Map::new(),
        }
    }

    fn adding(body: Value) -> Target {
        Target {
            body: body.as_object().expect("an object").clone(),
            ..Target::of(UNKNOWN)
        }
    }

    fn path(&self, template: &str) -> String {
        template
            .replace("{id}", &self.id)
            .replace("{task}", &self.task)
            .replace("{country}", &self.country)
    }

    fn body(&self, base: Option<&Value>) -> Option<Value> {
        let mut body = base?.as_object().expect("an object").clone();
        body.extend(self.body.clone());
        Some(Value::Object(body))
    }
}

/// The running system, what its answers acknowledged, and the objects made
/// so far.
struct World {
    sys: Up,
    doc: Value,
    acknowledged: BTreeSet<(String, u64)>,
    /// Objects refusals and reads may share: `(subject, object, country)`.
    shared: HashMap<(Subject, Object, &'static str), Target>,
    /// One crisis per country, for deployments and shared reads.
    crises: HashMap<&'static str, String>,
}

impl World {
    /// Sends a request and keeps what a command's 2xx answer acknowledged.
    async fn send(&mut self, method: &str, path: &str, who: Option<&str>, body: Option<Value>) -> Response {
        let r = self.sys.call(method, path, who, &[], body).await;
        if (200..300).contains(&r.status) && method != "GET" {
            let service = service_of(&self.doc, method, path).unwrap_or_else(|| panic!("{method} {path}: no route"));
            acknowledge(&service, &r.json(), &mut self.acknowledged);
        }
        r
    }

    /// A fixture's command, which must succeed: the id it answers.
    async fn made(&mut self, path: &str, who: &str, body: Option<Value>) -> String {
        let r = self.send("POST", path, Some(who), body).await;
        assert!(
            r.status == 200 || r.status == 201,
            "making POST {path} as {who}: {} {}",
            r.status,
            String::from_utf8_lossy(&r.body)
        );
        r.json()["id"].as_str().expect("an id").to_owned()
    }

    /// An open operation led by `country`, with DE taking part.
    async fn operation(&mut self, country: &str) -> String {
        let body = json!({"title": "t", "objective": "o", "lead_country": country, "countries": ["DE"]});
        self.made("/v1/operations", &format!("{country}_COORDINATOR"), Some(body))
            .await
    }

    async fn notice(&mut self, country: &str) -> String {
        let body =
            json!({"color": "blue", "subject": {"kind": "person", "description": "a witness"}, "reason": "locate"});
        self.made("/v1/notices", &format!("{country}_LIAISON"), Some(body))
            .await
    }

    async fn new_crisis(&mut self, country: &str) -> String {
        let body = json!({"kind": "other", "title": "t", "country": country, "severity": 2});
        self.made("/v1/crises", &format!("{country}_LIAISON"), Some(body)).await
    }

    /// The crisis in `country` deployments and reads share (never closed).
    async fn crisis(&mut self, country: &'static str) -> String {
        if let Some(id) = self.crises.get(country) {
            return id.clone();
        }
        let id = self.new_crisis(country).await;
        self.crises.insert(country, id.clone());
        id
    }

    /// A deployment of a team of `team` to `host`, for the crisis there,
    /// requested by `team`'s liaison.
    async fn deployment(&mut self, team: &str, host: &'static str) -> String {
        let crisis = self.crisis(host).await;
        let body = json!({"team": "irt", "host_country": host, "crisis_id": crisis, "reason": "r",
                          "members": [{"name": "A", "role": "lead", "country": team}]});
        self.made("/v1/deployments", &format!("{team}_LIAISON"), Some(body))
            .await
    }

    /// The object of `subject` for a caller of `country`: made now when
    /// `fresh` (a command that will change it), else shared.
    async fn target(&mut self, subject: Subject, object: Object, country: &'static str, fresh: bool) -> Target {
        if object == Object::Unknown {
            return self.unknown(subject, country);
        }
        let key = (subject, object, country);
        if !fresh && let Some(t) = self.shared.get(&key) {
            return t.clone();
        }
        let t = match object {
            Object::Own => self.own(subject, country).await,
            _ => self.foreign(subject, country).await,
        };
        if !fresh {
            self.shared.insert(key, t.clone());
        }
        t
    }

    async fn own(&mut self, subject: Subject, country: &'static str) -> Target {
        // The secretariat is no place: it hosts nothing and has no crisis.
        let place = if country == "GS" { "IT" } else { country };
        match subject {
            Subject::NewOperation => Target::adding(json!({"lead_country": country})),
            Subject::NewNotice => Target::adding(json!({})),
            Subject::NewCrisis => Target::adding(json!({"country": country})),
            Subject::NewDeployment => {
                let crisis = self.crisis("ES").await;
                Target::adding(json!({"host_country": "ES", "crisis_id": crisis,
                                      "members": [{"name": "A", "role": "lead", "country": country}]}))
            }
            Subject::Operation | Subject::Participant => Target::of(&self.operation(country).await),
            Subject::Task => {
                let op = self.operation(country).await;
                let body = json!({"assignee_country": country, "title": "t", "details": "d"});
                let task = self
                    .made(
                        &format!("/v1/operations/{op}/tasks"),
                        &format!("{country}_COORDINATOR"),
                        Some(body),
                    )
                    .await;
                Target {
                    task,
                    ..Target::of(&op)
                }
            }
            Subject::Lead => {
                let op = self.operation(country).await;
                let who = format!("{country}_LIAISON");
                Target::of(
                    &self
                        .made(
                            &format!("/v1/operations/{op}/leads"),
                            &who,
                            Some(json!({"summary": "s"})),
                        )
                        .await,
                )
            }
            Subject::Arrest => {
                let op = self.operation(country).await;
                let who = format!("{country}_LIAISON");
                let body = json!({"person": {"name": "n"}, "location_country": "FR"});
                Target::of(
                    &self
                        .made(&format!("/v1/operations/{op}/arrests"), &who, Some(body))
                        .await,
                )
            }
            Subject::Notice => Target::of(&self.notice(country).await),
            Subject::NoticeToReview => Target::of(&self.notice(place).await),
            Subject::Crisis => Target::of(&self.new_crisis(place).await),
            Subject::ToHost if country == "GS" => Target::of(&self.deployment(country, "ES").await),
            Subject::ToHost => Target::of(&self.deployment("DE", country).await),
            Subject::TeamRequested => Target::of(&self.deployment(country, "ES").await),
            Subject::TeamApproved => {
                let id = self.deployment(country, "ES").await;
                self.made(&format!("/v1/deployments/{id}/approve"), "ES_LIAISON", None)
                    .await;
                Target::of(&id)
            }
        }
    }

    /// An open operation FR leads and DE takes part in.
    async fn fr_de(&mut self) -> String {
        let body = json!({"title": "t", "objective": "o", "lead_country": "FR", "countries": ["DE"]});
        self.made("/v1/operations", "FR_COORDINATOR", Some(body)).await
    }

    /// Another country's: FR and DE's operation, its task and DE's lead and
    /// arrest in it, DE's notice request, the crisis in ES, DE's team to ES.
    /// Neither IT nor GS takes part in any of them.
    async fn foreign(&mut self, subject: Subject, country: &str) -> Target {
        match subject {
            Subject::NewOperation => Target::adding(json!({"lead_country": "FR"})),
            Subject::NewNotice => Target::adding(json!({"operation_id": self.fr_de().await})),
            Subject::NewCrisis => Target::adding(json!({"country": "ES"})),
            Subject::NewDeployment => Target::adding(json!({"host_country": "FR", "operation_id": self.fr_de().await,
                                      "members": [{"name": "A", "role": "lead", "country": country}]})),
            Subject::Operation | Subject::Participant => Target::of(&self.fr_de().await),
            Subject::Task => {
                let op = self.fr_de().await;
                let body = json!({"assignee_country": "DE", "title": "t", "details": "d"});
                let task = self
                    .made(&format!("/v1/operations/{op}/tasks"), "FR_COORDINATOR", Some(body))
                    .await;
                Target {
                    task,
                    ..Target::of(&op)
                }
            }
            Subject::Lead => {
                let op = self.fr_de().await;
                Target::of(
                    &self
                        .made(
                            &format!("/v1/operations/{op}/leads"),
                            "DE_LIAISON",
                            Some(json!({"summary": "s"})),
                        )
                        .await,
                )
            }
            Subject::Arrest => {
                let op = self.fr_de().await;
                let body = json!({"person": {"name": "n"}, "location_country": "FR"});
                Target::of(
                    &self
                        .made(&format!("/v1/operations/{op}/arrests"), "DE_LIAISON", Some(body))
                        .await,
                )
            }
            Subject::Notice | Subject::NoticeToReview => Target::of(&self.notice("DE").await),
            Subject::Crisis => Target::of(&self.crisis("ES").await),
            Subject::ToHost | Subject::TeamRequested => Target::of(&self.deployment("DE", "ES").await),
            Subject::TeamApproved => {
                let id = self.deployment("DE", "ES").await;
                self.made(&format!("/v1/deployments/{id}/approve"), "ES_LIAISON", None)
                    .await;
                Target::of(&id)
            }
        }
    }

    fn unknown(&self, subject: Subject, country: &str) -> Target {
        match subject {
            Subject::NewNotice => Target::adding(json!({"operation_id": UNKNOWN})),
            Subject::NewDeployment => Target::adding(json!({"host_country": "FR", "operation_id": UNKNOWN,
                                      "members": [{"name": "A", "role": "lead", "country": country}]})),
            _ => Target::of(UNKNOWN),
        }
    }
}

/// The projector's reads: a country's view and feed (`{cc}`: the caller's
/// own country, or FR's), and the lists. Who may read (the issue of the
/// projector): a liaison or a coordinator its own country only; a
/// reviewer the notice list only; an auditor everything.
struct ViewRule {
    path: &'static str,
    /// `(role, the caller's own country in {cc})` → the status.
    expected: fn(Role, bool) -> u16,
}

fn own_country_only(role: Role, own: bool) -> u16 {
    match role {
        Coordinator | Liaison if own => 200,
        Coordinator | Liaison | Reviewer => 403,
        Auditor => 200,
    }
}

fn countries_not_reviewers(role: Role, _: bool) -> u16 {
    if role == Reviewer { 403 } else { 200 }
}

fn everyone(_: Role, _: bool) -> u16 {
    200
}

fn auditors_only(role: Role, _: bool) -> u16 {
    if role == Auditor { 200 } else { 403 }
}

/// An unknown operation: an auditor is told so, nobody else learns it.
fn auditors_only_unknown(role: Role, _: bool) -> u16 {
    if role == Auditor { 404 } else { 403 }
}

fn view_rules() -> Vec<ViewRule> {
    vec![
        ViewRule {
            path: "/v1/audit/operations/{id}/timeline",
            expected: auditors_only_unknown,
        },
        ViewRule {
            path: "/v1/audit/operations/{id}/state",
            expected: auditors_only_unknown,
        },
        ViewRule {
            path: "/v1/audit/actors/{sub}/actions",
            expected: auditors_only,
        },
        ViewRule {
            path: "/v1/audit/verify",
            expected: auditors_only,
        },
        ViewRule {
            path: "/v1/audit/countries/{cc}/knowledge",
            expected: auditors_only,
        },
        ViewRule {
            path: "/v1/audit/export?service=operations",
            expected: auditors_only,
        },
        ViewRule {
            path: "/v1/audit/access",
            expected: auditors_only,
        },
        ViewRule {
            path: "/v1/audit/checkpoints/latest",
            expected: everyone,
        },
        ViewRule {
            path: "/v1/audit/checkpoints/key",
            expected: everyone,
        },
        ViewRule {
            path: "/v1/countries/{cc}/view",
            expected: own_country_only,
        },
        ViewRule {
            path: "/v1/countries/{cc}/feed",
            expected: own_country_only,
        },
        ViewRule {
            path: "/v1/operations",
            expected: countries_not_reviewers,
        },
        ViewRule {
            path: "/v1/tasks",
            expected: countries_not_reviewers,
        },
        ViewRule {
            path: "/v1/notices",
            expected: everyone,
        },
        ViewRule {
            path: "/v1/search?q=Muller",
            expected: everyone,
        },
        ViewRule {
            path: "/v1/crises",
            expected: countries_not_reviewers,
        },
        ViewRule {
            path: "/v1/deployments",
            expected: countries_not_reviewers,
        },
    ]
}

/// The `(METHOD, path)` of every `/v1` operation of the document.
fn operations_of(doc: &Value) -> BTreeSet<(String, String)> {
    const METHODS: [&str; 8] = ["get", "put", "post", "delete", "patch", "head", "options", "trace"];
    let paths = doc["paths"].as_object().expect("paths");
    paths
        .iter()
        .filter(|(path, _)| path.starts_with("/v1/") || *path == "/v1")
        .flat_map(|(path, item)| {
            METHODS
                .iter()
                .filter(|m| item.get(**m).is_some())
                .map(|m| (m.to_ascii_uppercase(), path.clone()))
        })
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_operation_answers_each_role_and_object_as_its_rule_says() {
    let started = std::time::Instant::now();
    let dir = tempfile::TempDir::new().expect("tmp");
    let data = dir.path().join("data");
    let mut sys = up(&data, &free_addr());
    for (role, country) in [("coordinator", "IT"), ("coordinator", "GS"), ("liaison", "GS")] {
        let name = format!("{country}_{}", role.to_ascii_uppercase());
        sys.tokens.insert(name, token_for(&data, role, country));
    }
    let doc = sys.call("GET", "/openapi.json", None, &[], None).await.json();
    let rules = table();

    // One rule per operation of the document, and no other.
    let mut ruled = BTreeSet::new();
    let mut problems = Vec::new();
    for r in &rules {
        if !ruled.insert((r.method.to_owned(), r.path.to_owned())) {
            problems.push(format!("{} {}: two rules", r.method, r.path));
        }
    }
    let views = view_rules();
    for v in &views {
        let path = v.path.split('?').next().unwrap_or(v.path);
        if !ruled.insert(("GET".to_owned(), path.to_owned())) {
            problems.push(format!("GET {}: two rules", v.path));
        }
    }
    let documented = operations_of(&doc);
    for (method, path) in documented.difference(&ruled) {
        problems.push(format!("{method} {path}: in /openapi.json, without a rule"));
    }
    for (method, path) in ruled.difference(&documented) {
        problems.push(format!("{method} {path}: a rule, not in /openapi.json"));
    }
    assert!(
        problems.is_empty(),
        "the table and the document differ:\n{}",
        problems.join("\n")
    );

    let mut world = World {
        sys,
        doc,
        acknowledged: BTreeSet::new(),
        shared: HashMap::new(),
        crises: HashMap::new(),
    };
    let mut wrong = Vec::new();
    let mut cells = 0;
    let mut by_status = BTreeMap::new();
    for rule in &rules {
        for role in [None, Some(Coordinator), Some(Liaison), Some(Reviewer), Some(Auditor)] {
            let (who, country) = role.map_or((None, "IT"), |r| {
                let (who, country) = r.caller();
                (Some(who), country)
            });
            // The 404 of a foreign object must be the 404 of an unknown one.
            let mut not_found: Vec<(Object, Value)> = Vec::new();
            for &object in rule.subject.objects() {
                let expected = rule.expected(role, object);
                let fresh = rule.method != "GET" && (200..300).contains(&expected);
                let target = world.target(rule.subject, object, country, fresh).await;
                let path = target.path(rule.path);
                let r = world
                    .send(rule.method, &path, who, target.body(rule.body.as_ref()))
                    .await;
                cells += 1;
                *by_status.entry(r.status).or_insert(0) += 1;
                let cell = format!("{} {} as {role:?} on {object:?} ({path})", rule.method, rule.path);
                if r.status != expected {
                    wrong.push(format!(
                        "{cell}: {} instead of {expected}: {}",
                        r.status,
                        String::from_utf8_lossy(&r.body)
                    ));
                    continue;
                }
                if expected >= 400 {
                    let code = match expected {
                        401 => "unauthorized",
                        403 => "forbidden",
                        _ => "not_found",
                    };
                    if r.header("content-type") != Some("application/problem+json") || r.json()["code"] != code {
                        wrong.push(format!(
                            "{cell}: not a {code} problem: {}",
                            String::from_utf8_lossy(&r.body)
                        ));
                    }
                }
                if expected == 404 {
                    not_found.push((object, r.json()));
                }
            }
            if let [(_, first), rest @ ..] = not_found.as_slice() {
                for (object, problem) in rest {
                    if problem != first {
                        wrong.push(format!(
                            "{} {} as {role:?}: the 404 on {object:?} tells it apart: {problem} vs {first}",
                            rule.method, rule.path
                        ));
                    }
                }
            }
        }
    }
    for v in &views {
        for role in [None, Some(Coordinator), Some(Liaison), Some(Reviewer), Some(Auditor)] {
            let (who, country) = role.map_or((None, "IT"), |r| {
                let (who, country) = r.caller();
                (Some(who), country)
            });
            for own in [true, false] {
                if !own && !v.path.contains("{cc}") {
                    continue;
                }
                let path = v
                    .path
                    .replace("{cc}", if own { country } else { "FR" })
                    .replace("{id}", "0190d2a4-0000-7000-8000-000000000000")
                    .replace("{sub}", "nobody");
                let r = world.send("GET", &path, who, None).await;
                cells += 1;
                *by_status.entry(r.status).or_insert(0) += 1;
                let expected = role.map_or(401, |role| (v.expected)(role, own));
                if r.status != expected {
                    wrong.push(format!(
                        "GET {path} as {role:?}: {} instead of {expected}: {}",
                        r.status,
                        String::from_utf8_lossy(&r.body)
                    ));
                }
            }
        }
    }
    // Nothing of what IT is not entitled to is in IT's view: every
    // operation there has IT in it, every deployment too, every notice is
    // IT's own request or published, every lead or arrest is of an
    // operation IT sees.
    let mut after: Option<String> = None;
    let mut seen_ops = BTreeSet::new();
    let mut intel = Vec::new();
    loop {
        let path = match &after {
            Some(c) => format!("/v1/countries/IT/view?after={c}"),
            None => "/v1/countries/IT/view".to_owned(),
        };
        let page = world.send("GET", &path, Some("IT_LIAISON"), None).await.json();
        for entry in page["items"].as_array().expect("items") {
            let item = &entry["item"];
            let has_it = |field: &str| item[field].as_array().is_some_and(|a| a.contains(&json!("IT")));
            match entry["service"].as_str() {
                Some("operations") => {
                    if item["lead_country"] != "IT" && !has_it("participants") {
                        wrong.push(format!("IT's view holds an operation IT is not in: {item}"));
                    }
                    seen_ops.insert(item["id"].as_str().unwrap_or_default().to_owned());
                }
                Some("deployments")
                    if item["host_country"] != "IT" && !item.to_string().contains("\"country\":\"IT\"") =>
                {
                    wrong.push(format!("IT's view holds a deployment IT is not in: {item}"));
                }
                // A notice another country requested reaches IT once
                // approved (and stays after a cancellation), to every
                // country or to its recipients.
                Some("intel")
                    if item["kind"] == "notice"
                        && item["requesting_country"] != "IT"
                        && (item["review"]["decision"] != "approve"
                            || item["recipients"].as_array().is_some_and(|r| !r.contains(&json!("IT")))) =>
                {
                    wrong.push(format!("IT's view holds a notice not published to IT: {item}"));
                }
                Some("intel") if item["kind"] != "notice" => intel.push(item.clone()),
                _ => {}
            }
        }
        match page["next"].as_str() {
            Some(c) => after = Some(c.to_owned()),
            None => break,
        }
    }
    if seen_ops.is_empty() {
        wrong.push("IT's view holds none of the operations IT leads: the leak check saw nothing".to_owned());
    }
    for item in intel {
        if !seen_ops.contains(item["operation_id"].as_str().unwrap_or_default()) {
            wrong.push(format!(
                "IT's view holds a lead or arrest of an operation it does not see: {item}"
            ));
        }
    }
    eprintln!(
        "{cells} cells over {} operations, by status {by_status:?}, in {:?}",
        rules.len() + views.len(),
        started.elapsed()
    );
    assert!(
        wrong.is_empty(),
        "{} cells answered wrongly:\n{}",
        wrong.len(),
        wrong.join("\n")
    );

    // No refusal wrote anything: the logs hold exactly what 2xx answers
    // acknowledged.
    let World { sys, acknowledged, .. } = world;
    drop(sys);
    assert_only_acknowledged(&data, acknowledged);
}
