//! Who may publish and subscribe what on the bus: ONE table ([`TABLE`]),
//! one row per NATS identity, from which the nats-server configuration
//! ([`server_config`]) and the permission table of `docs/security.md` are
//! both generated. Later issues extend it with rows or columns (the
//! projector reading every log and publishing per-country feeds, the audit
//! service recording accesses).
//!
//! A row says what the identity does, not subjects: the service whose
//! commands, queries and log it answers, the logs it follows, the commands
//! it sends, the queries it asks, the services it monitors. [`grant`] turns
//! that into allow lists; everything not allowed is refused by nats-server
//! (no anonymous user, no default permissions).
//!
//! Must not: grant a subject no code path of the identity uses (each grant
//! says why below), or let one identity read another's replies (each
//! subscribes only its own inbox prefix, `subjects::inbox_prefix`).

use std::fmt::Write as _;

use concord_core::envelope::Service;
use concord_core::{CountryCode, subjects};

/// A NATS identity: one per service, the gateway, the operator's
/// command-line tools, the projector, and a national site of a country
/// (made only for the countries that run one: `credentials::add_site`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Identity {
    Service(Service),
    Gateway,
    Operator,
    /// The projector: follows every log, answers the views' queries,
    /// publishes each country's feed.
    Projector,
    /// A country's national site (a leaf node of its own): hears that
    /// country's feed and reads its gaps, nothing else.
    Site(CountryCode),
}

/// The name of a national site's identity: `site-<cc>`, lower case.
const SITE_PREFIX: &str = "site-";

impl Identity {
    /// Every identity, in the table's order.
    pub const ALL: [Identity; 8] = [
        Identity::Service(Service::Operations),
        Identity::Service(Service::Intel),
        Identity::Service(Service::Crisis),
        Identity::Service(Service::Deployments),
        Identity::Gateway,
        Identity::Operator,
        Identity::Projector,
        Identity::Service(Service::Audit),
    ];

    pub fn name(self) -> String {
        match self {
            Identity::Service(s) => s.as_str().to_owned(),
            Identity::Gateway => "gateway".to_owned(),
            Identity::Operator => "operator".to_owned(),
            Identity::Projector => "projector".to_owned(),
            Identity::Site(cc) => format!("{SITE_PREFIX}{}", cc.as_str().to_ascii_lowercase()),
        }
    }

    pub fn parse(name: &str) -> Option<Identity> {
        if let Some(cc) = name.strip_prefix(SITE_PREFIX) {
            // Only the lower-case spelling `name` gives, so each site has one name.
            if cc.bytes().any(|b| b.is_ascii_uppercase()) {
                return None;
            }
            return cc.to_ascii_uppercase().parse().ok().map(Identity::Site);
        }
        Identity::ALL.into_iter().find(|i| i.name() == name)
    }

    /// Where replies to its requests arrive (its own inbox prefix).
    pub fn inbox_prefix(self) -> String {
        subjects::inbox_prefix(&self.name())
    }

    /// The variable of its public key in the generated server config.
    pub fn nkey_variable(self) -> String {
        format!("CONCORD_NKEY_{}", self.name().to_ascii_uppercase().replace('-', "_"))
    }

    /// Its row of [`TABLE`], which lists the identities in the order of
    /// [`Identity::ALL`] (`every_identity_has_one_row`). A national site
    /// has no row: its grant is [`site_grant`], the same for every country.
    pub fn row(self) -> Option<&'static Row> {
        let at = match self {
            Identity::Service(Service::Operations) => 0,
            Identity::Service(Service::Intel) => 1,
            Identity::Service(Service::Crisis) => 2,
            Identity::Service(Service::Deployments) => 3,
            Identity::Gateway => 4,
            Identity::Operator => 5,
            Identity::Projector => 6,
            Identity::Service(Service::Audit) => 7,
            Identity::Site(_) => return None,
        };
        Some(&TABLE[at])
    }
}

impl std::fmt::Display for Identity {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.name())
    }
}

