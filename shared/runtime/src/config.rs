//! Configuration from environment variables, validated once at init. Every error names the
//! variable at fault; secret values are never part of an error, a log line or `Debug`.
//!
//! | variable | needed by | meaning |
//! | --- | --- | --- |
//! | `ORDERS_TABLE` | all but bill-fetch | DynamoDB table of orders (and their events) |
//! | `NONCES_TABLE` | all | DynamoDB table of merchant-API nonces (default: `ORDERS_TABLE`) |
//! | `EXPIRY_QUEUE_URL` | pay, timeout-close | SQS queue of order expiries and refund re-checks |
//! | `ALIPAY_APP_ID` | all | the merchant's Alipay app id |
//! | `ALIPAY_GATEWAY_URL` | all | `https://openapi.alipay.com/gateway.do`, or the sandbox |
//! | `ALIPAY_NOTIFY_URL` | pay | where Alipay posts notifications |
//! | `ALIPAY_SELLER_ID` | optional | sent with `precreate` (the PID receiving the money) |
//! | `ALIPAY_APP_PRIVATE_KEY_SECRET_ARN` or `ALIPAY_APP_PRIVATE_KEY_FILE` | all | the app private key |
//! | `ALIPAY_PUBLIC_KEY` or `ALIPAY_PUBLIC_KEY_FILE` | all | Alipay's public key (PEM or bare Base64) |
//! | `MERCHANT_API_KEYS_SECRET_ARN` or `MERCHANT_API_KEYS_FILE` | pay, query | `{"key-id":"secret",...}` (not read by functions that serve no merchant request) |
//! | `MERCHANT_API_KEYS_REFRESH_SECONDS` | optional | how often keys in Secrets Manager are read again, default 300 (1–3600): a removed key is refused, an added one accepted, within this delay (a file is read once) |
//! | `ALIPAY_CONNECT_TIMEOUT_MS` | optional | default 3000 |
//! | `ALIPAY_REQUEST_TIMEOUT_MS` | optional | whole-call budget, default 5000 |
//! | `PRECREATE_ATTEMPTS` | optional | identical precreates on an unknown outcome, default 2 (1–5) |
//! | `BARCODE_POLL_INTERVAL_MS` | optional | default 3000 |
//! | `BARCODE_POLL_DURATION_MS` | optional | default 24000: with the pay call and the cancel, a buyer who never confirms is settled inside API Gateway's 30 s integration timeout |
//! | `CANCEL_ATTEMPTS` | optional | default 3 (1–5) |
//! | `CLAIM_LEASE_SECONDS` | optional | how long a request holds an order's lease when it takes or extends it (fencing: it must exceed `ALIPAY_REQUEST_TIMEOUT_MS` plus a 2 s margin, checked at init); default: request timeout × precreate attempts + 5 s |
//! | `SYNC_AFTER_SECONDS` | optional | a GET asks Alipay when the order (or a pending refund) was last synced longer ago, default 5 |
//! | `REFUND_ATTEMPTS` | optional | refund calls one request sends while Alipay's answer stays unknown (a refund query between two), default 2 (1–5) |
//! | `REFUND_RECHECK_SECONDS` | optional | when the expiry queue checks a refund that is not settled (after its claim, then again after each check that could not settle it), default 60 (1–900) |
//! | `MAX_BODY_BYTES` | optional | default 16384 |
//! | `BILL_BUCKET` | bill-fetch | the bucket daily bills are stored in |
//! | `BILL_DEADLINE_HOUR` | optional | bill-fetch: Beijing hour of the next day after which a missing bill means a day without trades (alarmed), default 12 (9–23) |
//! | `AWS_ATTEMPT_TIMEOUT_MS` | optional | how long one attempt of a DynamoDB, SQS or Secrets Manager call may take before it is abandoned and retried (3 attempts), default 5000 (100–60000) |
//! | `FUNCTION_TIMEOUT_SECONDS` | optional | the Lambda timeout the schedule must fit (pay 60, query 10) |

use secrecy::SecretString;
use std::fmt;
use std::path::PathBuf;
use std::time::Duration;

