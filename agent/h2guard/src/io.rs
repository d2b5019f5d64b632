//! [`Guarded`]: the framing of [`Inbound`] and [`Outbound`] on a live connection, with its
//! deadlines.
//!
//! Deadlines are enforced on the read side, which h2 polls for as long as the connection
//! lives: until the first complete HEADERS, the connection must produce one within
//! [`Limits::first_headers_within`] of its creation; afterwards, whenever no stream is open,
//! within [`Limits::idle_after`] of the moment the last one closed. A stream can close on the
//! write side (the server ends it), so a write that leaves no stream open wakes the reader to
//! arm the idle deadline.

use std::io;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll, Waker};

use bytes::{Buf, BytesMut};
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::time::{Instant, Sleep};

use crate::error::GuardError;
use crate::inbound::Inbound;
use crate::limits::Limits;
use crate::outbound::Outbound;
use crate::streams::Streams;

/// Called once when the guard fails a connection, with the reason (for metrics and logs).
pub type OnFail = Arc<dyn Fn(&GuardError) + Send + Sync>;

/// A server-side connection behind the guard; see the crate docs.
pub struct Guarded<S> {
    inner: S,
    inbound: Inbound,
    outbound: Outbound,
    streams: Streams,
    limits: Limits,
    ready: BytesMut,
    started: Instant,
    /// When the last open stream closed; `None` while one is open or before the first.
    idle_since: Option<Instant>,
    timer: Pin<Box<Sleep>>,
    reader: Option<Waker>,
    failed: bool,
    eof: bool,
    on_fail: Option<OnFail>,
}

impl<S> std::fmt::Debug for Guarded<S> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Guarded")
            .field("inbound", &self.inbound)
            .field("open_streams", &self.streams.open())
            .finish_non_exhaustive()
    }
}

impl<S> Guarded<S> {
    /// Guards `inner` from now on. Must be called within a tokio runtime with timers.
    pub fn new(inner: S, limits: Limits, on_fail: Option<OnFail>) -> Self {
        let started = Instant::now();
        Self {
            inner,
            inbound: Inbound::new(limits.clone()),
            outbound: Outbound::default(),
            streams: Streams::new(limits.max_streams),
            timer: Box::pin(tokio::time::sleep_until(
                started + limits.first_headers_within,
            )),
            limits,
            ready: BytesMut::new(),
            started,
            idle_since: None,
            reader: None,
            failed: false,
            eof: false,
            on_fail,
        }
    }

    /// The wrapped connection.
    pub fn get_ref(&self) -> &S {
        &self.inner
    }

    /// The deadline that applies now, and what passing it means.
    fn deadline(&mut self) -> Option<(Instant, GuardError)> {
        if self.inbound.requests() == 0 {
            return Some((
                self.started + self.limits.first_headers_within,
                GuardError::NoRequestInTime,
            ));
        }
        if self.streams.open() > 0 {
            self.idle_since = None;
            return None;
        }
        let since = *self.idle_since.get_or_insert_with(Instant::now);
        Some((since + self.limits.idle_after, GuardError::Idle))
    }

    fn fail(&mut self, e: GuardError) -> io::Error {
        if !self.failed {
            self.failed = true;
            if let Some(f) = &self.on_fail {
                f(&e);
            }
        }
        let kind = match e {
            GuardError::NoRequestInTime | GuardError::Idle => io::ErrorKind::TimedOut,
            _ => io::ErrorKind::InvalidData,
        };
        io::Error::new(kind, e)
    }
}

impl<S: AsyncRead + Unpin> AsyncRead for Guarded<S> {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let this = &mut *self;
        loop {
            if !this.ready.is_empty() {
                let n = this.ready.len().min(buf.remaining());
                buf.put_slice(&this.ready[..n]);
                this.ready.advance(n);
                return Poll::Ready(Ok(()));
            }
            if this.eof {
                // Bytes of an unfinished frame at EOF are dropped, as h2 would.
                return Poll::Ready(Ok(()));
            }
            this.reader = Some(cx.waker().clone());
            if let Some((at, why)) = this.deadline() {
                if this.timer.deadline() != at {
                    this.timer.as_mut().reset(at);
                }
                if this.timer.as_mut().poll(cx).is_ready() {
                    return Poll::Ready(Err(this.fail(why)));
                }
            }
            let mut chunk = [0u8; 8192];
            let mut rb = ReadBuf::new(&mut chunk);
            match Pin::new(&mut this.inner).poll_read(cx, &mut rb) {
                Poll::Pending => return Poll::Pending,
                Poll::Ready(Err(e)) => return Poll::Ready(Err(e)),
                Poll::Ready(Ok(())) if rb.filled().is_empty() => this.eof = true,
                Poll::Ready(Ok(())) => {
                    let (inbound, streams, ready) =
                        (&mut this.inbound, &mut this.streams, &mut this.ready);
                    if let Err(e) = inbound.feed(rb.filled(), ready, streams) {
                        return Poll::Ready(Err(this.fail(e)));
                    }
                }
            }
        }
    }
}

impl<S: AsyncWrite + Unpin> AsyncWrite for Guarded<S> {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        let this = &mut *self;
        let polled = Pin::new(&mut this.inner).poll_write(cx, buf);
        if let Poll::Ready(Ok(n)) = polled {
            let before = this.streams.open();
            this.outbound
                .scan(&buf[..n.min(buf.len())], &mut this.streams);
            if before > 0
                && this.streams.open() == 0
                && let Some(w) = &this.reader
            {
                w.wake_by_ref();
            }
        }
        polled
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_shutdown(cx)
    }
}
