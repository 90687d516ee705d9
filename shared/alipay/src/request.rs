//! Signing a gateway request. System parameters (with `charset`, so the gateway decodes the
//! body as UTF-8) and `sign` go in the query string; `biz_content` goes in the form body.
//! `biz_content` is serialised once by the caller, and that exact text is both signed and sent.

use crate::backend::SignFailed;
use crate::canonical;
use crate::keys::PrivateKey;

pub const FORMAT: &str = "JSON";
pub const CHARSET: &str = "utf-8";
pub const SIGN_TYPE: &str = "RSA2";
pub const VERSION: &str = "1.0";

/// The per-call system parameters; the fixed ones (format, charset, sign type, version) are
/// added by [`sign_request`].
#[derive(Debug, Clone, Copy)]
pub struct SystemParams<'a> {
    pub app_id: &'a str,
    pub method: &'a str,
    /// Beijing time, `yyyy-MM-dd HH:mm:ss` (see [`crate::time::format_beijing`]).
    pub timestamp: &'a str,
    pub notify_url: Option<&'a str>,
    /// Certificate mode only.
    pub app_cert_sn: Option<&'a str>,
    /// Certificate mode only.
    pub alipay_root_cert_sn: Option<&'a str>,
}

/// A signed request, ready to POST to `gateway.do?{query}` with `body` as
/// `application/x-www-form-urlencoded;charset=utf-8`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SignedRequest {
    pub query: String,
    pub body: String,
    /// The exact string that was signed; useful to diff against the gateway's
    /// "验签字符串" when Alipay reports `isv.invalid-signature`.
    pub sign_content: String,
}

pub fn sign_request(
    params: &SystemParams<'_>,
    biz_content: &str,
    key: &PrivateKey,
) -> Result<SignedRequest, SignFailed> {
    let mut system: Vec<(&str, &str)> = vec![
        ("app_id", params.app_id),
        ("method", params.method),
        ("format", FORMAT),
        ("charset", CHARSET),
        ("sign_type", SIGN_TYPE),
        ("timestamp", params.timestamp),
        ("version", VERSION),
    ];
    let optional = [
        ("notify_url", params.notify_url),
        ("app_cert_sn", params.app_cert_sn),
        ("alipay_root_cert_sn", params.alipay_root_cert_sn),
    ];
    system.extend(
        optional
            .into_iter()
            .filter_map(|(k, v)| v.filter(|v| !v.is_empty()).map(|v| (k, v))),
    );
    let sign_content = canonical::request_content(
        system
            .iter()
            .copied()
            .chain(std::iter::once(("biz_content", biz_content))),
    );
    let sign = key.sign_base64(sign_content.as_bytes())?;
    let query = form_urlencoded::Serializer::new(String::new())
        .extend_pairs(system.iter().copied())
        .append_pair("sign", &sign)
        .finish();
    let body = form_urlencoded::Serializer::new(String::new())
        .append_pair("biz_content", biz_content)
        .finish();
    Ok(SignedRequest {
        query,
        body,
        sign_content,
    })
}
