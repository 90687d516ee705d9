//! The pay function's own CPU time per QR payment creation, and its AWS calls.
//!
//! Runs N signed `POST /v1/payments` (scene qr) through the handler with its real adapters,
//! against moto and the Alipay sandbox started as SEPARATE processes, and reads this
//! process's CPU time (user + system) with `getrusage(RUSAGE_SELF)` before and after: the
//! emulator's and the sandbox's CPU are not counted, network waits cost no CPU. What is
//! counted: request conversion, authentication (HMAC, nonce write), validation, hashing, the
//! AWS SDK calls (signing, serialisation, HTTP), the Alipay call (RSA2 signing of the request,
//! RSA2 verification of the answer, HTTP) and the JSON answer.
//!
//! Logs are formatted as the function writes them in Lambda (JSON, INFO; `LOG_LEVEL` to change)
//! and discarded.
//!
//! The emulator's HTTP server closes every connection after its answer; AWS endpoints keep
//! them open. So the function's AWS clients talk to a keep-alive proxy in front of the emulator
//! (`test_support::emulator_proxy`, no faults), on a thread and runtime of its own: its CPU
//! time is read on that thread and taken out of this process's. `DIRECT=1`: straight to the
//! emulator, a new connection for each AWS call (about 4 per create), as before the proxy.
//!
//! ```text
//! cargo build --release -p alipay-sandbox
//! cargo bench -p pay --bench create_cpu            # N=200 by default; CREATES=500 to change
//! ```
//!
//! `CPU_CGROUP=<cgroup v1 cpu folder>`: once the emulator and the sandbox are running, this
//! process's threads join that cgroup (and the threads they start inherit it), so that its CPU
//! quota holds the handler as Lambda's share of a vCPU for a memory size would
//! (`infra/scripts/pay-memory-sizes.sh` runs it at several sizes).

#[path = "../tests/common/mod.rs"]
mod common;

use common::*;
use nix::sys::resource::{UsageWho, getrusage};
use std::time::{Duration, Instant};
use test_support::emulator_proxy::{EmulatorProxy, FaultPlan};

/// This process's CPU time so far: (user, system).
fn cpu_time() -> (Duration, Duration) {
    cpu_time_of(UsageWho::RUSAGE_SELF)
}

/// The calling thread's CPU time so far: (user, system).
fn thread_cpu_time() -> (Duration, Duration) {
    cpu_time_of(UsageWho::RUSAGE_THREAD)
}

fn cpu_time_of(who: UsageWho) -> (Duration, Duration) {
    let to_duration = |t: nix::sys::time::TimeVal| {
        Duration::from_secs(u64::try_from(t.tv_sec()).unwrap_or(0))
            + Duration::from_micros(u64::try_from(t.tv_usec()).unwrap_or(0))
    };
    match getrusage(who) {
        Ok(usage) => (
            to_duration(usage.user_time()),
            to_duration(usage.system_time()),
        ),
        Err(_) => (Duration::ZERO, Duration::ZERO),
    }
}

/// Moves every thread of this process but the proxy's into the cgroup v1 folder `cgroup` (its
/// `tasks` file takes one thread id per write); the emulator's and the sandbox's processes stay
/// out.
fn join_cgroup(cgroup: &std::path::Path) -> TestResult {
    let tasks = cgroup.join("tasks");
    for thread in std::fs::read_dir("/proc/self/task")? {
        let thread = thread?;
        let name = std::fs::read_to_string(thread.path().join("comm")).unwrap_or_default();
        if name.trim_end() == PROXY_THREAD {
            continue;
        }
        let tid = thread.file_name();
        std::fs::write(&tasks, tid.as_encoded_bytes())
            .map_err(|e| err(format!("joining {}: {e}", tasks.display())))?;
    }
    Ok(())
}

/// The name of the proxy's thread, which stays out of `CPU_CGROUP`.
const PROXY_THREAD: &str = "emulator-proxy";

