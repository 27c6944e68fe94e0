//! Header parsing and validation of one SafeTensors file (invariants: see the parent module).

use std::fmt;

use indexmap::IndexMap;
use serde::de::{Deserialize, Deserializer, MapAccess, SeqAccess, Visitor};

use crate::dtype::GgmlType;

use super::error::{entry, Kind};
use super::{
    StDtype, StOtherDtype, StTensor, GGML_SHAPE_SUFFIX, GGML_TYPE_SUFFIX, MAX_HEADER_SIZE, N_LEN,
};

// ---------------------------------------------------------------------------------------------
// JSON: a tree that keeps key order and duplicate keys (serde_json's maps drop both).
// serde_json bounds nesting depth (128), so hostile headers cannot overflow the stack.
// ---------------------------------------------------------------------------------------------

#[derive(Debug)]
pub(crate) enum Json {
    Null,
    Bool,
    Uint(u64),
    Int,
    Float,
    Str(String),
    Arr(Vec<Json>),
    Obj(Vec<(String, Json)>),
}

impl Json {
    pub(crate) fn kind(&self) -> &'static str {
        match self {
            Self::Null => "null",
            Self::Bool => "boolean",
            Self::Uint(_) => "unsigned integer",
            Self::Int => "negative integer",
            Self::Float => "number",
            Self::Str(_) => "string",
            Self::Arr(_) => "array",
            Self::Obj(_) => "object",
        }
    }
}

struct JsonVisitor;

impl<'de> Visitor<'de> for JsonVisitor {
    type Value = Json;
    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("any JSON value")
    }
    fn visit_unit<E>(self) -> Result<Json, E> {
        Ok(Json::Null)
    }
    fn visit_bool<E>(self, _: bool) -> Result<Json, E> {
        Ok(Json::Bool)
    }
    fn visit_u64<E>(self, v: u64) -> Result<Json, E> {
        Ok(Json::Uint(v))
    }
    fn visit_i64<E>(self, v: i64) -> Result<Json, E> {
        Ok(u64::try_from(v).map_or(Json::Int, Json::Uint))
    }
    fn visit_f64<E>(self, _: f64) -> Result<Json, E> {
        Ok(Json::Float)
    }
    fn visit_str<E>(self, v: &str) -> Result<Json, E> {
        Ok(Json::Str(v.to_string()))
    }
    fn visit_string<E>(self, v: String) -> Result<Json, E> {
        Ok(Json::Str(v))
    }
    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Json, A::Error> {
        let mut out = Vec::new();
        while let Some(v) = seq.next_element::<Json>()? {
            out.push(v);
        }
        Ok(Json::Arr(out))
    }
    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Json, A::Error> {
        let mut out = Vec::new();
        while let Some(kv) = map.next_entry::<String, Json>()? {
            out.push(kv);
        }
        Ok(Json::Obj(out))
    }
}

impl<'de> Deserialize<'de> for Json {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Json, D::Error> {
        d.deserialize_any(JsonVisitor)
    }
}

/// Parses one JSON value; only whitespace may follow it.
pub(crate) fn parse_json(bytes: &[u8]) -> Result<Json, Kind> {
    let json_err = |e: serde_json::Error| Kind::Json {
        message: e.to_string(),
    };
    let mut de = serde_json::Deserializer::from_slice(bytes);
    let v = Json::deserialize(&mut de).map_err(json_err)?;
    de.end().map_err(json_err)?;
    Ok(v)
}

/// An object's entries as a map, rejecting duplicate keys.
pub(crate) fn unique(
    entries: Vec<(String, Json)>,
    context: &str,
) -> Result<IndexMap<String, Json>, Kind> {
    let mut out = IndexMap::with_capacity(entries.len());
    for (k, v) in entries {
        if out.contains_key(&k) {
            return Err(Kind::DuplicateKey {
                context: context.to_string(),
                key: k,
            });
        }
        out.insert(k, v);
    }
    Ok(out)
}

// ---------------------------------------------------------------------------------------------
// One file.
// ---------------------------------------------------------------------------------------------

/// A parsed header: `__metadata__` in file order and tensors sorted by offset (file index 0).
#[derive(Debug)]
pub(crate) struct ParsedHeader {
    pub(crate) metadata: IndexMap<String, String>,
    pub(crate) tensors: Vec<StTensor>,
}

