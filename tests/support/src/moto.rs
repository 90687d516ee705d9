//! The AWS emulator: `moto_server` (moto in server mode) on a free port of 127.0.0.1.
//!
//! ```no_run
//! # async fn demo() -> Result<(), test_support::MotoError> {
//! let moto = test_support::MotoServer::start().await?;
//! let config = moto.sdk_config(); // then e.g. aws_sdk_dynamodb::Client::new(&config)
//! # let _ = config; Ok(()) }
//! ```
//!
//! The server is moto's `moto_server` from `<workspace>/.local/venv` (installed by
//! `make test-deps`), run by the venv's Python through `tests/support/moto_server.py`, which
//! handles DynamoDB requests one at a time: DynamoDB's conditional writes and transactions are
//! atomic, moto's are not under concurrent requests (see that file). It also rolls a cancelled
//! transaction back item by item and counts queued messages cheaply, so that transactions and
//! SQS sends do not slow down as tables and queues grow. `MOTO_SERVER_BIN` names another
//! `moto_server` executable to run as is instead (without any of that). Each [`MotoServer`] is
//! its own process with its own state;
//! [`MotoServer::shared`] hands the tests of one test binary that run at the same time one
//! process between them (each test then uses its own table, queue or secret names: see
//! [`crate::unique_name`]). The process is killed and reaped when the last handle is dropped.

use aws_config::retry::RetryConfig;
use aws_config::{BehaviorVersion, Region, SdkConfig};
use aws_credential_types::Credentials;
use aws_credential_types::provider::SharedCredentialsProvider;
use std::io::Read;
use std::net::{Ipv4Addr, TcpListener};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::{Arc, Weak};
use std::time::{Duration, Instant};
use tempfile::NamedTempFile;

/// Overrides the `moto_server` executable (run as is, with `-H <host> -p <port>`).
pub const BIN_ENV: &str = "MOTO_SERVER_BIN";
/// The project venv, relative to the workspace root.
pub const VENV: &str = ".local/venv";
/// The region every test client uses.
pub const REGION: &str = "us-east-1";
/// How long a starting server may take to answer.
pub const READY_TIMEOUT: Duration = Duration::from_secs(15);

const HOST: Ipv4Addr = Ipv4Addr::LOCALHOST;
const START_ATTEMPTS: usize = 3;
const LOG_TAIL: usize = 4000;

#[derive(Debug, thiserror::Error)]
pub enum MotoError {
    #[error(
        "moto_server not found at {path}: run `make test-deps` (it installs moto into \
         <workspace>/.local/venv), or set {BIN_ENV} to a moto_server executable"
    )]
    NotInstalled { path: PathBuf },
    #[error("could not start {path}: {source}")]
    Spawn {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("moto_server exited ({status}) before answering on {endpoint}; its output:\n{log}")]
    Exited {
        endpoint: String,
        status: ExitStatus,
        log: String,
    },
    #[error("moto_server did not answer on {endpoint} within {timeout:?}; its output:\n{log}")]
    NotReady {
        endpoint: String,
        timeout: Duration,
        log: String,
    },
    #[error("moto request {what} failed: {reason}")]
    Request { what: String, reason: String },
    #[error(transparent)]
    Io(#[from] std::io::Error),
}

/// A running `moto_server`; killed (and reaped) on drop.
#[derive(Debug)]
pub struct MotoServer {
    child: Child,
    port: u16,
    /// The server's stdout and stderr (deleted on drop).
    log: NamedTempFile,
}

impl MotoServer {
    /// Starts a server of its own on a free port and waits until it answers HTTP.
    pub async fn start() -> Result<MotoServer, MotoError> {
        let launcher = Launcher::find()?;
        let mut attempt = 1;
        loop {
            match MotoServer::start_once(&launcher, free_port()?).await {
                // The free port was taken between our probe and the server's bind: take another.
                Err(MotoError::Exited { .. }) if attempt < START_ATTEMPTS => attempt += 1,
                other => return other,
            }
        }
    }

