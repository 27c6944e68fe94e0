//! THE dtype table: every tensor type the crate knows, with every number that names it.
//!
//! Invariant (issue #3, GH-191): no other file under `src/` holds a numeric dtype literal.
//! GGML ids come from ggml `include/ggml.h` (see `shared/reference/ggml-gguf-safetensors.md` §2.1);
//! retired ids (4, 5, 31–33, 36–38) are listed in [`RETIRED_GGML_IDS`] and are never reused.
//! The other numberings real APR files use (aprender's bytes 3–9, APR-native 128/129;
//! `APR-FORMAT.md` §7 and §13) live in separate tables that only the APR reader consults.

use std::fmt;
use std::str::FromStr;

/// A GGML tensor type. The discriminant IS the GGML id (`t as u32`); the reverse is
/// [`GgmlType::try_from`], which rejects every id not in [`GgmlType::ALL`].
#[allow(non_camel_case_types, missing_docs)]
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
#[repr(u32)]
pub enum GgmlType {
    F32 = 0,
    F16 = 1,
    Q4_0 = 2,
    Q4_1 = 3,
    // 4 (Q4_2) and 5 (Q4_3): removed from ggml, never reused.
    Q5_0 = 6,
    Q5_1 = 7,
    Q8_0 = 8,
    Q8_1 = 9,
    Q2_K = 10,
    Q3_K = 11,
    Q4_K = 12,
    Q5_K = 13,
    Q6_K = 14,
    Q8_K = 15,
    IQ2_XXS = 16,
    IQ2_XS = 17,
    IQ3_XXS = 18,
    IQ1_S = 19,
    IQ4_NL = 20,
    IQ3_S = 21,
    IQ2_S = 22,
    IQ4_XS = 23,
    I8 = 24,
    I16 = 25,
    I32 = 26,
    I64 = 27,
    F64 = 28,
    IQ1_M = 29,
    BF16 = 30,
    // 31–33 (Q4_0_4_4, Q4_0_4_8, Q4_0_8_8): removed, never reused.
    TQ1_0 = 34,
    TQ2_0 = 35,
    // 36–38 (IQ4_NL_4_4, IQ4_NL_4_8, IQ4_NL_8_8): removed, never reused.
    MXFP4 = 39,
    NVFP4 = 40,
    Q1_0 = 41,
    Q2_0 = 42,
}

/// GGML ids that once named a type and were removed; readers must reject them.
pub const RETIRED_GGML_IDS: [u32; 8] = [4, 5, 31, 32, 33, 36, 37, 38];

/// One row of the type table.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct TypeInfo {
    /// ggml's `type_name`, upper case as gguf-py spells it.
    pub name: &'static str,
    /// Elements per block (1 for plain types).
    pub block_size: usize,
    /// Bytes per block.
    pub type_size: usize,
    /// Whether the type is block-quantized (anything but plain float/int arrays).
    pub quantized: bool,
}

const fn plain(name: &'static str, type_size: usize) -> TypeInfo {
    TypeInfo {
        name,
        block_size: 1,
        type_size,
        quantized: false,
    }
}
const fn block(name: &'static str, block_size: usize, type_size: usize) -> TypeInfo {
    TypeInfo {
        name,
        block_size,
        type_size,
        quantized: true,
    }
}

/// Elements in a K-quant super-block (ggml `QK_K`).
pub const QK_K: usize = 256;

impl GgmlType {
    /// Every type, in id order.
    pub const ALL: [GgmlType; 35] = [
        Self::F32,
        Self::F16,
        Self::Q4_0,
        Self::Q4_1,
        Self::Q5_0,
        Self::Q5_1,
        Self::Q8_0,
        Self::Q8_1,
        Self::Q2_K,
        Self::Q3_K,
        Self::Q4_K,
        Self::Q5_K,
        Self::Q6_K,
        Self::Q8_K,
        Self::IQ2_XXS,
        Self::IQ2_XS,
        Self::IQ3_XXS,
        Self::IQ1_S,
        Self::IQ4_NL,
        Self::IQ3_S,
        Self::IQ2_S,
        Self::IQ4_XS,
        Self::I8,
        Self::I16,
        Self::I32,
        Self::I64,
        Self::F64,
        Self::IQ1_M,
        Self::BF16,
        Self::TQ1_0,
        Self::TQ2_0,
        Self::MXFP4,
        Self::NVFP4,
        Self::Q1_0,
        Self::Q2_0,
    ];

    /// The GGML id (the enum discriminant).
    pub const fn id(self) -> u32 {
        self as u32
    }

