//! Extended attributes: the client's magic attributes (`user.revision`, `user.hash`,
//! `user.host`, ...) and the repository's own, with upstream's lookup order, value
//! formats, visibility rules and paging (spec 6.6).

use std::sync::atomic::Ordering;

use cvmfs_core::catalog::TreeEntry;
use cvmfs_core::catalog::COUNTER_NAMES;

use crate::config::XattrVisibility;
use crate::error::{ClientError, Result};
use crate::fs::Mount;
use crate::mount::display;

/// What the client reports as `user.version` (`<version>.<patchlevel>`).
pub const VERSION: &str = concat!(env!("CARGO_PKG_VERSION"), ".0");
/// Longest page of a multi-page value, in bytes (upstream: 40 000 characters).
pub const PAGE_SIZE: usize = 40_000;

/// Which entries an attribute applies to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Flavour {
    Base,
    WithHash,
    Regular,
    Symlink,
}

/// Every magic attribute, sorted by name.
const MAGIC: &[(&str, Flavour)] = &[
    ("user.catalog_counters", Flavour::Base),
    ("user.chunk_list", Flavour::Regular),
    ("user.chunks", Flavour::Regular),
    ("user.compression", Flavour::Regular),
    ("user.direct_io", Flavour::Regular),
    ("user.expires", Flavour::Base),
    ("user.external_file", Flavour::Regular),
    ("user.external_host", Flavour::Base),
    ("user.external_timeout", Flavour::Base),
    ("user.fqrn", Flavour::Base),
    ("user.hash", Flavour::WithHash),
    ("user.hitrate", Flavour::Base),
    ("user.host", Flavour::Base),
    ("user.host_list", Flavour::Base),
    ("user.inode_max", Flavour::Base),
    ("user.lhash", Flavour::WithHash),
    ("user.logbuffer", Flavour::Base),
    ("user.maxfd", Flavour::Base),
    ("user.ncleanup24", Flavour::Base),
    ("user.nclg", Flavour::Base),
    ("user.ndiropen", Flavour::Base),
    ("user.ndownload", Flavour::Base),
    ("user.nioerr", Flavour::Base),
    ("user.nopen", Flavour::Base),
    ("user.pid", Flavour::Base),
    ("user.proxy", Flavour::Base),
    ("user.proxy_list", Flavour::Base),
    ("user.proxy_list_external", Flavour::Base),
    ("user.pubkeys", Flavour::Base),
    ("user.rawlink", Flavour::Symlink),
    ("user.repo_counters", Flavour::Base),
    ("user.repo_metainfo", Flavour::Base),
    ("user.revision", Flavour::Base),
    ("user.root_hash", Flavour::Base),
    ("user.rx", Flavour::Base),
    ("user.speed", Flavour::Base),
    ("user.tag", Flavour::Base),
    ("user.timeout", Flavour::Base),
    ("user.timeout_direct", Flavour::Base),
    ("user.timestamp_last_ioerr", Flavour::Base),
    ("user.uptime", Flavour::Base),
    ("user.useddirp", Flavour::Base),
    ("user.usedfd", Flavour::Base),
    ("user.version", Flavour::Base),
    ("xfsroot.rawlink", Flavour::Symlink),
];

fn applies(flavour: Flavour, entry: &TreeEntry) -> bool {
    match flavour {
        Flavour::Base => true,
        Flavour::WithHash => entry.entry.is_regular() && entry.entry.content_hash.is_some(),
        Flavour::Regular => entry.entry.is_regular(),
        Flavour::Symlink => entry.entry.is_symlink(),
    }
}

impl Mount {
    /// `getxattr`: the magic attribute of that name, else the entry's own, else
    /// `ENODATA`. `name~N` / `name@N` address pages of long values.
    pub fn getxattr(&self, ino: u64, name: &[u8], caller_gid: u32) -> Result<Vec<u8>> {
        let entry = self.entry_of(ino)?;
        let text = String::from_utf8_lossy(name);
        let (base, page) = split_page(&text);
        if let Some(&(magic, flavour)) = MAGIC.iter().find(|(n, _)| *n == base) {
            if !applies(flavour, &entry) {
                return Err(ClientError::NoAttribute);
            }
            if self.is_protected(magic, caller_gid) {
                return Err(ClientError::NoAttribute);
            }
            let value = self.magic_value(magic, &entry)?;
            return paged(value.into_bytes(), page);
        }
        let own = entry.xattrs()?;
        own.get(name).map(<[u8]>::to_vec).ok_or(ClientError::NoAttribute)
    }

