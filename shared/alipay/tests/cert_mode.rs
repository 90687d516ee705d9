//! Certificate mode against Alipay's published SN vectors, on certificates generated here with
//! the same issuers and serial numbers as Alipay's, and on Alipay's real root bundle.

use alipay::PrivateKey;
use alipay::cert::{
    AlipayCertificates, CertError, CertMode, app_cert_sn, cert_sn, issuer_rfc2253, root_cert_sn,
};
use alipay::verifier::AlipayVerifier;
use rcgen::{
    CertificateParams, DistinguishedName, DnType, DnValue, Issuer, KeyPair, SerialNumber,
    SignatureAlgorithm,
};

type TestResult = Result<(), Box<dyn std::error::Error>>;

const CLASS_1_R1: &str = "CN=Ant Financial Certification Authority Class 1 R1,OU=Certification Authority,O=Ant Financial,C=CN";
const CLASS_2_R1: &str = "CN=Ant Financial Certification Authority Class 2 R1,OU=Certification Authority,O=Ant Financial,C=CN";
const ROOT_R1: &str =
    "CN=Ant Financial Certification Authority R1,OU=Certification Authority,O=Ant Financial,C=CN";
const ITRUS_G3: &str =
    "CN=iTrusChina Class 2 Root CA - G3,OU=China Trust Network,O=iTrusChina,C=CN";
const NRCAC_ROOT: &str = "CN=ROOTCA,O=NRCAC,C=CN";
const ROOT_E1: &str =
    "CN=Ant Financial Certification Authority E1,OU=Certification Authority,O=Ant Financial,C=CN";
const SANDBOX_CLASS_2_R1: &str = "CN=Ant Financial Certification Authority Class 2 R1 test,OU=Certification Authority test,O=Ant Financial test,C=CN";

/// `(issuer, serial, SN)` as Alipay's SDKs compute them.
const VECTORS: [(&str, &str, &str); 8] = [
    (
        CLASS_1_R1,
        "42701552708448241360226107228231049510",
        "866efef280dec9137a87d047ac446315",
    ),
    (
        CLASS_2_R1,
        "42701552432456004857627230056898180491",
        "7513daaaa48aa3ba2e4018d84402479c",
    ),
    (
        ROOT_R1,
        "2292228364100439313",
        "687b59193f3f462dd5336e5abf83c5d8",
    ),
    (
        ITRUS_G3,
        "95790491425698859646659490580052089075020051350",
        "02941eef3187dddf3d3b83462e1dfcf6",
    ),
    (
        NRCAC_ROOT,
        "7629940819692799611",
        "9e64d67d36446de33aae13a33a89e5a7",
    ),
    (
        ROOT_E1,
        "4719484692854726474",
        "8af620707e5ddd8c7e76747e86a604dc",
    ),
    (
        SANDBOX_CLASS_2_R1,
        "42727596570937250296276815632325160726",
        "9c51a0ddeb34866e5a331e613f57bf0f",
    ),
    (
        SANDBOX_CLASS_2_R1,
        "42717149582936021875350330600809583375",
        "05d88faef76d723019c5c14d3ecd014a",
    ),
];

const PRODUCTION_ROOT_SN: &str =
    "687b59193f3f462dd5336e5abf83c5d8_02941eef3187dddf3d3b83462e1dfcf6";

// ---------------------------------------------------------------------------------------------
// Helpers: certificates with Alipay's issuers and serials.

/// Big-endian bytes of an unsigned decimal string of any length (serials outgrow u128).
fn decimal_to_be_bytes(decimal: &str) -> Vec<u8> {
    let mut bytes: Vec<u8> = vec![0];
    for digit in decimal.bytes() {
        assert!(digit.is_ascii_digit(), "not a decimal digit: {digit}");
        let mut carry = u32::from(digit - b'0');
        for byte in bytes.iter_mut().rev() {
            let value = u32::from(*byte) * 10 + carry;
            *byte = (value & 0xff) as u8;
            carry = value >> 8;
        }
        while carry > 0 {
            bytes.insert(0, (carry & 0xff) as u8);
            carry >>= 8;
        }
    }
    let first_nonzero = bytes
        .iter()
        .position(|&b| b != 0)
        .unwrap_or(bytes.len() - 1);
    bytes.split_off(first_nonzero)
}