/// Which function is being configured (they need different variables).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Function {
    Pay,
    Query,
    TimeoutClose,
    /// Configured by [`NotifyConfig`]: it calls no Alipay API and holds no private key.
    Notify,
    /// Downloads the daily bill into the bill bucket: Alipay, no table.
    BillFetch,
    /// Configured by [`ReconcileConfig`]: the table and the bill bucket, no Alipay.
    Reconcile,
    /// Configured by [`AdminConfig`]: the operator console's API, the table only.
    Admin,
}

impl Function {
    pub fn name(self) -> &'static str {
        match self {
            Function::Pay => "pay",
            Function::Query => "query",
            Function::TimeoutClose => "timeout-close",
            Function::Notify => "notify",
            Function::BillFetch => "bill-fetch",
            Function::Reconcile => "reconcile",
            Function::Admin => "admin",
        }
    }

    /// Whether the function answers merchant API requests (and so needs the merchant keys).
    pub fn serves_merchant_api(self) -> bool {
        matches!(self, Function::Pay | Function::Query)
    }

    /// Whether the function sends side-effecting Alipay calls (and so fences them).
    fn sends_fenced_calls(self) -> bool {
        matches!(self, Function::Pay | Function::TimeoutClose)
    }

    fn default_timeout(self) -> Duration {
        match self {
            Function::Pay | Function::TimeoutClose => Duration::from_secs(60),
            Function::Query | Function::Notify | Function::Admin => Duration::from_secs(10),
            Function::BillFetch => Duration::from_secs(120),
            Function::Reconcile => Duration::from_secs(300),
        }
    }
}

/// A bad or missing variable.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ConfigError {
    #[error("environment variable {0} is required")]
    Missing(&'static str),
    #[error("environment variable {name} is invalid: {reason}")]
    Invalid { name: &'static str, reason: String },
    #[error("set exactly one of {0} and {1}")]
    OneOf(&'static str, &'static str),
}

/// Where a secret comes from. `Debug` shows the location, never the value.
#[derive(Clone)]
pub enum SecretSource {
    /// A Secrets Manager secret (its `SecretString`).
    SecretsManager(String),
    /// A file (local runs).
    File(PathBuf),
    /// The value itself (public keys given inline, tests).
    Inline(SecretString),
}

impl fmt::Debug for SecretSource {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            SecretSource::SecretsManager(arn) => {
                f.debug_tuple("SecretsManager").field(arn).finish()
            }
            SecretSource::File(path) => f.debug_tuple("File").field(path).finish(),
            SecretSource::Inline(_) => f.write_str("Inline(<redacted>)"),
        }
    }
}

#[derive(Debug, Clone)]
pub struct AlipaySettings {
    pub app_id: String,
    pub gateway_url: String,
    pub notify_url: Option<String>,
    pub seller_id: Option<String>,
    pub app_private_key: SecretSource,
    pub alipay_public_key: SecretSource,
    pub connect_timeout: Duration,
    pub request_timeout: Duration,
}

/// How long one attempt of a DynamoDB, SQS or Secrets Manager call may take before the SDK
/// abandons it and retries (standard policy, 3 attempts), unless `AWS_ATTEMPT_TIMEOUT_MS`
/// says otherwise: these calls answer in milliseconds, so a longer one is a stalled
/// connection, and 3 attempts fit in the functions' 15 s.
pub const DEFAULT_AWS_ATTEMPT_TIMEOUT_MS: u64 = 5_000;

/// The timing knobs of the payment flows.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Knobs {
    pub precreate_attempts: u32,
    pub poll_interval: Duration,
    pub poll_duration: Duration,
    pub cancel_attempts: u32,
    pub claim_lease: Duration,
    pub sync_after: Duration,
    pub max_body_bytes: usize,
    pub function_timeout: Duration,
    /// Refund calls one request sends while Alipay's answer stays unknown.
    pub refund_attempts: u32,
    /// When a refund that is not settled is checked again by the expiry queue.
    pub refund_recheck_after: Duration,
    /// The Beijing hour of the next day after which a missing bill means a day without trades.
    pub bill_deadline_hour: u32,
    /// How long one attempt of an AWS call on the request path may take.
    pub aws_attempt_timeout: Duration,
}

