//! Protocol inference: which registered protocol a connection speaks, from its first captured
//! bytes, and which role the traced process plays when the kernel did not see the connection open.
//!
//! Owns the first-bytes decision in user space (the kernel makes a cheaper one of its own, on 8
//! bytes, to decide what to copy at all; see `crates/bpf/c`). Must not keep state: the tracker
//! asks once per connection.

use super::protocols::{Looks, PROTOCOLS};
use crate::events::{Direction, Role};

/// The protocol found for a connection.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Inferred {
    /// Index into `PROTOCOLS`.
    pub protocol: usize,
    /// The role the first bytes imply: a process that sends a request, or receives a response,
    /// is the client.
    pub role: Role,
}

/// The first protocol, in registry order, that the bytes look like; `None` when none does.
pub fn infer(first: &[u8], direction: Direction) -> Option<Inferred> {
    PROTOCOLS.iter().enumerate().find_map(|(protocol, p)| {
        let looks = p.looks_like(first)?;
        let role = match (direction, looks) {
            (Direction::Egress, Looks::Request) | (Direction::Ingress, Looks::Response) => Role::Client,
            _ => Role::Server,
        };
        Some(Inferred { protocol, role })
    })
}

/// The first protocol, in registry order, that a UDP socket's first datagram with a peer looks
/// like (only protocols that travel in datagrams answer); `None` when none does.
pub fn infer_datagram(first: &[u8], direction: Direction) -> Option<Inferred> {
    PROTOCOLS.iter().enumerate().find_map(|(protocol, p)| {
        let looks = p.datagram_looks_like(first)?;
        let role = match (direction, looks) {
            (Direction::Egress, Looks::Request) | (Direction::Ingress, Looks::Response) => Role::Client,
            _ => Role::Server,
        };
        Some(Inferred { protocol, role })
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn first_bytes_pick_the_protocol_and_the_role() {
        type Case = (&'static [u8], Direction, Option<(usize, Role)>);
        let cases: &[Case] = &[
            (b"GET / HTTP/1.1\r\n", Direction::Egress, Some((0, Role::Client))),
            (b"HTTP/1.1 200 OK\r\n", Direction::Egress, Some((0, Role::Server))),
            (b"*1\r\n$4\r\nPING\r\n", Direction::Ingress, Some((2, Role::Server))),
            (b"GET key\r\n", Direction::Egress, Some((2, Role::Client))),
            (b"\0\0\0\x08\x04\xd2\x16\x2f", Direction::Egress, Some((3, Role::Client))),
            (b"\0\0\0\x54\0\x03\0\0user\0", Direction::Ingress, Some((3, Role::Server))),
            (b"Q\0\0\0\x0dSELECT 1\0", Direction::Ingress, Some((3, Role::Server))),
            (
                b"\0\x1d\x12\x34\x01\x20\0\x01\0\0\0\0\0\0\x01a\x04test\0\0\x01\0\x01",
                Direction::Egress,
                Some((4, Role::Client)),
            ),
            (b"d\0\0\0\x0a5.5.5-10.11.19-MariaDB\0", Direction::Egress, Some((5, Role::Server))),
            (b"d\0\0\0\x0a5.5.5-10.11.19-MariaDB\0", Direction::Ingress, Some((5, Role::Client))),
            (b"INFO {\"server_id\":\"N\"}\r\n", Direction::Egress, Some((1, Role::Server))),
            (b"INFO {\"server_id\":\"N\"}\r\n", Direction::Ingress, Some((1, Role::Client))),
            (b"CONNECT {\"verbose\":false}\r\n", Direction::Egress, Some((1, Role::Client))),
            (b"\x10\x0d\x00\x04MQTT\x04\x02\x00\x3c\x00\x01c", Direction::Egress, Some((6, Role::Client))),
            (b"\x10", Direction::Ingress, Some((6, Role::Server))),
            (b"AMQP\x00\x00\x09\x01", Direction::Egress, Some((7, Role::Client))),
            (b"\x01\x00\x00\x00\x00\x01\xf4\x00\x0a\x00\x0a\x00\x09", Direction::Egress, Some((7, Role::Server))),
            (b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n", Direction::Egress, Some((8, Role::Client))),
            (b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n", Direction::Ingress, Some((8, Role::Server))),
            (b"\0\0\x12\x04\0\0\0\0\0\0\x03\0\0\0\x64", Direction::Egress, Some((8, Role::Server))),
            (b"\0\0\x12\x04\0\0\0\0\0\0\x03\0\0\0\x64", Direction::Ingress, Some((8, Role::Client))),
            (b"\x04\x00\x00\x00\x05\x00\x00\x00\x00", Direction::Egress, Some((9, Role::Client))),
            (b"\x04\x00\x00\x00\x05\x00\x00\x00\x00", Direction::Ingress, Some((9, Role::Server))),
            (
                b"\x24\0\0\0\x07\0\0\0\0\0\0\0\xdd\x07\0\0\0\0\0\0\0\x0f\0\0\0\x10ping\0\x01\0\0\0\0",
                Direction::Egress,
                Some((10, Role::Client)),
            ),
            (b"\0\0\0\x0b\0\x12\0\0\0\0\0\x07\0\x01c", Direction::Ingress, Some((11, Role::Server))),
            (b"SSH-2.0-OpenSSH_9.2\r\n", Direction::Egress, None),
        ];
        for (bytes, direction, want) in cases {
            let got = infer(bytes, *direction).map(|i| (i.protocol, i.role));
            assert_eq!(got, *want, "{}", String::from_utf8_lossy(bytes));
        }
    }
}
