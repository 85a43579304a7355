#!/usr/bin/env python3
"""HTTP NDJSON load client for bench/logs.sh.

Usage: logs_client.py gen FILE LINES
       logs_client.py send HOST PORT CA_FILE TOKEN FILE CLIENTS BATCH

gen writes LINES NDJSON lines of about 200 bytes (3% carry an email, a card or a token), the
same file the raw SQLite insert reads. send posts FILE in BATCH-line requests over CLIENTS
persistent HTTPS connections (certificate checked against CA_FILE, name "localhost") and
prints "ingest: N lines in S s = R lines/s". Deterministic input, loopback only.
"""

import datetime
import http.client
import json
import random
import ssl
import sys
import threading
import time


def gen(path, count):
    rng = random.Random(20261129)
    words = ("request completed user session payment invoice timeout upstream cache miss "
             "query slow retry worker job queue deploy connection reset token order").split()
    now = datetime.datetime.now(datetime.timezone.utc)
    with open(path, "w") as out:
        for i in range(count):
            msg = " ".join(rng.choice(words) for _ in range(9))
            if i % 33 == 0:
                msg += rng.choice([" for alice.%d@example.com" % i,
                                   " card 4111 1111 1111 1111",
                                   " key ghp_abcdefghijklmnopqrstuvwxyz01234567%02d" % (i % 100)])
            line = {
                "ts": (now + datetime.timedelta(microseconds=i)).isoformat(),
                "level": "error" if i % 50 == 0 else "info",
                "msg": msg,
                "req": "%016x" % rng.getrandbits(64),
                "ms": rng.randrange(1000),
                "path": "/api/v1/orders/%d/items" % rng.randrange(100000),
                "host": "web-%02d" % rng.randrange(20),
            }
            text = json.dumps(line, separators=(",", ":"))
            out.write(text + "\n")


def send(host, port, ca, token, path, clients, batch):
    with open(path, "rb") as f:
        lines = f.read().splitlines(keepends=True)
    bodies = [b"".join(lines[i:i + batch]) for i in range(0, len(lines), batch)]
    ctx = ssl.create_default_context(cafile=ca)
    ctx.check_hostname = True
    next_index = [0]
    lock = threading.Lock()
    errors = []

    def worker():
        conn = None
        while True:
            with lock:
                i = next_index[0]
                next_index[0] += 1
            if i >= len(bodies):
                break
            for attempt in range(5):
                try:
                    if conn is None:
                        conn = http.client.HTTPSConnection(host, port, context=ctx, timeout=60)
                    conn.request("POST", "/ingest/ndjson", body=bodies[i], headers={
                        "Authorization": "Bearer " + token,
                        "Content-Type": "application/x-ndjson",
                    })
                    r = conn.getresponse()
                    r.read()
                    if r.status == 200:
                        break
                    errors.append(r.status)
                    time.sleep(0.05 * (attempt + 1))
                except (OSError, http.client.HTTPException) as e:
                    errors.append(str(e))
                    conn = None
            else:
                raise SystemExit("a batch failed 5 times: %r" % errors[-5:])

    start = time.perf_counter()
    threads = [threading.Thread(target=worker) for _ in range(clients)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    secs = time.perf_counter() - start
    print("ingest: %d lines in %.2f s = %.0f lines/s (%d clients, %d-line batches, %d retries)"
          % (len(lines), secs, len(lines) / secs, clients, batch, len(errors)))


if __name__ == "__main__":
    if sys.argv[1] == "gen":
        gen(sys.argv[2], int(sys.argv[3]))
    else:
        host, port, ca, token, path, clients, batch = sys.argv[2:9]
        send(host, int(port), ca, token, path, int(clients), int(batch))
