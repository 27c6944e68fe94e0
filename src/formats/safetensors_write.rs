//! SafeTensors writer: single files and sharded sets, byte-reproducible.
//!
//! Contract (what a conversion can rely on):
//! - **Deterministic bytes.** Tensors are laid out back to back in the order given (unlike the
//!   safetensors crate's `serialize`, which sorts by dtype then name), with no padding between
//!   them. The header is compact JSON: `__metadata__` first (omitted when empty) holding the
//!   caller's entries in the order given, then the GGML-scheme entries of the file's
//!   block-quantized tensors in tensor order (see [`super::safetensors`]); then one entry per
//!   tensor, fields in the order `dtype`, `shape`, `data_offsets`; then spaces up to a multiple
//!   of 8 bytes, so the data starts 8-aligned. Readers only require contiguous offsets, so the
//!   PyPI `safetensors` package loads these files.
//! - **Validated before writing.** Names are unique and not `__metadata__`; sizes are computed
//!   with checked arithmetic; caller metadata may repeat a scheme entry only with the same value
//!   and may not give scheme keys to a tensor that is not block-quantized; the header is parsed
//!   back with the reader's own validator and must describe exactly the tensors given.
//! - **Streaming.** Data goes through a 1 MiB buffer, and unchanged input ranges are copied in
//!   the kernel (`formats::passthrough`); memory is O(header). Each callback
//!   must write exactly its tensor's byte count; otherwise the write fails naming the tensor.
//! - **Atomic.** Each file is written to a temp file in the target directory, synced, then
//!   renamed over the target, so a mapping of an old file never sees a partial one. An existing
//!   directory is refused as an output file. A sharded write writes the shards, then the index;
//!   a failure can leave earlier shards of the new set in place, never a partial file.

use std::io::{self, Write};
use std::ops::Range;
use std::path::{Path, PathBuf};

use indexmap::IndexMap;

use super::safetensors::{
    parse_header, shape_string, SafetensorsError, SafetensorsErrorKind as Kind, StDtype, StTensor,
    GGML_SHAPE_SUFFIX, GGML_TYPE_SUFFIX, MAX_HEADER_SIZE, N_LEN,
};

/// A tensor to write: its name, logical dtype and logical row-major shape.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct StTensorSpec<'a> {
    /// Tensor name.
    pub name: &'a str,
    /// `Ggml(t)`: plain `t` is written with its SafeTensors dtype; block-quantized `t` as a `U8`
    /// byte tensor plus the scheme's metadata entries. `Other(o)`: dtype `o` as is.
    pub dtype: StDtype,
    /// Logical row-major shape.
    pub shape: &'a [u64],
}

impl<'a> StTensorSpec<'a> {
    /// The spec that rewrites `t` as read.
    pub fn of(t: &'a StTensor) -> Self {
        Self {
            name: &t.name,
            dtype: t.dtype,
            shape: &t.shape,
        }
    }
}

/// The tensor data source: called once per tensor, in order, with the tensor's index into the
/// spec slice; it must write exactly that tensor's bytes.
pub type DataFn<'d> = dyn FnMut(usize, &mut dyn Write) -> io::Result<()> + 'd;

/// A planned file: its complete header and each tensor's byte size.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct StPlan {
    /// The 8-byte header length followed by the padded JSON header.
    pub header: Vec<u8>,
    /// Byte size of each tensor, in the order given.
    pub sizes: Vec<u64>,
    /// Total file length.
    pub file_len: u64,
}

fn input(tensor: &str, problem: impl Into<String>) -> Kind {
    Kind::WriteInput {
        tensor: tensor.to_string(),
        problem: problem.into(),
    }
}

/// The scheme entries of a block-quantized tensor.
fn scheme_entries(t: &StTensorSpec) -> Option<[(String, String); 2]> {
    match t.dtype {
        StDtype::Ggml(g) if g.is_quantized() => Some([
            (
                format!("{}{GGML_TYPE_SUFFIX}", t.name),
                g.name().to_string(),
            ),
            (
                format!("{}{GGML_SHAPE_SUFFIX}", t.name),
                shape_string(t.shape),
            ),
        ]),
        StDtype::Ggml(_) | StDtype::Other(_) => None,
    }
}

