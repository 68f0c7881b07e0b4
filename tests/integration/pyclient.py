"""pyclient — a minimal SVC/1 client in Python, for integration tests.

Written from docs/protocol.md alone, as the proof that the document is
enough to talk to svc: no libsvc code or generated protobuf code was used.
It needs only the standard library and pyzmq (Debian's python3-zmq; run it
with /usr/bin/python3). There is NO protobuf library: the svc.Header
(protocol.md section 4.2) is encoded and decoded by hand with protobuf
varints and length-delimited fields (section 4.4).

What it offers:

    call(address, service, endpoint, body, content_type='application/json',
         timeout_ms=5000, metadata=None) -> (kind, header, body)
        One unary call (section 5) to the node at address.  kind is the
        answer's kind name ("RESPONSE" or "ERROR"); header is a dict of the
        decoded header (header["error"] is a dict {id, code, detail, status}
        for ERROR).  Raises TimeoutError when no answer with the call's id
        arrives in time.

    send_raw_frames(address, frames, timeout_ms=1000) -> [[bytes, ...], ...]
        Sends frames as one multipart message on a fresh DEALER and returns
        every message received within timeout_ms (for malformed-input tests,
        section 11).

    ping(address, timeout_ms=2000) -> header dict of the PONG, or None.

    open_stream(address, service, endpoint, body, content_type='application/json',
                timeout_ms=0, metadata=None, credit=0) -> Stream
        STREAM_OPEN with the first request as body (section 9).
        Stream.recv(timeout_ms) -> (kind, header, body), or None on timeout;
        kinds are "STREAM_DATA", "STREAM_CLOSE" and "ERROR" (the last two
        end the stream; afterwards recv raises EOFError).
        Stream.cancel() sends STREAM_CANCEL and closes the connection.

    encode_header(dict) / decode_header(bytes): the header codec.

Command line (handy by hand):

    pyclient.py call ADDRESS SERVICE ENDPOINT [JSON]
    pyclient.py ping ADDRESS
    pyclient.py watch ADDRESS [SERVICE]      (Registry.Watch on the registry)
"""

import itertools
import json
import os
import sys
import time

import zmq

SIGNATURE = b"SVC01"
MAX_HEADER = 64 * 1024

# Kind numbers (protocol.md 4.3).
KINDS = {
    0: "KIND_UNSPECIFIED",
    1: "REQUEST",
    2: "RESPONSE",
    3: "ERROR",
    4: "STREAM_OPEN",
    5: "STREAM_DATA",
    6: "STREAM_CLOSE",
    7: "STREAM_CANCEL",
    8: "STREAM_CREDIT",
    9: "PING",
    10: "PONG",
}
KIND = {name: num for num, name in KINDS.items()}

# Call ids: unique per connection; we use one process-wide counter started at
# a random value (0 is avoided: malformed-input errors carry id 0).
_ids = itertools.count(int.from_bytes(os.urandom(4), "big") + 1)


def next_id():
    return next(_ids)


# ---- protobuf by hand (protocol.md 4.4) -------------------------------------


def _varint(n):
    if n < 0:
        n += 1 << 64  # int32/int64 negatives: sign-extended to 64 bits
    out = bytearray()
    while True:
        b = n & 0x7F
        n >>= 7
        if n:
            out.append(b | 0x80)
        else:
            out.append(b)
            return bytes(out)


def _read_varint(buf, i):
    shift = 0
    n = 0
    while True:
        if i >= len(buf):
            raise ValueError("truncated varint")
        b = buf[i]
        i += 1
        n |= (b & 0x7F) << shift
        if not b & 0x80:
            return n, i
        shift += 7
        if shift >= 70:
            raise ValueError("varint too long")


def _vfield(num, value):
    return _varint(num << 3) + _varint(value)


def _lfield(num, data):
    if isinstance(data, str):
        data = data.encode("utf-8")
    return _varint(num << 3 | 2) + _varint(len(data)) + data


