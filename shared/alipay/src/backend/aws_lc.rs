use super::{Rsa2Signer, Rsa2Verifier, SignFailed};
use crate::keys::{KeyError, PrivateKeyDer};
use aws_lc_rs::encoding::AsDer;
use aws_lc_rs::rand::SystemRandom;
use aws_lc_rs::signature::{
    KeyPair, ParsedPublicKey, RSA_PKCS1_2048_8192_SHA256, RSA_PKCS1_SHA256, RsaKeyPair,
};

pub(super) struct Signer(RsaKeyPair);

impl Signer {
    pub(super) fn load(der: &PrivateKeyDer) -> Result<Self, KeyError> {
        let pair = match der {
            PrivateKeyDer::Pkcs8(bytes) => RsaKeyPair::from_pkcs8(bytes),
            PrivateKeyDer::Pkcs1(bytes) => RsaKeyPair::from_der(bytes),
        };
        pair.map(Signer).map_err(|_| KeyError::NotAnRsaPrivateKey)
    }
}

impl Rsa2Signer for Signer {
    fn sign(&self, message: &[u8]) -> Result<Vec<u8>, SignFailed> {
        let mut signature = vec![0; self.0.public_modulus_len()];
        self.0
            .sign(
                &RSA_PKCS1_SHA256,
                &SystemRandom::new(),
                message,
                &mut signature,
            )
            .map_err(|_| SignFailed)?;
        Ok(signature)
    }

    fn public_key_spki_der(&self) -> Result<Vec<u8>, SignFailed> {
        let der = self.0.public_key().as_der().map_err(|_| SignFailed)?;
        Ok(der.as_ref().to_vec())
    }
}

pub(super) struct Verifier(ParsedPublicKey);

impl Verifier {
    pub(super) fn load(spki_der: &[u8]) -> Result<Self, KeyError> {
        ParsedPublicKey::new(&RSA_PKCS1_2048_8192_SHA256, spki_der)
            .map(Verifier)
            .map_err(|_| KeyError::NotAnRsaPublicKey)
    }
}

impl Rsa2Verifier for Verifier {
    fn verify(&self, message: &[u8], signature: &[u8]) -> bool {
        self.0.verify_sig(message, signature).is_ok()
    }
}
