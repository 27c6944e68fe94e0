//! What APR and SafeTensors carry of a GGUF origin so that converting back is byte-identical:
//! `gguf_kv` (every key/value pair, in order, with its GGUF type), `gguf_tensors` (the
//! tensor-info list in file order: name, `ne` with any trailing 1s, type), `gguf_alignment`,
//! `gguf_version`, and `original_format` (the first file's format). APR stores them as JSON
//! values in its metadata; SafeTensors as JSON strings in `__metadata__` (strings only).
//!
//! None of these depends on the run or the route: no time, host or path is ever carried.

use std::borrow::Cow;
use std::path::Path;
use std::str::FromStr;

use indexmap::IndexMap;
use serde_json::{json, Map, Value};

use super::kv_json::{decode_kv, encode_kv};
use super::{ModelError, Tensor};
use crate::dtype::GgmlType;
use crate::formats::gguf::GgufValue;

/// Key of the carried key/value list.
pub const KEY_KV: &str = "gguf_kv";
/// Key of the carried tensor-info list.
pub const KEY_TENSORS: &str = "gguf_tensors";
/// Key of the carried alignment.
pub const KEY_ALIGNMENT: &str = "gguf_alignment";
/// Key of the carried GGUF version.
pub const KEY_VERSION: &str = "gguf_version";
/// Key of the first file's format.
pub const KEY_ORIGINAL_FORMAT: &str = "original_format";

/// One carried tensor info.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CarriedTensor {
    /// GGUF name.
    pub name: String,
    /// GGUF dims as in the origin.
    pub ne: Vec<u64>,
    /// Type.
    pub dtype: GgmlType,
}

/// The carried lists; each is `None` when the file does not carry it. `kv` borrows the metadata
/// of a model being written (a tokenizer is hundreds of thousands of strings: never copied).
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Carried<'a> {
    /// Key/value metadata.
    pub kv: Option<Cow<'a, [(String, GgufValue)]>>,
    /// Tensor infos in GGUF order.
    pub tensors: Option<Vec<CarriedTensor>>,
    /// Alignment.
    pub alignment: Option<u64>,
    /// GGUF version.
    pub version: Option<u32>,
    /// First file's format.
    pub original_format: Option<String>,
}

/// A malformed carried entry.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("carried {key}: {detail}")]
pub struct CarryError {
    key: &'static str,
    detail: String,
}

fn cerr(key: &'static str, detail: impl Into<String>) -> CarryError {
    CarryError {
        key,
        detail: detail.into(),
    }
}

impl<'a> Carried<'a> {
    /// The carried lists of a model about to be written.
    pub fn of(
        metadata: &'a [(String, GgufValue)],
        tensors: &[Tensor],
        alignment: u64,
        version: u32,
        original_format: &str,
    ) -> Self {
        Self {
            kv: Some(Cow::Borrowed(metadata)),
            tensors: Some(
                tensors
                    .iter()
                    .map(|t| CarriedTensor {
                        name: t.name.clone(),
                        ne: t.ne.clone(),
                        dtype: t.dtype,
                    })
                    .collect(),
            ),
            alignment: Some(alignment),
            version: Some(version),
            original_format: Some(original_format.to_string()),
        }
    }

    fn tensors_json(&self) -> Option<Value> {
        self.tensors.as_ref().map(|ts| {
            Value::Array(
                ts.iter()
                    .map(|t| json!({ "name": t.name, "ne": t.ne, "type": t.dtype.name() }))
                    .collect(),
            )
        })
    }

    /// Inserts the carried keys into APR metadata (JSON values).
    pub fn insert_json(&self, m: &mut Map<String, Value>) {
        if let Some(f) = &self.original_format {
            m.insert(KEY_ORIGINAL_FORMAT.into(), json!(f));
        }
        if let Some(v) = self.version {
            m.insert(KEY_VERSION.into(), json!(v));
        }
        if let Some(a) = self.alignment {
            m.insert(KEY_ALIGNMENT.into(), json!(a));
        }
        if let Some(t) = self.tensors_json() {
            m.insert(KEY_TENSORS.into(), t);
        }
        if let Some(kv) = &self.kv {
            m.insert(KEY_KV.into(), encode_kv(kv));
        }
    }

    /// Inserts the carried keys into SafeTensors `__metadata__` (JSON text values).
    pub fn insert_strings(&self, m: &mut IndexMap<String, String>) {
        let mut j = Map::new();
        self.insert_json(&mut j);
        for (k, v) in j {
            let s = match v {
                Value::String(s) => s,
                other => other.to_string(),
            };
            m.insert(k, s);
        }
    }

    /// Reads the carried keys from APR metadata.
    pub fn from_json_map(m: &Map<String, Value>) -> Result<Self, CarryError> {
        let get = |k: &str| m.get(k).filter(|v| !v.is_null());
        Self::decode(
            get(KEY_KV).cloned(),
            get(KEY_TENSORS).cloned(),
            get(KEY_ALIGNMENT).cloned(),
            get(KEY_VERSION).cloned(),
            get(KEY_ORIGINAL_FORMAT).cloned(),
        )
    }

