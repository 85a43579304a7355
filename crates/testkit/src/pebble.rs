//! Let's Encrypt's test CA: `pebble` with `pebble-challtestsrv` as its DNS server (every
//! name resolves to 127.0.0.1), validating HTTP-01 on a port the caller chooses.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use crate::{free_port, wait_for_port};

/// A running pebble.
#[derive(Debug)]
pub struct Pebble {
    dir: tempfile::TempDir,
    children: Vec<Child>,
    /// The ACME directory URL.
    pub directory: String,
    /// The root that signs pebble's own HTTPS certificate (give it to the ACME client).
    pub ca_file: PathBuf,
}

impl Pebble {
    /// Starts pebble; it validates HTTP-01 challenges by connecting to `http_port`.
    pub fn start(http_port: u16) -> Pebble {
        let dir = tempfile::Builder::new()
            .prefix("rampart-pebble")
            .tempdir()
            .expect("tempdir");
        let d = dir.path();
        let ca_file = d.join("ca.pem");
        make_api_certificate(d);
        let (api, mgmt, dns, dns_mgmt) = (free_port(), free_port(), free_port(), free_port());
        let config = format!(
            r#"{{"pebble": {{"listenAddress": "127.0.0.1:{api}", "managementListenAddress": "127.0.0.1:{mgmt}",
                "certificate": "{cert}", "privateKey": "{key}", "httpPort": {http_port}, "tlsPort": {tls},
                "ocspResponderURL": "", "externalAccountBindingRequired": false}}}}"#,
            cert = d.join("api.pem").display(),
            key = d.join("api.key").display(),
            tls = free_port(),
        );
        std::fs::write(d.join("pebble.json"), config).unwrap();
        let log = |name: &str| std::fs::File::create(d.join(name)).unwrap();
        let dns_srv = Command::new("pebble-challtestsrv")
            .args([
                "-defaultIPv4",
                "127.0.0.1",
                "-defaultIPv6",
                "",
                "-http01",
                "",
                "-https01",
                "",
                "-tlsalpn01",
                "",
            ])
            .args([
                "-dns01",
                &format!("127.0.0.1:{dns}"),
                "-management",
                &format!("127.0.0.1:{dns_mgmt}"),
            ])
            .stdout(log("challtestsrv.log"))
            .stderr(Stdio::null())
            .spawn()
            .unwrap_or_else(|e| {
                panic!("pebble-challtestsrv not runnable ({e}): apt-get install -y pebble")
            });
        let pebble = Command::new("pebble")
            .arg("-config")
            .arg(d.join("pebble.json"))
            .args(["-dnsserver", &format!("127.0.0.1:{dns}")])
            .env("PEBBLE_VA_NOSLEEP", "1")
            .env("PEBBLE_WFE_NONCEREJECT", "0")
            .stdout(log("pebble.log"))
            .stderr(Stdio::null())
            .spawn()
            .unwrap_or_else(|e| panic!("pebble not runnable ({e}): apt-get install -y pebble"));
        let p = Pebble {
            dir,
            children: vec![dns_srv, pebble],
            directory: format!("https://127.0.0.1:{api}/dir"),
            ca_file,
        };
        wait_for_port(dns_mgmt, Duration::from_secs(20), "pebble-challtestsrv");
        wait_for_port(api, Duration::from_secs(20), "pebble");
        p
    }

    /// pebble's log so far.
    pub fn log(&self) -> String {
        std::fs::read_to_string(self.dir.path().join("pebble.log")).unwrap_or_default()
    }
}

impl Drop for Pebble {
    fn drop(&mut self) {
        if std::thread::panicking() {
            eprintln!("--- pebble log ---\n{}", self.log());
        }
        for child in &mut self.children {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

/// A CA and a leaf for 127.0.0.1/localhost signed by it, with openssl.
fn make_api_certificate(d: &Path) {
    let run = |args: &[&str]| {
        let out = Command::new("openssl")
            .args(args)
            .current_dir(d)
            .output()
            .unwrap_or_else(|e| panic!("openssl not runnable ({e}): apt-get install -y openssl"));
        assert!(
            out.status.success(),
            "openssl {args:?}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    };
    run(&[
        "req",
        "-x509",
        "-newkey",
        "ec",
        "-pkeyopt",
        "ec_paramgen_curve:P-256",
        "-nodes",
        "-keyout",
        "ca.key",
        "-out",
        "ca.pem",
        "-days",
        "2",
        "-subj",
        "/CN=rampart test pebble root",
    ]);
    run(&[
        "req",
        "-newkey",
        "ec",
        "-pkeyopt",
        "ec_paramgen_curve:P-256",
        "-nodes",
        "-keyout",
        "api.key",
        "-out",
        "api.csr",
        "-subj",
        "/CN=127.0.0.1",
    ]);
    std::fs::write(
        d.join("san.ext"),
        "subjectAltName=IP:127.0.0.1,DNS:localhost\nbasicConstraints=CA:FALSE\n",
    )
    .unwrap();
    run(&[
        "x509",
        "-req",
        "-in",
        "api.csr",
        "-CA",
        "ca.pem",
        "-CAkey",
        "ca.key",
        "-CAcreateserial",
        "-out",
        "api.pem",
        "-days",
        "2",
        "-extfile",
        "san.ext",
    ]);
}
