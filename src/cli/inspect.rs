//! `apr-qa inspect FILE [--json]`.

use std::collections::BTreeMap;
use std::path::PathBuf;

use apr_qa::formats::apr::AprFile;
use apr_qa::formats::gguf::{GgufFile, GgufValue};
use apr_qa::formats::safetensors::SafetensorsModel;
use apr_qa::formats::{detect, Format};
use serde_json::{json, Value};

use super::{Failure, EXIT_OK};

/// Arrays longer than this are summarised (length, element type, first items).
const ARRAY_PREVIEW: usize = 8;

#[derive(clap::Args)]
pub struct Args {
    /// The model file.
    file: PathBuf,
    /// Print JSON instead of text.
    #[arg(long)]
    json: bool,
}

pub fn run(args: Args) -> Result<u8, Failure> {
    let format = detect(&args.file).map_err(Failure::bad_input)?;
    let report = match format {
        Format::Gguf => inspect_gguf(&GgufFile::open(&args.file).map_err(Failure::bad_input)?),
        Format::Apr => inspect_apr(&AprFile::open(&args.file).map_err(Failure::bad_input)?),
        Format::SafeTensors => {
            inspect_st(&SafetensorsModel::open(&args.file).map_err(Failure::bad_input)?)
        }
        Format::Directory => {
            return Err(Failure::bad_input(anyhow::anyhow!(
                "{}: inspect does not read {} yet",
                args.file.display(),
                format.name()
            )))
        }
    };
    if args.json {
        println!(
            "{}",
            serde_json::to_string_pretty(&report).map_err(Failure::bad_input)?
        );
    } else {
        print_text(&report);
    }
    Ok(EXIT_OK)
}

/// The JSON value of a metadata entry; arrays longer than [`ARRAY_PREVIEW`] are summarised.
fn value_json(v: &GgufValue) -> Value {
    match v {
        GgufValue::U8(x) => json!(x),
        GgufValue::I8(x) => json!(x),
        GgufValue::U16(x) => json!(x),
        GgufValue::I16(x) => json!(x),
        GgufValue::U32(x) => json!(x),
        GgufValue::I32(x) => json!(x),
        GgufValue::F32(x) => float_json(f64::from(*x)),
        GgufValue::Bool(b) => json!(*b != 0),
        GgufValue::String(s) => json!(String::from_utf8_lossy(s)),
        GgufValue::U64(x) => json!(x),
        GgufValue::I64(x) => json!(x),
        GgufValue::F64(x) => float_json(*x),
        GgufValue::Array(a) => {
            let items: Vec<Value> = a.items.iter().take(ARRAY_PREVIEW).map(value_json).collect();
            if a.items.len() <= ARRAY_PREVIEW {
                Value::Array(items)
            } else {
                json!({ "len": a.items.len(), "elem_type": a.elem_type.to_string(), "first": items })
            }
        }
    }
}

fn float_json(x: f64) -> Value {
    if x.is_finite() {
        json!(x)
    } else {
        json!(x.to_string())
    }
}

fn inspect_gguf(f: &GgufFile) -> Value {
    let mut histogram: BTreeMap<&str, u64> = BTreeMap::new();
    let mut n_params: u64 = 0;
    let tensors: Vec<Value> = f
        .tensors
        .iter()
        .map(|t| {
            *histogram.entry(t.dtype.name()).or_default() += 1;
            n_params += t.n_elements();
            let shape: Vec<u64> = t.ne.iter().rev().copied().collect();
            json!({
                "name": t.name,
                "dtype": t.dtype.name(),
                "ne": t.ne,
                "shape": shape,
                "offset": t.offset,
                "n_bytes": t.n_bytes,
            })
        })
        .collect();
    let metadata: Vec<Value> = f
        .metadata
        .iter()
        .map(|(k, v)| json!({ "key": k, "type": v.type_of().to_string(), "value": value_json(v) }))
        .collect();
    json!({
        "path": f.path.display().to_string(),
        "format": "gguf",
        "version": f.version,
        "file_bytes": f.file_size,
        "alignment": f.alignment,
        "data_offset": f.data_offset,
        "n_tensors": f.tensors.len(),
        "n_params": n_params,
        "dtype_histogram": histogram,
        "metadata": metadata,
        "tensors": tensors,
    })
}

/// A JSON value with long arrays summarised and long strings clipped.
fn summarise(v: &Value) -> Value {
    match v {
        Value::Array(a) if a.len() > ARRAY_PREVIEW => {
            json!({ "len": a.len(), "first": a.iter().take(ARRAY_PREVIEW).map(summarise).collect::<Vec<_>>() })
        }
        Value::Array(a) => Value::Array(a.iter().map(summarise).collect()),
        Value::String(s) if s.len() > 200 => json!(format!(
            "{}… ({} bytes)",
            s.chars().take(120).collect::<String>(),
            s.len()
        )),
        other => other.clone(),
    }
}

