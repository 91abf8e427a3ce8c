//! Victims against a baseline victim (`baseline` in an experiment grid): for each other
//! victim and defense setting, the seed-paired differences of fidelity and surrogate
//! accuracy, and the comparison at equal perturbation, where the baseline's fidelity is
//! read off its own curve at the victim's mean L1.
//!
//! Why both: a defense that keeps the argmax (reverse sigmoid) gives each victim its own
//! defended accuracy at every setting, and the same setting perturbs a less confident
//! victim less, so "same setting" and "same utility cost" are different comparisons
//! (docs/results.md section 8).

use std::collections::BTreeMap;

use super::experiment::{csv_field, defense_kind, stats};
use super::metrics::AttackMetrics;

pub const COMPARISON_CSV: &str = "comparison.csv";

/// One victim behind one defense setting, against the baseline behind the same setting.
#[derive(Clone, Debug, PartialEq)]
pub struct Comparison {
    pub victim: String,
    pub defense: String,
    pub attack: String,
    pub budget: usize,
    /// Seeds both victims ran with this setting (the pairs below).
    pub seeds: usize,
    pub defended_accuracy: f64,
    pub baseline_defended_accuracy: f64,
    pub l1: f64,
    pub baseline_l1: f64,
    pub fidelity: f64,
    pub baseline_fidelity: f64,
    /// Mean over the paired seeds of (victim - baseline); negative: the copy is worse.
    pub fidelity_difference: f64,
    /// Paired seeds whose copy of the victim is less faithful than the baseline's.
    pub fidelity_lower: usize,
    pub surrogate_accuracy_difference: f64,
    pub surrogate_accuracy_lower: usize,
    /// The baseline's mean fidelity at this victim's mean L1, interpolated linearly
    /// between the two settings of the same defense kind whose mean L1 bracket it
    /// (its undefended cells count as L1 0); None outside the baseline's measured range.
    pub baseline_fidelity_at_equal_l1: Option<f64>,
}

/// Cells of one (victim, defense, attack, budget), by seed.
type BySeed<'a> = BTreeMap<u64, &'a AttackMetrics>;

fn mean_of(cells: &BySeed, metric: fn(&AttackMetrics) -> f64) -> f64 {
    let values: Vec<f64> = cells.values().map(|m| metric(m)).collect();
    stats(&values).0
}

/// The baseline's (mean L1, mean fidelity) points for one defense kind, attack and
/// budget, undefended included, sorted by L1.
fn baseline_curve(
    groups: &BTreeMap<(&str, &str, &str, usize), BySeed>,
    baseline: &str,
    kind: &str,
    attack: &str,
    budget: usize,
) -> Vec<(f64, f64)> {
    let mut points: Vec<(f64, f64)> = groups
        .iter()
        .filter(|((v, d, a, b), _)| {
            *v == baseline && *a == attack && *b == budget && (defense_kind(d) == kind || *d == "none")
        })
        .map(|(_, cells)| (mean_of(cells, |m| m.l1), mean_of(cells, |m| m.fidelity)))
        .collect();
    points.sort_by(|a, b| a.0.total_cmp(&b.0));
    points
}

/// Linear interpolation of `curve` (sorted by x) at `x`; None outside its range.
fn interpolate(curve: &[(f64, f64)], x: f64) -> Option<f64> {
    if let Some(&(_, y)) = curve.iter().find(|(cx, _)| *cx == x) {
        return Some(y);
    }
    curve.windows(2).find_map(|w| {
        let ((x0, y0), (x1, y1)) = (w[0], w[1]);
        (x0 <= x && x <= x1).then(|| {
            if x1 == x0 {
                y0
            } else {
                y0 + (y1 - y0) * (x - x0) / (x1 - x0)
            }
        })
    })
}

