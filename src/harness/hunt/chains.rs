//! Format properties on random models: every write → read preserves tensor bytes and metadata,
//! and conversion chains of 1–4 hops over GGUF / APR / SafeTensors are lossless; rows that are
//! not whole blocks are refused by every writer and reader.
//!
//! A case ([`ChainCase`]) is a GGUF model — an architecture (qwen2 renames tensors in APR and
//! SafeTensors, llama and an unmapped one keep GGUF names), version, alignment, random metadata
//! of every value type (floats from raw bits), 1–6 tensors of random types and shapes with
//! random bytes — plus the hops. After each hop the converted file, read back, must equal the
//! source model: same tensors in the same order (name, type, `ne`, bytes), same metadata (keys,
//! order, types, bit patterns). A hop to GGUF must reproduce the source file byte for byte.
//! The source's F32 export must hold exactly the dequantized values (the F32-export path of the
//! block property, on whole tensors of random bytes).

use std::path::Path;

use proptest::prelude::*;
use proptest::strategy::ValueTree;
use proptest::test_runner::{TestCaseError, TestError};

use crate::convert::{convert, DtypeChoice, Target};
use crate::dtype::GgmlType;
use crate::formats::gguf::{GgufFile, GgufValue};
use crate::formats::gguf_write::{plan as plan_gguf, write_gguf, GgufTensorSpec};
use crate::formats::safetensors::SafetensorsModel;
use crate::model::Model;
use crate::quant::{can_dequantize, dequantize};

use super::gen::Rng;
use super::spec;
use super::strategies::{bad_tensor_shape, metadata_value, tensor_shape};
use super::{CaseFailure, CaseResult};

/// One tensor of a chain case; its bytes come from `data_seed`.
#[derive(Clone, Debug)]
pub struct TensorCase {
    /// GGUF name.
    pub name: String,
    /// Type.
    pub dtype: GgmlType,
    /// GGUF dims.
    pub ne: Vec<u64>,
    /// Seed of the bytes.
    pub data_seed: u64,
}

impl TensorCase {
    /// The tensor's bytes (random, `row_bytes × rows`).
    pub fn bytes(&self) -> Vec<u8> {
        let n: u64 = self.ne.iter().product();
        let len = self.dtype.row_bytes(n).unwrap_or(0) as usize;
        let mut b = vec![0u8; len];
        Rng::new(self.data_seed).fill(&mut b);
        b
    }
}

/// A chain case.
#[derive(Clone, Debug)]
pub struct ChainCase {
    /// `general.architecture`.
    pub arch: String,
    /// GGUF version of the source.
    pub version: u32,
    /// `general.alignment`, if set.
    pub alignment: Option<u32>,
    /// Extra metadata (`hunt.k<i>` keys).
    pub metadata: Vec<GgufValue>,
    /// Tensors.
    pub tensors: Vec<TensorCase>,
    /// The hops.
    pub hops: Vec<Target>,
    /// A partial-block tensor every writer and reader must refuse: (type, ne).
    pub bad: Option<(GgmlType, Vec<u64>)>,
}

/// Tensor names: mapped GGUF names (renamed for qwen2), unmapped ones, odd characters.
const NAMES: [&str; 14] = [
    "token_embd.weight",
    "output_norm.weight",
    "output.weight",
    "blk.0.attn_q.weight",
    "blk.0.attn_k.bias",
    "blk.0.attn_q_norm.weight",
    "blk.1.ffn_down.weight",
    "blk.12.attn_output.weight",
    "rope_freqs.weight",
    "blk.0.attn_qkv.weight",
    "hunt.t0",
    "hunt.with space",
    "hunt.ünï\"cöde\\",
    "a.b.c.d.e.f.g.h",
];

fn tensor_case(types: Vec<GgmlType>) -> impl Strategy<Value = (GgmlType, Vec<u64>, u64)> {
    prop::sample::select(types).prop_flat_map(|t| (Just(t), tensor_shape(t), any::<u64>()))
}

