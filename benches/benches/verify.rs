//! One-pass inflate + hash ([`VerifyingWriter`]) against inflating and hashing the same
//! data in two separate passes, on 8 MiB of mixed-compressibility data (a typical chunk).

use std::io::Write;

use criterion::{black_box, criterion_group, criterion_main, Criterion, Throughput};
use cvmfs_core::compression::{deflate, inflate};
use cvmfs_core::hash::Hasher;
use cvmfs_core::verify::VerifyingWriter;
use cvmfs_core::{Algorithm, Compression, ContentHash};

const SIZE: usize = 8 << 20;

/// Half pseudo-random bytes, half text-like runs: compresses about 2:1 like binaries.
fn sample_data() -> Vec<u8> {
    let mut state = 0x2545_f491_4f6c_dd1du64;
    let mut data = Vec::with_capacity(SIZE);
    while data.len() < SIZE {
        state ^= state << 13;
        state ^= state >> 7;
        state ^= state << 17;
        if (state >> 60) & 1 == 0 {
            data.extend_from_slice(&state.to_le_bytes());
        } else {
            data.extend_from_slice(b"import os, sys  # ");
        }
    }
    data.truncate(SIZE);
    data
}

fn verify_benches(c: &mut Criterion) {
    let plain = sample_data();
    let stored = deflate(&plain);
    for algorithm in [Algorithm::Sha1, Algorithm::Rmd160, Algorithm::Shake128] {
        let expected = ContentHash::of(algorithm, &stored);
        let mut group = c.benchmark_group(format!("verify_{}", algorithm.name()));
        group.throughput(Throughput::Bytes(SIZE as u64));
        group.sample_size(20);
        group.bench_function("one_pass_inflate_and_hash", |b| {
            b.iter(|| {
                let mut writer = VerifyingWriter::new(expected, Compression::Zlib, std::io::sink(), u64::MAX);
                for piece in stored.chunks(64 << 10) {
                    writer.write_raw(piece).unwrap();
                }
                black_box(writer.finish().unwrap());
            })
        });
        group.bench_function("separate_inflate_then_hash", |b| {
            b.iter(|| {
                let mut hasher = Hasher::new(algorithm);
                hasher.update(&stored);
                assert_eq!(hasher.finish(), expected);
                let inflated = inflate(&stored, u64::MAX).unwrap();
                std::io::sink().write_all(&inflated).unwrap();
                black_box(inflated.len());
            })
        });
        group.finish();
    }
}

criterion_group!(benches, verify_benches);
criterion_main!(benches);
