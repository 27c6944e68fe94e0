//! Oracle vectors: the block codecs against ggml, bit for bit.
//!
//! `tests/data/oracle/<type>.oracle` hold block bytes with ggml's dequantized f32 and f32
//! inputs with ggml's reference-quantized bytes. They are written by
//! `scripts/gen-oracle-vectors.sh` (its header documents the format) from a ggml build and
//! cross-checked there against gguf-py; nothing in them comes from this crate.
//!
//! Invariants checked here:
//! - `dequantize` reproduces ggml's f32 output exactly, compared with `f32::to_bits` so NaN
//!   payloads and signed zeros count;
//! - `quantize` reproduces ggml's bytes exactly;
//! - every type with `can_dequantize` / `can_quantize` has vectors of that kind, and every
//!   vector file names its producer, which is never apr-qa.

use apr_qa::dtype::GgmlType;
use apr_qa::quant::{can_dequantize, can_quantize, dequantize, quantize};
use std::fmt::Write as _;
use std::ops::Range;
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::path::{Path, PathBuf};

/// Mismatches printed per section before the rest are only counted.
const SHOWN_PER_SECTION: usize = 8;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Kind {
    Dequantize,
    Quantize,
}

struct Section {
    kind: Kind,
    name: String,
    n_blocks: usize,
    input: Range<usize>,
    output: Range<usize>,
}

struct VectorFile {
    path: PathBuf,
    ty: GgmlType,
    producers: Vec<String>,
    sections: Vec<Section>,
    data: Vec<u8>,
}

fn oracle_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/data/oracle")
}

fn parse_usize(line: &str, value: Option<&str>) -> Result<usize, String> {
    value
        .and_then(|v| v.parse().ok())
        .ok_or_else(|| format!("bad number in header line {line:?}"))
}

fn parse(path: &Path) -> Result<VectorFile, String> {
    let bytes = std::fs::read(path).map_err(|e| format!("cannot read: {e}"))?;
    let marker = b"\ndata\n";
    let end = bytes
        .windows(marker.len())
        .position(|w| w == marker)
        .ok_or("no \"data\" line ends the header")?;
    let header = std::str::from_utf8(&bytes[..end]).map_err(|e| format!("header: {e}"))?;
    let data = bytes[end + marker.len()..].to_vec();

    let mut lines = header.lines();
    if lines.next() != Some("ggml-oracle-vectors 1") {
        return Err("not a ggml-oracle-vectors 1 file".into());
    }
    let (mut ty, mut id, mut block_size, mut type_size) = (None, None, None, None);
    let mut producers = Vec::new();
    let mut declared = Vec::new();
    for line in lines {
        let (key, rest) = line.split_once(' ').unwrap_or((line, ""));
        match key {
            "type" => {
                ty = Some(
                    rest.parse::<GgmlType>()
                        .map_err(|e| format!("{line:?}: {e}"))?,
                );
            }
            "ggml_id" => id = Some(parse_usize(line, Some(rest))?),
            "block_size" => block_size = Some(parse_usize(line, Some(rest))?),
            "type_size" => type_size = Some(parse_usize(line, Some(rest))?),
            "producer" => producers.push(rest.to_string()),
            "section" => {
                let mut f = rest.split(' ');
                let kind = match f.next() {
                    Some("dequantize") => Kind::Dequantize,
                    Some("quantize") => Kind::Quantize,
                    _ => return Err(format!("bad section kind in {line:?}")),
                };
                let name = f.next().ok_or_else(|| format!("no name in {line:?}"))?;
                let n_blocks = parse_usize(line, f.next())?;
                declared.push((kind, name.to_string(), n_blocks));
            }
            _ => {} // crosscheck, note, input, layout: documentation only
        }
    }
    let ty = ty.ok_or("no type line")?;
    if id != Some(ty.id() as usize)
        || block_size != Some(ty.block_size())
        || type_size != Some(ty.type_size())
    {
        return Err(format!(
            "header says id {id:?}, block {block_size:?}, size {type_size:?}; the crate's {ty} is \
             id {}, block {}, size {}",
            ty.id(),
            ty.block_size(),
            ty.type_size()
        ));
    }
    let mut sections = Vec::new();
    let mut at = 0usize;
    for (kind, name, n_blocks) in declared {
        let n_bytes = n_blocks * ty.type_size();
        let n_f32_bytes = n_blocks * ty.block_size() * 4;
        let (first, second) = match kind {
            Kind::Dequantize => (n_bytes, n_f32_bytes),
            Kind::Quantize => (n_f32_bytes, n_bytes),
        };
        let input = at..at + first;
        let output = input.end..input.end + second;
        at = output.end;
        sections.push(Section {
            kind,
            name,
            n_blocks,
            input,
            output,
        });
    }
    if at != data.len() {
        return Err(format!(
            "sections need {at} payload bytes, the file has {}",
            data.len()
        ));
    }
    Ok(VectorFile {
        path: path.to_path_buf(),
        ty,
        producers,
        sections,
        data,
    })
}