/// Splits `CN=..,OU=..,O=..,C=..` (RFC 2253 order) and pushes the RDNs in ENCODING order
/// (C first), the way real CAs encode them, so the RFC 2253 rendering must reverse them.
fn dn_from_rfc2253(rfc2253: &str) -> Result<DistinguishedName, String> {
    let mut dn = DistinguishedName::new();
    for rdn in rfc2253.split(',').rev() {
        let (keyword, value) = rdn.split_once('=').ok_or(format!("no '=' in {rdn}"))?;
        let ty = match keyword {
            "C" => DnType::CountryName,
            "O" => DnType::OrganizationName,
            "OU" => DnType::OrganizationalUnitName,
            "CN" => DnType::CommonName,
            other => return Err(format!("unexpected keyword {other}")),
        };
        dn.push(ty, value);
    }
    Ok(dn)
}

fn params(subject: DistinguishedName, serial_decimal: &str) -> CertificateParams {
    let mut params = CertificateParams::default();
    params.distinguished_name = subject;
    params.serial_number = Some(SerialNumber::from_slice(&decimal_to_be_bytes(
        serial_decimal,
    )));
    params
}

/// A self-signed certificate (so its issuer is `rfc2253`) with that serial, as PEM.
fn self_signed(
    rfc2253: &str,
    serial_decimal: &str,
    key: &KeyPair,
) -> Result<String, Box<dyn std::error::Error>> {
    Ok(params(dn_from_rfc2253(rfc2253)?, serial_decimal)
        .self_signed(key)?
        .pem())
}

fn ecdsa_key(alg: &'static SignatureAlgorithm) -> Result<KeyPair, rcgen::Error> {
    KeyPair::generate_for(alg)
}

/// A fresh RSA key from this crate, both as the app's `PrivateKey` and as rcgen's signer.
fn rsa_key(
    alg: &'static SignatureAlgorithm,
) -> Result<(PrivateKey, KeyPair), Box<dyn std::error::Error>> {
    let (private, pem) = PrivateKey::generate()?;
    let pair = KeyPair::from_pem_and_sign_algo(&pem, alg)?;
    Ok((private, pair))
}

fn issuer_of(pem_text: &str) -> Result<String, Box<dyn std::error::Error>> {
    let block = pem::parse(pem_text)?;
    let (_, cert) = x509_parser::parse_x509_certificate(block.contents())?;
    Ok(issuer_rfc2253(&cert)?)
}

// ---------------------------------------------------------------------------------------------
// SN arithmetic.

#[test]
fn cert_sn_matches_every_alipay_vector() {
    for (issuer, serial, expected) in VECTORS {
        assert_eq!(cert_sn(issuer, serial), expected, "{issuer} / {serial}");
    }
}

#[test]
fn cert_sn_is_sensitive_to_separators_and_order() {
    let (issuer, serial, expected) = VECTORS[0];
    assert_ne!(cert_sn(&issuer.replace(',', ", "), serial), expected);
    let encoding_order: Vec<&str> = issuer.split(',').rev().collect();
    assert_ne!(cert_sn(&encoding_order.join(","), serial), expected);
}

#[test]
fn decimal_helper_round_trips_big_serials() {
    assert_eq!(decimal_to_be_bytes("0"), vec![0]);
    assert_eq!(decimal_to_be_bytes("255"), vec![0xff]);
    assert_eq!(decimal_to_be_bytes("256"), vec![1, 0]);
    assert_eq!(
        decimal_to_be_bytes("2292228364100439313"),
        2292228364100439313u64.to_be_bytes().to_vec()
    );
    // The iTrus G3 serial is 20 bytes, beyond u128.
    let itrus = decimal_to_be_bytes("95790491425698859646659490580052089075020051350");
    assert_eq!(itrus.len(), 20);
    assert_eq!(itrus[0], 0x10);
}

// ---------------------------------------------------------------------------------------------
// SNs of real (generated) certificates.

