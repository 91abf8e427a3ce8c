//! `divqat flow` end to end on a tiny configuration (tests/flow-tiny.toml: 2000
//! training images, one epoch per run, a 2x2 array, 2 simulated images, 100/200
//! queries): a run stopped with --to continues with the remaining steps, the
//! report has every section with real numbers, a rerun skips every step, and a
//! run killed in the middle of a step resumes it without redoing finished work.
//!
//! The synthesize step runs the real board flow (yosys on the 2x2 iCEBreaker
//! design) through the default synthesis cache, so it costs nothing once the
//! main job (scripts/demo.sh) or an earlier test run synthesized the same design,
//! and 2-3 minutes on a cold cache.
#![cfg(feature = "train")]

mod common;

use std::path::Path;
use std::time::{Duration, Instant};

use common::{divqat, json_of};

const TINY: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/flow-tiny.toml");

/// `divqat flow --json` with `args`; the status of every step, in order.
fn flow(out: &Path, config: &Path, args: &[&str]) -> Vec<(String, String)> {
    let output = divqat()
        .args(["flow", "--json", "--threads", "2", "--config"])
        .arg(config)
        .arg("--out")
        .arg(out)
        .args(args)
        .output()
        .unwrap();
    assert!(output.status.success(), "{}", String::from_utf8_lossy(&output.stderr));
    let summary = json_of(&output.stdout);
    summary["steps"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| {
            (
                s["step"].as_str().unwrap().to_string(),
                s["status"].as_str().unwrap().to_string(),
            )
        })
        .collect()
}

fn statuses<'a>(steps: &'a [(String, String)], names: &[&str]) -> Vec<&'a str> {
    names
        .iter()
        .map(|n| {
            steps
                .iter()
                .find(|(s, _)| s == n)
                .unwrap_or_else(|| panic!("no step {n}"))
                .1
                .as_str()
        })
        .collect()
}

const FIRST: [&str; 7] = [
    "train-fp",
    "train-qat",
    "train-divqat",
    "evaluate",
    "compile",
    "simulate",
    "attack",
];
const LAST: [&str; 2] = ["synthesize", "report"];

/// The section's text: from its heading to the next `## `.
fn section<'a>(report: &'a str, heading: &str) -> &'a str {
    let start = report
        .find(heading)
        .unwrap_or_else(|| panic!("no section {heading:?}:\n{report}"));
    let rest = &report[start + heading.len()..];
    &rest[..rest.find("\n## ").unwrap_or(rest.len())]
}

/// Table rows of a section whose first cell is `first`.
fn row<'a>(section: &'a str, first: &str) -> Vec<&'a str> {
    let line = section
        .lines()
        .find(|l| l.starts_with(&format!("| {first} |")))
        .unwrap_or_else(|| panic!("no row {first:?} in:\n{section}"));
    line.trim_matches('|').split(" | ").map(str::trim).collect()
}

fn is_percent(s: &str) -> bool {
    s.trim_matches('*')
        .strip_suffix('%')
        .is_some_and(|v| v.split(' ').next().unwrap().parse::<f64>().is_ok())
}

fn check_report(out: &Path) {
    let md = std::fs::read_to_string(out.join("report.md")).unwrap();
    let accuracy = section(&md, "## Accuracy");
    for model in ["QAT", "DivQAT"] {
        let r = row(accuracy, model);
        assert!(r[1..4].iter().all(|c| is_percent(c)), "{r:?}");
        assert!(is_percent(r[4].split(" (").next().unwrap()), "{r:?}");
    }
    assert!(is_percent(row(accuracy, "FP")[1]));
    let exact = section(&md, "## Bit-exactness");
    for victim in ["QAT", "DivQAT"] {
        let r = row(exact, victim);
        assert_eq!(
            (r[1], r[3], r[4], r[5]),
            ("2", "0", "0", "4 of 4 (animal-mnist)"),
            "{r:?}"
        );
        assert_eq!(r[6], "**bit-exact**");
    }
    let cycles = section(&md, "## Cycles and utilization per layer");
    let total = row(cycles, "**total**");
    assert_eq!(total[3], total[4], "cycle model vs RTL: {total:?}");
    assert!(total[3].replace(',', "").parse::<u64>().unwrap() > 0);
    assert!(is_percent(row(cycles, "b2_conv")[7]), "{cycles}");
    let board = section(&md, "## Board: icebreaker (up5k)");
    let lut = row(board, "LUT");
    assert!(lut[1].replace(',', "").parse::<u64>().unwrap() > 0, "{lut:?}");
    assert!(board.contains("does not fit") || board.contains("fmax"), "{board}");
    let attacks = section(&md, "## Extraction attacks");
    for victim in ["QAT", "DivQAT"] {
        for defense in ["none", "reverse-sigmoid:beta=0.7,gamma=0.4"] {
            let rows: Vec<Vec<&str>> = attacks
                .lines()
                .filter(|l| l.starts_with(&format!("| {victim} | {defense} |")))
                .map(|l| l.trim_matches('|').split(" | ").map(str::trim).collect())
                .collect();
            assert_eq!(
                rows.len(),
                2,
                "budgets 100 and 200 for {victim} / {defense}:\n{attacks}"
            );
            assert!(rows.iter().all(|r| is_percent(r[8]) && is_percent(r[7])), "{rows:?}");
        }
    }
    for figure in ["fidelity-vs-queries.svg", "surrogate-accuracy-vs-queries.svg"] {
        assert!(md.contains(&format!("](report/{figure})")));
        let svg = std::fs::read_to_string(out.join("report").join(figure)).unwrap();
        assert!(
            svg.contains("QAT / none") && svg.contains("DivQAT / reverse-sigmoid"),
            "{svg}"
        );
    }
    let how = section(&md, "## How this report was made");
    assert!(
        how.contains("divqat flow") && how.contains("[attack.surrogate]"),
        "{how}"
    );
    let html = std::fs::read_to_string(out.join("report.html")).unwrap();
    assert_eq!(html.matches("<svg").count(), 2);
    assert!(!html.contains("src=") && !html.contains("href="), "self-contained");
    assert!(html.contains("<h2>Board: icebreaker (up5k)</h2>"));
}

