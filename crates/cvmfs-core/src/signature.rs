//! RSA keys and the two signature schemes of CernVM-FS.
//!
//! What it does: loads repository master public keys (a [`KeyRing`], as
//! `CVMFS_PUBLIC_KEY` / `CVMFS_KEYS_DIR` name them), verifies and creates
//! * manifest signatures: RSA PKCS#1 v1.5 with a SHA-1 DigestInfo over the ASCII hash
//!   line (OpenSSL `EVP_SignInit(EVP_sha1())`), made with the publisher certificate key;
//! * whitelist signatures: raw PKCS#1 v1.5 type-1 over the ASCII hash line, no
//!   DigestInfo, no further hashing (`RSA_private_encrypt`), made with a master key.
//!
//! What it is not for: it splits no letter (see [`crate::letter`]), reads no
//! certificate (see [`crate::certificate`]) and decides no trust (see [`crate::trust`]).
//! Only RSA keys are supported, as upstream requires for master keys.

use std::fmt;
use std::path::{Path, PathBuf};

use rsa::pkcs1::DecodeRsaPublicKey;
use rsa::pkcs8::DecodePublicKey;
use rsa::{Pkcs1v15Sign, RsaPrivateKey, RsaPublicKey};
use sha1::{Digest, Sha1};
use thiserror::Error;

/// Why a master public key could not be loaded.
#[derive(Debug, Error)]
pub enum KeyError {
    #[error("cannot read public key file {path}: {source}; check CVMFS_PUBLIC_KEY / CVMFS_KEYS_DIR")]
    Io { path: PathBuf, source: std::io::Error },
    #[error("public key {origin} is not a PEM RSA public key (PUBLIC KEY or RSA PUBLIC KEY): {reason}")]
    Parse { origin: String, reason: String },
    #[error("cannot list key directory {path}: {source}; check CVMFS_KEYS_DIR")]
    Dir { path: PathBuf, source: std::io::Error },
}

/// Parses a PEM public key: SubjectPublicKeyInfo (`PUBLIC KEY`, what upstream's
/// `PEM_read_PUBKEY` reads) or PKCS#1 (`RSA PUBLIC KEY`). `origin` names it in errors.
pub fn parse_public_key_pem(pem: &[u8], origin: &str) -> Result<RsaPublicKey, KeyError> {
    let parse_error = |reason: String| KeyError::Parse { origin: origin.to_string(), reason };
    let text = std::str::from_utf8(pem).map_err(|_| parse_error("not text".into()))?;
    let text = text.trim_start_matches('\u{feff}').trim();
    if text.contains("-----BEGIN RSA PUBLIC KEY-----") {
        RsaPublicKey::from_pkcs1_pem(text).map_err(|e| parse_error(e.to_string()))
    } else {
        RsaPublicKey::from_public_key_pem(text).map_err(|e| parse_error(e.to_string()))
    }
}

/// One loaded master key and where it came from.
#[derive(Clone)]
pub struct MasterKey {
    pub origin: String,
    pub key: RsaPublicKey,
}

impl fmt::Debug for MasterKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "MasterKey({}, {} bits)", self.origin, rsa::traits::PublicKeyParts::size(&self.key) * 8)
    }
}

/// The repository master public keys that may sign a whitelist.
#[derive(Debug, Clone, Default)]
pub struct KeyRing {
    keys: Vec<MasterKey>,
}

impl KeyRing {
    pub fn new() -> KeyRing {
        KeyRing::default()
    }

    /// Loads a `:`-separated list of PEM files (the `CVMFS_PUBLIC_KEY` form). Empty
    /// entries (e.g. a trailing `:`) are skipped; any file that fails to load is an error
    /// naming it, as upstream aborts the mount then.
    pub fn from_path_list(list: &str) -> Result<KeyRing, KeyError> {
        let mut ring = KeyRing::new();
        for path in list.split(':').filter(|p| !p.is_empty()) {
            ring.load_file(Path::new(path))?;
        }
        Ok(ring)
    }

    /// Loads every `*.pub` file directly in `dir` (not recursive), in sorted order (the
    /// `CVMFS_KEYS_DIR` form).
    pub fn from_dir(dir: &Path) -> Result<KeyRing, KeyError> {
        let dir_error = |source| KeyError::Dir { path: dir.to_path_buf(), source };
        let mut paths = Vec::new();
        for entry in std::fs::read_dir(dir).map_err(dir_error)? {
            let path = entry.map_err(dir_error)?.path();
            if path.extension().is_some_and(|e| e == "pub") && path.is_file() {
                paths.push(path);
            }
        }
        paths.sort();
        let mut ring = KeyRing::new();
        for path in paths {
            ring.load_file(&path)?;
        }
        Ok(ring)
    }

    /// Loads one PEM file and adds it.
    pub fn load_file(&mut self, path: &Path) -> Result<(), KeyError> {
        let pem = std::fs::read(path).map_err(|source| KeyError::Io { path: path.to_path_buf(), source })?;
        let origin = path.display().to_string();
        let key = parse_public_key_pem(&pem, &origin)?;
        self.keys.push(MasterKey { origin, key });
        Ok(())
    }

    /// Adds a key held in memory.
    pub fn add(&mut self, origin: &str, key: RsaPublicKey) {
        self.keys.push(MasterKey { origin: origin.to_string(), key });
    }

