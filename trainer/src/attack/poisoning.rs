//! Prediction poisoning with the MAD heuristic (Orekondy, Schiele & Fritz, "Prediction
//! poisoning: towards defenses against DNN model stealing attacks", ICLR 2020, §4).
//!
//! An attacker training a surrogate F(x; w) on the answer y follows the gradient
//! `-G^T y`, with `G = d log F(x; w) / dw` (K x D: row k is the gradient of log p_k). MAD
//! answers y' that maximizes the angular deviation between the gradients of the true and
//! the returned vector,
//!
//! ```text
//!   max_{y'}  || G^T y / ||G^T y|| - G^T y' / ||G^T y'|| ||_2^2
//!   s.t.      y' in the probability simplex,  ||y' - y||_1 <= epsilon
//!             (MAD-argmax: also argmax y' = argmax y)
//! ```
//!
//! solved, as in the paper, by the heuristic: the objective is evaluated at the K
//! vertices of the simplex (the one-hot vectors e_k), the best vertex e* is kept, and the
//! answer moves from y towards it, `y' = (1 - a) y + a e*`, with the largest `a <= 1`
//! that keeps `||y' - y||_1 = a ||e* - y||_1 <= epsilon` (a convex combination, so y' stays
//! on the simplex). MAD-argmax caps `a` further so that y's top-1 class keeps the
//! largest probability: for e* = e_k with k != c = argmax y, `a < (y_c - y_k) / (1 + y_c - y_k)`.
//!
//! Simplifications, stated: G is the Jacobian with respect to the **last linear layer's**
//! parameters (weights and bias) only, computed in closed form (`d log p_k / dW_jm =
//! (delta_kj - p_j) h_m`, h = that layer's input with a 1 appended for the bias); the
//! defender's proxy for the unknown attacker surrogate is a **randomly initialized**
//! network of the victim's architecture (seeded), the choice the paper reports works
//! well; the argmax variant uses the closed-form cap above instead of a line search.
//! With this G, `G^T y = (y - (sum y) p) (x) h`, so the angle depends only on y - p and
//! y' - p.

use std::path::Path;

use tch::nn::{ModuleT, VarStore};
use tch::{Device, Kind, Tensor};

use super::defense::argmax;
use super::oracle::OracleError;
use crate::config::TrainConfig;
use crate::float_net::{FloatLayer, FloatNet};

/// `y -> G^T y` for one image's Jacobian G (K rows).
#[derive(Clone, Debug, PartialEq)]
pub enum GradientMap {
    /// G given row by row (`rows[k]` = d log p_k / dw).
    Dense(Vec<Vec<f64>>),
    /// The last linear layer's Jacobian: softmax `p` (K) and its input `h` with the bias's 1 appended.
    LastLayer { p: Vec<f64>, h: Vec<f64> },
}

impl GradientMap {
    pub fn classes(&self) -> usize {
        match self {
            GradientMap::Dense(rows) => rows.len(),
            GradientMap::LastLayer { p, .. } => p.len(),
        }
    }

    /// `G^T y = sum_k y_k G_k`.
    pub fn apply(&self, y: &[f64]) -> Vec<f64> {
        match self {
            GradientMap::Dense(rows) => {
                let d = rows.first().map_or(0, Vec::len);
                let mut out = vec![0.0; d];
                for (row, &yk) in rows.iter().zip(y) {
                    for (o, g) in out.iter_mut().zip(row) {
                        *o += yk * g;
                    }
                }
                out
            }
            GradientMap::LastLayer { p, h } => {
                let s: f64 = y.iter().sum();
                let mut out = Vec::with_capacity(p.len() * h.len());
                for (yk, pk) in y.iter().zip(p) {
                    let coeff = yk - s * pk;
                    out.extend(h.iter().map(|hm| coeff * hm));
                }
                out
            }
        }
    }
}

fn unit(v: Vec<f64>) -> Option<Vec<f64>> {
    let norm = v.iter().map(|x| x * x).sum::<f64>().sqrt();
    (norm > 0.0 && norm.is_finite()).then(|| v.into_iter().map(|x| x / norm).collect())
}

/// The MAD objective `||u(y)/|u(y)| - u(y')/|u(y')| ||^2` for a unit `u(y)`; `None`
/// where `G^T y'` vanishes.
fn deviation(g: &GradientMap, unit_true: &[f64], candidate: &[f64]) -> Option<f64> {
    let u = unit(g.apply(candidate))?;
    Some(unit_true.iter().zip(&u).map(|(a, b)| (a - b) * (a - b)).sum())
}

