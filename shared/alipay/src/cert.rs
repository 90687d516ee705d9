//! Public-key-certificate mode (公钥证书模式).
//!
//! Instead of bare keys, the merchant holds three certificate files: the app public-key
//! certificate, Alipay's public-key certificate and Alipay's root-certificate bundle. Requests
//! then name the certificates by SN (`app_cert_sn`, `alipay_root_cert_sn`), and each response
//! names the Alipay certificate that signed it (`alipay_cert_sn`).
//!
//! A certificate's SN is Alipay's own digest, not the X.509 serial: the lowercase hex MD5 of the
//! issuer DN in RFC 2253 form followed by the serial number in decimal. Alipay computes it with
//! Java (`X500Principal.getName()` + `BigInteger.toString()`), so the DN string here is built
//! exactly the way Java builds it rather than through a library `Display`, whose order and
//! separators differ.

use crate::backend::Backend;
use crate::keys::{KeyError, PublicKey};
use md5::{Digest as _, Md5};
use std::fmt::Write as _;
use x509_parser::asn1_rs::{Tag, ToDer as _};
use x509_parser::certificate::X509Certificate;
use x509_parser::x509::{AttributeTypeAndValue, X509Name};

/// OID arc of the PKCS#1 algorithms (`sha1WithRSAEncryption`, `sha256WithRSAEncryption`, ...).
/// Only roots signed under it count toward `alipay_root_cert_sn`: that is the set Alipay's SDKs
/// send, and the bundle's SM2 and ECDSA roots are left out.
const PKCS1_ARC: &str = "1.2.840.113549.1.1";
/// `rsaEncryption`, the SubjectPublicKeyInfo algorithm of an RSA key.
const RSA_ENCRYPTION: &str = "1.2.840.113549.1.1.1";

/// Why certificate-mode material could not be used. Never carries key material.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum CertError {
    #[error("the text holds no PEM CERTIFICATE block")]
    NoCertificate,
    #[error("the text is not well-formed PEM (bad armour or Base64)")]
    NotPem,
    #[error("certificate {index} of the file is not a parsable X.509 certificate")]
    Unparsable { index: usize },
    #[error("an issuer attribute ({attribute}) has a value that cannot be read as text")]
    UnreadableName { attribute: String },
    #[error(
        "the root bundle holds no RSA-signed certificate, so alipay_root_cert_sn would be empty"
    )]
    NoRsaRoot,
    #[error("the Alipay certificate with SN {sn} carries a non-RSA key (algorithm {algorithm})")]
    NotRsaKey { sn: String, algorithm: String },
    #[error("the Alipay certificate with SN {sn} carries an unusable RSA key: {source}")]
    Key {
        sn: String,
        #[source]
        source: KeyError,
    },
    #[error("a different Alipay certificate with SN {sn} is already configured")]
    ConflictingSn { sn: String },
    #[error("{file}: {source}")]
    InFile {
        file: &'static str,
        #[source]
        source: Box<CertError>,
    },
}

impl CertError {
    /// Names the configured file an error came from, so an operator knows which one to fix.
    fn in_file(file: &'static str) -> impl FnOnce(CertError) -> CertError {
        move |source| CertError::InFile {
            file,
            source: Box::new(source),
        }
    }
}

/// Alipay's certificate SN: lowercase hex MD5 of `issuer_rfc2253` followed by `serial_decimal`
/// (always 32 characters).
pub fn cert_sn(issuer_rfc2253: &str, serial_decimal: &str) -> String {
    let mut hasher = Md5::new();
    hasher.update(issuer_rfc2253.as_bytes());
    hasher.update(serial_decimal.as_bytes());
    to_hex(String::with_capacity(32), &hasher.finalize())
}

/// The SN of one parsed certificate (its issuer and serial number).
pub fn certificate_sn(cert: &X509Certificate<'_>) -> Result<String, CertError> {
    let serial = cert.tbs_certificate.serial.to_str_radix(10);
    Ok(cert_sn(&issuer_rfc2253(cert)?, &serial))
}

/// The certificate's issuer DN as Java's `X500Principal.getName()` (RFC 2253) renders it, e.g.
/// `CN=Ant Financial Certification Authority R1,OU=Certification Authority,O=Ant Financial,C=CN`.
pub fn issuer_rfc2253(cert: &X509Certificate<'_>) -> Result<String, CertError> {
    name_rfc2253(cert.issuer())
}