    /// The table row for this type (ggml `type_traits`).
    pub const fn info(self) -> TypeInfo {
        match self {
            Self::F32 => plain("F32", 4),
            Self::F16 => plain("F16", 2),
            Self::Q4_0 => block("Q4_0", 32, 18),
            Self::Q4_1 => block("Q4_1", 32, 20),
            Self::Q5_0 => block("Q5_0", 32, 22),
            Self::Q5_1 => block("Q5_1", 32, 24),
            Self::Q8_0 => block("Q8_0", 32, 34),
            Self::Q8_1 => block("Q8_1", 32, 36),
            Self::Q2_K => block("Q2_K", QK_K, 84),
            Self::Q3_K => block("Q3_K", QK_K, 110),
            Self::Q4_K => block("Q4_K", QK_K, 144),
            Self::Q5_K => block("Q5_K", QK_K, 176),
            Self::Q6_K => block("Q6_K", QK_K, 210),
            Self::Q8_K => block("Q8_K", QK_K, 292),
            Self::IQ2_XXS => block("IQ2_XXS", QK_K, 66),
            Self::IQ2_XS => block("IQ2_XS", QK_K, 74),
            Self::IQ3_XXS => block("IQ3_XXS", QK_K, 98),
            Self::IQ1_S => block("IQ1_S", QK_K, 50),
            Self::IQ4_NL => block("IQ4_NL", 32, 18),
            Self::IQ3_S => block("IQ3_S", QK_K, 110),
            Self::IQ2_S => block("IQ2_S", QK_K, 82),
            Self::IQ4_XS => block("IQ4_XS", QK_K, 136),
            Self::I8 => plain("I8", 1),
            Self::I16 => plain("I16", 2),
            Self::I32 => plain("I32", 4),
            Self::I64 => plain("I64", 8),
            Self::F64 => plain("F64", 8),
            Self::IQ1_M => block("IQ1_M", QK_K, 56),
            Self::BF16 => plain("BF16", 2),
            Self::TQ1_0 => block("TQ1_0", QK_K, 54),
            Self::TQ2_0 => block("TQ2_0", QK_K, 66),
            Self::MXFP4 => block("MXFP4", 32, 17),
            Self::NVFP4 => block("NVFP4", 64, 36),
            Self::Q1_0 => block("Q1_0", 128, 18),
            Self::Q2_0 => block("Q2_0", 64, 18),
        }
    }

    /// ggml's type name.
    pub const fn name(self) -> &'static str {
        self.info().name
    }
    /// Elements per block.
    pub const fn block_size(self) -> usize {
        self.info().block_size
    }
    /// Bytes per block.
    pub const fn type_size(self) -> usize {
        self.info().type_size
    }
    /// Whether the type is block-quantized.
    pub const fn is_quantized(self) -> bool {
        self.info().quantized
    }

    /// Bytes of a row of `n_elements`; `None` when the row is not whole blocks or overflows.
    pub fn row_bytes(self, n_elements: u64) -> Option<u64> {
        let bs = self.block_size() as u64;
        if !n_elements.is_multiple_of(bs) {
            return None;
        }
        (n_elements / bs).checked_mul(self.type_size() as u64)
    }

    /// llama.cpp's `general.file_type` value for a file whose dominant type is this one,
    /// where one exists (`llama_ftype`, "ALL_<type>" / "MOSTLY_<type>" entries).
    pub const fn llama_ftype(self) -> Option<u32> {
        match self {
            Self::F32 => Some(0),
            Self::F16 => Some(1),
            Self::Q4_0 => Some(2),
            Self::Q4_1 => Some(3),
            Self::Q8_0 => Some(7),
            Self::Q5_0 => Some(8),
            Self::Q5_1 => Some(9),
            Self::Q2_K => Some(10),
            Self::Q6_K => Some(18),
            Self::BF16 => Some(32),
            Self::TQ1_0 => Some(36),
            Self::TQ2_0 => Some(37),
            Self::Q3_K
            | Self::Q4_K
            | Self::Q5_K
            | Self::Q8_1
            | Self::Q8_K
            | Self::IQ2_XXS
            | Self::IQ2_XS
            | Self::IQ3_XXS
            | Self::IQ1_S
            | Self::IQ4_NL
            | Self::IQ3_S
            | Self::IQ2_S
            | Self::IQ4_XS
            | Self::I8
            | Self::I16
            | Self::I32
            | Self::I64
            | Self::F64
            | Self::IQ1_M
            | Self::MXFP4
            | Self::NVFP4
            | Self::Q1_0
            | Self::Q2_0 => None,
        }
    }
}