#[test]
fn app_cert_sn_reproduces_alipay_vectors_on_generated_certificates() -> TestResult {
    let key = ecdsa_key(&rcgen::PKCS_ECDSA_P256_SHA256)?;
    for index in [0, 1, 6, 7] {
        let (issuer, serial, expected) = VECTORS[index];
        let pem_text = self_signed(issuer, serial, &key)?;
        assert_eq!(issuer_of(&pem_text)?, issuer, "vector {}", index + 1);
        assert_eq!(app_cert_sn(&pem_text)?, expected, "vector {}", index + 1);
    }
    Ok(())
}

#[test]
fn app_cert_sn_uses_the_first_certificate_of_a_chain() -> TestResult {
    // The CA is Class 1 R1; the app certificate it issues carries vector 1's serial.
    let ca_key = ecdsa_key(&rcgen::PKCS_ECDSA_P256_SHA256)?;
    let ca_params = params(dn_from_rfc2253(CLASS_1_R1)?, "1");
    let ca_pem = ca_params.self_signed(&ca_key)?.pem();
    let issuer = Issuer::new(ca_params, ca_key);

    let mut leaf_subject = DistinguishedName::new();
    leaf_subject.push(DnType::CountryName, "CN");
    leaf_subject.push(DnType::OrganizationName, "某某科技有限公司");
    leaf_subject.push(DnType::CommonName, "2088000000000000");
    let leaf_key = ecdsa_key(&rcgen::PKCS_ECDSA_P256_SHA256)?;
    let leaf_pem = params(leaf_subject, VECTORS[0].1)
        .signed_by(&leaf_key, &issuer)?
        .pem();

    let chain = format!("{leaf_pem}\n{ca_pem}");
    assert_eq!(issuer_of(&leaf_pem)?, CLASS_1_R1);
    assert_eq!(app_cert_sn(&chain)?, VECTORS[0].2);
    // Order matters: with the CA first, its own (self-issued, serial 1) SN comes out.
    let reversed = format!("{ca_pem}{leaf_pem}");
    assert_eq!(app_cert_sn(&reversed)?, cert_sn(CLASS_1_R1, "1"));
    Ok(())
}

#[test]
fn crlf_files_and_surrounding_text_are_accepted() -> TestResult {
    let key = ecdsa_key(&rcgen::PKCS_ECDSA_P256_SHA256)?;
    let (issuer, serial, expected) = VECTORS[1];
    let pem_text = self_signed(issuer, serial, &key)?.replace('\n', "\r\n");
    let with_noise = format!("subject=whatever\r\n{pem_text}\r\n\r\n");
    assert_eq!(app_cert_sn(&with_noise)?, expected);
    Ok(())
}

#[test]
fn issuer_attributes_without_an_rfc2253_keyword_use_the_oid_and_hex() -> TestResult {
    // Java's X500Principal.getName() has no keyword for emailAddress: OID=#<DER hex>.
    let mut dn = DistinguishedName::new();
    dn.push(DnType::CountryName, "CN");
    dn.push(
        DnType::CustomDnType(vec![1, 2, 840, 113549, 1, 9, 1]),
        DnValue::Ia5String("ca@x.cn".try_into()?),
    );
    dn.push(DnType::CommonName, "Example CA");
    let key = ecdsa_key(&rcgen::PKCS_ECDSA_P256_SHA256)?;
    let pem_text = params(dn, "7").self_signed(&key)?.pem();
    let expected_issuer = "CN=Example CA,1.2.840.113549.1.9.1=#1607636140782e636e,C=CN";
    assert_eq!(issuer_of(&pem_text)?, expected_issuer);
    assert_eq!(app_cert_sn(&pem_text)?, cert_sn(expected_issuer, "7"));
    Ok(())
}

#[test]
fn issuer_values_with_specials_are_escaped() -> TestResult {
    let mut dn = DistinguishedName::new();
    dn.push(DnType::CountryName, "CN");
    dn.push(DnType::OrganizationName, "Acme, Inc.");
    dn.push(DnType::CommonName, "#1 CA+<test>;\"x\" ");
    let key = ecdsa_key(&rcgen::PKCS_ECDSA_P256_SHA256)?;
    let pem_text = params(dn, "9").self_signed(&key)?.pem();
    assert_eq!(
        issuer_of(&pem_text)?,
        r#"CN=\#1 CA\+\<test\>\;\"x\"\ ,O=Acme\, Inc.,C=CN"#
    );
    Ok(())
}

