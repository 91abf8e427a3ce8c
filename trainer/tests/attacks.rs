//! Extraction attacks end to end on a tiny synthetic victim (a random W8A8 small CNN
//! on the integer reference): KnockoffNets random and adaptive, JBDA, a label-only
//! oracle, the budget refusal, and a resumable experiment grid with its plots.

use std::path::{Path, PathBuf};

use compiler::arith::Precision;
use compiler::zoo::Arch;
use datasets::DataLocations;
use tch::Device;
use trainer::attack::experiment::{run_experiment, run_single, AttackSpec, ChainSpec, ExperimentConfig, RunEnv};
use trainer::attack::jbda::JbdaConfig;
use trainer::attack::knockoff::{AdaptiveConfig, AttackConfig, AttackKind};
use trainer::attack::metrics::AttackMetrics;
use trainer::attack::queries::QuerySetId;
use trainer::attack::surrogate::SurrogateConfig;

/// A directory holding a random 1x28x28 small CNN (`model.qnn`).
fn synthetic_victim(dir: &Path) -> PathBuf {
    let model = compiler::synthetic::small_cnn(
        [1, 28, 28],
        10,
        Precision {
            weight_bits: 8,
            activation_bits: 8,
        },
        7,
    )
    .unwrap();
    let victim = dir.join("victim");
    std::fs::create_dir_all(&victim).unwrap();
    compiler::save(&model, &victim.join("model.qnn")).unwrap();
    victim
}

fn surrogate() -> SurrogateConfig {
    SurrogateConfig {
        arch: Arch::SmallCnn,
        width: 0.25,
        epochs: 1,
        batch_size: 32,
        ..SurrogateConfig::default()
    }
}

fn spec(victim: &Path, kind: AttackKind, budget: usize, defense: &str) -> AttackSpec {
    let mut attack = AttackConfig::new(kind, budget, surrogate(), 1);
    attack.query_batch = 64;
    attack.jbda = JbdaConfig {
        seed_size: 50,
        ..JbdaConfig::default()
    };
    attack.adaptive = AdaptiveConfig {
        step_batch: 16,
        ..AdaptiveConfig::default()
    };
    AttackSpec {
        victim: victim.to_path_buf(),
        oracle: "reference".into(),
        hw: None,
        defense: defense.into(),
        attack,
        query_set: QuerySetId::AnimalMnist,
        test_dataset: None,
        data_dir: None,
        test_limit: Some(200),
        cross_check: None,
    }
}

fn env() -> RunEnv {
    RunEnv {
        device: Device::Cpu,
        locations: DataLocations::default_locations(),
        show_progress: false,
    }
}

fn check_ranges(m: &AttackMetrics, budget: usize) {
    for (name, v) in [
        ("victim_accuracy", m.victim_accuracy),
        ("defended_accuracy", m.defended_accuracy),
        ("surrogate_accuracy", m.surrogate_accuracy),
        ("fidelity", m.fidelity),
    ] {
        assert!((0.0..=1.0).contains(&v), "{name} = {v}");
    }
    assert!(m.l1 >= 0.0 && m.l1 <= 2.0, "l1 = {}", m.l1);
    assert_eq!(m.queries, budget);
    assert_eq!(m.budget, budget);
    assert_eq!(m.test_images, 200);
}

#[test]
fn knockoff_random_end_to_end() {
    let dir = tempfile::tempdir().unwrap();
    let victim = synthetic_victim(dir.path());
    let (m, outcome) = run_single(&spec(&victim, AttackKind::Knockoff, 300, "none"), &env()).unwrap();
    check_ranges(&m, 300);
    assert_eq!(m.l1, 0.0);
    assert_eq!(m.victim_accuracy, m.defended_accuracy);
    assert!(!m.labels_only);
    assert_eq!(outcome.transfer.len(), 300);
    assert_eq!(
        (m.attack.as_str(), m.oracle.as_str(), m.defense.as_str()),
        ("knockoff", "reference", "none")
    );
    // Soft labels: the answers are probability vectors.
    for t in &outcome.transfer.targets {
        assert!((t.iter().sum::<f32>() - 1.0).abs() < 1e-3);
    }
}