/// The `__metadata__` of a file holding `tensors`: `user`, then missing scheme entries.
fn file_metadata(
    user: &IndexMap<String, String>,
    tensors: &[StTensorSpec],
) -> Result<IndexMap<String, String>, Kind> {
    let mut out = user.clone();
    for t in tensors {
        match scheme_entries(t) {
            Some(entries) => {
                for (key, value) in entries {
                    match out.get(&key) {
                        Some(old) if *old != value => {
                            let p =
                                format!("metadata {key:?} = {old:?}, the scheme needs {value:?}");
                            return Err(input(t.name, p));
                        }
                        Some(_) => {}
                        None => {
                            out.insert(key, value);
                        }
                    }
                }
            }
            None => {
                for suffix in [GGML_TYPE_SUFFIX, GGML_SHAPE_SUFFIX] {
                    let key = format!("{}{suffix}", t.name);
                    if out.contains_key(&key) {
                        let p = format!(
                            "metadata {key:?} would mark this {} tensor as GGML-quantized",
                            t.dtype
                        );
                        return Err(input(t.name, p));
                    }
                }
            }
        }
    }
    Ok(out)
}

/// Checks names and computes each tensor's byte size.
fn tensor_sizes(tensors: &[StTensorSpec]) -> Result<Vec<u64>, Kind> {
    let mut seen = IndexMap::with_capacity(tensors.len());
    let mut sizes = Vec::with_capacity(tensors.len());
    for t in tensors {
        if t.name == "__metadata__" {
            return Err(input(t.name, "the name is reserved for the metadata map"));
        }
        if seen.insert(t.name, ()).is_some() {
            return Err(Kind::DuplicateTensor {
                tensor: t.name.to_string(),
            });
        }
        let size = t
            .dtype
            .byte_size(t.shape)
            .map_err(|p| input(t.name, format!("{} {:?}: {p}", t.dtype, t.shape)))?;
        sizes.push(size);
    }
    Ok(sizes)
}

fn push_json_str(out: &mut String, s: &str) -> Result<(), Kind> {
    let quoted = serde_json::to_string(s).map_err(|e| Kind::Json {
        message: e.to_string(),
    })?;
    out.push_str(&quoted);
    Ok(())
}

/// Plans one file: validates the input, builds the header and checks it with the reader.
pub fn plan_safetensors(
    metadata: &IndexMap<String, String>,
    tensors: &[StTensorSpec],
) -> Result<StPlan, Kind> {
    let sizes = tensor_sizes(tensors)?;
    let metadata = file_metadata(metadata, tensors)?;
    let mut json = String::from("{");
    if !metadata.is_empty() {
        json.push_str("\"__metadata__\":{");
        for (i, (k, v)) in metadata.iter().enumerate() {
            if i > 0 {
                json.push(',');
            }
            push_json_str(&mut json, k)?;
            json.push(':');
            push_json_str(&mut json, v)?;
        }
        json.push('}');
    }
    let mut offset = 0u64;
    for (t, &size) in tensors.iter().zip(&sizes) {
        let stored = t
            .dtype
            .stored_shape(t.shape)
            .map_err(|p| input(t.name, p.to_string()))?;
        let end = offset
            .checked_add(size)
            .ok_or_else(|| input(t.name, "file size overflows u64"))?;
        if json.len() > 1 {
            json.push(',');
        }
        push_json_str(&mut json, t.name)?;
        json.push_str(&format!(
            ":{{\"dtype\":\"{}\",\"shape\":{},\"data_offsets\":[{offset},{end}]}}",
            t.dtype.stored_name(),
            shape_string(&stored)
        ));
        offset = end;
    }
    json.push('}');
    let mut json = json.into_bytes();
    json.resize(json.len().next_multiple_of(N_LEN as usize), b' ');
    let header_len = json.len() as u64;
    if header_len > MAX_HEADER_SIZE {
        return Err(input(
            "",
            format!("header of {header_len} bytes exceeds {MAX_HEADER_SIZE}"),
        ));
    }
    let file_len = (N_LEN + header_len)
        .checked_add(offset)
        .ok_or_else(|| input("", "file size overflows u64"))?;
    // Self-check with the reader's validator: the header must describe exactly these tensors.
    let parsed = parse_header(&json, offset)?;
    if parsed.metadata != metadata || parsed.tensors.len() != tensors.len() {
        return Err(input(
            "",
            "header self-check: the reader sees other metadata or tensors",
        ));
    }
    for ((t, &size), p) in tensors.iter().zip(&sizes).zip(&parsed.tensors) {
        if p.name != t.name || p.dtype != t.dtype || p.shape != t.shape || p.end - p.start != size {
            return Err(input(
                t.name,
                format!("header self-check: the reader sees {p:?}"),
            ));
        }
    }
    let mut header = Vec::with_capacity(json.len() + N_LEN as usize);
    header.extend_from_slice(&header_len.to_le_bytes());
    header.extend_from_slice(&json);
    Ok(StPlan {
        header,
        sizes,
        file_len,
    })
}

