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

/// `concord.feed.<CC>.<service>.<event-type>`: one event of country CC's
/// feed, published by the projector once applied and written (header
/// [`FEED_POSITION`], and [`FEED_PREVIOUS`] to find a gap).
pub fn feed_event(country: &str, service: Service, event_type: &str) -> String {
    format!("{ROOT}.feed.{country}.{service}.{event_type}")
}

/// Every feed event of one service, to every country (what the projector
/// publishes); with `country`, one country's (what its site hears).
pub fn feed_of(country: Option<&str>, service: Service) -> String {
    format!("{ROOT}.feed.{}.{service}.>", country.unwrap_or("*"))
}

/// `concord.feed.<CC>.read`: `{after, max}` → the entries of CC's feed
/// after a position (a subscriber filling a gap); `None`: every country's
/// (what the projector answers).
pub fn feed_read(country: Option<&str>) -> String {
    format!("{ROOT}.feed.{}.read", country.unwrap_or("*"))
}

/// The header of a feed message holding its feed position.
pub const FEED_POSITION: &str = "Concord-Feed-Position";
/// The header of a feed message holding the position of the country's
/// entry before it (0: none): a subscriber whose last position differs
/// missed something and reads it with [`feed_read`].
pub const FEED_PREVIOUS: &str = "Concord-Feed-Previous";

/// `concord.ctl.<name>.<verb>`: an operator's request to a running
/// component (e.g. `concord.ctl.projector.rebuild`).
pub fn control(name: &str, verb: &str) -> String {
    format!("{ROOT}.ctl.{name}.{verb}")
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
        assert_eq!(
            feed_event("DE", Service::Intel, "lead.posted"),
            "concord.feed.DE.intel.lead.posted"
        );
        assert_eq!(feed_of(Some("DE"), Service::Intel), "concord.feed.DE.intel.>");
        assert_eq!(feed_of(None, Service::Crisis), "concord.feed.*.crisis.>");
        assert_eq!(feed_read(Some("FR")), "concord.feed.FR.read");
        assert_eq!(feed_read(None), "concord.feed.*.read");
        assert_eq!(control("projector", "rebuild"), "concord.ctl.projector.rebuild");
        assert_eq!(log_read(Service::Operations), "concord.log.operations.read");
        assert_eq!(log_head(Service::Deployments), "concord.log.deployments.head");
        assert_eq!(query("operations", "get"), "concord.qry.operations.get");
        assert_eq!(commands_of("intel"), "concord.cmd.intel.*");
        assert_eq!(queries_of("intel"), "concord.qry.intel.*");
        assert_eq!(service_api("PING", "crisis"), "$SRV.PING.crisis");
        assert_eq!(inbox_prefix("gateway"), "_INBOX_gateway");
    }
}
