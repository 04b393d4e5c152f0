//! `cvmfs_config`: showconfig, probe, stat, status, umount, wipecache and reload, over
//! the configuration library, the mounts' magic xattrs and their control sockets
//! (spec 8.2).

use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};
use std::process::Command;

use cvmfs_client::config::{self, ClientConfig, ConfigSource, Parameters};
use cvmfs_client::talk;

/// `CVMFS_REPOSITORIES` of the global configuration.
pub fn configured_repositories() -> Vec<String> {
    let global = config::load(&ConfigSource::from_environment(None)).unwrap_or_default();
    global
        .get("CVMFS_REPOSITORIES")
        .unwrap_or("")
        .split(',')
        .filter(|r| !r.is_empty())
        .map(String::from)
        .collect()
}

fn repository_config(fqrn: &str) -> Result<(ClientConfig, Parameters), String> {
    let params = config::load(&ConfigSource::from_environment(Some(fqrn))).map_err(|e| e.to_string())?;
    let config = ClientConfig::from_parameters(fqrn, &params).map_err(|e| e.to_string())?;
    Ok((config, params))
}

/// `showconfig <repo>`: the repository name, then every parameter with its origin.
pub fn showconfig(fqrn: &str) -> Result<String, String> {
    let (config, params) = repository_config(fqrn)?;
    let mut out = format!("CVMFS_REPOSITORY_NAME={fqrn}\n");
    out.push_str(&params.dump());
    if params.get("CVMFS_CACHE_DIR").is_none() {
        out.push_str(&format!("CVMFS_CACHE_DIR={}\n", config.effective_cache_dir().display()));
    }
    Ok(out)
}

/// Mounts of our file system: (mountpoint, source) from `/proc/mounts`.
pub fn cvmfs_mounts() -> Vec<PathBuf> {
    let text = std::fs::read_to_string("/proc/mounts").unwrap_or_default();
    text.lines()
        .filter_map(|line| {
            let mut fields = line.split(' ');
            let device = fields.next()?;
            let mountpoint = fields.next()?;
            let fstype = fields.next()?;
            (device == "cvmfs2" && fstype.starts_with("fuse"))
                .then(|| PathBuf::from(unescape_mount(mountpoint)))
        })
        .collect()
}

