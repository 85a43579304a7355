#!/usr/bin/env python3
"""Generates generated.txt, the labelled corpus the scrubber is measured against.

Each line is a realistic log line; every piece of personal data in it is written
⟦type|value⟧, where type is one of: email card iban phone ip ssn nino nir jwt api_key secret.
Lines without markers are hard negatives that must survive untouched.

Check digits (Luhn, IBAN mod-97, NIR key) are computed here, independently of the Rust
validators, so the test is a cross-check rather than a copy. Deterministic (fixed seed).
Run: python3 gen_corpus.py > generated.txt
"""

import base64
import json
import random
import string

rng = random.Random(3)


def L(kind, value):
    return "\u27e6%s|%s\u27e7" % (kind, value)


# ---------------------------------------------------------------- check digits

def luhn_digit(body):
    total = 0
    for i, ch in enumerate(reversed(body)):
        d = int(ch)
        if i % 2 == 0:
            d *= 2
            if d > 9:
                d -= 9
        total += d
    return str((10 - total % 10) % 10)


def luhn_ok(number):
    return luhn_digit(number[:-1]) == number[-1]


def card(prefix, length):
    body = prefix + "".join(rng.choice(string.digits) for _ in range(length - len(prefix) - 1))
    return body + luhn_digit(body)


def iban(country, bban):
    rearranged = bban + country + "00"
    numeric = "".join(str(int(c, 36)) for c in rearranged)
    check = 98 - int(numeric) % 97
    return "%s%02d%s" % (country, check, bban)


def nir(sex, yy, mm, dept, commune, order):
    number = "%d%02d%02d%s%03d%03d" % (sex, yy, mm, dept, commune, order)
    numeric = number.replace("2A", "19").replace("2B", "18")
    key = 97 - int(numeric) % 97
    return number, "%02d" % key


def digits(n):
    return "".join(rng.choice(string.digits) for _ in range(n))


def alnum_upper(n):
    return "".join(rng.choice(string.ascii_uppercase + string.digits) for _ in range(n))


def b64url(data):
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


# ---------------------------------------------------------------- values

FIRST = ["alice", "bob", "chloe", "david", "emma", "farid", "giulia", "hugo", "ines", "jan",
         "karim", "lea", "mateo", "nora", "oscar", "paula", "quentin", "rosa", "sven", "tomas"]
LAST = ["martin", "smith", "dupont", "rossi", "garcia", "janssens", "muller", "devries",
        "oconnor", "lefebvre", "bianchi", "schmidt", "peeters", "jones", "moreau"]
DOMAINS = ["example.com", "mail.example.org", "example.fr", "example.co.uk", "corp.example.de",
           "example.io", "students.example.edu", "example.nl", "example.be", "example.es"]
IDN = ["café.fr", "müller.de", "пример.рф", "例え.jp", "xn--caf-dma.fr", "bücher.example"]


def email():
    first, last = rng.choice(FIRST), rng.choice(LAST)
    k = rng.randrange(8)
    if k == 0:
        return "%s.%s+%s@%s" % (first, last, rng.choice(["billing", "news", "test", "2026"]),
                                rng.choice(DOMAINS))
    if k == 1:
        return "%s@%s" % (first, rng.choice(IDN))
    if k == 2:
        return "%s.%s@%s" % (first.capitalize(), last.upper(), rng.choice(DOMAINS))
    if k == 3:
        return "%s_%s%d@%s" % (first, last, rng.randint(1, 99), rng.choice(DOMAINS))
    if k == 4:
        return "%s%s@%s" % (first[0], last, rng.choice(DOMAINS))
    return "%s.%s@%s" % (first, last, rng.choice(DOMAINS))


CARD_SHAPES = [("4", 16), ("4", 13), ("4", 19), ("51", 16), ("55", 16), ("2221", 16),
               ("2720", 16), ("2300", 16), ("34", 15), ("37", 15), ("6011", 16), ("65", 16),
               ("6759", 16), ("5018", 12), ("6304", 19), ("3530", 16), ("36", 14), ("62", 16)]


def group(number, sizes, sep):
    parts, at = [], 0
    for size in sizes:
        parts.append(number[at:at + size])
        at += size
    if at < len(number):
        parts.append(number[at:])
    return sep.join(p for p in parts if p)