/// Any DN in RFC 2253 form: RDNs last-encoded first, joined by `,` without spaces; the
/// attributes of a multi-valued RDN joined by `+` in encoding order.
pub fn name_rfc2253(name: &X509Name<'_>) -> Result<String, CertError> {
    let mut rdns = name
        .iter()
        .map(|rdn| {
            rdn.iter()
                .map(attribute_rfc2253)
                .collect::<Result<Vec<_>, _>>()
                .map(|attributes| attributes.join("+"))
        })
        .collect::<Result<Vec<_>, _>>()?;
    rdns.reverse();
    Ok(rdns.join(","))
}

/// The SN of the app public-key certificate: the first certificate of the file (a file may
/// carry the issuing chain after it).
pub fn app_cert_sn(pem_text: &str) -> Result<String, CertError> {
    let ders = certificate_ders(pem_text)?;
    let first = ders.first().ok_or(CertError::NoCertificate)?;
    certificate_sn(&parse_certificate(first, 1)?)
}

/// `alipay_root_cert_sn`: the SNs of the bundle's RSA-signed roots, in file order, joined by `_`.
pub fn root_cert_sn(bundle_pem_text: &str) -> Result<String, CertError> {
    let mut sns = Vec::new();
    for (index, der) in certificate_ders(bundle_pem_text)?.iter().enumerate() {
        let cert = parse_certificate(der, index + 1)?;
        if is_rsa_signed(&cert) {
            sns.push(certificate_sn(&cert)?);
        }
    }
    if sns.is_empty() {
        return Err(CertError::NoRsaRoot);
    }
    Ok(sns.join("_"))
}

/// Alipay's public keys by certificate SN. Alipay re-issues its certificate periodically and
/// signs with the new one while the old may still be in flight, so several can be configured.
#[derive(Clone, Debug)]
pub struct AlipayCertificates {
    backend: Backend,
    /// Insertion order; a handful of entries at most, so a linear search is the simplest map.
    entries: Vec<(String, PublicKey)>,
}

impl AlipayCertificates {
    /// Loads Alipay's public-key certificate (the first certificate of the file) with the
    /// default RSA backend.
    pub fn from_pem(pem_text: &str) -> Result<Self, CertError> {
        Self::from_pem_with(pem_text, Backend::default())
    }

    pub fn from_pem_with(pem_text: &str, backend: Backend) -> Result<Self, CertError> {
        let mut certificates = AlipayCertificates {
            backend,
            entries: Vec::new(),
        };
        certificates.add_pem(pem_text)?;
        Ok(certificates)
    }

    /// Adds a (re-issued) Alipay certificate and returns its SN. Adding the same certificate
    /// again is a no-op; a different key under a known SN is refused.
    pub fn add_pem(&mut self, pem_text: &str) -> Result<String, CertError> {
        let ders = certificate_ders(pem_text)?;
        let first = ders.first().ok_or(CertError::NoCertificate)?;
        let cert = parse_certificate(first, 1)?;
        let sn = certificate_sn(&cert)?;
        let spki = cert.public_key();
        let algorithm = spki.algorithm.algorithm.to_id_string();
        if algorithm != RSA_ENCRYPTION {
            return Err(CertError::NotRsaKey { sn, algorithm });
        }
        let key = PublicKey::from_spki_der_with(spki.raw, self.backend).map_err(|source| {
            CertError::Key {
                sn: sn.clone(),
                source,
            }
        })?;
        match self.key_for_sn(&sn) {
            Some(known) if known.spki_der() == key.spki_der() => {}
            Some(_) => return Err(CertError::ConflictingSn { sn }),
            None => self.entries.push((sn.clone(), key)),
        }
        Ok(sn)
    }

    /// The key of the certificate a response names in `alipay_cert_sn`.
    pub fn key_for_sn(&self, sn: &str) -> Option<&PublicKey> {
        self.entries
            .iter()
            .find(|(known, _)| known.eq_ignore_ascii_case(sn))
            .map(|(_, key)| key)
    }

    /// Every configured key, oldest first (notifications name no certificate).
    pub fn keys(&self) -> impl Iterator<Item = &PublicKey> {
        self.entries.iter().map(|(_, key)| key)
    }

