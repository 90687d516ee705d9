//! One gateway answer and how Alipay writes it on the wire: the `<method>_response` node with
//! `code` and `msg` first and `/` escaped as `\/`, followed by `sign`, an RSA2 signature by
//! Alipay's private key over the exact node text (in the request's charset). Gateway-level
//! refusals (`40001`, `40002`, …) are sent unsigned, as Alipay does.

use alipay::PrivateKey;
use encoding_rs::Encoding;
use serde_json::Value;

pub const SUCCESS: &str = "10000";
pub const WAITING: &str = "10003";
pub const UNKNOWN: &str = "20000";
pub const MISSING_ARGUMENTS: &str = "40001";
pub const INVALID_ARGUMENTS: &str = "40002";
pub const BUSINESS_FAILED: &str = "40004";

/// Alipay's `msg` for each `code` (the leading space of `10003`'s is Alipay's own).
pub fn default_msg(code: &str) -> &'static str {
    match code {
        SUCCESS => "Success",
        WAITING => " order success pay inprocess",
        UNKNOWN => "Service Currently Unavailable",
        "20001" => "Insufficient Token Permissions",
        MISSING_ARGUMENTS => "Missing Required Arguments",
        INVALID_ARGUMENTS => "Invalid Arguments",
        BUSINESS_FAILED => "Business Failed",
        "40006" => "Insufficient Permissions",
        _ => "Unknown Error",
    }
}

/// Business answers are signed; gateway-level refusals are not.
pub fn is_signed_code(code: &str) -> bool {
    matches!(code, SUCCESS | WAITING | UNKNOWN | BUSINESS_FAILED)
}

/// The content of one response node, fields in the order they are written.
#[derive(Debug, Clone, PartialEq)]
pub struct Answer {
    pub code: String,
    pub msg: String,
    pub sub_code: Option<String>,
    pub sub_msg: Option<String>,
    pub fields: Vec<(String, Value)>,
}

impl Answer {
    pub fn new(code: &str, msg: &str) -> Answer {
        Answer {
            code: code.to_owned(),
            msg: msg.to_owned(),
            sub_code: None,
            sub_msg: None,
            fields: Vec::new(),
        }
    }

    pub fn success() -> Answer {
        Answer::new(SUCCESS, default_msg(SUCCESS))
    }

    /// `10003`: the buyer has to confirm on the phone.
    pub fn waiting() -> Answer {
        Answer::new(WAITING, default_msg(WAITING))
    }

    /// `20000 isp.unknow-error`: Alipay itself does not know the outcome (yet).
    pub fn unknown() -> Answer {
        Answer::new(UNKNOWN, default_msg(UNKNOWN)).with_sub("isp.unknow-error", "系统繁忙")
    }

    /// `40004 Business Failed` with an `ACQ.*` sub-code.
    pub fn business(sub_code: &str, sub_msg: &str) -> Answer {
        Answer::new(BUSINESS_FAILED, default_msg(BUSINESS_FAILED)).with_sub(sub_code, sub_msg)
    }

    /// `40004 ACQ.INVALID_PARAMETER` naming what is wrong.
    pub fn invalid_parameter(detail: impl AsRef<str>) -> Answer {
        Answer::business(
            "ACQ.INVALID_PARAMETER",
            &format!("参数无效: {}", detail.as_ref()),
        )
    }

    pub fn trade_not_exist() -> Answer {
        Answer::business("ACQ.TRADE_NOT_EXIST", "交易不存在")
    }

    pub fn is_business_failure(&self) -> bool {
        self.code == BUSINESS_FAILED
    }

    pub fn with_sub(mut self, sub_code: &str, sub_msg: &str) -> Answer {
        self.sub_code = Some(sub_code.to_owned());
        self.sub_msg = Some(sub_msg.to_owned());
        self
    }

    pub fn field(mut self, key: &str, value: impl Into<Value>) -> Answer {
        self.set(key, value.into());
        self
    }

    pub fn optional_field(self, key: &str, value: Option<impl Into<Value>>) -> Answer {
        match value {
            Some(value) => self.field(key, value),
            None => self,
        }
    }

