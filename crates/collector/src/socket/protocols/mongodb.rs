//! MongoDB: `loupe_protocols::mongodb` records become `mongodb_events` rows.
//!
//! Owns the MongoDB row: `req_cmd` (the command: `insert`, `find`, `hello`, ...), `req_body` (the
//! request's documents as JSON, SASL payloads and user passwords redacted), `resp_status` (`ok`,
//! `error`, or empty without a reply or an `ok` field), `resp_body` (the reply's documents as
//! JSON), each text bounded like an HTTP body and marked when cut, and `latency`. Must not parse
//! bytes (that is `loupe_protocols::mongodb`).

use loupe_protocols::mongodb::{self, MongodbConfig, MongodbConn, Record};
use loupe_protocols::redact;
use loupe_schema::TableSpec;
use loupe_schema::protocols::{MongodbEventsBuilder, mongodb_events};

use super::{Looks, Losses, Protocol, RowContext, append_conn8, bounded_text};
use crate::socket::tracker::TrackerConfig;

/// MongoDB into `mongodb_events`.
pub struct Mongodb;

impl Protocol for Mongodb {
    const NAME: &'static str = "mongodb";
    type Parser = MongodbConn;
    type Builder = MongodbEventsBuilder;

    fn table() -> TableSpec {
        mongodb_events()
    }

    fn looks_like(first: &[u8]) -> Option<Looks> {
        mongodb::looks_like(first).then_some(Looks::Request)
    }

    fn parser(config: &TrackerConfig) -> MongodbConn {
        MongodbConn::new(MongodbConfig {
            max_value_bytes: config.parse.max_body_bytes,
            max_pending: config.max_pending_messages,
        })
    }

    fn losses(parser: &MongodbConn) -> Losses {
        let s = parser.stats();
        Losses {
            parse_errors: s.request.errors + s.response.errors,
            dropped_partial: s.request.dropped_partial + s.response.dropped_partial,
            unpaired: s.stitch.orphan_responses + s.stitch.unanswered_requests,
            overflow: s.stitch.overflow_drops + s.overflow_drops,
        }
    }

    fn append(b: &mut MongodbEventsBuilder, mut rec: Record, ctx: &RowContext<'_>) {
        if ctx.config.redact {
            redact::mongodb_record(&mut rec);
        }
        let max = ctx.config.parse.max_body_bytes;
        append_conn8!(b, ctx, ctx.time_ns(rec.ts_ns()));
        b.req_cmd.append_value(&rec.req.cmd);
        b.req_body.append_value(bounded_text(rec.req.body, rec.req.cut, max));
        let (status, body) = match rec.resp {
            Some(r) => (r.status, bounded_text(r.body, r.cut, max)),
            None => (String::new(), String::new()),
        };
        b.resp_status.append_value(status);
        b.resp_body.append_value(body);
        b.latency_ns.append_value(rec.latency_ns as i64);
        b.end_row();
    }
}
