//! APR v2 container reader (aprender's native format): `shared/APR-FORMAT.md` §2–8 and §13.
//! The writer, dtype-byte resolution and the interop model live in [`super::apr_write`].
//!
//! Invariants of every [`AprFile`] that [`AprFile::open`] / [`AprFile::from_bytes`] return:
//! - magic `APR\0` or `APR2`, major version 2, header CRC correct, and none of the flags apr-qa
//!   refuses (COLUMN_MAJOR, LZ4, ZSTD, ENCRYPTED, SHARDED: "unsupported", never a guess);
//! - header ≤ metadata ≤ index ≤ data, in that order, inside the file; data offset 64-aligned;
//! - metadata is one JSON object, keys in file order;
//! - the whole index was validated before the file was handed out: `tensor_count` entries inside
//!   `[tensor_index_offset, data_offset)`, names unique UTF-8, at most [`MAX_DIMS`] dims, every
//!   dtype byte resolved under the file's own dtype table (§13), `size` equal to the byte size of
//!   `dims` in that dtype, offsets 64-aligned, data inside the file, no two tensors overlapping;
//! - the file ends at the end of the last padded tensor (footer [`Footer::Absent`], a finding) or
//!   4 bytes later (footer CRC verified, [`Footer::Valid`]); anything else is an error.
//!
//! Hence [`AprFile::tensor_data`] is a plain slice for every entry of the file. Behaviour other
//! implementations would show on the same bytes is never an error: it is reported as text in
//! [`AprFile::findings`] and, per tensor, in [`AprFile::interop`] (gate F-APR-FORMAT-001).

#![deny(clippy::unwrap_used, clippy::expect_used, clippy::indexing_slicing)]

use std::collections::HashMap;
use std::path::{Path, PathBuf};

use serde_json::{Map, Value};

use super::apr_write::{
    dtype_findings, dtype_table_is_ggml, list_candidates, metadata_findings, resolve_dtype,
    summarize, Unresolved,
};
use super::{FileBytes, FormatErrorKind};

pub use super::apr_write::{ForeignReader, InteropFinding};

use crate::dtype::AprDtype;

/// Magic of every v2 file apr-qa writes (`APR\0`).
pub const MAGIC: [u8; 4] = *b"APR\0";
/// Magic of v2 files from older writers (realizar accepts it, aprender rejects it).
pub const MAGIC_APR2: [u8; 4] = *b"APR2";
/// Magics of APR v1 (`APRN`: aprender's classical-ML container; `APR1`: realizar's name).
pub const MAGICS_V1: [[u8; 4]; 2] = [*b"APRN", *b"APR1"];
/// Version apr-qa writes (bytes 4, 5).
pub const VERSION: (u8, u8) = (2, 0);
/// Header length in bytes.
pub const HEADER_LEN: u64 = 64;
/// Alignment of metadata, index and every tensor's data.
pub const ALIGN: u64 = 64;
/// Most dims an index entry may have. aprender's writer keeps only the first 8 dims of a
/// shape, so no real file has more (GGML itself stops at 4).
pub const MAX_DIMS: usize = 8;
/// Smallest index entry: name_len, dtype, ndim, offset, size (§6).
pub const ENTRY_MIN_LEN: u64 = 20;
/// Metadata key whose value `"ggml"` says the dtype bytes are GGML ids (§13).
pub const DTYPE_TABLE_KEY: &str = "dtype_table";
/// Metadata key of the embedded vocabulary (drives the HAS_VOCAB flag).
pub const VOCAB_KEY: &str = "tokenizer.vocabulary";

/// Header flag bits (u16 at offset 6, §3).
pub mod flag {
    /// Payload LZ4-compressed (refused).
    pub const LZ4_COMPRESSED: u16 = 0x0001;
    /// Payload zstd-compressed (refused).
    pub const ZSTD_COMPRESSED: u16 = 0x0002;
    /// AES-256-GCM encrypted (refused).
    pub const ENCRYPTED: u16 = 0x0004;
    /// Ed25519-signed (nobody verifies; a finding).
    pub const SIGNED: u16 = 0x0008;
    /// One shard of a sharded model (refused).
    pub const SHARDED: u16 = 0x0010;
    /// Some tensor is quantized (informational).
    pub const QUANTIZED: u16 = 0x0020;
    /// Whisper filterbank present (informational).
    pub const HAS_FILTERBANK: u16 = 0x0040;
    /// Model card present (informational).
    pub const HAS_MODEL_CARD: u16 = 0x0080;
    /// Streaming layout (informational).
    pub const STREAMING: u16 = 0x0100;
    /// Metadata embeds `tokenizer.vocabulary`.
    pub const HAS_VOCAB: u16 = 0x0200;
    /// Tensors are row-major (LAYOUT-002).
    pub const LAYOUT_ROW_MAJOR: u16 = 0x0400;
    /// Tensors are column-major (refused).
    pub const LAYOUT_COLUMN_MAJOR: u16 = 0x0800;
    /// Every bit §3 names.
    pub const KNOWN: u16 = 0x0FFF;
}

