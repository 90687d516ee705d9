//! The sandbox's identity and its files in `--keys-dir`: the merchant app's key pair (the
//! sandbox only needs the public half; the private half is written for the merchant's
//! convenience), Alipay's key pair (the sandbox signs with the private half), and
//! `sandbox.json` with the app id, seller id and gateway URL. Created on first start and reused
//! afterwards, so a merchant configuration keeps working across restarts.

use alipay::{PrivateKey, PublicKey};
use serde::{Deserialize, Serialize};
use std::fs;
use std::io::Write;
use std::path::{Path, PathBuf};

pub const APP_PRIVATE_KEY_FILE: &str = "app_private_key.pem";
pub const APP_PUBLIC_KEY_FILE: &str = "app_public_key.pem";
pub const ALIPAY_PRIVATE_KEY_FILE: &str = "alipay_private_key.pem";
pub const ALIPAY_PUBLIC_KEY_FILE: &str = "alipay_public_key.pem";
pub const SANDBOX_FILE: &str = "sandbox.json";

#[derive(Debug, thiserror::Error)]
pub enum IdentityError {
    #[error("{path}: {source}")]
    Io {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("{path}: {reason}")]
    Invalid { path: PathBuf, reason: String },
}

/// Who the sandbox is, and the keys it signs and verifies with.
#[derive(Debug, Clone)]
pub struct Identity {
    pub app_id: String,
    pub seller_id: String,
    pub seller_email: String,
    /// Verifies merchant requests.
    pub app_public_key: PublicKey,
    /// Signs responses and notifications.
    pub alipay_private_key: PrivateKey,
    pub alipay_public_key: PublicKey,
    pub keys_dir: PathBuf,
}

/// `sandbox.json`. Unknown fields are kept, so other tools may add their own.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct SandboxFile {
    pub app_id: String,
    pub seller_id: String,
    #[serde(default = "default_seller_email")]
    pub seller_email: String,
    pub gateway_url: String,
    #[serde(default)]
    pub sign_type: String,
    #[serde(default)]
    pub charset: String,
    #[serde(default)]
    pub app_private_key_file: String,
    #[serde(default)]
    pub app_public_key_file: String,
    #[serde(default)]
    pub alipay_public_key_file: String,
    #[serde(flatten)]
    pub extra: serde_json::Map<String, serde_json::Value>,
}

fn default_seller_email() -> String {
    "sandbox-seller@alipay-sandbox.local".to_owned()
}

impl Identity {
    /// Loads the identity from `dir`, creating whatever is missing, and records `gateway_url`.
    pub fn load_or_create(dir: &Path, gateway_url: &str) -> Result<Identity, IdentityError> {
        fs::create_dir_all(dir).map_err(|source| io_error(dir, source))?;
        let app_public_key = load_or_create_app_key(dir)?;
        let alipay_private_key = load_or_create_private(&dir.join(ALIPAY_PRIVATE_KEY_FILE))?;
        let alipay_public_key = alipay_private_key
            .public_key()
            .map_err(|e| invalid(&dir.join(ALIPAY_PRIVATE_KEY_FILE), e.to_string()))?;
        write_if_changed(
            &dir.join(ALIPAY_PUBLIC_KEY_FILE),
            &alipay_public_key.to_pem(),
            false,
        )?;
        let file = update_sandbox_file(dir, gateway_url)?;
        Ok(Identity {
            app_id: file.app_id,
            seller_id: file.seller_id,
            seller_email: file.seller_email,
            app_public_key,
            alipay_private_key,
            alipay_public_key,
            keys_dir: dir.to_path_buf(),
        })
    }
}

fn io_error(path: &Path, source: std::io::Error) -> IdentityError {
    IdentityError::Io {
        path: path.to_path_buf(),
        source,
    }
}

fn invalid(path: &Path, reason: impl Into<String>) -> IdentityError {
    IdentityError::Invalid {
        path: path.to_path_buf(),
        reason: reason.into(),
    }
}

/// The app public key: from `app_public_key.pem`, else derived from `app_private_key.pem`,
/// else a fresh pair is generated. A merchant may replace `app_public_key.pem` with the public
/// key of their own app key.
fn load_or_create_app_key(dir: &Path) -> Result<PublicKey, IdentityError> {
    let public_path = dir.join(APP_PUBLIC_KEY_FILE);
    if public_path.exists() {
        let text = fs::read_to_string(&public_path).map_err(|e| io_error(&public_path, e))?;
        return PublicKey::parse(&text).map_err(|e| invalid(&public_path, e.to_string()));
    }
    let private = load_or_create_private(&dir.join(APP_PRIVATE_KEY_FILE))?;
    let public = private
        .public_key()
        .map_err(|e| invalid(&dir.join(APP_PRIVATE_KEY_FILE), e.to_string()))?;
    write_if_changed(&public_path, &public.to_pem(), false)?;
    Ok(public)
}

