//! Verifying an asynchronous notification (`trade_status_sync`) on its raw form body.
//!
//! The body is percent-decoded exactly once, to bytes; `sign` and `sign_type` are dropped; the
//! rest is sorted and verified as bytes in the notification's own `charset` (UTF-8 or GBK);
//! only then are the values transcoded to UTF-8. Every received parameter is signed, including
//! ones this code has never heard of, so none is filtered out before verifying.
//!
//! The route is unauthenticated until the signature checks out, so the body's size and its
//! number of parameters are capped ([`MAX_BODY_BYTES`], [`MAX_PARAMETERS`]) before anything is
//! decoded, and every later step is linear (or `n log n`) in what is left.

use crate::canonical;
use crate::form::{self, RawParams};
use crate::keys::VerifyError;
use crate::money::{AmountError, Fen};
use crate::verifier::AlipayVerifier;
use encoding_rs::Encoding;
use std::collections::{BTreeMap, HashSet};

/// The largest notification body accepted, in bytes. Alipay's are 1 to 3 KiB.
pub const MAX_BODY_BYTES: usize = 64 * 1024;

/// The most parameters a notification may carry. Alipay sends about 30.
pub const MAX_PARAMETERS: usize = 256;

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum NotifyError {
    #[error("the notification body is larger than {limit} bytes")]
    TooLarge { limit: usize },
    #[error("the notification has more than {limit} parameters")]
    TooManyParameters { limit: usize },
    #[error("the notification has no `sign`")]
    MissingSign,
    #[error("the notification repeats the parameter {0:?}")]
    RepeatedParameter(String),
    #[error("sign_type {0:?} is not supported (only RSA2)")]
    UnsupportedSignType(String),
    #[error("charset {0:?} is not supported (only UTF-8 and GBK)")]
    UnsupportedCharset(String),
    #[error("the notification signature is invalid: {0}")]
    BadSignature(VerifyError),
    #[error("parameter {0:?} is not valid text in the notification's charset")]
    NotText(String),
    #[error("the notification lacks the parameter {0:?}")]
    Missing(&'static str),
    #[error("parameter {field} is invalid: {reason}")]
    Invalid { field: &'static str, reason: String },
}

/// Decodes the form once, within the caps, refusing repeated parameters (Alipay never
/// repeats one, and a repeat could make the verified and the used value differ).
fn decode_form(raw: &[u8]) -> Result<RawParams, NotifyError> {
    // Only the first `MAX_BODY_BYTES + 1` bytes are scanned for pairs, and the count stops
    // past the cap, so refusing costs the same however large the body (a body over the size
    // cap is refused either way); a flood of short pairs is refused after a few KiB.
    let scanned = raw.get(..=MAX_BODY_BYTES).unwrap_or(raw);
    if form::pairs(scanned).nth(MAX_PARAMETERS).is_some() {
        return Err(NotifyError::TooManyParameters {
            limit: MAX_PARAMETERS,
        });
    }
    if raw.len() > MAX_BODY_BYTES {
        return Err(NotifyError::TooLarge {
            limit: MAX_BODY_BYTES,
        });
    }
    let pairs = form::decode_raw(raw);
    let mut seen = HashSet::with_capacity(pairs.len());
    if let Some((key, _)) = pairs.iter().find(|(key, _)| !seen.insert(key.as_slice())) {
        return Err(NotifyError::RepeatedParameter(
            String::from_utf8_lossy(key).into_owned(),
        ));
    }
    Ok(pairs)
}

fn charset_of(pairs: &[(Vec<u8>, Vec<u8>)]) -> Result<&'static Encoding, NotifyError> {
    let Some((_, label)) = pairs.iter().find(|(k, _)| k == b"charset") else {
        return Ok(encoding_rs::UTF_8);
    };
    match Encoding::for_label(label) {
        Some(enc) if enc == encoding_rs::UTF_8 || enc == encoding_rs::GBK => Ok(enc),
        // GB2312 is a subset of GBK and labels for it resolve to GBK; GB18030 does not.
        _ => Err(NotifyError::UnsupportedCharset(
            String::from_utf8_lossy(label).into_owned(),
        )),
    }
}

/// A notification whose signature checked out, with its values in UTF-8.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct VerifiedNotification {
    params: BTreeMap<String, String>,
}

