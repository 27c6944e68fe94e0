//! The forward pass of qwen2 / llama blocks over a batch of tokens, as llama.cpp builds it
//! (`llm_build_qwen2`, `llm_build_llama`): RMSNorm → Q/K/V (+ biases) → RoPE → causal GQA
//! attention (scale 1/√head_dim) → output projection + residual → RMSNorm → SwiGLU FFN +
//! residual; final RMSNorm → output projection.
//!
//! Every token's computation is the same whatever the batch it is in: matrix products are
//! per-(token, row) dot products of the kernel contract, attention reads keys 0..=pos from the
//! cache in order. So prefill, step-by-step decoding and `eval_all` agree bit for bit, and
//! batches are split freely ([`UBATCH`]) to bound memory.

use super::config::InferError;
use super::engine::{Layer, Session};
use super::kernels::ops::{rms_norm, rope, rope_cache, softmax, swiglu};
use super::kernels::pool::{n_chunks, split, SharedOut};
use super::kernels::{axpy, dot_rows, Matrix};
use super::mutants::{rms_norm_split, Mutants};

/// Tokens per forward chunk (bounds activation memory: ~10 MB for Qwen2.5-0.5B).
const UBATCH: usize = 128;
/// Tokens per output-projection chunk when every position's logits are wanted.
const LOGITS_CHUNK: usize = 16;

/// Which positions' logits to compute.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Logits {
    /// Only the last token's (prefill, step).
    Last,
    /// Every token's (teacher forcing).
    All,
    /// The tokens' from this index of the call on.
    From(usize),
}

/// Activations of one chunk, kept by the session between calls (every element is written before
/// it is read, so they are never cleared).
#[derive(Debug, Default)]
pub(crate) struct Buffers {
    x: Vec<f32>,
    h: Vec<f32>,
    q: Vec<f32>,
    k: Vec<f32>,
    v: Vec<f32>,
    attn: Vec<f32>,
    gate: Vec<f32>,
    up: Vec<f32>,
    cos: Vec<f32>,
    sin: Vec<f32>,
}