#[derive(Debug, Clone)]
pub struct Config {
    pub function: Function,
    pub orders_table: String,
    pub nonces_table: String,
    /// Present for the pay function.
    pub expiry_queue_url: Option<String>,
    pub alipay: AlipaySettings,
    /// Only for the functions that serve the merchant API.
    pub merchant_keys: Option<SecretSource>,
    /// How often merchant keys kept in Secrets Manager are read again.
    pub merchant_keys_refresh: Duration,
    /// The bill bucket (bill-fetch).
    pub bill_bucket: Option<String>,
    pub knobs: Knobs,
}

/// The notify function's configuration: it verifies notifications with Alipay's public key
/// and writes to the orders table; it sends no Alipay request, so it has no app private key
/// and no gateway.
///
/// | variable | meaning |
/// | --- | --- |
/// | `ORDERS_TABLE` | DynamoDB table of orders |
/// | `ALIPAY_APP_ID` | the merchant's app id: notifications for another app (`app_id`, or `auth_app_id` when a service provider's app sends) are refused |
/// | `ALIPAY_SELLER_ID` | optional; when set, notifications for another seller (`seller_id`) are refused |
/// | `ALIPAY_PUBLIC_KEY` or `ALIPAY_PUBLIC_KEY_FILE` | Alipay's public key (PEM or bare Base64) |
#[derive(Debug, Clone)]
pub struct NotifyConfig {
    pub orders_table: String,
    pub app_id: String,
    pub seller_id: Option<String>,
    pub alipay_public_key: SecretSource,
}

impl NotifyConfig {
    pub fn from_env() -> Result<NotifyConfig, ConfigError> {
        Self::from_lookup(&|name| std::env::var(name).ok())
    }

    pub fn from_lookup(
        lookup: &dyn Fn(&str) -> Option<String>,
    ) -> Result<NotifyConfig, ConfigError> {
        let env = Env { lookup };
        Ok(NotifyConfig {
            orders_table: env.required("ORDERS_TABLE")?,
            app_id: env.required("ALIPAY_APP_ID")?,
            seller_id: env.optional("ALIPAY_SELLER_ID"),
            alipay_public_key: env.inline_or_file("ALIPAY_PUBLIC_KEY", "ALIPAY_PUBLIC_KEY_FILE")?,
        })
    }
}

/// The reconcile function's configuration: the table and the bill bucket; it calls no Alipay
/// API.
///
/// | variable | meaning |
/// | --- | --- |
/// | `ORDERS_TABLE` | DynamoDB table of orders |
/// | `BILL_BUCKET` | the bucket bills are stored in and reports written to |
/// | `SCRATCH_DIR` | optional; where a bill is copied to be read, default the system's temporary directory (Lambda's `/tmp`) |
#[derive(Debug, Clone)]
pub struct ReconcileConfig {
    pub orders_table: String,
    pub bill_bucket: String,
    pub scratch_dir: PathBuf,
}

impl ReconcileConfig {
    pub fn from_env() -> Result<ReconcileConfig, ConfigError> {
        Self::from_lookup(&|name| std::env::var(name).ok())
    }

    pub fn from_lookup(
        lookup: &dyn Fn(&str) -> Option<String>,
    ) -> Result<ReconcileConfig, ConfigError> {
        let env = Env { lookup };
        Ok(ReconcileConfig {
            orders_table: env.required("ORDERS_TABLE")?,
            bill_bucket: env.required("BILL_BUCKET")?,
            scratch_dir: env
                .optional("SCRATCH_DIR")
                .map_or_else(std::env::temp_dir, PathBuf::from),
        })
    }
}

/// The admin function's configuration: the orders table, the bucket of the reconciliation
/// reports, and the expiry queue (an operator's refund is sent by the refund flow's re-check).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AdminConfig {
    pub orders_table: String,
    pub bill_bucket: String,
    pub expiry_queue_url: String,
}

impl AdminConfig {
    pub fn from_env() -> Result<AdminConfig, ConfigError> {
        Self::from_lookup(&|name| std::env::var(name).ok())
    }