def card_text():
    prefix, length = rng.choice(CARD_SHAPES)
    number = card(prefix, length)
    style = rng.randrange(3)
    if style == 0:
        return number
    sep = " " if style == 1 else "-"
    sizes = {15: [4, 6, 5], 14: [4, 6, 4], 13: [4, 4, 5], 12: [4, 4, 4]}.get(length, [4, 4, 4, 4])
    return group(number, sizes, sep)


IBAN_SHAPES = {
    "FR": lambda: digits(10) + alnum_upper(11) + digits(2),
    "DE": lambda: digits(18),
    "GB": lambda: "".join(rng.choice(string.ascii_uppercase) for _ in range(4)) + digits(14),
    "ES": lambda: digits(20),
    "IT": lambda: rng.choice(string.ascii_uppercase) + digits(10) + alnum_upper(12),
    "NL": lambda: "".join(rng.choice(string.ascii_uppercase) for _ in range(4)) + digits(10),
    "BE": lambda: digits(12),
    "CH": lambda: digits(5) + alnum_upper(12),
    "PT": lambda: digits(21),
    "LU": lambda: digits(3) + alnum_upper(13),
}


def iban_text():
    country = rng.choice(sorted(IBAN_SHAPES))
    value = iban(country, IBAN_SHAPES[country]())
    if rng.random() < 0.5:
        return " ".join(value[i:i + 4] for i in range(0, len(value), 4))
    return value


def d2():
    return "%02d" % rng.randint(0, 99)


PHONES = [
    lambda: "(%d) %d-%s" % (rng.randint(201, 989), rng.randint(200, 999), digits(4)),
    lambda: "%d-%d-%s" % (rng.randint(201, 989), rng.randint(200, 999), digits(4)),
    lambda: "%d.%d.%s" % (rng.randint(201, 989), rng.randint(200, 999), digits(4)),
    lambda: "+1 %d %d %s" % (rng.randint(201, 989), rng.randint(200, 999), digits(4)),
    lambda: "+1%d%d%s" % (rng.randint(201, 989), rng.randint(200, 999), digits(4)),
    lambda: "1-800-%d-%s" % (rng.randint(200, 999), digits(4)),
    lambda: "+44 20 %s %s" % (digits(4), digits(4)),
    lambda: "020 %s %s" % (digits(4), digits(4)),
    lambda: "07%s %s" % (digits(3), digits(6)),
    lambda: "+44 7%s %s" % (digits(3), digits(6)),
    lambda: "0161 %s %s" % (digits(3), digits(4)),
    lambda: "0%d %s %s %s %s" % (rng.randint(1, 7), d2(), d2(), d2(), d2()),
    lambda: "0%d.%s.%s.%s.%s" % (rng.randint(6, 7), d2(), d2(), d2(), d2()),
    lambda: "0%d%s" % (rng.randint(6, 7), digits(8)),
    lambda: "+33 %d %s %s %s %s" % (rng.randint(1, 7), d2(), d2(), d2(), d2()),
    lambda: "+33%d%s" % (rng.randint(6, 7), digits(8)),
    lambda: "+49 30 %s" % digits(8),
    lambda: "030 %s" % digits(8),
    lambda: "0171 %s" % digits(7),
    lambda: "089/%s" % digits(7),
    lambda: "+49 171 %s" % digits(7),
    lambda: "+34 %d%s %s %s" % (rng.randint(6, 7), d2(), digits(3), digits(3)),
    lambda: "6%s %s %s" % (d2(), digits(3), digits(3)),
    lambda: "91 %s %s %s" % (digits(3), d2(), d2()),
    lambda: "+39 3%s %s %s" % (d2(), digits(3), digits(4)),
    lambda: "3%s %s" % (d2(), digits(7)),
    lambda: "06 %s %s" % (digits(4), digits(4)),
    lambda: "+31 6 %s" % digits(8),
    lambda: "06-%s" % digits(8),
    lambda: "020-%s" % digits(7),
    lambda: "+32 4%s %s %s %s" % (rng.randint(70, 99), d2(), d2(), d2()),
    lambda: "04%d %s %s %s" % (rng.randint(70, 99), d2(), d2(), d2()),
    lambda: "02 %s %s %s" % (digits(3), d2(), d2()),
    lambda: "04%d/%s.%s.%s" % (rng.randint(70, 99), d2(), d2(), d2()),
]