/// What one identity does on the bus.
#[derive(Debug)]
pub struct Row {
    pub identity: Identity,
    /// The service whose commands and queries it answers (in the service's
    /// queue group), whose log it serves and whose events it publishes.
    pub serves: Option<Service>,
    /// The logs it follows: it reads them (`log.read/head`) and hears their
    /// events (`concord.evt.<source>.>`, a hint only: `consumer`).
    pub follows: &'static [Service],
    /// The commands it sends: `(service, command)`, `*` for every command.
    pub sends: &'static [(Service, &'static str)],
    /// The services whose queries it asks (any query of theirs).
    pub asks: &'static [Service],
    /// The services whose NATS service `PING` and `STATS` it asks.
    pub monitors: &'static [Service],
    /// The logs whose head it asks without reading them.
    pub heads: &'static [Service],
    /// The logs it reads whole, without hearing their events (backups).
    pub reads: &'static [Service],
    /// Whether it answers the projector's queries (`concord.qry.projector.*`
    /// and the feeds' `concord.feed.*.read`, queue group `projector`) and
    /// publishes every country's feed (`concord.feed.<CC>.<service>.>`).
    pub projects: bool,
    /// Whether it asks the projector's queries.
    pub reads_views: bool,
    /// Whether it answers the audit's queries (`concord.qry.audit.*`,
    /// queue group `audit`).
    pub audits: bool,
    /// Whether it asks the audit's queries.
    pub reads_audit: bool,
}

/// The one permission table. Rationale for each row:
///
/// - a service answers its own commands and queries, serves its own log,
///   publishes its own events; it asks its own log's head (the one-writer
///   check, `one_writer`) and its own `$SRV.PING` (bind's readiness round
///   trip);
/// - intel folds the operations log (membership, status); crisis the
///   deployments log (teams present); deployments the crisis and
///   operations logs and its own (the stand-down choreography's index),
///   and the choreography sends it `request_stand_down`;
/// - the gateway turns HTTP requests into commands and queries, and
///   `/readyz` asks each service's `PING` and `STATS` (its follow health),
///   and it reads the projector's views;
/// - the audit service follows every log, its own access log included
///   (verifying each chain), answers auditors' queries, which the gateway
///   asks, and writes the access log: the gateway sends it
///   `record_access` for every read, and nothing else of the audit's;
/// - the projector follows every log, answers the views' queries and
///   the feeds' gap reads, and publishes each country's feed; it hears an
///   operator's `concord.ctl.projector.*` (rebuild);
/// - a national site of CC (not in this table: [`site_grant`]) hears CC's
///   feed and reads its gaps, nothing else, so a site only ever receives
///   what its country may see;
/// - the operator's tools watch the services and where each log stands,
///   and `concord log backup` reads a running service's log whole (an
///   operator holds the data directory anyway); `concord projector
///   rebuild` asks the projector to rebuild its views; they hear no live
///   event and send no command or query.
pub const TABLE: &[Row] = &[
    Row {
        identity: Identity::Service(Service::Operations),
        serves: Some(Service::Operations),
        follows: &[],
        sends: &[],
        asks: &[],
        monitors: &[],
        heads: &[],
        reads: &[],
        projects: false,
        reads_views: false,
        audits: false,
        reads_audit: false,
    },
    Row {
        identity: Identity::Service(Service::Intel),
        serves: Some(Service::Intel),
        follows: &[Service::Operations],
        sends: &[],
        asks: &[],
        monitors: &[],
        heads: &[],
        reads: &[],
        projects: false,
        reads_views: false,
        audits: false,
        reads_audit: false,
    },
    Row {
        identity: Identity::Service(Service::Crisis),
        serves: Some(Service::Crisis),
        follows: &[Service::Deployments],
        sends: &[],
        asks: &[],
        monitors: &[],
        heads: &[],
        reads: &[],
        projects: false,
        reads_views: false,
        audits: false,
        reads_audit: false,
    },
    Row {
        identity: Identity::Service(Service::Deployments),
        serves: Some(Service::Deployments),
        follows: &[Service::Crisis, Service::Operations, Service::Deployments],
        sends: &[(Service::Deployments, "request_stand_down")],
        asks: &[],
        monitors: &[],
        heads: &[],
        reads: &[],
        projects: false,
        reads_views: false,
        audits: false,
        reads_audit: false,
    },
    Row {
        identity: Identity::Gateway,
        serves: None,
        follows: &[],
        sends: &[
            (Service::Operations, "*"),
            (Service::Intel, "*"),
            (Service::Crisis, "*"),
            (Service::Deployments, "*"),
            // Every read, recorded before it is answered; no other
            // command of the audit's.
            (Service::Audit, "record_access"),
        ],
        asks: &Service::ALL,
        monitors: &Service::LOGS,
        heads: &[],
        reads: &[],
        projects: false,
        reads_views: true,
        audits: false,
        reads_audit: true,
    },
    Row {
        identity: Identity::Operator,
        serves: None,
        follows: &[],
        sends: &[],
        asks: &[],
        monitors: &Service::LOGS,
        heads: &Service::LOGS,
        reads: &Service::LOGS,
        projects: false,
        reads_views: false,
        audits: false,
        reads_audit: false,
    },
    Row {
        identity: Identity::Projector,
        serves: None,
        follows: &Service::ALL,
        sends: &[],
        asks: &[],
        monitors: &[],
        heads: &[],
        reads: &[],
        projects: true,
        reads_views: false,
        audits: false,
        reads_audit: false,
    },
    Row {
        identity: Identity::Service(Service::Audit),
        serves: Some(Service::Audit),
        follows: &Service::LOGS,
        sends: &[],
        asks: &[],
        monitors: &[],
        heads: &[],
        reads: &[],
        projects: false,
        reads_views: false,
        audits: true,
        reads_audit: false,
    },
];

