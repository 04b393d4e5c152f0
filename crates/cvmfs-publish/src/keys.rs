//! Repository keys as upstream's `cvmfs_server mkfs` creates them
//! (`cvmfs_server_ssl.sh`):
//!
//! * `NAME.masterkey`: the master private key (RSA 2048); it signs the whitelist.
//! * `NAME.pub`: the master public key (PEM `PUBLIC KEY`); clients load it.
//! * `NAME.key`: the repository (release manager) private key (RSA 2048); it signs the
//!   manifest.
//! * `NAME.crt`: a self-signed X.509 certificate of that key, subject
//!   `CN=NAME CernVM-FS Release Managers`, valid 365 days. Clients ignore its dates; the
//!   whitelist lists its fingerprint.
//!
//! Private keys are written as PKCS#8 PEM with mode 0600. Nothing here touches a storage
//! directory: the certificate travels there as an `X` object, the keys never do.

use std::fs::{self, OpenOptions};
use std::io::Write;
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};
use std::str::FromStr;
use std::time::{Duration, UNIX_EPOCH};

use cvmfs_core::certificate::Certificate;
use der::EncodePem;
use pkcs8::{DecodePrivateKey, EncodePrivateKey, EncodePublicKey, LineEnding};
use rsa::{RsaPrivateKey, RsaPublicKey};
use sha2::Sha256;
use x509_cert::builder::{Builder, CertificateBuilder, Profile};
use x509_cert::name::Name;
use x509_cert::serial_number::SerialNumber;
use x509_cert::spki::SubjectPublicKeyInfoOwned;
use x509_cert::time::{Time, Validity};

use crate::error::{IoContext, PublishError};

/// RSA modulus size of both key pairs.
pub const KEY_BITS: usize = 2048;
/// Validity of the certificate (`openssl x509 -days 365`).
pub const CERTIFICATE_DAYS: u64 = 365;

/// The files of one repository's keys in a key directory.
#[derive(Debug, Clone)]
pub struct KeyPaths {
    pub master_private: PathBuf,
    pub master_public: PathBuf,
    pub private: PathBuf,
    pub certificate: PathBuf,
}

impl KeyPaths {
    pub fn new(dir: &Path, fqrn: &str) -> KeyPaths {
        KeyPaths {
            master_private: dir.join(format!("{fqrn}.masterkey")),
            master_public: dir.join(format!("{fqrn}.pub")),
            private: dir.join(format!("{fqrn}.key")),
            certificate: dir.join(format!("{fqrn}.crt")),
        }
    }

    fn all(&self) -> [&PathBuf; 4] {
        [&self.master_private, &self.master_public, &self.private, &self.certificate]
    }
}

/// The loaded keys a publish signs with.
#[derive(Clone)]
pub struct RepositoryKeys {
    /// Signs the whitelist.
    pub master: RsaPrivateKey,
    /// Signs the manifest.
    pub private: RsaPrivateKey,
    /// The certificate PEM, stored as the `X` object.
    pub certificate_pem: Vec<u8>,
    pub certificate: Certificate,
}

impl std::fmt::Debug for RepositoryKeys {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RepositoryKeys")
            .field("certificate", &self.certificate.subject())
            .finish_non_exhaustive()
    }
}

/// Checks a repository name: non-empty, letters, digits, `.`, `-`, `_`.
pub fn check_fqrn(fqrn: &str) -> Result<(), PublishError> {
    let valid = !fqrn.is_empty()
        && !fqrn.starts_with('.')
        && fqrn.bytes().all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'-' | b'_'));
    if valid {
        Ok(())
    } else {
        Err(PublishError::BadName(fqrn.to_string()))
    }
}

/// Creates the four key files of `fqrn` in `dir` (created if needed). `now` is the start
/// of the certificate's validity (unix seconds). Refuses to overwrite existing keys.
pub fn generate_keys(fqrn: &str, dir: &Path, now: u64) -> Result<KeyPaths, PublishError> {
    check_fqrn(fqrn)?;
    let paths = KeyPaths::new(dir, fqrn);
    if paths.all().iter().any(|p| p.exists()) {
        return Err(PublishError::KeysExist { fqrn: fqrn.to_string(), dir: dir.to_path_buf() });
    }
    fs::create_dir_all(dir).io("creating", dir)?;
    let mut rng = rand::thread_rng();
    let master =
        RsaPrivateKey::new(&mut rng, KEY_BITS).map_err(|e| PublishError::KeyGeneration(e.to_string()))?;
    let private =
        RsaPrivateKey::new(&mut rng, KEY_BITS).map_err(|e| PublishError::KeyGeneration(e.to_string()))?;
    let certificate = self_signed_certificate(fqrn, &private, now)?;
    write_private(&paths.master_private, &master)?;
    let public = RsaPublicKey::from(&master)
        .to_public_key_pem(LineEnding::LF)
        .map_err(|e| PublishError::KeyGeneration(e.to_string()))?;
    write_file(&paths.master_public, public.as_bytes(), 0o644)?;
    write_private(&paths.private, &private)?;
    write_file(&paths.certificate, certificate.as_bytes(), 0o644)?;
    tracing::info!(fqrn, dir = %dir.display(), "created master key, repository key and certificate");
    Ok(paths)
}

