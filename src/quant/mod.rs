//! Block codecs: bytes ⇄ f32 for every GGML type, bit-exact with ggml.
//!
//! Dequantization equals ggml's `dequantize_row_*` bit for bit; quantization equals ggml's
//! `quantize_row_*_ref` built without FMA contraction (`-ffp-contract=off`, the x86-64
//! baseline); see `shared/reference/ggml-gguf-safetensors.md` §3. Every function here works
//! on whole blocks: callers pass `n_blocks × type_size` bytes and `n_blocks × block_size`
//! floats, and [`dequantize`] / [`quantize`] check that before any kernel runs.
//! Ported from ggml `src/ggml-quants.c` @ d99724f2 (algorithms restated, not copied).

pub mod float;
pub mod iq;
mod iq_grids;
pub mod kquants;
pub mod kquants_ref;
mod kquants_search;
pub mod legacy;
pub mod lowbit;
pub mod plain;

use crate::dtype::GgmlType;

/// Errors of the block codecs.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum QuantError {
    /// The byte slice is not whole blocks, or does not match the float slice.
    #[error("{dtype}: {n_bytes} bytes and {n_values} values are not the same whole number of blocks (block {block_size} values / {type_size} bytes)")]
    Length {
        /// Type being coded.
        dtype: GgmlType,
        /// Bytes given.
        n_bytes: usize,
        /// Values given.
        n_values: usize,
        /// Values per block.
        block_size: usize,
        /// Bytes per block.
        type_size: usize,
    },
    /// ggml has no such operation for this type.
    #[error("{dtype}: {op} is not supported for this type")]
    Unsupported {
        /// Type asked for.
        dtype: GgmlType,
        /// "dequantize" or "quantize".
        op: &'static str,
    },
}

/// Where ggml can dequantize `t` (its `to_float` trait, plus Q8_1/Q8_K whose layout is plain
/// d·q) — the set the oracle vectors must cover. Integer and F64 arrays have no dequantizer.
pub const fn can_dequantize(t: GgmlType) -> bool {
    match t {
        GgmlType::I8 | GgmlType::I16 | GgmlType::I32 | GgmlType::I64 | GgmlType::F64 => false,
        GgmlType::F32
        | GgmlType::F16
        | GgmlType::BF16
        | GgmlType::Q4_0
        | GgmlType::Q4_1
        | GgmlType::Q5_0
        | GgmlType::Q5_1
        | GgmlType::Q8_0
        | GgmlType::Q8_1
        | GgmlType::Q2_K
        | GgmlType::Q3_K
        | GgmlType::Q4_K
        | GgmlType::Q5_K
        | GgmlType::Q6_K
        | GgmlType::Q8_K
        | GgmlType::IQ2_XXS
        | GgmlType::IQ2_XS
        | GgmlType::IQ3_XXS
        | GgmlType::IQ1_S
        | GgmlType::IQ4_NL
        | GgmlType::IQ3_S
        | GgmlType::IQ2_S
        | GgmlType::IQ4_XS
        | GgmlType::IQ1_M
        | GgmlType::TQ1_0
        | GgmlType::TQ2_0
        | GgmlType::MXFP4
        | GgmlType::NVFP4
        | GgmlType::Q1_0
        | GgmlType::Q2_0 => true,
    }
}

