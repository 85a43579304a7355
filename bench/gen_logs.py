#!/usr/bin/env python3
"""Writes a corpus of typical log lines for bench/scrub.sh.

Usage: gen_logs.py OUT_PATH SIZE_MB [PII_PERCENT]

Lines come from application frameworks (Spring, Django, Rails, Express), PostgreSQL and JSON
loggers, with the usual noise that must survive (timestamps, UUIDs, durations, byte counts,
hex ids, versions). PII_PERCENT of the lines (default 3) also carry personal data or a
secret. Deterministic: the same arguments give the same file.
"""

import random
import sys

rng = random.Random(20261129)


def luhn_complete(prefix, length):
    digits = [int(c) for c in prefix]
    while len(digits) < length - 1:
        digits.append(rng.randrange(10))
    total = 0
    for i, d in enumerate(reversed(digits)):
        if i % 2 == 0:
            d *= 2
            if d > 9:
                d -= 9
        total += d
    digits.append((10 - total % 10) % 10)
    return "".join(map(str, digits))


def ts():
    return "2026-%02d-%02dT%02d:%02d:%02d.%03dZ" % (
        rng.randint(1, 12), rng.randint(1, 28), rng.randint(0, 23),
        rng.randint(0, 59), rng.randint(0, 59), rng.randint(0, 999))


def uuid():
    h = "%032x" % rng.getrandbits(128)
    return "%s-%s-%s-%s-%s" % (h[:8], h[8:12], h[12:16], h[16:20], h[20:])


def hexid(n):
    return "%0*x" % (n, rng.getrandbits(4 * n))


PATHS = ["/api/v1/orders", "/api/v1/products", "/api/v2/cart/items", "/health", "/metrics",
         "/api/v1/invoices", "/static/app.3f9a1c.js", "/api/v1/search"]


def clean_line():
    k = rng.randrange(7)
    if k == 0:
        return "%s INFO  [http-nio-8080-exec-%d] c.a.o.OrderService - order %d processed in %dms (items=%d, total=%d.%02d EUR)" % (
            ts(), rng.randint(1, 200), rng.randint(10000, 999999), rng.randint(1, 900),
            rng.randint(1, 9), rng.randint(1, 999), rng.randint(0, 99))
    if k == 1:
        return "%s DEBUG django.db.backends (0.%03d) SELECT \"shop_order\".\"id\", \"shop_order\".\"status\" FROM \"shop_order\" WHERE \"shop_order\".\"id\" = %d; args=(%d,)" % (
            ts(), rng.randint(0, 999), rng.randint(1, 99999), rng.randint(1, 99999))
    if k == 2:
        return "I, [%s #%d]  INFO -- : [%s] Completed 200 OK in %dms (Views: %d.%dms | ActiveRecord: %d.%dms | Allocations: %d)" % (
            ts(), rng.randint(1000, 99999), uuid(), rng.randint(1, 500), rng.randint(0, 99),
            rng.randint(0, 9), rng.randint(0, 99), rng.randint(0, 9), rng.randint(100, 90000))
    if k == 3:
        return "%s GET %s/%d?page=%d&limit=50 200 %d.%03d ms - %d" % (
            ts(), rng.choice(PATHS), rng.randint(1, 99999), rng.randint(1, 40),
            rng.randint(0, 300), rng.randint(0, 999), rng.randint(100, 2000000))
    if k == 4:
        return "%s UTC [%d] LOG:  duration: %d.%03d ms  statement: SELECT id, status, total FROM orders WHERE id = %d AND updated_at > now() - interval '1 day'" % (
            ts().replace("T", " ").rstrip("Z"), rng.randint(100, 65000), rng.randint(0, 99),
            rng.randint(0, 999), rng.randint(1, 999999))
    if k == 5:
        return '{"ts":"%s","level":"info","msg":"cache hit","key":"product:%d","trace_id":"%s","span_id":"%s","duration_ms":%d,"version":"2.%d.%d"}' % (
            ts(), rng.randint(1, 99999), hexid(32), hexid(16), rng.randint(0, 99),
            rng.randint(0, 20), rng.randint(0, 20))
    return "%s WARN  worker-%d job=%s attempt=%d/5 commit=%s retry in %ds, queue depth %d" % (
        ts(), rng.randint(1, 16), uuid(), rng.randint(1, 5), hexid(40), rng.randint(1, 60),
        rng.randint(0, 5000))


FIRST = ["alice", "bob", "chloe", "david", "emma", "farid", "giulia", "hugo", "ines", "jan"]
LAST = ["martin", "smith", "dupont", "rossi", "garcia", "janssens", "muller", "devries"]
DOMAINS = ["example.com", "mail.example.org", "example.fr", "example.co.uk"]


def pii_line():
    name = "%s.%s" % (rng.choice(FIRST), rng.choice(LAST))
    k = rng.randrange(6)
    if k == 0:
        return "%s INFO  [http-nio-8080-exec-%d] c.a.u.UserService - password reset sent to %s@%s" % (
            ts(), rng.randint(1, 200), name, rng.choice(DOMAINS))
    if k == 1:
        return "%s GET /api/v1/orders/%d 200 from %d.%d.%d.%d in %dms" % (
            ts(), rng.randint(1, 99999), rng.randint(11, 223), rng.randint(0, 255),
            rng.randint(0, 255), rng.randint(1, 254), rng.randint(1, 300))
    if k == 2:
        return "%s ERROR payment declined card=%s amount=%d.%02d" % (
            ts(), luhn_complete("4", 16), rng.randint(1, 999), rng.randint(0, 99))
    if k == 3:
        return "%s INFO sms sent to +33 6 %02d %02d %02d %02d for order %d" % (
            ts(), rng.randint(0, 99), rng.randint(0, 99), rng.randint(0, 99),
            rng.randint(0, 99), rng.randint(10000, 99999))
    if k == 4:
        return '{"ts":"%s","level":"info","msg":"signup","email":"%s@%s","plan":"pro"}' % (
            ts(), name, rng.choice(DOMAINS))
    return "%s DEBUG outgoing request Authorization: Bearer %s" % (ts(), hexid(40))


def main():
    out_path = sys.argv[1]
    size = int(sys.argv[2]) * 1_000_000
    pii_share = float(sys.argv[3]) / 100 if len(sys.argv) > 3 else 0.03
    written = 0
    with open(out_path, "w") as out:
        batch = []
        while written < size:
            line = pii_line() if rng.random() < pii_share else clean_line()
            batch.append(line)
            written += len(line) + 1
            if len(batch) == 10000:
                out.write("\n".join(batch) + "\n")
                batch = []
        if batch:
            out.write("\n".join(batch) + "\n")


if __name__ == "__main__":
    main()
