//! OpenSSH `sshd` as an SSH target: its own host key and configuration in a temporary
//! folder, a free loopback port, trusting a user CA (rampart's) for certificates, run in
//! the foreground and killed on drop. Also: key pairs for clients, and the `ssh` client with
//! options that keep it off the user's own files.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::time::Duration;

use crate::{free_port, wait_for_port};

/// A running sshd.
#[derive(Debug)]
pub struct Sshd {
    dir: tempfile::TempDir,
    child: Option<Child>,
    /// Its port on 127.0.0.1.
    pub port: u16,
}

impl Sshd {
    /// Starts sshd trusting the CA public key line `user_ca` for user certificates.
    pub fn start(user_ca: &str) -> Sshd {
        Self::start_with(Some(user_ca), None)
    }

    /// Starts sshd trusting no CA, with `authorized` (a public key line) for every login.
    pub fn start_with_key(authorized: &str) -> Sshd {
        Self::start_with(None, Some(authorized))
    }

    fn start_with(user_ca: Option<&str>, authorized: Option<&str>) -> Sshd {
        let dir = tempfile::Builder::new()
            .prefix("rampart-sshd")
            .tempdir()
            .expect("tempdir");
        std::fs::create_dir_all("/run/sshd").expect("mkdir /run/sshd");
        let host_key = dir.path().join("host_ed25519");
        keygen(&host_key, "target host key");
        let ca = user_ca.map(str::to_owned).unwrap_or_else(|| {
            // A CA nobody holds: certificates from rampart are refused.
            let other = dir.path().join("other_ca");
            keygen(&other, "unused CA");
            std::fs::read_to_string(other.with_extension("pub")).expect("read CA")
        });
        std::fs::write(dir.path().join("user_ca.pub"), format!("{}\n", ca.trim()))
            .expect("write CA");
        let keys = authorized
            .map(|k| format!("{}\n", k.trim()))
            .unwrap_or_default();
        std::fs::write(dir.path().join("authorized_keys"), keys).expect("write authorized_keys");
        let port = free_port();
        let mut sshd = Sshd {
            dir,
            child: None,
            port,
        };
        sshd.write_config();
        sshd.spawn();
        sshd
    }

    fn write_config(&self) {
        let d = self.dir.path();
        let config = format!(
            "Port {port}\nListenAddress 127.0.0.1\nHostKey {hk}\nPidFile {pid}\nTrustedUserCAKeys {ca}\nAuthorizedKeysFile {keys}\nUsePAM no\nStrictModes no\nPasswordAuthentication no\nKbdInteractiveAuthentication no\nPermitRootLogin prohibit-password\nLogLevel VERBOSE\nSubsystem sftp internal-sftp\nAllowTcpForwarding yes\n",
            port = self.port,
            hk = d.join("host_ed25519").display(),
            pid = d.join("sshd.pid").display(),
            ca = d.join("user_ca.pub").display(),
            keys = d.join("authorized_keys").display(),
        );
        std::fs::write(d.join("sshd_config"), config).expect("write sshd_config");
    }

    fn spawn(&mut self) {
        let d = self.dir.path();
        let child = Command::new("/usr/sbin/sshd")
            .arg("-D")
            .arg("-f")
            .arg(d.join("sshd_config"))
            .arg("-E")
            .arg(d.join("sshd.log"))
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap_or_else(|e| {
                panic!("sshd not runnable ({e}): apt-get install -y openssh-server")
            });
        self.child = Some(child);
        wait_for_port(
            self.port,
            Duration::from_secs(10),
            &format!("sshd (log: {})", self.log()),
        );
    }

    /// Replaces the host key and restarts (to test pinning).
    pub fn change_host_key(&mut self) {
        self.stop();
        let key = self.dir.path().join("host_ed25519");
        let _ = std::fs::remove_file(&key);
        let _ = std::fs::remove_file(key.with_extension("pub"));
        keygen(&key, "a new target host key");
        self.spawn();
    }