/// The chain-case strategy over `types` (empty: every type).
pub fn chain_case(types: &[GgmlType]) -> impl Strategy<Value = ChainCase> {
    let all: Vec<GgmlType> = if types.is_empty() {
        GgmlType::ALL.to_vec()
    } else {
        types.to_vec()
    };
    let blocky: Vec<GgmlType> = all.iter().copied().filter(|t| t.block_size() > 1).collect();
    let bad = if blocky.is_empty() {
        Just(None).boxed()
    } else {
        prop::option::of(
            prop::sample::select(blocky).prop_flat_map(|t| (Just(t), bad_tensor_shape(t))),
        )
        .boxed()
    };
    let target = prop::sample::select(vec![Target::Gguf, Target::Apr, Target::Safetensors]);
    (
        prop::sample::select(vec!["qwen2", "llama", "hunt-arch"]),
        2..=3u32,
        prop::sample::select(vec![None, Some(8u32), Some(32), Some(64), Some(256)]),
        prop::collection::vec(metadata_value(), 0..8),
        prop::sample::subsequence(NAMES.to_vec(), 1..=6),
        prop::collection::vec(tensor_case(all), 6),
        prop::collection::vec(target, 1..=4),
        bad,
    )
        .prop_map(
            |(arch, version, alignment, metadata, names, ts, hops, bad)| ChainCase {
                arch: arch.to_string(),
                version,
                alignment,
                metadata,
                tensors: names
                    .into_iter()
                    .zip(ts)
                    .map(|(name, (dtype, ne, data_seed))| TensorCase {
                        name: name.to_string(),
                        dtype,
                        ne,
                        data_seed,
                    })
                    .collect(),
                hops,
                bad,
            },
        )
}

/// The source model's metadata.
fn metadata_of(c: &ChainCase) -> Vec<(String, GgufValue)> {
    let mut md = vec![(
        "general.architecture".to_string(),
        GgufValue::String(c.arch.clone().into_bytes()),
    )];
    if let Some(a) = c.alignment {
        md.push(("general.alignment".into(), GgufValue::U32(a)));
    }
    md.extend(
        c.metadata
            .iter()
            .enumerate()
            .map(|(i, v)| (format!("hunt.k{i}"), v.clone())),
    );
    md
}

/// Metadata values equal as stored: same type, floats by bit pattern.
pub fn same_value(a: &GgufValue, b: &GgufValue) -> bool {
    match (a, b) {
        (GgufValue::F32(x), GgufValue::F32(y)) => x.to_bits() == y.to_bits(),
        (GgufValue::F64(x), GgufValue::F64(y)) => x.to_bits() == y.to_bits(),
        (GgufValue::Array(x), GgufValue::Array(y)) => {
            x.elem_type == y.elem_type
                && x.items.len() == y.items.len()
                && x.items.iter().zip(&y.items).all(|(p, q)| same_value(p, q))
        }
        _ => a == b,
    }
}

/// Differences between two models' tensors and metadata (None: equal).
pub fn model_diff(want: &Model, got: &Model) -> Option<String> {
    if want.tensors.len() != got.tensors.len() {
        return Some(format!(
            "{} tensors, expected {}",
            got.tensors.len(),
            want.tensors.len()
        ));
    }
    for (a, b) in want.tensors.iter().zip(&got.tensors) {
        if (&a.name, a.dtype, &a.ne) != (&b.name, b.dtype, &b.ne) {
            return Some(format!(
                "tensor {} {} {:?} read back as {} {} {:?}",
                a.name, a.dtype, a.ne, b.name, b.dtype, b.ne
            ));
        }
        if want.tensor_data(a) != got.tensor_data(b) {
            return Some(format!("tensor {}: bytes differ", a.name));
        }
    }
    if want.metadata.len() != got.metadata.len() {
        let keys = |m: &Model| {
            m.metadata
                .iter()
                .map(|(k, _)| k.clone())
                .collect::<Vec<_>>()
        };
        return Some(format!(
            "metadata keys {:?}, expected {:?}",
            keys(got),
            keys(want)
        ));
    }
    for ((ka, va), (kb, vb)) in want.metadata.iter().zip(&got.metadata) {
        if ka != kb || !same_value(va, vb) {
            return Some(format!(
                "metadata {ka} = {} read back as {kb} = {}",
                va.describe(),
                vb.describe()
            ));
        }
    }
    None
}

fn ext(t: Target) -> &'static str {
    match t {
        Target::Gguf => "gguf",
        Target::Apr => "apr",
        Target::Safetensors => "safetensors",
        Target::Hf => "hf",
    }
}

