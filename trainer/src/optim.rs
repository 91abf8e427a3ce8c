//! Optimizers written over plain tensors, so that their state can be checkpointed and
//! a resumed run continues exactly where the interrupted one stopped (libtorch's own
//! optimizers keep their state out of reach of the Rust API).

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};
use tch::nn::VarStore;
use tch::Tensor;

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize, clap::ValueEnum)]
#[serde(rename_all = "kebab-case")]
pub enum OptimizerKind {
    /// Adam with decoupled weight decay.
    Adamw,
    /// SGD with Nesterov momentum 0.9 and decoupled weight decay.
    Sgd,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize, clap::ValueEnum)]
#[serde(rename_all = "kebab-case")]
pub enum Schedule {
    /// Cosine decay from the peak learning rate to 0 over the run.
    Cosine,
    Constant,
}

impl Schedule {
    pub fn lr(self, base: f64, step: usize, total: usize) -> f64 {
        match self {
            Schedule::Cosine => cosine_lr(base, step, total),
            Schedule::Constant => base,
        }
    }
}

/// AdamW (Loshchilov & Hutter) or Nesterov SGD; weight decay applies to weights of
/// rank >= 2 only (not to biases or batch-norm parameters). For SGD the first
/// moment is the momentum buffer and the second moment is unused.
pub struct Optimizer {
    pub kind: OptimizerKind,
    /// Trainable variables by name, in a fixed order.
    params: BTreeMap<String, Tensor>,
    first_moment: BTreeMap<String, Tensor>,
    second_moment: BTreeMap<String, Tensor>,
    pub steps: i64,
    pub beta1: f64,
    pub beta2: f64,
    pub eps: f64,
    pub weight_decay: f64,
}

const SGD_MOMENTUM: f64 = 0.9;

/// Prefix of optimizer tensors inside a checkpoint.
pub const STATE_PREFIX: &str = "optimizer.";

impl Optimizer {
    pub fn new(kind: OptimizerKind, vs: &VarStore, weight_decay: f64) -> Self {
        let params: BTreeMap<String, Tensor> = vs.variables().into_iter().filter(|(_, t)| t.requires_grad()).collect();
        let zeros = |p: &BTreeMap<String, Tensor>| p.iter().map(|(n, t)| (n.clone(), t.zeros_like())).collect();
        Optimizer {
            kind,
            first_moment: zeros(&params),
            second_moment: zeros(&params),
            params,
            steps: 0,
            beta1: 0.9,
            beta2: 0.999,
            eps: 1e-8,
            weight_decay,
        }
    }

    pub fn zero_grad(&mut self) {
        for p in self.params.values_mut() {
            let mut g = p.grad();
            if g.defined() {
                let _ = g.detach_().zero_();
            }
        }
    }

    /// One update with learning rate `lr` from the gradients already computed.
    pub fn step(&mut self, lr: f64) {
        self.steps += 1;
        let (b1, b2) = (self.beta1, self.beta2);
        let bias1 = 1.0 - b1.powi(self.steps as i32);
        let bias2 = 1.0 - b2.powi(self.steps as i32);
        tch::no_grad(|| {
            for (name, p) in self.params.iter_mut() {
                let g = p.grad();
                if !g.defined() {
                    continue;
                }
                let m = self.first_moment.get_mut(name).expect("moment per parameter");
                let update = match self.kind {
                    OptimizerKind::Adamw => {
                        let _ = m.g_mul_scalar_(b1).g_add_(&(&g * (1.0 - b1)));
                        let v = self.second_moment.get_mut(name).expect("moment per parameter");
                        let _ = v.g_mul_scalar_(b2).g_add_(&(&g * &g * (1.0 - b2)));
                        (&*m / bias1) / ((&*v / bias2).sqrt() + self.eps)
                    }
                    OptimizerKind::Sgd => {
                        let _ = m.g_mul_scalar_(SGD_MOMENTUM).g_add_(&g);
                        &g + &*m * SGD_MOMENTUM
                    }
                };
                if p.dim() >= 2 && self.weight_decay > 0.0 {
                    let _ = p.g_mul_scalar_(1.0 - lr * self.weight_decay);
                }
                let _ = p.g_sub_(&(update * lr));
            }
        });
    }

    /// Named tensors holding the complete optimizer state.
    pub fn state(&self) -> Vec<(String, Tensor)> {
        let mut out = vec![(format!("{STATE_PREFIX}steps"), Tensor::from_slice(&[self.steps]))];
        for (name, m) in &self.first_moment {
            out.push((format!("{STATE_PREFIX}m.{name}"), m.shallow_clone()));
        }
        for (name, v) in &self.second_moment {
            out.push((format!("{STATE_PREFIX}v.{name}"), v.shallow_clone()));
        }
        out
    }

    /// Restore the state written by `state`; `get` looks a tensor up by name.
    pub fn load_state(&mut self, get: impl Fn(&str) -> Option<Tensor>) -> Result<(), String> {
        let fetch = |name: String| get(&name).ok_or_else(|| format!("optimizer tensor '{name}' is missing"));
        self.steps = fetch(format!("{STATE_PREFIX}steps"))?.int64_value(&[0]);
        for (moments, tag) in [(&mut self.first_moment, "m"), (&mut self.second_moment, "v")] {
            for (name, t) in moments.iter_mut() {
                let src = fetch(format!("{STATE_PREFIX}{tag}.{name}"))?;
                if src.size() != t.size() {
                    return Err(format!(
                        "optimizer tensor '{tag}.{name}' has shape {:?}, expected {:?}",
                        src.size(),
                        t.size()
                    ));
                }
                tch::no_grad(|| t.copy_(&src));
            }
        }
        Ok(())
    }
}

/// Cosine decay from `base` to 0 over `total` steps.
pub fn cosine_lr(base: f64, step: usize, total: usize) -> f64 {
    let progress = step as f64 / total.max(1) as f64;
    base * 0.5 * (1.0 + (std::f64::consts::PI * progress.min(1.0)).cos())
}
