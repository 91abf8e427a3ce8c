//! The attack driver and KnockoffNets (Orekondy, Schiele, Fritz, "Knockoff Nets:
//! Stealing Functionality of Black-Box Models", CVPR 2019).
//!
//! - `knockoff` (random): `budget` images drawn without replacement from the query
//!   set, sent to the oracle in batches; the surrogate is trained on the answers.
//! - `knockoff-adaptive`: a gradient bandit over the query set's classes picks which
//!   class to draw the next images from. The query sets all carry labels (Animal-MNIST
//!   its 10 animal classes, digits the digit, CIFAR its classes, Fashion-MNIST its
//!   garments), so the actions are the query set's own classes — the paper's coarse
//!   action space when no hierarchy is used. Each step draws `step_batch` images of
//!   the chosen class, queries them and computes the paper's rewards per image:
//!   certainty `y_(1) - y_(2)` (margin of the two largest answer probabilities),
//!   diversity `sum_k max(0, y_k - ybar_k)` (against the mean answer of the last
//!   `diversity_window` queries), and loss `-sum_k y_k log p_k` (cross-entropy of the
//!   online surrogate `p` to the answer `y`). `all` sums the three after rescaling each
//!   to [0, 1] by the minimum and maximum seen so far. With the reward `r` (mean over
//!   the step's images), the running mean `rbar` of past rewards as baseline and the
//!   policy `pi = softmax(H)`: `H_z += alpha (r - rbar)(1 - pi_z)` for the chosen action
//!   and `H_z' -= alpha (r - rbar) pi_z'` for the others. The online surrogate takes
//!   one optimizer step on each step's images. When the budget is spent the final
//!   surrogate is trained from scratch on the whole transfer set, exactly like the
//!   random strategy, so the two differ only in which images were queried.
//!
//! Both fit soft labels, or hard labels when the oracle answers labels only.

use datasets::Split;
use indicatif::ProgressBar;
use rand::seq::SliceRandom;
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use serde::{Deserialize, Serialize};
use tch::Device;

use super::defense::argmax;
use super::jbda::{self, JbdaConfig};
use super::oracle::{Oracle, OracleError};
use super::queries::sample_indices;
use super::surrogate::{Surrogate, SurrogateConfig, TargetKind, TransferSet};

