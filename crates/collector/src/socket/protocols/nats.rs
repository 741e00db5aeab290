//! NATS: `loupe_protocols::nats` records become `nats_events.beta` rows.
//!
//! Owns the NATS row: `cmd`, `body` (the message's options as JSON, `CONNECT` credentials
//! redacted) and `resp` (`OK`, the `-ERR` line, or empty), each text bounded like an HTTP body and
//! marked when cut. The table has no latency: NATS messages are not requests with replies. Must
//! not parse bytes (that is `loupe_protocols::nats`).

use loupe_protocols::nats::{self, NatsConfig, NatsConn, Record};
use loupe_protocols::{Side, redact};
use loupe_schema::TableSpec;
use loupe_schema::protocols::{NatsEventsBuilder, nats_events};

use super::{Looks, Losses, Protocol, RowContext, append_conn8, bounded_text};
use crate::socket::tracker::TrackerConfig;

/// NATS (client protocol) into `nats_events.beta`.
pub struct Nats;

impl Protocol for Nats {
    const NAME: &'static str = "nats";
    type Parser = NatsConn;
    type Builder = NatsEventsBuilder;

    fn table() -> TableSpec {
        nats_events()
    }

    fn looks_like(first: &[u8]) -> Option<Looks> {
        nats::looks_like(first).map(|side| match side {
            Side::Request => Looks::Request,
            Side::Response => Looks::Response,
        })
    }

    fn parser(config: &TrackerConfig) -> NatsConn {
        NatsConn::new(NatsConfig { max_value_bytes: config.parse.max_body_bytes, ..NatsConfig::default() })
    }

    fn losses(parser: &NatsConn) -> Losses {
        let s = parser.stats();
        Losses {
            parse_errors: s.request.errors + s.response.errors,
            dropped_partial: s.request.dropped_partial + s.response.dropped_partial,
            unpaired: s.orphan_acks + s.unanswered,
            overflow: s.overflow_drops,
        }
    }

    fn append(b: &mut NatsEventsBuilder, mut rec: Record, ctx: &RowContext<'_>) {
        if ctx.config.redact {
            redact::nats_message(&mut rec.msg);
        }
        let max = ctx.config.parse.max_body_bytes;
        append_conn8!(b, ctx, ctx.time_ns(rec.ts_ns));
        b.cmd.append_value(&rec.msg.cmd);
        b.body.append_value(bounded_text(rec.msg.body, rec.msg.cut, max));
        b.resp.append_value(&rec.resp);
        b.end_row();
    }
}