fn load_all() -> Vec<VectorFile> {
    let dir = oracle_dir();
    let entries =
        std::fs::read_dir(&dir).unwrap_or_else(|e| panic!("cannot list {}: {e}", dir.display()));
    let mut paths: Vec<PathBuf> = entries
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.extension().is_some_and(|x| x == "oracle"))
        .collect();
    paths.sort();
    assert!(
        !paths.is_empty(),
        "no .oracle files in {}: run scripts/gen-oracle-vectors.sh",
        dir.display()
    );
    paths
        .iter()
        .map(|p| parse(p).unwrap_or_else(|e| panic!("{}: {e}", p.display())))
        .collect()
}

fn le_f32s(bytes: &[u8]) -> Vec<f32> {
    bytes
        .chunks_exact(4)
        .map(|b| f32::from_le_bytes([b[0], b[1], b[2], b[3]]))
        .collect()
}

/// Runs `f`, turning a panic (e.g. a codec that is not written yet) into an error line.
fn guarded<T>(what: &str, f: impl FnOnce() -> T) -> Result<T, String> {
    catch_unwind(AssertUnwindSafe(f)).map_err(|p| {
        let msg = p
            .downcast_ref::<&str>()
            .map(|s| s.to_string())
            .or_else(|| p.downcast_ref::<String>().cloned())
            .unwrap_or_default();
        format!("{what}: panicked: {msg}")
    })
}

/// Checks every section of `kind`; returns (sections checked, report of failures).
fn check_all(kind: Kind) -> (usize, String) {
    let mut report = String::new();
    let mut checked = 0;
    for file in load_all() {
        let t = file.ty;
        for s in file.sections.iter().filter(|s| s.kind == kind) {
            checked += 1;
            let input = &file.data[s.input.clone()];
            let expected = &file.data[s.output.clone()];
            let kind_name = match kind {
                Kind::Dequantize => "dequantize",
                Kind::Quantize => "quantize",
            };
            let what = format!("{t} {kind_name} {} ({} blocks)", s.name, s.n_blocks);
            let result = match kind {
                Kind::Dequantize => guarded(&what, || {
                    let mut out = vec![0f32; s.n_blocks * t.block_size()];
                    dequantize(t, input, &mut out).map(|()| out)
                })
                .and_then(|r| r.map_err(|e| format!("{what}: {e}")))
                .map(|out| compare_f32(&what, t, &out, &le_f32s(expected))),
                Kind::Quantize => guarded(&what, || {
                    let mut out = vec![0u8; s.n_blocks * t.type_size()];
                    quantize(t, &le_f32s(input), &mut out).map(|()| out)
                })
                .and_then(|r| r.map_err(|e| format!("{what}: {e}")))
                .map(|out| compare_bytes(&what, t, &out, expected)),
            };
            match result {
                Ok(diff) => report.push_str(&diff),
                Err(e) => {
                    let _ = writeln!(report, "{e} [{}]", file.path.display());
                }
            }
        }
    }
    (checked, report)
}

fn compare_f32(what: &str, t: GgmlType, ours: &[f32], ggml: &[f32]) -> String {
    let bs = t.block_size();
    let mut out = String::new();
    let bad: Vec<usize> = (0..ggml.len())
        .filter(|&i| ours.get(i).map(|v| v.to_bits()) != Some(ggml[i].to_bits()))
        .collect();
    for &i in bad.iter().take(SHOWN_PER_SECTION) {
        let o = ours.get(i).copied().unwrap_or(f32::NAN);
        let _ = writeln!(
            out,
            "{what}: block {}, element {} (value {i} of the section): ours {:#010x} ({o:e}), ggml {:#010x} ({:e})",
            i / bs,
            i % bs,
            o.to_bits(),
            ggml[i].to_bits(),
            ggml[i]
        );
    }
    if bad.len() > SHOWN_PER_SECTION {
        let _ = writeln!(out, "{what}: … {} mismatching values in all", bad.len());
    }
    out
}

