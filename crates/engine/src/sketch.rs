//! The quantile sketch behind `px.p50`/`px.p90`/`px.p99`/… and `px.quantiles`: a log-linear histogram
//! (as DDSketch and HdrHistogram are) with a `GroupsAccumulator`, so a grouped percentile costs a bucket
//! index and an increment per row.
//!
//! Owns the sketch (bucketing, merging, its byte encoding for partial aggregation, rank lookup) and the
//! two DataFusion UDAFs on it: one percentile as FLOAT64, and Pixie's quantiles JSON (`{"p01":…,…,
//! "p99":…}`) from a single sketch instead of seven. Must not know PxL: `lower` picks the UDAF.
//!
//! Accuracy: a bucket spans 1/128 of a power of two, and a quantile is reported as its bucket's
//! midpoint clamped to the group's exact min and max, so the value is within 0.4 % of a value whose rank
//! is the quantile's (nearest rank over `q·(n-1)`). Pixie uses a t-digest here; both are approximate, this
//! one has a fixed relative error over the whole range and no per-batch sort (DataFusion's
//! `approx_percentile_cont` sorts every batch of every group, and groups through its row adapter).

use std::sync::Arc;

use arrow::array::{Array, ArrayRef, AsArray, BinaryBuilder, BooleanArray, Float64Array, StringBuilder};
use arrow::datatypes::{DataType, Field, FieldRef, Float64Type};
use datafusion::common::{Result, ScalarValue, exec_err};
use datafusion::logical_expr::function::{AccumulatorArgs, StateFieldsArgs};
use datafusion::logical_expr::{
    Accumulator, AggregateUDF, AggregateUDFImpl, EmitTo, GroupsAccumulator, Signature, Volatility,
};

/// Mantissa bits kept per bucket: 2^7 buckets per power of two.
const SUB_BITS: u32 = 7;
/// The buckets a non-zero magnitude falls in: its sign-free bits above the kept mantissa.
const SHIFT: u32 = 52 - SUB_BITS;

/// One past the largest bucket of a finite magnitude.
const MAX_BUCKET: u32 = 1 << (63 - SHIFT);

/// Counts of one sign's magnitudes in contiguous buckets `offset..offset + counts.len()`.
#[derive(Debug, Clone, Default, PartialEq)]
struct Store {
    offset: u32,
    counts: Vec<u64>,
}

impl Store {
    /// Counts `n` more in `bucket`; returns the bytes the store grew by.
    fn add(&mut self, bucket: u32, n: u64) -> usize {
        let before = self.counts.capacity();
        if self.counts.is_empty() {
            self.offset = bucket;
            self.counts.push(n);
            return (self.counts.capacity() - before) * 8;
        }
        if bucket < self.offset {
            let grow = (self.offset - bucket) as usize;
            self.counts.splice(0..0, std::iter::repeat_n(0, grow));
            self.offset = bucket;
        }
        let i = (bucket - self.offset) as usize;
        if i >= self.counts.len() {
            self.counts.resize(i + 1, 0);
        }
        self.counts[i] = self.counts[i].saturating_add(n);
        (self.counts.capacity() - before) * 8
    }

    fn merge(&mut self, other: &Store) {
        for (i, &n) in other.counts.iter().enumerate() {
            if n > 0 {
                let _ = self.add(other.offset + i as u32, n);
            }
        }
    }
}

/// One group's sketch.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct Sketch {
    neg: Store,
    zero: u64,
    pos: Store,
    count: u64,
    min: f64,
    max: f64,
}

impl Default for Sketch {
    fn default() -> Self {
        Sketch {
            neg: Store::default(),
            zero: 0,
            pos: Store::default(),
            count: 0,
            min: f64::INFINITY,
            max: f64::NEG_INFINITY,
        }
    }
}

/// The bucket of magnitude `m` (> 0, finite).
fn bucket(m: f64) -> u32 {
    (m.to_bits() >> SHIFT) as u32
}

/// The midpoint of bucket `b`'s magnitudes.
fn midpoint(b: u32) -> f64 {
    let low = f64::from_bits(u64::from(b) << SHIFT);
    let high = f64::from_bits((u64::from(b) + 1) << SHIFT);
    low + (high - low) / 2.0
}