/// Errors of the dtype table.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DtypeError {
    /// A numeric id that names no type in the table.
    #[error("unknown GGML dtype id {id}")]
    UnknownId {
        /// The offending id.
        id: u64,
    },
    /// A name that names no type in the table.
    #[error("unknown dtype name {name:?}")]
    UnknownName {
        /// The offending name.
        name: String,
    },
}

impl TryFrom<u32> for GgmlType {
    type Error = DtypeError;
    fn try_from(id: u32) -> Result<Self, DtypeError> {
        Self::ALL
            .iter()
            .copied()
            .find(|t| t.id() == id)
            .ok_or(DtypeError::UnknownId { id: id.into() })
    }
}

impl FromStr for GgmlType {
    type Err = DtypeError;
    /// Case-insensitive ggml type name (`q4_k`, `Q4_K`, `bf16`).
    fn from_str(s: &str) -> Result<Self, DtypeError> {
        Self::ALL
            .iter()
            .copied()
            .find(|t| t.name().eq_ignore_ascii_case(s))
            .ok_or_else(|| DtypeError::UnknownName {
                name: s.to_string(),
            })
    }
}

impl fmt::Display for GgmlType {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

// ---------------------------------------------------------------------------------------------
// APR dtype bytes (APR-FORMAT.md §7, §13). Only `formats::apr` consults these tables.
// ---------------------------------------------------------------------------------------------

/// A tensor type an APR file can hold: every GGML type, plus the types only aprender has.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum AprDtype {
    /// A GGML type; its APR byte is its GGML id (apr-qa's writer, realizar's converter).
    Ggml(GgmlType),
    /// aprender's plain unsigned byte array (`TensorDType::U8`).
    U8,
    /// aprender-native 4-bit: per 32 values an f16 scale then 16 bytes, adjacent nibbles.
    AprQ4,
    /// aprender-native 8-bit: one f32 scale for the whole tensor, then one i8 per value.
    AprQ8,
}

/// The APR byte apr-qa writes for APR-native Q4 (aprender ≥ GH-438).
pub const APR_NATIVE_Q4: u8 = 128;
/// The APR byte apr-qa writes for APR-native Q8 (aprender ≥ GH-438).
pub const APR_NATIVE_Q8: u8 = 129;

/// Meanings aprender's own `TensorDType` gives bytes that GGML assigns otherwise (§7):
/// 3 = F64, 4 = I32, 5 = I64, 6 = I8, 7 = U8, 8 = APR-Q4 (legacy), 9 = APR-Q8 (legacy).
pub const APRENDER_BYTE_MEANINGS: [(u8, AprDtype); 7] = [
    (3, AprDtype::Ggml(GgmlType::F64)),
    (4, AprDtype::Ggml(GgmlType::I32)),
    (5, AprDtype::Ggml(GgmlType::I64)),
    (6, AprDtype::Ggml(GgmlType::I8)),
    (7, AprDtype::U8),
    (8, AprDtype::AprQ4),
    (9, AprDtype::AprQ8),
];

/// Metadata value of `dtype_table` that marks an APR file whose bytes are GGML ids.
pub const APR_DTYPE_TABLE_GGML: &str = "ggml";

impl AprDtype {
    /// The byte apr-qa writes for this type (GGML id, or the APR-native byte).
    /// `U8` has no GGML id and no apr-qa byte; writing it is an error.
    pub fn apr_byte(self) -> Option<u8> {
        match self {
            Self::Ggml(t) => u8::try_from(t.id()).ok(),
            Self::AprQ4 => Some(APR_NATIVE_Q4),
            Self::AprQ8 => Some(APR_NATIVE_Q8),
            Self::U8 => None,
        }
    }

    /// Exact byte size of a tensor of `n_elements` in this type; `None` on a partial block
    /// (GGML types) or overflow.
    pub fn byte_size(self, n_elements: u64) -> Option<u64> {
        match self {
            Self::Ggml(t) => t.row_bytes(n_elements),
            Self::U8 => Some(n_elements),
            Self::AprQ4 => n_elements.div_ceil(32).checked_mul(18),
            Self::AprQ8 => n_elements.checked_add(4),
        }
    }

    /// Elements per block that every row (the last, contiguous dim) must hold whole: the GGML
    /// block size; 1 for the APR-native types, whose blocks run over the flat tensor.
    pub fn row_block(self) -> u64 {
        match self {
            Self::Ggml(t) => t.block_size() as u64,
            Self::U8 | Self::AprQ4 | Self::AprQ8 => 1,
        }
    }

