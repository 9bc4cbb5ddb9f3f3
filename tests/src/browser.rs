//! Headless Chromium (Debian package `chromium`) for tests of the status page: the DOM of a
//! page after its scripts ran, a screenshot of it, and a plain HTTP GET.

use std::fs::File;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{bail, Context};

/// How long one Chromium run may take (it normally takes a few seconds).
const BROWSER_DEADLINE: Duration = Duration::from_secs(90);
/// Virtual time Chromium gives the page's scripts (polls and fetches) before it dumps.
const VIRTUAL_TIME_MS: u32 = 5000;
/// The browser's names on `PATH`, in the order they are tried.
const NAMES: [&str; 2] = ["chromium", "chromium-browser"];

/// The Chromium executable on `PATH`; an error that says how to install it when none is.
pub fn chromium() -> anyhow::Result<PathBuf> {
    let path = std::env::var_os("PATH").unwrap_or_default();
    for dir in std::env::split_paths(&path) {
        for name in NAMES {
            let candidate = dir.join(name);
            if candidate.is_file() {
                return Ok(candidate);
            }
        }
    }
    bail!(
        "headless Chromium not found on PATH (tried {NAMES:?}): the status page tests need it; \
         install the Debian package with `bash scripts/install-deps.sh` (or `apt-get install \
         chromium`)"
    )
}

/// Runs Chromium headless on `url` with `extra` flags and a profile under `scratch`;
/// returns its stdout.
fn run(browser: &Path, scratch: &Path, url: &str, extra: &[String]) -> anyhow::Result<String> {
    let profile = tempfile::tempdir_in(scratch).context("browser profile dir")?;
    let out_path = profile.path().join("stdout.txt");
    let err_path = profile.path().join("stderr.txt");
    let mut child = Command::new(browser)
        .args([
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            "--disable-quic",
            "--no-first-run",
            "--disable-background-networking",
            "--disable-component-update",
            "--disable-sync",
        ])
        .arg(format!(
            "--user-data-dir={}",
            profile.path().join("profile").display()
        ))
        .arg(format!("--virtual-time-budget={VIRTUAL_TIME_MS}"))
        .args(extra)
        .arg(url)
        .stdin(Stdio::null())
        .stdout(File::create(&out_path)?)
        .stderr(File::create(&err_path)?)
        .spawn()
        .with_context(|| format!("starting {}", browser.display()))?;
    let deadline = Instant::now() + BROWSER_DEADLINE;
    let status = loop {
        if let Some(status) = child.try_wait()? {
            break status;
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            let _ = child.wait();
            bail!(
                "{} did not finish within {BROWSER_DEADLINE:?}",
                browser.display()
            );
        }
        std::thread::sleep(Duration::from_millis(50));
    };
    let stdout = std::fs::read_to_string(&out_path).unwrap_or_default();
    if !status.success() {
        let stderr = std::fs::read_to_string(&err_path).unwrap_or_default();
        bail!(
            "{} on {url} exited with {status}: {stderr}",
            browser.display()
        );
    }
    Ok(stdout)
}

/// The DOM of `url` after its scripts ran for a few seconds of virtual time.
pub fn dump_dom(browser: &Path, scratch: &Path, url: &str) -> anyhow::Result<String> {
    run(browser, scratch, url, &["--dump-dom".to_string()])
}

/// Writes a 1280×900 PNG screenshot of `url` to `png`.
pub fn screenshot(browser: &Path, scratch: &Path, url: &str, png: &Path) -> anyhow::Result<()> {
    if let Some(dir) = png.parent() {
        std::fs::create_dir_all(dir)?;
    }
    let _ = std::fs::remove_file(png);
    run(
        browser,
        scratch,
        url,
        &[
            format!("--screenshot={}", png.display()),
            "--window-size=1280,900".to_string(),
        ],
    )?;
    let bytes = std::fs::read(png).with_context(|| format!("reading {}", png.display()))?;
    if !bytes.starts_with(b"\x89PNG") {
        bail!("{} is not a PNG", png.display());
    }
    Ok(())
}

/// Where tests write files for people to look at: `test-artifacts/` in the cargo target dir.
pub fn artifacts_dir() -> PathBuf {
    let exe = std::env::current_exe().expect("current exe");
    // target/<profile>/deps/<test binary>
    exe.ancestors()
        .nth(3)
        .map(|target| target.join("test-artifacts"))
        .unwrap_or_else(|| std::env::temp_dir().join("strata-test-artifacts"))
}

/// `GET path` from `addr` over HTTP/1.1: the status code and the body.
pub async fn http_get(addr: &str, path: &str) -> anyhow::Result<(u16, String)> {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let mut stream = tokio::net::TcpStream::connect(addr)
        .await
        .with_context(|| format!("connecting to {addr}"))?;
    let request = format!("GET {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n\r\n");
    stream.write_all(request.as_bytes()).await?;
    let mut response = String::new();
    tokio::time::timeout(
        Duration::from_secs(30),
        stream.read_to_string(&mut response),
    )
    .await
    .context("no whole answer within 30s")??;
    let (head, body) = response
        .split_once("\r\n\r\n")
        .with_context(|| format!("not an HTTP answer: {response}"))?;
    let code = head
        .split_whitespace()
        .nth(1)
        .and_then(|c| c.parse().ok())
        .with_context(|| format!("no status code in {head}"))?;
    Ok((code, body.to_string()))
}
