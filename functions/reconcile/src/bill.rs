//! Reading a stored bill completely: every detail row into the matcher, then the checks that
//! prove nothing is missing (the end marker and footer totals against the rows read, the
//! summary entry's totals against both). Any failure rejects the whole bill.

use crate::matching::{Matcher, Row};
use alipay::bill::BillArchive;
use domain::bills::BillKey;
use std::path::Path;

/// A bill read to its end.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ReadBill {
    /// Detail rows read.
    pub rows: u64,
}

/// How often the progress callback is told the rows read.
pub const PROGRESS_EVERY: u64 = 10_000;

/// Feeds every row of the bill at `path` to `matcher`; the error says why the bill is refused.
pub fn read(
    key: &BillKey,
    path: &Path,
    matcher: &mut Matcher,
    progress: Option<&(dyn Fn(u64) + Send + Sync)>,
) -> Result<ReadBill, String> {
    if !key.has_file {
        // A day Alipay has no bill for: no rows, nothing to read.
        return Ok(ReadBill { rows: 0 });
    }
    let file =
        std::fs::File::open(path).map_err(|e| format!("the copied bill cannot be opened: {e}"))?;
    let mut archive = BillArchive::new(std::io::BufReader::new(file)).map_err(|e| e.to_string())?;
    // The summary first (it is small), to check the detail rows against once all are read.
    let summary = archive.summary().map_err(|e| e.to_string())?;
    let mut rows = 0;
    let mut detail = archive.detail().map_err(|e| e.to_string())?;
    // Borrowed rows: a million rows a day are read without a million sets of strings.
    while let Some(row) = detail.next_row() {
        let row = row.map_err(|e| e.to_string())?;
        matcher.row(Row::from(&row));
        rows += 1;
        if let Some(progress) = progress.filter(|_| rows % PROGRESS_EVERY == 0) {
            progress(rows);
        }
    }
    if let Some(progress) = progress {
        progress(rows);
    }
    detail
        .check_bill(summary.as_ref())
        .map_err(|e| e.to_string())?;
    Ok(ReadBill { rows })
}
