//! Fencing against a real etcd (skipped with a note when `etcd` is not installed).

use std::net::TcpListener;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use super::*;
use crate::etcd::election::{Election, ElectionConfig};
use strata_cluster::cluster::new_record;

struct Etcd(Child);

impl Drop for Etcd {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("free port")
}

/// Starts etcd on free loopback ports; `None` when it is not installed.
fn start_etcd(dir: &std::path::Path) -> Option<(Etcd, String)> {
    let (client, peer) = (port(), port());
    let url = format!("http://127.0.0.1:{client}");
    let child = Command::new("etcd")
        .arg("--data-dir")
        .arg(dir)
        .args([
            "--listen-client-urls",
            &url,
            "--advertise-client-urls",
            &url,
        ])
        .args(["--listen-peer-urls", &format!("http://127.0.0.1:{peer}")])
        .args([
            "--initial-advertise-peer-urls",
            &format!("http://127.0.0.1:{peer}"),
        ])
        .args([
            "--initial-cluster",
            &format!("default=http://127.0.0.1:{peer}"),
        ])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn();
    let Ok(child) = child else {
        eprintln!("SKIPPED: `etcd` is not installed");
        return None;
    };
    let etcd = Etcd(child);
    let deadline = Instant::now() + Duration::from_secs(20);
    while std::net::TcpStream::connect(("127.0.0.1", client)).is_err() {
        assert!(Instant::now() < deadline, "etcd did not start");
        std::thread::sleep(Duration::from_millis(50));
    }
    Some((etcd, url))
}

fn config(url: &str, address: &str) -> ElectionConfig {
    ElectionConfig {
        endpoints: vec![url.to_string()],
        prefix: "/strata/fence-test".into(),
        address: address.into(),
        ttl: Duration::from_secs(2),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_deposed_leader_cannot_write_and_the_next_one_reads_its_record() {
    let dir = tempfile::tempdir().expect("tempdir");
    let Some((_etcd, url)) = start_etcd(dir.path()) else {
        return;
    };
    let first = Election::join(&config(&url, "a:1")).await.expect("join a");
    let fence_a = first.campaign().await.expect("a leads");
    let second = Election::join(&config(&url, "b:1")).await.expect("join b");
    assert_eq!(second.leader().await.expect("leader"), Some("a:1".into()));

    let endpoints = vec![url.clone()];
    let prefix = "/strata/fence-test".to_string();
    let (e, p) = (endpoints.clone(), prefix.clone());
    let store_a = tokio::task::spawn_blocking(move || EtcdMetaStore::connect(&e, &p, fence_a))
        .await
        .expect("join")
        .expect("store a");
    let mut record = new_record(4, 64);
    record.epoch = 7;
    let store_a = std::sync::Arc::new(store_a);
    let (s, r) = (store_a.clone(), record.clone());
    tokio::task::spawn_blocking(move || s.save(&r))
        .await
        .expect("join")
        .expect("leader writes");

    first.resign().await;
    let fence_b = tokio::time::timeout(Duration::from_secs(10), second.campaign())
        .await
        .expect("b elected in time")
        .expect("b leads");
    let (s, r) = (store_a.clone(), record.clone());
    let refused = tokio::task::spawn_blocking(move || s.save(&r))
        .await
        .expect("join");
    assert!(
        matches!(refused, Err(MetaStoreError::Fenced { .. })),
        "deposed leader's write: {refused:?}"
    );
    let loaded = tokio::task::spawn_blocking(move || {
        let store_b = EtcdMetaStore::connect(&endpoints, &prefix, fence_b)?;
        store_b.load()
    })
    .await
    .expect("join")
    .expect("load");
    assert_eq!(loaded, Some(record));
}
