//! SafeTensors reader: single files, sharded sets (`model.safetensors.index.json`) and
//! apr-qa's scheme for GGML block-quantized tensors. The writer is
//! [`super::safetensors_write`]. Format facts: `shared/reference/ggml-gguf-safetensors.md` §5,
//! <https://github.com/huggingface/safetensors> (`safetensors/src/tensor.rs` @24b0b285).
//!
//! # File layout
//! 8 bytes `N` (u64 LE), `N` bytes of UTF-8 JSON object (padding: trailing whitespace), then the
//! byte buffer. Each JSON key except `__metadata__` is a tensor:
//! `{"dtype": "F32", "shape": [2, 3], "data_offsets": [begin, end]}`, offsets relative to the
//! buffer, `end` exclusive. `__metadata__` is a string → string map.
//!
//! # Invariants of a [`SafetensorsModel`] (checked before any tensor is handed out)
//! - `N` ≤ [`MAX_HEADER_SIZE`] and `8 + N` ≤ file length; the header is UTF-8, starts with `{`,
//!   is one JSON object with no duplicate key at any level;
//! - `__metadata__` (if present and not `null`) holds only strings; tensor entries hold exactly
//!   `dtype`, `shape`, `data_offsets` (unknown fields are rejected, not ignored);
//! - sorted by `data_offsets`, tensors are contiguous from 0 (no gap, no overlap, no alias), each
//!   spans exactly numel × dtype bits / 8 bytes (checked arithmetic), and the buffer ends exactly
//!   at the last tensor (no trailing bytes);
//! - the GGML scheme below holds for every tensor it names;
//! - sharded: every `weight_map` entry is in the shard it names, every shard tensor is in the
//!   `weight_map` under that shard, names are unique across shards.
//!
//! # GGML-quantized tensors in SafeTensors (apr-qa scheme)
//! SafeTensors has no dtype for GGML's block types and no standard exists (reference §5.2), so
//! apr-qa stores a block-quantized tensor in a way every SafeTensors reader can load and that
//! moves no byte of its blocks:
//! - **dtype `"U8"`, shape = the byte shape**: the logical row-major shape with its last
//!   dimension replaced by the byte count of one row, `[d0, …, dk-2, dk-1 / block_size ×
//!   type_size]` (the convention of gguf-py and diffusers). A `[4096, 11008]` Q4_K tensor is
//!   stored as `U8 [4096, 6192]`. The bytes are the GGML blocks of each row, rows in order —
//!   exactly GGUF's tensor data (a block never straddles two rows).
//! - **two `__metadata__` entries**, both strings, keyed by the tensor name:
//!   `"<name>.ggml_type": "Q4_K"` (the ggml type name, spelled as ggml's `type_name` upper-cased,
//!   see `dtype.rs`) and `"<name>.shape": "[4096,11008]"` (the logical row-major shape, i.e.
//!   GGUF's `ne` reversed, as a JSON array of integers).
//! - A reader applies the scheme to tensor `<name>` when either entry exists and then requires:
//!   both entries, dtype `U8`, a known block-quantized type, a logical shape of rank ≥ 1 whose
//!   last dimension is whole blocks, and a stored shape equal to the byte shape derived from it.
//!   Any violation is an error naming the tensor. Entries whose `<name>` is not a tensor of the
//!   same file are ordinary metadata.
//! - Plain GGML types (F32, F16, BF16, F64, I8–I64) use SafeTensors' own dtypes and no entries.
//! - Writers append the entries after the caller's metadata, in tensor order; in a sharded set
//!   each tensor's entries are in the shard that holds it, so every shard describes itself.

mod error;
mod header;

use std::fmt;
use std::path::{Path, PathBuf};

use indexmap::IndexMap;

use crate::dtype::{safetensors_name, GgmlType};

use super::{read_file_bytes, FileBytes, FormatErrorKind};

pub use error::{SafetensorsError, SafetensorsErrorKind};
pub(crate) use header::parse_header;

use error::Kind;
use header::{parse_file, parse_json, unique, Json, ParsedHeader};

