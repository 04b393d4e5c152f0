//! Where `cvmfs-inspect` reads a repository's files from: a storage directory, or a plain
//! HTTP GET against a Stratum-0/1 URL.
//!
//! The HTTP side is deliberately minimal (one connection per request, no proxies, no
//! failover): the inspector is a diagnostic tool, and the download manager with all of
//! that lives in `cvmfs-proxy`. Nothing read here is trusted: callers verify every byte
//! (signatures for the manifest and whitelist, content hashes for objects).

use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpStream;
use std::path::{Component, Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use cvmfs_core::repository::RepositorySource;
use cvmfs_core::trust::SourceError as BoxError;

use thiserror::Error;

/// Refuse bodies larger than this: the largest object a repository stores is a chunk or
/// an unchunked file, and the inspector holds one in memory at a time.
const MAX_BODY: u64 = 4 << 30;
const TIMEOUT: Duration = Duration::from_secs(30);

#[derive(Debug, Error)]
pub enum SourceError {
    #[error("{location}: not found")]
    NotFound { location: String },
    #[error("{location}: {message}")]
    Failed { location: String, message: String },
    #[error("'{0}' is neither a directory nor an http:// URL")]
    BadRepository(String),
}

/// Opens `--repo`: an existing directory or an `http://` URL.
pub fn open(repo: &str) -> Result<Arc<dyn RepositorySource>, SourceError> {
    if let Some(rest) = repo.strip_prefix("http://") {
        return Ok(Arc::new(HttpSource::new(rest)?));
    }
    if repo.starts_with("https://") {
        return Err(SourceError::BadRepository(format!(
            "{repo} (https is served by cvmfs2's download manager, not the inspector)"
        )));
    }
    let dir = PathBuf::from(repo);
    if dir.is_dir() {
        return Ok(Arc::new(DirSource { root: dir }));
    }
    Err(SourceError::BadRepository(repo.to_string()))
}

/// A storage directory as served by a web server.
pub struct DirSource {
    pub root: PathBuf,
}

impl RepositorySource for DirSource {
    fn fetch(&self, rel: &str) -> Result<Vec<u8>, BoxError> {
        let path = self.resolve(rel)?;
        let bytes = std::fs::read(&path).map_err(|e| match e.kind() {
            std::io::ErrorKind::NotFound => SourceError::NotFound { location: path.display().to_string() },
            _ => SourceError::Failed { location: path.display().to_string(), message: e.to_string() },
        })?;
        Ok(bytes)
    }

    fn location(&self, rel: &str) -> String {
        self.root.join(rel).display().to_string()
    }
}

impl DirSource {
    /// Joins a relative repository path, refusing anything that would leave the root.
    fn resolve(&self, rel: &str) -> Result<PathBuf, SourceError> {
        let rel_path = Path::new(rel);
        if !rel_path.components().all(|c| matches!(c, Component::Normal(_))) {
            return Err(SourceError::Failed {
                location: rel.to_string(),
                message: "path leaves the repository".into(),
            });
        }
        Ok(self.root.join(rel_path))
    }
}

/// `http://host[:port]/base`: one GET per file, `Connection: close`.
pub struct HttpSource {
    host_port: String,
    base_path: String,
}

impl HttpSource {
    fn new(rest: &str) -> Result<HttpSource, SourceError> {
        let (authority, path) = rest.split_once('/').unwrap_or((rest, ""));
        if authority.is_empty() {
            return Err(SourceError::BadRepository(format!("http://{rest}")));
        }
        let host_port =
            if authority.contains(':') { authority.to_string() } else { format!("{authority}:80") };
        let base_path = format!("/{}", path.trim_end_matches('/'));
        Ok(HttpSource { host_port, base_path })
    }

    fn url(&self, rel: &str) -> String {
        format!("http://{}{}/{}", self.host_port, self.base_path.trim_end_matches('/'), rel)
    }

    fn get(&self, rel: &str) -> Result<Vec<u8>, String> {
        let stream = TcpStream::connect(&self.host_port).map_err(|e| format!("connect: {e}"))?;
        stream.set_read_timeout(Some(TIMEOUT)).map_err(|e| e.to_string())?;
        stream.set_write_timeout(Some(TIMEOUT)).map_err(|e| e.to_string())?;
        let path = format!("{}/{}", self.base_path.trim_end_matches('/'), rel);
        let host = self.host_port.trim_end_matches(":80");
        let request = format!(
            "GET {path} HTTP/1.1\r\nHost: {host}\r\nUser-Agent: cvmfs-inspect/{}\r\nConnection: close\r\n\r\n",
            env!("CARGO_PKG_VERSION")
        );
        (&stream).write_all(request.as_bytes()).map_err(|e| format!("send: {e}"))?;
        read_response(BufReader::new(stream))
    }
}

impl RepositorySource for HttpSource {
    fn fetch(&self, rel: &str) -> Result<Vec<u8>, BoxError> {
        let bytes = self.get(rel).map_err(|message| {
            if message == "HTTP 404" {
                SourceError::NotFound { location: self.url(rel) }
            } else {
                SourceError::Failed { location: self.url(rel), message }
            }
        })?;
        Ok(bytes)
    }

    fn location(&self, rel: &str) -> String {
        self.url(rel)
    }
}

/// Status line, headers, then a body framed by Content-Length, chunked encoding, or EOF.
fn read_response<R: BufRead>(mut reader: R) -> Result<Vec<u8>, String> {
    let status_line = read_line(&mut reader)?;
    let status: u16 = status_line
        .split_whitespace()
        .nth(1)
        .and_then(|code| code.parse().ok())
        .filter(|_| status_line.starts_with("HTTP/1."))
        .ok_or_else(|| format!("not an HTTP/1.x response: {status_line:?}"))?;
    let mut content_length = None;
    let mut chunked = false;
    loop {
        let line = read_line(&mut reader)?;
        if line.is_empty() {
            break;
        }
        let Some((name, value)) = line.split_once(':') else { continue };
        match name.trim().to_ascii_lowercase().as_str() {
            "content-length" => content_length = value.trim().parse::<u64>().ok(),
            "transfer-encoding" => chunked = value.to_ascii_lowercase().contains("chunked"),
            _ => {}
        }
    }
    if status != 200 {
        return Err(format!("HTTP {status}"));
    }
    if chunked {
        read_chunked(reader)
    } else {
        read_body(reader, content_length)
    }
}

fn read_line<R: BufRead>(reader: &mut R) -> Result<String, String> {
    let mut line = Vec::new();
    reader.by_ref().take(16 * 1024).read_until(b'\n', &mut line).map_err(|e| format!("receive: {e}"))?;
    if !line.ends_with(b"\n") {
        return Err("connection closed in the middle of the response head".into());
    }
    Ok(String::from_utf8_lossy(&line).trim_end_matches(['\r', '\n']).to_string())
}

fn read_body<R: Read>(reader: R, content_length: Option<u64>) -> Result<Vec<u8>, String> {
    let limit = content_length.unwrap_or(MAX_BODY);
    if limit > MAX_BODY {
        return Err(format!("body of {limit} bytes is too large"));
    }
    let mut body = Vec::new();
    reader.take(limit).read_to_end(&mut body).map_err(|e| format!("receive: {e}"))?;
    match content_length {
        Some(expected) if body.len() as u64 != expected => {
            Err(format!("short body: {} of {expected} bytes", body.len()))
        }
        _ => Ok(body),
    }
}

fn read_chunked<R: BufRead>(mut reader: R) -> Result<Vec<u8>, String> {
    let mut body = Vec::new();
    loop {
        let size_line = read_line(&mut reader)?;
        let size_text = size_line.split(';').next().unwrap_or("").trim();
        let size = u64::from_str_radix(size_text, 16).map_err(|_| format!("bad chunk size {size_line:?}"))?;
        if size == 0 {
            return Ok(body);
        }
        if body.len() as u64 + size > MAX_BODY {
            return Err("chunked body is too large".into());
        }
        let start = body.len();
        reader.by_ref().take(size).read_to_end(&mut body).map_err(|e| format!("receive: {e}"))?;
        if (body.len() - start) as u64 != size {
            return Err("connection closed inside a chunk".into());
        }
        read_line(&mut reader)?;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn responses_are_framed() {
        let ok = b"HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\nhello";
        assert_eq!(read_response(&ok[..]).unwrap(), b"hello");
        let chunked =
            b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nhel\r\n2\r\nlo\r\n0\r\n\r\n";
        assert_eq!(read_response(&chunked[..]).unwrap(), b"hello");
        let short = b"HTTP/1.1 200 OK\r\nContent-Length: 9\r\n\r\nhello";
        assert!(read_response(&short[..]).unwrap_err().contains("short body"));
        let missing = b"HTTP/1.1 404 Not Found\r\nContent-Length: 0\r\n\r\n";
        assert_eq!(read_response(&missing[..]).unwrap_err(), "HTTP 404");
        assert!(read_response(&b"SSH-2.0-OpenSSH\r\n"[..]).is_err());
    }

    #[test]
    fn directory_source_stays_inside_its_root() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join(".cvmfspublished"), b"x").unwrap();
        let source = DirSource { root: dir.path().to_path_buf() };
        assert_eq!(source.fetch(".cvmfspublished").unwrap(), b"x");
        let missing = source.fetch("missing").unwrap_err();
        assert!(matches!(missing.downcast_ref::<SourceError>(), Some(SourceError::NotFound { .. })));
        assert!(source.fetch("../etc/passwd").is_err());
        assert!(source.fetch("/etc/passwd").is_err());
    }

    #[test]
    fn urls_are_split() {
        let source = HttpSource::new("127.0.0.1:8080/cvmfs/a.b/").unwrap();
        assert_eq!(source.url("data/ab/cd"), "http://127.0.0.1:8080/cvmfs/a.b/data/ab/cd");
        let default_port = HttpSource::new("example.org/cvmfs/a.b").unwrap();
        assert_eq!(default_port.host_port, "example.org:80");
    }
}
