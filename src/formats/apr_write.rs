//! APR v2 writer (`shared/APR-FORMAT.md` §13 "Writing"), and the dtype-byte semantics the
//! reader and the writer share: how apr-qa resolves a byte ([`resolve_dtype`]) and how
//! aprender and realizar would read it ([`foreign_reading`], the interop findings).
//!
//! Invariants of every file [`write_apr`] / [`write_apr_to`] produce:
//! - magic `APR\0`, version 2.0, flags LAYOUT_ROW_MAJOR, plus QUANTIZED when any tensor is
//!   quantized (a block-quantized GGML type or APR-Q4/Q8) and HAS_VOCAB when the metadata has
//!   `tokenizer.vocabulary`; header CRC and footer CRC always written;
//! - metadata is the caller's map, compact JSON, keys in the map's order — the layout layer adds
//!   nothing ([`add_apr_qa_keys`] adds apr-qa's own keys for callers that want them);
//! - index sorted by name byte-wise, data in the same order at increasing 64-aligned offsets,
//!   each tensor zero-padded to 64, then the 4-byte footer;
//! - every entry reads back, under the file's own dtype table, as the type it was written
//!   with ([`resolve_dtype`] is checked while planning, before any byte is written);
//! - the footer CRC is computed while streaming, so nothing is re-read and memory stays
//!   O(1) beyond what the data callback itself buffers; [`write_apr`] writes a temp file in
//!   the target directory and renames it, so a reader never sees a partial file.

#![deny(clippy::unwrap_used, clippy::expect_used, clippy::indexing_slicing)]

use std::io::Write;
use std::path::Path;

use serde_json::{Map, Value};

use super::apr::{
    check_rows, flag, header_crc, pad64, AprEntry, AprError, AprErrorKind, ALIGN, DTYPE_TABLE_KEY,
    HEADER_LEN, MAGIC, MAX_DIMS, MEMORY_PATH, VERSION, VOCAB_KEY,
};
use crate::dtype::{AprDtype, GgmlType, APRENDER_BYTE_MEANINGS, APR_DTYPE_TABLE_GGML};

/// One tensor to write: its data comes from the writer's callback.
#[derive(Clone, Copy, Debug)]
pub struct AprTensorSpec<'a> {
    /// Name (at most `u16::MAX` bytes of UTF-8).
    pub name: &'a str,
    /// Type; its byte is [`AprDtype::apr_byte`].
    pub dtype: AprDtype,
    /// Shape, row-major, outermost first (at most [`MAX_DIMS`]).
    pub dims: &'a [u64],
}

/// A planned file: everything before the tensor data, and where each tensor goes.
#[derive(Clone, Debug)]
pub struct AprLayout {
    /// Header, metadata and index, each padded to 64: the file's first bytes.
    pub prefix: Vec<u8>,
    /// Indices into the caller's `tensors`, in index (= data) order.
    pub order: Vec<usize>,
    /// Per index entry (same order as `order`): offset relative to the data section.
    pub offsets: Vec<u64>,
    /// Per index entry: exact data size.
    pub sizes: Vec<u64>,
    /// Header flags.
    pub flags: u16,
    /// Total file length, footer included.
    pub file_len: u64,
}

/// Adds apr-qa's own metadata keys (§13) that the layout layer never adds by itself:
/// `"dtype_table": "ggml"`. An existing key keeps its position; a new one goes last.
pub fn add_apr_qa_keys(metadata: &mut Map<String, Value>) {
    metadata.insert(
        DTYPE_TABLE_KEY.to_string(),
        Value::String(APR_DTYPE_TABLE_GGML.to_string()),
    );
}

/// Whether the header's QUANTIZED flag covers `d`.
fn is_quantized(d: AprDtype) -> bool {
    match d {
        AprDtype::Ggml(t) => t.is_quantized(),
        AprDtype::AprQ4 | AprDtype::AprQ8 => true,
        AprDtype::U8 => false,
    }
}

fn u32_field(what: &'static str, value: usize) -> Result<u32, AprErrorKind> {
    u32::try_from(value).map_err(|_| AprErrorKind::FieldOverflow {
        what,
        value: value as u64,
    })
}

