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
    /// A day's bill is ready from this hour (Beijing time) of the next day; before that it
    /// is `isp.bill_not_exist`. 0 = as soon as the day has ended. At most 23.
    pub bill_ready_hour: u32,
    /// A month's bill is ready from this day of the next month, at `bill_ready_hour`.
    /// 1 = on the first day, like a day's bill. 1 to 28.
    pub month_bill_ready_day: u32,
    /// What a ready bill of a period without any payment or refund is.
    pub empty_bill: EmptyBill,
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
            bill_ready_hour: 9,
            month_bill_ready_day: 3,
            empty_bill: EmptyBill::NotExist,
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

/// The bill of a period without any payment or refund, once bills of that period are ready.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum EmptyBill {
    /// `40004 isp.bill_not_exist`, the same answer as a bill not generated yet.
    NotExist,
    /// `10000` with `bill_file_code=EMPTY_DATA_WITH_BILL_FILE` and a bill without rows.
    EmptyFile,
}

impl Rules {
    /// These rules with the fields of a JSON object replaced. Merged as JSON values so that a
    /// partial update needs no second, all-optional copy of the struct; unknown fields,
    /// wrong types and values out of range are refused.
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
        let rules: Rules = serde_json::from_value(merged).map_err(|e| e.to_string())?;
        rules.check()?;
        Ok(rules)
    }

    /// Ranges serde cannot express.
    pub fn check(&self) -> Result<(), String> {
        if self.bill_ready_hour > 23 {
            return Err(format!(
                "bill_ready_hour must be an hour from 0 to 23, not {}",
                self.bill_ready_hour
            ));
        }
        if !(1..=28).contains(&self.month_bill_ready_day) {
            return Err(format!(
                "month_bill_ready_day must be a day from 1 to 28, not {}",
                self.month_bill_ready_day
            ));
        }
        Ok(())
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
    fn bill_rules_are_checked() {
        let rules = Rules::default()
            .patched(&json!({"bill_ready_hour": 0, "empty_bill": "empty_file"}))
            .unwrap_or_default();
        assert_eq!(rules.bill_ready_hour, 0);
        assert_eq!(rules.empty_bill, EmptyBill::EmptyFile);
        assert_eq!(rules.month_bill_ready_day, 3);
        for bad in [
            json!({"bill_ready_hour": 24}),
            json!({"bill_ready_hour": -1}),
            json!({"month_bill_ready_day": 0}),
            json!({"month_bill_ready_day": 29}),
            json!({"empty_bill": "maybe"}),
        ] {
            assert!(Rules::default().patched(&bad).is_err(), "{bad}");
        }
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
