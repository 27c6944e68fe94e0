//! GGUF v2/v3 reader (little-endian), strict and safe on hostile input.
//!
//! Format: `shared/reference/ggml-gguf-safetensors.md` §1 and ggml `docs/gguf.md`; the checks
//! restate ggml `src/gguf.cpp` `gguf_init_from_reader` @d99724f2 except where noted.
//!
//! Contract of [`GgufFile`]: when `open`/`from_bytes` return `Ok`, the whole header has been
//! validated and every tensor's bytes lie inside the file, aligned, without overlapping another
//! tensor; [`GgufFile::tensor_data`] then hands out borrowed slices of the mapping, nothing is
//! copied. Metadata and tensor infos keep file order; strings keep their raw bytes and booleans
//! their raw byte, so writing the same values back with [`super::gguf_write`] reproduces the
//! header byte for byte.
//!
//! Decisions where ggml, gguf-py and the spec disagree (each documented at its constant):
//! - versions 2 and 3 are read; 0, 1 and > 3 are refused (ggml);
//! - nested arrays are accepted (spec, gguf-py) up to [`GGUF_MAX_ARRAY_DEPTH`]; ggml rejects them;
//! - a bool byte other than 0/1 is kept as read (ggml reads it as "non-zero is true");
//! - tensor names must be UTF-8 and at most [`GGUF_MAX_NAME_BYTES`] bytes (ggml);
//! - tensor offsets must be aligned, in bounds and non-overlapping (always an error). A layout
//!   that is valid but not ggml's contiguous one (gaps, tensors out of file order, missing final
//!   padding, trailing bytes, non-zero padding) is accepted, as llama.cpp's mmap loader does, and
//!   recorded in [`GgufFile::layout_notes`]; [`GgufFile::check_strict`] turns the notes into
//!   ggml's errors. A file with no notes rewrites byte-identically (`gguf_write::write_gguf_with`
//!   with `GgufFile::write_options`).
//!
//! Memory: every count is bounded by the bytes remaining before anything is allocated for it, so
//! decoded metadata needs at most ~40 bytes of memory per byte of metadata in the file.

#![deny(clippy::indexing_slicing, clippy::unwrap_used, clippy::expect_used)]

use std::collections::HashSet;
use std::path::{Path, PathBuf};

use super::cursor::Cursor;
use super::detect::GGUF_MAGIC;
use super::gguf_value::{read_string, read_value, read_value_type};
pub use super::gguf_value::{GgufArray, GgufValue, GgufValueType};
use super::{read_file_bytes, FileBytes, FormatError, FormatErrorKind};
use crate::dtype::GgmlType;

/// Alignment when `general.alignment` is absent (ggml `GGUF_DEFAULT_ALIGNMENT`).
pub const GGUF_DEFAULT_ALIGNMENT: u64 = 32;
/// The metadata key that sets the alignment.
pub const KEY_ALIGNMENT: &str = "general.alignment";
/// Most dimensions a tensor may have (ggml `GGML_MAX_DIMS`).
pub const GGUF_MAX_DIMS: u32 = 4;
/// Longest tensor name in bytes: ggml stores names in `char[GGML_MAX_NAME = 64]` with a NUL and
/// rejects `length >= 64` (the spec text says "at most 64"; we follow the stricter reader).
pub const GGUF_MAX_NAME_BYTES: u64 = 63;
/// Longest string (ggml `GGUF_MAX_STRING_LENGTH`, 1 GiB).
pub const GGUF_MAX_STRING_BYTES: u64 = 1 << 30;
/// Most elements in one array (ggml `GGUF_MAX_ARRAY_ELEMENTS`, 1 Gi).
pub const GGUF_MAX_ARRAY_ELEMENTS: u64 = 1 << 30;
/// Deepest array nesting accepted: 1 is a plain array; 2 an array of arrays. ggml rejects any
/// nesting, gguf-py accepts any; the cap keeps recursion bounded (candle `GGUF_MAX_VALUE_DEPTH`
/// plays the same role).
pub const GGUF_MAX_ARRAY_DEPTH: u32 = 8;
/// GGUF versions read and written.
pub const GGUF_VERSIONS: [u32; 2] = [2, 3];

/// Smallest encoded metadata entry: key length (8) + one key byte + type (4) + a u8 value (1).
const MIN_KV_BYTES: u64 = 14;
/// Smallest encoded tensor info: name length (8) + n_dims (4) + type (4) + offset (8).
const MIN_TENSOR_INFO_BYTES: u64 = 24;