/// Flags apr-qa refuses to read, with their names.
const REFUSED_FLAGS: [(u16, &str); 5] = [
    (flag::LAYOUT_COLUMN_MAJOR, "LAYOUT_COLUMN_MAJOR"),
    (flag::LZ4_COMPRESSED, "LZ4_COMPRESSED"),
    (flag::ZSTD_COMPRESSED, "ZSTD_COMPRESSED"),
    (flag::ENCRYPTED, "ENCRYPTED"),
    (flag::SHARDED, "SHARDED"),
];

/// Path shown in errors of files read from or written to memory.
pub const MEMORY_PATH: &str = "<memory>";

/// `n` rounded up to a multiple of 64 (0 stays 0); `None` on overflow.
pub fn pad64(n: u64) -> Option<u64> {
    n.checked_next_multiple_of(ALIGN)
}

/// Header CRC (§2.1): CRC-32/IEEE over bytes 0..40 followed by 44..64. `None` unless
/// `header` is at least 64 bytes long.
pub fn header_crc(header: &[u8]) -> Option<u32> {
    let mut h = crc32fast::Hasher::new();
    h.update(header.get(..40)?);
    h.update(header.get(44..64)?);
    Some(h.finalize())
}

/// An APR error: the file and what is wrong with it.
#[derive(Debug, thiserror::Error)]
#[error("APR file {}: {kind}", path.display())]
pub struct AprError {
    /// The file read or written ([`MEMORY_PATH`] for in-memory bytes).
    pub path: PathBuf,
    /// What went wrong, with tensor names and offsets.
    pub kind: AprErrorKind,
}