def _fields(buf):
    """Yields (field number, wire type, value) of a protobuf message.
    value is an int for varints and fixed-size fields, bytes for
    length-delimited ones."""
    i = 0
    while i < len(buf):
        tag, i = _read_varint(buf, i)
        num, wt = tag >> 3, tag & 7
        if wt == 0:
            v, i = _read_varint(buf, i)
        elif wt == 1:
            if i + 8 > len(buf):
                raise ValueError("truncated fixed64")
            v, i = int.from_bytes(buf[i:i + 8], "little"), i + 8
        elif wt == 5:
            if i + 4 > len(buf):
                raise ValueError("truncated fixed32")
            v, i = int.from_bytes(buf[i:i + 4], "little"), i + 4
        elif wt == 2:
            n, i = _read_varint(buf, i)
            if i + n > len(buf):
                raise ValueError("truncated length-delimited field")
            v, i = bytes(buf[i:i + n]), i + n
        else:
            raise ValueError("unsupported wire type %d" % wt)
        yield num, wt, v


def _int32(n):
    n &= (1 << 64) - 1
    n &= 0xFFFFFFFF
    return n - (1 << 32) if n & 0x80000000 else n


def encode_error(e):
    out = b""
    if e.get("id"):
        out += _lfield(1, e["id"])
    if e.get("code"):
        out += _vfield(2, e["code"])
    if e.get("detail"):
        out += _lfield(3, e["detail"])
    if e.get("status"):
        out += _lfield(4, e["status"])
    return out


def decode_error(buf):
    e = {"id": "", "code": 0, "detail": "", "status": ""}
    for num, wt, v in _fields(buf):
        if num == 1 and wt == 2:
            e["id"] = v.decode("utf-8", "replace")
        elif num == 2 and wt == 0:
            e["code"] = _int32(v)
        elif num == 3 and wt == 2:
            e["detail"] = v.decode("utf-8", "replace")
        elif num == 4 and wt == 2:
            e["status"] = v.decode("utf-8", "replace")
    return e


def encode_header(h):
    """dict -> header bytes.  Keys: kind (int or name), id, service,
    endpoint, content_type, timeout_ms, metadata (dict or list of pairs),
    error (dict), credit.  Defaults are omitted, as proto3 does."""
    kind = h.get("kind", 0)
    if isinstance(kind, str):
        kind = KIND[kind]
    out = b""
    if kind:
        out += _vfield(1, kind)
    if h.get("id"):
        out += _vfield(2, h["id"])
    for num, key in ((3, "service"), (4, "endpoint"), (5, "content_type")):
        if h.get(key):
            out += _lfield(num, h[key])
    if h.get("timeout_ms"):
        out += _vfield(6, h["timeout_ms"])
    meta = h.get("metadata") or {}
    pairs = meta.items() if isinstance(meta, dict) else meta
    for k, v in pairs:
        out += _lfield(7, _lfield(1, k) + _lfield(2, v))
    if h.get("error"):
        out += _lfield(8, encode_error(h["error"]))
    if h.get("credit"):
        out += _vfield(9, h["credit"])
    return out


def decode_header(buf):
    """header bytes -> dict with every field (defaults filled in).
    Unknown fields are skipped; a repeated scalar keeps the last value."""
    h = {
        "kind": 0,
        "id": 0,
        "service": "",
        "endpoint": "",
        "content_type": "",
        "timeout_ms": 0,
        "metadata": [],
        "error": None,
        "credit": 0,
    }
    for num, wt, v in _fields(buf):
        if num == 1 and wt == 0:
            h["kind"] = _int32(v)
        elif num == 2 and wt == 0:
            h["id"] = v
        elif num in (3, 4, 5) and wt == 2:
            h[{3: "service", 4: "endpoint", 5: "content_type"}[num]] = v.decode("utf-8", "replace")
        elif num == 6 and wt == 0:
            h["timeout_ms"] = v & 0xFFFFFFFF
        elif num == 7 and wt == 2:
            k = val = ""
            for n2, w2, v2 in _fields(v):
                if n2 == 1 and w2 == 2:
                    k = v2.decode("utf-8", "replace")
                elif n2 == 2 and w2 == 2:
                    val = v2.decode("utf-8", "replace")
            h["metadata"].append((k, val))
        elif num == 8 and wt == 2:
            h["error"] = decode_error(v)
        elif num == 9 and wt == 0:
            h["credit"] = v & 0xFFFFFFFF
    h["kind_name"] = KINDS.get(h["kind"], "UNKNOWN(%d)" % h["kind"])
    return h


