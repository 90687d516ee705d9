//! The trusted root certificates, read from the system store once per process and shared by
//! the AWS SDK's HTTP client and the Alipay client.
//!
//! Left to themselves, each reads the whole store at init: the SDK's client (through
//! `rustls-native-certs`) and reqwest's platform verifier (which, on Linux, does the same scan
//! again), and on Lambda's file system that scan is most of what the Alipay client adds to a
//! cold start. Here the store is read once, with the same discovery (`SSL_CERT_FILE` /
//! `SSL_CERT_DIR`, else the platform's usual places), and the certificates that rustls accepts
//! as trust anchors are handed to both clients. Verification is unchanged: certificates and
//! host names are checked by rustls's WebPKI verifier against these roots, which is what the
//! platform verifier does on Linux.

use alipay::client::RootCertificates;
use aws_config::SdkConfig;
// The SDK crates re-export the HTTP client type of the smithy runtime.
use aws_adapters::aws_sdk_secretsmanager::config::SharedHttpClient;
use aws_smithy_http_client::proxy::ProxyConfig;
use aws_smithy_http_client::tls::rustls_provider::CryptoMode;
use aws_smithy_http_client::tls::{Provider, TlsContext, TrustStore};
use aws_smithy_http_client::{Builder, Connector};
use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use std::sync::{Arc, OnceLock};

/// Why the roots could not be used.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TlsError {
    #[error("no usable root certificate was found in the system store")]
    NoRoots,
    #[error("the AWS HTTP client could not be configured: {0}")]
    AwsClient(String),
}

/// The system's trusted roots, as DER for the Alipay client and as PEM for the SDK.
#[derive(Clone)]
pub struct TrustRoots {
    der: RootCertificates,
    pem: Arc<[u8]>,
}

impl std::fmt::Debug for TrustRoots {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TrustRoots")
            .field("certificates", &self.der.len())
            .finish()
    }
}

impl TrustRoots {
    /// The system's roots, read on the first call and kept for the life of the process (the
    /// SDK keeps its own copy the same way).
    pub fn system() -> Result<TrustRoots, TlsError> {
        static SYSTEM: OnceLock<Result<TrustRoots, TlsError>> = OnceLock::new();
        SYSTEM.get_or_init(Self::read_system).clone()
    }

    fn read_system() -> Result<TrustRoots, TlsError> {
        let found = rustls_native_certs::load_native_certs();
        if !found.errors.is_empty() {
            // As the SDK and reqwest do: a broken entry of the store is skipped, not fatal.
            tracing::warn!(
                errors = found.errors.len(),
                "some entries of the system certificate store could not be read"
            );
        }
        Self::from_der(found.certs.into_iter().map(|der| der.to_vec()))
    }

    /// The certificates that rustls accepts as trust anchors; the others are skipped (both
    /// clients would refuse them: reqwest fails its build, the SDK panics).
    pub fn from_der(
        certificates: impl IntoIterator<Item = Vec<u8>>,
    ) -> Result<TrustRoots, TlsError> {
        let mut store = rustls::RootCertStore::empty();
        let mut kept = Vec::new();
        let mut skipped = 0_usize;
        for der in certificates {
            match store.add(rustls::pki_types::CertificateDer::from(der.as_slice())) {
                Ok(()) => kept.push(der),
                Err(_) => skipped += 1,
            }
        }
        if skipped > 0 {
            tracing::warn!(skipped, "some system root certificates are not usable");
        }
        if kept.is_empty() {
            return Err(TlsError::NoRoots);
        }
        // One Base64 line per certificate: the SDK's PEM reader takes it, and it is several
        // times quicker to write than 64-column lines.
        let mut pem = String::with_capacity(kept.iter().map(|der| der.len() * 4 / 3 + 64).sum());
        for der in &kept {
            pem.push_str("-----BEGIN CERTIFICATE-----\n");
            STANDARD.encode_string(der, &mut pem);
            pem.push_str("\n-----END CERTIFICATE-----\n");
        }
        Ok(TrustRoots {
            der: RootCertificates::new(kept),
            pem: Arc::from(pem.into_bytes()),
        })
    }

