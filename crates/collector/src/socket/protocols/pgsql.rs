//! PostgreSQL: `loupe_protocols::pgsql` records become `pgsql_events` rows.
//!
//! Owns the PostgreSQL row: `req_cmd` (`QUERY`, `PARSE`, `BIND`, `EXECUTE`, `STARTUP`, ...),
//! `req` (redacted: password and SASL messages whole, `PASSWORD '...'` literals in SQL), `resp`
//! and `latency`, each text bounded like an HTTP body and marked when cut. Must not parse bytes
//! (that is `loupe_protocols::pgsql`).

use loupe_protocols::pgsql::{self, PgConfig, PgConn, Record};
use loupe_protocols::redact;
use loupe_schema::TableSpec;
use loupe_schema::protocols::{PgsqlEventsBuilder, pgsql_events};

use super::{Looks, Losses, Protocol, RowContext, append_conn8, bounded_text};
use crate::socket::tracker::TrackerConfig;

/// PostgreSQL (frontend/backend protocol 3.0) into `pgsql_events`.
pub struct Pgsql;

impl Protocol for Pgsql {
    const NAME: &'static str = "pgsql";
    type Parser = PgConn;
    type Builder = PgsqlEventsBuilder;

    fn table() -> TableSpec {
        pgsql_events()
    }

    fn looks_like(first: &[u8]) -> Option<Looks> {
        pgsql::looks_like_request(first).then_some(Looks::Request)
    }

    fn parser(config: &TrackerConfig) -> PgConn {
        PgConn::new(PgConfig { max_value_bytes: config.parse.max_body_bytes, ..PgConfig::default() })
    }

    fn losses(parser: &PgConn) -> Losses {
        let s = parser.stats();
        Losses {
            parse_errors: s.request.errors + s.response.errors,
            dropped_partial: s.request.dropped_partial + s.response.dropped_partial,
            unpaired: s.stitch.orphan_responses + s.stitch.unanswered_requests,
            overflow: s.stitch.overflow_drops,
        }
    }

    fn append(b: &mut PgsqlEventsBuilder, mut rec: Record, ctx: &RowContext<'_>) {
        if ctx.config.redact {
            redact::pgsql_request(&mut rec.req);
        }
        let max = ctx.config.parse.max_body_bytes;
        append_conn8!(b, ctx, ctx.time_ns(rec.resp.ts_ns));
        b.req_cmd.append_value(rec.req.cmd);
        b.req.append_value(bounded_text(rec.req.text, rec.req.cut, max));
        b.resp.append_value(bounded_text(rec.resp.text, rec.resp.cut, max));
        b.latency_ns.append_value(rec.latency_ns as i64);
        b.end_row();
    }
}