/// Checks one case in a fresh temp folder; returns counters.
pub fn check_case(c: &ChainCase) -> Result<Vec<(String, u64)>, String> {
    let dir = tempfile::tempdir().map_err(|e| format!("temp dir: {e}"))?;
    let src = dir.path().join("src.gguf");
    let md = metadata_of(c);
    let datas: Vec<Vec<u8>> = c.tensors.iter().map(TensorCase::bytes).collect();
    let specs: Vec<GgufTensorSpec> = c
        .tensors
        .iter()
        .map(|t| GgufTensorSpec {
            name: &t.name,
            ne: &t.ne,
            dtype: t.dtype,
        })
        .collect();
    write_gguf(&src, c.version, &md, &specs, &mut |i, w| {
        w.write_all(datas.get(i).map_or(&[][..], Vec::as_slice))
    })
    .map_err(|e| format!("writing the source: {e}"))?;
    let src_bytes = std::fs::read(&src).map_err(|e| format!("read source: {e}"))?;
    let want = Model::open(&src).map_err(|e| format!("reading the source: {e}"))?;
    // Write → read of the source itself.
    for (t, d) in want.tensors.iter().zip(&datas) {
        if want.tensor_data(t) != &d[..] {
            return Err(format!(
                "source tensor {}: bytes differ after write → read",
                t.name
            ));
        }
    }
    let mut cur = src.clone();
    let mut from = Target::Gguf;
    for (i, &to) in c.hops.iter().enumerate() {
        let out = dir.path().join(format!("hop{i}.{}", ext(to)));
        let hop = format!("hop {} ({}→{})", i + 1, ext(from), ext(to));
        convert(&cur, &out, to, DtypeChoice::Keep).map_err(|e| format!("{hop}: {e}"))?;
        let got = Model::open(&out).map_err(|e| format!("{hop}: reading the output: {e}"))?;
        if let Some(d) = model_diff(&want, &got) {
            return Err(format!("{hop}: {d}"));
        }
        if to == Target::Gguf {
            let b = std::fs::read(&out).map_err(|e| format!("{hop}: read: {e}"))?;
            if b != src_bytes {
                return Err(format!("{hop}: GGUF output differs from the source file"));
            }
        }
        cur = out;
        from = to;
    }
    check_f32_export(&src, &dir.path().join("export-f32.gguf"), &want)?;
    if let Some((t, ne)) = &c.bad {
        check_partial_block(dir.path(), *t, ne)?;
    }
    let bytes: u64 = datas.iter().map(|d| d.len() as u64).sum();
    Ok(vec![
        ("cases".into(), 1),
        ("hops".into(), c.hops.len() as u64),
        ("tensors".into(), c.tensors.len() as u64),
        ("tensor_bytes".into(), bytes),
        (
            "partial_block_refusals".into(),
            u64::from(c.bad.is_some()) * 5,
        ),
    ])
}

/// The F32 export (`convert --dtype f32`) of the source: every dequantizable tensor becomes F32
/// holding exactly the reference dequantizer's bits (NaN payloads included), which also equal
/// the independent restatement where one exists (computed NaNs: any NaN, see [`super::blocks`]);
/// the other tensors keep their type and bytes.
fn check_f32_export(src: &Path, out: &Path, want: &Model) -> Result<(), String> {
    convert(src, out, Target::Gguf, DtypeChoice::To(GgmlType::F32))
        .map_err(|e| format!("F32 export: {e}"))?;
    let got = Model::open(out).map_err(|e| format!("F32 export: reading: {e}"))?;
    if got.tensors.len() != want.tensors.len() {
        return Err("F32 export: tensor count changed".into());
    }
    for (a, b) in want.tensors.iter().zip(&got.tensors) {
        let (src_bytes, out_bytes) = (want.tensor_data(a), got.tensor_data(b));
        if !can_dequantize(a.dtype) {
            if (b.dtype, out_bytes) != (a.dtype, src_bytes) {
                return Err(format!("F32 export: {} ({}) changed", a.name, a.dtype));
            }
            continue;
        }
        let n = a.n_elements() as usize;
        let mut reference = vec![0f32; n];
        dequantize(a.dtype, src_bytes, &mut reference).map_err(|e| format!("{}: {e}", a.name))?;
        let exported: Vec<u32> = out_bytes
            .chunks_exact(4)
            .map(|c| u32::from_le_bytes([c[0], c[1], c[2], c[3]]))
            .collect();
        if b.dtype != GgmlType::F32 || b.ne != a.ne || exported.len() != n {
            return Err(format!("F32 export: {} is {} {:?}", a.name, b.dtype, b.ne));
        }
        if let Some(i) = reference
            .iter()
            .zip(&exported)
            .position(|(r, e)| r.to_bits() != *e)
        {
            return Err(format!(
                "F32 export: {} ({}) value {i} is {:#010x}, the reference dequantizer gives {:#010x}",
                a.name,
                a.dtype,
                exported[i],
                reference[i].to_bits()
            ));
        }
        let (bs, ts) = (a.dtype.block_size(), a.dtype.type_size());
        let mut one = vec![0f32; bs];
        for (k, blk) in src_bytes.chunks_exact(ts).enumerate() {
            if !spec::dequantize_block(a.dtype, blk, &mut one) {
                break;
            }
            for (j, v) in one.iter().enumerate() {
                let e = f32::from_bits(exported[k * bs + j]);
                let same = v.to_bits() == e.to_bits() || (bs > 1 && v.is_nan() && e.is_nan());
                if !same {
                    return Err(format!(
                        "F32 export: {} ({}) block {k} value {j} is {:#010x}, the restatement gives {:#010x}",
                        a.name,
                        a.dtype,
                        e.to_bits(),
                        v.to_bits()
                    ));
                }
            }
        }
    }
    Ok(())
}