/// Largest header the reference implementation accepts (safetensors `MAX_HEADER_SIZE`).
pub const MAX_HEADER_SIZE: u64 = 100_000_000;
/// Bytes of the header-length prefix (safetensors `N_LEN`).
pub const N_LEN: u64 = 8;
/// Metadata key suffix naming a quantized tensor's GGML type (apr-qa scheme).
pub const GGML_TYPE_SUFFIX: &str = ".ggml_type";
/// Metadata key suffix holding a quantized tensor's logical shape (apr-qa scheme).
pub const GGML_SHAPE_SUFFIX: &str = ".shape";
/// File name transformers looks for first in a model directory.
pub const SINGLE_NAME: &str = "model.safetensors";
/// File name of a sharded set's index in a model directory.
pub const INDEX_NAME: &str = "model.safetensors.index.json";

const BITS_PER_BYTE: u64 = 8;

/// A SafeTensors dtype that is not a GGML type. Read as opaque data of a known width.
#[allow(missing_docs, non_camel_case_types)]
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum StOtherDtype {
    BOOL,
    U8,
    U16,
    U32,
    U64,
    F8_E5M2,
    F8_E4M3,
    F8_E8M0,
    F8_E4M3FNUZ,
    F8_E5M2FNUZ,
    F4,
    F6_E2M3,
    F6_E3M2,
    C64,
}

impl StOtherDtype {
    /// Every variant.
    pub const ALL: [StOtherDtype; 14] = [
        Self::BOOL,
        Self::U8,
        Self::U16,
        Self::U32,
        Self::U64,
        Self::F8_E5M2,
        Self::F8_E4M3,
        Self::F8_E8M0,
        Self::F8_E4M3FNUZ,
        Self::F8_E5M2FNUZ,
        Self::F4,
        Self::F6_E2M3,
        Self::F6_E3M2,
        Self::C64,
    ];

    /// The SafeTensors dtype string.
    pub const fn name(self) -> &'static str {
        match self {
            Self::BOOL => "BOOL",
            Self::U8 => "U8",
            Self::U16 => "U16",
            Self::U32 => "U32",
            Self::U64 => "U64",
            Self::F8_E5M2 => "F8_E5M2",
            Self::F8_E4M3 => "F8_E4M3",
            Self::F8_E8M0 => "F8_E8M0",
            Self::F8_E4M3FNUZ => "F8_E4M3FNUZ",
            Self::F8_E5M2FNUZ => "F8_E5M2FNUZ",
            Self::F4 => "F4",
            Self::F6_E2M3 => "F6_E2M3",
            Self::F6_E3M2 => "F6_E3M2",
            Self::C64 => "C64",
        }
    }

    /// Bits per element (safetensors `Dtype::bitsize`); widths are taken from the GGML
    /// integer/float type of the same width where one exists.
    pub const fn bits(self) -> u64 {
        const fn width(t: GgmlType) -> u64 {
            t.type_size() as u64 * BITS_PER_BYTE
        }
        match self {
            Self::BOOL
            | Self::U8
            | Self::F8_E5M2
            | Self::F8_E4M3
            | Self::F8_E8M0
            | Self::F8_E4M3FNUZ
            | Self::F8_E5M2FNUZ => width(GgmlType::I8),
            Self::U16 => width(GgmlType::I16),
            Self::U32 => width(GgmlType::I32),
            Self::U64 => width(GgmlType::I64),
            // Two F4 values per byte; four F6 values per three bytes.
            Self::F4 => BITS_PER_BYTE / 2,
            Self::F6_E2M3 | Self::F6_E3M2 => BITS_PER_BYTE * 3 / 4,
            // Two F32 (real, imaginary).
            Self::C64 => 2 * width(GgmlType::F32),
        }
    }
}

/// The logical dtype of a tensor. `Ggml(t)` with `t` block-quantized is stored as a `U8` byte
/// tensor plus metadata (see the module doc); `Other(U8)` is a genuine byte tensor.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum StDtype {
    /// A GGML type: plain (F32, F16, BF16, F64, I8–I64) or block-quantized.
    Ggml(GgmlType),
    /// A SafeTensors dtype with no GGML twin.
    Other(StOtherDtype),
}

/// Why a shape has no byte size in a dtype.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum SizeProblem {
    /// The element or byte count overflows u64.
    Overflow,
    /// The last dimension is not whole blocks of the quantized type.
    PartialBlock,
    /// A sub-byte dtype whose bit count is not whole bytes.
    PartialByte,
    /// A block-quantized tensor of rank 0 (it has no row).
    Scalar,
}