/// Every other victim against `baseline` (a victim path as in the results), per defense
/// setting, attack and budget that both ran with at least one common seed.
pub fn compare_to_baseline(results: &[AttackMetrics], baseline: &str) -> Vec<Comparison> {
    let mut groups: BTreeMap<(&str, &str, &str, usize), BySeed> = BTreeMap::new();
    for m in results {
        groups
            .entry((&m.victim, &m.defense, &m.attack, m.budget))
            .or_default()
            .insert(m.seed, m);
    }
    let mut out = Vec::new();
    for (&(victim, defense, attack, budget), cells) in &groups {
        if victim == baseline {
            continue;
        }
        let Some(base) = groups.get(&(baseline, defense, attack, budget)) else {
            continue;
        };
        let paired: Vec<(&AttackMetrics, &AttackMetrics)> = cells
            .iter()
            .filter_map(|(s, m)| base.get(s).map(|b| (*m, *b)))
            .collect();
        if paired.is_empty() {
            continue;
        }
        let diffs = |metric: fn(&AttackMetrics) -> f64| -> (f64, usize) {
            let d: Vec<f64> = paired.iter().map(|(m, b)| metric(m) - metric(b)).collect();
            (stats(&d).0, d.iter().filter(|x| **x < 0.0).count())
        };
        let (fidelity_difference, fidelity_lower) = diffs(|m| m.fidelity);
        let (surrogate_accuracy_difference, surrogate_accuracy_lower) = diffs(|m| m.surrogate_accuracy);
        let l1 = mean_of(cells, |m| m.l1);
        let curve = baseline_curve(&groups, baseline, defense_kind(defense), attack, budget);
        out.push(Comparison {
            victim: victim.to_string(),
            defense: defense.to_string(),
            attack: attack.to_string(),
            budget,
            seeds: paired.len(),
            defended_accuracy: mean_of(cells, |m| m.defended_accuracy),
            baseline_defended_accuracy: mean_of(base, |m| m.defended_accuracy),
            l1,
            baseline_l1: mean_of(base, |m| m.l1),
            fidelity: mean_of(cells, |m| m.fidelity),
            baseline_fidelity: mean_of(base, |m| m.fidelity),
            fidelity_difference,
            fidelity_lower,
            surrogate_accuracy_difference,
            surrogate_accuracy_lower,
            baseline_fidelity_at_equal_l1: interpolate(&curve, l1),
        });
    }
    out
}

const COLUMNS: [&str; 18] = [
    "victim",
    "baseline",
    "defense",
    "attack",
    "budget",
    "seeds",
    "defended_accuracy",
    "baseline_defended_accuracy",
    "l1",
    "baseline_l1",
    "fidelity",
    "baseline_fidelity",
    "fidelity_difference",
    "fidelity_lower_seeds",
    "surrogate_accuracy_difference",
    "surrogate_accuracy_lower_seeds",
    "baseline_fidelity_at_equal_l1",
    "fidelity_difference_at_equal_l1",
];

