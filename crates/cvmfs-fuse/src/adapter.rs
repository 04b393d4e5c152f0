//! The thin adapter from fuser callbacks to [`cvmfs_client::Mount`]. Every decision
//! lives in the client library; here requests are handed to a worker pool (so one
//! slow download does not stall other readers), results are converted to FUSE replies,
//! and errors become errno through [`cvmfs_client::ClientError::errno`].

use std::collections::HashMap;
use std::ffi::OsStr;
use std::os::unix::ffi::OsStrExt;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, UNIX_EPOCH};

use cvmfs_client::{Attr, ClientError, DirEntry, FileKind, Mount};
use fuser::{
    FileAttr, FileType, Filesystem, KernelConfig, ReplyAttr, ReplyData, ReplyDirectory, ReplyDirectoryPlus,
    ReplyEmpty, ReplyEntry, ReplyOpen, ReplyStatfs, ReplyXattr, Request,
};

use crate::pool::WorkerPool;

/// `FOPEN_KEEP_CACHE`: content behind an inode never changes while it is open.
const KEEP_CACHE: u32 = 1 << 1;

pub struct CvmfsFs {
    mount: Arc<Mount>,
    /// Whether to try FUSE passthrough (`CVMFS_FUSE_PASSTHROUGH`, default on) and whether
    /// the kernel agreed in `init`.
    passthrough_wanted: bool,
    passthrough: Arc<std::sync::atomic::AtomicBool>,
    /// Backing ids must live until the file is released.
    backings: Arc<Mutex<HashMap<u64, fuser::BackingId>>>,
    pool: WorkerPool,
    ttl: Duration,
    listings: Arc<Mutex<HashMap<u64, Arc<Vec<DirEntry>>>>>,
    next_listing: AtomicU64,
}

impl CvmfsFs {
    pub fn new(mount: Arc<Mount>, threads: usize, passthrough_wanted: bool) -> CvmfsFs {
        let ttl = mount.config().kcache_timeout;
        CvmfsFs {
            mount,
            passthrough_wanted,
            passthrough: Arc::new(std::sync::atomic::AtomicBool::new(false)),
            backings: Arc::new(Mutex::new(HashMap::new())),
            pool: WorkerPool::new(threads),
            ttl,
            listings: Arc::new(Mutex::new(HashMap::new())),
            next_listing: AtomicU64::new(1),
        }
    }

    /// Runs `job` on a worker with its own handle to the mount.
    fn spawn(&self, job: impl FnOnce(&Mount) + Send + 'static) {
        let mount = Arc::clone(&self.mount);
        self.pool.run(move || job(&mount));
    }
}

fn file_type(kind: FileKind) -> FileType {
    match kind {
        FileKind::Directory => FileType::Directory,
        FileKind::Regular => FileType::RegularFile,
        FileKind::Symlink => FileType::Symlink,
        FileKind::CharDevice => FileType::CharDevice,
        FileKind::BlockDevice => FileType::BlockDevice,
        FileKind::Fifo => FileType::NamedPipe,
        FileKind::Socket => FileType::Socket,
    }
}

fn file_attr(attr: &Attr) -> FileAttr {
    let mtime = if attr.mtime >= 0 {
        UNIX_EPOCH + Duration::new(attr.mtime as u64, attr.mtime_ns)
    } else {
        UNIX_EPOCH - Duration::from_secs(attr.mtime.unsigned_abs())
    };
    FileAttr {
        ino: attr.ino,
        size: attr.size,
        blocks: attr.blocks,
        atime: mtime,
        mtime,
        ctime: mtime,
        crtime: mtime,
        kind: file_type(attr.kind),
        perm: (attr.mode & 0o7777) as u16,
        nlink: attr.nlink,
        uid: attr.uid,
        gid: attr.gid,
        rdev: attr.rdev as u32,
        blksize: 4096,
        flags: 0,
    }
}

fn errno(error: &ClientError) -> i32 {
    error.errno()
}

impl Filesystem for CvmfsFs {
    fn init(&mut self, _req: &Request<'_>, config: &mut KernelConfig) -> Result<(), i32> {
        // Large reads: fewer round trips for big files.
        let _ = config.set_max_readahead(1 << 20);
        // `ls -l` and `find` get names and attributes in one round trip; the kernel
        // decides per directory when it is worth it.
        let _ = config
            .add_capabilities(fuser::consts::FUSE_DO_READDIRPLUS | fuser::consts::FUSE_READDIRPLUS_AUTO);
        if self.passthrough_wanted
            && config.add_capabilities(fuser::consts::FUSE_PASSTHROUGH).is_ok()
            && config.set_max_stack_depth(1).is_ok()
        {
            self.passthrough.store(true, Ordering::SeqCst);
        }
        Ok(())
    }