impl fmt::Display for SizeProblem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Self::Overflow => "size overflows u64",
            Self::PartialBlock => "last dimension is not whole blocks",
            Self::PartialByte => "bit count is not whole bytes",
            Self::Scalar => "a block-quantized tensor needs rank >= 1",
        })
    }
}

impl StDtype {
    /// The dtype string stored in the header (`"U8"` for block-quantized types).
    pub fn stored_name(self) -> &'static str {
        match self {
            Self::Ggml(t) => safetensors_name(t).unwrap_or(StOtherDtype::U8.name()),
            Self::Other(o) => o.name(),
        }
    }

    /// The dtype a header string names, before the GGML scheme is applied; `None` if unknown.
    /// Case-sensitive, as in the reference implementation.
    pub fn from_stored_name(s: &str) -> Option<StDtype> {
        GgmlType::ALL
            .into_iter()
            .find(|&t| safetensors_name(t) == Some(s))
            .map(StDtype::Ggml)
            .or_else(|| {
                StOtherDtype::ALL
                    .into_iter()
                    .find(|o| o.name() == s)
                    .map(StDtype::Other)
            })
    }

    /// Whether this is a GGML block-quantized type (stored through the scheme).
    pub fn is_block_quantized(self) -> bool {
        matches!(self, Self::Ggml(t) if t.is_quantized())
    }

    /// The shape stored in the header for a tensor of logical `shape`: the byte shape for
    /// block-quantized types, `shape` itself otherwise.
    pub fn stored_shape(self, shape: &[u64]) -> Result<Vec<u64>, SizeProblem> {
        match self {
            Self::Ggml(t) if t.is_quantized() => {
                let (last, lead) = shape.split_last().ok_or(SizeProblem::Scalar)?;
                let row = row_bytes(t, *last)?;
                Ok(lead.iter().copied().chain([row]).collect())
            }
            Self::Ggml(_) | Self::Other(_) => Ok(shape.to_vec()),
        }
    }

    /// Exact bytes of a tensor of logical `shape` in this dtype, with checked arithmetic.
    pub fn byte_size(self, shape: &[u64]) -> Result<u64, SizeProblem> {
        match self {
            Self::Ggml(t) if t.is_quantized() => {
                let (last, lead) = shape.split_last().ok_or(SizeProblem::Scalar)?;
                numel(lead)?
                    .checked_mul(row_bytes(t, *last)?)
                    .ok_or(SizeProblem::Overflow)
            }
            Self::Ggml(t) => numel(shape)?
                .checked_mul(t.type_size() as u64)
                .ok_or(SizeProblem::Overflow),
            Self::Other(o) => {
                let bits = numel(shape)?
                    .checked_mul(o.bits())
                    .ok_or(SizeProblem::Overflow)?;
                if bits % BITS_PER_BYTE != 0 {
                    return Err(SizeProblem::PartialByte);
                }
                Ok(bits / BITS_PER_BYTE)
            }
        }
    }
}

impl fmt::Display for StDtype {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Ggml(t) => f.write_str(t.name()),
            Self::Other(o) => f.write_str(o.name()),
        }
    }
}

fn numel(shape: &[u64]) -> Result<u64, SizeProblem> {
    shape
        .iter()
        .try_fold(1u64, |a, &d| a.checked_mul(d))
        .ok_or(SizeProblem::Overflow)
}

fn row_bytes(t: GgmlType, n: u64) -> Result<u64, SizeProblem> {
    if !n.is_multiple_of(t.block_size() as u64) {
        return Err(SizeProblem::PartialBlock);
    }
    t.row_bytes(n).ok_or(SizeProblem::Overflow)
}

/// Formats a shape as the scheme's `.shape` value: compact JSON, e.g. `[4096,11008]`.
pub fn shape_string(shape: &[u64]) -> String {
    let dims: Vec<String> = shape.iter().map(u64::to_string).collect();
    format!("[{}]", dims.join(","))
}

/// One tensor of a [`SafetensorsModel`].
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct StTensor {
    /// Tensor name (JSON key).
    pub name: String,
    /// Logical dtype (GGML scheme applied).
    pub dtype: StDtype,
    /// Logical row-major shape (for block-quantized tensors: the `.shape` entry, not the
    /// stored byte shape).
    pub shape: Vec<u64>,
    /// Index into [`SafetensorsModel::shards`].
    pub file: usize,
    /// Absolute file offset of the first byte.
    pub start: u64,
    /// Absolute file offset one past the last byte.
    pub end: u64,
}

