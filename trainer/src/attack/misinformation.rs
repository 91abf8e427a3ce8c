//! The misinformation model of adaptive misinformation (Kariyappa & Qureshi, "Defending
//! against model stealing attacks with adaptive misinformation", CVPR 2020, §4.2): a
//! network of the victim's architecture trained on the victim's training data to give
//! **wrong** answers, minimizing `-log(1 - p_label)` (the paper's eq. 6), so that its
//! softmax is a plausible-looking but misleading answer for out-of-distribution queries.
//!
//! Trained from scratch (float, batch norm, AdamW at a constant learning rate) on a seeded
//! subset of the training split, and cached in the victim's run directory as
//! `misinformation-<hash>.safetensors`, the hash covering everything that determines
//! the weights (architecture, width, dataset, options, seed), so experiments train it once.

use std::path::{Path, PathBuf};

use datasets::{DataLocations, SplitKind};
use tch::nn::{ModuleT, VarStore};
use tch::{Device, Kind, Tensor};

use super::oracle::{pixels_tensor, OracleError};
use crate::batches::{epoch_batches, Augment};
use crate::config::TrainConfig;
use crate::float_net::FloatNet;
use crate::optim::{Optimizer, OptimizerKind};

/// How the misinformation model is trained (keys `epochs`, `train`, `lr` of the spec).
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct MisinformationOptions {
    pub epochs: usize,
    /// Training images (a seeded subset of the victim's training split).
    pub train_images: usize,
    pub lr: f64,
}

impl Default for MisinformationOptions {
    /// 2 epochs on 10 000 images at 2e-3: about half a minute for the small CNN on 2 cores.
    fn default() -> Self {
        MisinformationOptions {
            epochs: 2,
            train_images: 10_000,
            lr: 2e-3,
        }
    }
}

const BATCH: usize = 128;
const EVAL_BATCH: usize = 500;

/// A trained misinformation network.
pub struct MisinformationModel {
    _vs: VarStore,
    net: FloatNet,
    device: Device,
    /// Where the weights are cached.
    pub path: PathBuf,
    /// Whether they were loaded from the cache rather than trained now.
    pub cached: bool,
}

/// The loss `mean(-log(1 - p_label))`, computed stably as
/// `logsumexp(z) - logsumexp(z without the label's logit)`.
pub fn misinformation_loss(logits: &Tensor, labels: &Tensor) -> Tensor {
    let all = logits.logsumexp([-1i64], false);
    let label_mask = labels
        .onehot(logits.size()[1])
        .to_kind(Kind::Bool)
        .to_device(logits.device());
    let others = logits
        .masked_fill(&label_mask, f64::NEG_INFINITY)
        .logsumexp([-1i64], false);
    (all - others).mean(Kind::Float)
}

/// 64-bit FNV-1a (stable across runs and platforms, unlike `DefaultHasher`).
fn fnv1a(text: &str) -> u64 {
    text.bytes().fold(0xcbf2_9ce4_8422_2325, |h, b| {
        (h ^ b as u64).wrapping_mul(0x0100_0000_01b3)
    })
}

impl MisinformationModel {
    /// The cached model of the run in `victim_dir`, or a freshly trained one (then cached).
    pub fn load_or_train(
        victim_dir: &Path,
        options: &MisinformationOptions,
        device: Device,
        seed: u64,
    ) -> Result<Self, OracleError> {
        let config_path = victim_dir.join(crate::train::CONFIG_FILE);
        let config = TrainConfig::load(&config_path).map_err(|e| {
            OracleError::Defense(format!(
                "adaptive-misinformation: the misinformation model needs the victim's run config: {e}"
            ))
        })?;
        let key = format!(
            "{}|{}|{}|{:?}|{}|{}|{}|{}",
            config.arch,
            config.width,
            config.dataset,
            config.data_dir,
            options.epochs,
            options.train_images,
            options.lr,
            seed
        );
        let path = victim_dir.join(format!("misinformation-{:016x}.safetensors", fnv1a(&key)));
        // Seeded initialization (libtorch's global generator), so training is reproducible.
        tch::manual_seed(seed as i64);
        let (mut vs, net) = Self::network(&config, device);
        if path.is_file() {
            vs.load(&path).map_err(|e| {
                OracleError::Defense(format!(
                    "{}: corrupt misinformation model ({}); delete it to retrain",
                    path.display(),
                    e.to_string().lines().next().unwrap_or("")
                ))
            })?;
            return Ok(MisinformationModel {
                _vs: vs,
                net,
                device,
                path,
                cached: true,
            });
        }
        let locations = DataLocations::default_locations();
        let cifar = config.data_dir.clone().or(locations.cifar_dir.clone());
        let locations = locations.with_cifar_dir(cifar);
        let train = datasets::load(config.dataset, SplitKind::Train, &locations)
            .map_err(|e| OracleError::Defense(format!("adaptive-misinformation: {e}")))?
            .subset(options.train_images, seed ^ 0x6d69_7369);
        let mut optimizer = Optimizer::new(OptimizerKind::Adamw, &vs, 1e-4);
        for epoch in 0..options.epochs {
            for batch in epoch_batches(&train, BATCH, seed, epoch, Augment::None) {
                let logits = net.forward_t(&batch.pixels.to_device(device), true);
                let loss = misinformation_loss(&logits, &batch.labels.to_device(device));
                optimizer.zero_grad();
                loss.backward();
                optimizer.step(options.lr);
            }
        }
        vs.freeze();
        let partial = victim_dir.join(format!(".partial-{:016x}.safetensors", fnv1a(&key)));
        vs.save(&partial)
            .and_then(|()| std::fs::rename(&partial, &path).map_err(tch::TchError::from))
            .map_err(|e| OracleError::Defense(format!("{}: cannot write: {e}", path.display())))?;
        Ok(MisinformationModel {
            _vs: vs,
            net,
            device,
            path,
            cached: false,
        })
    }

    fn network(config: &TrainConfig, device: Device) -> (VarStore, FloatNet) {
        let vs = VarStore::new(device);
        let blocks = config.arch.blocks(config.dataset.classes(), config.width);
        let net = FloatNet::new(&vs.root(), &blocks, config.dataset.shape());
        (vs, net)
    }

    /// Softmax of the misinformation network (eval mode) for a batch of images.
    pub fn probabilities(&self, images: &[u8], shape: [usize; 3]) -> Result<Vec<Vec<f32>>, OracleError> {
        let image_len: usize = shape.iter().product();
        let mut out = Vec::with_capacity(images.len() / image_len.max(1));
        for chunk in images.chunks(EVAL_BATCH * image_len.max(1)) {
            let pixels = pixels_tensor(chunk, shape)?.to_device(self.device);
            let p = tch::no_grad(|| self.net.forward_t(&pixels, false).softmax(-1, Kind::Double));
            out.extend(super::oracle::rows_f32(&p)?);
        }
        Ok(out)
    }
}
