//! What `cvmfs2` does from its command line to an unmount: configuration, the mount
//! through the client library, the FUSE session, background revision checks with
//! kernel cache invalidation, daemonizing, and upstream's exit codes.

use std::collections::HashMap;
use std::ffi::OsStr;
use std::io::{Read, Write};
use std::os::fd::{FromRawFd, OwnedFd};
use std::os::unix::ffi::OsStrExt;
use std::sync::Arc;
use std::time::Duration;

use cvmfs_client::config::{self, ClientConfig, ConfigSource};
use cvmfs_client::inode::InodeKey;
use cvmfs_client::talk::{self, TalkContext, TalkServer};
use cvmfs_client::{CheckOutcome, Mount, MountError, MountOptions};
use fuser::{MountOption, Notifier, Session};
use tracing::{info, warn};

use crate::adapter::CvmfsFs;
use crate::options::Invocation;

/// Upstream's loader failure codes (spec 8.4).
pub mod exit {
    pub const OK: i32 = 0;
    pub const UNKNOWN: i32 = 1;
    pub const OPTIONS: i32 = 2;
    pub const PERMISSION: i32 = 3;
    pub const MOUNT: i32 = 4;
    pub const FUSE_LOOP: i32 = 6;
    pub const CACHE_DIR: i32 = 9;
    pub const SIGNATURE: i32 = 15;
    pub const CATALOG: i32 = 16;
    pub const HISTORY: i32 = 22;
    pub const WPAD: i32 = 23;
    pub const REVISION_BLACKLISTED: i32 = 25;
}

/// A failure with the exit code upstream uses for it.
#[derive(Debug)]
pub struct Failure {
    pub code: i32,
    pub message: String,
}

impl Failure {
    fn new(code: i32, message: impl Into<String>) -> Failure {
        Failure { code, message: message.into() }
    }
}

/// Reads the configuration of `inv.fqrn` (explicit files or the system hierarchy).
pub fn load_config(inv: &Invocation) -> Result<(ClientConfig, config::Parameters), Failure> {
    let mut source = ConfigSource::from_environment(Some(&inv.fqrn));
    source.explicit_files = inv.config_files.clone();
    let params = config::load(&source).map_err(|e| Failure::new(exit::OPTIONS, e.to_string()))?;
    let config = ClientConfig::from_parameters(&inv.fqrn, &params)
        .map_err(|e| Failure::new(exit::OPTIONS, e.to_string()))?;
    Ok((config, params))
}

fn mount_failure(error: MountError) -> Failure {
    let code = match &error {
        MountError::Cache(_) => exit::CACHE_DIR,
        MountError::ProxyDiscovery(_) => exit::WPAD,
        MountError::Trust(e) if matches!(**e, cvmfs_core::trust::TrustError::RevisionBlacklisted { .. }) => {
            exit::REVISION_BLACKLISTED
        }
        MountError::Trust(_) | MountError::Keys(_) | MountError::NoKeys => exit::SIGNATURE,
        MountError::History(_) | MountError::NoSuchTag(_) | MountError::NoTagAtDate(_) => exit::HISTORY,
        _ => exit::CATALOG,
    };
    Failure::new(code, error.to_string())
}

/// Mounts and serves until unmounted. `ready` is told once the mount is up (the parent
/// of a daemonized `cvmfs2` waits for it).
pub fn serve(inv: &Invocation, ready: impl FnOnce(Result<(), &Failure>)) -> Result<(), Failure> {
    let result = mount_session(inv);
    let running = match result {
        Ok(running) => running,
        Err(failure) => {
            ready(Err(&failure));
            return Err(failure);
        }
    };
    ready(Ok(()));
    run_session(running)
}

/// A mounted session with its control socket.
pub struct Running {
    session: Session<CvmfsFs>,
    mount: Arc<Mount>,
    _talk: Option<TalkServer>,
}