fn compare_bytes(what: &str, t: GgmlType, ours: &[u8], ggml: &[u8]) -> String {
    let ts = t.type_size();
    let mut out = String::new();
    let bad: Vec<usize> = (0..ggml.len())
        .filter(|&i| ours.get(i) != Some(&ggml[i]))
        .collect();
    for &i in bad.iter().take(SHOWN_PER_SECTION) {
        let b = i / ts;
        let _ = writeln!(
            out,
            "{what}: block {b}, byte {} (byte {i} of the section): ours {:#04x}, ggml {:#04x}; \
             ours block {}, ggml block {}",
            i % ts,
            ours.get(i).copied().unwrap_or(0),
            ggml[i],
            hex(ours.get(b * ts..(b + 1) * ts).unwrap_or(&[])),
            hex(&ggml[b * ts..(b + 1) * ts])
        );
    }
    if bad.len() > SHOWN_PER_SECTION {
        let _ = writeln!(out, "{what}: … {} mismatching bytes in all", bad.len());
    }
    out
}

fn hex(b: &[u8]) -> String {
    b.iter().fold(String::new(), |mut s, x| {
        let _ = write!(s, "{x:02x}");
        s
    })
}

#[test]
fn oracle_dequantize_matches_ggml_bit_for_bit() {
    let (checked, report) = check_all(Kind::Dequantize);
    assert!(checked > 0, "no dequantize sections");
    assert!(report.is_empty(), "dequantize differs from ggml:\n{report}");
}

#[test]
fn oracle_quantize_matches_ggml_byte_for_byte() {
    let (checked, report) = check_all(Kind::Quantize);
    assert!(checked > 0, "no quantize sections");
    assert!(report.is_empty(), "quantize differs from ggml:\n{report}");
}

#[test]
fn oracle_vectors_cover_every_codec_and_name_their_producer() {
    let files = load_all();
    let mut problems = Vec::new();
    for t in GgmlType::ALL {
        let has = |kind: Kind| {
            files
                .iter()
                .any(|f| f.ty == t && f.sections.iter().any(|s| s.kind == kind && s.n_blocks > 0))
        };
        if can_dequantize(t) && !has(Kind::Dequantize) {
            problems.push(format!(
                "{t}: can_dequantize, but no dequantization vectors"
            ));
        }
        if can_quantize(t) && !has(Kind::Quantize) {
            problems.push(format!("{t}: can_quantize, but no quantization vectors"));
        }
    }
    for f in &files {
        let p = f.path.display();
        if f.producers.is_empty() {
            problems.push(format!("{p}: records no producer"));
        }
        for producer in &f.producers {
            let lower = producer.to_lowercase();
            if producer.trim().is_empty() || lower.contains("apr-qa") || lower.contains("apr_qa") {
                problems.push(format!(
                    "{p}: producer {producer:?} is not an independent oracle"
                ));
            }
        }
        if f.files_per_type(&files) > 1 {
            problems.push(format!("{p}: more than one file for {}", f.ty));
        }
        if !can_dequantize(f.ty) && f.sections.iter().any(|s| s.kind == Kind::Dequantize) {
            problems.push(format!(
                "{p}: dequantize vectors for {}, which has no dequantizer",
                f.ty
            ));
        }
        if !can_quantize(f.ty) && f.sections.iter().any(|s| s.kind == Kind::Quantize) {
            problems.push(format!(
                "{p}: quantize vectors for {}, which has no quantizer",
                f.ty
            ));
        }
    }
    assert!(
        problems.is_empty(),
        "oracle vectors incomplete:\n{}",
        problems.join("\n")
    );
}

impl VectorFile {
    fn files_per_type(&self, all: &[VectorFile]) -> usize {
        all.iter().filter(|f| f.ty == self.ty).count()
    }
}
