//! One attack run from its full description ([`AttackSpec`], what `divqat attack`
//! runs), and grids of them ([`ExperimentConfig`], what `divqat experiment` runs):
//! victims x defenses x budgets x attacks x seeds, resumable, with `results.csv`,
//! `results.json` and SVG plots.
//!
//! Resuming: every finished cell is appended to `cells.jsonl` in the output
//! directory as `{"key": {...}, "metrics": {...}}`, where the key holds every
//! parameter of the cell (the shared settings included). A rerun skips each cell
//! whose key is already there, so an interrupted grid continues where it stopped and
//! a changed setting only reruns the cells it affects. The results files and plots
//! are rewritten from the cells of the current grid at the end of every run.

use std::collections::BTreeMap;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::time::Instant;

use datasets::{DataLocations, DatasetId, Split, SplitKind};
use indicatif::{ProgressBar, ProgressDrawTarget};
use serde::{Deserialize, Serialize};
use tch::Device;

use super::compare;
use super::defense::DefenseChain;
use super::jbda::JbdaConfig;
use super::knockoff::{run_attack, AdaptiveConfig, AttackConfig, AttackError, AttackKind, AttackOutcome};
use super::metrics::{surrogate_side, victim_side, AttackMetrics};
use super::oracle::{load_victim, Oracle, VictimKind};
use super::plot::{Chart, Point, Series};
use super::queries::{load_query_set, QuerySetId};
use super::surrogate::SurrogateConfig;
use crate::config::TrainConfig;

/// Seed of the fixed test subset (`test_limit`), the same for every cell.
const TEST_SUBSET_SEED: u64 = 0x7e57;

/// Everything that defines one attack run.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct AttackSpec {
    /// A run directory (`divqat train`) or a directory holding `model.qnn`.
    pub victim: PathBuf,
    /// float, fakequant, reference, functional or rtl.
    pub oracle: String,
    /// Hardware of the functional and rtl oracles: a preset RxC or a TOML file.
    pub hw: Option<String>,
    /// The defense chain: specs joined by `+` ("none" for none).
    pub defense: String,
    pub attack: AttackConfig,
    pub query_set: QuerySetId,
    /// The victim's test set; by default the dataset of the victim's config.toml.
    pub test_dataset: Option<DatasetId>,
    /// CIFAR binary batches of the test set.
    pub data_dir: Option<PathBuf>,
    /// Evaluate on a fixed seeded subset of N test images.
    pub test_limit: Option<usize>,
    /// A second oracle kind whose clean answer to every query must equal the oracle's,
    /// bit for bit (`Oracle::cross_check`); e.g. "reference" for an rtl oracle.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cross_check: Option<String>,
}

/// Where and how a run executes (not part of its identity).
#[derive(Clone, Debug)]
pub struct RunEnv {
    pub device: Device,
    pub locations: DataLocations,
    pub show_progress: bool,
}

fn config_error(e: impl std::fmt::Display) -> AttackError {
    AttackError::Config(e.to_string())
}

fn io_error(path: &Path, e: impl std::fmt::Display) -> AttackError {
    AttackError::Io {
        path: path.display().to_string(),
        message: e.to_string(),
    }
}

/// The victim's test split: `test_dataset`, else the dataset of the victim's
/// config.toml, else Fashion-MNIST; a fixed subset when `test_limit` is set.
pub fn victim_test_set(spec: &AttackSpec, locations: &DataLocations) -> Result<Split, AttackError> {
    let run_config = TrainConfig::load(&spec.victim.join(crate::train::CONFIG_FILE)).ok();
    let dataset = spec
        .test_dataset
        .or(run_config.as_ref().map(|c| c.dataset))
        .unwrap_or(DatasetId::FashionMnist);
    let data_dir = spec
        .data_dir
        .clone()
        .or(run_config.and_then(|c| c.data_dir))
        .or(locations.cifar_dir.clone());
    let test = datasets::load(dataset, SplitKind::Test, &locations.clone().with_cifar_dir(data_dir))?;
    Ok(match spec.test_limit {
        Some(n) => test.subset(n, TEST_SUBSET_SEED),
        None => test,
    })
}

fn hidden_if(bar: ProgressBar, show: bool) -> ProgressBar {
    if !show {
        bar.set_draw_target(ProgressDrawTarget::hidden());
    }
    bar
}

