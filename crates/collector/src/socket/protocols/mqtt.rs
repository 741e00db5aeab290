//! MQTT: `loupe_protocols::mqtt` records become `mqtt_events` rows.
//!
//! Owns the MQTT row: `req_type` and `req_body` of the packet that started the exchange (the
//! `CONNECT` password redacted), `resp_type` and `resp_body` of its answer (0 and empty when it
//! expects none), each text bounded like an HTTP body and marked when cut, and `latency`. Must not
//! parse bytes (that is `loupe_protocols::mqtt`).

use loupe_protocols::mqtt::{self, MqttConfig, MqttConn, Record};
use loupe_protocols::redact;
use loupe_schema::TableSpec;
use loupe_schema::protocols::{MqttEventsBuilder, mqtt_events};

use super::{Looks, Losses, Protocol, RowContext, append_conn8, bounded_text};
use crate::socket::tracker::TrackerConfig;

/// MQTT (3.1, 3.1.1, 5) into `mqtt_events`.
pub struct Mqtt;

impl Protocol for Mqtt {
    const NAME: &'static str = "mqtt";
    type Parser = MqttConn;
    type Builder = MqttEventsBuilder;

    fn table() -> TableSpec {
        mqtt_events()
    }

    fn looks_like(first: &[u8]) -> Option<Looks> {
        mqtt::looks_like(first).then_some(Looks::Request)
    }

    fn parser(config: &TrackerConfig) -> MqttConn {
        MqttConn::new(MqttConfig { max_value_bytes: config.parse.max_body_bytes, ..MqttConfig::default() })
    }

    fn losses(parser: &MqttConn) -> Losses {
        let s = parser.stats();
        Losses {
            parse_errors: s.request.errors + s.response.errors,
            dropped_partial: s.request.dropped_partial + s.response.dropped_partial,
            unpaired: s.orphan_answers + s.unanswered,
            overflow: s.overflow_drops,
        }
    }

    fn append(b: &mut MqttEventsBuilder, mut rec: Record, ctx: &RowContext<'_>) {
        if ctx.config.redact {
            redact::mqtt_packet(&mut rec.req);
        }
        let max = ctx.config.parse.max_body_bytes;
        append_conn8!(b, ctx, ctx.time_ns(rec.ts_ns()));
        b.req_type.append_value(i64::from(rec.req.kind));
        b.req_body.append_value(bounded_text(rec.req.body, rec.req.cut, max));
        let (resp_type, resp_body) = match rec.resp {
            Some(p) => (i64::from(p.kind), bounded_text(p.body, p.cut, max)),
            None => (0, String::new()),
        };
        b.resp_type.append_value(resp_type);
        b.resp_body.append_value(resp_body);
        b.latency_ns.append_value(rec.latency_ns as i64);
        b.end_row();
    }
}