/// Parses and validates a whole file held in `bytes`.
pub(crate) fn parse_file(bytes: &[u8]) -> Result<(u64, ParsedHeader), Kind> {
    let file_len = bytes.len() as u64;
    let prefix: [u8; 8] = bytes
        .get(..8)
        .and_then(|b| b.try_into().ok())
        .ok_or(Kind::FileTooSmall { file_len })?;
    let header_len = u64::from_le_bytes(prefix);
    if header_len > MAX_HEADER_SIZE {
        return Err(Kind::HeaderTooLarge { header_len });
    }
    let past_end = Kind::HeaderPastEnd {
        header_len,
        file_len,
    };
    let stop = usize::try_from(N_LEN + header_len).map_err(|_| Kind::HeaderPastEnd {
        header_len,
        file_len,
    })?;
    let header = bytes.get(8..stop).ok_or(past_end)?;
    let parsed = parse_header(header, file_len - N_LEN - header_len)?;
    Ok((header_len, parsed))
}

/// Parses and validates a header (the `N` JSON bytes) for a buffer of `buffer_len` bytes.
pub(crate) fn parse_header(header: &[u8], buffer_len: u64) -> Result<ParsedHeader, Kind> {
    let header_len = header.len() as u64;
    if let Err(e) = std::str::from_utf8(header) {
        return Err(Kind::HeaderNotUtf8 {
            offset: N_LEN + e.valid_up_to() as u64,
        });
    }
    if header.first() != Some(&b'{') {
        return Err(Kind::HeaderNotObject);
    }
    let Json::Obj(top) = parse_json(header)? else {
        return Err(Kind::HeaderNotObject);
    };
    let top = unique(top, "header")?;
    let mut metadata = IndexMap::new();
    let mut raw = Vec::with_capacity(top.len());
    for (name, v) in top {
        if name == "__metadata__" {
            metadata = parse_metadata(v)?;
        } else {
            raw.push(parse_entry(name, v)?);
        }
    }
    // Reference `TryFrom<HashMetadata>`: sort by data_offsets, then check contiguity. The sort is
    // stable, so zero-size tensors sharing an offset keep their JSON order.
    raw.sort_by_key(|r| (r.begin, r.end));
    let data_start = N_LEN + header_len;
    let mut pos = 0u64;
    let mut tensors = Vec::with_capacity(raw.len());
    for r in raw {
        if r.begin != pos {
            return Err(Kind::NotContiguous {
                tensor: r.name,
                expected: pos,
                found: r.begin,
            });
        }
        if r.end < r.begin {
            return Err(Kind::ReversedOffsets {
                tensor: r.name,
                begin: r.begin,
                end: r.end,
            });
        }
        // begin == previous end <= buffer_len (checked below), so this cannot overflow.
        let offset = data_start + r.begin;
        pos = r.end;
        let expected = match r.dtype.byte_size(&r.shape) {
            Ok(n) => n,
            Err(problem) => {
                return Err(Kind::BadSize {
                    tensor: r.name,
                    offset,
                    dtype: r.dtype,
                    shape: r.shape,
                    problem,
                });
            }
        };
        if expected != r.end - r.begin {
            return Err(Kind::SizeMismatch {
                tensor: r.name,
                offset,
                dtype: r.dtype,
                shape: r.shape,
                expected,
                found: r.end - r.begin,
            });
        }
        if r.end > buffer_len {
            return Err(Kind::BufferLength {
                expected: data_start.saturating_add(r.end),
                file_len: data_start + buffer_len,
            });
        }
        let (start, end) = (offset, data_start + r.end);
        let (dtype, shape) = apply_scheme(&metadata, &r.name, r.dtype, r.shape, start)?;
        tensors.push(StTensor {
            name: r.name,
            dtype,
            shape,
            file: 0,
            start,
            end,
        });
    }
    if pos != buffer_len {
        return Err(Kind::BufferLength {
            expected: data_start + pos,
            file_len: data_start + buffer_len,
        });
    }
    Ok(ParsedHeader { metadata, tensors })
}

fn parse_metadata(v: Json) -> Result<IndexMap<String, String>, Kind> {
    let entries = match v {
        Json::Null => return Ok(IndexMap::new()),
        Json::Obj(e) => e,
        other => {
            return Err(Kind::MetadataNotObject {
                found: other.kind(),
            })
        }
    };
    let mut out = IndexMap::with_capacity(entries.len());
    for (key, v) in unique(entries, "__metadata__")? {
        match v {
            Json::Str(s) => out.insert(key, s),
            other => {
                return Err(Kind::MetadataNotString {
                    key,
                    found: other.kind(),
                })
            }
        };
    }
    Ok(out)
}

