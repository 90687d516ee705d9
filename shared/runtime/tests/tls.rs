//! The AWS SDK's HTTP client built on the shared trust roots (`f2f_runtime::tls`) makes real
//! TLS connections: a call to a local HTTPS server whose certificate chains to the given root
//! succeeds, and one to a server of another root, or of a private one with the bundled roots,
//! is refused.

use aws_adapters::aws_sdk_dynamodb;
use f2f_runtime::tls::TrustRoots;
use rcgen::{BasicConstraints, CertificateParams, IsCa, Issuer, KeyPair};
use std::sync::Arc;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpListener;
use tokio_rustls::TlsAcceptor;
use tokio_rustls::rustls::ServerConfig;
use tokio_rustls::rustls::pki_types::{CertificateDer, PrivateKeyDer, PrivatePkcs8KeyDer};

type TestResult<T = ()> = Result<T, Box<dyn std::error::Error + Send + Sync>>;

/// A certificate authority: its certificate (DER) and what signs with it.
struct Authority {
    der: Vec<u8>,
    issuer: Issuer<'static, KeyPair>,
}

fn authority() -> Result<Authority, rcgen::Error> {
    let key = KeyPair::generate()?;
    let mut params = CertificateParams::new(Vec::new())?;
    params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    let der = params.self_signed(&key)?.der().to_vec();
    Ok(Authority {
        der,
        issuer: Issuer::new(params, key),
    })
}

/// Serves HTTPS on 127.0.0.1 as `localhost`, certified by `authority`: every request gets a
/// DynamoDB `ListTables` answer with no tables.
async fn serve(authority: &Authority) -> TestResult<u16> {
    let key = KeyPair::generate()?;
    let certificate =
        CertificateParams::new(vec!["localhost".to_owned()])?.signed_by(&key, &authority.issuer)?;
    let config = ServerConfig::builder_with_provider(Arc::new(
        tokio_rustls::rustls::crypto::aws_lc_rs::default_provider(),
    ))
    .with_safe_default_protocol_versions()?
    .with_no_client_auth()
    .with_single_cert(
        vec![CertificateDer::from(certificate.der().to_vec())],
        PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(key.serialize_der())),
    )?;
    let acceptor = TlsAcceptor::from(Arc::new(config));
    let listener = TcpListener::bind("127.0.0.1:0").await?;
    let port = listener.local_addr()?.port();
    tokio::spawn(async move {
        while let Ok((tcp, _)) = listener.accept().await {
            let acceptor = acceptor.clone();
            tokio::spawn(async move {
                let Ok(mut tls) = acceptor.accept(tcp).await else {
                    return;
                };
                let mut request = vec![0_u8; 64 * 1024];
                let Ok(read) = tls.read(&mut request).await else {
                    return;
                };
                if read == 0 {
                    return;
                }
                let body = br#"{"TableNames":[]}"#;
                let head = format!(
                    "HTTP/1.1 200 OK\r\ncontent-type: application/x-amz-json-1.0\r\n\
                     content-length: {}\r\nconnection: close\r\n\r\n",
                    body.len()
                );
                let _ = tls.write_all(head.as_bytes()).await;
                let _ = tls.write_all(body).await;
                let _ = tls.shutdown().await;
            });
        }
    });
    Ok(port)
}

fn client(roots: &TrustRoots, port: u16) -> TestResult<aws_sdk_dynamodb::Client> {
    let sdk = aws_config::SdkConfig::builder()
        .behavior_version(aws_config::BehaviorVersion::latest())
        .region(aws_config::Region::new("us-east-1"))
        .credentials_provider(aws_sdk_dynamodb::config::SharedCredentialsProvider::new(
            aws_credential_types::Credentials::new("AKIDTEST", "secret", None, None, "test"),
        ))
        // A refused handshake is answered at once, not retried with backoff.
        .retry_config(aws_config::retry::RetryConfig::disabled())
        .endpoint_url(format!("https://localhost:{port}"))
        .build();
    Ok(aws_sdk_dynamodb::Client::new(&roots.aws_config(&sdk)?))
}

#[tokio::test]
async fn the_sdk_connects_to_a_server_certified_by_a_shared_root() -> TestResult {
    let trusted = authority()?;
    let port = serve(&trusted).await?;
    let roots = TrustRoots::from_der([trusted.der.clone()])?;
    let tables = client(&roots, port)?.list_tables().send().await?;
    assert_eq!(tables.table_names(), &[] as &[String]);
    Ok(())
}

async fn assert_refused(roots: &TrustRoots, port: u16) -> TestResult {
    let refused = client(roots, port)?.list_tables().send().await;
    let error = refused
        .err()
        .ok_or("a server of another root was trusted")?;
    assert!(
        matches!(error, aws_sdk_dynamodb::error::SdkError::DispatchFailure(_)),
        "{error:?}"
    );
    Ok(())
}

#[tokio::test]
async fn the_sdk_refuses_a_server_certified_by_another_root() -> TestResult {
    let (trusted, other) = (authority()?, authority()?);
    let port = serve(&other).await?;
    assert_refused(&TrustRoots::from_der([trusted.der.clone()])?, port).await
}

#[tokio::test]
async fn the_bundled_roots_do_not_trust_a_private_authority() -> TestResult {
    let port = serve(&authority()?).await?;
    assert_refused(&TrustRoots::bundled(), port).await
}