/// One tensor's entry in the tensor-info table.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct GgufTensorInfo {
    /// The tensor name (UTF-8, at most [`GGUF_MAX_NAME_BYTES`] bytes).
    pub name: String,
    /// Dimensions exactly as stored: `ne[0]` is the contiguous (row) dimension; trailing 1s kept.
    pub ne: Vec<u64>,
    /// The tensor type.
    pub dtype: GgmlType,
    /// Offset of the tensor's bytes, relative to the start of the data section.
    pub offset: u64,
    /// Bytes of tensor data (without padding).
    pub n_bytes: u64,
}

impl GgufTensorInfo {
    /// Elements in the tensor (the product of `ne`; 1 for no dimensions).
    pub fn n_elements(&self) -> u64 {
        // Checked at parse time to fit in i64.
        self.ne.iter().product()
    }
}

/// A way a valid file departs from the layout ggml writes; see [`GgufFile::layout_notes`].
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum GgufLayoutNote {
    /// A tensor not at the end of the previous tensor (file order) rounded up to the alignment:
    /// a gap, or tensors stored out of file order.
    NotContiguous {
        /// The tensor.
        tensor: String,
        /// Its offset (relative to the data section).
        found: u64,
        /// The offset ggml's layout would give it.
        expected: u64,
    },
    /// A padding byte (after the tensor infos or after a tensor) that is not zero.
    NonZeroPadding {
        /// Absolute offset of the first such byte.
        at: u64,
    },
    /// The file ends before the padding after the last tensor is complete.
    ShortFinalPadding {
        /// Bytes missing.
        missing: u64,
    },
    /// Bytes after the padded end of the last tensor.
    TrailingBytes {
        /// Absolute offset where they start.
        at: u64,
        /// How many.
        n_bytes: u64,
    },
}

impl GgufLayoutNote {
    /// The error a strict reader (ggml `gguf.cpp`, safetensors) reports for this deviation.
    pub fn to_error_kind(&self) -> FormatErrorKind {
        match self {
            Self::NotContiguous {
                tensor,
                found,
                expected,
            } => FormatErrorKind::OffsetMismatch {
                tensor: tensor.clone(),
                found: *found,
                expected: *expected,
            },
            Self::NonZeroPadding { at } => FormatErrorKind::Malformed {
                at: Some(*at),
                detail: "non-zero padding byte".into(),
            },
            Self::ShortFinalPadding { missing } => FormatErrorKind::Malformed {
                at: None,
                detail: format!("file ends {missing} bytes before the last tensor's padding"),
            },
            Self::TrailingBytes { at, n_bytes } => FormatErrorKind::Malformed {
                at: Some(*at),
                detail: format!("{n_bytes} trailing bytes after the last tensor"),
            },
        }
    }
}

/// A validated GGUF file: header, metadata and tensor table, plus the bytes they describe.
#[derive(Debug)]
pub struct GgufFile {
    /// The file read (`<memory>` for [`GgufFile::from_bytes`]).
    pub path: PathBuf,
    /// Format version (2 or 3).
    pub version: u32,
    /// Metadata in file order.
    pub metadata: Vec<(String, GgufValue)>,
    /// Tensor infos in file order.
    pub tensors: Vec<GgufTensorInfo>,
    /// Alignment of the data section and of every tensor offset.
    pub alignment: u64,
    /// Absolute offset where the tensor infos end (the header's unpadded end).
    pub infos_end: u64,
    /// Absolute offset of the data section: `infos_end` rounded up to the alignment.
    pub data_offset: u64,
    /// Size of the file in bytes.
    pub file_size: u64,
    /// Departures from ggml's canonical layout (empty for files written by ggml or gguf-py).
    pub layout_notes: Vec<GgufLayoutNote>,
    bytes: FileBytes,
}

impl GgufFile {
    /// Maps and validates the file at `path`.
    pub fn open(path: &Path) -> Result<Self, FormatError> {
        let bytes = read_file_bytes(path).map_err(|e| FormatError::gguf(e.path, e.kind))?;
        Self::parse(bytes, path)
    }

    /// Validates an in-memory file (tests, fuzzing); errors name the path `<memory>`.
    pub fn from_bytes(bytes: impl Into<FileBytes>) -> Result<Self, FormatError> {
        Self::parse(bytes.into(), Path::new("<memory>"))
    }

