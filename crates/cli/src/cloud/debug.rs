//! `px debug`: the client's side of troubleshooting, as one command (the cloud's side is `loupe doctor`).
//!
//! Owns the client-side checks over the REST API, in the order a user meets them (the address, DNS, reaching
//! the API and trusting its certificate, the stored credential, the session, the org's viziers), the report's
//! shape and its rendering. The round trip of a script to each vizier runs in `main` (it speaks gRPC, as
//! `px run` does) and is added to the same report. Must not print a credential: only what kind it is.

use std::io::Write;
use std::net::ToSocketAddrs;

use anyhow::Result;
use serde_json::{Value, json};

use super::client::{ApiError, Client};
use super::{Cloud, Me, VIZIERS, logged_in, parse};
use crate::config::{AuthStore, normalize_addr};
use crate::output::Format;

/// How a check ended.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Status {
    Ok,
    Warn,
    Fail,
    /// Not run: an earlier check it needs failed.
    Skip,
}

impl Status {
    fn as_str(self) -> &'static str {
        match self {
            Status::Ok => "ok",
            Status::Warn => "warn",
            Status::Fail => "fail",
            Status::Skip => "skip",
        }
    }
}

/// One check's verdict: what was seen and, when it failed, the one thing to do.
#[derive(Debug)]
pub struct Check {
    pub name: String,
    pub status: Status,
    pub detail: String,
    pub fix: Option<String>,
}

impl Check {
    pub fn ok(name: &str, detail: impl Into<String>) -> Self {
        Check { name: name.into(), status: Status::Ok, detail: detail.into(), fix: None }
    }

    pub fn fail(name: &str, detail: impl Into<String>, fix: impl Into<String>) -> Self {
        Check { name: name.into(), status: Status::Fail, detail: detail.into(), fix: Some(fix.into()) }
    }

    pub fn warn(name: &str, detail: impl Into<String>, fix: impl Into<String>) -> Self {
        Check { name: name.into(), status: Status::Warn, detail: detail.into(), fix: Some(fix.into()) }
    }

    pub fn skip(name: &str, detail: impl Into<String>) -> Self {
        Check { name: name.into(), status: Status::Skip, detail: detail.into(), fix: None }
    }
}

/// What the REST checks found: the report so far, and the viziers a script should be sent to.
pub struct Found {
    pub checks: Vec<Check>,
    /// Names of the org's healthy viziers.
    pub healthy_viziers: Vec<String>,
}

/// The REST checks, in order; a check whose prerequisite failed is skipped.
pub fn checks(store: &AuthStore, cloud: &Cloud) -> Found {
    let mut checks = Vec::new();
    let addr = normalize_addr(&cloud.addr);
    checks.push(Check::ok("address", addr.clone()));
    let reachable = dns(&addr, &mut checks) && reach(cloud, &addr, &mut checks);
    let mut healthy_viziers = Vec::new();
    if !reachable {
        for name in ["credential", "session", "viziers"] {
            checks.push(Check::skip(name, "the cloud is not reachable"));
        }
        return Found { checks, healthy_viziers };
    }
    let client = match logged_in(store, cloud) {
        Ok((client, cred)) => {
            let kind = if cred.token.is_some() { "a session token" } else { "an API key" };
            checks.push(Check::ok("credential", format!("{kind} for {} is stored", cred.email)));
            client
        }
        Err(e) => {
            checks.push(Check::fail("credential", format!("{e:#}"), "run `px auth login` for this cloud address"));
            checks.push(Check::skip("session", "no credential"));
            checks.push(Check::skip("viziers", "no credential"));
            return Found { checks, healthy_viziers };
        }
    };
    match client.get("/api/v1/auth/me").and_then(|me| parse::<Me>(me, "/api/v1/auth/me")) {
        Ok(me) if me.must_change_password => checks.push(Check::fail(
            "session",
            format!("{} in org {} must change the password before anything else", me.user.email, me.org.name),
            "run `px auth password`",
        )),
        Ok(me) => {
            checks.push(Check::ok("session", format!("{} ({}) in org {}", me.user.email, me.user.role, me.org.name)))
        }
        Err(e) => {
            let (detail, fix) = match e.downcast_ref::<ApiError>() {
                Some(api) if api.status == 401 => (api.message.clone(), "log in again: `px auth login`".to_string()),
                _ => (format!("{e:#}"), "check the cloud's logs (`loupe doctor` on the cloud side)".to_string()),
            };
            checks.push(Check::fail("session", detail, fix));
            checks.push(Check::skip("viziers", "no session"));
            return Found { checks, healthy_viziers };
        }
    }
    match client.get(VIZIERS) {
        Ok(Value::Array(viziers)) if viziers.is_empty() => checks.push(Check::fail(
            "viziers",
            "no vizier is registered with your org",
            "create a deploy key (`px deploy-key create`) and deploy a vizier with it (docs/deploy.md, step 5)",
        )),
        Ok(Value::Array(viziers)) => {
            let mut unwell = Vec::new();
            for v in &viziers {
                let name = v["name"].as_str().unwrap_or_default().to_string();
                match v["status"].as_str().unwrap_or_default() {
                    "healthy" => healthy_viziers.push(name),
                    status => unwell.push(format!("{name} is {status}")),
                }
            }
            if unwell.is_empty() {
                checks.push(Check::ok("viziers", format!("{} healthy: {}", viziers.len(), healthy_viziers.join(", "))));
            } else {
                checks.push(Check::fail(
                    "viziers",
                    unwell.join("; "),
                    "a vizier that stopped sending heartbeats: read its connector's log; on the cloud side run \
                     `loupe doctor`",
                ));
            }
        }
        Ok(_) => checks.push(Check::fail("viziers", "the list of viziers is not a list", "check the cloud's version")),
        Err(e) => checks.push(Check::fail("viziers", format!("{e:#}"), "check the cloud's logs")),
    }
    Found { checks, healthy_viziers }
}

