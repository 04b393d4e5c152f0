//! The control socket `cvmfs_talk` talks to: one command per connection on a UNIX
//! stream socket `<workspace>/cvmfs_io.<fqrn>`, answered with text, as upstream
//! (spec 8.1). [`answer`] is the command interpreter (plain function, tested directly);
//! [`TalkServer`] the socket.

use std::io::{Read, Write};
use std::os::unix::fs::PermissionsExt;
use std::os::unix::net::{UnixListener, UnixStream};
use std::path::{Path, PathBuf};
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Duration;

use cvmfs_cache::Evicted;
use cvmfs_core::path::RepoPath;
use cvmfs_core::ContentHash;
use tracing::warn;

use crate::config::Parameters;
use crate::fetch::NetworkControl;
use crate::fs::Mount;
use crate::mount::display;
use crate::CheckOutcome;

/// Longest command accepted (upstream: 512 bytes).
pub const MAX_COMMAND: usize = 512;

/// What the interpreter needs besides the mount.
#[derive(Debug, Clone, Default)]
pub struct TalkContext {
    pub mountpoint: PathBuf,
    pub parameters: Parameters,
}

/// The default socket path for a repository: `<workspace>/cvmfs_io.<fqrn>`.
pub fn socket_path(workspace: &Path, fqrn: &str) -> PathBuf {
    workspace.join(format!("cvmfs_io.{fqrn}"))
}

/// Answers one command.
pub fn answer(mount: &Mount, ctx: &TalkContext, command: &str) -> String {
    let command = command.trim_end_matches(['\0', '\n']).trim();
    let words: Vec<&str> = command.split_whitespace().collect();
    match words.as_slice() {
        ["revision"] => format!("{}\n", mount.revision().revision()),
        ["mountpoint"] => format!("{}\n", ctx.mountpoint.display()),
        ["pid"] => format!("{}\n", std::process::id()),
        ["version"] => {
            format!("{} (CernVM-FS Fuse Module)\n{} (Loader)\n", crate::xattr::VERSION, crate::xattr::VERSION)
        }
        ["version", "patchlevel"] => "0\n".into(),
        ["parameters"] => ctx.parameters.dump(),
        ["tracebuffer", "flush"] | ["detach", "nested", "catalogs"] => "OK\n".into(),
        ["proxy", "rebalance"] => control(mount, NetworkControl::Rebalance, "Failed"),
        ["proxy", "group", "switch"] => control(mount, NetworkControl::SwitchProxyGroup, "Failed"),
        ["proxy", "set", chain] => {
            control(mount, NetworkControl::SetProxies(chain.to_string()), "Failed, no valid proxies")
        }
        ["host", "switch"] => control(mount, NetworkControl::SwitchHost, "Failed"),
        ["host", "set", list] => control(
            mount,
            NetworkControl::SetHosts(list.split(';').filter(|h| !h.is_empty()).map(String::from).collect()),
            "Failed",
        ),
        ["host", "probe", "geo"] => control(mount, NetworkControl::ProbeGeo, "Failed"),
        ["timeout", "set", proxy, direct] => match (proxy.parse::<u64>(), direct.parse::<u64>()) {
            (Ok(p), Ok(d)) => control(
                mount,
                NetworkControl::SetTimeouts(Duration::from_secs(p), Duration::from_secs(d)),
                "Failed",
            ),
            _ => "unknown command\n".into(),
        },
        ["metrics", "prometheus"] => prometheus(mount),
        ["remount"] => remount(mount, false),
        ["remount", "sync"] => remount(mount, true),
        ["chroot", hash] => chroot(mount, hash),
        ["cache", "instance"] => {
            format!("posix cache manager at {}\n", mount.parts().objects.cache().dir().display())
        }
        ["cache", "size"] => cache_size(mount),
        ["cache", "list"] => cache_list(mount, |e| !e.catalog),
        ["cache", "list", "pinned"] => cache_list(mount, |e| e.pinned),
        ["cache", "list", "catalogs"] => cache_list(mount, |e| e.catalog),
        ["cache", "limit", "get"] => match mount.config().quota_limit_mb {
            Some(mb) => format!("{mb}\n"),
            None => "-1\n".into(),
        },
        ["cleanup", mb] => cleanup(mount, mb),
        ["evict", path] => evict(mount, path),
        ["pin", path] => pin(mount, path),
        ["open", "catalogs"] => open_catalogs(mount),
        ["host", "info"] => host_info(mount),
        ["proxy", "info"] => proxy_info(mount),
        ["timeout", "info"] => timeout_info(mount),
        ["max", "ttl", "info"] => match mount.config().max_ttl {
            Some(ttl) => format!("{} minutes\n", ttl.as_secs() / 60),
            None => "unset\n".into(),
        },
        ["reset", "error", "counters"] => {
            mount.counters.io_errors.store(0, Ordering::Relaxed);
            "OK\n".into()
        }
        ["vfs", "inodes"] => mount.inodes().snapshot().iter().map(|(ino, _)| format!("{ino}\n")).collect(),
        ["internal", "affairs"] => internal_affairs(mount),
        ["tear", "down", "to", "read-only"] => "not supported\n".into(),
        _ => "unknown command\n".into(),
    }
}

