//! `cargo bench --bench dequant`: dequantization throughput per type, in GB/s of f32 output,
//! beside a memcpy of the same output size measured in the same run (the ceiling).
//!
//! Blocks are random bytes with finite fp16 scales, 16 MiB of f32 output per type (larger than
//! L2, so the figure includes memory traffic as a real tensor would).

use std::hint::black_box;
use std::time::{Duration, Instant};

use apr_qa::dtype::GgmlType;
use apr_qa::quant::{can_dequantize, dequantize, float::f32_to_f16};

const OUT_VALUES: usize = 4 << 20;

fn random_blocks(t: GgmlType, n_blocks: usize, seed: &mut u64) -> Vec<u8> {
    let mut bytes = vec![0u8; n_blocks * t.type_size()];
    for b in bytes.iter_mut() {
        *seed ^= *seed << 13;
        *seed ^= *seed >> 7;
        *seed ^= *seed << 17;
        *b = (*seed >> 24) as u8;
    }
    // Replace every 2-byte word with a small finite fp16 where a block is mostly scales; the
    // throughput of the integer paths does not depend on the values, only NaN handling could.
    if t.is_quantized() {
        for block in bytes.chunks_exact_mut(t.type_size()) {
            for w in block.chunks_exact_mut(2).take(2) {
                w.copy_from_slice(&f32_to_f16(0.01).to_le_bytes());
            }
        }
    }
    bytes
}

fn time_best(mut f: impl FnMut(), budget: Duration) -> Duration {
    let mut best = Duration::MAX;
    let start = Instant::now();
    let mut runs = 0;
    while runs < 3 || (start.elapsed() < budget && runs < 200) {
        let t0 = Instant::now();
        f();
        best = best.min(t0.elapsed());
        runs += 1;
    }
    best
}

fn main() {
    let filter: Option<String> = std::env::args().skip(1).find(|a| !a.starts_with('-'));
    let budget = Duration::from_millis(400);
    let gbs = |d: Duration| (OUT_VALUES * 4) as f64 / d.as_secs_f64() / 1e9;

    let src = vec![1.0f32; OUT_VALUES];
    let mut dst = vec![0.0f32; OUT_VALUES];
    let memcpy = time_best(|| dst.copy_from_slice(black_box(&src)), budget);
    println!(
        "{:<8} {:>8.2} GB/s  (f32 write ceiling, same run)",
        "memcpy",
        gbs(memcpy)
    );

    let mut seed = 0x9E37_79B9_7F4A_7C15u64;
    for t in GgmlType::ALL {
        if !can_dequantize(t)
            || filter
                .as_deref()
                .is_some_and(|f| !t.name().eq_ignore_ascii_case(f))
        {
            continue;
        }
        let n_blocks = OUT_VALUES / t.block_size();
        let bytes = random_blocks(t, n_blocks, &mut seed);
        let d = time_best(
            || dequantize(t, black_box(&bytes), &mut dst).expect("whole blocks"),
            budget,
        );
        println!(
            "{:<8} {:>8.2} GB/s  {:>5.2}x memcpy",
            t.name(),
            gbs(d),
            memcpy.as_secs_f64() / d.as_secs_f64()
        );
    }
}
