//! The background loop that fires sandbox timers on time: it sleeps (in real time, scaled)
//! until the next deadline, or until a change wakes it, and then applies whatever is due.
//! Requests apply due timers themselves too, so the loop only matters for things nobody asks
//! about: notifications, expiries, delayed buyer confirmations.

use crate::sandbox::Sandbox;
use std::time::Duration;

/// Never sleep longer, so clock advances and scale rounding are caught up with quickly.
const MAX_SLEEP: Duration = Duration::from_millis(500);
const MIN_SLEEP: Duration = Duration::from_millis(2);

pub(crate) async fn run(sandbox: Sandbox) {
    loop {
        let next = sandbox.tick().await;
        let sleep = next
            .map(|deadline| sandbox.clock().real_until(deadline))
            .unwrap_or(MAX_SLEEP)
            .clamp(MIN_SLEEP, MAX_SLEEP);
        tokio::select! {
            () = tokio::time::sleep(sleep) => {}
            () = sandbox.woken() => {}
            () = sandbox.shutting_down() => return,
        }
    }
}
