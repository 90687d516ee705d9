//! How a sandbox is started: what the CLI parses into, and what tests build in-process.

use crate::rules::Rules;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

/// Alipay's notification retry gaps after the first attempt: 4m, 10m, 10m, 1h, 2h, 6h, 15h
/// (each gap counted from the previous attempt; eight attempts over about 25 hours).
pub const ALIPAY_RETRY_SCHEDULE: &str = "4m,10m,10m,1h,2h,6h,15h";

#[derive(Debug, Clone)]
pub struct Config {
    /// Where to listen; port 0 picks a free port.
    pub listen: SocketAddr,
    /// Key files and `sandbox.json` live here.
    pub keys_dir: PathBuf,
    /// Sandbox time runs this many times faster than real time.
    pub time_scale: f64,
    /// When set, all state is saved here as JSON after each change and loaded at start.
    pub state_file: Option<PathBuf>,
    /// Gaps between notification attempts, in sandbox time.
    pub notify_retry_schedule: Vec<Duration>,
    /// Real-time timeout for one notification POST.
    pub notify_timeout: Duration,
    /// Permit a non-loopback `listen` address.
    pub allow_remote: bool,
    /// How long (real time) a `bill_download_url` works; Alipay's live about 30 s.
    pub bill_url_ttl: Duration,
    /// The rules a new state starts with (a state file keeps its own).
    pub rules: Rules,
}

impl Config {
    /// Defaults: loopback on a free port, real time, Alipay's retry schedule, no state file.
    pub fn new(keys_dir: impl Into<PathBuf>) -> Config {
        Config {
            listen: SocketAddr::from(([127, 0, 0, 1], 0)),
            keys_dir: keys_dir.into(),
            time_scale: 1.0,
            state_file: None,
            notify_retry_schedule: parse_schedule(ALIPAY_RETRY_SCHEDULE).unwrap_or_default(),
            notify_timeout: Duration::from_secs(10),
            allow_remote: false,
            bill_url_ttl: crate::bill::DEFAULT_URL_TTL,
            rules: Rules::default(),
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0:?} is not a duration such as 500ms, 30s, 4m, 1h or 2d")]
pub struct DurationError(pub String);

/// `30s`, `4m`, `1h`, `2d`, `500ms`.
pub fn parse_duration(text: &str) -> Result<Duration, DurationError> {
    let text = text.trim();
    let error = || DurationError(text.to_owned());
    let split = text.find(|c: char| !c.is_ascii_digit()).ok_or_else(error)?;
    let (number, unit) = text.split_at(split);
    let number: u64 = number.parse().map_err(|_| error())?;
    let seconds_per_unit = match unit {
        "ms" => return Ok(Duration::from_millis(number)),
        "s" => 1,
        "m" => 60,
        "h" => 3600,
        "d" => 86_400,
        _ => return Err(error()),
    };
    number
        .checked_mul(seconds_per_unit)
        .map(Duration::from_secs)
        .ok_or_else(error)
}

/// A comma-separated list of durations; an empty string means "never retry".
pub fn parse_schedule(text: &str) -> Result<Vec<Duration>, DurationError> {
    text.split(',')
        .map(str::trim)
        .filter(|part| !part.is_empty())
        .map(parse_duration)
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_alipay_schedule() {
        let schedule = parse_schedule(ALIPAY_RETRY_SCHEDULE).unwrap_or_default();
        let minutes: Vec<u64> = schedule.iter().map(|d| d.as_secs() / 60).collect();
        assert_eq!(minutes, vec![4, 10, 10, 60, 120, 360, 900]);
        assert_eq!(parse_duration("250ms"), Ok(Duration::from_millis(250)));
        assert!(parse_duration("1.5h").is_err());
        assert!(parse_duration("h").is_err());
        assert_eq!(parse_schedule(""), Ok(vec![]));
    }
}
