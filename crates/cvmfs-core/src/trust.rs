//! The chain of trust from a master public key to a manifest: the client acceptance
//! checks of `.cvmfspublished`, in upstream's order (`manifest_fetch.cc`).
//!
//! 1. parse the manifest (`C R D S` required) → [`TrustError::Incomplete`]
//! 2. `N` equals the fqrn → [`TrustError::NameMismatch`]
//! 3. `R` is MD5("") → [`TrustError::RootMismatch`]
//! 4. `T` ≥ the minimum timestamp (rollback protection) → [`TrustError::Outdated`]
//! 5. shortcut: `C` equals the caller's already-verified root hash → accepted unchecked
//! 6. certificate object `X`: fetched, hash-checked, inflated, parsed
//! 7. the manifest signature verifies with the certificate key → [`TrustError::BadSignature`]
//! 8. the whitelist parses, is current, names the repository, and a master key signed it
//!    → [`TrustError::Whitelist`]
//! 9. the certificate is not blacklisted and the whitelist lists it
//!    → [`TrustError::Blacklisted`], [`TrustError::NotListed`]
//!
//! What it is not for: downloading. A [`TrustSource`] hands over bytes; the client's
//! download manager (proxies, fail-over) or [`LocalStorage`] implements it. Retrying on
//! another host is the caller's decision; [`TrustError::retry_on_other_host`] helps.

use std::path::{Path, PathBuf};

use thiserror::Error;

use crate::blacklist::Blacklist;
use crate::certificate::{Certificate, CertificateError};
use crate::compression::Compression;
use crate::hash::{ContentHash, ROOT_PATH_MD5};
use crate::letter::SignedLetter;
use crate::manifest::{Manifest, ManifestError};
use crate::object::ObjectId;
use crate::signature::KeyRing;
use crate::verify::{read_verified_to_vec, VerifyError};
use crate::whitelist::{Whitelist, WhitelistError};

/// Inflated certificates larger than this are refused (a real one is about 1 KiB).
pub const MAX_CERTIFICATE_BYTES: u64 = 1 << 20;

/// Any error a [`TrustSource`] reports.
pub type SourceError = Box<dyn std::error::Error + Send + Sync>;

/// Where the certificate and the whitelist come from.
pub trait TrustSource {
    /// The stored (compressed, as served) bytes of an object. `alternative_path` asks for
    /// `.cvmfsalt-<hash><suffix>` at the repository root instead of `data/…` (manifest
    /// `A=yes`).
    fn fetch_object(&self, id: &ObjectId, alternative_path: bool) -> Result<Vec<u8>, SourceError>;

    /// The raw `.cvmfswhitelist`.
    fn fetch_whitelist(&self) -> Result<Vec<u8>, SourceError>;

    /// An already-verified, inflated certificate PEM from a local cache, if there is one
    /// (upstream stores it after a successful root catalog load).
    fn cached_certificate(&self, _id: &ObjectId) -> Option<Vec<u8>> {
        None
    }
}

/// What the client knows and trusts before looking at a manifest.
#[derive(Debug, Clone, Copy)]
pub struct TrustContext<'a> {
    /// The repository the client mounts.
    pub fqrn: &'a str,
    /// Master public keys that may sign the whitelist.
    pub keys: &'a KeyRing,
    pub blacklist: &'a Blacklist,
    /// Current time, unix seconds (whitelist expiry).
    pub now: u64,
    /// Rollback floor for the manifest `T` (breadcrumb timestamp, or 0).
    pub minimum_timestamp: u64,
    /// A root hash verified earlier; a manifest naming it is accepted without the
    /// certificate and whitelist checks.
    pub base_root_hash: Option<ContentHash>,
}

/// A manifest that passed the checks.
#[derive(Debug, Clone)]
pub struct VerifiedManifest {
    pub manifest: Manifest,
    /// How it was accepted; `Shortcut` means no signature was checked because its root
    /// hash was already trusted.
    pub proof: Proof,
}

#[derive(Debug, Clone)]
pub enum Proof {
    /// `C` equals [`TrustContext::base_root_hash`].
    Shortcut,
    /// Full verification.
    Signed {
        /// The inflated certificate PEM, for the caller to cache under `X`.
        certificate_pem: Vec<u8>,
        certificate: Box<Certificate>,
        whitelist: Whitelist,
    },
}