/// A subscribe permission: a subject, and the queue group it must be
/// joined with (none: a plain subscription).
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub struct Sub {
    pub subject: String,
    pub queue: Option<String>,
}

impl Sub {
    fn plain(subject: String) -> Sub {
        Sub { subject, queue: None }
    }

    /// As nats-server writes a queue permission: `"<subject> <queue>"`.
    pub fn to_config(&self) -> String {
        match &self.queue {
            Some(q) => format!("{} {q}", self.subject),
            None => self.subject.clone(),
        }
    }
}

/// What an identity is allowed, as nats-server enforces it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Grant {
    pub identity: Identity,
    pub publish: Vec<String>,
    pub subscribe: Vec<Sub>,
    /// May answer a request it received (on the request's reply subject,
    /// once), and nothing else on reply subjects.
    pub allow_responses: bool,
    /// May connect as a leaf node (a national site's own nats-server) as
    /// well as a client. nats-server authenticates a leaf connection
    /// against these same users and applies the same grant to it (what
    /// the leaf may receive is what the identity may subscribe), so a
    /// leaf holding a service's key would hear what that service hears;
    /// only a site's key, made for a leaf, is let in that way.
    pub leaf_node: bool,
}

/// The projector's name on the bus (its queries, its queue group).
pub const PROJECTOR: &str = "projector";
/// The audit service's name on the bus (its queries, its queue group).
pub const AUDIT: &str = "audit";

/// The NATS service protocol's verbs a service answers.
const SERVICE_VERBS: [&str; 3] = ["PING", "INFO", "STATS"];
/// The verbs a monitor asks: `PING` (is it there) and `STATS` (its
/// endpoints and follow health, `runtime::Health`).
pub const MONITOR_VERBS: [&str; 2] = ["PING", "STATS"];

