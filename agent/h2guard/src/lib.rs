//! A bounded HTTP/2 front for the agent's Workload API (docs/architecture.md, "Workload API
//! connections").
//!
//! The Workload API's h2 server sees client bytes only after this crate has framed them.
//! Nothing is buffered before it is checked: a frame header over the advertised
//! `SETTINGS_MAX_FRAME_SIZE` fails the connection at its 9 bytes, a header block is bounded
//! compressed, decoded and in CONTINUATION count, and the HPACK dynamic table cannot grow past
//! the 4096 bytes the server advertises. [`Guarded`] adds the deadlines: a first complete
//! HEADERS within [`Limits::first_headers_within`], and no more than [`Limits::idle_after`]
//! without an open stream. An open stream is never timed out.
//!
//! The same framing rewrites the one `:authority` gRPC C-core sends on unix sockets, which
//! the `http` crate refuses ([`Inbound`]).

mod error;
mod frame;
mod hpack;
mod inbound;
#[cfg(feature = "io")]
mod io;
mod limits;
mod outbound;
mod streams;

pub use error::GuardError;
pub use inbound::{Inbound, PREFACE};
#[cfg(feature = "io")]
pub use io::{Guarded, OnFail};
pub use limits::Limits;
pub use outbound::Outbound;
pub use streams::Streams;
