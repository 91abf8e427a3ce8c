//! The `divqat` program end to end: real datasets, real model files, bad input.

use std::path::{Path, PathBuf};

use assert_cmd::Command;
use compiler::synthetic::{self, Precision};

mod common;
use common::{divqat, eval_json, json_of};

/// Run and expect failure with exactly one line on stderr that names `needle`.
fn assert_one_line_failure(cmd: &mut Command, needle: &str) {
    let out = cmd.output().unwrap();
    assert!(!out.status.success(), "expected failure");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!stderr.contains("panicked"), "panic: {stderr}");
    assert_eq!(
        stderr.trim_end().lines().count(),
        1,
        "one-line cause expected: {stderr}"
    );
    assert!(stderr.contains(needle), "'{needle}' not in: {stderr}");
}

fn write_model(dir: &Path, name: &str) -> PathBuf {
    let path = dir.join(name);
    let model = synthetic::small_cnn([1, 28, 28], 10, Precision::W8A8, 5).unwrap();
    compiler::save(&model, &path).unwrap();
    path
}

#[test]
fn data_list_json_shows_installed_datasets_with_counts() {
    let out = divqat().args(["data", "list", "--json"]).output().unwrap();
    assert!(out.status.success());
    let rows = json_of(&out.stdout);
    let row = |id: &str| rows.as_array().unwrap().iter().find(|r| r["id"] == id).unwrap().clone();
    let fashion = row("fashion-mnist");
    assert_eq!(
        (fashion["train"].as_u64(), fashion["test"].as_u64()),
        (Some(60000), Some(10000))
    );
    assert_eq!(fashion["installed"], true);
    assert_eq!(fashion["shape"], serde_json::json!([1, 28, 28]));
    let animal = row("animal-mnist");
    assert_eq!(
        (animal["train"].as_u64(), animal["installed"].as_bool()),
        (Some(10000), Some(true))
    );
    assert_eq!(row("cifar10")["installed"], false);
}

#[test]
fn eval_json_reports_accuracy_and_speed() {
    let dir = tempfile::tempdir().unwrap();
    let model = write_model(dir.path(), "m.qnn");
    let out = divqat()
        .args([
            "eval",
            "--dataset",
            "fashion-mnist",
            "--backend",
            "reference",
            "--limit",
            "300",
            "--json",
            "--model",
        ])
        .arg(&model)
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let report = json_of(&out.stdout);
    assert_eq!(report["images"], 300);
    assert_eq!(report["backend"], "reference");
    let accuracy = report["accuracy"].as_f64().unwrap();
    assert!((0.0..=1.0).contains(&accuracy));
    assert!(report["images_per_second"].as_f64().unwrap() > 0.0);
}

#[test]
fn inspect_lists_layers_parameters_and_macs() {
    let dir = tempfile::tempdir().unwrap();
    let model = write_model(dir.path(), "m.qnn");
    let out = divqat()
        .args(["inspect", "--json", "--model"])
        .arg(&model)
        .output()
        .unwrap();
    assert!(out.status.success());
    let summary = json_of(&out.stdout);
    assert_eq!(summary["macs_per_image"], 2_794_240);
    assert_eq!(summary["parameters"], 93_322);
    assert_eq!(summary["layers"][0]["op"], "conv2d");
    assert_eq!(summary["layers"][0]["weight_bits"], 8);
    let text = divqat().args(["inspect", "--model"]).arg(&model).output().unwrap();
    assert!(String::from_utf8_lossy(&text.stdout).contains("total: 93322 parameters, 2794240 MACs per image"));
}

#[test]
fn corrupted_model_files_are_refused_with_one_line() {
    let dir = tempfile::tempdir().unwrap();
    let model = write_model(dir.path(), "m.qnn");
    let mut bytes = std::fs::read(&model).unwrap();
    let last = bytes.len() - 1;
    bytes[last] ^= 0x10; // a weight byte of the last tensor
    std::fs::write(&model, &bytes).unwrap();
    assert_one_line_failure(divqat().args(["inspect", "--model"]).arg(&model), "checksum mismatch");
    assert_one_line_failure(divqat().args(["eval", "--model"]).arg(&model), "m.qnn");
}

#[test]
fn wrong_version_and_out_of_range_weights_are_refused() {
    let dir = tempfile::tempdir().unwrap();
    let mut model = synthetic::small_cnn(
        [1, 28, 28],
        10,
        Precision {
            weight_bits: 4,
            activation_bits: 8,
        },
        1,
    )
    .unwrap();
    model.format_version = 2;
    let path = dir.path().join("v2.qnn");
    std::fs::write(&path, compiler::format::to_bytes(&model).unwrap()).unwrap();
    assert_one_line_failure(
        divqat().args(["inspect", "--model"]).arg(&path),
        "unsupported format version 2",
    );

    model.format_version = 1;
    model.layers[2].op.mac_params_mut().unwrap().weights[0] = -9;
    let path = dir.path().join("w.qnn");
    std::fs::write(&path, compiler::format::to_bytes(&model).unwrap()).unwrap();
    assert_one_line_failure(
        divqat().args(["inspect", "--model"]).arg(&path),
        "layer 'b2_conv': field 'weights': value -9 at index 0 outside the 4-bit signed range [-8, 7]",
    );
}

