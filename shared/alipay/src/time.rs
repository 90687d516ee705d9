//! Alipay's clock: every time on the wire is Beijing time (UTC+8, no daylight saving) written
//! `yyyy-MM-dd HH:mm:ss` without an offset. Format it explicitly, never from the host's zone.

use chrono::{DateTime, FixedOffset, NaiveDateTime, Offset, TimeZone, Utc};

const WIRE_FORMAT: &str = "%Y-%m-%d %H:%M:%S";

/// UTC+8.
pub fn beijing() -> FixedOffset {
    // 8 * 3600 s is inside the ±24 h that `east_opt` accepts, so the fallback is never taken.
    FixedOffset::east_opt(8 * 3600).unwrap_or(Utc.fix())
}

/// `2024-01-01 12:00:00` in Beijing time.
pub fn format_beijing(instant: DateTime<Utc>) -> String {
    instant
        .with_timezone(&beijing())
        .format(WIRE_FORMAT)
        .to_string()
}

/// Parses an Alipay time (Beijing time, no offset) into an instant.
pub fn parse_beijing(text: &str) -> Result<DateTime<Utc>, chrono::ParseError> {
    let naive = NaiveDateTime::parse_from_str(text, WIRE_FORMAT)?;
    Ok(beijing()
        .from_local_datetime(&naive)
        .single()
        .map(|t| t.with_timezone(&Utc))
        .unwrap_or_else(|| naive.and_utc()))
}

/// True when `text` has exactly the wire shape `yyyy-MM-dd HH:mm:ss`.
pub fn is_wire_time(text: &str) -> bool {
    text.len() == 19 && NaiveDateTime::parse_from_str(text, WIRE_FORMAT).is_ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn formats_in_beijing_time_whatever_the_host_zone() {
        let instant = Utc.with_ymd_and_hms(2024, 1, 1, 4, 0, 0).single();
        assert_eq!(
            instant.map(format_beijing).as_deref(),
            Some("2024-01-01 12:00:00")
        );
    }

    #[test]
    fn parses_back_to_the_same_instant() {
        let parsed = parse_beijing("2019-08-15 15:56:24").ok();
        assert_eq!(
            parsed.map(format_beijing).as_deref(),
            Some("2019-08-15 15:56:24")
        );
        assert_eq!(parsed.map(|t| t.timestamp()), Some(1_565_855_784));
    }

    #[test]
    fn only_the_wire_shape_is_a_wire_time() {
        assert!(is_wire_time("2014-07-24 03:07:50"));
        for bad in [
            "2014-07-24T03:07:50",
            "2014-07-24 3:07:50",
            "2014-07-24 03:07:50Z",
            "",
        ] {
            assert!(!is_wire_time(bad), "{bad}");
        }
    }
}
