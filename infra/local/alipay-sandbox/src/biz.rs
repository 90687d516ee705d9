//! Reading `biz_content` the way Alipay validates it. Every refusal is a ready
//! [`Answer`] (`40004 ACQ.INVALID_PARAMETER` unless Alipay has a more specific sub-code), so
//! method code can use `?` and bad input can never become a 500.

use crate::answer::Answer;
use alipay::Fen;
use chrono::{DateTime, Days, NaiveTime, TimeDelta, TimeZone, Utc};
use serde_json::{Map, Value};

/// The largest `total_amount` Alipay accepts (100,000,000 yuan).
pub const MAX_TOTAL: Fen = Fen::new(100_000_000 * 100);
/// An order nobody set a timeout for closes after this long (face-to-face default).
pub const DEFAULT_TIMEOUT: TimeDelta = TimeDelta::hours(3);
/// A precreated QR code is scannable at most this long.
pub const QR_LIFETIME: TimeDelta = TimeDelta::hours(2);
/// The longest timeout Alipay accepts.
pub const MAX_TIMEOUT: TimeDelta = TimeDelta::days(15);

#[derive(Debug, Clone, Default, PartialEq)]
pub struct Biz {
    fields: Map<String, Value>,
}

impl Biz {
    /// Parses `biz_content`; an absent one reads as empty (required fields then fail one by
    /// one, naming themselves).
    pub fn parse(text: Option<&str>) -> Result<Biz, Answer> {
        let Some(text) = text.filter(|t| !t.trim().is_empty()) else {
            return Ok(Biz::default());
        };
        match serde_json::from_str::<Value>(text) {
            Ok(Value::Object(fields)) => Ok(Biz { fields }),
            _ => Err(Answer::invalid_parameter(
                "biz_content 不是合法的 JSON 对象",
            )),
        }
    }

    pub fn raw(&self) -> &Map<String, Value> {
        &self.fields
    }

    /// A text field (JSON strings, and numbers as written); empty reads as absent.
    pub fn text(&self, key: &str, max_chars: usize) -> Result<Option<String>, Answer> {
        let text = match self.fields.get(key) {
            None | Some(Value::Null) => return Ok(None),
            Some(Value::String(s)) => s.clone(),
            Some(Value::Number(n)) => n.to_string(),
            Some(_) => return Err(Answer::invalid_parameter(format!("{key} 类型错误"))),
        };
        if text.is_empty() {
            return Ok(None);
        }
        if text.chars().count() > max_chars {
            return Err(Answer::invalid_parameter(format!(
                "{key} 长度超过 {max_chars}"
            )));
        }
        Ok(Some(text))
    }

    pub fn required_text(&self, key: &str, max_chars: usize) -> Result<String, Answer> {
        self.text(key, max_chars)?
            .ok_or_else(|| Answer::invalid_parameter(format!("缺少必选参数 {key}")))
    }

