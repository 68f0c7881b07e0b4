"""Bad input from the socket: the process answers or drops it and keeps serving.

Also: a client written from docs/protocol.md alone (pyclient) calls svc.
"""
import json
import os
import random
import time

import pyclient
from harness import check, wait_until


def greeter_address(p):
    p.start_registry()
    p.start_service("greeter", wait_name="greeter")
    return p.nodes("greeter")[0]["address"]


def still_serving(p, address):
    kind, h, body = pyclient.call_json(address, "greeter", "Say.Hello", {"name": "ok"})
    check(kind == "RESPONSE" and body == {"msg": "Hello ok"}, "greeter stopped serving: %r %r" % (kind, h))
    kind, h, body = pyclient.call_json(p.registry, "svc.registry", "Registry.ListServices", {})
    check(kind == "RESPONSE", "registryd stopped serving: %r" % (h,))


def test_python_client_from_the_spec(p):
    p.start_registry()
    p.start_service("greeter", wait_name="greeter")
    kind, h, body = pyclient.call_json(p.registry, "svc.registry", "Registry.GetService",
                                       {"service": "greeter"})
    check(kind == "RESPONSE", "GetService: %r" % (h,))
    address = body["services"][0]["nodes"][0]["address"]
    kind, h, body = pyclient.call_json(address, "greeter", "Say.Hello", {"name": "Py"},
                                       metadata={"Micro-Trace-Id": "t"})
    check(kind == "RESPONSE" and body == {"msg": "Hello Py"}, "Say.Hello: %r %r" % (kind, body))
    check(h["content_type"] == "application/json", "content type %r" % h["content_type"])
    # The same call in protobuf: field 1 (name), length-delimited.
    kind, h, raw = pyclient.call(address, "greeter", "Say.Hello", b"\x0a\x02Pb", "application/protobuf")
    check(kind == "RESPONSE" and raw == b"\x0a\x08Hello Pb", "protobuf answer %r" % raw)
    pong = pyclient.ping(address)
    check(pong is not None and pong["kind_name"] == "PONG", "ping: %r" % pong)


def test_malformed_frames_are_answered_or_dropped(p):
    address = greeter_address(p)
    for target in (address, p.registry):
        # Not our protocol: dropped without an answer.
        r = pyclient.send_raw_frames(target, [b"HTTP/1.1", b"GET / "], 300)
        check(r == [], "answer to a foreign protocol: %r" % r)
        # Our signature, header that is not protobuf: ERROR 400.
        r = pyclient.send_raw_frames(target, [b"SVC01", b"\xff\xff\xff\xff\xff\xff\xff\xff\xff\xff\x01"], 500)
        check(len(r) == 1, "no answer to a garbage header")
        kind, h, _ = pyclient.decode_message(r[0])
        check(kind == "ERROR" and h["error"]["code"] == 400 and "not a valid protobuf" in h["error"]["detail"],
              "garbage header answer: %r" % (h,))
        # Truncated header (a valid REQUEST cut short).
        full = pyclient.encode_header({"kind": "REQUEST", "id": 5, "service": "greeter",
                                       "endpoint": "Say.Hello"})
        r = pyclient.send_raw_frames(target, [b"SVC01", full[:-4]], 500)
        check(len(r) == 1 and pyclient.decode_message(r[0])[1]["error"]["code"] == 400,
              "truncated header: %r" % r)
        # Too many frames.
        r = pyclient.send_raw_frames(target, [b"SVC01", full, b"{}", b"extra"], 500)
        check(len(r) == 1 and "too many frames" in pyclient.decode_message(r[0])[1]["error"]["detail"],
              "too many frames: %r" % r)
        # Empty message parts.
        r = pyclient.send_raw_frames(target, [b""], 300)
        check(r == [], "answer to an empty frame: %r" % r)
        still_serving(p, address)