/// A SafeTensors model: one file or a sharded set, validated, with its bytes mapped.
#[derive(Debug)]
pub struct SafetensorsModel {
    /// `__metadata__` in file order, GGML-scheme entries included. Sharded: the union over the
    /// shards in index order (first shard's entries first, then each later shard's new keys);
    /// a key two shards give different values is an error.
    pub metadata: IndexMap<String, String>,
    /// Tensors sorted by offset within each shard, shards in index order.
    pub tensors: Vec<StTensor>,
    /// The files: one, or the shards in order of first appearance in the index's `weight_map`.
    pub shards: Vec<PathBuf>,
    /// The `model.safetensors.index.json` of a sharded set.
    pub index: Option<PathBuf>,
    /// The index's `metadata.total_size`, where present.
    pub index_total_size: Option<u64>,
    header_lens: Vec<u64>,
    data: Vec<FileBytes>,
    by_name: IndexMap<String, usize>,
}

impl SafetensorsModel {
    /// Opens a `.safetensors` file, a `*.index.json` (by name), or a directory holding
    /// `model.safetensors.index.json` or `model.safetensors` (not both), or else exactly one
    /// `*.safetensors.index.json`, or else exactly one `*.safetensors`.
    pub fn open(path: &Path) -> Result<Self, SafetensorsError> {
        let path = if path.is_dir() {
            resolve_dir(path)?
        } else {
            path.to_path_buf()
        };
        let is_index = path
            .file_name()
            .and_then(|n| n.to_str())
            .is_some_and(|n| n.ends_with(".json"));
        if is_index {
            return open_index(&path);
        }
        let bytes = read_bytes(&path)?;
        Self::from_parts(vec![(path, bytes)], None, None)
    }

    /// Parses one SafeTensors file held in memory; `path` only labels errors and [`Self::shards`].
    pub fn from_bytes(path: &Path, bytes: Vec<u8>) -> Result<Self, SafetensorsError> {
        Self::from_parts(
            vec![(path.to_path_buf(), FileBytes::Owned(bytes))],
            None,
            None,
        )
    }

    fn from_parts(
        files: Vec<(PathBuf, FileBytes)>,
        index: Option<&IndexFile>,
        index_path: Option<PathBuf>,
    ) -> Result<Self, SafetensorsError> {
        let mut model = Self {
            metadata: IndexMap::new(),
            tensors: Vec::new(),
            shards: Vec::with_capacity(files.len()),
            index: index_path.clone(),
            index_total_size: index.and_then(|i| i.total_size),
            header_lens: Vec::with_capacity(files.len()),
            data: Vec::with_capacity(files.len()),
            by_name: IndexMap::new(),
        };
        for (file, (path, bytes)) in files.into_iter().enumerate() {
            let err = |kind| SafetensorsError::new(&path, kind);
            let (header_len, ParsedHeader { metadata, tensors }) =
                parse_file(&bytes).map_err(err)?;
            if let (Some(index), Some(index_path)) = (index, &index_path) {
                let e = |kind| SafetensorsError::new(index_path, kind);
                index.check_shard(file, &tensors).map_err(e)?;
            }
            for (key, value) in metadata {
                match model.metadata.get(&key) {
                    Some(old) if *old != value => {
                        return Err(err(Kind::MetadataConflict {
                            key,
                            shard: shard_label(&path),
                            expected: old.clone(),
                            found: value,
                        }));
                    }
                    Some(_) => {}
                    None => {
                        model.metadata.insert(key, value);
                    }
                }
            }
            for t in tensors {
                if model.by_name.contains_key(&t.name) {
                    return Err(err(Kind::DuplicateTensor { tensor: t.name }));
                }
                model.by_name.insert(t.name.clone(), model.tensors.len());
                model.tensors.push(StTensor { file, ..t });
            }
            model.shards.push(path);
            model.header_lens.push(header_len);
            model.data.push(bytes);
        }
        Ok(model)
    }