#[test]
fn mismatched_dataset_and_missing_files_are_clear_errors() {
    let dir = tempfile::tempdir().unwrap();
    let model = write_model(dir.path(), "m.qnn");
    assert_one_line_failure(
        divqat().args(["eval", "--dataset", "digits", "--model"]).arg(&model),
        "model input is [1, 28, 28] but digits images are [1, 8, 8]",
    );
    assert_one_line_failure(
        divqat().args(["inspect", "--model", "/nonexistent/x.qnn"]),
        "/nonexistent/x.qnn: cannot read",
    );
    assert_one_line_failure(
        divqat()
            .args(["eval", "--dataset", "cifar10", "--data-dir"])
            .arg(dir.path())
            .arg("--model")
            .arg(&model),
        "test_batch.bin: not found",
    );
}

#[test]
fn train_json_prints_the_summary_as_the_last_line() {
    let dir = tempfile::tempdir().unwrap();
    let fp = dir.path().join("fp");
    let tiny = [
        "--epochs",
        "1",
        "--train-limit",
        "256",
        "--test-limit",
        "100",
        "--width",
        "0.25",
        "--json",
    ];
    let out = divqat()
        .args(["train", "--mode", "fp"])
        .args(tiny)
        .arg("--out")
        .arg(&fp)
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let out = divqat()
        .args(["train", "--mode", "qat", "--wbits", "4", "--abits", "4"])
        .args(tiny)
        .arg("--teacher")
        .arg(&fp)
        .arg("--out")
        .arg(dir.path().join("q"))
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let stdout = String::from_utf8_lossy(&out.stdout);
    let summary = json_of(stdout.lines().last().unwrap().as_bytes());
    for key in [
        "mode",
        "test_accuracy",
        "fakequant_accuracy",
        "integer_accuracy",
        "agreement",
        "kl_to_teacher",
        "epochs",
        "seconds",
    ] {
        assert!(summary.get(key).is_some(), "missing {key}: {summary}");
    }
    assert_eq!(summary["mode"], "qat");
    assert_eq!(summary["agreement"], 1.0);
    // The exported model is a valid input for the rest of the tool.
    let model = dir.path().join("q/model.qnn");
    assert!(divqat()
        .args(["inspect", "--model"])
        .arg(&model)
        .output()
        .unwrap()
        .status
        .success());
    assert_one_line_failure(
        divqat()
            .args(["train", "--mode", "qat"])
            .args(tiny)
            .arg("--out")
            .arg(dir.path().join("x")),
        "config field 'teacher'",
    );
    assert_one_line_failure(
        divqat()
            .args(["train", "--mode", "fp", "--wbits", "1", "--out"])
            .arg(dir.path().join("y")),
        "config field 'weight_bits'",
    );
}

#[test]
fn compile_writes_a_build_and_the_functional_backend_agrees() {
    let dir = tempfile::tempdir().unwrap();
    let model = write_model(dir.path(), "m.qnn");
    let build = dir.path().join("build");
    let out = divqat()
        .args(["compile", "--hw", "4x8", "--json", "--model"])
        .arg(&model)
        .arg("--out")
        .arg(&build)
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let report = json_of(&out.stdout);
    for key in [
        "hw",
        "layers",
        "total_cycles",
        "utilization",
        "program_bytes",
        "dram_bytes",
        "compile_seconds",
    ] {
        assert!(report.get(key).is_some(), "missing {key}");
    }
    assert_eq!(report["hw"]["rows"], 4);
    assert_eq!(report["layers"][0]["kind"], "conv2d");
    for file in [
        "program.bin",
        "program.s",
        "memory.bin",
        "hw.toml",
        "layout.json",
        "report.json",
    ] {
        assert!(build.join(file).is_file(), "{file} missing");
    }
    let program = std::fs::read(build.join("program.bin")).unwrap();
    let text = std::fs::read_to_string(build.join("program.s")).unwrap();
    assert_eq!(
        compiler::isa::assemble(&text).unwrap(),
        compiler::isa::decode(&program).unwrap()
    );

    let eval = |backend: &str| eval_json(&model, backend, "3x5", 40);
    let (functional, reference) = (eval("functional"), eval("reference"));
    assert_eq!(functional["correct"], reference["correct"]);
    assert!(functional["cycles_per_image"].as_u64().unwrap() > 0);
}

#[test]
fn impossible_hardware_is_refused_with_the_reason() {
    let dir = tempfile::tempdir().unwrap();
    let model = write_model(dir.path(), "m.qnn");
    let out = dir.path().join("b");
    assert_one_line_failure(
        divqat()
            .args(["compile", "--hw", "0x4", "--model"])
            .arg(&model)
            .arg("--out")
            .arg(&out),
        "hardware config field 'rows': must be 1..=32",
    );
    let hw = dir.path().join("hw.toml");
    let toml = compiler::hw::HwConfig {
        weight_bits: 4,
        ..compiler::hw::HwConfig::preset(2, 2).unwrap()
    }
    .to_toml();
    std::fs::write(&hw, toml).unwrap();
    assert_one_line_failure(
        divqat()
            .args(["compile", "--model"])
            .arg(&model)
            .arg("--hw")
            .arg(&hw)
            .arg("--out")
            .arg(&out),
        "layer 'b0_conv': 8-bit weights but the hardware supports 4 bits",
    );
    assert!(!out.join("program.bin").exists());
}