/// `/proc/mounts` escapes spaces and the like as `\ooo`.
fn unescape_mount(field: &str) -> String {
    let bytes = field.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'\\' && i + 4 <= bytes.len() && field.is_char_boundary(i + 4) {
            if let Ok(value) = u8::from_str_radix(&field[i + 1..i + 4], 8) {
                out.push(value);
                i += 4;
                continue;
            }
        }
        out.push(bytes[i]);
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// Where `fqrn` is (or would be) mounted: `CVMFS_MOUNT_DIR/<fqrn>`.
fn mountpoint_of(fqrn: &str) -> PathBuf {
    let mount_dir = repository_config(fqrn).map(|(c, _)| c.mount_dir).unwrap_or_else(|_| "/cvmfs".into());
    mount_dir.join(fqrn)
}

/// `probe`: lists the repository's directory and checks it is one of our mounts.
pub fn probe(fqrn: &str) -> bool {
    let mountpoint = mountpoint_of(fqrn);
    let listed = std::fs::read_dir(&mountpoint).is_ok();
    listed && cvmfs_mounts().iter().any(|m| m == &mountpoint)
}

pub fn xattr(path: &Path, name: &str) -> Option<String> {
    let c_path = std::ffi::CString::new(path.as_os_str().as_bytes()).ok()?;
    let c_name = std::ffi::CString::new(name).ok()?;
    let mut value = vec![0u8; 64 * 1024];
    // SAFETY: the buffer is valid for its length; both strings are NUL-terminated.
    let len =
        unsafe { libc::getxattr(c_path.as_ptr(), c_name.as_ptr(), value.as_mut_ptr().cast(), value.len()) };
    (len >= 0).then(|| String::from_utf8_lossy(&value[..len as usize]).into_owned())
}

/// `stat [-v] <repo>` from the mount's magic attributes.
pub fn stat(fqrn: &str, verbose: bool) -> Result<String, String> {
    let mountpoint = mountpoint_of(fqrn);
    let get = |name: &str| xattr(&mountpoint, &format!("user.{name}")).unwrap_or_else(|| "n/a".into());
    if xattr(&mountpoint, "user.fqrn").is_none() {
        return Err(format!("{fqrn} is not mounted on {}", mountpoint.display()));
    }
    let online = if get("nioerr") == "0" { "1" } else { "0" };
    if verbose {
        return Ok(format!(
            "Version: {}\nPID: {}\nUptime: {} minutes\nFile Catalog Revision: {} (expires in {} minutes)\nFile Catalog ID: {}\nNo. Active File Catalogs: {}\nFile Descriptor Usage: {} / {}\nNo. IO Errors: {}\nConnection: {} through proxy {} ({})\nUsage: {} open() calls (hitrate {}%), {} opendir() calls\nTransfer Statistics: {}k read, avg. speed: {}k/s\n",
            get("version"), get("pid"), get("uptime"), get("revision"), get("expires"), get("root_hash"), get("nclg"),
            get("usedfd"), get("maxfd"), get("nioerr"), get("host"), get("proxy"),
            if online == "1" { "online" } else { "offline" }, get("nopen"), get("hitrate"), get("ndiropen"), get("rx"), get("speed"),
        ));
    }
    let fields = [
        "version", "pid", "uptime", "revision", "expires", "nclg", "usedfd", "maxfd", "nioerr", "nopen",
        "hitrate", "rx", "speed", "host", "proxy",
    ];
    let values: Vec<String> = fields.iter().map(|f| get(f)).collect();
    Ok(format!(
        "VERSION PID UPTIME(M) REVISION EXPIRES(M) NOCATALOGS NOFDUSE NOFDMAX NOIOERR NOOPEN HITRATE(%) RX(K) SPEED(K/S) HOST PROXY ONLINE\n{} {online}\n",
        values.join(" ")
    ))
}

/// `status`: `<fqrn> mounted on <mountpoint> with pid <pid>` per mount.
pub fn status() -> String {
    let mut out = String::new();
    for mountpoint in cvmfs_mounts() {
        match (xattr(&mountpoint, "user.fqrn"), xattr(&mountpoint, "user.pid")) {
            (Some(fqrn), Some(pid)) => {
                out.push_str(&format!("{fqrn} mounted on {} with pid {pid}\n", mountpoint.display()))
            }
            _ => out.push_str(&format!("{} - mountpoint unhealthy!\n", mountpoint.display())),
        }
    }
    out
}

/// `umount`: unmounts every mount of ours; false if any failed.
pub fn umount_all() -> (String, bool) {
    let mut out = String::new();
    let mut ok = true;
    for mountpoint in cvmfs_mounts() {
        let done = Command::new("umount").arg(&mountpoint).status().is_ok_and(|s| s.success())
            || Command::new("fusermount3").arg("-u").arg(&mountpoint).status().is_ok_and(|s| s.success());
        ok &= done;
        out.push_str(&format!(
            "Unmounting {}: {}\n",
            mountpoint.display(),
            if done { "OK" } else { "Failed!" }
        ));
    }
    (out, ok)
}

/// Asks a mounted repository (through its control socket) for `command`.
pub fn talk_to(fqrn: &str, command: &str) -> Result<String, String> {
    let (config, _) = repository_config(fqrn)?;
    let socket =
        config.talk_socket.clone().unwrap_or_else(|| talk::socket_path(&config.effective_workspace(), fqrn));
    talk::send(&socket, command).map_err(|e| format!("{fqrn}: {} ({e})", socket.display()))
}

/// `wipecache`: empties the caches of mounted repositories (pinned catalogs stay) and
/// removes the caches of repositories that are not mounted.
pub fn wipecache(repositories: &[String]) -> (String, bool) {
    let mut out = String::new();
    let mut ok = true;
    for fqrn in repositories {
        match talk_to(fqrn, "cleanup 0") {
            Ok(answer) => out.push_str(&format!("{fqrn}: {answer}")),
            Err(_) => match repository_config(fqrn) {
                Ok((config, _)) => {
                    let dir = config.effective_cache_dir();
                    let removed = !dir.exists() || std::fs::remove_dir_all(&dir).is_ok();
                    ok &= removed;
                    out.push_str(&format!(
                        "{fqrn}: {} {}\n",
                        if removed { "wiped" } else { "could not wipe" },
                        dir.display()
                    ));
                }
                Err(e) => {
                    ok = false;
                    out.push_str(&format!("{fqrn}: {e}\n"));
                }
            },
        }
    }
    (out, ok)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn mount_table_escapes() {
        assert_eq!(unescape_mount("/cvmfs/a\\040b"), "/cvmfs/a b");
        assert_eq!(unescape_mount("/plain"), "/plain");
        assert_eq!(unescape_mount("/end\\"), "/end\\");
    }
}
