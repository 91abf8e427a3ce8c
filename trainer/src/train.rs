//! A training run: FP from scratch, or QAT/DivQAT fine-tuning of an FP teacher, into
//! a run directory holding `config.toml`, `checkpoint.safetensors` (each epoch),
//! `metrics.jsonl` (one line per epoch), `metrics.json` (the summary) and, for the
//! quantized modes, `model.qnn` (the exported integer model).

use std::path::{Path, PathBuf};
use std::time::Instant;

use compiler::{Backend, Reference};
use datasets::{DataLocations, Split, SplitKind};
use serde::{Deserialize, Serialize};
use tch::nn::{ModuleT, VarStore};
use tch::{Device, Kind, Tensor};

use crate::batches::{epoch_batches, eval_batches, Batch};
use crate::checkpoint::{self, Checkpoint, CHECKPOINT_FILE};
use crate::config::{TrainConfig, TrainMode};
use crate::float_net::FloatNet;
use crate::loss::{kl_divergence, loss};
use crate::optim::Optimizer;
use crate::quant_net::{Arithmetic, Mode, QuantNet};

pub const CONFIG_FILE: &str = "config.toml";
pub const METRICS_LINES_FILE: &str = "metrics.jsonl";
pub const SUMMARY_FILE: &str = "metrics.json";
pub const MODEL_FILE: &str = "model.qnn";
const EVAL_BATCH: usize = 500;

/// One line of `metrics.jsonl`.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
pub struct EpochMetrics {
    pub epoch: usize,
    pub lr: f64,
    pub train_loss: f64,
    pub train_accuracy: f64,
    pub test_accuracy: f64,
    pub kl_to_teacher: Option<f64>,
    pub images_per_second: f64,
    pub seconds: f64,
}

/// The result of a run (`metrics.json`, and the CLI's `--json` line).
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
pub struct TrainSummary {
    pub mode: TrainMode,
    /// Accuracy of what is deployed: the float model (fp) or the integer model.
    pub test_accuracy: f64,
    pub fakequant_accuracy: Option<f64>,
    pub integer_accuracy: Option<f64>,
    /// Top-1 agreement of the fake-quant model and the exported integer model.
    pub agreement: Option<f64>,
    /// Mean KL(softmax(model) || softmax(teacher)) over the test set (T = 1).
    pub kl_to_teacher: Option<f64>,
    pub epochs: usize,
    /// Training time summed over epochs (resumed runs included).
    pub seconds: f64,
    pub test_images: usize,
}

/// Options of one invocation that are not part of the run's identity.
#[derive(Clone, Debug)]
pub struct RunOptions {
    pub out: PathBuf,
    pub resume: bool,
    pub device: Device,
    pub show_progress: bool,
    pub locations: DataLocations,
    /// Stop after this many epochs of this invocation, leaving the run resumable
    /// (time-sliced training; also how tests interrupt a run).
    pub pause_after: Option<usize>,
}