/// The functional model serving the attack, every answer cross-checked bit for bit
/// against the integer reference (how `--oracle rtl --cross-check reference` proves the
/// hardware oracle equal to the fast one).
#[test]
fn cross_checked_oracle_confirms_every_answer() {
    let dir = tempfile::tempdir().unwrap();
    let victim = synthetic_victim(dir.path());
    let mut spec = spec(&victim, AttackKind::Knockoff, 200, "none");
    spec.oracle = "functional".into();
    spec.hw = Some("2x2".into());
    spec.cross_check = Some("reference".into());
    let (m, _) = run_single(&spec, &env()).unwrap();
    assert_eq!((m.queries, m.cross_checked_queries), (200, Some(200)));
}

#[test]
fn label_only_oracle_trains_on_hard_labels_and_perturbing_defense_costs_l1() {
    let dir = tempfile::tempdir().unwrap();
    let victim = synthetic_victim(dir.path());
    let (m, outcome) = run_single(&spec(&victim, AttackKind::Knockoff, 200, "label"), &env()).unwrap();
    check_ranges(&m, 200);
    assert!(m.labels_only);
    assert_eq!(m.victim_accuracy, m.defended_accuracy, "label-only keeps the argmax");
    for t in &outcome.transfer.targets {
        assert_eq!(t.iter().filter(|&&v| v == 1.0).count(), 1);
    }
    let (m, _) = run_single(
        &spec(&victim, AttackKind::Knockoff, 100, "reverse-sigmoid:beta=0.7,gamma=0.4"),
        &env(),
    )
    .unwrap();
    check_ranges(&m, 100);
    assert!(m.l1 > 0.0);
}

#[test]
fn jbda_doubles_the_set_until_the_budget() {
    let dir = tempfile::tempdir().unwrap();
    let victim = synthetic_victim(dir.path());
    // 50 seed images, then 50, then 100 augmented ones: 200 queries in 3 rounds.
    let (m, outcome) = run_single(&spec(&victim, AttackKind::Jbda, 200, "none"), &env()).unwrap();
    check_ranges(&m, 200);
    assert_eq!(outcome.rounds, Some(3));
    // Augmented images differ from their parents by at most round(255 * 0.1) per pixel.
    let len = 28 * 28;
    let (parent, child) = (
        &outcome.transfer.images[..len],
        &outcome.transfer.images[50 * len..51 * len],
    );
    assert!(parent
        .iter()
        .zip(child)
        .all(|(&a, &b)| (a as i32 - b as i32).abs() <= 26));
    assert_ne!(parent, child);
}

#[test]
fn adaptive_knockoff_spends_the_budget_and_learns_a_policy() {
    let dir = tempfile::tempdir().unwrap();
    let victim = synthetic_victim(dir.path());
    let (m, outcome) = run_single(&spec(&victim, AttackKind::KnockoffAdaptive, 200, "none"), &env()).unwrap();
    check_ranges(&m, 200);
    let (pi, counts) = outcome.policy.expect("adaptive reports its policy");
    assert_eq!(pi.len(), 10);
    assert!((pi.iter().sum::<f64>() - 1.0).abs() < 1e-9);
    assert_eq!(counts.iter().sum::<usize>(), 200);
}

#[test]
fn budget_beyond_the_query_set_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let victim = synthetic_victim(dir.path());
    let err = run_single(&spec(&victim, AttackKind::Knockoff, 10_001, "none"), &env())
        .err()
        .unwrap()
        .to_string();
    assert!(err.contains("10001") && err.contains("animal-mnist"), "{err}");
}