    /// Every configured SN, oldest first.
    pub fn sns(&self) -> impl Iterator<Item = &str> {
        self.entries.iter().map(|(sn, _)| sn.as_str())
    }

    pub fn backend(&self) -> Backend {
        self.backend
    }
}

/// Everything certificate mode needs from the three files: the two SNs every request carries,
/// and Alipay's keys for verifying what comes back.
#[derive(Clone, Debug)]
pub struct CertMode {
    pub app_cert_sn: String,
    pub alipay_root_cert_sn: String,
    pub alipay: AlipayCertificates,
}

impl CertMode {
    /// Loads the app certificate, Alipay's certificate and the root bundle (all PEM text) with
    /// the default RSA backend.
    pub fn from_pem(
        app_cert_pem: &str,
        alipay_cert_pem: &str,
        root_bundle_pem: &str,
    ) -> Result<Self, CertError> {
        Self::from_pem_with(
            app_cert_pem,
            alipay_cert_pem,
            root_bundle_pem,
            Backend::default(),
        )
    }

    pub fn from_pem_with(
        app_cert_pem: &str,
        alipay_cert_pem: &str,
        root_bundle_pem: &str,
        backend: Backend,
    ) -> Result<Self, CertError> {
        Ok(CertMode {
            app_cert_sn: app_cert_sn(app_cert_pem)
                .map_err(CertError::in_file("app public-key certificate"))?,
            alipay_root_cert_sn: root_cert_sn(root_bundle_pem)
                .map_err(CertError::in_file("Alipay root certificate bundle"))?,
            alipay: AlipayCertificates::from_pem_with(alipay_cert_pem, backend)
                .map_err(CertError::in_file("Alipay public-key certificate"))?,
        })
    }
}

/// The DER of each `CERTIFICATE` block, in file order; other blocks are ignored.
fn certificate_ders(pem_text: &str) -> Result<Vec<Vec<u8>>, CertError> {
    let blocks = pem::parse_many(pem_text).map_err(|_| CertError::NotPem)?;
    let ders: Vec<Vec<u8>> = blocks
        .into_iter()
        .filter(|block| block.tag() == "CERTIFICATE")
        .map(pem::Pem::into_contents)
        .collect();
    if ders.is_empty() {
        return Err(CertError::NoCertificate);
    }
    Ok(ders)
}

/// `index` is 1-based, for the error message.
fn parse_certificate(der: &[u8], index: usize) -> Result<X509Certificate<'_>, CertError> {
    x509_parser::parse_x509_certificate(der)
        .map(|(_, cert)| cert)
        .map_err(|_| CertError::Unparsable { index })
}

fn is_rsa_signed(cert: &X509Certificate<'_>) -> bool {
    let oid = cert.signature_algorithm.algorithm.to_id_string();
    oid == PKCS1_ARC
        || oid
            .strip_prefix(PKCS1_ARC)
            .is_some_and(|rest| rest.starts_with('.'))
}

/// `TYPE=value` of one attribute. Like Java, only RFC 2253's own keywords are used; any other
/// type (emailAddress included) is its dotted OID with the value as `#` + hex of its DER.
fn attribute_rfc2253(attribute: &AttributeTypeAndValue<'_>) -> Result<String, CertError> {
    let oid = attribute.attr_type().to_id_string();
    let Some(keyword) = rfc2253_keyword(&oid) else {
        return Ok(format!("{oid}={}", hex_value(attribute, &oid)?));
    };
    let value = match directory_string(attribute) {
        Some(text) => escape_value(&text?),
        None => hex_value(attribute, &oid)?,
    };
    Ok(format!("{keyword}={value}"))
}

/// The keywords of RFC 2253 section 2.3 (exactly those Java emits).
fn rfc2253_keyword(oid: &str) -> Option<&'static str> {
    Some(match oid {
        "2.5.4.3" => "CN",
        "2.5.4.7" => "L",
        "2.5.4.8" => "ST",
        "2.5.4.10" => "O",
        "2.5.4.11" => "OU",
        "2.5.4.6" => "C",
        "2.5.4.9" => "STREET",
        "0.9.2342.19200300.100.1.25" => "DC",
        "0.9.2342.19200300.100.1.1" => "UID",
        _ => return None,
    })
}

