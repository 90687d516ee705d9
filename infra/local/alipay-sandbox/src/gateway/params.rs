//! Request parameters as the gateway receives them: the query string and the form body, each
//! percent-decoded exactly once to bytes, then decoded as text in the request's `charset`
//! (UTF-8 or GBK) — never through a UTF-8-only form parser, which would corrupt GBK bytes.

use encoding_rs::{Encoding, GBK, UTF_8};
use std::collections::BTreeMap;

/// Raw (decoded-once) pairs, query first then body.
#[derive(Debug, Clone, Default)]
pub struct RawParams {
    pairs: Vec<(Vec<u8>, Vec<u8>)>,
}

impl RawParams {
    pub fn from_parts(query: &[u8], body: &[u8]) -> RawParams {
        let mut pairs = alipay::form::decode_raw(query);
        pairs.extend(alipay::form::decode_raw(body));
        RawParams { pairs }
    }

    /// A system parameter read leniently as text (the last occurrence wins). System
    /// parameters are ASCII, so this is safe before the charset is known.
    pub fn system(&self, key: &str) -> Option<String> {
        self.pairs
            .iter()
            .rev()
            .find(|(k, _)| k == key.as_bytes())
            .map(|(_, v)| String::from_utf8_lossy(v).into_owned())
    }

    /// Every parameter as text in `encoding` (the last occurrence of a key wins), or the first
    /// key whose value is not valid text in that encoding.
    pub fn decode(&self, encoding: &'static Encoding) -> Result<BTreeMap<String, String>, String> {
        let mut params = BTreeMap::new();
        for (key, value) in &self.pairs {
            let key_text = encoding
                .decode_without_bom_handling_and_without_replacement(key)
                .ok_or_else(|| String::from_utf8_lossy(key).into_owned())?
                .into_owned();
            let value_text = encoding
                .decode_without_bom_handling_and_without_replacement(value)
                .ok_or_else(|| key_text.clone())?
                .into_owned();
            params.insert(key_text, value_text);
        }
        Ok(params)
    }
}

/// `utf-8` and `gbk` (and `gb2312`, a GBK subset), in any case. An absent `charset` means GBK,
/// the gateway's historical default.
pub fn charset(label: Option<&str>) -> Option<&'static Encoding> {
    let Some(label) = label else {
        return Some(GBK);
    };
    match label.to_ascii_lowercase().as_str() {
        "utf-8" | "utf8" => Some(UTF_8),
        "gbk" | "gb2312" => Some(GBK),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn decodes_gbk_bytes_in_gbk() -> Result<(), String> {
        // "测试" in GBK is B2 E2 CA D4.
        let raw = RawParams::from_parts(b"charset=gbk", b"subject=%B2%E2%CA%D4&a=1+2");
        let params = raw.decode(GBK)?;
        assert_eq!(params.get("subject").map(String::as_str), Some("测试"));
        assert_eq!(params.get("a").map(String::as_str), Some("1 2"));
        assert!(raw.decode(UTF_8).is_err());
        Ok(())
    }

    #[test]
    fn body_overrides_query_and_charsets_are_limited() {
        let raw = RawParams::from_parts(b"x=1", b"x=2");
        assert_eq!(raw.system("x").as_deref(), Some("2"));
        assert_eq!(charset(Some("UTF-8")), Some(UTF_8));
        assert_eq!(charset(Some("GBK")), Some(GBK));
        assert_eq!(charset(None), Some(GBK));
        assert_eq!(charset(Some("latin1")), None);
    }
}
