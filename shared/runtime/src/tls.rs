//! The trusted root certificates, chosen once per process and shared by the AWS SDK's HTTP
//! client and the Alipay client.
//!
//! By default the functions trust Mozilla's root program as bundled into the binary by
//! `webpki-root-certs` (the set Node.js and Python's `certifi` trust by default, which the
//! official Alipay SDKs of those languages rely on; AWS's endpoints chain to Amazon's roots in
//! it); updating them is a dependency update. Reading a system store instead (Amazon Linux's
//! bundle file: its Base64, then a parse of each root) cost pay's cold start about 1.5 ms,
//! nearly half of what it adds to a bare runtime's init (`make bench-init`). Setting
//! `SSL_CERT_FILE` or `SSL_CERT_DIR` (a private CA, a TLS-inspecting proxy) makes the
//! functions trust that store instead, read once with rustls-native-certs's discovery.
//!
//! The AWS SDK's client trusts only Amazon Trust Services' roots of the bundle, which every AWS
//! endpoint chains to, except in the China regions and when the region is unknown
//! ([`TrustRoots::for_aws_region`]). A named store is trusted whole by both clients: left to
//! themselves, each would read the whole store at init, the SDK's client through
//! `rustls-native-certs` and reqwest's platform verifier again. Verification is unchanged: certificates and host names are checked by
//! rustls's WebPKI verifier against these roots, which is what the platform verifier does on
//! Linux.

use alipay::client::RootCertificates;
use aws_config::SdkConfig;
// The SDK crates re-export the HTTP client type of the smithy runtime.
use aws_adapters::aws_sdk_secretsmanager::config::SharedHttpClient;
use aws_smithy_http_client::proxy::ProxyConfig;
use aws_smithy_http_client::tls::rustls_provider::CryptoMode;
use aws_smithy_http_client::tls::{Provider, TlsContext, TrustStore};
use aws_smithy_http_client::{Builder, Connector};
use std::sync::{Arc, OnceLock};

/// Why the roots could not be used.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TlsError {
    #[error("no usable root certificate was found in the certificate store")]
    NoRoots,
    #[error("the AWS HTTP client could not be configured: {0}")]
    AwsClient(String),
}

/// The bundled roots as PEM, written by the build script (the SDK's trust store takes PEM only).
const BUNDLED_PEM: &str = include_str!(concat!(env!("OUT_DIR"), "/bundled-roots.pem"));
/// Of the bundled roots, Amazon Trust Services' (Amazon Root CA 1–4, and Starfield Services
/// Root G2, which cross-signs them), as PEM.
const AWS_PEM: &str = include_str!(concat!(env!("OUT_DIR"), "/aws-roots.pem"));

/// Trusted roots, as DER for the Alipay client and as PEM for the SDK.
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
    /// The roots the functions trust: the store `SSL_CERT_FILE` / `SSL_CERT_DIR` name, else the
    /// bundled ones. Chosen on the first call and kept for the life of the process.
    pub fn for_functions() -> Result<TrustRoots, TlsError> {
        static CHOSEN: OnceLock<Result<TrustRoots, TlsError>> = OnceLock::new();
        CHOSEN
            .get_or_init(|| {
                let file = std::env::var_os("SSL_CERT_FILE");
                let dir = std::env::var_os("SSL_CERT_DIR");
                if names_a_store(file.as_deref(), dir.as_deref()) {
                    Self::read_named_store()
                } else {
                    let region = std::env::var("AWS_REGION").ok();
                    Ok(Self::bundled().for_aws_region(region.as_deref()))
                }
            })
            .clone()
    }

    /// Mozilla's roots as bundled by `webpki-root-certs`. Every one is a trust anchor rustls
    /// accepts (a test checks it), so none is parsed here.
    pub fn bundled() -> TrustRoots {
        let der = webpki_root_certs::TLS_SERVER_ROOT_CERTS
            .iter()
            .map(|certificate| certificate.to_vec())
            .collect();
        TrustRoots {
            der: RootCertificates::new(der),
            pem: Arc::from(BUNDLED_PEM.as_bytes()),
        }
    }

    /// The bundled roots, with the AWS SDK trusting only Amazon Trust Services' roots in
    /// `region` when every AWS endpoint there chains to them: every region but China's
    /// (`cn-*`, operated apart, whose endpoints' certificates come from other authorities)
    /// and an unknown one. Fewer roots for the AWS calls: a certificate mis-issued by any
    /// other authority cannot stand in for an AWS endpoint, and the SDK, which takes PEM
    /// only, decodes 5 roots at cold start instead of all of them (about 0.5 ms).
    pub fn for_aws_region(mut self, region: Option<&str>) -> TrustRoots {
        if region.is_some_and(|region| !region.starts_with("cn-")) {
            self.pem = Arc::from(AWS_PEM.as_bytes());
        }
        self
    }

    fn read_named_store() -> Result<TrustRoots, TlsError> {
        let found = rustls_native_certs::load_native_certs();
        if !found.errors.is_empty() {
            // As the SDK and reqwest do: a broken entry of the store is skipped, not fatal.
            tracing::warn!(
                errors = found.errors.len(),
                "some entries of the certificate store could not be read"
            );
        }
        let roots = Self::from_der(found.certs.into_iter().map(|der| der.to_vec()))?;
        tracing::info!(
            certificates = roots.der.len(),
            "trusting the certificate store named by SSL_CERT_FILE / SSL_CERT_DIR"
        );
        Ok(roots)
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
            tracing::warn!(
                skipped,
                "some root certificates of the store are not usable"
            );
        }
        if kept.is_empty() {
            return Err(TlsError::NoRoots);
        }
        let pem = crate::pem::certificates(kept.iter().map(Vec::as_slice));
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

