//! GGUF metadata values: the 13 on-disk value types and their decoding.
//!
//! Invariant: a decoded value keeps exactly what was stored (raw string bytes, the raw bool
//! byte, the declared element type of empty arrays, f32/f64 bits), so re-encoding it with
//! [`super::gguf_write`] gives the same bytes. Types: ggml `include/gguf.h` `enum gguf_type`.

#![deny(clippy::indexing_slicing, clippy::unwrap_used, clippy::expect_used)]

use std::fmt;

use super::cursor::Cursor;
use super::gguf::{GGUF_MAX_ARRAY_DEPTH, GGUF_MAX_ARRAY_ELEMENTS, GGUF_MAX_STRING_BYTES};
use super::FormatErrorKind;

/// A metadata value type as stored on disk (`gguf_type`).
#[allow(missing_docs)]
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[repr(u32)]
pub enum GgufValueType {
    U8 = 0,
    I8 = 1,
    U16 = 2,
    I16 = 3,
    U32 = 4,
    I32 = 5,
    F32 = 6,
    Bool = 7,
    String = 8,
    Array = 9,
    U64 = 10,
    I64 = 11,
    F64 = 12,
}

impl GgufValueType {
    /// Every type, in id order.
    pub const ALL: [Self; 13] = [
        Self::U8,
        Self::I8,
        Self::U16,
        Self::I16,
        Self::U32,
        Self::I32,
        Self::F32,
        Self::Bool,
        Self::String,
        Self::Array,
        Self::U64,
        Self::I64,
        Self::F64,
    ];

    /// gguf-py's lower-case name of the type.
    pub const fn name(self) -> &'static str {
        match self {
            Self::U8 => "u8",
            Self::I8 => "i8",
            Self::U16 => "u16",
            Self::I16 => "i16",
            Self::U32 => "u32",
            Self::I32 => "i32",
            Self::F32 => "f32",
            Self::Bool => "bool",
            Self::String => "string",
            Self::Array => "array",
            Self::U64 => "u64",
            Self::I64 => "i64",
            Self::F64 => "f64",
        }
    }

    /// Fewest bytes one value of this type takes on disk, without its type tag: the fixed size,
    /// 8 for a string (its length), 12 for an array (element type + count).
    pub const fn min_encoded_bytes(self) -> u64 {
        match self {
            Self::U8 | Self::I8 | Self::Bool => 1,
            Self::U16 | Self::I16 => 2,
            Self::U32 | Self::I32 | Self::F32 => 4,
            Self::U64 | Self::I64 | Self::F64 | Self::String => 8,
            Self::Array => 12,
        }
    }
}

impl TryFrom<u32> for GgufValueType {
    /// The rejected id.
    type Error = u32;
    fn try_from(id: u32) -> Result<Self, u32> {
        Self::ALL
            .iter()
            .copied()
            .find(|t| *t as u32 == id)
            .ok_or(id)
    }
}

impl fmt::Display for GgufValueType {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// A metadata value, exactly as stored.
#[allow(missing_docs)]
#[derive(Clone, Debug, PartialEq)]
pub enum GgufValue {
    U8(u8),
    I8(i8),
    U16(u16),
    I16(i16),
    U32(u32),
    I32(i32),
    F32(f32),
    /// The raw byte (0 false, anything else true), kept so odd bytes round-trip.
    Bool(u8),
    /// The raw bytes (not necessarily UTF-8; no terminator).
    String(Vec<u8>),
    Array(GgufArray),
    U64(u64),
    I64(i64),
    F64(f64),
}

/// A metadata array: its declared element type and its elements, each of that type (an
/// `Array` element type means nested arrays).
#[derive(Clone, Debug, PartialEq)]
pub struct GgufArray {
    /// The element type declared in the file (kept even when the array is empty).
    pub elem_type: GgufValueType,
    /// The elements, in file order.
    pub items: Vec<GgufValue>,
}

impl GgufValue {
    /// The value's type.
    pub fn type_of(&self) -> GgufValueType {
        match self {
            Self::U8(_) => GgufValueType::U8,
            Self::I8(_) => GgufValueType::I8,
            Self::U16(_) => GgufValueType::U16,
            Self::I16(_) => GgufValueType::I16,
            Self::U32(_) => GgufValueType::U32,
            Self::I32(_) => GgufValueType::I32,
            Self::F32(_) => GgufValueType::F32,
            Self::Bool(_) => GgufValueType::Bool,
            Self::String(_) => GgufValueType::String,
            Self::Array(_) => GgufValueType::Array,
            Self::U64(_) => GgufValueType::U64,
            Self::I64(_) => GgufValueType::I64,
            Self::F64(_) => GgufValueType::F64,
        }
    }

    /// A string value that is valid UTF-8.
    pub fn as_str(&self) -> Option<&str> {
        match self {
            Self::String(b) => std::str::from_utf8(b).ok(),
            _ => None,
        }
    }

    /// A string value's raw bytes.
    pub fn as_bytes(&self) -> Option<&[u8]> {
        match self {
            Self::String(b) => Some(b),
            _ => None,
        }
    }

    /// Any integer value that is ≥ 0, widened to u64 (not bools, not floats).
    pub fn as_u64(&self) -> Option<u64> {
        match *self {
            Self::U8(v) => Some(v.into()),
            Self::U16(v) => Some(v.into()),
            Self::U32(v) => Some(v.into()),
            Self::U64(v) => Some(v),
            Self::I8(v) => u64::try_from(v).ok(),
            Self::I16(v) => u64::try_from(v).ok(),
            Self::I32(v) => u64::try_from(v).ok(),
            Self::I64(v) => u64::try_from(v).ok(),
            _ => None,
        }
    }

