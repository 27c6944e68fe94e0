//! A tensor's values, dequantized in row-aligned chunks, so memory stays bounded by the chunk
//! (never the tensor: the Qwen token embedding alone is 545 MB as f32). Two tensors of the same
//! shape chunk identically, so they can be compared chunk by chunk.

use crate::model::{Model, Tensor};
use crate::quant::{can_dequantize, dequantize, QuantError};

/// Target values per chunk (rounded down to whole rows, at least one row).
pub const CHUNK_VALUES: usize = 1 << 20;

/// How a tensor is cut into chunks.
#[derive(Clone, Copy, Debug)]
pub struct Chunking {
    row_len: usize,
    row_bytes: usize,
    rows_per_chunk: usize,
    n_rows: usize,
}

impl Chunking {
    /// The chunking of `t`, or `None` when its type has no dequantizer.
    pub fn of(t: &Tensor) -> Option<Self> {
        if !can_dequantize(t.dtype) {
            return None;
        }
        let row_len = usize::try_from(t.row_len()).ok()?;
        let row_bytes = usize::try_from(t.dtype.row_bytes(row_len as u64)?).ok()?;
        let n_rows = usize::try_from(t.n_elements())
            .ok()?
            .checked_div(row_len)
            .unwrap_or(0);
        Some(Self {
            row_len,
            row_bytes,
            rows_per_chunk: (CHUNK_VALUES / row_len.max(1)).max(1),
            n_rows,
        })
    }
    /// Number of chunks.
    pub fn n_chunks(&self) -> usize {
        self.n_rows.div_ceil(self.rows_per_chunk)
    }
    /// Values in the largest chunk (the buffer size to allocate).
    pub fn max_values(&self) -> usize {
        self.rows_per_chunk.min(self.n_rows) * self.row_len
    }
    /// Index of the first value of chunk `i`.
    pub fn first_index(&self, i: usize) -> u64 {
        (i * self.rows_per_chunk * self.row_len) as u64
    }
    /// Dequantizes chunk `i` of `bytes` into the front of `buf`; returns the values written.
    pub fn chunk<'b>(
        &self,
        t: &Tensor,
        bytes: &[u8],
        i: usize,
        buf: &'b mut [f32],
    ) -> Result<&'b [f32], QuantError> {
        let row0 = i * self.rows_per_chunk;
        let rows = self.rows_per_chunk.min(self.n_rows.saturating_sub(row0));
        let src = bytes
            .get(row0 * self.row_bytes..(row0 + rows) * self.row_bytes)
            .unwrap_or(&[]);
        let n = src.len() / self.row_bytes.max(1) * self.row_len;
        let out = &mut buf[..n];
        dequantize(t.dtype, src, out)?;
        Ok(out)
    }
}

/// Calls `f(first_index, values)` for consecutive chunks of `t`'s values, in order.
/// Returns `Ok(false)` (and calls nothing) when the type has no dequantizer.
pub fn for_each_chunk(
    model: &Model,
    t: &Tensor,
    mut f: impl FnMut(u64, &[f32]),
) -> Result<bool, QuantError> {
    let Some(c) = Chunking::of(t) else {
        return Ok(false);
    };
    let bytes = model.tensor_data(t);
    let mut buf = vec![0f32; c.max_values()];
    for i in 0..c.n_chunks() {
        let xs = c.chunk(t, bytes, i, &mut buf)?;
        f(c.first_index(i), xs);
    }
    Ok(true)
}