/// Whether the environment names a certificate store (an empty variable names none).
fn names_a_store(file: Option<&std::ffi::OsStr>, dir: Option<&std::ffi::OsStr>) -> bool {
    [file, dir]
        .into_iter()
        .any(|name| name.is_some_and(|name| !name.is_empty()))
}

#[cfg(test)]
mod tests {
    use super::*;
    use base64::Engine as _;
    use base64::engine::general_purpose::STANDARD;

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
    fn the_bundled_pem_holds_exactly_the_bundled_certificates() {
        let roots = TrustRoots::bundled();
        let pem = std::str::from_utf8(&roots.pem).unwrap();
        let decoded: Vec<Vec<u8>> = pem
            .lines()
            .filter(|line| !line.starts_with("-----"))
            .map(|line| STANDARD.decode(line).unwrap())
            .collect();
        let bundled: Vec<&[u8]> = webpki_root_certs::TLS_SERVER_ROOT_CERTS
            .iter()
            .map(|certificate| certificate.as_ref())
            .collect();
        assert_eq!(decoded, bundled);
        assert_eq!(roots.certificates().iter().collect::<Vec<_>>(), bundled);
        assert_eq!(
            pem.matches("-----BEGIN CERTIFICATE-----").count(),
            bundled.len()
        );
    }

    #[test]
    fn every_bundled_root_is_a_trust_anchor() {
        let bundled = TrustRoots::bundled();
        assert!(bundled.certificates().len() > 100, "{bundled:?}");
        let checked =
            TrustRoots::from_der(bundled.certificates().iter().map(<[u8]>::to_vec)).unwrap();
        assert_eq!(checked.certificates(), bundled.certificates());
    }

    fn names_in(pem: &[u8]) -> Vec<Vec<u8>> {
        std::str::from_utf8(pem)
            .unwrap()
            .split("-----END CERTIFICATE-----")
            .filter(|part| part.contains("BEGIN"))
            .map(|part| {
                let body: String = part
                    .lines()
                    .filter(|line| !line.starts_with("-----"))
                    .collect();
                STANDARD.decode(body).unwrap()
            })
            .collect()
    }

    #[test]
    fn the_sdk_trusts_only_amazons_roots_except_in_china_or_an_unknown_region() {
        let bundled = TrustRoots::bundled();
        let aws = TrustRoots::bundled().for_aws_region(Some("ap-southeast-1"));
        let amazon = names_in(&aws.pem);
        assert_eq!(
            amazon.len(),
            5,
            "Amazon Root CA 1-4 and Starfield Services Root G2"
        );
        for name in [
            "Amazon Root CA 1",
            "Amazon Root CA 2",
            "Amazon Root CA 3",
            "Amazon Root CA 4",
            "Starfield Services Root Certificate Authority - G2",
        ] {
            let holding: Vec<_> = amazon
                .iter()
                .filter(|der| der.windows(name.len()).any(|part| part == name.as_bytes()))
                .collect();
            assert_eq!(holding.len(), 1, "{name}");
            assert!(
                bundled
                    .certificates()
                    .iter()
                    .any(|der| der == holding[0].as_slice())
            );
        }
        assert_eq!(
            aws.certificates(),
            bundled.certificates(),
            "Alipay: all of them"
        );
        for region in [Some("cn-north-1"), Some("cn-northwest-1"), None] {
            let roots = TrustRoots::bundled().for_aws_region(region);
            assert_eq!(
                names_in(&roots.pem).len(),
                bundled.certificates().len(),
                "{region:?}"
            );
        }
    }

    #[test]
    fn only_a_non_empty_variable_names_a_store() {
        let file = Some(std::ffi::OsStr::new("/etc/ssl/cert.pem"));
        let empty = Some(std::ffi::OsStr::new(""));
        assert!(!names_a_store(None, None));
        assert!(!names_a_store(empty, empty));
        assert!(names_a_store(file, None));
        assert!(names_a_store(None, file));
        assert!(names_a_store(empty, file));
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
