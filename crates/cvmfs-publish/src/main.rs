//! `cvmfs-publish`: create repository keys, and publish a directory tree as a new
//! signed revision of a repository storage directory.

use std::path::PathBuf;

use anyhow::{Context, Result};
use clap::{Parser, Subcommand};
use cvmfs_core::{Algorithm, Compression};
use cvmfs_publish::publish::{unix_now, DEFAULT_WHITELIST_DAYS};
use cvmfs_publish::{generate_keys, publish, ChunkSizes, PublishOptions};

/// Writes CernVM-FS repositories in the format of the upstream server tools.
#[derive(Debug, Parser)]
#[command(name = "cvmfs-publish", version)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Create a master key pair (NAME.masterkey, NAME.pub), a repository key (NAME.key)
    /// and its self-signed certificate (NAME.crt) in KEYDIR.
    Keygen {
        #[arg(long)]
        fqrn: String,
        #[arg(long)]
        out: PathBuf,
        /// Start of the certificate's validity (unix seconds); default now.
        #[arg(long)]
        now: Option<u64>,
    },
    /// Publish SOURCE as the next revision of the repository in STORAGE.
    Publish(PublishArgs),
}

#[derive(Debug, clap::Args)]
struct PublishArgs {
    #[arg(long)]
    fqrn: String,
    /// Directory holding NAME.key, NAME.crt and NAME.masterkey.
    #[arg(long)]
    keys: PathBuf,
    /// The directory served as <server>/cvmfs/NAME.
    #[arg(long)]
    storage: PathBuf,
    /// The directory tree to publish.
    #[arg(long)]
    source: PathBuf,
    /// Tag of this revision (default: generic-<UTC time>).
    #[arg(long)]
    tag: Option<String>,
    /// Description of the tag.
    #[arg(long, default_value = "")]
    tag_description: String,
    /// Content hash algorithm: sha1, rmd160 or shake128.
    #[arg(long, default_value = "sha1", value_parser = parse_algorithm)]
    hash: Algorithm,
    /// File compression: zlib or none.
    #[arg(long, default_value = "zlib", value_parser = parse_compression)]
    compression: Compression,
    /// Chunk sizes in bytes: MIN,AVG,MAX (default 4 MiB, 8 MiB, 16 MiB).
    #[arg(long, value_parser = parse_chunk_sizes)]
    chunk_sizes: Option<ChunkSizes>,
    /// Store every file as one object.
    #[arg(long, conflicts_with = "chunk_sizes")]
    no_chunking: bool,
    /// Days the whitelist stays valid.
    #[arg(long, default_value_t = DEFAULT_WHITELIST_DAYS)]
    whitelist_days: u32,
    /// Catalog TTL in seconds.
    #[arg(long, default_value_t = cvmfs_core::manifest::DEFAULT_TTL)]
    ttl: u64,
    /// Repository meta-info JSON file, stored as the M object.
    #[arg(long)]
    meta_info: Option<PathBuf>,
    /// Do not publish extended attributes.
    #[arg(long)]
    no_xattrs: bool,
    /// Publish time (unix seconds), for reproducible output; default now.
    #[arg(long)]
    now: Option<u64>,
}

fn parse_algorithm(text: &str) -> Result<Algorithm, String> {
    Algorithm::from_name(text).ok_or_else(|| format!("'{text}' is not sha1, rmd160 or shake128"))
}

fn parse_compression(text: &str) -> Result<Compression, String> {
    Compression::from_name(text).ok_or_else(|| format!("'{text}' is not zlib or none"))
}

fn parse_chunk_sizes(text: &str) -> Result<ChunkSizes, String> {
    ChunkSizes::parse(text).map_err(|e| e.to_string())
}

fn main() -> Result<()> {
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("warn")),
        )
        .with_writer(std::io::stderr)
        .init();
    match Cli::parse().command {
        Command::Keygen { fqrn, out, now } => {
            let paths = generate_keys(&fqrn, &out, now.unwrap_or_else(unix_now))
                .with_context(|| format!("creating keys for {fqrn}"))?;
            println!("master public key (give to clients): {}", paths.master_public.display());
            println!("master private key (keep offline):   {}", paths.master_private.display());
            println!("repository key:                      {}", paths.private.display());
            println!("repository certificate:              {}", paths.certificate.display());
        }
        Command::Publish(args) => run_publish(args)?,
    }
    Ok(())
}

fn run_publish(args: PublishArgs) -> Result<()> {
    let mut options = PublishOptions::new(&args.fqrn, &args.keys, &args.storage, &args.source);
    options.tag = args.tag;
    options.tag_description = args.tag_description;
    options.algorithm = args.hash;
    options.compression = args.compression;
    options.chunking = if args.no_chunking { None } else { Some(args.chunk_sizes.unwrap_or_default()) };
    options.whitelist_days = args.whitelist_days;
    options.ttl = args.ttl;
    options.meta_info = args.meta_info;
    options.xattrs = !args.no_xattrs;
    options.now = args.now;
    let report = publish(&options).with_context(|| format!("publishing {}", args.source.display()))?;
    println!("revision {} of {} published, tag {}", report.revision, args.fqrn, report.tag);
    println!("root catalog {} ({} bytes)", report.root_hash, report.root_size);
    println!(
        "{} entries; catalogs: {} written, {} unchanged; objects: {} written ({} bytes), {} already stored",
        report.build.entries,
        report.build.catalogs_written,
        report.build.catalogs_reused,
        report.objects.written,
        report.objects.bytes_written,
        report.objects.reused
    );
    Ok(())
}
