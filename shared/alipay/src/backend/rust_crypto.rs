use super::{Rsa2Signer, Rsa2Verifier, SignFailed};
use crate::keys::{KeyError, PrivateKeyDer};
use rsa::pkcs1::DecodeRsaPrivateKey;
use rsa::pkcs1v15::{Signature, SigningKey, VerifyingKey};
use rsa::pkcs8::{DecodePrivateKey, DecodePublicKey, EncodePublicKey};
use rsa::sha2::Sha256;
use rsa::signature::{SignatureEncoding, Signer as _, Verifier as _};
use rsa::{PrivateKey, PublicKey};

pub(super) struct Signer(SigningKey<Sha256>);

impl Signer {
    pub(super) fn load(der: &PrivateKeyDer) -> Result<Self, KeyError> {
        let key = match der {
            PrivateKeyDer::Pkcs8(bytes) => PrivateKey::from_pkcs8_der(bytes).ok(),
            PrivateKeyDer::Pkcs1(bytes) => PrivateKey::from_pkcs1_der(bytes).ok(),
        };
        key.map(|k| Signer(SigningKey::new(k)))
            .ok_or(KeyError::NotAnRsaPrivateKey)
    }
}

impl Rsa2Signer for Signer {
    fn sign(&self, message: &[u8]) -> Result<Vec<u8>, SignFailed> {
        let signature = self.0.try_sign(message).map_err(|_| SignFailed)?;
        Ok(signature.to_vec())
    }

    fn public_key_spki_der(&self) -> Result<Vec<u8>, SignFailed> {
        let public = PublicKey::from(self.0.as_ref());
        let der = public.to_public_key_der().map_err(|_| SignFailed)?;
        Ok(der.as_bytes().to_vec())
    }
}

pub(super) struct Verifier(VerifyingKey<Sha256>);

impl Verifier {
    pub(super) fn load(spki_der: &[u8]) -> Result<Self, KeyError> {
        PublicKey::from_public_key_der(spki_der)
            .map(|k| Verifier(VerifyingKey::new(k)))
            .map_err(|_| KeyError::NotAnRsaPublicKey)
    }
}

impl Rsa2Verifier for Verifier {
    fn verify(&self, message: &[u8], signature: &[u8]) -> bool {
        Signature::try_from(signature).is_ok_and(|sig| self.0.verify(message, &sig).is_ok())
    }
}
