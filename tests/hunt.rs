//! Tests of `apr-qa hunt` (src/harness/hunt): its strategies as proptest/quickcheck tests at
//! moderate case counts, its independent dequantization restatement against ggml's oracle
//! vectors, the requant theorems and where they stop, the replay of every case under
//! `tests/regressions/`, and the binary finding and shrinking planted faults (run as a
//! subprocess with `--inject`: the fault switch is process-wide, so this test binary never
//! flips it).

use std::path::{Path, PathBuf};

use proptest::prelude::*;
use proptest::strategy::ValueTree;
use proptest::test_runner::TestRunner;
use quickcheck::{Arbitrary, Gen, QuickCheck, TestResult};

use apr_qa::dtype::{GgmlType, RETIRED_GGML_IDS};
use apr_qa::formats::gguf::{GgufFile, GgufValue};
use apr_qa::formats::gguf_write::{write_gguf_to_vec, GgufTensorSpec};
use apr_qa::formats::names::{gguf_to_hf, hf_to_gguf};
use apr_qa::harness::hunt::blocks::{self, Paths, Scratch};
use apr_qa::harness::hunt::regression::{case_files, hex, replay, unhex, Regression};
use apr_qa::harness::hunt::strategies::{block, Batch, BatchStrategy};
use apr_qa::harness::hunt::{chains, models, requant, spec};
use apr_qa::quant::{can_dequantize, can_quantize, quantize};

use crate::util;

fn dequantizable() -> Vec<GgmlType> {
    GgmlType::ALL
        .into_iter()
        .filter(|&t| can_dequantize(t))
        .collect()
}

fn check_block(t: GgmlType, b: &[u8]) -> Result<(), TestCaseError> {
    let mut s = Scratch::default();
    blocks::check(t, b, 7, 21, &Paths::detect(), &mut s)
        .map_err(|m| TestCaseError::fail(format!("{t}: {m}")))
}

// ---- Blocks: every path agrees ----

#[test]
fn every_path_agrees_on_random_and_structured_blocks() {
    for t in dequantizable() {
        let mut runner = TestRunner::new(ProptestConfig {
            cases: 48,
            failure_persistence: None,
            ..ProptestConfig::default()
        });
        let r = runner.run(&block(t), |b| check_block(t, &b));
        assert!(r.is_ok(), "{t}: {r:?}");
    }
}

#[test]
fn one_hunt_batch_per_type_passes() {
    let paths = Paths::detect();
    for t in dequantizable() {
        let b = batch_of(BatchStrategy::of(t));
        assert!(b.len() >= 4096, "{t}: {} blocks", b.len());
        let r = blocks::check(
            t,
            b.data(),
            b.x_seed,
            b.plain_row,
            &paths,
            &mut Scratch::default(),
        );
        assert!(r.is_ok(), "{t} seed {}: {r:?}", b.seed);
    }
}

fn batch_of(s: BatchStrategy) -> Batch {
    s.new_tree(&mut TestRunner::deterministic())
        .unwrap()
        .current()
}

#[test]
fn fp16_and_bf16_bits_survive_dequantization_nan_payloads_included() {
    // Independent oracle: fp16 fields decoded by hand, bf16 by shifting.
    for h in 0..=u16::MAX {
        let mut y = [0f32; 1];
        apr_qa::quant::dequantize(GgmlType::F16, &h.to_le_bytes(), &mut y).unwrap();
        let (sign, exp, man) = (
            u32::from(h >> 15) << 31,
            u32::from(h >> 10) & 31,
            u32::from(h) & 0x3FF,
        );
        let want = match (exp, man) {
            (31, 0) => sign | 0x7F80_0000,
            (31, m) => sign | 0x7FC0_0000 | m << 13,
            (0, m) => sign | (m as f32 / 16_777_216.0).to_bits(),
            (e, m) => sign | (e + 112) << 23 | m << 13,
        };
        assert_eq!(y[0].to_bits(), want, "F16 {h:#06x}");
        apr_qa::quant::dequantize(GgmlType::BF16, &h.to_le_bytes(), &mut y).unwrap();
        assert_eq!(y[0].to_bits(), u32::from(h) << 16, "BF16 {h:#06x}");
    }
    // And through every SIMD path, in rows with a tail.
    let all: Vec<u8> = (0..=u16::MAX).flat_map(u16::to_le_bytes).collect();
    for t in [GgmlType::F16, GgmlType::BF16] {
        check_block(t, &all).unwrap();
    }
}

