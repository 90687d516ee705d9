//! `alipay-sandbox`: a local, signed, stateful Alipay OpenAPI 2.0 gateway for face-to-face
//! payments (当面付). It checks requests like Alipay's gateway (system parameters, RSA2
//! signature), applies Alipay's trade rules, signs its answers with its own "Alipay" key, sends
//! signed notifications with Alipay's retry schedule, and lets tests play the buyer, inject
//! faults and move time. See README.md for the contract.
//!
//! Layout: [`config`] and [`identity`] (start-up, key files), [`server`] (routes, HTTP),
//! [`gateway`] (checks and dispatch), [`methods`] (the rules per method), [`state`] and
//! [`trade`] (what is remembered), [`notify`] (notifications), [`faults`], [`clock`] and
//! `scheduler` (time), [`control`] and [`buyer`] (the control API), [`bill`] (bills), [`rules`]
//! (the per-app rules whose defaults are the stricter choice).

pub mod answer;
pub mod auth_code;
pub mod bill;
pub mod biz;
pub mod buyer;
pub mod clock;
pub mod config;
pub mod control;
pub mod faults;
pub mod gateway;
pub mod identity;
pub mod ids;
pub mod methods;
pub mod notify;
mod persist;
pub mod rules;
pub mod sandbox;
mod scheduler;
pub mod server;
pub mod state;
pub mod trade;
pub mod ui;

pub use config::Config;
pub use identity::Identity;
pub use sandbox::Sandbox;

use std::io::Write;
use std::net::SocketAddr;
use tokio::net::TcpListener;
use tokio::sync::watch;
use tokio::task::JoinHandle;

/// Beyond this, sandbox time would outrun date arithmetic within days of running.
const MAX_TIME_SCALE: f64 = 1_000_000.0;

/// A state file saved with a clock this far ahead of real time resumes at most this far ahead.
const MAX_RESUME_AHEAD: chrono::TimeDelta = chrono::TimeDelta::days(100 * 366);

#[derive(Debug, thiserror::Error)]
pub enum StartError {
    #[error(
        "refusing to listen on non-loopback address {0}: the sandbox has no authentication (pass --allow-remote to override)"
    )]
    NotLoopback(SocketAddr),
    #[error("--time-scale must be greater than 0 and at most 1000000 (got {0})")]
    TimeScale(f64),
    #[error("cannot listen on {addr}: {source}")]
    Bind {
        addr: SocketAddr,
        source: std::io::Error,
    },
    #[error(transparent)]
    Identity(#[from] identity::IdentityError),
    #[error(transparent)]
    State(#[from] persist::PersistError),
    #[error("cannot build the notification HTTP client: {0}")]
    HttpClient(String),
}

/// A sandbox running in the background of this process.
pub struct RunningSandbox {
    addr: SocketAddr,
    sandbox: Sandbox,
    shutdown: watch::Sender<bool>,
    server: JoinHandle<()>,
}

impl RunningSandbox {
    /// The bound address (with the real port when configured with port 0).
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// `http://127.0.0.1:PORT`.
    pub fn base_url(&self) -> &str {
        self.sandbox.base_url()
    }

    /// `http://127.0.0.1:PORT/gateway.do`.
    pub fn gateway_url(&self) -> String {
        self.sandbox.gateway_url()
    }

    /// In-process access to the sandbox (identity, clock, trades).
    pub fn sandbox(&self) -> &Sandbox {
        &self.sandbox
    }

    /// Stops accepting, drops open connections and stops background work.
    pub async fn shutdown(self) {
        let _ = self.shutdown.send(true);
        let _ = self.server.await;
    }

    /// Runs until the server stops (it only stops through [`RunningSandbox::shutdown`]).
    pub async fn wait(&mut self) {
        let _ = (&mut self.server).await;
    }
}

/// Starts a sandbox: loads or creates the key files, loads the state file, binds, and serves
/// in background tasks.
pub async fn spawn(config: Config) -> Result<RunningSandbox, StartError> {
    if !config.listen.ip().is_loopback() && !config.allow_remote {
        return Err(StartError::NotLoopback(config.listen));
    }
    if !(config.time_scale > 0.0 && config.time_scale <= MAX_TIME_SCALE) {
        return Err(StartError::TimeScale(config.time_scale));
    }
    let listener = TcpListener::bind(config.listen)
        .await
        .map_err(|source| StartError::Bind {
            addr: config.listen,
            source,
        })?;
    let addr = listener.local_addr().map_err(|source| StartError::Bind {
        addr: config.listen,
        source,
    })?;
    let base_url = format!("http://{addr}");
    let gateway_url = format!("{base_url}/gateway.do");
    let identity = Identity::load_or_create(&config.keys_dir, &gateway_url)?;

    let real_now = chrono::Utc::now();
    let (state, origin) = match &config.state_file {
        Some(path) => match persist::load(path)? {
            // Resume where the saved sandbox clock was, never before real time.
            Some((state, saved_at)) => {
                (state, saved_at.clamp(real_now, real_now + MAX_RESUME_AHEAD))
            }
            None => (state::State::new(config.rules.clone()), real_now),
        },
        None => (state::State::new(config.rules.clone()), real_now),
    };
    let http = reqwest::Client::builder()
        .timeout(config.notify_timeout)
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .map_err(|e| StartError::HttpClient(e.to_string()))?;
    let (shutdown, shutdown_rx) = watch::channel(false);
    let sandbox = Sandbox::new(sandbox::Parts {
        identity,
        clock: clock::Clock::new(origin, config.time_scale),
        state,
        retry_schedule: config.notify_retry_schedule.clone(),
        state_file: config.state_file.clone(),
        base_url,
        http,
        shutdown: shutdown_rx,
        bill_links: bill::Links::new(config.bill_url_ttl),
    });
    tokio::spawn(scheduler::run(sandbox.clone()));
    let router = server::router(sandbox.clone());
    let server = tokio::spawn(server::serve(listener, router, sandbox.clone()));
    tracing::info!(
        %addr,
        app_id = sandbox.identity().app_id,
        time_scale = config.time_scale,
        "alipay-sandbox started"
    );
    Ok(RunningSandbox {
        addr,
        sandbox,
        shutdown,
        server,
    })
}

/// Starts a sandbox, prints the ready line (`alipay-sandbox listening on http://…`) and runs
/// until Ctrl-C or SIGTERM.
pub async fn serve(config: Config) -> Result<(), StartError> {
    let mut running = spawn(config).await?;
    let mut stdout = std::io::stdout();
    let _ = writeln!(stdout, "alipay-sandbox listening on {}", running.base_url());
    let _ = stdout.flush();
    tokio::select! {
        () = running.wait() => {}
        () = termination() => {
            tracing::info!("shutting down");
            running.shutdown().await;
        }
    }
    Ok(())
}

async fn termination() {
    #[cfg(unix)]
    {
        use tokio::signal::unix::{SignalKind, signal};
        match signal(SignalKind::terminate()) {
            Ok(mut term) => {
                tokio::select! {
                    _ = tokio::signal::ctrl_c() => {}
                    _ = term.recv() => {}
                }
            }
            Err(_) => {
                let _ = tokio::signal::ctrl_c().await;
            }
        }
    }
    #[cfg(not(unix))]
    {
        let _ = tokio::signal::ctrl_c().await;
    }
}