/// Verifies a raw `application/x-www-form-urlencoded` notification body.
pub fn verify(
    raw_body: &[u8],
    verifier: &AlipayVerifier,
) -> Result<VerifiedNotification, NotifyError> {
    let pairs = decode_form(raw_body)?;
    let sign = pairs
        .iter()
        .find(|(k, _)| k == b"sign")
        .map(|(_, v)| String::from_utf8_lossy(v).into_owned())
        .filter(|s| !s.is_empty())
        .ok_or(NotifyError::MissingSign)?;
    if let Some((_, sign_type)) = pairs.iter().find(|(k, _)| k == b"sign_type")
        && sign_type.as_slice() != b"RSA2"
    {
        return Err(NotifyError::UnsupportedSignType(
            String::from_utf8_lossy(sign_type).into_owned(),
        ));
    }
    let encoding = charset_of(&pairs)?;
    let content =
        canonical::notification_content(pairs.iter().map(|(k, v)| (k.as_slice(), v.as_slice())));
    let mut last_error = VerifyError::Mismatch;
    let verified = verifier.notification_keys().into_iter().any(|key| {
        match key.verify_base64(&content, &sign) {
            Ok(()) => true,
            Err(e) => {
                last_error = e;
                false
            }
        }
    });
    if !verified {
        return Err(NotifyError::BadSignature(last_error));
    }
    let mut params = BTreeMap::new();
    for (key, value) in pairs {
        let key = String::from_utf8(key)
            .map_err(|e| NotifyError::NotText(String::from_utf8_lossy(e.as_bytes()).into()))?;
        let value = encoding
            .decode_without_bom_handling_and_without_replacement(&value)
            .ok_or_else(|| NotifyError::NotText(key.clone()))?
            .into_owned();
        params.insert(key, value);
    }
    Ok(VerifiedNotification { params })
}

/// `trade_status` of a trade.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum TradeStatus {
    WaitBuyerPay,
    TradeClosed,
    TradeSuccess,
    TradeFinished,
}

impl TradeStatus {
    pub fn parse(text: &str) -> Option<TradeStatus> {
        match text {
            "WAIT_BUYER_PAY" => Some(TradeStatus::WaitBuyerPay),
            "TRADE_CLOSED" => Some(TradeStatus::TradeClosed),
            "TRADE_SUCCESS" => Some(TradeStatus::TradeSuccess),
            "TRADE_FINISHED" => Some(TradeStatus::TradeFinished),
            _ => None,
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            TradeStatus::WaitBuyerPay => "WAIT_BUYER_PAY",
            TradeStatus::TradeClosed => "TRADE_CLOSED",
            TradeStatus::TradeSuccess => "TRADE_SUCCESS",
            TradeStatus::TradeFinished => "TRADE_FINISHED",
        }
    }

    /// Alipay counts the buyer as having paid in both of these states.
    pub fn is_paid(self) -> bool {
        matches!(self, TradeStatus::TradeSuccess | TradeStatus::TradeFinished)
    }
}

/// The fields of a trade notification a merchant must check and act on.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TradeNotification {
    pub notify_id: String,
    pub app_id: String,
    /// The app the trade was made through, when a service provider's app sends for it.
    pub auth_app_id: Option<String>,
    pub seller_id: Option<String>,
    pub out_trade_no: String,
    pub trade_no: String,
    pub trade_status: TradeStatus,
    pub total_amount: Fen,
    pub receipt_amount: Option<Fen>,
    pub buyer_id: Option<String>,
    /// The buyer's OpenID, sent instead of `buyer_id` to apps on OpenID.
    pub buyer_open_id: Option<String>,
    /// Beijing time, as sent (also `gmt_payment` and `gmt_refund`).
    pub gmt_create: Option<String>,
    pub gmt_payment: Option<String>,
    /// Present on a refund's notification: the total refunded so far.
    pub refund_fee: Option<Fen>,
    pub gmt_refund: Option<String>,
    /// The refund's `out_request_no`, on a refund's notification.
    pub out_biz_no: Option<String>,
}

impl VerifiedNotification {
    pub fn get(&self, key: &str) -> Option<&str> {
        self.params.get(key).map(String::as_str)
    }

    /// All verified parameters, in key order.
    pub fn params(&self) -> &BTreeMap<String, String> {
        &self.params
    }

    /// Reads the trade fields; amounts become [`Fen`].
    pub fn trade(&self) -> Result<TradeNotification, NotifyError> {
        let required = |key: &'static str| {
            self.get(key)
                .filter(|v| !v.is_empty())
                .map(str::to_owned)
                .ok_or(NotifyError::Missing(key))
        };
        let optional = |key: &str| self.get(key).filter(|v| !v.is_empty()).map(str::to_owned);
        let amount = |key: &'static str, text: &str| {
            Fen::from_yuan(text).map_err(|e: AmountError| NotifyError::Invalid {
                field: key,
                reason: e.to_string(),
            })
        };
        let status_text = required("trade_status")?;
        let trade_status =
            TradeStatus::parse(&status_text).ok_or_else(|| NotifyError::Invalid {
                field: "trade_status",
                reason: format!("unknown status {status_text:?}"),
            })?;
        Ok(TradeNotification {
            notify_id: required("notify_id")?,
            app_id: required("app_id")?,
            auth_app_id: optional("auth_app_id"),
            seller_id: optional("seller_id"),
            out_trade_no: required("out_trade_no")?,
            trade_no: required("trade_no")?,
            trade_status,
            total_amount: amount("total_amount", &required("total_amount")?)?,
            receipt_amount: optional("receipt_amount")
                .map(|t| amount("receipt_amount", &t))
                .transpose()?,
            buyer_id: optional("buyer_id"),
            buyer_open_id: optional("buyer_open_id"),
            gmt_create: optional("gmt_create"),
            gmt_payment: optional("gmt_payment"),
            refund_fee: optional("refund_fee")
                .map(|t| amount("refund_fee", &t))
                .transpose()?,
            gmt_refund: optional("gmt_refund"),
            out_biz_no: optional("out_biz_no"),
        })
    }
}