/// A progress bar for an attack's phases (hidden unless `show`).
pub fn attack_bar(show: bool) -> ProgressBar {
    let bar = ProgressBar::new(0);
    bar.set_style(
        indicatif::ProgressStyle::with_template("{msg} [{bar:30}] {pos}/{len} ({per_sec}, eta {eta})")
            .expect("valid template")
            .progress_chars("=> "),
    );
    hidden_if(bar, show)
}

/// Run one attack: load the victim and the defenses, measure the victim's side on the
/// test set, attack through the oracle, measure the surrogate.
pub fn run_single(spec: &AttackSpec, env: &RunEnv) -> Result<(AttackMetrics, AttackOutcome), AttackError> {
    let start = Instant::now();
    let seed = spec.attack.seed;
    let kind: VictimKind = spec.oracle.parse().map_err(config_error)?;
    let hw = match &spec.hw {
        Some(hw) => Some(compiler::hw::HwConfig::from_arg(hw).map_err(config_error)?),
        None => None,
    };
    let mut chain: DefenseChain = spec.defense.parse()?;
    let mut victim = load_victim(&spec.victim, kind, hw.as_ref(), env.device)?;
    chain.prepare(&spec.victim, env.device, seed)?;
    let test = victim_test_set(spec, &env.locations)?;
    if test.shape != victim.input_shape() {
        return Err(AttackError::Config(format!(
            "the victim takes {:?} images but its test set has {:?}",
            victim.input_shape(),
            test.shape
        )));
    }
    let bar = attack_bar(env.show_progress);
    bar.set_message("victim on the test set");
    bar.tick();
    let side = victim_side(victim.as_mut(), &chain, &test, seed)?;
    let query_set = load_query_set(&spec.query_set, victim.input_shape(), &env.locations)?;
    let defense = chain.to_string();
    let mut oracle = Oracle::new(victim, chain, spec.attack.budget, seed);
    if let Some(witness) = &spec.cross_check {
        let kind: VictimKind = witness.parse().map_err(config_error)?;
        oracle = oracle.cross_check(load_victim(&spec.victim, kind, hw.as_ref(), env.device)?);
    }
    let labels_only = oracle.labels_only();
    let outcome = run_attack(
        &mut oracle,
        &query_set,
        &spec.query_set.to_string(),
        &spec.attack,
        env.device,
        &bar,
    )?;
    bar.finish_and_clear();
    let (surrogate_accuracy, fidelity) = surrogate_side(&outcome.surrogate, &test, &side.predictions);
    let metrics = AttackMetrics {
        victim_accuracy: side.victim_accuracy,
        defended_accuracy: side.defended_accuracy,
        surrogate_accuracy,
        fidelity,
        l1: side.l1,
        queries: outcome.queries,
        oracle: spec.oracle.clone(),
        defense,
        attack: spec.attack.kind.to_string(),
        budget: spec.attack.budget,
        seed,
        victim: spec.victim.display().to_string(),
        query_set: spec.query_set.to_string(),
        surrogate: format!("{} x{}", spec.attack.surrogate.arch, spec.attack.surrogate.width),
        epochs: spec.attack.surrogate.epochs,
        labels_only,
        cross_checked_queries: spec.cross_check.as_ref().map(|_| oracle.confirmed_queries()),
        test_images: test.len(),
        seconds: start.elapsed().as_secs_f64(),
    };
    Ok((metrics, outcome))
}

/// `path` with `.` and `dir/..` removed lexically (`experiments/../runs/qat` is `runs/qat`).
fn normalize(path: &Path) -> PathBuf {
    use std::path::Component;
    let mut out = PathBuf::new();
    for c in path.components() {
        match c {
            Component::CurDir => {}
            Component::ParentDir if matches!(out.components().next_back(), Some(Component::Normal(_))) => {
                out.pop();
            }
            other => out.push(other),
        }
    }
    if out.as_os_str().is_empty() {
        out.push(".");
    }
    out
}

/// A defense chain in the config: one spec string, or a list of specs applied in order.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(untagged)]
pub enum ChainSpec {
    One(String),
    Chain(Vec<String>),
}

impl ChainSpec {
    /// The `+`-joined form `DefenseChain` parses.
    pub fn joined(&self) -> String {
        match self {
            ChainSpec::One(s) => s.clone(),
            ChainSpec::Chain(v) if v.is_empty() => "none".into(),
            ChainSpec::Chain(v) => v.join("+"),
        }
    }
}

