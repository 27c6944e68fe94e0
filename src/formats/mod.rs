//! File formats: detection, zero-copy readers and streaming writers.
//!
//! Invariants every reader here keeps (STYLE §4):
//! - every byte of an input is read through [`cursor::Cursor`], which bounds-checks each read and
//!   names the absolute offset of any failure;
//! - no allocation is proportional to a count declared in the file before that count has been
//!   bounded by the bytes that remain (count × minimum entry size ≤ remaining);
//! - every way an input can be wrong has its own [`FormatErrorKind`] variant, carrying the
//!   offset, tensor or key and the numbers involved; there are no silent fallbacks;
//! - files are mapped with [`map_file`]; with `passthrough`'s `copy_file_range` the only
//!   `unsafe` calls outside the inference kernels.

pub mod cursor;
pub mod detect;
pub mod gguf;
mod gguf_value;
pub mod gguf_write;

use std::fmt;
use std::fs::File;
use std::ops::Deref;
use std::path::{Path, PathBuf};

pub use detect::{detect, Format};

/// An error reading or writing a model file: which file, as which format, and what is wrong.
///
/// Displays on one line as `invalid <format> file <path>: <kind>` (or `cannot use file <path>:
/// <kind>` when the format is not known yet), so `{:#}` in the CLI prints no duplicate chain.
#[derive(Debug, thiserror::Error)]
pub struct FormatError {
    /// The format the file was read or written as; `None` when detection itself failed.
    pub format: Option<Format>,
    /// The file.
    pub path: PathBuf,
    /// What is wrong.
    pub kind: FormatErrorKind,
}

impl FormatError {
    /// An error about `path` read or written as `format`.
    pub fn new(format: Format, path: impl Into<PathBuf>, kind: FormatErrorKind) -> Self {
        Self {
            format: Some(format),
            path: path.into(),
            kind,
        }
    }
    /// An error about a GGUF file.
    pub fn gguf(path: impl Into<PathBuf>, kind: FormatErrorKind) -> Self {
        Self::new(Format::Gguf, path, kind)
    }
    /// An error about a file whose format is not (yet) known.
    pub fn unknown_format(path: impl Into<PathBuf>, kind: FormatErrorKind) -> Self {
        Self {
            format: None,
            path: path.into(),
            kind,
        }
    }
}

impl fmt::Display for FormatError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.format {
            Some(format) => {
                write!(
                    f,
                    "invalid {format} file {}: {}",
                    self.path.display(),
                    self.kind
                )
            }
            None => write!(f, "cannot use file {}: {}", self.path.display(), self.kind),
        }
    }
}

