//! GGUF v2/v3 streaming writer: plan, then stream, then check (STYLE §4).
//!
//! Layout written (ggml `gguf_write_out` @d99724f2, gguf-py `GGUFWriter`): header, metadata
//! with the exact value types given, tensor infos with offsets = running sum of padded sizes in
//! the given order, zero padding to the alignment after the infos (even without tensors) and
//! after every tensor, the last one included. The alignment is `general.alignment` (a u32
//! non-zero power of two) or 32. So a file read with [`GgufFile`] whose `layout_notes` are empty
//! is reproduced byte for byte from its version, metadata, tensor infos and data.
//!
//! Before writing, the plan is checked with the reader's own rules ([`tensor_n_bytes`],
//! [`alignment_of`]) plus unique keys/names, well-typed arrays and the reader's caps, so
//! everything written can be read back. Files are written to a temporary file in the target
//! directory, re-read with the reader, and then renamed over the target.

#![deny(clippy::indexing_slicing, clippy::unwrap_used, clippy::expect_used)]

use std::collections::HashSet;
use std::io::{self, Write};
use std::path::Path;

use super::detect::GGUF_MAGIC;
use super::gguf::{
    align_up, alignment_of, tensor_n_bytes, GgufFile, GgufValue, GgufValueType,
    GGUF_MAX_ARRAY_DEPTH, GGUF_MAX_ARRAY_ELEMENTS, GGUF_MAX_NAME_BYTES, GGUF_MAX_STRING_BYTES,
    GGUF_VERSIONS,
};
use super::{temp_file_beside, FormatError, FormatErrorKind};
use crate::dtype::GgmlType;

/// One tensor to write: its name, dimensions in GGUF order (`ne[0]` contiguous; written exactly
/// as given, trailing 1s included) and type.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct GgufTensorSpec<'a> {
    /// The tensor name.
    pub name: &'a str,
    /// Dimensions, `ne[0]` first.
    pub ne: &'a [u64],
    /// The tensor type.
    pub dtype: GgmlType,
}

/// Writes one tensor's bytes (`index` into the spec list) to the sink; it must write exactly
/// the tensor's byte size.
pub type TensorDataFn<'f> = dyn FnMut(usize, &mut dyn Write) -> io::Result<()> + 'f;

/// What [`plan`] computes: alignment and each tensor's byte size and offset.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct GgufPlan {
    /// Alignment of the data section and of every tensor.
    pub alignment: u64,
    /// Bytes of each tensor (without padding).
    pub n_bytes: Vec<u64>,
    /// Offset of each tensor relative to the data section.
    pub offsets: Vec<u64>,
}

/// Layout choices where real writers differ.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct GgufWriteOptions {
    /// Whether a file without tensors still gets zero padding after its header up to the
    /// alignment: ggml and gguf-py's `write_tensors_to_file` pad (the default); gguf-py's
    /// vocab-only files (`write_kv_data_to_file`, then close) do not. Files with tensors are
    /// always padded.
    pub pad_empty_data_section: bool,
}

impl Default for GgufWriteOptions {
    fn default() -> Self {
        Self {
            pad_empty_data_section: true,
        }
    }
}

impl GgufFile {
    /// The tensor table as writer specs, in file order (for rewriting a file).
    pub fn tensor_specs(&self) -> Vec<GgufTensorSpec<'_>> {
        self.tensors
            .iter()
            .map(|t| GgufTensorSpec {
                name: &t.name,
                ne: &t.ne,
                dtype: t.dtype,
            })
            .collect()
    }

    /// The options that make the writer reproduce this file's layout.
    pub fn write_options(&self) -> GgufWriteOptions {
        GgufWriteOptions {
            pad_empty_data_section: !(self.tensors.is_empty() && self.file_size == self.infos_end),
        }
    }
}