impl Sketch {
    /// Counts `v` (NaN is ignored); returns the bytes the sketch grew by.
    #[inline]
    pub(crate) fn add(&mut self, v: f64) -> usize {
        if v.is_nan() {
            return 0;
        }
        self.count += 1;
        self.min = self.min.min(v);
        self.max = self.max.max(v);
        if v > 0.0 {
            self.pos.add(bucket(v.min(f64::MAX)), 1)
        } else if v < 0.0 {
            self.neg.add(bucket((-v).min(f64::MAX)), 1)
        } else {
            self.zero += 1;
            0
        }
    }

    fn merge(&mut self, other: &Sketch) {
        if other.count == 0 {
            return;
        }
        self.neg.merge(&other.neg);
        self.pos.merge(&other.pos);
        self.zero = self.zero.saturating_add(other.zero);
        self.count = self.count.saturating_add(other.count);
        self.min = self.min.min(other.min);
        self.max = self.max.max(other.max);
    }

    /// The value at fraction `q` (0..=1) of the ranks; `None` when empty.
    pub(crate) fn quantile(&self, q: f64) -> Option<f64> {
        if self.count == 0 {
            return None;
        }
        let rank = (q.clamp(0.0, 1.0) * (self.count - 1) as f64).round() as u64;
        let value = self.value_at_rank(rank);
        Some(value.clamp(self.min, self.max))
    }

    fn value_at_rank(&self, rank: u64) -> f64 {
        let mut seen = 0u64;
        // Negatives from the largest magnitude down, then zeros, then positives up.
        for (i, &n) in self.neg.counts.iter().enumerate().rev() {
            seen = seen.saturating_add(n);
            if seen > rank {
                return -midpoint(self.neg.offset + i as u32);
            }
        }
        seen = seen.saturating_add(self.zero);
        if seen > rank {
            return 0.0;
        }
        for (i, &n) in self.pos.counts.iter().enumerate() {
            seen = seen.saturating_add(n);
            if seen > rank {
                return midpoint(self.pos.offset + i as u32);
            }
        }
        self.max
    }

    /// Bytes this sketch holds beyond its own struct.
    fn heap_size(&self) -> usize {
        (self.neg.counts.capacity() + self.pos.counts.capacity()) * 8
    }

    /// The partial-aggregation state (what agents send a merge): count, zero, min, max, then each store as
    /// its number of non-empty buckets and, per bucket, the gap from the previous bucket and its count, both
    /// LEB128 varints: a bucket costs 2 to 4 bytes instead of 12, which is most of a partial aggregate's size.
    fn encode(&self, out: &mut Vec<u8>) {
        out.extend_from_slice(&self.count.to_le_bytes());
        out.extend_from_slice(&self.zero.to_le_bytes());
        out.extend_from_slice(&self.min.to_le_bytes());
        out.extend_from_slice(&self.max.to_le_bytes());
        for store in [&self.neg, &self.pos] {
            let buckets = store.counts.iter().enumerate().filter(|(_, n)| **n > 0);
            put_varint(out, buckets.clone().count() as u64);
            let mut previous = 0u64;
            for (i, &n) in buckets {
                let b = u64::from(store.offset) + i as u64;
                put_varint(out, b - previous);
                put_varint(out, n);
                previous = b;
            }
        }
    }

    /// The sketch [`Sketch::encode`] wrote; `None` for bytes it did not write.
    fn decode(mut bytes: &[u8]) -> Option<Sketch> {
        fn take<const N: usize>(b: &mut &[u8]) -> Option<[u8; N]> {
            let (head, rest) = b.split_first_chunk::<N>()?;
            *b = rest;
            Some(*head)
        }
        let mut s = Sketch {
            count: u64::from_le_bytes(take(&mut bytes)?),
            zero: u64::from_le_bytes(take(&mut bytes)?),
            min: f64::from_le_bytes(take(&mut bytes)?),
            max: f64::from_le_bytes(take(&mut bytes)?),
            ..Sketch::default()
        };
        for neg in [true, false] {
            let n = take_varint(&mut bytes)?;
            // Every bucket takes at least two bytes: a count past that is a lie, refused before looping.
            if n > bytes.len() as u64 / 2 {
                return None;
            }
            let mut b = 0u64;
            for _ in 0..n {
                b = b.checked_add(take_varint(&mut bytes)?)?;
                let c = take_varint(&mut bytes)?;
                // Finite magnitudes have buckets below 2^18 (an exponent of 11 bits and 7 kept bits);
                // a larger one would make the store allocate for nothing.
                if b >= u64::from(MAX_BUCKET) {
                    return None;
                }
                let _ = if neg { s.neg.add(b as u32, c) } else { s.pos.add(b as u32, c) };
            }
        }
        // `quantile` clamps to [min, max]: a state must keep min <= max (false for NaN) once it counts.
        (bytes.is_empty() && (s.count == 0 || s.min <= s.max)).then_some(s)
    }
}