struct RawEntry {
    name: String,
    dtype: StDtype,
    shape: Vec<u64>,
    begin: u64,
    end: u64,
}

fn parse_entry(name: String, v: Json) -> Result<RawEntry, Kind> {
    let Json::Obj(fields) = v else {
        return Err(entry(
            &name,
            format!("entry is a JSON {}, not an object", v.kind()),
        ));
    };
    let (mut dtype, mut shape, mut offsets) = (None, None, None);
    for (field, v) in unique(fields, &format!("tensor {name:?}"))? {
        match (field.as_str(), v) {
            ("dtype", Json::Str(s)) => dtype = Some(s),
            ("shape", Json::Arr(a)) => shape = Some(u64_array(&name, "shape", a)?),
            ("data_offsets", Json::Arr(a)) => offsets = Some(u64_array(&name, "data_offsets", a)?),
            ("dtype" | "shape" | "data_offsets", v) => {
                return Err(entry(
                    &name,
                    format!("field {field:?} is a JSON {}", v.kind()),
                ));
            }
            (_, _) => return Err(entry(&name, format!("unknown field {field:?}"))),
        }
    }
    let missing = |f: &str| entry(&name, format!("missing field {f:?}"));
    let dtype = dtype.ok_or_else(|| missing("dtype"))?;
    let shape = shape.ok_or_else(|| missing("shape"))?;
    let offsets = offsets.ok_or_else(|| missing("data_offsets"))?;
    let [begin, end] = offsets[..] else {
        return Err(entry(
            &name,
            format!("data_offsets has {} values, not 2", offsets.len()),
        ));
    };
    let Some(dtype) = StDtype::from_stored_name(&dtype) else {
        return Err(Kind::UnknownDtype {
            tensor: name,
            dtype,
        });
    };
    Ok(RawEntry {
        name,
        dtype,
        shape,
        begin,
        end,
    })
}

fn u64_array(tensor: &str, field: &str, a: Vec<Json>) -> Result<Vec<u64>, Kind> {
    a.into_iter()
        .map(|v| match v {
            Json::Uint(u) => Ok(u),
            other => Err(entry(
                tensor,
                format!("{field} holds a JSON {}", other.kind()),
            )),
        })
        .collect()
}

/// Applies the GGML scheme to one tensor (module doc), returning its logical dtype and shape.
fn apply_scheme(
    metadata: &IndexMap<String, String>,
    name: &str,
    dtype: StDtype,
    shape: Vec<u64>,
    offset: u64,
) -> Result<(StDtype, Vec<u64>), Kind> {
    let type_key = format!("{name}{GGML_TYPE_SUFFIX}");
    let shape_key = format!("{name}{GGML_SHAPE_SUFFIX}");
    let scheme = |problem: String| Kind::GgmlScheme {
        tensor: name.to_string(),
        problem,
    };
    let (type_str, shape_str) = match (metadata.get(&type_key), metadata.get(&shape_key)) {
        (None, None) => return Ok((dtype, shape)),
        (Some(t), Some(s)) => (t, s),
        (Some(_), None) => return Err(scheme(format!("{type_key:?} without {shape_key:?}"))),
        (None, Some(_)) => return Err(scheme(format!("{shape_key:?} without {type_key:?}"))),
    };
    if dtype != StDtype::Other(StOtherDtype::U8) {
        return Err(scheme(format!(
            "{type_key:?} on a {dtype} tensor (must be U8)"
        )));
    }
    let t = GgmlType::ALL
        .into_iter()
        .find(|t| t.name() == type_str)
        .ok_or_else(|| scheme(format!("unknown GGML type {type_str:?}")))?;
    if !t.is_quantized() {
        return Err(scheme(format!(
            "{t} is not block-quantized; it has a SafeTensors dtype"
        )));
    }
    let logical: Vec<u64> = serde_json::from_str(shape_str).map_err(|_| {
        scheme(format!(
            "{shape_key:?} = {shape_str:?} is not a JSON array of u64"
        ))
    })?;
    let ggml = StDtype::Ggml(t);
    let mismatch = |expected| Kind::GgmlSizeMismatch {
        tensor: name.to_string(),
        offset,
        ggml_type: t,
        shape: logical.clone(),
        expected,
        found: shape.clone(),
    };
    match ggml.stored_shape(&logical) {
        Ok(expected) if expected == shape => Ok((ggml, logical)),
        Ok(expected) => Err(mismatch(expected)),
        Err(problem) => Err(scheme(format!("logical shape {logical:?}: {problem}"))),
    }
}