    fn lookup(&mut self, _req: &Request<'_>, parent: u64, name: &OsStr, reply: ReplyEntry) {
        let name = name.as_bytes().to_vec();
        let ttl = self.ttl;
        self.spawn(move |mount| match mount.lookup(parent, &name) {
            Ok(attr) => reply.entry(&ttl, &file_attr(&attr), 0),
            // A negative entry, cached by the kernel for the same timeout.
            Err(ClientError::NotFound) => {
                let mut negative = file_attr(&Attr {
                    ino: 0,
                    kind: FileKind::Regular,
                    mode: 0,
                    nlink: 0,
                    uid: 0,
                    gid: 0,
                    size: 0,
                    rdev: 0,
                    mtime: 0,
                    mtime_ns: 0,
                    blocks: 0,
                });
                negative.ino = 0;
                reply.entry(&ttl, &negative, 0)
            }
            Err(e) => reply.error(errno(&e)),
        });
    }

    fn forget(&mut self, _req: &Request<'_>, ino: u64, nlookup: u64) {
        self.mount.forget(ino, nlookup);
    }

    fn getattr(&mut self, _req: &Request<'_>, ino: u64, _fh: Option<u64>, reply: ReplyAttr) {
        let ttl = self.ttl;
        self.spawn(move |mount| match mount.getattr(ino) {
            Ok(attr) => reply.attr(&ttl, &file_attr(&attr)),
            Err(e) => reply.error(errno(&e)),
        });
    }

    fn readlink(&mut self, _req: &Request<'_>, ino: u64, reply: ReplyData) {
        self.spawn(move |mount| match mount.readlink(ino) {
            Ok(target) => reply.data(&target),
            Err(e) => reply.error(errno(&e)),
        });
    }

    fn open(&mut self, _req: &Request<'_>, ino: u64, flags: i32, reply: ReplyOpen) {
        if flags & libc::O_ACCMODE != libc::O_RDONLY {
            reply.error(libc::EROFS);
            return;
        }
        let passthrough = self.passthrough.load(Ordering::SeqCst);
        let backings = Arc::clone(&self.backings);
        self.spawn(move |mount| match mount.open(ino) {
            Ok(handle) => {
                // A fully cached, verified, unchunked file: let the kernel read the cache
                // file itself. If the kernel refuses, serve reads ourselves.
                let backing = passthrough
                    .then(|| mount.whole_file_object(handle))
                    .flatten()
                    .and_then(|object| reply.open_backing(&object).ok());
                match backing {
                    Some(id) => {
                        mount.counters.passthrough_opens.fetch_add(1, Ordering::Relaxed);
                        // The kernel allows no page-cache flags with passthrough.
                        reply.opened_passthrough(handle, 0, &id);
                        backings.lock().unwrap_or_else(PoisonError::into_inner).insert(handle, id);
                    }
                    None => reply.opened(handle, KEEP_CACHE),
                }
            }
            Err(e) => reply.error(errno(&e)),
        });
    }

    fn read(
        &mut self,
        _req: &Request<'_>,
        _ino: u64,
        fh: u64,
        offset: i64,
        size: u32,
        _flags: i32,
        _lock_owner: Option<u64>,
        reply: ReplyData,
    ) {
        let Ok(offset) = u64::try_from(offset) else {
            reply.error(libc::EINVAL);
            return;
        };
        self.spawn(move |mount| match mount.read(fh, offset, size as usize) {
            Ok(bytes) => reply.data(&bytes),
            Err(e) => reply.error(errno(&e)),
        });
    }

    fn release(
        &mut self,
        _req: &Request<'_>,
        _ino: u64,
        fh: u64,
        _flags: i32,
        _lock_owner: Option<u64>,
        _flush: bool,
        reply: ReplyEmpty,
    ) {
        self.mount.release(fh);
        self.backings.lock().unwrap_or_else(PoisonError::into_inner).remove(&fh);
        reply.ok();
    }

    fn flush(&mut self, _req: &Request<'_>, _ino: u64, _fh: u64, _lock_owner: u64, reply: ReplyEmpty) {
        reply.ok();
    }

    fn opendir(&mut self, _req: &Request<'_>, ino: u64, _flags: i32, reply: ReplyOpen) {
        let handle = self.next_listing.fetch_add(1, Ordering::Relaxed);
        let listings = Arc::clone(&self.listings);
        self.spawn(move |mount| match mount.readdir(ino) {
            Ok(entries) => {
                listings.lock().unwrap_or_else(PoisonError::into_inner).insert(handle, Arc::new(entries));
                reply.opened(handle, 0);
            }
            Err(e) => reply.error(errno(&e)),
        });
    }