/// Every way an APR file (or a request to write one) can be wrong. Offsets are absolute
/// unless the message says otherwise.
#[allow(missing_docs)] // the #[error] text documents each variant and field
#[derive(Debug, thiserror::Error)]
pub enum AprErrorKind {
    #[error("{op}: {source}")]
    Io { op: String, source: std::io::Error },
    #[error("truncated: {what} needs bytes {start}..{end}, but only {limit} are available")]
    Truncated {
        what: String,
        start: u64,
        end: u64,
        limit: u64,
    },
    #[error("bad magic {found:02x?} at offset 0 (expected \"APR\\0\" or \"APR2\")")]
    BadMagic { found: [u8; 4] },
    #[error(
        "unsupported: APR v1 container (magic {magic:?}) has no tensor index; convert it to v2"
    )]
    V1 { magic: String },
    #[error("unsupported: version {major}.{minor} at offset 4 (only 2.x is read)")]
    UnsupportedVersion { major: u8, minor: u8 },
    #[error("unsupported: flag {flag} (0x{bit:04x}) is set in flags 0x{flags:04x} at offset 6")]
    UnsupportedFlag {
        flag: &'static str,
        bit: u16,
        flags: u16,
    },
    #[error("header CRC at offset 40 is 0x{stored:08x}, bytes 0..40+44..64 give 0x{computed:08x}")]
    HeaderCrc { stored: u32, computed: u32 },
    #[error(
        "footer CRC at offset {offset} is 0x{stored:08x}, bytes 0..{offset} give 0x{computed:08x}"
    )]
    FooterCrc {
        offset: u64,
        stored: u32,
        computed: u32,
    },
    #[error("{region} spans {start}..{end}: {problem}")]
    Layout {
        region: &'static str,
        start: u64,
        end: u64,
        problem: String,
    },
    #[error("data_offset {offset} (header offset 32) is not a multiple of 64")]
    DataOffsetMisaligned { offset: u64 },
    #[error("metadata at offset {offset} is not a JSON object: {message}")]
    Metadata { offset: u64, message: String },
    #[error("metadata {DTYPE_TABLE_KEY:?} is {value}; the only table known is \"ggml\"")]
    UnknownDtypeTable { value: String },
    #[error("tensor_count {count} needs at least {need} index bytes at offset {offset}; {available} exist")]
    TooManyTensors {
        count: u32,
        offset: u64,
        need: u64,
        available: u64,
    },
    #[error("index entry {index} at offset {offset}: name is not UTF-8")]
    NameNotUtf8 { index: u32, offset: u64 },
    #[error(
        "tensor {tensor:?} (index entry at offset {offset}): {ndim} dims, more than {MAX_DIMS}"
    )]
    TooManyDims {
        tensor: String,
        offset: u64,
        ndim: usize,
    },
    #[error(
        "tensor {tensor:?} (index entry at offset {offset}): element count of {dims:?} overflows"
    )]
    ElementOverflow {
        tensor: String,
        offset: u64,
        dims: Vec<u64>,
    },
    #[error("tensor {tensor:?} (index entry at offset {offset}): unknown dtype byte {byte} ({table} table)")]
    UnknownDtype {
        tensor: String,
        offset: u64,
        byte: u8,
        table: &'static str,
    },
    #[error("tensor {tensor:?} (index entry at offset {offset}): byte {byte} = {dtype}, {n_elements} elements need {expected}, size is {size}")]
    SizeMismatch {
        tensor: String,
        offset: u64,
        byte: u8,
        dtype: &'static str,
        n_elements: u64,
        expected: String,
        size: u64,
    },
    #[error("tensor {tensor:?} (index entry at offset {offset}): byte {byte}, {n_elements} elements, size {size} fits none of {candidates}")]
    Unresolvable {
        tensor: String,
        offset: u64,
        byte: u8,
        n_elements: u64,
        size: u64,
        candidates: String,
    },
    #[error("tensor {tensor:?} (index entry at offset {offset}): byte {byte}, {n_elements} elements, size {size} fits all of {candidates}; no {DTYPE_TABLE_KEY:?} marker decides")]
    Ambiguous {
        tensor: String,
        offset: u64,
        byte: u8,
        n_elements: u64,
        size: u64,
        candidates: String,
    },
    #[error(
        "tensor {tensor:?}: data offset {offset} (relative to data_offset) is not a multiple of 64"
    )]
    TensorMisaligned { tensor: String, offset: u64 },
    #[error("tensor {tensor:?}: data {start}..{end} runs past the end of the file ({len} bytes)")]
    TensorOutOfBounds {
        tensor: String,
        start: u64,
        end: u64,
        len: u64,
    },
    #[error("tensor {tensor:?}: data {start}..{end} overlaps tensor {other:?} at {other_start}..{other_end}")]
    Overlap {
        tensor: String,
        start: u64,
        end: u64,
        other: String,
        other_start: u64,
        other_end: u64,
    },
    #[error("tensor {tensor:?}: name appears twice in the index (again at offset {offset})")]
    DuplicateName { tensor: String, offset: u64 },
    #[error("file is {len} bytes, but its padded tensor data ends at {data_end}: expected {data_end} (no footer) or {data_end} + 4")]
    UnexpectedLength { len: u64, data_end: u64 },
    #[error("output path is an existing directory")]
    OutputIsDirectory,
    #[error("tensor {tensor:?}: name is {len} bytes, more than the {max} an index entry holds")]
    NameTooLong {
        tensor: String,
        len: usize,
        max: usize,
    },
    #[error("tensor {tensor:?}: {ndim} dims, more than {MAX_DIMS}")]
    TooManyDimsToWrite { tensor: String, ndim: usize },
    #[error("tensor {tensor:?}: dtype {dtype} has no APR byte apr-qa writes")]
    UnwritableDtype { tensor: String, dtype: &'static str },
    #[error("tensor {tensor:?} (index entry at offset {offset}): row length {row} (last of dims {dims:?}) is not a multiple of {dtype}'s block size {block_size}: a block would straddle two rows")]
    PartialBlockRow {
        tensor: String,
        offset: u64,
        dims: Vec<u64>,
        row: u64,
        dtype: &'static str,
        block_size: u64,
    },
    #[error("tensor {tensor:?}: dims {dims:?} have no exact byte size in {dtype} (partial block or overflow)")]
    NoByteSize {
        tensor: String,
        dtype: &'static str,
        dims: Vec<u64>,
    },
    #[error("tensor {tensor:?}: would not read back as {dtype}: {reason}")]
    NotReadBack {
        tensor: String,
        dtype: &'static str,
        reason: String,
    },
    #[error("tensor {tensor:?}: the data callback wrote {written} bytes, expected {expected}")]
    WrongByteCount {
        tensor: String,
        written: u64,
        expected: u64,
    },
    #[error("{what} is {value}, more than its header field holds")]
    FieldOverflow { what: &'static str, value: u64 },
}

/// Whether the footer CRC was there (and correct).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Footer {
    /// Present, and equal to the CRC-32 of every preceding byte.
    Valid,
    /// The file ends right after the last tensor's padding (realizar's converter).
    Absent,
}

