//! RSA keys as merchants receive them: the app private key as PKCS#8 or PKCS#1, either PEM or
//! Alipay's bare one-line Base64 (no armour, no line breaks), and Alipay's public key as X.509
//! SubjectPublicKeyInfo (PEM or bare). Private key material never reaches `Debug`, `Display`
//! or an error message.

use crate::backend::{Backend, Rsa2Signer, Rsa2Verifier, SignFailed};
use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use secrecy::zeroize::Zeroizing;
use std::fmt;
use std::sync::Arc;

/// Why a key could not be loaded. Never carries key material.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum KeyError {
    #[error("the key is neither PEM nor Base64 DER")]
    NotPemOrBase64,
    #[error("PEM label {0:?} is not supported here (expected {1})")]
    UnexpectedPemLabel(String, &'static str),
    #[error("the data is not an RSA private key in PKCS#8 or PKCS#1 DER")]
    NotAnRsaPrivateKey,
    #[error("the data is not an RSA public key in X.509 SubjectPublicKeyInfo DER")]
    NotAnRsaPublicKey,
    #[error("the RSA backend failed to derive or generate a key")]
    Backend,
}

/// A signature did not verify, or could not be decoded.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum VerifyError {
    #[error("the signature is not standard Base64")]
    SignatureNotBase64,
    #[error("the signature does not match the signed content")]
    Mismatch,
}

/// DER of a private key in one of the two encodings Alipay's key tool produces.
pub(crate) enum PrivateKeyDer {
    Pkcs8(Zeroizing<Vec<u8>>),
    Pkcs1(Zeroizing<Vec<u8>>),
}

/// An RSA private key that signs with `RSA2` (SHA256withRSA): the merchant's app private key,
/// or, in the sandbox, Alipay's own.
#[derive(Clone)]
pub struct PrivateKey {
    signer: Arc<dyn Rsa2Signer>,
    backend: Backend,
}

impl PrivateKey {
    /// Loads a PKCS#8 or PKCS#1 key, PEM or bare Base64, with the default backend.
    pub fn parse(text: &str) -> Result<Self, KeyError> {
        Self::parse_with(text, Backend::default())
    }

    pub fn parse_with(text: &str, backend: Backend) -> Result<Self, KeyError> {
        let candidates = match decode_text(text)? {
            Decoded::Pem { label, der } => match label.as_str() {
                "PRIVATE KEY" => vec![PrivateKeyDer::Pkcs8(der)],
                "RSA PRIVATE KEY" => vec![PrivateKeyDer::Pkcs1(der)],
                _ => {
                    return Err(KeyError::UnexpectedPemLabel(
                        label,
                        "PRIVATE KEY or RSA PRIVATE KEY",
                    ));
                }
            },
            // Bare Base64 says nothing about its encoding: try PKCS#8, then PKCS#1.
            Decoded::Bare(der) => {
                vec![PrivateKeyDer::Pkcs8(der.clone()), PrivateKeyDer::Pkcs1(der)]
            }
        };
        let signer = candidates
            .iter()
            .find_map(|der| backend.signer(der).ok())
            .ok_or(KeyError::NotAnRsaPrivateKey)?;
        Ok(PrivateKey {
            signer: Arc::from(signer),
            backend,
        })
    }

    /// Generates a fresh 2048-bit key and returns it with its PKCS#8 PEM text (for the
    /// sandbox's key files and for tests).
    #[cfg(feature = "aws-lc")]
    pub fn generate() -> Result<(Self, Zeroizing<String>), KeyError> {
        use aws_lc_rs::encoding::AsDer;
        use aws_lc_rs::rsa::{KeyPair, KeySize};
        let pair = KeyPair::generate(KeySize::Rsa2048).map_err(|_| KeyError::Backend)?;
        let der = pair.as_der().map_err(|_| KeyError::Backend)?;
        let pem = Zeroizing::new(pem::encode(&pem::Pem::new("PRIVATE KEY", der.as_ref())));
        Ok((Self::parse(&pem)?, pem))
    }

    pub fn backend(&self) -> Backend {
        self.backend
    }

    /// RSASSA-PKCS1-v1_5 / SHA-256 over `content`, standard Base64 (344 characters for 2048 bits).
    pub fn sign_base64(&self, content: &[u8]) -> Result<String, SignFailed> {
        Ok(STANDARD.encode(self.signer.sign(content)?))
    }

