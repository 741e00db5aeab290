//! Request paths as endpoints: `px._match_endpoint`, which Pixie's endpoint scripts filter with.
//!
//! A path is its components between `/`, without the query string, a leading `/` optional (`a/b` is
//! `/a/b`); an endpoint is a path whose `*` components stand for any one component. Must not know
//! tables or plans: this is string logic and the UDF over it.

use std::sync::{Arc, OnceLock};

use arrow::array::{Array, ArrayRef, AsArray, BooleanArray};
use arrow::datatypes::DataType;
use datafusion::common::{Result, exec_err};
use datafusion::logical_expr::{ColumnarValue, ScalarFunctionArgs, ScalarUDF, ScalarUDFImpl, Signature, Volatility};

/// The component standing for any one component.
pub(crate) const ANY: &str = "*";

/// The components of `path`: up to its query string, without one leading `/`.
pub(crate) fn components(path: &str) -> std::str::Split<'_, char> {
    let path = path.split_once('?').map_or(path, |(p, _)| p);
    path.strip_prefix('/').unwrap_or(path).split('/')
}

/// Whether `path` has as many components as `endpoint` and equals it wherever `endpoint` is not `*`.
pub(crate) fn matches(path: &str, endpoint: &str) -> bool {
    let (mut p, mut e) = (components(path), components(endpoint));
    loop {
        match (p.next(), e.next()) {
            (None, None) => return true,
            (Some(pc), Some(ec)) if ec == ANY || pc == ec => {}
            _ => return false,
        }
    }
}

#[derive(Debug, PartialEq, Eq, Hash)]
struct MatchEndpoint {
    signature: Signature,
}

/// The shared `px__match_endpoint` UDF.
pub(crate) fn match_endpoint() -> Arc<ScalarUDF> {
    static UDF: OnceLock<Arc<ScalarUDF>> = OnceLock::new();
    UDF.get_or_init(|| {
        Arc::new(ScalarUDF::new_from_impl(MatchEndpoint {
            signature: Signature::exact(vec![DataType::Utf8, DataType::Utf8], Volatility::Immutable),
        }))
    })
    .clone()
}

impl ScalarUDFImpl for MatchEndpoint {
    fn name(&self) -> &str {
        "px__match_endpoint"
    }

    fn signature(&self) -> &Signature {
        &self.signature
    }

    fn return_type(&self, _arg_types: &[DataType]) -> Result<DataType> {
        Ok(DataType::Boolean)
    }

    fn invoke_with_args(&self, args: ScalarFunctionArgs) -> Result<ColumnarValue> {
        let n = args.number_rows;
        let arrays: Vec<ArrayRef> = args.args.iter().map(|a| a.to_array(n)).collect::<Result<_>>()?;
        let [path, endpoint] = arrays.as_slice() else { return exec_err!("px._match_endpoint takes 2 arguments") };
        let (path, endpoint) = (path.as_string::<i32>(), endpoint.as_string::<i32>());
        let out: BooleanArray = (0..n)
            .map(|i| (!path.is_null(i) && !endpoint.is_null(i)).then(|| matches(path.value(i), endpoint.value(i))))
            .collect();
        Ok(ColumnarValue::Array(Arc::new(out)))
    }
}

#[cfg(test)]
mod tests {
    use super::matches;

    #[test]
    fn endpoints_match_component_by_component() {
        assert!(matches("/users/42", "/users/*"));
        assert!(matches("users/42?x=1", "/users/*"));
        assert!(matches("/a/b/c", "/a/*/c"));
        assert!(matches("/", "/"));
        // A template never matches a path that is less specific, nor one of another depth.
        assert!(!matches("/a/*/c", "/a/b/c"));
        assert!(!matches("/users/42/posts", "/users/*"));
        assert!(!matches("/users", "/users/*"));
        assert!(!matches("/users/42", "/accounts/*"));
        // An empty component is a component: `/a//b` has three.
        assert!(matches("/a//b", "/a/*/b"));
    }
}
