//! Redis: `loupe_protocols::redis` records become `redis_events` rows.
//!
//! Owns the Redis row: `req_cmd`, `req_args` (a JSON array, redacted), `resp` and `latency`, each
//! text bounded like an HTTP body and marked when cut. Must not parse bytes (that is
//! `loupe_protocols::redis`).

use arrow::error::ArrowError;
use arrow::record_batch::RecordBatch;
use loupe_protocols::redact;
use loupe_protocols::redis::{self, Record, RedisConfig, RedisConn};
use loupe_schema::TableSpec;
use loupe_schema::protocols::{RedisEventRow, RedisEventsBuilder, redis_events};

use super::{Looks, Protocol, RowContext, bounded_text};
use crate::socket::tracker::TrackerConfig;

/// Redis (RESP2 and RESP3) into `redis_events`.
pub struct Redis;

impl Protocol for Redis {
    type Parser = RedisConn;
    type Row = RedisEventRow;

    fn table() -> TableSpec {
        redis_events()
    }

    fn looks_like(first: &[u8]) -> Option<Looks> {
        redis::looks_like_command(first).then_some(Looks::Request)
    }

    fn parser(config: &TrackerConfig) -> RedisConn {
        RedisConn::new(RedisConfig { max_value_bytes: config.parse.max_body_bytes, ..RedisConfig::default() })
    }

    fn row(mut rec: Record, ctx: &RowContext<'_>) -> RedisEventRow {
        if ctx.config.redact {
            redact::redis_command(&mut rec.req);
        }
        let max = ctx.config.parse.max_body_bytes;
        let (remote_addr, remote_port, local_addr, local_port) = ctx.addrs();
        RedisEventRow {
            time_ns: ctx.time_ns(rec.resp.ts_ns),
            upid: ctx.upid.to_string(),
            remote_addr,
            remote_port,
            local_addr,
            local_port,
            trace_role: ctx.role.as_trace_role(),
            encrypted: false,
            req_args: bounded_text(rec.req.args_json(), rec.req.cut, max),
            req_cmd: rec.req.name,
            resp: bounded_text(rec.resp.text, rec.resp.cut, max),
            latency_ns: rec.latency_ns as i64,
        }
    }

    fn batch(rows: &[RedisEventRow]) -> Result<RecordBatch, ArrowError> {
        let mut builder = RedisEventsBuilder::new();
        for row in rows {
            builder.append(row);
        }
        builder.finish()
    }
}
