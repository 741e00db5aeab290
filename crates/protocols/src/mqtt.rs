//! MQTT 3.1, 3.1.1 and 5: an incremental packet parser per direction and the per-connection
//! entry point [`MqttConn`], which pairs each packet that expects an answer with it (`CONNECT`
//! with `CONNACK` and `PINGREQ` with `PINGRESP` in order; `PUBLISH` at QoS 1 with `PUBACK`, at
//! QoS 2 with `PUBREC`, `PUBREL` with `PUBCOMP`, `SUBSCRIBE` with `SUBACK` and `UNSUBSCRIBE`
//! with `UNSUBACK` by packet id and direction) and records the rest (`PUBLISH` at QoS 0,
//! `DISCONNECT`, `AUTH`) alone.
//!
//! Owns everything MQTT: framing and field decoding (`wire`), pairing (`conn`). Must not touch
//! other protocols, I/O or table rows.
//!
//! ```
//! use loupe_protocols::mqtt::{MqttConfig, MqttConn};
//! use loupe_protocols::{ConnParser, Side};
//!
//! let mut conn = MqttConn::new(MqttConfig::default());
//! // CONNECT (MQTT 3.1.1, client id "c"), then CONNACK accepted.
//! conn.feed(Side::Request, b"\x10\x0d\x00\x04MQTT\x04\x02\x00\x3c\x00\x01c", 100);
//! conn.feed(Side::Response, b"\x20\x02\x00\x00", 250);
//! let mut records = Vec::new();
//! conn.drain_records(&mut records);
//! assert_eq!(records[0].req.kind, 1);
//! assert_eq!(records[0].resp.as_ref().map(|r| r.kind), Some(2));
//! assert_eq!(records[0].latency_ns, 150);
//! ```

mod conn;
mod wire;

pub use conn::{MqttConfig, MqttConn, MqttStats, Record};
pub use wire::{MAX_KEPT_HEADER, MqttParser, Packet, ParserStats, looks_like, packet_type_name};

#[cfg(test)]
mod tests;