/// What is wrong with a file. Offsets (`at`) are absolute byte offsets from the start of the
/// file; tensor offsets (`offset`) are relative to the data section, as stored in GGUF.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum FormatErrorKind {
    /// The operating system refused a read or write.
    #[error("{op}: {source}")]
    Io {
        /// What was being done ("open", "read", "write", "rename", …).
        op: &'static str,
        /// The underlying error.
        source: std::io::Error,
    },
    /// The path names a directory where a file was expected.
    #[error("is a directory")]
    IsADirectory,
    /// A read ran past the end of the file.
    #[error("truncated: need {need} bytes at offset {at}, file has fewer")]
    Truncated {
        /// Absolute offset of the read.
        at: u64,
        /// Bytes the read needed.
        need: u64,
    },
    /// The first bytes are not a magic this reader accepts.
    #[error("bad magic {found:02x?} ({})", String::from_utf8_lossy(found).escape_debug())]
    BadMagic {
        /// The first four bytes of the file.
        found: [u8; 4],
    },
    /// A recognised format version this crate refuses (GGUF v1, APR v1, …).
    #[error("unsupported version {version}")]
    UnsupportedVersion {
        /// The version found.
        version: u32,
    },
    /// A declared count cannot fit in the bytes that remain, or exceeds a documented limit.
    #[error("{what} count {count} at offset {at} exceeds what the remaining bytes can hold")]
    TooMany {
        /// What is being counted ("tensors", "metadata entries", "array elements").
        what: &'static str,
        /// The declared count.
        count: u64,
        /// Absolute offset of the count field.
        at: u64,
    },
    /// A declared string length exceeds the remaining bytes or the documented limit.
    #[error("string length {len} at offset {at} exceeds limit {limit}")]
    StringTooLong {
        /// Absolute offset of the length field.
        at: u64,
        /// The declared length.
        len: u64,
        /// The smaller of the bytes remaining and the documented cap.
        limit: u64,
    },
    /// A metadata value type id outside 0..=12.
    #[error("unknown metadata value type {type_id} at offset {at}")]
    UnknownValueType {
        /// The type id read.
        type_id: u32,
        /// Absolute offset of the type field.
        at: u64,
    },
    /// Arrays nested deeper than the documented cap.
    #[error("arrays nested {depth} deep at offset {at} (limit {limit})")]
    NestedArray {
        /// Absolute offset of the innermost array's type field.
        at: u64,
        /// Nesting depth reached.
        depth: u32,
        /// The cap.
        limit: u32,
    },
    /// An array element whose type differs from the array's declared element type (writer).
    #[error("array {key:?} declares {expected} elements but element {index} is {found}")]
    ArrayTypeMismatch {
        /// The metadata key holding the array.
        key: String,
        /// Index of the offending element.
        index: u64,
        /// The declared element type.
        expected: &'static str,
        /// The element's actual type.
        found: &'static str,
    },
    /// A metadata key that appears twice.
    #[error("duplicate metadata key {key:?}")]
    DuplicateKey {
        /// The key.
        key: String,
    },
    /// An empty metadata key (ggml rejects these).
    #[error("empty metadata key at offset {at}")]
    EmptyKey {
        /// Absolute offset of the key.
        at: u64,
    },
    /// `general.alignment` is not a u32 non-zero power of two.
    #[error("general.alignment must be a u32 non-zero power of two, found {found}")]
    BadAlignment {
        /// The value found, with its type.
        found: String,
    },
    /// A tensor with more dimensions than ggml supports.
    #[error("tensor {tensor:?} has {n_dims} dimensions (limit {limit})")]
    TooManyDims {
        /// The tensor name.
        tensor: String,
        /// The declared dimension count.
        n_dims: u32,
        /// The cap.
        limit: u32,
    },
    /// A tensor whose element count or byte size overflows.
    #[error("tensor {tensor:?}: element count or byte size of shape {ne:?} overflows")]
    ElementOverflow {
        /// The tensor name.
        tensor: String,
        /// Its dimensions as stored.
        ne: Vec<u64>,
    },
    /// A row that is not a whole number of blocks.
    #[error("tensor {tensor:?}: row length {ne0} is not a multiple of {dtype}'s block size {block_size}")]
    PartialBlock {
        /// The tensor name.
        tensor: String,
        /// Elements per row.
        ne0: u64,
        /// Elements per block of `dtype`.
        block_size: u64,
        /// The tensor's type.
        dtype: crate::dtype::GgmlType,
    },
    /// A dtype id that names no type in the table (retired ids included).
    #[error("tensor {tensor:?} has unknown dtype id {id}")]
    UnknownDtype {
        /// The tensor name.
        tensor: String,
        /// The id read.
        id: u32,
    },
    /// A tensor offset that is not a multiple of the alignment.
    #[error("tensor {tensor:?} offset {offset} is not a multiple of the alignment {alignment}")]
    OffsetMisaligned {
        /// The tensor name.
        tensor: String,
        /// Offset relative to the data section.
        offset: u64,
        /// The file's alignment.
        alignment: u64,
    },
    /// A tensor whose bytes end past the end of the file.
    #[error("tensor {tensor:?} (offset {offset}, {n_bytes} bytes, data section at {data_offset}) ends past the file's {file_size} bytes")]
    OffsetOutOfBounds {
        /// The tensor name.
        tensor: String,
        /// Offset relative to the data section.
        offset: u64,
        /// Bytes of tensor data.
        n_bytes: u64,
        /// Absolute offset of the data section.
        data_offset: u64,
        /// Size of the file.
        file_size: u64,
    },
    /// A tensor not at the offset a contiguous layout requires (ggml `gguf.cpp`'s rule).
    #[error("tensor {tensor:?} has offset {found}, expected {expected}")]
    OffsetMismatch {
        /// The tensor name.
        tensor: String,
        /// Offset found, relative to the data section.
        found: u64,
        /// Offset expected.
        expected: u64,
    },
    /// Two tensors whose byte ranges intersect.
    #[error("tensors {first:?} and {second:?} overlap")]
    Overlap {
        /// The tensor with the lower offset.
        first: String,
        /// The other tensor.
        second: String,
    },
    /// A tensor name that appears twice.
    #[error("duplicate tensor name {name:?}")]
    DuplicateTensor {
        /// The name.
        name: String,
    },
    /// A tensor name longer than the documented limit.
    #[error("tensor name at offset {at} is {len} bytes (limit {limit})")]
    NameTooLong {
        /// Absolute offset of the name.
        at: u64,
        /// Its length in bytes.
        len: u64,
        /// The cap.
        limit: u64,
    },
    /// A name or key that must be UTF-8 and is not.
    #[error("{what} at offset {at} is not UTF-8")]
    NotUtf8 {
        /// "key" or "tensor name".
        what: &'static str,
        /// Absolute offset of the string.
        at: u64,
    },
    /// A tensor data callback wrote a different number of bytes than the tensor needs (writer).
    #[error("tensor {tensor:?}: data callback wrote {written} bytes, expected {expected}")]
    WrongDataSize {
        /// The tensor name.
        tensor: String,
        /// Bytes written.
        written: u64,
        /// Bytes the tensor's shape and dtype require.
        expected: u64,
    },
    /// A tensor data callback failed (writer).
    #[error("tensor {tensor:?}: writing data: {source}")]
    TensorData {
        /// The tensor name.
        tensor: String,
        /// The callback's error.
        source: std::io::Error,
    },
    /// A recognised file this crate refuses, with the reason (APR v1, big-endian GGUF, …).
    #[error("unsupported: {what}")]
    Unsupported {
        /// What is unsupported.
        what: String,
    },
    /// A format-specific problem without a dedicated variant (for the other format readers).
    #[error("malformed{}: {detail}", at.map(|a| format!(" at offset {a}")).unwrap_or_default())]
    Malformed {
        /// Absolute offset, where one applies.
        at: Option<u64>,
        /// What is wrong, with the numbers involved.
        detail: String,
    },
}