    /// For the Alipay client.
    pub fn certificates(&self) -> &RootCertificates {
        &self.der
    }

    /// `sdk` with [`TrustRoots::aws_http_client`].
    pub fn aws_config(&self, sdk: &SdkConfig) -> Result<SdkConfig, TlsError> {
        Ok(sdk
            .to_builder()
            .http_client(self.aws_http_client()?)
            .build())
    }

    /// An HTTP client for the AWS SDK that trusts these roots (and nothing else), otherwise
    /// the SDK's default one: rustls on AWS-LC, proxy settings from the environment, the
    /// per-client timeouts and sleep. Give it to the config loader too: the loader's own
    /// clients (credentials and region providers) would otherwise read the system store.
    pub fn aws_http_client(&self) -> Result<SharedHttpClient, TlsError> {
        let context = TlsContext::builder()
            .with_trust_store(TrustStore::empty().with_pem_certificate(self.pem.to_vec()))
            .build()
            .map_err(|e| TlsError::AwsClient(e.to_string()))?;
        let trusting_nothing = TlsContext::builder()
            .with_trust_store(TrustStore::empty())
            .build()
            .map_err(|e| TlsError::AwsClient(e.to_string()))?;
        // The SDK's own default client (`default_https_client` of aws-smithy-runtime), built
        // the same way, with this trust store. The client keeps the connectors it uses (one
        // per timeout settings, shared by every SDK client given this HTTP client); each one
        // built parses the roots (about 0.6 ms for the usual store).
        let http = Builder::new().build_with_connector_fn(move |settings, components| {
            let mut connector =
                Connector::builder().tls_provider(Provider::Rustls(CryptoMode::AwsLc));
            connector.set_connector_settings(settings.cloned());
            connector.set_proxy_config(Some(ProxyConfig::from_env()));
            match components {
                Some(components) => {
                    connector.set_sleep_impl(components.sleep_impl());
                    connector.set_tls_context(context.clone());
                }
                // Without runtime components the connector is only built to be checked, and
                // thrown away, when an SDK client is constructed (to load the system store
                // early, for the SDK's own trust store): it never connects, so it need not
                // parse the roots for each client.
                None => {
                    connector.set_tls_context(trusting_nothing.clone());
                }
            }
            connector.build()
        });
        Ok(http)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn self_signed() -> Vec<u8> {
        let key = rcgen::KeyPair::generate().unwrap();
        let mut params = rcgen::CertificateParams::new(vec!["gateway.test".to_owned()]).unwrap();
        params.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
        params.self_signed(&key).unwrap().der().to_vec()
    }

    #[test]
    fn keeps_the_usable_certificates_and_skips_the_rest() {
        let good = self_signed();
        let roots = TrustRoots::from_der([b"not a certificate".to_vec(), good.clone()]).unwrap();
        assert_eq!(roots.certificates().len(), 1);
        assert_eq!(roots.certificates().iter().next(), Some(good.as_slice()));
        let pem = String::from_utf8(roots.pem.to_vec()).unwrap();
        assert_eq!(pem.matches("-----BEGIN CERTIFICATE-----").count(), 1);
        assert_eq!(format!("{roots:?}"), "TrustRoots { certificates: 1 }");
    }

    #[test]
    fn refuses_a_store_without_a_usable_certificate() {
        assert_eq!(
            TrustRoots::from_der([b"junk".to_vec()]).unwrap_err(),
            TlsError::NoRoots
        );
        assert_eq!(TrustRoots::from_der([]).unwrap_err(), TlsError::NoRoots);
    }

    #[test]
    fn gives_the_sdk_an_http_client_and_keeps_the_rest_of_its_configuration() {
        let roots = TrustRoots::from_der([self_signed()]).unwrap();
        let sdk = SdkConfig::builder()
            .region(aws_config::Region::new("us-east-1"))
            .endpoint_url("http://127.0.0.1:1")
            .build();
        assert!(sdk.http_client().is_none());
        let shared = roots.aws_config(&sdk).unwrap();
        assert!(shared.http_client().is_some());
        assert_eq!(shared.region(), sdk.region());
        assert_eq!(shared.endpoint_url(), Some("http://127.0.0.1:1"));
    }
}
