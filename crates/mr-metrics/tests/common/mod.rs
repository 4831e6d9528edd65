//! Helpers shared by the CLI test files.

#![allow(dead_code)]

use assert_cmd::Command;
use serde_json::Value;

/// The `mr-metrics` binary.
pub fn bin() -> Command {
    Command::cargo_bin("mr-metrics").unwrap()
}

/// Runs `cmd`, expects success, parses stdout as JSON.
pub fn json_of(cmd: &mut Command) -> Value {
    let out = cmd.assert().success().get_output().stdout.clone();
    serde_json::from_slice(&out).expect("stdout is JSON")
}

/// Runs `cmd`, expects exit 2 and exactly one stderr line starting with `error:` that contains
/// `needle`, and nothing on stdout.
pub fn bad_input(cmd: &mut Command, needle: &str) {
    let out = cmd.assert().code(2).get_output().clone();
    let err = String::from_utf8(out.stderr).unwrap();
    assert_eq!(
        err.trim_end().lines().count(),
        1,
        "one line expected: {err}"
    );
    assert!(err.starts_with("error: "), "{err}");
    assert!(err.contains(needle), "expected '{needle}' in: {err}");
    assert!(out.stdout.is_empty());
}