/// The bytes of a file being read: a read-only mapping or an owned buffer (tests, small files).
pub enum FileBytes {
    /// A file mapped with [`map_file`].
    Mapped(passthrough::MappedFile),
    /// Bytes held in memory.
    Owned(Vec<u8>),
}

impl Deref for FileBytes {
    type Target = [u8];
    fn deref(&self) -> &[u8] {
        match self {
            Self::Mapped(m) => m,
            Self::Owned(v) => v,
        }
    }
}

impl fmt::Debug for FileBytes {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let how = match self {
            Self::Mapped(_) => "Mapped",
            Self::Owned(_) => "Owned",
        };
        write!(f, "FileBytes::{how}({} bytes)", self.len())
    }
}

impl From<Vec<u8>> for FileBytes {
    fn from(v: Vec<u8>) -> Self {
        Self::Owned(v)
    }
}

impl From<passthrough::MappedFile> for FileBytes {
    fn from(m: passthrough::MappedFile) -> Self {
        Self::Mapped(m)
    }
}

/// Maps `path` read-only. Refuses directories. The returned error does not name a format
/// (callers re-tag it with [`FormatError::new`] when they know one).
pub fn map_file(path: &Path) -> Result<passthrough::MappedFile, FormatError> {
    let io = |op, source| FormatError::unknown_format(path, FormatErrorKind::Io { op, source });
    if path.is_dir() {
        return Err(FormatError::unknown_format(
            path,
            FormatErrorKind::IsADirectory,
        ));
    }
    let file = File::open(path).map_err(|e| io("open", e))?;
    // SAFETY: `Mmap::map` is unsafe because the mapping aliases the file: if another process
    // truncates or rewrites the file while it is mapped, reads see the new bytes or fault with
    // SIGBUS. Contract for this crate: input files are not modified while apr-qa holds them
    // (our own writers never write in place: they write a temp file and rename it over the
    // target, so a mapping of the old file keeps the old inode). Every read of the mapping
    // goes through bounds-checked slices, so a shorter-than-expected file is an error, not UB.
    let map = unsafe { memmap2::Mmap::map(&file) }.map_err(|e| io("mmap", e))?;
    // Readers stream tensors front to back: ask for aggressive readahead (advice only; a
    // platform that ignores it loses nothing).
    #[cfg(unix)]
    let _ = map.advise(memmap2::Advice::Sequential);
    Ok(passthrough::MappedFile::new(map, file))
}

/// Opens `path` as a [`FileBytes`], mapping it; an empty file is held as an empty buffer
/// (mapping zero bytes fails on some platforms).
pub fn read_file_bytes(path: &Path) -> Result<FileBytes, FormatError> {
    let len = std::fs::metadata(path)
        .map_err(|source| {
            FormatError::unknown_format(path, FormatErrorKind::Io { op: "stat", source })
        })?
        .len();
    if len == 0 && !path.is_dir() {
        return Ok(FileBytes::Owned(Vec::new()));
    }
    map_file(path).map(FileBytes::Mapped)
}
pub mod apr;
pub mod apr_write;
pub mod names;
pub mod passthrough;

/// Creates a temporary file in the directory of `out`, for writing `out` atomically (write,
/// then `persist(out)`, which renames). The file gets the permissions a newly created file
/// would (0o666 less the umask), not `tempfile`'s owner-only 0o600, so the renamed output is
/// readable as users expect.
pub fn temp_file_beside(out: &Path) -> std::io::Result<tempfile::NamedTempFile> {
    let dir = match out.parent() {
        Some(p) if !p.as_os_str().is_empty() => p,
        _ => Path::new("."),
    };
    let mut builder = tempfile::Builder::new();
    builder.prefix(".apr-qa-").suffix(".tmp");
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        builder.permissions(std::fs::Permissions::from_mode(0o666));
    }
    builder.tempfile_in(dir)
}

pub mod safetensors;
pub mod safetensors_write;
