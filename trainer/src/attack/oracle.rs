//! The victim as a deployed device answers: a model served by any backend (the float
//! network, the fake-quant network, the integer reference, the ISA-level functional model
//! or the RTL in Verilator) returning probability vectors, behind a chain of defenses,
//! counting queries and refusing past a budget.
//!
//! Integer backends return logits in units of the logit tensor's scale (`Model::output()
//! .scale`); the probability vector is `softmax(scale * logits)`, computed in f64 and
//! returned as f32. The fake-quant victim uses the same f32 scale the exported model
//! stores, so fake-quant, reference, functional and RTL victims of one run give
//! identical vectors whenever their integer logits agree (which the verification ladder
//! requires).

use std::fmt;
use std::path::{Path, PathBuf};
use std::str::FromStr;

use compiler::hw::HwConfig;
use compiler::Backend;
use tch::nn::{ModuleT, VarStore};
use tch::{Device, Kind, Tensor};

use super::defense::{argmax, l1, DefenseChain};
use crate::checkpoint::{Checkpoint, CHECKPOINT_FILE};
use crate::config::{TrainConfig, TrainMode};
use crate::float_net::FloatNet;
use crate::quant_net::{Arithmetic, Mode, QLayer, QMac, QuantNet};
use crate::train::{CONFIG_FILE, MODEL_FILE};

/// Errors of the oracle and the defenses; one line each, naming the file or field.
#[derive(Debug, thiserror::Error)]
pub enum OracleError {
    /// The batch would take the oracle past its query budget; nothing was answered.
    #[error("query budget exceeded: {asked} more queries asked after {used} of a budget of {budget}")]
    BudgetExceeded { budget: usize, used: usize, asked: usize },
    /// Loading or running the victim failed.
    #[error("victim: {0}")]
    Victim(String),
    /// A defense could not be prepared or applied.
    #[error("defense: {0}")]
    Defense(String),
    /// A defense spec or victim kind that does not parse.
    #[error("{0}")]
    Spec(String),
}

fn victim_error(path: &Path, message: impl fmt::Display) -> OracleError {
    OracleError::Victim(format!("{}: {message}", path.display()))
}

/// Which backend serves the victim.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum VictimKind {
    /// The float network (an fp run; for qat/divqat, the float shadow weights of the QAT network).
    Float,
    /// The fake-quant network of a qat/divqat run, in its exact (f64) evaluation mode.
    FakeQuant,
    /// `model.qnn` on the integer reference interpreter.
    Reference,
    /// `model.qnn` compiled for the hardware, on the ISA-level functional model.
    Functional,
    /// `model.qnn` compiled for the hardware, on the accelerator's RTL in Verilator.
    Rtl,
}

impl VictimKind {
    pub const ALL: [VictimKind; 5] = [
        VictimKind::Float,
        VictimKind::FakeQuant,
        VictimKind::Reference,
        VictimKind::Functional,
        VictimKind::Rtl,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            VictimKind::Float => "float",
            VictimKind::FakeQuant => "fakequant",
            VictimKind::Reference => "reference",
            VictimKind::Functional => "functional",
            VictimKind::Rtl => "rtl",
        }
    }

    /// Whether the victim is the integer model (`model.qnn`) on a backend.
    pub fn is_integer(self) -> bool {
        matches!(self, VictimKind::Reference | VictimKind::Functional | VictimKind::Rtl)
    }
}

impl fmt::Display for VictimKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for VictimKind {
    type Err = OracleError;

    fn from_str(s: &str) -> Result<Self, OracleError> {
        let lower = s.trim().to_ascii_lowercase();
        VictimKind::ALL
            .into_iter()
            .find(|k| k.as_str() == lower || (lower == "fake-quant" && *k == VictimKind::FakeQuant))
            .ok_or_else(|| {
                OracleError::Spec(format!(
                    "unknown oracle '{s}' (expected float, fakequant, reference, functional or rtl)"
                ))
            })
    }
}

/// A model answering with clean probability vectors.
pub trait Victim {
    fn classes(&self) -> usize;
    /// `[C, H, W]` of one image.
    fn input_shape(&self) -> [usize; 3];
    /// E.g. `reference(runs/qat)`.
    fn name(&self) -> String;
    /// Clean probability vectors (softmax) of a batch of images, each `C*H*W` u8 pixel
    /// codes, back to back.
    fn probabilities(&mut self, images: &[u8]) -> Result<Vec<Vec<f32>>, OracleError>;
}