fn default_oracle() -> String {
    "reference".into()
}

fn default_query_set() -> QuerySetId {
    QuerySetId::AnimalMnist
}

fn default_seeds() -> Vec<u64> {
    vec![0]
}

fn default_query_batch() -> usize {
    256
}

/// A grid of attacks (`divqat experiment --config FILE`; experiments/*.toml).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ExperimentConfig {
    /// Output directory (relative to the config file); `--out` overrides it.
    pub out: Option<PathBuf>,
    /// Victim directories (relative paths are taken from the config file's directory).
    pub victims: Vec<PathBuf>,
    #[serde(default = "default_oracle")]
    pub oracle: String,
    pub hw: Option<String>,
    pub defenses: Vec<ChainSpec>,
    pub budgets: Vec<usize>,
    pub attacks: Vec<AttackKind>,
    #[serde(default = "default_seeds")]
    pub seeds: Vec<u64>,
    #[serde(default = "default_query_set")]
    pub queries: QuerySetId,
    pub test_dataset: Option<DatasetId>,
    pub data_dir: Option<PathBuf>,
    pub test_limit: Option<usize>,
    #[serde(default = "default_query_batch")]
    pub query_batch: usize,
    #[serde(default)]
    pub surrogate: SurrogateConfig,
    #[serde(default)]
    pub adaptive: AdaptiveConfig,
    #[serde(default)]
    pub jbda: JbdaConfig,
    /// A victim of the grid to compare the others against (`comparison.csv`, see
    /// [`super::compare`]); relative like `victims`.
    pub baseline: Option<PathBuf>,
}

impl ExperimentConfig {
    pub fn load(path: &Path) -> Result<Self, AttackError> {
        let text = std::fs::read_to_string(path).map_err(|e| io_error(path, e))?;
        let mut config: ExperimentConfig = toml::from_str(&text).map_err(|e| io_error(path, e.message()))?;
        let base = path.parent().unwrap_or(Path::new("."));
        for v in &mut config.victims {
            if v.is_relative() {
                *v = normalize(&base.join(&v));
            }
        }
        for path in [&mut config.out, &mut config.baseline].into_iter().flatten() {
            if path.is_relative() {
                *path = normalize(&base.join(&path));
            }
        }
        config.validate().map_err(|e| io_error(path, e))?;
        Ok(config)
    }

    pub fn validate(&self) -> Result<(), String> {
        let empty = [
            (self.victims.is_empty(), "victims"),
            (self.defenses.is_empty(), "defenses"),
            (self.budgets.is_empty(), "budgets"),
            (self.attacks.is_empty(), "attacks"),
            (self.seeds.is_empty(), "seeds"),
        ];
        if let Some((_, field)) = empty.iter().find(|(e, _)| *e) {
            return Err(format!("'{field}' must list at least one value"));
        }
        if self.budgets.contains(&0) {
            return Err("'budgets' must be positive".into());
        }
        for d in &self.defenses {
            d.joined()
                .parse::<DefenseChain>()
                .map_err(|e| format!("'defenses': {e}"))?;
        }
        self.oracle
            .parse::<VictimKind>()
            .map_err(|e| format!("'oracle': {e}"))?;
        if let Some(b) = &self.baseline {
            if !self.victims.contains(b) {
                return Err(format!("'baseline' {} is not one of the 'victims'", b.display()));
            }
        }
        Ok(())
    }

    /// Every cell of the grid, in the order victims, defenses, attacks, budgets, seeds.
    pub fn cells(&self) -> Vec<AttackSpec> {
        let mut out = Vec::new();
        for victim in &self.victims {
            for defense in &self.defenses {
                for &attack in &self.attacks {
                    for &budget in &self.budgets {
                        for &seed in &self.seeds {
                            let mut config = AttackConfig::new(attack, budget, self.surrogate.clone(), seed);
                            config.query_batch = self.query_batch;
                            config.adaptive = self.adaptive.clone();
                            config.jbda = self.jbda.clone();
                            out.push(AttackSpec {
                                victim: victim.clone(),
                                oracle: self.oracle.clone(),
                                hw: self.hw.clone(),
                                defense: defense.joined(),
                                attack: config,
                                query_set: self.queries.clone(),
                                test_dataset: self.test_dataset,
                                data_dir: self.data_dir.clone(),
                                test_limit: self.test_limit,
                                cross_check: None,
                            });
                        }
                    }
                }
            }
        }
        out
    }
}

