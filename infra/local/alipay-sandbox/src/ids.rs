//! Identifiers in Alipay's shapes: trade numbers, QR codes, notification ids, buyer ids.
//! They only need to be unique and unguessable enough for a local sandbox, not secret, so the
//! randomness comes from std's per-process random SipHash keys rather than a crypto RNG.

use chrono::{DateTime, Utc};
use std::hash::{BuildHasher, Hasher};
use std::sync::atomic::{AtomicU64, Ordering};

static COUNTER: AtomicU64 = AtomicU64::new(0);

fn random_u64() -> u64 {
    let mut hasher = std::collections::hash_map::RandomState::new().build_hasher();
    hasher.write_u64(COUNTER.fetch_add(1, Ordering::Relaxed));
    if let Ok(since) = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH) {
        hasher.write_u128(since.as_nanos());
    }
    hasher.finish()
}

pub fn random_digits(len: usize) -> String {
    (0..len)
        .map(|_| char::from(b'0' + (random_u64() % 10) as u8))
        .collect()
}

pub fn random_alphanumeric_lower(len: usize) -> String {
    const ALPHABET: &[u8] = b"abcdefghijklmnopqrstuvwxyz0123456789";
    (0..len)
        .map(|_| char::from(ALPHABET[(random_u64() % ALPHABET.len() as u64) as usize]))
        .collect()
}

/// `2026MMDD22001` + 15 digits: the Beijing date of creation, Alipay's face-to-face channel
/// marker, then a per-process sequence (uniqueness) and random digits.
pub fn trade_no(created: DateTime<Utc>, sequence: u64) -> String {
    let date = alipay::time::format_beijing(created);
    let date: String = date.chars().filter(char::is_ascii_digit).take(8).collect();
    format!("{date}22001{:06}{}", sequence % 1_000_000, random_digits(9))
}

/// `https://qr.alipay.com/bax0…`: the shape of a real face-to-face QR payload.
pub fn qr_code() -> String {
    format!(
        "https://qr.alipay.com/bax0{}",
        random_alphanumeric_lower(20)
    )
}

/// A notification id as Alipay writes them: 34 digits, the Beijing date, `00222`, the Beijing
/// time of day, then 15 digits (e.g. `2019081500222155624068450559358070`).
pub fn notify_id(at: DateTime<Utc>) -> String {
    let stamp: String = alipay::time::format_beijing(at)
        .chars()
        .filter(char::is_ascii_digit)
        .collect();
    let (date, time) = stamp.split_at(stamp.len().min(8));
    format!("{date}00222{time}{}", random_digits(15))
}

/// The buyer's OpenID in this app: 47 characters (`0`, two digits, 44 of Base64url), the same
/// for the same app and buyer every time, different between apps, as Alipay's are.
pub fn open_id(app_id: &str, user_id: &str) -> String {
    use base64::Engine;
    use sha2::{Digest, Sha512};
    let digest = Sha512::new()
        .chain_update(app_id.as_bytes())
        .chain_update(b"/")
        .chain_update(user_id.as_bytes())
        .finalize();
    let prefix = digest.first().copied().unwrap_or_default() % 100;
    let body = base64::engine::general_purpose::URL_SAFE_NO_PAD
        .encode(digest.get(1..34).unwrap_or_default());
    format!("0{prefix:02}{body}")
}

/// `2088` + 12 digits.
pub fn user_id() -> String {
    format!("2088{}", random_digits(12))
}

/// A 16-digit app id in the sandbox range, `2021000…`.
pub fn app_id() -> String {
    format!("2021000{}", random_digits(9))
}

/// A masked buyer logon id as Alipay shows it (`159****5620`).
pub fn masked_logon_id(digits: &str) -> String {
    let tail: String = digits
        .chars()
        .rev()
        .take(4)
        .collect::<Vec<_>>()
        .into_iter()
        .rev()
        .collect();
    let head: String = digits.chars().take(2).collect();
    format!("1{head:0>2}****{tail:0>4}")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn shapes() {
        let t = chrono::TimeZone::with_ymd_and_hms(&Utc, 2026, 3, 4, 1, 2, 3).single();
        let no = t.map(|t| trade_no(t, 7)).unwrap_or_default();
        assert_eq!(no.len(), 28);
        assert!(no.starts_with("2026030422001000007"), "{no}");
        assert_eq!(user_id().len(), 16);
        assert_eq!(app_id().len(), 16);
        assert_eq!(masked_logon_id("0123456789"), "101****6789");
        // 2026-03-04 09:02:03 in Beijing.
        let notify = t.map(notify_id).unwrap_or_default();
        assert_eq!(notify.len(), 34, "{notify}");
        assert!(notify.starts_with("2026030400222090203"), "{notify}");
        assert!(notify.bytes().all(|b| b.is_ascii_digit()), "{notify}");
        let open = open_id("2021000000000001", "2088100012345678");
        assert_eq!(open.len(), 47, "{open}");
        assert!(open.starts_with('0'), "{open}");
        assert_eq!(open, open_id("2021000000000001", "2088100012345678"));
        assert_ne!(open, open_id("2021000000000002", "2088100012345678"));
    }
}
