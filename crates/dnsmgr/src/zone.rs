//! The zone the DNS manager serves, built from the vizier records: each vizier is `<id>.<domain>`, and also
//! `<name>.<domain>` when its name makes a DNS label that no older vizier (of any org) already holds, so a
//! hostname never moves while its holder exists. A name becomes a label by lowercasing it and turning every
//! character other than `a-z`, `0-9` and `-` into `-` (`edge_1` → `edge-1`), at most 63 characters. A vizier's
//! reported address (`host:port`) gives its A or AAAA record, or a CNAME when the host is a DNS name.
//!
//! Owns the naming rule and the zone's contents. Must not do I/O: the records come in, a `Zone` goes out.

use std::collections::HashMap;
use std::net::IpAddr;

use hickory_proto::rr::Name;
use loupe_metastore::Vizier;
use uuid::Uuid;

/// The longest DNS label.
const MAX_LABEL: usize = 63;

/// Where a hostname points.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Target {
    /// An A or AAAA record.
    Ip(IpAddr),
    /// A CNAME to the reported host name.
    Alias(Name),
    /// The vizier reported no usable address: the name exists, with no data.
    Nothing,
}

/// One hostname of the zone.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Host {
    /// The vizier it names.
    pub vizier_id: Uuid,
    /// Where it points.
    pub target: Target,
}

/// The names under one domain, by label (lowercase).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Zone {
    apex: Name,
    hosts: HashMap<String, Host>,
}

/// The DNS label a vizier name makes, if any.
pub fn label_of(name: &str) -> Option<String> {
    let mapped: String = name
        .chars()
        .map(|c| c.to_ascii_lowercase())
        .map(|c| if c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-' { c } else { '-' })
        .collect();
    let trimmed = mapped.trim_matches('-');
    let label: String = trimmed.chars().take(MAX_LABEL).collect();
    let label = label.trim_end_matches('-').to_owned();
    (!label.is_empty()).then_some(label)
}

/// The target of a reported address: `host:port`, `[v6]:port`, or a bare host.
pub fn target_of(address: &str) -> Target {
    let address = address.trim();
    if let Ok(socket) = address.parse::<std::net::SocketAddr>() {
        return Target::Ip(socket.ip());
    }
    if let Ok(ip) = address.trim_start_matches('[').trim_end_matches(']').parse::<IpAddr>() {
        return Target::Ip(ip);
    }
    let host = match address.rsplit_once(':') {
        Some((host, port)) if !port.is_empty() && port.bytes().all(|b| b.is_ascii_digit()) => host,
        _ => address,
    };
    let valid = !host.is_empty()
        && host.len() <= 253
        && host.split('.').all(|l| {
            !l.is_empty() && l.len() <= MAX_LABEL && l.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-')
        });
    match Name::from_ascii(host) {
        Ok(mut name) if valid => {
            name.set_fqdn(true);
            Target::Alias(name.to_lowercase())
        }
        _ => Target::Nothing,
    }
}

impl Zone {
    /// The zone of `domain` (a DNS name such as `example.com`) over every org's viziers.
    pub fn build(apex: &Name, viziers: &[Vizier]) -> Zone {
        let mut sorted: Vec<&Vizier> = viziers.iter().collect();
        sorted.sort_by_key(|v| (v.created_at, v.id));
        let mut hosts = HashMap::new();
        for v in &sorted {
            hosts.insert(v.id.to_string(), Host { vizier_id: v.id, target: target_of(&v.address) });
        }
        for v in &sorted {
            if let Some(label) = label_of(&v.name) {
                hosts.entry(label).or_insert_with(|| Host { vizier_id: v.id, target: target_of(&v.address) });
            }
        }
        Zone { apex: apex.to_lowercase(), hosts }
    }

    /// The zone's apex (lowercase, fully qualified).
    pub fn apex(&self) -> &Name {
        &self.apex
    }

    /// The host under `label`.
    pub fn host(&self, label: &str) -> Option<&Host> {
        self.hosts.get(label)
    }

    /// The hostnames of a vizier (without the final dot), its name's first when it holds one, then its id's.
    pub fn names_of(&self, vizier_id: Uuid) -> Vec<String> {
        let apex = self.apex.to_ascii();
        let apex = apex.trim_end_matches('.');
        let id = vizier_id.to_string();
        let mut names: Vec<String> = self
            .hosts
            .iter()
            .filter(|(label, host)| host.vizier_id == vizier_id && **label != id)
            .map(|(label, _)| format!("{label}.{apex}"))
            .collect();
        names.push(format!("{id}.{apex}"));
        names
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn vizier(name: &str, created_at: i64, address: &str) -> Vizier {
        Vizier {
            id: Uuid::new_v4(),
            org_id: Uuid::new_v4(),
            name: name.into(),
            cluster_uid: String::new(),
            status: "healthy".into(),
            last_heartbeat_ns: None,
            version: String::new(),
            created_at,
            num_agents: 1,
            address: address.into(),
        }
    }

    #[test]
    fn names_become_labels() {
        assert_eq!(label_of("edge-1").as_deref(), Some("edge-1"));
        assert_eq!(label_of("Amber_Badger").as_deref(), Some("amber-badger"));
        assert_eq!(label_of("  a.b c ").as_deref(), Some("a-b-c"));
        assert_eq!(label_of("___"), None);
        assert_eq!(label_of(&"x".repeat(70)).map(|l| l.len()), Some(63));
    }

    #[test]
    fn addresses_become_targets() {
        assert_eq!(target_of("10.0.0.7:50300"), Target::Ip("10.0.0.7".parse().expect("ip")));
        assert_eq!(target_of("[fd00::7]:50300"), Target::Ip("fd00::7".parse().expect("ip")));
        assert_eq!(target_of("fd00::7"), Target::Ip("fd00::7".parse().expect("ip")));
        assert_eq!(
            target_of("Node-1.Example.com:50300"),
            Target::Alias(Name::from_ascii("node-1.example.com.").expect("n"))
        );
        for nothing in ["", "http://x:1", "a b:1", "-:1:2"] {
            assert_eq!(target_of(nothing), Target::Nothing, "{nothing:?}");
        }
    }

    #[test]
    fn the_oldest_vizier_holds_a_contested_name() {
        let apex = Name::from_ascii("Example.COM.").expect("apex");
        let old = vizier("prod", 1, "10.0.0.1:1");
        let young = vizier("Prod", 2, "10.0.0.2:1");
        let zone = Zone::build(&apex, &[young.clone(), old.clone()]);
        assert_eq!(zone.host("prod").expect("prod").vizier_id, old.id);
        assert_eq!(zone.names_of(old.id), vec!["prod.example.com".to_owned(), format!("{}.example.com", old.id)]);
        assert_eq!(zone.names_of(young.id), vec![format!("{}.example.com", young.id)]);
        assert_eq!(zone.host(&young.id.to_string()).expect("id").target, Target::Ip("10.0.0.2".parse().expect("ip")));
        // Once the older one is gone, the name passes on.
        let zone = Zone::build(&apex, std::slice::from_ref(&young));
        assert_eq!(zone.host("prod").expect("prod").vizier_id, young.id);
    }
}