/// `softmax(scale * logits)` in f64, as f32.
pub fn softmax_scaled(logits: &[i32], scale: f64) -> Vec<f32> {
    let z: Vec<f64> = logits.iter().map(|&l| l as f64 * scale).collect();
    softmax_f64(&z)
}

/// Softmax of real logits in f64, as f32.
pub fn softmax_f64(z: &[f64]) -> Vec<f32> {
    let max = z.iter().copied().fold(f64::NEG_INFINITY, f64::max);
    let e: Vec<f64> = z.iter().map(|v| (v - max).exp()).collect();
    let sum: f64 = e.iter().sum();
    e.iter().map(|v| (v / sum) as f32).collect()
}

/// Pixel codes as a float `[N, C, H, W]` tensor (values 0..=255), refusing a ragged batch.
pub fn pixels_tensor(images: &[u8], shape: [usize; 3]) -> Result<Tensor, OracleError> {
    let image_len: usize = shape.iter().product();
    if image_len == 0 || !images.len().is_multiple_of(image_len) {
        return Err(OracleError::Victim(format!(
            "image batch of {} bytes is not a whole number of {image_len}-byte images",
            images.len()
        )));
    }
    Ok(pixel_codes(images, shape))
}

/// [`pixels_tensor`] for batches known to be whole images.
pub(crate) fn pixel_codes(images: &[u8], shape: [usize; 3]) -> Tensor {
    let image_len: usize = shape.iter().product();
    let [c, h, w] = shape.map(|d| d as i64);
    Tensor::from_slice(images)
        .to_kind(Kind::Float)
        .view([(images.len() / image_len) as i64, c, h, w])
}

/// The rows of a 2-D tensor as f32 vectors.
pub fn rows_f32(t: &Tensor) -> Result<Vec<Vec<f32>>, OracleError> {
    let t = t.to_kind(Kind::Float).to_device(Device::Cpu).contiguous();
    let [n, k] = t.size()[..] else {
        return Err(OracleError::Victim(format!(
            "expected a 2-D tensor, got shape {:?}",
            t.size()
        )));
    };
    let flat: Vec<f32> = Vec::try_from(t.view([-1])).map_err(|e: tch::TchError| OracleError::Victim(e.to_string()))?;
    Ok((0..n as usize)
        .map(|i| flat[i * k as usize..(i + 1) * k as usize].to_vec())
        .collect())
}

/// An integer model on a [`Backend`], logits dequantized with the logit scale.
pub struct BackendVictim {
    backend: Box<dyn Backend>,
    scale: f64,
    classes: usize,
    shape: [usize; 3],
    name: String,
}

impl BackendVictim {
    /// `backend` running `model` (which gives the logit scale, classes and input shape).
    pub fn new(backend: Box<dyn Backend>, model: &compiler::Model, name: String) -> Self {
        BackendVictim {
            scale: model.output().scale as f64,
            classes: model.num_classes(),
            shape: model.input.shape,
            backend,
            name,
        }
    }
}

impl Victim for BackendVictim {
    fn classes(&self) -> usize {
        self.classes
    }

    fn input_shape(&self) -> [usize; 3] {
        self.shape
    }

    fn name(&self) -> String {
        self.name.clone()
    }

    fn probabilities(&mut self, images: &[u8]) -> Result<Vec<Vec<f32>>, OracleError> {
        if images.is_empty() {
            return Ok(Vec::new());
        }
        let inference = self
            .backend
            .infer(images)
            .map_err(|e| OracleError::Victim(format!("{}: {e}", self.name)))?;
        Ok(inference.logits.iter().map(|l| softmax_scaled(l, self.scale)).collect())
    }
}

/// How a libtorch victim computes its logits.
enum TorchNet {
    Float(FloatNet),
    /// The float shadow weights of a QAT network (folded batch norm, no quantization).
    QuantShadow(QuantNet),
    FakeQuant(QuantNet),
}

/// A float or fake-quant network of a run directory.
pub struct TorchVictim {
    _vs: VarStore,
    net: TorchNet,
    device: Device,
    classes: usize,
    shape: [usize; 3],
    name: String,
}

const TORCH_BATCH: usize = 500;

impl TorchVictim {
    fn logits(&mut self, pixels: &Tensor) -> Tensor {
        match &mut self.net {
            TorchNet::Float(f) => f.forward_t(pixels, false).to_kind(Kind::Double),
            TorchNet::QuantShadow(q) => shadow_forward(q, pixels).to_kind(Kind::Double),
            TorchNet::FakeQuant(q) => {
                let codes = q.forward_codes(
                    pixels,
                    Mode {
                        calibrating: false,
                        arithmetic: Arithmetic::Exact,
                    },
                );
                // The f32 scale the exported model stores (see the module docs).
                codes.values.to_kind(Kind::Double) * (codes.scale as f32 as f64)
            }
        }
    }
}