/// Builds a signed notification form body (UTF-8 or GBK) — what Alipay sends, and what the
/// sandbox and tests send.
pub fn sign_form(
    params: &[(&str, &str)],
    encoding: &'static Encoding,
    key: &crate::keys::PrivateKey,
) -> Result<String, crate::backend::SignFailed> {
    let encoded: RawParams = params
        .iter()
        .map(|(k, v)| (k.as_bytes().to_vec(), encoding.encode(v).0.into_owned()))
        .collect();
    let content =
        canonical::notification_content(encoded.iter().map(|(k, v)| (k.as_slice(), v.as_slice())));
    let sign = key.sign_base64(&content)?;
    let signature = [
        (b"sign".to_vec(), sign.into_bytes()),
        (b"sign_type".to_vec(), b"RSA2".to_vec()),
    ];
    let mut body = String::new();
    for (k, v) in encoded.iter().chain(signature.iter()) {
        if !body.is_empty() {
            body.push('&');
        }
        body.extend(form_urlencoded::byte_serialize(k));
        body.push('=');
        body.extend(form_urlencoded::byte_serialize(v));
    }
    Ok(body)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn refuses_repeated_parameters() {
        assert_eq!(
            decode_form(b"a=1&a=2"),
            Err(NotifyError::RepeatedParameter("a".into()))
        );
        assert_eq!(
            decode_form(b"a=1&b=2&c=3&b=4"),
            Err(NotifyError::RepeatedParameter("b".into()))
        );
        // Keys are compared after decoding.
        assert_eq!(
            decode_form(b"a=1&%61=2"),
            Err(NotifyError::RepeatedParameter("a".into()))
        );
    }

    fn distinct_pairs(count: usize) -> Vec<u8> {
        (0..count)
            .map(|i| format!("k{i}=v"))
            .collect::<Vec<_>>()
            .join("&")
            .into_bytes()
    }

    #[test]
    fn a_flood_of_pairs_is_refused_before_decoding() {
        let flood = distinct_pairs(300_000);
        assert!(flood.len() > MAX_BODY_BYTES);
        assert_eq!(
            decode_form(&flood),
            Err(NotifyError::TooManyParameters {
                limit: MAX_PARAMETERS
            })
        );
        assert_eq!(
            decode_form(&distinct_pairs(MAX_PARAMETERS + 1)),
            Err(NotifyError::TooManyParameters {
                limit: MAX_PARAMETERS
            })
        );
        let at_the_cap = distinct_pairs(MAX_PARAMETERS);
        assert!(at_the_cap.len() <= MAX_BODY_BYTES);
        assert_eq!(
            decode_form(&at_the_cap).map(|p| p.len()),
            Ok(MAX_PARAMETERS)
        );
        // Empty pairs are not parameters.
        let with_empties = [at_the_cap.as_slice(), b"&&&&"].concat();
        assert_eq!(
            decode_form(&with_empties).map(|p| p.len()),
            Ok(MAX_PARAMETERS)
        );
    }

    #[test]
    fn a_body_over_the_size_cap_is_refused() {
        let mut body = b"sign=c2ln&subject=".to_vec();
        body.resize(MAX_BODY_BYTES + 1, b'x');
        assert_eq!(
            decode_form(&body),
            Err(NotifyError::TooLarge {
                limit: MAX_BODY_BYTES
            })
        );
        body.truncate(MAX_BODY_BYTES);
        assert_eq!(decode_form(&body).map(|p| p.len()), Ok(2));
    }

    #[test]
    fn accepts_only_utf8_and_gbk() {
        let with = |label: &[u8]| charset_of(&[(b"charset".to_vec(), label.to_vec())]);
        assert_eq!(with(b"utf-8"), Ok(encoding_rs::UTF_8));
        assert_eq!(with(b"UTF-8"), Ok(encoding_rs::UTF_8));
        assert_eq!(with(b"GBK"), Ok(encoding_rs::GBK));
        assert_eq!(with(b"gb2312"), Ok(encoding_rs::GBK));
        assert!(with(b"latin1").is_err());
        assert_eq!(charset_of(&[]), Ok(encoding_rs::UTF_8));
    }
}
