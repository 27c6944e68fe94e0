//! proptest strategies of the hunt.
//!
//! - [`BatchStrategy`]: one hunt case, a batch of ≥ 4,096 blocks of one type in mixed
//!   [`BlockMode`]s, generated from one seed the runner draws. Its value tree shrinks a failing
//!   batch to the failing block: first by halving the block range (the block properties are
//!   per block, so one half of a failing range fails), then byte by byte towards zero (each byte
//!   the smallest value that still fails, by binary search).
//! - [`block`]: one block of a type, arbitrary bytes or structured (special scales, extreme
//!   sub-block scales), shrinking by proptest's own byte shrinkers — for `cargo test`.
//! - [`tensor_shape`] / [`bad_tensor_shape`]: GGUF `ne` of a type, with whole or partial blocks
//!   per row.
//! - [`metadata_value`]: any GGUF metadata value (floats from raw bits: NaN payloads too).
//!
//! Invariant: a [`Batch`] value always holds whole blocks; its bytes are exactly what the
//! property is run on, so a shrunk value is a self-contained reproduction.

use std::fmt;
use std::ops::Range;
use std::sync::Arc;

use proptest::prelude::Rng as _;
use proptest::prelude::*;
use proptest::strategy::{NewTree, ValueTree};
use proptest::test_runner::TestRunner;

use crate::dtype::GgmlType;
use crate::formats::gguf::{GgufArray, GgufValue, GgufValueType};

use super::gen::{fill_batch, fill_block, scale_fields, BlockMode, Rng, ScaleKind};
use super::gen::{BF16_SPECIALS, F16_SPECIALS, F32_SPECIALS};

/// Blocks in one hunt case (block-quantized types).
pub const BATCH_BLOCKS: usize = 4096;
/// Elements in one hunt case (plain F32/F16/BF16).
pub const BATCH_ELEMENTS: usize = 16_384;
/// The byte phase of the shrinker runs on ranges of at most this many bytes.
const MAX_SHRINK_BYTES: usize = 4096;

/// One hunt case: blocks of one type (or a shrunk part of them).
#[derive(Clone)]
pub struct Batch {
    /// Block type.
    pub dtype: GgmlType,
    /// Seed the batch was generated from.
    pub seed: u64,
    /// Seed of the activation vector of the matvec paths.
    pub x_seed: u64,
    /// Row length of plain types (elements; 16·k + r so the tail path runs).
    pub plain_row: usize,
    /// Units (blocks; elements of plain types) of `full` under test.
    pub units: Range<usize>,
    full: Arc<Vec<u8>>,
    /// The shrunk bytes of `units`, once the byte phase changed them.
    patched: Option<Arc<Vec<u8>>>,
}

impl Batch {
    /// A batch over `bytes` (whole blocks of `dtype`).
    pub fn new(dtype: GgmlType, seed: u64, x_seed: u64, plain_row: usize, bytes: Vec<u8>) -> Self {
        let n = bytes.len() / dtype.type_size().max(1);
        Self {
            dtype,
            seed,
            x_seed,
            plain_row,
            units: 0..n,
            full: Arc::new(bytes),
            patched: None,
        }
    }

    /// Generates the batch of `seed`: `n_units` units in random modes.
    pub fn generate(dtype: GgmlType, seed: u64, n_units: usize) -> Self {
        let mut rng = Rng::new(seed);
        let mut bytes = vec![0u8; n_units * dtype.type_size()];
        fill_batch(dtype, &mut rng, &mut bytes);
        let x_seed = rng.next_u64();
        let plain_row = 16 * (1 + rng.below(4) as usize) + rng.below(16) as usize;
        Self::new(dtype, seed, x_seed, plain_row, bytes)
    }

    /// The bytes under test.
    pub fn data(&self) -> &[u8] {
        if let Some(p) = &self.patched {
            return p;
        }
        let ts = self.dtype.type_size();
        self.full
            .get(self.units.start * ts..self.units.end * ts)
            .unwrap_or_default()
    }