// ---------------------------------------------------------------------------------------------
// alipay_root_cert_sn.

#[test]
fn root_sn_keeps_only_rsa_signed_roots_in_file_order() -> TestResult {
    // Stand-ins for the production bundle: SM2 (here ECDSA P-256), R1, E1, iTrus G3.
    let (sm2_issuer, sm2_serial, _) = VECTORS[4];
    let (r1_issuer, r1_serial, r1_sn) = VECTORS[2];
    let (e1_issuer, e1_serial, _) = VECTORS[5];
    let (itrus_issuer, itrus_serial, itrus_sn) = VECTORS[3];

    let sm2_stand_in = self_signed(
        sm2_issuer,
        sm2_serial,
        &ecdsa_key(&rcgen::PKCS_ECDSA_P256_SHA256)?,
    )?;
    let (_, r1_key) = rsa_key(&rcgen::PKCS_RSA_SHA256)?;
    let r1 = self_signed(r1_issuer, r1_serial, &r1_key)?;
    let e1 = self_signed(
        e1_issuer,
        e1_serial,
        &ecdsa_key(&rcgen::PKCS_ECDSA_P384_SHA384)?,
    )?;
    // Another member of the PKCS#1 family than R1's, as the real G3 (sha1WithRSA) is.
    let (_, itrus_key) = rsa_key(&rcgen::PKCS_RSA_SHA384)?;
    let itrus = self_signed(itrus_issuer, itrus_serial, &itrus_key)?;

    let bundle = [sm2_stand_in.as_str(), &r1, &e1, &itrus].join("\n");
    assert_eq!(root_cert_sn(&bundle)?, PRODUCTION_ROOT_SN);
    assert_eq!(PRODUCTION_ROOT_SN, format!("{r1_sn}_{itrus_sn}"));

    // File order, not sorted order.
    let swapped = [itrus.as_str(), &e1, &r1, &sm2_stand_in].join("\n");
    assert_eq!(root_cert_sn(&swapped)?, format!("{itrus_sn}_{r1_sn}"));
    // One RSA root alone gives its own SN, no separator.
    assert_eq!(root_cert_sn(&r1)?, r1_sn);
    Ok(())
}

#[test]
fn root_sn_without_any_rsa_root_is_an_error() -> TestResult {
    let (issuer, serial, _) = VECTORS[5];
    let e1 = self_signed(issuer, serial, &ecdsa_key(&rcgen::PKCS_ECDSA_P384_SHA384)?)?;
    let p256 = self_signed(NRCAC_ROOT, "1", &ecdsa_key(&rcgen::PKCS_ECDSA_P256_SHA256)?)?;
    assert_eq!(
        root_cert_sn(&format!("{p256}{e1}")),
        Err(CertError::NoRsaRoot)
    );
    Ok(())
}

// ---------------------------------------------------------------------------------------------
// Alipay's public keys by SN.

#[test]
fn alipay_certificates_resolve_the_key_that_verifies() -> TestResult {
    let (issuer, serial, sn) = VECTORS[6];
    let (private, pair) = rsa_key(&rcgen::PKCS_RSA_SHA256)?;
    let certs = AlipayCertificates::from_pem(&self_signed(issuer, serial, &pair)?)?;
    assert_eq!(certs.sns().collect::<Vec<_>>(), [sn]);

    let content = "{\"code\":\"10000\",\"msg\":\"Success\"}".as_bytes();
    let signature = private.sign_base64(content)?;
    let key = certs
        .key_for_sn(sn)
        .ok_or("no key for the certificate's SN")?;
    key.verify_base64(content, &signature)?;
    assert!(key.verify_base64(b"tampered", &signature).is_err());
    assert_eq!(key.spki_der(), private.public_key()?.spki_der());

    assert!(certs.key_for_sn(VECTORS[7].2).is_none());
    assert!(certs.key_for_sn("").is_none());
    assert_eq!(certs.keys().count(), 1);
    Ok(())
}

