//! F-QUANT-001: every dequantization path of the engine equals ggml, bit for bit, on the
//! committed oracle vectors (`tests/data/oracle/*.oracle`, written by
//! `scripts/gen-oracle-vectors.sh` from a ggml build; nothing in them comes from this crate).
//!
//! Invariants:
//! - The vectors are embedded in the binary whole (every `.oracle` file, 4.2 MB: one source of
//!   truth, no derived copy to drift); only their `dequantize` sections are used here (the
//!   quantize sections are `tests/oracle.rs`'s).
//! - The oracle is ggml, never our engine: a mutant that sits in the engine's dequantizer hits
//!   the original and the converted model alike, so the golden-rule gates cannot see it, but
//!   this gate does (FP16-SCALE-TRUNC, Q5-NIBBLE-ORDER).
//! - Paths checked, per dtype: `quant::dequantize` (the codec; the F32 export, diffs and
//!   fingerprints all decode through it), the inference kernels' row decoder at every SIMD
//!   level this CPU runs, and their fused decode + dot product (matrix × vector), whose
//!   expected value is the kernel contract's dot product over ggml's values. Values compare by
//!   `f32::to_bits` (signed zeros count). NaN payloads count on the codec path (ggml's C and
//!   our codec agree on them, and `tests/oracle.rs` pins that); on the kernel decoders a NaN
//!   where ggml has a NaN is a finding, not a falsification: Rust leaves the payload of an
//!   arithmetic NaN unspecified (RFC 3514) and the kernel contract is stated over values, so
//!   the gate lists those values in its metrics without failing on them. A fused dot product
//!   that is NaN on both sides is equal (which NaN of a row survives depends on the order of
//!   the additions, not on the decoder).
//! - The evidence of a mismatch names the dtype, path, section, block, element and both
//!   values as hex bits.

use serde_json::{json, Value};

use super::{GateCtx, Judgement};
use crate::dtype::GgmlType;
use crate::infer::kernels::{reference, Matrix, SimdLevel};
use crate::metrics;
use crate::quant::{can_dequantize, dequantize};

macro_rules! oracle_files {
    ($($name:literal),* $(,)?) => {
        [$(($name, include_bytes!(concat!("../../tests/data/oracle/", $name, ".oracle")) as &[u8])),*]
    };
}

/// The committed oracle files, `(stem, bytes)`.
pub const ORACLE_FILES: [(&str, &[u8]); 30] = oracle_files!(
    "f32", "f16", "bf16", "q4_0", "q4_1", "q5_0", "q5_1", "q8_0", "q8_1", "q2_k", "q3_k", "q4_k",
    "q5_k", "q6_k", "q8_k", "iq2_xxs", "iq2_xs", "iq3_xxs", "iq1_s", "iq4_nl", "iq3_s", "iq2_s",
    "iq4_xs", "iq1_m", "tq1_0", "tq2_0", "mxfp4", "nvfp4", "q1_0", "q2_0",
);

/// One `dequantize` section: ggml's blocks and ggml's f32 output for them.
#[derive(Clone, Debug)]
pub struct Section<'a> {
    /// Section name (`normal`, `special`, …).
    pub name: &'a str,
    /// Number of blocks.
    pub n_blocks: usize,
    /// `n_blocks × type_size` block bytes.
    pub blocks: &'a [u8],
    /// `n_blocks × block_size` little-endian f32 written by ggml.
    pub expected: &'a [u8],
}

/// The dequantize vectors of one dtype.
#[derive(Clone, Debug)]
pub struct Vectors<'a> {
    /// The dtype.
    pub dtype: GgmlType,
    /// The `producer` line's first two words (e.g. `ggml 0.25.3`).
    pub producer: String,
    /// Its dequantize sections.
    pub sections: Vec<Section<'a>>,
}

