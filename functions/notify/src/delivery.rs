//! One delivery of a notification, as it arrived, and the record kept of it.

use alipay::notify::MAX_BODY_BYTES;
use base64::Engine;
use chrono::{DateTime, Utc};
use domain::OutTradeNo;
use domain::notification::{ReceivedNotification, Verdict};
use std::collections::BTreeMap;

/// What the HTTP layer hands over.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Delivery {
    pub body: Vec<u8>,
    /// Header names in lower case; repeated headers joined with `, `.
    pub headers: BTreeMap<String, String>,
    pub request_id: String,
    pub received_at: DateTime<Utc>,
}

impl Delivery {
    /// The `out_trade_no` the body claims, if it is a valid order number. Read before (or
    /// without) verification, only to file the record under the order it names.
    pub fn claimed_out_trade_no(&self) -> Option<OutTradeNo> {
        let scanned = self.body.get(..MAX_BODY_BYTES).unwrap_or(&self.body);
        form_urlencoded::parse(scanned)
            .find(|(key, _)| key == "out_trade_no")
            .and_then(|(_, value)| OutTradeNo::parse(&value).ok())
    }

    /// The record to keep, filed under `out_trade_no`, with `verdict` to be set once known.
    /// A body over the notification size cap is kept up to the cap.
    pub fn record(&self, out_trade_no: Option<OutTradeNo>) -> ReceivedNotification {
        let truncated = self.body.len() > MAX_BODY_BYTES;
        let kept = self.body.get(..MAX_BODY_BYTES).unwrap_or(&self.body);
        let (body, body_base64) = match std::str::from_utf8(kept) {
            Ok(text) => (Some(text.to_owned()), None),
            Err(_) => (
                None,
                Some(base64::engine::general_purpose::STANDARD.encode(kept)),
            ),
        };
        ReceivedNotification {
            out_trade_no,
            received_at: self.received_at,
            request_id: self.request_id.clone(),
            body,
            body_base64,
            body_bytes: self.body.len(),
            truncated,
            headers: self.headers.clone(),
            notify_id: None,
            trade_status: None,
            verdict: Verdict::Untrusted,
            detail: None,
            refund: None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn delivery(body: &[u8]) -> Delivery {
        Delivery {
            body: body.to_vec(),
            headers: BTreeMap::new(),
            request_id: "r1".into(),
            received_at: Utc::now(),
        }
    }

    #[test]
    fn files_under_a_valid_claimed_number_only() {
        let ok = delivery(b"a=1&out_trade_no=T_1&b=2");
        assert_eq!(
            ok.claimed_out_trade_no().map(|n| n.to_string()),
            Some("T_1".into())
        );
        assert_eq!(delivery(b"out_trade_no=a%2Fb").claimed_out_trade_no(), None);
        assert_eq!(delivery(b"\xff\xfe").claimed_out_trade_no(), None);
    }

    #[test]
    fn keeps_text_as_text_bytes_as_base64_and_caps_the_size() {
        let text = delivery(b"a=%E5%92%96").record(None);
        assert_eq!(text.body.as_deref(), Some("a=%E5%92%96"));
        assert_eq!(text.body_base64, None);
        let bytes = delivery(b"a=\xb2\xe2").record(None);
        assert_eq!(bytes.body, None);
        assert_eq!(bytes.body_base64.as_deref(), Some("YT2y4g=="));
        let huge = delivery(&vec![b'a'; MAX_BODY_BYTES + 10]).record(None);
        assert!(huge.truncated);
        assert_eq!(huge.body_bytes, MAX_BODY_BYTES + 10);
        assert_eq!(huge.body.map(|b| b.len()), Some(MAX_BODY_BYTES));
    }
}
