//! Apps behind the front door (issue #10), end to end against the built binary: a real
//! HTTP upstream started here (axum on hyper, echoing what it received and recording every
//! request), a WebSocket echo server written here on plain TCP (RFC 6455 handshake and
//! frames; nginx from Debian has no WebSocket echo without extra modules), curl and python3
//! (raw TLS, WebSocket client) as clients.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing
)]

mod support;

use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpListener;
use std::process::{Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use base64::Engine;
use base64::engine::general_purpose::{STANDARD, URL_SAFE_NO_PAD};
use support::*;

/// One request as the upstream saw it.
#[derive(Debug, Clone)]
struct Seen {
    path: String,
    headers: Vec<(String, String)>,
}

impl Seen {
    fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.as_str())
    }
}

type Log = Arc<Mutex<Vec<Seen>>>;

const MIB: u64 = 1024 * 1024;
const BIG: u64 = 200 * MIB;

/// The HTTP upstream: `…/download` streams 200 MiB, `…/upload` counts the body, `…/sleep`
/// answers after 3 s, anything else echoes method, path and headers as JSON.
fn upstream() -> (u16, Log) {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    listener.set_nonblocking(true).unwrap();
    let port = listener.local_addr().unwrap().port();
    let log: Log = Arc::default();
    let seen = log.clone();
    std::thread::spawn(move || {
        let rt = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .enable_all()
            .build()
            .unwrap();
        rt.block_on(async move {
            let app = axum::Router::new().fallback(move |req: axum::extract::Request| {
                let seen = seen.clone();
                async move { answer(seen, req).await }
            });
            let listener = tokio::net::TcpListener::from_std(listener).unwrap();
            axum::serve(listener, app).await.unwrap();
        });
    });
    (port, log)
}

async fn answer(seen: Log, req: axum::extract::Request) -> axum::response::Response {
    use axum::response::IntoResponse;
    use futures_util::StreamExt;
    let path = req
        .uri()
        .path_and_query()
        .map(|p| p.as_str().to_owned())
        .unwrap_or_default();
    let headers: Vec<(String, String)> = req
        .headers()
        .iter()
        .map(|(k, v)| {
            (
                k.to_string(),
                String::from_utf8_lossy(v.as_bytes()).into_owned(),
            )
        })
        .collect();
    seen.lock().unwrap().push(Seen {
        path: path.clone(),
        headers: headers.clone(),
    });
    let p = req.uri().path().to_owned();
    if p.ends_with("/download") {
        let chunk = bytes::Bytes::from(vec![b'x'; 64 * 1024]);
        let n = BIG / (64 * 1024);
        let stream = futures_util::stream::iter(0..n)
            .map(move |_| Ok::<_, std::convert::Infallible>(chunk.clone()));
        return (
            [(axum::http::header::CONTENT_LENGTH, BIG.to_string())],
            axum::body::Body::from_stream(stream),
        )
            .into_response();
    }
    if p.ends_with("/upload") {
        let mut body = req.into_body().into_data_stream();
        let mut total = 0u64;
        while let Some(chunk) = body.next().await {
            match chunk {
                Ok(c) => total += c.len() as u64,
                Err(_) => return (axum::http::StatusCode::BAD_REQUEST, "broken").into_response(),
            }
        }
        return format!("received {total}").into_response();
    }
    if p.ends_with("/sleep") {
        tokio::time::sleep(Duration::from_secs(3)).await;
        return "late".into_response();
    }
    let json =
        serde_json::json!({ "method": req.method().as_str(), "path": path, "headers": headers });
    (
        [
            (axum::http::header::CONTENT_TYPE, "application/json"),
            (
                axum::http::header::SET_COOKIE,
                "__Host-rampart=from-the-app; Path=/",
            ),
        ],
        json.to_string(),
    )
        .into_response()
}

/// A WebSocket echo server: answers the handshake, then echoes each frame unmasked.
/// Records the handshake's headers.
fn ws_upstream() -> (u16, Log) {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    let log: Log = Arc::default();
    let seen = log.clone();
    std::thread::spawn(move || {
        for stream in listener.incoming() {
            let Ok(stream) = stream else { continue };
            let seen = seen.clone();
            std::thread::spawn(move || {
                let _ = ws_echo(stream, &seen);
            });
        }
    });
    (port, log)
}