/// The host and port of a normalised address (`https://host:port/...`).
fn host_port(addr: &str) -> (String, u16) {
    let (scheme, rest) = addr.split_once("://").unwrap_or(("https", addr));
    let authority = rest.split('/').next().unwrap_or(rest);
    let default = if scheme == "http" { 80 } else { 443 };
    if let Some(v6) = authority.strip_prefix('[') {
        let (host, after) = v6.split_once(']').unwrap_or((v6, ""));
        let port = after.strip_prefix(':').and_then(|p| p.parse().ok()).unwrap_or(default);
        return (host.to_string(), port);
    }
    match authority.rsplit_once(':') {
        Some((host, port)) if port.parse::<u16>().is_ok() => (host.to_string(), port.parse().unwrap_or(default)),
        _ => (authority.to_string(), default),
    }
}

fn dns(addr: &str, checks: &mut Vec<Check>) -> bool {
    let (host, port) = host_port(addr);
    match (host.as_str(), port).to_socket_addrs() {
        Ok(found) => {
            let mut ips: Vec<String> = found.map(|a| a.ip().to_string()).collect();
            ips.sort();
            ips.dedup();
            checks.push(Check::ok("dns", format!("{host} resolves to {}", ips.join(", "))));
            true
        }
        Err(e) => {
            checks.push(Check::fail(
                "dns",
                format!("{host} does not resolve: {e}"),
                format!("add a DNS record or an /etc/hosts line for {host}, or set PX_CLOUD_ADDR to an address that resolves"),
            ));
            checks.push(Check::skip("api", "the address does not resolve"));
            false
        }
    }
}

/// The API answers an unauthenticated call with 401: reachable, and (over https) its certificate trusted.
fn reach(cloud: &Cloud, addr: &str, checks: &mut Vec<Check>) -> bool {
    let client = Client::new(&cloud.addr, &cloud.trust);
    match client.get("/api/v1/auth/me") {
        Err(e) if e.downcast_ref::<ApiError>().is_some_and(|api| api.status == 401) => {
            let tls = if addr.starts_with("https://") { ", its certificate trusted" } else { "" };
            checks.push(Check::ok("api", format!("the cloud API answers{tls}")));
            true
        }
        Err(e) => {
            let (detail, fix) = match (cloud.trust.explain(&e), e.downcast_ref::<ApiError>()) {
                (Some(line), _) => {
                    (line, "trust the cloud's CA: --ca-cert or PX_CA_CERT (the cloud's `ca.crt`)".into())
                }
                (None, Some(api)) => (
                    format!("HTTP {} from {addr}: not the cloud API ({})", api.status, api.message),
                    "point PX_CLOUD_ADDR at the cloud (loupe up's proxy, or cloud-proxy-service on 443)".to_string(),
                ),
                (None, None) => (
                    format!("{e:#}"),
                    "start the cloud (`loupe up`), or set PX_CLOUD_ADDR to its address (host and port)".to_string(),
                ),
            };
            checks.push(Check::fail("api", detail, fix));
            false
        }
        Ok(_) => {
            checks.push(Check::fail(
                "api",
                format!("{addr} answered /api/v1/auth/me without a credential"),
                "this is not a Loupe cloud that asks for credentials: check PX_CLOUD_ADDR",
            ));
            false
        }
    }
}

/// Prints the report; true when no check failed.
pub fn print(checks: &[Check], format: Format, out: &mut dyn Write) -> Result<bool> {
    let healthy = !checks.iter().any(|c| c.status == Status::Fail);
    match format {
        Format::Svg => anyhow::bail!("px debug prints a table or JSON (-o table|json), not SVG"),
        Format::Json | Format::Csv => {
            let list: Vec<Value> = checks
                .iter()
                .map(|c| json!({"check": c.name, "status": c.status.as_str(), "detail": c.detail, "fix": c.fix}))
                .collect();
            writeln!(out, "{}", serde_json::to_string_pretty(&json!({"healthy": healthy, "checks": list}))?)?;
        }
        Format::Table => {
            let width = checks.iter().map(|c| c.name.len()).max().unwrap_or(5).max(5);
            writeln!(out, "{:<width$}  {:<6}  DETAIL", "CHECK", "STATUS")?;
            for c in checks {
                writeln!(out, "{:<width$}  {:<6}  {}", c.name, c.status.as_str(), c.detail)?;
                if let Some(fix) = &c.fix {
                    writeln!(out, "{:<width$}  {:<6}  fix: {fix}", "", "")?;
                }
            }
            match checks.iter().filter(|c| c.status == Status::Fail).count() {
                0 => writeln!(out, "all checks passed")?,
                n => writeln!(out, "{n} check(s) failed: start with the first")?,
            }
        }
    }
    Ok(healthy)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn host_and_port_come_from_the_normalised_address() {
        assert_eq!(host_port("https://cloud.example.com"), ("cloud.example.com".into(), 443));
        assert_eq!(host_port("http://127.0.0.1:51200"), ("127.0.0.1".into(), 51200));
        assert_eq!(host_port("https://[::1]:56000/x"), ("::1".into(), 56000));
    }
}