// ---- The independent restatement against ggml's own output ----

/// (type, block bytes, ggml's f32 output) of every dequantize section of the oracle vectors
/// (format: scripts/gen-oracle-vectors.sh; produced by ggml, never by this crate).
fn oracle_dequant_sections() -> Vec<(GgmlType, Vec<u8>, Vec<f32>)> {
    let dir = util::root().join("tests/data/oracle");
    let mut out = Vec::new();
    for e in std::fs::read_dir(&dir).unwrap() {
        let p = e.unwrap().path();
        let bytes = std::fs::read(&p).unwrap();
        let marker = b"\ndata\n";
        let end = bytes.windows(6).position(|w| w == marker).unwrap();
        let header = std::str::from_utf8(&bytes[..end]).unwrap();
        let data = &bytes[end + 6..];
        let mut ty = None;
        let mut at = 0;
        for line in header.lines() {
            let mut f = line.split(' ');
            match (f.next(), f.next(), f.next(), f.next()) {
                (Some("type"), Some(t), _, _) => ty = Some(t.parse::<GgmlType>().unwrap()),
                (Some("section"), Some(kind), Some(_), Some(n)) => {
                    let t: GgmlType = ty.unwrap();
                    let n: usize = n.parse().unwrap();
                    let (nb, nf) = (n * t.type_size(), n * t.block_size() * 4);
                    if kind == "dequantize" {
                        let f32s = data[at + nb..at + nb + nf]
                            .chunks_exact(4)
                            .map(|c| f32::from_le_bytes(c.try_into().unwrap()))
                            .collect();
                        out.push((t, data[at..at + nb].to_vec(), f32s));
                    }
                    at += nb + nf;
                }
                _ => {}
            }
        }
    }
    assert!(out.len() >= 20, "oracle vectors missing: {}", dir.display());
    out
}

#[test]
fn the_spec_restatement_matches_ggml_oracle_vectors() {
    let mut covered = std::collections::BTreeSet::new();
    for (t, bytes, want) in oracle_dequant_sections() {
        if !spec::has_spec(t) {
            continue;
        }
        covered.insert(t);
        let mut y = vec![0f32; t.block_size()];
        for (i, (b, w)) in bytes
            .chunks_exact(t.type_size())
            .zip(want.chunks_exact(t.block_size()))
            .enumerate()
        {
            assert!(spec::dequantize_block(t, b, &mut y));
            for (j, (a, e)) in y.iter().zip(w).enumerate() {
                // Computed NaNs: any NaN (see blocks' module doc); everything else by bits.
                let same =
                    a.to_bits() == e.to_bits() || (t.block_size() > 1 && a.is_nan() && e.is_nan());
                assert!(
                    same,
                    "{t} block {i} value {j}: spec {:#010x}, ggml {:#010x}",
                    a.to_bits(),
                    e.to_bits()
                );
            }
        }
    }
    assert!(covered.len() >= 20, "spec covered only {covered:?}");
}

// ---- Requant identities ----

proptest! {
    #![proptest_config(ProptestConfig { cases: 256, failure_persistence: None, ..ProptestConfig::default() })]

    /// For the theorem types, Q(D(B)) is exactly what the theorem predicts on its domain, for
    /// quantizer images of random vectors and for arbitrary blocks alike.
    #[test]
    fn requant_theorems_hold_on_their_domains(
        t in prop::sample::select(vec![GgmlType::Q8_0, GgmlType::Q4_0, GgmlType::Q5_0, GgmlType::F16, GgmlType::BF16, GgmlType::F32]),
        seed in any::<u64>(),
        raw in prop::collection::vec(any::<u8>(), 34),
    ) {
        let mut rng = apr_qa::harness::hunt::gen::Rng::new(seed);
        let mut x = vec![0f32; t.block_size()];
        requant::random_values(&mut rng, &mut x);
        let mut b = vec![0u8; t.type_size()];
        quantize(t, &x, &mut b).unwrap();
        for block in [b.clone(), raw[..t.type_size()].to_vec()] {
            if let Some(want) = requant::predicted(t, &block) {
                prop_assert_eq!(requant::requantize(t, &block).unwrap(), want, "{} {}", t, hex(&block));
            }
        }
    }
}

