"""Streams between real processes: svcctl stream, svc-testsvc's stream
endpoints, a client written from docs/protocol.md (pyclient), and nodes
that die.  (The in-process C test, build/tests/test_stream, covers the C
client API, half-close and both cancels in detail.)
"""
import json
import os
import signal
import subprocess
import time

import pyclient
from harness import BIN, SANITIZED, check, wait_until


def testsvc(p):
    p.start_registry()
    p.start_service("svc-testsvc", wait_name="testsvc")
    return p.nodes("testsvc")[0]["address"]


def stream_stats(address):
    kind, h, body = pyclient.call_json(address, "testsvc", "Test.StreamStats", {})
    check(kind == "RESPONSE", "Test.StreamStats: %r" % (h,))
    return {k: int(v) for k, v in body.items()}   # int64 fields come as strings


def next_msg(st, timeout_ms=3000):
    """The stream's next message of any kind, as (kind, header, body), or None."""
    deadline = time.monotonic() + timeout_ms / 1000.0
    while True:
        frames = pyclient._recv_until(st._sock, deadline)
        if frames is None:
            return None
        kind, h, b = pyclient.decode_message(frames)
        if h["id"] == st.id:
            return kind, h, b


def ended_with(st, code, text, timeout_ms=3000):
    """Reads until the stream's end; checks it is an error of code containing text."""
    deadline = time.monotonic() + timeout_ms / 1000.0
    while time.monotonic() < deadline:
        m = next_msg(st, 500)
        if m is None:
            continue
        kind, h, _ = m
        if kind in ("STREAM_CLOSE", "ERROR"):
            e = h["error"] or {}
            check(e.get("code") == code and text in e.get("detail", ""),
                  "expected %d %r, got %s %r" % (code, text, kind, e))
            return
    raise AssertionError("stream did not end within %d ms" % timeout_ms)


