//! Kubernetes metadata for the `px.*` metadata functions (`upid_to_pod_name`, `ip_to_pod_id`,
//! `pod_name_to_status`, …): the engine is given a [`MetadataSource`] ([`crate::Engine::with_metadata`]) and
//! its functions ask it, row by row, through DataFusion's session config (so a plan needs no handle of its
//! own). Without a source every pod-level answer is '' (a host without Kubernetes), as Pixie answers for a
//! process outside any pod.
//!
//! Owns the trait and the UDFs. Must not know Kubernetes or cgroups: the vizier implements the trait over
//! `loupe-metadata`.

use std::collections::HashMap;
use std::sync::Arc;

use arrow::array::{Array, AsArray, StringBuilder, TimestampNanosecondBuilder};
use arrow::datatypes::{DataType, TimeUnit};
use datafusion::common::config::{ConfigEntry, ConfigExtension, ExtensionOptions};
use datafusion::common::{Result, exec_err, plan_err};
use datafusion::logical_expr::{ColumnarValue, ScalarFunctionArgs, ScalarUDF, ScalarUDFImpl, Signature, Volatility};

/// Answers the metadata functions for one agent.
pub trait MetadataSource: Send + Sync + std::fmt::Debug {
    /// The answer of function `func` (Pixie's name without `px.`, e.g. `upid_to_pod_name`) for `arg`, ''
    /// when unknown.
    fn answer(&self, func: &str, arg: &str) -> String;
    /// When pod `namespace/name` started, Unix ns.
    fn pod_start_ns(&self, pod_name: &str) -> Option<i64>;
}

/// The source, carried in a session's config.
#[derive(Debug, Clone, Default)]
pub(crate) struct MetadataExt(pub(crate) Option<Arc<dyn MetadataSource>>);

impl ExtensionOptions for MetadataExt {
    fn as_any(&self) -> &dyn std::any::Any {
        self
    }

    fn as_any_mut(&mut self) -> &mut dyn std::any::Any {
        self
    }

    fn cloned(&self) -> Box<dyn ExtensionOptions> {
        Box::new(self.clone())
    }

    fn set(&mut self, key: &str, _value: &str) -> Result<()> {
        plan_err!("loupe_metadata.{key} cannot be set")
    }

    fn entries(&self) -> Vec<ConfigEntry> {
        Vec::new()
    }
}

impl ConfigExtension for MetadataExt {
    const PREFIX: &'static str = "loupe_metadata";
}

/// What a metadata UDF returns.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
enum Output {
    Text,
    /// `pod_name_to_start_time`.
    StartTime,
}

#[derive(Debug, PartialEq, Eq, Hash)]
struct Meta {
    /// Pixie's name, without `px.`.
    func: &'static str,
    udf_name: String,
    output: Output,
    signature: Signature,
}

/// The UDF of metadata function `func` (Pixie's name without `px.`), text-valued.
pub(crate) fn text(func: &'static str) -> Arc<ScalarUDF> {
    udf(func, Output::Text)
}

/// `px.pod_name_to_start_time`.
pub(crate) fn start_time() -> Arc<ScalarUDF> {
    udf("pod_name_to_start_time", Output::StartTime)
}

fn udf(func: &'static str, output: Output) -> Arc<ScalarUDF> {
    Arc::new(ScalarUDF::new_from_impl(Meta {
        func,
        udf_name: format!("px_{func}"),
        output,
        // Volatile: the answer follows the cluster, not only the argument.
        signature: Signature::exact(vec![DataType::Utf8], Volatility::Volatile),
    }))
}

/// What an unknown argument (or no source) answers: Pixie's '' or, for a container's status, its Unknown.
fn unknown(func: &str) -> &'static str {
    match func {
        "container_id_to_status" => r#"{"state":"Unknown","message":"","reason":""}"#,
        _ => "",
    }
}

impl ScalarUDFImpl for Meta {
    fn name(&self) -> &str {
        &self.udf_name
    }

    fn signature(&self) -> &Signature {
        &self.signature
    }

    fn return_type(&self, _arg_types: &[DataType]) -> Result<DataType> {
        Ok(match self.output {
            Output::Text => DataType::Utf8,
            Output::StartTime => DataType::Timestamp(TimeUnit::Nanosecond, None),
        })
    }

    fn invoke_with_args(&self, args: ScalarFunctionArgs) -> Result<ColumnarValue> {
        let [arg] = args.args.as_slice() else {
            return exec_err!("{} takes 1 argument", self.name());
        };
        let source = args.config_options.extensions.get::<MetadataExt>().and_then(|m| m.0.clone());
        let values = arg.to_array(args.number_rows)?;
        let values = values.as_string::<i32>();
        // A batch holds many rows of few processes: ask once per distinct argument.
        let mut seen: HashMap<&str, String> = HashMap::new();
        match self.output {
            Output::Text => {
                let mut b = StringBuilder::with_capacity(values.len(), values.len() * 8);
                for i in 0..values.len() {
                    if values.is_null(i) {
                        b.append_null();
                        continue;
                    }
                    let v = values.value(i);
                    let a = seen.entry(v).or_insert_with(|| {
                        let got = source.as_ref().map(|s| s.answer(self.func, v)).unwrap_or_default();
                        if got.is_empty() { unknown(self.func).to_owned() } else { got }
                    });
                    b.append_value(a.as_str());
                }
                Ok(ColumnarValue::Array(Arc::new(b.finish())))
            }
            Output::StartTime => {
                let mut b = TimestampNanosecondBuilder::with_capacity(values.len());
                for i in 0..values.len() {
                    if values.is_null(i) {
                        b.append_null();
                    } else {
                        b.append_value(source.as_ref().and_then(|s| s.pod_start_ns(values.value(i))).unwrap_or(0));
                    }
                }
                Ok(ColumnarValue::Array(Arc::new(b.finish())))
            }
        }
    }
}
