//! Faults on demand: make the next call(s) of a method answer with an error code, arrive
//! late, lose their connection, or come back unsigned or wrongly signed, optionally with the
//! real effect still happening behind the fault (the "unknown outcome" cases a merchant must
//! resolve by querying).

use crate::answer::{self, Answer, Signing};
use crate::methods::Method;
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};
use std::time::Duration;

/// One fault as posted to `POST /sandbox/faults`.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct FaultSpec {
    /// The method it applies to; absent means any gateway method.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub method: Option<String>,
    /// Replace the answer with this code (`20000`, `40004`, `40002`, …).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub code: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub msg: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub sub_code: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub sub_msg: Option<String>,
    /// Extra fields for the replaced answer (e.g. `{"retry_flag":"Y"}`).
    #[serde(skip_serializing_if = "Map::is_empty")]
    pub fields: Map<String, Value>,
    /// How many calls it applies to (default 1).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub times: Option<u32>,
    /// Answer this many real milliseconds late (the call itself is processed normally).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub delay_ms: Option<u64>,
    /// Close the TCP connection without any HTTP response.
    pub drop_connection: bool,
    /// Send the answer without `sign`.
    pub unsigned: bool,
    /// Send the answer with a signature over other bytes.
    pub bad_signature: bool,
    /// When the answer is replaced (`code`) or dropped: still perform the real effect.
    pub apply: bool,
}

/// A registered fault with its remaining uses.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Fault {
    pub id: u64,
    pub remaining: u32,
    #[serde(flatten)]
    pub spec: FaultSpec,
}

impl FaultSpec {
    /// Checks a posted fault; the error says what is wrong.
    pub fn validate(&self) -> Result<(), String> {
        if let Some(method) = &self.method
            && Method::parse(method).is_none()
        {
            return Err(format!("unknown method {method:?}"));
        }
        if let Some(code) = &self.code
            && (code.len() != 5 || !code.bytes().all(|b| b.is_ascii_digit()))
        {
            return Err(format!("code {code:?} is not a five-digit gateway code"));
        }
        if self.times == Some(0) {
            return Err("times must be at least 1".into());
        }
        let has_effect = self.code.is_some()
            || self.delay_ms.is_some()
            || self.drop_connection
            || self.unsigned
            || self.bad_signature;
        if !has_effect {
            return Err(
                "a fault needs code, delay_ms, drop_connection, unsigned or bad_signature".into(),
            );
        }
        if self.unsigned && self.bad_signature {
            return Err("unsigned and bad_signature exclude each other".into());
        }
        Ok(())
    }

    pub fn applies_to(&self, method: Method) -> bool {
        self.method
            .as_deref()
            .is_none_or(|name| Method::parse(name) == Some(method))
    }

    /// Whether the method still runs for real behind this fault.
    pub fn runs_method(&self) -> bool {
        self.apply || (self.code.is_none() && !self.drop_connection)
    }

    /// The answer that replaces the real one, if the fault sets a code.
    pub fn replacement(&self, method: Method) -> Option<Answer> {
        let code = self.code.as_deref()?;
        let msg = self
            .msg
            .clone()
            .unwrap_or_else(|| answer::default_msg(code).to_owned());
        let mut reply = Answer::new(code, &msg);
        let (default_sub_code, default_sub_msg) = match code {
            answer::UNKNOWN => (Some("isp.unknow-error"), Some("系统繁忙")),
            answer::BUSINESS_FAILED => (Some("ACQ.SYSTEM_ERROR"), Some("系统错误")),
            _ => (None, None),
        };
        reply.sub_code = self
            .sub_code
            .clone()
            .or(default_sub_code.map(str::to_owned));
        reply.sub_msg = self.sub_msg.clone().or(default_sub_msg.map(str::to_owned));
        let system_error =
            code == answer::UNKNOWN || reply.sub_code.as_deref() == Some("ACQ.SYSTEM_ERROR");
        if method == Method::Cancel && system_error && !self.fields.contains_key("retry_flag") {
            // Alipay asks for a retry of a cancel that failed on its side.
            reply.set("retry_flag", Value::String("Y".into()));
        }
        for (key, value) in &self.fields {
            reply.set(key, value.clone());
        }
        Some(reply)
    }

    pub fn signing(&self) -> Signing {
        if self.unsigned {
            Signing::Unsigned
        } else if self.bad_signature {
            Signing::Wrong
        } else {
            Signing::AsAlipay
        }
    }

    pub fn delay(&self) -> Option<Duration> {
        self.delay_ms.map(Duration::from_millis)
    }
}

/// Takes one use of the first fault that applies to `method`; exhausted faults disappear.
pub fn take(faults: &mut Vec<Fault>, method: Method) -> Option<FaultSpec> {
    let index = faults.iter().position(|f| f.spec.applies_to(method))?;
    let fault = faults.get_mut(index)?;
    fault.remaining = fault.remaining.saturating_sub(1);
    let spec = fault.spec.clone();
    if fault.remaining == 0 {
        faults.remove(index);
    }
    Some(spec)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn faults_are_used_up_in_order() {
        let spec = FaultSpec {
            method: Some("alipay.trade.query".into()),
            code: Some("40004".into()),
            times: Some(2),
            ..FaultSpec::default()
        };
        assert_eq!(spec.validate(), Ok(()));
        let mut faults = vec![Fault {
            id: 1,
            remaining: 2,
            spec,
        }];
        assert!(take(&mut faults, Method::Pay).is_none());
        assert!(take(&mut faults, Method::Query).is_some());
        assert!(take(&mut faults, Method::Query).is_some());
        assert!(take(&mut faults, Method::Query).is_none());
    }

    #[test]
    fn cancel_system_errors_ask_for_a_retry() {
        let spec = FaultSpec {
            code: Some("40004".into()),
            ..FaultSpec::default()
        };
        let reply = spec.replacement(Method::Cancel);
        assert_eq!(
            reply.map(|r| r.node_text()).as_deref(),
            Some(
                r#"{"code":"40004","msg":"Business Failed","sub_code":"ACQ.SYSTEM_ERROR","sub_msg":"系统错误","retry_flag":"Y"}"#
            )
        );
        assert!(FaultSpec::default().validate().is_err());
    }
}
