//! Creates the benchmark source trees for the writer (see `docs/WRITER.md`):
//!
//! * `DIR/small`: 100 000 small files (50..2 000 bytes, half text-like, half noise) in
//!   1 000 directories, with a `.cvmfscatalog` marker in every tenth directory;
//! * `DIR/large`: one 1 GiB file of pseudo-random bytes (the worst case for zlib).
//!
//! Then time a publish with `/usr/bin/time -v target/release/cvmfs-publish publish ...`.
//!
//! Usage: `cargo run --release -p cvmfs-publish --example bench_trees -- DIR [small|large]`

use std::io::Write;
use std::path::Path;

fn main() -> std::io::Result<()> {
    let args: Vec<String> = std::env::args().collect();
    let Some(dir) = args.get(1) else {
        eprintln!("usage: bench_trees DIR [small|large]");
        std::process::exit(2);
    };
    let which = args.get(2).map(String::as_str).unwrap_or("both");
    let dir = Path::new(dir);
    if which != "large" {
        small_files(&dir.join("small"))?;
    }
    if which != "small" {
        large_file(&dir.join("large"))?;
    }
    Ok(())
}

struct Noise(u64);

impl Noise {
    fn fill(&mut self, buffer: &mut [u8]) {
        for chunk in buffer.chunks_mut(8) {
            self.0 ^= self.0 << 13;
            self.0 ^= self.0 >> 7;
            self.0 ^= self.0 << 17;
            let bytes = self.0.to_le_bytes();
            chunk.copy_from_slice(&bytes[..chunk.len()]);
        }
    }
}

fn small_files(root: &Path) -> std::io::Result<()> {
    let mut noise = Noise(0x2545f4914f6cdd1d);
    let mut buffer = vec![0u8; 2000];
    for d in 0..1000 {
        let dir = root.join(format!("group{:02}", d / 100)).join(format!("dir{d:04}"));
        std::fs::create_dir_all(&dir)?;
        if d % 10 == 0 {
            std::fs::write(dir.join(".cvmfscatalog"), b"")?;
        }
        for f in 0..100 {
            let len = 50 + (d * 100 + f) * 7919 % 1950;
            if f % 2 == 0 {
                noise.fill(&mut buffer[..len]);
            } else {
                for (i, b) in buffer[..len].iter_mut().enumerate() {
                    *b = b"lorem ipsum dolor sit amet\n"[(i + d) % 27];
                }
            }
            std::fs::write(dir.join(format!("file{f:03}.dat")), &buffer[..len])?;
        }
    }
    println!("created 100000 files in {}", root.display());
    Ok(())
}

fn large_file(root: &Path) -> std::io::Result<()> {
    std::fs::create_dir_all(root)?;
    let mut file = std::io::BufWriter::new(std::fs::File::create(root.join("big.bin"))?);
    let mut noise = Noise(0x9e3779b97f4a7c15);
    let mut buffer = vec![0u8; 1 << 20];
    for _ in 0..1024 {
        noise.fill(&mut buffer);
        file.write_all(&buffer)?;
    }
    file.flush()?;
    println!("created a 1 GiB file in {}", root.display());
    Ok(())
}