fn ws_echo(mut stream: std::net::TcpStream, seen: &Log) -> std::io::Result<()> {
    use sha1::Digest;
    stream.set_read_timeout(Some(Duration::from_secs(30)))?;
    let mut reader = BufReader::new(stream.try_clone()?);
    let mut first = String::new();
    reader.read_line(&mut first)?;
    let mut headers = Vec::new();
    loop {
        let mut line = String::new();
        if reader.read_line(&mut line)? == 0 {
            return Ok(());
        }
        let line = line.trim_end();
        if line.is_empty() {
            break;
        }
        if let Some((k, v)) = line.split_once(':') {
            headers.push((k.trim().to_ascii_lowercase(), v.trim().to_owned()));
        }
    }
    let key = headers
        .iter()
        .find(|(k, _)| k == "sec-websocket-key")
        .map(|(_, v)| v.clone())
        .unwrap_or_default();
    seen.lock().unwrap().push(Seen {
        path: first.split_whitespace().nth(1).unwrap_or("").to_owned(),
        headers,
    });
    let accept = STANDARD.encode(sha1::Sha1::digest(
        format!("{key}258EAFA5-E914-47DA-95CA-C5AB0DC85B11").as_bytes(),
    ));
    stream.write_all(
        format!("HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Accept: {accept}\r\n\r\n").as_bytes(),
    )?;
    loop {
        let mut head = [0u8; 2];
        reader.read_exact(&mut head)?;
        let opcode = head[0] & 0x0f;
        let masked = head[1] & 0x80 != 0;
        let mut len = u64::from(head[1] & 0x7f);
        if len == 126 {
            let mut b = [0u8; 2];
            reader.read_exact(&mut b)?;
            len = u64::from(u16::from_be_bytes(b));
        } else if len == 127 {
            let mut b = [0u8; 8];
            reader.read_exact(&mut b)?;
            len = u64::from_be_bytes(b);
        }
        let mut mask = [0u8; 4];
        if masked {
            reader.read_exact(&mut mask)?;
        }
        let mut payload = vec![0u8; usize::try_from(len).unwrap()];
        reader.read_exact(&mut payload)?;
        if masked {
            for (i, b) in payload.iter_mut().enumerate() {
                *b ^= mask[i % 4];
            }
        }
        let mut frame = vec![0x80 | opcode];
        if payload.len() < 126 {
            frame.push(u8::try_from(payload.len()).unwrap());
        } else {
            frame.push(126);
            frame.extend_from_slice(&u16::try_from(payload.len()).unwrap().to_be_bytes());
        }
        frame.extend_from_slice(&payload);
        stream.write_all(&frame)?;
        if opcode == 8 {
            return Ok(());
        }
    }
}

/// Sends raw bytes over TLS (SNI `host`) and returns what comes back until the server
/// closes (every request here says `Connection: close`).
fn raw_tls(port: u16, host: &str, request: &[u8]) -> String {
    let script = r#"
import ssl, socket, sys
ctx = ssl.create_default_context(); ctx.check_hostname = False; ctx.verify_mode = ssl.CERT_NONE
s = ctx.wrap_socket(socket.create_connection(('127.0.0.1', int(sys.argv[1])), timeout=30), server_hostname=sys.argv[2])
s.sendall(sys.stdin.buffer.read())
out = b''
while True:
    try:
        d = s.recv(65536)
    except (ConnectionResetError, ssl.SSLError):
        break
    if not d:
        break
    out += d
sys.stdout.write(out.decode('latin-1'))
"#;
    let mut child = Command::new("python3")
        .args(["-c", script, &port.to_string(), host])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .expect("python3 runs (apt-get install -y python3)");
    child.stdin.take().unwrap().write_all(request).unwrap();
    let out = child.wait_with_output().unwrap();
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// A WebSocket round trip through rampart with python3 as the client; returns the status
/// line, whether Sec-WebSocket-Accept was right, and the echoed message.
fn ws_client(port: u16, host: &str, path: &str, token: &str) -> String {
    let script = r#"
import ssl, socket, sys, os, base64, hashlib
port, host, path, token = sys.argv[1:5]
ctx = ssl.create_default_context(); ctx.check_hostname = False; ctx.verify_mode = ssl.CERT_NONE
s = ctx.wrap_socket(socket.create_connection(('127.0.0.1', int(port)), timeout=30), server_hostname=host)
key = base64.b64encode(os.urandom(16)).decode()
s.sendall(("GET %s HTTP/1.1\r\nHost: %s:%s\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Key: %s\r\nSec-WebSocket-Version: 13\r\nAuthorization: Bearer %s\r\n\r\n" % (path, host, port, key, token)).encode())
buf = b''
while b'\r\n\r\n' not in buf:
    d = s.recv(4096)
    if not d:
        break
    buf += d
head, _, rest = buf.partition(b'\r\n\r\n')
lines = head.decode('latin-1').split('\r\n')
want = base64.b64encode(hashlib.sha1((key + '258EAFA5-E914-47DA-95CA-C5AB0DC85B11').encode()).digest()).decode()
ok = any(l.lower().startswith('sec-websocket-accept:') and l.split(':', 1)[1].strip() == want for l in lines)
print(lines[0])
print('accept-ok' if ok else 'accept-bad')
msg = b'hello through rampart'
mask = os.urandom(4)
s.sendall(bytes([0x81, 0x80 | len(msg)]) + mask + bytes(b ^ mask[i % 4] for i, b in enumerate(msg)))
while len(rest) < 2 + len(msg):
    d = s.recv(4096)
    if not d:
        break
    rest += d
print(rest[2:2 + len(msg)].decode())
"#;
    let out = Command::new("python3")
        .args(["-c", script, &port.to_string(), host, path, token])
        .output()
        .expect("python3 runs (apt-get install -y python3)");
    format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    )
}

fn hwm_kib(pid: u32) -> u64 {
    std::fs::read_to_string(format!("/proc/{pid}/status"))
        .unwrap()
        .lines()
        .find_map(|l| l.strip_prefix("VmHWM:"))
        .and_then(|v| v.split_whitespace().next().and_then(|n| n.parse().ok()))
        .unwrap()
}

