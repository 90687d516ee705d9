//! Signing and verifying with freshly generated keys: key formats, backend agreement, the
//! `openssl` CLI as an outside reference, and the traps of the protocol.

use alipay::keys::{KeyError, VerifyError};
use alipay::notify::{self, NotifyError};
use alipay::outcome::{self, Outcome, UnknownCause, Waiting};
use alipay::request::{SystemParams, sign_request};
use alipay::response::{self, ResponseError};
use alipay::{AlipayVerifier, Backend, PrivateKey, PublicKey};
use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use std::process::Command;

type TestResult = Result<(), Box<dyn std::error::Error>>;

const CONTENT: &str = "app_id=2021000000000000&biz_content={\"out_trade_no\":\"T20240101000001\",\"total_amount\":\"0.01\",\"subject\":\"测试\"}&charset=utf-8&format=JSON&method=alipay.trade.precreate&notify_url=https://example.com/alipay/notify&sign_type=RSA2&timestamp=2024-01-01 12:00:00&version=1.0";

/// The PKCS#1 `RSAPrivateKey` inside a PKCS#8 `PrivateKeyInfo` (the OCTET STRING's content).
fn pkcs1_der_of(pkcs8_pem: &str) -> Result<Vec<u8>, Box<dyn std::error::Error>> {
    let der = pem::parse(pkcs8_pem)?.into_contents();
    // 30 82 LLLL | 02 01 00 | 30 0d 06 09 <rsaEncryption> 05 00 | 04 82 LLLL | RSAPrivateKey
    if der.get(22..24) != Some(&[0x04, 0x82][..]) {
        return Err("unexpected PKCS#8 layout".into());
    }
    Ok(der[26..].to_vec())
}

fn bare(der: &[u8]) -> String {
    STANDARD.encode(der)
}

#[test]
fn every_key_format_and_backend_gives_the_same_signature() -> TestResult {
    let (key, pkcs8_pem) = PrivateKey::generate()?;
    let reference = key.sign_base64(CONTENT.as_bytes())?;
    assert_eq!(
        reference.len(),
        344,
        "2048-bit signatures are 344 Base64 characters"
    );
    let pkcs8_der = pem::parse(pkcs8_pem.as_str())?.into_contents();
    let pkcs1_der = pkcs1_der_of(&pkcs8_pem)?;
    let pkcs1_pem = pem::encode(&pem::Pem::new("RSA PRIVATE KEY", pkcs1_der.clone()));
    let forms = [
        pkcs8_pem.to_string(),
        bare(&pkcs8_der),
        pkcs1_pem,
        bare(&pkcs1_der),
        // Alipay's key tool output pasted with line breaks and stray spaces.
        bare(&pkcs1_der)
            .as_bytes()
            .chunks(64)
            .map(|c| String::from_utf8_lossy(c).into_owned())
            .collect::<Vec<_>>()
            .join("\n "),
    ];
    for &backend in Backend::ALL {
        for form in &forms {
            let loaded = PrivateKey::parse_with(form, backend)?;
            assert_eq!(
                loaded.sign_base64(CONTENT.as_bytes())?,
                reference,
                "{} disagrees",
                backend.name()
            );
        }
    }
    Ok(())
}

#[test]
fn signatures_verify_across_backends_and_fail_on_any_change() -> TestResult {
    let (key, pkcs8_pem) = PrivateKey::generate()?;
    let spki_pem = key.public_key()?.to_pem();
    for &signer_backend in Backend::ALL {
        let signer = PrivateKey::parse_with(&pkcs8_pem, signer_backend)?;
        let signature = signer.sign_base64(CONTENT.as_bytes())?;
        for &verifier_backend in Backend::ALL {
            let public = PublicKey::parse_with(&spki_pem, verifier_backend)?;
            public.verify_base64(CONTENT.as_bytes(), &signature)?;
            let mut changed = CONTENT.as_bytes().to_vec();
            changed[5] ^= 0x20;
            assert_eq!(
                public.verify_base64(&changed, &signature),
                Err(VerifyError::Mismatch),
                "{} → {}",
                signer_backend.name(),
                verifier_backend.name()
            );
            let bare_public = PublicKey::parse_with(&public.to_base64(), verifier_backend)?;
            bare_public.verify_base64(CONTENT.as_bytes(), &signature)?;
        }
    }
    Ok(())
}

#[test]
fn another_key_does_not_verify() -> TestResult {
    let (key, _) = PrivateKey::generate()?;
    let (other, _) = PrivateKey::generate()?;
    let signature = key.sign_base64(CONTENT.as_bytes())?;
    for &backend in Backend::ALL {
        let other_public = PublicKey::from_spki_der_with(other.public_key()?.spki_der(), backend)?;
        assert_eq!(
            other_public.verify_base64(CONTENT.as_bytes(), &signature),
            Err(VerifyError::Mismatch)
        );
    }
    Ok(())
}

