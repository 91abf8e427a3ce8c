//! Jacobian-based dataset augmentation (Papernot, McDaniel, Goodfellow, Jha, Celik,
//! Swami, "Practical Black-Box Attacks against Machine Learning", AsiaCCS 2017).
//!
//! A seed set `S_0` of `seed_size` images is drawn from the query set and labelled
//! by the oracle; the substitute is trained on it; then each round `rho` adds
//! `S_{rho+1} = S_rho ∪ { x + lambda_rho * sign(dF_{O(x)}(x) / dx) : x in S_rho }`,
//! where `F` is the substitute's softmax, `O(x)` the oracle's label (argmax of its
//! answer) and `lambda_rho = lambda * (-1)^floor(rho / tau)` (the paper's periodic step
//! size), the new images are labelled by the oracle and the substitute training
//! continues for `epochs` epochs on the whole set. Pixels are codes 0..=255, so a
//! step of `lambda` (on the [0, 1] scale) moves each code by `round(255 * lambda)`,
//! clamped to 0..=255. The round that would exceed the budget augments a seeded
//! random subset of `S_rho` that fills it exactly; `max_rounds` caps the rounds
//! (the seed round excluded).
//!
//! The substitute fits soft labels when the oracle gives probabilities (hard labels
//! when it gives labels only); the Jacobian direction always uses the label.

use datasets::Split;
use indicatif::ProgressBar;
use serde::{Deserialize, Serialize};
use tch::Device;

use super::knockoff::{
    answer_labels, gather, phase, query_all, sub_seed, target_kind, AttackConfig, AttackError, AttackOutcome,
};
use super::oracle::Oracle;
use super::queries::sample_indices;
use super::surrogate::{Surrogate, TransferSet};

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct JbdaConfig {
    /// Images of the seed set S_0 (at most the budget).
    pub seed_size: usize,
    /// Step size on the [0, 1] pixel scale (the paper's 0.1).
    pub lambda: f64,
    /// Rounds after which the step's sign flips (periodic step size).
    pub tau: usize,
    /// Augmentation rounds at most.
    pub max_rounds: usize,
}

impl Default for JbdaConfig {
    fn default() -> Self {
        JbdaConfig {
            seed_size: 100,
            lambda: 0.1,
            tau: 3,
            max_rounds: 32,
        }
    }
}

/// `x + step * sign`, clamped to 0..=255, per pixel code.
pub fn augment(images: &[u8], signs: &[i8], step: i32) -> Vec<u8> {
    images
        .iter()
        .zip(signs)
        .map(|(&x, &s)| (x as i32 + step * s as i32).clamp(0, 255) as u8)
        .collect()
}

pub(crate) fn run(
    oracle: &mut Oracle,
    query_set: &Split,
    name: &str,
    config: &AttackConfig,
    device: Device,
    bar: &ProgressBar,
) -> Result<AttackOutcome, AttackError> {
    let j = &config.jbda;
    let before = oracle.queries_used();
    let classes = oracle.victim_mut().classes();
    let image_len = query_set.image_len();
    let kind = target_kind(oracle);
    let seed_size = j.seed_size.max(1).min(config.budget);
    let indices = sample_indices(query_set.len(), seed_size, sub_seed(config.seed, 1), name)?;
    let mut transfer = TransferSet::default();
    let seed_images = gather(query_set, &indices);
    phase(bar, "JBDA seed set", seed_size);
    let answers = query_all(oracle, &seed_images, image_len, config.query_batch, bar)?;
    transfer.push(&seed_images, answers);
    let mut surrogate = Surrogate::new(
        &config.surrogate,
        query_set.shape,
        classes,
        device,
        sub_seed(config.seed, 2),
    );
    let train = |s: &mut Surrogate, t: &TransferSet, round: usize| {
        phase(
            bar,
            &format!("JBDA round {round}: training on {} images", t.len()),
            t.len() * config.surrogate.epochs,
        );
        s.train(t, kind, sub_seed(config.seed, 100 + round as u64), |done| {
            bar.set_position(done as u64)
        });
    };
    train(&mut surrogate, &transfer, 0);
    let mut rounds = 0;
    while transfer.len() < config.budget && rounds < j.max_rounds {
        let remaining = config.budget - transfer.len();
        // Which points of S_rho to augment: all, or a random subset filling the budget.
        let chosen: Vec<usize> = if transfer.len() <= remaining {
            (0..transfer.len()).collect()
        } else {
            let mut c = sample_indices(
                transfer.len(),
                remaining,
                sub_seed(config.seed, 200 + rounds as u64),
                name,
            )?;
            c.sort_unstable();
            c
        };
        let mut images = Vec::with_capacity(chosen.len() * image_len);
        for &i in &chosen {
            images.extend_from_slice(&transfer.images[i * image_len..(i + 1) * image_len]);
        }
        let labels: Vec<usize> =
            answer_labels(&chosen.iter().map(|&i| transfer.targets[i].clone()).collect::<Vec<_>>());
        let sign = if (rounds / j.tau.max(1)).is_multiple_of(2) {
            1
        } else {
            -1
        };
        let step = sign * (255.0 * j.lambda).round() as i32;
        let new_images = augment(&images, &surrogate.jacobian_sign(&images, &labels), step);
        phase(bar, &format!("JBDA round {}: querying", rounds + 1), chosen.len());
        let answers = query_all(oracle, &new_images, image_len, config.query_batch, bar)?;
        transfer.push(&new_images, answers);
        rounds += 1;
        train(&mut surrogate, &transfer, rounds);
    }
    Ok(AttackOutcome {
        surrogate,
        transfer,
        queries: oracle.queries_used() - before,
        policy: None,
        rounds: Some(rounds + 1),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn augmentation_steps_and_clamps() {
        assert_eq!(augment(&[0, 100, 250, 7], &[1, -1, 1, 0], 26), vec![26, 74, 255, 7]);
        assert_eq!(augment(&[10], &[1], -26), vec![0]);
    }
}