    /// Validates `bytes`, naming `path` in errors.
    pub fn parse(bytes: FileBytes, path: &Path) -> Result<Self, FormatError> {
        let header = parse_header(&bytes).map_err(|k| FormatError::gguf(path, k))?;
        Ok(Self {
            path: path.to_path_buf(),
            version: header.version,
            metadata: header.metadata,
            tensors: header.tensors,
            alignment: header.alignment,
            infos_end: header.infos_end,
            data_offset: header.data_offset,
            file_size: bytes.len() as u64,
            layout_notes: header.notes,
            bytes,
        })
    }

    /// The whole file.
    pub fn bytes(&self) -> &[u8] {
        &self.bytes
    }

    /// The first metadata value stored under `key` (keys are unique in a valid file).
    pub fn get(&self, key: &str) -> Option<&GgufValue> {
        self.metadata.iter().find(|(k, _)| k == key).map(|(_, v)| v)
    }

    /// The tensor named `name`.
    pub fn tensor(&self, name: &str) -> Option<&GgufTensorInfo> {
        self.tensors.iter().find(|t| t.name == name)
    }

    /// The bytes of tensor `t`, which must be one of `self.tensors` (validated to lie in the
    /// file); for an info from elsewhere whose range is not in the file, an empty slice.
    pub fn tensor_data(&self, t: &GgufTensorInfo) -> &[u8] {
        self.data_offset
            .checked_add(t.offset)
            .and_then(|start| Some((start, start.checked_add(t.n_bytes)?)))
            .and_then(|(s, e)| Some((usize::try_from(s).ok()?, usize::try_from(e).ok()?)))
            .and_then(|(s, e)| self.bytes.get(s..e))
            .unwrap_or(&[])
    }

    /// Whether writing this file back (same version, metadata, tensors and data, with
    /// `gguf_write::write_gguf_with` and [`write_options`](Self::write_options)) gives the same
    /// bytes: true exactly when there are no [`layout_notes`](Self::layout_notes).
    pub fn is_canonical(&self) -> bool {
        self.layout_notes.is_empty()
    }

    /// ggml's strictness: the first layout note as an error (ggml rejects non-contiguous
    /// offsets; the other notes are rejected by safetensors-style strict readers).
    pub fn check_strict(&self) -> Result<(), FormatError> {
        match self.layout_notes.first() {
            Some(n) => Err(FormatError::gguf(&self.path, n.to_error_kind())),
            None => Ok(()),
        }
    }
}

/// Everything [`parse_header`] learns.
struct Header {
    version: u32,
    metadata: Vec<(String, GgufValue)>,
    tensors: Vec<GgufTensorInfo>,
    alignment: u64,
    infos_end: u64,
    data_offset: u64,
    notes: Vec<GgufLayoutNote>,
}