    /// Starts a server of its own on `port` of 127.0.0.1 (the local stack's fixed port) and
    /// waits until it answers HTTP. Fails if the port is taken.
    pub async fn start_on(port: u16) -> Result<MotoServer, MotoError> {
        MotoServer::start_once(&Launcher::find()?, port).await
    }

    /// One server for all the tests of this process that hold a handle at the same time;
    /// started by the first, stopped when the last handle is dropped. Do not [`reset`] it.
    ///
    /// [`reset`]: MotoServer::reset
    pub async fn shared() -> Result<Arc<MotoServer>, MotoError> {
        static SHARED: tokio::sync::Mutex<Weak<MotoServer>> =
            tokio::sync::Mutex::const_new(Weak::new());
        let mut slot = SHARED.lock().await;
        if let Some(server) = slot.upgrade() {
            return Ok(server);
        }
        let server = Arc::new(MotoServer::start().await?);
        *slot = Arc::downgrade(&server);
        Ok(server)
    }

    async fn start_once(launcher: &Launcher, port: u16) -> Result<MotoServer, MotoError> {
        let log = tempfile::Builder::new()
            .prefix("moto-server-")
            .suffix(".log")
            .tempfile()?;
        let child = Command::new(&launcher.program)
            .args(&launcher.args)
            .args(["-H", &HOST.to_string(), "-p", &port.to_string()])
            .env("PYTHONUNBUFFERED", "1")
            .stdin(Stdio::null())
            .stdout(log.reopen()?)
            .stderr(log.reopen()?)
            .spawn()
            .map_err(|source| MotoError::Spawn {
                path: launcher.program.clone(),
                source,
            })?;
        // From here on, dropping `server` (on any error) kills the child.
        let mut server = MotoServer { child, port, log };
        server.wait_ready().await?;
        Ok(server)
    }