def test_malformed_request_error_names_the_call(p):
    address = greeter_address(p)
    hdr = pyclient.encode_header({"kind": "REQUEST", "id": 99, "service": "greeter"})
    r = pyclient.send_raw_frames(address, [b"SVC01", hdr], 1000)
    check(len(r) == 1, "no answer")
    kind, h, _ = pyclient.decode_message(r[0])
    check(kind == "ERROR" and h["id"] == 99 and h["error"]["code"] == 400,
          "error should carry the call's id 99: %r" % (h,))


def test_bad_bodies_get_400(p):
    address = greeter_address(p)
    cases = [
        (b"\x0a\x40short", "application/protobuf"),      # length overruns the body
        (b"\xff\xff\xff", "application/protobuf"),        # not protobuf
        (b'{"name":', "application/json"),                # invalid JSON
        (b'["name"]', "application/json"),                # not an object
        (b'{"name":"x","extra":1}', "application/json"),  # unknown field
        (b"\xc3\x28", "application/json"),                # invalid UTF-8
    ]
    for body, ct in cases:
        kind, h, _ = pyclient.call(address, "greeter", "Say.Hello", body, ct)
        check(kind == "ERROR" and h["error"]["code"] == 400 and
              h["error"]["detail"].startswith('invalid request to "Say.Hello": '),
              "body %r: %r" % (body, h))
    kind, h, _ = pyclient.call(address, "greeter", "Say.Hello", b"{}", "text/xml")
    check(kind == "ERROR" and h["error"]["code"] == 415, "content type: %r" % (h,))
    still_serving(p, address)


def test_oversized_message_is_refused(p):
    address = greeter_address(p)
    big = b"x" * (17 * 1024 * 1024)
    hdr = pyclient.encode_header({"kind": "REQUEST", "id": 1, "service": "greeter",
                                  "endpoint": "Say.Hello", "content_type": "application/json"})
    r = pyclient.send_raw_frames(address, [b"SVC01", hdr, big], 1000)
    check(r == [], "an oversized message should be dropped with its connection: %r" % r[:1])
    # Just over the body limit but under the socket limit: 413.
    body = b"y" * (16 * 1024 * 1024 + 10)
    r = pyclient.send_raw_frames(address, [b"SVC01", hdr, body], 3000)
    check(len(r) == 1 and pyclient.decode_message(r[0])[1]["error"]["code"] == 413,
          "body over 16 MiB: %r" % [pyclient.decode_message(x)[1] for x in r])
    still_serving(p, address)


def test_random_frames_never_stop_the_server(p):
    address = greeter_address(p)
    rnd = random.Random(1234)
    valid = pyclient.encode_header({"kind": "REQUEST", "id": 1, "service": "greeter",
                                    "endpoint": "Say.Hello", "content_type": "application/json"})
    t_end = time.monotonic() + 4
    sent = 0
    while time.monotonic() < t_end and sent < 400:
        frames = []
        for _ in range(rnd.randint(1, 5)):
            choice = rnd.random()
            if choice < 0.3:
                frames.append(b"SVC01")
            elif choice < 0.5:
                # A valid header with random bytes flipped.
                b = bytearray(valid)
                for _ in range(rnd.randint(1, 4)):
                    b[rnd.randrange(len(b))] = rnd.randrange(256)
                frames.append(bytes(b))
            else:
                frames.append(bytes(rnd.randrange(256) for _ in range(rnd.randint(0, 64))))
        pyclient.send_raw_frames(rnd.choice([address, p.registry]), frames, 20)
        sent += 1
    still_serving(p, address)
    check(sent > 100, "only %d messages sent" % sent)