impl Session<'_> {
    pub(crate) fn forward(
        &mut self,
        tokens: &[u32],
        which: Logits,
    ) -> Result<Vec<Vec<f32>>, InferError> {
        if tokens.is_empty() {
            return Err(InferError::Empty {
                what: "the forward pass",
            });
        }
        let n_vocab = self.engine.config().n_vocab;
        if let Some(&bad) = tokens.iter().find(|&&t| t as usize >= n_vocab) {
            return Err(InferError::BadToken {
                token: bad,
                n_vocab,
            });
        }
        let needed = self.n_past + tokens.len();
        if needed > self.kv.n_ctx() {
            return Err(InferError::ContextFull {
                needed,
                past: self.n_past,
                new: tokens.len(),
                n_ctx: self.kv.n_ctx(),
            });
        }
        let mut out = Vec::new();
        let n_chunks = tokens.len().div_ceil(UBATCH);
        for (i, chunk) in tokens.chunks(UBATCH).enumerate() {
            let last = i + 1 == n_chunks;
            let offset = i * UBATCH;
            let want = match which {
                Logits::All => Logits::All,
                Logits::From(k) if k < offset + chunk.len() => {
                    Logits::From(k.saturating_sub(offset))
                }
                Logits::Last if last => Logits::Last,
                Logits::From(_) | Logits::Last => {
                    self.chunk(chunk, None)?;
                    continue;
                }
            };
            self.chunk(chunk, Some((want, &mut out)))?;
        }
        Ok(out)
    }

    /// Runs one chunk at positions `n_past..`, appending the wanted logits to `out`.
    fn chunk(
        &mut self,
        tokens: &[u32],
        logits: Option<(Logits, &mut Vec<Vec<f32>>)>,
    ) -> Result<(), InferError> {
        let c = self.engine.config();
        let n = tokens.len();
        let (ne, nq, nkv, nff) = (c.n_embd, c.q_dim(), c.kv_dim(), c.n_ff);
        let half = c.n_rot / 2;
        let mut b = std::mem::take(&mut self.bufs);
        for (v, len) in [
            (&mut b.x, n * ne),
            (&mut b.h, n * ne),
            (&mut b.q, n * nq),
            (&mut b.k, n * nkv),
            (&mut b.v, n * nkv),
            (&mut b.attn, n * nq),
            (&mut b.gate, n * nff),
            (&mut b.up, n * nff),
            (&mut b.cos, n * half),
            (&mut b.sin, n * half),
        ] {
            v.resize(len, 0.0);
        }
        let r = self.chunk_with(tokens, logits, &mut b);
        self.bufs = b;
        r
    }

    fn chunk_with(
        &mut self,
        tokens: &[u32],
        logits: Option<(Logits, &mut Vec<Vec<f32>>)>,
        b: &mut Buffers,
    ) -> Result<(), InferError> {
        let e = self.engine;
        let c = e.config();
        let (level, pool) = (e.simd_level(), e.pool());
        let n = tokens.len();
        let ne = c.n_embd;
        let half = c.n_rot / 2;
        // Fault sites are read once per chunk (DESIGN §3.5); `Mutants::CLEAN` when none is on.
        let mutants = self.mutants.unwrap_or_else(Mutants::read);
        let rope_base = mutants.rope_base(c.rope_base);
        let norm_parts = mutants.split_norm.then(|| pool.n_threads());
        for (t, &tok) in tokens.iter().enumerate() {
            e.token_embd
                .decode_row(level, tok as usize, &mut b.x[t * ne..(t + 1) * ne])?;
            let pos = self.n_past + t;
            rope_cache(
                pos,
                c.n_rot,
                rope_base,
                &mut b.cos[t * half..(t + 1) * half],
                &mut b.sin[t * half..(t + 1) * half],
            );
        }
        for (il, layer) in e.layers.iter().enumerate() {
            self.attention_block(il, layer, n, b, mutants);
            // Feed-forward.
            for t in 0..n {
                norm(
                    &b.x[t * ne..(t + 1) * ne],
                    &layer.ffn_norm,
                    c.rms_eps,
                    norm_parts,
                    &mut b.h[t * ne..(t + 1) * ne],
                );
            }
            matmul2(
                e,
                &layer.w_gate,
                &mut b.gate,
                &layer.w_up,
                &mut b.up,
                &b.h,
                n,
            );
            {
                let g = SharedOut::new(&mut b.gate);
                let up = &b.up;
                let nc = n_chunks(up.len(), pool.n_threads(), 256);
                pool.chunks(nc, &|c| {
                    let r = split(up.len(), nc, c, 256);
                    // SAFETY: the chunks are disjoint ranges.
                    swiglu(unsafe { g.slice(r.clone()) }, &up[r]);
                });
            }
            layer.w_down.matmul(pool, level, &b.gate, n, &mut b.h);
            add_in_place(&mut b.x, &b.h);
        }
        let Some((which, out)) = logits else {
            self.n_past += n;
            return Ok(());
        };
        let first = match which {
            Logits::All => 0,
            Logits::From(k) => k.min(n - 1),
            Logits::Last => n - 1,
        };
        for t in first..n {
            norm(
                &b.x[t * ne..(t + 1) * ne],
                &e.output_norm,
                c.rms_eps,
                norm_parts,
                &mut b.h[t * ne..(t + 1) * ne],
            );
        }
        // TIED-EMBED-DROP, lm_head lost: with tied embeddings the output projection yields
        // zeros; with an own output.weight the engine drops it and projects with the token
        // embedding as if the model were tied.
        let drop_lm_head = mutants.drop_tied_lm_head && e.tied_embeddings();
        let output = if mutants.drop_tied_lm_head && !e.tied_embeddings() {
            &e.token_embd
        } else {
            &e.output
        };
        let nv = c.n_vocab;
        let mut t0 = first;
        while t0 < n {
            let m = LOGITS_CHUNK.min(n - t0);
            let mut l = vec![0f32; m * nv];
            if !drop_lm_head {
                output.matmul(pool, level, &b.h[t0 * ne..(t0 + m) * ne], m, &mut l);
            }
            if m == 1 {
                out.push(l);
            } else {
                out.extend(l.chunks_exact(nv).map(<[f32]>::to_vec));
            }
            t0 += m;
        }
        self.n_past += n;
        Ok(())
    }

    /// `x += Wo · attention(RoPE(Wq·h + bq), RoPE(Wk·h + bk), Wv·h + bv)` for one layer.
    fn attention_block(
        &mut self,
        il: usize,
        layer: &Layer<'_>,
        n: usize,
        b: &mut Buffers,
        mutants: Mutants,
    ) {
        let e = self.engine;
        let c = e.config();
        let (level, pool) = (e.simd_level(), e.pool());
        let (ne, nq, nkv, hd) = (c.n_embd, c.q_dim(), c.kv_dim(), c.head_dim);
        let half = c.n_rot / 2;
        let norm_parts = mutants.split_norm.then(|| pool.n_threads());
        for t in 0..n {
            norm(
                &b.x[t * ne..(t + 1) * ne],
                &layer.attn_norm,
                c.rms_eps,
                norm_parts,
                &mut b.h[t * ne..(t + 1) * ne],
            );
        }
        matmul3(e, layer, b, n);
        for t in 0..n {
            add_bias(&mut b.q[t * nq..(t + 1) * nq], layer.bq.as_deref());
            add_bias(&mut b.k[t * nkv..(t + 1) * nkv], layer.bk.as_deref());
            add_bias(&mut b.v[t * nkv..(t + 1) * nkv], layer.bv.as_deref());
            let (cs, sn) = (
                &b.cos[t * half..(t + 1) * half],
                &b.sin[t * half..(t + 1) * half],
            );
            for head in b.q[t * nq..(t + 1) * nq].chunks_exact_mut(hd) {
                rope(c.rope_style, head, c.n_rot, cs, sn);
            }
            for head in b.k[t * nkv..(t + 1) * nkv].chunks_exact_mut(hd) {
                rope(c.rope_style, head, c.n_rot, cs, sn);
            }
        }
        let p0 = self.n_past;
        // KV-CACHE-OFF-BY-ONE stores a decode step one slot further (a write past the end
        // is dropped); clean, the slot is `p0`.
        let slot = mutants.kv_slot(p0, n);
        if slot + n <= self.kv.n_ctx() {
            self.kv.store(il, slot, &b.k, &b.v);
        }
        let n_keys = p0 + n;
        let keys = self.kv.keys(il, n_keys);
        let values = self.kv.values(il, n_keys);
        let group = c.n_head / c.n_head_kv;
        let scale = 1.0f32 / (hd as f32).sqrt();
        let q = &b.q;
        let out = SharedOut::new(&mut b.attn);
        let n_items = n * c.n_head;
        let nc = n_chunks(n_items, pool.n_threads(), 1);
        pool.chunks_with(
            nc,
            &|| vec![0f32; n_keys],
            &|scores: &mut Vec<f32>, chunk| {
                for item in split(n_items, nc, chunk, 1) {
                    let (t, h) = (item / c.n_head, item % c.n_head);
                    let g = h / group;
                    let qh = &q[t * nq + h * hd..t * nq + (h + 1) * hd];
                    let nk = p0 + t + 1;
                    let s = &mut scores[..nk];
                    dot_rows(level, qh, &keys[g * hd..], nkv, s);
                    for sj in s.iter_mut() {
                        *sj *= scale;
                    }
                    softmax(s);
                    let start = t * nq + h * hd;
                    // SAFETY: item (t, h) belongs to one chunk; its output slice is disjoint.
                    let o = unsafe { out.slice(start..start + hd) };
                    o.fill(0.0);
                    for (j, &p) in s.iter().enumerate() {
                        axpy(
                            level,
                            p,
                            &values[j * nkv + g * hd..j * nkv + (g + 1) * hd],
                            o,
                        );
                    }
                }
            },
        );
        layer.wo.matmul(pool, level, &b.attn, n, &mut b.h);
        add_in_place(&mut b.x, &b.h);
    }
}

