#!/usr/bin/python3
"""bench/etcd_client.py URL OP CLIENTS SECONDS SIZE KEYS — etcd put/get per second.

Talks to etcd's v3 JSON gateway (POST URL/v3/kv/put, /v3/kv/range) with the
standard library only: CLIENTS processes (not threads: the GIL would be the
bottleneck), each with one keep-alive HTTP connection, calling back to back
for SECONDS on keys bench-0..KEYS-1 with SIZE-byte values.  A put is
answered by etcd after its raft log entry is fsync'd.  Prints one JSON line
{"bench":"etcd-OP-cN","value":ops/s,"unit":"ops/s"}.  Exit 1 on a failed call.
"""
import base64
import http.client
import json
import multiprocessing
import random
import sys
import time
import urllib.parse


def _worker(url, op, seconds, size, keys, seed, start, out):
    u = urllib.parse.urlparse(url)
    conn = http.client.HTTPConnection(u.hostname, u.port, timeout=30)
    rnd = random.Random(seed)
    value = base64.b64encode(b"v" * size).decode()
    start.wait()
    end = time.monotonic() + seconds
    n = 0
    while time.monotonic() < end:
        key = base64.b64encode(b"bench-%d" % rnd.randrange(keys)).decode()
        if op == "put":
            path, body = "/v3/kv/put", {"key": key, "value": value}
        else:
            path, body = "/v3/kv/range", {"key": key}
        conn.request("POST", path, json.dumps(body), {"Content-Type": "application/json"})
        r = conn.getresponse()
        data = r.read()
        if r.status != 200 or (op == "get" and b'"kvs"' not in data):
            out.put(("error", "%s %s: %d %r" % (op, path, r.status, data[:200])))
            return
        n += 1
    out.put(("ok", n))


def main(argv):
    if len(argv) != 7:
        sys.stderr.write(__doc__)
        return 64
    url, op, clients, seconds, size, keys = argv[1], argv[2], int(argv[3]), float(argv[4]), int(argv[5]), int(argv[6])
    # Every key exists first (gets need them).
    u = urllib.parse.urlparse(url)
    conn = http.client.HTTPConnection(u.hostname, u.port, timeout=30)
    value = base64.b64encode(b"v" * size).decode()
    for i in range(keys):
        conn.request("POST", "/v3/kv/put", json.dumps({"key": base64.b64encode(b"bench-%d" % i).decode(),
                                                       "value": value}), {"Content-Type": "application/json"})
        r = conn.getresponse()
        r.read()
        if r.status != 200:
            sys.stderr.write("etcd_client: preload failed: %d\n" % r.status)
            return 1
    start = multiprocessing.Event()
    out = multiprocessing.Queue()
    procs = [multiprocessing.Process(target=_worker, args=(url, op, seconds, size, keys, i, start, out))
             for i in range(clients)]
    for p in procs:
        p.start()
    time.sleep(0.5)
    t0 = time.monotonic()
    start.set()
    total, err = 0, None
    for _ in procs:
        kind, v = out.get(timeout=seconds + 60)
        if kind == "error":
            err = v
        else:
            total += v
    elapsed = time.monotonic() - t0
    for p in procs:
        p.join(10)
    if err:
        sys.stderr.write("etcd_client: %s\n" % err)
        return 1
    print(json.dumps({"bench": "etcd-%s-c%d" % (op, clients), "value": round(total / elapsed, 1),
                      "unit": "ops/s", "clients": clients, "payload": size}))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
