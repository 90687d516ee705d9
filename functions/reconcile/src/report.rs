//! The reconciliation report of one day: a JSON summary (counts and fen totals per class, the
//! bill's totals next to the ledger's) and a CSV of every discrepancy, written under
//! `reports/<yyyy-MM-dd>/`. Everything in them follows from the bill and the ledger, so
//! reconciling the same bill again writes the same report (`generated_at` aside).

use crate::matching::{Class, Finding, Matched, Tally, Totals};
use chrono::{DateTime, NaiveDate, SecondsFormat, Utc};
use serde::Serialize;
use std::collections::BTreeMap;

pub use domain::bills::{REPORTS_PREFIX, discrepancies_key, rejected_key, summary_key};

/// The bill a report is about.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, serde::Deserialize)]
pub struct BillIdentity {
    /// The object key of the bill.
    pub key: String,
    pub sha256: String,
    pub bytes: u64,
    /// `false` for a day Alipay has no bill for (no trades).
    pub has_file: bool,
}

/// What was done about the discrepancies.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
pub struct Actions {
    /// Orders or refunds brought in line with Alipay by a conditional transition.
    pub healed: u64,
    /// Anomaly records written (or sighted again).
    pub anomalies: u64,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Summary {
    pub day: NaiveDate,
    pub bill: BillIdentity,
    /// Detail rows read (payments, refunds and others).
    pub rows: u64,
    /// Orders in the ledger (the day's, plus those looked up for rows of other days).
    pub orders: u64,
    pub classes: BTreeMap<Class, Tally>,
    pub discrepancies: u64,
    pub actions: Actions,
    pub bill_totals: Totals,
    pub ledger_totals: Totals,
    pub generated_at: String,
}

impl Summary {
    pub fn new(
        matched: &Matched,
        bill: BillIdentity,
        rows: u64,
        orders: u64,
        actions: Actions,
        now: DateTime<Utc>,
    ) -> Summary {
        Summary {
            day: matched.day,
            bill,
            rows,
            orders,
            classes: matched.classes.clone(),
            discrepancies: matched.discrepancies(),
            actions,
            bill_totals: matched.bill,
            ledger_totals: matched.ledger,
            generated_at: now.to_rfc3339_opts(SecondsFormat::Secs, true),
        }
    }
}

/// The CSV of the discrepancies, one line each, with a header.
pub fn discrepancies_csv(findings: &[Finding]) -> Result<Vec<u8>, csv::Error> {
    let mut writer = csv::Writer::from_writer(Vec::new());
    writer.write_record([
        "class",
        "out_trade_no",
        "trade_no",
        "out_request_no",
        "bill_fen",
        "ledger_fen",
        "status_here",
        "line",
        "finished_at",
    ])?;
    let text = |value: Option<String>| value.unwrap_or_default();
    for finding in findings {
        writer.write_record([
            finding.class.as_str().to_owned(),
            finding.out_trade_no.clone(),
            text(finding.trade_no.clone()),
            text(finding.out_request_no.clone()),
            text(finding.bill_fen.map(|f| f.to_string())),
            text(finding.ledger_fen.map(|f| f.to_string())),
            text(finding.status_here.map(|s| s.as_str().to_owned())),
            text(finding.line.map(|l| l.to_string())),
            text(finding.finished_at.clone()),
        ])?;
    }
    writer.into_inner().map_err(|e| e.into_error().into())
}