/// Plans a file: validates every tensor (name length, dims, writable dtype, exact size, unique
/// names, reads back as written) and lays out header, metadata and index.
pub fn plan_apr(
    metadata: &Map<String, Value>,
    tensors: &[AprTensorSpec],
) -> Result<AprLayout, AprErrorKind> {
    let ggml_table = dtype_table_is_ggml(metadata)?;
    let json = serde_json::to_vec(metadata).map_err(|e| AprErrorKind::Metadata {
        offset: HEADER_LEN,
        message: e.to_string(),
    })?;
    let count = u32_field("tensor count", tensors.len())?;
    let meta_size = u32_field("metadata size", json.len())?;
    let overflow = |what| AprErrorKind::FieldOverflow {
        what,
        value: u64::MAX,
    };
    let index_off = pad64(u64::from(meta_size))
        .and_then(|m| m.checked_add(HEADER_LEN))
        .ok_or(overflow("index offset"))?;
    let mut order: Vec<usize> = (0..tensors.len()).collect();
    order.sort_by(|&a, &b| {
        let name = |i: usize| tensors.get(i).map(|t| t.name.as_bytes());
        name(a).cmp(&name(b))
    });
    let mut index = Vec::new();
    let (mut offsets, mut sizes) = (Vec::new(), Vec::new());
    // The OFFSET-MISALIGN mutant starts the data run half an alignment into the data section,
    // so every tensor lands (and is indexed) 32 bytes off the 64-byte grid.
    let mut data_len: u64 = if crate::fault::active(crate::fault::Fault::OffsetMisalign) {
        ALIGN / 2
    } else {
        0
    };
    let mut flags = flag::LAYOUT_ROW_MAJOR;
    let mut prev: Option<&str> = None;
    for t in order.iter().filter_map(|&i| tensors.get(i)) {
        let tensor = || t.name.to_string();
        if prev == Some(t.name) {
            return Err(AprErrorKind::DuplicateName {
                tensor: tensor(),
                offset: index_off.saturating_add(index.len() as u64),
            });
        }
        prev = Some(t.name);
        let name_len = u16::try_from(t.name.len()).map_err(|_| AprErrorKind::NameTooLong {
            tensor: tensor(),
            len: t.name.len(),
            max: usize::from(u16::MAX),
        })?;
        if t.dims.len() > MAX_DIMS {
            return Err(AprErrorKind::TooManyDimsToWrite {
                tensor: tensor(),
                ndim: t.dims.len(),
            });
        }
        let dtype = t.dtype.name();
        let byte = renumbered(t.dtype)
            .or_else(|| t.dtype.apr_byte())
            .ok_or_else(|| AprErrorKind::UnwritableDtype {
                tensor: tensor(),
                dtype,
            })?;
        let n_elements = t.dims.iter().try_fold(1u64, |a, &d| a.checked_mul(d));
        let size = n_elements.and_then(|n| t.dtype.byte_size(n));
        let (Some(n_elements), Some(size)) = (n_elements, size) else {
            return Err(AprErrorKind::NoByteSize {
                tensor: tensor(),
                dtype,
                dims: t.dims.to_vec(),
            });
        };
        check_rows(
            t.name,
            index_off.saturating_add(index.len() as u64),
            t.dims,
            t.dtype,
        )?;
        match resolve_dtype(byte, n_elements, size, ggml_table) {
            Ok(r) if r.dtype == t.dtype => {}
            // The GH-191 mutant has no read-back check, like the writer it reproduces.
            _ if renumbered(t.dtype).is_some() => {}
            Ok(r) => {
                let reason = format!(
                    "byte {byte} reads as {} without a \"dtype_table\": \"ggml\" marker",
                    r.dtype.name()
                );
                return Err(AprErrorKind::NotReadBack {
                    tensor: tensor(),
                    dtype,
                    reason,
                });
            }
            Err(u) => {
                let reason = match u {
                    Unresolved::Unknown => format!("byte {byte} is unknown under this dtype table"),
                    Unresolved::NoFit(c) => format!("size {size} fits none of {}", list_candidates(byte, &c)),
                    Unresolved::Ambiguous(c) => format!(
                        "size {size} fits all of {}; add \"dtype_table\": \"ggml\" (add_apr_qa_keys)",
                        list_candidates(byte, &c)
                    ),
                };
                return Err(AprErrorKind::NotReadBack {
                    tensor: tensor(),
                    dtype,
                    reason,
                });
            }
        }
        if is_quantized(t.dtype) {
            flags |= flag::QUANTIZED;
        }
        index.extend_from_slice(&name_len.to_le_bytes());
        index.extend_from_slice(t.name.as_bytes());
        index.push(byte);
        index.push(u8::try_from(t.dims.len()).unwrap_or(u8::MAX));
        for d in t.dims {
            index.extend_from_slice(&d.to_le_bytes());
        }
        index.extend_from_slice(&data_len.to_le_bytes());
        index.extend_from_slice(&size.to_le_bytes());
        offsets.push(data_len);
        sizes.push(size);
        data_len = pad64(size).and_then(|p| data_len.checked_add(p)).ok_or(
            AprErrorKind::FieldOverflow {
                what: "total data size",
                value: u64::MAX,
            },
        )?;
    }
    if metadata.contains_key(VOCAB_KEY) {
        flags |= flag::HAS_VOCAB;
    }
    let data_off = pad64(index.len() as u64)
        .and_then(|i| i.checked_add(index_off))
        .ok_or(overflow("data offset"))?;
    let file_len = data_off
        .checked_add(data_len)
        .and_then(|l| l.checked_add(4))
        .ok_or(overflow("file length"))?;

    let mut prefix = Vec::with_capacity(usize::try_from(data_off).unwrap_or(0));
    prefix.extend_from_slice(&MAGIC);
    prefix.extend_from_slice(&[VERSION.0, VERSION.1]);
    prefix.extend_from_slice(&flags.to_le_bytes());
    prefix.extend_from_slice(&count.to_le_bytes());
    prefix.extend_from_slice(&HEADER_LEN.to_le_bytes());
    prefix.extend_from_slice(&meta_size.to_le_bytes());
    prefix.extend_from_slice(&index_off.to_le_bytes());
    prefix.extend_from_slice(&data_off.to_le_bytes());
    prefix.resize(usize::try_from(HEADER_LEN).unwrap_or(0), 0);
    let crc = header_crc(&prefix).unwrap_or(0);
    if let Some(slot) = prefix.get_mut(40..44) {
        slot.copy_from_slice(&crc.to_le_bytes());
    }
    prefix.extend_from_slice(&json);
    prefix.resize(usize::try_from(index_off).unwrap_or(0), 0);
    prefix.extend_from_slice(&index);
    // Zero bytes up to the first tensor (none unless the OFFSET-MISALIGN mutant shifted it).
    let first = offsets.first().copied().unwrap_or(0);
    prefix.resize(
        usize::try_from(data_off.saturating_add(first)).unwrap_or(0),
        0,
    );
    Ok(AprLayout {
        prefix,
        order,
        offsets,
        sizes,
        flags,
        file_len,
    })
}