/// The allow lists of `row`.
pub fn grant(row: &Row) -> Grant {
    let mut publish = Vec::new();
    let mut subscribe = Vec::new();
    if let Some(s) = row.serves {
        let name = s.as_str();
        let group = Some(subjects::queue_group(name));
        subscribe.push(Sub {
            subject: subjects::commands_of(name),
            queue: group.clone(),
        });
        subscribe.push(Sub {
            subject: subjects::queries_of(name),
            queue: group,
        });
        subscribe.push(Sub::plain(subjects::log_read(s)));
        subscribe.push(Sub::plain(subjects::log_head(s)));
        // async-nats' `service` subscribes each verb bare, with the
        // service's name, and with its name and instance id.
        for verb in SERVICE_VERBS {
            subscribe.push(Sub::plain(format!("{}.{verb}", subjects::SERVICE_API)));
            subscribe.push(Sub::plain(subjects::service_api(verb, name)));
            subscribe.push(Sub::plain(format!("{}.*", subjects::service_api(verb, name))));
        }
        publish.push(subjects::events_of(s));
        publish.push(subjects::log_head(s));
        publish.push(subjects::service_api("PING", name));
    }
    for &source in row.follows {
        publish.push(subjects::log_read(source));
        publish.push(subjects::log_head(source));
        subscribe.push(Sub::plain(subjects::events_of(source)));
    }
    for &(service, command) in row.sends {
        publish.push(subjects::command(service.as_str(), command));
    }
    for &service in row.asks {
        publish.push(subjects::queries_of(service.as_str()));
    }
    for &service in row.monitors {
        for verb in MONITOR_VERBS {
            publish.push(subjects::service_api(verb, service.as_str()));
        }
    }
    for &service in row.heads {
        publish.push(subjects::log_head(service));
    }
    for &service in row.reads {
        publish.push(subjects::log_read(service));
    }
    if row.projects {
        for subject in [subjects::queries_of(PROJECTOR), subjects::feed_read(None)] {
            subscribe.push(Sub {
                subject,
                queue: Some(subjects::queue_group(PROJECTOR)),
            });
        }
        subscribe.push(Sub {
            subject: subjects::control(PROJECTOR, "*"),
            queue: Some(subjects::queue_group(PROJECTOR)),
        });
        for service in Service::ALL {
            publish.push(subjects::feed_of(None, service));
        }
    }
    if row.audits {
        subscribe.push(Sub {
            subject: subjects::queries_of(AUDIT),
            queue: Some(subjects::queue_group(AUDIT)),
        });
    }
    if row.reads_audit {
        publish.push(subjects::queries_of(AUDIT));
    }
    if row.identity == Identity::Operator {
        publish.push(subjects::control(PROJECTOR, "*"));
    }
    if row.reads_views {
        publish.push(subjects::queries_of(PROJECTOR));
    }
    subscribe.push(Sub::plain(format!("{}.>", row.identity.inbox_prefix())));
    publish.sort();
    publish.dedup();
    subscribe.sort();
    subscribe.dedup();
    Grant {
        identity: row.identity,
        publish,
        subscribe,
        allow_responses: row.serves.is_some() || row.projects || row.audits,
        leaf_node: false,
    }
}

/// The grant of a national site of `country`: it hears the country's feed
/// (each service's events, not the other sites' gap reads) and asks for
/// the entries it missed; nothing of another country, no log, no command.
/// It may do so as a client or as the site's leaf node, whose own clients
/// then receive from the hub only what this grant lets through.
pub fn site_grant(country: CountryCode) -> Grant {
    let identity = Identity::Site(country);
    let cc = country.as_str();
    let mut subscribe: Vec<Sub> = Service::ALL
        .into_iter()
        .map(|s| Sub::plain(subjects::feed_of(Some(cc), s)))
        .collect();
    subscribe.push(Sub::plain(format!("{}.>", identity.inbox_prefix())));
    subscribe.sort();
    Grant {
        identity,
        publish: vec![subjects::feed_read(Some(cc))],
        subscribe,
        allow_responses: false,
        leaf_node: true,
    }
}

/// The grant of any identity.
pub fn grant_of(identity: Identity) -> Grant {
    match identity.row() {
        Some(row) => grant(row),
        None => match identity {
            Identity::Site(cc) => site_grant(cc),
            other => unreachable!("{other} has a row (every_identity_has_one_row)"),
        },
    }
}

/// Every identity's grant, in the table's order, then the national
/// sites of `sites`.
pub fn grants(sites: &[CountryCode]) -> Vec<Grant> {
    TABLE
        .iter()
        .map(grant)
        .chain(sites.iter().map(|&cc| site_grant(cc)))
        .collect()
}

/// The file holding each identity's public key as a config variable.
pub const IDENTITIES_FILE: &str = "identities.conf";
/// The generated permissions (`deploy/nats/concord.conf` is this file).
pub const CONFIG_FILE: &str = "concord.conf";

fn quoted(items: impl IntoIterator<Item = String>) -> String {
    items
        .into_iter()
        .map(|s| format!("\"{s}\""))
        .collect::<Vec<_>>()
        .join(", ")
}

/// How `grant`'s identity may connect, as nats-server names it: a plain
/// client (`STANDARD`: no websocket or MQTT, which nothing of Concord
/// speaks), and a site also as a leaf node.
pub fn connection_types(grant: &Grant) -> &'static [&'static str] {
    if grant.leaf_node {
        &["STANDARD", "LEAFNODE"]
    } else {
        &["STANDARD"]
    }
}

