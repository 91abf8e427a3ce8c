//! The training configuration: one serde type, written to `config.toml` in every
//! run directory, accepted as `--config FILE`, and checked before any work starts.

use std::path::{Path, PathBuf};

use compiler::arith::{Precision, MAX_MAC_OPERAND_BITS, MIN_BITS};
use compiler::zoo::Arch;
use datasets::DatasetId;
use serde::{Deserialize, Serialize};

use crate::batches::Augment;
use crate::loss::{DivDefense, DivDefenseAt, DivDefenseOn, Divergence, KlDirection};
use crate::optim::{OptimizerKind, Schedule};

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize, clap::ValueEnum)]
#[serde(rename_all = "kebab-case")]
pub enum TrainMode {
    /// Full-precision training from scratch.
    Fp,
    /// Quantization-aware fine-tuning of an FP teacher run.
    Qat,
    /// QAT plus the divergence term pushing outputs away from the FP teacher.
    Divqat,
}

impl TrainMode {
    pub fn as_str(self) -> &'static str {
        match self {
            TrainMode::Fp => "fp",
            TrainMode::Qat => "qat",
            TrainMode::Divqat => "divqat",
        }
    }

    pub fn is_quantized(self) -> bool {
        self != TrainMode::Fp
    }
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TrainConfig {
    pub mode: TrainMode,
    pub dataset: DatasetId,
    /// CIFAR binary batches, when the dataset is cifar10/cifar100.
    pub data_dir: Option<PathBuf>,
    pub arch: Arch,
    pub width: f64,
    /// Run directory of a finished `fp` run (qat and divqat only).
    pub teacher: Option<PathBuf>,
    pub weight_bits: u8,
    pub activation_bits: u8,
    pub epochs: usize,
    pub batch_size: usize,
    pub optimizer: OptimizerKind,
    /// Peak learning rate.
    pub lr: f64,
    pub schedule: Schedule,
    pub weight_decay: f64,
    pub train_limit: Option<usize>,
    pub test_limit: Option<usize>,
    pub augment: Augment,
    pub seed: u64,
    /// Batches used to calibrate activation ranges before QAT (then frozen).
    pub calibration_batches: usize,
    pub div_weight: f64,
    pub temperature: f64,
    pub kl_direction: KlDirection,
    /// Measure the DivQAT divergence on the defended quantized output
    /// (`reverse-sigmoid:beta=B,gamma=G`); absent: on the plain output.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub div_defense: Option<DivDefense>,
    /// Where `div_defense` acts: `tempered` (default, not written) or `device`.
    #[serde(default, skip_serializing_if = "DivDefenseAt::is_default")]
    pub div_defense_at: DivDefenseAt,
    /// Which side of the KL `div_defense` acts on: `quant` (default, not written) or
    /// `both` (the teacher's probabilities too).
    #[serde(default, skip_serializing_if = "DivDefenseOn::is_default")]
    pub div_defense_on: DivDefenseOn,
}

impl TrainConfig {
    /// Sensible defaults for `mode` on `dataset` (the learning rate differs between
    /// training from scratch and fine-tuning).
    pub fn defaults(mode: TrainMode, dataset: DatasetId) -> Self {
        TrainConfig {
            mode,
            dataset,
            data_dir: None,
            arch: Arch::SmallCnn,
            width: 1.0,
            teacher: None,
            weight_bits: 8,
            activation_bits: 8,
            epochs: if mode == TrainMode::Fp { 10 } else { 3 },
            batch_size: 128,
            optimizer: OptimizerKind::Adamw,
            lr: if mode == TrainMode::Fp { 2e-3 } else { 2e-4 },
            schedule: Schedule::Cosine,
            weight_decay: 1e-4,
            train_limit: None,
            test_limit: None,
            augment: Augment::default_for(dataset.shape()),
            seed: 0,
            calibration_batches: 16,
            div_weight: 0.04,
            temperature: 4.0,
            kl_direction: KlDirection::QuantToTeacher,
            div_defense: None,
            div_defense_at: DivDefenseAt::Tempered,
            div_defense_on: DivDefenseOn::Quant,
        }
    }

    pub fn precision(&self) -> Precision {
        Precision {
            weight_bits: self.weight_bits,
            activation_bits: self.activation_bits,
        }
    }

    /// The divergence term, in divqat mode only.
    pub fn divergence(&self) -> Option<Divergence> {
        (self.mode == TrainMode::Divqat).then_some(Divergence {
            weight: self.div_weight,
            temperature: self.temperature,
            direction: self.kl_direction,
            defense: self.div_defense,
            defense_at: self.div_defense_at,
            defense_on: self.div_defense_on,
        })
    }