/// The 64-byte header, field by field (§2.1).
#[allow(missing_docs)] // field names are the spec's
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct AprHeader {
    pub magic: [u8; 4],
    pub version: (u8, u8),
    pub flags: u16,
    pub tensor_count: u32,
    pub metadata_offset: u64,
    pub metadata_size: u32,
    pub tensor_index_offset: u64,
    pub data_offset: u64,
    pub header_checksum: u32,
}

/// One validated index entry.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct AprEntry {
    /// Tensor name.
    pub name: String,
    /// The type the dtype byte was resolved to.
    pub dtype: AprDtype,
    /// The dtype byte as stored.
    pub byte: u8,
    /// Shape, row-major, outermost first.
    pub dims: Vec<u64>,
    /// Data offset relative to `data_offset` (64-aligned).
    pub offset: u64,
    /// Exact data length in bytes, padding excluded.
    pub size: u64,
    /// When the byte had several meanings and the size chose one: which, and why.
    pub interpretation: Option<String>,
    /// Absolute offset of this entry in the index (for messages).
    pub entry_offset: u64,
}

impl AprEntry {
    /// Product of the dims (validated not to overflow for entries of an [`AprFile`];
    /// saturates at `u64::MAX` otherwise).
    pub fn n_elements(&self) -> u64 {
        let n = self.dims.iter().try_fold(1u64, |a, &d| a.checked_mul(d));
        n.unwrap_or(u64::MAX)
    }
}

/// A validated APR v2 file (see the module invariants).
#[derive(Debug)]
pub struct AprFile {
    /// Where it came from ([`MEMORY_PATH`] for [`AprFile::from_bytes`]).
    pub path: PathBuf,
    /// The header fields as stored.
    pub header: AprHeader,
    /// (major, minor).
    pub version: (u8, u8),
    /// Header flags.
    pub flags: u16,
    /// Metadata, keys in file order.
    pub metadata: Map<String, Value>,
    /// Metadata JSON exactly as stored (padding excluded).
    pub metadata_raw: Vec<u8>,
    /// Whether metadata says `"dtype_table": "ggml"` (bytes are GGML ids).
    pub ggml_dtype_table: bool,
    /// Index entries, in index order.
    pub entries: Vec<AprEntry>,
    /// Absolute offset of the data section.
    pub data_offset: u64,
    /// Absolute end of the last padded tensor (where the footer starts, if any).
    pub data_end: u64,
    /// Footer state.
    pub footer: Footer,
    /// Interop findings, human-readable; never errors.
    pub findings: Vec<String>,
    /// Per tensor: where another reader would take the dtype byte differently.
    pub interop: Vec<InteropFinding>,
    by_name: HashMap<String, usize>,
    backing: FileBytes,
}

impl AprFile {
    /// Maps and validates the file at `path`.
    pub fn open(path: impl AsRef<Path>) -> Result<Self, AprError> {
        let path = path.as_ref();
        let bytes = super::read_file_bytes(path).map_err(|e| AprError {
            path: path.to_path_buf(),
            kind: match e.kind {
                FormatErrorKind::Io { op, source } => AprErrorKind::Io {
                    op: op.into(),
                    source,
                },
                other => AprErrorKind::Io {
                    op: "open".into(),
                    source: std::io::Error::other(other.to_string()),
                },
            },
        })?;
        Self::from_backing(path.to_path_buf(), bytes)
    }

    /// Validates an APR file held in memory.
    pub fn from_bytes(bytes: Vec<u8>) -> Result<Self, AprError> {
        Self::from_backing(PathBuf::from(MEMORY_PATH), FileBytes::Owned(bytes))
    }