    /// `listxattr`: NUL-terminated names; magic names as the visibility setting allows
    /// (each once, not shadowed by the entry's own), then the entry's own.
    pub fn listxattr(&self, ino: u64) -> Result<Vec<u8>> {
        let entry = self.entry_of(ino)?;
        let own = entry.xattrs()?;
        let show_magic = match self.config().xattr_visibility {
            XattrVisibility::Never => false,
            XattrVisibility::Always => true,
            XattrVisibility::RootOnly => entry.path.is_root(),
        };
        let mut out = Vec::new();
        if show_magic {
            for (name, flavour) in MAGIC {
                if applies(*flavour, &entry) && own.get(name.as_bytes()).is_none() {
                    out.extend_from_slice(name.as_bytes());
                    out.push(0);
                }
            }
        }
        out.extend_from_slice(&own.list_keys_posix());
        Ok(out)
    }

    fn is_protected(&self, name: &str, gid: u32) -> bool {
        let config = self.config();
        config.protected_xattrs.iter().any(|p| p == name)
            && gid != 0
            && !config.privileged_gids.contains(&gid)
    }

    fn magic_value(&self, name: &str, entry: &TreeEntry) -> Result<String> {
        let revision = self.revision();
        let objects = &self.parts().objects;
        let net = objects.downloader().info();
        let value = match name {
            "user.fqrn" => self.config().fqrn.clone(),
            "user.revision" => revision.revision().to_string(),
            "user.root_hash" => revision.root_hash.hex(),
            "user.tag" => revision.tag.clone().unwrap_or_default(),
            "user.hash" => entry.entry.content_hash.map(|h| h.to_string()).unwrap_or_default(),
            "user.lhash" => self.local_hash(entry),
            "user.host" => net.host,
            "user.host_list" => rotate_to(&net.host_list, &net.host).join(";"),
            "user.proxy" => net.proxy,
            "user.proxy_list" => net.proxy_list.iter().map(|p| format!("{p}\n")).collect(),
            "user.proxy_list_external" => "DIRECT\n".into(),
            "user.timeout" => net.timeout_seconds.to_string(),
            "user.timeout_direct" | "user.external_timeout" => net.timeout_direct_seconds.to_string(),
            "user.external_host" => "internal error: no hosts defined".into(),
            "user.rx" => (objects.counters.downloaded_bytes.load(Ordering::Relaxed) / 1024).to_string(),
            "user.speed" => net.speed_kib_per_second.map_or_else(|| "n/a".into(), |s| s.to_string()),
            "user.ndownload" => objects.counters.downloads.load(Ordering::Relaxed).to_string(),
            "user.hitrate" => hitrate(objects),
            "user.nclg" => revision.tree.loaded().len().to_string(),
            "user.nopen" => self.counters.opens.load(Ordering::Relaxed).to_string(),
            "user.ndiropen" => self.counters.dir_opens.load(Ordering::Relaxed).to_string(),
            "user.nioerr" => self.counters.io_errors.load(Ordering::Relaxed).to_string(),
            "user.timestamp_last_ioerr" => self.counters.last_io_error.load(Ordering::Relaxed).to_string(),
            "user.pid" => std::process::id().to_string(),
            "user.version" => VERSION.into(),
            "user.uptime" => (self.uptime().as_secs() / 60).to_string(),
            "user.expires" => self.expires(),
            "user.inode_max" => u64::MAX.to_string(),
            "user.maxfd" => max_fd().to_string(),
            "user.usedfd" => self.open_files().to_string(),
            "user.useddirp" => "0".into(),
            "user.logbuffer" => String::new(),
            "user.ncleanup24" => "-1".into(),
            "user.pubkeys" => String::new(),
            "user.repo_metainfo" => "metainfo not available".into(),
            "user.repo_counters" => counters_text(&revision.tree.root().catalog)?,
            "user.catalog_counters" => format!(
                "catalog_hash: {}\ncatalog_mountpoint: {}\n{}",
                entry.catalog.hash.hex(),
                display(&entry.catalog.mountpoint),
                counters_text(&entry.catalog.catalog)?
            ),
            "user.chunk_list" => chunk_list(entry)?,
            "user.chunks" => entry.chunks()?.len().max(1).to_string(),
            "user.compression" => match entry.entry.compression {
                cvmfs_core::Compression::Zlib => "zlib".into(),
                cvmfs_core::Compression::None => "none".into(),
            },
            "user.direct_io" => u8::from(entry.entry.is_direct_io()).to_string(),
            "user.external_file" => u8::from(entry.entry.is_external()).to_string(),
            "user.rawlink" | "xfsroot.rawlink" => String::from_utf8_lossy(&entry.entry.symlink).into_owned(),
            _ => return Err(ClientError::NoAttribute),
        };
        Ok(value)
    }