impl Victim for TorchVictim {
    fn classes(&self) -> usize {
        self.classes
    }

    fn input_shape(&self) -> [usize; 3] {
        self.shape
    }

    fn name(&self) -> String {
        self.name.clone()
    }

    fn probabilities(&mut self, images: &[u8]) -> Result<Vec<Vec<f32>>, OracleError> {
        let image_len: usize = self.shape.iter().product();
        let mut out = Vec::with_capacity(images.len() / image_len.max(1));
        if image_len == 0 || !images.len().is_multiple_of(image_len) {
            return Err(OracleError::Victim(format!(
                "{}: image batch of {} bytes is not a whole number of {image_len}-byte images",
                self.name,
                images.len()
            )));
        }
        for chunk in images.chunks(TORCH_BATCH * image_len) {
            let pixels = pixels_tensor(chunk, self.shape)?.to_device(self.device);
            let logits = tch::no_grad(|| self.logits(&pixels));
            let logits: Vec<f64> = Vec::try_from(logits.to_device(Device::Cpu).contiguous().view([-1]))
                .map_err(|e: tch::TchError| OracleError::Victim(e.to_string()))?;
            out.extend(logits.chunks(self.classes).map(softmax_f64));
        }
        Ok(out)
    }
}

fn mac_float(m: &QMac, x: &Tensor) -> Tensor {
    let x4 = if m.linear {
        x.view([x.size()[0], -1, 1, 1])
    } else {
        x.shallow_clone()
    };
    let s = m.spec;
    let y = x4.conv2d(
        &m.weight,
        Some(&m.bias),
        [s.stride as i64; 2],
        [s.padding as i64; 2],
        [1, 1],
        1,
    );
    // An unsigned output clamps at 0 in the quantized network: the ReLU.
    let y = if m.output.signed { y } else { y.relu() };
    if m.linear {
        y.flatten(1, -1)
    } else {
        y
    }
}

/// The QAT network's float weights without quantization, on pixels / 255.
fn shadow_forward(net: &QuantNet, pixels: &Tensor) -> Tensor {
    let mut x = pixels / 255.0;
    for layer in &net.layers {
        x = match layer {
            QLayer::Mac(m) => mac_float(m, &x),
            QLayer::MaxPool { kernel, stride } => {
                x.max_pool2d([*kernel, *kernel], [*stride, *stride], [0, 0], [1, 1], false)
            }
            QLayer::GlobalAvgPool => x.mean_dim(&[2i64, 3][..], true, None),
            QLayer::Flatten => x.flatten(1, -1),
            QLayer::Residual { body, shortcut, .. } => {
                let skip = shortcut
                    .as_ref()
                    .map_or_else(|| x.shallow_clone(), |s| mac_float(s, &x));
                let h = body.iter().fold(x.shallow_clone(), |h, m| mac_float(m, &h));
                (h + skip).relu()
            }
        };
    }
    x
}

/// The model file of a victim: `dir/model.qnn`, or `dir` itself when it is a file.
fn model_path(dir: &Path) -> PathBuf {
    if dir.is_file() {
        dir.to_path_buf()
    } else {
        dir.join(MODEL_FILE)
    }
}