/// Errors of an attack run; the message names the file or setting concerned.
#[derive(Debug, thiserror::Error)]
pub enum AttackError {
    #[error("{0}")]
    Config(String),
    #[error(transparent)]
    Data(#[from] datasets::DataError),
    #[error(transparent)]
    Oracle(#[from] OracleError),
    #[error("libtorch: {0}")]
    Torch(#[from] tch::TchError),
    #[error("{path}: {message}")]
    Io { path: String, message: String },
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize, clap::ValueEnum)]
#[serde(rename_all = "kebab-case")]
pub enum AttackKind {
    /// KnockoffNets, random sampling from the query set.
    Knockoff,
    /// KnockoffNets, adaptive sampling (gradient bandit over the query set's classes).
    KnockoffAdaptive,
    /// Jacobian-based dataset augmentation (Papernot et al. 2017).
    Jbda,
}

impl AttackKind {
    pub fn as_str(self) -> &'static str {
        match self {
            AttackKind::Knockoff => "knockoff",
            AttackKind::KnockoffAdaptive => "knockoff-adaptive",
            AttackKind::Jbda => "jbda",
        }
    }
}

impl std::fmt::Display for AttackKind {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

impl std::str::FromStr for AttackKind {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        <AttackKind as clap::ValueEnum>::from_str(s, true)
            .map_err(|_| format!("unknown attack '{s}' (expected knockoff, knockoff-adaptive or jbda)"))
    }
}

/// The reward of the adaptive strategy.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize, clap::ValueEnum)]
#[serde(rename_all = "kebab-case")]
pub enum Reward {
    Certainty,
    Diversity,
    Loss,
    /// The sum of the three, each rescaled to [0, 1].
    All,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct AdaptiveConfig {
    pub reward: Reward,
    /// Learning rate alpha of the preferences.
    pub alpha: f64,
    /// Images drawn (and queried) per chosen action.
    pub step_batch: usize,
    /// Past answers whose mean is the diversity reward's reference.
    pub diversity_window: usize,
}

impl Default for AdaptiveConfig {
    fn default() -> Self {
        AdaptiveConfig {
            reward: Reward::All,
            alpha: 0.1,
            step_batch: 16,
            diversity_window: 25,
        }
    }
}

/// Everything an attack needs besides the oracle and the query set.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct AttackConfig {
    pub kind: AttackKind,
    pub budget: usize,
    /// Images per oracle call.
    pub query_batch: usize,
    pub surrogate: SurrogateConfig,
    pub seed: u64,
    pub adaptive: AdaptiveConfig,
    pub jbda: JbdaConfig,
}

impl AttackConfig {
    pub fn new(kind: AttackKind, budget: usize, surrogate: SurrogateConfig, seed: u64) -> Self {
        AttackConfig {
            kind,
            budget,
            query_batch: 256,
            surrogate,
            seed,
            adaptive: AdaptiveConfig::default(),
            jbda: JbdaConfig::default(),
        }
    }
}

/// The stolen model and how it was obtained.
pub struct AttackOutcome {
    pub surrogate: Surrogate,
    pub transfer: TransferSet,
    pub queries: usize,
    /// Adaptive strategy: the final action probabilities and how often each action was taken.
    pub policy: Option<(Vec<f64>, Vec<usize>)>,
    /// JBDA: the substitute training rounds run (the seed round included).
    pub rounds: Option<usize>,
}

/// Seeds of the separate random streams of an attack.
pub(crate) fn sub_seed(seed: u64, stream: u64) -> u64 {
    seed.wrapping_mul(0x9e37_79b9_7f4a_7c15)
        .wrapping_add(stream.wrapping_mul(0xbf58_476d_1ce4_e5b9))
}

/// The images at `indices` of `set`, back to back.
pub(crate) fn gather(set: &Split, indices: &[usize]) -> Vec<u8> {
    let mut out = Vec::with_capacity(indices.len() * set.image_len());
    for &i in indices {
        out.extend_from_slice(set.image(i));
    }
    out
}

/// Query `images` in batches of `batch` images, advancing `bar` by the images answered.
pub(crate) fn query_all(
    oracle: &mut Oracle,
    images: &[u8],
    image_len: usize,
    batch: usize,
    bar: &ProgressBar,
) -> Result<Vec<Vec<f32>>, AttackError> {
    let mut out = Vec::with_capacity(images.len() / image_len.max(1));
    for chunk in images.chunks(batch.max(1) * image_len) {
        let answers = oracle.query(chunk)?;
        bar.inc(answers.len() as u64);
        out.extend(answers);
    }
    Ok(out)
}

pub(crate) fn target_kind(oracle: &Oracle) -> TargetKind {
    if oracle.labels_only() {
        TargetKind::Hard
    } else {
        TargetKind::Soft
    }
}

/// Start a phase of the progress bar.
pub(crate) fn phase(bar: &ProgressBar, message: &str, total: usize) {
    bar.set_message(message.to_string());
    bar.set_length(total as u64);
    bar.set_position(0);
}

/// Train the final surrogate from scratch on the transfer set.
pub(crate) fn train_final(
    config: &AttackConfig,
    transfer: &TransferSet,
    shape: [usize; 3],
    classes: usize,
    kind: TargetKind,
    device: Device,
    bar: &ProgressBar,
) -> Surrogate {
    let mut surrogate = Surrogate::new(&config.surrogate, shape, classes, device, sub_seed(config.seed, 2));
    phase(
        bar,
        &format!("training the surrogate ({} epochs)", config.surrogate.epochs),
        transfer.len() * config.surrogate.epochs,
    );
    surrogate.train(transfer, kind, sub_seed(config.seed, 3), |done| {
        bar.set_position(done as u64)
    });
    surrogate
}

/// Run the configured attack against `oracle`, drawing from `query_set` (already in
/// the victim's input shape). Spends exactly `config.budget` queries (JBDA: unless
/// its round limit stops it first).
pub fn run_attack(
    oracle: &mut Oracle,
    query_set: &Split,
    query_set_name: &str,
    config: &AttackConfig,
    device: Device,
    bar: &ProgressBar,
) -> Result<AttackOutcome, AttackError> {
    let shape = oracle.victim_mut().input_shape();
    if query_set.shape != shape {
        return Err(AttackError::Config(format!(
            "query set {query_set_name} has shape {:?}, the victim takes {shape:?}",
            query_set.shape
        )));
    }
    if config.budget == 0 {
        return Err(AttackError::Config("the query budget must be at least 1".into()));
    }
    if config.budget > oracle.budget().saturating_sub(oracle.queries_used()) {
        return Err(AttackError::Config(format!(
            "the attack budget {} exceeds the oracle's remaining budget {}",
            config.budget,
            oracle.budget().saturating_sub(oracle.queries_used())
        )));
    }
    match config.kind {
        AttackKind::Knockoff => knockoff_random(oracle, query_set, query_set_name, config, device, bar),
        AttackKind::KnockoffAdaptive => knockoff_adaptive(oracle, query_set, query_set_name, config, device, bar),
        AttackKind::Jbda => jbda::run(oracle, query_set, query_set_name, config, device, bar),
    }
}

fn knockoff_random(
    oracle: &mut Oracle,
    query_set: &Split,
    name: &str,
    config: &AttackConfig,
    device: Device,
    bar: &ProgressBar,
) -> Result<AttackOutcome, AttackError> {
    let before = oracle.queries_used();
    let classes = oracle.victim_mut().classes();
    let indices = sample_indices(query_set.len(), config.budget, sub_seed(config.seed, 1), name)?;
    let images = gather(query_set, &indices);
    phase(bar, "querying the oracle", indices.len());
    let answers = query_all(oracle, &images, query_set.image_len(), config.query_batch, bar)?;
    let transfer = TransferSet {
        images,
        targets: answers,
    };
    let kind = target_kind(oracle);
    let surrogate = train_final(config, &transfer, query_set.shape, classes, kind, device, bar);
    Ok(AttackOutcome {
        surrogate,
        transfer,
        queries: oracle.queries_used() - before,
        policy: None,
        rounds: None,
    })
}

/// Rescales a reward to [0, 1] by the extremes seen so far.
#[derive(Default)]
struct MinMax {
    lo: f64,
    hi: f64,
    seen: bool,
}

impl MinMax {
    fn scale(&mut self, v: f64) -> f64 {
        if !self.seen {
            (self.lo, self.hi, self.seen) = (v, v, true);
        }
        self.lo = self.lo.min(v);
        self.hi = self.hi.max(v);
        if self.hi > self.lo {
            (v - self.lo) / (self.hi - self.lo)
        } else {
            0.0
        }
    }
}

/// The paper's three rewards of one answer `y` given the surrogate's probabilities `p`
/// and the mean `ybar` of recent answers.
pub fn rewards(y: &[f32], p: &[f32], ybar: &[f64]) -> (f64, f64, f64) {
    let mut sorted: Vec<f32> = y.to_vec();
    sorted.sort_by(|a, b| b.total_cmp(a));
    let certainty = (sorted[0] - sorted.get(1).copied().unwrap_or(0.0)) as f64;
    let diversity = y.iter().zip(ybar).map(|(&yk, &mk)| (yk as f64 - mk).max(0.0)).sum();
    let loss = -y
        .iter()
        .zip(p)
        .map(|(&yk, &pk)| yk as f64 * (pk.max(1e-12) as f64).ln())
        .sum::<f64>();
    (certainty, diversity, loss)
}

/// `softmax(h)` restricted to the available actions (others get 0).
fn policy(h: &[f64], available: &[bool]) -> Vec<f64> {
    let max = h
        .iter()
        .zip(available)
        .filter(|(_, &a)| a)
        .map(|(v, _)| *v)
        .fold(f64::NEG_INFINITY, f64::max);
    let e: Vec<f64> = h
        .iter()
        .zip(available)
        .map(|(v, &a)| if a { (v - max).exp() } else { 0.0 })
        .collect();
    let z: f64 = e.iter().sum();
    e.into_iter().map(|v| v / z).collect()
}

fn knockoff_adaptive(
    oracle: &mut Oracle,
    query_set: &Split,
    name: &str,
    config: &AttackConfig,
    device: Device,
    bar: &ProgressBar,
) -> Result<AttackOutcome, AttackError> {
    let ad = &config.adaptive;
    if config.budget > query_set.len() {
        sample_indices(query_set.len(), config.budget, 0, name)?; // the refusal's message
    }
    let before = oracle.queries_used();
    let classes = oracle.victim_mut().classes();
    let actions = query_set.classes;
    let mut rng = ChaCha8Rng::seed_from_u64(sub_seed(config.seed, 4));
    // Each action's images in a seeded random order, drawn without replacement.
    let mut pools: Vec<Vec<usize>> = vec![Vec::new(); actions];
    for (i, &l) in query_set.labels.iter().enumerate() {
        pools[l as usize].push(i);
    }
    for pool in &mut pools {
        pool.shuffle(&mut rng);
    }
    let kind = target_kind(oracle);
    let mut online = Surrogate::new(
        &config.surrogate,
        query_set.shape,
        classes,
        device,
        sub_seed(config.seed, 5),
    );
    let mut h = vec![0.0f64; actions];
    let mut counts = vec![0usize; actions];
    let mut recent: std::collections::VecDeque<Vec<f32>> = std::collections::VecDeque::new();
    let (mut scale_c, mut scale_d, mut scale_l) = (MinMax::default(), MinMax::default(), MinMax::default());
    let (mut reward_sum, mut reward_steps) = (0.0f64, 0usize);
    let mut transfer = TransferSet::default();
    phase(bar, "adaptive queries", config.budget);
    while transfer.len() < config.budget {
        let available: Vec<bool> = pools.iter().map(|p| !p.is_empty()).collect();
        let pi = policy(&h, &available);
        let z = {
            let u: f64 = rng.gen();
            let mut acc = 0.0;
            let mut pick = pi
                .iter()
                .rposition(|&p| p > 0.0)
                .expect("an action with images is left");
            for (a, &p) in pi.iter().enumerate() {
                acc += p;
                if p > 0.0 && u < acc {
                    pick = a;
                    break;
                }
            }
            pick
        };
        let take = ad
            .step_batch
            .max(1)
            .min(config.budget - transfer.len())
            .min(pools[z].len());
        let keep = pools[z].len() - take;
        let picked: Vec<usize> = pools[z].split_off(keep);
        let images = gather(query_set, &picked);
        let answers = oracle.query(&images)?;
        bar.inc(answers.len() as u64);
        counts[z] += answers.len();
        // Rewards against the online surrogate before it learns from these answers.
        let p = online.probabilities(&images);
        let mut step_reward = 0.0;
        for (y, p) in answers.iter().zip(&p) {
            let ybar: Vec<f64> = if recent.is_empty() {
                vec![0.0; y.len()]
            } else {
                (0..y.len())
                    .map(|k| recent.iter().map(|r| r[k] as f64).sum::<f64>() / recent.len() as f64)
                    .collect()
            };
            let (c, d, l) = rewards(y, p, &ybar);
            let (sc, sd, sl) = (scale_c.scale(c), scale_d.scale(d), scale_l.scale(l));
            step_reward += match ad.reward {
                Reward::Certainty => c,
                Reward::Diversity => d,
                Reward::Loss => l,
                Reward::All => sc + sd + sl,
            };
            recent.push_back(y.clone());
            if recent.len() > ad.diversity_window.max(1) {
                recent.pop_front();
            }
        }
        let r = step_reward / answers.len() as f64;
        let baseline = if reward_steps == 0 {
            0.0
        } else {
            reward_sum / reward_steps as f64
        };
        for a in 0..actions {
            if a == z {
                h[a] += ad.alpha * (r - baseline) * (1.0 - pi[a]);
            } else {
                h[a] -= ad.alpha * (r - baseline) * pi[a];
            }
        }
        reward_sum += r;
        reward_steps += 1;
        online.step(&images, &answers, kind, config.surrogate.lr);
        transfer.push(&images, answers);
    }
    let available = vec![true; actions];
    let final_policy = policy(&h, &available);
    drop(online);
    let surrogate = train_final(config, &transfer, query_set.shape, classes, kind, device, bar);
    Ok(AttackOutcome {
        surrogate,
        transfer,
        queries: oracle.queries_used() - before,
        policy: Some((final_policy, counts)),
        rounds: None,
    })
}

/// The argmax of every answer.
pub(crate) fn answer_labels(answers: &[Vec<f32>]) -> Vec<usize> {
    answers.iter().map(|a| argmax(a)).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rewards_match_the_paper_definitions() {
        let y = [0.7f32, 0.2, 0.1];
        let p = [0.5f32, 0.25, 0.25];
        let ybar = [0.3f64, 0.3, 0.4];
        let (c, d, l) = rewards(&y, &p, &ybar);
        assert!((c - 0.5).abs() < 1e-6);
        assert!((d - 0.4).abs() < 1e-6);
        let expected = -(0.7 * 0.5f64.ln() + 0.2 * 0.25f64.ln() + 0.1 * 0.25f64.ln());
        assert!((l - expected).abs() < 1e-5, "{l} vs {expected}");
    }

    #[test]
    fn policy_is_a_distribution_over_available_actions() {
        let pi = policy(&[0.0, 1.0, 5.0], &[true, true, false]);
        assert_eq!(pi[2], 0.0);
        assert!((pi.iter().sum::<f64>() - 1.0).abs() < 1e-12);
        assert!((pi[1] / pi[0] - 1f64.exp()).abs() < 1e-9);
    }

    #[test]
    fn min_max_scaling() {
        let mut s = MinMax::default();
        assert_eq!(s.scale(3.0), 0.0);
        assert_eq!(s.scale(5.0), 1.0);
        assert_eq!(s.scale(4.0), 0.5);
    }
}
