//! Lossless JSON encoding of GGUF metadata, so APR and SafeTensors can carry a GGUF file's
//! key/value list, tensor-info list and alignment, and GGUF → X → GGUF stays byte-identical.
//!
//! Encoding (documented in the README, "What conversions carry"):
//! - a pair is `{"key": K, "type": T, "value": V}` with `T` gguf-py's type name (`u32`,
//!   `string`, `array`, …); an array adds `"elem_type"`, and its `value` is a JSON array whose
//!   items encode by the same rules (nested arrays as `{"elem_type", "value"}` objects);
//! - integers are JSON integers (u64/i64 exact); finite floats are JSON numbers (f32 widened
//!   to f64 exactly, parsed back exactly); a non-finite float is the string `"bits:0x…"`;
//! - a UTF-8 string is a JSON string; other bytes are `{"hex": "…"}`;
//! - a bool is `true`/`false` for bytes 0/1, else the raw byte as an integer.
//!
//! Decoding rejects anything else with an error naming the key: no guessing.

use serde_json::{json, Map, Value};

use crate::formats::gguf::{GgufArray, GgufValue, GgufValueType};

/// An error decoding carried GGUF metadata.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("carried GGUF metadata, key {key:?}: {detail}")]
pub struct KvJsonError {
    /// The key whose entry is malformed (empty when the list itself is).
    pub key: String,
    /// What is wrong.
    pub detail: String,
}

fn err(key: &str, detail: impl Into<String>) -> KvJsonError {
    KvJsonError {
        key: key.to_string(),
        detail: detail.into(),
    }
}

/// Encodes the whole key/value list.
pub fn encode_kv(kv: &[(String, GgufValue)]) -> Value {
    Value::Array(
        kv.iter()
            .map(|(k, v)| {
                let mut o = Map::new();
                o.insert("key".into(), json!(k));
                o.insert("type".into(), json!(v.type_of().name()));
                if let GgufValue::Array(a) = v {
                    o.insert("elem_type".into(), json!(a.elem_type.name()));
                }
                o.insert("value".into(), encode_value(v));
                Value::Object(o)
            })
            .collect(),
    )
}

fn encode_float(x: f64, bits: String) -> Value {
    if x.is_finite() {
        json!(x)
    } else {
        json!(format!("bits:{bits}"))
    }
}

