//! The exact kernel contract on random small models (DESIGN §2.4): a model and its F32 export
//! give bit-identical logits, at every SIMD level this CPU runs and for 1 or 2 threads.
//!
//! A case ([`ModelCase`]) is a synthetic qwen2 or llama model (1–2 layers, hidden 192 or 256,
//! tied or not) either as `apr-qa synth` quantizes it (Q4_K_M mix, Q8_0, F16, the mixed
//! playbook model) or "retyped": every 2-d weight replaced by random blocks of a random type
//! (any dequantizable type, or the hunt's `--types`), with scales set so values stay near
//! ±0.05. The case evaluates a random token sequence (teacher forcing, logits at every
//! position) on the model and on its `--dtype f32` export and compares the f32 bit patterns.

use std::cell::RefCell;
use std::path::Path;

use proptest::prelude::*;
use proptest::strategy::ValueTree;
use proptest::test_runner::{TestCaseError, TestError};

use crate::convert::{convert, DtypeChoice, Target};
use crate::dtype::GgmlType;
use crate::formats::gguf_write::{write_gguf, GgufTensorSpec};
use crate::infer::engine::{Engine, EngineOptions};
use crate::infer::kernels::SimdLevel;
use crate::model::Model;
use crate::quant::float::{f16_to_f32, f32_to_f16};
use crate::quant::{can_dequantize, dequantize};
use crate::synth::{synthesize, SynthArch, SynthOptions, SynthQuant};

use super::gen::{fill_block, scale_fields, BlockMode, Rng, ScaleKind};
use super::{CaseFailure, CaseResult};

/// How the case's weights are stored.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Storage {
    /// As `synth` quantizes them.
    Synth(SynthQuant),
    /// Random blocks of random types.
    Retyped,
}

/// One model case.
#[derive(Clone, Debug)]
pub struct ModelCase {
    /// Architecture.
    pub arch: SynthArch,
    /// Layers.
    pub layers: u32,
    /// Hidden size (192 makes the K-quant mixes fall back; retyped cases use 256).
    pub hidden: u32,
    /// Tied embeddings.
    pub tied: bool,
    /// Storage.
    pub storage: Storage,
    /// Weight seed.
    pub seed: u64,
    /// Types a retyped case draws from, one per 2-d weight in file order (cycled).
    pub types: Vec<GgmlType>,
    /// Tokens evaluated.
    pub tokens: Vec<u32>,
}

/// The model-case strategy; retyped weights come from `types` (empty: every dequantizable
/// type).
pub fn model_case(types: &[GgmlType]) -> impl Strategy<Value = ModelCase> {
    let pool: Vec<GgmlType> = if types.is_empty() {
        GgmlType::ALL
            .into_iter()
            .filter(|&t| can_dequantize(t))
            .collect()
    } else {
        types
            .iter()
            .copied()
            .filter(|&t| can_dequantize(t))
            .collect()
    };
    let storage = prop::sample::select(vec![
        Storage::Retyped,
        Storage::Retyped,
        Storage::Synth(SynthQuant::Q4KM),
        Storage::Synth(SynthQuant::Q8_0),
        Storage::Synth(SynthQuant::F16),
        Storage::Synth(SynthQuant::Mixed),
    ]);
    (
        prop::sample::select(vec![SynthArch::Qwen2, SynthArch::Llama]),
        1..=2u32,
        prop::sample::select(vec![192u32, 256]),
        any::<bool>(),
        storage,
        any::<u64>(),
        prop::collection::vec(prop::sample::select(pool), 1..=8),
        prop::collection::vec(0..256u32, 1..=5),
    )
        .prop_map(
            |(arch, layers, hidden, tied, storage, seed, types, tokens)| ModelCase {
                arch,
                layers,
                hidden: if storage == Storage::Retyped {
                    256
                } else {
                    hidden
                },
                tied,
                storage,
                seed,
                types,
                tokens,
            },
        )
}

