//! The operator console's page, served at `/console/` from `infra/console/` (same origin as
//! the API, as the page expects), and `/console/config.json`, made at start: where the page
//! finds the API and Cognito, and the app client to sign in with.
//!
//! Only plain files directly named by the path are served: `/console/` is `index.html`, a
//! directory or a name with anything but letters, digits, `.`, `_` and `-` (so no `..`, no
//! hidden file, no percent-encoded trick) is `404`, and so is a file whose real path leaves the
//! directory (a symbolic link out of it).

use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde_json::json;
use std::path::{Path, PathBuf};

/// Where the console is served.
pub const PATH: &str = "/console/";
/// Where the console finds Cognito on this stack ([`crate::cognito::proxy`]).
pub const COGNITO_PATH: &str = "/cognito-idp/";

/// `infra/console/` of the workspace.
pub fn default_dir() -> PathBuf {
    test_support::workspace_root().join("infra/console")
}

/// `/console/config.json`: the API on the same origin, Cognito through this stack.
pub fn config(client_id: &str, region: &str) -> serde_json::Value {
    json!({
        "api_base": "",
        "cognito_endpoint": COGNITO_PATH,
        "client_id": client_id,
        "region": region,
    })
}

/// The file `/console/<name>` names, if it may be served.
pub fn file_of(dir: &Path, name: &str) -> Option<PathBuf> {
    let name = if name.is_empty() { "index.html" } else { name };
    let plain = name.split('/').all(|segment| {
        !segment.is_empty()
            && !segment.starts_with('.')
            && segment
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-'))
    });
    if !plain {
        return None;
    }
    let root = dir.canonicalize().ok()?;
    let file = root.join(name).canonicalize().ok()?;
    (file.starts_with(&root) && file.is_file()).then_some(file)
}

/// The content type of a served file, by its extension.
pub fn content_type(file: &Path) -> &'static str {
    match file
        .extension()
        .and_then(|e| e.to_str())
        .unwrap_or_default()
    {
        "html" => "text/html; charset=utf-8",
        "css" => "text/css; charset=utf-8",
        "js" | "mjs" => "text/javascript; charset=utf-8",
        "json" | "map" => "application/json",
        "svg" => "image/svg+xml",
        "png" => "image/png",
        "ico" => "image/x-icon",
        "woff2" => "font/woff2",
        "txt" => "text/plain; charset=utf-8",
        _ => "application/octet-stream",
    }
}

/// `GET /console/<name>`.
pub async fn serve(dir: &Path, name: &str) -> Response {
    let Some(file) = file_of(dir, name) else {
        return not_found();
    };
    match tokio::fs::read(&file).await {
        Ok(bytes) => (
            [
                (
                    header::CONTENT_TYPE,
                    HeaderValue::from_static(content_type(&file)),
                ),
                // Edits to the page show on the next load.
                (header::CACHE_CONTROL, HeaderValue::from_static("no-cache")),
            ],
            bytes,
        )
            .into_response(),
        Err(error) => {
            tracing::warn!(%error, file = %file.display(), "a console file could not be read");
            not_found()
        }
    }
}

fn not_found() -> Response {
    (
        StatusCode::NOT_FOUND,
        [(header::CONTENT_TYPE, "text/plain; charset=utf-8")],
        "Not Found",
    )
        .into_response()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_plain_files_of_the_directory_are_served() -> Result<(), std::io::Error> {
        let outside = tempfile::tempdir()?;
        std::fs::write(outside.path().join("secret.txt"), "no")?;
        let dir = outside.path().join("console");
        std::fs::create_dir_all(dir.join("assets"))?;
        std::fs::write(dir.join("index.html"), "<html>")?;
        std::fs::write(dir.join("assets/app.js"), "")?;
        std::fs::write(dir.join(".hidden"), "")?;
        let found = |name: &str| file_of(&dir, name).is_some();
        assert!(found(""));
        assert!(found("index.html"));
        assert!(found("assets/app.js"));
        for refused in [
            "assets",
            "assets/",
            "../secret.txt",
            "assets/../index.html",
            "%2e%2e/secret.txt",
            ".hidden",
            "missing.js",
            "/etc/passwd",
            "a\\b",
        ] {
            assert!(!found(refused), "{refused}");
        }
        #[cfg(unix)]
        {
            std::os::unix::fs::symlink(outside.path().join("secret.txt"), dir.join("link.txt"))?;
            assert!(!found("link.txt"), "a link out of the directory");
        }
        Ok(())
    }

    #[test]
    fn content_types_follow_the_extension() {
        assert_eq!(
            content_type(Path::new("index.html")),
            "text/html; charset=utf-8"
        );
        assert_eq!(
            content_type(Path::new("console.css")),
            "text/css; charset=utf-8"
        );
        assert_eq!(
            content_type(Path::new("console.js")),
            "text/javascript; charset=utf-8"
        );
        assert_eq!(content_type(Path::new("logo.svg")), "image/svg+xml");
        assert_eq!(
            content_type(Path::new("data.bin")),
            "application/octet-stream"
        );
    }
}