/// A writer that accepts at most `left` bytes and counts what it passes on.
struct Exact<'w> {
    inner: &'w mut dyn Write,
    left: u64,
    written: u64,
    overrun: Option<u64>,
}

impl Write for Exact<'_> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        let n = buf.len() as u64;
        if n > self.left {
            self.overrun = Some(self.written + n);
            return Err(io::Error::other("more bytes than the tensor's size"));
        }
        let k = self.inner.write(buf)?;
        self.left -= k as u64;
        self.written += k as u64;
        Ok(k)
    }
    fn flush(&mut self) -> io::Result<()> {
        self.inner.flush()
    }
}

/// Writes `out` atomically: `body` streams into a temp file in `out`'s directory, which is then
/// synced and renamed over `out`.
fn atomic_write(
    out: &Path,
    body: impl FnOnce(&mut dyn Write) -> Result<(), Kind>,
) -> Result<(), SafetensorsError> {
    let err = |kind| SafetensorsError::new(out, kind);
    let io = |action| move |source| SafetensorsError::new(out, Kind::Io { action, source });
    if out.is_dir() {
        return Err(err(Kind::OutputIsDirectory));
    }
    let dir = match out.parent() {
        Some(p) if !p.as_os_str().is_empty() => p,
        _ => Path::new("."),
    };
    let name = out
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    let prefix = format!(".{name}.");
    let mut builder = tempfile::Builder::new();
    builder.prefix(&prefix).suffix(".tmp");
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        // Like File::create (the umask applies), not tempfile's private 0600.
        builder.permissions(std::fs::Permissions::from_mode(0o666));
    }
    let tmp = builder.tempfile_in(dir).map_err(io("create temp file"))?;
    {
        let mut w = crate::formats::passthrough::FileSink::new(tmp.as_file());
        body(&mut w).map_err(err)?;
        w.flush().map_err(io("write"))?;
    }
    // No fsync: the rename makes the write atomic for every process outcome (a killed
    // conversion leaves nothing under the final name); durability across power loss is the
    // caller's (as for `cp`), and an fsync per file would double conversion time.
    tmp.persist(out).map_err(|e| {
        SafetensorsError::new(
            out,
            Kind::Io {
                action: "rename",
                source: e.error,
            },
        )
    })?;
    Ok(())
}

/// Streams the plan's header and then `tensors[i]` for `i` in `range` (with `plan.sizes`
/// aligned to `range`) through `data`.
fn write_planned(
    out: &Path,
    plan: &StPlan,
    tensors: &[StTensorSpec],
    range: Range<usize>,
    data: &mut DataFn,
) -> Result<(), SafetensorsError> {
    atomic_write(out, |w| {
        w.write_all(&plan.header).map_err(|source| Kind::Io {
            action: "write",
            source,
        })?;
        let mut offset = plan.header.len() as u64;
        for (i, &expected) in range.zip(&plan.sizes) {
            let name = tensors.get(i).map_or("", |t| t.name);
            let mut exact = Exact {
                inner: w,
                left: expected,
                written: 0,
                overrun: None,
            };
            let result = data(i, &mut exact);
            let size_err = |written| Kind::WriteSize {
                tensor: name.to_string(),
                offset,
                expected,
                written,
            };
            if let Some(written) = exact.overrun {
                return Err(size_err(written));
            }
            result.map_err(|source| Kind::DataCallback {
                tensor: name.to_string(),
                offset,
                source,
            })?;
            if exact.written != expected {
                return Err(size_err(exact.written));
            }
            offset += expected;
        }
        Ok(())
    })
}

/// Writes one SafeTensors file (see the module doc for the exact layout). `data(i, w)` must
/// write exactly the bytes of `tensors[i]`: for a block-quantized tensor its GGML blocks, row
/// after row; otherwise its little-endian elements in row-major order.
pub fn write_safetensors(
    out: &Path,
    metadata: &IndexMap<String, String>,
    tensors: &[StTensorSpec],
    data: &mut DataFn,
) -> Result<(), SafetensorsError> {
    let plan = plan_safetensors(metadata, tensors).map_err(|k| SafetensorsError::new(out, k))?;
    write_planned(out, &plan, tensors, 0..tensors.len(), data)
}