    fn from_backing(path: PathBuf, backing: FileBytes) -> Result<Self, AprError> {
        let p = match parse(&backing) {
            Ok(p) => p,
            Err(kind) => return Err(AprError { path, kind }),
        };
        let by_name = p
            .entries
            .iter()
            .enumerate()
            .map(|(i, e)| (e.name.clone(), i))
            .collect();
        Ok(AprFile {
            path,
            header: p.header,
            version: p.header.version,
            flags: p.header.flags,
            metadata: p.metadata,
            metadata_raw: p.metadata_raw,
            ggml_dtype_table: p.ggml_table,
            entries: p.entries,
            data_offset: p.header.data_offset,
            data_end: p.data_end,
            footer: p.footer,
            findings: p.findings,
            interop: p.interop,
            by_name,
            backing,
        })
    }

    /// The tensor's bytes (exactly `e.size`). Empty for an entry that is not from this file.
    pub fn tensor_data(&self, e: &AprEntry) -> &[u8] {
        let range = self.data_offset.checked_add(e.offset).and_then(|start| {
            let end = start.checked_add(e.size)?;
            Some(usize::try_from(start).ok()?..usize::try_from(end).ok()?)
        });
        range.and_then(|r| self.backing.get(r)).unwrap_or(&[])
    }

    /// The entry named `name`.
    pub fn entry(&self, name: &str) -> Option<&AprEntry> {
        self.by_name.get(name).and_then(|&i| self.entries.get(i))
    }

    /// The whole file.
    pub fn bytes(&self) -> &[u8] {
        &self.backing[..]
    }
}

/// Everything [`parse`] learns; the caller adds the backing bytes.
struct Parsed {
    header: AprHeader,
    metadata: Map<String, Value>,
    metadata_raw: Vec<u8>,
    ggml_table: bool,
    entries: Vec<AprEntry>,
    data_end: u64,
    footer: Footer,
    findings: Vec<String>,
    interop: Vec<InteropFinding>,
}

/// A bounded little-endian reader over `buf[..limit]`.
struct Cursor<'a> {
    buf: &'a [u8],
    pos: u64,
    limit: u64,
}

impl<'a> Cursor<'a> {
    fn take(&mut self, n: u64, what: &str) -> Result<&'a [u8], AprErrorKind> {
        let start = self.pos;
        let truncated = || AprErrorKind::Truncated {
            what: what.to_string(),
            start,
            end: start.saturating_add(n),
            limit: self.limit,
        };
        let end = start
            .checked_add(n)
            .filter(|&e| e <= self.limit)
            .ok_or_else(truncated)?;
        let range = usize::try_from(start).ok().zip(usize::try_from(end).ok());
        let bytes = range
            .and_then(|(s, e)| self.buf.get(s..e))
            .ok_or_else(truncated)?;
        self.pos = end;
        Ok(bytes)
    }
    fn array<const N: usize>(&mut self, what: &str) -> Result<[u8; N], AprErrorKind> {
        let b = self.take(N as u64, what)?;
        let mut out = [0u8; N];
        out.copy_from_slice(b);
        Ok(out)
    }
    fn u8(&mut self, what: &str) -> Result<u8, AprErrorKind> {
        Ok(u8::from_le_bytes(self.array(what)?))
    }
    fn u16(&mut self, what: &str) -> Result<u16, AprErrorKind> {
        Ok(u16::from_le_bytes(self.array(what)?))
    }
    fn u32(&mut self, what: &str) -> Result<u32, AprErrorKind> {
        Ok(u32::from_le_bytes(self.array(what)?))
    }
    fn u64(&mut self, what: &str) -> Result<u64, AprErrorKind> {
        Ok(u64::from_le_bytes(self.array(what)?))
    }
}

/// `bytes[start..end]` for offsets already checked against `bytes.len()`.
fn slice(bytes: &[u8], start: u64, end: u64) -> &[u8] {
    let range = usize::try_from(start).ok().zip(usize::try_from(end).ok());
    range.and_then(|(s, e)| bytes.get(s..e)).unwrap_or(&[])
}