/// The keep-alive proxy in front of the emulator, on a thread with a runtime of its own, so
/// that its CPU time can be read apart from the handler's.
struct ProxyThread {
    endpoint: String,
    requests: tokio::sync::mpsc::UnboundedSender<ProxyQuery>,
}

/// Asked of the proxy's thread: its CPU time so far and the client connections it accepted.
type ProxyQuery = tokio::sync::oneshot::Sender<((Duration, Duration), u64)>;

impl ProxyThread {
    fn start(upstream: String) -> TestResult<ProxyThread> {
        let (ready, started) = std::sync::mpsc::channel();
        let (requests, mut queries) = tokio::sync::mpsc::unbounded_channel::<ProxyQuery>();
        std::thread::Builder::new()
            .name(PROXY_THREAD.to_owned())
            .spawn(move || {
                let runtime = match tokio::runtime::Builder::new_current_thread()
                    .enable_all()
                    .build()
                {
                    Ok(runtime) => runtime,
                    Err(e) => {
                        let _ = ready.send(Err(e.to_string()));
                        return;
                    }
                };
                runtime.block_on(async move {
                    match EmulatorProxy::start(&upstream, FaultPlan::none()).await {
                        Ok(proxy) => {
                            let _ = ready.send(Ok(proxy.endpoint()));
                            // Until the bench drops its sender.
                            while let Some(reply) = queries.recv().await {
                                let _ = reply.send((thread_cpu_time(), proxy.connections()));
                            }
                        }
                        Err(e) => {
                            let _ = ready.send(Err(e.to_string()));
                        }
                    }
                });
            })?;
        let endpoint = started
            .recv()
            .map_err(|_| err("the proxy thread ended"))?
            .map_err(|e| err(format!("the proxy did not start: {e}")))?;
        Ok(ProxyThread { endpoint, requests })
    }

    /// The proxy thread's CPU time so far, and its client connections.
    async fn usage(&self) -> TestResult<((Duration, Duration), u64)> {
        let (reply, answer) = tokio::sync::oneshot::channel();
        self.requests
            .send(reply)
            .map_err(|_| err("the proxy thread ended"))?;
        Ok(answer.await?)
    }
}

