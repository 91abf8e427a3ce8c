//! Losses: cross-entropy, and the DivQAT objective (DESIGN.md §2)
//! `CE(y, f_Q(x)) - w * T^2 * KL(...)` between the tempered softmax outputs of the
//! quantized model and its frozen full-precision teacher.

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};
use tch::{Kind, Tensor};

use crate::attack::defense::{Defense, REVERSE_SIGMOID_EPS};

/// Which way the divergence is measured.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize, clap::ValueEnum)]
#[serde(rename_all = "kebab-case")]
pub enum KlDirection {
    /// KL(p_quant || p_teacher): the paper's form.
    QuantToTeacher,
    /// KL(p_teacher || p_quant).
    TeacherToQuant,
}

/// Mean over the batch of `KL(softmax(p/T) || softmax(q/T))`.
pub fn kl_divergence(p_logits: &Tensor, q_logits: &Tensor, temperature: f64) -> Tensor {
    let log_p = (p_logits / temperature).log_softmax(-1, Kind::Float);
    let log_q = (q_logits / temperature).log_softmax(-1, Kind::Float);
    (log_p.exp() * (&log_p - log_q))
        .sum_dim_intlist(-1, false, Kind::Float)
        .mean(Kind::Float)
}

/// A defense the divergence is measured through (`--div-defense`): the quantized
/// model's tempered probabilities pass through it before the KL. Written and parsed
/// with the attack CLI's `--defense` syntax ([`Defense`]); only reverse sigmoid has a
/// differentiable form.
#[derive(Clone, Copy, Debug, PartialEq, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub enum DivDefense {
    ReverseSigmoid { beta: f64, gamma: f64 },
}

impl FromStr for DivDefense {
    type Err = String;

    fn from_str(spec: &str) -> Result<Self, String> {
        match spec.parse::<Defense>().map_err(|e| e.to_string())? {
            Defense::ReverseSigmoid { beta, gamma } => Ok(DivDefense::ReverseSigmoid { beta, gamma }),
            other => Err(format!(
                "div defense '{spec}': only reverse-sigmoid is supported, got {}",
                other.name()
            )),
        }
    }
}

impl TryFrom<String> for DivDefense {
    type Error = String;

    fn try_from(spec: String) -> Result<Self, String> {
        spec.parse()
    }
}

impl From<DivDefense> for String {
    fn from(d: DivDefense) -> String {
        d.to_string()
    }
}

impl fmt::Display for DivDefense {
    /// The canonical `--defense` spec.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match *self {
            DivDefense::ReverseSigmoid { beta, gamma } => Defense::ReverseSigmoid { beta, gamma }.fmt(f),
        }
    }
}

/// Lower bound of each reverse-sigmoid entry before renormalising, in the tensor form.
/// `defense::reverse_sigmoid` sets negative entries to 0 and answers an all-zero vector
/// with the one-hot of the argmax; neither is usable in training (log 0 in the KL, no
/// gradient through a one-hot), so entries are floored here instead. Negative entries
/// need beta > 1 (for beta <= 1 every entry stays >= min(v, (1 - beta) / 2)), so for
/// the betas in use the floor never binds and the two forms agree.
pub const DEFENDED_FLOOR: f64 = 1e-12;

/// Reverse sigmoid of a batch of probability rows (last dimension), differentiable:
/// `v - beta * (sigmoid(gamma * logit(v)) - 1/2)`, logit of v clamped into
/// `[EPS, 1 - EPS]` as in [`crate::attack::defense::reverse_sigmoid`], floored at
/// [`DEFENDED_FLOOR`] and renormalised to sum 1. Computed in f64, like the reference:
/// in f32 the clip bound 1 - 1e-7 rounds to another number, which moves the answer for
/// a saturated entry by ~4e-6.
pub fn reverse_sigmoid_tensor(v: &Tensor, beta: f64, gamma: f64) -> Tensor {
    let v64 = v.to_kind(Kind::Double);
    let c = v64.clamp(REVERSE_SIGMOID_EPS, 1.0 - REVERSE_SIGMOID_EPS);
    let logit = (&c / (-&c + 1.0)).log();
    let perturbed = v64 - ((logit * gamma).sigmoid() - 0.5) * beta;
    let floored = perturbed.clamp_min(DEFENDED_FLOOR);
    let sum = floored.sum_dim_intlist(-1, true, Kind::Double);
    (floored / sum).to_kind(v.kind())
}

