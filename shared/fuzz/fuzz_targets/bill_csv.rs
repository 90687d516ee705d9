//! The bill's CSV files without their ZIP, so that mutations reach the CSV reader directly: the
//! input is `[read size selector, GBK bytes...]`, read as a detail file (header and footer
//! lines, column mapping by name, rows, footer totals) and as a summary file.
//!
//! Property: the reader is streaming, so how the bytes arrive must not matter: the same bytes
//! delivered a few at a time (the selector picks how many per read) read the same as in one go.
#![no_main]

use alipay::bill::{self, BillError, BillRecord, Counted, DetailReader, Footer};
use libfuzzer_sys::fuzz_target;
use std::io::{self, Read};

/// Hands out at most `size` bytes per read.
struct Trickle<'a> {
    data: &'a [u8],
    size: usize,
}

impl Read for Trickle<'_> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let n = buf.len().min(self.size).min(self.data.len());
        let (head, rest) = self.data.split_at(n);
        buf[..n].copy_from_slice(head);
        self.data = rest;
        Ok(n)
    }
}

/// Everything a detail reader tells about a file.
type Detail = (
    Vec<Result<BillRecord, BillError>>,
    Vec<String>,
    Footer,
    Counted,
    Result<(), BillError>,
);

fn read_detail(gbk: impl Read) -> Detail {
    let mut reader = DetailReader::new(gbk);
    let rows = reader.by_ref().collect();
    let checked = reader.check_totals();
    (
        rows,
        reader.header_lines().to_vec(),
        reader.footer().clone(),
        *reader.counted(),
        checked,
    )
}

const READ_SIZES: [usize; 8] = [1, 2, 3, 7, 64, 511, 4096, 65_537];

fuzz_target!(|input: &[u8]| {
    let Some((&selector, gbk)) = input.split_first() else {
        return;
    };
    let size = READ_SIZES[usize::from(selector) % READ_SIZES.len()];
    let trickle = || Trickle { data: gbk, size };
    assert_eq!(read_detail(gbk), read_detail(trickle()));
    assert_eq!(bill::parse_summary(gbk), bill::parse_summary(trickle()));
});