    /// The bytes of `t`, borrowed from the mapping (zero-copy).
    ///
    /// # Panics
    /// If `t` does not come from this model (its offsets were validated when it was opened).
    pub fn tensor_data(&self, t: &StTensor) -> &[u8] {
        self.try_tensor_data(t)
            .expect("a tensor of this model lies within its validated file")
    }

    /// The bytes of `t`, or `None` if its file index or offsets are outside this model.
    pub fn try_tensor_data(&self, t: &StTensor) -> Option<&[u8]> {
        let start = usize::try_from(t.start).ok()?;
        let end = usize::try_from(t.end).ok()?;
        self.data.get(t.file)?.get(start..end)
    }

    /// The tensor called `name`.
    pub fn tensor(&self, name: &str) -> Option<&StTensor> {
        self.by_name.get(name).and_then(|&i| self.tensors.get(i))
    }

    /// The header length `N` of shard `file` (its data starts at `8 + N`).
    pub fn header_len(&self, file: usize) -> Option<u64> {
        self.header_lens.get(file).copied()
    }

    /// [`Self::metadata`] without the GGML-scheme entries of this model's quantized tensors:
    /// what a writer should be given to reproduce the metadata of this model.
    pub fn user_metadata(&self) -> IndexMap<String, String> {
        let mut out = self.metadata.clone();
        for t in self.tensors.iter().filter(|t| t.dtype.is_block_quantized()) {
            out.shift_remove(&format!("{}{GGML_TYPE_SUFFIX}", t.name));
            out.shift_remove(&format!("{}{GGML_SHAPE_SUFFIX}", t.name));
        }
        out
    }
}

fn shard_label(path: &Path) -> String {
    path.file_name().map_or_else(
        || path.display().to_string(),
        |n| n.to_string_lossy().into_owned(),
    )
}

fn read_bytes(path: &Path) -> Result<FileBytes, SafetensorsError> {
    read_file_bytes(path).map_err(|e| {
        let kind = match e.kind {
            FormatErrorKind::Io { op, source } => Kind::Io { action: op, source },
            other => Kind::Io {
                action: "map",
                source: std::io::Error::other(other.to_string()),
            },
        };
        SafetensorsError::new(path, kind)
    })
}

/// Picks the model file of a directory (see [`SafetensorsModel::open`]).
fn resolve_dir(dir: &Path) -> Result<PathBuf, SafetensorsError> {
    let err = |kind| SafetensorsError::new(dir, kind);
    let (index, single) = (dir.join(INDEX_NAME), dir.join(SINGLE_NAME));
    match (index.is_file(), single.is_file()) {
        (true, false) => return Ok(index),
        (false, true) => return Ok(single),
        (true, true) => {
            let candidates = vec![INDEX_NAME.to_string(), SINGLE_NAME.to_string()];
            return Err(err(Kind::DirectoryModel { candidates }));
        }
        (false, false) => {}
    }
    let io = |source| {
        err(Kind::Io {
            action: "read directory",
            source,
        })
    };
    let mut names = Vec::new();
    for e in std::fs::read_dir(dir).map_err(io)? {
        let e = e.map_err(io)?;
        if e.path().is_file() {
            names.push(e.file_name().to_string_lossy().into_owned());
        }
    }
    names.sort();
    let indexes: Vec<&String> = names
        .iter()
        .filter(|n| n.ends_with(".safetensors.index.json"))
        .collect();
    let singles: Vec<&String> = names
        .iter()
        .filter(|n| n.ends_with(".safetensors"))
        .collect();
    match (indexes.as_slice(), singles.as_slice()) {
        ([one], _) | ([], [one]) => Ok(dir.join(one)),
        (many, _) if !many.is_empty() => Err(err(Kind::DirectoryModel {
            candidates: many.iter().map(|s| s.to_string()).collect(),
        })),
        (_, many) => Err(err(Kind::DirectoryModel {
            candidates: many.iter().map(|s| s.to_string()).collect(),
        })),
    }
}

/// Largest index file accepted (real indexes are at most a few MB; same cap as a header).
const MAX_INDEX_SIZE: u64 = MAX_HEADER_SIZE;

/// A parsed `model.safetensors.index.json`.
struct IndexFile {
    total_size: Option<u64>,
    /// Shard file names in order of first appearance.
    shards: Vec<String>,
    /// Tensor name → position in `shards`, in `weight_map` order.
    weight_map: IndexMap<String, usize>,
}

