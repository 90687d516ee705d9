//! End-to-end tests live in `tests/`: the real [`alipay::client::AlipayClient`] against an
//! in-process `alipay-sandbox` (precreate, scan, pay, query, refunds, barcode pay, daily bill
//! download and parsing). This library is empty.