/// A partial-block tensor `ne` of `t`: the GGUF, APR and SafeTensors writers must refuse it,
/// and hand-made GGUF, SafeTensors and APR files holding one must be refused naming the tensor.
fn check_partial_block(dir: &Path, t: GgmlType, ne: &[u64]) -> Result<(), String> {
    let name = "hunt.partial";
    let what = format!("{name} {t} ne {ne:?}");
    let spec = GgufTensorSpec { name, ne, dtype: t };
    if plan_gguf(3, &[], &[spec]).is_ok() {
        return Err(format!("the GGUF writer accepted {what}"));
    }
    let shape: Vec<u64> = ne.iter().rev().copied().collect();
    let apr = crate::formats::apr_write::AprTensorSpec {
        name,
        dtype: crate::dtype::AprDtype::Ggml(t),
        dims: &shape,
    };
    if crate::formats::apr_write::plan_apr(&serde_json::Map::new(), &[apr]).is_ok() {
        return Err(format!("the APR writer accepted {what}"));
    }
    let st = crate::formats::safetensors_write::StTensorSpec {
        name,
        dtype: crate::formats::safetensors::StDtype::Ggml(t),
        shape: &shape,
    };
    if crate::formats::safetensors_write::plan_safetensors(&Default::default(), &[st]).is_ok() {
        return Err(format!("the SafeTensors writer accepted {what}"));
    }
    // Hand-made files: whole blocks' worth of bytes for the rounded-up row.
    let ne0 = ne.first().copied().unwrap_or(1);
    let rows: u64 = ne.iter().skip(1).product();
    let row_bytes = ne0.div_ceil(t.block_size() as u64) * t.type_size() as u64;
    let data = vec![0u8; (row_bytes * rows) as usize];
    let gguf = hand_gguf(name, ne, t, &data);
    match GgufFile::from_bytes(gguf) {
        Ok(_) => return Err(format!("the GGUF reader accepted {what}")),
        Err(e) if !e.to_string().contains(name) => {
            return Err(format!(
                "the GGUF reader refused {what} without naming it: {e}"
            ))
        }
        Err(_) => {}
    }
    let st = hand_safetensors(name, &shape, t, row_bytes, &data);
    match SafetensorsModel::from_bytes(&dir.join("partial.safetensors"), st) {
        Ok(_) => return Err(format!("the SafeTensors reader accepted {what}")),
        Err(e) if !e.to_string().contains(name) => {
            return Err(format!(
                "the SafeTensors reader refused {what} without naming it: {e}"
            ))
        }
        Err(_) => {}
    }
    let apr = hand_apr(name, t)?;
    match crate::formats::apr::AprFile::from_bytes(apr) {
        Ok(_) => {
            return Err(format!(
                "the APR reader accepted {name} {t} dims [4, {}]",
                t.block_size() / 2
            ))
        }
        Err(e) if !e.to_string().contains(name) => {
            return Err(format!(
            "the APR reader refused {name} {t} with rows of half a block without naming it: {e}"
        ))
        }
        Err(_) => {}
    }
    Ok(())
}

