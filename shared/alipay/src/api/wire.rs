//! Serde adapters for Alipay's wire notations, so that model types hold [`Fen`], `bool` and
//! instants while the JSON holds yuan strings, `"Y"`/`"N"` and Beijing wall-clock times.

use crate::money::Fen;
use serde::de::{self, Deserialize, Deserializer};
use serde::ser::Serializer;

/// A required amount: `"0.10"` on the wire, never a JSON number (a float would round).
pub mod yuan {
    use super::*;

    pub fn serialize<S: Serializer>(fen: &Fen, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_str(&fen.to_yuan())
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(deserializer: D) -> Result<Fen, D::Error> {
        let text = String::deserialize(deserializer)?;
        Fen::from_yuan(&text).map_err(de::Error::custom)
    }
}

/// An optional amount. Use with `#[serde(default)]` (and `skip_serializing_if` in requests);
/// an empty string reads as absent, as Alipay sometimes sends `""` for "no such amount".
pub mod yuan_opt {
    use super::*;

    pub fn serialize<S: Serializer>(fen: &Option<Fen>, serializer: S) -> Result<S::Ok, S::Error> {
        match fen {
            Some(fen) => serializer.serialize_str(&fen.to_yuan()),
            None => serializer.serialize_none(),
        }
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(
        deserializer: D,
    ) -> Result<Option<Fen>, D::Error> {
        match Option::<String>::deserialize(deserializer)? {
            None => Ok(None),
            Some(text) if text.is_empty() => Ok(None),
            Some(text) => Fen::from_yuan(&text).map(Some).map_err(de::Error::custom),
        }
    }
}

/// `"Y"` / `"N"` flags (`retry_flag`, `fund_change`); anything else is refused rather than
/// guessed, because `fund_change` decides whether money moved.
pub mod yes_no {
    use super::*;

    pub fn serialize<S: Serializer>(flag: &bool, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_str(if *flag { "Y" } else { "N" })
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(deserializer: D) -> Result<bool, D::Error> {
        let text = String::deserialize(deserializer)?;
        match text.as_str() {
            "Y" => Ok(true),
            "N" => Ok(false),
            other => Err(de::Error::custom(format!(
                "expected \"Y\" or \"N\", got {other:?}"
            ))),
        }
    }
}

/// An optional instant written as Beijing time `yyyy-MM-dd HH:mm:ss` (e.g. `time_expire`).
pub mod beijing_opt {
    use super::*;
    use chrono::{DateTime, Utc};

    pub fn serialize<S: Serializer>(
        instant: &Option<DateTime<Utc>>,
        serializer: S,
    ) -> Result<S::Ok, S::Error> {
        match instant {
            Some(instant) => serializer.serialize_str(&crate::time::format_beijing(*instant)),
            None => serializer.serialize_none(),
        }
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(
        deserializer: D,
    ) -> Result<Option<DateTime<Utc>>, D::Error> {
        match Option::<String>::deserialize(deserializer)? {
            None => Ok(None),
            Some(text) if text.is_empty() => Ok(None),
            Some(text) => crate::time::parse_beijing(&text)
                .map(Some)
                .map_err(de::Error::custom),
        }
    }
}

#[cfg(test)]
mod tests {
    use crate::money::Fen;
    use serde::{Deserialize, Serialize};

    #[derive(Debug, PartialEq, Serialize, Deserialize)]
    struct Amounts {
        #[serde(with = "super::yuan")]
        total: Fen,
        #[serde(
            default,
            with = "super::yuan_opt",
            skip_serializing_if = "Option::is_none"
        )]
        part: Option<Fen>,
        #[serde(with = "super::yes_no")]
        flag: bool,
    }

    #[test]
    fn amounts_are_yuan_strings_with_two_decimals() -> Result<(), serde_json::Error> {
        let value = Amounts {
            total: Fen::new(10),
            part: None,
            flag: true,
        };
        assert_eq!(
            serde_json::to_string(&value)?,
            r#"{"total":"0.10","flag":"Y"}"#
        );
        let read: Amounts = serde_json::from_str(r#"{"total":"88.8","part":"","flag":"N"}"#)?;
        assert_eq!(read.total, Fen::new(8880));
        assert_eq!(read.part, None);
        assert!(!read.flag);
        Ok(())
    }

    #[test]
    fn numbers_and_odd_flags_are_refused() {
        assert!(serde_json::from_str::<Amounts>(r#"{"total":0.1,"flag":"Y"}"#).is_err());
        assert!(serde_json::from_str::<Amounts>(r#"{"total":"0.001","flag":"Y"}"#).is_err());
        assert!(serde_json::from_str::<Amounts>(r#"{"total":"1","flag":"y"}"#).is_err());
    }
}