/// Load the victim of run directory `dir` on the backend `kind` (see [`VictimKind`]);
/// `hw` is the accelerator of the functional and rtl victims (default: the 8x8 preset).
/// For the integer kinds `dir` may also be a `.qnn` file.
pub fn load_victim(
    dir: &Path,
    kind: VictimKind,
    hw: Option<&HwConfig>,
    device: Device,
) -> Result<Box<dyn Victim>, OracleError> {
    let name = format!("{kind}({})", dir.display());
    if kind.is_integer() {
        let path = model_path(dir);
        if !path.is_file() {
            return Err(victim_error(
                &path,
                format!("not found (the {kind} oracle needs the exported integer model of a qat or divqat run)"),
            ));
        }
        let model = compiler::load(&path).map_err(|e| OracleError::Victim(e.to_string()))?;
        let compile = |model: &compiler::Model| {
            let default;
            let hw = match hw {
                Some(hw) => hw,
                None => {
                    default = HwConfig::preset(8, 8).map_err(|e| OracleError::Victim(e.to_string()))?;
                    &default
                }
            };
            compiler::lower::compile(model, hw).map_err(|e| {
                victim_error(
                    &path,
                    format!("cannot compile for the {}x{} accelerator: {e}", hw.rows, hw.cols),
                )
            })
        };
        let backend: Box<dyn Backend> = match kind {
            VictimKind::Reference => Box::new(compiler::Reference::new(model.clone())),
            VictimKind::Functional => Box::new(compiler::functional::Functional::new(compile(&model)?)),
            _ => Box::new(
                sim::Rtl::new(compile(&model)?, sim::RtlOptions::default())
                    .map_err(|e| victim_error(&path, format!("cannot build the RTL: {e}")))?,
            ),
        };
        return Ok(Box::new(BackendVictim::new(backend, &model, name)));
    }
    let config_path = dir.join(CONFIG_FILE);
    let config = TrainConfig::load(&config_path).map_err(OracleError::Victim)?;
    let checkpoint_path = dir.join(CHECKPOINT_FILE);
    let checkpoint = Checkpoint::read(&checkpoint_path).map_err(|e| OracleError::Victim(e.to_string()))?;
    let done = checkpoint
        .epochs_done()
        .map_err(|e| OracleError::Victim(e.to_string()))?;
    if done < config.epochs {
        return Err(victim_error(
            &checkpoint_path,
            format!("training is unfinished ({done} of {} epochs)", config.epochs),
        ));
    }
    let shape = config.dataset.shape();
    let classes = config.dataset.classes();
    let blocks = config.arch.blocks(classes, config.width);
    let mut vs = VarStore::new(device);
    let net = match (kind, config.mode) {
        (VictimKind::FakeQuant, TrainMode::Fp) => {
            return Err(victim_error(
                &config_path,
                "the fakequant oracle needs a qat or divqat run, this is an fp run (use the float oracle)",
            ))
        }
        (VictimKind::Float, TrainMode::Fp) => TorchNet::Float(FloatNet::new(&vs.root(), &blocks, shape)),
        (_, _) => {
            // The QAT variables are created from a (discarded) float network, then overwritten.
            let scratch = VarStore::new(device);
            let float = FloatNet::new(&scratch.root(), &blocks, shape);
            let q = QuantNet::from_float(&vs.root(), &float, config.precision());
            if kind == VictimKind::Float {
                TorchNet::QuantShadow(q)
            } else {
                TorchNet::FakeQuant(q)
            }
        }
    };
    checkpoint
        .load_model(&mut vs, "the victim checkpoint")
        .map_err(|e| OracleError::Victim(e.to_string()))?;
    vs.freeze();
    Ok(Box::new(TorchVictim {
        _vs: vs,
        net,
        device,
        classes,
        shape,
        name,
    }))
}

/// A victim behind a defense chain, counting queries against a budget.
pub struct Oracle {
    victim: Box<dyn Victim>,
    defenses: DefenseChain,
    budget: usize,
    used: usize,
    seed: u64,
    /// A second victim whose clean answers must equal the victim's, bit for bit
    /// ([`Oracle::cross_check`]), and how many answers it has confirmed.
    witness: Option<Box<dyn Victim>>,
    confirmed: usize,
}

/// Equal as bit patterns (so that -0.0 != 0.0 and NaN == NaN would both be caught).
fn same_bits(a: &[f32], b: &[f32]) -> bool {
    a.len() == b.len() && a.iter().zip(b).all(|(x, y)| x.to_bits() == y.to_bits())
}

impl Oracle {
    /// `seed` drives the random defenses (Gaussian noise).
    pub fn new(victim: Box<dyn Victim>, defenses: DefenseChain, budget: usize, seed: u64) -> Self {
        Oracle {
            victim,
            defenses,
            budget,
            used: 0,
            seed,
            witness: None,
            confirmed: 0,
        }
    }

    /// Check every answer against `witness` (e.g. the RTL oracle against the integer
    /// reference): `query` compares the two clean probability vectors of every image
    /// bit for bit and fails, naming the query, on the first difference. This is how
    /// a large experiment on the fast reference is shown to hold for the hardware.
    pub fn cross_check(mut self, witness: Box<dyn Victim>) -> Self {
        self.witness = Some(witness);
        self
    }

    /// Answers confirmed identical by the [`Oracle::cross_check`] witness.
    pub fn confirmed_queries(&self) -> usize {
        self.confirmed
    }

