//! Generated protocol code for sworn.
//!
//! - [`workload`]: the SPIFFE Workload API. Its proto has no package, so the
//!   service path is `/SpiffeWorkloadAPI/...` as every SPIFFE client expects.
//! - [`agent`]: `sworn.agent.v1`, agent <-> server.
//! - [`admin`]: `sworn.admin.v1`, the admin socket.
//!
//! Code is generated at build time by `protox` (pure Rust), so building
//! needs no system `protoc`.

/// The SPIFFE Workload API (no proto package).
#[allow(missing_docs, clippy::all, missing_debug_implementations)]
pub mod workload {
    include!(concat!(env!("OUT_DIR"), "/_.rs"));
}

/// Module tree mirroring the proto packages, so generated cross-package
/// paths (`super::super::agent::v1`) resolve.
#[allow(missing_docs, clippy::all, missing_debug_implementations)]
pub mod sworn {
    pub mod agent {
        pub mod v1 {
            include!(concat!(env!("OUT_DIR"), "/sworn.agent.v1.rs"));
        }
    }
    pub mod admin {
        pub mod v1 {
            include!(concat!(env!("OUT_DIR"), "/sworn.admin.v1.rs"));
        }
    }
}

mod redact;

pub use sworn::admin::v1 as admin;
pub use sworn::agent::v1 as agent;