/// Verifies a JWT against a JWK Set with ring (not the code that signed it).
fn verify_jwt(jwt: &str, jwks: &str) -> serde_json::Value {
    let jwks: serde_json::Value = serde_json::from_str(jwks).unwrap();
    let parts: Vec<&str> = jwt.split('.').collect();
    assert_eq!(parts.len(), 3, "{jwt}");
    let header: serde_json::Value =
        serde_json::from_slice(&URL_SAFE_NO_PAD.decode(parts[0]).unwrap()).unwrap();
    assert_eq!(header["alg"], "EdDSA");
    let key = jwks["keys"]
        .as_array()
        .unwrap()
        .iter()
        .find(|k| k["kid"] == header["kid"])
        .expect("the JWT's kid is published");
    assert_eq!(key["kty"], "OKP");
    assert_eq!(key["crv"], "Ed25519");
    let x = URL_SAFE_NO_PAD.decode(key["x"].as_str().unwrap()).unwrap();
    let signature = URL_SAFE_NO_PAD.decode(parts[2]).unwrap();
    ring::signature::UnparsedPublicKey::new(&ring::signature::ED25519, &x)
        .verify(format!("{}.{}", parts[0], parts[1]).as_bytes(), &signature)
        .expect("the assertion verifies against the published key");
    serde_json::from_slice(&URL_SAFE_NO_PAD.decode(parts[1]).unwrap()).unwrap()
}