/// Appends `v` as an LEB128 varint.
fn put_varint(out: &mut Vec<u8>, mut v: u64) {
    while v >= 0x80 {
        out.push((v as u8) | 0x80);
        v >>= 7;
    }
    out.push(v as u8);
}

/// Reads an LEB128 varint of at most ten bytes; `None` when cut short or too long.
fn take_varint(bytes: &mut &[u8]) -> Option<u64> {
    let mut v = 0u64;
    for i in 0..10 {
        let (&byte, rest) = bytes.split_first()?;
        *bytes = rest;
        v |= u64::from(byte & 0x7f).checked_shl(7 * i)?;
        if byte & 0x80 == 0 {
            return Some(v);
        }
    }
    None
}

/// What a sketch UDAF returns.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub(crate) enum SketchOutput {
    /// One quantile, in parts per ten thousand (p99 is 9900), as FLOAT64.
    Percentile(u32),
    /// Pixie's quantiles JSON: these keys and fractions (parts per ten thousand), as a STRING.
    Json(Vec<(&'static str, u32)>),
    /// The sketch itself, encoded, as BINARY: an agent's partial state, merged by a Kelvin.
    State,
}

/// What a sketch UDAF reads.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub(crate) enum SketchInput {
    /// FLOAT64 values.
    Values,
    /// Encoded sketches ([`SketchOutput::State`]), merged.
    States,
}

/// A sketch UDAF over one numeric argument (cast to FLOAT64 by the caller).
#[derive(Debug, PartialEq, Eq, Hash)]
pub(crate) struct SketchUdaf {
    name: String,
    input: SketchInput,
    output: SketchOutput,
    signature: Signature,
}

/// The UDAF computing `output`.
pub(crate) fn udaf(output: SketchOutput) -> AggregateUDF {
    udaf_over(SketchInput::Values, output)
}

/// The UDAF computing `output` from `input`: values, or the states agents sent.
pub(crate) fn udaf_over(input: SketchInput, output: SketchOutput) -> AggregateUDF {
    let name = match &output {
        SketchOutput::Percentile(p) => format!("px_percentile_{p}"),
        SketchOutput::Json(_) => "px_quantiles".to_string(),
        SketchOutput::State => "px_sketch".to_string(),
    };
    let (name, arg) = match input {
        SketchInput::Values => (name, DataType::Float64),
        SketchInput::States => (format!("{name}_merge"), DataType::Binary),
    };
    AggregateUDF::from(SketchUdaf {
        name,
        input,
        output,
        signature: Signature::exact(vec![arg], Volatility::Immutable),
    })
}

impl SketchOutput {
    fn data_type(&self) -> DataType {
        match self {
            SketchOutput::Percentile(_) => DataType::Float64,
            SketchOutput::Json(_) => DataType::Utf8,
            SketchOutput::State => DataType::Binary,
        }
    }

    fn scalar(&self, s: &Sketch) -> ScalarValue {
        match self {
            SketchOutput::Percentile(p) => ScalarValue::Float64(s.quantile(f64::from(*p) / 10_000.0)),
            SketchOutput::Json(keys) => ScalarValue::Utf8(json(keys, s)),
            SketchOutput::State => {
                let mut bytes = Vec::new();
                s.encode(&mut bytes);
                ScalarValue::Binary(Some(bytes))
            }
        }
    }
}

