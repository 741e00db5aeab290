//! `px.*` scalar functions DataFusion has no built-in for, as `ScalarUDFImpl`s.
//!
//! Owns `pluck`, `pluck_int64` and `pluck_float64` (read one key of a JSON object string,
//! null when the text is not an object or lacks the key) and `upid_to_cmdline` (read from this host's
//! `/proc` when the call runs, or remembered by the collector for a process gone), the row-at-a-time text functions (protocol code names from `names`, `split`,
//! the SQL normalizers of `sqlnorm`) and `nslookup` (reverse DNS through the system resolver, with a
//! bounded cache and a per-batch budget), and `strptime` (text read with a C-style format). Must not hold state between calls beyond that cache.

use std::sync::{Arc, OnceLock};

use arrow::array::{Array, ArrayRef, AsArray, Float64Builder, Int64Builder, StringBuilder};
use arrow::datatypes::DataType;
use datafusion::common::{Result, ScalarValue, exec_err};
use datafusion::logical_expr::{ColumnarValue, ScalarFunctionArgs, ScalarUDF, ScalarUDFImpl, Signature, Volatility};
use datafusion::prelude::SessionContext;

use crate::{names, sqlnorm};

/// Which `pluck` variant.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub(crate) enum PluckKind {
    /// `px.pluck` → STRING (the JSON text of non-string values)
    String,
    /// `px.pluck_int64` → INT64
    Int64,
    /// `px.pluck_float64` → FLOAT64
    Float64,
}

#[derive(Debug, PartialEq, Eq, Hash)]
struct Pluck {
    kind: PluckKind,
    signature: Signature,
}

impl Pluck {
    fn new(kind: PluckKind) -> Self {
        Pluck { kind, signature: Signature::exact(vec![DataType::Utf8, DataType::Utf8], Volatility::Immutable) }
    }
}

/// The shared UDF for one pluck variant.
pub(crate) fn pluck(kind: PluckKind) -> Arc<ScalarUDF> {
    static UDFS: OnceLock<[Arc<ScalarUDF>; 3]> = OnceLock::new();
    let udfs = UDFS.get_or_init(|| {
        [PluckKind::String, PluckKind::Int64, PluckKind::Float64]
            .map(|k| Arc::new(ScalarUDF::new_from_impl(Pluck::new(k))))
    });
    match kind {
        PluckKind::String => udfs[0].clone(),
        PluckKind::Int64 => udfs[1].clone(),
        PluckKind::Float64 => udfs[2].clone(),
    }
}

/// Registers every `px` UDF on a session (so plans built elsewhere resolve them by name).
pub(crate) fn register(ctx: &SessionContext) {
    for k in [PluckKind::String, PluckKind::Int64, PluckKind::Float64] {
        ctx.register_udf(pluck(k).as_ref().clone());
    }
    ctx.register_udf(cmdline().as_ref().clone());
    ctx.register_udf(pluck_array().as_ref().clone());
    ctx.register_udf(nslookup().as_ref().clone());
    ctx.register_udf(strptime().as_ref().clone());
    ctx.register_udf(crate::request_path::match_endpoint().as_ref().clone());
    ctx.register_udf(crate::request_path::predict_cluster().as_ref().clone());
    ctx.register_udaf(crate::request_path::build_clusters(crate::request_path::ClusterInput::Paths));
    for f in TEXT_FNS {
        ctx.register_udf(text_udf(f.name).as_ref().clone());
    }
}

/// One argument of a [`TextFn`] row (a null argument makes the row's answer null without a call).
#[derive(Debug, Clone, Copy)]
pub(crate) enum Arg<'a> {
    /// An INT64 value.
    Int(i64),
    /// A STRING value.
    Str(&'a str),
}

impl Arg<'_> {
    fn int(self) -> i64 {
        match self {
            Arg::Int(i) => i,
            Arg::Str(_) => 0,
        }
    }

    fn str(&self) -> &str {
        match self {
            Arg::Str(s) => s,
            Arg::Int(_) => "",
        }
    }
}

