//! A full disk refuses the batch with `LogError::DiskFull` (the front door answers 503) and
//! loses nothing stored before. Runs on a real 512 KiB tmpfs (needs root, as scripts/test).
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing
)]

use std::process::Command;

use rampart_logs::store::{LogError, LogStore, Query};
use rampart_logs::{Level, Line};

struct Mount(std::path::PathBuf);

impl Drop for Mount {
    fn drop(&mut self) {
        let _ = Command::new("umount").arg(&self.0).status();
    }
}

fn line(i: i64, t: i64) -> Line {
    Line {
        time_us: t + i,
        received_us: t + i,
        source: "api".into(),
        level: Level::Info,
        flags: 0,
        message: format!("line {i} {}", "x".repeat(900)),
        fields: None,
    }
}

#[tokio::test]
async fn a_full_disk_refuses_the_batch_and_keeps_what_was_stored() {
    let dir = tempfile::tempdir().unwrap();
    let status = Command::new("mount")
        .args(["-t", "tmpfs", "-o", "size=512k", "tmpfs"])
        .arg(dir.path())
        .status()
        .expect("mount missing: apt-get install -y mount");
    assert!(
        status.success(),
        "mounting a tmpfs needs root (scripts/test runs as root)"
    );
    let _mount = Mount(dir.path().to_owned());
    let store = LogStore::open(dir.path()).await.unwrap();
    let t = 1_800_000_000_000_000;
    let mut stored = 0i64;
    let mut refused = None;
    for batch in 0..1000 {
        let lines: Vec<Line> = (0..20).map(|i| line(batch * 20 + i, t)).collect();
        match store.append(lines, Vec::new()).await {
            Ok(()) => stored += 20,
            Err(e) => {
                refused = Some(e);
                break;
            }
        }
    }
    assert!(
        matches!(refused, Some(LogError::DiskFull)),
        "expected DiskFull, got {refused:?}"
    );
    assert!(stored > 0);
    let count = store
        .count(&Query {
            since_us: Some(t),
            until_us: Some(t + 1_000_000_000),
            ..Query::default()
        })
        .await
        .unwrap();
    assert_eq!(count, stored, "what was committed before is all there");
    store.close().await;
}