#[test]
fn requant_batches_of_theorem_types_pass() {
    for t in GgmlType::ALL
        .into_iter()
        .filter(|&t| requant::is_theorem(t))
    {
        let b = batch_of(BatchStrategy::requant(t));
        let n = requant::check(t, b.data()).unwrap_or_else(|m| panic!("{t}: {m}"));
        assert!(
            n > b.len() / 4,
            "{t}: only {n} of {} blocks in the domain",
            b.len()
        );
    }
}

/// The identity is never assumed where it is not a theorem: every non-theorem quantizable type
/// has counterexamples among its own quantizer's images, and the theorem types have them just
/// outside their domains (an fp16 scale that underflowed to zero).
#[test]
fn requant_counterexamples_exist_outside_the_theorems() {
    for t in GgmlType::ALL
        .into_iter()
        .filter(|&t| can_quantize(t) && !requant::is_theorem(t))
    {
        let (changed, total) = requant::survey(t, 2048, 11);
        assert!(
            total == 2048 && changed > 0,
            "{t}: {changed}/{total} blocks changed"
        );
    }
    for t in [GgmlType::Q8_0, GgmlType::Q4_0, GgmlType::Q5_0] {
        let mut x = vec![0f32; 32];
        x[3] = 1e-9;
        x[7] = -6e-10;
        let mut b = vec![0u8; t.type_size()];
        quantize(t, &x, &mut b).unwrap();
        assert_eq!(
            requant::predicted(t, &b),
            None,
            "{t}: {} is outside the domain",
            hex(&b)
        );
        assert_ne!(
            requant::requantize(t, &b).unwrap(),
            b,
            "{t}: an underflowed block is not a fixed point"
        );
    }
    // F16: a NaN payload does not survive f32 → fp16 (ggml canonicalises), as predicted.
    assert_eq!(
        requant::requantize(GgmlType::F16, &[0x55, 0x7D]).unwrap(),
        vec![0x00, 0x7E]
    );
}

// ---- Formats and models ----

proptest! {
    #![proptest_config(ProptestConfig { cases: 24, failure_persistence: None, ..ProptestConfig::default() })]

    /// Random models of every dtype through 1–4 hops of GGUF/APR/SafeTensors, each hop lossless;
    /// rows that are not whole blocks refused by every writer and by the GGUF/SafeTensors readers.
    #[test]
    fn conversion_chains_are_lossless(c in chains::chain_case(&[])) {
        chains::check_case(&c).map_err(TestCaseError::fail)?;
    }
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 4, failure_persistence: None, ..ProptestConfig::default() })]

    /// The exact kernel contract on random small models: quantized vs F32-export logits are
    /// bit-identical at every SIMD level and thread count.
    #[test]
    fn quantized_and_f32_export_logits_are_bit_identical(c in models::model_case(&[])) {
        models::check_case(&c).map_err(TestCaseError::fail)?;
    }
}

// ---- Regression cases ----

fn regressions_dir() -> PathBuf {
    util::root().join("tests/regressions")
}

#[test]
fn every_saved_regression_case_replays() {
    let files = case_files(&regressions_dir()).unwrap();
    let mut failures = Vec::new();
    for f in &files {
        let r = Regression::load(f).unwrap();
        if let Err(e) = replay(&r) {
            failures.push(format!("{}: {e}", f.display()));
        }
    }
    assert!(
        failures.is_empty(),
        "{} of {} cases fail:\n{}",
        failures.len(),
        files.len(),
        failures.join("\n")
    );
}