def test_svcctl_stream_bidi_many_messages_in_order(p):
    # 100,000 JSON lines each way through svcctl and the echo handler.
    testsvc(p)
    n = 10000 if SANITIZED else 100000
    lines = "".join('{"seq":%d,"text":"m%d"}\n' % (i, i) for i in range(n))
    r = p.ctl("stream", "testsvc", "Test.Bidi", stdin=lines, timeout=120)
    check(r.code == 0, "svcctl stream failed: %r" % (r,))
    out = r.out.splitlines()
    check(len(out) == n, "expected %d answers, got %d" % (n, len(out)))
    for i in (0, 1, n // 2, n - 1):
        check(json.loads(out[i]) == {"seq": str(i), "text": "m%d" % i},
              "answer %d is %r" % (i, out[i]))
    seqs = [int(json.loads(line)["seq"]) for line in out]
    check(seqs == list(range(n)), "answers out of order")


def test_svcctl_stream_client_and_server_kinds(p):
    testsvc(p)
    # Client stream: the answer comes after stdin's end (the half-close).
    r = p.ctl("stream", "testsvc", "Test.Sum", stdin='{"value":40}\n\n{"value":2}\n')
    check(r.code == 0 and r.out == '{"sum":"42","count":"2"}\n', "Test.Sum: %r" % (r,))
    # No input at all: the handler still sees a clean end of input.
    r = p.ctl("stream", "testsvc", "Test.Sum", stdin="")
    check(r.code == 0 and r.out == '{"sum":"0","count":"0"}\n', "empty Test.Sum: %r" % (r,))
    # Server stream: the first line is the request.
    r = p.ctl("stream", "testsvc", "Test.Ticks", stdin='{"count":3,"pad":1}\n')
    check(r.code == 0 and r.out.splitlines() == ['{"seq":"%d","text":"x"}' % i for i in range(3)],
          "Test.Ticks: %r" % (r,))
    # A reader that goes away (| head -2): svcctl cancels and exits instead of reading forever.
    ctl = subprocess.Popen([os.path.join(BIN, "svcctl"), "stream", "testsvc", "Test.Ticks"],
                           stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                           env=p.env, start_new_session=True)
    try:
        ctl.stdin.write(b'{"count":100000000}\n')
        ctl.stdin.close()
        first = ctl.stdout.readline()
        check(first.startswith(b'{"seq":"0"'), "first tick %r" % first)
        ctl.stdout.close()
        try:
            code = ctl.wait(10)
        except subprocess.TimeoutExpired:
            raise AssertionError("svcctl stream went on after its stdout closed")
        check(code == 1 and b"cannot write stdout" in ctl.stderr.read(), "exit %r" % code)
    finally:
        if ctl.poll() is None:
            os.killpg(ctl.pid, signal.SIGKILL)
            ctl.wait(5)
    # The kind from the registry is shown by svcctl service.
    r = p.ctl("service", "testsvc")
    check("Endpoint: Test.Bidi (stream: bidi)" in r.out and
          "Endpoint: Test.Sum (stream: client)" in r.out and
          "Endpoint: Test.Ticks (stream: server)" in r.out, "svcctl service: %s" % r.out)
    # --address and --kind bypass the registry.
    addr = p.nodes("testsvc")[0]["address"]
    r = p.ctl("--registry", "ipc:///nonexistent/reg", "stream", "--address", addr, "--kind",
              "bidi", "testsvc", "Test.Bidi", stdin='{"seq":5}\n')
    check(r.code == 0 and r.out == '{"seq":"5","text":""}\n', "--address --kind: %r" % (r,))


def test_svcctl_stream_errors(p):
    testsvc(p)
    # A server-side end with an error: go-micro JSON on stderr, exit 1.
    r = p.ctl("stream", "testsvc", "Test.Abort", stdin='{"seq":1}\n' * 10)
    check(r.code == 1, "Test.Abort exit %r" % (r,))
    e = json.loads(r.err.strip().splitlines()[-1])
    check(e == {"id": "testsvc", "code": 409, "detail": "aborted after 3 messages",
                "status": "Conflict"}, "Test.Abort error %r" % e)
    # A bad input line: named, the stream cancelled, exit 65.
    r = p.ctl("stream", "testsvc", "Test.Bidi", stdin='{"seq":1}\nnot json\n')
    check(r.code == 65 and 'invalid JSON on stdin line 2' in r.err, "bad line: %r" % (r,))
    r = p.ctl("stream", "testsvc", "Test.Bidi", stdin='[1]\n')
    check(r.code == 65 and "want an object" in r.err, "array line: %r" % (r,))
    # A field the message does not have: the server ends the stream with 400.
    r = p.ctl("stream", "testsvc", "Test.Bidi", stdin='{"nope":1}\n')
    check(r.code == 1 and '"code":400' in r.err and "invalid stream message" in r.err,
          "unknown field: %r" % (r,))
    # Not a stream, unknown endpoint, usage.
    r = p.ctl("stream", "testsvc", "Test.Sleep", stdin="")
    check(r.code == 1 and "is not a stream" in r.err, "unary endpoint: %r" % (r,))
    r = p.ctl("stream", "testsvc", "Test.Nope", stdin="")
    check(r.code == 1 and 'endpoint "Test.Nope" not found' in r.err, "unknown endpoint: %r" % (r,))
    r = p.ctl("stream", "--node-meta", "zone=nowhere", "testsvc", "Test.Bidi", stdin="")
    check(r.code == 1 and '"code":404' in r.err and "no matching nodes" in r.err,
          "no matching node: %r" % (r,))
    r = p.ctl("stream", "--version", "latest", "testsvc", "Test.Bidi", stdin='{"seq":3}\n')
    check(r.code == 0 and r.out == '{"seq":"3","text":""}\n', "--version: %r" % (r,))
    r = p.ctl("stream", "testsvc")
    check(r.code == 64, "missing endpoint: %r" % (r,))
    r = p.ctl("stream", "--kind", "sideways", "testsvc", "Test.Bidi")
    check(r.code == 64 and 'invalid kind "sideways"' in r.err, "bad kind: %r" % (r,))
    r = p.ctl("stream", "--help")
    check(r.code == 0 and "half-closes" in r.out, "help: %r" % (r,))


def test_stream_to_a_killed_node_ends_with_an_error(p):
    testsvc(p)
    node = p.procs[-1]
    # svcctl with stdin held open, on a stream that never answers.
    ctl = subprocess.Popen([os.path.join(BIN, "svcctl"), "stream", "testsvc", "Test.Hold"],
                           stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                           env=p.env, start_new_session=True)
    try:
        ctl.stdin.write(b'{"seq":1}\n')
        ctl.stdin.flush()
        addr = p.nodes("testsvc")[0]["address"]
        wait_until(lambda: stream_stats(addr)["open"] == 1, 5, what="the stream to open")
        node.kill()
        try:
            out, err = ctl.communicate(timeout=10)
        except subprocess.TimeoutExpired:
            raise AssertionError("svcctl stream hung after its node was killed")
        check(ctl.returncode == 1, "exit %r: %r" % (ctl.returncode, err))
        e = json.loads(err.decode().strip().splitlines()[-1])
        check(e["code"] == 503 and "lost" in e["detail"], "error %r" % e)
    finally:
        if ctl.poll() is None:
            os.killpg(ctl.pid, signal.SIGKILL)
            ctl.wait(5)


def test_slow_reader_stalls_the_writer_with_bounded_memory(p):
    addr = testsvc(p)
    credit = 64
    # A server stream of 200,000 1 KB messages to a reader that reads nothing.
    st = pyclient.open_stream(addr, "testsvc", "Test.Ticks", b'{"count":200000,"pad":1000}',
                              credit=credit)
    try:
        rss0 = int(pyclient.call_json(addr, "testsvc", "Debug.Stats", {})[2]["memory"])
        last = [-1]

        def settled():
            n = stream_stats(addr)["ticks_sent"]
            done = n == last[0] and n > 0
            last[0] = n
            return done
        wait_until(settled, 10, step=0.3, what="the writer to stall")
        sent = last[0]
        check(sent <= credit, "writer sent %d messages on a credit of %d" % (sent, credit))
        time.sleep(0.5)
        check(stream_stats(addr)["ticks_sent"] == sent, "writer went on without credit")
        rss1 = int(pyclient.call_json(addr, "testsvc", "Debug.Stats", {})[2]["memory"])
        check(rss1 - rss0 < 8 << 20, "server memory grew %d bytes while stalled" % (rss1 - rss0))
        # Granting credit (as a reader does after consuming) lets it go on, exactly that far.
        st.send(None, kind="STREAM_CREDIT", credit=100)
        wait_until(lambda: stream_stats(addr)["ticks_sent"] == sent + 100, 5,
                   what="100 more messages after a grant of 100")
        got = 0
        while next_msg(st, 300) is not None:
            got += 1
        check(got == sent + 100, "received %d, expected %d" % (got, sent + 100))
    finally:
        st.cancel()
    wait_until(lambda: stream_stats(addr)["open"] == 0, 5, what="the handler to see the cancel")


def test_cancel_from_either_side_frees_the_stream(p):
    addr = testsvc(p)
    before = stream_stats(addr)["closed_seen"]
    # Client side: a handler blocked in recv sees the cancel and returns.
    st = pyclient.open_stream(addr, "testsvc", "Test.Hold", b"", credit=16)
    m = next_msg(st)
    check(m and m[0] == "STREAM_CREDIT" and m[1]["credit"] == 512,
          "first message should grant 512: %r" % (m,))
    st.send(b'{"seq":1}')
    wait_until(lambda: stream_stats(addr)["open"] == 1, 5, what="Test.Hold to run")
    st.cancel()
    wait_until(lambda: stream_stats(addr)["open"] == 0, 5, what="Test.Hold to end")
    check(stream_stats(addr)["closed_seen"] == before + 1, "handler did not see the cancel")
    # Server side: Test.Abort ends a stream the client is still sending on.
    st = pyclient.open_stream(addr, "testsvc", "Test.Abort", b"", credit=16)
    for i in range(10):
        st.send(b'{"seq":%d}' % i)
    ended_with(st, 409, "aborted after 3 messages")
    st.close()
    # Many cancelled streams leave nothing open (the ASan pass checks memory at exit).
    for _ in range(20 if SANITIZED else 200):
        s2 = pyclient.open_stream(addr, "testsvc", "Test.Bidi", b"", credit=16)
        s2.send(b'{"seq":1}')
        s2.cancel()
    wait_until(lambda: stream_stats(addr)["open"] == 0, 10, what="every echo to end")
    r = p.ctl("stats", "testsvc")
    check(r.code == 0, "stats: %r" % (r,))


def test_stream_deadline_is_enforced_by_the_server(p):
    # timeout_ms of a STREAM_OPEN is the stream's deadline: the server ends
    # it with 408 even though this client (written from the spec) does nothing.
    addr = testsvc(p)
    st = pyclient.open_stream(addr, "testsvc", "Test.Hold", b"", credit=4, timeout_ms=300)
    t0 = time.monotonic()
    ended_with(st, 408, "stream deadline exceeded", timeout_ms=5000)
    check(time.monotonic() - t0 < 4, "408 came after %.1fs" % (time.monotonic() - t0))
    st.close()
    wait_until(lambda: stream_stats(addr)["open"] == 0, 5, what="Test.Hold to be stopped")


def test_bad_stream_input_gets_clear_errors(p):
    addr = testsvc(p)
    # Data for a stream this connection never opened: 404.
    st = pyclient.open_stream(addr, "testsvc", "Test.Ticks", b'{"count":0}', credit=4)
    ended = next_msg(st)
    check(ended and ended[0] == "STREAM_CLOSE" and not ended[1]["error"], "Ticks 0: %r" % (ended,))
    st.send(b"{}", id=st.id + 12345)
    frames = pyclient._recv_until(st._sock, time.monotonic() + 3)
    check(frames is not None, "no answer to data for an unknown stream")
    kind, h, _ = pyclient.decode_message(frames)
    check(kind == "ERROR" and h["id"] == st.id + 12345 and h["error"]["code"] == 404 and
          "no open stream" in h["error"]["detail"], "unknown stream: %r" % (h,))
    st.close()
    # Data beyond the credit granted (Test.Stall never reads): 400.
    st = pyclient.open_stream(addr, "testsvc", "Test.Stall", b"", credit=4)
    m = next_msg(st)
    check(m and m[0] == "STREAM_CREDIT", "Stall first message: %r" % (m,))
    for i in range(m[1]["credit"] + 1):
        st.send(b'{"seq":%d}' % i)
    ended_with(st, 400, "stream credit exceeded")
    st.close()
    # A grant that takes the server's credit past 2^32-1 (4 + 2^32-1; Test.Stall never sends): 400.
    st = pyclient.open_stream(addr, "testsvc", "Test.Stall", b"", credit=4)
    st.send(None, kind="STREAM_CREDIT", credit=0xFFFFFFFF)
    ended_with(st, 400, "stream credit overflow")
    st.close()
    # Data after the half-close: 400.
    st = pyclient.open_stream(addr, "testsvc", "Test.Stall", b"", credit=4)
    next_msg(st)
    st.send(None, kind="STREAM_CLOSE")
    st.send(b'{"seq":1}')
    ended_with(st, 400, "stream data after half-close")
    st.close()
    # Data on a server stream: 400.
    st = pyclient.open_stream(addr, "testsvc", "Test.Ticks", b'{"count":1000000}', credit=4)
    st.send(b'{"seq":1}')
    ended_with(st, 400, "server-streaming endpoint takes no stream data")
    st.close()
    # A bidi open with a body (its messages go as STREAM_DATA): 400 before it starts.
    st = pyclient.open_stream(addr, "testsvc", "Test.Bidi", b'{"seq":1}')
    ended_with(st, 400, "carries a body")
    st.close()
    # The same stream id opened twice on one connection: 409 for the second.
    st = pyclient.open_stream(addr, "testsvc", "Test.Stall", b"", credit=4)
    pyclient._send(st._sock, {"kind": "STREAM_OPEN", "id": st.id, "service": "testsvc",
                              "endpoint": "Test.Stall", "content_type": "application/json"}, b"")
    ended_with(st, 409, "already open")
    st.cancel()
    # Through all of it the node kept serving, and nothing is left open.
    wait_until(lambda: stream_stats(addr)["open"] == 0, 5, what="every handler to end")
    kind, h, body = pyclient.call_json(addr, "testsvc", "Debug.Health", {})
    check(kind == "RESPONSE" and body == {"status": "ok"}, "health after bad input: %r" % (h,))


def test_greeter_chat_example(p):
    p.start_registry()
    p.start_service("greeter", wait_name="greeter")
    r = p.ctl("stream", "greeter", "Say.Chat", stdin='{"name":"a"}\n{"name":"b"}\n')
    check(r.code == 0 and r.out == '{"msg":"Hello a"}\n{"msg":"Hello b"}\n', "Say.Chat: %r" % (r,))
    r = p.ctl("stream", "greeter", "Say.Chat", stdin='{"name":"a"}\n{"name":""}\n{"name":"c"}\n')
    check(r.code == 1 and r.out == '{"msg":"Hello a"}\n' and "name must not be empty" in r.err,
          "Say.Chat with an empty name: %r" % (r,))
