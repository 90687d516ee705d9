//! The local merchant API key, created once and kept between runs:
//!
//! - `merchant-keys.json`: `{"local": "<secret>"}`, what the functions read
//!   (`MERCHANT_API_KEYS_FILE`); other keys added to it by hand are kept.
//! - `merchant-key.secret`: the secret alone, what `payments-cli --secret-file` reads.
//!
//! Both are written with mode 0600.

use serde_json::{Map, Value};
use std::io::Write;
use std::path::{Path, PathBuf};

pub const KEY_ID: &str = "local";
pub const KEYS_FILE: &str = "merchant-keys.json";
pub const SECRET_FILE: &str = "merchant-key.secret";
pub const SECRET_LEN: usize = 48;
/// The functions refuse shorter secrets (`domain::auth::MerchantKeys`).
const MIN_SECRET_LEN: usize = 32;
const ALPHABET: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789";

#[derive(Debug, Clone)]
pub struct MerchantKey {
    pub key_id: &'static str,
    pub keys_file: PathBuf,
    pub secret_file: PathBuf,
    /// Created by this run (not found from an earlier one).
    pub created: bool,
}

#[derive(Debug, thiserror::Error)]
pub enum KeyError {
    #[error("{path}: {source}")]
    Io {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("{0} is not a JSON object of key ids to secrets; fix or delete it")]
    NotKeys(PathBuf),
    #[error("no random bytes: {0}")]
    Random(String),
}

/// Reuses the `local` key of `dir/merchant-keys.json`, or creates it; (re)writes the secret
/// file when it does not hold that secret.
pub fn ensure(dir: &Path) -> Result<MerchantKey, KeyError> {
    let keys_file = dir.join(KEYS_FILE);
    let secret_file = dir.join(SECRET_FILE);
    let io = |path: &Path| {
        let path = path.to_owned();
        move |source| KeyError::Io { path, source }
    };
    std::fs::create_dir_all(dir).map_err(io(dir))?;
    let mut keys = match std::fs::read_to_string(&keys_file) {
        Ok(text) => match serde_json::from_str::<Value>(&text) {
            Ok(Value::Object(map)) => map,
            _ => return Err(KeyError::NotKeys(keys_file)),
        },
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Map::new(),
        Err(e) => return Err(io(&keys_file)(e)),
    };
    let existing = keys
        .get(KEY_ID)
        .and_then(Value::as_str)
        .filter(|s| s.len() >= MIN_SECRET_LEN)
        .map(str::to_owned);
    let created = existing.is_none();
    let secret = match existing {
        Some(secret) => secret,
        None => {
            let secret = random_secret()?;
            keys.insert(KEY_ID.to_owned(), Value::String(secret.clone()));
            let text = Value::Object(keys).to_string();
            write_private(&keys_file, &text).map_err(io(&keys_file))?;
            secret
        }
    };
    let current = std::fs::read_to_string(&secret_file).unwrap_or_default();
    if current.trim() != secret {
        write_private(&secret_file, &format!("{secret}\n")).map_err(io(&secret_file))?;
    }
    Ok(MerchantKey {
        key_id: KEY_ID,
        keys_file,
        secret_file,
        created,
    })
}

/// 48 characters of `[A-Za-z0-9]` from the system's secure random source.
fn random_secret() -> Result<String, KeyError> {
    let mut secret = String::with_capacity(SECRET_LEN);
    while secret.len() < SECRET_LEN {
        let mut bytes = [0u8; 64];
        aws_lc_rs::rand::fill(&mut bytes).map_err(|e| KeyError::Random(e.to_string()))?;
        // 248 = 4 × 62: no bias.
        for byte in bytes.into_iter().filter(|b| *b < 248) {
            if secret.len() < SECRET_LEN {
                secret.push(char::from(ALPHABET[usize::from(byte % 62)]));
            }
        }
    }
    Ok(secret)
}

fn write_private(path: &Path, text: &str) -> std::io::Result<()> {
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create(true).truncate(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
        options.mode(0o600);
        let mut file = options.open(path)?;
        file.set_permissions(std::fs::Permissions::from_mode(0o600))?;
        file.write_all(text.as_bytes())
    }
    #[cfg(not(unix))]
    {
        options.open(path)?.write_all(text.as_bytes())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn creates_once_and_keeps_the_secret() {
        let dir = tempfile::tempdir().unwrap();
        let first = ensure(dir.path()).unwrap();
        assert!(first.created);
        let secret = std::fs::read_to_string(&first.secret_file).unwrap();
        let secret = secret.trim();
        assert_eq!(secret.len(), SECRET_LEN);
        assert!(secret.bytes().all(|b| b.is_ascii_alphanumeric()));
        let keys: Value =
            serde_json::from_str(&std::fs::read_to_string(&first.keys_file).unwrap()).unwrap();
        assert_eq!(keys[KEY_ID], secret);

        std::fs::remove_file(&first.secret_file).unwrap();
        let second = ensure(dir.path()).unwrap();
        assert!(!second.created);
        assert_eq!(
            std::fs::read_to_string(&second.secret_file).unwrap().trim(),
            secret
        );
    }
}
