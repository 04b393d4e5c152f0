//! The publisher certificate (the inflated content of the manifest's `X` object).
//!
//! What it does: reads the PEM X.509 certificate, exposes its RSA public key (which
//! verifies manifest signatures) and its fingerprint, Hash_alg(DER), as whitelists and
//! blacklists list it.
//!
//! What it is not for: no chain, validity-date or subject checks. Upstream certificates
//! are self-signed and upstream ignores all of that; trust comes from the whitelist.
//! Only RSA keys are supported (what `cvmfs_server` generates).

use der::{Decode, Encode};
use rsa::pkcs8::DecodePublicKey;
use rsa::RsaPublicKey;
use thiserror::Error;

use crate::hash::{Algorithm, ContentHash};
use crate::signature::verify_manifest_signature;

/// PEM labels upstream's `PEM_read_bio_X509_AUX` accepts for a plain certificate.
const CERTIFICATE_LABELS: [&str; 2] = ["CERTIFICATE", "X509 CERTIFICATE"];

/// Why the certificate cannot be used.
#[derive(Debug, Error, PartialEq, Eq)]
pub enum CertificateError {
    #[error("no PEM certificate block (-----BEGIN CERTIFICATE-----) found")]
    NoPem,
    #[error("the PEM certificate block is damaged: {0}")]
    Pem(String),
    #[error("the certificate is not valid X.509 DER: {0}")]
    Der(String),
    #[error("the certificate key is not an RSA public key: {0}")]
    NotRsa(String),
}

/// A parsed publisher certificate.
#[derive(Debug, Clone)]
pub struct Certificate {
    der: Vec<u8>,
    public_key: RsaPublicKey,
    subject: String,
}

impl Certificate {
    /// Reads the first PEM certificate block in `pem` (text around it is ignored, as
    /// OpenSSL's PEM reader ignores it).
    pub fn from_pem(pem: &[u8]) -> Result<Certificate, CertificateError> {
        let der = first_certificate_block(pem)?;
        Certificate::from_der(der)
    }

    /// Reads a DER-encoded certificate.
    pub fn from_der(der: Vec<u8>) -> Result<Certificate, CertificateError> {
        let parsed =
            x509_cert::Certificate::from_der(&der).map_err(|e| CertificateError::Der(e.to_string()))?;
        let spki = parsed
            .tbs_certificate
            .subject_public_key_info
            .to_der()
            .map_err(|e| CertificateError::Der(e.to_string()))?;
        let public_key =
            RsaPublicKey::from_public_key_der(&spki).map_err(|e| CertificateError::NotRsa(e.to_string()))?;
        let subject = parsed.tbs_certificate.subject.to_string();
        Ok(Certificate { der, public_key, subject })
    }

    /// The DER bytes, exactly as they were encoded in the PEM (what `i2d_X509` returns for
    /// a certificate OpenSSL read).
    pub fn der(&self) -> &[u8] {
        &self.der
    }

    pub fn public_key(&self) -> &RsaPublicKey {
        &self.public_key
    }

    /// The subject in RFC 4514 form, e.g. `CN=fixture.test.local`, for messages.
    pub fn subject(&self) -> &str {
        &self.subject
    }

    /// Hash_alg(DER): the value whitelist and blacklist fingerprints name.
    pub fn fingerprint(&self, algorithm: Algorithm) -> ContentHash {
        ContentHash::of(algorithm, &self.der)
    }

    /// True if `signature` is this certificate's manifest signature over `hash_line`.
    pub fn verifies_manifest(&self, hash_line: &[u8], signature: &[u8]) -> bool {
        verify_manifest_signature(&self.public_key, hash_line, signature)
    }
}

/// Finds and decodes the first PEM block with a certificate label.
fn first_certificate_block(pem: &[u8]) -> Result<Vec<u8>, CertificateError> {
    let mut rest = pem;
    while let Some(start) = crate::letter::find(rest, b"-----BEGIN ") {
        let block = rest.get(start..).unwrap_or_default();
        let end = block_end(block).ok_or(CertificateError::Pem("no END line".into()))?;
        let (candidate, after) = block.split_at(end);
        let (label, der) =
            der::pem::decode_vec(candidate).map_err(|e| CertificateError::Pem(e.to_string()))?;
        if CERTIFICATE_LABELS.contains(&label) {
            return Ok(der);
        }
        rest = after;
    }
    Err(CertificateError::NoPem)
}

/// Length of a PEM block starting at `-----BEGIN `, through its `-----END …-----` line.
fn block_end(block: &[u8]) -> Option<usize> {
    let end_marker = crate::letter::find(block, b"-----END ")?;
    let after_marker = block.get(end_marker + "-----END ".len()..)?;
    let closing = crate::letter::find(after_marker, b"-----")?;
    Some(end_marker + "-----END ".len() + closing + "-----".len())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn refuses_non_certificates() {
        assert_eq!(Certificate::from_pem(b"").unwrap_err(), CertificateError::NoPem);
        assert!(matches!(
            Certificate::from_pem(b"-----BEGIN CERTIFICATE-----\nAAAA\n"),
            Err(CertificateError::Pem(_))
        ));
        assert!(matches!(
            Certificate::from_pem(b"-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----\n"),
            Err(CertificateError::Der(_))
        ));
        let key_only = b"-----BEGIN PUBLIC KEY-----\nAAAA\n-----END PUBLIC KEY-----\n";
        assert_eq!(Certificate::from_pem(key_only).unwrap_err(), CertificateError::NoPem);
    }
}
