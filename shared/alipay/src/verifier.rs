//! Which Alipay public key verifies a response or a notification.

use crate::cert::AlipayCertificates;
use crate::keys::PublicKey;

/// Alipay's verifying side of an app: one public key (公钥模式), or Alipay's public-key
/// certificates chosen by `alipay_cert_sn` (公钥证书模式).
#[derive(Clone, Debug)]
pub enum AlipayVerifier {
    PublicKey(PublicKey),
    Certificates(AlipayCertificates),
}

/// No key fits what the response names.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum KeyLookupError {
    #[error("certificate mode: the response carries no alipay_cert_sn")]
    MissingCertSn,
    #[error("certificate mode: no Alipay certificate with SN {0} is configured")]
    UnknownCertSn(String),
}

impl AlipayVerifier {
    /// The key for a response, given its `alipay_cert_sn` sibling (if any).
    pub fn response_key(&self, alipay_cert_sn: Option<&str>) -> Result<&PublicKey, KeyLookupError> {
        match self {
            AlipayVerifier::PublicKey(key) => Ok(key),
            AlipayVerifier::Certificates(certs) => {
                let sn = alipay_cert_sn.ok_or(KeyLookupError::MissingCertSn)?;
                certs
                    .key_for_sn(sn)
                    .ok_or_else(|| KeyLookupError::UnknownCertSn(sn.to_owned()))
            }
        }
    }

    /// The keys a notification may be signed with (notifications name no certificate).
    pub fn notification_keys(&self) -> Vec<&PublicKey> {
        match self {
            AlipayVerifier::PublicKey(key) => vec![key],
            AlipayVerifier::Certificates(certs) => certs.keys().collect(),
        }
    }
}