#[test]
fn private_keys_never_show_their_material() -> TestResult {
    let (key, pem_text) = PrivateKey::generate()?;
    let body_line = pem_text.lines().nth(1).ok_or("PEM has a body")?.to_owned();
    for shown in [format!("{key:?}"), format!("{key}"), format!("{key:#?}")] {
        assert!(!shown.contains(&body_line[..20]), "leaked: {shown}");
        assert!(shown.contains("redacted"));
    }
    Ok(())
}

#[test]
fn malformed_keys_give_clear_errors_without_material() -> TestResult {
    let (key, pem_text) = PrivateKey::generate()?;
    let public_pem = key.public_key()?.to_pem();
    assert_eq!(
        PrivateKey::parse("not a key at all!").err(),
        Some(KeyError::NotPemOrBase64)
    );
    assert_eq!(
        PrivateKey::parse(&public_pem).err(),
        Some(KeyError::UnexpectedPemLabel(
            "PUBLIC KEY".into(),
            "PRIVATE KEY or RSA PRIVATE KEY"
        ))
    );
    // A public key's bare Base64 where a private key is expected.
    assert_eq!(
        PrivateKey::parse(&key.public_key()?.to_base64()).err(),
        Some(KeyError::NotAnRsaPrivateKey)
    );
    // The private key where Alipay's public key is expected.
    let error = PublicKey::parse(&pem_text).err().ok_or("must fail")?;
    assert!(matches!(error, KeyError::UnexpectedPemLabel(..)));
    let bare_private = pem_text
        .lines()
        .filter(|l| !l.starts_with("-----"))
        .collect::<String>();
    let error = PublicKey::parse(&bare_private).err().ok_or("must fail")?;
    assert_eq!(error, KeyError::NotAnRsaPublicKey);
    assert!(!error.to_string().contains(&bare_private[..16]));
    Ok(())
}

#[test]
fn signed_requests_put_system_params_in_the_query_and_sign_exactly_what_is_sent() -> TestResult {
    let (key, _) = PrivateKey::generate()?;
    let biz = r#"{"out_trade_no":"T1","total_amount":"0.01","subject":"测试 & more"}"#;
    let params = SystemParams {
        app_id: "2021000000000000",
        method: "alipay.trade.precreate",
        timestamp: "2024-01-01 12:00:00",
        notify_url: Some("https://example.com/alipay/notify"),
        app_cert_sn: None,
        alipay_root_cert_sn: Some(""),
    };
    let signed = sign_request(&params, biz, &key)?;
    assert_eq!(
        signed.sign_content,
        format!(
            "app_id=2021000000000000&biz_content={biz}&charset=utf-8&format=JSON&method=alipay.trade.precreate&notify_url=https://example.com/alipay/notify&sign_type=RSA2&timestamp=2024-01-01 12:00:00&version=1.0"
        ),
        "empty values are dropped; sign_type is signed"
    );
    let query: Vec<(String, String)> = form_urlencoded::parse(signed.query.as_bytes())
        .into_owned()
        .collect();
    let get = |k: &str| {
        query
            .iter()
            .find(|(key, _)| key == k)
            .map(|(_, v)| v.as_str())
    };
    assert_eq!(get("charset"), Some("utf-8"));
    assert_eq!(get("biz_content"), None, "biz_content travels in the body");
    assert_eq!(get("alipay_root_cert_sn"), None);
    let sign = get("sign").ok_or("sign in query")?;
    key.public_key()?
        .verify_base64(signed.sign_content.as_bytes(), sign)?;
    let body: Vec<(String, String)> = form_urlencoded::parse(signed.body.as_bytes())
        .into_owned()
        .collect();
    assert_eq!(body, vec![("biz_content".to_owned(), biz.to_owned())]);
    Ok(())
}

