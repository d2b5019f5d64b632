//! Which streams of a connection are open, from the frames both sides send (RFC 9113 §5.1).
//!
//! A stream opens with the client's HEADERS and closes when both sides have ended it
//! (END_STREAM) or either resets it. Only the count matters here: a connection with no open
//! stream is idle.

use std::collections::HashMap;

use crate::error::GuardError;

#[derive(Debug, Default, Clone, Copy)]
struct Ended {
    client: bool,
    server: bool,
}

/// The open streams of one connection.
#[derive(Debug)]
pub struct Streams {
    open: HashMap<u32, Ended>,
    highest_client: u32,
    max: usize,
}

impl Streams {
    /// Tracks at most `max` streams at once.
    pub fn new(max: usize) -> Self {
        Self {
            open: HashMap::new(),
            highest_client: 0,
            max,
        }
    }

    /// Streams neither closed nor reset.
    pub fn open(&self) -> usize {
        self.open.len()
    }

    /// The client sent a complete header block on `id`.
    pub fn client_headers(&mut self, id: u32, end_stream: bool) -> Result<(), GuardError> {
        if !self.open.contains_key(&id) {
            if id <= self.highest_client || id.is_multiple_of(2) {
                // Trailers on a closed stream, or a stream the client may not open: h2
                // refuses it; nothing opens here.
                return Ok(());
            }
            if self.open.len() >= self.max {
                return Err(GuardError::TooManyStreams { max: self.max });
            }
            self.highest_client = id;
            self.open.insert(id, Ended::default());
        }
        if end_stream {
            self.end(id, |e| e.client = true);
        }
        Ok(())
    }

    /// The client ended `id` with a DATA frame.
    pub fn client_end(&mut self, id: u32) {
        self.end(id, |e| e.client = true);
    }

    /// The server ended `id` (HEADERS or DATA with END_STREAM).
    pub fn server_end(&mut self, id: u32) {
        self.end(id, |e| e.server = true);
    }

    /// Either side reset `id`.
    pub fn reset(&mut self, id: u32) {
        self.open.remove(&id);
    }

    fn end(&mut self, id: u32, mark: impl FnOnce(&mut Ended)) {
        if let Some(e) = self.open.get_mut(&id) {
            mark(e);
            if e.client && e.server {
                self.open.remove(&id);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_stream_closes_when_both_sides_end_it_or_one_resets_it() {
        let mut s = Streams::new(4);
        s.client_headers(1, true).unwrap();
        s.client_headers(3, false).unwrap();
        assert_eq!(s.open(), 2);
        s.server_end(1);
        assert_eq!(s.open(), 1);
        s.reset(3);
        assert_eq!(s.open(), 0);
        // A reused (lower) ID does not reopen anything.
        s.client_headers(1, false).unwrap();
        assert_eq!(s.open(), 0);
    }

    #[test]
    fn more_streams_than_the_bound_fail_the_connection() {
        let mut s = Streams::new(2);
        s.client_headers(1, false).unwrap();
        s.client_headers(3, false).unwrap();
        assert_eq!(
            s.client_headers(5, false),
            Err(GuardError::TooManyStreams { max: 2 })
        );
    }
}
