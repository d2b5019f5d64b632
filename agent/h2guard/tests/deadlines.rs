//! The deadlines of a guarded connection, on tokio's paused clock: a connection must send a
//! complete request in time and may not sit without a stream, but an open stream is never
//! timed out.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod support;

use std::io::ErrorKind;
use std::time::Duration;

use support::frame;
use sworn_h2guard::{Guarded, Limits, PREFACE};
use tokio::io::{AsyncReadExt, AsyncWriteExt, DuplexStream, duplex};

fn request(end_stream: bool) -> Vec<u8> {
    let block = loona_hpack::Encoder::new().encode([
        (&b":method"[..], &b"POST"[..]),
        (b":path", b"/SpiffeWorkloadAPI/FetchX509SVID"),
    ]);
    frame(0x1, 0x4 | u8::from(end_stream), 1, &block)
}

/// A guarded server end and the client end of an in-memory connection.
fn pair() -> (Guarded<DuplexStream>, DuplexStream) {
    let (server, client) = duplex(1 << 20);
    (Guarded::new(server, Limits::default(), None), client)
}

/// Reads from the guard until it fails, returning the error kind and when.
async fn read_until_failure(guard: &mut Guarded<DuplexStream>) -> (ErrorKind, Duration) {
    let start = tokio::time::Instant::now();
    let mut buf = [0u8; 4096];
    loop {
        match guard.read(&mut buf).await {
            Ok(0) => panic!("connection ended without the guard failing it"),
            Ok(_) => continue,
            Err(e) => return (e.kind(), start.elapsed()),
        }
    }
}

#[tokio::test(start_paused = true)]
async fn silence_after_the_preface_is_closed_at_10_s() {
    let (mut guard, mut client) = pair();
    client.write_all(PREFACE).await.unwrap();
    let (kind, after) = read_until_failure(&mut guard).await;
    assert_eq!(kind, ErrorKind::TimedOut);
    assert_eq!(after.as_secs(), 10);
}

#[tokio::test(start_paused = true)]
async fn one_byte_per_second_never_completes_a_request_and_is_closed_at_10_s() {
    let (mut guard, mut client) = pair();
    let mut bytes = PREFACE.to_vec();
    bytes.extend(request(false));
    let trickle = tokio::spawn(async move {
        for b in bytes {
            if client.write_all(&[b]).await.is_err() {
                return;
            }
            tokio::time::sleep(Duration::from_secs(1)).await;
        }
    });
    let (kind, after) = read_until_failure(&mut guard).await;
    assert_eq!(kind, ErrorKind::TimedOut);
    assert_eq!(after.as_secs(), 10);
    trickle.abort();
}

#[tokio::test(start_paused = true)]
async fn an_open_stream_is_never_timed_out() {
    let (mut guard, mut client) = pair();
    let mut bytes = PREFACE.to_vec();
    bytes.extend(request(true)); // the client half-closes; the server's side stays open
    client.write_all(&bytes).await.unwrap();
    let mut buf = vec![0u8; 4096];
    let n = guard.read(&mut buf).await.unwrap();
    assert!(n > 0);
    // An hour of silence while the stream is open: the guard neither fails nor ends.
    let quiet = tokio::time::timeout(Duration::from_secs(3600), guard.read(&mut buf)).await;
    assert!(quiet.is_err(), "the guard ended an open stream: {quiet:?}");
}

#[tokio::test(start_paused = true)]
async fn a_connection_whose_last_stream_closed_is_closed_5_min_later() {
    let (mut guard, mut client) = pair();
    let mut bytes = PREFACE.to_vec();
    bytes.extend(request(true));
    client.write_all(&bytes).await.unwrap();
    let mut buf = vec![0u8; 4096];
    while guard.read(&mut buf).await.unwrap() < PREFACE.len() + 9 {}
    // The server answers and ends the stream.
    guard
        .write_all(&frame(0x1, 0x4 | 0x1, 1, &[0x88]))
        .await
        .unwrap();
    let (kind, after) = read_until_failure(&mut guard).await;
    assert_eq!(kind, ErrorKind::TimedOut);
    assert_eq!(after.as_secs(), 300);
}