/// Types with a reference quantizer here (issue #3 list).
pub const fn can_quantize(t: GgmlType) -> bool {
    match t {
        GgmlType::F32
        | GgmlType::F16
        | GgmlType::BF16
        | GgmlType::Q4_0
        | GgmlType::Q4_1
        | GgmlType::Q5_0
        | GgmlType::Q5_1
        | GgmlType::Q8_0
        | GgmlType::Q8_1
        | GgmlType::Q2_K
        | GgmlType::Q3_K
        | GgmlType::Q4_K
        | GgmlType::Q5_K
        | GgmlType::Q6_K
        | GgmlType::Q8_K => true,
        GgmlType::IQ2_XXS
        | GgmlType::IQ2_XS
        | GgmlType::IQ3_XXS
        | GgmlType::IQ1_S
        | GgmlType::IQ4_NL
        | GgmlType::IQ3_S
        | GgmlType::IQ2_S
        | GgmlType::IQ4_XS
        | GgmlType::I8
        | GgmlType::I16
        | GgmlType::I32
        | GgmlType::I64
        | GgmlType::F64
        | GgmlType::IQ1_M
        | GgmlType::TQ1_0
        | GgmlType::TQ2_0
        | GgmlType::MXFP4
        | GgmlType::NVFP4
        | GgmlType::Q1_0
        | GgmlType::Q2_0 => false,
    }
}

fn check_lengths(t: GgmlType, n_bytes: usize, n_values: usize) -> Result<(), QuantError> {
    let (bs, ts) = (t.block_size(), t.type_size());
    let ok =
        n_bytes.is_multiple_of(ts) && n_values.is_multiple_of(bs) && n_bytes / ts == n_values / bs;
    if ok {
        Ok(())
    } else {
        Err(QuantError::Length {
            dtype: t,
            n_bytes,
            n_values,
            block_size: bs,
            type_size: ts,
        })
    }
}

/// Dequantizes whole blocks of `t` from `src` into `dst` (ggml `dequantize_row_*`).
pub fn dequantize(t: GgmlType, src: &[u8], dst: &mut [f32]) -> Result<(), QuantError> {
    check_lengths(t, src.len(), dst.len())?;
    match t {
        GgmlType::F32 => plain::dequantize_f32(src, dst),
        GgmlType::F16 => plain::dequantize_f16(src, dst),
        GgmlType::BF16 => plain::dequantize_bf16(src, dst),
        GgmlType::Q4_0 => legacy::dequantize_q4_0(src, dst),
        GgmlType::Q4_1 => legacy::dequantize_q4_1(src, dst),
        GgmlType::Q5_0 => legacy::dequantize_q5_0(src, dst),
        GgmlType::Q5_1 => legacy::dequantize_q5_1(src, dst),
        GgmlType::Q8_0 => legacy::dequantize_q8_0(src, dst),
        GgmlType::Q8_1 => legacy::dequantize_q8_1(src, dst),
        GgmlType::Q2_K => kquants::dequantize_q2_k(src, dst),
        GgmlType::Q3_K => kquants::dequantize_q3_k(src, dst),
        GgmlType::Q4_K => kquants::dequantize_q4_k(src, dst),
        GgmlType::Q5_K => kquants::dequantize_q5_k(src, dst),
        GgmlType::Q6_K => kquants::dequantize_q6_k(src, dst),
        GgmlType::Q8_K => kquants::dequantize_q8_k(src, dst),
        GgmlType::IQ2_XXS => iq::dequantize_iq2_xxs(src, dst),
        GgmlType::IQ2_XS => iq::dequantize_iq2_xs(src, dst),
        GgmlType::IQ3_XXS => iq::dequantize_iq3_xxs(src, dst),
        GgmlType::IQ1_S => iq::dequantize_iq1_s(src, dst),
        GgmlType::IQ4_NL => iq::dequantize_iq4_nl(src, dst),
        GgmlType::IQ3_S => iq::dequantize_iq3_s(src, dst),
        GgmlType::IQ2_S => iq::dequantize_iq2_s(src, dst),
        GgmlType::IQ4_XS => iq::dequantize_iq4_xs(src, dst),
        GgmlType::IQ1_M => iq::dequantize_iq1_m(src, dst),
        GgmlType::TQ1_0 => lowbit::dequantize_tq1_0(src, dst),
        GgmlType::TQ2_0 => lowbit::dequantize_tq2_0(src, dst),
        GgmlType::MXFP4 => lowbit::dequantize_mxfp4(src, dst),
        GgmlType::NVFP4 => lowbit::dequantize_nvfp4(src, dst),
        GgmlType::Q1_0 => lowbit::dequantize_q1_0(src, dst),
        GgmlType::Q2_0 => lowbit::dequantize_q2_0(src, dst),
        GgmlType::I8 | GgmlType::I16 | GgmlType::I32 | GgmlType::I64 | GgmlType::F64 => {
            return Err(QuantError::Unsupported {
                dtype: t,
                op: "dequantize",
            })
        }
    }
    Ok(())
}

