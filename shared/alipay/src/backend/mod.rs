//! RSA implementations behind one small pair of traits. AWS-LC is the default (constant time,
//! fastest measured, and already linked by the AWS SDK's TLS stack); the pure-Rust RustCrypto
//! backend exists for targets without a C toolchain. PKCS#1 v1.5 signatures are deterministic,
//! so both backends must produce byte-identical output for the same key and message.

#[cfg(feature = "aws-lc")]
mod aws_lc;
#[cfg(feature = "rustcrypto")]
mod rust_crypto;

#[cfg(not(any(feature = "aws-lc", feature = "rustcrypto")))]
compile_error!("enable at least one RSA backend feature: `aws-lc` (default) or `rustcrypto`");

use crate::keys::{KeyError, PrivateKeyDer};

/// Signs with RSASSA-PKCS1-v1_5 / SHA-256 (Alipay's `RSA2`).
pub(crate) trait Rsa2Signer: Send + Sync {
    fn sign(&self, message: &[u8]) -> Result<Vec<u8>, SignFailed>;
    /// The matching public key as X.509 SubjectPublicKeyInfo DER.
    fn public_key_spki_der(&self) -> Result<Vec<u8>, SignFailed>;
}

/// Verifies RSASSA-PKCS1-v1_5 / SHA-256 signatures.
pub(crate) trait Rsa2Verifier: Send + Sync {
    fn verify(&self, message: &[u8], signature: &[u8]) -> bool;
}

/// The backend failed to produce a signature (a broken key, never bad input).
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("the RSA backend could not sign")]
pub struct SignFailed;

/// Which RSA implementation a key uses.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Backend {
    #[cfg(feature = "aws-lc")]
    AwsLc,
    #[cfg(feature = "rustcrypto")]
    RustCrypto,
}

impl Default for Backend {
    fn default() -> Self {
        #[cfg(feature = "aws-lc")]
        return Backend::AwsLc;
        #[cfg(not(feature = "aws-lc"))]
        return Backend::RustCrypto;
    }
}

impl Backend {
    /// Every backend compiled into this build.
    pub const ALL: &'static [Backend] = &[
        #[cfg(feature = "aws-lc")]
        Backend::AwsLc,
        #[cfg(feature = "rustcrypto")]
        Backend::RustCrypto,
    ];

    pub fn name(self) -> &'static str {
        match self {
            #[cfg(feature = "aws-lc")]
            Backend::AwsLc => "aws-lc-rs",
            #[cfg(feature = "rustcrypto")]
            Backend::RustCrypto => "rsa (RustCrypto)",
        }
    }

    pub(crate) fn signer(self, der: &PrivateKeyDer) -> Result<Box<dyn Rsa2Signer>, KeyError> {
        match self {
            #[cfg(feature = "aws-lc")]
            Backend::AwsLc => Ok(Box::new(aws_lc::Signer::load(der)?)),
            #[cfg(feature = "rustcrypto")]
            Backend::RustCrypto => Ok(Box::new(rust_crypto::Signer::load(der)?)),
        }
    }

    pub(crate) fn verifier(self, spki_der: &[u8]) -> Result<Box<dyn Rsa2Verifier>, KeyError> {
        match self {
            #[cfg(feature = "aws-lc")]
            Backend::AwsLc => Ok(Box::new(aws_lc::Verifier::load(spki_der)?)),
            #[cfg(feature = "rustcrypto")]
            Backend::RustCrypto => Ok(Box::new(rust_crypto::Verifier::load(spki_der)?)),
        }
    }
}