/// `comparison.csv`: one row per comparison; the equal-L1 columns are empty where the
/// victim's L1 is outside the baseline's curve.
pub fn to_csv(comparisons: &[Comparison], baseline: &str) -> String {
    let mut out = COLUMNS.join(",");
    out.push('\n');
    for c in comparisons {
        let at_equal_l1 = c.baseline_fidelity_at_equal_l1;
        let row = [
            c.victim.clone(),
            baseline.to_string(),
            c.defense.clone(),
            c.attack.clone(),
            c.budget.to_string(),
            c.seeds.to_string(),
            format!("{:.6}", c.defended_accuracy),
            format!("{:.6}", c.baseline_defended_accuracy),
            format!("{:.6}", c.l1),
            format!("{:.6}", c.baseline_l1),
            format!("{:.6}", c.fidelity),
            format!("{:.6}", c.baseline_fidelity),
            format!("{:.6}", c.fidelity_difference),
            c.fidelity_lower.to_string(),
            format!("{:.6}", c.surrogate_accuracy_difference),
            c.surrogate_accuracy_lower.to_string(),
            at_equal_l1.map_or(String::new(), |f| format!("{f:.6}")),
            at_equal_l1.map_or(String::new(), |f| format!("{:.6}", c.fidelity - f)),
        ];
        let fields: Vec<String> = row.iter().map(|f| csv_field(f)).collect();
        out.push_str(&fields.join(","));
        out.push('\n');
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::attack::metrics::test_cell as cell;

    const WEAK: &str = "reverse-sigmoid:beta=0.1,gamma=0.4";
    const STRONG: &str = "reverse-sigmoid:beta=0.5,gamma=0.4";

    /// Baseline curve (L1, fidelity): (0, 0.70), (0.4, 0.60), (1.0, 0.50). The victim is
    /// less perturbed by the same setting and its copies are worse at equal L1.
    fn results() -> Vec<AttackMetrics> {
        vec![
            cell("qat", "none", 0, 0.70, 0.0),
            cell("qat", "none", 1, 0.70, 0.0),
            cell("qat", WEAK, 0, 0.61, 0.4),
            cell("qat", WEAK, 1, 0.59, 0.4),
            cell("qat", STRONG, 0, 0.50, 1.0),
            cell("qat", STRONG, 1, 0.50, 1.0),
            cell("divqat", "none", 0, 0.66, 0.0),
            cell("divqat", "none", 1, 0.72, 0.0),
            cell("divqat", WEAK, 0, 0.60, 0.2),
            cell("divqat", WEAK, 1, 0.56, 0.2),
            cell("divqat", WEAK, 2, 0.10, 0.2), // no baseline seed 2: not paired
            cell("divqat", STRONG, 0, 0.51, 0.7),
        ]
    }

    fn find<'a>(c: &'a [Comparison], defense: &str) -> &'a Comparison {
        c.iter().find(|c| c.defense == defense).unwrap()
    }

    #[test]
    fn paired_differences_count_the_seeds_where_the_copy_is_worse() {
        let c = compare_to_baseline(&results(), "qat");
        assert_eq!(c.len(), 3, "the baseline is not compared with itself");
        let none = find(&c, "none");
        assert_eq!((none.seeds, none.fidelity_lower), (2, 1));
        assert!((none.fidelity_difference - -0.01).abs() < 1e-12);
        let weak = find(&c, WEAK);
        assert_eq!(
            (weak.seeds, weak.fidelity_lower, weak.surrogate_accuracy_lower),
            (2, 2, 2)
        );
        assert!((weak.fidelity_difference - -0.02).abs() < 1e-12);
        // Means are over all the victim's seeds, differences over the paired ones.
        assert!((weak.fidelity - 0.42).abs() < 1e-12);
        assert!((weak.baseline_fidelity - 0.60).abs() < 1e-12);
    }

    #[test]
    fn equal_l1_reads_the_baseline_curve_between_its_settings() {
        let c = compare_to_baseline(&results(), "qat");
        // L1 0.2 lies halfway between the baseline's none (0, 0.70) and WEAK (0.4, 0.60).
        let weak = find(&c, WEAK).baseline_fidelity_at_equal_l1.unwrap();
        assert!((weak - 0.65).abs() < 1e-12, "{weak}");
        // L1 0.7 halfway between WEAK (0.4, 0.60) and STRONG (1.0, 0.50).
        let strong = find(&c, STRONG).baseline_fidelity_at_equal_l1.unwrap();
        assert!((strong - 0.55).abs() < 1e-12, "{strong}");
        assert_eq!(find(&c, "none").baseline_fidelity_at_equal_l1, Some(0.70));
        // Beyond the baseline's largest L1 there is nothing to read.
        let mut far = results();
        far.push(cell("divqat", "gaussian:sigma=0.1", 0, 0.4, 2.0));
        far.push(cell("qat", "gaussian:sigma=0.1", 0, 0.4, 1.5));
        let c = compare_to_baseline(&far, "qat");
        assert_eq!(find(&c, "gaussian:sigma=0.1").baseline_fidelity_at_equal_l1, None);
    }

    #[test]
    fn csv_leaves_equal_l1_empty_outside_the_curve() {
        let mut far = results();
        far.push(cell("divqat", "gaussian:sigma=0.1", 0, 0.4, 2.0));
        far.push(cell("qat", "gaussian:sigma=0.1", 0, 0.4, 1.5));
        let csv = to_csv(&compare_to_baseline(&far, "qat"), "qat");
        let lines: Vec<&str> = csv.lines().collect();
        assert_eq!(lines[0].split(',').count(), COLUMNS.len());
        assert_eq!(lines.len(), 5);
        let gaussian = lines.iter().find(|l| l.contains("gaussian")).unwrap();
        assert!(gaussian.ends_with(",,"), "{gaussian}");
        let weak = lines.iter().find(|l| l.contains("beta=0.1")).unwrap();
        assert!(weak.starts_with("divqat,qat,\"reverse-sigmoid:beta=0.1,gamma=0.4\",knockoff,100,2,"));
        assert!(weak.ends_with(",0.650000,-0.230000"), "{weak}");
    }
}