/// Parses the 64-byte header: magic, CRC, version, flags (in that order, so a damaged
/// header reports its CRC rather than a random flag).
fn parse_header(bytes: &[u8], findings: &mut Vec<String>) -> Result<AprHeader, AprErrorKind> {
    let len = bytes.len() as u64;
    let mut c = Cursor {
        buf: bytes,
        pos: 0,
        limit: len,
    };
    let magic: [u8; 4] = c.array("magic")?;
    if MAGICS_V1.contains(&magic) {
        return Err(AprErrorKind::V1 {
            magic: String::from_utf8_lossy(&magic).into_owned(),
        });
    }
    if magic != MAGIC && magic != MAGIC_APR2 {
        return Err(AprErrorKind::BadMagic { found: magic });
    }
    let head = slice(bytes, 0, HEADER_LEN);
    let Some(computed) = header_crc(head) else {
        return Err(AprErrorKind::Truncated {
            what: "header".into(),
            start: 0,
            end: HEADER_LEN,
            limit: len,
        });
    };
    let version = (c.u8("version")?, c.u8("version")?);
    let flags = c.u16("flags")?;
    let tensor_count = c.u32("tensor_count")?;
    let metadata_offset = c.u64("metadata_offset")?;
    let metadata_size = c.u32("metadata_size")?;
    let tensor_index_offset = c.u64("tensor_index_offset")?;
    let data_offset = c.u64("data_offset")?;
    let header_checksum = c.u32("header_checksum")?;
    let reserved = c.take(HEADER_LEN - c.pos, "reserved")?;
    if header_checksum != computed {
        return Err(AprErrorKind::HeaderCrc {
            stored: header_checksum,
            computed,
        });
    }
    if version.0 != VERSION.0 {
        return Err(AprErrorKind::UnsupportedVersion {
            major: version.0,
            minor: version.1,
        });
    }
    if version != VERSION {
        findings.push(format!(
            "version {}.{} (apr-qa writes 2.0; no reader checks it)",
            version.0, version.1
        ));
    }
    for (bit, name) in REFUSED_FLAGS {
        if flags & bit != 0 {
            return Err(AprErrorKind::UnsupportedFlag {
                flag: name,
                bit,
                flags,
            });
        }
    }
    if magic == MAGIC_APR2 {
        findings.push(
            "magic \"APR2\" (older writers): realizar reads it, aprender rejects the file".into(),
        );
    }
    if flags & flag::LAYOUT_ROW_MAJOR == 0 {
        findings.push(
            "flags lack LAYOUT_ROW_MAJOR (realizar converter style); row-major assumed".into(),
        );
    }
    if flags & flag::SIGNED != 0 {
        findings.push("flag SIGNED is set; no APR v2 reader verifies a signature".into());
    }
    if flags & !flag::KNOWN != 0 {
        findings.push(format!(
            "unknown flag bits 0x{:04x} set",
            flags & !flag::KNOWN
        ));
    }
    if reserved.iter().any(|&b| b != 0) {
        findings.push("reserved header bytes 44..64 are not zero".into());
    }
    Ok(AprHeader {
        magic,
        version,
        flags,
        tensor_count,
        metadata_offset,
        metadata_size,
        tensor_index_offset,
        data_offset,
        header_checksum,
    })
}

/// Checks header ≤ metadata ≤ index ≤ data ≤ EOF.
fn check_regions(h: &AprHeader, len: u64) -> Result<u64, AprErrorKind> {
    let meta_end = h.metadata_offset.checked_add(u64::from(h.metadata_size));
    let Some(meta_end) =
        meta_end.filter(|&e| h.metadata_offset >= HEADER_LEN && e <= h.tensor_index_offset)
    else {
        return Err(AprErrorKind::Layout {
            region: "metadata",
            start: h.metadata_offset,
            end: h.metadata_offset.saturating_add(u64::from(h.metadata_size)),
            problem: format!(
                "must lie between the header (64) and the index ({})",
                h.tensor_index_offset
            ),
        });
    };
    if h.tensor_index_offset > h.data_offset {
        let problem = "the index starts after the data".to_string();
        let (start, end) = (h.tensor_index_offset, h.data_offset);
        return Err(AprErrorKind::Layout {
            region: "index",
            start,
            end,
            problem,
        });
    }
    if h.data_offset > len {
        let problem = format!("data_offset lies past the end of the file ({len} bytes)");
        return Err(AprErrorKind::Layout {
            region: "data",
            start: h.data_offset,
            end: len,
            problem,
        });
    }
    if !h.data_offset.is_multiple_of(ALIGN) {
        return Err(AprErrorKind::DataOffsetMisaligned {
            offset: h.data_offset,
        });
    }
    Ok(meta_end)
}

