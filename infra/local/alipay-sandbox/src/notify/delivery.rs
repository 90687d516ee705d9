//! Sending one notification attempt: the signed form body (UTF-8 or GBK, optionally with a
//! wrong signature) and the HTTP POST. Runs outside the state lock.

use super::record::Notification;
use alipay::PrivateKey;
use alipay::notify::sign_form;
use encoding_rs::{Encoding, GBK, UTF_8};

/// How much of a receiver's answer is kept in the delivery log.
pub const LOGGED_BODY_CHARS: usize = 256;

/// One prepared attempt round of one notification.
#[derive(Debug, Clone)]
pub struct Dispatch {
    pub id: u64,
    /// 1 for the first attempt, 2 for the first retry, …
    pub round: usize,
    pub url: String,
    pub notify_time: String,
    pub body: String,
    pub content_type: &'static str,
    /// 2 when the `duplicates` switch is on.
    pub copies: u8,
}

/// Rounds sent in order by one background task (a notification, then perhaps the stale one
/// that must arrive after it).
#[derive(Debug, Clone, Default)]
pub struct DeliveryJob {
    pub steps: Vec<Dispatch>,
}

/// What the receiver did with one request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Reply {
    pub http_status: Option<u16>,
    pub body: String,
    pub error: Option<String>,
}

impl Reply {
    /// Alipay stops retrying only on HTTP 200 with a body of exactly `success`.
    pub fn is_success(&self) -> bool {
        self.http_status == Some(200) && self.body == "success"
    }
}

/// Builds the signed body for `notification` with `notify_time`.
pub fn prepare(notification: &Notification, notify_time: &str, key: &PrivateKey) -> Dispatch {
    let encoding: &'static Encoding = if notification.gbk { GBK } else { UTF_8 };
    let charset = if notification.gbk { "GBK" } else { "utf-8" };
    let mut params: Vec<(&str, &str)> = vec![("notify_time", notify_time)];
    params.extend(notification.fields.iter().map(|(k, v)| {
        if k == "charset" {
            (k.as_str(), charset)
        } else {
            (k.as_str(), v.as_str())
        }
    }));
    let body = sign_form(&params, encoding, key).unwrap_or_default();
    let body = if notification.bad_signature {
        params.push(("sandbox_tampered", "1"));
        let other = sign_form(&params, encoding, key).unwrap_or_default();
        replace_sign(&body, &other)
    } else {
        body
    };
    Dispatch {
        id: notification.id,
        round: notification.rounds + 1,
        url: notification.url.clone(),
        notify_time: notify_time.to_owned(),
        body,
        content_type: if notification.gbk {
            "application/x-www-form-urlencoded; charset=GBK"
        } else {
            "application/x-www-form-urlencoded; charset=utf-8"
        },
        copies: if notification.duplicates { 2 } else { 1 },
    }
}

/// `body` with its `sign` value taken from `donor`: well-formed, but over other content.
fn replace_sign(body: &str, donor: &str) -> String {
    let donor_sign = donor.split('&').find(|p| p.starts_with("sign="));
    body.split('&')
        .map(|pair| match donor_sign {
            Some(sign) if pair.starts_with("sign=") => sign,
            _ => pair,
        })
        .collect::<Vec<_>>()
        .join("&")
}

pub async fn post(client: &reqwest::Client, dispatch: &Dispatch) -> Reply {
    let sent = client
        .post(&dispatch.url)
        .header(reqwest::header::CONTENT_TYPE, dispatch.content_type)
        .body(dispatch.body.clone())
        .send()
        .await;
    let response = match sent {
        Ok(response) => response,
        Err(e) => {
            return Reply {
                http_status: None,
                body: String::new(),
                error: Some(error_chain(&e)),
            };
        }
    };
    let status = response.status().as_u16();
    match response.bytes().await {
        Ok(bytes) => Reply {
            http_status: Some(status),
            body: String::from_utf8_lossy(&bytes).into_owned(),
            error: None,
        },
        Err(e) => Reply {
            http_status: Some(status),
            body: String::new(),
            error: Some(error_chain(&e)),
        },
    }
}

pub fn truncate(text: &str) -> String {
    text.chars().take(LOGGED_BODY_CHARS).collect()
}

fn error_chain(error: &dyn std::error::Error) -> String {
    let mut text = error.to_string();
    let mut source = error.source();
    while let Some(inner) = source {
        text.push_str(": ");
        text.push_str(&inner.to_string());
        source = inner.source();
    }
    text
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn replaces_only_the_sign() {
        assert_eq!(
            replace_sign("a=1&sign=AAA&sign_type=RSA2", "a=2&sign=BBB&sign_type=RSA2"),
            "a=1&sign=BBB&sign_type=RSA2"
        );
    }
}