    /// Ready when the server has said it listens on our port (so an answer on that port
    /// comes from this process, not from another that took the port first) and answers.
    async fn wait_ready(&mut self) -> Result<(), MotoError> {
        let http = http_client()?;
        let probe = format!("{}/moto-api/", self.endpoint_url());
        let listening = format!("Running on {}", self.endpoint_url());
        let deadline = Instant::now() + READY_TIMEOUT;
        loop {
            if let Some(status) = self.child.try_wait()? {
                return Err(MotoError::Exited {
                    endpoint: self.endpoint_url(),
                    status,
                    log: self.log_tail(),
                });
            }
            if self.log_tail().contains(&listening) {
                let answered = http.get(&probe).send().await;
                if answered.is_ok_and(|response| response.status().is_success()) {
                    return Ok(());
                }
            }
            if Instant::now() >= deadline {
                return Err(MotoError::NotReady {
                    endpoint: self.endpoint_url(),
                    timeout: READY_TIMEOUT,
                    log: self.log_tail(),
                });
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    /// `http://127.0.0.1:<port>`, for `AWS_ENDPOINT_URL` or an SDK endpoint override.
    pub fn endpoint_url(&self) -> String {
        format!("http://{HOST}:{}", self.port)
    }

    pub fn port(&self) -> u16 {
        self.port
    }

    /// An SDK configuration for this server: dummy static credentials, region `us-east-1`,
    /// endpoint override, standard retries.
    pub fn sdk_config(&self) -> SdkConfig {
        SdkConfig::builder()
            .behavior_version(BehaviorVersion::latest())
            .region(Region::new(REGION))
            .credentials_provider(SharedCredentialsProvider::new(Credentials::new(
                "testing", "testing", None, None, "test",
            )))
            .endpoint_url(self.endpoint_url())
            .retry_config(RetryConfig::standard())
            .build()
    }

    /// The environment a child process (a function under test, the local stack) needs to
    /// reach this server through `aws_config::defaults`.
    pub fn env(&self) -> Vec<(&'static str, String)> {
        vec![
            ("AWS_ENDPOINT_URL", self.endpoint_url()),
            ("AWS_REGION", REGION.to_owned()),
            ("AWS_ACCESS_KEY_ID", "testing".to_owned()),
            ("AWS_SECRET_ACCESS_KEY", "testing".to_owned()),
        ]
    }

    /// Forgets every resource of every service (`POST /moto-api/reset`).
    pub async fn reset(&self) -> Result<(), MotoError> {
        let url = format!("{}/moto-api/reset", self.endpoint_url());
        let failed = |reason: String| MotoError::Request {
            what: format!("POST {url}"),
            reason,
        };
        let response = http_client()?
            .post(&url)
            .send()
            .await
            .map_err(|e| failed(e.to_string()))?;
        if response.status().is_success() {
            Ok(())
        } else {
            Err(failed(format!("status {}", response.status())))
        }
    }

    /// The last few kilobytes the server printed.
    pub fn log_tail(&self) -> String {
        let mut text = String::new();
        if let Ok(mut file) = self.log.reopen() {
            let mut bytes = Vec::new();
            if file.read_to_end(&mut bytes).is_ok() {
                let start = bytes.len().saturating_sub(LOG_TAIL);
                text = String::from_utf8_lossy(&bytes[start..]).into_owned();
            }
        }
        text
    }
}

impl Drop for MotoServer {
    fn drop(&mut self) {
        // Already exited: nothing to kill, but still reap it.
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// How to run the server: a program and its first arguments.
#[derive(Debug, Clone)]
pub struct Launcher {
    pub program: PathBuf,
    pub args: Vec<PathBuf>,
}

impl Launcher {
    /// `MOTO_SERVER_BIN` if set, else the venv's Python running `tests/support/moto_server.py`
    /// (which needs the venv's `moto_server`, i.e. moto with its server extras).
    pub fn find() -> Result<Launcher, MotoError> {
        if let Some(bin) = std::env::var_os(BIN_ENV) {
            let program = PathBuf::from(bin);
            return if program.is_file() {
                Ok(Launcher {
                    program,
                    args: Vec::new(),
                })
            } else {
                Err(MotoError::NotInstalled { path: program })
            };
        }
        let venv = crate::workspace_root().join(VENV);
        for needed in [venv.join("bin/moto_server"), venv.join("bin/python")] {
            if !needed.is_file() {
                return Err(MotoError::NotInstalled { path: needed });
            }
        }
        Ok(Launcher {
            program: venv.join("bin/python"),
            args: vec![Path::new(env!("CARGO_MANIFEST_DIR")).join("moto_server.py")],
        })
    }
}

fn free_port() -> std::io::Result<u16> {
    let listener = TcpListener::bind((HOST, 0))?;
    Ok(listener.local_addr()?.port())
}

fn http_client() -> Result<reqwest::Client, MotoError> {
    reqwest::Client::builder()
        .timeout(Duration::from_secs(5))
        .no_proxy()
        .build()
        .map_err(|e| MotoError::Request {
            what: "building an HTTP client".to_owned(),
            reason: e.to_string(),
        })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn starts_answers_resets_and_stops() {
        let server = MotoServer::start().await.unwrap();
        let pid = server.child.id();
        assert!(server.endpoint_url().starts_with("http://127.0.0.1:"));
        server.reset().await.unwrap();
        drop(server);
        // Reaped: no process (not even a zombie) with that pid is left.
        assert!(!Path::new(&format!("/proc/{pid}")).exists());
    }

    #[tokio::test]
    async fn shared_handles_point_to_one_server() {
        let first = MotoServer::shared().await.unwrap();
        let second = MotoServer::shared().await.unwrap();
        assert_eq!(first.port(), second.port());
    }

    #[tokio::test]
    async fn a_missing_binary_names_the_fix() {
        let error = MotoError::NotInstalled {
            path: PathBuf::from("/nowhere/moto_server"),
        };
        assert!(error.to_string().contains("make test-deps"));
    }
}
