//! Verifying a gateway response. Alipay signs the exact bytes of the `<method>_response` node
//! as they appear in the body, so the node is kept as raw text (never re-serialised), verified,
//! and only then deserialised, from that same text, so that nothing outside the signed bytes
//! can inject a business field.

use crate::keys::VerifyError;
use crate::verifier::{AlipayVerifier, KeyLookupError};
use serde::Deserialize;
use serde::de::{self, MapAccess, Visitor};
use serde_json::value::RawValue;
use std::borrow::Cow;
use std::fmt;

/// The node name that carries gateway errors for any method.
pub const ERROR_NODE: &str = "error_response";

/// `alipay.trade.pay` → `alipay_trade_pay_response`.
pub fn node_name(method: &str) -> String {
    format!("{}_response", method.replace('.', "_"))
}

/// A response body split into its parts, borrowing the raw node text from the body.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ResponseParts<'a> {
    /// `true` when the node is `error_response` rather than the method's own node.
    pub is_error_node: bool,
    /// The raw text of the node, `{` to its matching `}`, exactly as received.
    pub node: &'a str,
    pub sign: Option<String>,
    pub alipay_cert_sn: Option<String>,
}

/// `code`, `msg`, `sub_code`, `sub_msg`: present in every node. `Debug` redacts `sub_msg`,
/// which can quote the signed request (see [`crate::outcome::Failure`]).
#[derive(Clone, PartialEq, Eq, Deserialize)]
pub struct Status {
    pub code: String,
    #[serde(default)]
    pub msg: String,
    #[serde(default)]
    pub sub_code: Option<String>,
    #[serde(default)]
    pub sub_msg: Option<String>,
}

impl fmt::Debug for Status {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Status")
            .field("code", &self.code)
            .field("msg", &self.msg)
            .field("sub_code", &self.sub_code)
            .field("sub_msg", &self.sub_msg.as_ref().map(|_| "<redacted>"))
            .finish()
    }
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ResponseError {
    #[error("the response is not a JSON object: {0}")]
    NotJson(String),
    #[error("the response has neither {0} nor error_response")]
    MissingNode(String),
    #[error("the response repeats its root node {0}: refused as a forgery attempt")]
    RepeatedRootNode(String),
    #[error("the response repeats the key {0}")]
    RepeatedKey(&'static str),
    #[error("the response node is not a JSON object")]
    NodeNotObject,
    #[error("`{0}` is not a JSON string")]
    NotAString(&'static str),
    #[error("the response is not signed (code {code}, sub_code {sub_code:?})", code = .status.as_ref().map_or("?", |s| s.code.as_str()), sub_code = .status.as_ref().and_then(|s| s.sub_code.as_deref()))]
    Unsigned { status: Option<Status> },
    #[error("no key to verify the response: {0}")]
    NoKey(#[from] KeyLookupError),
    #[error("the response signature is invalid: {0}")]
    BadSignature(VerifyError),
    #[error("the verified response does not have the expected fields: {0}")]
    Fields(String),
}

/// The body's top-level entries in order, with duplicates kept (a map would hide them).
struct TopLevel<'a>(Vec<(String, &'a RawValue)>);

impl<'de> Deserialize<'de> for TopLevel<'de> {
    fn deserialize<D: de::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct EntriesVisitor;
        impl<'de> Visitor<'de> for EntriesVisitor {
            type Value = TopLevel<'de>;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a JSON object")
            }
            fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Self::Value, A::Error> {
                let mut entries = Vec::new();
                while let Some(entry) = map.next_entry::<String, &'de RawValue>()? {
                    entries.push(entry);
                }
                Ok(TopLevel(entries))
            }
        }
        deserializer.deserialize_map(EntriesVisitor)
    }
}

/// Splits a body into node, `sign` and `alipay_cert_sn`, refusing bodies that could smuggle a
/// second root node past the verifier.
pub fn split<'a>(body: &'a str, method: &str) -> Result<ResponseParts<'a>, ResponseError> {
    let TopLevel(entries) =
        serde_json::from_str(body).map_err(|e| ResponseError::NotJson(e.to_string()))?;
    let wanted = node_name(method);
    let single = |name: &str| -> Result<Option<&'a RawValue>, ()> {
        let mut found = entries.iter().filter(|(k, _)| k == name).map(|(_, v)| *v);
        let first = found.next();
        if found.next().is_some() {
            Err(())
        } else {
            Ok(first)
        }
    };
    let method_node =
        single(&wanted).map_err(|()| ResponseError::RepeatedRootNode(wanted.clone()))?;
    let error_node =
        single(ERROR_NODE).map_err(|()| ResponseError::RepeatedRootNode(ERROR_NODE.into()))?;
    let (is_error_node, node) = match (method_node, error_node) {
        (Some(node), _) => (false, node),
        (None, Some(node)) => (true, node),
        (None, None) => return Err(ResponseError::MissingNode(wanted)),
    };
    let node = node.get();
    if !node.starts_with('{') {
        return Err(ResponseError::NodeNotObject);
    }
    let string_field = |name: &'static str| -> Result<Option<String>, ResponseError> {
        match single(name).map_err(|()| ResponseError::RepeatedKey(name))? {
            None => Ok(None),
            Some(raw) => serde_json::from_str::<String>(raw.get())
                .map(Some)
                .map_err(|_| ResponseError::NotAString(name)),
        }
    };
    Ok(ResponseParts {
        is_error_node,
        node,
        sign: string_field("sign")?.filter(|s| !s.is_empty()),
        alipay_cert_sn: string_field("alipay_cert_sn")?.filter(|s| !s.is_empty()),
    })
}

