//! The numbers an attack run reports (DESIGN.md §2): victim accuracy, defended victim
//! accuracy and mean L1 change of the answers (the defense's utility cost, from
//! `oracle::defense_utility`), surrogate test accuracy, fidelity (top-1 agreement of
//! surrogate and undefended victim on the victim's test set) and queries used.

use std::collections::HashMap;

use datasets::Split;
use serde::{Deserialize, Serialize};

use super::defense::argmax;
use super::defense::DefenseChain;
use super::oracle::{defense_utility, OracleError, Victim};
use super::surrogate::{accuracy_and_fidelity, Surrogate};

/// The result of one attack (the `--json` object of `divqat attack`, one cell of an
/// experiment). Accuracies and fidelity are fractions in [0, 1].
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct AttackMetrics {
    pub victim_accuracy: f64,
    pub defended_accuracy: f64,
    pub surrogate_accuracy: f64,
    pub fidelity: f64,
    /// Mean L1 distance between the clean and the defended probability vectors.
    pub l1: f64,
    pub queries: usize,
    pub oracle: String,
    pub defense: String,
    pub attack: String,
    pub budget: usize,
    pub seed: u64,
    pub victim: String,
    pub query_set: String,
    pub surrogate: String,
    pub epochs: usize,
    pub labels_only: bool,
    /// Queries whose answers the cross-check oracle confirmed bit for bit (with
    /// `--cross-check`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub cross_checked_queries: Option<usize>,
    pub test_images: usize,
    pub seconds: f64,
}

/// The victim's side of the metrics, computed before the attack.
#[derive(Clone, Debug, PartialEq)]
pub struct VictimSide {
    /// Top-1 of the undefended victim per test image.
    pub predictions: Vec<usize>,
    pub victim_accuracy: f64,
    pub defended_accuracy: f64,
    pub l1: f64,
}

/// A victim whose answers are remembered by image, so that the clean test-set
/// predictions and `defense_utility` run the (possibly slow) backend once.
pub struct MemoVictim<'a> {
    inner: &'a mut dyn Victim,
    cache: HashMap<Vec<u8>, Vec<f32>>,
}

impl<'a> MemoVictim<'a> {
    pub fn new(inner: &'a mut dyn Victim) -> Self {
        MemoVictim {
            inner,
            cache: HashMap::new(),
        }
    }
}

impl Victim for MemoVictim<'_> {
    fn classes(&self) -> usize {
        self.inner.classes()
    }

    fn input_shape(&self) -> [usize; 3] {
        self.inner.input_shape()
    }

    fn name(&self) -> String {
        self.inner.name()
    }

    fn probabilities(&mut self, images: &[u8]) -> Result<Vec<Vec<f32>>, OracleError> {
        let len: usize = self.inner.input_shape().iter().product();
        let mut missing: Vec<u8> = Vec::new();
        let mut missing_keys: Vec<&[u8]> = Vec::new();
        for image in images.chunks(len.max(1)) {
            if !self.cache.contains_key(image) && !missing_keys.contains(&image) {
                missing.extend_from_slice(image);
                missing_keys.push(image);
            }
        }
        for chunk_start in (0..missing_keys.len()).step_by(512) {
            let end = (chunk_start + 512).min(missing_keys.len());
            let answers = self.inner.probabilities(&missing[chunk_start * len..end * len])?;
            for (key, answer) in missing_keys[chunk_start..end].iter().zip(answers) {
                self.cache.insert(key.to_vec(), answer);
            }
        }
        Ok(images
            .chunks(len.max(1))
            .map(|image| self.cache[image].clone())
            .collect())
    }
}

/// Victim accuracy, defended accuracy and L1 on `test`, plus the clean predictions
/// the fidelity is measured against. The victim is queried directly (outside any
/// oracle budget) and once per distinct image.
pub fn victim_side(
    victim: &mut dyn Victim,
    defenses: &DefenseChain,
    test: &Split,
    seed: u64,
) -> Result<VictimSide, OracleError> {
    let mut memo = MemoVictim::new(victim);
    let clean = memo.probabilities(&test.images)?;
    let predictions: Vec<usize> = clean.iter().map(|p| argmax(p)).collect();
    let utility = defense_utility(&mut memo, defenses, &test.images, &test.labels, seed)?;
    Ok(VictimSide {
        predictions,
        victim_accuracy: utility.victim_accuracy,
        defended_accuracy: utility.defended_accuracy,
        l1: utility.mean_l1,
    })
}

/// Surrogate test accuracy and fidelity against the victim's clean predictions.
pub fn surrogate_side(surrogate: &Surrogate, test: &Split, victim_predictions: &[usize]) -> (f64, f64) {
    let predictions = surrogate.predict(&test.images);
    accuracy_and_fidelity(&predictions, &test.labels, victim_predictions)
}

/// A finished cell with the metrics that grouping, charts and comparisons read (the
/// rest fixed), for the unit tests of `experiment` and `compare`.
#[cfg(test)]
pub(crate) fn test_cell(victim: &str, defense: &str, seed: u64, fidelity: f64, l1: f64) -> AttackMetrics {
    AttackMetrics {
        victim_accuracy: 0.9,
        defended_accuracy: 0.9,
        surrogate_accuracy: fidelity - 0.01,
        fidelity,
        l1,
        queries: 100,
        oracle: "reference".into(),
        defense: defense.into(),
        attack: "knockoff".into(),
        budget: 100,
        seed,
        victim: victim.into(),
        query_set: "animal-mnist".into(),
        surrogate: "small-cnn x1".into(),
        epochs: 1,
        labels_only: false,
        cross_checked_queries: None,
        test_images: 10,
        seconds: 1.0,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    struct Counting {
        calls: usize,
        images: usize,
    }

    impl Victim for Counting {
        fn classes(&self) -> usize {
            2
        }
        fn input_shape(&self) -> [usize; 3] {
            [1, 1, 2]
        }
        fn name(&self) -> String {
            "counting".into()
        }
        fn probabilities(&mut self, images: &[u8]) -> Result<Vec<Vec<f32>>, OracleError> {
            self.calls += 1;
            self.images += images.len() / 2;
            Ok(images
                .chunks(2)
                .map(|i| if i[0] > i[1] { vec![0.9, 0.1] } else { vec![0.2, 0.8] })
                .collect())
        }
    }

    #[test]
    fn memo_runs_each_distinct_image_once() {
        let mut v = Counting { calls: 0, images: 0 };
        let mut memo = MemoVictim::new(&mut v);
        let a = memo.probabilities(&[5, 1, 1, 5, 5, 1]).unwrap();
        let b = memo.probabilities(&[1, 5, 5, 1]).unwrap();
        assert_eq!(a, vec![vec![0.9, 0.1], vec![0.2, 0.8], vec![0.9, 0.1]]);
        assert_eq!(b, vec![vec![0.2, 0.8], vec![0.9, 0.1]]);
        drop(memo);
        assert_eq!((v.calls, v.images), (1, 2));
    }

    #[test]
    fn accuracy_and_fidelity_count_agreement() {
        let (acc, fid) = accuracy_and_fidelity(&[0, 1, 2, 1], &[0, 1, 1, 1], &[0, 2, 2, 1]);
        assert_eq!((acc, fid), (0.75, 0.75));
    }
}