    pub fn keys(&self) -> &[MasterKey] {
        &self.keys
    }

    pub fn is_empty(&self) -> bool {
        self.keys.is_empty()
    }

    pub fn len(&self) -> usize {
        self.keys.len()
    }

    /// Verifies a whitelist signature: true if any key whose modulus can hold the hash
    /// line (upstream `VerifyRsa` skips the others) recovers exactly `hash_line`.
    pub fn verify_whitelist_signature(&self, hash_line: &[u8], signature: &[u8]) -> Option<&MasterKey> {
        self.keys.iter().find(|master| {
            let modulus_bytes = rsa::traits::PublicKeyParts::size(&master.key);
            hash_line.len() <= modulus_bytes && verify_raw_pkcs1(&master.key, hash_line, signature)
        })
    }
}

fn verify_raw_pkcs1(key: &RsaPublicKey, message: &[u8], signature: &[u8]) -> bool {
    key.verify(Pkcs1v15Sign::new_unprefixed(), message, signature).is_ok()
}

/// Verifies a manifest signature: PKCS#1 v1.5 with SHA-1 DigestInfo over `hash_line`.
pub fn verify_manifest_signature(key: &RsaPublicKey, hash_line: &[u8], signature: &[u8]) -> bool {
    let digest = Sha1::digest(hash_line);
    key.verify(Pkcs1v15Sign::new::<Sha1>(), &digest, signature).is_ok()
}

/// Signs a manifest hash line with the publisher (certificate) private key.
pub fn sign_manifest_hash_line(key: &RsaPrivateKey, hash_line: &[u8]) -> Result<Vec<u8>, rsa::Error> {
    let digest = Sha1::digest(hash_line);
    key.sign(Pkcs1v15Sign::new::<Sha1>(), &digest)
}

/// Signs a whitelist hash line with a master private key (raw PKCS#1 type 1).
pub fn sign_whitelist_hash_line(key: &RsaPrivateKey, hash_line: &[u8]) -> Result<Vec<u8>, rsa::Error> {
    key.sign(Pkcs1v15Sign::new_unprefixed(), hash_line)
}

#[cfg(test)]
mod tests {
    use super::*;

    const KEY_PEM: &str = "-----BEGIN PUBLIC KEY-----
MIIBIjANBgkqhkiG9w0BAQEFAAOCAQ8AMIIBCgKCAQEArXYvxempEiLsij3VFTsr
f2/RVNXybIAmtSkOm5EtafgCrCdjCbcP+qnjciMqAN+Sb/7K4fgKRlJ0a1ha4re1
rUonGcC3GAbOdKklQK+bxeXcR1mtD0to0276Qp9BUDv1f+Kr3q5ul4ymZTecd0Ti
c+FULJbYLT1RvlGcCIfcSwQSvof3kEYgwyMrtGZhUsDSHZB/8KSH/RNimrgrbOmF
K3J/CpRleW9pJs49apCgZhCkobe5341K0+lvpuGBaqW/1W6z2RkoGnZZMnJFXb2K
qh+uI8b9ifOJ4QWVIaWER41ylLo+4a5xnihrLX3ohVHcrkYrUN2fps5uYbVFhkqR
OwIDAQAB
-----END PUBLIC KEY-----
";

    #[test]
    fn parses_spki_and_pkcs1_forms() {
        use rsa::pkcs1::EncodeRsaPublicKey;
        let key = parse_public_key_pem(KEY_PEM.as_bytes(), "test").unwrap();
        assert_eq!(rsa::traits::PublicKeyParts::size(&key), 256);
        let pkcs1 = key.to_pkcs1_pem(rsa::pkcs1::LineEnding::LF).unwrap();
        assert_eq!(parse_public_key_pem(pkcs1.as_bytes(), "test").unwrap(), key);
        let err =
            parse_public_key_pem(b"-----BEGIN PUBLIC KEY-----\nAAAA\n-----END PUBLIC KEY-----\n", "bad.pub")
                .unwrap_err();
        assert!(err.to_string().contains("bad.pub"), "{err}");
        assert!(parse_public_key_pem(&[0xff, 0xfe], "x").is_err());
    }

    #[test]
    fn key_list_and_dir_loading() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("b.pub"), KEY_PEM).unwrap();
        std::fs::write(dir.path().join("a.pub"), KEY_PEM).unwrap();
        std::fs::write(dir.path().join("ignored.pem"), "garbage").unwrap();
        std::fs::create_dir(dir.path().join("sub.pub")).unwrap();
        let ring = KeyRing::from_dir(dir.path()).unwrap();
        assert_eq!(ring.len(), 2);
        assert!(ring.keys()[0].origin.ends_with("a.pub"));
        let list = format!("{}:{}:", dir.path().join("a.pub").display(), dir.path().join("b.pub").display());
        assert_eq!(KeyRing::from_path_list(&list).unwrap().len(), 2);
        assert!(KeyRing::from_path_list("").unwrap().is_empty());
        let missing = dir.path().join("missing.pub");
        let err = KeyRing::from_path_list(&missing.display().to_string()).unwrap_err();
        assert!(matches!(&err, KeyError::Io { path, .. } if *path == missing), "{err}");
        std::fs::write(dir.path().join("c.pub"), "not a key").unwrap();
        let err = KeyRing::from_dir(dir.path()).unwrap_err();
        assert!(err.to_string().contains("c.pub"), "{err}");
    }
}