fn parse_header(buf: &[u8]) -> Result<Header, FormatErrorKind> {
    let mut c = Cursor::new(buf);
    let magic: [u8; 4] = c.array()?;
    if magic != GGUF_MAGIC {
        return Err(FormatErrorKind::BadMagic { found: magic });
    }
    let version = c.u32()?;
    if !GGUF_VERSIONS.contains(&version) {
        return Err(FormatErrorKind::UnsupportedVersion { version });
    }
    let n_tensors_at = c.offset();
    let n_tensors_raw = c.u64()?;
    let n_kv_at = c.offset();
    let n_kv_raw = c.u64()?;
    // Bound both counts before allocating for either: entries of both follow the header.
    let n_tensors =
        c.bounded_count(n_tensors_raw, MIN_TENSOR_INFO_BYTES, "tensor", n_tensors_at)?;
    let n_kv = c.bounded_count(n_kv_raw, MIN_KV_BYTES, "metadata entry", n_kv_at)?;

    let mut metadata = Vec::with_capacity(n_kv);
    let mut keys: HashSet<&[u8]> = HashSet::with_capacity(n_kv);
    for _ in 0..n_kv {
        let key_at = c.offset();
        let key = read_string(&mut c)?;
        if key.is_empty() {
            return Err(FormatErrorKind::EmptyKey { at: key_at });
        }
        let key_str = std::str::from_utf8(key).map_err(|_| FormatErrorKind::NotUtf8 {
            what: "metadata key",
            at: key_at,
        })?;
        if !keys.insert(key) {
            return Err(FormatErrorKind::DuplicateKey {
                key: key_str.to_string(),
            });
        }
        let ty = read_value_type(&mut c)?;
        let value = read_value(&mut c, ty, 0)?;
        metadata.push((key_str.to_string(), value));
    }
    let alignment = alignment_of(&metadata)?;

    let mut tensors = Vec::with_capacity(n_tensors);
    let mut names: HashSet<&[u8]> = HashSet::with_capacity(n_tensors);
    for _ in 0..n_tensors {
        let name_at = c.offset();
        let name_bytes = read_string(&mut c)?;
        let len = name_bytes.len() as u64;
        if len > GGUF_MAX_NAME_BYTES {
            return Err(FormatErrorKind::NameTooLong {
                at: name_at,
                len,
                limit: GGUF_MAX_NAME_BYTES,
            });
        }
        let name = std::str::from_utf8(name_bytes).map_err(|_| FormatErrorKind::NotUtf8 {
            what: "tensor name",
            at: name_at,
        })?;
        if !names.insert(name_bytes) {
            return Err(FormatErrorKind::DuplicateTensor {
                name: name.to_string(),
            });
        }
        let n_dims = c.u32()?;
        if n_dims > GGUF_MAX_DIMS {
            return Err(FormatErrorKind::TooManyDims {
                tensor: name.to_string(),
                n_dims,
                limit: GGUF_MAX_DIMS,
            });
        }
        let mut ne = Vec::with_capacity(GGUF_MAX_DIMS as usize);
        for _ in 0..n_dims {
            ne.push(c.u64()?);
        }
        let id = c.u32()?;
        let dtype = match GgmlType::try_from(id) {
            Ok(t) => t,
            // GH-191 mutant: an unknown id silently read as F32.
            Err(_) if crate::fault::active(crate::fault::Fault::SilentF32Fallback) => GgmlType::F32,
            Err(_) => {
                return Err(FormatErrorKind::UnknownDtype {
                    tensor: name.to_string(),
                    id,
                })
            }
        };
        let n_bytes = tensor_n_bytes(name, &ne, dtype)?;
        let offset = c.u64()?;
        tensors.push(GgufTensorInfo {
            name: name.to_string(),
            ne,
            dtype,
            offset,
            n_bytes,
        });
    }

    let infos_end = c.offset();
    let data_offset = align_up(infos_end, alignment).ok_or(FormatErrorKind::Truncated {
        at: infos_end,
        need: alignment,
    })?;
    let notes = check_layout(buf, &tensors, alignment, infos_end, data_offset)?;
    Ok(Header {
        version,
        metadata,
        tensors,
        alignment,
        infos_end,
        data_offset,
        notes,
    })
}

/// The alignment `metadata` sets: `general.alignment` as a u32 non-zero power of two, or 32.
pub fn alignment_of(metadata: &[(String, GgufValue)]) -> Result<u64, FormatErrorKind> {
    match metadata
        .iter()
        .find(|(k, _)| k == KEY_ALIGNMENT)
        .map(|(_, v)| v)
    {
        None => Ok(GGUF_DEFAULT_ALIGNMENT),
        Some(GgufValue::U32(a)) if a.is_power_of_two() => Ok(u64::from(*a)),
        Some(v) => Err(FormatErrorKind::BadAlignment {
            found: v.describe(),
        }),
    }
}

/// Bytes of a tensor with dimensions `ne` (ne[0] contiguous) and type `dtype`, checking what
/// ggml checks: at most 4 dimensions, each and their product ≤ i64::MAX, whole blocks per row,
/// and a byte size that fits in u64.
pub fn tensor_n_bytes(name: &str, ne: &[u64], dtype: GgmlType) -> Result<u64, FormatErrorKind> {
    let n_dims = u32::try_from(ne.len()).unwrap_or(u32::MAX);
    if n_dims > GGUF_MAX_DIMS {
        return Err(FormatErrorKind::TooManyDims {
            tensor: name.into(),
            n_dims,
            limit: GGUF_MAX_DIMS,
        });
    }
    let overflow = || FormatErrorKind::ElementOverflow {
        tensor: name.into(),
        ne: ne.to_vec(),
    };
    let i64_max = i64::MAX as u64;
    let n_elements = ne
        .iter()
        .try_fold(1u64, |acc, &d| acc.checked_mul(d).filter(|_| d <= i64_max))
        .filter(|&n| n <= i64_max)
        .ok_or_else(overflow)?;
    // Missing dimensions are 1 (ggml), so a 0-dimensional tensor has one row of one element.
    let ne0 = ne.first().copied().unwrap_or(1);
    let block_size = dtype.block_size() as u64;
    if ne0 % block_size != 0 {
        return Err(FormatErrorKind::PartialBlock {
            tensor: name.into(),
            ne0,
            block_size,
            dtype,
        });
    }
    dtype.row_bytes(n_elements).ok_or_else(overflow)
}