#[test]
fn a_replay_can_fail() {
    // A dequant case whose recorded reference bits are wrong must not replay.
    let mut r = Regression::default();
    r.set("kind", "dequant")
        .set("dtype", "Q8_0")
        .set("what", "value")
        .set("unit", 0)
        .set("index", 1)
        .set("x_seed", 1)
        .set("plain_row", 16)
        .set("bytes", format!("003c{}", "01".repeat(32))); // d = 1.0, qs = 1: value 1.0
    r.set("expected", "0x3f800000");
    assert_eq!(replay(&r), Ok(()));
    r.set("expected", "0x40000000");
    assert!(replay(&r).is_err());
}

// ---- The binary finds and shrinks planted bugs ----

/// Runs `hunt --inject fault --types t` and returns the saved regression case.
fn hunt_finds(fault: &str, t: &str, dir: &Path) -> Regression {
    let args = format!("hunt --inject {fault} --time 5 --types {t} --seed 1 --regressions");
    let (code, out, err) = util::run(args.split(' ').chain([dir.to_str().unwrap()]));
    assert_eq!(code, 1, "hunt --inject {fault} must find it:\n{out}\n{err}");
    let line = out
        .lines()
        .find(|l| l.contains("regression saved: "))
        .unwrap_or_else(|| panic!("{out}"));
    let path = PathBuf::from(line.split("regression saved: ").nth(1).unwrap().trim());
    assert!(path.starts_with(dir), "{}", path.display());
    assert!(out.contains("FOUND (blocks"), "{out}");
    let r = Regression::load(&path).unwrap();
    assert_eq!(r.get("fault").unwrap(), fault);
    // The shrunk block is reported on stdout as saved.
    assert!(
        out.contains(&format!("shrunk: {}", r.get("bytes").unwrap())),
        "{out}"
    );
    // The clean engine agrees with itself on the shrunk block, and gives the recorded bits.
    replay(&r).unwrap();
    r
}

#[test]
fn hunt_finds_and_shrinks_fp16_scale_truncation() {
    let dir = tempfile::tempdir().unwrap();
    let r = hunt_finds("FP16-SCALE-TRUNC", "q4_k", dir.path());
    assert_eq!(r.dtype().unwrap(), GgmlType::Q4_K);
    let b = r.bytes().unwrap();
    assert_eq!(b.len(), 144, "shrunk to one block: {}", hex(&b));
    // Rounding through bf16 changes an fp16 scale only when its 3 low mantissa bits are set.
    let (d, dmin) = (
        u16::from_le_bytes([b[0], b[1]]),
        u16::from_le_bytes([b[2], b[3]]),
    );
    assert!(d & 7 != 0 || dmin & 7 != 0, "d {d:#06x} dmin {dmin:#06x}");
    // Shrunk: most bytes are zero.
    assert!(b.iter().filter(|&&x| x != 0).count() < 16, "{}", hex(&b));
}

#[test]
fn hunt_finds_and_shrinks_q5_nibble_order() {
    let dir = tempfile::tempdir().unwrap();
    let r = hunt_finds("Q5-NIBBLE-ORDER", "q5_0", dir.path());
    let b = r.bytes().unwrap();
    assert_eq!(
        (r.dtype().unwrap(), b.len()),
        (GgmlType::Q5_0, 22),
        "{}",
        hex(&b)
    );
    assert!(b.iter().filter(|&&x| x != 0).count() < 8, "{}", hex(&b));
}

