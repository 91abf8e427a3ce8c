//! Losses: cross-entropy, and the DivQAT objective (DESIGN.md §2)
//! `CE(y, f_Q(x)) - w * T^2 * KL(...)` between the tempered softmax outputs of the
//! quantized model and its frozen full-precision teacher.

use serde::{Deserialize, Serialize};
use tch::{Kind, Tensor};

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

/// Parameters of the divergence term.
#[derive(Clone, Copy, Debug, PartialEq, Serialize, Deserialize)]
pub struct Divergence {
    pub weight: f64,
    pub temperature: f64,
    pub direction: KlDirection,
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
            let kl = match d.direction {
                KlDirection::QuantToTeacher => kl_divergence(logits, teacher_logits, d.temperature),
                KlDirection::TeacherToQuant => kl_divergence(teacher_logits, logits, d.temperature),
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
}