fn main() -> TestResult {
    // Logs as the function writes them in Lambda (its own subscriber, JSON at INFO; `LOG_LEVEL`
    // to change), formatted and discarded: their CPU counts, a pipe's does not. (Installed
    // before the harness's DEBUG capture, which then stays off.)
    let level = std::env::var("LOG_LEVEL")
        .ok()
        .and_then(|level| level.parse().ok())
        .unwrap_or(tracing::level_filters::LevelFilter::INFO);
    f2f_runtime::telemetry::install_tracing(
        &f2f_runtime::telemetry::LogSettings { json: true, level },
        std::io::sink,
    );
    let creates: u32 = std::env::var("CREATES")
        .ok()
        .and_then(|n| n.parse().ok())
        .unwrap_or(200);
    // The function's runtime (`functions/pay/src/main.rs`): one thread.
    // `MULTI_THREAD=1`: two workers, as the default `#[tokio::main]` would give on Lambda.
    let multi_thread = std::env::var_os("MULTI_THREAD").is_some();
    let runtime = if multi_thread {
        tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .enable_all()
            .build()?
    } else {
        tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()?
    };
    runtime.block_on(async move {
        let mut env = Env::start_with(SandboxMode::Process, &[]).await?;
        let proxy = if std::env::var_os("DIRECT").is_some() {
            None
        } else {
            let proxy = ProxyThread::start(env.moto.endpoint_url())?;
            env.set_aws_endpoint(&proxy.endpoint);
            Some(proxy)
        };
        if let Some(cgroup) = std::env::var_os("CPU_CGROUP") {
            join_cgroup(std::path::Path::new(&cgroup))?;
        }
        let pay = pay_api(&env).await?;
        // Warm up: connection pools, TLS-free HTTP connections, lazy statics.
        for _ in 0..10 {
            let (status, body, _) = pay.create(&env, &qr_body(&out_trade_no(), 100)).await;
            if status != 201 {
                return Err(err(format!("warm-up create failed: {status} {body}")));
            }
        }
        // Requests are built (and signed) before the measured loop: that is the client's CPU.
        let requests: Vec<_> = (0..creates)
            .map(|_| env.signed("POST", "/v1/payments", &qr_body(&out_trade_no(), 100)))
            .collect();
        env.aws_calls.reset();
        let proxy_before = match &proxy {
            Some(proxy) => Some(proxy.usage().await?),
            None => None,
        };
        let cpu_before = cpu_time();
        let thread_before = thread_cpu_time();
        let wall = Instant::now();
        for request in requests {
            let response = pay.api.handle(request).await;
            if response.status().as_u16() != 201 {
                return Err(err(format!("create failed: {}", body_json(&response))));
            }
        }
        let wall = wall.elapsed();
        let thread_after = thread_cpu_time();
        let (user_after, system_after) = cpu_time();
        let mut user = user_after.saturating_sub(cpu_before.0);
        let mut system = system_after.saturating_sub(cpu_before.1);
        if let (Some(proxy), Some((before, connections_before))) = (&proxy, proxy_before) {
            let (after, connections_after) = proxy.usage().await?;
            let proxy_user = after.0.saturating_sub(before.0);
            let proxy_system = after.1.saturating_sub(before.1);
            user = user.saturating_sub(proxy_user);
            system = system.saturating_sub(proxy_system);
            println!(
                "keep-alive proxy in front of the emulator: {} new client connections during \
                 the run; its own CPU {:.3} ms per create (taken out below)",
                connections_after - connections_before,
                (proxy_user + proxy_system).as_secs_f64() * 1000.0 / f64::from(creates)
            );
        } else {
            println!("straight to the emulator (DIRECT): a new connection for every AWS call");
        }
        let calls = env.aws_calls.snapshot();
        let per = |d: Duration| d.as_secs_f64() * 1000.0 / f64::from(creates);
        println!("creates: {creates} (scene qr, sequential)");
        println!(
            "handler CPU (user+sys, this process only): {:.3} ms per create \
             (user {:.3} ms, system {:.3} ms)",
            per(user + system),
            per(user),
            per(system)
        );
        let thread_user = thread_after.0.saturating_sub(thread_before.0);
        let thread_system = thread_after.1.saturating_sub(thread_before.1);
        if !multi_thread {
            println!(
                "  of which the runtime's thread (the handler and its I/O): {:.3} ms \
             (user {:.3} ms, system {:.3} ms)",
                per(thread_user + thread_system),
                per(thread_user),
                per(thread_system)
            );
        }
        println!("wall time: {:.3} ms per create", per(wall));
        // A baseline from the same run, on the same (noisy) machine: one RSA2 signature of
        // a request-sized content, the one cost of a create no change here can remove.
        let (key, _) = alipay::PrivateKey::generate().map_err(|e| err(e.to_string()))?;
        let content = vec![b'a'; 600];
        const SIGNS: u32 = 200;
        let sign_before = thread_cpu_time();
        for _ in 0..SIGNS {
            key.sign_base64(&content).map_err(|e| err(e.to_string()))?;
        }
        let sign_after = thread_cpu_time();
        let sign = (sign_after.0 + sign_after.1).saturating_sub(sign_before.0 + sign_before.1);
        let sign_ms = sign.as_secs_f64() * 1000.0 / f64::from(SIGNS);
        println!(
            "baseline, same run: one RSA2 signature {sign_ms:.3} ms of CPU; a create = {:.2} \
             signatures",
            per(user + system) / sign_ms
        );
        println!("AWS calls per create (SDK interceptor, before transmit):");
        for (operation, count) in &calls {
            println!(
                "  {operation}: {:.2}",
                f64::from(u32::try_from(*count).unwrap_or(u32::MAX)) / f64::from(creates)
            );
        }
        println!("Alipay calls: precreate {}", pay.alipay.count("precreate"));
        Ok(())
    })
}