/// Splits tensors of `sizes` bytes into `n_shards` non-empty runs, in order: run `k` ends
/// before the first tensor at which the bytes so far reach `(k + 1) × total / n_shards`, or
/// earlier if only as many tensors are left as runs still to fill. Errors unless
/// `1 ≤ n_shards ≤ sizes.len()`.
pub fn shard_ranges(sizes: &[u64], n_shards: usize) -> Result<Vec<Range<usize>>, Kind> {
    if n_shards == 0 || n_shards > sizes.len() {
        let p = format!(
            "cannot split {} tensors into {n_shards} non-empty shards",
            sizes.len()
        );
        return Err(input("", p));
    }
    let total: u128 = sizes.iter().map(|&s| u128::from(s)).sum();
    let n = n_shards as u128;
    let mut ranges = Vec::with_capacity(n_shards);
    let (mut start, mut cum) = (0usize, 0u128);
    for (j, &size) in sizes.iter().enumerate() {
        let shard = ranges.len();
        let shards_after = n_shards - 1 - shard;
        let here = j - start;
        let balanced = cum * n >= (shard as u128 + 1) * total;
        if here > 0 && shards_after > 0 && (balanced || sizes.len() - j == shards_after) {
            ranges.push(start..j);
            start = j;
        }
        cum += u128::from(size);
    }
    ranges.push(start..sizes.len());
    Ok(ranges)
}

/// The Hugging Face shard file name: `model-00001-of-00003.safetensors` for `index` 0.
pub fn shard_file_name(stem: &str, index: usize, n_shards: usize) -> String {
    format!("{stem}-{:05}-of-{n_shards:05}.safetensors", index + 1)
}

/// Writes a sharded set into `dir` (created if missing): `n_shards` files named by
/// [`shard_file_name`], split by [`shard_ranges`], each holding the caller's metadata plus the
/// scheme entries of its own tensors, then `<stem>.safetensors.index.json` =
/// `{"metadata": {"total_size": <sum of tensor bytes>}, "weight_map": {tensor: shard}}`, pretty
/// JSON (2-space indent, newline-terminated) in tensor order. Returns the index path. `data`
/// receives indices into `tensors`.
pub fn write_safetensors_sharded(
    dir: &Path,
    stem: &str,
    n_shards: usize,
    metadata: &IndexMap<String, String>,
    tensors: &[StTensorSpec],
    data: &mut DataFn,
) -> Result<PathBuf, SafetensorsError> {
    let index_path = dir.join(format!("{stem}.safetensors.index.json"));
    let err = |k| SafetensorsError::new(&index_path, k);
    if stem.is_empty() || stem.contains(['/', '\\']) || stem == "." || stem == ".." {
        return Err(err(input(
            "",
            format!("stem {stem:?} is not a plain file name"),
        )));
    }
    let sizes = tensor_sizes(tensors).map_err(err)?;
    file_metadata(metadata, tensors).map_err(err)?;
    let ranges = shard_ranges(&sizes, n_shards).map_err(err)?;
    std::fs::create_dir_all(dir).map_err(|source| {
        SafetensorsError::new(
            dir,
            Kind::Io {
                action: "create directory",
                source,
            },
        )
    })?;
    let mut weight_map = serde_json::Map::new();
    for (k, range) in ranges.into_iter().enumerate() {
        let name = shard_file_name(stem, k, n_shards);
        let path = dir.join(&name);
        let specs = tensors.get(range.clone()).unwrap_or_default();
        let plan =
            plan_safetensors(metadata, specs).map_err(|e| SafetensorsError::new(&path, e))?;
        write_planned(&path, &plan, tensors, range, data)?;
        for t in specs {
            weight_map.insert(t.name.to_string(), serde_json::Value::String(name.clone()));
        }
    }
    let total_size: u64 = sizes
        .iter()
        .try_fold(0u64, |a, &s| a.checked_add(s))
        .ok_or_else(|| err(input("", "total size overflows u64")))?;
    let index = serde_json::json!({
        "metadata": { "total_size": total_size },
        "weight_map": weight_map,
    });
    let mut bytes = serde_json::to_vec_pretty(&index).map_err(|e| {
        err(Kind::Json {
            message: e.to_string(),
        })
    })?;
    bytes.push(b'\n');
    atomic_write(&index_path, |w| {
        w.write_all(&bytes).map_err(|source| Kind::Io {
            action: "write",
            source,
        })
    })?;
    Ok(index_path)
}