/// The text of a value of one of the string types Java renders as text; `None` for any other
/// type (rendered as hex instead).
fn directory_string(attribute: &AttributeTypeAndValue<'_>) -> Option<Result<String, CertError>> {
    let value = attribute.attr_value();
    let data = value.data;
    let unreadable = || CertError::UnreadableName {
        attribute: attribute.attr_type().to_id_string(),
    };
    let text = match value.tag() {
        Tag::Utf8String | Tag::PrintableString | Tag::Ia5String | Tag::GeneralString => {
            String::from_utf8(data.to_vec()).map_err(|_| unreadable())
        }
        // T.61 is approximated by Latin-1, as Java's `DerValue.getT61String` does.
        Tag::TeletexString => Ok(data.iter().map(|&byte| char::from(byte)).collect()),
        Tag::BmpString if data.len() % 2 == 0 => {
            let units = data
                .chunks_exact(2)
                .map(|pair| u16::from_be_bytes([pair[0], pair[1]]));
            char::decode_utf16(units)
                .collect::<Result<String, _>>()
                .map_err(|_| unreadable())
        }
        Tag::BmpString => Err(unreadable()),
        _ => return None,
    };
    Some(text)
}

/// `#` followed by the lowercase hex of the value's whole DER encoding (tag, length, content).
fn hex_value(attribute: &AttributeTypeAndValue<'_>, oid: &str) -> Result<String, CertError> {
    let der = attribute
        .attr_value()
        .to_der_vec()
        .map_err(|_| CertError::UnreadableName {
            attribute: oid.to_owned(),
        })?;
    Ok(to_hex(String::from("#"), &der))
}

fn to_hex(mut out: String, bytes: &[u8]) -> String {
    for byte in bytes {
        let _ = write!(out, "{byte:02x}");
    }
    out
}

