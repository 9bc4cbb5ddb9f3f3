//! Mutual TLS end to end with real processes and certificates made by `strata certs`: a TLS
//! dev server serves TLS clients (Rust client and CLI) and refuses, with a clear reason, a
//! wrong CA, a missing or foreign client certificate and expired certificates; a shard moved
//! between two TLS shard servers keeps every row exact; a certificate replaced on disk is
//! used by the next connection; plaintext off loopback needs `--insecure`.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant, SystemTime};

use rustls_pki_types::pem::PemObject;
use rustls_pki_types::{CertificateDer, ServerName};
use strata_client::certs::{self, Role, Validity};
use strata_client::{Client, ClientError, ClientOptions, TlsFiles};
use strata_proto::v1 as pb;
use strata_tests::cluster::{settled, CoordinatorProcess, ShardProcess};
use strata_tests::{binary, DevServer};

/// A certificates directory made by the CLI.
struct Certs {
    dir: PathBuf,
}

impl Certs {
    /// `strata certs init`, then `strata certs issue` for each `(name, role)`.
    fn new(dir: &Path, issued: &[(&str, &str)]) -> Self {
        strata(&["certs", "init", "--dir", &dir.display().to_string()]);
        let certs = Self {
            dir: dir.to_path_buf(),
        };
        for (name, role) in issued {
            certs.issue(name, role);
        }
        certs
    }

    fn issue(&self, name: &str, role: &str) {
        let dir = self.dir.display().to_string();
        strata(&[
            "certs", "issue", "--dir", &dir, "--name", name, "--role", role,
        ]);
    }

    fn path(&self, file: &str) -> String {
        self.dir.join(file).display().to_string()
    }

    /// Server flags for the certificate `name`.
    fn server_flags(&self, name: &str) -> Vec<String> {
        vec![
            "--tls-cert".into(),
            self.path(&format!("{name}.pem")),
            "--tls-key".into(),
            self.path(&format!("{name}.key")),
            "--tls-ca".into(),
            self.path("ca.pem"),
        ]
    }

    /// Client files: this CA, and the certificate `name` when given.
    fn files(&self, name: Option<&str>) -> TlsFiles {
        TlsFiles {
            ca: Some(self.dir.join("ca.pem")),
            cert: name.map(|n| self.dir.join(format!("{n}.pem"))),
            key: name.map(|n| self.dir.join(format!("{n}.key"))),
        }
    }
}

