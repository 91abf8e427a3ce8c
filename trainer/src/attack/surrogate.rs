//! The attacker's surrogate: any zoo architecture as a `FloatNet`, trained from scratch
//! on (image, oracle answer) pairs with `trainer::optim`.
//!
//! Soft targets (probability vectors) are fitted with the cross-entropy to the soft
//! target, `-sum_k p_k log softmax(z)_k` (the KL divergence up to a constant); hard
//! targets (a label-only oracle) with the ordinary cross-entropy to the argmax.
//!
//! The loop is written here rather than reusing `train::train_epoch`: that one is
//! bound to a `TrainConfig`, hard dataset labels, a teacher and a run directory with
//! checkpoints, none of which a surrogate has; the pieces it is made of (`FloatNet`,
//! `Optimizer`, `Schedule`, `loss::cross_entropy`, the progress bar) are reused.

use compiler::zoo::Arch;
use rand::seq::SliceRandom;
use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;
use serde::{Deserialize, Serialize};
use tch::nn::{ModuleT, VarStore};
use tch::{Device, Kind, Tensor};

use super::defense::argmax;
use super::oracle::pixel_codes;
use crate::float_net::FloatNet;
use crate::loss::cross_entropy;
use crate::optim::{Optimizer, OptimizerKind, Schedule};

/// How the surrogate is built and trained.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct SurrogateConfig {
    pub arch: Arch,
    pub width: f64,
    /// Epochs over the transfer set (the queried images and the oracle's answers).
    pub epochs: usize,
    pub batch_size: usize,
    pub optimizer: OptimizerKind,
    /// Peak learning rate (cosine decay to 0 over the run).
    pub lr: f64,
    pub weight_decay: f64,
}

impl Default for SurrogateConfig {
    fn default() -> Self {
        SurrogateConfig {
            arch: Arch::SmallCnn,
            width: 1.0,
            epochs: 10,
            batch_size: 64,
            optimizer: OptimizerKind::Adamw,
            lr: 2e-3,
            weight_decay: 1e-4,
        }
    }
}

/// The oracle's answers the surrogate is fitted to.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum TargetKind {
    /// Probability vectors (cross-entropy to the soft target).
    Soft,
    /// The argmax only (label-only oracles).
    Hard,
}

/// Images (u8 codes, back to back) and one answer vector per image.
#[derive(Clone, Debug, Default)]
pub struct TransferSet {
    pub images: Vec<u8>,
    pub targets: Vec<Vec<f32>>,
}

impl TransferSet {
    pub fn len(&self) -> usize {
        self.targets.len()
    }

    pub fn is_empty(&self) -> bool {
        self.targets.is_empty()
    }

    pub fn push(&mut self, images: &[u8], targets: Vec<Vec<f32>>) {
        self.images.extend_from_slice(images);
        self.targets.extend(targets);
    }
}

pub struct Surrogate {
    pub config: SurrogateConfig,
    pub shape: [usize; 3],
    pub classes: usize,
    pub device: Device,
    vs: VarStore,
    net: FloatNet,
    optimizer: Optimizer,
}

/// Pixel codes `[N, C, H, W]` as floats on `device`.
fn images_tensor(images: &[u8], shape: [usize; 3], device: Device) -> Tensor {
    pixel_codes(images, shape).to_device(device)
}

/// Rows of `f32` as a `[N, K]` tensor.
fn rows_tensor(rows: &[&Vec<f32>], classes: usize, device: Device) -> Tensor {
    let flat: Vec<f32> = rows.iter().flat_map(|r| r.iter().copied()).collect();
    Tensor::from_slice(&flat)
        .view([rows.len() as i64, classes as i64])
        .to_device(device)
}

impl Surrogate {
    /// A freshly initialised surrogate (`tch::manual_seed(seed)` first, so the same
    /// seed gives the same initial weights).
    pub fn new(config: &SurrogateConfig, shape: [usize; 3], classes: usize, device: Device, seed: u64) -> Self {
        tch::manual_seed(seed as i64);
        let vs = VarStore::new(device);
        let net = FloatNet::new(&vs.root(), &config.arch.blocks(classes, config.width), shape);
        let optimizer = Optimizer::new(config.optimizer, &vs, config.weight_decay);
        Surrogate {
            config: config.clone(),
            shape,
            classes,
            device,
            vs,
            net,
            optimizer,
        }
    }

    pub fn parameters(&self) -> usize {
        self.vs.trainable_variables().iter().map(|t| t.numel()).sum()
    }

    fn image_len(&self) -> usize {
        self.shape.iter().product()
    }

    /// Loss of a batch against its targets.
    fn batch_loss(&self, logits: &Tensor, targets: &[&Vec<f32>], kind: TargetKind) -> Tensor {
        match kind {
            TargetKind::Soft => {
                let p = rows_tensor(targets, self.classes, self.device);
                // Answers that are not normalised (top-k, rounding) are renormalised.
                let p = &p / p.sum_dim_intlist(-1, true, Kind::Float).clamp_min(1e-12);
                -(p * logits.log_softmax(-1, Kind::Float))
                    .sum_dim_intlist(-1, false, Kind::Float)
                    .mean(Kind::Float)
            }
            TargetKind::Hard => {
                let labels: Vec<i64> = targets.iter().map(|t| argmax(t) as i64).collect();
                cross_entropy(logits, &Tensor::from_slice(&labels).to_device(self.device))
            }
        }
    }