/// RMSNorm of one row: the clean kernel, or the NONDETERMINISTIC-REDUCTION mutant's
/// per-thread split when `parts` is set.
fn norm(x: &[f32], w: &[f32], eps: f32, parts: Option<usize>, out: &mut [f32]) {
    match parts {
        None => rms_norm(x, w, eps, out),
        Some(p) => rms_norm_split(x, w, eps, p, out),
    }
}

fn add_bias(x: &mut [f32], bias: Option<&[f32]>) {
    if let Some(bias) = bias {
        add_in_place(x, bias);
    }
}

fn add_in_place(x: &mut [f32], y: &[f32]) {
    for (a, &b) in x.iter_mut().zip(y) {
        *a += b;
    }
}

/// Q, K and V projections of `b.h` in one pool job (each thread takes its rows of each).
fn matmul3(e: &super::engine::Engine<'_>, layer: &Layer<'_>, b: &mut Buffers, n: usize) {
    multi(
        e,
        vec![
            (&layer.wq, &mut b.q),
            (&layer.wk, &mut b.k),
            (&layer.wv, &mut b.v),
        ],
        &b.h,
        n,
    );
}

/// Two projections of the same input in one pool job.
fn matmul2(
    e: &super::engine::Engine<'_>,
    a: &Matrix<'_>,
    out_a: &mut [f32],
    b: &Matrix<'_>,
    out_b: &mut [f32],
    x: &[f32],
    n: usize,
) {
    multi(e, vec![(a, out_a), (b, out_b)], x, n);
}

/// Products of several matrices with the same input `x` (`n` tokens) in one pool job.
fn multi(e: &super::engine::Engine<'_>, jobs: Vec<(&Matrix<'_>, &mut [f32])>, x: &[f32], n: usize) {
    let threads = e.pool().n_threads();
    let outs: Vec<(&Matrix<'_>, SharedOut<'_>, usize)> = jobs
        .into_iter()
        .map(|(m, o)| (m, SharedOut::new(o), n_chunks(m.n_out(), threads, 4)))
        .collect();
    let total = outs.iter().map(|o| o.2).sum();
    let level = e.simd_level();
    e.pool().chunks(total, &|mut c| {
        for (mat, out, nc) in &outs {
            if c < *nc {
                let rows = split(mat.n_out(), *nc, c, 4);
                // SAFETY: the chunks of a matrix are disjoint row ranges.
                unsafe { mat.matmul_rows_into(level, x, n, rows, out) };
                return;
            }
            c -= nc;
        }
    });
}
