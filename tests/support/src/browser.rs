//! Headless Chromium for the page tests (the Alipay sandbox's trade page, the operator
//! console): Debian's `chromium` (installed by `make test-deps`), driven over the Chrome
//! DevTools Protocol with a small client on one WebSocket (the browser endpoint, with a
//! flattened session for the page). Every wait is bounded; the browser is closed
//! (Browser.close, then killed if it lingers) at the end, and killed on drop.

use futures_util::{SinkExt, StreamExt};
use serde_json::{Value, json};
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::Duration;
use tokio::net::TcpStream;
use tokio::process::{Child, Command};
use tokio::time::{Instant, sleep, timeout};
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::{MaybeTlsStream, WebSocketStream};

/// Any error, boxed: the same type as the page tests' own results, so `?` passes it on.
pub type BrowserResult<T = ()> = Result<T, Box<dyn std::error::Error + Send + Sync>>;

fn err(message: impl Into<String>) -> Box<dyn std::error::Error + Send + Sync> {
    message.into().into()
}

/// How long the browser may take to start and to finish one command.
const START_TIMEOUT: Duration = Duration::from_secs(30);
const COMMAND_TIMEOUT: Duration = Duration::from_secs(20);

/// Flags for every run: headless, no sandbox (CI runs as root), nothing that reaches the
/// network on its own, nothing that needs a GPU, a desktop or a keyring.
const FLAGS: &[&str] = &[
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
    "--disable-quic",
    "--no-default-browser-check",
    "--disable-dev-shm-usage",
    "--disable-extensions",
    "--mute-audio",
    "--hide-scrollbars",
    "--password-store=basic",
    "--window-size=1200,900",
];

/// `$CHROMIUM`, else `chromium` on PATH, else `/usr/bin/chromium`.
pub fn chromium_path() -> BrowserResult<PathBuf> {
    if let Some(path) = std::env::var_os("CHROMIUM") {
        return Ok(PathBuf::from(path));
    }
    let on_path = std::env::var_os("PATH").and_then(|paths| {
        std::env::split_paths(&paths)
            .map(|dir| dir.join("chromium"))
            .find(|candidate| candidate.is_file())
    });
    let path = on_path.unwrap_or_else(|| PathBuf::from("/usr/bin/chromium"));
    if !path.is_file() {
        return Err(err(
            "chromium not found (neither on PATH nor /usr/bin/chromium): run `make test-deps`, \
             which installs Debian's chromium, or set CHROMIUM to a Chromium binary",
        ));
    }
    Ok(path)
}

/// Runs `chromium --headless --screenshot=<png> <url>` (1200×900) and waits for it, bounded.
pub async fn screenshot(url: &str, png: &Path, scratch: &Path) -> BrowserResult {
    let profile = scratch.join("screenshot-profile");
    std::fs::create_dir_all(&profile)?;
    let log = std::fs::File::create(scratch.join("screenshot-chromium.log"))?;
    let mut child = Command::new(chromium_path()?)
        .args(FLAGS)
        .arg(format!("--user-data-dir={}", profile.display()))
        .arg(format!("--screenshot={}", png.display()))
        .arg(url)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(log)
        .kill_on_drop(true)
        .spawn()?;
    match timeout(Duration::from_secs(60), child.wait()).await {
        Ok(status) => {
            let status = status?;
            if !status.success() {
                return Err(err(format!("chromium --screenshot exited with {status}")));
            }
        }
        Err(_) => {
            let _ = child.kill().await;
            return Err(err("chromium --screenshot did not finish within 60 s"));
        }
    }
    let bytes = std::fs::read(png)?;
    if !bytes.starts_with(b"\x89PNG\r\n\x1a\n") {
        return Err(err("the screenshot is not a PNG"));
    }
    Ok(())
}

type Socket = WebSocketStream<MaybeTlsStream<TcpStream>>;

/// One request of the page, as the DevTools Network domain reported it.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Loaded {
    /// The URL asked for, then the target of each redirect.
    pub urls: Vec<String>,
    /// The HTTP status of the (last) response, if one came.
    pub status: Option<u16>,
    /// What came over the wire for it, headers included (`encodedDataLength`).
    pub bytes: u64,
    /// Why it failed, if it did.
    pub failed: Option<String>,
}

/// A running headless Chromium with one page, driven over CDP.
pub struct Browser {
    child: Child,
    socket: Socket,
    session: String,
    next_id: u64,
    log: PathBuf,
    /// The page's Network events since [`Browser::record_network`], once it was called.
    network: Option<Vec<Value>>,
}