    /// Number of units under test.
    pub fn len(&self) -> usize {
        self.units.len()
    }

    /// Whether no unit is under test.
    pub fn is_empty(&self) -> bool {
        self.units.is_empty()
    }
}

impl fmt::Debug for Batch {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut d = f.debug_struct("Batch");
        d.field("dtype", &self.dtype)
            .field("seed", &self.seed)
            .field("units", &self.units);
        let data = self.data();
        if data.len() <= 512 {
            d.field("hex", &super::regression::hex(data));
        }
        d.finish()
    }
}

/// What a batch is generated for.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum BatchKind {
    /// The dequantization paths: blocks in mixed [`BlockMode`]s.
    Dequant,
    /// Requant identities: in-domain, quantizer-image and arbitrary blocks
    /// ([`super::requant::fill_requant_block`]).
    Requant,
}

/// proptest strategy of hunt cases of one type.
#[derive(Clone, Copy, Debug)]
pub struct BatchStrategy {
    /// Block type.
    pub dtype: GgmlType,
    /// Units per case.
    pub units: usize,
    /// What the blocks are for.
    pub kind: BatchKind,
}

impl BatchStrategy {
    /// Dequant cases of `dtype` at the hunt's size (≥ 4,096 blocks).
    pub fn of(dtype: GgmlType) -> Self {
        let units = if dtype.block_size() == 1 {
            BATCH_ELEMENTS
        } else {
            BATCH_BLOCKS
        };
        Self {
            dtype,
            units,
            kind: BatchKind::Dequant,
        }
    }

    /// Requant cases of `dtype` (same size).
    pub fn requant(dtype: GgmlType) -> Self {
        Self {
            kind: BatchKind::Requant,
            ..Self::of(dtype)
        }
    }
}

impl Strategy for BatchStrategy {
    type Tree = BatchTree;
    type Value = Batch;
    fn new_tree(&self, runner: &mut TestRunner) -> NewTree<Self> {
        let seed = runner.rng().next_u64();
        let batch = match self.kind {
            BatchKind::Dequant => Batch::generate(self.dtype, seed, self.units),
            BatchKind::Requant => {
                let mut rng = Rng::new(seed);
                let mut bytes = vec![0u8; self.units * self.dtype.type_size()];
                super::requant::fill_requant_batch(self.dtype, &mut rng, &mut bytes);
                Batch::new(self.dtype, seed, rng.next_u64(), 16, bytes)
            }
        };
        Ok(BatchTree::new(batch))
    }
}

/// A proposal waiting for the test's verdict.
#[derive(Clone, Debug)]
enum Pending {
    /// A sub-range; `next` is the other half to try if this one passes.
    Range {
        cand: Range<usize>,
        next: Option<Range<usize>>,
    },
    /// Byte `pos` of the shrunk bytes set to `value`.
    Byte { pos: usize, value: u8 },
}

/// The value tree of a [`Batch`] (see the module doc for the shrinking order).
#[derive(Clone, Debug)]
pub struct BatchTree {
    base: Batch,
    /// The smallest failing range found (units of `base`).
    good: Range<usize>,
    /// Byte phase: the smallest failing bytes found, and the byte being minimised.
    bytes: Option<Vec<u8>>,
    pos: usize,
    /// Largest value known to pass at `pos` (None: 0 not tried yet).
    lo: Option<u8>,
    pending: Option<Pending>,
    done: bool,
}

impl BatchTree {
    /// A tree whose root is `batch`.
    pub fn new(batch: Batch) -> Self {
        let good = batch.units.clone();
        Self {
            base: batch,
            good,
            bytes: None,
            pos: 0,
            lo: None,
            pending: None,
            done: false,
        }
    }

