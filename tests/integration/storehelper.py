"""Store test helpers: calls to svc.store, and client processes the tests can
SIGSTOP or SIGKILL (a lock holder, an election candidate).

    storehelper.py hold ADDRESS LOCK TTL_MS
        Takes LOCK (waiting up to 10 s), prints "token N", then for every line
        on stdin does a write fenced with that token (key "fenced", the line
        as value) and prints "ok REV" or "refused CODE DETAIL".

    storehelper.py campaign ADDRESS NAME CANDIDATE TTL_MS
        Campaigns for NAME; once elected prints "elected TERM" and refreshes
        the lease every TTL/4; when a refresh is refused prints "lost TERM"
        and campaigns again.  Runs until killed.
"""
import base64
import json
import sys
import time

import pyclient

SERVICE = "svc.store"


def call(address, endpoint, obj, timeout_ms=5000):
    """(code, body): code 0 for a RESPONSE, else the error code; body the JSON or error."""
    kind, h, body = pyclient.call_json(address, SERVICE, endpoint, obj, timeout_ms)
    if kind == "RESPONSE":
        return 0, body
    return h["error"]["code"], h["error"]


def b64(s):
    if isinstance(s, str):
        s = s.encode()
    return base64.b64encode(s).decode()


def unb64(s):
    return base64.b64decode(s).decode("utf-8", "replace")


def _hold(address, lock, ttl):
    code, r = call(address, "Sync.Lock", {"id": lock, "ttl_ms": ttl, "wait_ms": 10000,
                                          "owner": "holder"}, 15000)
    if code:
        print("error %d %s" % (code, r["detail"]), flush=True)
        return 1
    token = int(r["token"])
    print("token %d" % token, flush=True)
    for line in sys.stdin:
        code, r = call(address, "Store.Write", {"record": {"key": "fenced", "value": b64(line.strip())},
                                                "fence": {"lock": lock, "token": token}})
        if code:
            print("refused %d %s" % (code, r["detail"]), flush=True)
        else:
            print("ok %s" % r["revision"], flush=True)
    return 0


def _campaign(address, name, candidate, ttl):
    while True:
        try:
            code, r = call(address, "Sync.Campaign", {"name": name, "candidate": candidate,
                                                      "ttl_ms": ttl, "wait_ms": 2000}, 4000)
        except TimeoutError:
            continue
        if code:
            continue
        term = int(r["term"])
        print("elected %d %.3f" % (term, time.time()), flush=True)
        while True:
            time.sleep(ttl / 4000.0)
            try:
                code, r = call(address, "Sync.Refresh", {"id": "leader/" + name, "token": term,
                                                         "ttl_ms": ttl}, ttl // 2)
            except TimeoutError:
                code = 408
            if code == 409:
                print("lost %d %.3f" % (term, time.time()), flush=True)
                break


def main(argv):
    if len(argv) == 5 and argv[1] == "hold":
        return _hold(argv[2], argv[3], int(argv[4]))
    if len(argv) == 6 and argv[1] == "campaign":
        return _campaign(argv[2], argv[3], argv[4], int(argv[5]))
    print(__doc__, file=sys.stderr)
    return 64


if __name__ == "__main__":
    sys.exit(main(sys.argv))