    /// Reads the carried keys from SafeTensors `__metadata__`.
    pub fn from_string_map(m: &IndexMap<String, String>) -> Result<Self, CarryError> {
        let parse = |k: &'static str| -> Result<Option<Value>, CarryError> {
            m.get(k)
                .map(|s| serde_json::from_str(s).map_err(|e| cerr(k, format!("not JSON: {e}"))))
                .transpose()
        };
        Self::decode(
            parse(KEY_KV)?,
            parse(KEY_TENSORS)?,
            parse(KEY_ALIGNMENT)?,
            parse(KEY_VERSION)?,
            m.get(KEY_ORIGINAL_FORMAT).map(|s| json!(s)),
        )
    }

    fn decode(
        kv: Option<Value>,
        tensors: Option<Value>,
        alignment: Option<Value>,
        version: Option<Value>,
        original_format: Option<Value>,
    ) -> Result<Self, CarryError> {
        let kv = kv
            .map(|v| decode_kv(&v).map_err(|e| cerr(KEY_KV, e.to_string())))
            .transpose()?
            .map(Cow::Owned);
        let tensors = tensors.map(|v| decode_tensors(&v)).transpose()?;
        let alignment = alignment
            .map(|v| {
                v.as_u64()
                    .filter(|a| a.is_power_of_two())
                    .ok_or_else(|| cerr(KEY_ALIGNMENT, format!("{v} is not a power of two")))
            })
            .transpose()?;
        let version = version
            .map(|v| {
                v.as_u64()
                    .and_then(|x| u32::try_from(x).ok())
                    .filter(|x| (2..=3).contains(x))
                    .ok_or_else(|| cerr(KEY_VERSION, format!("{v} is not 2 or 3")))
            })
            .transpose()?;
        let original_format = original_format
            .map(|v| {
                v.as_str()
                    .map(str::to_string)
                    .ok_or_else(|| cerr(KEY_ORIGINAL_FORMAT, "not a string"))
            })
            .transpose()?;
        Ok(Self {
            kv,
            tensors,
            alignment,
            version,
            original_format,
        })
    }
}

fn decode_tensors(v: &Value) -> Result<Vec<CarriedTensor>, CarryError> {
    let items = v
        .as_array()
        .ok_or_else(|| cerr(KEY_TENSORS, "not an array"))?;
    items
        .iter()
        .enumerate()
        .map(|(i, t)| {
            let name = t["name"]
                .as_str()
                .ok_or_else(|| cerr(KEY_TENSORS, format!("entry {i}: no name")))?;
            let ne = t["ne"]
                .as_array()
                .and_then(|a| a.iter().map(Value::as_u64).collect::<Option<Vec<u64>>>())
                .ok_or_else(|| cerr(KEY_TENSORS, format!("{name}: bad ne")))?;
            let ty = t["type"]
                .as_str()
                .ok_or_else(|| cerr(KEY_TENSORS, format!("{name}: no type")))?;
            let dtype =
                GgmlType::from_str(ty).map_err(|e| cerr(KEY_TENSORS, format!("{name}: {e}")))?;
            Ok(CarriedTensor {
                name: name.to_string(),
                ne,
                dtype,
            })
        })
        .collect()
}

/// Orders `tensors` as the carried list says and gives each its carried `ne`. Every carried
/// tensor must be present with the same type and element count, and no other tensor may be.
pub fn apply_tensor_infos(
    path: &Path,
    tensors: Vec<Tensor>,
    infos: &[CarriedTensor],
) -> Result<Vec<Tensor>, ModelError> {
    let mut by_name: IndexMap<String, Tensor> =
        tensors.into_iter().map(|t| (t.name.clone(), t)).collect();
    let mut out = Vec::with_capacity(infos.len());
    for info in infos {
        let mut t = by_name.shift_remove(&info.name).ok_or_else(|| {
            ModelError::invalid(
                path,
                format!(
                    "carried gguf_tensors names {:?}, which the file lacks",
                    info.name
                ),
            )
        })?;
        let n: u64 = info.ne.iter().product();
        if t.dtype != info.dtype || t.n_elements() != n {
            return Err(ModelError::invalid(
                path,
                format!(
                    "tensor {:?} is {} with {} elements but gguf_tensors says {} {:?}",
                    info.name,
                    t.dtype,
                    t.n_elements(),
                    info.dtype,
                    info.ne
                ),
            ));
        }
        t.ne = info.ne.clone();
        out.push(t);
    }
    if let Some(extra) = by_name.keys().next() {
        return Err(ModelError::invalid(
            path,
            format!("tensor {extra:?} is not in the carried gguf_tensors"),
        ));
    }
    Ok(out)
}