impl Browser {
    /// Starts Chromium with a fresh profile in `scratch`, on a free DevTools port, and opens
    /// one blank page.
    pub async fn launch(scratch: &Path) -> BrowserResult<Browser> {
        let profile = scratch.join("cdp-profile");
        std::fs::create_dir_all(&profile)?;
        let log = scratch.join("cdp-chromium.log");
        let mut child = Command::new(chromium_path()?)
            .args(FLAGS)
            .arg(format!("--user-data-dir={}", profile.display()))
            .arg("--remote-debugging-address=127.0.0.1")
            .arg("--remote-debugging-port=0")
            .arg("about:blank")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(std::fs::File::create(&log)?)
            .kill_on_drop(true)
            .spawn()?;
        // Chromium writes the port it picked and the browser endpoint's path to this file.
        let active_port = profile.join("DevToolsActivePort");
        let started = Instant::now();
        let endpoint = loop {
            if let Ok(text) = std::fs::read_to_string(&active_port) {
                let mut lines = text.lines();
                if let (Some(port), Some(path)) = (lines.next(), lines.next())
                    && !port.is_empty()
                    && path.starts_with('/')
                {
                    break format!("ws://127.0.0.1:{port}{path}");
                }
            }
            if let Some(status) = child.try_wait()? {
                return Err(err(format!(
                    "chromium exited at start with {status}: {}",
                    tail(&log)
                )));
            }
            if started.elapsed() > START_TIMEOUT {
                let _ = child.kill().await;
                return Err(err(format!(
                    "chromium did not open its DevTools port within {START_TIMEOUT:?}: {}",
                    tail(&log)
                )));
            }
            sleep(Duration::from_millis(50)).await;
        };
        let (socket, _) = timeout(COMMAND_TIMEOUT, tokio_tungstenite::connect_async(&endpoint))
            .await
            .map_err(|_| err("connecting to the DevTools WebSocket timed out"))??;
        let mut browser = Browser {
            child,
            socket,
            session: String::new(),
            next_id: 0,
            log,
            network: None,
        };
        let target = browser
            .send(None, "Target.createTarget", json!({"url": "about:blank"}))
            .await?;
        let target_id = target["targetId"]
            .as_str()
            .ok_or_else(|| err("Target.createTarget gave no targetId"))?
            .to_owned();
        let attached = browser
            .send(
                None,
                "Target.attachToTarget",
                json!({"targetId": target_id, "flatten": true}),
            )
            .await?;
        browser.session = attached["sessionId"]
            .as_str()
            .ok_or_else(|| err("Target.attachToTarget gave no sessionId"))?
            .to_owned();
        browser.page("Page.enable", json!({})).await?;
        browser.page("Runtime.enable", json!({})).await?;
        Ok(browser)
    }

    /// Sends one command (to the browser, or to the page session) and waits for its answer;
    /// events in between are skipped (the page's Network events are kept while recording).
    async fn send(
        &mut self,
        session: Option<&str>,
        method: &str,
        params: Value,
    ) -> BrowserResult<Value> {
        self.next_id += 1;
        let id = self.next_id;
        let mut message = json!({"id": id, "method": method, "params": params});
        if let Some(session) = session {
            message["sessionId"] = Value::String(session.to_owned());
        }
        self.socket.send(Message::text(message.to_string())).await?;
        let deadline = Instant::now() + COMMAND_TIMEOUT;
        loop {
            let next = timeout(
                deadline.saturating_duration_since(Instant::now()),
                self.socket.next(),
            )
            .await
            .map_err(|_| err(format!("no answer to {method} within {COMMAND_TIMEOUT:?}")))?;
            let text = match next {
                Some(Ok(Message::Text(text))) => text,
                Some(Ok(Message::Close(_))) | None => {
                    return Err(err(format!("DevTools connection closed during {method}")));
                }
                Some(Ok(_)) => continue,
                Some(Err(e)) => return Err(e.into()),
            };
            let answer: Value = serde_json::from_str(&text)?;
            if answer["id"].as_u64() != Some(id) {
                // An event, or an answer to an earlier command.
                if let Some(events) = self.network.as_mut()
                    && answer["sessionId"] == self.session.as_str()
                    && answer["method"]
                        .as_str()
                        .is_some_and(|m| m.starts_with("Network."))
                {
                    events.push(answer);
                }
                continue;
            }
            if let Some(error) = answer.get("error") {
                return Err(err(format!("{method} failed: {error}")));
            }
            return Ok(answer["result"].clone());
        }
    }

    async fn page(&mut self, method: &str, params: Value) -> BrowserResult<Value> {
        let session = self.session.clone();
        self.send(Some(&session), method, params).await
    }

    /// Evaluates `expression` in the page and returns its value (exceptions are errors).
    pub async fn eval(&mut self, expression: &str) -> BrowserResult<Value> {
        let result = self
            .page(
                "Runtime.evaluate",
                json!({"expression": expression, "returnByValue": true, "awaitPromise": true}),
            )
            .await?;
        if let Some(exception) = result.get("exceptionDetails") {
            return Err(err(format!("{expression} threw: {exception}")));
        }
        Ok(result["result"]["value"].clone())
    }

    /// Polls `condition` (a JS expression) until it is `true`; errors while a navigation
    /// replaces the document count as "not yet". Bounded.
    pub async fn wait_until(&mut self, condition: &str, within: Duration) -> BrowserResult {
        let deadline = Instant::now() + within;
        loop {
            let last = match self.eval(condition).await {
                Ok(Value::Bool(true)) => return Ok(()),
                Ok(other) => other.to_string(),
                Err(e) => e.to_string(),
            };
            if Instant::now() >= deadline {
                let url = self.eval("location.href").await.unwrap_or(Value::Null);
                return Err(err(format!(
                    "`{condition}` not true within {within:?} (last: {last}; page: {url})"
                )));
            }
            sleep(Duration::from_millis(100)).await;
        }
    }