/// One line of `cells.jsonl`.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct CellRecord {
    pub key: serde_json::Value,
    pub metrics: AttackMetrics,
}

pub const CELLS_FILE: &str = "cells.jsonl";
pub const RESULTS_CSV: &str = "results.csv";
pub const RESULTS_JSON: &str = "results.json";

/// The key of a cell: its whole spec as JSON (with the victim path as given).
pub fn cell_key(spec: &AttackSpec) -> serde_json::Value {
    serde_json::to_value(spec).expect("a spec serializes")
}

/// The finished cells recorded in `dir`; a torn last line (an interrupted write) is skipped.
pub fn read_cells(dir: &Path) -> Result<Vec<CellRecord>, AttackError> {
    let path = dir.join(CELLS_FILE);
    if !path.exists() {
        return Ok(Vec::new());
    }
    let text = std::fs::read_to_string(&path).map_err(|e| io_error(&path, e))?;
    let lines: Vec<&str> = text.lines().filter(|l| !l.trim().is_empty()).collect();
    let mut out = Vec::new();
    for (i, line) in lines.iter().enumerate() {
        match serde_json::from_str::<CellRecord>(line) {
            Ok(r) => out.push(r),
            Err(_) if i + 1 == lines.len() => {}
            Err(e) => return Err(io_error(&path, format!("line {}: {e}", i + 1))),
        }
    }
    Ok(out)
}

fn append_cell(dir: &Path, record: &CellRecord) -> Result<(), AttackError> {
    let path = dir.join(CELLS_FILE);
    let mut file = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(&path)
        .map_err(|e| io_error(&path, e))?;
    let line = format!("{}\n", serde_json::to_string(record).expect("serializes"));
    file.write_all(line.as_bytes()).map_err(|e| io_error(&path, e))?;
    file.sync_data().map_err(|e| io_error(&path, e))
}

/// What an experiment run did.
#[derive(Clone, Debug, Serialize)]
pub struct ExperimentSummary {
    pub cells: usize,
    pub ran: usize,
    pub skipped: usize,
    pub out: PathBuf,
    pub files: Vec<PathBuf>,
}

/// Run (or continue) the grid into `out`. `on_cell(index, total, spec, skipped)` is
/// called before each cell.
pub fn run_experiment(
    config: &ExperimentConfig,
    out: &Path,
    env: &RunEnv,
    mut on_cell: impl FnMut(usize, usize, &AttackSpec, bool),
) -> Result<ExperimentSummary, AttackError> {
    std::fs::create_dir_all(out).map_err(|e| io_error(out, e))?;
    let cells = config.cells();
    let mut done: Vec<CellRecord> = read_cells(out)?;
    let (mut ran, mut skipped) = (0, 0);
    let mut results = Vec::with_capacity(cells.len());
    for (i, spec) in cells.iter().enumerate() {
        let key = cell_key(spec);
        if let Some(r) = done.iter().find(|r| r.key == key) {
            on_cell(i, cells.len(), spec, true);
            skipped += 1;
            results.push(r.metrics.clone());
            continue;
        }
        on_cell(i, cells.len(), spec, false);
        let (metrics, _) = run_single(spec, env)?;
        let record = CellRecord { key, metrics };
        append_cell(out, &record)?;
        results.push(record.metrics.clone());
        done.push(record);
        ran += 1;
    }
    let baseline = config.baseline.as_ref().map(|b| b.display().to_string());
    let files = write_results(out, &results, baseline.as_deref())?;
    Ok(ExperimentSummary {
        cells: cells.len(),
        ran,
        skipped,
        out: out.to_path_buf(),
        files,
    })
}

const CSV_COLUMNS: [&str; 18] = [
    "victim",
    "oracle",
    "defense",
    "attack",
    "budget",
    "seed",
    "query_set",
    "surrogate",
    "epochs",
    "victim_accuracy",
    "defended_accuracy",
    "surrogate_accuracy",
    "fidelity",
    "l1",
    "queries",
    "labels_only",
    "test_images",
    "seconds",
];

/// A CSV field, quoted when it holds a comma, quote or line break (RFC 4180).
pub(crate) fn csv_field(s: &str) -> String {
    if s.contains([',', '"', '\n', '\r']) {
        format!("\"{}\"", s.replace('"', "\"\""))
    } else {
        s.to_string()
    }
}

