//! Binary-only modules of `mr-metrics` (behind the `cli` feature; the library never sees them).

pub mod copies;
pub mod fidelity;
pub mod inputs;