/// Builds the common report from (name, dtype, shape, offset, bytes, params) rows.
fn report(
    path: &std::path::Path,
    format: &str,
    version: String,
    file_bytes: u64,
    metadata: Vec<Value>,
    rows: Vec<(String, String, Vec<u64>, u64, u64)>,
) -> Value {
    let mut histogram: BTreeMap<String, u64> = BTreeMap::new();
    let mut n_params: u64 = 0;
    let tensors: Vec<Value> = rows
        .into_iter()
        .map(|(name, dtype, shape, offset, n_bytes)| {
            *histogram.entry(dtype.clone()).or_default() += 1;
            n_params += shape.iter().product::<u64>();
            json!({ "name": name, "dtype": dtype, "shape": shape, "offset": offset, "n_bytes": n_bytes })
        })
        .collect();
    json!({
        "path": path.display().to_string(),
        "format": format,
        "version": version,
        "file_bytes": file_bytes,
        "n_tensors": tensors.len(),
        "n_params": n_params,
        "dtype_histogram": histogram,
        "metadata": metadata,
        "tensors": tensors,
    })
}

fn inspect_apr(f: &AprFile) -> Value {
    let metadata = f
        .metadata
        .iter()
        .map(|(k, v)| json!({ "key": k, "type": "json", "value": summarise(v) }))
        .collect();
    let rows = f
        .entries
        .iter()
        .map(|e| {
            (
                e.name.clone(),
                e.dtype.name().to_string(),
                e.dims.clone(),
                e.offset,
                e.size,
            )
        })
        .collect();
    let mut r = report(
        &f.path,
        "apr",
        format!("{}.{}", f.version.0, f.version.1),
        f.bytes().len() as u64,
        metadata,
        rows,
    );
    r["flags"] = json!(format!("{:#06x}", f.flags));
    r["footer"] = json!(format!("{:?}", f.footer));
    r["findings"] = json!(f.findings);
    r
}

fn inspect_st(m: &SafetensorsModel) -> Value {
    let metadata = m
        .metadata
        .iter()
        .map(|(k, v)| json!({ "key": k, "type": "string", "value": summarise(&json!(v)) }))
        .collect();
    let rows = m
        .tensors
        .iter()
        .map(|t| {
            (
                t.name.clone(),
                t.dtype.to_string(),
                t.shape.clone(),
                t.start,
                t.end - t.start,
            )
        })
        .collect();
    let bytes: u64 = m
        .shards
        .iter()
        .filter_map(|p| std::fs::metadata(p).ok())
        .map(|md| md.len())
        .sum();
    let path = m
        .index
        .clone()
        .or_else(|| m.shards.first().cloned())
        .unwrap_or_default();
    let mut r = report(&path, "safetensors", "-".into(), bytes, metadata, rows);
    r["shards"] = json!(m
        .shards
        .iter()
        .map(|p| p.display().to_string())
        .collect::<Vec<_>>());
    r
}

fn print_text(r: &Value) {
    let s = |k: &str| r[k].to_string();
    println!("file      {}", r["path"].as_str().unwrap_or_default());
    println!(
        "format    {} v{}",
        r["format"].as_str().unwrap_or_default(),
        s("version")
    );
    println!("size      {} bytes", s("file_bytes"));
    println!(
        "tensors   {}   parameters {}",
        s("n_tensors"),
        s("n_params")
    );
    if let Some(h) = r["dtype_histogram"].as_object() {
        let parts: Vec<String> = h.iter().map(|(k, v)| format!("{k}×{v}")).collect();
        println!("dtypes    {}", parts.join(", "));
    }
    println!("\nmetadata");
    for m in r["metadata"].as_array().into_iter().flatten() {
        let mut v = m["value"].to_string();
        if v.len() > 120 {
            v = format!("{}…", v.chars().take(117).collect::<String>());
        }
        println!(
            "  {:<44} {:<8} {}",
            m["key"].as_str().unwrap_or_default(),
            m["type"].as_str().unwrap_or_default(),
            v
        );
    }
    println!(
        "\n  {:<48} {:<8} {:<20} {:>12} {:>12}",
        "tensor", "dtype", "shape", "offset", "bytes"
    );
    for t in r["tensors"].as_array().into_iter().flatten() {
        println!(
            "  {:<48} {:<8} {:<20} {:>12} {:>12}",
            t["name"].as_str().unwrap_or_default(),
            t["dtype"].as_str().unwrap_or_default(),
            t["shape"].to_string(),
            t["offset"].to_string(),
            t["n_bytes"].to_string()
        );
    }
}
