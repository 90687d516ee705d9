//! Writes the bundled root certificates (`webpki-root-certs`) as PEM for the AWS SDK's trust
//! store, which takes PEM only: encoding them here spares every cold start the work.

#[path = "src/pem.rs"]
mod pem;

use std::path::PathBuf;

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let roots = webpki_root_certs::TLS_SERVER_ROOT_CERTS
        .iter()
        .map(|certificate| certificate.as_ref());
    let out = PathBuf::from(std::env::var("OUT_DIR")?).join("bundled-roots.pem");
    std::fs::write(out, pem::certificates(roots))?;
    println!("cargo::rerun-if-changed=build.rs");
    println!("cargo::rerun-if-changed=src/pem.rs");
    Ok(())
}