fn mount_session(inv: &Invocation) -> Result<Running, Failure> {
    let (config, params) = load_config(inv)?;
    // With `-o uid=,gid=` the kernel mount is made now, as root, and served later by the
    // unprivileged process through the open /dev/fuse descriptor.
    let premounted = if inv.uid.is_some() || inv.gid.is_some() {
        detach_stale_mount(&inv.mountpoint);
        Some(mount_as_root_then_drop_credentials(inv)?)
    } else {
        detach_stale_mount(&inv.mountpoint);
        None
    };
    let variables: HashMap<String, String> = std::env::vars()
        .chain(params.iter().map(|(k, p)| (k.clone(), p.value.clone())))
        .chain([("CVMFS_FQRN".to_string(), inv.fqrn.clone())])
        .collect();
    let options = MountOptions { variables, ..MountOptions::default() };
    let mount = Arc::new(Mount::new(config, options).map_err(mount_failure)?);
    let threads = if inv.single_threaded { 0 } else { 8 };
    let passthrough = params.get("CVMFS_FUSE_PASSTHROUGH").is_none_or(config::typed::is_on);
    let fs = CvmfsFs::new(Arc::clone(&mount), threads, passthrough);
    let session = match premounted {
        Some(fd) => Session::from_fd(fs, fd, fuser::SessionACL::All),
        None => Session::new(fs, &inv.mountpoint, &fuse_options(inv)).map_err(|e| {
            Failure::new(exit::MOUNT, format!("failed to mount {}: {e}", inv.mountpoint.display()))
        })?,
    };
    info!(mountpoint = %inv.mountpoint.display(), "CernVM-FS: mounted cvmfs on {}", inv.mountpoint.display());
    let talk = start_talk(&mount, inv, params);
    Ok(Running { session, mount, _talk: talk })
}

/// The control socket at `CVMFS_TALK_SOCKET`, else `<workspace>/cvmfs_io.<fqrn>`.
fn start_talk(mount: &Arc<Mount>, inv: &Invocation, parameters: config::Parameters) -> Option<TalkServer> {
    let config = mount.config();
    let path = config
        .talk_socket
        .clone()
        .unwrap_or_else(|| talk::socket_path(&config.effective_workspace(), &config.fqrn));
    let ctx = TalkContext { mountpoint: inv.mountpoint.clone(), parameters };
    match TalkServer::start(Arc::clone(mount), ctx, path.clone()) {
        Ok(server) => Some(server),
        Err(e) => {
            warn!(socket = %path.display(), error = %e, "cannot open the control socket; cvmfs_talk will not reach this mount");
            None
        }
    }
}

fn run_session(running: Running) -> Result<(), Failure> {
    let Running { mut session, mount, _talk } = running;
    spawn_revision_checker(Arc::clone(&mount), session.notifier());
    session.run().map_err(|e| Failure::new(exit::FUSE_LOOP, format!("FUSE loop failed: {e}")))?;
    info!("unmounted");
    Ok(())
}

fn fuse_options(inv: &Invocation) -> Vec<MountOption> {
    let mut options = vec![
        MountOption::RO,
        MountOption::NoDev,
        MountOption::FSName("cvmfs2".into()),
        MountOption::Subtype("cvmfs".into()),
    ];
    for option in &inv.fuse_options {
        options.push(match option.split_once('=') {
            Some(("fsname", name)) => MountOption::FSName(name.to_string()),
            _ => match option.as_str() {
                "allow_other" => MountOption::AllowOther,
                "allow_root" => MountOption::AllowRoot,
                "auto_unmount" => MountOption::AutoUnmount,
                "default_permissions" => MountOption::DefaultPermissions,
                other => MountOption::CUSTOM(other.to_string()),
            },
        });
    }
    options
}