impl IndexFile {
    fn parse(bytes: &[u8]) -> Result<Self, Kind> {
        let problem = |p: String| Kind::Index { problem: p };
        let Json::Obj(top) = parse_json(bytes)? else {
            return Err(problem("not a JSON object".into()));
        };
        let (mut total_size, mut map) = (None, None);
        for (key, v) in unique(top, "index")? {
            match (key.as_str(), v) {
                ("metadata", Json::Obj(meta)) => {
                    for (k, v) in unique(meta, "index metadata")? {
                        match (k.as_str(), v) {
                            ("total_size", Json::Uint(n)) => total_size = Some(n),
                            ("total_size", v) => {
                                return Err(problem(format!("total_size is a JSON {}", v.kind())));
                            }
                            (_, _) => {} // other statistics (total_parameters, …) are not ours
                        }
                    }
                }
                ("weight_map", Json::Obj(w)) => map = Some(unique(w, "weight_map")?),
                ("metadata" | "weight_map", v) => {
                    return Err(problem(format!(
                        "{key} is a JSON {}, not an object",
                        v.kind()
                    )));
                }
                (_, _) => return Err(problem(format!("unknown key {key:?}"))),
            }
        }
        let map = map.ok_or_else(|| problem("no weight_map".into()))?;
        if map.is_empty() {
            return Err(problem("weight_map is empty".into()));
        }
        let mut shards: Vec<String> = Vec::new();
        let mut weight_map = IndexMap::with_capacity(map.len());
        for (tensor, v) in map {
            let Json::Str(shard) = v else {
                return Err(problem(format!(
                    "weight_map[{tensor:?}] is a JSON {}",
                    v.kind()
                )));
            };
            let plain = Path::new(&shard)
                .file_name()
                .is_some_and(|n| n == shard.as_str());
            if !plain || shard.contains(['/', '\\']) {
                return Err(Kind::ShardName { shard });
            }
            let i = match shards.iter().position(|s| *s == shard) {
                Some(i) => i,
                None => {
                    shards.push(shard);
                    shards.len() - 1
                }
            };
            weight_map.insert(tensor, i);
        }
        Ok(Self {
            total_size,
            shards,
            weight_map,
        })
    }

    /// Checks that shard `file` holds exactly the tensors the index maps to it.
    fn check_shard(&self, file: usize, tensors: &[StTensor]) -> Result<(), Kind> {
        let shard = || self.shards.get(file).cloned().unwrap_or_default();
        for t in tensors {
            if self.weight_map.get(&t.name) != Some(&file) {
                return Err(Kind::TensorNotInIndex {
                    tensor: t.name.clone(),
                    shard: shard(),
                });
            }
        }
        let mut names = tensors.iter().map(|t| t.name.as_str()).collect::<Vec<_>>();
        names.sort_unstable();
        for (tensor, _) in self.weight_map.iter().filter(|(_, &f)| f == file) {
            if names.binary_search(&tensor.as_str()).is_err() {
                return Err(Kind::TensorNotInShard {
                    tensor: tensor.clone(),
                    shard: shard(),
                });
            }
        }
        Ok(())
    }
}

fn open_index(path: &Path) -> Result<SafetensorsModel, SafetensorsError> {
    let err = |kind| SafetensorsError::new(path, kind);
    let len = std::fs::metadata(path)
        .map_err(|source| {
            err(Kind::Io {
                action: "stat",
                source,
            })
        })?
        .len();
    if len > MAX_INDEX_SIZE {
        return Err(err(Kind::Index {
            problem: format!("{len} bytes exceeds {MAX_INDEX_SIZE}"),
        }));
    }
    let bytes = std::fs::read(path).map_err(|source| {
        err(Kind::Io {
            action: "read",
            source,
        })
    })?;
    let index = IndexFile::parse(&bytes).map_err(err)?;
    let dir = path.parent().unwrap_or(Path::new(""));
    let mut files = Vec::with_capacity(index.shards.len());
    for name in &index.shards {
        let shard = dir.join(name);
        if !shard.is_file() {
            return Err(err(Kind::MissingShard { shard }));
        }
        let bytes = read_bytes(&shard)?;
        files.push((shard, bytes));
    }
    SafetensorsModel::from_parts(files, Some(&index), Some(path.to_path_buf()))
}
