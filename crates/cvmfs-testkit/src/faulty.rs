//! A fault-injecting HTTP server of our own, for what a real server cannot be made to
//! do on demand: wrong status codes, garbage, truncated or corrupted bodies, trickling,
//! resets mid-body, lying Content-Length, redirects, and never answering at all.
//! Listens on 127.0.0.1 only; stops on drop.

use std::io::{BufRead, BufReader, Write};
use std::net::{Shutdown, SocketAddr, TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

/// What the server does with the next requests.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Fault {
    /// Serve the file correctly.
    None,
    /// Answer with this status and a short body.
    Status(u16),
    /// 200 with bytes that are not the file.
    Garbage,
    /// 200 with an HTML error page (what some captive portals do).
    HtmlOk,
    /// Send only the first N bytes of the body, with the full Content-Length, then close.
    Truncate(usize),
    /// Flip one byte in the middle of the body.
    FlipByte,
    /// Send the body at this many bytes per second.
    Trickle(u64),
    /// Send half the body, then reset the connection.
    ResetMidBody,
    /// Claim a Content-Length this much larger than the body, then close.
    LongerContentLength(usize),
    /// 302 to this URL.
    Redirect(String),
    /// 302 to the same path, forever.
    RedirectLoop,
    /// Accept the connection and never answer.
    BlackHole,
}

struct Shared {
    root: PathBuf,
    fault: Mutex<Fault>,
    /// Only requests whose path contains this are faulted (all if empty).
    only: Mutex<String>,
    requests: AtomicU64,
    stop: AtomicBool,
    log: Mutex<Vec<String>>,
}

pub struct FaultyServer {
    pub port: u16,
    shared: Arc<Shared>,
}

impl FaultyServer {
    /// Serves `root` like nginx (`/cvmfs/<name>/...` → `root/<name>/...`).
    pub fn serve(root: &Path) -> FaultyServer {
        let listener = TcpListener::bind("127.0.0.1:0").expect("bind 127.0.0.1");
        let port = listener.local_addr().expect("local address").port();
        let shared = Arc::new(Shared {
            root: root.to_path_buf(),
            fault: Mutex::new(Fault::None),
            only: Mutex::new(String::new()),
            requests: AtomicU64::new(0),
            stop: AtomicBool::new(false),
            log: Mutex::new(Vec::new()),
        });
        let accept_shared = Arc::clone(&shared);
        std::thread::spawn(move || {
            for stream in listener.incoming() {
                if accept_shared.stop.load(Ordering::SeqCst) {
                    break;
                }
                let Ok(stream) = stream else { continue };
                let shared = Arc::clone(&accept_shared);
                std::thread::spawn(move || handle(stream, &shared));
            }
        });
        FaultyServer { port, shared }
    }

    pub fn url(&self, fqrn: &str) -> String {
        format!("http://127.0.0.1:{}/cvmfs/{fqrn}", self.port)
    }

    /// Applies `fault` to every request (whose path contains `only`, if not empty).
    pub fn set_fault(&self, fault: Fault, only: &str) {
        *self.shared.fault.lock().unwrap_or_else(PoisonError::into_inner) = fault;
        *self.shared.only.lock().unwrap_or_else(PoisonError::into_inner) = only.to_string();
    }

    pub fn requests(&self) -> u64 {
        self.shared.requests.load(Ordering::SeqCst)
    }

    /// Request lines with their headers, one entry per request.
    pub fn log(&self) -> Vec<String> {
        self.shared.log.lock().unwrap_or_else(PoisonError::into_inner).clone()
    }
}

impl Drop for FaultyServer {
    fn drop(&mut self) {
        self.shared.stop.store(true, Ordering::SeqCst);
        let _ = TcpStream::connect(SocketAddr::from(([127, 0, 0, 1], self.port)));
    }
}

/// A port on 127.0.0.1 where nothing listens (connections are refused).
pub fn closed_port() -> u16 {
    crate::servers::free_port()
}

/// A listener that accepts and never answers; returns its port and a guard.
pub fn black_hole() -> (u16, BlackHole) {
    let listener = TcpListener::bind("127.0.0.1:0").expect("bind 127.0.0.1");
    let port = listener.local_addr().expect("local address").port();
    let held = Arc::new(Mutex::new(Vec::new()));
    let keep = Arc::clone(&held);
    let stop = Arc::new(AtomicBool::new(false));
    let stop_flag = Arc::clone(&stop);
    std::thread::spawn(move || {
        for stream in listener.incoming().flatten() {
            if stop_flag.load(Ordering::SeqCst) {
                break;
            }
            keep.lock().unwrap_or_else(PoisonError::into_inner).push(stream);
        }
    });
    (port, BlackHole { port, _held: held, stop })
}

pub struct BlackHole {
    port: u16,
    _held: Arc<Mutex<Vec<TcpStream>>>,
    stop: Arc<AtomicBool>,
}

impl Drop for BlackHole {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
        let _ = TcpStream::connect(SocketAddr::from(([127, 0, 0, 1], self.port)));
    }
}

