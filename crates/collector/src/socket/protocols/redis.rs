//! Redis: `loupe_protocols::redis` records become `redis_events` rows.
//!
//! Owns the Redis row: `req_cmd`, `req_args` (a JSON array, redacted), `resp` and `latency`, each
//! text bounded like an HTTP body and marked when cut. Must not parse bytes (that is
//! `loupe_protocols::redis`).

use loupe_protocols::redact;
use loupe_protocols::redis::{self, Record, RedisConfig, RedisConn};
use loupe_schema::TableSpec;
use loupe_schema::protocols::{RedisEventsBuilder, redis_events};

use super::{Looks, Losses, Protocol, RowContext, append_conn8, bounded_text};
use crate::socket::tracker::TrackerConfig;

/// Redis (RESP2 and RESP3) into `redis_events`.
pub struct Redis;

impl Protocol for Redis {
    const NAME: &'static str = "redis";
    type Parser = RedisConn;
    type Builder = RedisEventsBuilder;

    fn table() -> TableSpec {
        redis_events()
    }

    fn looks_like(first: &[u8]) -> Option<Looks> {
        redis::looks_like_command(first).then_some(Looks::Request)
    }

    fn parser(config: &TrackerConfig) -> RedisConn {
        RedisConn::new(RedisConfig { max_value_bytes: config.parse.max_body_bytes, ..RedisConfig::default() })
    }

    fn losses(parser: &RedisConn) -> Losses {
        let s = parser.stats();
        Losses {
            parse_errors: s.request.errors + s.response.errors,
            dropped_partial: s.request.dropped_partial + s.response.dropped_partial,
            unpaired: s.stitch.orphan_responses + s.stitch.unanswered_requests,
            overflow: s.stitch.overflow_drops,
        }
    }

    fn append(b: &mut RedisEventsBuilder, mut rec: Record, ctx: &RowContext<'_>) {
        if ctx.config.redact {
            redact::redis_command(&mut rec.req);
        }
        let max = ctx.config.parse.max_body_bytes;
        append_conn8!(b, ctx, ctx.time_ns(rec.resp.ts_ns));
        b.req_cmd.append_value(&rec.req.name);
        b.req_args.append_value(bounded_text(rec.req.args_json(), rec.req.cut, max));
        b.resp.append_value(bounded_text(rec.resp.text, rec.resp.cut, max));
        b.latency_ns.append_value(rec.latency_ns as i64);
        b.end_row();
    }
}
