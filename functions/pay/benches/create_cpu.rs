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
//! Logs are formatted as in Lambda (JSON, INFO) and discarded.
//!
//! The emulator's HTTP server closes every connection after its answer, so each AWS call here
//! opens a new one (about 4 per create); AWS endpoints keep them open. System time, and some of
//! the user time, is therefore higher here than in Lambda.
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

/// This process's CPU time so far: (user, system).
fn cpu_time() -> (Duration, Duration) {
    let to_duration = |t: nix::sys::time::TimeVal| {
        Duration::from_secs(u64::try_from(t.tv_sec()).unwrap_or(0))
            + Duration::from_micros(u64::try_from(t.tv_usec()).unwrap_or(0))
    };
    match getrusage(UsageWho::RUSAGE_SELF) {
        Ok(usage) => (
            to_duration(usage.user_time()),
            to_duration(usage.system_time()),
        ),
        Err(_) => (Duration::ZERO, Duration::ZERO),
    }
}

/// Moves every thread of this process into the cgroup v1 folder `cgroup` (its `tasks` file
/// takes one thread id per write); the emulator's and the sandbox's processes stay out.
fn join_cgroup(cgroup: &std::path::Path) -> TestResult {
    let tasks = cgroup.join("tasks");
    for thread in std::fs::read_dir("/proc/self/task")? {
        let tid = thread?.file_name();
        std::fs::write(&tasks, tid.as_encoded_bytes())
            .map_err(|e| err(format!("joining {}: {e}", tasks.display())))?;
    }
    Ok(())
}

fn main() -> TestResult {
    // Logs as in Lambda (JSON at INFO), formatted and discarded: their CPU counts, a pipe's
    // does not. (Installed before the harness's DEBUG capture, which then stays off.)
    let _ = tracing_subscriber::fmt()
        .json()
        .with_env_filter(tracing_subscriber::EnvFilter::new("info"))
        .with_writer(std::io::sink)
        .try_init();
    let creates: u32 = std::env::var("CREATES")
        .ok()
        .and_then(|n| n.parse().ok())
        .unwrap_or(200);
    // The function's runtime (`functions/pay/src/main.rs`): one thread.
    // `MULTI_THREAD=1`: two workers, as the default `#[tokio::main]` would give on Lambda.
    let runtime = if std::env::var_os("MULTI_THREAD").is_some() {
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
        let env = Env::start_with(SandboxMode::Process, &[]).await?;
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
        let cpu_before = cpu_time();
        let wall = Instant::now();
        for request in requests {
            let response = pay.api.handle(request).await;
            if response.status().as_u16() != 201 {
                return Err(err(format!("create failed: {}", body_json(&response))));
            }
        }
        let wall = wall.elapsed();
        let (user_after, system_after) = cpu_time();
        let user = user_after.saturating_sub(cpu_before.0);
        let system = system_after.saturating_sub(cpu_before.1);
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
        println!("wall time: {:.3} ms per create", per(wall));
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
