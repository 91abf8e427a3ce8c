//! `divqat attack` and `divqat experiment` end to end on a random small CNN.
#![cfg(feature = "train")]

use std::path::{Path, PathBuf};

use compiler::synthetic::{self, Precision};

mod common;
use common::{divqat, json_of};

fn victim_dir(dir: &Path) -> PathBuf {
    let victim = dir.join("victim");
    std::fs::create_dir_all(&victim).unwrap();
    let model = synthetic::small_cnn([1, 28, 28], 10, Precision::W8A8, 3).unwrap();
    compiler::save(&model, &victim.join("model.qnn")).unwrap();
    victim
}

#[test]
fn attack_json_reports_every_metric() {
    let dir = tempfile::tempdir().unwrap();
    let victim = victim_dir(dir.path());
    let out = divqat()
        .args(["attack", "--victim"])
        .arg(&victim)
        .args([
            "--oracle",
            "reference",
            "--defense",
            "round:decimals=2",
            "--attack",
            "knockoff",
            "--queries",
            "animal-mnist",
            "--budget",
            "150",
            "--surrogate",
            "small-cnn",
            "--width",
            "0.25",
            "--epochs",
            "1",
            "--test-limit",
            "100",
            "--seed",
            "2",
            "--json",
        ])
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let j = json_of(&out.stdout);
    for key in [
        "victim_accuracy",
        "defended_accuracy",
        "surrogate_accuracy",
        "fidelity",
        "l1",
    ] {
        let v = j[key].as_f64().unwrap_or_else(|| panic!("{key} missing: {j}"));
        assert!((0.0..=2.0).contains(&v), "{key} = {v}");
    }
    assert_eq!(j["queries"], 150);
    assert_eq!(j["oracle"], "reference");
    assert_eq!(j["defense"], "round:decimals=2");
    assert_eq!(j["attack"], "knockoff");
}

#[test]
fn attack_errors_are_one_line() {
    let dir = tempfile::tempdir().unwrap();
    let out = divqat()
        .args(["attack", "--victim"])
        .arg(dir.path().join("missing"))
        .args(["--budget", "10", "--json"])
        .output()
        .unwrap();
    assert!(!out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(stderr.trim_end().lines().count(), 1, "{stderr}");
    assert!(stderr.contains("model.qnn"), "{stderr}");
    let out = divqat()
        .args(["attack", "--victim", ".", "--defense", "bogus:x=1"])
        .output()
        .unwrap();
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("bogus"));
}

#[test]
fn experiment_reruns_nothing_when_done() {
    let dir = tempfile::tempdir().unwrap();
    let victim = victim_dir(dir.path());
    let config = dir.path().join("grid.toml");
    std::fs::write(
        &config,
        format!(
            "victims = [{:?}]\ndefenses = [\"none\", \"topk:k=1\"]\nbudgets = [100]\nattacks = [\"knockoff\"]\ntest_limit = 100\n[surrogate]\nwidth = 0.25\nepochs = 1\n",
            victim.display().to_string()
        ),
    )
    .unwrap();
    let out_dir = dir.path().join("out");
    let run = || {
        let out = divqat()
            .args(["experiment", "--json", "--config"])
            .arg(&config)
            .arg("--out")
            .arg(&out_dir)
            .output()
            .unwrap();
        assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
        json_of(&out.stdout)
    };
    let first = run();
    assert_eq!((first["cells"].as_u64(), first["ran"].as_u64()), (Some(2), Some(2)));
    let csv = std::fs::read_to_string(out_dir.join("results.csv")).unwrap();
    let second = run();
    assert_eq!((second["ran"].as_u64(), second["skipped"].as_u64()), (Some(0), Some(2)));
    assert_eq!(std::fs::read_to_string(out_dir.join("results.csv")).unwrap(), csv);
    assert!(out_dir.join("tradeoff-knockoff.svg").is_file());
    assert!(out_dir.join("fidelity-vs-l1-knockoff.svg").is_file());
}