/// RFC 2253 section 2.4 escaping as Java applies it: a backslash before `,` `+` `"` `\` `<`
/// `>` `;` and also `=` and `#` anywhere, NUL as `\00`, and a backslash before every leading
/// and trailing space (or CR). RFC 2253 allows escaping more than it requires, and matching
/// Java is what makes the SN match Alipay's.
fn escape_value(value: &str) -> String {
    let mut escaped: Vec<char> = Vec::with_capacity(value.len());
    for c in value.chars() {
        match c {
            ',' | '=' | '+' | '<' | '>' | '#' | ';' | '"' | '\\' => {
                escaped.push('\\');
                escaped.push(c);
            }
            '\0' => escaped.extend(['\\', '0', '0']),
            _ => escaped.push(c),
        }
    }
    let is_blank = |c: &char| *c == ' ' || *c == '\r';
    let lead = escaped.iter().take_while(|c| is_blank(c)).count();
    let trail = escaped.len() - escaped.iter().rev().take_while(|c| is_blank(c)).count();
    let mut out = String::with_capacity(escaped.len() + 2);
    for (i, c) in escaped.into_iter().enumerate() {
        if i < lead || i >= trail {
            out.push('\\');
        }
        out.push(c);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use x509_parser::prelude::FromDer as _;

    #[test]
    fn plain_values_are_untouched() {
        assert_eq!(
            escape_value("Ant Financial Certification Authority Class 1 R1"),
            "Ant Financial Certification Authority Class 1 R1"
        );
        assert_eq!(
            escape_value("支付宝(中国)网络技术有限公司"),
            "支付宝(中国)网络技术有限公司"
        );
        assert_eq!(escape_value(""), "");
    }

    #[test]
    fn rfc2253_specials_are_escaped() {
        assert_eq!(escape_value("a,b"), r"a\,b");
        assert_eq!(escape_value("a+b"), r"a\+b");
        assert_eq!(escape_value("a\"b"), r#"a\"b"#);
        assert_eq!(escape_value(r"a\b"), r"a\\b");
        assert_eq!(escape_value("<a>"), r"\<a\>");
        assert_eq!(escape_value("a;b"), r"a\;b");
        assert_eq!(escape_value("Acme, Inc.; <x>"), r"Acme\, Inc.\; \<x\>");
    }

    #[test]
    fn leading_hash_and_leading_trailing_spaces_are_escaped() {
        assert_eq!(escape_value("#1"), r"\#1");
        assert_eq!(escape_value(" a"), r"\ a");
        assert_eq!(escape_value("a "), r"a\ ");
        assert_eq!(escape_value("  a b  "), r"\ \ a b\ \ ");
        assert_eq!(escape_value(" "), r"\ ");
    }

    #[test]
    fn java_extras_are_escaped_too() {
        // Java's X500Principal.getName() also escapes '=' and an inner '#', and NUL as \00.
        assert_eq!(escape_value("a=b"), r"a\=b");
        assert_eq!(escape_value("a#b"), r"a\#b");
        assert_eq!(escape_value("a\0b"), r"a\00b");
    }

    /// DER built by hand, to reach what rcgen cannot produce (multi-valued RDNs, raw string
    /// types, non-string values).
    fn tlv(tag: u8, content: &[u8]) -> Vec<u8> {
        let mut out = vec![tag];
        let len = u8::try_from(content.len()).unwrap();
        if len < 0x80 {
            out.push(len);
        } else {
            out.extend([0x81, len]);
        }
        out.extend_from_slice(content);
        out
    }

    fn atv(oid: &[u8], tag: u8, value: &[u8]) -> Vec<u8> {
        let mut content = tlv(0x06, oid);
        content.extend(tlv(tag, value));
        tlv(0x30, &content)
    }

    const OID_CN: &[u8] = &[0x55, 0x04, 0x03];
    const OID_OU: &[u8] = &[0x55, 0x04, 0x0b];
    const OID_C: &[u8] = &[0x55, 0x04, 0x06];
    const OID_SERIAL_NUMBER: &[u8] = &[0x55, 0x04, 0x05];

    /// `Name ::= SEQUENCE OF SET OF AttributeTypeAndValue`, RDNs in encoding order.
    fn name(rdns: &[Vec<Vec<u8>>]) -> Vec<u8> {
        let sets: Vec<u8> = rdns
            .iter()
            .flat_map(|atvs| tlv(0x31, &atvs.concat()))
            .collect();
        tlv(0x30, &sets)
    }

    fn render(der: &[u8]) -> String {
        let (_, parsed) = X509Name::from_der(der).unwrap();
        name_rfc2253(&parsed).unwrap()
    }

    #[test]
    fn rdns_are_reversed_and_multi_valued_rdns_joined_with_plus() {
        let der = name(&[
            vec![atv(OID_C, 0x13, b"CN")],
            vec![atv(OID_CN, 0x0c, b"a"), atv(OID_OU, 0x0c, b"b")],
        ]);
        assert_eq!(render(&der), "CN=a+OU=b,C=CN");
    }

    #[test]
    fn unknown_types_and_non_string_values_are_hex() {
        // serialNumber (2.5.4.5) has no RFC 2253 keyword: dotted OID, DER as hex.
        let der = name(&[vec![atv(OID_SERIAL_NUMBER, 0x13, b"42")]]);
        assert_eq!(render(&der), "2.5.4.5=#13023432");
        // A keyword type with a non-string value (an OCTET STRING) is hex as well.
        let der = name(&[vec![atv(OID_CN, 0x04, &[0xab])]]);
        assert_eq!(render(&der), "CN=#0401ab");
    }

    #[test]
    fn bmp_and_teletex_values_are_decoded() {
        let der = name(&[
            vec![atv(OID_CN, 0x1e, &[0x65, 0x2f, 0x4e, 0xd8])],
            vec![atv(OID_OU, 0x14, &[0x63, 0xe9])],
        ]);
        assert_eq!(render(&der), "OU=cé,CN=支付");
    }

    #[test]
    fn escaped_values_reach_the_name() {
        let der = name(&[vec![atv(OID_CN, 0x0c, b" Acme, Inc.")]]);
        assert_eq!(render(&der), r"CN=\ Acme\, Inc.");
    }

    #[test]
    fn sn_is_zero_padded_lowercase_hex() {
        let sn = cert_sn(
            "CN=iTrusChina Class 2 Root CA - G3,OU=China Trust Network,O=iTrusChina,C=CN",
            "95790491425698859646659490580052089075020051350",
        );
        assert_eq!(sn, "02941eef3187dddf3d3b83462e1dfcf6");
    }
}