    /// The matching public key (e.g. to register an app public key with the sandbox).
    pub fn public_key(&self) -> Result<PublicKey, KeyError> {
        let spki = self
            .signer
            .public_key_spki_der()
            .map_err(|_| KeyError::Backend)?;
        PublicKey::from_spki_der_with(&spki, self.backend)
    }
}

impl fmt::Debug for PrivateKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("PrivateKey")
            .field("backend", &self.backend.name())
            .field("material", &"<redacted>")
            .finish()
    }
}

impl fmt::Display for PrivateKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("<redacted RSA private key>")
    }
}

/// An RSA public key that verifies `RSA2` signatures: Alipay's public key when verifying
/// responses and notifications, or an app public key in the sandbox.
#[derive(Clone)]
pub struct PublicKey {
    verifier: Arc<dyn Rsa2Verifier>,
    spki_der: Arc<[u8]>,
    backend: Backend,
}

impl PublicKey {
    /// Loads an SPKI public key, PEM (`PUBLIC KEY`) or bare Base64, with the default backend.
    pub fn parse(text: &str) -> Result<Self, KeyError> {
        Self::parse_with(text, Backend::default())
    }

    pub fn parse_with(text: &str, backend: Backend) -> Result<Self, KeyError> {
        let der = match decode_text(text)? {
            Decoded::Pem { label, der } if label == "PUBLIC KEY" => der,
            Decoded::Pem { label, .. } => {
                return Err(KeyError::UnexpectedPemLabel(label, "PUBLIC KEY"));
            }
            Decoded::Bare(der) => der,
        };
        Self::from_spki_der_with(&der, backend)
    }

    pub fn from_spki_der(spki_der: &[u8]) -> Result<Self, KeyError> {
        Self::from_spki_der_with(spki_der, Backend::default())
    }

    pub fn from_spki_der_with(spki_der: &[u8], backend: Backend) -> Result<Self, KeyError> {
        let verifier = backend.verifier(spki_der)?;
        Ok(PublicKey {
            verifier: Arc::from(verifier),
            spki_der: Arc::from(spki_der),
            backend,
        })
    }

    pub fn spki_der(&self) -> &[u8] {
        &self.spki_der
    }

    /// Alipay's bare one-line form: Base64 of the SPKI DER.
    pub fn to_base64(&self) -> String {
        STANDARD.encode(&self.spki_der)
    }

    pub fn to_pem(&self) -> String {
        pem::encode(&pem::Pem::new("PUBLIC KEY", self.spki_der.to_vec()))
    }

    pub fn backend(&self) -> Backend {
        self.backend
    }

    /// Verifies a standard-Base64 `RSA2` signature over `content`.
    pub fn verify_base64(&self, content: &[u8], signature: &str) -> Result<(), VerifyError> {
        let signature = STANDARD
            .decode(signature)
            .map_err(|_| VerifyError::SignatureNotBase64)?;
        if self.verifier.verify(content, &signature) {
            Ok(())
        } else {
            Err(VerifyError::Mismatch)
        }
    }
}

impl fmt::Debug for PublicKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("PublicKey")
            .field("backend", &self.backend.name())
            .field("spki_base64", &self.to_base64())
            .finish()
    }
}

enum Decoded {
    Pem {
        label: String,
        der: Zeroizing<Vec<u8>>,
    },
    Bare(Zeroizing<Vec<u8>>),
}

fn decode_text(text: &str) -> Result<Decoded, KeyError> {
    let text = text.trim();
    if text.starts_with("-----BEGIN") {
        let parsed = pem::parse(text).map_err(|_| KeyError::NotPemOrBase64)?;
        let label = parsed.tag().to_owned();
        return Ok(Decoded::Pem {
            label,
            der: Zeroizing::new(parsed.into_contents()),
        });
    }
    let compact: Zeroizing<String> =
        Zeroizing::new(text.chars().filter(|c| !c.is_whitespace()).collect());
    STANDARD
        .decode(compact.as_bytes())
        .map(|der| Decoded::Bare(Zeroizing::new(der)))
        .map_err(|_| KeyError::NotPemOrBase64)
}
