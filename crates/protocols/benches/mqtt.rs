//! Throughput of `MqttConn` over the recorded streams in `testdata/mqtt` (mosquitto's clients at
//! MQTT 3.1.1 and 5, QoS 0 to 2), against a plain byte loop counting zero bytes over the
//! same bytes measured in the same run; and of redacting the parsed records.
//!
//! Owns benchmarking only; must not touch parser internals (it uses the public API).

#[path = "common/mod.rs"]
mod common;

use loupe_protocols::mqtt::{MqttConfig, MqttConn};
use loupe_protocols::redact;

macro_rules! corpus_file {
    ($name:literal) => {
        include_bytes!(concat!("../testdata/mqtt/", $name))
    };
}

fn main() {
    common::run(&common::Bench {
        name: "mqtt",
        parser: "MqttConn",
        // The recorded mix: (request stream, response stream) per connection.
        corpus: &[
            (corpus_file!("sub_qos1.req"), corpus_file!("sub_qos1.resp")),
            (corpus_file!("pub_311_qos1.req"), corpus_file!("pub_311_qos1.resp")),
            (corpus_file!("pub_5_qos2.req"), corpus_file!("pub_5_qos2.resp")),
            (corpus_file!("pub_5_qos0.req"), corpus_file!("pub_5_qos0.resp")),
        ],
        new: || MqttConn::new(MqttConfig::default()),
        floor_byte: 0,
        floor_name: "zero",
        redact: |r| redact::mqtt_packet(&mut r.req),
    });
}