/// Parses and validates a whole file (module invariants).
fn parse(bytes: &[u8]) -> Result<Parsed, AprErrorKind> {
    let len = bytes.len() as u64;
    let mut findings = Vec::new();
    let header = parse_header(bytes, &mut findings)?;
    let meta_end = check_regions(&header, len)?;
    let metadata_raw = slice(bytes, header.metadata_offset, meta_end).to_vec();
    let metadata: Map<String, Value> =
        serde_json::from_slice(&metadata_raw).map_err(|e| AprErrorKind::Metadata {
            offset: header.metadata_offset,
            message: e.to_string(),
        })?;
    let ggml_table = dtype_table_is_ggml(&metadata)?;
    let entries = parse_index(bytes, &header, ggml_table)?;
    let data_end = check_data(&entries, header.data_offset, len)?;
    let footer = check_footer(bytes, data_end)?;
    if footer == Footer::Absent {
        findings.push(format!("no footer CRC: the file ends at the last tensor's padding ({data_end}), as realizar's converter writes it"));
    }
    let sorted = entries
        .windows(2)
        .all(|w| matches!(w, [a, b] if a.name.as_bytes() < b.name.as_bytes()));
    if !sorted {
        findings.push(
            "index is not sorted by name: aprender 0.72.3 rejects such a file, realizar reads it"
                .into(),
        );
    }
    findings.extend(metadata_findings(&metadata, header.flags));
    let interop = dtype_findings(&entries);
    findings.extend(summarize(&interop));
    Ok(Parsed {
        header,
        metadata,
        metadata_raw,
        ggml_table,
        entries,
        data_end,
        footer,
        findings,
        interop,
    })
}

/// Parses exactly `tensor_count` entries inside `[tensor_index_offset, data_offset)` and
/// resolves their dtypes; names must be unique.
fn parse_index(
    bytes: &[u8],
    h: &AprHeader,
    ggml_table: bool,
) -> Result<Vec<AprEntry>, AprErrorKind> {
    let available = h.data_offset.saturating_sub(h.tensor_index_offset);
    let need = u64::from(h.tensor_count).saturating_mul(ENTRY_MIN_LEN);
    if need > available {
        let (count, offset) = (h.tensor_count, h.tensor_index_offset);
        return Err(AprErrorKind::TooManyTensors {
            count,
            offset,
            need,
            available,
        });
    }
    let mut c = Cursor {
        buf: bytes,
        pos: h.tensor_index_offset,
        limit: h.data_offset,
    };
    let mut entries = Vec::with_capacity(usize::try_from(h.tensor_count).unwrap_or(0));
    let mut seen: HashMap<String, ()> = HashMap::new();
    let table = if ggml_table { "ggml" } else { "unmarked" };
    for index in 0..h.tensor_count {
        let entry_offset = c.pos;
        let name_len = c.u16("index entry name_len")?;
        let name_bytes = c.take(u64::from(name_len), "index entry name")?;
        let name =
            String::from_utf8(name_bytes.to_vec()).map_err(|_| AprErrorKind::NameNotUtf8 {
                index,
                offset: entry_offset,
            })?;
        let byte = c.u8("index entry dtype")?;
        let ndim = usize::from(c.u8("index entry ndim")?);
        if ndim > MAX_DIMS {
            return Err(AprErrorKind::TooManyDims {
                tensor: name,
                offset: entry_offset,
                ndim,
            });
        }
        let mut dims = Vec::with_capacity(ndim);
        for _ in 0..ndim {
            dims.push(c.u64("index entry dims")?);
        }
        let offset = c.u64("index entry offset")?;
        let size = c.u64("index entry size")?;
        let Some(n_elements) = dims.iter().try_fold(1u64, |a, &d| a.checked_mul(d)) else {
            return Err(AprErrorKind::ElementOverflow {
                tensor: name,
                offset: entry_offset,
                dims,
            });
        };
        let resolved = resolve_dtype(byte, n_elements, size, ggml_table).map_err(|u| {
            let (tensor, offset) = (name.clone(), entry_offset);
            match u {
                Unresolved::Unknown => AprErrorKind::UnknownDtype {
                    tensor,
                    offset,
                    byte,
                    table,
                },
                Unresolved::NoFit(c) if c.len() == 1 => {
                    let d = c.first().copied().unwrap_or(AprDtype::U8);
                    let expected = match d.byte_size(n_elements) {
                        Some(n) => format!("{n} bytes"),
                        None => "whole blocks".to_string(),
                    };
                    let dtype = d.name();
                    AprErrorKind::SizeMismatch {
                        tensor,
                        offset,
                        byte,
                        dtype,
                        n_elements,
                        expected,
                        size,
                    }
                }
                Unresolved::NoFit(c) => {
                    let candidates = list_candidates(byte, &c);
                    AprErrorKind::Unresolvable {
                        tensor,
                        offset,
                        byte,
                        n_elements,
                        size,
                        candidates,
                    }
                }
                Unresolved::Ambiguous(c) => {
                    let candidates = list_candidates(byte, &c);
                    AprErrorKind::Ambiguous {
                        tensor,
                        offset,
                        byte,
                        n_elements,
                        size,
                        candidates,
                    }
                }
            }
        })?;
        check_rows(&name, entry_offset, &dims, resolved.dtype)?;
        if seen.insert(name.clone(), ()).is_some() {
            return Err(AprErrorKind::DuplicateName {
                tensor: name,
                offset: entry_offset,
            });
        }
        entries.push(AprEntry {
            name,
            dtype: resolved.dtype,
            byte,
            dims,
            offset,
            size,
            interpretation: resolved.interpretation,
            entry_offset,
        });
    }
    Ok(entries)
}

