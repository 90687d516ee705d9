//! The body of `POST /v1/payments`, read strictly: a JSON object without duplicate or unknown
//! keys, each field of the exact JSON type (no floats or strings for amounts), each value in
//! Alipay's bounds. The first fault is reported with its field; nothing is written before the
//! whole body is valid.

use crate::idempotency::request_hash;
use chrono::{DateTime, Duration, Utc};
use domain::order::NewOrder;
use domain::{OrderAmount, OutTradeNo, Scene};
use f2f_runtime::{ApiError, codes};
use lambda_http::http::StatusCode;
use secrecy::{ExposeSecret, SecretString};
use serde::de::{self, Deserializer, MapAccess, Visitor};
use serde_json::Value;
use std::fmt;

pub const DEFAULT_TIMEOUT_SECONDS: i64 = 900;
pub const MIN_TIMEOUT_SECONDS: i64 = 60;
/// QR codes live at most two hours at Alipay.
pub const MAX_TIMEOUT_SECONDS: i64 = 7200;
pub const MAX_SUBJECT_CHARS: usize = 256;

const FIELDS: [&str; 9] = [
    "out_trade_no",
    "amount_fen",
    "subject",
    "scene",
    "auth_code",
    "store_id",
    "operator_id",
    "terminal_id",
    "timeout_seconds",
];

/// The buyer's payment code: a bearer credential. It is sent to Alipay and hashed into the
/// request hash, and never stored, logged or shown (`Debug` is redacted).
#[derive(Clone)]
pub struct AuthCode(SecretString);

impl AuthCode {
    pub fn expose(&self) -> &str {
        self.0.expose_secret()
    }
}

impl fmt::Debug for AuthCode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("AuthCode(<redacted>)")
    }
}

/// A valid, normalised create request (defaults applied, number generated if absent).
#[derive(Debug, Clone)]
pub struct PaymentRequest {
    pub out_trade_no: OutTradeNo,
    /// Whether we generated the number (the caller cannot retry idempotently then).
    pub generated_out_trade_no: bool,
    pub amount: OrderAmount,
    pub subject: String,
    pub scene: Scene,
    pub auth_code: Option<AuthCode>,
    pub store_id: Option<String>,
    pub operator_id: Option<String>,
    pub terminal_id: Option<String>,
    pub timeout_seconds: i64,
    /// SHA-256 of the canonical form (see [`request_hash`]).
    pub hash: String,
}

impl PaymentRequest {
    /// The order this request asks for, created now.
    pub fn new_order(&self, now: DateTime<Utc>) -> NewOrder {
        NewOrder {
            out_trade_no: self.out_trade_no.clone(),
            amount: self.amount,
            subject: self.subject.clone(),
            scene: self.scene,
            store_id: self.store_id.clone(),
            operator_id: self.operator_id.clone(),
            terminal_id: self.terminal_id.clone(),
            request_hash: self.hash.clone(),
            expires_at: now + Duration::seconds(self.timeout_seconds),
        }
    }
}

/// The keys of a JSON object in order, refusing duplicates (which parsers disagree on).
struct StrictObject(Vec<(String, Value)>);

impl<'de> serde::Deserialize<'de> for StrictObject {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct ObjectVisitor;
        impl<'de> Visitor<'de> for ObjectVisitor {
            type Value = StrictObject;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a JSON object")
            }
            fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<StrictObject, A::Error> {
                let mut fields: Vec<(String, Value)> = Vec::new();
                while let Some(key) = map.next_key::<String>()? {
                    if fields.iter().any(|(k, _)| *k == key) {
                        return Err(de::Error::custom(DuplicateKey));
                    }
                    let value = map.next_value::<Value>()?;
                    fields.push((key, value));
                }
                Ok(StrictObject(fields))
            }
        }
        deserializer.deserialize_map(ObjectVisitor)
    }
}

/// Marker text of a duplicate-key error (the key itself is not echoed).
struct DuplicateKey;
impl fmt::Display for DuplicateKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("duplicate key")
    }
}

fn invalid_json(message: impl Into<String>) -> ApiError {
    ApiError::new(StatusCode::BAD_REQUEST, codes::INVALID_JSON, message)
}

