//! Every NATS subject Concord uses, built in this one place (docs/design.md,
//! "NATS subjects"). Pure string building: no IO.

use crate::envelope::Service;

/// Root of every subject.
pub const ROOT: &str = "concord";

/// `concord.cmd.<service>.<command>`: request-reply, queue group `<service>`.
pub fn command(service: &str, command: &str) -> String {
    format!("{ROOT}.cmd.{service}.{command}")
}

/// `concord.evt.<service>.<event-type>`: published after the durable append.
pub fn event(service: Service, event_type: &str) -> String {
    format!("{ROOT}.evt.{service}.{event_type}")
}

/// Every event of one service (for consumers).
pub fn events_of(service: Service) -> String {
    format!("{ROOT}.evt.{service}.>")
}

/// `concord.log.<service>.read`: `{from_seq, max_events}` → events,
/// `head_seq` and the log's `identity`.
pub fn log_read(service: Service) -> String {
    format!("{ROOT}.log.{service}.read")
}

/// `concord.log.<service>.head`: → `{seq, hash, identity}`.
pub fn log_head(service: Service) -> String {
    format!("{ROOT}.log.{service}.head")
}

/// `concord.qry.<service>.<query>`: request-reply.
pub fn query(service: &str, query: &str) -> String {
    format!("{ROOT}.qry.{service}.{query}")
}

/// Every command of one service (what its instances subscribe).
pub fn commands_of(service: &str) -> String {
    command(service, "*")
}

/// Every query of one service (what its instances subscribe).
pub fn queries_of(service: &str) -> String {
    query(service, "*")
}

/// Root of the NATS service protocol's subjects (`$SRV.PING`, `.INFO`,
/// `.STATS`), which async-nats' `service` answers.
pub const SERVICE_API: &str = "$SRV";

/// `$SRV.<verb>.<name>`: one service's discovery `PING`, `INFO` or `STATS`.
pub fn service_api(verb: &str, name: &str) -> String {
    format!("{SERVICE_API}.{verb}.{name}")
}

/// Where the replies to one NATS identity's requests arrive
/// (`_INBOX_<identity>.…`): each identity has its own prefix, and may
/// subscribe only that one, so nobody reads another's replies.
pub fn inbox_prefix(identity: &str) -> String {
    format!("_INBOX_{identity}")
}

/// The queue group a service's instances share.
pub fn queue_group(service: &str) -> String {
    service.to_owned()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn subjects_follow_the_design() {
        assert_eq!(command("operations", "open"), "concord.cmd.operations.open");
        assert_eq!(event(Service::Intel, "lead.posted"), "concord.evt.intel.lead.posted");
        assert_eq!(events_of(Service::Crisis), "concord.evt.crisis.>");
        assert_eq!(log_read(Service::Operations), "concord.log.operations.read");
        assert_eq!(log_head(Service::Deployments), "concord.log.deployments.head");
        assert_eq!(query("operations", "get"), "concord.qry.operations.get");
        assert_eq!(commands_of("intel"), "concord.cmd.intel.*");
        assert_eq!(queries_of("intel"), "concord.qry.intel.*");
        assert_eq!(service_api("PING", "crisis"), "$SRV.PING.crisis");
        assert_eq!(inbox_prefix("gateway"), "_INBOX_gateway");
    }
}
