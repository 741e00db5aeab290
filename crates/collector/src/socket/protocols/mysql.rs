//! MySQL and MariaDB: `loupe_protocols::mysql` records become `mysql_events` rows.
//!
//! Owns the MySQL row: `req_cmd` (the command byte), `req_body` (redacted: literals after
//! `IDENTIFIED BY` and `PASSWORD`), `resp_status` (1 none, 2 OK, 3 error), `resp_body` and
//! `latency`. Must not parse bytes (that is `loupe_protocols::mysql`).

use loupe_protocols::mysql::{self, MysqlConfig, MysqlConn, Record};
use loupe_protocols::redact;
use loupe_schema::TableSpec;
use loupe_schema::protocols::{MysqlEventsBuilder, mysql_events};

use super::{Looks, Losses, Protocol, RowContext, append_conn8, bounded_text};
use crate::socket::tracker::TrackerConfig;

/// MySQL (protocol 10, as MariaDB speaks it) into `mysql_events`.
pub struct Mysql;

impl Protocol for Mysql {
    const NAME: &'static str = "mysql";
    type Parser = MysqlConn;
    type Builder = MysqlEventsBuilder;

    fn table() -> TableSpec {
        mysql_events()
    }

    fn looks_like(first: &[u8]) -> Option<Looks> {
        // The server speaks first: its greeting is the first thing on the wire.
        mysql::looks_like_greeting(first).then_some(Looks::Response)
    }

    fn parser(config: &TrackerConfig) -> MysqlConn {
        MysqlConn::new(MysqlConfig { max_value_bytes: config.parse.max_body_bytes, ..MysqlConfig::default() })
    }

    fn losses(parser: &MysqlConn) -> Losses {
        let s = parser.stats();
        Losses {
            parse_errors: s.errors,
            dropped_partial: s.dropped_partial,
            unpaired: s.stitch.orphan_responses + s.stitch.unanswered_requests,
            overflow: s.stitch.overflow_drops,
        }
    }

    fn append(b: &mut MysqlEventsBuilder, mut rec: Record, ctx: &RowContext<'_>) {
        if ctx.config.redact {
            redact::mysql_command(&mut rec.req);
        }
        let max = ctx.config.parse.max_body_bytes;
        append_conn8!(b, ctx, ctx.time_ns(rec.resp.ts_ns));
        b.req_cmd.append_value(i64::from(rec.req.cmd));
        b.req_body.append_value(bounded_text(rec.req.body, rec.req.cut, max));
        b.resp_status.append_value(rec.resp.status);
        b.resp_body.append_value(bounded_text(rec.resp.body, false, max));
        b.latency_ns.append_value(rec.latency_ns as i64);
        b.end_row();
    }
}
