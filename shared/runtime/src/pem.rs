//! Certificates as PEM, the only form the AWS SDK's trust store takes. Shared with the build
//! script, which writes the bundled roots this way once.

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;

/// One Base64 line per certificate: the SDK's PEM reader takes it, and it is several times
/// quicker to write than 64-column lines.
pub fn certificates<'a>(ders: impl IntoIterator<Item = &'a [u8]>) -> String {
    let mut pem = String::new();
    for der in ders {
        pem.push_str("-----BEGIN CERTIFICATE-----\n");
        STANDARD.encode_string(der, &mut pem);
        pem.push_str("\n-----END CERTIFICATE-----\n");
    }
    pem
}
