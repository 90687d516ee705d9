//! A downloaded trade bill, as the `reconcile` function reads it: the archive opened, the
//! detail and summary entries found (by name, or sniffed by content), the summary read, then
//! the detail rows streamed and the whole bill checked.
//!
//! Property: reading the whole bill at once (`parse_zip`: detail first, then summary, records
//! collected) agrees with the streaming reading (summary first, rows lent one at a time).
#![no_main]

use alipay::bill::{self, BillArchive};
use libfuzzer_sys::fuzz_target;
use std::io::Cursor;

fuzz_target!(|zip: &[u8]| {
    let Ok(mut archive) = BillArchive::new(Cursor::new(zip)) else {
        return;
    };
    let summary = archive.summary();
    let Ok(mut detail) = archive.detail() else {
        return;
    };
    let mut records = Vec::new();
    let mut row_failed = false;
    while let Some(row) = detail.next_row() {
        match row {
            Ok(row) => records.push(row.to_record()),
            Err(_) => row_failed = true,
        }
    }
    let checked = match &summary {
        Ok(summary) => Some(detail.check_bill(summary.as_ref())),
        Err(_) => None,
    };
    drop(detail);
    if let Ok(whole) = bill::parse_zip(zip) {
        assert!(!row_failed, "parse_zip accepted a bill with a bad row");
        assert_eq!(whole.records, records);
        assert_eq!(Some(whole.check_bill()), checked);
    }
});