    /// Every interpretation of `byte` a reader may consider: the GGML id first, then
    /// aprender's meaning and the APR-native bytes. The APR reader picks among them by size.
    pub fn candidates(byte: u8, ggml_table: bool) -> Vec<AprDtype> {
        let mut out = Vec::new();
        if let Ok(t) = GgmlType::try_from(u32::from(byte)) {
            out.push(AprDtype::Ggml(t));
        }
        if !ggml_table {
            for (b, d) in APRENDER_BYTE_MEANINGS {
                if b == byte && !out.contains(&d) {
                    out.push(d);
                }
            }
        }
        if byte == APR_NATIVE_Q4 {
            out.push(AprDtype::AprQ4);
        }
        if byte == APR_NATIVE_Q8 {
            out.push(AprDtype::AprQ8);
        }
        out
    }

    /// Display name.
    pub fn name(self) -> &'static str {
        match self {
            Self::Ggml(t) => t.name(),
            Self::U8 => "U8",
            Self::AprQ4 => "APR_Q4",
            Self::AprQ8 => "APR_Q8",
        }
    }
}

// ---------------------------------------------------------------------------------------------
// SafeTensors dtype strings (no numbers; listed here so every dtype fact has one home).
// ---------------------------------------------------------------------------------------------

/// The SafeTensors dtype string of a plain GGML type, where SafeTensors has one.
/// Block-quantized types are stored as `U8` byte tensors (see `formats::safetensors`).
pub const fn safetensors_name(t: GgmlType) -> Option<&'static str> {
    match t {
        GgmlType::F32 => Some("F32"),
        GgmlType::F16 => Some("F16"),
        GgmlType::BF16 => Some("BF16"),
        GgmlType::F64 => Some("F64"),
        GgmlType::I8 => Some("I8"),
        GgmlType::I16 => Some("I16"),
        GgmlType::I32 => Some("I32"),
        GgmlType::I64 => Some("I64"),
        GgmlType::Q4_0
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
        | GgmlType::Q2_0 => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// I-3 (F-CONTRACT-I3-001): every dtype survives id→dtype→id and name→dtype→name;
    /// unused ids are rejected.
    #[test]
    fn dtype_byte_roundtrip() {
        for t in GgmlType::ALL {
            assert_eq!(GgmlType::try_from(t.id()), Ok(t), "{t}");
            assert_eq!(t.name().parse::<GgmlType>(), Ok(t));
            assert_eq!(t.name().to_lowercase().parse::<GgmlType>(), Ok(t));
            assert_eq!(GgmlType::try_from(t.id()).map(|x| x.name()), Ok(t.name()));
        }
        for id in [4u32, 5, 31, 32, 33, 36, 37, 38, 43, 100, 255, u32::MAX] {
            assert_eq!(
                GgmlType::try_from(id),
                Err(DtypeError::UnknownId { id: id.into() }),
                "id {id} must be rejected"
            );
        }
        for id in RETIRED_GGML_IDS {
            assert!(GgmlType::try_from(id).is_err());
        }
        assert!("Q4_2".parse::<GgmlType>().is_err());
        assert!("".parse::<GgmlType>().is_err());
    }

    #[test]
    fn ids_are_unique_and_sorted() {
        let ids: Vec<u32> = GgmlType::ALL.iter().map(|t| t.id()).collect();
        let mut sorted = ids.clone();
        sorted.sort_unstable();
        sorted.dedup();
        assert_eq!(ids, sorted);
    }

    #[test]
    fn apr_candidates_follow_the_tables() {
        // apr-qa files: byte 6 is Q5_0 and nothing else.
        assert_eq!(
            AprDtype::candidates(6, true),
            vec![AprDtype::Ggml(GgmlType::Q5_0)]
        );
        // Unmarked files: byte 6 may be Q5_0 (realizar) or I8 (aprender).
        assert_eq!(
            AprDtype::candidates(6, false),
            vec![AprDtype::Ggml(GgmlType::Q5_0), AprDtype::Ggml(GgmlType::I8)]
        );
        assert_eq!(
            AprDtype::candidates(4, false),
            vec![AprDtype::Ggml(GgmlType::I32)]
        );
        assert!(AprDtype::candidates(4, true).is_empty());
        assert_eq!(AprDtype::candidates(128, true), vec![AprDtype::AprQ4]);
        assert!(AprDtype::candidates(200, false).is_empty());
        for t in GgmlType::ALL {
            let b = AprDtype::Ggml(t)
                .apr_byte()
                .expect("every GGML id fits a byte");
            assert!(AprDtype::candidates(b, true).contains(&AprDtype::Ggml(t)));
        }
    }
}
