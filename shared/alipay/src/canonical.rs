//! The two "strings to sign" of OpenAPI 2.0. They differ in two details that break
//! integrations when mixed up: a request signs `sign_type` and drops empty values; a
//! notification drops `sign_type` too and keeps empty values (the official `rsaCheckV1` rule).

/// The request string: every sent parameter except `sign`, empty keys or values dropped,
/// sorted by key in byte order, `key=value` joined by `&`, nothing URL-encoded.
pub fn request_content<'a>(params: impl IntoIterator<Item = (&'a str, &'a str)>) -> String {
    let mut kept: Vec<(&str, &str)> = params
        .into_iter()
        .filter(|(k, v)| *k != "sign" && !k.is_empty() && !v.is_empty())
        .collect();
    kept.sort_unstable();
    let mut content = String::new();
    for (i, (k, v)) in kept.into_iter().enumerate() {
        if i > 0 {
            content.push('&');
        }
        content.push_str(k);
        content.push('=');
        content.push_str(v);
    }
    content
}

/// The notification string over raw (percent-decoded, not transcoded) bytes: every received
/// parameter except `sign` and `sign_type`, sorted by key bytes, `key=value` joined by `&`.
pub fn notification_content<'a>(params: impl IntoIterator<Item = (&'a [u8], &'a [u8])>) -> Vec<u8> {
    let mut kept: Vec<(&[u8], &[u8])> = params
        .into_iter()
        .filter(|(k, _)| *k != b"sign" && *k != b"sign_type")
        .collect();
    kept.sort_unstable();
    let mut content = Vec::new();
    for (i, (k, v)) in kept.into_iter().enumerate() {
        if i > 0 {
            content.push(b'&');
        }
        content.extend_from_slice(k);
        content.push(b'=');
        content.extend_from_slice(v);
    }
    content
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn request_content_sorts_keeps_sign_type_and_drops_sign_and_empties() {
        let content = request_content([
            ("timestamp", "2024-01-01 12:00:00"),
            ("sign", "SIGNATURE"),
            ("app_id", "2021000000000000"),
            ("notify_url", ""),
            ("sign_type", "RSA2"),
            ("biz_content", r#"{"a":"b&c=d"}"#),
        ]);
        assert_eq!(
            content,
            r#"app_id=2021000000000000&biz_content={"a":"b&c=d"}&sign_type=RSA2&timestamp=2024-01-01 12:00:00"#
        );
    }

    #[test]
    fn notification_content_drops_sign_and_sign_type_but_keeps_empty_values() {
        let params: [(&[u8], &[u8]); 5] = [
            (b"trade_status", b"TRADE_SUCCESS"),
            (b"sign_type", b"RSA2"),
            (b"body", b""),
            (b"sign", b"SIG"),
            (b"app_id", b"1"),
        ];
        assert_eq!(
            notification_content(params),
            b"app_id=1&body=&trade_status=TRADE_SUCCESS".to_vec()
        );
    }

    #[test]
    fn byte_order_puts_underscore_after_capitals_and_before_lowercase() {
        let content = request_content([("a_b", "1"), ("aB", "2"), ("ab", "3")]);
        assert_eq!(content, "aB=2&a_b=1&ab=3");
    }
}