pub(crate) fn missing(field: &str) -> ApiError {
    ApiError::new(
        StatusCode::BAD_REQUEST,
        codes::MISSING_FIELD,
        format!("{field} is required"),
    )
    .with_field(field)
}

pub(crate) fn invalid(field: &str, message: impl Into<String>) -> ApiError {
    ApiError::invalid_field(field, message)
}

/// Parses and validates a create body.
/// The members of a JSON object body with only `allowed` keys (each at most once).
pub(crate) struct Members(Vec<(String, Value)>);

impl Members {
    /// A member's value; `null` counts as absent.
    pub(crate) fn get(&self, name: &str) -> Option<&Value> {
        self.0
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v)
            .filter(|v| !v.is_null())
    }
}

/// Parses a body that must be one JSON object of `allowed` members.
pub(crate) fn members(body: &[u8], allowed: &[&str]) -> Result<Members, ApiError> {
    if body.iter().all(u8::is_ascii_whitespace) {
        return Err(invalid_json("the body must be a JSON object"));
    }
    // Only the position is reported: serde_json messages may quote the input (an auth_code).
    let StrictObject(fields) = serde_json::from_slice(body).map_err(|e| {
        let what = if e.to_string().contains("duplicate key") {
            "a key appears twice"
        } else if e.is_data() {
            "the body must be a JSON object"
        } else {
            "the body is not valid JSON"
        };
        invalid_json(format!("{what} (line {}, column {})", e.line(), e.column()))
    })?;
    if let Some((key, _)) = fields.iter().find(|(k, _)| !allowed.contains(&k.as_str())) {
        let shown: String = key.chars().take(64).collect();
        return Err(ApiError::new(
            StatusCode::BAD_REQUEST,
            codes::UNKNOWN_FIELD,
            format!("unknown field {shown:?}; allowed: {}", allowed.join(", ")),
        )
        .with_field(shown));
    }
    Ok(Members(fields))
}

pub fn parse(body: &[u8]) -> Result<PaymentRequest, ApiError> {
    let members = members(body, &FIELDS)?;
    let get = |name: &str| members.get(name);

    let scene = match get("scene") {
        None => return Err(missing("scene")),
        Some(Value::String(text)) if text == "qr" => Scene::Qr,
        Some(Value::String(text)) if text == "barcode" => Scene::Barcode,
        Some(_) => return Err(invalid("scene", "scene must be \"qr\" or \"barcode\"")),
    };
    let (out_trade_no, generated_out_trade_no) = match get("out_trade_no") {
        // A barcode request without its own number could not be retried without charging
        // the buyer's code twice.
        None if scene == Scene::Barcode => {
            return Err(ApiError::new(
                StatusCode::BAD_REQUEST,
                codes::MISSING_FIELD,
                "out_trade_no is required for scene \"barcode\": it is what makes a retry safe (the same number never charges the payment code twice)",
            )
            .with_field("out_trade_no"));
        }
        None => (OutTradeNo::generate(), true),
        Some(Value::String(text)) => (
            OutTradeNo::parse(text).map_err(|e| invalid("out_trade_no", e.to_string()))?,
            false,
        ),
        Some(_) => return Err(invalid("out_trade_no", "out_trade_no must be a string")),
    };
    let amount = match get("amount_fen") {
        None => return Err(missing("amount_fen")),
        Some(value) => amount(value)?,
    };
    let subject = match get("subject") {
        None => return Err(missing("subject")),
        Some(Value::String(text)) => subject(text)?,
        Some(_) => return Err(invalid("subject", "subject must be a string")),
    };
    let auth_code = match (scene, get("auth_code")) {
        (Scene::Qr, Some(_)) => {
            return Err(invalid(
                "auth_code",
                "auth_code is only for scene \"barcode\" (the buyer scans a QR code)",
            ));
        }
        (Scene::Qr, None) => None,
        (Scene::Barcode, None) => {
            return Err(missing("auth_code"));
        }
        (Scene::Barcode, Some(Value::String(text))) => Some(auth_code(text)?),
        (Scene::Barcode, Some(_)) => {
            return Err(invalid("auth_code", "auth_code must be a string"));
        }
    };
    let store_id = identifier(get("store_id"), "store_id", 32)?;
    let operator_id = identifier(get("operator_id"), "operator_id", 28)?;
    let terminal_id = identifier(get("terminal_id"), "terminal_id", 32)?;
    let timeout_seconds = match get("timeout_seconds") {
        None => DEFAULT_TIMEOUT_SECONDS,
        Some(Value::Number(n)) => match n.as_i64() {
            Some(s) if (MIN_TIMEOUT_SECONDS..=MAX_TIMEOUT_SECONDS).contains(&s) => s,
            _ => {
                return Err(invalid(
                    "timeout_seconds",
                    format!(
                        "timeout_seconds must be an integer from {MIN_TIMEOUT_SECONDS} to {MAX_TIMEOUT_SECONDS}"
                    ),
                ));
            }
        },
        Some(_) => {
            return Err(invalid(
                "timeout_seconds",
                "timeout_seconds must be a JSON integer",
            ));
        }
    };
    let mut request = PaymentRequest {
        out_trade_no,
        generated_out_trade_no,
        amount,
        subject,
        scene,
        auth_code,
        store_id,
        operator_id,
        terminal_id,
        timeout_seconds,
        hash: String::new(),
    };
    request.hash = request_hash(&request);
    Ok(request)
}