    fn range_bytes(&self, r: &Range<usize>) -> Vec<u8> {
        let ts = self.base.dtype.type_size();
        self.base
            .full
            .get(r.start * ts..r.end * ts)
            .map(<[u8]>::to_vec)
            .unwrap_or_default()
    }

    /// Sets the next proposal; false when shrinking is over.
    fn propose(&mut self) -> bool {
        if self.done {
            return false;
        }
        if self.bytes.is_none() {
            if self.good.len() > 1 {
                let mid = self.good.start + self.good.len() / 2;
                self.pending = Some(Pending::Range {
                    cand: self.good.start..mid,
                    next: Some(mid..self.good.end),
                });
                return true;
            }
            let b = self.range_bytes(&self.good);
            if b.len() > MAX_SHRINK_BYTES {
                self.done = true;
                return false;
            }
            self.bytes = Some(b);
            self.pos = 0;
            self.lo = None;
        }
        let Some(bytes) = &self.bytes else {
            return false;
        };
        while self.pos < bytes.len() {
            let hi = bytes[self.pos];
            let cand = match self.lo {
                _ if hi == 0 => None,
                None => Some(0),
                Some(lo) if hi - lo > 1 => Some(lo + (hi - lo) / 2),
                Some(_) => None,
            };
            if let Some(value) = cand {
                self.pending = Some(Pending::Byte {
                    pos: self.pos,
                    value,
                });
                return true;
            }
            self.pos += 1;
            self.lo = None;
        }
        self.done = true;
        false
    }
}

impl ValueTree for BatchTree {
    type Value = Batch;

    fn current(&self) -> Batch {
        let mut b = self.base.clone();
        match &self.pending {
            Some(Pending::Range { cand, .. }) => b.units = cand.clone(),
            Some(Pending::Byte { pos, value }) => {
                b.units = self.good.clone();
                let mut bytes = self.bytes.clone().unwrap_or_default();
                if let Some(x) = bytes.get_mut(*pos) {
                    *x = *value;
                }
                b.patched = Some(Arc::new(bytes));
            }
            None => {
                b.units = self.good.clone();
                b.patched = self.bytes.clone().map(Arc::new);
            }
        }
        b
    }

    /// Called when `current()` failed: keep it, propose something simpler.
    fn simplify(&mut self) -> bool {
        match self.pending.take() {
            Some(Pending::Range { cand, .. }) => self.good = cand,
            Some(Pending::Byte { pos, value }) => {
                if let Some(x) = self.bytes.as_mut().and_then(|b| b.get_mut(pos)) {
                    *x = value;
                }
            }
            None => {}
        }
        self.propose()
    }

    /// Called when `current()` passed: undo it, propose the next candidate.
    fn complicate(&mut self) -> bool {
        match self.pending.take() {
            None => false,
            Some(Pending::Range { next: Some(n), .. }) => {
                self.pending = Some(Pending::Range {
                    cand: n,
                    next: None,
                });
                true
            }
            Some(Pending::Range { next: None, .. }) => {
                // Neither half fails alone: minimise the bytes of the whole range.
                let b = self.range_bytes(&self.good);
                if b.len() > MAX_SHRINK_BYTES {
                    self.done = true;
                    return false;
                }
                self.bytes = Some(b);
                self.pos = 0;
                self.lo = None;
                self.propose()
            }
            Some(Pending::Byte { value, .. }) => {
                self.lo = Some(value);
                self.propose()
            }
        }
    }
}

/// One block of `t`: arbitrary bytes, or structured (special or tame scale fields, extreme
/// sub-block scales, sparse, saturated). Shrinks byte by byte (proptest's own shrinkers).
pub fn block(t: GgmlType) -> BoxedStrategy<Vec<u8>> {
    let ts = t.type_size();
    let arbitrary = prop::collection::vec(any::<u8>(), ts);
    let structured = (prop::sample::select(BlockMode::ALL.to_vec()), any::<u64>()).prop_map(
        move |(mode, seed)| {
            let mut b = vec![0u8; ts];
            fill_block(t, mode, &mut Rng::new(seed), &mut b);
            b
        },
    );
    let specials = (
        prop::collection::vec(any::<u8>(), ts),
        prop::collection::vec(any::<prop::sample::Index>(), 1..=4),
    )
        .prop_map(move |(mut b, picks)| {
            put_specials(t, &mut b, &picks);
            b
        });
    prop_oneof![arbitrary, structured, specials].boxed()
}