fn handle(stream: TcpStream, shared: &Shared) {
    let _ = stream.set_read_timeout(Some(Duration::from_secs(30)));
    let mut reader = BufReader::new(&stream);
    let mut request = String::new();
    if reader.read_line(&mut request).unwrap_or(0) == 0 {
        return;
    }
    let mut head = request.clone();
    loop {
        let mut line = String::new();
        if reader.read_line(&mut line).unwrap_or(0) == 0 || line == "\r\n" {
            break;
        }
        head.push_str(&line);
    }
    shared.requests.fetch_add(1, Ordering::SeqCst);
    shared.log.lock().unwrap_or_else(PoisonError::into_inner).push(head);
    let target = request.split_whitespace().nth(1).unwrap_or("/").to_string();
    // Requests through a proxy carry absolute URLs.
    let path = match target.strip_prefix("http://") {
        Some(rest) => rest.find('/').map(|i| rest[i..].to_string()).unwrap_or_else(|| "/".into()),
        None => target,
    };
    let fault = {
        let only = shared.only.lock().unwrap_or_else(PoisonError::into_inner);
        if only.is_empty() || path.contains(only.as_str()) {
            shared.fault.lock().unwrap_or_else(PoisonError::into_inner).clone()
        } else {
            Fault::None
        }
    };
    let body = resolve(&shared.root, &path).and_then(|file| std::fs::read(file).ok());
    answer(stream, &path, fault, body);
}

fn resolve(root: &Path, path: &str) -> Option<PathBuf> {
    let rest = path.strip_prefix("/cvmfs/")?;
    if rest.split('/').any(|c| c.is_empty() || c == "." || c == "..") {
        return None;
    }
    Some(root.join(rest))
}

fn answer(mut stream: TcpStream, path: &str, fault: Fault, body: Option<Vec<u8>>) {
    let head = |status: &str, length: usize, extra: &str| {
        format!("HTTP/1.1 {status}\r\nContent-Length: {length}\r\nConnection: close\r\n{extra}\r\n")
    };
    let Some(mut body) = body else {
        let _ = stream.write_all(head("404 Not Found", 0, "").as_bytes());
        return;
    };
    let _ = match fault {
        Fault::None => {
            stream.write_all(head("200 OK", body.len(), "").as_bytes()).and_then(|()| stream.write_all(&body))
        }
        Fault::Status(code) => {
            let text = format!("error {code}\n");
            stream
                .write_all(head(&format!("{code} Fault"), text.len(), "").as_bytes())
                .and_then(|()| stream.write_all(text.as_bytes()))
        }
        Fault::Garbage => {
            let garbage = vec![0x5au8; body.len().max(16)];
            stream
                .write_all(head("200 OK", garbage.len(), "").as_bytes())
                .and_then(|()| stream.write_all(&garbage))
        }
        Fault::HtmlOk => {
            let page = b"<html><body>Please log in to the network</body></html>\n";
            stream
                .write_all(head("200 OK", page.len(), "Content-Type: text/html\r\n").as_bytes())
                .and_then(|()| stream.write_all(page))
        }
        Fault::Truncate(n) => {
            let n = n.min(body.len());
            stream
                .write_all(head("200 OK", body.len(), "").as_bytes())
                .and_then(|()| stream.write_all(&body[..n]))
        }
        Fault::FlipByte => {
            let middle = body.len() / 2;
            if let Some(b) = body.get_mut(middle) {
                *b ^= 0xff;
            }
            stream.write_all(head("200 OK", body.len(), "").as_bytes()).and_then(|()| stream.write_all(&body))
        }
        Fault::Trickle(rate) => trickle(&mut stream, &head("200 OK", body.len(), ""), &body, rate),
        Fault::ResetMidBody => {
            let half = body.len() / 2;
            let result = stream
                .write_all(head("200 OK", body.len(), "").as_bytes())
                .and_then(|()| stream.write_all(&body[..half]));
            reset(&stream);
            result
        }
        Fault::LongerContentLength(extra) => stream
            .write_all(head("200 OK", body.len() + extra, "").as_bytes())
            .and_then(|()| stream.write_all(&body)),
        Fault::Redirect(to) => {
            stream.write_all(head("302 Found", 0, &format!("Location: {to}\r\n")).as_bytes())
        }
        Fault::RedirectLoop => {
            stream.write_all(head("302 Found", 0, &format!("Location: {path}\r\n")).as_bytes())
        }
        Fault::BlackHole => {
            std::thread::sleep(Duration::from_secs(3600));
            Ok(())
        }
    };
    let _ = stream.flush();
    let _ = stream.shutdown(Shutdown::Write);
}

fn trickle(stream: &mut TcpStream, head: &str, body: &[u8], rate: u64) -> std::io::Result<()> {
    stream.write_all(head.as_bytes())?;
    let step = (rate / 10).max(1) as usize;
    for piece in body.chunks(step) {
        stream.write_all(piece)?;
        stream.flush()?;
        std::thread::sleep(Duration::from_millis(100));
    }
    Ok(())
}

/// Closes with RST instead of FIN (SO_LINGER 0).
fn reset(stream: &TcpStream) {
    use std::os::fd::AsRawFd;
    let linger = libc::linger { l_onoff: 1, l_linger: 0 };
    // SAFETY: setsockopt with a valid socket and a correctly sized option value.
    unsafe {
        libc::setsockopt(
            stream.as_raw_fd(),
            libc::SOL_SOCKET,
            libc::SO_LINGER,
            (&linger as *const libc::linger).cast(),
            std::mem::size_of::<libc::linger>() as libc::socklen_t,
        );
    }
}