#[test]
fn a_reissued_certificate_is_added_beside_the_old_one() -> TestResult {
    let (issuer, old_serial, old_sn) = VECTORS[6];
    let (_, new_serial, new_sn) = VECTORS[7];
    let (old_private, old_pair) = rsa_key(&rcgen::PKCS_RSA_SHA256)?;
    let (new_private, new_pair) = rsa_key(&rcgen::PKCS_RSA_SHA256)?;

    let mut certs = AlipayCertificates::from_pem(&self_signed(issuer, old_serial, &old_pair)?)?;
    assert!(certs.key_for_sn(new_sn).is_none());
    let new_pem = self_signed(issuer, new_serial, &new_pair)?;
    assert_eq!(certs.add_pem(&new_pem)?, new_sn);
    assert_eq!(certs.sns().collect::<Vec<_>>(), [old_sn, new_sn]);
    assert_eq!(certs.keys().count(), 2);

    let content = b"out_trade_no=20240101000001";
    let old_signature = old_private.sign_base64(content)?;
    let new_signature = new_private.sign_base64(content)?;
    let old_key = certs.key_for_sn(old_sn).ok_or("old SN unresolved")?;
    let new_key = certs.key_for_sn(new_sn).ok_or("new SN unresolved")?;
    old_key.verify_base64(content, &old_signature)?;
    new_key.verify_base64(content, &new_signature)?;
    assert!(old_key.verify_base64(content, &new_signature).is_err());
    assert!(new_key.verify_base64(content, &old_signature).is_err());

    // The verifier picks by the response's alipay_cert_sn.
    let verifier = AlipayVerifier::Certificates(certs.clone());
    verifier
        .response_key(Some(new_sn))?
        .verify_base64(content, &new_signature)?;
    assert!(
        verifier
            .response_key(Some("0".repeat(32).as_str()))
            .is_err()
    );
    assert!(verifier.response_key(None).is_err());
    assert_eq!(verifier.notification_keys().len(), 2);

    // Re-adding a known certificate changes nothing.
    assert_eq!(certs.add_pem(&new_pem)?, new_sn);
    assert_eq!(certs.keys().count(), 2);
    Ok(())
}

#[test]
fn a_different_key_under_a_known_sn_is_refused() -> TestResult {
    let (issuer, serial, sn) = VECTORS[6];
    let (_, first) = rsa_key(&rcgen::PKCS_RSA_SHA256)?;
    let (_, second) = rsa_key(&rcgen::PKCS_RSA_SHA256)?;
    let mut certs = AlipayCertificates::from_pem(&self_signed(issuer, serial, &first)?)?;
    let impostor = self_signed(issuer, serial, &second)?;
    assert_eq!(
        certs.add_pem(&impostor),
        Err(CertError::ConflictingSn { sn: sn.to_owned() })
    );
    assert_eq!(certs.keys().count(), 1);
    Ok(())
}

#[test]
fn a_non_rsa_alipay_key_is_rejected() -> TestResult {
    let (issuer, serial, sn) = VECTORS[1];
    let pem_text = self_signed(issuer, serial, &ecdsa_key(&rcgen::PKCS_ECDSA_P256_SHA256)?)?;
    let err = AlipayCertificates::from_pem(&pem_text).unwrap_err();
    assert_eq!(
        err,
        CertError::NotRsaKey {
            sn: sn.to_owned(),
            algorithm: "1.2.840.10045.2.1".to_owned()
        }
    );
    assert!(err.to_string().contains("non-RSA"));
    Ok(())
}

#[test]
fn every_backend_loads_the_certificate_key() -> TestResult {
    let (issuer, serial, sn) = VECTORS[1];
    let (private, pair) = rsa_key(&rcgen::PKCS_RSA_SHA256)?;
    let pem_text = self_signed(issuer, serial, &pair)?;
    let signature = private.sign_base64(b"x")?;
    for &backend in alipay::Backend::ALL {
        let certs = AlipayCertificates::from_pem_with(&pem_text, backend)?;
        assert_eq!(certs.backend(), backend);
        let key = certs.key_for_sn(sn).ok_or("SN unresolved")?;
        assert_eq!(key.backend(), backend);
        key.verify_base64(b"x", &signature)?;
    }
    Ok(())
}