    /// Signs the host key with the CA private key at `ca` (principal 127.0.0.1) and restarts
    /// with `HostCertificate`.
    pub fn certify_host(&mut self, ca: &Path) {
        self.stop();
        let d = self.dir.path();
        let out = Command::new("ssh-keygen")
            .args(["-q", "-h", "-I", "target", "-n", "127.0.0.1", "-s"])
            .arg(ca)
            .arg(d.join("host_ed25519.pub"))
            .output()
            .expect("ssh-keygen -s");
        assert!(
            out.status.success(),
            "ssh-keygen -s: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        let mut config = std::fs::read_to_string(d.join("sshd_config")).expect("config");
        if !config.contains("HostCertificate") {
            config.push_str(&format!(
                "HostCertificate {}\n",
                d.join("host_ed25519-cert.pub").display()
            ));
            std::fs::write(d.join("sshd_config"), config).expect("write config");
        }
        self.spawn();
    }

    /// `127.0.0.1:PORT`.
    pub fn address(&self) -> String {
        format!("127.0.0.1:{}", self.port)
    }

    /// sshd's log (it names the certificate's key id on each login).
    pub fn log(&self) -> String {
        std::fs::read_to_string(self.dir.path().join("sshd.log")).unwrap_or_default()
    }

    fn stop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

impl Drop for Sshd {
    fn drop(&mut self) {
        if std::thread::panicking() {
            eprintln!("--- sshd log ---\n{}", self.log());
        }
        self.stop();
    }
}

/// Makes an ed25519 key pair at `path` (and `path.pub`) without passphrase.
pub fn keygen(path: &Path, comment: &str) {
    let out = Command::new("ssh-keygen")
        .args(["-q", "-t", "ed25519", "-N", "", "-C", comment, "-f"])
        .arg(path)
        .output()
        .unwrap_or_else(|e| {
            panic!("ssh-keygen not runnable ({e}): apt-get install -y openssh-client")
        });
    assert!(
        out.status.success(),
        "ssh-keygen: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// A client identity: a key pair and a known_hosts file in a folder of its own, and a
/// script that answers keyboard-interactive prompts with a fixed text (`SSH_ASKPASS`).
#[derive(Debug)]
pub struct Client {
    dir: tempfile::TempDir,
    /// The private key.
    pub key: PathBuf,
}

impl Client {
    /// A new key pair.
    pub fn new() -> Client {
        let dir = tempfile::Builder::new()
            .prefix("rampart-ssh-client")
            .tempdir()
            .expect("tempdir");
        let key = dir.path().join("id_ed25519");
        keygen(&key, "person@laptop");
        Client { dir, key }
    }

    /// The public key file.
    pub fn public_key(&self) -> PathBuf {
        self.key.with_extension("pub")
    }

    /// The folder (for files to copy).
    pub fn dir(&self) -> &Path {
        self.dir.path()
    }

    /// Options every call uses: this key only, its own known_hosts, no agent, no config.
    pub fn options(&self, port: u16) -> Vec<String> {
        let kh = self.dir.path().join("known_hosts");
        vec![
            "-F".into(),
            "/dev/null".into(),
            "-i".into(),
            self.key.display().to_string(),
            "-o".into(),
            "IdentitiesOnly=yes".into(),
            "-o".into(),
            "IdentityAgent=none".into(),
            "-o".into(),
            format!("UserKnownHostsFile={}", kh.display()),
            "-o".into(),
            "StrictHostKeyChecking=accept-new".into(),
            "-o".into(),
            "PreferredAuthentications=publickey,keyboard-interactive".into(),
            "-o".into(),
            "KbdInteractiveAuthentication=yes".into(),
            "-o".into(),
            "NumberOfPasswordPrompts=1".into(),
            "-o".into(),
            "ConnectTimeout=20".into(),
            "-o".into(),
            "LogLevel=ERROR".into(),
            "-P".into(),
            port.to_string(),
        ]
    }

    /// A command (`ssh`, `scp`, `sftp`) with [`Client::options`] and `SSH_ASKPASS` answering
    /// every prompt with `answer` (a TOTP code); `-P` becomes `-p` for `ssh`.
    pub fn command(&self, program: &str, port: u16, answer: &str) -> Command {
        let askpass = self.dir.path().join(format!("askpass-{}", crate::unique()));
        std::fs::write(&askpass, format!("#!/bin/sh\necho '{answer}'\n")).expect("askpass");
        std::fs::set_permissions(
            &askpass,
            std::os::unix::fs::PermissionsExt::from_mode(0o700),
        )
        .expect("chmod askpass");
        let mut opts = self.options(port);
        if program == "ssh"
            && let Some(p) = opts.iter_mut().find(|o| *o == "-P")
        {
            *p = "-p".into();
        }
        let mut cmd = Command::new(program);
        cmd.args(opts)
            .env("SSH_ASKPASS", &askpass)
            .env("SSH_ASKPASS_REQUIRE", "force")
            .env("DISPLAY", ":0")
            .stdin(Stdio::null());
        cmd
    }

    /// Runs `ssh -p PORT … USER@127.0.0.1 ARGS…` with a TOTP answer and a deadline.
    pub fn ssh(&self, port: u16, user: &str, answer: &str, args: &[&str]) -> Output {
        let mut cmd = self.command("ssh", port, answer);
        cmd.arg(format!("{user}@127.0.0.1")).args(args);
        run_with_deadline(cmd, Duration::from_secs(60))
    }
}

impl Default for Client {
    fn default() -> Self {
        Self::new()
    }
}

/// Runs a command, killing it after `deadline`.
pub fn run_with_deadline(mut cmd: Command, deadline: Duration) -> Output {
    let child = cmd
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap_or_else(|e| panic!("cannot run {cmd:?} ({e}): apt-get install -y openssh-client"));
    let pid = child.id();
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        let _ = tx.send(child.wait_with_output());
    });
    match rx.recv_timeout(deadline) {
        Ok(out) => out.expect("wait for the command"),
        Err(_) => {
            let _ = Command::new("kill")
                .arg("-KILL")
                .arg(pid.to_string())
                .status();
            panic!("{cmd:?} did not finish within {deadline:?}");
        }
    }
}
