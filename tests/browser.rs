//! The pages in a real browser: runs the Playwright tests in `tests/browser/`
//! (Node's test runner, headless Chromium) against the hub binary this build
//! made. Without Node or Chromium the test is built as ignored (see
//! `build.rs`); in CI either one missing fails the run, as for the other
//! services.

use std::path::Path;
use std::process::Command;

/// Where the tests find Chromium: Debian's package, unless told otherwise.
fn chromium() -> String {
    std::env::var("HUB_TEST_CHROMIUM").unwrap_or_else(|_| "/usr/bin/chromium".to_owned())
}

/// `None` when the tool runs; otherwise why not.
fn missing(program: &str, arg: &str) -> Option<String> {
    match Command::new(program).arg(arg).output() {
        Ok(out) if out.status.success() => None,
        Ok(out) => Some(format!(
            "`{program} {arg}` failed: {}",
            String::from_utf8_lossy(&out.stderr)
        )),
        Err(e) => Some(format!("{program}: {e}")),
    }
}

#[test]
#[cfg_attr(
    skip_browser_tests,
    ignore = "Node or Chromium is missing (README, Test)"
)]
fn pages_work_in_a_real_browser() {
    // Set by build.rs when `CI` is truthy: then nothing may be skipped.
    let in_ci = option_env!("HUB_TEST_IN_CI").is_some();
    let chromium = chromium();
    let problems: Vec<String> = [
        missing("node", "--version"),
        missing(&chromium, "--version"),
    ]
    .into_iter()
    .flatten()
    .collect();
    if !problems.is_empty() {
        let why = problems.join("; ");
        assert!(
            !in_ci,
            "in CI the browser tests must run, but cannot: {why}"
        );
        eprintln!("skipping the browser tests ({why}): install Node and Chromium to run them");
        return;
    }

    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    if !root.join("node_modules").is_dir() {
        let status = Command::new("npm")
            .args(["ci", "--no-audit", "--no-fund"])
            .current_dir(root)
            .status()
            .expect("npm runs");
        assert!(status.success(), "npm ci failed");
    }

    let status = Command::new("node")
        .args(["--test", "tests/browser/"])
        .current_dir(root)
        .env("HUB_BIN", env!("CARGO_BIN_EXE_hub"))
        .env("HUB_TEST_CHROMIUM", &chromium)
        .status()
        .expect("node runs");
    assert!(
        status.success(),
        "the browser tests failed (their report is above; screenshots in target/browser-screenshots/)"
    );
}