/// Checks alignment, bounds and overlap of every tensor's data; returns the end of the last
/// padded tensor (`data_offset` when there are none).
fn check_data(entries: &[AprEntry], data_offset: u64, len: u64) -> Result<u64, AprErrorKind> {
    let mut spans = Vec::with_capacity(entries.len());
    let mut data_end = data_offset;
    for e in entries {
        if e.offset % ALIGN != 0 {
            return Err(AprErrorKind::TensorMisaligned {
                tensor: e.name.clone(),
                offset: e.offset,
            });
        }
        let start = data_offset.checked_add(e.offset);
        let end = start.and_then(|s| s.checked_add(e.size));
        let padded = start.zip(pad64(e.size)).and_then(|(s, p)| s.checked_add(p));
        match (start, end, padded) {
            (Some(start), Some(end), Some(padded)) if end <= len => {
                spans.push((start, end, e));
                data_end = data_end.max(padded);
            }
            _ => {
                return Err(AprErrorKind::TensorOutOfBounds {
                    tensor: e.name.clone(),
                    start: start.unwrap_or(u64::MAX),
                    end: end.unwrap_or(u64::MAX),
                    len,
                })
            }
        }
    }
    spans.retain(|(s, e, _)| e > s);
    spans.sort_by_key(|&(s, e, _)| (s, e));
    let mut prev: Option<(u64, u64, &AprEntry)> = None;
    for &(start, end, e) in &spans {
        if let Some((ps, pe, p)) = prev {
            if start < pe {
                return Err(AprErrorKind::Overlap {
                    tensor: e.name.clone(),
                    start,
                    end,
                    other: p.name.clone(),
                    other_start: ps,
                    other_end: pe,
                });
            }
        }
        if prev.is_none_or(|(_, pe, _)| end > pe) {
            prev = Some((start, end, e));
        }
    }
    Ok(data_end)
}

/// The file must end at `data_end` (no footer) or carry a correct CRC in the 4 bytes after.
fn check_footer(bytes: &[u8], data_end: u64) -> Result<Footer, AprErrorKind> {
    let len = bytes.len() as u64;
    if len == data_end {
        return Ok(Footer::Absent);
    }
    if data_end.checked_add(4) != Some(len) {
        return Err(AprErrorKind::UnexpectedLength { len, data_end });
    }
    let stored = slice(bytes, data_end, len);
    let stored = u32::from_le_bytes(
        stored
            .try_into()
            .map_err(|_| AprErrorKind::UnexpectedLength { len, data_end })?,
    );
    let computed = crc32fast::hash(slice(bytes, 0, data_end));
    if stored != computed {
        return Err(AprErrorKind::FooterCrc {
            offset: data_end,
            stored,
            computed,
        });
    }
    Ok(Footer::Valid)
}

/// Refuses a block-quantized tensor whose rows (last dim, row-major) are not whole blocks — the
/// total may still be whole blocks (`[2, 128]` of Q4_K is one block straddling two rows), so the
/// size check alone does not catch it. Readers and the writer share this check.
pub(crate) fn check_rows(
    name: &str,
    offset: u64,
    dims: &[u64],
    dtype: AprDtype,
) -> Result<(), AprErrorKind> {
    let block_size = dtype.row_block();
    let row = dims.last().copied().unwrap_or(1);
    if block_size > 1 && row % block_size != 0 {
        return Err(AprErrorKind::PartialBlockRow {
            tensor: name.to_string(),
            offset,
            dims: dims.to_vec(),
            row,
            dtype: dtype.name(),
            block_size,
        });
    }
    Ok(())
}