/// Overwrites every scale field (every element, for plain types) of `b` with a special value.
fn put_specials(t: GgmlType, b: &mut [u8], picks: &[prop::sample::Index]) {
    let mut k = 0usize;
    let mut next = |n: usize| {
        let i = picks.get(k % picks.len().max(1)).map_or(0, |p| p.index(n));
        k += 1;
        i
    };
    let plain_kind = match t {
        GgmlType::F16 => Some(ScaleKind::F16),
        GgmlType::BF16 => None,
        GgmlType::F32 => Some(ScaleKind::F32),
        _ => return put_block_specials(t, b, &mut next),
    };
    match plain_kind {
        Some(ScaleKind::F16) => {
            b.copy_from_slice(&F16_SPECIALS[next(F16_SPECIALS.len())].to_le_bytes());
        }
        Some(_) => b.copy_from_slice(&F32_SPECIALS[next(F32_SPECIALS.len())].to_le_bytes()),
        None => b.copy_from_slice(&BF16_SPECIALS[next(BF16_SPECIALS.len())].to_le_bytes()),
    }
}

fn put_block_specials(t: GgmlType, b: &mut [u8], next: &mut dyn FnMut(usize) -> usize) {
    for f in scale_fields(t) {
        let at = f.offset;
        match f.kind {
            ScaleKind::F16 | ScaleKind::Iq1mSplit => {
                let v = F16_SPECIALS[next(F16_SPECIALS.len())];
                if f.kind == ScaleKind::F16 {
                    if let Some(d) = b.get_mut(at..at + 2) {
                        d.copy_from_slice(&v.to_le_bytes());
                    }
                } else {
                    for k in 0..4 {
                        if let Some(w) = b.get_mut(at + 2 * k..at + 2 * k + 2) {
                            let old = u16::from_le_bytes([w[0], w[1]]);
                            let nib = (v >> (4 * k)) & 0xF;
                            w.copy_from_slice(&((old & 0x0FFF) | (nib << 12)).to_le_bytes());
                        }
                    }
                }
            }
            ScaleKind::F32 => {
                let v = F32_SPECIALS[next(F32_SPECIALS.len())];
                if let Some(d) = b.get_mut(at..at + 4) {
                    d.copy_from_slice(&v.to_le_bytes());
                }
            }
            ScaleKind::E8M0 | ScaleKind::Ue4m3 => {
                const BYTES: [u8; 8] = [0, 1, 2, 0x7E, 0x7F, 0x80, 0xFE, 0xFF];
                if let Some(x) = b.get_mut(at) {
                    *x = BYTES[next(BYTES.len())];
                }
            }
        }
    }
}

/// GGUF `ne` of a tensor of `t` with whole blocks per row: 1–4 dims, ne0 = k·block (k 0..=3),
/// the others 0..=3 (trailing 1s included).
pub fn tensor_shape(t: GgmlType) -> impl Strategy<Value = Vec<u64>> {
    let bs = t.block_size() as u64;
    (0..=3u64, prop::collection::vec(0..=3u64, 0..=3))
        .prop_map(move |(k, rest)| std::iter::once(k * bs).chain(rest).collect())
}

