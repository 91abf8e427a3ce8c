//! Helpers shared by the end-to-end tests of the `divqat` program.
#![allow(dead_code)] // each test crate uses its own subset

use std::path::Path;

use assert_cmd::Command;

pub fn divqat() -> Command {
    Command::cargo_bin("divqat").unwrap()
}

pub fn json_of(out: &[u8]) -> serde_json::Value {
    serde_json::from_slice(out).unwrap_or_else(|e| panic!("not JSON ({e}): {}", String::from_utf8_lossy(out)))
}

/// `divqat eval --json` of `model` on the first `limit` test images with `backend`
/// on `hw`.
pub fn eval_json(model: &Path, backend: &str, hw: &str, limit: usize) -> serde_json::Value {
    let out = divqat()
        .args([
            "eval",
            "--limit",
            &limit.to_string(),
            "--json",
            "--hw",
            hw,
            "--backend",
            backend,
            "--model",
        ])
        .arg(model)
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    json_of(&out.stdout)
}