fn control(mount: &Mount, command: NetworkControl, failure: &str) -> String {
    match mount.parts().objects.downloader().control(command) {
        Ok(()) => "OK\n".into(),
        Err(reason) => {
            warn!(reason, "control command failed");
            format!("{failure}\n")
        }
    }
}

/// The counters in Prometheus' text format, labelled with the repository.
fn prometheus(mount: &Mount) -> String {
    let fqrn = &mount.config().fqrn;
    let c = &mount.counters;
    let o = &mount.parts().objects.counters;
    let net = mount.parts().objects.downloader().info();
    let metrics: [(&str, &str, u64); 9] = [
        ("cvmfs_lookups_total", "file system lookups", c.lookups.load(Ordering::Relaxed)),
        ("cvmfs_opens_total", "file opens", c.opens.load(Ordering::Relaxed)),
        ("cvmfs_dir_opens_total", "directory opens", c.dir_opens.load(Ordering::Relaxed)),
        ("cvmfs_io_errors_total", "I/O errors returned", c.io_errors.load(Ordering::Relaxed)),
        (
            "cvmfs_object_requests_total",
            "objects requested from the cache",
            o.requests.load(Ordering::Relaxed),
        ),
        ("cvmfs_downloads_total", "objects downloaded", o.downloads.load(Ordering::Relaxed)),
        (
            "cvmfs_downloaded_bytes_total",
            "decompressed bytes downloaded",
            o.downloaded_bytes.load(Ordering::Relaxed),
        ),
        ("cvmfs_received_bytes_total", "bytes received from servers", net.bytes_received),
        ("cvmfs_revision", "revision of the mounted root catalog", mount.revision().revision()),
    ];
    let mut out = String::new();
    for (name, help, value) in metrics {
        let kind = if name.ends_with("_total") { "counter" } else { "gauge" };
        out.push_str(&format!(
            "# HELP {name} {help}\n# TYPE {name} {kind}\n{name}{{repo=\"{fqrn}\"}} {value}\n"
        ));
    }
    out
}

fn remount(mount: &Mount, sync: bool) -> String {
    let outcome = mount.check_revision();
    match outcome {
        CheckOutcome::Fixed | CheckOutcome::UpToDate => "Catalog up to date\n".into(),
        CheckOutcome::Applied { .. } if sync => "Catalog up to date\n".into(),
        CheckOutcome::Applied { .. } => "New revision applied\n".into(),
        CheckOutcome::Failed(_) => "Failed\n".into(),
    }
}

fn chroot(mount: &Mount, hash: &str) -> String {
    match ContentHash::parse(hash.trim_end_matches('C')) {
        Ok(hash) => match mount.chroot(hash) {
            Ok(()) => "OK\n".into(),
            Err(e) => {
                warn!(error = %e, "chroot failed");
                "Failed\n".into()
            }
        },
        Err(_) => "Failed\n".into(),
    }
}