/// Validates what would be written and computes the layout.
pub fn plan(
    version: u32,
    metadata: &[(String, GgufValue)],
    tensors: &[GgufTensorSpec<'_>],
) -> Result<GgufPlan, FormatErrorKind> {
    if !GGUF_VERSIONS.contains(&version) {
        return Err(FormatErrorKind::UnsupportedVersion { version });
    }
    let mut keys = HashSet::with_capacity(metadata.len());
    for (key, value) in metadata {
        if key.is_empty() {
            return Err(FormatErrorKind::EmptyKey { at: 0 });
        }
        check_string_len(key.len())?;
        if !keys.insert(key.as_str()) {
            return Err(FormatErrorKind::DuplicateKey { key: key.clone() });
        }
        check_value(key, value, 0)?;
    }
    let alignment = alignment_of(metadata)?;
    let mut names = HashSet::with_capacity(tensors.len());
    let mut n_bytes = Vec::with_capacity(tensors.len());
    let mut offsets = Vec::with_capacity(tensors.len());
    let mut next = 0u64;
    for t in tensors {
        let len = t.name.len() as u64;
        if len > GGUF_MAX_NAME_BYTES {
            return Err(FormatErrorKind::NameTooLong {
                at: 0,
                len,
                limit: GGUF_MAX_NAME_BYTES,
            });
        }
        if !names.insert(t.name) {
            return Err(FormatErrorKind::DuplicateTensor {
                name: t.name.into(),
            });
        }
        let n = tensor_n_bytes(t.name, t.ne, t.dtype)?;
        let overflow = || FormatErrorKind::ElementOverflow {
            tensor: t.name.into(),
            ne: t.ne.to_vec(),
        };
        offsets.push(next);
        n_bytes.push(n);
        next = next
            .checked_add(n)
            .and_then(|e| align_up(e, alignment))
            .ok_or_else(overflow)?;
    }
    Ok(GgufPlan {
        alignment,
        n_bytes,
        offsets,
    })
}

fn check_string_len(len: usize) -> Result<(), FormatErrorKind> {
    let len = len as u64;
    if len > GGUF_MAX_STRING_BYTES {
        return Err(FormatErrorKind::StringTooLong {
            at: 0,
            len,
            limit: GGUF_MAX_STRING_BYTES,
        });
    }
    Ok(())
}

/// Checks a value the reader would accept: string and array caps, arrays whose elements all
/// have the declared type, nesting within [`GGUF_MAX_ARRAY_DEPTH`].
fn check_value(key: &str, value: &GgufValue, depth: u32) -> Result<(), FormatErrorKind> {
    match value {
        GgufValue::String(s) => check_string_len(s.len()),
        GgufValue::Array(a) => {
            let depth = depth.saturating_add(1);
            if a.elem_type == GgufValueType::Array && depth >= GGUF_MAX_ARRAY_DEPTH {
                return Err(FormatErrorKind::NestedArray {
                    at: 0,
                    depth: depth.saturating_add(1),
                    limit: GGUF_MAX_ARRAY_DEPTH,
                });
            }
            let count = a.items.len() as u64;
            if count > GGUF_MAX_ARRAY_ELEMENTS {
                return Err(FormatErrorKind::TooMany {
                    what: "array element",
                    count,
                    at: 0,
                });
            }
            for (index, item) in a.items.iter().enumerate() {
                if item.type_of() != a.elem_type {
                    return Err(FormatErrorKind::ArrayTypeMismatch {
                        key: key.into(),
                        index: index as u64,
                        expected: a.elem_type.name(),
                        found: item.type_of().name(),
                    });
                }
                check_value(key, item, depth)?;
            }
            Ok(())
        }
        GgufValue::U8(_)
        | GgufValue::I8(_)
        | GgufValue::U16(_)
        | GgufValue::I16(_)
        | GgufValue::U32(_)
        | GgufValue::I32(_)
        | GgufValue::F32(_)
        | GgufValue::Bool(_)
        | GgufValue::U64(_)
        | GgufValue::I64(_)
        | GgufValue::F64(_) => Ok(()),
    }
}

/// Writes a GGUF file to `out` atomically (temp file in the same directory, checked by reading
/// it back, then renamed), with the default [`GgufWriteOptions`]. `data(i, sink)` must write
/// exactly tensor `i`'s bytes. Refuses an `out` that is a directory.
pub fn write_gguf(
    out: &Path,
    version: u32,
    metadata: &[(String, GgufValue)],
    tensors: &[GgufTensorSpec<'_>],
    data: &mut TensorDataFn<'_>,
) -> Result<(), FormatError> {
    let opts = GgufWriteOptions::default();
    write_gguf_with(out, &opts, version, metadata, tensors, data)
}

/// [`write_gguf`] with explicit layout options.
pub fn write_gguf_with(
    out: &Path,
    opts: &GgufWriteOptions,
    version: u32,
    metadata: &[(String, GgufValue)],
    tensors: &[GgufTensorSpec<'_>],
    data: &mut TensorDataFn<'_>,
) -> Result<(), FormatError> {
    let err = |kind| FormatError::gguf(out, kind);
    let io = |op, source| err(FormatErrorKind::Io { op, source });
    if out.is_dir() {
        return Err(err(FormatErrorKind::IsADirectory));
    }
    let plan = plan(version, metadata, tensors).map_err(err)?;
    let tmp = temp_file_beside(out).map_err(|e| io("create temp file", e))?;
    {
        let mut w = crate::formats::passthrough::FileSink::new(tmp.as_file());
        stream(&mut w, opts, version, metadata, tensors, &plan, data).map_err(err)?;
        w.flush().map_err(|e| io("write", e))?;
    }
    // Check: the file reads back with the layout planned (re-reads only the header and padding).
    let back = GgufFile::open(tmp.path()).map_err(|e| err(e.kind))?;
    let offsets: Vec<u64> = back.tensors.iter().map(|t| t.offset).collect();
    if !back.is_canonical() || offsets != plan.offsets {
        return Err(err(FormatErrorKind::Malformed {
            at: None,
            detail: format!(
                "written file does not read back as planned: {:?}",
                back.layout_notes
            ),
        }));
    }
    drop(back);
    tmp.persist(out).map_err(|e| io("rename", e.error))?;
    Ok(())
}

/// Writes a GGUF file into memory (tests, small files), with the default options.
pub fn write_gguf_to_vec(
    version: u32,
    metadata: &[(String, GgufValue)],
    tensors: &[GgufTensorSpec<'_>],
    data: &mut TensorDataFn<'_>,
) -> Result<Vec<u8>, FormatError> {
    let opts = GgufWriteOptions::default();
    write_gguf_to_vec_with(&opts, version, metadata, tensors, data)
}

/// [`write_gguf_to_vec`] with explicit layout options.
pub fn write_gguf_to_vec_with(
    opts: &GgufWriteOptions,
    version: u32,
    metadata: &[(String, GgufValue)],
    tensors: &[GgufTensorSpec<'_>],
    data: &mut TensorDataFn<'_>,
) -> Result<Vec<u8>, FormatError> {
    let err = |kind| FormatError::gguf("<memory>", kind);
    let plan = plan(version, metadata, tensors).map_err(err)?;
    let mut buf = Vec::new();
    stream(&mut buf, opts, version, metadata, tensors, &plan, data).map_err(err)?;
    Ok(buf)
}

/// Writes the planned file to `w`.
fn stream(
    w: &mut dyn Write,
    opts: &GgufWriteOptions,
    version: u32,
    metadata: &[(String, GgufValue)],
    tensors: &[GgufTensorSpec<'_>],
    plan: &GgufPlan,
    data: &mut TensorDataFn<'_>,
) -> Result<(), FormatErrorKind> {
    let mut w = Counting { inner: w, n: 0 };
    let io = |source| FormatErrorKind::Io {
        op: "write",
        source,
    };
    w.write_all(&GGUF_MAGIC).map_err(io)?;
    w.write_all(&version.to_le_bytes()).map_err(io)?;
    w.write_all(&(tensors.len() as u64).to_le_bytes())
        .map_err(io)?;
    w.write_all(&(metadata.len() as u64).to_le_bytes())
        .map_err(io)?;
    for (key, value) in metadata {
        write_bytes(&mut w, key.as_bytes()).map_err(io)?;
        w.write_all(&(value.type_of() as u32).to_le_bytes())
            .map_err(io)?;
        write_value(&mut w, value).map_err(io)?;
    }
    for (t, offset) in tensors.iter().zip(&plan.offsets) {
        write_bytes(&mut w, t.name.as_bytes()).map_err(io)?;
        w.write_all(&(t.ne.len() as u32).to_le_bytes())
            .map_err(io)?;
        for d in t.ne {
            w.write_all(&d.to_le_bytes()).map_err(io)?;
        }
        w.write_all(&t.dtype.id().to_le_bytes()).map_err(io)?;
        w.write_all(&offset.to_le_bytes()).map_err(io)?;
    }
    if !tensors.is_empty() || opts.pad_empty_data_section {
        pad(&mut w, plan.alignment).map_err(io)?;
    }
    for (index, (t, &expected)) in tensors.iter().zip(&plan.n_bytes).enumerate() {
        let start = w.n;
        data(index, &mut w).map_err(|source| FormatErrorKind::TensorData {
            tensor: t.name.into(),
            source,
        })?;
        let written = w.n - start;
        if written != expected {
            return Err(FormatErrorKind::WrongDataSize {
                tensor: t.name.into(),
                written,
                expected,
            });
        }
        pad(&mut w, plan.alignment).map_err(io)?;
    }
    Ok(())
}

/// A sink that counts the bytes written through it.
struct Counting<'w> {
    inner: &'w mut dyn Write,
    n: u64,
}

impl Write for Counting<'_> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        let k = self.inner.write(buf)?;
        self.n += k as u64;
        Ok(k)
    }
    fn flush(&mut self) -> io::Result<()> {
        self.inner.flush()
    }
}

fn pad(w: &mut Counting<'_>, alignment: u64) -> io::Result<()> {
    let target = align_up(w.n, alignment).unwrap_or(w.n);
    let zeros = [0u8; 64];
    let mut left = target - w.n;
    while left > 0 {
        let k = left.min(zeros.len() as u64) as usize;
        w.write_all(zeros.get(..k).unwrap_or(&[]))?;
        left -= k as u64;
    }
    Ok(())
}

fn write_bytes(w: &mut dyn Write, b: &[u8]) -> io::Result<()> {
    w.write_all(&(b.len() as u64).to_le_bytes())?;
    w.write_all(b)
}

/// Writes a value without its type tag (arrays: element type, count, elements).
fn write_value(w: &mut dyn Write, v: &GgufValue) -> io::Result<()> {
    match v {
        GgufValue::U8(x) => w.write_all(&x.to_le_bytes()),
        GgufValue::I8(x) => w.write_all(&x.to_le_bytes()),
        GgufValue::U16(x) => w.write_all(&x.to_le_bytes()),
        GgufValue::I16(x) => w.write_all(&x.to_le_bytes()),
        GgufValue::U32(x) => w.write_all(&x.to_le_bytes()),
        GgufValue::I32(x) => w.write_all(&x.to_le_bytes()),
        GgufValue::F32(x) => w.write_all(&x.to_bits().to_le_bytes()),
        GgufValue::Bool(x) => w.write_all(&[*x]),
        GgufValue::String(s) => write_bytes(w, s),
        GgufValue::U64(x) => w.write_all(&x.to_le_bytes()),
        GgufValue::I64(x) => w.write_all(&x.to_le_bytes()),
        GgufValue::F64(x) => w.write_all(&x.to_bits().to_le_bytes()),
        GgufValue::Array(a) => {
            w.write_all(&(a.elem_type as u32).to_le_bytes())?;
            w.write_all(&(a.items.len() as u64).to_le_bytes())?;
            a.items.iter().try_for_each(|item| write_value(w, item))
        }
    }
}