/// Passes writes through to `inner`, hashing (CRC-32) and counting them.
struct HashingWriter<'w> {
    inner: &'w mut dyn Write,
    hasher: crc32fast::Hasher,
    written: u64,
}

/// Slices at least this long are hashed on a second thread while the sink writes them (a
/// mapped input range is then copied by the kernel while we read it for the CRC).
const PARALLEL_HASH_BYTES: usize = 1 << 20;

impl Write for HashingWriter<'_> {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        if buf.len() >= PARALLEL_HASH_BYTES {
            let inner = &mut self.inner;
            let (written, part) = std::thread::scope(|s| {
                let h = s.spawn(|| {
                    let mut h = crc32fast::Hasher::new();
                    h.update(buf);
                    h
                });
                (inner.write_all(buf), h.join())
            });
            written?;
            let part = part.map_err(|_| std::io::Error::other("CRC thread panicked"))?;
            self.hasher.combine(&part);
            self.written += buf.len() as u64;
            return Ok(buf.len());
        }
        let n = self.inner.write(buf)?;
        let done = buf.get(..n).unwrap_or(&[]);
        self.hasher.update(done);
        self.written += done.len() as u64;
        Ok(n)
    }
    fn flush(&mut self) -> std::io::Result<()> {
        self.inner.flush()
    }
}