    fn expires(&self) -> String {
        let revision = self.revision();
        if revision.fixed {
            return "never (fixed root catalog)".into();
        }
        let left = self.next_check().saturating_duration_since(std::time::Instant::now());
        (left.as_secs() / 60).to_string()
    }

    /// The hash of the cached copy, recompressed as stored (`Not in cache` otherwise).
    fn local_hash(&self, entry: &TreeEntry) -> String {
        let Some(hash) = entry.entry.content_hash else { return String::new() };
        let id = cvmfs_core::ObjectId::new(hash, cvmfs_core::ObjectKind::File);
        let object = match self.parts().objects.cache().open(&id) {
            Ok(Some(object)) => object,
            Ok(None) => return "Not in cache".into(),
            Err(_) => return "I/O error (5)".into(),
        };
        match object.read_to_vec() {
            Ok(bytes) => {
                let stored = match entry.entry.compression {
                    cvmfs_core::Compression::Zlib => cvmfs_core::compression::deflate(&bytes),
                    cvmfs_core::Compression::None => bytes,
                };
                cvmfs_core::ContentHash::of(hash.algorithm(), &stored).to_string()
            }
            Err(e) => format!("I/O error ({})", e.raw_os_error().unwrap_or(libc::EIO)),
        }
    }
}

/// The host chain starting at the current host, as `user.host_list` shows it.
fn rotate_to(hosts: &[String], current: &str) -> Vec<String> {
    let start = hosts.iter().position(|h| h == current).unwrap_or(0);
    hosts[start..].iter().chain(&hosts[..start]).cloned().collect()
}

fn hitrate(objects: &crate::objects::ObjectStore) -> String {
    let requests = objects.counters.requests.load(Ordering::Relaxed);
    let downloads = objects.counters.downloads.load(Ordering::Relaxed);
    if requests == 0 {
        return "n/a".into();
    }
    format!("{:.3}", 100.0 * (1.0 - downloads as f64 / requests as f64))
}

fn max_fd() -> u64 {
    let mut limit = libc::rlimit { rlim_cur: 0, rlim_max: 0 };
    // SAFETY: getrlimit writes only into the struct we pass.
    let ok = unsafe { libc::getrlimit(libc::RLIMIT_NOFILE, &mut limit) } == 0;
    if ok {
        limit.rlim_cur.saturating_sub(512)
    } else {
        0
    }
}

/// `<name>,<value>\n` per counter (self + subtree), sorted by name.
fn counters_text(catalog: &cvmfs_core::catalog::Catalog) -> Result<String> {
    let counters = catalog.counters()?;
    let mut names: Vec<&str> = COUNTER_NAMES.to_vec();
    names.sort_unstable();
    let mut out = String::new();
    for name in names {
        let total = counters.get(&format!("self_{name}")).unwrap_or(0)
            + counters.get(&format!("subtree_{name}")).unwrap_or(0);
        out.push_str(&format!("{name},{total}\n"));
    }
    Ok(out)
}

