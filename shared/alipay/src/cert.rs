//! Public-key-certificate mode. (Being written: this placeholder only lets the crate build.)
use crate::keys::PublicKey;
#[derive(Clone, Debug, Default)]
pub struct AlipayCertificates(Vec<(String, PublicKey)>);
impl AlipayCertificates {
    pub fn key_for_sn(&self, sn: &str) -> Option<&PublicKey> {
        self.0.iter().find(|(s, _)| s == sn).map(|(_, k)| k)
    }
    pub fn keys(&self) -> impl Iterator<Item = &PublicKey> {
        self.0.iter().map(|(_, k)| k)
    }
}