/// Why a manifest was refused. Each message says what an administrator can do next.
#[derive(Debug, Error)]
pub enum TrustError {
    #[error("manifest (.cvmfspublished) is incomplete or malformed: {0}; the server serves a damaged or non-CernVM-FS file")]
    Incomplete(#[from] ManifestError),
    #[error(
        "manifest is for repository '{found}', not '{expected}': check the server URL and repository name"
    )]
    NameMismatch { expected: String, found: String },
    #[error("manifest root path hash is {found}, not {ROOT_PATH_MD5} (MD5 of the root): the manifest is not a repository root")]
    RootMismatch { found: String },
    #[error(
        "manifest timestamp {timestamp} is older than the newest one seen ({minimum}): a stale mirror or a replay; \
         try another server, or wait for the mirror to catch up"
    )]
    Outdated { timestamp: u64, minimum: u64 },
    #[error("manifest names no certificate (no X line): it cannot be verified")]
    MissingCertificate,
    #[error("cannot load the {what}: {source}; check the server URL and the network or proxy")]
    Load { what: String, source: SourceError },
    #[error("certificate object {id} is corrupt ({source}): the server or a proxy serves damaged data")]
    CertificateObject { id: ObjectId, source: VerifyError },
    #[error("certificate {id} is unusable: {source}")]
    BadCertificate { id: ObjectId, source: CertificateError },
    #[error("manifest signature is invalid ({reason}): the manifest was altered or signed by another key")]
    BadSignature { reason: String },
    #[error("{0}")]
    Whitelist(#[from] WhitelistError),
    #[error(
        "certificate {subject} (fingerprint {fingerprint}) is blacklisted: the publisher key was revoked; \
         do not use this repository until its maintainer re-keys it"
    )]
    Blacklisted { subject: String, fingerprint: String },
    #[error(
        "certificate {subject} (fingerprint {fingerprint}) is not listed in the whitelist: the repository was \
         signed with a certificate the master key does not vouch for; the maintainer must re-sign the whitelist"
    )]
    NotListed { subject: String, fingerprint: String },
    #[error("revision {revision} of {fqrn} is blacklisted (revisions below {floor} are refused); wait for a newer publication")]
    RevisionBlacklisted { fqrn: String, revision: u64, floor: u64 },
}

impl TrustError {
    /// True for failures another server might not have (upstream's retry rule: anything
    /// but a load failure or an unacceptable certificate is retried on the next host).
    pub fn retry_on_other_host(&self) -> bool {
        !matches!(
            self,
            TrustError::Load { .. }
                | TrustError::Blacklisted { .. }
                | TrustError::NotListed { .. }
                | TrustError::RevisionBlacklisted { .. }
        )
    }
}

/// Runs the acceptance checks on the raw bytes of `.cvmfspublished`.
pub fn verify_manifest(
    raw: &[u8],
    ctx: &TrustContext<'_>,
    source: &dyn TrustSource,
) -> Result<VerifiedManifest, TrustError> {
    let manifest = Manifest::parse(raw)?;
    check_sanity(&manifest, ctx)?;
    if ctx.base_root_hash == Some(manifest.catalog_hash) {
        return Ok(VerifiedManifest { manifest, proof: Proof::Shortcut });
    }
    let (certificate_pem, certificate) = load_certificate(&manifest, source)?;
    check_manifest_signature(raw, &certificate)?;
    let whitelist_raw =
        source.fetch_whitelist().map_err(|source| TrustError::Load { what: "whitelist".into(), source })?;
    let whitelist = Whitelist::verify(&whitelist_raw, ctx.fqrn, ctx.now, ctx.keys)?;
    check_certificate_acceptance(&certificate, &whitelist, ctx.blacklist)?;
    let proof = Proof::Signed { certificate_pem, certificate: Box::new(certificate), whitelist };
    Ok(VerifiedManifest { manifest, proof })
}

/// Steps 2-4: name, root path, rollback floor.
fn check_sanity(manifest: &Manifest, ctx: &TrustContext<'_>) -> Result<(), TrustError> {
    if manifest.repository_name != ctx.fqrn {
        return Err(TrustError::NameMismatch {
            expected: ctx.fqrn.to_string(),
            found: manifest.repository_name.clone(),
        });
    }
    if !manifest.has_root_path_of_repository_root() {
        return Err(TrustError::RootMismatch { found: manifest.root_path_hash.to_string() });
    }
    if manifest.publish_timestamp < ctx.minimum_timestamp {
        return Err(TrustError::Outdated {
            timestamp: manifest.publish_timestamp,
            minimum: ctx.minimum_timestamp,
        });
    }
    Ok(())
}