/// Parses an oracle file (format: `tests/oracle.rs`, `scripts/gen-oracle-vectors.sh`). A
/// header whose id or sizes disagree with the crate's dtype table is an error naming both.
pub fn parse<'a>(file: &str, bytes: &'a [u8]) -> Result<Vectors<'a>, String> {
    const MARKER: &[u8] = b"\ndata\n";
    let end = bytes
        .windows(MARKER.len())
        .position(|w| w == MARKER)
        .ok_or_else(|| format!("{file}: no \"data\" line ends the header"))?;
    let header = std::str::from_utf8(bytes.get(..end).unwrap_or_default())
        .map_err(|e| format!("{file}: header: {e}"))?;
    let data = bytes.get(end + MARKER.len()..).unwrap_or_default();
    let mut lines = header.lines();
    if lines.next() != Some("ggml-oracle-vectors 1") {
        return Err(format!("{file}: not a ggml-oracle-vectors 1 file"));
    }
    let num = |line: &str, v: Option<&str>| -> Result<usize, String> {
        v.and_then(|v| v.parse().ok())
            .ok_or_else(|| format!("{file}: bad number in {line:?}"))
    };
    let (mut dtype, mut id, mut bs, mut ts, mut producer) = (None, None, None, None, None);
    let mut declared = Vec::new();
    for line in lines {
        let (key, rest) = line.split_once(' ').unwrap_or((line, ""));
        match key {
            "type" => {
                let t = rest.parse::<GgmlType>();
                dtype = Some(t.map_err(|e| format!("{file}: {line:?}: {e}"))?);
            }
            "ggml_id" => id = Some(num(line, Some(rest))?),
            "block_size" => bs = Some(num(line, Some(rest))?),
            "type_size" => ts = Some(num(line, Some(rest))?),
            "producer" if producer.is_none() => {
                producer = Some(rest.split(' ').take(2).collect::<Vec<_>>().join(" "));
            }
            "section" => {
                let mut f = rest.split(' ');
                let kind = f.next();
                let name = f.next().ok_or_else(|| format!("{file}: {line:?}"))?;
                let n = num(line, f.next())?;
                declared.push((kind == Some("dequantize"), name, n));
            }
            _ => {} // crosscheck, note, input, layout: documentation only
        }
    }
    let t = dtype.ok_or_else(|| format!("{file}: no type line"))?;
    if (id, bs, ts)
        != (
            Some(t.id() as usize),
            Some(t.block_size()),
            Some(t.type_size()),
        )
    {
        return Err(format!(
            "{file}: ggml says {t} is id {id:?}, block {bs:?}, {ts:?} bytes; the crate's table \
             says id {}, block {}, {} bytes",
            t.id(),
            t.block_size(),
            t.type_size()
        ));
    }
    let mut sections = Vec::new();
    let mut at = 0usize;
    for (deq, name, n) in declared {
        let (nb, nf) = (n * t.type_size(), n * t.block_size() * 4);
        let (first, second) = if deq { (nb, nf) } else { (nf, nb) };
        let (mid, next) = (at + first, at + first + second);
        if deq {
            sections.push(Section {
                name,
                n_blocks: n,
                blocks: data.get(at..mid).unwrap_or_default(),
                expected: data.get(mid..next).unwrap_or_default(),
            });
        }
        at = next;
    }
    if at != data.len() {
        return Err(format!(
            "{file}: sections need {at} payload bytes, the file has {}",
            data.len()
        ));
    }
    Ok(Vectors {
        dtype: t,
        producer: producer.unwrap_or_default(),
        sections,
    })
}

/// One differing value.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Mismatch {
    /// Dtype.
    pub dtype: GgmlType,
    /// Path (see [`paths`]).
    pub path: String,
    /// Section name.
    pub section: String,
    /// Block index in the section (fused dot products: the first block of the row).
    pub block: usize,
    /// Element in the block (`None` for a fused dot product over a row).
    pub element: Option<usize>,
    /// ggml's bits (a fused dot product: the contract's dot over ggml's values).
    pub ggml: u32,
    /// Our bits.
    pub ours: u32,
}

impl Mismatch {
    /// One line of evidence.
    pub fn describe(&self) -> String {
        let at = match self.element {
            Some(e) => format!("block {} element {e}", self.block),
            None => format!("dot product of the row starting at block {}", self.block),
        };
        format!(
            "{} via {}: section {}, {at}: ggml {:#010x} ({:e}), ours {:#010x} ({:e})",
            self.dtype,
            self.path,
            self.section,
            self.ggml,
            f32::from_bits(self.ggml),
            self.ours,
            f32::from_bits(self.ours)
        )
    }
}

/// What comparing one dtype along one path found.
#[derive(Clone, Debug, Default)]
pub struct PathResult {
    /// Values (or fused dot products) compared.
    pub compared: usize,
    /// How many differed.
    pub differing: usize,
    /// The first difference.
    pub first: Option<Mismatch>,
    /// A path that could not run (e.g. a decoder error), with the reason.
    pub error: Option<String>,
    /// Values where both sides are NaN with different payloads, under [`NanRule::Finding`].
    pub nan_payloads: usize,
    /// The first such value.
    pub first_nan_payload: Option<Mismatch>,
}