fn load_or_create_private(path: &Path) -> Result<PrivateKey, IdentityError> {
    if path.exists() {
        restrict_permissions(path)?;
        let text = fs::read_to_string(path).map_err(|e| io_error(path, e))?;
        return PrivateKey::parse(&text).map_err(|e| invalid(path, e.to_string()));
    }
    let (key, pem) = PrivateKey::generate().map_err(|e| invalid(path, e.to_string()))?;
    write_new(path, pem.as_bytes(), true)?;
    tracing::info!(path = %path.display(), "generated a new RSA key");
    Ok(key)
}

fn update_sandbox_file(dir: &Path, gateway_url: &str) -> Result<SandboxFile, IdentityError> {
    let path = dir.join(SANDBOX_FILE);
    let mut file = if path.exists() {
        let text = fs::read_to_string(&path).map_err(|e| io_error(&path, e))?;
        let file: SandboxFile =
            serde_json::from_str(&text).map_err(|e| invalid(&path, e.to_string()))?;
        if !is_app_id(&file.app_id) {
            return Err(invalid(&path, "app_id must be 16 digits"));
        }
        if !is_seller_id(&file.seller_id) {
            return Err(invalid(
                &path,
                "seller_id must be 2088 followed by 12 digits",
            ));
        }
        file
    } else {
        SandboxFile {
            app_id: crate::ids::app_id(),
            seller_id: crate::ids::user_id(),
            seller_email: default_seller_email(),
            gateway_url: String::new(),
            sign_type: String::new(),
            charset: String::new(),
            app_private_key_file: String::new(),
            app_public_key_file: String::new(),
            alipay_public_key_file: String::new(),
            extra: serde_json::Map::new(),
        }
    };
    file.gateway_url = gateway_url.to_owned();
    file.sign_type = "RSA2".to_owned();
    file.charset = "utf-8".to_owned();
    file.app_private_key_file = APP_PRIVATE_KEY_FILE.to_owned();
    file.app_public_key_file = APP_PUBLIC_KEY_FILE.to_owned();
    file.alipay_public_key_file = ALIPAY_PUBLIC_KEY_FILE.to_owned();
    let mut text =
        serde_json::to_string_pretty(&file).map_err(|e| invalid(&path, e.to_string()))?;
    text.push('\n');
    write_if_changed(&path, &text, false)?;
    Ok(file)
}

fn is_app_id(text: &str) -> bool {
    text.len() == 16 && text.bytes().all(|b| b.is_ascii_digit())
}

fn is_seller_id(text: &str) -> bool {
    text.len() == 16 && text.starts_with("2088") && text.bytes().all(|b| b.is_ascii_digit())
}

/// Writes `text` unless the file already holds exactly that (through a temporary file, so a
/// reader never sees half a file).
fn write_if_changed(path: &Path, text: &str, private: bool) -> Result<(), IdentityError> {
    if fs::read_to_string(path).is_ok_and(|current| current == text) {
        return Ok(());
    }
    let tmp = path.with_extension("tmp");
    let _ = fs::remove_file(&tmp);
    write_new(&tmp, text.as_bytes(), private)?;
    fs::rename(&tmp, path).map_err(|e| io_error(path, e))
}

/// Creates a new file; private ones are created with mode 0600 (never readable by others, not
/// even briefly).
fn write_new(path: &Path, bytes: &[u8], private: bool) -> Result<(), IdentityError> {
    let mut options = fs::OpenOptions::new();
    options.write(true).create_new(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        options.mode(if private { 0o600 } else { 0o644 });
    }
    let mut file = options.open(path).map_err(|e| io_error(path, e))?;
    file.write_all(bytes).map_err(|e| io_error(path, e))?;
    file.sync_all().map_err(|e| io_error(path, e))?;
    drop(file);
    if private {
        restrict_permissions(path)?;
    }
    Ok(())
}

/// Private key files are kept at 0600 even if someone loosened them (the umask may also have
/// narrowed our 0644 for public files, which is fine).
fn restrict_permissions(path: &Path) -> Result<(), IdentityError> {
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let mode = fs::metadata(path)
            .map_err(|e| io_error(path, e))?
            .permissions()
            .mode();
        if mode & 0o077 != 0 {
            fs::set_permissions(path, fs::Permissions::from_mode(0o600))
                .map_err(|e| io_error(path, e))?;
        }
    }
    #[cfg(not(unix))]
    let _ = path;
    Ok(())
}
