//! Cassandra CQL: `loupe_protocols::cql` records become `cql_events` rows.
//!
//! Owns the CQL row: `req_op` and `req_body` of the request (the query text and consistency, a
//! prepared id, the `AUTH_RESPONSE` token redacted, ...), `resp_op` and `resp_body` of its response
//! (result kind, columns and row count, error code and message), each text bounded like an HTTP body
//! and marked when cut, and `latency`. A server push (`EVENT`) is a row of its own: `req_op` 12 with
//! the event, `resp_op` 0 and an empty `resp_body`. Must not parse bytes (that is
//! `loupe_protocols::cql`).

use loupe_protocols::cql::{self, CqlConfig, CqlConn, Record};
use loupe_protocols::redact;
use loupe_schema::TableSpec;
use loupe_schema::protocols::{CqlEventsBuilder, cql_events};

use super::{Looks, Losses, Protocol, RowContext, append_conn8, bounded_text};
use crate::socket::tracker::TrackerConfig;

/// CQL (native protocol v3 to v5) into `cql_events`.
pub struct Cql;

impl Protocol for Cql {
    const NAME: &'static str = "cql";
    type Parser = CqlConn;
    type Builder = CqlEventsBuilder;

    fn table() -> TableSpec {
        cql_events()
    }

    fn looks_like(first: &[u8]) -> Option<Looks> {
        cql::looks_like(first).then_some(Looks::Request)
    }

    fn parser(config: &TrackerConfig) -> CqlConn {
        CqlConn::new(CqlConfig {
            max_value_bytes: config.parse.max_body_bytes,
            max_pending: config.max_pending_messages,
        })
    }

    fn losses(parser: &CqlConn) -> Losses {
        let s = parser.stats();
        Losses {
            parse_errors: s.request.errors + s.response.errors,
            dropped_partial: s.request.dropped_partial + s.response.dropped_partial,
            unpaired: s.stitch.orphan_responses + s.stitch.unanswered_requests,
            overflow: s.stitch.overflow_drops + s.overflow_drops,
        }
    }

    fn append(b: &mut CqlEventsBuilder, mut rec: Record, ctx: &RowContext<'_>) {
        if ctx.config.redact {
            redact::cql_record(&mut rec);
        }
        let max = ctx.config.parse.max_body_bytes;
        append_conn8!(b, ctx, ctx.time_ns(rec.ts_ns()));
        b.req_op.append_value(i64::from(rec.req.opcode));
        b.req_body.append_value(bounded_text(rec.req.body, rec.req.cut, max));
        let (op, body) = match rec.resp {
            Some(r) => (i64::from(r.opcode), bounded_text(r.body, r.cut, max)),
            None => (0, String::new()),
        };
        b.resp_op.append_value(op);
        b.resp_body.append_value(body);
        b.latency_ns.append_value(rec.latency_ns as i64);
        b.end_row();
    }
}