/// Builds a response body the way Alipay does: the node signed as sent.
fn signed_body(
    method_node: &str,
    node: &str,
    signed_text: &str,
    key: &PrivateKey,
) -> Result<String, Box<dyn std::error::Error>> {
    let sign = key.sign_base64(signed_text.as_bytes())?;
    Ok(format!(r#"{{"{method_node}":{node},"sign":"{sign}"}}"#))
}

#[test]
fn escaped_slashes_verify_as_sent_and_with_the_unescaped_retry() -> TestResult {
    let (alipay_key, _) = PrivateKey::generate()?;
    let verifier = AlipayVerifier::PublicKey(alipay_key.public_key()?);
    let node = r#"{"code":"10000","msg":"Success","out_trade_no":"T1","qr_code":"https:\/\/qr.alipay.com\/bax01"}"#;
    let name = "alipay_trade_precreate_response";

    let as_sent = signed_body(name, node, node, &alipay_key)?;
    let verified = response::verify(&as_sent, "alipay.trade.precreate", &verifier)?;
    #[derive(serde::Deserialize)]
    struct Precreate {
        qr_code: String,
    }
    assert_eq!(
        verified.fields::<Precreate>()?.qr_code,
        "https://qr.alipay.com/bax01"
    );

    let signed_unescaped = signed_body(name, node, &node.replace("\\/", "/"), &alipay_key)?;
    response::verify(&signed_unescaped, "alipay.trade.precreate", &verifier)?;

    let signed_other = signed_body(name, node, &node.replace("bax01", "bax02"), &alipay_key)?;
    assert!(matches!(
        response::verify(&signed_other, "alipay.trade.precreate", &verifier),
        Err(ResponseError::BadSignature(_))
    ));
    Ok(())
}

#[test]
fn on_the_unescaped_retry_fields_come_from_the_text_that_verified() -> TestResult {
    let (alipay_key, _) = PrivateKey::generate()?;
    let verifier = AlipayVerifier::PublicKey(alipay_key.public_key()?);
    let method = "alipay.trade.precreate";
    let signed_text = r#"{"code":"10000","msg":"Success","out_trade_no":"T1","qr_code":"https:\/\/qr.alipay.com\/bax01"}"#;
    // Every `\/` rewritten as `\\/` on the way: the received text no longer verifies, the
    // retry's unescaping turns it back into the signed text, yet the received text means
    // `https:\/\/qr.alipay.com\/bax01`, backslashes included.
    let received = signed_text.replace("\\/", "\\\\/");
    let body = signed_body(
        "alipay_trade_precreate_response",
        &received,
        signed_text,
        &alipay_key,
    )?;
    let meant_by_the_received_text: serde_json::Value = serde_json::from_str(&received)?;
    assert_eq!(
        meant_by_the_received_text["qr_code"],
        "https:\\/\\/qr.alipay.com\\/bax01"
    );

    let verified = response::verify(&body, method, &verifier)?;
    assert_eq!(verified.node, signed_text);
    #[derive(Debug, serde::Deserialize)]
    struct Precreate {
        qr_code: String,
    }
    assert_eq!(
        verified.fields::<Precreate>()?.qr_code,
        "https://qr.alipay.com/bax01"
    );
    let outcome: Outcome<Precreate> =
        outcome::classify(&body, method, &verifier, Waiting::NotExpected);
    assert!(
        matches!(&outcome, Outcome::Success(p) if p.qr_code == "https://qr.alipay.com/bax01"),
        "{outcome:?}"
    );
    Ok(())
}

#[test]
fn an_unsigned_success_is_never_a_success() -> TestResult {
    let (alipay_key, _) = PrivateKey::generate()?;
    let verifier = AlipayVerifier::PublicKey(alipay_key.public_key()?);
    let body = r#"{"alipay_trade_pay_response":{"code":"10000","msg":"Success","trade_no":"1","out_trade_no":"T1","total_amount":"0.01"}}"#;
    assert!(matches!(
        response::verify(body, "alipay.trade.pay", &verifier),
        Err(ResponseError::Unsigned { status: Some(ref s) }) if s.code == "10000"
    ));
    let outcome: Outcome<serde_json::Value> =
        outcome::classify(body, "alipay.trade.pay", &verifier, Waiting::Allowed);
    assert!(matches!(
        outcome,
        Outcome::Unknown(UnknownCause::Unverifiable(_))
    ));
    Ok(())
}

#[test]
fn gbk_notifications_verify_over_gbk_bytes_and_decode_afterwards() -> TestResult {
    let (alipay_key, _) = PrivateKey::generate()?;
    let verifier = AlipayVerifier::PublicKey(alipay_key.public_key()?);
    let params = [
        ("charset", "GBK"),
        ("notify_id", "n1"),
        ("app_id", "2021000000000000"),
        ("out_trade_no", "T1"),
        ("trade_no", "2024010122001"),
        ("trade_status", "TRADE_SUCCESS"),
        ("total_amount", "0.10"),
        ("subject", "测试商品 一号"),
        ("body", ""),
    ];
    let body = notify::sign_form(&params, encoding_rs::GBK, &alipay_key)?;
    assert!(
        body.contains("%B2%E2"),
        "測 in GBK is B2E2: the body carries GBK bytes"
    );
    let verified = notify::verify(body.as_bytes(), &verifier)?;
    assert_eq!(verified.get("subject"), Some("测试商品 一号"));
    assert_eq!(
        verified.get("body"),
        Some(""),
        "empty values are kept and signed"
    );

    // Transcoding to UTF-8 before verifying (a common bug) breaks the signature.
    let utf8_body = body.replace(
        "%B2%E2%CA%D4%C9%CC%C6%B7+%D2%BB%BA%C5",
        "%E6%B5%8B%E8%AF%95%E5%95%86%E5%93%81+%E4%B8%80%E5%8F%B7",
    );
    assert_ne!(utf8_body, body);
    assert_eq!(
        notify::verify(utf8_body.as_bytes(), &verifier),
        Err(NotifyError::BadSignature(VerifyError::Mismatch))
    );
    Ok(())
}

/// Found by fuzzing (`notify_signed`): GBK is not a round trip for every character. The
/// encoder (WHATWG's gb18030 index, as encoding_rs implements it) writes the private-use U+E78F
/// as A6DB, which the decoder reads as U+FE11 (︑, its GB18030-2022 meaning). The signature is
/// over the bytes, so such a notification verifies, and its value is what the bytes mean.
#[test]
fn a_gbk_value_reads_as_its_bytes_mean_where_gbk_is_no_round_trip() -> TestResult {
    let (alipay_key, _) = PrivateKey::generate()?;
    let verifier = AlipayVerifier::PublicKey(alipay_key.public_key()?);
    let params = [
        ("charset", "gb2312"),
        ("out_trade_no", "T1"),
        ("seller_email", "shop\u{e78f}@example.com"),
    ];
    let body = notify::sign_form(&params, encoding_rs::GBK, &alipay_key)?;
    assert!(body.contains("shop%A6%DB%40example.com"), "{body}");
    let verified = notify::verify(body.as_bytes(), &verifier)?;
    assert_eq!(
        verified.get("seller_email"),
        Some("shop\u{fe11}@example.com")
    );
    assert_eq!(verified.get("out_trade_no"), Some("T1"));
    Ok(())
}

#[test]
fn notifications_with_a_non_rsa2_sign_type_are_refused() -> TestResult {
    let (alipay_key, _) = PrivateKey::generate()?;
    let verifier = AlipayVerifier::PublicKey(alipay_key.public_key()?);
    let body = notify::sign_form(&[("a", "1")], encoding_rs::UTF_8, &alipay_key)?;
    let rsa1 = body.replace("sign_type=RSA2", "sign_type=RSA");
    assert_eq!(
        notify::verify(rsa1.as_bytes(), &verifier),
        Err(NotifyError::UnsupportedSignType("RSA".into()))
    );
    let unsigned = "a=1&charset=utf-8";
    assert_eq!(
        notify::verify(unsigned.as_bytes(), &verifier),
        Err(NotifyError::MissingSign)
    );
    Ok(())
}

fn openssl() -> Option<std::path::PathBuf> {
    let found = Command::new("openssl").arg("version").output().ok()?;
    found.status.success().then(|| "openssl".into())
}

#[test]
fn signatures_match_the_openssl_cli() -> TestResult {
    let Some(openssl) = openssl() else {
        eprintln!(
            "skipped: the `openssl` command is not installed; nothing to cross-check against"
        );
        return Ok(());
    };
    let dir = tempfile::tempdir()?;
    let (key, pkcs8_pem) = PrivateKey::generate()?;
    let key_path = dir.path().join("app_private_key.pem");
    let public_path = dir.path().join("app_public_key.pem");
    let content_path = dir.path().join("content.txt");
    let sig_path = dir.path().join("content.sig");
    std::fs::write(&key_path, pkcs8_pem.as_bytes())?;
    std::fs::write(&public_path, key.public_key()?.to_pem())?;
    std::fs::write(&content_path, CONTENT)?;
    let signed = Command::new(&openssl)
        .args(["dgst", "-sha256", "-sign"])
        .arg(&key_path)
        .arg("-out")
        .arg(&sig_path)
        .arg(&content_path)
        .status()?;
    assert!(signed.success());
    let openssl_sign = STANDARD.encode(std::fs::read(&sig_path)?);
    for &backend in Backend::ALL {
        let ours = PrivateKey::parse_with(&pkcs8_pem, backend)?.sign_base64(CONTENT.as_bytes())?;
        assert_eq!(
            ours,
            openssl_sign,
            "{} differs from openssl",
            backend.name()
        );
    }
    // And openssl accepts ours.
    std::fs::write(
        &sig_path,
        STANDARD.decode(key.sign_base64(CONTENT.as_bytes())?)?,
    )?;
    let verified = Command::new(&openssl)
        .args(["dgst", "-sha256", "-verify"])
        .arg(&public_path)
        .arg("-signature")
        .arg(&sig_path)
        .arg(&content_path)
        .output()?;
    assert!(
        verified.status.success(),
        "{}",
        String::from_utf8_lossy(&verified.stdout)
    );
    Ok(())
}