/// Step 6: the certificate from the cache, or fetched, hash-checked and inflated.
fn load_certificate(
    manifest: &Manifest,
    source: &dyn TrustSource,
) -> Result<(Vec<u8>, Certificate), TrustError> {
    let id = manifest.certificate_object().ok_or(TrustError::MissingCertificate)?;
    let pem = match source.cached_certificate(&id) {
        Some(pem) => pem,
        None => {
            let stored = source
                .fetch_object(&id, manifest.has_alt_catalog_path)
                .map_err(|source| TrustError::Load { what: format!("certificate {id}"), source })?;
            read_verified_to_vec(&stored, id.hash, Compression::Zlib, MAX_CERTIFICATE_BYTES)
                .map_err(|source| TrustError::CertificateObject { id, source })?
        }
    };
    let certificate =
        Certificate::from_pem(&pem).map_err(|source| TrustError::BadCertificate { id, source })?;
    Ok((pem, certificate))
}

/// Step 7: the hash line fits the letter and the certificate signed the hash line.
fn check_manifest_signature(raw: &[u8], certificate: &Certificate) -> Result<(), TrustError> {
    let bad = |reason: String| TrustError::BadSignature { reason };
    let letter = SignedLetter::split(raw).map_err(|e| bad(e.to_string()))?;
    letter.check_hash().map_err(|e| bad(e.to_string()))?;
    if !certificate.verifies_manifest(letter.hash_line, letter.signature) {
        return Err(bad(format!("RSA/SHA-1 verification with the key of {} failed", certificate.subject())));
    }
    Ok(())
}

/// Step 9: blacklist first, then the whitelist must list the certificate.
pub fn check_certificate_acceptance(
    certificate: &Certificate,
    whitelist: &Whitelist,
    blacklist: &Blacklist,
) -> Result<(), TrustError> {
    if let Some(revoked) = blacklist.revoked_fingerprint(certificate) {
        return Err(TrustError::Blacklisted {
            subject: certificate.subject().to_string(),
            fingerprint: revoked.fingerprint(),
        });
    }
    if !whitelist.lists(certificate) {
        let algorithm =
            whitelist.fingerprints.first().map_or(crate::hash::Algorithm::Sha1, |fp| fp.algorithm());
        return Err(TrustError::NotListed {
            subject: certificate.subject().to_string(),
            fingerprint: certificate.fingerprint(algorithm).fingerprint(),
        });
    }
    Ok(())
}

/// The revision blacklist check (at mount, and on every TTL expiry): refuses `revision`
/// of `fqrn` if a `<fqrn N` line has `revision < N`.
pub fn check_revision_blacklist(blacklist: &Blacklist, fqrn: &str, revision: u64) -> Result<(), TrustError> {
    match blacklist.revision_floor(fqrn, revision) {
        Some(floor) => Err(TrustError::RevisionBlacklisted { fqrn: fqrn.to_string(), revision, floor }),
        None => Ok(()),
    }
}

/// A [`TrustSource`] over a repository storage directory (what a server serves as
/// `<url>/cvmfs/<fqrn>`), for tests and offline inspection.
#[derive(Debug, Clone)]
pub struct LocalStorage {
    root: PathBuf,
}

impl LocalStorage {
    pub fn new(root: impl Into<PathBuf>) -> LocalStorage {
        LocalStorage { root: root.into() }
    }

    pub fn root(&self) -> &Path {
        &self.root
    }

    /// The raw `.cvmfspublished`.
    pub fn read_manifest(&self) -> std::io::Result<Vec<u8>> {
        std::fs::read(self.root.join(".cvmfspublished"))
    }

    fn read(&self, relative: &str) -> Result<Vec<u8>, SourceError> {
        let path = self.root.join(relative);
        std::fs::read(&path).map_err(|e| format!("{}: {e}", path.display()).into())
    }
}

impl TrustSource for LocalStorage {
    fn fetch_object(&self, id: &ObjectId, alternative_path: bool) -> Result<Vec<u8>, SourceError> {
        if alternative_path {
            // The shortcut is an optimisation; data/ holds the same object.
            if let Ok(bytes) = self.read(&id.alt_path()) {
                return Ok(bytes);
            }
        }
        self.read(&id.data_path())
    }

    fn fetch_whitelist(&self) -> Result<Vec<u8>, SourceError> {
        self.read(".cvmfswhitelist")
    }
}
