//! Per-port protocol overrides: `PORT=PROTOCOL` forces a port's connections to be parsed as that
//! protocol whatever their first bytes look like, `PORT=none` leaves them out.
//!
//! Owns the override's text form and its two readings: the kernel's protocol number (the `port_protocols`
//! map the classifier consults, see `crates/bpf/c`) and the user-space parser's name (`tracker`). Must not
//! touch the kernel or parse traffic.

use loupe_bpf_common as wire;

/// Protocol names an override accepts: (name, kernel `PROTO_*`, the parser's name in `PROTOCOLS`).
const NAMES: &[(&str, u8, &str)] = &[
    ("http", wire::PROTO_HTTP, "http1"),
    ("http2", wire::PROTO_HTTP2, "http2"),
    ("grpc", wire::PROTO_HTTP2, "http2"),
    ("mysql", wire::PROTO_MYSQL, "mysql"),
    ("cql", wire::PROTO_CQL, "cql"),
    ("pgsql", wire::PROTO_PGSQL, "pgsql"),
    ("dns", wire::PROTO_DNS, "dns"),
    ("redis", wire::PROTO_REDIS, "redis"),
    ("nats", wire::PROTO_NATS, "nats"),
    ("mongodb", wire::PROTO_MONGO, "mongodb"),
    ("kafka", wire::PROTO_KAFKA, "kafka"),
    ("amqp", wire::PROTO_AMQP, "amqp"),
    ("mqtt", wire::PROTO_MQTT, "mqtt"),
];

/// The word that disables a port.
const NONE: &str = "none";

/// One override: connections with `port` as their local or remote port.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PortProtocol {
    /// The port (local or remote).
    pub port: u16,
    /// The parser's name (`PROTOCOLS`), or `None`: never traced.
    pub protocol: Option<&'static str>,
    /// The kernel's protocol number (`PROTO_OTHER` when disabled).
    pub kernel: u8,
}

/// Why an override does not parse.
#[derive(thiserror::Error, Debug, PartialEq, Eq)]
pub enum PortProtocolError {
    /// Not `PORT=PROTOCOL`.
    #[error("expected PORT=PROTOCOL (e.g. 8080=http2 or 6379=none), got `{0}`")]
    Syntax(String),
    /// The port is not a number from 1 to 65535.
    #[error("invalid port `{0}`")]
    Port(String),
    /// The protocol is not one of the known names.
    #[error("unknown protocol `{name}` (one of: {known}, none)")]
    Protocol {
        /// What was given.
        name: String,
        /// The names accepted.
        known: String,
    },
}

impl std::str::FromStr for PortProtocol {
    type Err = PortProtocolError;

    fn from_str(text: &str) -> Result<Self, Self::Err> {
        let (port, name) = text.split_once('=').ok_or_else(|| PortProtocolError::Syntax(text.to_owned()))?;
        let port = match port.trim().parse::<u16>() {
            Ok(p) if p != 0 => p,
            _ => return Err(PortProtocolError::Port(port.to_owned())),
        };
        let name = name.trim().to_ascii_lowercase();
        if name == NONE {
            return Ok(PortProtocol { port, protocol: None, kernel: wire::PROTO_OTHER });
        }
        let &(_, kernel, parser) =
            NAMES.iter().find(|(n, ..)| *n == name).ok_or_else(|| PortProtocolError::Protocol {
                name: name.clone(),
                known: NAMES.iter().map(|n| n.0).collect::<Vec<_>>().join(", "),
            })?;
        Ok(PortProtocol { port, protocol: Some(parser), kernel })
    }
}

/// The parser (`PROTOCOLS` name) a protocol name as users write it stands for (`http` → `http1`).
pub fn parser_name(name: &str) -> Option<&'static str> {
    let name = name.trim().to_ascii_lowercase();
    NAMES.iter().find(|(n, ..)| *n == name).map(|&(_, _, parser)| parser)
}

/// The protocol names users may write.
pub fn names() -> impl Iterator<Item = &'static str> {
    NAMES.iter().map(|n| n.0)
}

/// The override of a connection with these ports, if any: the local port's first.
pub fn lookup(overrides: &[PortProtocol], local_port: u16, remote_port: u16) -> Option<&PortProtocol> {
    overrides.iter().find(|o| o.port == local_port).or_else(|| overrides.iter().find(|o| o.port == remote_port))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::socket::protocols::PROTOCOLS;

    #[test]
    fn overrides_parse_and_name_real_parsers() {
        let o: PortProtocol = "8080=HTTP2".parse().expect("valid");
        assert_eq!(o, PortProtocol { port: 8080, protocol: Some("http2"), kernel: wire::PROTO_HTTP2 });
        let o: PortProtocol = "6379 = none".parse().expect("valid");
        assert_eq!((o.protocol, o.kernel), (None, wire::PROTO_OTHER));
        assert_eq!("8080".parse::<PortProtocol>(), Err(PortProtocolError::Syntax("8080".into())));
        assert_eq!("0=http".parse::<PortProtocol>(), Err(PortProtocolError::Port("0".into())));
        assert_eq!("70000=http".parse::<PortProtocol>(), Err(PortProtocolError::Port("70000".into())));
        assert!(matches!("80=gopher".parse::<PortProtocol>(), Err(PortProtocolError::Protocol { .. })));
        for (name, _, parser) in NAMES {
            assert!(PROTOCOLS.iter().any(|p| p.name() == *parser), "{name} names no parser");
        }
        let all = ["80=http".parse().expect("ok"), "5432=pgsql".parse().expect("ok")];
        assert_eq!(lookup(&all, 40000, 5432).map(|o| o.port), Some(5432));
        assert_eq!(lookup(&all, 80, 5432).map(|o| o.port), Some(80));
        assert_eq!(lookup(&all, 1, 2), None);
    }
}