fn cache_size(mount: &Mount) -> String {
    let cache = mount.parts().objects.cache();
    let Ok(size) = cache.size() else { return "Cache cannot report its size\n".into() };
    let pinned = cache.pinned_bytes();
    format!(
        "Current cache size is {}MB ({size} Bytes), pinned: {}MB ({pinned} Bytes)\n",
        size / (1 << 20),
        pinned / (1 << 20)
    )
}

fn cache_list(mount: &Mount, keep: impl Fn(&cvmfs_cache::CacheEntry) -> bool) -> String {
    match mount.parts().objects.cache().list() {
        Ok(entries) => entries.iter().filter(|e| keep(e)).map(|e| format!("{}\n", e.description)).collect(),
        Err(_) => "Cache cannot list its entries\n".into(),
    }
}

fn cleanup(mount: &Mount, mb: &str) -> String {
    let Ok(mb) = mb.parse::<u64>() else { return "unknown command\n".into() };
    match mount.parts().objects.cache().cleanup(mb.saturating_mul(1 << 20)) {
        Ok(report) if report.complete => "OK\n".into(),
        Ok(_) => "Not fully cleaned (there might be pinned chunks)\n".into(),
        Err(_) => "Cache cannot trigger eviction\n".into(),
    }
}

/// The content objects of the regular file at `path`.
fn objects_of(
    mount: &Mount,
    path: &str,
) -> Option<(Vec<cvmfs_core::repository::ContentPiece>, cvmfs_core::Compression)> {
    let path = RepoPath::normalize(path.as_bytes()).ok()?;
    let entry = mount.revision().tree.lookup(&path).ok()??;
    let pieces = cvmfs_core::repository::content_pieces(&entry).ok()?;
    Some((pieces, entry.entry.compression))
}

fn evict(mount: &Mount, path: &str) -> String {
    let Some((pieces, _)) = objects_of(mount, path) else { return "No such regular file\n".into() };
    for piece in pieces {
        if let Ok(Evicted::Pinned) = mount.parts().objects.cache().evict(&piece.id) {
            warn!(object = %piece.id, "not evicted: pinned");
        }
    }
    "OK\n".into()
}

fn pin(mount: &Mount, path: &str) -> String {
    let failed = "No such regular file or pinning failed\n".to_string();
    let Some((pieces, compression)) = objects_of(mount, path) else { return failed };
    for piece in pieces {
        let objects = &mount.parts().objects;
        if objects.get(&piece.id, compression, Some(piece.size), path).is_err() {
            return failed;
        }
        if !matches!(objects.cache().pin(&piece.id), Ok(true)) {
            return failed;
        }
    }
    "OK\n".into()
}

fn open_catalogs(mount: &Mount) -> String {
    let mut loaded = mount.revision().tree.loaded();
    loaded.sort_by(|a, b| a.mountpoint.as_bytes().cmp(b.mountpoint.as_bytes()));
    loaded
        .iter()
        .map(|m| {
            let indent = "    ".repeat(m.depth());
            let shown = if m.mountpoint.is_root() { String::new() } else { display(&m.mountpoint) };
            format!("{indent}-> {shown}\n")
        })
        .collect()
}

fn host_info(mount: &Mount) -> String {
    let info = mount.parts().objects.downloader().info();
    if info.host_list.is_empty() {
        return "No hosts defined\n".into();
    }
    let mut out: String =
        info.host_list.iter().enumerate().map(|(i, h)| format!("  [{i}] {h} (unprobed)\n")).collect();
    let active = info.host_list.iter().position(|h| *h == info.host).unwrap_or(0);
    out.push_str(&format!("Active host {active}: {}\n", info.host));
    out
}

fn proxy_info(mount: &Mount) -> String {
    let info = mount.parts().objects.downloader().info();
    if info.proxy_list.is_empty() {
        return "No proxies defined\n".into();
    }
    let mut out = String::from("Load-balance groups:\n");
    for (i, proxy) in info.proxy_list.iter().enumerate() {
        out.push_str(&format!("[{i}] {proxy}\n"));
    }
    out.push_str(&format!("Active proxy: [0] {}\n", info.proxy));
    out
}

fn timeout_info(mount: &Mount) -> String {
    let info = mount.parts().objects.downloader().info();
    let show = |s: u64| if s == 0 { "no timeout".to_string() } else { format!("{s}s") };
    format!(
        "Timeout with proxy: {}\nTimeout without proxy: {}\n",
        show(info.timeout_seconds),
        show(info.timeout_direct_seconds)
    )
}