    /// Refuse impossible settings, naming the field.
    pub fn validate(&self) -> Result<(), String> {
        let bits = MIN_BITS..=MAX_MAC_OPERAND_BITS;
        let checks: [(bool, &str, String); 12] = [
            (
                bits.contains(&self.weight_bits),
                "weight_bits",
                format!("must be {MIN_BITS}..={MAX_MAC_OPERAND_BITS}"),
            ),
            (
                bits.contains(&self.activation_bits),
                "activation_bits",
                format!("must be {MIN_BITS}..={MAX_MAC_OPERAND_BITS}"),
            ),
            (self.epochs >= 1, "epochs", "must be at least 1".into()),
            (self.batch_size >= 1, "batch_size", "must be at least 1".into()),
            (
                self.lr > 0.0 && self.lr.is_finite(),
                "lr",
                "must be a positive number".into(),
            ),
            (
                self.width > 0.0 && self.width.is_finite(),
                "width",
                "must be a positive number".into(),
            ),
            (
                self.temperature > 0.0 && self.temperature.is_finite(),
                "temperature",
                "must be a positive number".into(),
            ),
            (
                self.div_weight >= 0.0 && self.div_weight.is_finite(),
                "div_weight",
                "must be >= 0".into(),
            ),
            (
                self.mode.is_quantized() == self.teacher.is_some(),
                "teacher",
                "qat and divqat need --teacher DIR (a finished fp run); fp takes none".into(),
            ),
            (
                self.div_defense.is_none() || self.mode == TrainMode::Divqat,
                "div_defense",
                "only divqat has a divergence to defend".into(),
            ),
            (
                self.div_defense_at.is_default() || self.div_defense.is_some(),
                "div_defense_at",
                "needs div_defense".into(),
            ),
            (
                self.div_defense_on.is_default() || self.div_defense.is_some(),
                "div_defense_on",
                "needs div_defense".into(),
            ),
        ];
        match checks.into_iter().find(|(ok, _, _)| !ok) {
            Some((_, field, why)) => Err(format!("config field '{field}': {why}")),
            None => Ok(()),
        }
    }

    pub fn load(path: &Path) -> Result<Self, String> {
        let text = std::fs::read_to_string(path).map_err(|e| format!("{}: cannot read: {e}", path.display()))?;
        toml::from_str(&text).map_err(|e| format!("{}: {}", path.display(), e.message()))
    }

    pub fn to_toml(&self) -> String {
        toml::to_string_pretty(self).expect("the config serializes")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn toml_round_trips_and_unknown_fields_are_refused() {
        let config = TrainConfig {
            teacher: Some("runs/fp".into()),
            ..TrainConfig::defaults(TrainMode::Divqat, DatasetId::FashionMnist)
        };
        let text = config.to_toml();
        assert_eq!(toml::from_str::<TrainConfig>(&text).unwrap(), config);
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("c.toml");
        std::fs::write(&path, format!("{text}\nlearning_rate = 3\n")).unwrap();
        let err = TrainConfig::load(&path).unwrap_err();
        assert!(err.contains("c.toml") && err.contains("learning_rate"), "{err}");
    }

    /// Absent, `div_defense` is not written (configs of earlier runs are unchanged);
    /// present, it is the defense spec and round-trips.
    #[test]
    fn div_defense_is_optional_in_the_toml() {
        let plain = TrainConfig {
            teacher: Some("runs/fp".into()),
            ..TrainConfig::defaults(TrainMode::Divqat, DatasetId::FashionMnist)
        };
        assert!(!plain.to_toml().contains("div_defense"));
        let device = TrainConfig {
            div_defense: Some("reverse-sigmoid:beta=0.2,gamma=0.4".parse().unwrap()),
            div_defense_at: DivDefenseAt::Device,
            ..plain.clone()
        };
        assert!(device.to_toml().contains("div_defense_at = \"device\""));
        let both = TrainConfig {
            div_defense_on: DivDefenseOn::Both,
            ..device.clone()
        };
        assert!(both.to_toml().contains("div_defense_on = \"both\""));
        assert_eq!(toml::from_str::<TrainConfig>(&both.to_toml()).unwrap(), both);
        assert!(TrainConfig {
            div_defense: None,
            div_defense_at: DivDefenseAt::Tempered,
            ..both
        }
        .validate()
        .unwrap_err()
        .contains("'div_defense_on'"));
        assert_eq!(toml::from_str::<TrainConfig>(&device.to_toml()).unwrap(), device);
        assert!(TrainConfig {
            div_defense: None,
            ..device
        }
        .validate()
        .unwrap_err()
        .contains("'div_defense_at'"));
        let defended = TrainConfig {
            div_defense: Some("reverse-sigmoid:beta=0.2,gamma=0.4".parse().unwrap()),
            ..plain.clone()
        };
        let text = defended.to_toml();
        assert!(!text.contains("div_defense_at"), "{text}");
        assert!(
            text.contains("div_defense = \"reverse-sigmoid:beta=0.2,gamma=0.4\""),
            "{text}"
        );
        assert_eq!(toml::from_str::<TrainConfig>(&text).unwrap(), defended);
        assert!(defended.divergence().unwrap().defense.is_some());
        let qat = TrainConfig {
            mode: TrainMode::Qat,
            ..defended
        };
        assert!(qat.validate().unwrap_err().contains("'div_defense'"));
    }

    #[test]
    fn impossible_settings_name_the_field() {
        let base = TrainConfig::defaults(TrainMode::Fp, DatasetId::FashionMnist);
        assert!(base.validate().is_ok());
        let bad = TrainConfig {
            weight_bits: 9,
            ..base.clone()
        };
        assert_eq!(bad.validate().unwrap_err(), "config field 'weight_bits': must be 2..=8");
        let bad = TrainConfig {
            epochs: 0,
            ..base.clone()
        };
        assert!(bad.validate().unwrap_err().contains("'epochs'"));
        let bad = TrainConfig {
            mode: TrainMode::Qat,
            ..base
        };
        assert!(bad.validate().unwrap_err().contains("'teacher'"));
    }
}