def ipv4():
    first = rng.choice([10, 172, 192, 81, 90, 151, 185, 203, 45, 62, 88, 109])
    return "%d.%d.%d.%d" % (first, rng.randint(0, 255), rng.randint(0, 255), rng.randint(1, 254))


def h4():
    return "%x" % rng.randint(1, 0xFFFF)


def ipv6():
    k = rng.randrange(5)
    if k == 0:
        return ":".join("%04x" % rng.randint(0, 0xFFFF) for _ in range(8))
    if k == 1:
        return "2001:db8::%s:%s" % (h4(), h4())
    if k == 2:
        return "fe80::%s:%s:%s:%s" % (h4(), h4(), h4(), h4())
    if k == 3:
        return "::ffff:%s" % ipv4()
    return "2a01:%s:%s::%s" % (h4(), h4(), h4())


def ip():
    return ipv4() if rng.random() < 0.6 else ipv6()


def ssn():
    area = rng.choice([n for n in range(1, 900) if n != 666])
    return "%03d-%02d-%04d" % (area, rng.randint(1, 99), rng.randint(1, 9999))


NINO_FIRST = "ABCEGHJKLMNOPRSTWXYZ"
NINO_SECOND = "ABCEGHJKLMNPRSTWXYZ"


def nino():
    while True:
        prefix = rng.choice(NINO_FIRST) + rng.choice(NINO_SECOND)
        if prefix not in {"BG", "GB", "KN", "NK", "NT", "TN", "ZZ"}:
            break
    body = digits(6)
    suffix = rng.choice("ABCD")
    if rng.random() < 0.5:
        return "%s %s %s %s %s" % (prefix, body[:2], body[2:4], body[4:], suffix)
    return prefix + body + suffix


def nir_text():
    dept = rng.choice(["75", "69", "13", "2A", "2B", "33", "59", "92", "01"])
    number, key = nir(rng.randint(1, 2), rng.randint(0, 99), rng.randint(1, 12), dept,
                      rng.randint(1, 999), rng.randint(1, 999))
    full = number + key
    if rng.random() < 0.5:
        return "%s %s %s %s %s %s %s" % (full[0], full[1:3], full[3:5], full[5:7], full[7:10],
                                         full[10:13], full[13:])
    return full


def jwt():
    header = b64url(json.dumps({"alg": rng.choice(["HS256", "RS256"]), "typ": "JWT"}).encode())
    payload = b64url(json.dumps({"sub": digits(6), "iat": 1760000000 + rng.randint(0, 9999999),
                                 "role": "user"}).encode())
    signature = b64url(bytes(rng.randrange(256) for _ in range(32)))
    return "%s.%s.%s" % (header, payload, signature)


def token(n, alphabet=string.ascii_letters + string.digits):
    return "".join(rng.choice(alphabet) for _ in range(n))


def api_key():
    k = rng.randrange(7)
    if k == 0:
        return "AKIA" + "".join(rng.choice(string.ascii_uppercase + "234567") for _ in range(16))
    if k == 1:
        return "ghp_" + token(36)
    if k == 2:
        return "github_pat_" + token(22) + "_" + token(59)
    if k == 3:
        return "sk_live_" + token(24)
    if k == 4:
        return "xoxb-%s-%s-%s" % (digits(12), digits(13), token(24))
    if k == 5:
        return "AIza" + token(35, string.ascii_letters + string.digits + "-_")
    return "rk_test_" + token(24)


def password():
    return token(rng.randint(8, 16), string.ascii_letters + string.digits + "!#%^*")


# ---------------------------------------------------------------- noise

def ts_iso():
    return "2026-%02d-%02dT%02d:%02d:%02d.%03dZ" % (
        rng.randint(1, 12), rng.randint(1, 28), rng.randint(0, 23), rng.randint(0, 59),
        rng.randint(0, 59), rng.randint(0, 999))