/// A row-at-a-time STRING function of INT64/STRING arguments: the protocol names, `split` and the SQL
/// normalizers, which are plain Rust functions of their arguments.
struct TextFnSpec {
    /// The DataFusion name (`px_` + the PxL name), also callable from SQL.
    name: &'static str,
    /// Argument types.
    args: &'static [DataType],
    /// The function of one row's (non-null) arguments.
    f: fn(&[Arg<'_>]) -> String,
}

const I64: DataType = DataType::Int64;
const UTF8: DataType = DataType::Utf8;

static TEXT_FNS: &[TextFnSpec] = &[
    TextFnSpec { name: "px_kafka_api_key_name", args: &[I64], f: |a| names::kafka_api_key(a[0].int()) },
    TextFnSpec { name: "px_cql_opcode_name", args: &[I64], f: |a| names::cql_opcode(a[0].int()) },
    TextFnSpec { name: "px_amqp_frame_type_name", args: &[I64], f: |a| names::amqp_frame_type(a[0].int()) },
    TextFnSpec { name: "px_amqp_method_name", args: &[I64, I64], f: |a| names::amqp_method(a[0].int(), a[1].int()) },
    TextFnSpec { name: "px_mux_frame_type_name", args: &[I64], f: |a| names::mux_frame_type(a[0].int()) },
    TextFnSpec { name: "px_dns_rcode_name", args: &[I64], f: |a| names::dns_rcode(a[0].int()) },
    TextFnSpec { name: "px_mysql_command_name", args: &[I64], f: |a| names::mysql_command(a[0].int()) },
    TextFnSpec { name: "px_protocol_name", args: &[I64], f: |a| names::protocol(a[0].int()) },
    TextFnSpec { name: "px_http_resp_message", args: &[I64], f: |a| names::http_status(a[0].int()) },
    TextFnSpec { name: "px_split", args: &[UTF8, UTF8], f: |a| split_json(a[0].str(), a[1].str()) },
    TextFnSpec { name: "px_normalize_pgsql", args: &[UTF8, UTF8], f: |a| sqlnorm::pgsql(a[0].str(), a[1].str()) },
    TextFnSpec { name: "px_normalize_mysql", args: &[UTF8, I64], f: |a| sqlnorm::mysql(a[0].str(), a[1].int()) },
];

/// `px.split(s, delim)`: the pieces as a JSON array of strings (an empty delimiter keeps `s` whole).
fn split_json(s: &str, delim: &str) -> String {
    let items: Vec<serde_json::Value> =
        if delim.is_empty() { vec![s.into()] } else { s.split(delim).map(serde_json::Value::from).collect() };
    serde_json::Value::Array(items).to_string()
}

#[derive(Debug)]
struct TextFn {
    name: &'static str,
    signature: Signature,
    f: fn(&[Arg<'_>]) -> String,
}

// Identity is the name: each name has one function (comparing function pointers is unreliable).
impl PartialEq for TextFn {
    fn eq(&self, other: &Self) -> bool {
        self.name == other.name
    }
}

impl Eq for TextFn {}

impl std::hash::Hash for TextFn {
    fn hash<H: std::hash::Hasher>(&self, state: &mut H) {
        self.name.hash(state);
    }
}

/// The UDF of text function `name` (one of [`TEXT_FNS`]).
pub(crate) fn text_udf(name: &'static str) -> Arc<ScalarUDF> {
    static UDFS: OnceLock<Vec<Arc<ScalarUDF>>> = OnceLock::new();
    let udfs = UDFS.get_or_init(|| {
        TEXT_FNS
            .iter()
            .map(|spec| {
                Arc::new(ScalarUDF::new_from_impl(TextFn {
                    name: spec.name,
                    signature: Signature::exact(spec.args.to_vec(), Volatility::Immutable),
                    f: spec.f,
                }))
            })
            .collect()
    });
    let at = TEXT_FNS.iter().position(|f| f.name == name).unwrap_or(0);
    udfs[at].clone()
}

impl ScalarUDFImpl for TextFn {
    fn name(&self) -> &str {
        self.name
    }

    fn signature(&self) -> &Signature {
        &self.signature
    }

    fn return_type(&self, _arg_types: &[DataType]) -> Result<DataType> {
        Ok(DataType::Utf8)
    }

    fn invoke_with_args(&self, args: ScalarFunctionArgs) -> Result<ColumnarValue> {
        let n = args.number_rows;
        let arrays: Vec<ArrayRef> = args.args.iter().map(|a| a.to_array(n)).collect::<Result<_>>()?;
        let mut b = StringBuilder::with_capacity(n, n * 16);
        let mut row: Vec<Arg<'_>> = Vec::with_capacity(arrays.len());
        for i in 0..n {
            row.clear();
            for a in &arrays {
                if a.is_null(i) {
                    break;
                }
                match a.data_type() {
                    DataType::Int64 => row.push(Arg::Int(a.as_primitive::<arrow::datatypes::Int64Type>().value(i))),
                    DataType::Utf8 => row.push(Arg::Str(a.as_string::<i32>().value(i))),
                    other => return exec_err!("{}: unexpected argument type {other}", self.name),
                }
            }
            if row.len() == arrays.len() {
                b.append_value((self.f)(&row));
            } else {
                b.append_null();
            }
        }
        Ok(ColumnarValue::Array(Arc::new(b.finish())))
    }
}

/// Most uncached reverse lookups one batch makes, and the time it may spend on them: past either, the
/// remaining addresses answer as themselves (uncached, so a later query resolves them). A caller cannot
/// make a query wait on DNS for longer than this per batch.
const NSLOOKUP_MAX_PER_BATCH: usize = 64;
const NSLOOKUP_BUDGET: std::time::Duration = std::time::Duration::from_secs(2);
/// Addresses remembered, with their names (or themselves when they have none).
const NSLOOKUP_CACHE_ENTRIES: usize = 1024;

/// `px.nslookup(addr)`: the host name of an IP address by reverse DNS (the system resolver: /etc/hosts,
/// then DNS), cached; the address itself when it has no name.
#[derive(Debug, PartialEq, Eq, Hash)]
struct Nslookup {
    signature: Signature,
}

/// The shared `nslookup` UDF.
pub(crate) fn nslookup() -> Arc<ScalarUDF> {
    static UDF: OnceLock<Arc<ScalarUDF>> = OnceLock::new();
    UDF.get_or_init(|| {
        Arc::new(ScalarUDF::new_from_impl(Nslookup {
            signature: Signature::exact(vec![DataType::Utf8], Volatility::Volatile),
        }))
    })
    .clone()
}

fn nslookup_cache() -> &'static std::sync::Mutex<std::collections::HashMap<String, String>> {
    static CACHE: OnceLock<std::sync::Mutex<std::collections::HashMap<String, String>>> = OnceLock::new();
    CACHE.get_or_init(Default::default)
}

/// The name of `addr` by the system resolver, `None` when it has none (or is not an IP address).
pub(crate) fn reverse_lookup(addr: &str) -> Option<String> {
    let ip: std::net::IpAddr = addr.trim().parse().ok()?;
    // SAFETY: the sockaddr is fully initialised for its family and getnameinfo is given its exact size;
    // the host buffer's length is passed with it, and getnameinfo NUL-terminates what it writes.
    let mut host: [libc::c_char; 1025] = [0; 1025];
    let rc = match ip {
        std::net::IpAddr::V4(v4) => {
            let mut sa: libc::sockaddr_in = unsafe { std::mem::zeroed() };
            sa.sin_family = libc::AF_INET as libc::sa_family_t;
            sa.sin_addr = libc::in_addr { s_addr: u32::from_ne_bytes(v4.octets()) };
            unsafe {
                libc::getnameinfo(
                    (&raw const sa).cast(),
                    std::mem::size_of::<libc::sockaddr_in>() as libc::socklen_t,
                    host.as_mut_ptr(),
                    host.len() as libc::socklen_t,
                    std::ptr::null_mut(),
                    0,
                    libc::NI_NAMEREQD,
                )
            }
        }
        std::net::IpAddr::V6(v6) => {
            let mut sa: libc::sockaddr_in6 = unsafe { std::mem::zeroed() };
            sa.sin6_family = libc::AF_INET6 as libc::sa_family_t;
            sa.sin6_addr = libc::in6_addr { s6_addr: v6.octets() };
            unsafe {
                libc::getnameinfo(
                    (&raw const sa).cast(),
                    std::mem::size_of::<libc::sockaddr_in6>() as libc::socklen_t,
                    host.as_mut_ptr(),
                    host.len() as libc::socklen_t,
                    std::ptr::null_mut(),
                    0,
                    libc::NI_NAMEREQD,
                )
            }
        }
    };
    if rc != 0 {
        return None;
    }
    // SAFETY: on success getnameinfo wrote a NUL-terminated string into `host`.
    let name = unsafe { std::ffi::CStr::from_ptr(host.as_ptr()) };
    Some(name.to_string_lossy().into_owned())
}

impl ScalarUDFImpl for Nslookup {
    fn name(&self) -> &str {
        "px_nslookup"
    }

    fn signature(&self) -> &Signature {
        &self.signature
    }

    fn return_type(&self, _arg_types: &[DataType]) -> Result<DataType> {
        Ok(DataType::Utf8)
    }

    fn invoke_with_args(&self, args: ScalarFunctionArgs) -> Result<ColumnarValue> {
        let [addr] = args.args.as_slice() else {
            return exec_err!("{} takes 1 argument", self.name());
        };
        let addrs = addr.to_array(args.number_rows)?;
        let addrs = addrs.as_string::<i32>();
        let started = std::time::Instant::now();
        let mut lookups = 0;
        let mut b = StringBuilder::with_capacity(addrs.len(), addrs.len() * 16);
        for i in 0..addrs.len() {
            if addrs.is_null(i) {
                b.append_null();
                continue;
            }
            let a = addrs.value(i);
            let cached = nslookup_cache().lock().ok().and_then(|c| c.get(a).cloned());
            let name = match cached {
                Some(name) => name,
                None if lookups < NSLOOKUP_MAX_PER_BATCH && started.elapsed() < NSLOOKUP_BUDGET => {
                    lookups += 1;
                    let name = reverse_lookup(a).unwrap_or_else(|| a.to_string());
                    if let Ok(mut c) = nslookup_cache().lock() {
                        if c.len() >= NSLOOKUP_CACHE_ENTRIES {
                            c.clear();
                        }
                        c.insert(a.to_string(), name.clone());
                    }
                    name
                }
                None => a.to_string(),
            };
            b.append_value(name);
        }
        Ok(ColumnarValue::Array(Arc::new(b.finish())))
    }
}

impl ScalarUDFImpl for Pluck {
    fn name(&self) -> &str {
        match self.kind {
            PluckKind::String => "px_pluck",
            PluckKind::Int64 => "px_pluck_int64",
            PluckKind::Float64 => "px_pluck_float64",
        }
    }

    fn signature(&self) -> &Signature {
        &self.signature
    }

    fn return_type(&self, _arg_types: &[DataType]) -> Result<DataType> {
        Ok(match self.kind {
            PluckKind::String => DataType::Utf8,
            PluckKind::Int64 => DataType::Int64,
            PluckKind::Float64 => DataType::Float64,
        })
    }

    fn invoke_with_args(&self, args: ScalarFunctionArgs) -> Result<ColumnarValue> {
        let [json, key] = args.args.as_slice() else {
            return exec_err!("{} takes 2 arguments", self.name());
        };
        let key = match key {
            ColumnarValue::Scalar(ScalarValue::Utf8(Some(k))) => k.clone(),
            _ => return exec_err!("{}: the key must be a string constant", self.name()),
        };
        let json = json.to_array(args.number_rows)?;
        let json = json.as_string::<i32>();
        let lookup = |i: usize| -> Option<serde_json::Value> {
            if json.is_null(i) {
                return None;
            }
            match serde_json::from_str::<serde_json::Value>(json.value(i)) {
                Ok(serde_json::Value::Object(mut m)) => m.remove(&key),
                _ => None,
            }
        };
        let out: ArrayRef = match self.kind {
            PluckKind::String => {
                let mut b = StringBuilder::with_capacity(json.len(), json.len() * 8);
                for i in 0..json.len() {
                    match lookup(i) {
                        Some(serde_json::Value::String(s)) => b.append_value(s),
                        Some(v) => b.append_value(v.to_string()),
                        None => b.append_null(),
                    }
                }
                Arc::new(b.finish())
            }
            PluckKind::Int64 => {
                let mut b = Int64Builder::with_capacity(json.len());
                for i in 0..json.len() {
                    b.append_option(lookup(i).and_then(|v| v.as_i64().or_else(|| v.as_str()?.parse().ok())));
                }
                Arc::new(b.finish())
            }
            PluckKind::Float64 => {
                let mut b = Float64Builder::with_capacity(json.len());
                for i in 0..json.len() {
                    b.append_option(lookup(i).and_then(|v| v.as_f64().or_else(|| v.as_str()?.parse().ok())));
                }
                Arc::new(b.finish())
            }
        };
        Ok(ColumnarValue::Array(out))
    }
}

/// `px.upid_to_cmdline`: the command line of a UPID's process (`asid:pid:start_ticks`), read from `/proc` when
/// the query runs; when that process is gone (its pid missing, or reused: the start time differs), the command
/// line the collector remembered while it ran (`loupe_common::procnames`), else ''.
#[derive(Debug, PartialEq, Eq, Hash)]
struct Cmdline {
    signature: Signature,
}

/// The shared `upid_to_cmdline` UDF.
pub(crate) fn cmdline() -> Arc<ScalarUDF> {
    static UDF: OnceLock<Arc<ScalarUDF>> = OnceLock::new();
    UDF.get_or_init(|| {
        Arc::new(ScalarUDF::new_from_impl(Cmdline {
            signature: Signature::exact(vec![DataType::Utf8], Volatility::Volatile),
        }))
    })
    .clone()
}

/// The command line of live process `upid`, or '' (see [`Cmdline`]).
pub(crate) fn cmdline_of(upid: &str) -> String {
    let mut parts = upid.split(':');
    let (Some(_), Some(pid), Some(start)) = (parts.next(), parts.next(), parts.next()) else { return String::new() };
    let Ok(pid) = pid.parse::<u32>() else { return String::new() };
    // Field 22 of /proc/<pid>/stat (the 20th after the parenthesised command) is the start time in ticks.
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
    let started = stat.rsplit_once(')').and_then(|(_, rest)| rest.split_whitespace().nth(19));
    let live = if started == Some(start) {
        let raw = std::fs::read(format!("/proc/{pid}/cmdline")).unwrap_or_default();
        String::from_utf8_lossy(&raw).split('\0').filter(|a| !a.is_empty()).collect::<Vec<_>>().join(" ")
    } else {
        String::new()
    };
    if live.is_empty() {
        // Gone (or exiting, its memory already released): what the collector saw while it ran.
        return loupe_common::procnames::recall(upid).unwrap_or_default();
    }
    live
}

impl ScalarUDFImpl for Cmdline {
    fn name(&self) -> &str {
        "px_upid_to_cmdline"
    }

    fn signature(&self) -> &Signature {
        &self.signature
    }

    fn return_type(&self, _arg_types: &[DataType]) -> Result<DataType> {
        Ok(DataType::Utf8)
    }

    fn invoke_with_args(&self, args: ScalarFunctionArgs) -> Result<ColumnarValue> {
        let [upid] = args.args.as_slice() else {
            return exec_err!("{} takes 1 argument", self.name());
        };
        let upids = upid.to_array(args.number_rows)?;
        let upids = upids.as_string::<i32>();
        let mut b = StringBuilder::with_capacity(upids.len(), upids.len() * 16);
        for i in 0..upids.len() {
            if upids.is_null(i) {
                b.append_null();
            } else {
                b.append_value(cmdline_of(upids.value(i)));
            }
        }
        Ok(ColumnarValue::Array(Arc::new(b.finish())))
    }
}

/// `px.pluck_array(json, index)`: item `index` of a JSON array as text (strings unquoted), null when the
/// text is not an array or is shorter.
#[derive(Debug, PartialEq, Eq, Hash)]
struct PluckArray {
    signature: Signature,
}

/// The shared `pluck_array` UDF.
pub(crate) fn pluck_array() -> Arc<ScalarUDF> {
    static UDF: OnceLock<Arc<ScalarUDF>> = OnceLock::new();
    UDF.get_or_init(|| {
        Arc::new(ScalarUDF::new_from_impl(PluckArray {
            signature: Signature::exact(vec![DataType::Utf8, DataType::Int64], Volatility::Immutable),
        }))
    })
    .clone()
}

impl ScalarUDFImpl for PluckArray {
    fn name(&self) -> &str {
        "px_pluck_array"
    }

    fn signature(&self) -> &Signature {
        &self.signature
    }

    fn return_type(&self, _arg_types: &[DataType]) -> Result<DataType> {
        Ok(DataType::Utf8)
    }

    fn invoke_with_args(&self, args: ScalarFunctionArgs) -> Result<ColumnarValue> {
        let [json, index] = args.args.as_slice() else {
            return exec_err!("{} takes 2 arguments", self.name());
        };
        let index = match index {
            ColumnarValue::Scalar(ScalarValue::Int64(Some(i))) => usize::try_from(*i).ok(),
            _ => return exec_err!("{}: the index must be an integer constant", self.name()),
        };
        let json = json.to_array(args.number_rows)?;
        let json = json.as_string::<i32>();
        let mut b = StringBuilder::with_capacity(json.len(), json.len() * 8);
        for i in 0..json.len() {
            let item = match (json.is_null(i), index) {
                (false, Some(at)) => match serde_json::from_str::<serde_json::Value>(json.value(i)) {
                    Ok(serde_json::Value::Array(mut items)) if at < items.len() => Some(items.swap_remove(at)),
                    _ => None,
                },
                _ => None,
            };
            match item {
                Some(serde_json::Value::String(s)) => b.append_value(s),
                Some(v) => b.append_value(v.to_string()),
                None => b.append_null(),
            }
        }
        Ok(ColumnarValue::Array(Arc::new(b.finish())))
    }
}

#[cfg(test)]
mod tests {
    use super::cmdline_of;

    #[test]
    fn nslookup_resolves_through_the_system_resolver_and_refuses_what_is_not_an_address() {
        // /etc/hosts names the loopback address on any host.
        let name = super::reverse_lookup("127.0.0.1").expect("127.0.0.1 has a name");
        assert!(!name.is_empty() && name != "127.0.0.1", "{name}");
        assert_eq!(super::reverse_lookup("not an address"), None);
        assert_eq!(super::split_json("a:b::c", ":"), r#"["a","b","","c"]"#);
        assert_eq!(super::split_json("abc", ""), r#"["abc"]"#);
    }

    #[test]
    fn cmdline_reads_a_live_process_and_refuses_a_reused_pid() {
        let pid = std::process::id();
        let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).expect("own stat");
        let start = stat.rsplit_once(')').and_then(|(_, r)| r.split_whitespace().nth(19)).expect("start").to_string();
        let raw = std::fs::read(format!("/proc/{pid}/cmdline")).expect("own cmdline");
        let want = String::from_utf8_lossy(&raw).split('\0').filter(|a| !a.is_empty()).collect::<Vec<_>>().join(" ");
        assert!(want.contains("loupe_engine"), "{want}");
        assert_eq!(cmdline_of(&format!("7:{pid}:{start}")), want);
        assert_eq!(cmdline_of(&format!("7:{pid}:{}1", start)), "");
        assert_eq!(cmdline_of("not a upid"), "");
        // A process gone answers with what the collector remembered of it, never with the pid's new owner.
        loupe_common::procnames::remember(&format!("7:{pid}:{}1", start), "gone --flag");
        assert_eq!(cmdline_of(&format!("7:{pid}:{}1", start)), "gone --flag");
        assert_eq!(cmdline_of(&format!("7:{pid}:{start}")), want);
    }
}

/// `px.strptime(s, fmt)`: the time `s` names in the format `fmt` (C `strptime` specifiers: `%Y-%m-%d
/// %H:%M:%S`, `%z`, `%b`, ...). Without a zone in `fmt` the time is UTC; text that does not match is null.
#[derive(Debug, PartialEq, Eq, Hash)]
struct Strptime {
    signature: Signature,
}

/// The shared `px_strptime` UDF.
pub(crate) fn strptime() -> Arc<ScalarUDF> {
    static UDF: OnceLock<Arc<ScalarUDF>> = OnceLock::new();
    UDF.get_or_init(|| {
        Arc::new(ScalarUDF::new_from_impl(Strptime {
            signature: Signature::exact(vec![DataType::Utf8, DataType::Utf8], Volatility::Immutable),
        }))
    })
    .clone()
}

/// Nanoseconds since the epoch of `s` read with `fmt`, `None` when it does not match.
pub(crate) fn parse_with_format(s: &str, fmt: &str) -> Option<i64> {
    use chrono::{DateTime, NaiveDate, NaiveDateTime};
    if let Ok(t) = DateTime::parse_from_str(s, fmt) {
        return t.timestamp_nanos_opt();
    }
    if let Ok(t) = NaiveDateTime::parse_from_str(s, fmt) {
        return t.and_utc().timestamp_nanos_opt();
    }
    // A date alone is its midnight.
    NaiveDate::parse_from_str(s, fmt).ok()?.and_hms_opt(0, 0, 0)?.and_utc().timestamp_nanos_opt()
}

impl ScalarUDFImpl for Strptime {
    fn name(&self) -> &str {
        "px_strptime"
    }

    fn signature(&self) -> &Signature {
        &self.signature
    }

    fn return_type(&self, _arg_types: &[DataType]) -> Result<DataType> {
        Ok(DataType::Timestamp(arrow::datatypes::TimeUnit::Nanosecond, None))
    }

    fn invoke_with_args(&self, args: ScalarFunctionArgs) -> Result<ColumnarValue> {
        let n = args.number_rows;
        let arrays: Vec<ArrayRef> = args.args.iter().map(|a| a.to_array(n)).collect::<Result<_>>()?;
        let [text, fmt] = arrays.as_slice() else { return exec_err!("px_strptime takes 2 arguments") };
        let (text, fmt) = (text.as_string::<i32>(), fmt.as_string::<i32>());
        let out: arrow::array::TimestampNanosecondArray = (0..n)
            .map(|i| {
                if text.is_null(i) || fmt.is_null(i) {
                    return None;
                }
                parse_with_format(text.value(i), fmt.value(i))
            })
            .collect();
        Ok(ColumnarValue::Array(Arc::new(out)))
    }
}

#[cfg(test)]
mod strptime_tests {
    use super::parse_with_format;

    #[test]
    fn formats_with_and_without_a_zone_and_junk() {
        let t = parse_with_format("2020-07-13 18:02:05", "%Y-%m-%d %H:%M:%S");
        assert_eq!(t, Some(1_594_663_325_000_000_000));
        assert_eq!(parse_with_format("2020-07-13 20:02:05 +0200", "%Y-%m-%d %H:%M:%S %z"), t);
        assert_eq!(parse_with_format("13/Jul/2020", "%d/%b/%Y"), Some(1_594_598_400_000_000_000));
        assert_eq!(parse_with_format("yesterday", "%Y-%m-%d"), None);
        assert_eq!(parse_with_format("", ""), None);
    }
}