/// Checks for new revisions when the TTL expires; after a switch, tells the kernel to
/// forget what it cached about every inode and name it holds.
fn spawn_revision_checker(mount: Arc<Mount>, notifier: Notifier) {
    let spawned = std::thread::Builder::new().name("cvmfs-revision".into()).spawn(move || loop {
        let wait = mount.next_check().saturating_duration_since(std::time::Instant::now());
        std::thread::sleep(wait.max(Duration::from_secs(1)).min(Duration::from_secs(30)));
        match mount.check_revision_if_due() {
            Some(CheckOutcome::Applied { .. }) => invalidate_kernel_caches(&mount, &notifier),
            Some(CheckOutcome::Fixed) => return,
            _ => {}
        }
    });
    if let Err(e) = spawned {
        warn!(error = %e, "cannot start revision checks; the mount stays on its revision");
    }
}

pub fn invalidate_kernel_caches(mount: &Mount, notifier: &Notifier) {
    for (ino, path) in mount.inodes().snapshot() {
        let _ = notifier.inval_inode(ino, 0, 0);
        if let (Some(parent), Some(name)) = (path.parent(), path.file_name()) {
            let parent_ino = mount.inodes().peek(&InodeKey::Path(parent.as_bytes().to_vec()));
            let _ = notifier.inval_entry(parent_ino, OsStr::from_bytes(name));
        }
    }
    let _ = notifier.inval_inode(cvmfs_client::inode::ROOT_INODE, 0, 0);
}

/// Forks: the child serves the mount, the parent waits until the child reports that
/// the mount is up (exit 0) or failed (its exit code and message), as upstream's
/// `cvmfs2` returns only once mounted.
pub fn daemonize_and_serve(inv: &Invocation) -> i32 {
    let mut fds = [0; 2];
    // SAFETY: pipe writes two descriptors into the array.
    if unsafe { libc::pipe(fds.as_mut_ptr()) } != 0 {
        eprintln!("cvmfs2: cannot create a pipe: {}", std::io::Error::last_os_error());
        return exit::UNKNOWN;
    }
    // SAFETY: both descriptors were just created and are owned here.
    let (read_end, write_end) = unsafe { (OwnedFd::from_raw_fd(fds[0]), OwnedFd::from_raw_fd(fds[1])) };
    // SAFETY: no threads exist yet; the child continues with a copy of this process.
    match unsafe { libc::fork() } {
        -1 => {
            eprintln!("cvmfs2: fork failed: {}", std::io::Error::last_os_error());
            exit::UNKNOWN
        }
        0 => {
            drop(read_end);
            // SAFETY: setsid has no memory effects.
            unsafe { libc::setsid() };
            let mut report = std::fs::File::from(write_end);
            let result = serve(inv, move |status| {
                let message = match status {
                    Ok(()) => "0\n".to_string(),
                    Err(f) => format!("{}\n{}", f.code, f.message),
                };
                let _ = report.write_all(message.as_bytes());
                drop(report);
                if status.is_ok() {
                    detach_stdio();
                }
            });
            match result {
                Ok(()) => exit::OK,
                Err(f) => f.code,
            }
        }
        _child => {
            drop(write_end);
            let mut text = String::new();
            let _ = std::fs::File::from(read_end).read_to_string(&mut text);
            let (code, message) = text.split_once('\n').unwrap_or((text.as_str(), ""));
            match code.trim().parse::<i32>() {
                Ok(0) => {
                    println!("CernVM-FS: mounted cvmfs on {}", inv.mountpoint.display());
                    exit::OK
                }
                Ok(code) => {
                    eprintln!("{message} ({code})");
                    code
                }
                Err(_) => {
                    eprintln!("cvmfs2: the mount process died before mounting");
                    exit::UNKNOWN
                }
            }
        }
    }
}

fn detach_stdio() {
    if let Ok(null) = std::fs::OpenOptions::new().read(true).write(true).open("/dev/null") {
        use std::os::fd::AsRawFd;
        for fd in 0..3 {
            // SAFETY: dup2 onto the standard descriptors of this process.
            unsafe { libc::dup2(null.as_raw_fd(), fd) };
        }
    }
}