/// Where the `--div-defense` reverse sigmoid acts (`--div-defense-at`).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize, clap::ValueEnum)]
#[serde(rename_all = "kebab-case")]
pub enum DivDefenseAt {
    /// On the tempered probabilities softmax(q/T), then the KL (docs/results.md §6).
    #[default]
    Tempered,
    /// On softmax(q) at T = 1, the answer the device serves; the defended answer is
    /// then brought to temperature T for the KL.
    Device,
}

impl DivDefenseAt {
    pub fn is_default(&self) -> bool {
        *self == DivDefenseAt::default()
    }
}

/// Which side of the KL passes through the `--div-defense` (`--div-defense-on`).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize, clap::ValueEnum)]
#[serde(rename_all = "kebab-case")]
pub enum DivDefenseOn {
    /// Only the quantized model's probabilities; the teacher's stay plain (§6, §7).
    #[default]
    Quant,
    /// Both: the divergence is between what the attacker receives from the DivQAT
    /// device and what it would receive from the teacher behind the same defense.
    Both,
}

impl DivDefenseOn {
    pub fn is_default(&self) -> bool {
        *self == DivDefenseOn::default()
    }
}

/// Probability rows `y` brought to temperature `t`: `softmax(log(y) / t)`, i.e.
/// `y^(1/t)` renormalised. For `y = softmax(z)` this is exactly `softmax(z / t)`.
pub fn temper_probabilities(y: &Tensor, t: f64) -> Tensor {
    (y.log() / t).softmax(-1, Kind::Float)
}

/// Mean over the batch of `KL(p || q)` for probability rows `p` and `q`.
fn kl_of_probabilities(p: &Tensor, q: &Tensor) -> Tensor {
    (p * (p.log() - q.log()))
        .sum_dim_intlist(-1, false, Kind::Float)
        .mean(Kind::Float)
}

/// A model's defended probabilities as the KL compares them.
/// `Tempered`: `RS(softmax(q/T))`, the defense on the tempered probabilities (§6's form).
/// `Device`: `temper(RS(softmax(q)), T)`. The device defends its T = 1 answer, so this
/// form trains against exactly what the attacker receives (y' = RS(softmax(q))) and only
/// then softens it to T like the teacher side, keeping the KL's scale comparable.
fn defended_probabilities(logits: &Tensor, d: &Divergence, defense: DivDefense) -> Tensor {
    let DivDefense::ReverseSigmoid { beta, gamma } = defense;
    match d.defense_at {
        DivDefenseAt::Tempered => {
            reverse_sigmoid_tensor(&(logits / d.temperature).softmax(-1, Kind::Float), beta, gamma)
        }
        DivDefenseAt::Device => {
            let answer = reverse_sigmoid_tensor(&logits.softmax(-1, Kind::Float), beta, gamma);
            temper_probabilities(&answer, d.temperature)
        }
    }
}

/// The divergence with the quantized model's probabilities defended (see
/// [`defended_probabilities`]) against the teacher's, in `d.direction`. The teacher's
/// are `softmax(t/T)` (they stand for what the attacker tries to recover) unless
/// `d.defense_on` is `Both`, where they pass through the same defense.
fn defended_kl(logits: &Tensor, teacher_logits: &Tensor, d: &Divergence, defense: DivDefense) -> Tensor {
    let quant = defended_probabilities(logits, d, defense);
    let teacher = match d.defense_on {
        DivDefenseOn::Quant => (teacher_logits / d.temperature).softmax(-1, Kind::Float),
        DivDefenseOn::Both => defended_probabilities(teacher_logits, d, defense),
    };
    match d.direction {
        KlDirection::QuantToTeacher => kl_of_probabilities(&quant, &teacher),
        KlDirection::TeacherToQuant => kl_of_probabilities(&teacher, &quant),
    }
}