    /// Loads `url` and waits until its document has loaded.
    pub async fn goto(&mut self, url: &str) -> BrowserResult {
        let navigated = self.page("Page.navigate", json!({"url": url})).await?;
        if let Some(error) = navigated.get("errorText").and_then(Value::as_str) {
            return Err(err(format!("loading {url} failed: {error}")));
        }
        let expected = serde_json::to_string(url)?;
        self.wait_until(
            &format!("location.href === {expected} && document.readyState === 'complete'"),
            COMMAND_TIMEOUT,
        )
        .await
    }

    /// Records every request of the page from now on ([`Browser::take_network_log`]), with
    /// the HTTP cache off so that every load is counted as it comes over the wire.
    pub async fn record_network(&mut self) -> BrowserResult {
        self.page("Network.enable", json!({})).await?;
        self.page("Network.setCacheDisabled", json!({"cacheDisabled": true}))
            .await?;
        self.network = Some(Vec::new());
        Ok(())
    }

    /// The requests recorded since [`Browser::record_network`] or the previous call, in the
    /// order they were made; recording goes on.
    pub async fn take_network_log(&mut self) -> BrowserResult<Vec<Loaded>> {
        // Events come before the answer to a later command: this one collects them all.
        self.eval("0").await?;
        let events = self
            .network
            .replace(Vec::new())
            .ok_or_else(|| err("the network is not being recorded: call record_network first"))?;
        let mut order = Vec::new();
        let mut requests: BTreeMap<String, Loaded> = BTreeMap::new();
        for event in &events {
            let params = &event["params"];
            let Some(id) = params["requestId"].as_str() else {
                continue;
            };
            let request = requests.entry(id.to_owned()).or_insert_with(|| {
                order.push(id.to_owned());
                Loaded::default()
            });
            match event["method"].as_str() {
                Some("Network.requestWillBeSent") => {
                    if let Some(url) = params["request"]["url"].as_str() {
                        request.urls.push(url.to_owned());
                    }
                }
                Some("Network.responseReceived") => {
                    request.status = params["response"]["status"]
                        .as_u64()
                        .and_then(|s| u16::try_from(s).ok());
                }
                Some("Network.loadingFinished") => {
                    // A whole number of bytes, sent as a JSON number.
                    request.bytes = params["encodedDataLength"].as_f64().unwrap_or(0.0) as u64;
                }
                Some("Network.loadingFailed") => {
                    request.failed = params["errorText"].as_str().map(str::to_owned);
                }
                _ => {}
            }
        }
        Ok(order.iter().filter_map(|id| requests.remove(id)).collect())
    }

    /// Sets the value of the input, select or textarea matching `selector` and fires its
    /// `input` and `change` events, as typing or choosing does (a select must have an
    /// option of that value).
    pub async fn fill(&mut self, selector: &str, value: &str) -> BrowserResult {
        let selector_js = serde_json::to_string(selector)?;
        let value_js = serde_json::to_string(value)?;
        let filled = self
            .eval(&format!(
                "(() => {{ const e = document.querySelector({selector_js}); \
                 if (!e || e.disabled) return false; e.value = {value_js}; \
                 e.dispatchEvent(new Event('input', {{bubbles: true}})); \
                 e.dispatchEvent(new Event('change', {{bubbles: true}})); \
                 return e.value === {value_js}; }})()"
            ))
            .await?;
        if filled != Value::Bool(true) {
            return Err(err(format!(
                "{selector} is missing or disabled, or does not take {value:?}"
            )));
        }
        Ok(())
    }

    /// Clicks the element matching `selector` like a person would (it must exist and be
    /// enabled).
    pub async fn click(&mut self, selector: &str) -> BrowserResult {
        let selector_js = serde_json::to_string(selector)?;
        let clicked = self
            .eval(&format!(
                "(() => {{ const e = document.querySelector({selector_js}); \
                 if (!e || e.disabled) return false; e.click(); return true; }})()"
            ))
            .await?;
        if clicked != Value::Bool(true) {
            return Err(err(format!("{selector} is missing or disabled")));
        }
        Ok(())
    }

    /// Closes the browser (bounded), killing it if it does not exit.
    pub async fn close(mut self) -> BrowserResult {
        let _ = timeout(
            Duration::from_secs(5),
            self.send(None, "Browser.close", json!({})),
        )
        .await;
        if timeout(Duration::from_secs(10), self.child.wait())
            .await
            .is_err()
        {
            let _ = self.child.kill().await;
        }
        Ok(())
    }

    /// The end of Chromium's log, for failure messages.
    pub fn log_tail(&self) -> String {
        tail(&self.log)
    }
}

fn tail(log: &Path) -> String {
    let text = std::fs::read_to_string(log).unwrap_or_default();
    let lines: Vec<&str> = text.lines().collect();
    lines[lines.len().saturating_sub(15)..].join("\n")
}