def ts_nginx():
    return "%02d/%s/2026:%02d:%02d:%02d +0000" % (
        rng.randint(1, 28), rng.choice(["Jan", "Feb", "Mar", "Apr", "May", "Jun"]),
        rng.randint(0, 23), rng.randint(0, 59), rng.randint(0, 59))


def ts_pg():
    return "2026-%02d-%02d %02d:%02d:%02d.%03d UTC" % (
        rng.randint(1, 12), rng.randint(1, 28), rng.randint(0, 23), rng.randint(0, 59),
        rng.randint(0, 59), rng.randint(0, 999))


def uuid():
    h = "%032x" % rng.getrandbits(128)
    return "%s-%s-%s-%s-%s" % (h[:8], h[8:12], h[12:16], h[16:20], h[20:])


def hexs(n):
    return "%0*x" % (n, rng.getrandbits(4 * n))


def luhn_failing_id(length):
    while True:
        value = rng.choice("456") + digits(length - 1)
        if not luhn_ok(value):
            return value


UA = "Mozilla/5.0 (Macintosh; Intel Mac OS X 10_15_7) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/120.0.6099.109 Safari/537.36"
PATHS = ["/api/v1/orders", "/api/v1/products", "/api/v2/cart", "/health", "/checkout",
         "/api/v1/invoices", "/login", "/account/settings"]


def nginx(client):
    return '%s - - [%s] "GET %s/%d HTTP/1.1" 200 %d "-" "%s"' % (
        client, ts_nginx(), rng.choice(PATHS), rng.randint(1, 99999), rng.randint(100, 90000), UA)