    /// Sets a field, replacing an earlier one of the same name in place.
    pub fn set(&mut self, key: &str, value: Value) {
        match self.fields.iter_mut().find(|(k, _)| k == key) {
            Some(slot) => slot.1 = value,
            None => self.fields.push((key.to_owned(), value)),
        }
    }

    pub fn is_signed_kind(&self) -> bool {
        is_signed_code(&self.code)
    }

    /// The node text exactly as it is sent and signed.
    pub fn node_text(&self) -> String {
        let mut text = String::from("{");
        let mut push = |key: &str, value: &Value| {
            if text.len() > 1 {
                text.push(',');
            }
            text.push_str(&Value::String(key.to_owned()).to_string());
            text.push(':');
            text.push_str(&value.to_string());
        };
        push("code", &Value::String(self.code.clone()));
        push("msg", &Value::String(self.msg.clone()));
        if let Some(sub_code) = &self.sub_code {
            push("sub_code", &Value::String(sub_code.clone()));
        }
        if let Some(sub_msg) = &self.sub_msg {
            push("sub_msg", &Value::String(sub_msg.clone()));
        }
        for (key, value) in &self.fields {
            push(key, value);
        }
        text.push('}');
        escape_slashes(&text)
    }
}

/// Alipay's JSON writer escapes `/` as `\/`. In serialised JSON a `/` can only occur inside a
/// string, where `\/` is a valid escape, so a plain replacement is exact.
pub fn escape_slashes(json: &str) -> String {
    json.replace('/', "\\/")
}

/// How the answer is signed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Signing {
    /// Signed when the code is a business code (Alipay's rule).
    AsAlipay,
    Unsigned,
    /// A well-formed signature over different bytes (fault injection).
    Wrong,
}

/// Writes the full body `{"<node_name>":<node>,"sign":"…"}` in `encoding` (the request's
/// charset), signing the node's bytes in that encoding.
pub fn render_body(
    node_name: &str,
    answer: &Answer,
    signing: Signing,
    key: &PrivateKey,
    encoding: &'static Encoding,
) -> Vec<u8> {
    let node = answer.node_text();
    let node_bytes = encoding.encode(&node).0.into_owned();
    let sign = match signing {
        Signing::Unsigned => None,
        Signing::AsAlipay if !answer.is_signed_kind() => None,
        Signing::AsAlipay => key.sign_base64(&node_bytes).ok(),
        Signing::Wrong => {
            let mut other = node_bytes.clone();
            other.extend_from_slice(b" ");
            key.sign_base64(&other).ok()
        }
    };
    let mut body = Vec::with_capacity(node_bytes.len() + 400);
    body.extend_from_slice(b"{");
    body.extend_from_slice(Value::String(node_name.to_owned()).to_string().as_bytes());
    body.extend_from_slice(b":");
    body.extend_from_slice(&node_bytes);
    if let Some(sign) = sign {
        body.extend_from_slice(b",\"sign\":");
        body.extend_from_slice(Value::String(sign).to_string().as_bytes());
    }
    body.extend_from_slice(b"}");
    body
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn node_puts_code_and_msg_first_and_escapes_slashes() {
        let answer = Answer::success()
            .field("qr_code", "https://qr.alipay.com/x")
            .field("out_trade_no", "A1");
        assert_eq!(
            answer.node_text(),
            r#"{"code":"10000","msg":"Success","qr_code":"https:\/\/qr.alipay.com\/x","out_trade_no":"A1"}"#
        );
    }

    #[test]
    fn waiting_msg_keeps_alipays_leading_space() {
        assert_eq!(
            Answer::waiting().node_text(),
            r#"{"code":"10003","msg":" order success pay inprocess"}"#
        );
    }

    #[test]
    fn gateway_codes_are_unsigned() {
        assert!(Answer::unknown().is_signed_kind());
        assert!(Answer::business("ACQ.X", "x").is_signed_kind());
        assert!(!Answer::new(INVALID_ARGUMENTS, "Invalid Arguments").is_signed_kind());
    }
}
