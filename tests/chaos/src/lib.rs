//! The fault run lives in `tests/chaos.rs` (`make chaos`; a smaller batch in `make test`).
//! This library is empty.