/// Streams a whole file to `w` (see the module invariants); returns its length.
/// `data(i, w)` must write exactly the bytes of `tensors[i]`; it is called once per tensor,
/// in index order.
pub fn write_apr_to(
    w: &mut dyn Write,
    metadata: &Map<String, Value>,
    tensors: &[AprTensorSpec],
    data: &mut dyn FnMut(usize, &mut dyn Write) -> std::io::Result<()>,
) -> Result<u64, AprErrorKind> {
    let layout = plan_apr(metadata, tensors)?;
    let io = |op: String| move |source| AprErrorKind::Io { op, source };
    let mut hw = HashingWriter {
        inner: w,
        hasher: crc32fast::Hasher::new(),
        written: 0,
    };
    hw.write_all(&layout.prefix)
        .map_err(io("writing header, metadata and index".into()))?;
    let zeros = [0u8; ALIGN as usize];
    for ((&i, &offset), &size) in layout.order.iter().zip(&layout.offsets).zip(&layout.sizes) {
        let name = tensors.get(i).map(|t| t.name).unwrap_or_default();
        let before = hw.written;
        data(i, &mut hw).map_err(io(format!(
            "writing tensor {name:?} at data offset {offset}"
        )))?;
        let written = hw.written - before;
        if written != size {
            return Err(AprErrorKind::WrongByteCount {
                tensor: name.to_string(),
                written,
                expected: size,
            });
        }
        let pad = pad64(size).unwrap_or(size) - size;
        hw.write_all(
            zeros
                .get(..usize::try_from(pad).unwrap_or(0))
                .unwrap_or(&[]),
        )
        .map_err(io(format!("padding tensor {name:?}")))?;
    }
    let crc = hw.hasher.clone().finalize();
    hw.inner
        .write_all(&crc.to_le_bytes())
        .map_err(io("writing footer".into()))?;
    hw.inner.flush().map_err(io("flush".into()))?;
    Ok(hw.written + 4)
}

/// Writes an APR file at `out` atomically: a temp file in the same directory, renamed over
/// `out` once complete and synced. Refuses an existing directory.
pub fn write_apr(
    out: &Path,
    metadata: &Map<String, Value>,
    tensors: &[AprTensorSpec],
    data: &mut dyn FnMut(usize, &mut dyn Write) -> std::io::Result<()>,
) -> Result<(), AprError> {
    let err = |kind| AprError {
        path: out.to_path_buf(),
        kind,
    };
    let io = |op: &'static str| {
        move |source| {
            err(AprErrorKind::Io {
                op: op.into(),
                source,
            })
        }
    };
    if out.is_dir() {
        return Err(err(AprErrorKind::OutputIsDirectory));
    }
    let dir = match out.parent() {
        Some(p) if !p.as_os_str().is_empty() => p,
        _ => Path::new("."),
    };
    let tmp = tempfile::Builder::new()
        .prefix(".apr-qa-")
        .suffix(".apr.tmp")
        .tempfile_in(dir)
        .map_err(io("create temp file"))?;
    {
        let mut bw = crate::formats::passthrough::FileSink::new(tmp.as_file());
        write_apr_to(&mut bw, metadata, tensors, data).map_err(err)?;
        bw.flush().map_err(io("flush"))?;
    }
    // No fsync: the rename makes the write atomic for every process outcome (a killed
    // conversion leaves nothing under the final name); durability across power loss is the
    // caller's (as for `cp`), and an fsync per file would double conversion time.
    tmp.persist(out).map_err(|e| {
        err(AprErrorKind::Io {
            op: "rename temp file".into(),
            source: e.error,
        })
    })?;
    Ok(())
}

/// An APR file in memory, `data[i]` being the bytes of `tensors[i]` (golden tests, small files).
pub fn apr_layout_bytes(
    metadata: &Map<String, Value>,
    tensors: &[AprTensorSpec],
    data: &[&[u8]],
) -> Result<Vec<u8>, AprError> {
    let mut out = Vec::new();
    let mut cb =
        |i: usize, w: &mut dyn Write| w.write_all(data.get(i).copied().unwrap_or_default());
    write_apr_to(&mut out, metadata, tensors, &mut cb).map_err(|kind| AprError {
        path: MEMORY_PATH.into(),
        kind,
    })?;
    Ok(out)
}

// ---------------------------------------------------------------------------------------------
// Resolving a dtype byte (§13 "Reading"): shared by the reader and the writer's read-back check.
// ---------------------------------------------------------------------------------------------