/// A mount whose daemon died answers every access with `ENOTCONN`; detach it so the new
/// mount can take its place (upstream's watchdog does this when the daemon crashes).
fn detach_stale_mount(mountpoint: &std::path::Path) {
    let stale = matches!(std::fs::metadata(mountpoint), Err(e) if e.raw_os_error() == Some(libc::ENOTCONN));
    if !stale {
        return;
    }
    warn!(mountpoint = %mountpoint.display(), "detaching the stale mount of a daemon that died");
    let c_path = std::ffi::CString::new(mountpoint.as_os_str().as_bytes()).unwrap_or_default();
    // SAFETY: umount2 with a NUL-terminated path.
    let detached = unsafe { libc::umount2(c_path.as_ptr(), libc::MNT_DETACH) } == 0;
    if !detached {
        let _ = std::process::Command::new("fusermount3").arg("-u").arg("-z").arg(mountpoint).status();
    }
}

/// `-o uid=N,gid=M`: hand the mount point over (`grab_mountpoint`), make the kernel mount
/// as root on a /dev/fuse descriptor (read-only, nodev, nosuid, allow_other, owned by the
/// target user), then switch to these credentials before anything is created or
/// fetched, as upstream's loader does. Returns the descriptor to serve.
fn mount_as_root_then_drop_credentials(inv: &Invocation) -> Result<OwnedFd, Failure> {
    // SAFETY: getuid/getgid have no preconditions.
    let (uid, gid) = unsafe { (inv.uid.unwrap_or(libc::getuid()), inv.gid.unwrap_or(libc::getgid())) };
    let failed = |what: &str| {
        Failure::new(
            exit::PERMISSION,
            format!("{what}: {} (uid={uid}, gid={gid})", std::io::Error::last_os_error()),
        )
    };
    if inv.grab_mountpoint {
        std::os::unix::fs::chown(&inv.mountpoint, Some(uid), Some(gid)).map_err(|e| {
            Failure::new(exit::PERMISSION, format!("cannot hand {} over: {e}", inv.mountpoint.display()))
        })?;
        use std::os::unix::fs::PermissionsExt;
        let _ = std::fs::set_permissions(&inv.mountpoint, std::fs::Permissions::from_mode(0o755));
    }
    let device = std::fs::OpenOptions::new()
        .read(true)
        .write(true)
        .open("/dev/fuse")
        .map_err(|e| Failure::new(exit::MOUNT, format!("cannot open /dev/fuse: {e}")))?;
    let fd = OwnedFd::from(device);
    let options = format!(
        "fd={},rootmode=40000,user_id={uid},group_id={gid},allow_other",
        std::os::fd::AsRawFd::as_raw_fd(&fd)
    );
    let source = c"cvmfs2";
    let kind = c"fuse";
    let target = std::ffi::CString::new(inv.mountpoint.as_os_str().as_bytes())
        .map_err(|_| Failure::new(exit::OPTIONS, "mount point contains NUL"))?;
    let data =
        std::ffi::CString::new(options).map_err(|_| Failure::new(exit::OPTIONS, "bad mount options"))?;
    let flags = libc::MS_RDONLY | libc::MS_NODEV | libc::MS_NOSUID;
    // SAFETY: mount(2) with NUL-terminated strings that live across the call.
    if unsafe { libc::mount(source.as_ptr(), target.as_ptr(), kind.as_ptr(), flags, data.as_ptr().cast()) }
        != 0
    {
        return Err(Failure::new(
            exit::MOUNT,
            format!("failed to mount {}: {}", inv.mountpoint.display(), std::io::Error::last_os_error()),
        ));
    }
    // SAFETY: plain credential system calls; the order (groups, gid, uid) matters.
    unsafe {
        if libc::setgroups(0, std::ptr::null()) != 0 {
            return Err(failed("setgroups"));
        }
        if libc::setgid(gid) != 0 {
            return Err(failed("setgid"));
        }
        if libc::setuid(uid) != 0 {
            return Err(failed("setuid"));
        }
    }
    Ok(fd)
}
