//! The library side of `payments-cli`: the scripted tour of a running local stack
//! ([`demo`]), shared by the command line (`payments-cli demo`, `make demo`) and the
//! end-to-end test that runs the same tour against a stack it starts.

pub mod demo;
