//! Shared by the FUSE tests: starting `cvmfs2 -f` against a configuration, unmounting
//! on drop, reading extended attributes and listing a mounted tree in the fixtures'
//! `expected-*.tsv` format.
#![allow(dead_code)]

use std::io::{BufRead, BufReader};
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use cvmfs_testkit::fixtures::FixtureRepo;
use cvmfs_tools::listing::{Kind, Row};
use sha2::{Digest, Sha256};

pub struct Mounted {
    pub child: Child,
    pub mountpoint: PathBuf,
    pub _dir: tempfile::TempDir,
}

impl Drop for Mounted {
    fn drop(&mut self) {
        let _ = Command::new("fusermount3").arg("-u").arg(&self.mountpoint).status();
        let deadline = Instant::now() + Duration::from_secs(10);
        while Instant::now() < deadline {
            if let Ok(Some(_)) = self.child.try_wait() {
                return;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        let _ = self.child.kill();
        let _ = Command::new("fusermount3").args(["-u", "-z"]).arg(&self.mountpoint).status();
    }
}

pub fn write_config(dir: &Path, repo: &FixtureRepo, extra: &str) -> PathBuf {
    let conf = dir.join("repo.conf");
    let text = format!(
        "CVMFS_SERVER_URL=file://{}\nCVMFS_PUBLIC_KEY={}\nCVMFS_CACHE_BASE={}\nCVMFS_BLACKLIST={}\n{extra}",
        repo.storage.display(),
        repo.public_key.display(),
        dir.join("cache").display(),
        dir.join("no-blacklist").display(),
    );
    std::fs::write(&conf, text).unwrap();
    conf
}

pub fn cvmfs2() -> Command {
    Command::new(env!("CARGO_BIN_EXE_cvmfs2"))
}

/// Starts `cvmfs2 -f -o config=<conf>` with `env` and waits (bounded) for its
/// "mounted" line. `dir` is kept alive by the returned guard.
pub fn mount_with(fqrn: &str, conf: &Path, dir: tempfile::TempDir, env: &[(&str, Option<&str>)]) -> Mounted {
    let mountpoint = dir.path().join("mnt");
    std::fs::create_dir_all(&mountpoint).unwrap();
    let mut command = cvmfs2();
    command.arg("-f").arg("-o").arg(format!("config={}", conf.display())).arg(fqrn).arg(&mountpoint);
    command.env("CVMFS_LOG", "warn,fuser=off").stdout(Stdio::piped()).stderr(Stdio::inherit());
    for (key, value) in env {
        match value {
            Some(v) => command.env(key, v),
            None => command.env_remove(key),
        };
    }
    let mut child = command.spawn().expect("start cvmfs2");
    let stdout = child.stdout.take().unwrap();
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(stdout).lines().map_while(Result::ok) {
            let _ = tx.send(line);
        }
    });
    let line = rx.recv_timeout(Duration::from_secs(30)).expect("cvmfs2 did not report a mount within 30 s");
    assert!(line.starts_with("CernVM-FS: mounted cvmfs on"), "{line}");
    Mounted { child, mountpoint, _dir: dir }
}

/// Mounts a fixture repository (file:// URL) with `extra` configuration lines.
pub fn mount(repo: &FixtureRepo, extra: &str) -> Mounted {
    let dir = tempfile::tempdir().unwrap();
    let conf = write_config(dir.path(), repo, extra);
    mount_with(&repo.fqrn, &conf, dir, &[("TEST_ARCH", Some("arch_ppc64le"))])
}

pub fn user_xattrs(path: &Path) -> Vec<(String, Vec<u8>)> {
    let c_path = std::ffi::CString::new(path.as_os_str().as_bytes()).unwrap();
    let mut names = vec![0u8; 64 * 1024];
    // SAFETY: the buffer is valid for its length; the path is NUL-terminated.
    let len = unsafe { libc::llistxattr(c_path.as_ptr(), names.as_mut_ptr().cast(), names.len()) };
    assert!(len >= 0, "listxattr {}: {}", path.display(), std::io::Error::last_os_error());
    names.truncate(len as usize);
    let mut out = Vec::new();
    for name in names.split(|&b| b == 0).filter(|n| !n.is_empty()) {
        let text = String::from_utf8(name.to_vec()).unwrap();
        out.push((text.clone(), xattr(path, &text).unwrap()));
    }
    out
}

pub fn xattr(path: &Path, name: &str) -> Option<Vec<u8>> {
    let c_path = std::ffi::CString::new(path.as_os_str().as_bytes()).unwrap();
    let c_name = std::ffi::CString::new(name).unwrap();
    let mut value = vec![0u8; 256 * 1024];
    // SAFETY: as above.
    let len =
        unsafe { libc::lgetxattr(c_path.as_ptr(), c_name.as_ptr(), value.as_mut_ptr().cast(), value.len()) };
    if len < 0 {
        return None;
    }
    value.truncate(len as usize);
    Some(value)
}

pub fn walk(root: &Path, path: &Path, rows: &mut Vec<Row>) {
    let meta = std::fs::symlink_metadata(path).unwrap();
    let relative = path.strip_prefix(root).unwrap();
    let shown = format!("/{}", relative.display());
    let file_type = meta.file_type();
    let (kind, sha256, symlink) = if file_type.is_dir() {
        (Kind::Directory, None, None)
    } else if file_type.is_symlink() {
        let target = std::fs::read_link(path).unwrap();
        (Kind::Symlink, None, Some(target.display().to_string()))
    } else {
        let bytes = std::fs::read(path).unwrap();
        let sha: String = Sha256::digest(&bytes).iter().map(|b| format!("{b:02x}")).collect();
        (Kind::File, Some(sha), None)
    };
    let hardlink_key = (!file_type.is_dir() && meta.nlink() > 1).then_some((meta.ino(), 0));
    rows.push(Row {
        path: if shown == "/" { shown } else { shown.trim_end_matches('/').to_string() },
        kind,
        permissions: meta.permissions().mode(),
        size: meta.size(),
        mtime: meta.mtime(),
        sha256,
        symlink,
        xattrs: if file_type.is_symlink() { Vec::new() } else { user_xattrs(path) },
        hardlink_key,
    });
    if file_type.is_dir() {
        let mut children: Vec<PathBuf> =
            std::fs::read_dir(path).unwrap().map(|e| e.unwrap().path()).collect();
        children.sort();
        for child in children {
            walk(root, &child, rows);
        }
    }
}