    pub fn from_lookup(
        lookup: &dyn Fn(&str) -> Option<String>,
    ) -> Result<AdminConfig, ConfigError> {
        let env = Env { lookup };
        Ok(AdminConfig {
            orders_table: env.required("ORDERS_TABLE")?,
            bill_bucket: env.required("BILL_BUCKET")?,
            expiry_queue_url: env.url("EXPIRY_QUEUE_URL")?,
        })
    }
}

/// Reads variables through `lookup` (the process environment in production).
struct Env<'a> {
    lookup: &'a dyn Fn(&str) -> Option<String>,
}

impl Env<'_> {
    fn optional(&self, name: &'static str) -> Option<String> {
        (self.lookup)(name).filter(|v| !v.trim().is_empty())
    }

    fn required(&self, name: &'static str) -> Result<String, ConfigError> {
        self.optional(name).ok_or(ConfigError::Missing(name))
    }

    fn number(
        &self,
        name: &'static str,
        default: u64,
        range: (u64, u64),
    ) -> Result<u64, ConfigError> {
        let Some(text) = self.optional(name) else {
            return Ok(default);
        };
        let value: u64 = text.trim().parse().map_err(|_| ConfigError::Invalid {
            name,
            reason: "not a non-negative integer".into(),
        })?;
        if value < range.0 || value > range.1 {
            return Err(ConfigError::Invalid {
                name,
                reason: format!("must be between {} and {}", range.0, range.1),
            });
        }
        Ok(value)
    }

    fn millis(
        &self,
        name: &'static str,
        default: u64,
        range: (u64, u64),
    ) -> Result<Duration, ConfigError> {
        self.number(name, default, range).map(Duration::from_millis)
    }

    fn url(&self, name: &'static str) -> Result<String, ConfigError> {
        let url = self.required(name)?;
        if url.starts_with("https://") || url.starts_with("http://") {
            Ok(url)
        } else {
            Err(ConfigError::Invalid {
                name,
                reason: "not an http(s) URL".into(),
            })
        }
    }

    /// Exactly one of a Secrets Manager ARN and a file.
    fn secret(&self, arn: &'static str, file: &'static str) -> Result<SecretSource, ConfigError> {
        match (self.optional(arn), self.optional(file)) {
            (Some(arn), None) => Ok(SecretSource::SecretsManager(arn)),
            (None, Some(path)) => Ok(SecretSource::File(PathBuf::from(path))),
            _ => Err(ConfigError::OneOf(arn, file)),
        }
    }

    /// Exactly one of an inline value and a file.
    fn inline_or_file(
        &self,
        inline: &'static str,
        file: &'static str,
    ) -> Result<SecretSource, ConfigError> {
        match (self.optional(inline), self.optional(file)) {
            (Some(value), None) => Ok(SecretSource::Inline(SecretString::from(value))),
            (None, Some(path)) => Ok(SecretSource::File(PathBuf::from(path))),
            _ => Err(ConfigError::OneOf(inline, file)),
        }
    }
}

impl Config {
    /// Reads the process environment.
    pub fn from_env(function: Function) -> Result<Config, ConfigError> {
        Self::from_lookup(function, &|name| std::env::var(name).ok())
    }