// ---------------------------------------------------------------------------------------------
// The three files together.

#[test]
fn cert_mode_loads_the_three_files() -> TestResult {
    let app_key = ecdsa_key(&rcgen::PKCS_ECDSA_P256_SHA256)?;
    let app_pem = self_signed(VECTORS[0].0, VECTORS[0].1, &app_key)?;
    let (private, pair) = rsa_key(&rcgen::PKCS_RSA_SHA256)?;
    let alipay_pem = self_signed(VECTORS[1].0, VECTORS[1].1, &pair)?;
    let (_, root_key) = rsa_key(&rcgen::PKCS_RSA_SHA256)?;
    let root_pem = self_signed(VECTORS[2].0, VECTORS[2].1, &root_key)?;

    let mode = CertMode::from_pem(&app_pem, &alipay_pem, &root_pem)?;
    assert_eq!(mode.app_cert_sn, VECTORS[0].2);
    assert_eq!(mode.alipay_root_cert_sn, VECTORS[2].2);
    let signature = private.sign_base64(b"body")?;
    mode.alipay
        .key_for_sn(VECTORS[1].2)
        .ok_or("Alipay SN unresolved")?
        .verify_base64(b"body", &signature)?;

    // An error names the file it came from.
    let err = CertMode::from_pem(&app_pem, &app_pem, &root_pem).unwrap_err();
    assert!(matches!(
        &err,
        CertError::InFile { file, source }
            if file.contains("Alipay public-key") && matches!(**source, CertError::NotRsaKey { .. })
    ));
    let err = CertMode::from_pem(&app_pem, &alipay_pem, "").unwrap_err();
    assert!(err.to_string().contains("root"), "{err}");
    Ok(())
}

// ---------------------------------------------------------------------------------------------
// Bad input.

#[test]
fn empty_and_garbage_text_are_errors() {
    for text in [
        "",
        "   \n",
        "not a certificate at all",
        "MIIBszCCAVegAwIBAgII",
    ] {
        assert_eq!(app_cert_sn(text), Err(CertError::NoCertificate), "{text:?}");
        assert_eq!(
            root_cert_sn(text),
            Err(CertError::NoCertificate),
            "{text:?}"
        );
        assert!(AlipayCertificates::from_pem(text).is_err(), "{text:?}");
    }
}

#[test]
fn a_pem_file_without_a_certificate_block_is_an_error() -> TestResult {
    let (private, _) = rsa_key(&rcgen::PKCS_RSA_SHA256)?;
    let public_pem = private.public_key()?.to_pem();
    assert_eq!(app_cert_sn(&public_pem), Err(CertError::NoCertificate));
    assert_eq!(
        AlipayCertificates::from_pem(&public_pem).unwrap_err(),
        CertError::NoCertificate
    );
    Ok(())
}

#[test]
fn broken_armour_and_broken_der_are_errors() -> TestResult {
    let bad_base64 = "-----BEGIN CERTIFICATE-----\n!!!not base64!!!\n-----END CERTIFICATE-----\n";
    assert_eq!(app_cert_sn(bad_base64), Err(CertError::NotPem));

    let not_x509 = "-----BEGIN CERTIFICATE-----\nAAECAwQF\n-----END CERTIFICATE-----\n";
    assert_eq!(
        app_cert_sn(not_x509),
        Err(CertError::Unparsable { index: 1 })
    );
    let (_, root_key) = rsa_key(&rcgen::PKCS_RSA_SHA256)?;
    let root = self_signed(VECTORS[2].0, VECTORS[2].1, &root_key)?;
    assert_eq!(
        root_cert_sn(&format!("{root}{not_x509}")),
        Err(CertError::Unparsable { index: 2 })
    );
    assert!(
        CertError::Unparsable { index: 2 }
            .to_string()
            .contains("certificate 2")
    );
    Ok(())
}