/// Errors that end a run; every message names the file or field concerned.
#[derive(Debug, thiserror::Error)]
pub enum TrainError {
    #[error("{0}")]
    Config(String),
    #[error(transparent)]
    Data(#[from] datasets::DataError),
    #[error(transparent)]
    Checkpoint(#[from] checkpoint::CheckpointError),
    #[error("{path}: {message}")]
    Io { path: String, message: String },
    #[error("export: {0}")]
    Export(#[from] compiler::ModelError),
    #[error(transparent)]
    ModelFile(#[from] compiler::ModelFileError),
    #[error("libtorch: {0}")]
    Torch(#[from] tch::TchError),
}

fn io_error(path: &Path, e: impl std::fmt::Display) -> TrainError {
    TrainError::Io {
        path: path.display().to_string(),
        message: e.to_string(),
    }
}

/// The network being trained.
enum Net {
    Float(FloatNet),
    Quant(QuantNet),
}

impl Net {
    fn logits(&mut self, pixels: &Tensor, train: bool, arithmetic: Arithmetic) -> Tensor {
        match self {
            Net::Float(f) => f.forward_t(pixels, train),
            Net::Quant(q) => q.forward(
                pixels,
                Mode {
                    calibrating: false,
                    arithmetic,
                },
            ),
        }
    }
}

struct Data {
    train: Split,
    test: Split,
}

fn load_data(config: &TrainConfig, locations: &DataLocations) -> Result<Data, TrainError> {
    let locations = locations
        .clone()
        .with_cifar_dir(config.data_dir.clone().or(locations.cifar_dir.clone()));
    let train = datasets::load(config.dataset, SplitKind::Train, &locations)?;
    let test = datasets::load(config.dataset, SplitKind::Test, &locations)?;
    let limit = |s: Split, n: Option<usize>, salt: u64| match n {
        Some(n) => s.subset(n, config.seed ^ salt),
        None => s,
    };
    Ok(Data {
        train: limit(train, config.train_limit, 0),
        test: limit(test, config.test_limit, 0x5eed),
    })
}

/// Train (or resume) a run and return its summary; `None` when paused early.
pub fn run(config: &TrainConfig, options: &RunOptions) -> Result<Option<TrainSummary>, TrainError> {
    config.validate().map_err(TrainError::Config)?;
    prepare_run_dir(config, options)?;
    let data = load_data(config, &options.locations)?;
    if data.train.is_empty() || data.test.is_empty() {
        return Err(TrainError::Config(format!(
            "{}: the train or test split is empty",
            config.dataset
        )));
    }
    let shape = data.train.shape;
    let classes = data.train.classes;
    tch::manual_seed(config.seed as i64);
    let mut vs = VarStore::new(options.device);
    let teacher = match &config.teacher {
        Some(dir) => Some(load_teacher(dir, config, shape, classes, options.device)?),
        None => None,
    };
    let mut net = match &teacher {
        None => Net::Float(FloatNet::new(
            &vs.root(),
            &config.arch.blocks(classes, config.width),
            shape,
        )),
        Some((_, teacher_net)) => Net::Quant(QuantNet::from_float(&vs.root(), teacher_net, config.precision())),
    };
    let mut optimizer = Optimizer::new(config.optimizer, &vs, config.weight_decay);
    let checkpoint_path = options.out.join(CHECKPOINT_FILE);
    let first_epoch = if options.resume && checkpoint_path.exists() {
        let ckpt = Checkpoint::read(&checkpoint_path)?;
        ckpt.load_model(&mut vs, "the checkpoint")?;
        ckpt.load_optimizer(&mut optimizer)?;
        ckpt.epochs_done()?
    } else {
        if let Net::Quant(q) = &mut net {
            calibrate(q, &data.train, config, options.device);
        }
        0
    };
    let teacher_net = teacher.as_ref().map(|(_, t)| t);
    let mut history = read_history(&options.out, first_epoch)?;
    let last_epoch = options
        .pause_after
        .map_or(config.epochs, |n| (first_epoch + n).min(config.epochs));
    for epoch in first_epoch..last_epoch {
        let metrics = train_epoch(&mut net, teacher_net, &mut optimizer, &data, config, options, epoch)?;
        history.push(metrics);
        checkpoint::save(&checkpoint_path, &vs, &optimizer, epoch + 1)?;
        write_history(&options.out, &history)?;
    }
    if last_epoch < config.epochs {
        return Ok(None);
    }
    let summary = finish(&mut net, teacher_net, &data, config, options, &history)?;
    write_atomic(
        &options.out.join(SUMMARY_FILE),
        serde_json::to_string_pretty(&summary).expect("serializes").as_bytes(),
    )?;
    Ok(Some(summary))
}

/// Create the run directory and record the config; a directory that already holds a
/// different run is refused rather than overwritten.
fn prepare_run_dir(config: &TrainConfig, options: &RunOptions) -> Result<(), TrainError> {
    let dir = &options.out;
    std::fs::create_dir_all(dir).map_err(|e| io_error(dir, e))?;
    let config_path = dir.join(CONFIG_FILE);
    if config_path.exists() {
        let existing = TrainConfig::load(&config_path).map_err(TrainError::Config)?;
        if !options.resume {
            return Err(TrainError::Config(format!(
                "{}: already holds a run; pass --resume to continue it or choose another --out",
                dir.display()
            )));
        }
        if existing != *config {
            return Err(TrainError::Config(format!(
                "{}: --resume needs the same configuration as the interrupted run (see its config.toml)",
                dir.display()
            )));
        }
    }
    write_atomic(&config_path, config.to_toml().as_bytes())
}

/// Load a finished FP run as the frozen teacher, refusing an incompatible one.
fn load_teacher(
    dir: &Path,
    config: &TrainConfig,
    shape: [usize; 3],
    classes: usize,
    device: Device,
) -> Result<(VarStore, FloatNet), TrainError> {
    let teacher_config =
        TrainConfig::load(&dir.join(CONFIG_FILE)).map_err(|e| TrainError::Config(format!("teacher: {e}")))?;
    let mismatch = |what: &str, theirs: String, ours: String| {
        TrainError::Config(format!(
            "teacher {}: {what} is {theirs} but this run uses {ours}",
            dir.display()
        ))
    };
    if teacher_config.mode != TrainMode::Fp {
        return Err(mismatch(
            "mode",
            teacher_config.mode.as_str().into(),
            "an fp teacher".into(),
        ));
    }
    if teacher_config.arch != config.arch || teacher_config.width != config.width {
        return Err(mismatch(
            "architecture",
            format!("{} x{}", teacher_config.arch, teacher_config.width),
            format!("{} x{}", config.arch, config.width),
        ));
    }
    if teacher_config.dataset.shape() != config.dataset.shape()
        || teacher_config.dataset.classes() != config.dataset.classes()
    {
        return Err(mismatch(
            "dataset",
            teacher_config.dataset.to_string(),
            config.dataset.to_string(),
        ));
    }
    let mut vs = VarStore::new(device);
    let net = FloatNet::new(&vs.root(), &config.arch.blocks(classes, config.width), shape);
    let ckpt = Checkpoint::read(&dir.join(CHECKPOINT_FILE))?;
    if ckpt.epochs_done()? < teacher_config.epochs {
        return Err(TrainError::Config(format!(
            "teacher {}: training is unfinished ({} of {} epochs)",
            dir.display(),
            ckpt.epochs_done()?,
            teacher_config.epochs
        )));
    }
    ckpt.load_model(&mut vs, "the teacher checkpoint")?;
    vs.freeze();
    Ok((vs, net))
}

/// Calibrate the range observers on the first batches of a seeded shuffle.
fn calibrate(net: &mut QuantNet, train: &Split, config: &TrainConfig, device: Device) {
    let mode = Mode {
        calibrating: true,
        arithmetic: Arithmetic::Fast,
    };
    tch::no_grad(|| {
        for batch in epoch_batches(train, config.batch_size, config.seed, usize::MAX, config.augment)
            .take(config.calibration_batches.max(1))
        {
            let _ = net.forward(&batch.pixels.to_device(device), mode);
        }
    });
}

fn train_epoch(
    net: &mut Net,
    teacher: Option<&FloatNet>,
    optimizer: &mut Optimizer,
    data: &Data,
    config: &TrainConfig,
    options: &RunOptions,
    epoch: usize,
) -> Result<EpochMetrics, TrainError> {
    let steps_per_epoch = data.train.len().div_ceil(config.batch_size);
    let total_steps = steps_per_epoch * config.epochs;
    let bar = crate::progress::epoch_bar(data.train.len() as u64, epoch, config.epochs, options.show_progress);
    let divergence = config.divergence();
    let start = Instant::now();
    let (mut loss_sum, mut correct, mut seen) = (0.0, 0i64, 0usize);
    for (step, batch) in epoch_batches(&data.train, config.batch_size, config.seed, epoch, config.augment).enumerate() {
        let Batch { pixels, labels } = batch;
        let (pixels, labels) = (pixels.to_device(options.device), labels.to_device(options.device));
        let logits = net.logits(&pixels, true, Arithmetic::Fast);
        let teacher_logits = teacher.map(|t| tch::no_grad(|| t.forward_t(&pixels, false)));
        let terms = loss(&logits, &labels, teacher_logits.as_ref().zip(divergence.as_ref()));
        optimizer.zero_grad();
        terms.total.backward();
        optimizer.step(
            config
                .schedule
                .lr(config.lr, epoch * steps_per_epoch + step, total_steps),
        );
        let n = labels.size()[0] as usize;
        loss_sum += terms.total.double_value(&[]) * n as f64;
        correct += logits
            .argmax(-1, false)
            .eq_tensor(&labels)
            .sum(Kind::Int64)
            .int64_value(&[]);
        seen += n;
        bar.inc(n as u64);
        bar.set_message(format!(
            "loss {:.4} acc {:.2}%",
            loss_sum / seen as f64,
            100.0 * correct as f64 / seen as f64
        ));
    }
    bar.finish_and_clear();
    let seconds = start.elapsed().as_secs_f64();
    let eval = evaluate(net, teacher, &data.test, options.device, Arithmetic::Fast);
    Ok(EpochMetrics {
        epoch: epoch + 1,
        lr: config.schedule.lr(config.lr, epoch * steps_per_epoch, total_steps),
        train_loss: loss_sum / seen as f64,
        train_accuracy: correct as f64 / seen as f64,
        test_accuracy: eval.accuracy,
        kl_to_teacher: eval.kl_to_teacher,
        images_per_second: seen as f64 / seconds,
        seconds,
    })
}

/// Predictions, accuracy and divergence from the teacher on a split.
struct Evaluation {
    predictions: Vec<i64>,
    accuracy: f64,
    kl_to_teacher: Option<f64>,
}

fn evaluate(
    net: &mut Net,
    teacher: Option<&FloatNet>,
    data: &Split,
    device: Device,
    arithmetic: Arithmetic,
) -> Evaluation {
    tch::no_grad(|| {
        let (mut predictions, mut kl_sum) = (Vec::with_capacity(data.len()), 0.0);
        for batch in eval_batches(data, EVAL_BATCH) {
            let pixels = batch.pixels.to_device(device);
            let logits = net.logits(&pixels, false, arithmetic).to_kind(Kind::Float);
            if let Some(t) = teacher {
                let n = pixels.size()[0] as f64;
                kl_sum += kl_divergence(&logits, &t.forward_t(&pixels, false), 1.0).double_value(&[]) * n;
            }
            predictions
                .extend(Vec::<i64>::try_from(logits.argmax(-1, false).to_device(Device::Cpu)).expect("1-D int64"));
        }
        let correct = predictions
            .iter()
            .zip(&data.labels)
            .filter(|(p, l)| **p == **l as i64)
            .count();
        Evaluation {
            accuracy: correct as f64 / data.len() as f64,
            kl_to_teacher: teacher.map(|_| kl_sum / data.len() as f64),
            predictions,
        }
    })
}

/// Final evaluation; for the quantized modes also export and check the integer model.
fn finish(
    net: &mut Net,
    teacher: Option<&FloatNet>,
    data: &Data,
    config: &TrainConfig,
    options: &RunOptions,
    history: &[EpochMetrics],
) -> Result<TrainSummary, TrainError> {
    let seconds = history.iter().map(|m| m.seconds).sum();
    let exact = evaluate(net, teacher, &data.test, options.device, Arithmetic::Exact);
    let mut summary = TrainSummary {
        mode: config.mode,
        test_accuracy: exact.accuracy,
        fakequant_accuracy: None,
        integer_accuracy: None,
        agreement: None,
        kl_to_teacher: exact.kl_to_teacher,
        epochs: config.epochs,
        seconds,
        test_images: data.test.len(),
    };
    if let Net::Quant(q) = net {
        let model = crate::export::export(q, &format!("{}-{}", config.arch, config.mode.as_str()), data.test.shape)?;
        compiler::save(&model, &options.out.join(MODEL_FILE))?;
        let integer = Reference::new(model)
            .infer(&data.test.images)
            .map_err(|e| TrainError::Config(e.to_string()))?;
        let int_predictions: Vec<i64> = integer
            .logits
            .iter()
            .map(|l| compiler::arith::argmax(l).unwrap_or(0) as i64)
            .collect();
        let correct = int_predictions
            .iter()
            .zip(&data.test.labels)
            .filter(|(p, l)| **p == **l as i64)
            .count();
        let agree = int_predictions
            .iter()
            .zip(&exact.predictions)
            .filter(|(a, b)| a == b)
            .count();
        let n = data.test.len() as f64;
        summary.fakequant_accuracy = Some(exact.accuracy);
        summary.integer_accuracy = Some(correct as f64 / n);
        summary.agreement = Some(agree as f64 / n);
        summary.test_accuracy = correct as f64 / n;
    }
    Ok(summary)
}

fn read_history(dir: &Path, epochs_done: usize) -> Result<Vec<EpochMetrics>, TrainError> {
    let path = dir.join(METRICS_LINES_FILE);
    if epochs_done == 0 || !path.exists() {
        return Ok(Vec::new());
    }
    let text = std::fs::read_to_string(&path).map_err(|e| io_error(&path, e))?;
    let lines: Result<Vec<EpochMetrics>, _> = text.lines().take(epochs_done).map(serde_json::from_str).collect();
    lines.map_err(|e| io_error(&path, format!("corrupt metrics line: {e}")))
}

fn write_history(dir: &Path, history: &[EpochMetrics]) -> Result<(), TrainError> {
    let mut text = String::new();
    for m in history {
        text.push_str(&serde_json::to_string(m).expect("serializes"));
        text.push('\n');
    }
    write_atomic(&dir.join(METRICS_LINES_FILE), text.as_bytes())
}

fn write_atomic(path: &Path, bytes: &[u8]) -> Result<(), TrainError> {
    compiler::format::write_atomic(path, bytes).map_err(|e| io_error(path, e))
}
