//! Errors of the SafeTensors reader and writer: one struct naming the file, one kind enum
//! whose variants carry the tensor, offset and numbers involved.

use std::path::PathBuf;

use crate::dtype::GgmlType;

use super::{SizeProblem, StDtype, MAX_HEADER_SIZE, N_LEN};

/// An error reading or writing SafeTensors, with the file it concerns.
#[derive(Debug, thiserror::Error)]
#[error("SafeTensors {}: {kind}", path.display())]
pub struct SafetensorsError {
    /// The file (shard, index or output) the error concerns.
    pub path: PathBuf,
    /// What is wrong (boxed: the kinds carry shapes and names, errors stay one pointer wide).
    pub kind: Box<SafetensorsErrorKind>,
}

impl SafetensorsError {
    /// An error about `path`.
    pub fn new(path: impl Into<PathBuf>, kind: SafetensorsErrorKind) -> Self {
        Self {
            path: path.into(),
            kind: Box::new(kind),
        }
    }
}

/// What is wrong; offsets are absolute file offsets unless a variant says otherwise.
#[allow(missing_docs)] // fields: see each variant's doc and message
#[derive(Debug, thiserror::Error)]
pub enum SafetensorsErrorKind {
    /// An I/O operation failed.
    #[error("{action} failed: {source}")]
    Io {
        action: &'static str,
        source: std::io::Error,
    },
    /// The file is shorter than the 8-byte header length.
    #[error("file of {file_len} bytes has no 8-byte header length")]
    FileTooSmall { file_len: u64 },
    /// `N` exceeds [`MAX_HEADER_SIZE`].
    #[error("header length {header_len} at offset 0 exceeds the limit {MAX_HEADER_SIZE}")]
    HeaderTooLarge { header_len: u64 },
    /// `8 + N` is past the end of the file.
    #[error(
        "header length {header_len} at offset 0 runs past the end of the {file_len}-byte file"
    )]
    HeaderPastEnd { header_len: u64, file_len: u64 },
    /// The header is not UTF-8.
    #[error("header is not UTF-8 at offset {offset}")]
    HeaderNotUtf8 { offset: u64 },
    /// The header is not a JSON object (wrong first byte or another JSON type).
    #[error("header at offset {N_LEN} is not a JSON object")]
    HeaderNotObject,
    /// The header (or index) is not valid JSON.
    #[error("invalid JSON in header or index: {message}")]
    Json { message: String },
    /// A JSON object repeats a key.
    #[error("duplicate key {key:?} in {context}")]
    DuplicateKey { context: String, key: String },
    /// `__metadata__` is neither an object nor null.
    #[error("__metadata__ is a JSON {found}, not an object")]
    MetadataNotObject { found: &'static str },
    /// A `__metadata__` value is not a string.
    #[error("__metadata__ value of {key:?} is a JSON {found}, not a string")]
    MetadataNotString { key: String, found: &'static str },
    /// A tensor entry is malformed: not an object, a field missing, unknown or of a wrong type.
    #[error("tensor {tensor:?}: {problem}")]
    TensorEntry { tensor: String, problem: String },
    /// A dtype string SafeTensors does not define.
    #[error("tensor {tensor:?}: unknown dtype {dtype:?}")]
    UnknownDtype { tensor: String, dtype: String },
    /// `data_offsets` with `end < begin`.
    #[error(
        "tensor {tensor:?}: data_offsets [{begin}, {end}] (buffer-relative) end before they begin"
    )]
    ReversedOffsets {
        tensor: String,
        begin: u64,
        end: u64,
    },
    /// A tensor does not start where the previous one ends (gap or overlap).
    #[error("tensor {tensor:?} starts at buffer offset {found}, expected {expected} (the previous end): {}", if found > expected { "gap" } else { "overlap" })]
    NotContiguous {
        tensor: String,
        expected: u64,
        found: u64,
    },
    /// The shape's byte size cannot be computed.
    #[error("tensor {tensor:?} at offset {offset}: {dtype} {shape:?}: {problem}")]
    BadSize {
        tensor: String,
        offset: u64,
        dtype: StDtype,
        shape: Vec<u64>,
        problem: SizeProblem,
    },
    /// `end − begin` differs from numel × dtype size.
    #[error("tensor {tensor:?} at offset {offset}: {dtype} {shape:?} needs {expected} bytes, data_offsets span {found}")]
    SizeMismatch {
        tensor: String,
        offset: u64,
        dtype: StDtype,
        shape: Vec<u64>,
        expected: u64,
        found: u64,
    },
    /// The file length differs from `8 + N + last end` (trailing bytes or truncated data).
    #[error("tensors end at offset {expected} but the file has {file_len} bytes")]
    BufferLength { expected: u64, file_len: u64 },
    /// A GGML-scheme entry is wrong (see the module doc).
    #[error("tensor {tensor:?}: GGML scheme: {problem}")]
    GgmlScheme { tensor: String, problem: String },
    /// A `U8` tensor whose stored shape is not the byte shape of its `.ggml_type`/`.shape`.
    #[error("tensor {tensor:?} at offset {offset}: {ggml_type} {shape:?} has byte shape {expected:?} but is stored as U8 {found:?}")]
    GgmlSizeMismatch {
        tensor: String,
        offset: u64,
        ggml_type: GgmlType,
        shape: Vec<u64>,
        expected: Vec<u64>,
        found: Vec<u64>,
    },
    /// The index is malformed (not an object, missing `weight_map`, wrong types, unknown keys).
    #[error("index: {problem}")]
    Index { problem: String },
    /// The index names a shard that is not a plain file name.
    #[error("index names shard {shard:?}, which is not a plain file name")]
    ShardName { shard: String },
    /// The index names a shard file that does not exist.
    #[error("index names shard {}, which does not exist", shard.display())]
    MissingShard { shard: PathBuf },
    /// A `weight_map` tensor is absent from the shard it names.
    #[error("index maps tensor {tensor:?} to {shard:?}, which does not contain it")]
    TensorNotInShard { tensor: String, shard: String },
    /// A shard tensor the index does not map to that shard.
    #[error("shard {shard:?} contains tensor {tensor:?}, which the index does not map to it")]
    TensorNotInIndex { tensor: String, shard: String },
    /// Two shards disagree on a `__metadata__` value.
    #[error(
        "shard {shard:?} sets __metadata__ {key:?} = {found:?}, an earlier shard {expected:?}"
    )]
    MetadataConflict {
        key: String,
        shard: String,
        expected: String,
        found: String,
    },
    /// A tensor name occurs twice (across shards, or in a writer's list).
    #[error("duplicate tensor name {tensor:?}")]
    DuplicateTensor { tensor: String },
    /// A directory holds no SafeTensors model, or several candidates.
    #[error("directory holds {}: {candidates:?}", if candidates.is_empty() { "no model.safetensors or *.safetensors[.index.json]" } else { "several candidate models" })]
    DirectoryModel { candidates: Vec<String> },
    /// A writer was given an existing directory as its output file.
    #[error("output is an existing directory")]
    OutputIsDirectory,
    /// A writer input is invalid (names, shapes, shard count, metadata).
    #[error("cannot write tensor {tensor:?}: {problem}")]
    WriteInput { tensor: String, problem: String },
    /// A data callback failed.
    #[error("tensor {tensor:?} at offset {offset}: data callback failed: {source}")]
    DataCallback {
        tensor: String,
        offset: u64,
        source: std::io::Error,
    },
    /// A data callback wrote a byte count other than the tensor's size.
    #[error("tensor {tensor:?} at offset {offset}: data callback wrote {written} bytes, expected {expected}")]
    WriteSize {
        tensor: String,
        offset: u64,
        expected: u64,
        written: u64,
    },
}

pub(crate) type Kind = SafetensorsErrorKind;

pub(crate) fn entry(tensor: &str, problem: impl Into<String>) -> Kind {
    Kind::TensorEntry {
        tensor: tensor.to_string(),
        problem: problem.into(),
    }
}