    /// The defended probability vector of each image (top-k: zeros outside the top k;
    /// label-only: one-hot). A batch that would exceed the budget is refused whole
    /// (`BudgetExceeded`, nothing answered, nothing counted); a failed batch is not counted.
    pub fn query(&mut self, images: &[u8]) -> Result<Vec<Vec<f32>>, OracleError> {
        let shape = self.victim.input_shape();
        let image_len: usize = shape.iter().product();
        if image_len == 0 || !images.len().is_multiple_of(image_len) {
            return Err(OracleError::Victim(format!(
                "image batch of {} bytes is not a whole number of {image_len}-byte images",
                images.len()
            )));
        }
        let asked = images.len() / image_len;
        if self.used + asked > self.budget {
            return Err(OracleError::BudgetExceeded {
                budget: self.budget,
                used: self.used,
                asked,
            });
        }
        if asked == 0 {
            return Ok(Vec::new());
        }
        if let Some(d) = self.defenses.0.iter().find(|d| !d.is_prepared()) {
            return Err(OracleError::Defense(format!(
                "{}: its model is not prepared (call DefenseChain::prepare with the victim directory)",
                d.name()
            )));
        }
        let clean = self.victim.probabilities(images)?;
        if let Some(witness) = self.witness.as_mut() {
            let expected = witness.probabilities(images)?;
            if let Some(i) = (0..asked).find(|&i| !same_bits(&clean[i], &expected[i])) {
                return Err(OracleError::Victim(format!(
                    "query {}: {} answered {:?}, {} answered {:?}",
                    self.used + i,
                    self.victim.name(),
                    clean[i],
                    witness.name(),
                    expected[i]
                )));
            }
            self.confirmed += asked;
        }
        let defended = self
            .defenses
            .apply(&clean, images, shape, self.seed, self.used as u64)?;
        self.used += asked;
        Ok(defended)
    }

    pub fn queries_used(&self) -> usize {
        self.used
    }

    pub fn budget(&self) -> usize {
        self.budget
    }

    /// Queries left before the budget refuses.
    pub fn remaining(&self) -> usize {
        self.budget - self.used
    }

    /// The answers are one-hot labels: the attacker trains on hard labels.
    pub fn labels_only(&self) -> bool {
        self.defenses.labels_only()
    }

    /// The undefended victim, for evaluation (no budget).
    pub fn victim_mut(&mut self) -> &mut dyn Victim {
        self.victim.as_mut()
    }

    pub fn defenses(&self) -> &DefenseChain {
        &self.defenses
    }

    /// `victim + defense chain`, e.g. `reference(runs/qat) + reverse-sigmoid:beta=0.7,gamma=0.4`.
    pub fn describe(&self) -> String {
        format!("{} + {}", self.victim.name(), self.defenses)
    }
}

/// The utility cost of a defense on labelled data.
#[derive(Clone, Debug, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct DefenseUtility {
    /// Top-1 accuracy of the clean vectors.
    pub victim_accuracy: f64,
    /// Top-1 accuracy of the defended vectors (argmax, ties to the lowest index).
    pub defended_accuracy: f64,
    /// Mean L1 distance between the clean and the defended vectors.
    pub mean_l1: f64,
    pub images: usize,
}

const UTILITY_BATCH: usize = 500;

/// Victim accuracy, defended accuracy and mean L1 perturbation of `defenses` on
/// `images` with `labels` (no budget counted; the noise streams are numbered from 0
/// under `seed`).
pub fn defense_utility(
    victim: &mut dyn Victim,
    defenses: &DefenseChain,
    images: &[u8],
    labels: &[u16],
    seed: u64,
) -> Result<DefenseUtility, OracleError> {
    let shape = victim.input_shape();
    let image_len: usize = shape.iter().product();
    if image_len == 0 || images.len() != labels.len() * image_len {
        return Err(OracleError::Victim(format!(
            "{} bytes of images for {} labels of {image_len}-byte images",
            images.len(),
            labels.len()
        )));
    }
    let (mut clean_correct, mut defended_correct, mut l1_sum) = (0usize, 0usize, 0.0);
    for (b, (chunk, chunk_labels)) in images
        .chunks(UTILITY_BATCH * image_len)
        .zip(labels.chunks(UTILITY_BATCH))
        .enumerate()
    {
        let clean = victim.probabilities(chunk)?;
        let defended = defenses.apply(&clean, chunk, shape, seed, (b * UTILITY_BATCH) as u64)?;
        for ((c, d), &label) in clean.iter().zip(&defended).zip(chunk_labels) {
            clean_correct += usize::from(argmax(c) == label as usize);
            defended_correct += usize::from(argmax(d) == label as usize);
            l1_sum += l1(c, d);
        }
    }
    let n = labels.len().max(1) as f64;
    Ok(DefenseUtility {
        victim_accuracy: clean_correct as f64 / n,
        defended_accuracy: defended_correct as f64 / n,
        mean_l1: l1_sum / n,
        images: labels.len(),
    })
}
