//! PxL's value types ([`PxType`], Pixie's data types) and their Arrow mapping.
//!
//! Owns the type names and which Arrow types they map to. Must not know plans or functions: both build on it.

use arrow::datatypes::{DataType, TimeUnit};

/// A PxL value type (Pixie's data types).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize)]
pub enum PxType {
    /// BOOLEAN
    Boolean,
    /// INT64
    Int64,
    /// FLOAT64
    Float64,
    /// STRING
    String,
    /// TIME64NS: nanoseconds since the Unix epoch
    Time,
}

impl PxType {
    /// The Arrow type the engine uses for this type.
    pub fn arrow_type(self) -> DataType {
        match self {
            PxType::Boolean => DataType::Boolean,
            PxType::Int64 => DataType::Int64,
            PxType::Float64 => DataType::Float64,
            PxType::String => DataType::Utf8,
            PxType::Time => DataType::Timestamp(TimeUnit::Nanosecond, None),
        }
    }

    /// The PxL type of an Arrow column, if PxL can use it.
    pub fn from_arrow(dt: &DataType) -> Option<PxType> {
        match dt {
            DataType::Boolean => Some(PxType::Boolean),
            DataType::Int8
            | DataType::Int16
            | DataType::Int32
            | DataType::Int64
            | DataType::UInt8
            | DataType::UInt16
            | DataType::UInt32
            | DataType::UInt64 => Some(PxType::Int64),
            DataType::Float16 | DataType::Float32 | DataType::Float64 => Some(PxType::Float64),
            DataType::Utf8 | DataType::LargeUtf8 | DataType::Utf8View => Some(PxType::String),
            DataType::Dictionary(_, v) => PxType::from_arrow(v).filter(|t| *t == PxType::String),
            DataType::Timestamp(_, _) => Some(PxType::Time),
            _ => None,
        }
    }

    /// True for INT64 and FLOAT64.
    pub fn is_numeric(self) -> bool {
        matches!(self, PxType::Int64 | PxType::Float64)
    }

    /// Pixie's spelling (`INT64`), used in messages.
    pub fn name(self) -> &'static str {
        match self {
            PxType::Boolean => "BOOLEAN",
            PxType::Int64 => "INT64",
            PxType::Float64 => "FLOAT64",
            PxType::String => "STRING",
            PxType::Time => "TIME64NS",
        }
    }
}

impl std::fmt::Display for PxType {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.name())
    }
}