    /// One optimizer step on a batch (online training of the adaptive attack).
    pub fn step(&mut self, images: &[u8], targets: &[Vec<f32>], kind: TargetKind, lr: f64) -> f64 {
        let pixels = images_tensor(images, self.shape, self.device);
        let logits = self.net.forward_t(&pixels, true);
        let refs: Vec<&Vec<f32>> = targets.iter().collect();
        let loss = self.batch_loss(&logits, &refs, kind);
        self.optimizer.zero_grad();
        loss.backward();
        self.optimizer.step(lr);
        loss.double_value(&[])
    }

    /// Train for `config.epochs` epochs (cosine schedule over them) on `data`; the
    /// batch order of epoch `e` comes from `(seed, e)`. `on_batch` gets the images
    /// done so far in this call. Returns the mean loss of the last epoch.
    pub fn train(&mut self, data: &TransferSet, kind: TargetKind, seed: u64, mut on_batch: impl FnMut(usize)) -> f64 {
        let n = data.len();
        if n == 0 {
            return 0.0;
        }
        let batch = self.config.batch_size.max(1);
        let steps_per_epoch = n.div_ceil(batch);
        let total = steps_per_epoch * self.config.epochs;
        let len = self.image_len();
        let mut last_loss = 0.0;
        let mut done = 0;
        for epoch in 0..self.config.epochs {
            let mut order: Vec<usize> = (0..n).collect();
            let mut rng = ChaCha8Rng::seed_from_u64(seed);
            rng.set_stream(epoch as u64 + 1);
            order.shuffle(&mut rng);
            let mut loss_sum = 0.0;
            for (step, idx) in order.chunks(batch).enumerate() {
                let mut images = Vec::with_capacity(idx.len() * len);
                for &i in idx {
                    images.extend_from_slice(&data.images[i * len..(i + 1) * len]);
                }
                let targets: Vec<&Vec<f32>> = idx.iter().map(|&i| &data.targets[i]).collect();
                let pixels = images_tensor(&images, self.shape, self.device);
                let logits = self.net.forward_t(&pixels, true);
                let loss = self.batch_loss(&logits, &targets, kind);
                self.optimizer.zero_grad();
                loss.backward();
                let lr = Schedule::Cosine.lr(self.config.lr, epoch * steps_per_epoch + step, total);
                self.optimizer.step(lr);
                loss_sum += loss.double_value(&[]) * idx.len() as f64;
                done += idx.len();
                on_batch(done);
            }
            last_loss = loss_sum / n as f64;
        }
        last_loss
    }

    /// Logits in evaluation mode (no gradient), `[N, classes]`.
    pub fn logits(&self, images: &[u8]) -> Tensor {
        tch::no_grad(|| {
            self.net
                .forward_t(&images_tensor(images, self.shape, self.device), false)
        })
    }

    /// Softmax outputs per image (evaluation mode).
    pub fn probabilities(&self, images: &[u8]) -> Vec<Vec<f32>> {
        let mut out = Vec::new();
        for chunk in images.chunks(512 * self.image_len()) {
            let p = self.logits(chunk).softmax(-1, Kind::Float).to_device(Device::Cpu);
            let flat: Vec<f32> = Vec::try_from(p.view([-1])).expect("float tensor");
            out.extend(flat.chunks(self.classes).map(<[f32]>::to_vec));
        }
        out
    }

    /// Top-1 class per image (evaluation mode).
    pub fn predict(&self, images: &[u8]) -> Vec<usize> {
        let mut out = Vec::new();
        for chunk in images.chunks(512 * self.image_len()) {
            let p = self.logits(chunk).argmax(-1, false).to_device(Device::Cpu);
            out.extend(
                Vec::<i64>::try_from(p)
                    .expect("int64 tensor")
                    .into_iter()
                    .map(|v| v as usize),
            );
        }
        out
    }

    /// `sign(d softmax_{label} / d x)` per pixel (JBDA's Jacobian step direction), in
    /// evaluation mode, as -1, 0 or +1 per pixel code.
    pub fn jacobian_sign(&self, images: &[u8], labels: &[usize]) -> Vec<i8> {
        let mut out = Vec::with_capacity(images.len());
        let len = self.image_len();
        for (chunk, chunk_labels) in images.chunks(256 * len).zip(labels.chunks(256)) {
            let pixels = images_tensor(chunk, self.shape, self.device).set_requires_grad(true);
            let logits = self.net.forward_t(&pixels, false);
            let index = Tensor::from_slice(&chunk_labels.iter().map(|&l| l as i64).collect::<Vec<_>>())
                .to_device(self.device)
                .view([-1, 1]);
            let picked = logits
                .softmax(-1, Kind::Float)
                .gather(1, &index, false)
                .sum(Kind::Float);
            let grad = Tensor::run_backward(&[picked], &[&pixels], false, false)
                .pop()
                .expect("one gradient");
            let sign: Vec<f32> = Vec::try_from(grad.sign().to_device(Device::Cpu).view([-1])).expect("float tensor");
            out.extend(sign.into_iter().map(|s| s as i8));
        }
        out
    }
}

/// Surrogate accuracy on labelled images and fidelity (top-1 agreement) with the
/// victim's predictions on the same images.
pub fn accuracy_and_fidelity(predictions: &[usize], labels: &[u16], victim: &[usize]) -> (f64, f64) {
    let n = predictions.len().max(1) as f64;
    let correct = predictions
        .iter()
        .zip(labels)
        .filter(|(p, l)| **p == **l as usize)
        .count();
    let agree = predictions.iter().zip(victim).filter(|(p, v)| p == v).count();
    (correct as f64 / n, agree as f64 / n)
}
