//! The differential conformance suite lives in `tests/`; see `uipc-testkit`.
#![forbid(unsafe_code)]