/// Runs `strata ARGS` and fails the test unless it succeeds; returns stdout.
fn strata(args: &[&str]) -> String {
    let out = Command::new(binary("strata"))
        .args(args)
        .output()
        .expect("running strata");
    assert!(
        out.status.success(),
        "strata {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

fn refs(flags: &[String]) -> Vec<&str> {
    flags.iter().map(String::as_str).collect()
}

async fn connect(address: &str, tls: TlsFiles) -> Result<Client, ClientError> {
    let options = ClientOptions {
        tls,
        ..ClientOptions::default()
    };
    Client::connect_with(address, options).await
}

/// Connects, retrying while the server is starting (bounded).
async fn must_connect(address: &str, tls: TlsFiles) -> Client {
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        match connect(address, tls.clone()).await {
            Ok(c) => return c,
            Err(e) if Instant::now() > deadline => panic!("connecting to {address}: {e}"),
            Err(_) => tokio::time::sleep(Duration::from_millis(50)).await,
        }
    }
}

/// The refusal a client with `tls` gets from `address`, as text.
async fn refusal(address: &str, tls: TlsFiles) -> String {
    match connect(address, tls).await {
        Ok(_) => panic!("connected to {address}, expected a refusal"),
        Err(e) => e.to_string(),
    }
}

fn sgd_table(name: &str, dim: u32) -> pb::TableSpec {
    strata_tests::table_spec(name, dim, "sgd", 1.0)
}

#[tokio::test]
async fn a_tls_dev_server_serves_tls_clients_and_refuses_others_with_the_reason() {
    let root = tempfile::tempdir().expect("tempdir");
    let certs = Certs::new(
        &root.path().join("certs"),
        &[("srv", "node"), ("t1", "trainer")],
    );
    let dev = DevServer::start(&root.path().join("data"), &refs(&certs.server_flags("srv")))
        .expect("dev");
    let address = dev.address.clone();

    // The Rust client over mTLS.
    let client = must_connect(&address, certs.files(Some("t1"))).await;
    client
        .create_table(sgd_table("t", 2))
        .await
        .expect("create");
    client
        .push("t", &[1, 2], &[1.0, 2.0, 3.0, 4.0])
        .await
        .expect("push");
    let rows = client.pull("t", &[1, 2]).await.expect("pull");
    assert_eq!(rows, [-1.0, -2.0, -3.0, -4.0]);

    // The CLI, with flags and with the environment.
    let flags = [
        "--tls-ca",
        &certs.path("ca.pem"),
        "--tls-cert",
        &certs.path("t1.pem"),
        "--tls-key",
        &certs.path("t1.key"),
    ]
    .map(String::from);
    let mut args = vec!["--coordinator", &address];
    args.extend(refs(&flags));
    args.extend(["push", "--table", "t", "--ids", "1", "--grads", "1,1"]);
    strata(&args);
    let out = Command::new(binary("strata"))
        .args([
            "--coordinator",
            &address,
            "pull",
            "--table",
            "t",
            "--ids",
            "1",
            "-o",
            "json",
        ])
        .env("STRATA_TLS_CA", certs.path("ca.pem"))
        .env("STRATA_TLS_CERT", certs.path("t1.pem"))
        .env("STRATA_TLS_KEY", certs.path("t1.key"))
        .output()
        .expect("strata pull");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let json: serde_json::Value = serde_json::from_slice(&out.stdout).expect("pull prints JSON");
    assert_eq!(json["values"], serde_json::json!([[-2.0, -3.0]]));

    // A client that trusts another CA.
    let other = Certs::new(&root.path().join("other"), &[("stranger", "trainer")]);
    let mut wrong_ca = certs.files(Some("t1"));
    wrong_ca.ca = other.files(None).ca;
    let text = refusal(&address, wrong_ca).await;
    assert!(text.contains("not signed by the CA in --tls-ca"), "{text}");

    // No client certificate; a certificate of another CA.
    let text = refusal(&address, certs.files(None)).await;
    assert!(text.contains("requires a client certificate"), "{text}");
    let mut foreign = other.files(Some("stranger"));
    foreign.ca = certs.files(None).ca;
    let text = refusal(&address, foreign).await;
    assert!(text.contains("not signed by the server's CA"), "{text}");

    // An expired client certificate of the right CA.
    let past = SystemTime::now() - Duration::from_secs(3 * 86_400);
    let expired = Validity {
        not_before: past - Duration::from_secs(86_400),
        not_after: past,
    };
    certs::issue(&certs.dir, "old", Role::Trainer, &[], expired).expect("issue expired");
    let text = refusal(&address, certs.files(Some("old"))).await;
    assert!(text.contains("it has expired"), "{text}");

    // A plaintext client is told what the server may want.
    let text = refusal(&address, TlsFiles::default()).await;
    assert!(text.contains("--tls-ca"), "{text}");

    // The CLI's exit status and words for a refused certificate.
    let out = Command::new(binary("strata"))
        .args([
            "--coordinator",
            &address,
            "--tls-ca",
            &certs.path("ca.pem"),
            "status",
        ])
        .output()
        .expect("strata status");
    assert!(!out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("requires a client certificate"), "{stderr}");

    // A server whose own certificate expired.
    certs::issue(&certs.dir, "old-srv", Role::Node, &[], expired).expect("issue expired");
    let stale = DevServer::start(
        &root.path().join("data-stale"),
        &refs(&certs.server_flags("old-srv")),
    )
    .expect("dev with an expired certificate");
    let text = refusal(&stale.address, certs.files(Some("t1"))).await;
    assert!(
        text.contains("the server's certificate has expired"),
        "{text}"
    );
}

/// Polls `client`'s status until `ready` holds (bounded).
async fn wait_for(
    client: &Client,
    what: &str,
    ready: impl Fn(&pb::StatusResponse) -> bool,
) -> pb::StatusResponse {
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let status = client.status().await;
        if let Ok(s) = &status {
            if ready(s) {
                return s.clone();
            }
        }
        assert!(Instant::now() < deadline, "not {what} in time: {status:?}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

#[tokio::test]
async fn a_shard_moved_between_tls_shard_servers_keeps_every_row_exact() {
    let root = tempfile::tempdir().expect("tempdir");
    let certs = Certs::new(
        &root.path().join("certs"),
        &[
            ("coord", "node"),
            ("n1", "node"),
            ("n2", "node"),
            ("t1", "trainer"),
        ],
    );
    let coordinator = CoordinatorProcess::start(
        "127.0.0.1:0",
        &root.path().join("coord"),
        &refs(
            &[
                vec!["--shards".into(), "4".into()],
                certs.server_flags("coord"),
            ]
            .concat(),
        ),
    )
    .expect("coordinator");
    let address = coordinator.address().to_string();
    let mut shards = Vec::new();
    for name in ["n1", "n2"] {
        shards.push(
            ShardProcess::start(
                &address,
                &root.path().join(name),
                &refs(&certs.server_flags(name)),
            )
            .expect("shard"),
        );
    }
    let client = must_connect(&address, certs.files(Some("t1"))).await;
    wait_for(&client, "two nodes serving", |s| settled(s, 2)).await;

    let dim = 3usize;
    client
        .create_table(sgd_table("e", dim as u32))
        .await
        .expect("create");
    let ids: Vec<u64> = (0..400).collect();
    let mut sums = vec![0f32; ids.len() * dim];
    for round in 0..3u64 {
        let grads: Vec<f32> = (0..ids.len() * dim)
            .map(|k| ((k as u64 + round) % 5) as f32)
            .collect();
        client.push("e", &ids, &grads).await.expect("push");
        for (s, g) in sums.iter_mut().zip(&grads) {
            *s += g;
        }
    }

    let before = client.status().await.expect("status");
    let victim = before
        .nodes
        .iter()
        .find(|n| n.shards > 0)
        .and_then(|n| n.node.clone())
        .expect("a node with shards")
        .id;
    let plan = client.plan_rebalance(&victim).await.expect("plan drain");
    let started = client
        .apply_plan(pb::ApplyPlanRequest {
            plan_json: plan.plan_json,
            max_bytes_per_s: 0,
            max_parallel: 2,
        })
        .await
        .expect("apply drain");
    let done = wait_for(&client, "done draining", |s| {
        s.plan
            .as_ref()
            .is_some_and(|p| p.id == started.plan_id && p.state != "running")
    })
    .await;
    let plan = done.plan.clone().unwrap_or_default();
    assert_eq!(plan.state, "done", "drain over TLS: {}", plan.error);
    assert!(done.shards.iter().all(|s| s.primary != victim), "{done:?}");

    let rows = client.pull("e", &ids).await.expect("pull");
    let expected: Vec<f32> = sums.iter().map(|s| -s).collect();
    assert_eq!(rows, expected, "rows equal minus the sums of the pushes");
}

/// The leaf certificate a fresh TLS connection to `address` is shown.
async fn served_certificate(address: &str, certs: &Certs) -> CertificateDer<'static> {
    let files = certs.files(Some("t1"));
    let tls = strata_proto::tls::ClientTls::load(&files)
        .expect("client TLS")
        .expect("TLS files given");
    let tcp = tokio::net::TcpStream::connect(address).await.expect("tcp");
    let name = ServerName::try_from("127.0.0.1").expect("name");
    let stream = tokio_rustls::TlsConnector::from(tls.config())
        .connect(name, tcp)
        .await
        .expect("TLS handshake");
    let chain = stream.get_ref().1.peer_certificates().expect("a chain");
    chain[0].clone().into_owned()
}

fn certificate_on_disk(path: &str) -> CertificateDer<'static> {
    CertificateDer::from_pem_file(path).expect("certificate file")
}

#[tokio::test]
async fn a_certificate_replaced_on_disk_is_used_by_the_next_connection() {
    strata_proto::tls::install_default_provider();
    let root = tempfile::tempdir().expect("tempdir");
    let certs = Certs::new(
        &root.path().join("certs"),
        &[("srv", "node"), ("t1", "trainer")],
    );
    let dev = DevServer::start(&root.path().join("data"), &refs(&certs.server_flags("srv")))
        .expect("dev");
    let first = certificate_on_disk(&certs.path("srv.pem"));
    assert_eq!(served_certificate(&dev.address, &certs).await, first);

    certs.issue("srv", "node");
    let second = certificate_on_disk(&certs.path("srv.pem"));
    assert_ne!(first, second, "a new certificate was issued");
    // Files are looked at once a second at most.
    let deadline = Instant::now() + Duration::from_secs(10);
    while served_certificate(&dev.address, &certs).await != second {
        assert!(
            Instant::now() < deadline,
            "the new certificate was not served in time"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }

    // A half-written certificate file: the last good pair stays in use.
    let text = std::fs::read_to_string(certs.path("srv.pem")).expect("read");
    std::fs::write(certs.path("srv.pem"), &text[..text.len() / 2]).expect("truncate");
    tokio::time::sleep(Duration::from_millis(1300)).await;
    assert_eq!(served_certificate(&dev.address, &certs).await, second);
    let client = must_connect(&dev.address, certs.files(Some("t1"))).await;
    client
        .list_tables()
        .await
        .expect("served with the last good pair");
}

#[test]
fn plaintext_off_loopback_needs_insecure() {
    let root = tempfile::tempdir().expect("tempdir");
    let out = Command::new(binary("strata-server"))
        .args(["dev", "--listen", "0.0.0.0:0", "--advertise", "127.0.0.1"])
        .arg("--data-dir")
        .arg(root.path().join("data"))
        .env("NO_COLOR", "1")
        .output()
        .expect("strata-server dev");
    assert!(
        !out.status.success(),
        "dev on 0.0.0.0 without TLS must refuse to start"
    );
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("--insecure") && stderr.contains("--tls-cert"),
        "{stderr}"
    );
}
