//! What each `cvmfs-inspect` command does, over a verified [`Repository`].

use std::collections::hash_map::DefaultHasher;
use std::hash::{Hash, Hasher as _};
use std::io::Write;
use std::path::Path;
use std::time::{SystemTime, UNIX_EPOCH};

use cvmfs_core::blacklist::{Blacklist, BlacklistError};
use cvmfs_core::catalog::{EntryKind, TreeEntry};
use cvmfs_core::hash::HashError;
use cvmfs_core::history::Tag;
use cvmfs_core::path::{PathError, RepoPath};
use cvmfs_core::repository::{OpenOptions, Repository, RepositoryError, RevisionChoice};
use cvmfs_core::signature::{KeyError, KeyRing};
use cvmfs_core::trust::Proof;
use cvmfs_core::whitelist::whitelist_timestamp;
use cvmfs_core::ContentHash;
use sha2::{Digest, Sha256};
use thiserror::Error;

use crate::cli::{Cli, Command};
use crate::listing::{self, Kind, Row};
use crate::source::{self, SourceError};

#[derive(Debug, Error)]
pub enum InspectError {
    #[error("{0}")]
    Source(#[from] SourceError),
    #[error("loading the master public key(s) '{list}': {source}")]
    Keys { list: String, source: KeyError },
    #[error("{0}")]
    Blacklist(#[from] BlacklistError),
    #[error("--root-hash '{text}': {source}")]
    RootHash { text: String, source: HashError },
    #[error("path '{text}': {source}")]
    Path { text: String, source: PathError },
    #[error("--date {0} is beyond the range of unix times")]
    Date(u64),
    #[error("{0}")]
    Repository(#[from] RepositoryError),
    #[error("writing output failed: {0}")]
    Output(#[from] std::io::Error),
}

/// Runs one command, writing its output to `out`.
pub fn run(cli: &Cli, out: &mut dyn Write) -> Result<(), InspectError> {
    let scratch = tempfile_dir()?;
    let repository = open_repository(cli, scratch.path())?;
    match &cli.command {
        Command::Info => info(&repository, out)?,
        Command::Tags => tags(&repository.tags()?, out)?,
        Command::Ls { recursive, long, path } => ls(&repository, &parse_path(path)?, *recursive, *long, out)?,
        Command::Cat { path } => {
            let entry = repository.stat(&parse_path(path)?)?;
            repository.write_content(&entry, out)?;
        }
        Command::Verify => {
            let report = repository.verify_all()?;
            writeln!(
                out,
                "OK: revision {} (root catalog {}): {} catalogs, {} entries, {} objects, {} bytes verified{}",
                repository.revision(),
                repository.root_hash(),
                report.catalogs,
                report.entries,
                report.objects,
                report.bytes,
                if report.external > 0 {
                    format!(", {} external files skipped", report.external)
                } else {
                    String::new()
                }
            )?;
        }
    }
    out.flush()?;
    Ok(())
}

fn open_repository(cli: &Cli, scratch: &Path) -> Result<Repository, InspectError> {
    let source = source::open(&cli.repo)?;
    let options = OpenOptions {
        fqrn: cli.fqrn.clone(),
        keys: load_keys(&cli.key)?,
        blacklist: match &cli.blacklist {
            Some(file) => Blacklist::load_files(std::slice::from_ref(file))?,
            None => Blacklist::new(),
        },
        now: cli.now.unwrap_or_else(unix_now),
        minimum_timestamp: 0,
        revision: revision_choice(cli)?,
        scratch: scratch.to_path_buf(),
    };
    Ok(Repository::open(source, &options)?)
}

fn load_keys(list: &str) -> Result<KeyRing, InspectError> {
    let as_dir = Path::new(list);
    let ring = if !list.contains(':') && as_dir.is_dir() {
        KeyRing::from_dir(as_dir)
    } else {
        KeyRing::from_path_list(list)
    };
    ring.map_err(|source| InspectError::Keys { list: list.to_string(), source })
}

fn revision_choice(cli: &Cli) -> Result<RevisionChoice, InspectError> {
    if let Some(name) = &cli.tag {
        return Ok(RevisionChoice::Tag(name.clone()));
    }
    if let Some(date) = cli.date {
        return Ok(RevisionChoice::Date(i64::try_from(date).map_err(|_| InspectError::Date(date))?));
    }
    if let Some(text) = &cli.root_hash {
        let hash = ContentHash::parse(text.trim_end_matches('C'))
            .map_err(|source| InspectError::RootHash { text: text.clone(), source })?;
        return Ok(RevisionChoice::RootHash(hash));
    }
    Ok(RevisionChoice::Head)
}

fn parse_path(text: &str) -> Result<RepoPath, InspectError> {
    RepoPath::normalize(text.as_bytes())
        .map_err(|source| InspectError::Path { text: text.to_string(), source })
}

fn info(repository: &Repository, out: &mut dyn Write) -> Result<(), InspectError> {
    let verified = repository.manifest();
    let m = &verified.manifest;
    writeln!(out, "repository:        {}", m.repository_name)?;
    writeln!(
        out,
        "revision:          {} (manifest), {} (opened root catalog)",
        m.revision,
        repository.revision()
    )?;
    writeln!(out, "root catalog:      {} (manifest HEAD: {})", repository.root_hash(), m.catalog_hash)?;
    if let Some(tag) = repository.selected_tag() {
        writeln!(out, "selected tag:      {}", tag.name)?;
    }
    writeln!(
        out,
        "published:         {} ({})",
        whitelist_timestamp(m.publish_timestamp),
        m.publish_timestamp
    )?;
    writeln!(out, "ttl:               {} s", m.ttl)?;
    writeln!(out, "hash algorithm:    {}", m.hash_algorithm().name())?;
    writeln!(out, "garbage collected: {}", if m.garbage_collectable { "yes" } else { "no" })?;
    if let Some(history) = m.history {
        writeln!(out, "history:           {history}")?;
    }
    if let Some(meta) = m.meta_info {
        writeln!(out, "meta info:         {meta}")?;
    }
    if let Proof::Signed { certificate, whitelist, .. } = &verified.proof {
        let algorithm = m.hash_algorithm();
        writeln!(out, "certificate:       {}", certificate.subject())?;
        writeln!(out, "  fingerprint:     {}", certificate.fingerprint(algorithm).fingerprint())?;
        writeln!(out, "whitelist:         created {}, expires {}", whitelist.created, whitelist.expiry)?;
        for fingerprint in &whitelist.fingerprints {
            writeln!(out, "  lists:           {}", fingerprint.fingerprint())?;
        }
    }
    let tags = repository.tags()?;
    writeln!(out, "tags:              {}", tags.len())?;
    tags_table(&tags, out, "  ")?;
    Ok(())
}

fn tags(tags: &[Tag], out: &mut dyn Write) -> Result<(), InspectError> {
    tags_table(tags, out, "")
}

/// name, root hash, revision, timestamp, branch, description; tab-separated.
fn tags_table(tags: &[Tag], out: &mut dyn Write, indent: &str) -> Result<(), InspectError> {
    for tag in tags {
        let when = u64::try_from(tag.timestamp)
            .map(whitelist_timestamp)
            .unwrap_or_else(|_| tag.timestamp.to_string());
        writeln!(
            out,
            "{indent}{}\t{}\t{}\t{}\t{}\t{}",
            tag.name,
            tag.hash,
            tag.revision,
            when,
            if tag.branch.is_empty() { "-" } else { &tag.branch },
            tag.description
        )?;
    }
    Ok(())
}

/// Lists `path` itself and then its children (all descendants with `recursive`), like
/// `find`, so that `ls -R -l /` is the whole tree in the fixtures' format.
fn ls(
    repository: &Repository,
    path: &RepoPath,
    recursive: bool,
    long: bool,
    out: &mut dyn Write,
) -> Result<(), InspectError> {
    let start = repository.stat(path)?;
    let mut entries = vec![start.clone()];
    if start.entry.is_directory() {
        collect(repository, &start.path, recursive, &mut entries)?;
    }
    if !long {
        let mut paths: Vec<String> = entries.iter().map(display_path).collect();
        paths.sort_by(|a, b| a.as_bytes().cmp(b.as_bytes()));
        for p in paths {
            writeln!(out, "{p}")?;
        }
        return Ok(());
    }
    let rows = entries.iter().map(|e| row(repository, e)).collect::<Result<Vec<_>, _>>()?;
    out.write_all(listing::render(rows).as_bytes())?;
    Ok(())
}

fn collect(
    repository: &Repository,
    dir: &RepoPath,
    recursive: bool,
    into: &mut Vec<TreeEntry>,
) -> Result<(), InspectError> {
    for child in repository.list(dir)? {
        let descend = recursive && child.entry.is_directory();
        let path = child.path.clone();
        into.push(child);
        if descend {
            collect(repository, &path, recursive, into)?;
        }
    }
    Ok(())
}

fn display_path(entry: &TreeEntry) -> String {
    if entry.path.is_root() {
        "/".to_string()
    } else {
        entry.path.to_string_lossy()
    }
}

fn row(repository: &Repository, entry: &TreeEntry) -> Result<Row, InspectError> {
    let e = &entry.entry;
    let kind = match e.kind {
        EntryKind::Directory => Kind::Directory,
        EntryKind::Regular => Kind::File,
        EntryKind::Symlink => Kind::Symlink,
        _ => Kind::Special,
    };
    let sha256 =
        if e.is_regular() && !e.is_external() { Some(content_sha256(repository, entry)?) } else { None };
    let xattrs = entry
        .xattrs()
        .map_err(|source| RepositoryError::Catalog { path: display_path(entry), source })?
        .iter()
        .map(|(name, value)| (String::from_utf8_lossy(name).into_owned(), value.to_vec()))
        .collect();
    let hardlink_key = (e.hardlink_group() != 0).then(|| (catalog_identity(entry), e.hardlink_group()));
    Ok(Row {
        path: display_path(entry),
        kind,
        permissions: e.mode & 0o7777,
        size: e.size,
        mtime: e.mtime,
        sha256,
        symlink: e.is_symlink().then(|| String::from_utf8_lossy(&e.symlink).into_owned()),
        xattrs,
        hardlink_key,
    })
}

/// Hardlink group numbers are only unique within one catalog.
fn catalog_identity(entry: &TreeEntry) -> u64 {
    let mut hasher = DefaultHasher::new();
    entry.catalog.hash.digest().hash(&mut hasher);
    hasher.finish()
}

fn content_sha256(repository: &Repository, entry: &TreeEntry) -> Result<String, InspectError> {
    let mut sink = Sha256Sink(Sha256::new());
    repository.write_content(entry, &mut sink)?;
    Ok(sink.0.finalize().iter().map(|b| format!("{b:02x}")).collect())
}

struct Sha256Sink(Sha256);

impl Write for Sha256Sink {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.update(buf);
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

fn unix_now() -> u64 {
    SystemTime::now().duration_since(UNIX_EPOCH).map(|d| d.as_secs()).unwrap_or(0)
}

/// A private scratch directory for inflated catalogs, removed on drop.
fn tempfile_dir() -> Result<tempfile::TempDir, InspectError> {
    Ok(tempfile::Builder::new().prefix("cvmfs-inspect-").tempdir()?)
}