/// The nats-server configuration of the permissions: every identity an
/// nkey user with its grant; no anonymous user. The public keys come from
/// [`IDENTITIES_FILE`] beside it ([`identities_config`]), so this text is
/// the same on every installation with the same national `sites`
/// (`deploy/nats/concord.conf` is the one with none).
pub fn server_config(sites: &[CountryCode]) -> String {
    let mut out = String::new();
    out.push_str(
        "# Concord's NATS permissions, generated from concord_bus::permissions::TABLE.\n\
         # Do not edit: `concord up` rewrites it on every start, and deploy/nats/concord.conf\n\
         # is this file (a test keeps them equal). docs/security.md explains each grant.\n\
         #\n\
         # Each identity is an nkey user; its public key is a variable set in\n\
         # identities.conf (written beside this file with the identities' seeds).\n\
         # There is no anonymous user: a connection without a known key is refused.\n",
    );
    let _ = writeln!(out, "include \"{IDENTITIES_FILE}\"\n");
    out.push_str("authorization {\n  users = [\n");
    for g in grants(sites) {
        let _ = writeln!(out, "    {{");
        let _ = writeln!(out, "      # {}", g.identity);
        let _ = writeln!(out, "      nkey: ${}", g.identity.nkey_variable());
        let _ = writeln!(out, "      permissions: {{");
        let _ = writeln!(
            out,
            "        publish: {{ allow: [{}] }}",
            quoted(g.publish.iter().cloned())
        );
        let _ = writeln!(
            out,
            "        subscribe: {{ allow: [{}] }}",
            quoted(g.subscribe.iter().map(Sub::to_config))
        );
        if g.allow_responses {
            let _ = writeln!(out, "        allow_responses: true");
        }
        let _ = writeln!(out, "      }}");
        let _ = writeln!(
            out,
            "      allowed_connection_types: [{}]",
            quoted(connection_types(&g).iter().map(|t| (*t).to_owned()))
        );
        let _ = writeln!(out, "    }}");
    }
    out.push_str("  ]\n}\n");
    out
}

/// [`IDENTITIES_FILE`]: each identity's public key, as the variable
/// [`server_config`] uses, for every identity and the national `sites`.
/// `keys` gives the public key of an identity.
pub fn identities_config(keys: impl Fn(Identity) -> String, sites: &[CountryCode]) -> String {
    let mut out = String::from(
        "# The public nkeys of Concord's NATS identities (no secret here: the seeds are\n\
         # in identities/<name>.nk, each readable by its owner only).\n",
    );
    for id in Identity::ALL
        .into_iter()
        .chain(sites.iter().map(|&cc| Identity::Site(cc)))
    {
        let _ = writeln!(out, "{}: \"{}\"", id.nkey_variable(), keys(id));
    }
    out
}