def templates():
    """Lines carrying PII, one callable per source."""
    return [
        lambda: nginx(L("ip", ip())),
        lambda: '%s - %s [%s] "POST /login HTTP/1.1" 302 0 "https://shop.example.com/" "%s"' % (
            L("ip", ipv4()), L("email", email()), ts_nginx(), UA),
        lambda: '[%s] [php:error] [pid %d] [client %s:%d] PHP Notice: undefined index user' % (
            ts_nginx(), rng.randint(100, 99999), L("ip", ipv4()), rng.randint(1024, 65535)),
        lambda: 'Started POST "/users/password" for %s at 2026-03-05 14:22:31 +0000' % L("ip", ip()),
        lambda: 'Processing by UsersController#update as JSON\n  Parameters: {"user"=>{"email"=>"%s", "phone"=>"%s"}}'.replace("\n", " ") % (
            L("email", email()), L("phone", rng.choice(PHONES)())),
        lambda: "%s INFO  [http-nio-8080-exec-%d] c.a.u.UserService - password reset sent to %s (request %s)" % (
            ts_iso(), rng.randint(1, 200), L("email", email()), uuid()),
        lambda: "%s ERROR [http-nio-8080-exec-%d] c.a.p.PaymentService - charge failed for card %s, amount %d.%02d EUR, order ORD-2026-%06d" % (
            ts_iso(), rng.randint(1, 200), L("card", card_text()), rng.randint(1, 999), rng.randint(0, 99), rng.randint(1, 999999)),
        lambda: "%s WARN  [scheduler-%d] c.a.b.PayoutJob - payout to IBAN %s of %d.%02d EUR pending since %dms" % (
            ts_iso(), rng.randint(1, 8), L("iban", iban_text()), rng.randint(10, 9999), rng.randint(0, 99), rng.randint(10, 9000)),
        lambda: "[%s] INFO django.request: POST /api/profile user=%d phone=%s status=200 duration=%dms" % (
            ts_iso(), rng.randint(1, 99999), L("phone", rng.choice(PHONES)()), rng.randint(1, 900)),
        lambda: "[%s] WARNING django.security: invalid login for %s from %s" % (
            ts_iso(), L("email", email()), L("ip", ip())),
        lambda: "%s - %s %s \"GET /api/me HTTP/1.1\" 200 %d - %d.%03d ms" % (
            ts_iso(), L("ip", ipv4()), rng.choice(["GET", "POST"]), rng.randint(100, 9000), rng.randint(0, 99), rng.randint(0, 999)),
        lambda: "express:router dispatching POST /api/sms to=%s body_len=%d" % (
            L("phone", rng.choice(PHONES)()), rng.randint(10, 900)),
        lambda: "%s [%d] LOG:  statement: UPDATE customers SET email = '%s', phone = '%s' WHERE id = %d" % (
            ts_pg(), rng.randint(100, 65000), L("email", email()), L("phone", rng.choice(PHONES)()), rng.randint(1, 999999)),
        lambda: "%s [%d] LOG:  duration: %d.%03d ms  execute <unnamed>: INSERT INTO payouts (iban, amount) VALUES ('%s', %d)" % (
            ts_pg(), rng.randint(100, 65000), rng.randint(0, 99), rng.randint(0, 999), L("iban", iban_text()), rng.randint(1, 99999)),
        lambda: "%s [%d] ERROR:  duplicate key value violates unique constraint \"users_email_key\" DETAIL:  Key (email)=(%s) already exists." % (
            ts_pg(), rng.randint(100, 65000), L("email", email())),
        lambda: "%s [%d] LOG:  connection received: host=%s port=%d" % (
            ts_pg(), rng.randint(100, 65000), L("ip", ip()), rng.randint(1024, 65535)),
        lambda: "%s INFO kyc check ssn=%s result=pass ref=%s" % (ts_iso(), L("ssn", ssn()), uuid()),
        lambda: "%s INFO payroll employee %d national insurance %s tax code 1257L" % (
            ts_iso(), rng.randint(1000, 99999), L("nino", nino())),
        lambda: "%s INFO mutuelle adhesion numero securite sociale %s dossier %d" % (
            ts_iso(), L("nir", nir_text()), rng.randint(10000, 99999)),
        lambda: "%s DEBUG auth token=%s exp=%d" % (ts_iso(), L("secret", jwt()), 1760000000 + rng.randint(0, 9999999)),
        lambda: "%s DEBUG session cookie id_token %s issued" % (ts_iso(), L("jwt", jwt())),
        lambda: "%s DEBUG outgoing GET https://api.example.com/v1/me headers={'Authorization': 'Bearer %s'}" % (
            ts_iso(), L("secret", token(40))),
        lambda: "%s DEBUG upstream request Authorization: Basic %s" % (
            ts_iso(), L("secret", base64.b64encode(("%s:%s" % (rng.choice(FIRST), password())).encode()).decode())),
        lambda: "%s ERROR login failed password=%s for user %d" % (ts_iso(), L("secret", password()), rng.randint(1, 99999)),
        lambda: '{"ts":"%s","level":"debug","msg":"config","db_password":"%s","pool":%d}' % (
            ts_iso(), L("secret", password()), rng.randint(1, 64)),
        lambda: "%s INFO deploy using aws key %s in region eu-west-3" % (ts_iso(), L("api_key", api_key())),
        lambda: "%s WARN leaked credential in repo config: %s" % (ts_iso(), L("api_key", api_key())),
        lambda: '{"ts":"%s","level":"info","event":"checkout","card":"%s","ip":"%s","trace_id":"%s"}' % (
            ts_iso(), L("card", card_text()), L("ip", ip()), hexs(32)),
        lambda: '{"ts":"%s","level":"info","msg":"notify %s by sms %s"}' % (
            ts_iso(), L("email", email()), L("phone", rng.choice(PHONES)())),
        lambda: "stripe webhook charge.failed card_last4=%s customer_email=%s amount=%d" % (
            digits(4), L("email", email()), rng.randint(100, 99999)),
        lambda: "%s INFO payment_intent pi_%s confirmed with card %s (3DS frictionless) for %s" % (
            ts_iso(), token(24), L("card", card_text()), L("email", email())),
        lambda: "%s INFO refund to %s issued, customer phone %s" % (
            ts_iso(), L("iban", iban_text()), L("phone", rng.choice(PHONES)())),
    ]


def url_credentials_line():
    user, pw = rng.choice(["app", "admin", "svc_backup", "deploy"]), password()
    scheme = rng.choice(["postgres", "mysql", "redis", "amqp", "https"])
    return "%s INFO connecting to %s://%s@db-%d.internal:5432/shop" % (
        ts_iso(), scheme, L("secret", "%s:%s" % (user, pw)), rng.randint(1, 9))