def decode_message(frames):
    """A DEALER-side message [SVC01][header][body?] -> (kind name, header, body).
    Raises ValueError if it is malformed (protocol.md 4.3)."""
    if len(frames) < 2 or len(frames) > 3:
        raise ValueError("message has %d frames" % len(frames))
    if frames[0] != SIGNATURE:
        raise ValueError("bad signature %r" % frames[0][:16])
    if not frames[1] or len(frames[1]) > MAX_HEADER:
        raise ValueError("empty or oversized header")
    h = decode_header(frames[1])
    if h["kind"] not in KINDS or h["kind"] == 0:
        raise ValueError("unknown message kind %d" % h["kind"])
    if h["kind"] == KIND["ERROR"] and not (h["error"] and h["error"]["code"]):
        raise ValueError("error message carries no error")
    body = frames[2] if len(frames) == 3 else b""
    return h["kind_name"], h, body


# ---- sockets -----------------------------------------------------------------

_ctx = None


def _context():
    global _ctx
    if _ctx is None:
        _ctx = zmq.Context.instance()
    return _ctx


def _dealer(address):
    s = _context().socket(zmq.DEALER)
    s.setsockopt(zmq.LINGER, 0)
    s.connect(address)
    return s


def _send(sock, header, body=None):
    frames = [SIGNATURE, encode_header(header)]
    if body is not None:
        frames.append(body)
    sock.send_multipart(frames)


def _recv_until(sock, deadline):
    """Next message before deadline (monotonic seconds), or None."""
    left = deadline - time.monotonic()
    if left <= 0 or not sock.poll(int(left * 1000) + 1, zmq.POLLIN):
        return None
    return sock.recv_multipart()


# ---- the API -------------------------------------------------------------------


def call(address, service, endpoint, body, content_type="application/json",
         timeout_ms=5000, metadata=None):
    """One unary call.  Returns (kind name, header dict, body bytes)."""
    cid = next_id()
    sock = _dealer(address)
    try:
        _send(sock, {"kind": "REQUEST", "id": cid, "service": service,
                     "endpoint": endpoint, "content_type": content_type,
                     "timeout_ms": timeout_ms, "metadata": metadata}, body or b"")
        deadline = time.monotonic() + timeout_ms / 1000.0
        while True:
            frames = _recv_until(sock, deadline)
            if frames is None:
                raise TimeoutError("call %s.%s to %s: no answer in %d ms"
                                   % (service, endpoint, address, timeout_ms))
            try:
                kind, h, b = decode_message(frames)
            except ValueError:
                continue  # malformed: drop, keep waiting (4.3 / 11.3)
            if h["id"] != cid or kind not in ("RESPONSE", "ERROR"):
                continue  # not ours (5.2)
            return kind, h, b
    finally:
        sock.close()


def call_json(address, service, endpoint, obj, timeout_ms=5000, metadata=None):
    """call() with a JSON request; returns (kind, header, decoded JSON or None)."""
    kind, h, b = call(address, service, endpoint, json.dumps(obj).encode(),
                      "application/json", timeout_ms, metadata)
    return kind, h, (json.loads(b) if b else None)


def send_raw_frames(address, frames, timeout_ms=1000):
    """Sends frames as one message; returns every message received in time."""
    sock = _dealer(address)
    try:
        sock.send_multipart([bytes(f) for f in frames])
        deadline = time.monotonic() + timeout_ms / 1000.0
        replies = []
        while True:
            got = _recv_until(sock, deadline)
            if got is None:
                return replies
            replies.append(got)
    finally:
        sock.close()


