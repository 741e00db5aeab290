//! DNS: `loupe_protocols::dns` records become `dns_events` rows.
//!
//! Owns the DNS row: `req_header`, `req_body`, `resp_header`, `resp_body` (JSON, Pixie's field
//! names) and `latency`, for DNS over TCP (length-framed streams) and over UDP (one message per
//! datagram, one parser per socket and peer). Must not parse bytes (that is `loupe_protocols::dns`).

use loupe_protocols::dns::{self, DnsConfig, DnsConn, Record, Transport};
use loupe_schema::TableSpec;
use loupe_schema::protocols::{DnsEventsBuilder, dns_events};

use super::{Looks, Losses, Protocol, RowContext, append_conn8, bounded_text};
use crate::socket::tracker::TrackerConfig;

/// DNS over TCP and UDP into `dns_events`.
pub struct Dns;

impl Protocol for Dns {
    const NAME: &'static str = "dns";
    type Parser = DnsConn;
    type Builder = DnsEventsBuilder;

    fn table() -> TableSpec {
        dns_events()
    }

    fn looks_like(first: &[u8]) -> Option<Looks> {
        dns::looks_like_tcp_query(first).then_some(Looks::Request)
    }

    fn parser(config: &TrackerConfig) -> DnsConn {
        let _ = config;
        DnsConn::new(DnsConfig { transport: Transport::Tcp, ..DnsConfig::default() })
    }

    fn datagram_looks_like(first: &[u8]) -> Option<Looks> {
        // The QR bit says which way: a traced resolver both receives queries and sends them.
        let msg = dns::decode(first, 0)?;
        Some(if msg.header.flags & 0x8000 == 0 { Looks::Request } else { Looks::Response })
    }

    fn datagram_parser(config: &TrackerConfig) -> DnsConn {
        let _ = config;
        DnsConn::new(DnsConfig { transport: Transport::Udp, ..DnsConfig::default() })
    }

    fn losses(parser: &DnsConn) -> Losses {
        let s = parser.stats();
        Losses {
            parse_errors: s.errors,
            dropped_partial: s.dropped_partial,
            unpaired: s.stitch.orphan_responses + s.stitch.unanswered_requests,
            overflow: s.stitch.overflow_drops,
        }
    }

    fn append(b: &mut DnsEventsBuilder, rec: Record, ctx: &RowContext<'_>) {
        // DNS carries no credentials: nothing to redact. Bodies are bounded like HTTP bodies
        // (a response with many records); headers are small and fixed.
        let max = ctx.config.parse.max_body_bytes;
        append_conn8!(b, ctx, ctx.time_ns(rec.resp.ts_ns));
        b.req_header.append_value(rec.req.header.json());
        b.req_body.append_value(bounded_text(rec.req.body_json(), false, max));
        b.resp_header.append_value(rec.resp.header.json());
        b.resp_body.append_value(bounded_text(rec.resp.body_json(), false, max));
        b.latency_ns.append_value(rec.latency_ns as i64);
        b.end_row();
    }
}
