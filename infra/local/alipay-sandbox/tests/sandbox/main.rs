//! Integration tests: real HTTP on 127.0.0.1 with real RSA2 signatures, one in-process sandbox
//! per test (port 0, fresh keys directory).

mod common;

mod bills;
mod conformance;
mod faults;
mod fidelity;
mod files;
mod gateway;
mod notifications;
mod pay;
mod precreate;
mod refund;
mod ui;
