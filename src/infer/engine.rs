//! The CPU inference engine: weights borrowed from a [`Model`] (in their stored dtypes, over
//! its mapped bytes — never expanded to F32), a thread pool, and sessions holding a KV cache.
//!
//! Results are deterministic and bit-identical across thread counts and SIMD levels (see
//! [`super::kernels`]); a model and its lossless conversions or F32 export give identical
//! logits; prefill, step-by-step decoding and [`Session::eval_all`] give identical logits for
//! the same tokens.

use super::config::{Config, InferError};
use super::kernels::pool::Pool;
use super::kernels::{Matrix, SimdLevel};
use super::kv_cache::KvCache;
use crate::model::{Model, Tensor};
use crate::quant::{can_dequantize, dequantize};

/// Weights of one transformer block.
#[derive(Debug)]
pub(crate) struct Layer<'a> {
    pub attn_norm: Vec<f32>,
    pub wq: Matrix<'a>,
    pub wk: Matrix<'a>,
    pub wv: Matrix<'a>,
    pub bq: Option<Vec<f32>>,
    pub bk: Option<Vec<f32>>,
    pub bv: Option<Vec<f32>>,
    pub wo: Matrix<'a>,
    pub ffn_norm: Vec<f32>,
    pub w_gate: Matrix<'a>,
    pub w_up: Matrix<'a>,
    pub w_down: Matrix<'a>,
}

/// How to build an [`Engine`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct EngineOptions {
    /// Threads (the caller's included); 0 = the machine's available parallelism.
    pub threads: usize,
    /// Kernel level; `None` = the best this CPU runs.
    pub simd: Option<SimdLevel>,
}

/// A model ready to run.
#[derive(Debug)]
pub struct Engine<'a> {
    config: Config,
    level: SimdLevel,
    pool: Pool,
    pub(crate) token_embd: Matrix<'a>,
    pub(crate) layers: Vec<Layer<'a>>,
    pub(crate) output_norm: Vec<f32>,
    pub(crate) output: Matrix<'a>,
    tied: bool,
}

impl<'a> Engine<'a> {
    /// An engine over `model` with `threads` threads (0 = all cores) and the best SIMD level.
    pub fn new(model: &'a Model, threads: usize) -> Result<Self, InferError> {
        Self::with_options(
            model,
            EngineOptions {
                threads,
                simd: None,
            },
        )
    }

    /// An engine with explicit options. A SIMD level this CPU lacks is an error.
    pub fn with_options(model: &'a Model, opts: EngineOptions) -> Result<Self, InferError> {
        let config = Config::from_model(model)?;
        let level = match opts.simd {
            None => SimdLevel::detect(),
            Some(l) if l.available() => l,
            Some(level) => return Err(InferError::SimdUnavailable { level }),
        };
        let c = &config;
        let (e, q, kv, ff) = (c.n_embd, c.q_dim(), c.kv_dim(), c.n_ff);
        let token_embd = matrix(model, "token_embd.weight", e, c.n_vocab)?;
        let mut layers = Vec::with_capacity(c.n_layer);
        for i in 0..c.n_layer {
            let n = |s: &str| format!("blk.{i}.{s}");
            layers.push(Layer {
                attn_norm: vector(model, &n("attn_norm.weight"), e)?,
                wq: matrix(model, &n("attn_q.weight"), e, q)?,
                wk: matrix(model, &n("attn_k.weight"), e, kv)?,
                wv: matrix(model, &n("attn_v.weight"), e, kv)?,
                bq: opt_vector(model, &n("attn_q.bias"), q)?,
                bk: opt_vector(model, &n("attn_k.bias"), kv)?,
                bv: opt_vector(model, &n("attn_v.bias"), kv)?,
                wo: matrix(model, &n("attn_output.weight"), q, e)?,
                ffn_norm: vector(model, &n("ffn_norm.weight"), e)?,
                w_gate: matrix(model, &n("ffn_gate.weight"), e, ff)?,
                w_up: matrix(model, &n("ffn_up.weight"), e, ff)?,
                w_down: matrix(model, &n("ffn_down.weight"), ff, e)?,
            });
        }
        let output_norm = vector(model, "output_norm.weight", e)?;
        let (output, tied) = match model.tensor("output.weight") {
            Some(_) => (matrix(model, "output.weight", e, c.n_vocab)?, false),
            None => (token_embd.clone(), true),
        };
        refuse_unsupported_rope(model, c)?;
        let threads = if opts.threads == 0 {
            std::thread::available_parallelism().map_or(1, usize::from)
        } else {
            opts.threads
        };
        Ok(Self {
            config,
            level,
            pool: Pool::new(threads),
            token_embd,
            layers,
            output_norm,
            output,
            tied,
        })
    }

    /// The model's hyper-parameters.
    pub fn config(&self) -> &Config {
        &self.config
    }
    /// The kernel level in use.
    pub fn simd_level(&self) -> SimdLevel {
        self.level
    }
    /// Threads in use.
    pub fn n_threads(&self) -> usize {
        self.pool.n_threads()
    }
    /// Whether the output projection is the token embedding (no `output.weight`).
    pub fn tied_embeddings(&self) -> bool {
        self.tied
    }
    pub(crate) fn pool(&self) -> &Pool {
        &self.pool
    }