/// Crude well-formedness check: one root element, every tag closed in order.
fn assert_well_formed_svg(text: &str) {
    assert!(text.starts_with("<svg"), "not an SVG document");
    let mut stack: Vec<String> = Vec::new();
    let mut rest = text;
    while let Some(open) = rest.find('<') {
        let close = rest[open..].find('>').expect("unterminated tag") + open;
        let tag = &rest[open + 1..close];
        if let Some(name) = tag.strip_prefix('/') {
            assert_eq!(stack.pop().as_deref(), Some(name.trim()), "mismatched </{name}>");
        } else if !tag.ends_with('/') {
            stack.push(tag.split_whitespace().next().unwrap().to_string());
        }
        rest = &rest[close + 1..];
    }
    assert!(stack.is_empty(), "unclosed: {stack:?}");
    for needle in ["<text", "class=\"legend\"", "</svg>"] {
        assert!(text.contains(needle), "{needle}");
    }
}

#[test]
fn experiment_grid_is_resumable_and_writes_results_and_plots() {
    let dir = tempfile::tempdir().unwrap();
    let victim = synthetic_victim(dir.path());
    let config = ExperimentConfig {
        out: None,
        victims: vec![victim.clone()],
        oracle: "reference".into(),
        hw: None,
        defenses: vec![ChainSpec::One("none".into())],
        budgets: vec![100, 150],
        attacks: vec![AttackKind::Knockoff],
        seeds: vec![0],
        queries: QuerySetId::AnimalMnist,
        test_dataset: None,
        data_dir: None,
        test_limit: Some(200),
        query_batch: 64,
        surrogate: surrogate(),
        adaptive: AdaptiveConfig::default(),
        jbda: JbdaConfig::default(),
        baseline: Some(victim),
    };
    config.validate().unwrap();
    let out = dir.path().join("exp");
    let first = run_experiment(&config, &out, &env(), |_, _, _, _| {}).unwrap();
    assert_eq!((first.cells, first.ran, first.skipped), (2, 2, 0));
    let csv = std::fs::read_to_string(out.join("results.csv")).unwrap();
    assert_eq!(csv.lines().count(), 3, "{csv}");
    assert!(csv.starts_with("victim,oracle,defense,attack,budget,seed"));
    let mut seen = 0;
    let second = run_experiment(&config, &out, &env(), |_, _, _, skipped| {
        assert!(skipped, "a finished cell ran again");
        seen += 1;
    })
    .unwrap();
    assert_eq!((second.ran, second.skipped, seen), (0, 2, 2));
    assert_eq!(std::fs::read_to_string(out.join("results.csv")).unwrap(), csv);
    let json: Vec<AttackMetrics> =
        serde_json::from_str(&std::fs::read_to_string(out.join("results.json")).unwrap()).unwrap();
    assert_eq!(json.len(), 2);
    // The only victim is the baseline: the comparison has its header and no rows.
    let comparison = std::fs::read_to_string(out.join("comparison.csv")).unwrap();
    assert_eq!(comparison.lines().count(), 1, "{comparison}");
    assert!(comparison.starts_with("victim,baseline,defense"));
    for name in [
        "fidelity-vs-budget-knockoff.svg",
        "accuracy-vs-budget-knockoff.svg",
        "tradeoff-knockoff.svg",
        "fidelity-vs-l1-knockoff.svg",
    ] {
        let svg = std::fs::read_to_string(out.join(name)).unwrap();
        assert_well_formed_svg(&svg);
        assert!(svg.contains("<circle"), "{name} has no points");
        if name.contains("budget") {
            assert!(svg.contains("<polyline"), "{name} has no line");
        }
    }
    // A third budget runs only the new cell.
    let bigger = ExperimentConfig {
        budgets: vec![100, 150, 120],
        ..config
    };
    let third = run_experiment(&bigger, &out, &env(), |_, _, _, _| {}).unwrap();
    assert_eq!((third.ran, third.skipped), (1, 2));
}

#[test]
fn example_experiment_configs_parse() {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../experiments");
    let mut seen = 0;
    for entry in std::fs::read_dir(&dir).unwrap() {
        let path = entry.unwrap().path();
        if path.extension().is_some_and(|e| e == "toml") {
            let config = ExperimentConfig::load(&path).unwrap_or_else(|e| panic!("{e}"));
            assert!(!config.cells().is_empty());
            seen += 1;
        }
    }
    assert!(seen >= 3, "only {seen} example configs");
}
