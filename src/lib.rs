//! sworn server.