impl PathResult {
    /// Records one compared value: ggml's `want`, our `got`.
    fn record(&mut self, nan: NanRule, want: f32, got: f32, at: impl FnOnce() -> Mismatch) {
        self.compared += 1;
        if want.to_bits() == got.to_bits() {
            return;
        }
        let both_nan = want.is_nan() && got.is_nan();
        if both_nan && nan == NanRule::Equal {
            return;
        }
        if both_nan && nan == NanRule::Finding {
            self.nan_payloads += 1;
            self.first_nan_payload.get_or_insert_with(at);
        } else {
            self.differing += 1;
            self.first.get_or_insert_with(at);
        }
    }
}

/// How two NaNs with different payloads compare.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum NanRule {
    /// They differ (bit for bit).
    Strict,
    /// They are a finding, counted apart from the differences.
    Finding,
    /// They are equal.
    Equal,
}

/// A way of decoding: the codec or a kernel level.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum DecodePath {
    /// `quant::dequantize`.
    Codec,
    /// The inference kernels' row decoder at a SIMD level.
    Decode(SimdLevel),
    /// The inference kernels' fused decode + dot product at a SIMD level.
    Matvec(SimdLevel),
}

impl DecodePath {
    /// Its name in the evidence.
    pub fn name(self) -> String {
        match self {
            Self::Codec => "quant::dequantize".into(),
            Self::Decode(l) => format!("kernel decode ({l})"),
            Self::Matvec(l) => format!("kernel matvec ({l})"),
        }
    }
}

/// Every path that decodes `t` on this CPU.
pub fn paths(t: GgmlType) -> Vec<DecodePath> {
    let mut p = vec![DecodePath::Codec];
    if crate::infer::kernels::matrix::supported(t) {
        for l in SimdLevel::all_available() {
            p.push(DecodePath::Decode(l));
            p.push(DecodePath::Matvec(l));
        }
    }
    p
}

/// Rows a section is laid out in for the kernels: one block per row, or 64 values per row for
/// the plain types (block size 1).
fn row_shape(t: GgmlType, n_blocks: usize) -> (usize, usize) {
    match t.block_size() {
        1 if n_blocks.is_multiple_of(64) => (64, n_blocks / 64),
        bs => (bs, n_blocks),
    }
}

/// The activation the fused path multiplies by: finite, non-zero, deterministic.
fn activation(n: usize) -> Vec<f32> {
    (0..n)
        .map(|j| {
            let v = ((j * 37) % 13 + 1) as f32 * 0.125;
            if j % 3 == 1 {
                -v
            } else {
                v
            }
        })
        .collect()
}

fn le_f32s(b: &[u8]) -> Vec<f32> {
    b.chunks_exact(4)
        .map(|c| f32::from_le_bytes([c[0], c[1], c[2], c[3]]))
        .collect()
}

/// A decoder under test: `decode(t, blocks, out)` fills `out` from whole blocks of `t`.
pub type DecodeFn<'f> = &'f dyn Fn(GgmlType, &[u8], &mut [f32]) -> Result<(), String>;

/// Compares ggml's values of every section of `v` with `decode`'s under `nan`. Tests drive it
/// with mutated decoders.
pub fn check_with(v: &Vectors<'_>, path: &str, nan: NanRule, decode: DecodeFn<'_>) -> PathResult {
    let mut r = PathResult::default();
    let bs = v.dtype.block_size();
    for s in &v.sections {
        let want = le_f32s(s.expected);
        let mut got = vec![0f32; want.len()];
        if let Err(e) = decode(v.dtype, s.blocks, &mut got) {
            r.error.get_or_insert(format!("section {}: {e}", s.name));
            continue;
        }
        for (i, (&w, &g)) in want.iter().zip(&got).enumerate() {
            r.record(nan, w, g, || Mismatch {
                dtype: v.dtype,
                path: path.to_string(),
                section: s.name.to_string(),
                block: i / bs,
                element: Some(i % bs),
                ggml: w.to_bits(),
                ours: g.to_bits(),
            });
        }
    }
    r
}