/// The permission table as Markdown (docs/security.md embeds it; a test
/// checks it is this text).
pub fn markdown_table() -> String {
    let mut out = String::from(
        "| identity | may publish | may subscribe | answers requests it receives | connects as |\n|---|---|---|---|---|\n",
    );
    let code = |s: &str| format!("`{s}`");
    // A national site's row, shown for Germany: every site's grant is
    // this one with its own country code.
    let example = "DE".parse::<CountryCode>().ok().map(site_grant);
    for g in grants(&[]).into_iter().chain(example) {
        let name = match g.identity {
            Identity::Site(_) => format!("{}` (a national site; each alike with its own code)", g.identity),
            _ => format!("{}`", g.identity),
        };
        let _ = writeln!(
            out,
            "| `{} | {} | {} | {} | {} |",
            name,
            g.publish.iter().map(|s| code(s)).collect::<Vec<_>>().join("<br>"),
            g.subscribe
                .iter()
                .map(|s| match &s.queue {
                    Some(q) => format!("`{}` (queue `{q}`)", s.subject),
                    None => code(&s.subject),
                })
                .collect::<Vec<_>>()
                .join("<br>"),
            if g.allow_responses { "yes" } else { "no" },
            if g.leaf_node {
                "a client or a leaf node"
            } else {
                "a client"
            },
        );
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_identity_has_one_row() {
        for (at, id) in Identity::ALL.into_iter().enumerate() {
            assert_eq!(TABLE[at].identity, id);
            assert_eq!(id.row().map(|r| r.identity), Some(id));
            assert_eq!(Identity::parse(&id.name()), Some(id));
        }
        assert_eq!(TABLE.len(), Identity::ALL.len());
        let de: CountryCode = "DE".parse().expect("DE");
        assert_eq!(Identity::Site(de).name(), "site-de");
        assert_eq!(Identity::parse("site-de"), Some(Identity::Site(de)));
        assert_eq!(Identity::parse("site-DE"), None);
        assert_eq!(Identity::parse("site-zz"), None);
        assert!(Identity::Site(de).row().is_none());
    }

    #[test]
    fn a_national_site_hears_its_own_feed_and_reads_its_own_gaps_only() {
        let de: CountryCode = "DE".parse().expect("DE");
        let g = grant_of(Identity::Site(de));
        assert_eq!(g.publish, vec!["concord.feed.DE.read".to_owned()]);
        for s in &g.subscribe {
            assert!(
                s.subject.starts_with("concord.feed.DE.") || s.subject == "_INBOX_site-de.>",
                "{s:?}"
            );
            assert_ne!(s.subject, "concord.feed.DE.>", "not the other sites' gap reads");
        }
        assert_eq!(g.subscribe.len(), Service::ALL.len() + 1);
        assert!(!g.allow_responses);
        assert_eq!(connection_types(&g), ["STANDARD", "LEAFNODE"]);
        for other in grants(&[]) {
            assert_eq!(
                connection_types(&other),
                ["STANDARD"],
                "{} is no leaf node",
                other.identity
            );
        }
        let projector = grant_of(Identity::Projector);
        assert!(projector.publish.contains(&"concord.feed.*.intel.>".to_owned()));
        assert!(projector.subscribe.contains(&Sub {
            subject: "concord.feed.*.read".into(),
            queue: Some("projector".into())
        }));
    }

    #[test]
    fn a_service_answers_in_its_own_queue_group_and_publishes_only_its_events() {
        let ops = grant_of(Identity::Service(Service::Operations));
        assert!(ops.subscribe.contains(&Sub {
            subject: "concord.cmd.operations.*".into(),
            queue: Some("operations".into())
        }));
        assert!(ops.publish.contains(&"concord.evt.operations.>".to_owned()));
        assert!(ops.allow_responses);
        for g in grants(&[]) {
            for p in &g.publish {
                if let Some(rest) = p.strip_prefix("concord.evt.") {
                    let owner = g.identity.row().and_then(|r| r.serves).map(|s| s.as_str());
                    assert_eq!(Some(rest.split('.').next().unwrap_or_default()), owner, "{p}");
                }
                assert!(!p.starts_with("_INBOX"), "{}: {p}", g.identity);
                assert!(
                    !p.contains('>') || p.starts_with("concord.evt.") || p.starts_with("concord.feed.*."),
                    "{}: {p}",
                    g.identity
                );
            }
            for s in &g.subscribe {
                if s.subject.starts_with("concord.cmd.") || s.subject.starts_with("concord.qry.") {
                    assert!(s.queue.is_some(), "{}: {s:?} outside a queue group", g.identity);
                }
                if s.subject.starts_with("_INBOX") {
                    assert_eq!(s.subject, format!("{}.>", g.identity.inbox_prefix()));
                }
                assert!(!s.subject.starts_with("concord.>") && s.subject != ">");
            }
        }
    }

    #[test]
    fn the_gateway_sends_commands_queries_and_monitors_nothing_else() {
        let gw = grant_of(Identity::Gateway);
        assert!(!gw.allow_responses);
        for p in &gw.publish {
            assert!(
                p.starts_with("concord.cmd.") || p.starts_with("concord.qry.") || p.starts_with("$SRV."),
                "{p}"
            );
        }
        assert_eq!(gw.subscribe, vec![Sub::plain("_INBOX_gateway.>".into())]);
        // Of the audit's commands, only recording a read.
        let audit: Vec<&String> = gw
            .publish
            .iter()
            .filter(|p| p.starts_with("concord.cmd.audit."))
            .collect();
        assert_eq!(audit, ["concord.cmd.audit.record_access"]);
    }
}