def test_invalid_watch_and_registrations_get_400(p):
    p.start_registry()
    st = pyclient.open_stream(p.registry, "svc.registry", "Registry.Watch", b'{"service":"a b"}')
    got = st.recv(2000)
    check(got is not None and got[1]["error"] and got[1]["error"]["code"] == 400,
          "watch with a bad name: %r" % (got,))
    st.close()
    bad = [
        ({"service": {"name": "x", "nodes": []}}, "names no node"),
        ({"service": {"name": "x", "nodes": [{"id": "n1", "address": "http://x"}]}}, "invalid address"),
        ({"service": {"name": "has space", "nodes": [{"id": "n1", "address": "tcp://1.2.3.4:5"}]}},
         "invalid service name"),
        ({"service": {"name": "x", "nodes": [{"id": "n1", "address": "tcp://1.2.3.4:5"}]}, "ttl": 999999},
         "exceeds the maximum"),
        ({}, "carries no service"),
    ]
    for req, text in bad:
        kind, h, _ = pyclient.call_json(p.registry, "svc.registry", "Registry.Register", req)
        check(kind == "ERROR" and h["error"]["code"] == 400 and text in h["error"]["detail"],
              "register %r: %r" % (req, h))
    kind, h, body = pyclient.call_json(p.registry, "svc.registry", "Registry.ListServices", {})
    check(kind == "RESPONSE" and [s["name"] for s in body["services"]] == ["svc.registry"],
          "bad registrations leaked in: %r" % body)


def test_slow_stream_receiver_is_told_429(p):
    # A Watch receiver that stops reading while thousands of events pass
    # must not be dropped silently: its stream ends with 429.
    from harness import BIN
    p.spawn("registryd", [os.path.join(BIN, "registryd")], env={"SVC_SEND_HWM": "20"})
    wait_until(lambda: p.ctl("services").code == 0, 5, what="registryd")
    st = pyclient.open_stream(p.registry, "svc.registry", "Registry.Watch", b'{"service":"bulk"}')
    time.sleep(0.3)
    nodes = [{"id": "n%d" % i, "address": "tcp://127.0.0.1:%d" % (1000 + i)} for i in range(3000)]
    svc = {"name": "bulk", "version": "1", "nodes": nodes}
    for ep in ("Registry.Register", "Registry.Deregister"):
        kind, h, _ = pyclient.call_json(p.registry, "svc.registry", ep, {"service": svc})
        check(kind == "RESPONSE", "%s: %r" % (ep, h))
    got, end = 0, None
    t_end = time.monotonic() + 10
    while end is None and time.monotonic() < t_end:
        m = st.recv(2000)
        check(m is not None, "stream went quiet after %d events without an end" % got)
        if m[0] == "STREAM_DATA":
            got += 1
        else:
            end = m
    st.close()
    check(end is not None and end[1]["error"] and end[1]["error"]["code"] == 429,
          "expected the stream to end with 429 after %d events, got %r" % (got, end))
    check(0 < got < 6000, "events before the end: %d" % got)
    kind, _, _ = pyclient.call_json(p.registry, "svc.registry", "Registry.ListServices", {})
    check(kind == "RESPONSE", "registryd stopped serving")


def test_open_streams_are_capped(p):
    # One connection opening watch after watch: past 4096 open streams the
    # server answers 503 instead of growing without bound.
    p.start_registry()
    sock = pyclient._dealer(p.registry)
    try:
        for i in range(1, 4098):
            sock.send_multipart([pyclient.SIGNATURE, pyclient.encode_header(
                {"kind": "STREAM_OPEN", "id": i, "service": "svc.registry",
                 "endpoint": "Registry.Watch", "content_type": "application/json"}), b"{}"])
        errors = []
        deadline = time.monotonic() + 5
        while not errors and time.monotonic() < deadline:
            frames = pyclient._recv_until(sock, deadline)
            if frames is None:
                break
            kind, h, _ = pyclient.decode_message(frames)
            if kind == "ERROR":
                errors.append(h)
        check(errors and errors[0]["id"] == 4097 and errors[0]["error"]["code"] == 503 and
              "too many open streams" in errors[0]["error"]["detail"],
              "expected 503 for stream 4097, got %r" % errors[:1])
    finally:
        sock.close()
    kind, _, _ = pyclient.call_json(p.registry, "svc.registry", "Registry.ListServices", {})
    check(kind == "RESPONSE", "registryd stopped serving")
