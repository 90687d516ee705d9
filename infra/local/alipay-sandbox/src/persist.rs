//! `--state-file`: the whole state as JSON, rewritten (atomically, through a temporary file)
//! after every change and loaded at start. The sandbox time of the save is kept too, so a
//! restarted sandbox never runs its clock backwards past what it already handed out.

use crate::state::State;
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use std::fs;
use std::path::{Path, PathBuf};

const FORMAT_VERSION: u32 = 1;

#[derive(Debug, thiserror::Error)]
pub enum PersistError {
    #[error("{path}: {source}")]
    Io {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("{path}: not a sandbox state file: {reason}")]
    Invalid { path: PathBuf, reason: String },
}

#[derive(Serialize)]
struct Saving<'a> {
    version: u32,
    saved_at: DateTime<Utc>,
    state: &'a State,
}

#[derive(Deserialize)]
struct Loaded {
    version: u32,
    saved_at: DateTime<Utc>,
    state: State,
}

/// The saved state and the sandbox time of the save, or `None` when the file does not exist.
pub fn load(path: &Path) -> Result<Option<(State, DateTime<Utc>)>, PersistError> {
    let text = match fs::read_to_string(path) {
        Ok(text) => text,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(source) => {
            return Err(PersistError::Io {
                path: path.to_path_buf(),
                source,
            });
        }
    };
    let invalid = |reason: String| PersistError::Invalid {
        path: path.to_path_buf(),
        reason,
    };
    let loaded: Loaded = serde_json::from_str(&text).map_err(|e| invalid(e.to_string()))?;
    if loaded.version != FORMAT_VERSION {
        return Err(invalid(format!("unsupported version {}", loaded.version)));
    }
    let mut state = loaded.state;
    state.after_load();
    Ok(Some((state, loaded.saved_at)))
}

/// Writes the state unless it is unchanged since `last_written` (which is updated).
pub fn save(
    path: &Path,
    state: &State,
    now: DateTime<Utc>,
    last_written: &mut Option<String>,
) -> Result<(), PersistError> {
    let state_text = serde_json::to_string(state).map_err(|e| PersistError::Invalid {
        path: path.to_path_buf(),
        reason: e.to_string(),
    })?;
    if last_written.as_deref() == Some(state_text.as_str()) {
        return Ok(());
    }
    let document = Saving {
        version: FORMAT_VERSION,
        saved_at: now,
        state,
    };
    let text = serde_json::to_string_pretty(&document).map_err(|e| PersistError::Invalid {
        path: path.to_path_buf(),
        reason: e.to_string(),
    })?;
    let io = |source| PersistError::Io {
        path: path.to_path_buf(),
        source,
    };
    let tmp = path.with_extension("tmp");
    fs::write(&tmp, text).map_err(io)?;
    fs::rename(&tmp, path).map_err(io)?;
    *last_written = Some(state_text);
    Ok(())
}