/// `{"p01":…,…}` of `s`, `None` when it is empty (as a percentile of no rows is null).
fn json(keys: &[(&'static str, u32)], s: &Sketch) -> Option<String> {
    let mut out = String::from("{");
    for (i, (k, p)) in keys.iter().enumerate() {
        let v = s.quantile(f64::from(*p) / 10_000.0)?;
        if i > 0 {
            out.push(',');
        }
        out.push_str(&format!("\"{k}\":{}", serde_json::Value::from(v)));
    }
    out.push('}');
    Some(out)
}

impl AggregateUDFImpl for SketchUdaf {
    fn name(&self) -> &str {
        &self.name
    }

    fn signature(&self) -> &Signature {
        &self.signature
    }

    fn return_type(&self, _arg_types: &[DataType]) -> Result<DataType> {
        Ok(self.output.data_type())
    }

    fn accumulator(&self, _args: AccumulatorArgs) -> Result<Box<dyn Accumulator>> {
        Ok(Box::new(SketchAccumulator { input: self.input, output: self.output.clone(), sketch: Sketch::default() }))
    }

    fn state_fields(&self, args: StateFieldsArgs) -> Result<Vec<FieldRef>> {
        Ok(vec![Arc::new(Field::new(format!("{}[sketch]", args.name), DataType::Binary, true))])
    }

    fn groups_accumulator_supported(&self, _args: AccumulatorArgs) -> bool {
        true
    }

    fn create_groups_accumulator(&self, _args: AccumulatorArgs) -> Result<Box<dyn GroupsAccumulator>> {
        Ok(Box::new(SketchGroups { input: self.input, output: self.output.clone(), sketches: Vec::new(), heap: 0 }))
    }
}

fn floats(values: &[ArrayRef]) -> Result<&Float64Array> {
    match values.first().and_then(|a| a.as_primitive_opt::<Float64Type>()) {
        Some(a) => Ok(a),
        None => exec_err!("the quantile sketch takes one FLOAT64 argument"),
    }
}

fn decode(bytes: &[u8]) -> Result<Sketch> {
    match Sketch::decode(bytes) {
        Some(s) => Ok(s),
        None => exec_err!("corrupt quantile sketch state"),
    }
}

/// The sketch of an aggregate without groups.
#[derive(Debug)]
struct SketchAccumulator {
    input: SketchInput,
    output: SketchOutput,
    sketch: Sketch,
}

impl Accumulator for SketchAccumulator {
    fn update_batch(&mut self, values: &[ArrayRef]) -> Result<()> {
        if self.input == SketchInput::States {
            return self.merge_batch(values);
        }
        let a = floats(values)?;
        if a.null_count() == 0 {
            a.values().iter().for_each(|&v| {
                self.sketch.add(v);
            });
        } else {
            a.iter().flatten().for_each(|v| {
                self.sketch.add(v);
            });
        }
        Ok(())
    }

    fn evaluate(&mut self) -> Result<ScalarValue> {
        Ok(self.output.scalar(&self.sketch))
    }

    fn size(&self) -> usize {
        std::mem::size_of_val(self) + self.sketch.heap_size()
    }

    fn state(&mut self) -> Result<Vec<ScalarValue>> {
        let mut bytes = Vec::new();
        self.sketch.encode(&mut bytes);
        Ok(vec![ScalarValue::Binary(Some(bytes))])
    }

    fn merge_batch(&mut self, states: &[ArrayRef]) -> Result<()> {
        let Some(b) = states.first().and_then(|a| a.as_binary_opt::<i32>()) else {
            return exec_err!("the quantile sketch state is BINARY");
        };
        for bytes in b.iter().flatten() {
            self.sketch.merge(&decode(bytes)?);
        }
        Ok(())
    }
}

/// One sketch per group.
struct SketchGroups {
    input: SketchInput,
    output: SketchOutput,
    sketches: Vec<Sketch>,
    /// Bytes of bucket counts held by all sketches (what the memory pool is told).
    heap: usize,
}

impl SketchGroups {
    fn take(&mut self, emit_to: EmitTo) -> Vec<Sketch> {
        let taken = emit_to.take_needed(&mut self.sketches);
        self.heap = self.sketches.iter().map(Sketch::heap_size).sum();
        taken
    }
}

impl GroupsAccumulator for SketchGroups {
    fn update_batch(
        &mut self,
        values: &[ArrayRef],
        group_indices: &[usize],
        opt_filter: Option<&BooleanArray>,
        total_num_groups: usize,
    ) -> Result<()> {
        if self.input == SketchInput::States {
            let Some(b) = values.first().and_then(|a| a.as_binary_opt::<i32>()) else {
                return exec_err!("the quantile sketch state is BINARY");
            };
            self.sketches.resize_with(total_num_groups, Sketch::default);
            for (i, &g) in group_indices.iter().enumerate() {
                if b.is_valid(i) && opt_filter.is_none_or(|f| f.is_valid(i) && f.value(i)) {
                    self.sketches[g].merge(&decode(b.value(i))?);
                }
            }
            self.heap = self.sketches.iter().map(Sketch::heap_size).sum();
            return Ok(());
        }
        let a = floats(values)?;
        self.sketches.resize_with(total_num_groups, Sketch::default);
        let vals = a.values();
        let mut grew = 0;
        match (a.null_count(), opt_filter) {
            (0, None) => {
                for (&g, &v) in group_indices.iter().zip(vals.iter()) {
                    grew += self.sketches[g].add(v);
                }
            }
            _ => {
                for (i, &g) in group_indices.iter().enumerate() {
                    let keep = a.is_valid(i) && opt_filter.is_none_or(|f| f.is_valid(i) && f.value(i));
                    if keep {
                        grew += self.sketches[g].add(vals[i]);
                    }
                }
            }
        }
        self.heap += grew;
        Ok(())
    }

    fn evaluate(&mut self, emit_to: EmitTo) -> Result<ArrayRef> {
        let sketches = self.take(emit_to);
        Ok(match &self.output {
            SketchOutput::Percentile(p) => {
                let q = f64::from(*p) / 10_000.0;
                Arc::new(sketches.iter().map(|s| s.quantile(q)).collect::<Float64Array>())
            }
            SketchOutput::Json(keys) => {
                let mut b = StringBuilder::with_capacity(sketches.len(), sketches.len() * 96);
                for s in &sketches {
                    b.append_option(json(keys, s));
                }
                Arc::new(b.finish())
            }
            SketchOutput::State => encode_all(&sketches),
        })
    }

    fn state(&mut self, emit_to: EmitTo) -> Result<Vec<ArrayRef>> {
        let sketches = self.take(emit_to);
        Ok(vec![encode_all(&sketches)])
    }

    fn merge_batch(&mut self, values: &[ArrayRef], group_indices: &[usize], total_num_groups: usize) -> Result<()> {
        let Some(b) = values.first().and_then(|a| a.as_binary_opt::<i32>()) else {
            return exec_err!("the quantile sketch state is BINARY");
        };
        self.sketches.resize_with(total_num_groups, Sketch::default);
        for (i, &g) in group_indices.iter().enumerate() {
            if b.is_valid(i) {
                let s = decode(b.value(i))?;
                self.sketches[g].merge(&s);
            }
        }
        self.heap = self.sketches.iter().map(Sketch::heap_size).sum();
        Ok(())
    }

    /// Each row as a sketch of its own value (null for a null or filtered-out row).
    fn convert_to_state(&self, values: &[ArrayRef], opt_filter: Option<&BooleanArray>) -> Result<Vec<ArrayRef>> {
        if self.input == SketchInput::States {
            // A state already: filtered-out rows become nulls, which merging skips.
            let Some(b) = values.first().and_then(|a| a.as_binary_opt::<i32>()) else {
                return exec_err!("the quantile sketch state is BINARY");
            };
            let kept = (0..b.len())
                .map(|i| (b.is_valid(i) && opt_filter.is_none_or(|f| f.is_valid(i) && f.value(i))).then(|| b.value(i)));
            return Ok(vec![Arc::new(kept.collect::<arrow::array::BinaryArray>())]);
        }
        let a = floats(values)?;
        let mut b = BinaryBuilder::with_capacity(a.len(), a.len() * 48);
        let mut buf = Vec::new();
        for i in 0..a.len() {
            if a.is_valid(i) && opt_filter.is_none_or(|f| f.is_valid(i) && f.value(i)) {
                let mut s = Sketch::default();
                let _ = s.add(a.value(i));
                buf.clear();
                s.encode(&mut buf);
                b.append_value(&buf);
            } else {
                b.append_null();
            }
        }
        Ok(vec![Arc::new(b.finish())])
    }

    fn size(&self) -> usize {
        self.sketches.capacity() * std::mem::size_of::<Sketch>() + self.heap
    }
}

/// Each sketch encoded, as one BINARY array.
fn encode_all(sketches: &[Sketch]) -> ArrayRef {
    let mut b = BinaryBuilder::with_capacity(sketches.len(), sketches.len() * 64);
    let mut buf = Vec::new();
    for s in sketches {
        buf.clear();
        s.encode(&mut buf);
        b.append_value(&buf);
    }
    Arc::new(b.finish())
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The exact value at nearest rank `q·(n-1)`.
    fn exact(sorted: &[f64], q: f64) -> f64 {
        sorted[(q * (sorted.len() - 1) as f64).round() as usize]
    }

    /// xorshift64*: deterministic cases without a property-testing dependency (adding one to this crate
    /// would change the features DataFusion is built with).
    struct Rng(u64);

    impl Rng {
        fn next(&mut self) -> u64 {
            self.0 ^= self.0 >> 12;
            self.0 ^= self.0 << 25;
            self.0 ^= self.0 >> 27;
            self.0.wrapping_mul(0x2545_F491_4F6C_DD1D)
        }

        fn float(&mut self) -> f64 {
            (self.next() >> 11) as f64 / (1u64 << 53) as f64
        }
    }

    #[test]
    fn quantiles_are_within_half_a_percent_and_survive_encoding() {
        let mut rng = Rng(0x9E37_79B9_7F4A_7C15);
        for case in 0..300 {
            let n = 1 + (rng.next() % 400) as usize;
            // Mixed signs and magnitudes, and some exact zeros.
            let mut values: Vec<f64> = (0..n)
                .map(|_| match rng.next() % 10 {
                    0 => 0.0,
                    1..=2 => -(rng.float() * 1e12),
                    _ => (rng.float() * 40.0).exp2(),
                })
                .collect();
            let split = (rng.next() as usize) % (n + 1);
            let (mut a, mut b) = (Sketch::default(), Sketch::default());
            for &v in &values[..split] {
                let _ = a.add(v);
            }
            for &v in &values[split..] {
                let _ = b.add(v);
            }
            let mut bytes = Vec::new();
            b.encode(&mut bytes);
            a.merge(&Sketch::decode(&bytes).expect("decodes"));
            values.sort_by(f64::total_cmp);
            for q in [0.0, 0.01, 0.1, 0.25, 0.5, 0.75, 0.9, 0.99, 1.0, rng.float()] {
                let (got, want) = (a.quantile(q).expect("not empty"), exact(&values, q));
                assert!((got - want).abs() <= want.abs() * 0.004 + 1e-9, "case {case} q {q}: got {got}, want {want}");
            }
        }
    }

    #[test]
    fn decode_refuses_what_encode_did_not_write() {
        let mut s = Sketch::default();
        for v in [1.0, -2.0, 0.0, 1e9] {
            let _ = s.add(v);
        }
        let mut bytes = Vec::new();
        s.encode(&mut bytes);
        assert_eq!(Sketch::decode(&bytes), Some(s));
        let mut rng = Rng(7);
        for cut in 0..bytes.len() {
            assert_eq!(Sketch::decode(&bytes[..cut]), None, "a state cut at {cut} bytes");
        }
        for _ in 0..2000 {
            let junk: Vec<u8> = (0..rng.next() % 120).map(|_| rng.next() as u8).collect();
            if let Some(s) = Sketch::decode(&junk) {
                let _ = s.quantile(0.5);
            }
        }
    }

    #[test]
    fn extremes_are_exact_and_empty_is_none() {
        let mut s = Sketch::default();
        assert_eq!(s.quantile(0.5), None);
        for v in [3.0, 0.0, 1_000_000.0, 17.0] {
            let _ = s.add(v);
        }
        assert_eq!(s.quantile(0.0), Some(0.0));
        assert_eq!(s.quantile(1.0), Some(1_000_000.0));
    }
}
