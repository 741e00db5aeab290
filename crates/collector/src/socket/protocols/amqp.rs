//! AMQP: `loupe_protocols::amqp` records become `amqp_events` rows.
//!
//! Owns the AMQP row: `frame_type` (1, method), `channel`, the class and method ids of the method
//! and of its reply (0 without one), `req_msg` and `resp_msg` (JSON of the method's main arguments
//! and content, the login response redacted), each bounded like an HTTP body and marked when cut,
//! and `latency`. Must not parse bytes (that is `loupe_protocols::amqp`).

use loupe_protocols::amqp::{AmqpConfig, AmqpConn, Record};
use loupe_protocols::{Side, amqp, redact};
use loupe_schema::TableSpec;
use loupe_schema::protocols::{AmqpEventsBuilder, amqp_events};

use super::{Looks, Losses, Protocol, RowContext, append_conn8, bounded_text};
use crate::socket::tracker::TrackerConfig;

/// AMQP 0-9-1 into `amqp_events`.
pub struct Amqp;

impl Protocol for Amqp {
    const NAME: &'static str = "amqp";
    type Parser = AmqpConn;
    type Builder = AmqpEventsBuilder;

    fn table() -> TableSpec {
        amqp_events()
    }

    fn looks_like(first: &[u8]) -> Option<Looks> {
        amqp::looks_like(first).map(|side| match side {
            Side::Request => Looks::Request,
            Side::Response => Looks::Response,
        })
    }

    fn parser(config: &TrackerConfig) -> AmqpConn {
        AmqpConn::new(AmqpConfig { max_value_bytes: config.parse.max_body_bytes, ..AmqpConfig::default() })
    }

    fn losses(parser: &AmqpConn) -> Losses {
        let s = parser.stats();
        Losses {
            parse_errors: s.request.errors + s.response.errors,
            dropped_partial: s.request.dropped_partial + s.response.dropped_partial,
            unpaired: s.orphan_replies + s.unanswered,
            overflow: s.overflow_drops,
        }
    }

    fn append(b: &mut AmqpEventsBuilder, mut rec: Record, ctx: &RowContext<'_>) {
        if ctx.config.redact {
            redact::amqp_method(&mut rec.req);
            if let Some(resp) = rec.resp.as_mut() {
                redact::amqp_method(resp);
            }
        }
        let max = ctx.config.parse.max_body_bytes;
        append_conn8!(b, ctx, ctx.time_ns(rec.ts_ns()));
        b.frame_type.append_value(1);
        b.channel.append_value(i64::from(rec.req.channel));
        b.req_class_id.append_value(i64::from(rec.req.class_id));
        b.req_method_id.append_value(i64::from(rec.req.method_id));
        let (class_id, method_id, msg) = match rec.resp {
            Some(p) => (i64::from(p.class_id), i64::from(p.method_id), bounded_text(p.msg, p.cut, max)),
            None => (0, 0, String::new()),
        };
        b.resp_class_id.append_value(class_id);
        b.resp_method_id.append_value(method_id);
        b.req_msg.append_value(bounded_text(rec.req.msg, rec.req.cut, max));
        b.resp_msg.append_value(msg);
        b.latency_ns.append_value(rec.latency_ns as i64);
        b.end_row();
    }
}
