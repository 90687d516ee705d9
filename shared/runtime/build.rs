//! Writes the bundled root certificates (`webpki-root-certs`) as PEM for the AWS SDK's trust
//! store, which takes PEM only: encoding them here spares every cold start the work. Two
//! files: all of them, and Amazon's roots alone (what the SDK trusts outside China).

#[path = "src/pem.rs"]
mod pem;

use std::path::PathBuf;

/// Amazon Trust Services' roots (and the older root that cross-signs them), which every AWS
/// endpoint outside the China regions chains to.
const AWS_ROOT_NAMES: [&str; 5] = [
    "Amazon Root CA 1",
    "Amazon Root CA 2",
    "Amazon Root CA 3",
    "Amazon Root CA 4",
    "Starfield Services Root Certificate Authority - G2",
];

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let roots = || {
        webpki_root_certs::TLS_SERVER_ROOT_CERTS
            .iter()
            .map(|certificate| certificate.as_ref())
    };
    let out = PathBuf::from(std::env::var("OUT_DIR")?);
    std::fs::write(out.join("bundled-roots.pem"), pem::certificates(roots()))?;
    // A root is self-signed: its name is in its DER (subject and issuer).
    let aws = roots().filter(|der| {
        AWS_ROOT_NAMES
            .iter()
            .any(|name| der.windows(name.len()).any(|part| part == name.as_bytes()))
    });
    std::fs::write(out.join("aws-roots.pem"), pem::certificates(aws))?;
    println!("cargo::rerun-if-changed=build.rs");
    println!("cargo::rerun-if-changed=src/pem.rs");
    Ok(())
}