#[test]
fn flow_runs_resumes_skips_and_reports() {
    let started = Instant::now();
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("flow");
    let tiny = Path::new(TINY);

    let steps = flow(&out, tiny, &["--to", "attack"]);
    assert_eq!(statuses(&steps, &FIRST), ["ran"; 7]);
    assert_eq!(statuses(&steps, &LAST), ["not-selected"; 2]);

    let steps = flow(&out, tiny, &[]);
    assert_eq!(
        statuses(&steps, &FIRST),
        ["skipped"; 7],
        "finished steps are not redone"
    );
    assert_eq!(statuses(&steps, &LAST), ["ran"; 2]);
    check_report(&out);
    assert!(std::fs::read_to_string(out.join("flow.toml"))
        .unwrap()
        .contains("train_limit = 2000"));

    let steps = flow(&out, tiny, &[]);
    assert!(steps.iter().all(|(_, s)| s == "skipped"), "{steps:?}");

    // A changed attack setting reruns the attack and the report only; kill the run
    // once the first attack cell is recorded, and the rerun resumes the attack.
    let changed = dir.path().join("changed.toml");
    let text = std::fs::read_to_string(tiny)
        .unwrap()
        .replace("budgets = [100, 200]", "budgets = [120, 200]");
    std::fs::write(&changed, text).unwrap();
    let cells = out.join("attack/cells.jsonl");
    let inputs = out.join("attack/.inputs");
    let old_inputs = std::fs::read_to_string(&inputs).unwrap();
    let mut child = std::process::Command::new(env!("CARGO_BIN_EXE_divqat"))
        .args(["flow", "--json", "--threads", "2", "--config"])
        .arg(&changed)
        .arg("--out")
        .arg(&out)
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    let deadline = Instant::now() + Duration::from_secs(240);
    let recorded = |p: &Path| std::fs::read_to_string(p).map_or(0, |t| t.lines().count());
    while std::fs::read_to_string(&inputs).map_or(true, |t| t == old_inputs) || recorded(&cells) < 1 {
        assert!(Instant::now() < deadline, "no attack cell recorded");
        assert!(
            child.try_wait().unwrap().is_none(),
            "the flow ended before it could be interrupted"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    child.kill().unwrap();
    child.wait().unwrap();
    let done_before = recorded(&cells);
    assert!(done_before < 8, "interrupted before the last cell");
    let steps = flow(&out, &changed, &[]);
    assert_eq!(statuses(&steps, &FIRST[..6]), ["skipped"; 6]);
    assert_eq!(
        statuses(&steps, &["attack", "synthesize", "report"]),
        ["resumed", "skipped", "ran"]
    );
    assert_eq!(recorded(&cells), 8, "the finished cells were kept, the others run once");
    println!("cli_flow: {:.0} s", started.elapsed().as_secs_f64());
}

#[test]
fn bad_config_and_missing_steps_are_refused_in_one_line() {
    let dir = tempfile::tempdir().unwrap();
    let bad = dir.path().join("bad.toml");
    std::fs::write(&bad, "[attack]\nbudgetz = [1]\n").unwrap();
    let out = divqat()
        .args(["flow", "--config"])
        .arg(&bad)
        .arg("--out")
        .arg(dir.path().join("o"))
        .output()
        .unwrap();
    assert!(!out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(stderr.lines().count(), 1, "{stderr}");
    assert!(stderr.contains("bad.toml") && stderr.contains("budgetz"), "{stderr}");
    std::fs::write(&bad, "[simulate]\nimages = 0\n").unwrap();
    let out = divqat()
        .args(["flow", "--config"])
        .arg(&bad)
        .arg("--out")
        .arg(dir.path().join("o"))
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("bad.toml") && stderr.contains("simulate.images"),
        "{stderr}"
    );
    let out = divqat()
        .args(["flow", "--from", "attack", "--out"])
        .arg(dir.path().join("o"))
        .output()
        .unwrap();
    assert!(!out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("step attack needs train-qat"), "{stderr}");
    assert!(!dir.path().join("o").exists(), "nothing written for a refused run");
}