def negatives():
    """Lines that carry no PII and must come out unchanged."""
    return [
        lambda: "%s INFO  [http-nio-8080-exec-%d] c.a.o.OrderService - order %d processed in %dms (items=%d)" % (
            ts_iso(), rng.randint(1, 200), rng.randint(10000, 999999), rng.randint(1, 900), rng.randint(1, 9)),
        lambda: "%s INFO request_id=%s trace=%s span=%s status=200" % (ts_iso(), uuid(), hexs(32), hexs(16)),
        lambda: "%s INFO deployed commit %s (short %s) version v%d.%d.%d" % (
            ts_iso(), hexs(40), hexs(7), rng.randint(0, 9), rng.randint(0, 40), rng.randint(0, 99)),
        lambda: "%s INFO image sha256:%s pulled, %d bytes in %d.%03ds" % (
            ts_iso(), hexs(64), rng.randint(1000, 999999999), rng.randint(0, 99), rng.randint(0, 999)),
        lambda: "%s INFO invoice INV-2026-%05d for order ORD-%d-%06d total %d.%02d" % (
            ts_iso(), rng.randint(1, 99999), rng.randint(2020, 2026), rng.randint(1, 999999), rng.randint(1, 9999), rng.randint(0, 99)),
        lambda: "%s INFO listening on port %d (pid %d), workers=%d" % (
            ts_iso(), rng.choice([80, 443, 8080, 8443, 5432, 6379, 9090]), rng.randint(100, 99999), rng.randint(1, 64)),
        lambda: "%s WARN slow query took %d.%03d ms, %d rows, %d kB" % (
            ts_pg(), rng.randint(100, 9999), rng.randint(0, 999), rng.randint(0, 99999), rng.randint(1, 99999)),
        lambda: "%s INFO import batch %s: ids %s, %s, %s skipped (not found)" % (
            ts_iso(), uuid(), luhn_failing_id(rng.randint(12, 19)), luhn_failing_id(16), luhn_failing_id(rng.randint(12, 19))),
        lambda: "%s DEBUG snowflake id %d assigned to event %s" % (
            ts_iso(), rng.randint(10**18, 2 * 10**18), uuid()),
        lambda: "%s INFO epoch=%d epoch_ms=%d tz=+0100" % (ts_iso(), rng.randint(1.6e9, 1.8e9), rng.randint(1.6e12, 1.8e12)),
        lambda: "%s INFO User-Agent %s accepted" % (ts_iso(), UA),
        lambda: "%s INFO arn:aws:iam::%s:role/deploy assumed, session %s" % (ts_iso(), digits(12), hexs(16)),
        lambda: "Tue, %02d Mar 2026 %02d:%02d:%02d +0000 cron[%d]: job backup finished rc=0 after %dm%02ds" % (
            rng.randint(1, 28), rng.randint(0, 23), rng.randint(0, 59), rng.randint(0, 59), rng.randint(100, 9999), rng.randint(0, 59), rng.randint(0, 59)),
        lambda: "Mar %2d %02d:%02d:%02d web-%d kernel: eth0 link up, mac 00:1a:%02x:%02x:%02x:%02x" % (
            rng.randint(1, 28), rng.randint(0, 23), rng.randint(0, 59), rng.randint(0, 59), rng.randint(1, 9), rng.randint(0, 255), rng.randint(0, 255), rng.randint(0, 255), rng.randint(0, 255)),
        lambda: "%s INFO pod web-%s-%s ready, restarts=%d, cpu=%dm mem=%dMi" % (
            ts_iso(), hexs(9), token(5, string.ascii_lowercase + string.digits), rng.randint(0, 9), rng.randint(1, 4000), rng.randint(16, 8192)),
        lambda: "%s INFO price %d.%02d EUR, tax %d.%02d, qty %d, sku SKU-%s" % (
            ts_iso(), rng.randint(1, 9999), rng.randint(0, 99), rng.randint(0, 999), rng.randint(0, 99), rng.randint(1, 99), alnum_upper(8)),
        lambda: "%s INFO dependency versions: rails %d.%d.%d, pg %d.%d, node %d.%d.%d, build 10.0.%d.%d" % (
            ts_iso(), rng.randint(5, 8), rng.randint(0, 2), rng.randint(0, 9), rng.randint(12, 17), rng.randint(0, 9), rng.randint(16, 22), rng.randint(0, 20), rng.randint(0, 20), rng.randint(19000, 22999), rng.randint(256, 4000)),
        lambda: "%s INFO exported report_%s.csv (%d.%d MB) in %d.%ds" % (
            ts_iso(), "2026%02d%02d" % (rng.randint(1, 12), rng.randint(1, 28)), rng.randint(0, 999), rng.randint(0, 9), rng.randint(0, 99), rng.randint(0, 9)),
        lambda: "%s INFO geo lookup lat=%d.%06d lon=%d.%06d radius=%dkm" % (
            ts_iso(), rng.randint(-89, 89), rng.randint(0, 999999), rng.randint(-179, 179), rng.randint(0, 999999), rng.randint(1, 50)),
        lambda: "%s DEBUG ActiveRecord::Base connection pool size=%d, Rack::Attack throttled=%d" % (
            ts_iso(), rng.randint(1, 64), rng.randint(0, 9)),
        lambda: "%s INFO token_count=%d tokens_per_second=%d.%d model=gpt-%d" % (
            ts_iso(), rng.randint(1, 9999), rng.randint(1, 999), rng.randint(0, 9), rng.randint(3, 5)),
        lambda: "%s INFO bound 0.0.0.0:%d and [::]:%d, health check 127.0.0.1:%d ok" % (
            ts_iso(), rng.randint(1024, 65535), rng.randint(1024, 65535), rng.randint(1024, 65535)),
        lambda: "%s INFO asset logo@2x.png served, etag \"%s\", cache max-age=%d" % (ts_iso(), hexs(16), rng.randint(60, 31536000)),
        lambda: "%s INFO git remote fetch %s..%s, %d objects, %d deltas" % (
            ts_iso(), hexs(7), hexs(7), rng.randint(1, 99999), rng.randint(0, 9999)),
        lambda: "%s INFO shipment tracking 1Z%s status in_transit weight %d.%dkg" % (
            ts_iso(), alnum_upper(16), rng.randint(0, 99), rng.randint(0, 9)),
        lambda: "%s INFO dates: %02d/%02d/2026, 2026-%02d-%02d, %02d.%02d.2026 %02d:%02d" % (
            ts_iso(), rng.randint(1, 28), rng.randint(1, 12), rng.randint(1, 12), rng.randint(1, 28), rng.randint(1, 28), rng.randint(1, 12), rng.randint(0, 23), rng.randint(0, 59)),
        lambda: "%s INFO password reset requested, token expired, password: required" % ts_iso(),
        lambda: "%s INFO color #%s, ratio %d:%d, progress %d/%d (%d%%)" % (
            ts_iso(), hexs(6), rng.randint(1, 21), rng.randint(1, 9), rng.randint(0, 999), rng.randint(1000, 9999), rng.randint(0, 100)),
    ]


