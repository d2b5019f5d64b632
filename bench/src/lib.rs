//! sworn-bench: side-by-side benchmarks of sworn and SPIRE.
//!
//! The runner ([`runner`]) starts one system at a time with equivalent settings ([`peer`]),
//! drives real workload processes under distinct uids ([`workers`], the `sworn-bench-worker`
//! binary, speaking [`wire`]), measures each scenario ([`scenario`], given a [`context`])
//! in pairs whose order comes from a seeded generator, compares the systems ([`stats`]:
//! ratio of medians, bootstrap interval, winner rule), judges the issue's [`targets`], adds
//! the floors ([`floors`]) and writes JSON and Markdown ([`report`], [`method`]).
//! Invariant: both systems are driven by the same client code (the public `spiffe` crate)
//! from the same worker processes, so the client's cost is the same on both sides.

pub mod context;
pub mod floors;
pub mod method;
pub mod peer;
pub mod procfs;
pub mod report;
pub mod runner;
pub mod scenario;
pub mod sizes;
pub mod stats;
pub mod targets;
pub mod wire;
pub mod workers;