fn chunk_list(entry: &TreeEntry) -> Result<String> {
    let mut out = String::from("hash,offset,size\n");
    let chunks = entry.chunks()?;
    if chunks.is_empty() {
        if let Some(hash) = entry.entry.content_hash {
            out.push_str(&format!("{hash},0,{}\n", entry.entry.size));
        }
    }
    for chunk in chunks {
        out.push_str(&format!("{},{},{}\n", chunk.hash, chunk.offset, chunk.size));
    }
    Ok(out)
}

/// Which page a name asks for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Page {
    /// The plain name: page 0, raw.
    First,
    Machine(Option<usize>),
    Human(Option<usize>),
    /// `~?` / `@?` with a bad index: a parse failure.
    Bad,
}

fn split_page(name: &str) -> (&str, Page) {
    for (marker, human) in [('~', false), ('@', true)] {
        if let Some((base, index)) = name.rsplit_once(marker) {
            if MAGIC.iter().any(|(n, _)| *n == base) {
                let parsed = if index == "?" { Some(None) } else { index.parse::<usize>().ok().map(Some) };
                let page = match (parsed, human) {
                    (None, _) => Page::Bad,
                    (Some(i), false) => Page::Machine(i),
                    (Some(i), true) => Page::Human(i),
                };
                return (base, page);
            }
        }
    }
    (name, Page::First)
}

fn paged(value: Vec<u8>, page: Page) -> Result<Vec<u8>> {
    let pages: Vec<&[u8]> =
        if value.is_empty() { vec![&value[..]] } else { value.chunks(PAGE_SIZE).collect() };
    match page {
        Page::First => Ok(pages[0].to_vec()),
        Page::Bad => Err(ClientError::NoAttribute),
        Page::Machine(None) => Ok(format!("num_pages, {}", pages.len()).into_bytes()),
        Page::Machine(Some(i)) => pages.get(i).map(|p| p.to_vec()).ok_or(ClientError::NoAttribute),
        Page::Human(None) => Ok(format!(
            "Access xattr with xattr~<page_num> (machine-readable mode) or  xattr@<page_num> (human-readable mode).\nPages available: {}",
            pages.len()
        )
        .into_bytes()),
        Page::Human(Some(i)) => match pages.get(i) {
            Some(p) => {
                let mut out = format!(
                    "# Access page at idx: {i}. Total num pages: {} (access other pages: xattr~<page_num>, starting  with 0; number of pages available: xattr~?)\n",
                    pages.len()
                )
                .into_bytes();
                out.extend_from_slice(p);
                Ok(out)
            }
            None => Ok(format!("Page requested does not exists. There are {} pages available.\nAccess xattr with xattr~<page_num> (machine-readable mode) or  xattr@<page_num> (human-readable mode).\nUse xattr@? or xattr~? to get extra info about the attribute", pages.len()).into_bytes()),
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn magic_names_are_sorted_and_unique() {
        assert!(MAGIC.windows(2).all(|w| w[0].0 < w[1].0));
    }

    #[test]
    fn pages_are_addressed_like_upstream() {
        assert_eq!(split_page("user.proxy_list~1"), ("user.proxy_list", Page::Machine(Some(1))));
        assert_eq!(split_page("user.proxy_list@?"), ("user.proxy_list", Page::Human(None)));
        assert_eq!(split_page("user.proxy_list~x"), ("user.proxy_list", Page::Bad));
        assert_eq!(split_page("user.custom~1"), ("user.custom~1", Page::First));
        let long = vec![b'a'; PAGE_SIZE + 5];
        assert_eq!(paged(long.clone(), Page::Machine(None)).unwrap(), b"num_pages, 2");
        assert_eq!(paged(long.clone(), Page::Machine(Some(1))).unwrap(), b"aaaaa");
        assert!(paged(long.clone(), Page::Machine(Some(2))).is_err());
        assert_eq!(paged(long, Page::First).unwrap().len(), PAGE_SIZE);
    }
}