/// `x` rounded up to a multiple of `alignment` (a power of two); `None` on overflow.
pub fn align_up(x: u64, alignment: u64) -> Option<u64> {
    let rem = x.checked_rem(alignment)?;
    if rem == 0 {
        Some(x)
    } else {
        x.checked_add(alignment - rem)
    }
}

/// Checks every tensor's range (aligned, inside the file, no overlap: errors) and records how
/// the layout departs from ggml's contiguous one (notes).
fn check_layout(
    buf: &[u8],
    tensors: &[GgufTensorInfo],
    alignment: u64,
    infos_end: u64,
    data_offset: u64,
) -> Result<Vec<GgufLayoutNote>, FormatErrorKind> {
    let file_size = buf.len() as u64;
    let mut ends = Vec::with_capacity(tensors.len());
    for t in tensors {
        if t.offset % alignment != 0 {
            return Err(FormatErrorKind::OffsetMisaligned {
                tensor: t.name.clone(),
                offset: t.offset,
                alignment,
            });
        }
        let end = data_offset
            .checked_add(t.offset)
            .and_then(|s| s.checked_add(t.n_bytes))
            .filter(|&e| e <= file_size)
            .ok_or_else(|| FormatErrorKind::OffsetOutOfBounds {
                tensor: t.name.clone(),
                offset: t.offset,
                n_bytes: t.n_bytes,
                data_offset,
                file_size,
            })?;
        ends.push(end - data_offset);
    }

    // Overlap: sort by offset; each non-empty range must start at or after the previous end.
    let mut order: Vec<(u64, u64, &str)> = tensors
        .iter()
        .zip(&ends)
        .map(|(t, &e)| (t.offset, e, t.name.as_str()))
        .collect();
    order.sort_unstable();
    let mut prev: Option<(u64, &str)> = None;
    for &(start, end, name) in order.iter().filter(|(s, e, _)| e > s) {
        if let Some((prev_end, prev_name)) = prev {
            if start < prev_end {
                return Err(FormatErrorKind::Overlap {
                    first: prev_name.into(),
                    second: name.into(),
                });
            }
        }
        prev = Some((end, name));
    }

    let mut notes = Vec::new();
    let mut expected = 0u64;
    for (t, &end) in tensors.iter().zip(&ends) {
        if t.offset != expected {
            notes.push(GgufLayoutNote::NotContiguous {
                tensor: t.name.clone(),
                found: t.offset,
                expected,
            });
        }
        // end ≤ file size, so padding it cannot overflow.
        expected = align_up(end, alignment).unwrap_or(u64::MAX);
    }

    // Padding regions: after the infos, and after every tensor; must be zero where present.
    let mut pads = vec![(infos_end, data_offset)];
    for &end in &ends {
        let abs = data_offset.saturating_add(end);
        pads.push((abs, align_up(abs, alignment).unwrap_or(u64::MAX)));
    }
    let first_nonzero = pads.iter().find_map(|&(s, e)| {
        let (s, e) = (
            usize::try_from(s).ok()?,
            usize::try_from(e.min(file_size)).ok()?,
        );
        let pos = buf.get(s..e)?.iter().position(|&b| b != 0)?;
        Some(s as u64 + pos as u64)
    });
    if let Some(at) = first_nonzero {
        notes.push(GgufLayoutNote::NonZeroPadding { at });
    }

    // End of file: the padded end of the last tensor in the data section. Without tensors,
    // ggml (and gguf-py's `write_tensors_to_file`) pad the header to the alignment, while
    // gguf-py's vocab-only files (`write_kv_data_to_file` then close) end at the infos: both are
    // canonical, and `GgufFile::write_options` tells the writer which to reproduce.
    if tensors.is_empty() && file_size == infos_end {
        return Ok(notes);
    }
    let padded_end = ends
        .iter()
        .map(|&e| align_up(data_offset.saturating_add(e), alignment).unwrap_or(u64::MAX))
        .max()
        .unwrap_or(data_offset);
    if file_size < padded_end {
        notes.push(GgufLayoutNote::ShortFinalPadding {
            missing: padded_end - file_size,
        });
    } else if file_size > padded_end {
        notes.push(GgufLayoutNote::TrailingBytes {
            at: padded_end,
            n_bytes: file_size - padded_end,
        });
    }
    Ok(notes)
}
