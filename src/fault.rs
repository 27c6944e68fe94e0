//! Fault injection: deliberate engine mutants that reproduce the seed bugs, behind one
//! process-wide switch (`apr-qa run --inject FAULT`). Off by default; when off, each site costs
//! one relaxed atomic load. The engine only reads [`active`]; the harness sets the switch.
//!
//! Every fault must be killed (a gate Falsified, naming the tensor/key/step it touched) by the
//! synthetic playbook; `tests/faults.rs` holds that kill matrix.

use std::sync::atomic::{AtomicU8, Ordering};

/// The fault catalogue.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Fault {
    /// GH-191: the APR writer numbers dtypes by its own sequential list, not by GGML id.
    Gh191DtypeRenumber,
    /// GH-191: a GGUF reader maps an unknown dtype id to F32 instead of refusing it.
    SilentF32Fallback,
    /// GH-191: lossless conversion writes quantized tensors as F32 (1.1 GB → 10.5 GB).
    SilentDequant,
    /// #172: conversion dequantizes and requantizes to the same type.
    Requant,
    /// #202 LAYOUT-002: Q/K rows written in reverse order.
    QkTranspose,
    /// GH-190: q_proj and k_proj names swapped in APR/SafeTensors.
    NameSwap,
    /// #172: tokenizer keys dropped from converted metadata.
    DropTokenizer,
    /// #172: config.json missing from an HF export.
    DropConfig,
    /// #177: one value of a converted tensor becomes NaN.
    NanInject,
    /// #177: one value of a converted tensor becomes +Inf.
    InfInject,
    /// #215: the vocabulary loses its last token in conversion.
    VocabTruncate,
    /// #202: a directory passed as a model gets an error that does not name it.
    DirPath,
    /// #181: Q4_K `d`/`dmin` pass through bf16 in the dequantizer (fp16 mantissa truncated).
    Fp16ScaleTrunc,
    /// Q5_0/Q5_1 dequantizer reads the high and low nibbles in swapped order.
    Q5NibbleOrder,
    /// A writer places tensor data off the file's alignment (offset + half the alignment).
    OffsetMisalign,
    /// The engine loses lm_head: zeros when embeddings are tied, else the token embedding used
    /// in place of `output.weight`.
    TiedEmbedDrop,
    /// The engine ignores the model's rope base and uses a default (10000).
    RopeThetaDefault,
    /// A reduction whose order depends on the thread count.
    NondeterministicReduction,
    /// The KV cache writes each step one slot off.
    KvCacheOffByOne,
}

impl Fault {
    /// Every fault, in catalogue order.
    pub const ALL: [Fault; 19] = [
        Self::Gh191DtypeRenumber,
        Self::SilentF32Fallback,
        Self::SilentDequant,
        Self::Requant,
        Self::QkTranspose,
        Self::NameSwap,
        Self::DropTokenizer,
        Self::DropConfig,
        Self::NanInject,
        Self::InfInject,
        Self::VocabTruncate,
        Self::DirPath,
        Self::Fp16ScaleTrunc,
        Self::Q5NibbleOrder,
        Self::OffsetMisalign,
        Self::TiedEmbedDrop,
        Self::RopeThetaDefault,
        Self::NondeterministicReduction,
        Self::KvCacheOffByOne,
    ];

    /// The catalogue name (`--inject NAME`).
    pub const fn name(self) -> &'static str {
        match self {
            Self::Gh191DtypeRenumber => "GH191-DTYPE-RENUMBER",
            Self::SilentF32Fallback => "SILENT-F32-FALLBACK",
            Self::SilentDequant => "SILENT-DEQUANT",
            Self::Requant => "REQUANT",
            Self::QkTranspose => "QK-TRANSPOSE",
            Self::NameSwap => "NAME-SWAP",
            Self::DropTokenizer => "DROP-TOKENIZER",
            Self::DropConfig => "DROP-CONFIG",
            Self::NanInject => "NAN-INJECT",
            Self::InfInject => "INF-INJECT",
            Self::VocabTruncate => "VOCAB-TRUNCATE",
            Self::DirPath => "DIR-PATH",
            Self::Fp16ScaleTrunc => "FP16-SCALE-TRUNC",
            Self::Q5NibbleOrder => "Q5-NIBBLE-ORDER",
            Self::OffsetMisalign => "OFFSET-MISALIGN",
            Self::TiedEmbedDrop => "TIED-EMBED-DROP",
            Self::RopeThetaDefault => "ROPE-THETA-DEFAULT",
            Self::NondeterministicReduction => "NONDETERMINISTIC-REDUCTION",
            Self::KvCacheOffByOne => "KV-CACHE-OFF-BY-ONE",
        }
    }

    /// What the mutant does.
    pub const fn description(self) -> &'static str {
        match self {
            Self::Gh191DtypeRenumber => "APR writer uses its own sequential dtype numbering",
            Self::SilentF32Fallback => "GGUF reader maps an unknown dtype id to F32",
            Self::SilentDequant => "lossless conversion writes quantized tensors as F32",
            Self::Requant => "conversion dequantizes then requantizes to the same type",
            Self::QkTranspose => "attn_q/attn_k rows written in reverse order",
            Self::NameSwap => "q_proj and k_proj names swapped in APR/SafeTensors",
            Self::DropTokenizer => "tokenizer.* keys dropped from converted metadata",
            Self::DropConfig => "config.json missing from the HF export",
            Self::NanInject => "one value of the first F32 tensor becomes NaN in conversion",
            Self::InfInject => "one value of the first F32 tensor becomes +Inf in conversion",
            Self::VocabTruncate => "the last vocabulary token is dropped in conversion",
            Self::DirPath => "a directory model path gets an error without the path",
            Self::Fp16ScaleTrunc => "Q4_K d/dmin rounded through bf16 in the dequantizer",
            Self::Q5NibbleOrder => "Q5_0/Q5_1 high/low nibble order swapped in the dequantizer",
            Self::OffsetMisalign => "a writer places tensor data half an alignment off",
            Self::TiedEmbedDrop => "lm_head lost: zeros if tied, else token_embd for output.weight",
            Self::RopeThetaDefault => "the engine replaces the model's rope base by 10000",
            Self::NondeterministicReduction => "a sum whose order depends on the thread count",
            Self::KvCacheOffByOne => "the KV cache writes each step one slot off",
        }
    }

    /// The fault named `s` (case-insensitive).
    pub fn from_name(s: &str) -> Option<Self> {
        Self::ALL
            .into_iter()
            .find(|f| f.name().eq_ignore_ascii_case(s))
    }

    fn code(self) -> u8 {
        Self::ALL
            .iter()
            .position(|f| *f == self)
            .map_or(0, |i| i as u8 + 1)
    }
}

static ACTIVE: AtomicU8 = AtomicU8::new(0);

/// Turns on `fault` (or none) for this process.
pub fn set(fault: Option<Fault>) {
    ACTIVE.store(fault.map_or(0, Fault::code), Ordering::Relaxed);
}

/// Whether `fault` is on.
#[inline]
pub fn active(fault: Fault) -> bool {
    ACTIVE.load(Ordering::Relaxed) == fault.code()
}

/// The active fault, if any.
pub fn current() -> Option<Fault> {
    let c = ACTIVE.load(Ordering::Relaxed);
    Fault::ALL.into_iter().find(|f| f.code() == c)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_round_trip_and_codes_are_distinct() {
        for f in Fault::ALL {
            assert_eq!(Fault::from_name(f.name()), Some(f));
            assert_ne!(f.code(), 0);
        }
        assert_eq!(Fault::from_name("NOPE"), None);
    }
}