/// Whether `metadata` marks its dtype bytes as GGML ids; an unknown table is an error.
pub fn dtype_table_is_ggml(metadata: &Map<String, Value>) -> Result<bool, AprErrorKind> {
    match metadata.get(DTYPE_TABLE_KEY) {
        None => Ok(false),
        Some(Value::String(s)) if s == APR_DTYPE_TABLE_GGML => Ok(true),
        Some(v) => Err(AprErrorKind::UnknownDtypeTable {
            value: v.to_string(),
        }),
    }
}

/// A dtype byte resolved to a type.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Resolved {
    /// The type.
    pub dtype: AprDtype,
    /// Set when the byte had several meanings and the size picked this one.
    pub interpretation: Option<String>,
}

/// Why a dtype byte could not be resolved.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Unresolved {
    /// The byte means nothing under the table.
    Unknown,
    /// No candidate's byte size equals the entry's size.
    NoFit(Vec<AprDtype>),
    /// Several candidates' byte sizes equal it.
    Ambiguous(Vec<AprDtype>),
}

/// Who gives `byte` the meaning `d`: "GGML", "APR-native" or "aprender".
pub fn byte_origin(byte: u8, d: AprDtype) -> &'static str {
    match d {
        AprDtype::Ggml(t) if t.id() == u32::from(byte) => "GGML",
        AprDtype::AprQ4 | AprDtype::AprQ8 if AprDtype::candidates(byte, true).contains(&d) => {
            "APR-native"
        }
        AprDtype::Ggml(_) | AprDtype::U8 | AprDtype::AprQ4 | AprDtype::AprQ8 => "aprender",
    }
}

/// Resolves `byte` for a tensor of `n_elements` and `size` bytes (§13): with the GGML table
/// the byte has one meaning and the size must match it; without it every meaning
/// ([`AprDtype::candidates`]) whose byte size equals `size` is kept, and exactly one must be.
pub fn resolve_dtype(
    byte: u8,
    n_elements: u64,
    size: u64,
    ggml_table: bool,
) -> Result<Resolved, Unresolved> {
    let candidates = AprDtype::candidates(byte, ggml_table);
    if candidates.is_empty() {
        return Err(Unresolved::Unknown);
    }
    let fits: Vec<AprDtype> = candidates
        .iter()
        .copied()
        .filter(|d| d.byte_size(n_elements) == Some(size))
        .collect();
    match fits.as_slice() {
        [] => Err(Unresolved::NoFit(candidates)),
        [d] if candidates.len() == 1 => Ok(Resolved {
            dtype: *d,
            interpretation: None,
        }),
        [d] => {
            let others: Vec<String> = candidates
                .iter()
                .filter(|c| *c != d)
                .map(|c| match c.byte_size(n_elements) {
                    Some(n) => format!("{} ({}) would need {n}", c.name(), byte_origin(byte, *c)),
                    None => format!(
                        "{} ({}) has no whole blocks",
                        c.name(),
                        byte_origin(byte, *c)
                    ),
                })
                .collect();
            let interpretation = format!(
                "byte {byte} read as {} ({}) by size: {size} bytes for {n_elements} elements; {}",
                d.name(),
                byte_origin(byte, *d),
                others.join(", ")
            );
            Ok(Resolved {
                dtype: *d,
                interpretation: Some(interpretation),
            })
        }
        [_, _, ..] => Err(Unresolved::Ambiguous(fits)),
    }
}

/// "[Q5_0 (GGML), I8 (aprender)]".
pub(super) fn list_candidates(byte: u8, c: &[AprDtype]) -> String {
    let names: Vec<String> = c
        .iter()
        .map(|d| format!("{} ({})", d.name(), byte_origin(byte, *d)))
        .collect();
    format!("[{}]", names.join(", "))
}

// ---------------------------------------------------------------------------------------------
// Interop: how aprender and realizar would read the same bytes (§7, §11, §13).
// ---------------------------------------------------------------------------------------------

/// Another implementation's APR reader.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum ForeignReader {
    /// aprender's `AprV2Reader` (`TensorDType`).
    Aprender,
    /// realizar's `AprV2Model` (`TensorEntry::from_binary`).
    RealizarV2Model,
    /// realizar's `AprTransformer` decoder (`dequant_by_dtype`).
    RealizarTransformer,
}

impl ForeignReader {
    /// Every reader modelled.
    pub const ALL: [ForeignReader; 3] = [
        Self::Aprender,
        Self::RealizarV2Model,
        Self::RealizarTransformer,
    ];
    /// Display name.
    pub fn name(self) -> &'static str {
        match self {
            Self::Aprender => "aprender",
            Self::RealizarV2Model => "realizar AprV2Model",
            Self::RealizarTransformer => "realizar AprTransformer",
        }
    }
}