/// The fused dot products of every row (see `row_shape`) against the contract's dot over
/// ggml's values.
fn check_matvec(v: &Vectors<'_>, level: SimdLevel) -> PathResult {
    let mut r = PathResult::default();
    let path = DecodePath::Matvec(level).name();
    for s in &v.sections {
        let (n_in, n_out) = row_shape(v.dtype, s.n_blocks);
        let m = match Matrix::new(s.name, v.dtype, n_in, n_out, s.blocks) {
            Ok(m) => m,
            Err(e) => {
                r.error.get_or_insert(format!("section {}: {e}", s.name));
                continue;
            }
        };
        let want = le_f32s(s.expected);
        let x = activation(n_in);
        let mut got = vec![0f32; n_out];
        m.matvec_rows(level, &x, 0, &mut got);
        for (row, (w, &g)) in want.chunks_exact(n_in).zip(&got).enumerate() {
            let w = reference::dot_f32(w, &x);
            r.record(NanRule::Equal, w, g, || Mismatch {
                dtype: v.dtype,
                path: path.clone(),
                section: s.name.to_string(),
                block: row * n_in / v.dtype.block_size(),
                element: None,
                ggml: w.to_bits(),
                ours: g.to_bits(),
            });
        }
    }
    r
}

/// Runs `path` over `v`.
pub fn check(v: &Vectors<'_>, path: DecodePath) -> PathResult {
    let name = path.name();
    match path {
        DecodePath::Codec => check_with(v, &name, NanRule::Strict, &|t, b, out| {
            dequantize(t, b, out).map_err(|e| e.to_string())
        }),
        DecodePath::Decode(level) => check_with(v, &name, NanRule::Finding, &|t, b, out| {
            let (n_in, n_out) = row_shape(t, b.len() / t.type_size());
            let m = Matrix::new("oracle", t, n_in, n_out, b).map_err(|e| e.to_string())?;
            for (r, row) in out.chunks_exact_mut(n_in).enumerate() {
                m.decode_row(level, r, row).map_err(|e| e.to_string())?;
            }
            Ok(())
        }),
        DecodePath::Matvec(level) => check_matvec(v, level),
    }
}