pub(crate) fn amount(value: &Value) -> Result<OrderAmount, ApiError> {
    const FIELD: &str = "amount_fen";
    let Value::Number(number) = value else {
        return Err(invalid(
            FIELD,
            "amount_fen must be a JSON integer number of fen (100 = 1.00 yuan), not a string",
        ));
    };
    if number.is_f64() {
        return Err(invalid(
            FIELD,
            "amount_fen must be an integer number of fen (100 = 1.00 yuan); decimals are not accepted",
        ));
    }
    let fen = number.as_i64().unwrap_or(i64::MAX);
    OrderAmount::from_fen(fen).map_err(|e| invalid(FIELD, e.to_string()))
}

fn subject(text: &str) -> Result<String, ApiError> {
    const FIELD: &str = "subject";
    let chars = text.chars().count();
    if chars == 0 || text.trim().is_empty() {
        return Err(invalid(FIELD, "subject must not be empty"));
    }
    if chars > MAX_SUBJECT_CHARS {
        return Err(invalid(
            FIELD,
            format!("subject must be at most {MAX_SUBJECT_CHARS} characters, got {chars}"),
        ));
    }
    if text.chars().any(|c| matches!(c, '/' | '=' | '&')) {
        return Err(invalid(
            FIELD,
            "subject must not contain '/', '=' or '&' (Alipay refuses them)",
        ));
    }
    if text.chars().any(char::is_control) {
        return Err(invalid(
            FIELD,
            "subject must not contain control characters",
        ));
    }
    Ok(text.to_owned())
}

fn auth_code(text: &str) -> Result<AuthCode, ApiError> {
    let digits = (16..=24).contains(&text.len()) && text.bytes().all(|b| b.is_ascii_digit());
    let face = text.len() == 35
        && text.starts_with("fp")
        && text.bytes().all(|b| b.is_ascii_alphanumeric());
    if digits || face {
        Ok(AuthCode(SecretString::from(text.to_owned())))
    } else {
        // The value is never echoed.
        Err(invalid(
            "auth_code",
            "auth_code must be 16-24 digits, or \"fp\" followed by 33 letters or digits",
        ))
    }
}