fn encode_value(v: &GgufValue) -> Value {
    match v {
        GgufValue::U8(x) => json!(x),
        GgufValue::I8(x) => json!(x),
        GgufValue::U16(x) => json!(x),
        GgufValue::I16(x) => json!(x),
        GgufValue::U32(x) => json!(x),
        GgufValue::I32(x) => json!(x),
        GgufValue::U64(x) => json!(x),
        GgufValue::I64(x) => json!(x),
        GgufValue::F32(x) => encode_float(f64::from(*x), format!("{:#010x}", x.to_bits())),
        GgufValue::F64(x) => encode_float(*x, format!("{:#018x}", x.to_bits())),
        GgufValue::Bool(b) => match b {
            0 => json!(false),
            1 => json!(true),
            other => json!(other),
        },
        GgufValue::String(s) => match std::str::from_utf8(s) {
            Ok(s) => json!(s),
            Err(_) => json!({ "hex": hex(s) }),
        },
        GgufValue::Array(a) => Value::Array(
            a.items
                .iter()
                .map(|item| match item {
                    GgufValue::Array(inner) => {
                        json!({ "elem_type": inner.elem_type.name(), "value": encode_value(item) })
                    }
                    other => encode_value(other),
                })
                .collect(),
        ),
    }
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

fn unhex(key: &str, s: &str) -> Result<Vec<u8>, KvJsonError> {
    if !s.len().is_multiple_of(2) {
        return Err(err(key, "odd-length hex string"));
    }
    (0..s.len())
        .step_by(2)
        .map(|i| {
            s.get(i..i + 2)
                .and_then(|h| u8::from_str_radix(h, 16).ok())
                .ok_or_else(|| err(key, format!("bad hex at {i}")))
        })
        .collect()
}

/// The GGUF value type named `name` (gguf-py spelling).
pub fn value_type(name: &str) -> Option<GgufValueType> {
    GgufValueType::ALL
        .iter()
        .copied()
        .find(|t| t.name() == name)
}

/// Decodes a key/value list written by [`encode_kv`].
pub fn decode_kv(v: &Value) -> Result<Vec<(String, GgufValue)>, KvJsonError> {
    let items = v
        .as_array()
        .ok_or_else(|| err("", "gguf_kv is not a JSON array"))?;
    items
        .iter()
        .enumerate()
        .map(|(i, item)| {
            let o = item
                .as_object()
                .ok_or_else(|| err("", format!("entry {i} is not an object")))?;
            let key = o
                .get("key")
                .and_then(Value::as_str)
                .ok_or_else(|| err("", format!("entry {i} has no string \"key\"")))?;
            let ty = o
                .get("type")
                .and_then(Value::as_str)
                .and_then(value_type)
                .ok_or_else(|| err(key, "missing or unknown \"type\""))?;
            let value = o
                .get("value")
                .ok_or_else(|| err(key, "missing \"value\""))?;
            let elem = o.get("elem_type");
            Ok((key.to_string(), decode_value(key, ty, elem, value)?))
        })
        .collect()
}

fn decode_value(
    key: &str,
    ty: GgufValueType,
    elem: Option<&Value>,
    v: &Value,
) -> Result<GgufValue, KvJsonError> {
    let int = |v: &Value| -> Result<i128, KvJsonError> {
        v.as_u64()
            .map(i128::from)
            .or_else(|| v.as_i64().map(i128::from))
            .ok_or_else(|| err(key, format!("expected an integer, found {v}")))
    };
    macro_rules! narrow {
        ($variant:ident, $t:ty) => {{
            let x = int(v)?;
            GgufValue::$variant(
                <$t>::try_from(x)
                    .map_err(|_| err(key, format!("{x} out of range for {}", ty.name())))?,
            )
        }};
    }
    Ok(match ty {
        GgufValueType::U8 => narrow!(U8, u8),
        GgufValueType::I8 => narrow!(I8, i8),
        GgufValueType::U16 => narrow!(U16, u16),
        GgufValueType::I16 => narrow!(I16, i16),
        GgufValueType::U32 => narrow!(U32, u32),
        GgufValueType::I32 => narrow!(I32, i32),
        GgufValueType::U64 => narrow!(U64, u64),
        GgufValueType::I64 => narrow!(I64, i64),
        GgufValueType::F32 => match v {
            Value::String(s) => GgufValue::F32(f32::from_bits(bits(key, s)? as u32)),
            // Exact: the number was printed from an f32 widened to f64.
            other => GgufValue::F32(float(key, other)? as f32),
        },
        GgufValueType::F64 => match v {
            Value::String(s) => GgufValue::F64(f64::from_bits(bits(key, s)?)),
            other => GgufValue::F64(float(key, other)?),
        },
        GgufValueType::Bool => match v {
            Value::Bool(b) => GgufValue::Bool(u8::from(*b)),
            other => narrow_bool(key, int(other)?)?,
        },
        GgufValueType::String => match v {
            Value::String(s) => GgufValue::String(s.as_bytes().to_vec()),
            Value::Object(o) => {
                let h = o
                    .get("hex")
                    .and_then(Value::as_str)
                    .ok_or_else(|| err(key, "string object without \"hex\""))?;
                GgufValue::String(unhex(key, h)?)
            }
            other => return Err(err(key, format!("expected a string, found {other}"))),
        },
        GgufValueType::Array => {
            let elem_type = elem
                .and_then(Value::as_str)
                .and_then(value_type)
                .ok_or_else(|| err(key, "array without a known \"elem_type\""))?;
            let items = v
                .as_array()
                .ok_or_else(|| err(key, "array value is not a JSON array"))?;
            let items = items
                .iter()
                .map(|item| match elem_type {
                    GgufValueType::Array => {
                        let o = item
                            .as_object()
                            .ok_or_else(|| err(key, "nested array item is not an object"))?;
                        let inner = o
                            .get("value")
                            .ok_or_else(|| err(key, "nested array without \"value\""))?;
                        decode_value(key, GgufValueType::Array, o.get("elem_type"), inner)
                    }
                    scalar => decode_value(key, scalar, None, item),
                })
                .collect::<Result<Vec<_>, _>>()?;
            GgufValue::Array(GgufArray { elem_type, items })
        }
    })
}

fn narrow_bool(key: &str, x: i128) -> Result<GgufValue, KvJsonError> {
    u8::try_from(x)
        .map(GgufValue::Bool)
        .map_err(|_| err(key, format!("bool byte {x} out of range")))
}

fn float(key: &str, v: &Value) -> Result<f64, KvJsonError> {
    v.as_f64()
        .ok_or_else(|| err(key, format!("expected a number, found {v}")))
}

fn bits(key: &str, s: &str) -> Result<u64, KvJsonError> {
    s.strip_prefix("bits:0x")
        .and_then(|h| u64::from_str_radix(h, 16).ok())
        .ok_or_else(|| err(key, format!("bad float bits {s:?}")))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn arr(elem_type: GgufValueType, items: Vec<GgufValue>) -> GgufValue {
        GgufValue::Array(GgufArray { elem_type, items })
    }

    #[test]
    fn every_value_type_round_trips_exactly() {
        let kv: Vec<(String, GgufValue)> = vec![
            ("u8".into(), GgufValue::U8(255)),
            ("i8".into(), GgufValue::I8(-128)),
            ("u16".into(), GgufValue::U16(65535)),
            ("i16".into(), GgufValue::I16(-32768)),
            ("u32".into(), GgufValue::U32(u32::MAX)),
            ("i32".into(), GgufValue::I32(i32::MIN)),
            ("u64".into(), GgufValue::U64(u64::MAX)),
            ("i64".into(), GgufValue::I64(i64::MIN)),
            ("f32".into(), GgufValue::F32(1e-6)),
            ("f32nan".into(), GgufValue::F32(f32::from_bits(0x7fc0_1234))),
            ("f32inf".into(), GgufValue::F32(f32::NEG_INFINITY)),
            ("f64".into(), GgufValue::F64(0.1)),
            ("b0".into(), GgufValue::Bool(0)),
            ("b1".into(), GgufValue::Bool(1)),
            ("b7".into(), GgufValue::Bool(7)),
            (
                "s".into(),
                GgufValue::String(b"<|im_start|> \xc4\xa0".to_vec()),
            ),
            ("raw".into(), GgufValue::String(vec![0xff, 0x00, 0x80])),
            ("empty".into(), GgufValue::String(vec![])),
            (
                "a".into(),
                arr(
                    GgufValueType::I32,
                    vec![GgufValue::I32(1), GgufValue::I32(-2)],
                ),
            ),
            ("a0".into(), arr(GgufValueType::String, vec![])),
            (
                "nested".into(),
                arr(
                    GgufValueType::Array,
                    vec![arr(GgufValueType::F32, vec![GgufValue::F32(0.5)])],
                ),
            ),
        ];
        let json = encode_kv(&kv);
        let text = serde_json::to_string(&json).expect("serializable");
        let back = decode_kv(&serde_json::from_str(&text).expect("parses")).expect("decodes");
        assert_eq!(back.len(), kv.len());
        for ((k1, v1), (k2, v2)) in kv.iter().zip(&back) {
            assert_eq!(k1, k2);
            match (v1, v2) {
                (GgufValue::F32(a), GgufValue::F32(b)) => {
                    assert_eq!(a.to_bits(), b.to_bits(), "{k1}")
                }
                _ => assert_eq!(v1, v2, "{k1}"),
            }
        }
    }

    #[test]
    fn malformed_entries_name_the_key() {
        let bad = json!([{ "key": "x", "type": "u8", "value": 300 }]);
        assert_eq!(decode_kv(&bad).map_err(|e| e.key), Err("x".to_string()));
        let bad = json!([{ "key": "y", "type": "float128", "value": 1 }]);
        assert_eq!(decode_kv(&bad).map_err(|e| e.key), Err("y".to_string()));
        let bad = json!([{ "key": "z", "type": "array", "value": [] }]);
        assert!(decode_kv(&bad).is_err());
    }
}