/// F-QUANT-001.
pub fn oracle(_ctx: &GateCtx<'_>) -> Result<Judgement, String> {
    let mut problems: Vec<String> = Vec::new();
    let mut first: Option<Mismatch> = None;
    let (mut compared, mut differing) = (0usize, 0usize);
    let mut by_path: Vec<Value> = Vec::new();
    let mut nan_payloads: Vec<String> = Vec::new();
    let mut covered = Vec::new();
    let mut producers = std::collections::BTreeSet::new();
    for (file, bytes) in ORACLE_FILES {
        let v = match parse(file, bytes) {
            Ok(v) => v,
            Err(e) => {
                problems.push(e);
                continue;
            }
        };
        covered.push(v.dtype);
        producers.insert(v.producer.clone());
        for p in paths(v.dtype) {
            let r = check(&v, p);
            compared += r.compared;
            differing += r.differing;
            if let Some(e) = &r.error {
                problems.push(format!("{} via {}: {e}", v.dtype, p.name()));
            }
            if r.differing > 0 || r.error.is_some() {
                by_path.push(json!({
                    "dtype": v.dtype.name(), "path": p.name(), "compared": r.compared,
                    "differing": r.differing, "first": r.first.as_ref().map(Mismatch::describe),
                    "error": r.error,
                }));
            }
            if let Some(n) = &r.first_nan_payload {
                nan_payloads.push(format!(
                    "{} NaN payload(s), first {}",
                    r.nan_payloads,
                    n.describe()
                ));
            }
            if first.is_none() {
                first = r.first;
            }
        }
    }
    let uncovered: Vec<&str> = GgmlType::ALL
        .iter()
        .filter(|t| can_dequantize(**t) && !covered.contains(t))
        .map(|t| t.name())
        .collect();
    let paths_run: Vec<String> = paths(GgmlType::Q4_K).iter().map(|p| p.name()).collect();
    let mut m = metrics! {
        "dtypes" => covered.iter().map(|t| t.name()).collect::<Vec<_>>(),
        "paths" => paths_run, "values_compared" => compared, "values_differing" => differing,
        "oracle" => producers, "dtypes_without_vectors" => uncovered, "problems" => problems,
        "differing_by_path" => by_path, "nan_payload_findings" => nan_payloads,
    };
    if let Some(f) = &first {
        m.insert(
            "first_mismatch".into(),
            json!({
                "dtype": f.dtype.name(), "path": f.path, "section": f.section, "block": f.block,
                "element": f.element, "ggml_bits": format!("{:#010x}", f.ggml),
                "ours_bits": format!("{:#010x}", f.ours),
            }),
        );
    }
    let falsified = first.is_some() || !problems.is_empty();
    let reason = match (&first, problems.first()) {
        (Some(f), _) => format!(
            "{differing} of {compared} values differ from ggml; first: {}",
            f.describe()
        ),
        (None, Some(p)) => format!("{} problem(s), first: {p}", problems.len()),
        (None, None) if nan_payloads.is_empty() => format!(
            "{} dtypes, {compared} values over every decode path equal ggml bit for bit",
            covered.len()
        ),
        (None, None) => format!(
            "{} dtypes, {compared} values over every decode path equal ggml bit for bit but \
             for NaN payloads on {} kernel path(s) (findings, see nan_payload_findings)",
            covered.len(),
            nan_payloads.len()
        ),
    };
    Ok(Judgement::verdict(falsified, reason, m))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::quant::{kquants, legacy};

    fn vectors(t: GgmlType) -> Vectors<'static> {
        let (file, bytes) = ORACLE_FILES
            .into_iter()
            .find(|(f, _)| f.eq_ignore_ascii_case(t.name()))
            .expect("an oracle file");
        parse(file, bytes).expect("parses")
    }

    #[test]
    fn every_dequantizable_dtype_has_ggml_vectors() {
        let mut covered = Vec::new();
        for (file, bytes) in ORACLE_FILES {
            let v = parse(file, bytes).expect("parses");
            assert!(v.producer.starts_with("ggml "), "{file}: {}", v.producer);
            assert!(!v.sections.is_empty(), "{file}: no dequantize section");
            assert_eq!(v.dtype.name().to_ascii_lowercase(), file);
            covered.push(v.dtype);
        }
        for t in GgmlType::ALL {
            assert_eq!(covered.contains(&t), can_dequantize(t), "{t}");
        }
    }

    #[test]
    fn every_path_equals_ggml_on_the_clean_engine() {
        for (file, bytes) in ORACLE_FILES {
            let v = parse(file, bytes).expect("parses");
            for p in paths(v.dtype) {
                let r = check(&v, p);
                assert!(r.compared > 0, "{file} {}", p.name());
                assert_eq!(r.error, None, "{file} {}", p.name());
                assert_eq!(
                    r.differing,
                    0,
                    "{file} {}: {:?}",
                    p.name(),
                    r.first.map(|m| m.describe())
                );
            }
        }
    }

    /// The mutants, passed as parameters (the process-wide fault switch stays off).
    #[test]
    fn the_dequantizer_mutants_differ_from_ggml_and_are_named() {
        let v = vectors(GgmlType::Q4_K);
        let r = check_with(&v, "mutant", NanRule::Strict, &|_, b, out| {
            kquants::dequantize_q4_k_with(b, out, true);
            Ok(())
        });
        let f = r.first.expect("FP16-SCALE-TRUNC differs from ggml");
        assert_eq!(f.dtype, GgmlType::Q4_K);
        assert!(f
            .describe()
            .starts_with("Q4_K via mutant: section normal, block 0 element"));
        assert!(
            r.differing * 2 > r.compared,
            "{} of {}",
            r.differing,
            r.compared
        );
        let clean = check_with(&v, "clean", NanRule::Strict, &|_, b, out| {
            kquants::dequantize_q4_k_with(b, out, false);
            Ok(())
        });
        assert_eq!((clean.differing, clean.compared), (0, r.compared));

        type Q5 = fn(&[u8], &mut [f32], bool);
        let q5: [(GgmlType, Q5); 2] = [
            (GgmlType::Q5_0, legacy::dequantize_q5_0_with),
            (GgmlType::Q5_1, legacy::dequantize_q5_1_with),
        ];
        for (t, f) in q5 {
            let v = vectors(t);
            for swap in [false, true] {
                let r = check_with(&v, "mutant", NanRule::Strict, &|_, b, out| {
                    f(b, out, swap);
                    Ok(())
                });
                assert_eq!(r.differing > 0, swap, "{t} swap={swap}");
                if let Some(m) = r.first {
                    assert_eq!((m.dtype, m.element.is_some()), (t, true));
                    assert_ne!(m.ggml, m.ours);
                }
            }
        }
    }

    #[test]
    fn a_bad_header_is_refused_with_both_tables() {
        let (_, bytes) = ORACLE_FILES[11];
        let text = String::from_utf8_lossy(bytes).replacen("type_size 144", "type_size 145", 1);
        let e = parse("q4_k", text.as_bytes()).expect_err("refused");
        assert!(e.contains("145") && e.contains("144 bytes"), "{e}");
    }
}
