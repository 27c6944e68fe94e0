//! The key/value cache of one session: per layer, `n_ctx` rows of `kv_dim` f32 for keys (after
//! RoPE) and for values, row `p` holding position `p`.
//!
//! Keys and values are kept in f32 (llama.cpp defaults to f16), so the cache adds no rounding
//! of its own. The buffers are allocated zeroed (`calloc`), so the OS commits pages only as
//! positions are written: resident memory grows with the tokens used, not with `n_ctx`.

/// Keys and values of every layer for up to `n_ctx` positions.
#[derive(Debug)]
pub struct KvCache {
    n_layer: usize,
    n_ctx: usize,
    kv_dim: usize,
    k: Vec<f32>,
    v: Vec<f32>,
}

impl KvCache {
    /// An empty cache.
    pub fn new(n_layer: usize, n_ctx: usize, kv_dim: usize) -> Self {
        let n = n_layer * n_ctx * kv_dim;
        Self {
            n_layer,
            n_ctx,
            kv_dim,
            k: vec![0f32; n],
            v: vec![0f32; n],
        }
    }

    /// Positions it can hold.
    pub fn n_ctx(&self) -> usize {
        self.n_ctx
    }

    /// Bytes reserved for keys and values when every position is used.
    pub fn n_bytes(&self) -> usize {
        2 * self.n_layer * self.n_ctx * self.kv_dim * std::mem::size_of::<f32>()
    }

    fn range(&self, layer: usize, pos: usize, n: usize) -> std::ops::Range<usize> {
        let start = (layer * self.n_ctx + pos) * self.kv_dim;
        start..start + n * self.kv_dim
    }

    /// Stores the keys and values of `n` consecutive positions starting at `pos` (`k` and `v`
    /// hold `n × kv_dim` floats).
    pub fn store(&mut self, layer: usize, pos: usize, k: &[f32], v: &[f32]) {
        let n = k.len() / self.kv_dim.max(1);
        debug_assert!(layer < self.n_layer && pos + n <= self.n_ctx);
        let r = self.range(layer, pos, n);
        self.k[r.clone()].copy_from_slice(&k[..n * self.kv_dim]);
        self.v[r].copy_from_slice(&v[..n * self.kv_dim]);
    }

    /// Keys of positions `0..n` of `layer` (`n × kv_dim` floats).
    pub fn keys(&self, layer: usize, n: usize) -> &[f32] {
        &self.k[self.range(layer, 0, n)]
    }

    /// Values of positions `0..n` of `layer`.
    pub fn values(&self, layer: usize, n: usize) -> &[f32] {
        &self.v[self.range(layer, 0, n)]
    }
}