    /// Reads variables through `lookup` (tests pass a map).
    pub fn from_lookup(
        function: Function,
        lookup: &dyn Fn(&str) -> Option<String>,
    ) -> Result<Config, ConfigError> {
        let env = Env { lookup };
        // The bill download touches no table.
        let orders_table = match function {
            Function::BillFetch => env.optional("ORDERS_TABLE").unwrap_or_default(),
            _ => env.required("ORDERS_TABLE")?,
        };
        let nonces_table = env
            .optional("NONCES_TABLE")
            .unwrap_or_else(|| orders_table.clone());
        let expiry_queue_url = match function {
            Function::Pay | Function::TimeoutClose => Some(env.url("EXPIRY_QUEUE_URL")?),
            Function::Query
            | Function::Notify
            | Function::BillFetch
            | Function::Reconcile
            | Function::Admin => None,
        };
        let notify_url = match function {
            Function::Pay => Some(env.url("ALIPAY_NOTIFY_URL")?),
            Function::Query
            | Function::TimeoutClose
            | Function::Notify
            | Function::BillFetch
            | Function::Reconcile
            | Function::Admin => env.optional("ALIPAY_NOTIFY_URL"),
        };
        let alipay = AlipaySettings {
            app_id: env.required("ALIPAY_APP_ID")?,
            gateway_url: env.url("ALIPAY_GATEWAY_URL")?,
            notify_url,
            seller_id: env.optional("ALIPAY_SELLER_ID"),
            app_private_key: env.secret(
                "ALIPAY_APP_PRIVATE_KEY_SECRET_ARN",
                "ALIPAY_APP_PRIVATE_KEY_FILE",
            )?,
            alipay_public_key: env.inline_or_file("ALIPAY_PUBLIC_KEY", "ALIPAY_PUBLIC_KEY_FILE")?,
            connect_timeout: env.millis("ALIPAY_CONNECT_TIMEOUT_MS", 3_000, (100, 30_000))?,
            request_timeout: env.millis("ALIPAY_REQUEST_TIMEOUT_MS", 5_000, (500, 30_000))?,
        };
        let merchant_keys = if function.serves_merchant_api() {
            Some(env.secret("MERCHANT_API_KEYS_SECRET_ARN", "MERCHANT_API_KEYS_FILE")?)
        } else {
            None
        };
        let merchant_keys_refresh =
            Duration::from_secs(env.number("MERCHANT_API_KEYS_REFRESH_SECONDS", 300, (1, 3600))?);
        let precreate_attempts =
            u32::try_from(env.number("PRECREATE_ATTEMPTS", 2, (1, 5))?).unwrap_or(2);
        let default_lease = alipay.request_timeout * precreate_attempts + Duration::from_secs(5);
        let knobs = Knobs {
            precreate_attempts,
            poll_interval: env.millis("BARCODE_POLL_INTERVAL_MS", 3_000, (100, 60_000))?,
            poll_duration: env.millis("BARCODE_POLL_DURATION_MS", 24_000, (0, 600_000))?,
            cancel_attempts: u32::try_from(env.number("CANCEL_ATTEMPTS", 3, (1, 5))?).unwrap_or(3),
            claim_lease: match env.optional("CLAIM_LEASE_SECONDS") {
                Some(_) => Duration::from_secs(env.number("CLAIM_LEASE_SECONDS", 0, (1, 900))?),
                None => default_lease,
            },
            sync_after: Duration::from_secs(env.number("SYNC_AFTER_SECONDS", 5, (0, 3600))?),
            max_body_bytes: usize::try_from(env.number(
                "MAX_BODY_BYTES",
                16 * 1024,
                (1024, 1024 * 1024),
            )?)
            .unwrap_or(16 * 1024),
            function_timeout: match env.optional("FUNCTION_TIMEOUT_SECONDS") {
                Some(_) => {
                    Duration::from_secs(env.number("FUNCTION_TIMEOUT_SECONDS", 0, (1, 900))?)
                }
                None => function.default_timeout(),
            },
            refund_attempts: u32::try_from(env.number("REFUND_ATTEMPTS", 2, (1, 5))?).unwrap_or(2),
            refund_recheck_after: Duration::from_secs(env.number(
                "REFUND_RECHECK_SECONDS",
                60,
                (1, 900),
            )?),
            bill_deadline_hour: u32::try_from(env.number("BILL_DEADLINE_HOUR", 12, (9, 23))?)
                .unwrap_or(12),
            aws_attempt_timeout: env.millis(
                "AWS_ATTEMPT_TIMEOUT_MS",
                DEFAULT_AWS_ATTEMPT_TIMEOUT_MS,
                (100, 60_000),
            )?,
        };
        let bill_bucket = match function {
            Function::BillFetch => Some(env.required("BILL_BUCKET")?),
            _ => env.optional("BILL_BUCKET"),
        };
        let config = Config {
            function,
            orders_table,
            nonces_table,
            expiry_queue_url,
            alipay,
            merchant_keys,
            merchant_keys_refresh,
            bill_bucket,
            knobs,
        };
        config.check_budget()?;
        Ok(config)
    }

    /// The refund flow's knobs (the lease is the payments' one).
    pub fn refund_policy(&self) -> domain::refunding::RefundPolicy {
        domain::refunding::RefundPolicy {
            lease: domain::fence::LeasePolicy {
                lease: self.knobs.claim_lease,
                margin: domain::fence::LeasePolicy::DEFAULT_MARGIN,
            },
            send_attempts: self.knobs.refund_attempts,
            recheck_after: self.knobs.refund_recheck_after,
        }
    }

