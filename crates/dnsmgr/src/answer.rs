//! One DNS query in, one answer out, over a [`Zone`]: authoritative answers for the zone (A/AAAA from the
//! vizier's reported address, a CNAME when it reported a host name, SOA and NS at the apex), NXDOMAIN for a
//! name the zone lacks (with the SOA, so resolvers cache the miss), REFUSED for names outside the zone
//! (this is no resolver), NOTIMP for anything but a query, FORMERR for a malformed one. An answer larger than
//! the client's limit goes out truncated, so the client retries over TCP.
//!
//! Owns the DNS semantics. Must not do I/O (the listeners in `server` call it) nor know where the zone came from.

use hickory_proto::op::{Edns, Message, MessageType, OpCode, ResponseCode};
use hickory_proto::rr::rdata::{A, AAAA, CNAME, NS, SOA};
use hickory_proto::rr::{DNSClass, Name, RData, Record, RecordType};

use crate::zone::{Target, Zone};

/// The largest UDP answer offered with EDNS (the DNS flag day 2020 default: no fragmentation).
pub const EDNS_UDP_PAYLOAD: u16 = 1232;
/// The largest UDP answer to a client without EDNS.
pub const PLAIN_UDP_PAYLOAD: usize = 512;

/// What the answers say besides the zone's hosts.
#[derive(Debug, Clone)]
pub struct ZoneSettings {
    /// TTL of every record, in seconds.
    pub ttl: u32,
    /// The zone's name server (the NS record and the SOA's MNAME).
    pub ns_name: Name,
    /// The SOA's serial.
    pub serial: u32,
}

/// The answer to `request` (wire bytes) within `limit` bytes (`None` for UDP's: 512, or the client's EDNS
/// size up to [`EDNS_UDP_PAYLOAD`]), or `None` when nothing should be sent (not a query at all).
pub fn answer(zone: &Zone, settings: &ZoneSettings, request: &[u8], tcp: bool) -> Option<Vec<u8>> {
    let request = match Message::from_vec(request) {
        Ok(m) => m,
        Err(_) if request.len() >= 12 && request[2] & 0x80 == 0 => {
            let id = u16::from_be_bytes([request[0], request[1]]);
            return Message::error_msg(id, OpCode::Query, ResponseCode::FormErr).to_vec().ok();
        }
        Err(_) => return None,
    };
    // Never answer an answer: two servers would bounce it forever.
    if request.metadata.message_type != MessageType::Query {
        return None;
    }
    let mut response = Message::response(request.metadata.id, request.metadata.op_code);
    response.metadata.recursion_desired = request.metadata.recursion_desired;
    let limit = match (&request.edns, tcp) {
        (_, true) => usize::from(u16::MAX),
        (Some(edns), false) => usize::from(edns.max_payload().clamp(512, EDNS_UDP_PAYLOAD)),
        (None, false) => PLAIN_UDP_PAYLOAD,
    };
    if request.edns.is_some() {
        let mut edns = Edns::new();
        edns.set_max_payload(EDNS_UDP_PAYLOAD);
        response.set_edns(edns);
    }
    respond(zone, settings, &request, &mut response);
    let bytes = response.to_vec().ok()?;
    if bytes.len() <= limit {
        return Some(bytes);
    }
    response.answers.clear();
    response.authorities.clear();
    response.additionals.clear();
    response.metadata.truncation = true;
    response.to_vec().ok()
}

fn respond(zone: &Zone, settings: &ZoneSettings, request: &Message, response: &mut Message) {
    if request.metadata.op_code != OpCode::Query {
        response.metadata.response_code = ResponseCode::NotImp;
        return;
    }
    let [query] = request.queries.as_slice() else {
        response.metadata.response_code = ResponseCode::FormErr;
        return;
    };
    response.add_query(query.clone());
    let name = query.name().to_lowercase();
    let apex = zone.apex();
    if !apex.zone_of(&name) || !matches!(query.query_class(), DNSClass::IN | DNSClass::ANY) {
        response.metadata.response_code = ResponseCode::Refused;
        return;
    }
    response.metadata.authoritative = true;
    let record = |rdata: RData| Record::from_rdata(name.clone(), settings.ttl, rdata);
    let soa = || {
        let rname = apex.prepend_label("hostmaster").unwrap_or_else(|_| apex.clone());
        let soa = SOA::new(settings.ns_name.clone(), rname, settings.serial, 3600, 600, 86400, settings.ttl);
        Record::from_rdata(apex.clone(), settings.ttl, RData::SOA(soa))
    };
    let qtype = query.query_type();
    if name == *apex {
        match qtype {
            RecordType::SOA => {
                response.add_answer(soa());
            }
            RecordType::NS => {
                response.add_answer(record(RData::NS(NS(settings.ns_name.clone()))));
            }
            _ => {
                response.add_authority(soa());
            }
        }
        return;
    }
    let host = (name.num_labels() == apex.num_labels() + 1)
        .then(|| name.iter().next())
        .flatten()
        .and_then(|label| std::str::from_utf8(label).ok())
        .and_then(|label| zone.host(label));
    let Some(host) = host else {
        response.metadata.response_code = ResponseCode::NXDomain;
        response.add_authority(soa());
        return;
    };
    let data = match (&host.target, qtype) {
        (Target::Ip(std::net::IpAddr::V4(ip)), RecordType::A | RecordType::ANY) => Some(RData::A(A(*ip))),
        (Target::Ip(std::net::IpAddr::V6(ip)), RecordType::AAAA | RecordType::ANY) => Some(RData::AAAA(AAAA(*ip))),
        (Target::Alias(target), _) => Some(RData::CNAME(CNAME(target.clone()))),
        _ => None,
    };
    match data {
        Some(data) => {
            response.add_answer(record(data));
        }
        None => {
            response.add_authority(soa());
        }
    }
}