/// A tensor another reader would take as a different type than this file means.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct InteropFinding {
    /// Tensor name.
    pub tensor: String,
    /// Its dtype byte.
    pub byte: u8,
    /// The type apr-qa resolved.
    pub ours: AprDtype,
    /// The other reader.
    pub reader: ForeignReader,
    /// What it reads instead; `None`: it rejects the whole file.
    pub theirs: Option<AprDtype>,
}

/// For GGML id `t`, per §7: (aprender accepts it, realizar AprV2Model names it, realizar
/// AprTransformer decodes it as — `None`: falls back to F32). Bytes 3–9, which aprender and
/// realizar partly give their own meanings, are overridden in [`foreign_reading`].
fn foreign_ggml(t: GgmlType) -> (bool, bool, Option<GgmlType>) {
    use GgmlType as G;
    match t {
        G::F32 | G::F16 | G::Q4_K | G::Q6_K | G::BF16 => (true, true, Some(t)),
        G::Q4_0 | G::Q4_1 | G::Q5_0 | G::Q5_1 | G::Q8_0 | G::Q8_1 => (false, true, Some(t)),
        G::Q5_K => (false, true, Some(G::Q4_K)),
        G::Q2_K | G::Q3_K | G::IQ2_XXS | G::IQ2_XS => (false, true, None),
        G::Q8_K
        | G::IQ3_XXS
        | G::IQ1_S
        | G::IQ4_NL
        | G::IQ3_S
        | G::IQ2_S
        | G::IQ4_XS
        | G::I8
        | G::I16
        | G::I32
        | G::I64
        | G::F64
        | G::IQ1_M
        | G::TQ1_0
        | G::TQ2_0
        | G::MXFP4
        | G::NVFP4
        | G::Q1_0
        | G::Q2_0 => (false, false, None),
    }
}

/// How `reader` takes dtype `byte` of a tensor of `n_elements` and `size` bytes (§7 table);
/// `None`: it rejects the file.
pub fn foreign_reading(
    reader: ForeignReader,
    byte: u8,
    n_elements: u64,
    size: u64,
) -> Option<AprDtype> {
    let legacy = aprender_meaning(byte);
    let ggml = GgmlType::try_from(u32::from(byte)).ok();
    let native = AprDtype::candidates(byte, true)
        .into_iter()
        .find(|d| matches!(d, AprDtype::AprQ4 | AprDtype::AprQ8));
    let f32 = AprDtype::Ggml(GgmlType::F32);
    match (reader, legacy) {
        (ForeignReader::Aprender, _) => legacy
            .or(native)
            .or(ggml.filter(|&t| foreign_ggml(t).0).map(AprDtype::Ggml)),
        (ForeignReader::RealizarV2Model, Some(d @ (AprDtype::AprQ4 | AprDtype::AprQ8))) => Some(d),
        (ForeignReader::RealizarV2Model, _) => Some(
            native
                .or(ggml.filter(|&t| foreign_ggml(t).1).map(AprDtype::Ggml))
                .unwrap_or(f32),
        ),
        // Byte 8: Q8_0 when the size says so, else APR-Q4.
        (ForeignReader::RealizarTransformer, Some(AprDtype::AprQ4)) => Some(
            ggml.map(AprDtype::Ggml)
                .filter(|d| d.byte_size(n_elements) == Some(size))
                .unwrap_or(AprDtype::AprQ4),
        ),
        (ForeignReader::RealizarTransformer, Some(AprDtype::AprQ8)) => Some(AprDtype::AprQ8),
        (ForeignReader::RealizarTransformer, _) => Some(
            ggml.and_then(|t| foreign_ggml(t).2)
                .map(AprDtype::Ggml)
                .unwrap_or(f32),
        ),
    }
}

/// Every (tensor, reader) pair where the reader would not read the type this file means.
pub(super) fn dtype_findings(entries: &[AprEntry]) -> Vec<InteropFinding> {
    let mut out = Vec::new();
    for e in entries {
        for reader in ForeignReader::ALL {
            let theirs = foreign_reading(reader, e.byte, e.n_elements(), e.size);
            if theirs != Some(e.dtype) {
                let (tensor, byte, ours) = (e.name.clone(), e.byte, e.dtype);
                out.push(InteropFinding {
                    tensor,
                    byte,
                    ours,
                    reader,
                    theirs,
                });
            }
        }
    }
    out
}