/// curl for big transfers with a bearer token: returns "STATUS SIZE_DOWNLOADED" and the
/// body (for small answers).
fn curl_token(r: &Rampart, token: &str, path: &str, extra: &[&str], stdin: Option<u64>) -> String {
    let mut cmd = Command::new("curl");
    cmd.args(["-sS", "-k", "--max-time", "300"])
        .arg("--resolve")
        .arg(format!("{}:{}:127.0.0.1", r.public_host, r.https_port))
        .args(["-H", &format!("Authorization: Bearer {token}")])
        .args(extra)
        .arg(format!("{}{path}", r.origin()));
    if stdin.is_some() {
        cmd.stdin(Stdio::piped());
    }
    cmd.stdout(Stdio::piped()).stderr(Stdio::piped());
    let mut child = cmd.spawn().expect("curl runs (apt-get install -y curl)");
    if let Some(n) = stdin {
        let mut pipe = child.stdin.take().unwrap();
        let chunk = vec![b'u'; MIB as usize];
        for _ in 0..n / MIB {
            pipe.write_all(&chunk).unwrap();
        }
    }
    let out = child.wait_with_output().unwrap();
    assert!(
        out.status.success(),
        "curl failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// The audit record (JSON line) whose details mention `needle`, and its details.
fn audit_record(audit: &str, needle: &str) -> (serde_json::Value, serde_json::Value) {
    let line = audit.lines().find(|l| l.contains(needle)).unwrap();
    let record: serde_json::Value = serde_json::from_str(line).unwrap();
    let details = serde_json::from_str(record["details"].as_str().unwrap()).unwrap();
    (record, details)
}

fn wait_for_audit(r: &Rampart, needle: &str) -> String {
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let out = cli_ok(r, &["audit", "search", "--action", "app.request", "--json"]);
        if out.contains(needle) {
            return out;
        }
        assert!(
            Instant::now() < deadline,
            "no app.request record with {needle:?}: {out}"
        );
        std::thread::sleep(Duration::from_millis(100));
    }
}

#[test]
fn apps_are_reached_only_through_rampart_with_identity_and_audit() {
    let (up, seen) = upstream();
    let (ws, ws_seen) = ws_upstream();
    let down = rampart_testkit::free_port();
    let config = format!(
        r#"
[[apps]]
name = "echo"
prefix = "/echo"
upstream = "http://127.0.0.1:{up}/base"
max_request_body_mib = 300

[[apps]]
name = "tool"
host = "tool.test"
upstream = "http://127.0.0.1:{up}"

[[apps]]
name = "down"
prefix = "/down"
upstream = "http://127.0.0.1:{down}"

[[apps]]
name = "ws"
prefix = "/ws"
upstream = "http://127.0.0.1:{ws}"

[[apps]]
name = "slow"
prefix = "/slow"
upstream = "http://127.0.0.1:{up}"
response_timeout_seconds = 1

[[apps]]
name = "small"
prefix = "/small"
upstream = "http://127.0.0.1:{up}"
max_request_body_mib = 1
"#
    );
    let r = Rampart::start(bin(), &config);
    let port = r.https_port;
    let origin = r.origin();
    let count = || seen.lock().unwrap().len();

    // The apps are http targets (registered before the listener answers).
    assert_eq!(r.curl().get("/healthz").status, 200);
    let targets = cli_ok(&r, &["target", "list"]);
    assert!(
        targets.contains("echo") && targets.contains("http"),
        "{targets}"
    );

    // No session: to the login page, with a next that comes back here.
    let anon = r.curl();
    let resp = anon.get("/echo/hello?x=1");
    assert_eq!(resp.status, 303, "{}", resp.body);
    let location = resp.header("location").unwrap().to_owned();
    assert_eq!(
        location,
        format!("{origin}/login?next=%2Fecho%2Fhello%3Fx%3D1")
    );
    assert_eq!(count(), 0);
    // A next outside the apps is not kept (no open redirect).
    let evil = anon.get("/login?next=https%3A%2F%2Fevil.example%2F");
    assert!(evil.header("set-cookie").is_none(), "{:?}", evil.headers);
    let evil = anon.get("/login?next=%2F%2Fevil.example%2F");
    assert!(evil.header("set-cookie").is_none(), "{:?}", evil.headers);

    // A session without a grant: 403, nothing forwarded.
    let admin = r.curl();
    let secret = enroll(&admin, &r.admin_enroll_url);
    let resp = admin.get("/echo/hello");
    assert_eq!(resp.status, 403, "{}", resp.body);
    assert_eq!(count(), 0);

    // Back to the app after login. The login is the admin's recent second-factor check that
    // the grant below needs (ACC-2).
    let again = r.curl();
    let page = again.get(support::path_of(&location));
    assert_eq!(page.status, 200);
    let mfa = login(&again, "admin", &secret, 30);
    assert_eq!(mfa.status, 303, "{}", mfa.body);
    assert_eq!(mfa.header("location"), Some("/echo/hello?x=1"));
    cli_admin(&r, &secret, &["role", "add", "app-users", "--grant", "* *"]);
    cli_admin(&r, &secret, &["grant", "add", "admin", "app-users"]);
    let resp = again.get("/echo/hello?x=1");
    assert_eq!(resp.status, 200, "{}", resp.body);

    // With a grant: identity headers and a verifiable assertion reach the upstream; forged
    // copies and rampart's cookie do not.
    seen.lock().unwrap().clear();
    let resp = admin.run(&[
        "-H",
        "X-Rampart-User: root",
        "-H",
        "X-Rampart-Assertion: forged",
        "-H",
        "X-Forwarded-For: 6.6.6.6",
        "-H",
        "Forwarded: for=6.6.6.6",
        "-H",
        "Cookie: app_session=kept",
        &format!("{origin}/echo/page?email=alice%40example.com"),
    ]);
    assert_eq!(resp.status, 200, "{}", resp.body);
    assert!(
        resp.header("strict-transport-security").is_some(),
        "HSTS on proxied responses: {:?}",
        resp.headers
    );
    assert!(
        resp.header("content-security-policy").is_none(),
        "rampart's CSP is not imposed on apps: {:?}",
        resp.headers
    );
    assert!(
        !resp
            .headers
            .iter()
            .any(|(k, v)| k == "set-cookie" && v.contains("__Host-rampart")),
        "an app cannot set rampart's cookie: {:?}",
        resp.headers
    );
    let got = seen.lock().unwrap().last().cloned().unwrap();
    assert_eq!(got.path, "/base/page?email=alice%40example.com");
    assert_eq!(got.header("x-rampart-user"), Some("admin"));
    assert_eq!(
        got.header("x-rampart-email"),
        Some("admin@rampart.localhost")
    );
    assert_eq!(got.header("x-forwarded-for"), Some("127.0.0.1"));
    assert_eq!(got.header("x-forwarded-proto"), Some("https"));
    assert_eq!(
        got.header("x-forwarded-host"),
        Some(format!("gateway.test:{port}").as_str())
    );
    assert!(got.header("forwarded").is_none(), "{got:?}");
    let all = format!("{:?}", got.headers);
    assert!(
        !all.contains("root") && !all.contains("6.6.6.6") && !all.contains("forged"),
        "{all}"
    );
    let cookie = got.header("cookie").unwrap_or("");
    assert!(cookie.contains("app_session=kept"), "{cookie}");
    assert!(!cookie.contains("__Host-rampart"), "{cookie}");
    let jwks = admin.get("/.well-known/jwks.json");
    assert_eq!(jwks.status, 200);
    let claims = verify_jwt(got.header("x-rampart-assertion").unwrap(), &jwks.body);
    assert_eq!(claims["aud"], "echo");
    assert_eq!(claims["sub"], "admin");
    assert_eq!(claims["email"], "admin@rampart.localhost");
    assert_eq!(claims["iss"], origin.as_str());
    assert_eq!(
        claims["exp"].as_i64().unwrap() - claims["iat"].as_i64().unwrap(),
        60
    );
    assert!(claims["jti"].as_str().is_some_and(|j| !j.is_empty()));

    // An app on its own host: one-time handoff to a host-only cookie there.
    let tool = format!("https://tool.test:{port}");
    let resolve = format!("tool.test:{port}:127.0.0.1");
    let resp = admin.run(&["--resolve", &resolve, &format!("{tool}/dash?a=1")]);
    assert_eq!(resp.status, 303);
    let to_main = resp.header("location").unwrap().to_owned();
    assert_eq!(
        to_main,
        format!("{origin}/apps/handoff?app=tool&next=%2Fdash%3Fa%3D1")
    );
    let resp = admin.get(support::path_of(&to_main));
    assert_eq!(resp.status, 303, "{}", resp.body);
    let to_tool = resp.header("location").unwrap().to_owned();
    assert!(
        to_tool.starts_with(&format!("{tool}/.rampart/handoff?code=")),
        "{to_tool}"
    );
    let resp = admin.run(&["--resolve", &resolve, &to_tool]);
    assert_eq!(resp.status, 303, "{}", resp.body);
    assert_eq!(resp.header("location"), Some("/dash?a=1"));
    let set = resp.header("set-cookie").unwrap();
    assert!(
        set.starts_with("__Host-rampart=") && !set.contains("Domain"),
        "{set}"
    );
    let resp = admin.run(&["--resolve", &resolve, &format!("{tool}/dash?a=1")]);
    assert_eq!(resp.status, 200, "{}", resp.body);
    let got = seen.lock().unwrap().last().cloned().unwrap();
    assert_eq!(got.path, "/dash?a=1");
    assert_eq!(got.header("x-rampart-user"), Some("admin"));
    let reused = anon.run(&["--resolve", &resolve, &to_tool]);
    assert_eq!(reused.status, 400, "a handoff code works once");

    // Signing out on the main host signs out of the app host too: the session the handoff
    // opened is revoked with the one it came from (seen once the 5 s decision cache
    // lapses). Another session's app-host session is untouched.
    let dash = format!("{tool}/dash");
    let resp = again.run(&["--resolve", &resolve, &dash]);
    assert_eq!(resp.status, 303);
    let resp = again.get(support::path_of(resp.header("location").unwrap()));
    assert_eq!(resp.status, 303, "{}", resp.body);
    let to_tool = resp.header("location").unwrap().to_owned();
    assert_eq!(again.run(&["--resolve", &resolve, &to_tool]).status, 303);
    assert_eq!(again.run(&["--resolve", &resolve, &dash]).status, 200);
    support::logout(&again);
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let resp = again.run(&["--resolve", &resolve, &dash]);
        if resp.status == 303 {
            let to = resp.header("location").unwrap_or_default();
            assert!(to.starts_with(&format!("{origin}/apps/handoff?")), "{to}");
            break;
        }
        assert_eq!(resp.status, 200, "{}", resp.body);
        assert!(
            Instant::now() < deadline,
            "the app host's session outlived the logout"
        );
        std::thread::sleep(Duration::from_millis(250));
    }
    assert_eq!(admin.run(&["--resolve", &resolve, &dash]).status, 200);
    let ended = cli_ok(
        &r,
        &["audit", "search", "--action", "session.end", "--json"],
    );
    assert!(ended.contains(r#"\"app_sessions\":\"1\""#), "{ended}");

    // API clients: a service account's app token with a grant; the token is not forwarded.
    cli_ok(
        &r,
        &[
            "user",
            "add",
            "svc-api",
            "--kind",
            "service",
            "--owner",
            "admin",
            "--email",
            "svc-api@rampart.localhost",
        ],
    );
    let token = cli_ok(
        &r,
        &["apps", "token", "create", "echo", "--account", "svc-api"],
    )
    .trim()
    .to_owned();
    let ws_token = cli_ok(
        &r,
        &["apps", "token", "create", "ws", "--account", "svc-api"],
    )
    .trim()
    .to_owned();
    let big_token = token.clone();
    let bearer = anon.run(&[
        "-H",
        &format!("Authorization: Bearer {token}"),
        &format!("{origin}/echo/api"),
    ]);
    assert_eq!(bearer.status, 403, "no grant yet: {}", bearer.body);
    cli_admin(&r, &secret, &["grant", "add", "svc-api", "app-users"]);
    let bearer = anon.run(&[
        "-H",
        &format!("Authorization: Bearer {token}"),
        &format!("{origin}/echo/api"),
    ]);
    assert_eq!(bearer.status, 200, "{}", bearer.body);
    let got = seen.lock().unwrap().last().cloned().unwrap();
    assert_eq!(got.header("x-rampart-user"), Some("svc-api"));
    assert!(got.header("authorization").is_none(), "{got:?}");
    let wrong = anon.run(&[
        "-H",
        "Authorization: Bearer rat_0000",
        &format!("{origin}/echo/api"),
    ]);
    assert_eq!(wrong.status, 401);
    let other_app = anon.run(&[
        "-H",
        &format!("Authorization: Bearer {token}"),
        &format!("{origin}/small/api"),
    ]);
    assert_eq!(other_app.status, 401, "a token opens its own app only");

    // WebSocket through rampart.
    let out = ws_client(port, &r.public_host, "/ws/socket", &ws_token);
    assert!(out.contains("101"), "{out}");
    assert!(out.contains("accept-ok"), "{out}");
    assert!(out.contains("hello through rampart"), "{out}");
    let hs = ws_seen.lock().unwrap().last().cloned().unwrap();
    assert_eq!(hs.path, "/socket");
    assert_eq!(hs.header("x-rampart-user"), Some("svc-api"));

    // 200 MiB each way, streamed: rampart's peak memory barely moves.
    let pid = r.pid().unwrap();
    let before = hwm_kib(pid);
    let down_out = curl_token(
        &r,
        &big_token,
        "/echo/download",
        &["-o", "/dev/null", "-w", "%{http_code} %{size_download}"],
        None,
    );
    assert_eq!(down_out, format!("200 {BIG}"));
    let up_out = curl_token(
        &r,
        &big_token,
        "/echo/upload",
        &["-T", "-", "-X", "POST"],
        Some(BIG),
    );
    assert_eq!(up_out, format!("received {BIG}"));
    let after = hwm_kib(pid);
    eprintln!("rampart VmHWM before {before} KiB, after 2 × 200 MiB {after} KiB");
    assert!(
        after < before + 64 * 1024,
        "peak memory grew from {before} KiB to {after} KiB: bodies were buffered"
    );

    // Limits, failures and bad input: the right status, nothing forwarded.
    let before_bad = count();
    let big_file = r.data_dir().join("two-mib.bin");
    std::fs::write(&big_file, vec![b'y'; 2 * MIB as usize]).unwrap();
    // Answered before the body is read, over both protocols. Over HTTP/2 the rest of the
    // body is read, not the stream reset: curl 7.88 reports a reset, even one after the
    // answer, as a stream error instead of the 413.
    for protocol in ["--http1.1", "--http2"] {
        let resp = admin.run(&[
            protocol,
            "--data-binary",
            &format!("@{}", big_file.display()),
            &format!("{origin}/small/x"),
        ]);
        assert_eq!(resp.status, 413, "{protocol}: {}", resp.body);
    }
    let resp = admin.get("/down/x");
    assert_eq!(resp.status, 502);
    assert!(
        !resp.body.contains("127.0.0.1")
            && !resp.body.contains(&down.to_string())
            && !resp.body.to_lowercase().contains("refused"),
        "{}",
        resp.body
    );
    let resp = admin.run(&["--path-as-is", &format!("{origin}/echo/../admin")]);
    assert_eq!(resp.status, 400, "{}", resp.body);
    let resp = admin.run(&["--path-as-is", &format!("{origin}/echo/%2e%2e/admin")]);
    assert_eq!(resp.status, 400, "{}", resp.body);
    let resp = admin.run(&["--path-as-is", &format!("{origin}/echo/a/%2E%2e%2fadmin")]);
    assert_eq!(resp.status, 400, "{}", resp.body);
    let host = &r.public_host;
    let bad_host = raw_tls(
        port,
        host,
        format!("GET /echo/x HTTP/1.1\r\nHost: {host}/..\r\nAuthorization: Bearer {token}\r\nConnection: close\r\n\r\n").as_bytes(),
    );
    assert!(bad_host.starts_with("HTTP/1.1 400"), "{bad_host}");
    assert_eq!(
        count(),
        before_bad,
        "bad input reached the upstream: {:?}",
        seen.lock().unwrap().get(before_bad..)
    );
    // Content-Length with Transfer-Encoding: hyper reads the body as chunked, drops the
    // Content-Length and closes the connection after the answer, so the request smuggled
    // in the body is never read, let alone forwarded; the upstream gets one well-framed
    // request from rampart.
    let smuggle = raw_tls(
        port,
        host,
        format!("POST /echo/x HTTP/1.1\r\nHost: {host}\r\nAuthorization: Bearer {token}\r\nContent-Length: 44\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\nGET /echo/smuggled HTTP/1.1\r\nHost: x\r\n\r\n").as_bytes(),
    );
    assert_eq!(smuggle.matches("HTTP/1.1 ").count(), 1, "{smuggle}");
    {
        let log = seen.lock().unwrap();
        assert!(log.iter().all(|s| !s.path.contains("smuggled")), "{log:?}");
        let last = log.last().unwrap();
        assert!(last.header("content-length").is_none(), "{last:?}");
    }
    let n = count();
    let folded = raw_tls(
        port,
        host,
        format!("GET /echo/x HTTP/1.1\r\nHost: {host}\r\nAuthorization: Bearer {token}\r\nX-Long: a\r\n b\r\nConnection: close\r\n\r\n").as_bytes(),
    );
    assert!(folded.starts_with("HTTP/1.1 400"), "{folded}");
    // 4 MiB of header: most of it is still on its way when rampart answers 431 and closes.
    // The answer arrives anyway (the lingering close; without it the client gets a reset).
    let huge = raw_tls(
        port,
        host,
        format!("GET /echo/x HTTP/1.1\r\nHost: {host}\r\nAuthorization: Bearer {token}\r\nX-Big: {}\r\nConnection: close\r\n\r\n", "z".repeat(4 * MIB as usize)).as_bytes(),
    );
    assert!(
        huge.starts_with("HTTP/1.1 431"),
        "{}",
        huge.get(..200).unwrap_or(&huge)
    );
    assert_eq!(
        count(),
        n,
        "bad input reached the upstream: {:?}",
        seen.lock().unwrap().get(n..)
    );
    let resp = admin.get("/slow/sleep");
    assert_eq!(resp.status, 504);

    // Every proxied request is audited, the query scrubbed.
    let audit = wait_for_audit(&r, "/echo/page");
    assert!(
        !audit.contains("alice%40example.com") && !audit.contains("alice@example.com"),
        "{audit}"
    );
    let (record, details) = audit_record(&audit, "/echo/page");
    assert_eq!(record["actor"], "user:admin");
    assert_eq!(record["source"], "127.0.0.1", "{record}");
    assert_eq!(details["status"], "200");
    assert_eq!(details["method"], "GET");
    assert_eq!(details["path"], "/echo/page?email=[EMAIL]");
    let audit = wait_for_audit(&r, "/echo/upload");
    let (record, details) = audit_record(&audit, "/echo/upload");
    assert_eq!(record["actor"], "user:svc-api");
    assert_eq!(details["bytes_in"], BIG.to_string());
    let audit = wait_for_audit(&r, "/echo/download");
    let (_, details) = audit_record(&audit, "/echo/download");
    assert_eq!(details["bytes_out"], BIG.to_string());
    let audit = wait_for_audit(&r, "/down/x");
    assert_eq!(audit_record(&audit, "/down/x").1["status"], "502");

    // The UI shows requests per app and person.
    let page = admin.get("/apps");
    assert_eq!(page.status, 200, "{}", page.body);
    assert!(
        page.body.contains("svc-api") && page.body.contains("<svg"),
        "{}",
        page.body
    );
}

#[test]
fn while_the_audit_log_refuses_writes_app_requests_are_refused_and_none_is_lost() {
    let (up, seen) = upstream();
    let r = Rampart::start(
        bin(),
        &format!(
            "[[apps]]\nname = \"echo\"\nprefix = \"/echo\"\nupstream = \"http://127.0.0.1:{up}\"\n"
        ),
    );
    assert_eq!(r.curl().get("/healthz").status, 200);
    cli_ok(
        &r,
        &[
            "user",
            "add",
            "svc-api",
            "--kind",
            "service",
            "--owner",
            "admin",
            "--email",
            "svc-api@rampart.localhost",
        ],
    );
    let secret = enroll(&r.curl(), &r.admin_enroll_url);
    cli_admin(
        &r,
        &secret,
        &["role", "add", "app-users", "--grant", "echo *"],
    );
    cli_admin(&r, &secret, &["grant", "add", "svc-api", "app-users"]);
    let token = cli_ok(
        &r,
        &["apps", "token", "create", "echo", "--account", "svc-api"],
    )
    .trim()
    .to_owned();
    let curl = r.curl();
    let get = |path: &str| {
        curl.run(&[
            "-H",
            &format!("Authorization: Bearer {token}"),
            &format!("{}{path}", r.origin()),
        ])
    };
    assert_eq!(get("/echo/first").status, 200);
    wait_for_audit(&r, "/echo/first");

    // The audit table refuses rows, as a full disk would.
    let db = r.data_dir().join("rampart.db");
    support::sqlite(
        &db,
        "CREATE TRIGGER audit_full BEFORE INSERT ON audit_log BEGIN SELECT RAISE(FAIL, 'disk full'); END;",
    );
    // Requests already admitted finish; their records wait in memory. Once the writer has
    // failed, new requests wait (bounded) and get 503 without reaching the app.
    let deadline = Instant::now() + Duration::from_secs(60);
    let mut passed = Vec::new();
    loop {
        let before = seen.lock().unwrap().len();
        let path = format!("/echo/during-{}", passed.len());
        let resp = get(&path);
        if resp.status == 503 {
            assert_eq!(
                seen.lock().unwrap().len(),
                before,
                "a refused request reached the app"
            );
            assert!(resp.body.contains("audit log"), "{}", resp.body);
            break;
        }
        assert_eq!(resp.status, 200, "{}", resp.body);
        passed.push(path);
        assert!(Instant::now() < deadline, "requests never refused");
    }
    assert!(!passed.is_empty() || seen.lock().unwrap().len() == 1);

    support::sqlite(&db, "DROP TRIGGER audit_full;");
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let resp = get("/echo/after");
        if resp.status == 200 {
            break;
        }
        assert_eq!(resp.status, 503, "{}", resp.body);
        assert!(Instant::now() < deadline, "requests never admitted again");
    }
    // The records of the requests that passed before the writer failed were kept and written.
    for path in &passed {
        wait_for_audit(&r, path);
    }
    wait_for_audit(&r, "/echo/after");
    let verify = cli_ok(&r, &["audit", "verify"]);
    assert!(
        verify.to_lowercase().contains("ok") || verify.contains("verified"),
        "{verify}"
    );
}

fn openssl(dir: &std::path::Path, args: &[&str]) {
    let out = Command::new("openssl")
        .current_dir(dir)
        .args(args)
        .output()
        .expect("openssl runs (apt-get install -y openssl)");
    assert!(
        out.status.success(),
        "openssl {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// A CA, a server certificate for 127.0.0.1 and a client certificate, made by openssl.
fn certificates(dir: &std::path::Path) {
    let ec = [
        "-newkey",
        "ec",
        "-pkeyopt",
        "ec_paramgen_curve:prime256v1",
        "-nodes",
    ];
    let mut ca = vec!["req", "-x509"];
    ca.extend(ec);
    ca.extend([
        "-keyout",
        "ca.key",
        "-out",
        "ca.pem",
        "-days",
        "2",
        "-subj",
        "/CN=rampart test CA",
    ]);
    openssl(dir, &ca);
    for (name, ext) in [
        (
            "server",
            "subjectAltName=IP:127.0.0.1\nbasicConstraints=CA:FALSE\nkeyUsage=digitalSignature\nextendedKeyUsage=serverAuth\n",
        ),
        (
            "client",
            "basicConstraints=CA:FALSE\nkeyUsage=digitalSignature\nextendedKeyUsage=clientAuth\n",
        ),
    ] {
        std::fs::write(dir.join(format!("{name}.ext")), ext).unwrap();
        let mut req = vec!["req"];
        req.extend(ec);
        let key = format!("{name}.key");
        let csr = format!("{name}.csr");
        let subj = format!("/CN={name}");
        req.extend(["-keyout", &key, "-out", &csr, "-subj", &subj]);
        openssl(dir, &req);
        let pem = format!("{name}.pem");
        let ext = format!("{name}.ext");
        openssl(
            dir,
            &[
                "x509",
                "-req",
                "-in",
                &csr,
                "-CA",
                "ca.pem",
                "-CAkey",
                "ca.key",
                "-CAcreateserial",
                "-out",
                &pem,
                "-days",
                "2",
                "-extfile",
                &ext,
            ],
        );
    }
}

#[test]
fn https_upstreams_are_verified_against_their_ca_and_get_the_client_certificate() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    certificates(d);
    // nginx from Debian as the upstream: TLS with client certificates required; it answers
    // with the identity it saw.
    let np = rampart_testkit::free_port();
    std::fs::create_dir_all(d.join("logs")).unwrap();
    std::fs::write(
        d.join("nginx.conf"),
        format!(
            "worker_processes 1;\npid {p}/nginx.pid;\nerror_log {p}/logs/error.log error;\nevents {{ worker_connections 64; }}\nhttp {{\n  access_log off;\n  server {{\n    listen 127.0.0.1:{np} ssl;\n    ssl_certificate {p}/server.pem;\n    ssl_certificate_key {p}/server.key;\n    ssl_client_certificate {p}/ca.pem;\n    ssl_verify_client on;\n    location / {{ default_type text/plain; return 200 \"client=$ssl_client_s_dn user=$http_x_rampart_user uri=$request_uri\\n\"; }}\n  }}\n}}\n",
            p = d.display()
        ),
    )
    .unwrap();
    let _nginx = Nginx(
        Command::new("nginx")
            .args([
                "-c",
                &d.join("nginx.conf").display().to_string(),
                "-p",
                &d.display().to_string(),
                "-g",
                "daemon off;",
            ])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("nginx runs (apt-get install -y nginx)"),
    );
    rampart_testkit::wait_for_port(np, Duration::from_secs(10), "nginx");
    let p = d.display();
    let r = Rampart::start(
        bin(),
        &format!(
            r#"
[[apps]]
name = "mtls"
prefix = "/mtls"
upstream = "https://127.0.0.1:{np}"
ca_file = "{p}/ca.pem"
client_cert_file = "{p}/client.pem"
client_key_file = "{p}/client.key"

[[apps]]
name = "nocert"
prefix = "/nocert"
upstream = "https://127.0.0.1:{np}"
ca_file = "{p}/ca.pem"

[[apps]]
name = "noca"
prefix = "/noca"
upstream = "https://127.0.0.1:{np}"
"#
        ),
    );
    assert_eq!(r.curl().get("/healthz").status, 200);
    cli_ok(
        &r,
        &[
            "user",
            "add",
            "svc-api",
            "--kind",
            "service",
            "--owner",
            "admin",
            "--email",
            "svc-api@rampart.localhost",
        ],
    );
    let secret = enroll(&r.curl(), &r.admin_enroll_url);
    cli_admin(&r, &secret, &["role", "add", "app-users", "--grant", "* *"]);
    cli_admin(&r, &secret, &["grant", "add", "svc-api", "app-users"]);
    let get = |app: &str| {
        let token = cli_ok(
            &r,
            &["apps", "token", "create", app, "--account", "svc-api"],
        )
        .trim()
        .to_owned();
        r.curl().run(&[
            "-H",
            &format!("Authorization: Bearer {token}"),
            &format!("{}/{app}/x?y=1", r.origin()),
        ])
    };
    let ok = get("mtls");
    assert_eq!(ok.status, 200, "{}", ok.body);
    assert_eq!(ok.body.trim(), "client=CN=client user=svc-api uri=/x?y=1");
    // Without the client certificate the upstream refuses (nginx says 400); with an
    // unknown CA rampart refuses the upstream (502, naming nothing).
    assert_eq!(get("nocert").status, 400);
    let noca = get("noca");
    assert_eq!(noca.status, 502, "{}", noca.body);
    assert!(
        !noca.body.to_lowercase().contains("certificate"),
        "{}",
        noca.body
    );
}

/// nginx in the foreground, stopped with SIGTERM (its master then stops the workers).
struct Nginx(std::process::Child);

impl Drop for Nginx {
    fn drop(&mut self) {
        let _ = Command::new("kill")
            .args(["-TERM", &self.0.id().to_string()])
            .status();
        let _ = self.0.wait();
    }
}