pub fn to_csv(results: &[AttackMetrics]) -> String {
    let mut out = CSV_COLUMNS.join(",");
    out.push('\n');
    for m in results {
        let row = [
            m.victim.clone(),
            m.oracle.clone(),
            m.defense.clone(),
            m.attack.clone(),
            m.budget.to_string(),
            m.seed.to_string(),
            m.query_set.clone(),
            m.surrogate.clone(),
            m.epochs.to_string(),
            format!("{:.6}", m.victim_accuracy),
            format!("{:.6}", m.defended_accuracy),
            format!("{:.6}", m.surrogate_accuracy),
            format!("{:.6}", m.fidelity),
            format!("{:.6}", m.l1),
            m.queries.to_string(),
            m.labels_only.to_string(),
            m.test_images.to_string(),
            format!("{:.3}", m.seconds),
        ];
        let fields: Vec<String> = row.iter().map(|f| csv_field(f)).collect();
        out.push_str(&fields.join(","));
        out.push('\n');
    }
    out
}

/// Short victim names for legends: the directory's last component, or the whole
/// path when two victims share it.
fn victim_names(results: &[AttackMetrics]) -> BTreeMap<String, String> {
    let mut names = BTreeMap::new();
    let short = |v: &str| {
        Path::new(v)
            .file_name()
            .map_or(v.to_string(), |n| n.to_string_lossy().into_owned())
    };
    for m in results {
        let s = short(&m.victim);
        let clash = results.iter().any(|o| o.victim != m.victim && short(&o.victim) == s);
        names.insert(m.victim.clone(), if clash { m.victim.clone() } else { s });
    }
    names
}

/// The kind of a defense setting: `reverse-sigmoid` of `reverse-sigmoid:beta=0.2,...`.
pub(crate) fn defense_kind(defense: &str) -> &str {
    defense.split(':').next().unwrap_or(defense)
}

/// Mean, minimum and maximum.
pub(crate) fn stats(values: &[f64]) -> (f64, f64, f64) {
    let mean = values.iter().sum::<f64>() / values.len().max(1) as f64;
    let lo = values.iter().copied().fold(f64::INFINITY, f64::min);
    let hi = values.iter().copied().fold(f64::NEG_INFINITY, f64::max);
    (mean, lo, hi)
}

/// `metric` vs budget for one attack: one series per victim/defense, mean over seeds
/// with min-max error bars.
pub fn budget_chart(results: &[AttackMetrics], attack: &str, metric: fn(&AttackMetrics) -> f64, what: &str) -> Chart {
    let names = victim_names(results);
    let mut groups: BTreeMap<(String, String), BTreeMap<usize, Vec<f64>>> = BTreeMap::new();
    for m in results.iter().filter(|m| m.attack == attack) {
        groups
            .entry((names[&m.victim].clone(), m.defense.clone()))
            .or_default()
            .entry(m.budget)
            .or_default()
            .push(100.0 * metric(m));
    }
    let series = groups
        .into_iter()
        .map(|((victim, defense), by_budget)| Series {
            name: format!("{victim} / {defense}"),
            points: by_budget
                .into_iter()
                .map(|(budget, values)| {
                    let (y, lo, hi) = stats(&values);
                    Point {
                        x: budget as f64,
                        y,
                        lo,
                        hi,
                        label: None,
                    }
                })
                .collect(),
        })
        .collect();
    Chart {
        title: format!("{what} vs query budget ({attack}; mean over seeds, bars min-max)"),
        x_label: "queries".into(),
        y_label: format!("{what} (%)"),
        series,
    }
}

/// (victim name, defense kind) -> defense setting -> its cells.
type CurveGroups<'a> = BTreeMap<(String, String), BTreeMap<String, Vec<&'a AttackMetrics>>>;