    /// The longest barcode flow must end before the function is killed: the pay call, the
    /// polling window plus one query that starts at its end, and every cancel attempt.
    pub fn barcode_worst_case(&self) -> Duration {
        let call = self.alipay.request_timeout;
        call + self.knobs.poll_duration + call + call * self.knobs.cancel_attempts
    }

    fn check_budget(&self) -> Result<(), ConfigError> {
        if !self.function.sends_fenced_calls() {
            return Ok(());
        }
        let policy = domain::fence::LeasePolicy {
            lease: self.knobs.claim_lease,
            margin: domain::fence::LeasePolicy::DEFAULT_MARGIN,
        };
        policy
            .check(self.alipay.request_timeout)
            .map_err(|reason| ConfigError::Invalid {
                name: "CLAIM_LEASE_SECONDS",
                reason: format!("{reason} (ALIPAY_REQUEST_TIMEOUT_MS)"),
            })?;
        if self.function != Function::Pay {
            return Ok(());
        }
        let worst = self.barcode_worst_case();
        if worst > self.knobs.function_timeout {
            return Err(ConfigError::Invalid {
                name: "BARCODE_POLL_DURATION_MS",
                reason: format!(
                    "the barcode flow can take {} ms (ALIPAY_REQUEST_TIMEOUT_MS x (2 + CANCEL_ATTEMPTS) + BARCODE_POLL_DURATION_MS), more than FUNCTION_TIMEOUT_SECONDS ({} s)",
                    worst.as_millis(),
                    self.knobs.function_timeout.as_secs()
                ),
            });
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashMap;

    fn base() -> HashMap<&'static str, &'static str> {
        HashMap::from([
            ("ORDERS_TABLE", "orders"),
            ("EXPIRY_QUEUE_URL", "http://127.0.0.1:1/queue/expiry"),
            ("ALIPAY_APP_ID", "2021000000000000"),
            ("ALIPAY_GATEWAY_URL", "http://127.0.0.1:2/gateway.do"),
            ("ALIPAY_NOTIFY_URL", "https://example.com/alipay/notify"),
            ("ALIPAY_APP_PRIVATE_KEY_FILE", "/keys/app.pem"),
            ("ALIPAY_PUBLIC_KEY", "MIIBIjANBgkq-secret-looking"),
            ("MERCHANT_API_KEYS_SECRET_ARN", "arn:aws:secretsmanager:x"),
        ])
    }

    fn load(
        vars: &HashMap<&'static str, &'static str>,
        function: Function,
    ) -> Result<Config, ConfigError> {
        Config::from_lookup(function, &|name| vars.get(name).map(|v| (*v).to_owned()))
    }

    #[test]
    fn notify_needs_no_private_key_and_no_gateway() {
        let vars = HashMap::from([
            ("ORDERS_TABLE", "orders"),
            ("ALIPAY_APP_ID", "2021000000000000"),
            ("ALIPAY_PUBLIC_KEY", "MIIBIjANBgkq-secret-looking"),
        ]);
        let config =
            NotifyConfig::from_lookup(&|name| vars.get(name).map(|v| (*v).to_owned())).unwrap();
        assert_eq!(config.seller_id, None);
        assert!(!format!("{config:?}").contains("secret-looking"));
        let missing = NotifyConfig::from_lookup(&|name| {
            (name != "ALIPAY_APP_ID")
                .then(|| vars.get(name).map(|v| (*v).to_owned()))
                .flatten()
        });
        assert_eq!(missing.err(), Some(ConfigError::Missing("ALIPAY_APP_ID")));
    }

    #[test]
    fn the_aws_attempt_timeout_is_bounded() {
        for (value, valid) in [
            ("50", false),
            ("100", true),
            ("60000", true),
            ("60001", false),
        ] {
            let mut vars = base();
            vars.insert("AWS_ATTEMPT_TIMEOUT_MS", value);
            assert_eq!(load(&vars, Function::Pay).is_ok(), valid, "{value}");
        }
    }

    #[test]
    fn reads_a_complete_environment_with_defaults() {
        let config = load(&base(), Function::Pay).unwrap();
        assert_eq!(config.nonces_table, "orders");
        assert_eq!(config.knobs.poll_interval, Duration::from_secs(3));
        assert_eq!(config.knobs.poll_duration, Duration::from_secs(24));
        assert_eq!(config.knobs.claim_lease, Duration::from_secs(15));
        assert_eq!(config.merchant_keys_refresh, Duration::from_secs(300));
        assert_eq!(config.knobs.aws_attempt_timeout, Duration::from_secs(5));
        assert!(config.barcode_worst_case() <= Duration::from_secs(60));
        let shown = format!("{config:?}");
        assert!(!shown.contains("secret-looking"), "{shown}");
    }

    #[test]
    fn names_the_missing_or_bad_variable() {
        let mut vars = base();
        vars.remove("ORDERS_TABLE");
        assert_eq!(
            load(&vars, Function::Pay).unwrap_err(),
            ConfigError::Missing("ORDERS_TABLE")
        );
        let mut vars = base();
        vars.insert("ALIPAY_APP_PRIVATE_KEY_SECRET_ARN", "arn:x");
        assert!(
            load(&vars, Function::Pay)
                .unwrap_err()
                .to_string()
                .contains("ALIPAY_APP_PRIVATE_KEY_SECRET_ARN")
        );
        let mut vars = base();
        vars.insert("BARCODE_POLL_INTERVAL_MS", "soon");
        assert!(
            load(&vars, Function::Pay)
                .unwrap_err()
                .to_string()
                .contains("BARCODE_POLL_INTERVAL_MS")
        );
        for bad in ["0", "3601", "5m"] {
            let mut vars = base();
            vars.insert("MERCHANT_API_KEYS_REFRESH_SECONDS", bad);
            assert!(
                load(&vars, Function::Query)
                    .unwrap_err()
                    .to_string()
                    .contains("MERCHANT_API_KEYS_REFRESH_SECONDS"),
                "{bad}"
            );
        }
        let mut vars = base();
        vars.insert("MERCHANT_API_KEYS_REFRESH_SECONDS", "60");
        assert_eq!(
            load(&vars, Function::Query).unwrap().merchant_keys_refresh,
            Duration::from_secs(60)
        );
        let mut vars = base();
        vars.insert("CLAIM_LEASE_SECONDS", "6");
        let refused = load(&vars, Function::Pay).unwrap_err().to_string();
        assert!(refused.contains("CLAIM_LEASE_SECONDS"), "{refused}");
        vars.insert("CLAIM_LEASE_SECONDS", "8");
        assert!(
            load(&vars, Function::Pay).is_ok(),
            "5 s calls + 2 s margin < 8 s"
        );
        let mut vars = base();
        vars.insert("BARCODE_POLL_DURATION_MS", "59000");
        assert!(
            load(&vars, Function::Pay)
                .unwrap_err()
                .to_string()
                .contains("FUNCTION_TIMEOUT_SECONDS")
        );
    }

    #[test]
    fn the_timeout_close_function_needs_the_queue_and_no_merchant_keys() {
        let mut vars = base();
        vars.remove("MERCHANT_API_KEYS_SECRET_ARN");
        vars.remove("ALIPAY_NOTIFY_URL");
        let config = load(&vars, Function::TimeoutClose).unwrap();
        assert!(config.merchant_keys.is_none());
        assert!(config.expiry_queue_url.is_some());
        vars.remove("EXPIRY_QUEUE_URL");
        assert_eq!(
            load(&vars, Function::TimeoutClose).unwrap_err(),
            ConfigError::Missing("EXPIRY_QUEUE_URL")
        );
    }

    #[test]
    fn the_query_function_needs_no_queue() {
        let mut vars = base();
        vars.remove("EXPIRY_QUEUE_URL");
        vars.remove("ALIPAY_NOTIFY_URL");
        assert!(load(&vars, Function::Query).is_ok());
        assert_eq!(
            load(&vars, Function::Pay).unwrap_err(),
            ConfigError::Missing("EXPIRY_QUEUE_URL")
        );
    }
}