    /// A new session with a KV cache of `n_ctx` positions (at least 1).
    pub fn session(&self, n_ctx: usize) -> Session<'_> {
        let c = &self.config;
        Session {
            engine: self,
            kv: KvCache::new(c.n_layer, n_ctx.max(1), c.kv_dim()),
            n_past: 0,
            bufs: Default::default(),
            mutants: None,
        }
    }
}

/// Refuses RoPE variants this engine does not implement, instead of computing something else.
fn refuse_unsupported_rope(model: &Model, c: &Config) -> Result<(), InferError> {
    let a = c.arch.name();
    let key = format!("{a}.rope.scaling.type");
    if let Some(v) = model.get(&key) {
        let s = v.as_str().unwrap_or("<not a string>");
        if s != "none" {
            return Err(InferError::Metadata {
                key,
                detail: format!("RoPE scaling {s:?} is not supported"),
            });
        }
    }
    if model.tensor("rope_freqs.weight").is_some() {
        return Err(InferError::Tensor {
            tensor: "rope_freqs.weight".into(),
            detail: "RoPE frequency factors are not supported".into(),
        });
    }
    Ok(())
}

fn dims(t: &Tensor) -> Vec<usize> {
    let mut d: Vec<usize> =
        t.ne.iter()
            .map(|&v| usize::try_from(v).unwrap_or(usize::MAX))
            .collect();
    while d.len() > 1 && d.last() == Some(&1) {
        d.pop();
    }
    d
}

fn get<'m>(model: &'m Model, name: &str) -> Result<&'m Tensor, InferError> {
    model.tensor(name).ok_or_else(|| InferError::Tensor {
        tensor: name.to_string(),
        detail: "missing".into(),
    })
}

/// A weight matrix `[n_out, n_in]` (GGUF `ne = [n_in, n_out]`).
fn matrix<'a>(
    model: &'a Model,
    name: &str,
    n_in: usize,
    n_out: usize,
) -> Result<Matrix<'a>, InferError> {
    let t = get(model, name)?;
    let d = dims(t);
    if d != [n_in, n_out] {
        return Err(InferError::Tensor {
            tensor: name.to_string(),
            detail: format!("ne {:?}, expected [{n_in}, {n_out}]", t.ne),
        });
    }
    Ok(Matrix::new(
        name,
        t.dtype,
        n_in,
        n_out,
        model.tensor_data(t),
    )?)
}

/// A 1-d tensor of `n` values, dequantized (norm weights and biases are small).
fn vector(model: &Model, name: &str, n: usize) -> Result<Vec<f32>, InferError> {
    let t = get(model, name)?;
    let err = |detail: String| InferError::Tensor {
        tensor: name.to_string(),
        detail,
    };
    if dims(t) != [n] {
        return Err(err(format!("ne {:?}, expected [{n}]", t.ne)));
    }
    if !can_dequantize(t.dtype) {
        return Err(err(format!(
            "dtype {} is not supported for inference",
            t.dtype
        )));
    }
    let mut out = vec![0f32; n];
    dequantize(t.dtype, model.tensor_data(t), &mut out).map_err(|e| err(e.to_string()))?;
    Ok(out)
}

fn opt_vector(model: &Model, name: &str, n: usize) -> Result<Option<Vec<f32>>, InferError> {
    match model.tensor(name) {
        None => Ok(None),
        Some(_) => vector(model, name, n).map(Some),
    }
}

/// One conversation's state: the KV cache and the number of positions used.
#[derive(Debug)]
pub struct Session<'e> {
    pub(crate) engine: &'e Engine<'e>,
    pub(crate) kv: KvCache,
    pub(crate) n_past: usize,
    pub(crate) bufs: super::forward::Buffers,
    /// Fault-injection mutants for this session; `None` reads the process-wide switch
    /// (tests set them here, never through the switch).
    pub(crate) mutants: Option<super::mutants::Mutants>,
}

impl Session<'_> {
    /// Positions used so far.
    pub fn n_past(&self) -> usize {
        self.n_past
    }
    /// Context size.
    pub fn n_ctx(&self) -> usize {
        self.kv.n_ctx()
    }
    /// Bytes the KV cache holds when full.
    pub fn kv_bytes(&self) -> usize {
        self.kv.n_bytes()
    }
    /// Forgets all positions (the cache is overwritten from position 0).
    pub fn reset(&mut self) {
        self.n_past = 0;
    }

    /// Appends `tokens` and returns the logits after the last one.
    pub fn prefill(&mut self, tokens: &[u32]) -> Result<Vec<f32>, InferError> {
        let mut out = self.forward(tokens, super::forward::Logits::Last)?;
        out.pop().ok_or(InferError::Empty { what: "prefill" })
    }

    /// Appends one token and returns the logits after it.
    pub fn step(&mut self, token: u32) -> Result<Vec<f32>, InferError> {
        self.prefill(&[token])
    }

    /// Appends `tokens` and returns the logits after each of them (teacher forcing).
    pub fn eval_all(&mut self, tokens: &[u32]) -> Result<Vec<Vec<f32>>, InferError> {
        self.forward(tokens, super::forward::Logits::All)
    }

    /// Appends `tokens` and returns the logits after each of `tokens[from..]` (the same values
    /// as [`Self::eval_all`], without computing the output projection of the others; empty
    /// when `from` is past the end).
    pub fn eval_from(&mut self, tokens: &[u32], from: usize) -> Result<Vec<Vec<f32>>, InferError> {
        self.forward(tokens, super::forward::Logits::From(from))
    }
}