pub(crate) fn identifier(
    value: Option<&Value>,
    field: &str,
    max: usize,
) -> Result<Option<String>, ApiError> {
    match value {
        None => Ok(None),
        Some(Value::String(text)) => {
            let ok = !text.is_empty()
                && text.len() <= max
                && text
                    .bytes()
                    .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'_' | b'-' | b'.'));
            if ok {
                Ok(Some(text.clone()))
            } else {
                Err(invalid(
                    field,
                    format!(
                        "{field} must be 1-{max} characters of A-Z, a-z, 0-9, '_', '-' and '.'"
                    ),
                ))
            }
        }
        Some(_) => Err(invalid(field, format!("{field} must be a string"))),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn refused(body: &str) -> ApiError {
        parse(body.as_bytes()).unwrap_err()
    }

    #[test]
    fn accepts_a_minimal_qr_request_with_defaults() {
        let request = parse(br#"{"amount_fen":1,"subject":"coffee","scene":"qr"}"#).unwrap();
        assert!(request.generated_out_trade_no);
        assert_eq!(request.timeout_seconds, 900);
        assert_eq!(request.hash.len(), 64);
        assert!(request.auth_code.is_none());
    }

    #[test]
    fn accepts_a_full_barcode_request_and_hides_the_code() {
        let request = parse(
            br#"{"out_trade_no":"T1","amount_fen":10000000000,"subject":"\u5496\u5561 x2","scene":"barcode",
                "auth_code":"280000000000000001","store_id":"S-01","operator_id":"op_1","terminal_id":"t.1","timeout_seconds":60}"#,
        )
        .unwrap();
        assert_eq!(request.out_trade_no.as_str(), "T1");
        assert_eq!(
            request.auth_code.as_ref().unwrap().expose(),
            "280000000000000001"
        );
        assert!(!format!("{request:?}").contains("280000000000000001"));
        assert!(
            parse(
                format!(
                    r#"{{"out_trade_no":"B1","amount_fen":1,"subject":"s","scene":"barcode","auth_code":"fp{}"}}"#,
                    "a1".repeat(16) + "b"
                )
                .as_bytes()
            )
            .is_ok()
        );
    }

    #[test]
    fn refuses_each_bad_field_with_its_name() {
        let cases: &[(&str, &str, &str)] = &[
            ("[]", "invalid_json", ""),
            ("{", "invalid_json", ""),
            ("", "invalid_json", ""),
            (
                r#"{"amount_fen":1,"amount_fen":2,"subject":"s","scene":"qr"}"#,
                "invalid_json",
                "",
            ),
            (
                r#"{"amount_fen":1,"subject":"s","scene":"qr","amount":"1.00"}"#,
                "unknown_field",
                "amount",
            ),
            (
                r#"{"subject":"s","scene":"qr"}"#,
                "missing_field",
                "amount_fen",
            ),
            (
                r#"{"amount_fen":1.0,"subject":"s","scene":"qr"}"#,
                "invalid_field",
                "amount_fen",
            ),
            (
                r#"{"amount_fen":1.005,"subject":"s","scene":"qr"}"#,
                "invalid_field",
                "amount_fen",
            ),
            (
                r#"{"amount_fen":1e2,"subject":"s","scene":"qr"}"#,
                "invalid_field",
                "amount_fen",
            ),
            (
                r#"{"amount_fen":"100","subject":"s","scene":"qr"}"#,
                "invalid_field",
                "amount_fen",
            ),
            (
                r#"{"amount_fen":0,"subject":"s","scene":"qr"}"#,
                "invalid_field",
                "amount_fen",
            ),
            (
                r#"{"amount_fen":-5,"subject":"s","scene":"qr"}"#,
                "invalid_field",
                "amount_fen",
            ),
            (
                r#"{"amount_fen":10000000001,"subject":"s","scene":"qr"}"#,
                "invalid_field",
                "amount_fen",
            ),
            (
                r#"{"amount_fen":18446744073709551615,"subject":"s","scene":"qr"}"#,
                "invalid_field",
                "amount_fen",
            ),
            (
                r#"{"amount_fen":1,"subject":"a/b","scene":"qr"}"#,
                "invalid_field",
                "subject",
            ),
            (
                r#"{"amount_fen":1,"subject":"a=b","scene":"qr"}"#,
                "invalid_field",
                "subject",
            ),
            (
                r#"{"amount_fen":1,"subject":"a&b","scene":"qr"}"#,
                "invalid_field",
                "subject",
            ),
            (
                r#"{"amount_fen":1,"subject":"a\u0007b","scene":"qr"}"#,
                "invalid_field",
                "subject",
            ),
            (
                r#"{"amount_fen":1,"subject":"  ","scene":"qr"}"#,
                "invalid_field",
                "subject",
            ),
            (
                r#"{"amount_fen":1,"subject":5,"scene":"qr"}"#,
                "invalid_field",
                "subject",
            ),
            (
                r#"{"amount_fen":1,"subject":"s","scene":"nfc"}"#,
                "invalid_field",
                "scene",
            ),
            (
                r#"{"amount_fen":1,"subject":"s","scene":"qr","auth_code":"280000000000000001"}"#,
                "invalid_field",
                "auth_code",
            ),
            (
                r#"{"out_trade_no":"B1","amount_fen":1,"subject":"s","scene":"barcode"}"#,
                "missing_field",
                "auth_code",
            ),
            (
                r#"{"amount_fen":1,"subject":"s","scene":"barcode","auth_code":"280000000000000001"}"#,
                "missing_field",
                "out_trade_no",
            ),
            (
                r#"{"out_trade_no":"B1","amount_fen":1,"subject":"s","scene":"barcode","auth_code":"12345"}"#,
                "invalid_field",
                "auth_code",
            ),
            (
                r#"{"out_trade_no":"B1","amount_fen":1,"subject":"s","scene":"barcode","auth_code":280000000000000001}"#,
                "invalid_field",
                "auth_code",
            ),
            (
                r#"{"out_trade_no":"a-b","amount_fen":1,"subject":"s","scene":"qr"}"#,
                "invalid_field",
                "out_trade_no",
            ),
            (
                r#"{"out_trade_no":"订单","amount_fen":1,"subject":"s","scene":"qr"}"#,
                "invalid_field",
                "out_trade_no",
            ),
            (
                r#"{"out_trade_no":7,"amount_fen":1,"subject":"s","scene":"qr"}"#,
                "invalid_field",
                "out_trade_no",
            ),
            (
                r#"{"amount_fen":1,"subject":"s","scene":"qr","store_id":"门店1"}"#,
                "invalid_field",
                "store_id",
            ),
            (
                r#"{"amount_fen":1,"subject":"s","scene":"qr","operator_id":"12345678901234567890123456789"}"#,
                "invalid_field",
                "operator_id",
            ),
            (
                r#"{"amount_fen":1,"subject":"s","scene":"qr","timeout_seconds":59}"#,
                "invalid_field",
                "timeout_seconds",
            ),
            (
                r#"{"amount_fen":1,"subject":"s","scene":"qr","timeout_seconds":7201}"#,
                "invalid_field",
                "timeout_seconds",
            ),
            (
                r#"{"amount_fen":1,"subject":"s","scene":"qr","timeout_seconds":"900"}"#,
                "invalid_field",
                "timeout_seconds",
            ),
        ];
        for (body, code, field) in cases {
            let error = refused(body);
            assert_eq!(error.code, *code, "{body}");
            assert_eq!(error.status, StatusCode::BAD_REQUEST, "{body}");
            if !field.is_empty() {
                assert_eq!(error.field.as_deref(), Some(*field), "{body}");
            }
        }
        let long = format!(
            r#"{{"amount_fen":1,"subject":"{}","scene":"qr"}}"#,
            "字".repeat(257)
        );
        assert_eq!(refused(&long).field.as_deref(), Some("subject"));
        let fine = format!(
            r#"{{"amount_fen":1,"subject":"{}","scene":"qr"}}"#,
            "字".repeat(256)
        );
        assert!(parse(fine.as_bytes()).is_ok());
    }

    #[test]
    fn a_bad_auth_code_is_never_echoed() {
        let error = refused(
            r#"{"out_trade_no":"B1","amount_fen":1,"subject":"s","scene":"barcode","auth_code":"28000000000000000x"}"#,
        );
        assert!(!error.message.contains("28000000000000000x"));
        let error = refused(
            r#"{"out_trade_no":"B1","amount_fen":1,"subject":"s","scene":"barcode","auth_code":"280000000000000001"#,
        );
        assert!(!error.message.contains("280000000000000001"));
    }
}