#[test]
fn hunt_rejects_bad_input_and_passes_a_short_clean_run() {
    for args in [
        vec!["hunt", "--types", "q9_z"],
        vec!["hunt", "--types", "i32"],
        vec!["hunt", "--time", "-1"],
        vec!["hunt", "--cases", "0"],
        vec!["hunt", "--inject", "NOPE"],
    ] {
        let (code, _, err) = util::run(&args);
        assert_eq!(code, 2, "{args:?}: {err}");
    }
    let dir = tempfile::tempdir().unwrap();
    let args = "hunt --cases 1 --types q4_k,q8_0 --seed 5 --json --regressions".split(' ');
    let (code, out, err) = util::run(args.chain([dir.path().to_str().unwrap()]));
    let v: serde_json::Value =
        serde_json::from_str(&out).unwrap_or_else(|e| panic!("{e}: {out}{err}"));
    // Exit 1 exactly when something was found, each finding with its saved case.
    let findings = v["findings"].as_array().unwrap();
    assert_eq!(code, if findings.is_empty() { 0 } else { 1 }, "{out}{err}");
    for f in findings {
        assert!(
            Path::new(f["regression"].as_str().unwrap()).starts_with(dir.path()),
            "{f}"
        );
        // The codecs of the clean engine agree with themselves and with the restatement.
        assert!(
            !["blocks", "requant"].contains(&f["family"].as_str().unwrap()),
            "{f}"
        );
    }
    assert_eq!(v["blocks"][0]["dtype"], "Q4_K");
    assert_eq!(v["blocks"][0]["blocks"], 4096);
    assert!(v["blocks"][0]["blocks_per_s"].as_f64().unwrap() > 0.0);
    assert_eq!(v["requant"][0]["dtype"], "Q8_0");
    assert!(v["requant"][0]["theorem"].as_bool().unwrap());
}

// ---- quickcheck: I-3 over arbitrary dtype ids, names through the GGUF ↔ HF map ----

/// A one-tensor GGUF whose tensor has type id `id` (written by hand, so any id can be stored).
fn gguf_with_type_id(id: u32) -> Vec<u8> {
    let mut b = b"GGUF".to_vec();
    b.extend(3u32.to_le_bytes());
    b.extend(1u64.to_le_bytes());
    b.extend(0u64.to_le_bytes());
    b.extend(1u64.to_le_bytes());
    b.push(b't');
    b.extend(1u32.to_le_bytes());
    b.extend(256u64.to_le_bytes());
    b.extend(id.to_le_bytes());
    b.extend(0u64.to_le_bytes());
    b.resize(b.len().div_ceil(32) * 32 + 4096, 0);
    b
}

fn i3(id: u32) -> bool {
    match GgmlType::try_from(id) {
        Ok(t) => {
            // Known: the id round-trips, through the name and through a GGUF file.
            let ne = [t.block_size() as u64];
            let spec = GgufTensorSpec {
                name: "t",
                ne: &ne,
                dtype: t,
            };
            let file = write_gguf_to_vec(3, &[], &[spec], &mut |_, w| {
                w.write_all(&vec![0u8; t.type_size()])
            })
            .unwrap();
            let back = GgufFile::from_bytes(file).unwrap();
            t.id() == id && t.name().parse::<GgmlType>() == Ok(t) && back.tensors[0].dtype == t
        }
        // Unknown (retired ids included): refused by TryFrom and by the GGUF reader, naming it.
        Err(_) => match GgufFile::from_bytes(gguf_with_type_id(id)) {
            Ok(_) => false,
            Err(e) => e.to_string().contains(&format!("id {id}")),
        },
    }
}

#[test]
fn quickcheck_i3_dtype_ids_refuse_unknown_and_round_trip_known() {
    QuickCheck::new()
        .tests(2000)
        .quickcheck(i3 as fn(u32) -> bool);
    QuickCheck::new()
        .tests(1000)
        .quickcheck((|id: u8| i3(u32::from(id))) as fn(u8) -> bool);
    for id in RETIRED_GGML_IDS.into_iter().chain(0..64) {
        assert!(i3(id), "id {id}");
    }
}

/// A tensor name built from map parts (or arbitrary strings), GGUF- or HF-styled.
#[derive(Clone, Debug)]
struct Name(String);

