//! Command-line surface of `cvmfs-inspect`.

use std::path::PathBuf;

use clap::{Parser, Subcommand};

/// Read-only inspector for CernVM-FS repositories: verifies the whole trust chain, then
/// lists, reads or checks a revision.
#[derive(Debug, Parser)]
#[command(name = "cvmfs-inspect", version)]
pub struct Cli {
    /// The repository: a storage directory (holding `.cvmfspublished` and `data/`) or an
    /// `http://` / `https://` URL of one.
    #[arg(long)]
    pub repo: String,
    /// The fully qualified repository name, e.g. `atlas.cern.ch`.
    #[arg(long)]
    pub fqrn: String,
    /// Master public key(s) verifying the whitelist: files separated by `:`, or a
    /// directory whose `*.pub` files are all loaded.
    #[arg(long)]
    pub key: String,
    /// Open the revision of this tag instead of HEAD.
    #[arg(long, conflicts_with_all = ["date", "root_hash"])]
    pub tag: Option<String>,
    /// Open the newest tagged revision not newer than this unix time.
    #[arg(long, conflicts_with = "root_hash")]
    pub date: Option<u64>,
    /// Open this root catalog directly (no manifest, no whitelist: the hash is the trust).
    #[arg(long)]
    pub root_hash: Option<String>,
    /// Take this unix time as "now" when checking the whitelist expiry (to inspect an
    /// archived repository whose whitelist has expired).
    #[arg(long)]
    pub now: Option<u64>,
    /// A blacklist file (certificate fingerprints and `<fqrn N` revision lines).
    #[arg(long)]
    pub blacklist: Option<PathBuf>,
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// The manifest, whitelist, certificate, revision and tags.
    Info,
    /// The tags of the history database.
    Tags,
    /// List a directory; `-R` recursively, `-l` in the long (expected-*.tsv) format.
    Ls {
        #[arg(short = 'R')]
        recursive: bool,
        #[arg(short = 'l')]
        long: bool,
        #[arg(default_value = "/")]
        path: String,
    },
    /// Write a file's content to standard output (chunked files reassembled).
    Cat { path: String },
    /// Walk every catalog of the revision and check every object's hash.
    Verify,
}