    /// `out_trade_no`: 1-64 characters of `[A-Za-z0-9_]`.
    pub fn out_trade_no(&self) -> Result<Option<String>, Answer> {
        let Some(value) = self.text("out_trade_no", 64)? else {
            return Ok(None);
        };
        if !value
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'_')
        {
            return Err(Answer::invalid_parameter(
                "out_trade_no 只能由字母、数字、下划线组成",
            ));
        }
        Ok(Some(value))
    }

    pub fn required_out_trade_no(&self) -> Result<String, Answer> {
        self.out_trade_no()?
            .ok_or_else(|| Answer::invalid_parameter("缺少必选参数 out_trade_no"))
    }

    /// `out_trade_no` and/or `trade_no`; at least one is required.
    pub fn trade_reference(&self) -> Result<TradeReference, Answer> {
        let reference = TradeReference {
            out_trade_no: self.out_trade_no()?,
            trade_no: self.text("trade_no", 64)?,
        };
        if reference.out_trade_no.is_none() && reference.trade_no.is_none() {
            return Err(Answer::invalid_parameter(
                "out_trade_no 和 trade_no 不能同时为空",
            ));
        }
        Ok(reference)
    }

    /// A yuan amount with at most two decimals, greater than zero.
    pub fn amount(&self, key: &str) -> Result<Option<Fen>, Answer> {
        let Some(text) = self.text(key, 20)? else {
            return Ok(None);
        };
        let amount = Fen::from_yuan(&text)
            .map_err(|_| Answer::invalid_parameter(format!("{key} 金额格式错误: {text}")))?;
        if amount <= Fen::ZERO {
            return Err(Answer::invalid_parameter(format!("{key} 必须大于 0")));
        }
        Ok(Some(amount))
    }

    /// `total_amount`: 0.01 to 100,000,000.00 yuan.
    pub fn total_amount(&self) -> Result<Fen, Answer> {
        let amount = self
            .amount("total_amount")?
            .ok_or_else(|| Answer::invalid_parameter("缺少必选参数 total_amount"))?;
        if amount > MAX_TOTAL {
            return Err(Answer::business(
                "ACQ.TOTAL_FEE_EXCEED",
                "订单总金额超过限额",
            ));
        }
        Ok(amount)
    }

    /// `subject`: required, at most 256 characters; unless `special_chars_allowed`, without
    /// the characters Alipay's field rules forbid (`/`, `=`, `&`).
    pub fn subject(&self, special_chars_allowed: bool) -> Result<String, Answer> {
        let subject = self.required_text("subject", 256)?;
        if !special_chars_allowed && subject.contains(['/', '=', '&']) {
            return Err(Answer::invalid_parameter(
                "subject 不可使用特殊字符，如 /，=，& 等",
            ));
        }
        Ok(subject)
    }

    /// `product_code` (absent means `FACE_TO_FACE_PAYMENT`) must be the product the app is
    /// signed for; another one is `ACQ.ACCESS_FORBIDDEN`.
    pub fn check_product_code(&self, signed: &str) -> Result<(), Answer> {
        let product_code = self
            .text("product_code", 64)?
            .unwrap_or_else(|| crate::rules::FACE_TO_FACE_PAYMENT.to_owned());
        if product_code != signed {
            return Err(Answer::business(
                "ACQ.ACCESS_FORBIDDEN",
                "无权限使用接口: 未签约该产品 (product_code)",
            ));
        }
        Ok(())
    }

    /// `query_options`: the extra answer fields asked for (a JSON array of strings).
    pub fn query_options(&self) -> Result<QueryOptions, Answer> {
        let invalid = || Answer::invalid_parameter("query_options 必须是字符串数组");
        match self.fields.get("query_options") {
            None | Some(Value::Null) => Ok(QueryOptions::default()),
            Some(Value::Array(items)) => items
                .iter()
                .map(|item| item.as_str().map(str::to_owned).ok_or_else(invalid))
                .collect::<Result<Vec<_>, _>>()
                .map(QueryOptions),
            Some(_) => Err(invalid()),
        }
    }

    /// `qr_code_timeout_express` of a precreate placed `now`: the text and the deadline
    /// (same notation as `timeout_express`).
    pub fn qr_code_deadline(
        &self,
        now: DateTime<Utc>,
    ) -> Result<Option<(String, DateTime<Utc>)>, Answer> {
        let Some(text) = self.text("qr_code_timeout_express", 8)? else {
            return Ok(None);
        };
        let deadline = timeout_deadline("qr_code_timeout_express", &text, now)?;
        Ok(Some((text, deadline)))
    }

    /// When an order placed `now` stops being payable: `time_expire` (Beijing time) wins over
    /// `timeout_express` (`90m`, `2h`, `1d`, or `1c` for "end of today"); the default is 3 h.
    pub fn expiry(&self, now: DateTime<Utc>) -> Result<Expiry, Answer> {
        let timeout_express = self.text("timeout_express", 8)?;
        let time_expire = self.text("time_expire", 32)?;
        let from_timeout = match timeout_express.as_deref() {
            Some(text) => Some(timeout_deadline("timeout_express", text, now)?),
            None => None,
        };
        let expires_at = match time_expire.as_deref() {
            Some(text) => {
                if !alipay::time::is_wire_time(text) {
                    return Err(Answer::invalid_parameter(
                        "time_expire 格式应为 yyyy-MM-dd HH:mm:ss",
                    ));
                }
                let at = alipay::time::parse_beijing(text).map_err(|_| {
                    Answer::invalid_parameter("time_expire 格式应为 yyyy-MM-dd HH:mm:ss")
                })?;
                if at <= now || at - now > MAX_TIMEOUT {
                    return Err(Answer::invalid_parameter(
                        "time_expire 必须晚于当前时间且在 15 天之内",
                    ));
                }
                at
            }
            None => from_timeout.unwrap_or(now + DEFAULT_TIMEOUT),
        };
        Ok(Expiry {
            expires_at,
            timeout_express,
            time_expire,
        })
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TradeReference {
    pub out_trade_no: Option<String>,
    pub trade_no: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Expiry {
    pub expires_at: DateTime<Utc>,
    pub timeout_express: Option<String>,
    pub time_expire: Option<String>,
}

/// The extra fields a request asked for in `query_options`.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct QueryOptions(Vec<String>);

impl QueryOptions {
    pub fn asks_for(&self, option: &str) -> bool {
        self.0.iter().any(|o| o == option)
    }
}

fn timeout_deadline(key: &str, text: &str, now: DateTime<Utc>) -> Result<DateTime<Utc>, Answer> {
    let invalid = || {
        Answer::invalid_parameter(format!(
            "{key} 取值范围 1m~15d，m-分钟，h-小时，d-天，1c-当天: {text}"
        ))
    };
    if text == "1c" {
        return end_of_beijing_day(now).ok_or_else(invalid);
    }
    let (number, unit) = text.split_at(text.len().saturating_sub(1));
    if number.is_empty() || !number.bytes().all(|b| b.is_ascii_digit()) {
        return Err(invalid());
    }
    let n: i64 = number.parse().map_err(|_| invalid())?;
    let span = match unit {
        "m" => TimeDelta::try_minutes(n),
        "h" => TimeDelta::try_hours(n),
        "d" => TimeDelta::try_days(n),
        _ => None,
    }
    .ok_or_else(invalid)?;
    if span < TimeDelta::minutes(1) || span > MAX_TIMEOUT {
        return Err(invalid());
    }
    Ok(now + span)
}

/// Midnight at the end of the Beijing day containing `now`.
fn end_of_beijing_day(now: DateTime<Utc>) -> Option<DateTime<Utc>> {
    let beijing = alipay::time::beijing();
    let date = now.with_timezone(&beijing).date_naive();
    let next = date.checked_add_days(Days::new(1))?;
    beijing
        .from_local_datetime(&next.and_time(NaiveTime::MIN))
        .single()
        .map(|t| t.with_timezone(&Utc))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn biz(json: &str) -> Biz {
        Biz::parse(Some(json)).unwrap_or_default()
    }

    #[test]
    fn amounts_follow_alipay_rules() {
        assert_eq!(
            biz(r#"{"total_amount":"0.01"}"#).total_amount(),
            Ok(Fen::new(1))
        );
        assert_eq!(
            biz(r#"{"total_amount":88.8}"#).total_amount(),
            Ok(Fen::new(8880))
        );
        for bad in [r#""0.001""#, r#""0""#, r#""-1""#, r#""abc""#, "true"] {
            let answer = biz(&format!(r#"{{"total_amount":{bad}}}"#)).total_amount();
            assert_eq!(
                answer.err().and_then(|a| a.sub_code).as_deref(),
                Some("ACQ.INVALID_PARAMETER"),
                "{bad}"
            );
        }
        let over = biz(r#"{"total_amount":"100000000.01"}"#).total_amount();
        assert_eq!(
            over.err().and_then(|a| a.sub_code).as_deref(),
            Some("ACQ.TOTAL_FEE_EXCEED")
        );
    }

    #[test]
    fn out_trade_no_charset() {
        assert_eq!(
            biz(r#"{"out_trade_no":"A_1"}"#).out_trade_no(),
            Ok(Some("A_1".into()))
        );
        assert!(biz(r#"{"out_trade_no":"A-1"}"#).out_trade_no().is_err());
        assert!(
            biz(&format!(r#"{{"out_trade_no":"{}"}}"#, "a".repeat(65)))
                .out_trade_no()
                .is_err()
        );
    }

    #[test]
    fn subject_product_code_and_query_options() {
        let plain = biz(r#"{"subject":"咖啡 x2"}"#);
        assert_eq!(plain.subject(false), Ok("咖啡 x2".to_owned()));
        for special in ["a/b", "a=b", "a&b"] {
            let special = biz(&format!(r#"{{"subject":"{special}"}}"#));
            assert!(special.subject(false).is_err());
            assert!(special.subject(true).is_ok());
        }
        assert_eq!(biz("{}").check_product_code("FACE_TO_FACE_PAYMENT"), Ok(()));
        let other = biz(r#"{"product_code":"QUICK_WAP_WAY"}"#);
        assert_eq!(
            other
                .check_product_code("FACE_TO_FACE_PAYMENT")
                .err()
                .and_then(|a| a.sub_code)
                .as_deref(),
            Some("ACQ.ACCESS_FORBIDDEN")
        );
        assert!(biz("{}").check_product_code("OFFLINE_PAYMENT").is_err());
        let options = biz(r#"{"query_options":["fund_bill_list"]}"#).query_options();
        assert!(options.is_ok_and(|o| o.asks_for("fund_bill_list") && !o.asks_for("x")));
        assert!(
            biz(r#"{"query_options":"fund_bill_list"}"#)
                .query_options()
                .is_err()
        );
    }

    #[test]
    fn expiry_rules() -> Result<(), Answer> {
        let now = Utc
            .with_ymd_and_hms(2026, 1, 1, 4, 0, 0)
            .single()
            .unwrap_or_default();
        assert_eq!(biz("{}").expiry(now)?.expires_at, now + TimeDelta::hours(3));
        assert_eq!(
            biz(r#"{"timeout_express":"90m"}"#).expiry(now)?.expires_at,
            now + TimeDelta::minutes(90)
        );
        // 12:00 Beijing → midnight Beijing is 16:00 UTC.
        assert_eq!(
            biz(r#"{"timeout_express":"1c"}"#).expiry(now)?.expires_at,
            Utc.with_ymd_and_hms(2026, 1, 1, 16, 0, 0)
                .single()
                .unwrap_or_default()
        );
        let both = biz(r#"{"timeout_express":"1d","time_expire":"2026-01-01 12:30:00"}"#);
        assert_eq!(both.expiry(now)?.expires_at, now + TimeDelta::minutes(30));
        for bad in ["1.5h", "0m", "16d", "5x", "m", "2c"] {
            assert!(
                biz(&format!(r#"{{"timeout_express":"{bad}"}}"#))
                    .expiry(now)
                    .is_err(),
                "{bad}"
            );
        }
        assert!(
            biz(r#"{"time_expire":"2026-01-01T12:30:00"}"#)
                .expiry(now)
                .is_err()
        );
        assert!(
            biz(r#"{"time_expire":"2025-01-01 12:30:00"}"#)
                .expiry(now)
                .is_err()
        );
        Ok(())
    }
}