/// An APR file with one tensor of `t` whose rows are half a block: written as a valid
/// `[2, block]` tensor, then its index entry's dims patched to `[4, block / 2]` (same size,
/// same total) and the footer CRC recomputed.
fn hand_apr(name: &str, t: GgmlType) -> Result<Vec<u8>, String> {
    let dims = [2u64, t.block_size() as u64];
    let spec = crate::formats::apr_write::AprTensorSpec {
        name,
        dtype: crate::dtype::AprDtype::Ggml(t),
        dims: &dims,
    };
    let mut file = Vec::new();
    let data = vec![0u8; 2 * t.type_size()];
    crate::formats::apr_write::write_apr_to(
        &mut file,
        &serde_json::Map::new(),
        &[spec],
        &mut |_, w| w.write_all(&data),
    )
    .map_err(|e| format!("writing the APR template: {e}"))?;
    let u64_at = |b: &[u8], at: usize| {
        b.get(at..at + 8)
            .and_then(|s| s.try_into().ok())
            .map(u64::from_le_bytes)
    };
    let index = u64_at(&file, 24).ok_or("APR template too short")? as usize;
    // Entry: name_len u16, name, dtype u8, ndim u8, dims u64 × ndim.
    let dims_at = index + 2 + name.len() + 2;
    let half = (t.block_size() / 2) as u64;
    for (k, d) in [4u64, half].into_iter().enumerate() {
        let at = dims_at + 8 * k;
        file.get_mut(at..at + 8)
            .ok_or("APR template too short")?
            .copy_from_slice(&d.to_le_bytes());
    }
    let end = file.len().checked_sub(4).ok_or("APR template too short")?;
    let crc = crc32fast::hash(&file[..end]);
    file[end..].copy_from_slice(&crc.to_le_bytes());
    Ok(file)
}

/// A GGUF v3 file with one tensor, written field by field (our writer refuses partial blocks).
fn hand_gguf(name: &str, ne: &[u64], t: GgmlType, data: &[u8]) -> Vec<u8> {
    let mut b = b"GGUF".to_vec();
    b.extend(3u32.to_le_bytes());
    b.extend(1u64.to_le_bytes());
    b.extend(0u64.to_le_bytes());
    b.extend((name.len() as u64).to_le_bytes());
    b.extend(name.as_bytes());
    b.extend((ne.len() as u32).to_le_bytes());
    for d in ne {
        b.extend(d.to_le_bytes());
    }
    b.extend(t.id().to_le_bytes());
    b.extend(0u64.to_le_bytes());
    b.resize(b.len().div_ceil(32) * 32, 0);
    b.extend(data);
    b.resize(b.len().div_ceil(32) * 32, 0);
    b
}

/// A SafeTensors file with one block-quantized tensor under apr-qa's scheme whose logical
/// shape is not whole blocks (the stored byte shape rounds the row up).
fn hand_safetensors(
    name: &str,
    shape: &[u64],
    t: GgmlType,
    row_bytes: u64,
    data: &[u8],
) -> Vec<u8> {
    let dims = |s: &[u64]| s.iter().map(u64::to_string).collect::<Vec<_>>().join(",");
    let mut stored = shape.to_vec();
    if let Some(last) = stored.last_mut() {
        *last = row_bytes;
    }
    let json = format!(
        "{{\"__metadata__\":{{\"{name}.ggml_type\":\"{}\",\"{name}.shape\":\"[{}]\"}},\
         \"{name}\":{{\"dtype\":\"U8\",\"shape\":[{}],\"data_offsets\":[0,{}]}}}}",
        t.name(),
        dims(shape),
        dims(&stored),
        data.len()
    );
    let mut b = (json.len() as u64).to_le_bytes().to_vec();
    b.extend(json.as_bytes());
    b.extend(data);
    b
}

/// Runs the chain case of `seed` (shrinking on failure).
pub fn run_case(seed: u64, types: &[GgmlType]) -> CaseResult {
    let mut runner = super::runner::seeded_runner(seed);
    let strategy = chain_case(types);
    let tree = strategy.new_tree(&mut runner).map_err(|e| CaseFailure {
        detail: e.to_string(),
        shrunk: String::new(),
    })?;
    let root = tree.current();
    let counters = std::cell::RefCell::new(Vec::new());
    let result = runner.run_one(tree, |c| {
        let r = check_case(&c).map_err(TestCaseError::fail)?;
        *counters.borrow_mut() = r;
        Ok(())
    });
    match result {
        Ok(_) => Ok(counters.into_inner()),
        Err(TestError::Fail(why, min)) => Err(CaseFailure {
            detail: check_case(&min).err().unwrap_or_else(|| why.to_string()),
            shrunk: format!("{min:?}"),
        }),
        Err(TestError::Abort(why)) => Err(CaseFailure {
            detail: why.to_string(),
            shrunk: format!("{root:?}"),
        }),
    }
}