/// Loads the signing keys and the certificate of `fqrn` from `dir`.
pub fn load_keys(fqrn: &str, dir: &Path) -> Result<RepositoryKeys, PublishError> {
    let paths = KeyPaths::new(dir, fqrn);
    let master = read_private(&paths.master_private)?;
    let private = read_private(&paths.private)?;
    let certificate_pem = fs::read(&paths.certificate).io("reading", &paths.certificate)?;
    let certificate = Certificate::from_pem(&certificate_pem)
        .map_err(|e| PublishError::Key { path: paths.certificate.clone(), reason: e.to_string() })?;
    if certificate.public_key() != &RsaPublicKey::from(&private) {
        return Err(PublishError::Key {
            path: paths.certificate,
            reason: format!("the certificate is not the one of {}", paths.private.display()),
        });
    }
    Ok(RepositoryKeys { master, private, certificate_pem, certificate })
}

fn self_signed_certificate(fqrn: &str, key: &RsaPrivateKey, now: u64) -> Result<String, PublishError> {
    let failed = |e: &dyn std::fmt::Display| PublishError::Certificate(e.to_string());
    let subject = Name::from_str(&format!("CN={fqrn} CernVM-FS Release Managers")).map_err(|e| failed(&e))?;
    let start = UNIX_EPOCH + Duration::from_secs(now);
    let end = start + Duration::from_secs(CERTIFICATE_DAYS * 86_400);
    let validity = Validity {
        not_before: Time::try_from(start).map_err(|e| failed(&e))?,
        not_after: Time::try_from(end).map_err(|e| failed(&e))?,
    };
    let mut serial: [u8; 16] = rand::random();
    serial[0] = (serial[0] & 0x7f) | 0x01;
    let serial = SerialNumber::new(&serial).map_err(|e| failed(&e))?;
    let signer = rsa::pkcs1v15::SigningKey::<Sha256>::new(key.clone());
    let spki = SubjectPublicKeyInfoOwned::from_key(RsaPublicKey::from(key)).map_err(|e| failed(&e))?;
    let builder = CertificateBuilder::new(Profile::Root, serial, validity, subject, spki, &signer)
        .map_err(|e| failed(&e))?;
    let certificate = builder.build::<rsa::pkcs1v15::Signature>().map_err(|e| failed(&e))?;
    certificate.to_pem(LineEnding::LF).map_err(|e| failed(&e))
}

fn write_private(path: &Path, key: &RsaPrivateKey) -> Result<(), PublishError> {
    let pem = key.to_pkcs8_pem(LineEnding::LF).map_err(|e| PublishError::KeyGeneration(e.to_string()))?;
    write_file(path, pem.as_bytes(), 0o600)
}

fn read_private(path: &Path) -> Result<RsaPrivateKey, PublishError> {
    let text = fs::read_to_string(path).io("reading", path)?;
    let parsed = if text.contains("BEGIN RSA PRIVATE KEY") {
        use rsa::pkcs1::DecodeRsaPrivateKey;
        RsaPrivateKey::from_pkcs1_pem(&text).map_err(|e| e.to_string())
    } else {
        RsaPrivateKey::from_pkcs8_pem(&text).map_err(|e| e.to_string())
    };
    parsed.map_err(|reason| PublishError::Key { path: path.to_path_buf(), reason })
}

fn write_file(path: &Path, bytes: &[u8], mode: u32) -> Result<(), PublishError> {
    let mut file =
        OpenOptions::new().write(true).create_new(true).mode(mode).open(path).io("creating", path)?;
    file.write_all(bytes).io("writing", path)
}

#[cfg(test)]
mod tests {
    use super::*;
    use cvmfs_core::signature::{parse_public_key_pem, sign_manifest_hash_line};
    use std::os::unix::fs::PermissionsExt;

    #[test]
    fn generated_keys_load_and_sign() {
        let dir = tempfile::tempdir().unwrap();
        let paths = generate_keys("keys.test", dir.path(), 1_700_000_000).unwrap();
        let keys = load_keys("keys.test", dir.path()).unwrap();
        assert!(
            keys.certificate.subject().contains("keys.test CernVM-FS Release Managers"),
            "{}",
            keys.certificate.subject()
        );
        let signature = sign_manifest_hash_line(&keys.private, b"abc").unwrap();
        assert!(keys.certificate.verifies_manifest(b"abc", &signature));
        let public = parse_public_key_pem(&fs::read(&paths.master_public).unwrap(), "pub").unwrap();
        assert_eq!(public, RsaPublicKey::from(&keys.master));
        assert_ne!(public, RsaPublicKey::from(&keys.private), "master and repository keys differ");
        for private in [&paths.master_private, &paths.private] {
            assert_eq!(fs::metadata(private).unwrap().permissions().mode() & 0o777, 0o600);
        }
        assert!(matches!(generate_keys("keys.test", dir.path(), 0), Err(PublishError::KeysExist { .. })));
        assert!(check_fqrn("a/b").is_err() && check_fqrn("").is_err() && check_fqrn("a.b-c_d").is_ok());
    }
}