/// One line per (reader, byte, ours, theirs), in first-occurrence order.
pub(super) fn summarize(interop: &[InteropFinding]) -> Vec<String> {
    let mut groups: Vec<(&InteropFinding, usize)> = Vec::new();
    for f in interop {
        let same = |g: &&mut (&InteropFinding, usize)| {
            (g.0.reader, g.0.byte, g.0.ours, g.0.theirs) == (f.reader, f.byte, f.ours, f.theirs)
        };
        match groups.iter_mut().find(same) {
            Some(g) => g.1 += 1,
            None => groups.push((f, 1)),
        }
    }
    groups
        .into_iter()
        .map(|(f, n)| {
            let what = match f.theirs {
                Some(d) => format!("reads byte {} as {}", f.byte, d.name()),
                None => format!("rejects the file for byte {}", f.byte),
            };
            format!(
                "{} {what} where this file means {}: {n} tensor(s), first {:?}",
                f.reader.name(),
                f.ours.name(),
                f.tensor
            )
        })
        .collect()
}

/// Config-key spellings realizar's `AprMetadata` treats as one field (§4); two of a group
/// present make its loader drop all metadata.
const CONFIG_ALIASES: [&[&str]; 8] = [
    &["hidden_size", "hidden_dim", "d_model", "n_embd"],
    &["num_layers", "n_layers", "num_hidden_layers", "n_layer"],
    &["num_heads", "n_heads", "num_attention_heads", "n_head"],
    &["num_kv_heads", "n_kv_heads", "num_key_value_heads"],
    &["vocab_size", "n_vocab"],
    &[
        "intermediate_size",
        "ffn_dim",
        "intermediate_dim",
        "n_inner",
    ],
    &[
        "max_position_embeddings",
        "max_seq_len",
        "context_length",
        "n_ctx",
    ],
    &["rms_norm_eps", "layer_norm_eps", "norm_eps"],
];

/// Metadata that other readers would take differently.
pub(super) fn metadata_findings(metadata: &Map<String, Value>, flags: u16) -> Vec<String> {
    let mut out = Vec::new();
    for group in CONFIG_ALIASES {
        let present: Vec<&str> = group
            .iter()
            .copied()
            .filter(|k| metadata.contains_key(*k))
            .collect();
        if present.len() > 1 {
            out.push(format!(
                "metadata has {present:?} for one config field: realizar's AprV2Model then loads empty metadata; apr-qa takes {:?}",
                present.first().copied().unwrap_or_default()
            ));
        }
    }
    if metadata.contains_key("tokenizer.model") && !metadata.contains_key("tokenizer.model_type") {
        out.push("tokenizer model is under \"tokenizer.model\", which realizar does not read (it reads \"tokenizer.model_type\")".into());
    }
    let has_vocab = metadata.contains_key(VOCAB_KEY);
    if has_vocab != (flags & flag::HAS_VOCAB != 0) {
        out.push(format!(
            "HAS_VOCAB flag is {} but metadata {} {VOCAB_KEY:?}",
            flags & flag::HAS_VOCAB != 0,
            if has_vocab { "has" } else { "lacks" }
        ));
    }
    out
}

/// aprender's meaning of `byte` where it differs from GGML's (§7), if any.
pub fn aprender_meaning(byte: u8) -> Option<AprDtype> {
    APRENDER_BYTE_MEANINGS
        .iter()
        .find(|(b, _)| *b == byte)
        .map(|&(_, d)| d)
}

/// GH-191 mutant: with the fault on, a GGML type's byte is its position in the writer's own
/// list of types instead of its GGML id (None when off).
fn renumbered(d: AprDtype) -> Option<u8> {
    if !crate::fault::active(crate::fault::Fault::Gh191DtypeRenumber) {
        return None;
    }
    match d {
        AprDtype::Ggml(t) => GgmlType::ALL
            .iter()
            .position(|x| *x == t)
            .and_then(|i| u8::try_from(i).ok()),
        AprDtype::U8 | AprDtype::AprQ4 | AprDtype::AprQ8 => None,
    }
}