/// GGUF `ne` of a tensor of `t` (block size > 1) whose rows are NOT whole blocks; half of them
/// hold a whole number of blocks in total (`ne0 = (k + ½)·block`, two rows), which catches
/// a check of the total size that forgets the rows.
pub fn bad_tensor_shape(t: GgmlType) -> impl Strategy<Value = Vec<u64>> {
    let bs = t.block_size() as u64;
    let any_rows = (
        0..=3u64,
        1..bs.max(2),
        prop::collection::vec(1..=3u64, 0..=2),
    )
        .prop_map(move |(k, r, rest)| std::iter::once(k * bs + r).chain(rest).collect());
    let whole_total = (0..=3u64).prop_map(move |k| vec![k * bs + bs / 2, 2]);
    prop_oneof![any_rows, whole_total]
}

fn flat_array() -> impl Strategy<Value = GgufValue> {
    use GgufValue as V;
    use GgufValueType as T;
    let n = 0..4usize;
    let mk = |t: T| {
        move |items: Vec<GgufValue>| {
            V::Array(GgufArray {
                elem_type: t,
                items,
            })
        }
    };
    prop_oneof![
        prop::collection::vec(any::<u8>().prop_map(V::U8), n.clone()).prop_map(mk(T::U8)),
        prop::collection::vec(any::<i32>().prop_map(V::I32), n.clone()).prop_map(mk(T::I32)),
        prop::collection::vec(
            any::<u32>().prop_map(|b| V::F32(f32::from_bits(b))),
            n.clone()
        )
        .prop_map(mk(T::F32)),
        prop::collection::vec("[a-z<>|Ġ ]{0,6}".prop_map(|s| V::String(s.into_bytes())), n)
            .prop_map(mk(T::String)),
    ]
}

/// Any metadata value: every scalar type (floats from raw bits, so NaN payloads and negative
/// zero too), strings (UTF-8 and not), flat arrays.
pub fn metadata_value() -> impl Strategy<Value = GgufValue> {
    use GgufValue as V;
    prop_oneof![
        any::<u8>().prop_map(V::U8),
        any::<i8>().prop_map(V::I8),
        any::<u16>().prop_map(V::U16),
        any::<i16>().prop_map(V::I16),
        any::<u32>().prop_map(V::U32),
        any::<i32>().prop_map(V::I32),
        any::<u32>().prop_map(|b| V::F32(f32::from_bits(b))),
        prop::sample::select(vec![0u8, 1]).prop_map(V::Bool),
        prop::collection::vec(any::<u8>(), 0..12).prop_map(V::String),
        "[ -~é中]{0,12}".prop_map(|s| V::String(s.into_bytes())),
        any::<u64>().prop_map(V::U64),
        any::<i64>().prop_map(V::I64),
        any::<u64>().prop_map(|b| V::F64(f64::from_bits(b))),
        flat_array(),
    ]
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::test_runner::{Config, TestCaseError};

    /// A planted per-block property: a block fails when its byte 5 is ≥ 0x40. The shrinker
    /// must return that one block, every other byte 0 and byte 5 exactly 0x40.
    #[test]
    fn a_failing_batch_shrinks_to_the_minimal_block() {
        let t = GgmlType::Q4_0;
        let mut bytes = vec![0x11u8; 4096 * t.type_size()];
        let bad = 2_777;
        bytes[bad * 18 + 5] = 0xC3;
        let batch = Batch::new(t, 1, 2, 16, bytes);
        let mut runner = TestRunner::new(Config {
            max_shrink_iters: 100_000,
            failure_persistence: None,
            ..Config::default()
        });
        let result = runner.run_one(BatchTree::new(batch), |b| {
            for blk in b.data().chunks_exact(18) {
                if blk[5] >= 0x40 {
                    return Err(TestCaseError::fail("byte 5"));
                }
            }
            Ok(())
        });
        let Err(proptest::test_runner::TestError::Fail(_, min)) = result else {
            panic!("expected a failure, got {result:?}");
        };
        assert_eq!(min.units, bad..bad + 1);
        let mut want = [0u8; 18];
        want[5] = 0x40;
        assert_eq!(min.data(), &want[..]);
    }
}
