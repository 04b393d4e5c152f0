//! Shared by the `cvmfs-inspect` tests: running the binary, a minimal static HTTP server,
//! and byte-flipping helpers.
#![allow(dead_code)]

use std::io::{BufRead, BufReader, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

use sha2::{Digest, Sha256};

/// The outcome of one `cvmfs-inspect` run.
pub struct Run {
    pub output: Output,
    pub what: String,
}

impl Run {
    /// Stdout as text; panics with stderr if the command failed.
    pub fn success(self) -> String {
        String::from_utf8(self.success_bytes()).expect("utf-8 output")
    }

    pub fn success_bytes(self) -> Vec<u8> {
        assert!(
            self.output.status.success(),
            "{} failed: {}",
            self.what,
            String::from_utf8_lossy(&self.output.stderr)
        );
        self.output.stdout
    }

    /// Stderr; panics if the command succeeded.
    pub fn failure(self) -> String {
        assert!(!self.output.status.success(), "{} unexpectedly succeeded", self.what);
        String::from_utf8_lossy(&self.output.stderr).into_owned()
    }
}

pub fn inspect(common: &[String], extra: &[&str]) -> Run {
    let output = Command::new(env!("CARGO_BIN_EXE_cvmfs-inspect"))
        .args(common)
        .args(extra)
        .output()
        .expect("run cvmfs-inspect");
    Run { output, what: format!("cvmfs-inspect {} {}", common.join(" "), extra.join(" ")) }
}

pub fn sha256_hex(bytes: &[u8]) -> String {
    Sha256::digest(bytes).iter().map(|b| format!("{b:02x}")).collect()
}

/// Flips every bit of the byte in the middle of `file`.
pub fn flip_middle_byte(file: &Path) {
    let mut bytes = std::fs::read(file).unwrap();
    let middle = bytes.len() / 2;
    bytes[middle] ^= 0xff;
    std::fs::write(file, bytes).unwrap();
}

/// Serves `root` as `/cvmfs/<any name>/...` on 127.0.0.1 when the name is the
/// directory's, 404 otherwise. One thread per connection, `Connection: close`.
pub struct StaticServer {
    pub address: SocketAddr,
    stop: Arc<AtomicBool>,
}

impl Drop for StaticServer {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
        let _ = TcpStream::connect(self.address);
    }
}

pub fn serve_directory(root: &Path) -> StaticServer {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let address = listener.local_addr().unwrap();
    let stop = Arc::new(AtomicBool::new(false));
    let root = root.to_path_buf();
    let stop_flag = Arc::clone(&stop);
    std::thread::spawn(move || {
        for stream in listener.incoming() {
            if stop_flag.load(Ordering::SeqCst) {
                break;
            }
            let Ok(stream) = stream else { continue };
            let root = root.clone();
            std::thread::spawn(move || answer(stream, &root));
        }
    });
    StaticServer { address, stop }
}

fn answer(stream: TcpStream, root: &Path) {
    let _ = stream.set_read_timeout(Some(std::time::Duration::from_secs(10)));
    let mut reader = BufReader::new(&stream);
    let mut request_line = String::new();
    if reader.read_line(&mut request_line).is_err() {
        return;
    }
    loop {
        let mut header = String::new();
        if reader.read_line(&mut header).unwrap_or(0) == 0 || header == "\r\n" {
            break;
        }
    }
    let target = request_line.split_whitespace().nth(1).unwrap_or("");
    let body = resolve(root, target).and_then(|file| std::fs::read(file).ok());
    let mut out = &stream;
    let _ = match body {
        Some(body) => {
            let head =
                format!("HTTP/1.1 200 OK\r\nContent-Length: {}\r\nConnection: close\r\n\r\n", body.len());
            out.write_all(head.as_bytes()).and_then(|()| out.write_all(&body))
        }
        None => out.write_all(b"HTTP/1.1 404 Not Found\r\nContent-Length: 0\r\nConnection: close\r\n\r\n"),
    };
}

fn resolve(root: &Path, target: &str) -> Option<PathBuf> {
    let name = root.file_name()?.to_str()?;
    let rest = target.strip_prefix("/cvmfs/")?.strip_prefix(name)?.strip_prefix('/')?;
    if rest.split('/').any(|c| c.is_empty() || c == "." || c == "..") {
        return None;
    }
    Some(root.join(rest))
}

/// `--repo --fqrn --key --now` for a fixture repository (at a time its whitelist is valid).
pub fn reference_args(repo: &cvmfs_testkit::fixtures::FixtureRepo) -> Vec<String> {
    vec![
        "--repo".into(),
        repo.storage.display().to_string(),
        "--fqrn".into(),
        repo.fqrn.clone(),
        "--key".into(),
        repo.public_key.display().to_string(),
        "--now".into(),
        cvmfs_testkit::fixtures::REFERENCE_NOW.to_string(),
    ]
}