#[cfg(test)]
mod tests {
    use hickory_proto::op::Query;
    use loupe_metastore::Vizier;
    use uuid::Uuid;

    use super::*;

    fn zone() -> (Zone, ZoneSettings) {
        let apex = Name::from_ascii("example.com.").expect("apex");
        let vizier = |name: &str, address: &str| Vizier {
            id: Uuid::new_v4(),
            org_id: Uuid::new_v4(),
            name: name.into(),
            cluster_uid: String::new(),
            status: "healthy".into(),
            last_heartbeat_ns: None,
            version: String::new(),
            created_at: 1,
            num_agents: 1,
            address: address.into(),
        };
        let viziers = [vizier("edge", "10.0.0.7:50300"), vizier("six", "[fd00::7]:1"), vizier("alias", "node.lan:1")];
        let settings = ZoneSettings { ttl: 30, ns_name: Name::from_ascii("ns.example.com.").expect("ns"), serial: 7 };
        (Zone::build(&apex, &viziers), settings)
    }

    fn ask(name: &str, qtype: RecordType) -> Message {
        ask_with(name, qtype, false, false)
    }

    fn ask_with(name: &str, qtype: RecordType, edns: bool, tcp: bool) -> Message {
        let (zone, settings) = zone();
        let mut q = Message::query();
        q.add_query(Query::query(Name::from_ascii(name).expect("name"), qtype));
        if edns {
            q.set_edns(Edns::new());
        }
        let bytes = answer(&zone, &settings, &q.to_vec().expect("encode"), tcp).expect("answered");
        let m = Message::from_vec(&bytes).expect("decode");
        assert_eq!(m.metadata.id, q.metadata.id);
        m
    }

    fn rdata(m: &Message) -> Vec<String> {
        m.answers.iter().map(|r| r.data.to_string()).collect()
    }

    #[test]
    fn a_vizier_name_answers_its_address() {
        let m = ask("EDGE.example.com.", RecordType::A);
        assert_eq!(m.metadata.response_code, ResponseCode::NoError);
        assert!(m.metadata.authoritative);
        assert_eq!(rdata(&m), ["10.0.0.7"]);
        assert_eq!(m.answers[0].ttl, 30);
        assert_eq!(rdata(&ask("six.example.com.", RecordType::AAAA)), ["fd00::7"]);
        assert_eq!(rdata(&ask("alias.example.com.", RecordType::A)), ["node.lan."]);
        // The other family: the name exists, with no data of that type.
        let m = ask("edge.example.com.", RecordType::AAAA);
        assert_eq!((m.metadata.response_code, m.answers.len(), m.authorities.len()), (ResponseCode::NoError, 0, 1));
    }

    #[test]
    fn unknown_names_are_nxdomain_and_foreign_ones_refused() {
        let m = ask("nope.example.com.", RecordType::A);
        assert_eq!((m.metadata.response_code, m.answers.len()), (ResponseCode::NXDomain, 0));
        assert_eq!(m.authorities[0].record_type(), RecordType::SOA);
        assert_eq!(ask("a.edge.example.com.", RecordType::A).metadata.response_code, ResponseCode::NXDomain);
        let m = ask("example.org.", RecordType::A);
        assert_eq!((m.metadata.response_code, m.metadata.authoritative), (ResponseCode::Refused, false));
    }

    #[test]
    fn the_apex_has_soa_and_ns() {
        let m = ask("example.com.", RecordType::SOA);
        assert_eq!(rdata(&m), ["ns.example.com. hostmaster.example.com. 7 3600 600 86400 30"]);
        assert_eq!(rdata(&ask("example.com.", RecordType::NS)), ["ns.example.com."]);
    }

    #[test]
    fn malformed_and_non_queries_are_answered_or_dropped() {
        let (zone, settings) = zone();
        let garbage = [0x12, 0x34, 0x01, 0x00, 0, 1, 0, 0, 0, 0, 0, 0, 0xff];
        let m = Message::from_vec(&answer(&zone, &settings, &garbage, false).expect("formerr")).expect("decode");
        assert_eq!((m.metadata.id, m.metadata.response_code), (0x1234, ResponseCode::FormErr));
        assert_eq!(answer(&zone, &settings, &[1, 2, 3], false), None);
        let mut response = Message::response(9, OpCode::Query);
        response.add_query(Query::query(Name::from_ascii("edge.example.com.").expect("n"), RecordType::A));
        assert_eq!(answer(&zone, &settings, &response.to_vec().expect("encode"), false), None);
        let mut update = Message::new(5, MessageType::Query, OpCode::Update);
        update.add_query(Query::query(Name::from_ascii("example.com.").expect("n"), RecordType::SOA));
        let m = Message::from_vec(&answer(&zone, &settings, &update.to_vec().expect("e"), false).expect("a"))
            .expect("decode");
        assert_eq!(m.metadata.response_code, ResponseCode::NotImp);
    }

    #[test]
    fn edns_is_echoed() {
        let m = ask_with("edge.example.com.", RecordType::A, true, false);
        assert_eq!(m.edns.as_ref().map(Edns::max_payload), Some(EDNS_UDP_PAYLOAD));
        assert!(ask_with("edge.example.com.", RecordType::A, false, true).edns.is_none());
    }
}
