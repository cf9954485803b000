//! The status page in a real browser: headless Chromium driven by Selenium
//! (`tests/clients/status_browser.py`) while `bench` sends JSON and line
//! protocol and a consumer group falls behind and catches up. The script
//! reads the page's text (not the JSON): both protocols' rates rise, the
//! group's lag grows then drops to 0, the disk figure matches `du`, and a
//! server with API keys shows its 401 message, no figures, until a key is
//! entered. SEVERE browser console entries fail it. It writes the
//! README's screenshot, `docs/status.png`.
//!
//! Needs Debian's `chromium` and `chromium-driver` and Python with
//! `selenium` at `METRICSTREAM_PYTHON`: `source scripts/deps.sh` installs
//! and sets them. Without them the test fails, saying so: it never skips.

mod common;

use std::path::Path;
use std::process::Command;

use common::{Server, BIN};

const SCRIPT: &str = concat!(
    env!("CARGO_MANIFEST_DIR"),
    "/tests/clients/status_browser.py"
);
const HINT: &str = "run ./scripts/test.sh, or `source scripts/deps.sh` (it installs Debian's \
                    chromium and chromium-driver and selenium in a venv, and exports \
                    METRICSTREAM_PYTHON), then run it again";

fn python() -> String {
    let python = std::env::var("METRICSTREAM_PYTHON")
        .unwrap_or_else(|_| panic!("METRICSTREAM_PYTHON is not set: {HINT}"));
    let out = Command::new(&python)
        .args(["-c", "import selenium"])
        .output()
        .unwrap_or_else(|e| panic!("METRICSTREAM_PYTHON={python} cannot be run ({e}): {HINT}"));
    assert!(
        out.status.success(),
        "METRICSTREAM_PYTHON={python} lacks selenium: {HINT}"
    );
    python
}

fn program(name: &str) -> String {
    for dir in ["/usr/bin", "/usr/lib/chromium"] {
        let path = Path::new(dir).join(name);
        if path.exists() {
            return path.display().to_string();
        }
    }
    panic!("{name} is not installed: {HINT}");
}

#[test]
fn the_page_shows_load_lag_and_disk_and_refuses_without_a_key() {
    let python = python();
    let (chromium, chromedriver) = (program("chromium"), program("chromedriver"));
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start(dir.path(), &["--partitions", "2"]);
    let keyed_dir = tempfile::tempdir().unwrap();
    let keyed = Server::start(keyed_dir.path(), &["--api-key", "ops:s3cret-page-key"]);
    let screenshot = Path::new(env!("CARGO_MANIFEST_DIR")).join("docs/status.png");
    let out = Command::new(&python)
        .arg(SCRIPT)
        .args(["--url", &format!("http://{}", server.addr)])
        .args(["--keyed-url", &format!("http://{}", keyed.addr)])
        .args(["--key", "s3cret-page-key", "--bin", BIN])
        .arg("--data-dir")
        .arg(dir.path())
        .arg("--screenshot")
        .arg(&screenshot)
        .args(["--chromium", &chromium, "--chromedriver", &chromedriver])
        .output()
        .expect("run the browser script");
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "the browser check failed:\n{}\n{stdout}\nserver log:\n{}",
        String::from_utf8_lossy(&out.stderr),
        server.log_text()
    );
    let seen: serde_json::Value =
        serde_json::from_str(stdout.trim()).expect("the script's JSON line");
    // The script asserted each step; the figures it read are checked here
    // once more, so a script that stopped looking would fail too.
    let lags: Vec<f64> = seen["lag"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|v| v.as_f64())
        .collect();
    assert!(lags.iter().any(|l| *l > 0.0), "{seen}");
    assert_eq!(lags.last(), Some(&0.0), "{seen}");
    assert!(seen["unauthorized"].as_str().unwrap().contains("401"));
    assert!(screenshot.exists());
    eprintln!("{seen}");
}