fn internal_affairs(mount: &Mount) -> String {
    let revision = mount.revision();
    let c = &mount.counters;
    let o = &mount.parts().objects.counters;
    let mut out = format!(
        "Inode Generation:\n  current-catalog-revision: {}  inode generation: {}\nCache Mode: read-write\nDrainout Mode: no\nMaintenance Mode: no\nOffline Mode: {}\n\nRaw Counters:\nName|Value|Description\n",
        revision.revision(),
        mount.generation(),
        if mount.is_offline() { "yes" } else { "no" }
    );
    let rows = [
        ("cvmfs.n_fs_lookup", c.lookups.load(Ordering::Relaxed), "overall number of lookups"),
        ("cvmfs.n_fs_open", c.opens.load(Ordering::Relaxed), "overall number of open calls"),
        (
            "cvmfs.n_fs_dir_open",
            c.dir_opens.load(Ordering::Relaxed),
            "overall number of directory open calls",
        ),
        ("cvmfs.n_io_error", c.io_errors.load(Ordering::Relaxed), "number of I/O errors"),
        (
            "cvmfs.n_passthrough_open",
            c.passthrough_opens.load(Ordering::Relaxed),
            "opens served by FUSE passthrough",
        ),
        ("fetch.n_invocations", o.requests.load(Ordering::Relaxed), "overall number of object requests"),
        ("fetch.n_downloads", o.downloads.load(Ordering::Relaxed), "overall number of downloaded objects"),
        ("download.sz_transferred_bytes", o.downloaded_bytes.load(Ordering::Relaxed), "downloaded bytes"),
    ];
    for (name, value, description) in rows {
        out.push_str(&format!("{name}|{value}|{description}\n"));
    }
    out
}

/// The socket server: one thread answering connections one after another.
pub struct TalkServer {
    path: PathBuf,
}

impl TalkServer {
    /// Binds `path` (replacing a stale socket) and serves commands in a thread.
    pub fn start(mount: Arc<Mount>, ctx: TalkContext, path: PathBuf) -> std::io::Result<TalkServer> {
        if path.exists() {
            std::fs::remove_file(&path)?;
        }
        let listener = UnixListener::bind(&path)?;
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o660))?;
        std::thread::Builder::new().name("cvmfs-talk".into()).spawn(move || {
            for stream in listener.incoming() {
                match stream {
                    Ok(stream) => serve_one(&mount, &ctx, stream),
                    Err(e) => warn!(error = %e, "control socket accept failed"),
                }
            }
        })?;
        Ok(TalkServer { path })
    }

    pub fn path(&self) -> &Path {
        &self.path
    }
}

impl Drop for TalkServer {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.path);
    }
}

fn serve_one(mount: &Mount, ctx: &TalkContext, mut stream: UnixStream) {
    let _ = stream.set_read_timeout(Some(Duration::from_secs(5)));
    let mut buffer = vec![0u8; MAX_COMMAND];
    let mut used = 0;
    // The client writes its command and waits; read what arrives until a short pause
    // or the limit.
    while used < MAX_COMMAND {
        match stream.read(&mut buffer[used..]) {
            Ok(0) => break,
            Ok(n) => {
                used += n;
                let _ = stream.set_read_timeout(Some(Duration::from_millis(50)));
            }
            Err(_) => break,
        }
    }
    let command = String::from_utf8_lossy(&buffer[..used]);
    let reply = answer(mount, ctx, &command);
    let _ = stream.write_all(reply.as_bytes());
}

/// Sends one command to a socket and returns the answer (the `cvmfs_talk` side).
pub fn send(socket: &Path, command: &str) -> std::io::Result<String> {
    let mut stream = UnixStream::connect(socket)?;
    stream.set_read_timeout(Some(Duration::from_secs(120)))?;
    stream.write_all(command.as_bytes())?;
    stream.shutdown(std::net::Shutdown::Write)?;
    let mut reply = String::new();
    stream.read_to_string(&mut reply)?;
    Ok(reply)
}
