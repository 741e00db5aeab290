//! Kafka: `loupe_protocols::kafka` records become `kafka_events.beta` rows.
//!
//! Owns the Kafka row: `req_cmd` (the API key), `client_id`, `req_body` (the request summarised as
//! JSON: `Produce` and `Fetch` topics and partitions, ...; `SaslAuthenticate` bytes redacted),
//! `resp` (the response summarised as JSON, empty for a `Produce` with `acks=0`), each text bounded
//! like an HTTP body and marked when cut, and `latency`. Must not parse bytes (that is
//! `loupe_protocols::kafka`).

use loupe_protocols::kafka::{self, KafkaConfig, KafkaConn, Record};
use loupe_protocols::redact;
use loupe_schema::TableSpec;
use loupe_schema::protocols::{KafkaEventsBuilder, kafka_events};

use super::{Looks, Losses, Protocol, RowContext, append_conn8, bounded_text};
use crate::socket::tracker::TrackerConfig;

/// Kafka into `kafka_events.beta`.
pub struct Kafka;

impl Protocol for Kafka {
    const NAME: &'static str = "kafka";
    type Parser = KafkaConn;
    type Builder = KafkaEventsBuilder;

    fn table() -> TableSpec {
        kafka_events()
    }

    fn looks_like(first: &[u8]) -> Option<Looks> {
        kafka::looks_like(first).then_some(Looks::Request)
    }

    fn parser(config: &TrackerConfig) -> KafkaConn {
        KafkaConn::new(KafkaConfig {
            max_value_bytes: config.parse.max_body_bytes,
            max_pending: config.max_pending_messages,
        })
    }

    fn losses(parser: &KafkaConn) -> Losses {
        let s = parser.stats();
        Losses {
            parse_errors: s.request.errors + s.response.errors,
            dropped_partial: s.request.dropped_partial + s.response.dropped_partial,
            unpaired: s.stitch.orphan_responses + s.stitch.unanswered_requests,
            overflow: s.stitch.overflow_drops + s.overflow_drops,
        }
    }

    fn append(b: &mut KafkaEventsBuilder, mut rec: Record, ctx: &RowContext<'_>) {
        if ctx.config.redact {
            redact::kafka_record(&mut rec);
        }
        let max = ctx.config.parse.max_body_bytes;
        append_conn8!(b, ctx, ctx.time_ns(rec.ts_ns()));
        b.req_cmd.append_value(i64::from(rec.req.api_key));
        b.client_id.append_value(bounded_text(rec.req.client_id, false, max));
        b.req_body.append_value(bounded_text(rec.req.body, rec.req.cut, max));
        let resp = rec.resp.map(|r| bounded_text(r.body, r.cut, max)).unwrap_or_default();
        b.resp.append_value(resp);
        b.latency_ns.append_value(rec.latency_ns as i64);
        b.end_row();
    }
}
