//! Per-app rules: where public sources leave production's behaviour uncertain, or where a
//! local convenience differs from production, the behaviour is a rule here. Every default is
//! the stricter choice, so that what passes against the sandbox also passes against Alipay.
//! The README's table of rules names the public source of each.

use chrono::TimeDelta;
use serde::{Deserialize, Serialize};
use serde_json::Value;

/// The product code face-to-face contracts are signed for.
pub const FACE_TO_FACE_PAYMENT: &str = "FACE_TO_FACE_PAYMENT";

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Rules {
    /// Which buyer identifier answers and notifications carry.
    pub buyer_id: BuyerIdKind,
    /// The contract returns `fund_bill_list` without `query_options` asking for it.
    pub fund_bill_list_by_contract: bool,
    /// The product code the app is signed for; `product_code` defaults to
    /// `FACE_TO_FACE_PAYMENT` when a request leaves it out.
    pub product_code: String,
    /// Largest accepted difference between a request's `timestamp` and real time, in
    /// seconds; 0 turns the check off.
    pub max_timestamp_skew_seconds: u64,
    /// Accept `/`, `=` and `&` in `subject`.
    pub subject_special_chars: bool,
    /// Days after payment a trade stays refundable; then it is TRADE_FINISHED.
    pub refund_window_days: u32,
    /// A cancel of an order Alipay has no trade for voids its number for good (`action=close`,
    /// every later precreate or pay of it is `ACQ.TRADE_HAS_CLOSE`). A local choice.
    pub cancel_voids_unknown: bool,
    /// The `Content-Type` of gateway answers.
    pub content_type: AnswerContentType,
}

impl Default for Rules {
    fn default() -> Rules {
        Rules {
            buyer_id: BuyerIdKind::OpenId,
            fund_bill_list_by_contract: false,
            product_code: FACE_TO_FACE_PAYMENT.to_owned(),
            max_timestamp_skew_seconds: 300,
            subject_special_chars: false,
            refund_window_days: 90,
            cancel_voids_unknown: false,
            content_type: AnswerContentType::Html,
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum BuyerIdKind {
    /// `buyer_open_id` (apps in OpenID mode, the default for new apps).
    OpenId,
    /// `buyer_user_id` in answers, `buyer_id` in notifications (`2088…`).
    UserId,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum AnswerContentType {
    /// `text/html;charset=…` although the body is JSON.
    Html,
    /// `application/json;charset=…`.
    Json,
}

impl Rules {
    /// These rules with the fields of a JSON object replaced. Merged as JSON values so that a
    /// partial update needs no second, all-optional copy of the struct; unknown fields and
    /// wrong types are refused by the deserialisation.
    pub fn patched(&self, patch: &Value) -> Result<Rules, String> {
        let Value::Object(patch) = patch else {
            return Err("the rules must be a JSON object".into());
        };
        let mut merged = serde_json::to_value(self).map_err(|e| e.to_string())?;
        if let Value::Object(fields) = &mut merged {
            for (key, value) in patch {
                fields.insert(key.clone(), value.clone());
            }
        }
        serde_json::from_value(merged).map_err(|e| e.to_string())
    }

    pub fn refund_window(&self) -> TimeDelta {
        TimeDelta::days(i64::from(self.refund_window_days))
    }

    pub fn timestamp_skew(&self) -> Option<TimeDelta> {
        let seconds = i64::try_from(self.max_timestamp_skew_seconds).ok()?;
        (seconds > 0).then(|| TimeDelta::seconds(seconds))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn patches_merge_and_refuse_unknown_fields() {
        let rules = Rules::default()
            .patched(&json!({"buyer_id": "user_id", "refund_window_days": 365}))
            .unwrap_or_default();
        assert_eq!(rules.buyer_id, BuyerIdKind::UserId);
        assert_eq!(rules.refund_window_days, 365);
        assert_eq!(rules.product_code, FACE_TO_FACE_PAYMENT);
        assert!(Rules::default().patched(&json!({"typo": true})).is_err());
        assert!(
            Rules::default()
                .patched(&json!({"buyer_id": "email"}))
                .is_err()
        );
        assert!(Rules::default().patched(&json!([1])).is_err());
    }

    #[test]
    fn zero_skew_turns_the_check_off() {
        let off = Rules {
            max_timestamp_skew_seconds: 0,
            ..Rules::default()
        };
        assert_eq!(off.timestamp_skew(), None);
        assert_eq!(
            Rules::default().timestamp_skew(),
            Some(TimeDelta::minutes(5))
        );
    }
}