def ping(address, timeout_ms=2000):
    """PING the node; returns the PONG's header dict, or None."""
    pid = next_id()
    sock = _dealer(address)
    try:
        _send(sock, {"kind": "PING", "id": pid})
        deadline = time.monotonic() + timeout_ms / 1000.0
        while True:
            frames = _recv_until(sock, deadline)
            if frames is None:
                return None
            try:
                kind, h, _ = decode_message(frames)
            except ValueError:
                continue
            if kind == "PONG" and h["id"] == pid:
                return h
    finally:
        sock.close()


class Stream:
    """Client side of one stream (protocol.md 9.7), on its own connection."""

    def __init__(self, address, sid, sock):
        self.address = address
        self.id = sid
        self._sock = sock
        self.ended = False       # STREAM_CLOSE / ERROR seen, or cancelled
        self.error = None        # the error dict that ended it, if any

    def recv(self, timeout_ms=1000):
        """Next message of the stream as (kind, header, body), or None on
        timeout.  STREAM_CLOSE and ERROR end the stream."""
        if self.ended:
            raise EOFError("stream %d has ended" % self.id)
        deadline = time.monotonic() + timeout_ms / 1000.0
        while True:
            frames = _recv_until(self._sock, deadline)
            if frames is None:
                return None
            try:
                kind, h, b = decode_message(frames)
            except ValueError:
                continue
            if h["id"] != self.id:
                continue
            if kind in ("STREAM_CLOSE", "ERROR", "STREAM_CANCEL"):
                self.ended = True
                self.error = h["error"]
                self.close()
            elif kind != "STREAM_DATA":
                continue
            return kind, h, b

    def send(self, body, kind="STREAM_DATA", credit=0, id=None):
        """Sends one message of the stream as is: STREAM_DATA with body, or
        any other kind (STREAM_CLOSE = half-close, STREAM_CREDIT with credit).
        No credit accounting: tests use it to break the rules on purpose."""
        _send(self._sock, {"kind": kind, "id": self.id if id is None else id,
                           "credit": credit}, body)

    def cancel(self):
        """Abandons the stream: STREAM_CANCEL, then close (9.5)."""
        if not self.ended and self._sock is not None:
            _send(self._sock, {"kind": "STREAM_CANCEL", "id": self.id})
        self.ended = True
        self.close()

    def close(self):
        if self._sock is not None:
            self._sock.close()
            self._sock = None

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.cancel()


def open_stream(address, service, endpoint, body, content_type="application/json",
                timeout_ms=0, metadata=None, credit=0):
    """STREAM_OPEN with body as the first request; returns a Stream."""
    sid = next_id()
    sock = _dealer(address)
    try:
        _send(sock, {"kind": "STREAM_OPEN", "id": sid, "service": service,
                     "endpoint": endpoint, "content_type": content_type,
                     "timeout_ms": timeout_ms, "metadata": metadata,
                     "credit": credit}, body or b"")
    except Exception:
        sock.close()
        raise
    return Stream(address, sid, sock)


# ---- command line ----------------------------------------------------------------


def _main(argv):
    if len(argv) >= 5 and argv[1] == "call":
        body = (argv[5] if len(argv) > 5 else "{}").encode()
        kind, h, b = call(argv[2], argv[3], argv[4], body)
        if kind == "ERROR":
            print(json.dumps(h["error"]), file=sys.stderr)
            return 1
        print(b.decode("utf-8", "replace"))
        return 0
    if len(argv) == 3 and argv[1] == "ping":
        h = ping(argv[2])
        print("pong id=%d" % h["id"] if h else "no pong")
        return 0 if h else 1
    if len(argv) in (3, 4) and argv[1] == "watch":
        req = json.dumps({"service": argv[3] if len(argv) == 4 else ""}).encode()
        st = open_stream(argv[2], "svc.registry", "Registry.Watch", req)
        try:
            while True:
                m = st.recv(60000)
                if m is None:
                    continue
                kind, h, b = m
                print(kind, b.decode("utf-8", "replace") if b else json.dumps(h["error"]))
                sys.stdout.flush()
                if st.ended:
                    return 0 if not h["error"] else 1
        except KeyboardInterrupt:
            st.cancel()
            return 0
    print(__doc__.split("Command line")[1], file=sys.stderr)
    return 64


if __name__ == "__main__":
    sys.exit(_main(sys.argv))