/// A node whose signature checked out; its fields can be trusted.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Verified<'a> {
    pub is_error_node: bool,
    /// The text the signature verified: the node as received, or, when only the `\/`
    /// retry verified, the node with `\/` unescaped. Fields are read from this text only.
    pub node: Cow<'a, str>,
}

impl Verified<'_> {
    pub fn status(&self) -> Result<Status, ResponseError> {
        self.fields()
    }

    /// Deserialises business fields from the verified text itself.
    pub fn fields<T: de::DeserializeOwned>(&self) -> Result<T, ResponseError> {
        serde_json::from_str(&self.node).map_err(|e| ResponseError::Fields(e.to_string()))
    }
}

/// Splits and verifies. An unsigned body is returned as [`ResponseError::Unsigned`] with its
/// (untrusted) status so that callers can report gateway errors; it is never a success.
pub fn verify<'a>(
    body: &'a str,
    method: &str,
    verifier: &AlipayVerifier,
) -> Result<Verified<'a>, ResponseError> {
    let parts = split(body, method)?;
    let Some(sign) = parts.sign.as_deref() else {
        return Err(ResponseError::Unsigned {
            status: serde_json::from_str(parts.node).ok(),
        });
    };
    let key = verifier.response_key(parts.alipay_cert_sn.as_deref())?;
    let node = match key.verify_base64(parts.node.as_bytes(), sign) {
        Ok(()) => Cow::Borrowed(parts.node),
        // Some gateways sign the text before escaping `/`; the official SDK retries unescaped.
        // The two texts can differ in meaning (`\\/` in a string), so the one that verified
        // is the one kept.
        Err(VerifyError::Mismatch) if parts.node.contains("\\/") => {
            let unescaped = parts.node.replace("\\/", "/");
            key.verify_base64(unescaped.as_bytes(), sign)
                .map_err(|_| ResponseError::BadSignature(VerifyError::Mismatch))?;
            Cow::Owned(unescaped)
        }
        Err(e) => return Err(ResponseError::BadSignature(e)),
    };
    Ok(Verified {
        is_error_node: parts.is_error_node,
        node,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn node_names_follow_the_method() {
        assert_eq!(node_name("alipay.trade.pay"), "alipay_trade_pay_response");
        assert_eq!(
            node_name("alipay.data.dataservice.bill.downloadurl.query"),
            "alipay_data_dataservice_bill_downloadurl_query_response"
        );
    }

    #[test]
    fn split_keeps_the_raw_node_text_byte_for_byte() -> Result<(), ResponseError> {
        let body = r#"{"alipay_trade_precreate_response":{"code":"10000", "msg":"Success","qr_code":"https:\/\/qr.alipay.com\/x"},"sign":"c2ln"}"#;
        let parts = split(body, "alipay.trade.precreate")?;
        assert_eq!(
            parts.node,
            r#"{"code":"10000", "msg":"Success","qr_code":"https:\/\/qr.alipay.com\/x"}"#
        );
        assert_eq!(parts.sign.as_deref(), Some("c2ln"));
        assert!(!parts.is_error_node);
        Ok(())
    }

    #[test]
    fn split_finds_error_response_and_cert_sn() -> Result<(), ResponseError> {
        let body = r#"{"error_response":{"code":"40002","msg":"Invalid Arguments","sub_code":"isv.invalid-signature"},"alipay_cert_sn":"abc","sign":"c2ln"}"#;
        let parts = split(body, "alipay.trade.query")?;
        assert!(parts.is_error_node);
        assert_eq!(parts.alipay_cert_sn.as_deref(), Some("abc"));
        Ok(())
    }

    #[test]
    fn debug_of_a_status_redacts_sub_msg() {
        let status: Status = serde_json::from_str(
            r#"{"code":"40002","msg":"Invalid Arguments","sub_code":"isv.invalid-signature","sub_msg":"auth_code=287654321098765432"}"#,
        )
        .unwrap_or_else(|e| unreachable!("{e}"));
        let shown = format!(
            "{:?}",
            ResponseError::Unsigned {
                status: Some(status)
            }
        );
        assert!(shown.contains("isv.invalid-signature"), "{shown}");
        assert!(!shown.contains("287654321098765432"), "{shown}");
    }

    #[test]
    fn split_refuses_a_repeated_root_node() {
        let body = r#"{"alipay_trade_query_response":{"code":"40004"},"alipay_trade_query_response":{"code":"10000"},"sign":"c2ln"}"#;
        assert_eq!(
            split(body, "alipay.trade.query"),
            Err(ResponseError::RepeatedRootNode(
                "alipay_trade_query_response".into()
            ))
        );
    }

    #[test]
    fn split_refuses_repeated_sign_and_non_objects() {
        let body = r#"{"alipay_trade_query_response":{"code":"10000"},"sign":"a","sign":"b"}"#;
        assert_eq!(
            split(body, "alipay.trade.query"),
            Err(ResponseError::RepeatedKey("sign"))
        );
        let body = r#"{"alipay_trade_query_response":"encrypted","sign":"a"}"#;
        assert_eq!(
            split(body, "alipay.trade.query"),
            Err(ResponseError::NodeNotObject)
        );
        assert!(matches!(
            split("<html>", "alipay.trade.query"),
            Err(ResponseError::NotJson(_))
        ));
        assert!(matches!(
            split(r#"{"sign":"a"}"#, "alipay.trade.query"),
            Err(ResponseError::MissingNode(_))
        ));
    }
}