/// The cells of one attack at its largest budget, grouped as trade-off curves: one
/// group per victim and defense kind (`reverse-sigmoid`, `gaussian`, ...), holding the
/// cells of each defense setting; the victim's undefended cells join every kind's
/// curve as its starting point when the grid has them. Returns the budget too.
fn curve_groups<'a>(results: &'a [AttackMetrics], attack: &str) -> (usize, CurveGroups<'a>) {
    let names = victim_names(results);
    let of_attack: Vec<&AttackMetrics> = results.iter().filter(|m| m.attack == attack).collect();
    let budget = of_attack.iter().map(|m| m.budget).max().unwrap_or(0);
    let mut groups: CurveGroups = BTreeMap::new();
    for m in of_attack.into_iter().filter(|m| m.budget == budget) {
        let family = defense_kind(&m.defense).to_string();
        groups
            .entry((names[&m.victim].clone(), family))
            .or_default()
            .entry(m.defense.clone())
            .or_default()
            .push(m);
    }
    let victims: Vec<String> = groups.keys().map(|(v, _)| v.clone()).collect();
    for victim in victims {
        let Some(none) = groups.get(&(victim.clone(), "none".to_string())).cloned() else {
            continue;
        };
        let others: Vec<(String, String)> = groups
            .keys()
            .filter(|(v, f)| *v == victim && f != "none")
            .cloned()
            .collect();
        if others.is_empty() {
            continue;
        }
        groups.remove(&(victim.clone(), "none".to_string()));
        for key in others {
            groups.get_mut(&key).expect("listed").extend(none.clone());
        }
    }
    (budget, groups)
}

/// One series per curve group; `point` turns the cells of one defense setting into
/// (x, y values over the seeds). Points are labelled with the setting's parameters and
/// sorted by x.
fn curve_series(groups: CurveGroups, point: impl Fn(&[&AttackMetrics]) -> (f64, Vec<f64>)) -> Vec<Series> {
    groups
        .into_iter()
        .map(|((victim, family), settings)| {
            let mut points: Vec<Point> = settings
                .into_iter()
                .map(|(defense, ms)| {
                    let (x, ys) = point(&ms);
                    let (y, lo, hi) = stats(&ys);
                    let label = match defense.split_once(':') {
                        Some((_, params)) => Some(params.to_string()),
                        None => (family != "none" && defense != family).then(|| defense.clone()),
                    };
                    Point { x, y, lo, hi, label }
                })
                .collect();
            points.sort_by(|a, b| a.x.total_cmp(&b.x));
            let shared = drop_shared_parameters(&mut points);
            let name = match shared.is_empty() {
                true => format!("{victim} / {family}"),
                false => format!("{victim} / {family} ({shared})"),
            };
            Series { name, points }
        })
        .collect()
}

/// Removes from the points' labels the `key=value` parameters every parameter label
/// has (gamma=0.4 on a reverse-sigmoid curve), so a label names only what varies;
/// returns them, comma-joined, for the series name. The undefended anchor's "none" is
/// not a parameter label; nothing is removed from a curve with a single one.
fn drop_shared_parameters(points: &mut [Point]) -> String {
    let labels: Vec<Vec<&str>> = points
        .iter()
        .filter_map(|p| p.label.as_deref())
        .filter(|l| l.contains('='))
        .map(|l| l.split(',').collect())
        .collect();
    if labels.len() < 2 {
        return String::new();
    }
    let shared: Vec<String> = labels[0]
        .iter()
        .filter(|part| labels.iter().all(|l| l.contains(part)))
        .map(|part| part.to_string())
        .collect();
    for point in points.iter_mut() {
        if let Some(label) = &point.label {
            let rest: Vec<&str> = label
                .split(',')
                .filter(|part| !shared.iter().any(|s| s == part))
                .collect();
            point.label = (!rest.is_empty()).then(|| rest.join(","));
        }
    }
    shared.join(",")
}

/// `metric` of each cell, in percent.
fn percent(ms: &[&AttackMetrics], metric: fn(&AttackMetrics) -> f64) -> Vec<f64> {
    ms.iter().map(|m| 100.0 * metric(m)).collect()
}

/// Defended accuracy vs fidelity for one attack at its largest budget: one point per
/// defense setting (mean over seeds), one series per victim and defense kind, each
/// starting from the victim's undefended point when the grid has one.
pub fn tradeoff_chart(results: &[AttackMetrics], attack: &str) -> Chart {
    let (budget, groups) = curve_groups(results, attack);
    let series = curve_series(groups, |ms| {
        (
            stats(&percent(ms, |m| m.fidelity)).0,
            percent(ms, |m| m.defended_accuracy),
        )
    });
    Chart {
        title: format!("Defended accuracy vs fidelity ({attack}, {budget} queries)"),
        x_label: "fidelity of the surrogate (%)".into(),
        y_label: "defended victim accuracy (%)".into(),
        series,
    }
}