fn options(c: &ModelCase) -> SynthOptions {
    SynthOptions {
        arch: c.arch,
        layers: c.layers,
        hidden: c.hidden,
        heads: c.hidden / 64,
        kv_heads: 1,
        ffn: 2 * c.hidden,
        vocab: crate::synth::vocab::min_vocab(c.arch),
        tied_embeddings: c.tied,
        quant: match c.storage {
            Storage::Synth(q) => q,
            Storage::Retyped => SynthQuant::F32,
        },
        seed: c.seed,
        rope_theta: c.arch.default_rope_theta(),
        context_length: 64,
    }
}

/// One block of `t` for a model weight: tame random codes, scales shrunk so the block's
/// largest |value| is about 0.05.
fn weight_block(t: GgmlType, rng: &mut Rng, out: &mut [u8]) {
    fill_block(t, BlockMode::Tame, rng, out);
    let mut v = vec![0f32; t.block_size()];
    if dequantize(t, out, &mut v).is_err() {
        return;
    }
    let amax = v.iter().fold(0f32, |m, x| m.max(x.abs()));
    if amax.is_nan() || amax <= 0.05 {
        return;
    }
    let factor = 0.05 / amax;
    for f in scale_fields(t) {
        let at = f.offset;
        match f.kind {
            ScaleKind::F16 => {
                let old = u16::from_le_bytes([out[at], out[at + 1]]);
                let new = f32_to_f16(f16_to_f32(old) * factor);
                out[at..at + 2].copy_from_slice(&new.to_le_bytes());
            }
            ScaleKind::F32 => {
                let old = f32::from_le_bytes([out[at], out[at + 1], out[at + 2], out[at + 3]]);
                out[at..at + 4].copy_from_slice(&(old * factor).to_le_bytes());
            }
            ScaleKind::E8M0 => {
                let down = (1.0 / factor).log2().ceil() as u8;
                out[at] = out[at].saturating_sub(down).max(2);
            }
            ScaleKind::Ue4m3 => out[at] = (out[at] & 0x1F).min(0x18),
            ScaleKind::Iq1mSplit => {
                // The fp16 is split over the top nibbles of four u16 words.
                let mut words = [0u16; 4];
                for (k, w) in words.iter_mut().enumerate() {
                    *w = u16::from_le_bytes([out[at + 2 * k], out[at + 2 * k + 1]]);
                }
                let h = (0..4).fold(0u16, |h, k| h | ((words[k] >> 12) << (4 * k)));
                let new = f32_to_f16(f16_to_f32(h) * factor);
                for (k, w) in words.iter().enumerate() {
                    let w = (w & 0x0FFF) | (((new >> (4 * k)) & 0xF) << 12);
                    out[at + 2 * k..at + 2 * k + 2].copy_from_slice(&w.to_le_bytes());
                }
            }
        }
    }
}

/// Writes the case's model to `path`.
fn write_model_file(c: &ModelCase, dir: &Path, path: &Path) -> Result<(), String> {
    let opts = options(c);
    if let Storage::Synth(_) = c.storage {
        return synthesize(&opts, path)
            .map(|_| ())
            .map_err(|e| format!("synth: {e}"));
    }
    let base = dir.join("base.gguf");
    synthesize(&opts, &base).map_err(|e| format!("synth: {e}"))?;
    let m = Model::open(&base).map_err(|e| format!("open base: {e}"))?;
    let mut rng = Rng::new(c.seed ^ 0xB10C);
    let mut k = 0usize;
    let mut tensors = Vec::with_capacity(m.tensors.len());
    for t in &m.tensors {
        let rank2 = t.ne.iter().skip(1).any(|&d| d > 1);
        if !rank2 || c.types.is_empty() {
            tensors.push((
                t.name.clone(),
                t.ne.clone(),
                t.dtype,
                m.tensor_data(t).to_vec(),
            ));
            continue;
        }
        let dt = c.types[k % c.types.len()];
        k += 1;
        let n = t.n_elements();
        let len = dt
            .row_bytes(n)
            .ok_or_else(|| format!("{}: not whole {dt} blocks", t.name))?;
        let mut bytes = vec![0u8; len as usize];
        for b in bytes.chunks_exact_mut(dt.type_size()) {
            weight_block(dt, &mut rng, b);
        }
        tensors.push((t.name.clone(), t.ne.clone(), dt, bytes));
    }
    let specs: Vec<GgufTensorSpec> = tensors
        .iter()
        .map(|(name, ne, dtype, _)| GgufTensorSpec {
            name,
            ne,
            dtype: *dtype,
        })
        .collect();
    write_gguf(path, m.gguf_version, &m.metadata, &specs, &mut |i, w| {
        w.write_all(tensors.get(i).map_or(&[][..], |t| t.3.as_slice()))
    })
    .map_err(|e| format!("write retyped model: {e}"))
}