/// Parameters of the divergence term.
#[derive(Clone, Copy, Debug, PartialEq, Serialize, Deserialize)]
pub struct Divergence {
    pub weight: f64,
    pub temperature: f64,
    pub direction: KlDirection,
    /// Measure the divergence on the defended quantized output (None: undefended).
    pub defense: Option<DivDefense>,
    /// Where that defense acts (ignored without one).
    pub defense_at: DivDefenseAt,
    /// Which side of the KL it acts on (ignored without one).
    pub defense_on: DivDefenseOn,
}

/// The terms of one batch's loss.
pub struct LossTerms {
    pub total: Tensor,
    pub cross_entropy: Tensor,
    pub kl: Option<Tensor>,
}

pub fn cross_entropy(logits: &Tensor, labels: &Tensor) -> Tensor {
    logits.cross_entropy_for_logits(labels)
}

/// CE alone, or CE minus the weighted, T^2-scaled divergence from the teacher.
pub fn loss(logits: &Tensor, labels: &Tensor, teacher: Option<(&Tensor, &Divergence)>) -> LossTerms {
    let ce = cross_entropy(logits, labels);
    match teacher {
        None => LossTerms {
            total: ce.shallow_clone(),
            cross_entropy: ce,
            kl: None,
        },
        Some((teacher_logits, d)) => {
            let kl = match (d.defense, d.direction) {
                (Some(defense), _) => defended_kl(logits, teacher_logits, d, defense),
                (None, KlDirection::QuantToTeacher) => kl_divergence(logits, teacher_logits, d.temperature),
                (None, KlDirection::TeacherToQuant) => kl_divergence(teacher_logits, logits, d.temperature),
            };
            let total = &ce - &kl * (d.weight * d.temperature * d.temperature);
            LossTerms {
                total,
                cross_entropy: ce,
                kl: Some(kl),
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn softmax(v: &[f64]) -> Vec<f64> {
        let z: f64 = v.iter().map(|x| x.exp()).sum();
        v.iter().map(|x| x.exp() / z).collect()
    }

    #[test]
    fn kl_matches_hand_computation() {
        // softmax([0, ln 3]) = [1/4, 3/4], softmax([0, 0]) = [1/2, 1/2]:
        // KL = 1/4 ln(1/2) + 3/4 ln(3/2) = 0.130812...
        let p = Tensor::from_slice(&[0.0f32, 3f32.ln()]).view([1, 2]);
        let q = Tensor::from_slice(&[0.0f32, 0.0]).view([1, 2]);
        let kl = kl_divergence(&p, &q, 1.0).double_value(&[]);
        assert!((kl - (0.25 * 0.5f64.ln() + 0.75 * 1.5f64.ln())).abs() < 1e-6, "{kl}");
        assert!(kl_divergence(&p, &p, 1.0).double_value(&[]).abs() < 1e-7);
    }

    /// The divergence term lowers the loss as the model moves away from the teacher,
    /// and its gradient is -w*T^2 * dKL/dlogits with dKL/da_i = p_i (log p_i - log q_i - KL) / T.
    #[test]
    fn divqat_term_has_negative_sign_and_correct_gradient() {
        let (a, b, t, w) = ([0.3f64, 1.7, -0.4], [0.0f64, 0.5, 0.2], 2.0, 0.25);
        let logits = Tensor::from_slice(&a)
            .view([1, 3])
            .to_kind(Kind::Float)
            .set_requires_grad(true);
        let teacher = Tensor::from_slice(&b).view([1, 3]).to_kind(Kind::Float);
        let labels = Tensor::from_slice(&[1i64]);
        let d = Divergence {
            weight: w,
            temperature: t,
            direction: KlDirection::QuantToTeacher,
            defense: None,
            defense_at: DivDefenseAt::Tempered,
            defense_on: DivDefenseOn::Quant,
        };
        let terms = loss(&logits, &labels, Some((&teacher, &d)));
        let kl = terms.kl.as_ref().unwrap().double_value(&[]);
        let ce = terms.cross_entropy.double_value(&[]);
        assert!(kl > 0.0);
        assert!((terms.total.double_value(&[]) - (ce - w * t * t * kl)).abs() < 1e-6);
        terms.total.backward();
        let grad: Vec<f64> = Vec::try_from(logits.grad().to_kind(Kind::Double).view([-1])).unwrap();
        // Expected: CE gradient (softmax(a) - onehot) minus w*T^2 times the KL gradient.
        let p = softmax(&a.map(|x| x / t));
        let q = softmax(&b.map(|x| x / t));
        let kl_exact: f64 = p.iter().zip(&q).map(|(p, q)| p * (p.ln() - q.ln())).sum();
        let s = softmax(&a);
        for i in 0..3 {
            let ce_grad = s[i] - if i == 1 { 1.0 } else { 0.0 };
            let kl_grad = p[i] * (p[i].ln() - q[i].ln() - kl_exact) / t;
            assert!(
                (grad[i] - (ce_grad - w * t * t * kl_grad)).abs() < 1e-5,
                "component {i}: {} vs {}",
                grad[i],
                ce_grad - w * t * t * kl_grad
            );
        }
    }

    // -----------------------------------------------------------------------------
    // The divergence on the defended output (--div-defense).

    use crate::attack::defense::reverse_sigmoid;

    /// Rows of probabilities: hand-made edge cases (zeros, entries under the logit clip,
    /// near-one-hot, uniform) and seeded random softmax rows of 10 classes.
    fn probability_rows() -> Vec<Vec<f32>> {
        let mut rows = vec![
            vec![0.25, 0.75],
            vec![1.0, 0.0, 0.0],
            vec![1e-9, 0.5, 0.5 - 1e-9],
            vec![0.1; 10],
            vec![0.999_999, 1e-6, 0.0],
        ];
        let mut state = 0x2545_f491_4f6c_dd1du64;
        for scale in [0.5f64, 3.0, 12.0] {
            for _ in 0..4 {
                let logits: Vec<f64> = (0..10)
                    .map(|_| {
                        state = state
                            .wrapping_mul(6364136223846793005)
                            .wrapping_add(1442695040888963407);
                        ((state >> 11) as f64 / (1u64 << 53) as f64 - 0.5) * 2.0 * scale
                    })
                    .collect();
                rows.push(softmax(&logits).iter().map(|&p| p as f32).collect());
            }
        }
        rows
    }

    /// The tensor form agrees with the defense the oracle applies (the reference), in
    /// f32 and f64, including a beta > 1 case where an entry is clipped at 0.
    #[test]
    fn reverse_sigmoid_tensor_matches_defense() {
        for (beta, gamma) in [(0.05, 0.4), (0.2, 0.4), (0.7, 0.4), (0.5, 2.0), (1.5, 10.0)] {
            let mut rows = probability_rows();
            rows.push(vec![0.7, 0.3]); // beta 1.5, gamma 10: the 0.7 entry goes negative
            for row in &rows {
                let expected = reverse_sigmoid(row, beta, gamma);
                for kind in [Kind::Float, Kind::Double] {
                    let t = Tensor::from_slice(row).to_kind(kind).view([1, -1]);
                    let got: Vec<f64> =
                        Vec::try_from(reverse_sigmoid_tensor(&t, beta, gamma).to_kind(Kind::Double).view([-1]))
                            .unwrap();
                    for (i, (g, e)) in got.iter().zip(&expected).enumerate() {
                        assert!(
                            (g - *e as f64).abs() < 1e-6,
                            "beta {beta} gamma {gamma} {kind:?} row {row:?} entry {i}: {g} vs {e}"
                        );
                    }
                }
            }
        }
    }

    fn defended(direction: KlDirection) -> Divergence {
        Divergence {
            weight: 0.04,
            temperature: 4.0,
            direction,
            defense: Some("reverse-sigmoid:beta=0.2,gamma=0.4".parse().unwrap()),
            defense_at: DivDefenseAt::Tempered,
            defense_on: DivDefenseOn::Quant,
        }
    }

    /// `v` as a one-row float tensor that records gradients.
    fn logit_row(v: &[f64]) -> Tensor {
        Tensor::from_slice(v)
            .view([1, v.len() as i64])
            .to_kind(Kind::Float)
            .set_requires_grad(true)
    }

    /// KL between the defended quantized probabilities and the teacher's, by hand, in
    /// `direction`.
    fn kl_by_hand(quant: &[f64], teacher: &[f64], direction: KlDirection) -> f64 {
        let (p, q) = match direction {
            KlDirection::QuantToTeacher => (quant, teacher),
            KlDirection::TeacherToQuant => (teacher, quant),
        };
        p.iter().zip(q).map(|(p, q)| p * (p.ln() - q.ln())).sum()
    }

    /// Back-propagates `kl` and checks that every logit gets a finite, nonzero gradient.
    fn assert_gradient_reaches_every_logit(kl: &Tensor, logits: &Tensor, direction: KlDirection) {
        kl.backward();
        let grad: Vec<f64> = Vec::try_from(logits.grad().to_kind(Kind::Double).view([-1])).unwrap();
        assert!(
            grad.iter().all(|g| g.is_finite() && g.abs() > 1e-8),
            "{direction:?}: {grad:?}"
        );
    }

    /// The defended KL equals the KL computed by hand from `defense::reverse_sigmoid` of
    /// the tempered quantized probabilities, and its gradient reaches every logit.
    #[test]
    fn defended_divergence_matches_reference_and_has_gradient() {
        let (a, b) = ([0.3f64, 4.7, -2.4, 1.0], [0.0f64, 5.5, -1.2, 0.2]);
        for direction in [KlDirection::QuantToTeacher, KlDirection::TeacherToQuant] {
            let d = defended(direction);
            let logits = logit_row(&a);
            let teacher = Tensor::from_slice(&b).view([1, 4]).to_kind(Kind::Float);
            let terms = loss(&logits, &Tensor::from_slice(&[1i64]), Some((&teacher, &d)));
            let kl = terms.kl.as_ref().unwrap();
            let q: Vec<f32> = softmax(&a.map(|x| x / 4.0)).iter().map(|&p| p as f32).collect();
            let q: Vec<f64> = reverse_sigmoid(&q, 0.2, 0.4).iter().map(|&p| p as f64).collect();
            let expected = kl_by_hand(&q, &softmax(&b.map(|x| x / 4.0)), direction);
            assert!((kl.double_value(&[]) - expected).abs() < 1e-6, "{direction:?}");
            let undefended = match direction {
                KlDirection::QuantToTeacher => kl_divergence(&logits, &teacher, 4.0),
                KlDirection::TeacherToQuant => kl_divergence(&teacher, &logits, 4.0),
            };
            assert!((kl.double_value(&[]) - undefended.double_value(&[])).abs() > 1e-4);
            assert_gradient_reaches_every_logit(kl, &logits, direction);
        }
    }

    /// Without a defense the loss is exactly the pre-existing CE - w*T^2*KL of logits.
    #[test]
    fn loss_without_div_defense_is_unchanged() {
        let logits = Tensor::from_slice(&[0.3f32, 1.7, -0.4, 0.9, -1.1, 2.0]).view([2, 3]);
        let teacher = Tensor::from_slice(&[0.0f32, 0.5, 0.2, 1.0, -0.3, 0.1]).view([2, 3]);
        let labels = Tensor::from_slice(&[1i64, 2]);
        for direction in [KlDirection::QuantToTeacher, KlDirection::TeacherToQuant] {
            let d = Divergence {
                defense: None,
                ..defended(direction)
            };
            let terms = loss(&logits, &labels, Some((&teacher, &d)));
            let kl = match direction {
                KlDirection::QuantToTeacher => kl_divergence(&logits, &teacher, 4.0),
                KlDirection::TeacherToQuant => kl_divergence(&teacher, &logits, 4.0),
            };
            let total = cross_entropy(&logits, &labels) - &kl * (0.04 * 16.0);
            assert_eq!(terms.kl.unwrap().double_value(&[]), kl.double_value(&[]));
            assert_eq!(terms.total.double_value(&[]), total.double_value(&[]));
        }
    }

    /// The device form: y' = `defense::reverse_sigmoid(softmax(a))` (T = 1, the served
    /// answer), tempered by hand to y'^(1/T) / sum, against softmax(b/T); it differs from
    /// the tempered form, and its gradient reaches every logit.
    #[test]
    fn device_defended_divergence_matches_reference_and_has_gradient() {
        let (a, b) = ([0.3f64, 4.7, -2.4, 1.0], [0.0f64, 5.5, -1.2, 0.2]);
        for direction in [KlDirection::QuantToTeacher, KlDirection::TeacherToQuant] {
            let d = Divergence {
                defense_at: DivDefenseAt::Device,
                ..defended(direction)
            };
            let logits = logit_row(&a);
            let teacher = Tensor::from_slice(&b).view([1, 4]).to_kind(Kind::Float);
            let terms = loss(&logits, &Tensor::from_slice(&[1i64]), Some((&teacher, &d)));
            let kl = terms.kl.as_ref().unwrap();
            let y: Vec<f32> = softmax(&a).iter().map(|&p| p as f32).collect();
            let answer: Vec<f64> = reverse_sigmoid(&y, 0.2, 0.4).iter().map(|&p| p as f64).collect();
            let powered: Vec<f64> = answer.iter().map(|p| p.powf(1.0 / 4.0)).collect();
            let z: f64 = powered.iter().sum();
            let q: Vec<f64> = powered.iter().map(|p| p / z).collect();
            let expected = kl_by_hand(&q, &softmax(&b.map(|x| x / 4.0)), direction);
            assert!((kl.double_value(&[]) - expected).abs() < 1e-6, "{direction:?}");
            let tempered = loss(
                &logits,
                &Tensor::from_slice(&[1i64]),
                Some((&teacher, &defended(direction))),
            );
            assert!((kl.double_value(&[]) - tempered.kl.unwrap().double_value(&[])).abs() > 1e-4);
            assert_gradient_reaches_every_logit(kl, &logits, direction);
        }
    }

    /// Defense on both sides: the KL between `defense::reverse_sigmoid` of both tempered
    /// rows, by hand; zero when the model answers as the teacher does, and the gradient
    /// reaches every logit otherwise.
    #[test]
    fn both_sides_defended_divergence_matches_reference() {
        let (a, b) = ([0.3f64, 4.7, -2.4, 1.0], [0.0f64, 5.5, -1.2, 0.2]);
        let defended_row = |v: &[f64; 4]| -> Vec<f64> {
            let p: Vec<f32> = softmax(&v.map(|x| x / 4.0)).iter().map(|&p| p as f32).collect();
            reverse_sigmoid(&p, 0.2, 0.4).iter().map(|&p| p as f64).collect()
        };
        for direction in [KlDirection::QuantToTeacher, KlDirection::TeacherToQuant] {
            let d = Divergence {
                defense_on: DivDefenseOn::Both,
                ..defended(direction)
            };
            let teacher = Tensor::from_slice(&b).view([1, 4]).to_kind(Kind::Float);
            let same = loss(&teacher, &Tensor::from_slice(&[1i64]), Some((&teacher, &d)));
            assert!(same.kl.unwrap().double_value(&[]).abs() < 1e-7, "{direction:?}");
            let logits = logit_row(&a);
            let terms = loss(&logits, &Tensor::from_slice(&[1i64]), Some((&teacher, &d)));
            let kl = terms.kl.as_ref().unwrap();
            let expected = kl_by_hand(&defended_row(&a), &defended_row(&b), direction);
            assert!((kl.double_value(&[]) - expected).abs() < 1e-6, "{direction:?}");
            assert_gradient_reaches_every_logit(kl, &logits, direction);
        }
    }

    /// Tempering softmax probabilities is softmax of the tempered logits.
    #[test]
    fn temper_probabilities_of_a_softmax_is_the_tempered_softmax() {
        let z = Tensor::from_slice(&[0.3f32, 4.7, -2.4, 1.0, 9.0, -8.0]).view([2, 3]);
        let got = temper_probabilities(&z.softmax(-1, Kind::Float), 4.0);
        let want = (&z / 4.0).softmax(-1, Kind::Float);
        assert!((got - want).abs().max().double_value(&[]) < 1e-6);
    }

    #[test]
    fn div_defense_uses_the_defense_syntax() {
        let d: DivDefense = " reverse-sigmoid: gamma=0.4, beta=0.2".parse().unwrap();
        assert_eq!(d, DivDefense::ReverseSigmoid { beta: 0.2, gamma: 0.4 });
        assert_eq!(d.to_string(), "reverse-sigmoid:beta=0.2,gamma=0.4");
        assert!("gaussian:sigma=0.1"
            .parse::<DivDefense>()
            .unwrap_err()
            .contains("only reverse-sigmoid"));
        assert!("reverse-sigmoid:beta=0.2".parse::<DivDefense>().is_err());
    }
}