def main():
    lines = []
    pii = templates()
    for _ in range(10):
        for make in pii:
            lines.append(make())
        lines.append(url_credentials_line())
    # Each family once more on its own, so every kind has well over 40 labels.
    for _ in range(45):
        lines.append("%s INFO contact %s" % (ts_iso(), L("email", email())))
        lines.append("%s INFO card on file %s" % (ts_iso(), L("card", card_text())))
        lines.append("%s INFO mandate iban=%s" % (ts_iso(), L("iban", iban_text())))
        lines.append("%s INFO callback number %s" % (ts_iso(), L("phone", rng.choice(PHONES)())))
        lines.append("%s INFO client %s" % (ts_iso(), L("ip", ip())))
        lines.append("%s INFO ssn %s nino %s nir %s" % (ts_iso(), L("ssn", ssn()), L("nino", nino()), L("nir", nir_text())))
        lines.append("%s INFO jwt %s" % (ts_iso(), L("jwt", jwt())))
        lines.append("%s INFO key %s" % (ts_iso(), L("api_key", api_key())))
    for make in PHONES:
        lines.append("%s INFO phone on file: %s." % (ts_iso(), L("phone", make())))
    negs = negatives()
    for _ in range(12):
        for make in negs:
            lines.append(make())
    rng.shuffle(lines)
    print("# generated by gen_corpus.py; do not edit by hand")
    for line in lines:
        print(line)


if __name__ == "__main__":
    main()
