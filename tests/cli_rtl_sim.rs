//! `divqat rtl`, `divqat sim`, `divqat eval --backend rtl` and `divqat bench sim` end
//! to end on a 2x2 accelerator. Skipped (with a note) when Verilator is missing.

use std::path::{Path, PathBuf};

mod common;
use common::{divqat, eval_json, json_of};

fn verilator_present() -> bool {
    let found = std::env::var_os("PATH")
        .is_some_and(|path| std::env::split_paths(&path).any(|dir| dir.join("verilator").is_file()));
    if !found {
        println!("SKIPPED: verilator not found on PATH; run scripts/setup.sh");
    }
    found
}

/// A small random model written by `divqat random-model`.
fn tiny_model(dir: &Path) -> PathBuf {
    let path = dir.join("tiny.qnn");
    let out = divqat()
        .args([
            "random-model",
            "--arch",
            "small-cnn",
            "--width",
            "0.25",
            "--seed",
            "3",
            "--out",
        ])
        .arg(&path)
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    path
}

#[test]
fn rtl_writes_the_verilog_and_a_report() {
    let dir = tempfile::tempdir().unwrap();
    let out = divqat()
        .args(["rtl", "--hw", "2x2", "--json", "--out"])
        .arg(dir.path())
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let report = json_of(&out.stdout);
    let verilog = std::fs::read_to_string(dir.path().join("accelerator.v")).unwrap();
    assert!(verilog.contains("module top("), "top module");
    assert_eq!(report["verilog_bytes"].as_u64(), Some(verilog.len() as u64));
    assert!(report["modules"].as_u64().unwrap() > 10, "{report}");
    assert!(report["register_bits"].as_u64().unwrap() > 1000, "{report}");
    let memories = report["memories"].as_array().unwrap();
    // The 2x2 preset's activation buffer: 8192 words of 2 bytes.
    assert!(
        memories.iter().any(|m| m["words"] == 8192 && m["width"] == 16),
        "{report}"
    );
    let saved = json_of(&std::fs::read(dir.path().join("rtl-report.json")).unwrap());
    assert_eq!(saved["register_bits"], report["register_bits"]);
    assert_eq!(saved["hw"]["rows"], 2);

    // Text output names the memories.
    let out = divqat()
        .args(["rtl", "--hw", "2x2", "--out"])
        .arg(dir.path())
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(text.contains("register bits") && text.contains("act_buf"), "{text}");
}

#[test]
fn sim_matches_the_reference_and_the_cycle_model() {
    if !verilator_present() {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let model = tiny_model(dir.path());
    let out = divqat()
        .args(["sim", "--hw", "2x2", "--limit", "3", "--json", "--model"])
        .arg(&model)
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let report = json_of(&out.stdout);
    let keys: Vec<&str> = report.as_object().unwrap().keys().map(String::as_str).collect();
    let mut expected = [
        "images",
        "mismatches",
        "accuracy",
        "cycles_per_image",
        "cycle_model_error",
        "sim_cycles_per_second",
        "images_per_second",
        "build_seconds",
    ];
    expected.sort();
    let mut sorted = keys.clone();
    sorted.sort();
    assert_eq!(sorted, expected);
    assert_eq!(report["images"], 3);
    assert_eq!(report["mismatches"], 0);
    assert!(report["cycles_per_image"].as_f64().unwrap() > 1000.0, "{report}");
    let error = report["cycle_model_error"].as_f64().unwrap();
    println!("sim 2x2: {report}");
    assert!(error.abs() < 0.05, "cycle model off by {:.2}%", 100.0 * error);

    // Text: the per-layer table of the first image.
    let out = divqat()
        .args(["sim", "--hw", "2x2", "--limit", "1", "--model"])
        .arg(&model)
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        text.contains("model cyc") && text.contains("b0_conv") && text.contains("0 mismatches"),
        "{text}"
    );
}

#[test]
fn a_too_short_timeout_is_one_clear_line() {
    if !verilator_present() {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let model = tiny_model(dir.path());
    let out = divqat()
        .args([
            "sim",
            "--hw",
            "2x2",
            "--limit",
            "1",
            "--timeout-cycles",
            "500",
            "--model",
        ])
        .arg(&model)
        .output()
        .unwrap();
    assert!(!out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    let last = stderr.trim_end().lines().last().unwrap_or("");
    assert!(
        last.starts_with("error: image 0: ") && last.contains("timeout of 500 cycles") && last.contains("status 0"),
        "{stderr}"
    );
}

#[test]
fn eval_with_the_rtl_backend_agrees_with_the_reference() {
    if !verilator_present() {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let model = tiny_model(dir.path());
    let eval = |backend: &str| eval_json(&model, backend, "2x2", 4);
    let (rtl, reference) = (eval("rtl"), eval("reference"));
    assert_eq!(rtl["backend"], "rtl");
    assert_eq!(rtl["correct"], reference["correct"]);
}

#[test]
fn bench_sim_reports_speed_against_the_target() {
    if !verilator_present() {
        return;
    }
    let out = divqat()
        .args(["bench", "sim", "--hw", "2x2", "--images", "1", "--json"])
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let report = json_of(&out.stdout);
    println!("bench sim 2x2: {report}");
    assert!(report["sim_cycles_per_second"].as_f64().unwrap() > 0.0);
    assert_eq!(report["target_cycles_per_second"].as_f64(), Some(1e6));
    assert!(report["ratio_to_target"].as_f64().unwrap() > 0.0);
}
