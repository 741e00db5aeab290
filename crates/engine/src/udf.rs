//! `px.*` scalar functions DataFusion has no built-in for, as `ScalarUDFImpl`s.
//!
//! Owns `pluck`, `pluck_int64` and `pluck_float64` (read one key of a JSON object string,
//! null when the text is not an object or lacks the key) and `upid_to_cmdline` (read from this host's
//! `/proc` when the call runs). Must not hold state between calls.

use std::sync::{Arc, OnceLock};

use arrow::array::{Array, ArrayRef, AsArray, Float64Builder, Int64Builder, StringBuilder};
use arrow::datatypes::DataType;
use datafusion::common::{Result, ScalarValue, exec_err};
use datafusion::logical_expr::{ColumnarValue, ScalarFunctionArgs, ScalarUDF, ScalarUDFImpl, Signature, Volatility};
use datafusion::prelude::SessionContext;

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
/// the query runs; '' when that process is gone (its pid missing, or reused: the start time differs).
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
    if started != Some(start) {
        return String::new();
    }
    let raw = std::fs::read(format!("/proc/{pid}/cmdline")).unwrap_or_default();
    String::from_utf8_lossy(&raw).split('\0').filter(|a| !a.is_empty()).collect::<Vec<_>>().join(" ")
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
    }
}