/// Fidelity vs the defense's mean L1 change of the answers, the other utility cost, for
/// one attack at its largest budget: the curve to compare victims on when a defense
/// keeps the argmax (reverse sigmoid), so that every setting has the same defended
/// accuracy. One point per defense setting (mean over seeds, bars min-max).
pub fn perturbation_chart(results: &[AttackMetrics], attack: &str) -> Chart {
    let (budget, groups) = curve_groups(results, attack);
    let series = curve_series(groups, |ms| {
        let l1: Vec<f64> = ms.iter().map(|m| m.l1).collect();
        (stats(&l1).0, percent(ms, |m| m.fidelity))
    });
    Chart {
        title: format!("Fidelity vs answer perturbation ({attack}, {budget} queries; bars min-max)"),
        x_label: "mean L1 change of the answers".into(),
        y_label: "fidelity of the surrogate (%)".into(),
        series,
    }
}

/// Write results.csv, results.json, the plots and, with a baseline victim,
/// comparison.csv; returns the files written.
pub fn write_results(
    out: &Path,
    results: &[AttackMetrics],
    baseline: Option<&str>,
) -> Result<Vec<PathBuf>, AttackError> {
    let mut files = Vec::new();
    let mut write = |name: &str, bytes: &[u8]| -> Result<(), AttackError> {
        let path = out.join(name);
        compiler::format::write_atomic(&path, bytes).map_err(|e| io_error(&path, e))?;
        files.push(path);
        Ok(())
    };
    write(RESULTS_CSV, to_csv(results).as_bytes())?;
    write(
        RESULTS_JSON,
        serde_json::to_string_pretty(results).expect("serializes").as_bytes(),
    )?;
    if let Some(baseline) = baseline {
        let comparisons = compare::compare_to_baseline(results, baseline);
        write(
            compare::COMPARISON_CSV,
            compare::to_csv(&comparisons, baseline).as_bytes(),
        )?;
    }
    let mut attacks: Vec<String> = results.iter().map(|m| m.attack.clone()).collect();
    attacks.sort();
    attacks.dedup();
    for attack in &attacks {
        let fidelity = budget_chart(results, attack, |m| m.fidelity, "fidelity");
        write(
            &format!("fidelity-vs-budget-{attack}.svg"),
            fidelity.to_svg().as_bytes(),
        )?;
        let accuracy = budget_chart(results, attack, |m| m.surrogate_accuracy, "surrogate accuracy");
        write(
            &format!("accuracy-vs-budget-{attack}.svg"),
            accuracy.to_svg().as_bytes(),
        )?;
        let tradeoff = tradeoff_chart(results, attack);
        write(&format!("tradeoff-{attack}.svg"), tradeoff.to_svg().as_bytes())?;
        let perturbation = perturbation_chart(results, attack);
        write(
            &format!("fidelity-vs-l1-{attack}.svg"),
            perturbation.to_svg().as_bytes(),
        )?;
    }
    Ok(files)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::attack::metrics::test_cell as cell;

    /// Each victim's reverse-sigmoid curve starts at its undefended cells; the
    /// perturbation chart puts mean L1 on x and the fidelity's mean and min-max on y,
    /// the trade-off chart mean fidelity on x and defended accuracy on y.
    #[test]
    fn curve_charts_anchor_each_victim_at_its_undefended_point() {
        let rs = "reverse-sigmoid:beta=0.2,gamma=0.4";
        let results = vec![
            cell("runs/qat", "none", 0, 0.70, 0.0),
            cell("runs/qat", "none", 1, 0.74, 0.0),
            cell("runs/qat", rs, 0, 0.60, 0.9),
            cell("runs/qat", rs, 1, 0.64, 1.1),
            cell("runs/divqat", "none", 0, 0.68, 0.0),
            cell("runs/divqat", rs, 0, 0.66, 0.5),
        ];
        let chart = perturbation_chart(&results, "knockoff");
        let names: Vec<&str> = chart.series.iter().map(|s| s.name.as_str()).collect();
        assert_eq!(names, ["divqat / reverse-sigmoid", "qat / reverse-sigmoid"]);
        let qat = &chart.series[1].points;
        assert_eq!(qat.len(), 2);
        let close = |a: f64, b: f64| (a - b).abs() < 1e-9;
        assert!(close(qat[0].x, 0.0) && close(qat[0].y, 72.0) && close(qat[0].lo, 70.0) && close(qat[0].hi, 74.0));
        assert!(close(qat[1].x, 1.0) && close(qat[1].y, 62.0));
        assert_eq!(qat[1].label.as_deref(), Some("beta=0.2,gamma=0.4"));
        let tradeoff = tradeoff_chart(&results, "knockoff");
        let qat = &tradeoff.series[1].points;
        assert!(close(qat[0].x, 62.0) && close(qat[0].y, 90.0) && close(qat[1].x, 72.0));
    }

    /// Labels keep only the parameters that vary along the curve; the shared ones go to
    /// the series name.
    #[test]
    fn curve_labels_name_only_what_varies() {
        let results = vec![
            cell("runs/qat", "none", 0, 0.70, 0.0),
            cell("runs/qat", "reverse-sigmoid:beta=0.2,gamma=0.4", 0, 0.60, 0.9),
            cell("runs/qat", "reverse-sigmoid:beta=0.7,gamma=0.4", 0, 0.50, 1.5),
            cell("runs/divqat", "reverse-sigmoid:beta=0.2,gamma=0.4", 0, 0.66, 0.5),
        ];
        let chart = perturbation_chart(&results, "knockoff");
        assert_eq!(chart.series[1].name, "qat / reverse-sigmoid (gamma=0.4)");
        let labels: Vec<Option<&str>> = chart.series[1].points.iter().map(|p| p.label.as_deref()).collect();
        assert_eq!(labels, [Some("none"), Some("beta=0.2"), Some("beta=0.7")]);
        // A single labelled point keeps its whole label.
        assert_eq!(chart.series[0].name, "divqat / reverse-sigmoid");
        assert_eq!(chart.series[0].points[0].label.as_deref(), Some("beta=0.2,gamma=0.4"));
    }

    /// `baseline` is resolved like `victims` and must be one of them.
    #[test]
    fn baseline_must_be_a_victim() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("grid.toml");
        let grid = |baseline: &str| {
            format!(
                "victims = [\"../runs/qat\", \"../runs/divqat\"]\ndefenses = [\"none\"]\n\
                 budgets = [100]\nattacks = [\"knockoff\"]\nbaseline = \"{baseline}\"\n"
            )
        };
        std::fs::write(&path, grid("../runs/qat")).unwrap();
        let config = ExperimentConfig::load(&path).unwrap();
        assert_eq!(config.baseline, Some(normalize(&dir.path().join("../runs/qat"))));
        std::fs::write(&path, grid("../runs/fp")).unwrap();
        let err = ExperimentConfig::load(&path).unwrap_err().to_string();
        assert!(err.contains("grid.toml") && err.contains("'baseline'"), "{err}");
    }

    #[test]
    fn paths_are_normalized_lexically() {
        assert_eq!(
            normalize(Path::new("experiments/../runs/qat")),
            PathBuf::from("runs/qat")
        );
        assert_eq!(normalize(Path::new("./a/./b")), PathBuf::from("a/b"));
        assert_eq!(normalize(Path::new("../x")), PathBuf::from("../x"));
        assert_eq!(normalize(Path::new("a/..")), PathBuf::from("."));
    }

    #[test]
    fn csv_quotes_fields_with_commas() {
        assert_eq!(csv_field("a"), "a");
        assert_eq!(
            csv_field("reverse-sigmoid:beta=0.7,gamma=0.4"),
            "\"reverse-sigmoid:beta=0.7,gamma=0.4\""
        );
        assert_eq!(csv_field("say \"x\""), "\"say \"\"x\"\"\"");
    }

    #[test]
    fn config_parses_chains_and_defaults() {
        let text = r#"
            victims = ["runs/qat"]
            defenses = ["none", ["round:decimals=2", "topk:k=3"]]
            budgets = [100, 200]
            attacks = ["knockoff", "jbda"]
            [surrogate]
            epochs = 2
        "#;
        let c: ExperimentConfig = toml::from_str(text).unwrap();
        assert_eq!(c.defenses[1].joined(), "round:decimals=2+topk:k=3");
        assert_eq!(c.seeds, vec![0]);
        assert_eq!(c.surrogate.epochs, 2);
        assert_eq!(c.cells().len(), 8);
    }
}
