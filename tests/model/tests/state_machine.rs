//! The model check: `PROPTEST_CASES` scripts (1 000 by default, as `make test` runs them; `make model-check` runs 10 000
//! in release mode), from a fixed seed unless `PROPTEST_RNG_SEED` is set. A failing script is
//! shrunk to a minimal one and kept in `state_machine.proptest-regressions` beside this file,
//! replayed first by every later run.

use model_check::script::script;
use proptest::prelude::*;
use proptest::test_runner::{Config, FileFailurePersistence, RngSeed};

/// The seed of `make test` and `make model-check` (any run can be repeated with it).
const SEED: u64 = 20_240_101;
const DEFAULT_CASES: u32 = 1_000;
/// Scripts sampled for what they reach.
const SAMPLE: u32 = 256;
const MAX_STEPS: usize = 80;

fn config() -> Config {
    let mut config = Config::default();
    if std::env::var_os("PROPTEST_CASES").is_none() {
        config.cases = DEFAULT_CASES;
    }
    if std::env::var_os("PROPTEST_RNG_SEED").is_none() {
        config.rng_seed = RngSeed::Fixed(SEED);
    }
    if std::env::var_os("PROPTEST_MAX_SHRINK_ITERS").is_none() {
        config.max_shrink_iters = 10_000;
    }
    config.failure_persistence = Some(Box::new(FileFailurePersistence::WithSource(
        "proptest-regressions",
    )));
    config
}

proptest! {
    #![proptest_config(config())]

    #[test]
    fn orders_agree_with_alipay_whatever_the_interleaving(steps in script(MAX_STEPS)) {
        let outcome = model_check::run(&steps);
        prop_assert!(outcome.is_ok(), "{}", outcome.err().unwrap_or_default());
    }
}

/// The scripts are not vacuous: a sample of them reaches every kind of outcome the model is
/// meant to exercise (run with `--nocapture` to see how often each was reached).
#[test]
fn the_scripts_reach_what_they_are_meant_to() {
    let mut config = config();
    config.cases = SAMPLE;
    config.failure_persistence = None;
    let mut runner = proptest::test_runner::TestRunner::new(config);
    let reached = std::cell::RefCell::new(std::collections::BTreeMap::<String, u64>::new());
    runner
        .run(&script(MAX_STEPS), |steps| {
            let tally = model_check::run(&steps).map_err(TestCaseError::fail)?;
            for (what, count) in tally.reached {
                *reached.borrow_mut().entry(what).or_default() += count;
            }
            Ok(())
        })
        .unwrap();
    let reached = reached.into_inner();
    for (what, count) in &reached {
        println!("{count:>7} {what}");
    }
    let missed: Vec<&str> = REACHED
        .iter()
        .copied()
        .filter(|what| !reached.contains_key(*what))
        .collect();
    assert!(
        missed.is_empty(),
        "no script of the sample reached {missed:?}"
    );
}

/// What a sample of scripts must reach: every settled status, every way of learning a payment
/// and a refund, every way of closing, a take-over, a cancel that refunded, notifications
/// repeated and failed, a store failure, Alipay unreachable.
const REACHED: [&str; 24] = [
    "status:PAID",
    "status:PARTIALLY_REFUNDED",
    "status:REFUNDED",
    "status:CLOSED",
    "status:FAILED",
    "event:paid/Notification",
    "event:paid/PayResponse",
    "event:paid/Query",
    "event:paid/Reconciliation",
    "event:refund_succeeded/RefundResponse",
    "event:refund_succeeded/RefundQuery",
    "event:closed/expired",
    "event:closed/expired_never_scanned",
    "event:closed/closed_at_alipay",
    "event:closed/buyer_did_not_confirm",
    "event:closed/pay_outcome_unknown_cancelled",
    "event:Scanned",
    "event:LeaseTakenOver",
    "anomaly:refunded_by_cancel",
    "notification:already_known",
    "ended:Notify RetryLater",
    "ended:Expire Ok RefundsSettled",
    "ended:Refund Err Store",
    "ended:Expire Err AlipayUnknown",
];