/// MAD's answer for the true vector `y` (module docs): the best vertex by the angular
/// deviation objective, approached within an L1 step of `epsilon`. `y` is returned
/// unchanged where the gradient of the true vector vanishes (y equals the proxy's
/// prediction) or no vertex deviates.
pub fn mad(y: &[f32], g: &GradientMap, epsilon: f64, argmax_preserving: bool) -> Vec<f32> {
    let yd: Vec<f64> = y.iter().map(|&v| v as f64).collect();
    let k_classes = yd.len();
    let Some(unit_true) = unit(g.apply(&yd)) else {
        return y.to_vec();
    };
    let mut best: Option<(usize, f64)> = None;
    let mut vertex = vec![0.0; k_classes];
    for k in 0..k_classes {
        vertex.fill(0.0);
        vertex[k] = 1.0;
        if let Some(f) = deviation(g, &unit_true, &vertex) {
            if best.is_none_or(|(_, b)| f > b) {
                best = Some((k, f));
            }
        }
    }
    let Some((k, _)) = best else {
        return y.to_vec();
    };
    let distance: f64 = yd
        .iter()
        .enumerate()
        .map(|(i, v)| (if i == k { 1.0 } else { 0.0 } - v).abs())
        .sum();
    if distance <= 0.0 {
        return y.to_vec();
    }
    let mut a = (epsilon / distance).min(1.0);
    let c = argmax(y);
    if argmax_preserving && k != c {
        let gap = yd[c] - yd[k];
        a = a.min((gap / (1.0 + gap)) * (1.0 - 1e-4)).max(0.0);
    }
    let out: Vec<f32> = yd
        .iter()
        .enumerate()
        .map(|(i, v)| ((1.0 - a) * v + if i == k { a } else { 0.0 }) as f32)
        .collect();
    if argmax_preserving && argmax(&out) != c {
        return y.to_vec();
    }
    out
}

/// MAD's proxy surrogate: a randomly initialized network of the victim's architecture,
/// split into everything before the last linear layer and that layer.
pub struct Proxy {
    _vs: VarStore,
    body: FloatNet,
    weight: Tensor,
    bias: Option<Tensor>,
    device: Device,
}

impl Proxy {
    /// The proxy for the run in `victim_dir` (its `config.toml` names the architecture,
    /// width and dataset), initialized from `seed`.
    pub fn for_victim(victim_dir: &Path, device: Device, seed: u64) -> Result<Proxy, OracleError> {
        let path = victim_dir.join(crate::train::CONFIG_FILE);
        let config = TrainConfig::load(&path)
            .map_err(|e| OracleError::Defense(format!("mad: the proxy needs the victim's architecture: {e}")))?;
        let shape = config.dataset.shape();
        let blocks = config.arch.blocks(config.dataset.classes(), config.width);
        tch::manual_seed(seed as i64);
        let vs = VarStore::new(device);
        let mut body = FloatNet::new(&vs.root(), &blocks, shape);
        let Some(FloatLayer::Linear { linear, .. }) = body.layers.pop() else {
            return Err(OracleError::Defense(format!(
                "mad: architecture {} does not end in a linear layer",
                config.arch
            )));
        };
        Ok(Proxy {
            weight: linear.ws.shallow_clone(),
            bias: linear.bs.as_ref().map(Tensor::shallow_clone),
            _vs: vs,
            body,
            device,
        })
    }

    /// The last-layer Jacobian map of every image of a batch.
    pub fn gradient_maps(&self, images: &[u8], shape: [usize; 3]) -> Result<Vec<GradientMap>, OracleError> {
        let pixels = super::oracle::pixels_tensor(images, shape)?.to_device(self.device);
        tch::no_grad(|| {
            let h = self.body.forward_t(&pixels, false).flatten(1, -1);
            let logits = h.matmul(&self.weight.tr());
            let logits = match &self.bias {
                Some(b) => logits + b,
                None => logits,
            };
            let p = logits.softmax(-1, Kind::Double).to_device(Device::Cpu);
            let h = h.to_kind(Kind::Double).to_device(Device::Cpu);
            let n = p.size()[0];
            let mut maps = Vec::with_capacity(n as usize);
            for i in 0..n {
                let p: Vec<f64> = Vec::try_from(p.get(i)).map_err(|e| OracleError::Defense(format!("mad: {e}")))?;
                let mut h: Vec<f64> = Vec::try_from(h.get(i)).map_err(|e| OracleError::Defense(format!("mad: {e}")))?;
                h.push(1.0);
                maps.push(GradientMap::LastLayer { p, h });
            }
            Ok(maps)
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The closed-form last-layer map equals the dense Jacobian with rows
    /// `G_k = (e_k - p) (x) h`.
    #[test]
    fn last_layer_map_equals_its_dense_jacobian() {
        let p = vec![0.1, 0.6, 0.3];
        let h = vec![0.5, -2.0, 1.0];
        let rows: Vec<Vec<f64>> = (0..3)
            .map(|k| {
                let mut row = Vec::new();
                for (j, pj) in p.iter().enumerate() {
                    let d = if j == k { 1.0 } else { 0.0 } - pj;
                    row.extend(h.iter().map(|hm| d * hm));
                }
                row
            })
            .collect();
        let dense = GradientMap::Dense(rows);
        let last = GradientMap::LastLayer { p, h };
        for y in [[0.2, 0.3, 0.5], [1.0, 0.0, 0.0], [0.0, 0.25, 0.5]] {
            let (a, b) = (dense.apply(&y), last.apply(&y));
            assert!(a.iter().zip(&b).all(|(x, z)| (x - z).abs() < 1e-12), "{a:?} vs {b:?}");
        }
        assert_eq!(last.classes(), 3);
    }

    #[test]
    fn a_vanishing_gradient_leaves_the_answer_alone() {
        // y equal to the proxy's prediction: G^T y = 0, no direction to deviate from.
        let g = GradientMap::LastLayer {
            p: vec![0.5, 0.25, 0.25],
            h: vec![1.0, 1.0],
        };
        assert_eq!(mad(&[0.5, 0.25, 0.25], &g, 1.0, false), vec![0.5, 0.25, 0.25]);
    }
}
