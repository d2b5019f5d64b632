//! The kernel's view of a Workload API caller.