impl Arbitrary for Name {
    fn arbitrary(g: &mut Gen) -> Self {
        // Stems of the map (GGUF, HF), written out here independently of src/formats/names.rs.
        const GGUF: &str = "token_embd output_norm output attn_norm ffn_norm attn_q attn_k attn_v \
                            attn_output attn_q_norm attn_k_norm ffn_gate ffn_up ffn_down";
        const HF: &str = "model.embed_tokens model.norm lm_head input_layernorm \
                          post_attention_layernorm self_attn.q_proj self_attn.k_proj \
                          self_attn.v_proj self_attn.o_proj self_attn.q_norm self_attn.k_norm \
                          mlp.gate_proj mlp.up_proj mlp.down_proj";
        let (gguf_stems, hf_stems): (Vec<&str>, Vec<&str>) = (
            GGUF.split_whitespace().collect(),
            HF.split_whitespace().collect(),
        );
        let pick = |g: &mut Gen, xs: &[&str]| g.choose(xs).copied().unwrap_or_default().to_string();
        let layer = match u8::arbitrary(g) % 6 {
            0 => String::arbitrary(g),
            1 => format!("0{}", u8::arbitrary(g)),
            _ => u16::arbitrary(g).to_string(),
        };
        let suffix = if bool::arbitrary(g) {
            pick(g, &[".weight", ".bias"])
        } else {
            pick(
                g,
                &[".weight", ".bias", "", ".weight.bias", ".scale", ".Weight"],
            )
        };
        let (gguf, hf) = (pick(g, &gguf_stems), pick(g, &hf_stems));
        let s = match u8::arbitrary(g) % 8 {
            // Coherent names: a GGUF or HF stem with its own family's layer prefix.
            0 | 1 if gguf.starts_with("token") || gguf.starts_with("output") => {
                format!("{gguf}{suffix}")
            }
            0 | 1 => format!("blk.{layer}.{gguf}{suffix}"),
            2 | 3 if hf.starts_with("model.") || hf == "lm_head" => format!("{hf}{suffix}"),
            2 | 3 => format!("model.layers.{layer}.{hf}{suffix}"),
            // Mixed-up families and arbitrary text.
            4 => format!("blk.{layer}.{hf}{suffix}"),
            5 => format!("model.layers.{layer}.{gguf}{suffix}"),
            6 => format!("{}{suffix}", String::arbitrary(g)),
            _ => String::arbitrary(g),
        };
        Name(s)
    }
}

fn names_round_trip(n: Name) -> TestResult {
    let s = n.0;
    if let Some(h) = gguf_to_hf(&s) {
        // A mapped GGUF name: maps back to itself, and is not itself an HF name.
        if hf_to_gguf(&h).as_deref() != Some(s.as_str()) || hf_to_gguf(&s).is_some() {
            return TestResult::failed();
        }
    }
    if let Some(g) = hf_to_gguf(&s) {
        if gguf_to_hf(&g).as_deref() != Some(s.as_str()) || gguf_to_hf(&s).is_some() {
            return TestResult::failed();
        }
    }
    TestResult::passed()
}

#[test]
fn quickcheck_tensor_names_round_trip_through_the_gguf_hf_map() {
    QuickCheck::new()
        .tests(5000)
        .quickcheck(names_round_trip as fn(Name) -> TestResult);
    // The generator does reach the map.
    let mut g = Gen::new(20);
    let mapped = (0..2000)
        .map(|_| Name::arbitrary(&mut g).0)
        .filter(|n| gguf_to_hf(n).is_some() || hf_to_gguf(n).is_some())
        .count();
    assert!(mapped > 300, "only {mapped} of 2000 names were mapped");
}

#[test]
fn regression_hex_round_trips() {
    assert_eq!(
        unhex(&hex(&[0, 1, 0xfe, 0xff])).unwrap(),
        vec![0, 1, 0xfe, 0xff]
    );
    let v = GgufValue::F32(f32::from_bits(0x7FC0_1234));
    assert!(chains::same_value(&v, &v.clone()));
    assert!(!chains::same_value(
        &v,
        &GgufValue::F32(f32::from_bits(0x7FC0_0000))
    ));
}

/// Rows must be whole blocks even when the tensor's total is (a Q4_K `[2, 128]` holds 256
/// values = one block straddling two rows): every writer and reader refuses it.
#[test]
fn partial_block_rows_are_refused_even_when_the_total_is_whole_blocks() {
    let c = chains::ChainCase {
        arch: "llama".into(),
        version: 3,
        alignment: None,
        metadata: Vec::new(),
        tensors: vec![chains::TensorCase {
            name: "t".into(),
            dtype: GgmlType::F32,
            ne: vec![4],
            data_seed: 1,
        }],
        hops: vec![apr_qa::convert::Target::Gguf],
        bad: Some((GgmlType::Q4_K, vec![128, 2])),
    };
    chains::check_case(&c).unwrap();
}