/// Quantizes `src` into whole blocks of `t` in `dst` (ggml `quantize_row_*_ref`).
pub fn quantize(t: GgmlType, src: &[f32], dst: &mut [u8]) -> Result<(), QuantError> {
    check_lengths(t, dst.len(), src.len())?;
    match t {
        GgmlType::F32 => plain::quantize_f32(src, dst),
        GgmlType::F16 => plain::quantize_f16(src, dst),
        GgmlType::BF16 => plain::quantize_bf16(src, dst),
        GgmlType::Q4_0 => legacy::quantize_q4_0(src, dst),
        GgmlType::Q4_1 => legacy::quantize_q4_1(src, dst),
        GgmlType::Q5_0 => legacy::quantize_q5_0(src, dst),
        GgmlType::Q5_1 => legacy::quantize_q5_1(src, dst),
        GgmlType::Q8_0 => legacy::quantize_q8_0(src, dst),
        GgmlType::Q8_1 => legacy::quantize_q8_1(src, dst),
        GgmlType::Q2_K => kquants_ref::quantize_q2_k(src, dst),
        GgmlType::Q3_K => kquants_ref::quantize_q3_k(src, dst),
        GgmlType::Q4_K => kquants_ref::quantize_q4_k(src, dst),
        GgmlType::Q5_K => kquants_ref::quantize_q5_k(src, dst),
        GgmlType::Q6_K => kquants_ref::quantize_q6_k(src, dst),
        GgmlType::Q8_K => kquants_ref::quantize_q8_k(src, dst),
        GgmlType::IQ2_XXS
        | GgmlType::IQ2_XS
        | GgmlType::IQ3_XXS
        | GgmlType::IQ1_S
        | GgmlType::IQ4_NL
        | GgmlType::IQ3_S
        | GgmlType::IQ2_S
        | GgmlType::IQ4_XS
        | GgmlType::I8
        | GgmlType::I16
        | GgmlType::I32
        | GgmlType::I64
        | GgmlType::F64
        | GgmlType::IQ1_M
        | GgmlType::TQ1_0
        | GgmlType::TQ2_0
        | GgmlType::MXFP4
        | GgmlType::NVFP4
        | GgmlType::Q1_0
        | GgmlType::Q2_0 => {
            return Err(QuantError::Unsupported {
                dtype: t,
                op: "quantize",
            })
        }
    }
    Ok(())
}

/// Reads a little-endian u16 at `off` of a block whose length the caller has checked.
#[inline(always)]
pub(crate) fn le16(b: &[u8], off: usize) -> u16 {
    u16::from_le_bytes([b[off], b[off + 1]])
}

/// Reads a little-endian u32 at `off` of a block whose length the caller has checked.
#[inline(always)]
pub(crate) fn le32(b: &[u8], off: usize) -> u32 {
    u32::from_le_bytes([b[off], b[off + 1], b[off + 2], b[off + 3]])
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_dequantizable_type_round_trips_lengths() {
        for t in GgmlType::ALL {
            let bytes = vec![0u8; t.type_size() * 3];
            let mut out = vec![1.0f32; t.block_size() * 3];
            let r = dequantize(t, &bytes, &mut out);
            assert_eq!(r.is_ok(), can_dequantize(t), "{t}");
            let mut short = vec![0f32; t.block_size() * 2];
            assert!(matches!(
                dequantize(t, &bytes, &mut short),
                Err(QuantError::Length { .. })
            ));
        }
    }
}