    /// Any integer value that fits in i64, widened (not bools, not floats).
    pub fn as_i64(&self) -> Option<i64> {
        match *self {
            Self::I8(v) => Some(v.into()),
            Self::I16(v) => Some(v.into()),
            Self::I32(v) => Some(v.into()),
            Self::I64(v) => Some(v),
            Self::U8(v) => Some(v.into()),
            Self::U16(v) => Some(v.into()),
            Self::U32(v) => Some(v.into()),
            Self::U64(v) => i64::try_from(v).ok(),
            _ => None,
        }
    }

    /// A float value (F32 widened exactly, or F64); integers are not converted.
    pub fn as_f64(&self) -> Option<f64> {
        match *self {
            Self::F32(v) => Some(v.into()),
            Self::F64(v) => Some(v),
            _ => None,
        }
    }

    /// A bool value (non-zero byte is true, as ggml reads it).
    pub fn as_bool(&self) -> Option<bool> {
        match *self {
            Self::Bool(b) => Some(b != 0),
            _ => None,
        }
    }

    /// An array value.
    pub fn as_array(&self) -> Option<&GgufArray> {
        match self {
            Self::Array(a) => Some(a),
            _ => None,
        }
    }

    /// A short description for messages: the type and, for scalars, the value.
    pub fn describe(&self) -> String {
        match self {
            Self::U8(v) => format!("u8 {v}"),
            Self::I8(v) => format!("i8 {v}"),
            Self::U16(v) => format!("u16 {v}"),
            Self::I16(v) => format!("i16 {v}"),
            Self::U32(v) => format!("u32 {v}"),
            Self::I32(v) => format!("i32 {v}"),
            Self::F32(v) => format!("f32 {v}"),
            Self::Bool(v) => format!("bool {v}"),
            Self::String(s) => format!("string of {} bytes", s.len()),
            Self::Array(a) => format!("array of {} {}", a.items.len(), a.elem_type),
            Self::U64(v) => format!("u64 {v}"),
            Self::I64(v) => format!("i64 {v}"),
            Self::F64(v) => format!("f64 {v}"),
        }
    }
}

/// Reads a gguf string (u64 length + bytes) as raw bytes.
pub(super) fn read_string<'a>(c: &mut Cursor<'a>) -> Result<&'a [u8], FormatErrorKind> {
    let at = c.offset();
    let len = c.u64()?;
    let limit = c.remaining().min(GGUF_MAX_STRING_BYTES);
    if len > limit {
        return Err(FormatErrorKind::StringTooLong { at, len, limit });
    }
    c.bytes(len)
}

pub(super) fn read_value_type(c: &mut Cursor<'_>) -> Result<GgufValueType, FormatErrorKind> {
    let at = c.offset();
    let id = c.u32()?;
    GgufValueType::try_from(id).map_err(|type_id| FormatErrorKind::UnknownValueType { type_id, at })
}

/// Reads one value of type `ty`; `depth` is the number of arrays enclosing it.
pub(super) fn read_value(
    c: &mut Cursor<'_>,
    ty: GgufValueType,
    depth: u32,
) -> Result<GgufValue, FormatErrorKind> {
    Ok(match ty {
        GgufValueType::U8 => GgufValue::U8(c.u8()?),
        GgufValueType::I8 => GgufValue::I8(c.i8()?),
        GgufValueType::U16 => GgufValue::U16(c.u16()?),
        GgufValueType::I16 => GgufValue::I16(c.i16()?),
        GgufValueType::U32 => GgufValue::U32(c.u32()?),
        GgufValueType::I32 => GgufValue::I32(c.i32()?),
        GgufValueType::F32 => GgufValue::F32(c.f32()?),
        GgufValueType::Bool => GgufValue::Bool(c.u8()?),
        GgufValueType::String => GgufValue::String(read_string(c)?.to_vec()),
        GgufValueType::U64 => GgufValue::U64(c.u64()?),
        GgufValueType::I64 => GgufValue::I64(c.i64()?),
        GgufValueType::F64 => GgufValue::F64(c.f64()?),
        GgufValueType::Array => {
            let type_at = c.offset();
            let elem_type = read_value_type(c)?;
            let depth = depth.saturating_add(1);
            if elem_type == GgufValueType::Array && depth >= GGUF_MAX_ARRAY_DEPTH {
                return Err(FormatErrorKind::NestedArray {
                    at: type_at,
                    depth: depth.saturating_add(1),
                    limit: GGUF_MAX_ARRAY_DEPTH,
                });
            }
            let count_at = c.offset();
            let count = c.u64()?;
            if count > GGUF_MAX_ARRAY_ELEMENTS {
                return Err(FormatErrorKind::TooMany {
                    what: "array element",
                    count,
                    at: count_at,
                });
            }
            let n = c.bounded_count(
                count,
                elem_type.min_encoded_bytes(),
                "array element",
                count_at,
            )?;
            let mut items = Vec::with_capacity(n);
            for _ in 0..n {
                items.push(read_value(c, elem_type, depth)?);
            }
            GgufValue::Array(GgufArray { elem_type, items })
        }
    })
}