    fn readdir(&mut self, _req: &Request<'_>, _ino: u64, fh: u64, offset: i64, mut reply: ReplyDirectory) {
        let listing = self.listings.lock().unwrap_or_else(PoisonError::into_inner).get(&fh).cloned();
        let Some(listing) = listing else {
            reply.error(libc::EBADF);
            return;
        };
        let start = usize::try_from(offset).unwrap_or(0);
        for (index, entry) in listing.iter().enumerate().skip(start) {
            let full = reply.add(
                entry.ino,
                (index + 1) as i64,
                file_type(entry.kind),
                OsStr::from_bytes(&entry.name),
            );
            if full {
                break;
            }
        }
        reply.ok();
    }

    fn readdirplus(&mut self, _req: &Request<'_>, ino: u64, fh: u64, offset: i64, reply: ReplyDirectoryPlus) {
        let listing = self.listings.lock().unwrap_or_else(PoisonError::into_inner).get(&fh).cloned();
        let Some(listing) = listing else {
            reply.error(libc::EBADF);
            return;
        };
        let ttl = self.ttl;
        let start = usize::try_from(offset).unwrap_or(0);
        self.spawn(move |mount| {
            let mut reply = reply;
            for (index, entry) in listing.iter().enumerate().skip(start) {
                let next = (index + 1) as i64;
                let name = OsStr::from_bytes(&entry.name);
                // "." and ".." carry no lookup reference; every other entry does.
                let dot = entry.name == b"." || entry.name == b"..";
                let attr = if dot {
                    Ok(mount.getattr(entry.ino).unwrap_or_else(|_| directory_attr(entry.ino)))
                } else {
                    mount.lookup(ino, &entry.name)
                };
                let Ok(attr) = attr else { continue };
                if reply.add(attr.ino, next, name, &ttl, &file_attr(&attr), 0) {
                    if !dot {
                        mount.forget(attr.ino, 1); // not sent: the kernel holds no reference
                    }
                    break;
                }
            }
            reply.ok();
        });
    }

    fn releasedir(&mut self, _req: &Request<'_>, _ino: u64, fh: u64, _flags: i32, reply: ReplyEmpty) {
        self.listings.lock().unwrap_or_else(PoisonError::into_inner).remove(&fh);
        reply.ok();
    }

    fn statfs(&mut self, _req: &Request<'_>, _ino: u64, reply: ReplyStatfs) {
        self.spawn(move |mount| {
            let s = mount.statfs();
            reply.statfs(
                s.blocks,
                s.blocks_free,
                s.blocks_free,
                s.files,
                s.files_free,
                s.block_size,
                255,
                s.block_size,
            )
        });
    }

    fn getxattr(&mut self, req: &Request<'_>, ino: u64, name: &OsStr, size: u32, reply: ReplyXattr) {
        let name = name.as_bytes().to_vec();
        let gid = req.gid();
        self.spawn(move |mount| reply_xattr(mount.getxattr(ino, &name, gid), size, reply));
    }

    fn listxattr(&mut self, _req: &Request<'_>, ino: u64, size: u32, reply: ReplyXattr) {
        self.spawn(move |mount| reply_xattr(mount.listxattr(ino), size, reply));
    }

    fn access(&mut self, _req: &Request<'_>, _ino: u64, mask: i32, reply: ReplyEmpty) {
        if mask & libc::W_OK != 0 {
            reply.error(libc::EROFS);
        } else {
            reply.ok();
        }
    }
}

/// Attributes for a `..` whose inode the kernel does not hold (it only needs the type).
fn directory_attr(ino: u64) -> Attr {
    Attr {
        ino,
        kind: FileKind::Directory,
        mode: 0o40755,
        nlink: 1,
        uid: 0,
        gid: 0,
        size: 4096,
        rdev: 0,
        mtime: 0,
        mtime_ns: 0,
        blocks: 8,
    }
}

/// Size 0 asks for the length; a too-small buffer is `ERANGE`.
fn reply_xattr(value: Result<Vec<u8>, ClientError>, size: u32, reply: ReplyXattr) {
    match value {
        Ok(value) if size == 0 => reply.size(value.len() as u32),
        Ok(value) if value.len() > size as usize => reply.error(libc::ERANGE),
        Ok(value) => reply.data(&value),
        Err(e) => reply.error(errno(&e)),
    }
}