fn logits(
    m: &Model,
    level: SimdLevel,
    threads: usize,
    tokens: &[u32],
) -> Result<Vec<Vec<f32>>, String> {
    let e = Engine::with_options(
        m,
        EngineOptions {
            threads,
            simd: Some(level),
        },
    )
    .map_err(|e| format!("engine ({level}): {e}"))?;
    let mut s = e.session(tokens.len());
    s.eval_all(tokens)
        .map_err(|e| format!("eval ({level}): {e}"))
}

/// Checks one case; returns counters.
pub fn check_case(c: &ModelCase) -> Result<Vec<(String, u64)>, String> {
    let dir = tempfile::tempdir().map_err(|e| format!("temp dir: {e}"))?;
    let q = dir.path().join("model.gguf");
    let f = dir.path().join("model-f32.gguf");
    write_model_file(c, dir.path(), &q)?;
    convert(&q, &f, Target::Gguf, DtypeChoice::To(GgmlType::F32))
        .map_err(|e| format!("F32 export: {e}"))?;
    let mq = Model::open(&q).map_err(|e| format!("open: {e}"))?;
    let mf = Model::open(&f).map_err(|e| format!("open export: {e}"))?;
    let reference = logits(&mf, SimdLevel::Scalar, 1, &c.tokens)?;
    let mut runs = 0u64;
    let mut compare = |what: String, got: Vec<Vec<f32>>| -> Result<(), String> {
        runs += 1;
        for (p, (a, b)) in reference.iter().zip(&got).enumerate() {
            if let Some(i) = a
                .iter()
                .zip(b)
                .position(|(x, y)| x.to_bits() != y.to_bits())
            {
                return Err(format!(
                    "{what}: logit {i} at position {p} is {:#010x} ({:e}), the F32 export at the scalar level gives {:#010x} ({:e})",
                    b[i].to_bits(), b[i], a[i].to_bits(), a[i]
                ));
            }
        }
        if got.len() != reference.len() {
            return Err(format!(
                "{what}: {} positions, expected {}",
                got.len(),
                reference.len()
            ));
        }
        Ok(())
    };
    for level in SimdLevel::all_available() {
        compare(
            format!("quantized model, {level}"),
            logits(&mq, level, 1, &c.tokens)?,
        )?;
        if level != SimdLevel::Scalar {
            compare(
                format!("F32 export, {level}"),
                logits(&mf, level, 1, &c.tokens)?,
            )?;
        }
    }
    let best = SimdLevel::detect();
    compare(
        format!("quantized model, {best}, 2 threads"),
        logits(&mq, best, 2, &c.tokens)?,
    )?;
    let finite = reference.iter().flatten().filter(|x| x.is_finite()).count() as u64;
    Ok(vec![
        ("cases".into(), 1),
        ("forward_passes".into(), runs + 1),
        (
            "logits_compared".into(),
            runs * reference.iter().map(Vec::len).sum::<usize>() as u64,
        ),
        ("finite_logits".into(), finite),
        ("retyped".into(), u64::from(c.storage == Storage::Retyped)),
    ])
}

/// Runs the model case of `seed` (shrinking on failure).
pub fn run_case(seed: u64, types: &[GgmlType]) -> CaseResult {
    let mut runner = super::runner::seeded_runner(seed);
    let tree = model_case(types)
        .new_tree(&mut runner)
        .map_err(|e| CaseFailure {
            detail: e.to_string(),
            shrunk: String::new(),
        })?;
    let root = tree.current();
    let counters = RefCell::new(Vec::new());
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
