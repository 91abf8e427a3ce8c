//! Post-hoc defenses against model extraction: what a deployed device does to its
//! probability vector before answering. Each is parsed from a `name:key=value,...` spec
//! (`--defense`, repeatable) and composed, in order, into a [`DefenseChain`].
//!
//! The formulas, with their sources (docs/defenses.md has the same list):
//!
//! - `none`: y' = y.
//! - `round:decimals=d`: y'_i = round(y_i * 10^d) / 10^d (half away from zero), **not**
//!   renormalized — the device returns the rounded numbers (Tramèr et al., "Stealing
//!   machine learning models via prediction APIs", USENIX Security 2016, §7).
//! - `topk:k=k`: the k largest entries kept (ties to the lower index), the rest zeroed,
//!   renormalized to sum 1 (Orekondy et al., "Knockoff Nets", CVPR 2019, §6.2).
//! - `label`: one-hot of the argmax (ties to the lowest index).
//! - `gaussian:sigma=s`: y' = normalize(max(0, y + n)), n_i ~ N(0, s^2) independent
//!   (a vector whose entries all clip to 0 is answered with the one-hot of the noisy
//!   argmax). The noise of the i-th image ever answered is drawn from the ChaCha8
//!   stream `i` of the oracle's seed, so answers do not depend on how queries are batched.
//! - `reverse-sigmoid:beta=b,gamma=g` (Lee et al., "Defending against NN model stealing
//!   attacks using deceptive perturbations", IEEE S&P Workshops 2019, eq. 3):
//!   y' = alpha * (y - b * (sigmoid(g * logit(y)) - 1/2)), logit(y) = ln(y / (1 - y)) with
//!   y clipped into (1e-7, 1 - 1e-7); alpha normalizes y' to sum 1. Entries that would
//!   be negative (only possible for b > 1) are set to 0 before normalizing.
//! - `adaptive-misinformation:tau=t,nu=n[,epochs=E,train=N]` (Kariyappa & Qureshi,
//!   "Defending against model stealing attacks with adaptive misinformation", CVPR 2020,
//!   eq. 5-7): the out-of-distribution score is the maximum probability m = max_i y_i,
//!   alpha = 1 / (1 + exp(n * (m - t))), y' = (1 - alpha) * y + alpha * y_mis, where y_mis
//!   is the softmax of a misinformation model trained with loss -log(1 - p_label)
//!   ([`crate::attack::misinformation`]; E epochs on N training images).
//! - `mad:epsilon=e[,argmax=true]` (Orekondy et al., "Prediction poisoning: towards
//!   defenses against DNN model stealing attacks", ICLR 2020, §4, the MAD heuristic):
//!   maximize the angular deviation of a proxy surrogate's gradient subject to
//!   ||y' - y||_1 <= e; see [`crate::attack::poisoning`].

use std::fmt;
use std::path::Path;
use std::rc::Rc;
use std::str::FromStr;

use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use tch::Device;

use super::misinformation::{MisinformationModel, MisinformationOptions};
use super::oracle::OracleError;
use super::poisoning::Proxy;

/// A model a defense needs (prepared by [`DefenseChain::prepare`]). Equality and the
/// debug form ignore it: two defenses with equal parameters are equal.
pub struct Prepared<T>(pub Option<Rc<T>>);

impl<T> Prepared<T> {
    pub fn none() -> Self {
        Prepared(None)
    }

    pub fn get(&self) -> Option<&T> {
        self.0.as_deref()
    }
}

impl<T> Clone for Prepared<T> {
    fn clone(&self) -> Self {
        Prepared(self.0.clone())
    }
}

impl<T> Default for Prepared<T> {
    fn default() -> Self {
        Prepared(None)
    }
}

impl<T> PartialEq for Prepared<T> {
    fn eq(&self, _: &Self) -> bool {
        true
    }
}

impl<T> fmt::Debug for Prepared<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(if self.0.is_some() { "prepared" } else { "unprepared" })
    }
}

/// One post-hoc defense (module docs give each formula).
#[derive(Clone, Debug, PartialEq)]
pub enum Defense {
    None,
    Round {
        decimals: u32,
    },
    TopK {
        k: usize,
    },
    LabelOnly,
    Gaussian {
        sigma: f64,
    },
    ReverseSigmoid {
        beta: f64,
        gamma: f64,
    },
    AdaptiveMisinformation {
        tau: f64,
        nu: f64,
        /// How the misinformation model is trained.
        options: MisinformationOptions,
        model: Prepared<MisinformationModel>,
    },
    Mad {
        /// L1 budget of the perturbation.
        epsilon: f64,
        /// MAD-argmax: keep the victim's top-1 label.
        argmax: bool,
        model: Prepared<Proxy>,
    },
}

/// Defenses applied in order (the output of one is the input of the next).
#[derive(Clone, Debug, PartialEq, Default)]
pub struct DefenseChain(pub Vec<Defense>);

/// Index of the largest entry, ties to the lowest index (0 for an empty vector).
pub fn argmax(y: &[f32]) -> usize {
    let mut best = 0;
    for (i, &v) in y.iter().enumerate() {
        if v > y[best] {
            best = i;
        }
    }
    best
}

fn normalized(v: Vec<f64>) -> Vec<f32> {
    let sum: f64 = v.iter().sum();
    v.iter().map(|x| (x / sum) as f32).collect()
}

fn one_hot(len: usize, i: usize) -> Vec<f32> {
    let mut v = vec![0.0; len];
    if len > 0 {
        v[i] = 1.0;
    }
    v
}

/// `round(y_i * 10^d) / 10^d`, half away from zero, not renormalized.
pub fn round(y: &[f32], decimals: u32) -> Vec<f32> {
    let f = 10f64.powi(decimals as i32);
    y.iter().map(|&v| ((v as f64 * f).round() / f) as f32).collect()
}

/// The `k` largest entries (ties to the lower index) renormalized, the rest 0.
pub fn top_k(y: &[f32], k: usize) -> Vec<f32> {
    let mut order: Vec<usize> = (0..y.len()).collect();
    // Stable sort: equal values keep index order, so ties go to the lower index.
    order.sort_by(|&a, &b| y[b].total_cmp(&y[a]));
    let mut kept = vec![0.0f64; y.len()];
    for &i in order.iter().take(k.max(1)) {
        kept[i] = y[i].max(0.0) as f64;
    }
    if kept.iter().sum::<f64>() <= 0.0 {
        return one_hot(y.len(), argmax(y));
    }
    normalized(kept)
}

/// One-hot of the argmax (ties to the lowest index).
pub fn label_only(y: &[f32]) -> Vec<f32> {
    one_hot(y.len(), argmax(y))
}

/// A standard normal sample (Box-Muller).
fn standard_normal(rng: &mut impl Rng) -> f64 {
    let u1: f64 = 1.0 - rng.gen::<f64>(); // (0, 1]
    let u2: f64 = rng.gen::<f64>();
    (-2.0 * u1.ln()).sqrt() * (2.0 * std::f64::consts::PI * u2).cos()
}

/// `normalize(max(0, y + N(0, sigma^2)))`; all-zero after clipping: one-hot of the noisy argmax.
pub fn gaussian(y: &[f32], sigma: f64, rng: &mut impl Rng) -> Vec<f32> {
    let noisy: Vec<f64> = y.iter().map(|&v| v as f64 + sigma * standard_normal(rng)).collect();
    let clipped: Vec<f64> = noisy.iter().map(|v| v.max(0.0)).collect();
    if clipped.iter().sum::<f64>() <= 0.0 {
        let as_f32: Vec<f32> = noisy.iter().map(|&v| v as f32).collect();
        return label_only(&as_f32);
    }
    normalized(clipped)
}

/// Clip bound of the probabilities before the logit of reverse sigmoid.
pub const REVERSE_SIGMOID_EPS: f64 = 1e-7;

fn sigmoid(z: f64) -> f64 {
    1.0 / (1.0 + (-z).exp())
}

/// Lee et al. 2019, eq. 3: `alpha * (y - beta * (sigmoid(gamma * logit(y)) - 1/2))`.
pub fn reverse_sigmoid(y: &[f32], beta: f64, gamma: f64) -> Vec<f32> {
    let perturbed: Vec<f64> = y
        .iter()
        .map(|&v| {
            let p = (v as f64).clamp(REVERSE_SIGMOID_EPS, 1.0 - REVERSE_SIGMOID_EPS);
            let logit = (p / (1.0 - p)).ln();
            (v as f64 - beta * (sigmoid(gamma * logit) - 0.5)).max(0.0)
        })
        .collect();
    if perturbed.iter().sum::<f64>() <= 0.0 {
        return label_only(y);
    }
    normalized(perturbed)
}

/// Kariyappa & Qureshi 2020: `alpha = 1 / (1 + exp(nu * (max y - tau)))`.
pub fn misinformation_alpha(y: &[f32], tau: f64, nu: f64) -> f64 {
    let max = y.iter().copied().fold(f32::NEG_INFINITY, f32::max) as f64;
    let e = (nu * (max - tau)).exp();
    if e.is_infinite() {
        0.0
    } else {
        1.0 / (1.0 + e)
    }
}

/// `(1 - alpha) * y + alpha * y_mis` with [`misinformation_alpha`].
pub fn adaptive_misinformation(y: &[f32], y_mis: &[f32], tau: f64, nu: f64) -> Vec<f32> {
    let alpha = misinformation_alpha(y, tau, nu);
    y.iter()
        .zip(y_mis)
        .map(|(&a, &b)| ((1.0 - alpha) * a as f64 + alpha * b as f64) as f32)
        .collect()
}

/// L1 distance of two vectors.
pub fn l1(a: &[f32], b: &[f32]) -> f64 {
    a.iter().zip(b).map(|(x, y)| (*x as f64 - *y as f64).abs()).sum()
}

/// The noise generator of the `index`-th image answered under `seed`.
pub fn image_rng(seed: u64, index: u64) -> ChaCha8Rng {
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    rng.set_stream(index);
    rng
}

// ---------------------------------------------------------------------------------
// Parsing and display.

fn spec_error(spec: &str, message: impl fmt::Display) -> OracleError {
    OracleError::Spec(format!("defense '{spec}': {message}"))
}

/// `key=value` pairs of a spec, refusing keys outside `allowed` and duplicates.
fn parse_pairs<'a>(
    spec: &str,
    name: &str,
    params: &'a str,
    allowed: &[&str],
) -> Result<Vec<(&'a str, &'a str)>, OracleError> {
    let mut pairs: Vec<(&str, &str)> = Vec::new();
    if params.trim().is_empty() {
        return Ok(pairs);
    }
    for item in params.split(',') {
        let Some((k, v)) = item.split_once('=') else {
            return Err(spec_error(spec, format!("expected key=value, got '{item}'")));
        };
        let (k, v) = (k.trim(), v.trim());
        if !allowed.contains(&k) {
            let keys = if allowed.is_empty() {
                "none".to_string()
            } else {
                allowed.join(", ")
            };
            return Err(spec_error(spec, format!("unknown key '{k}' for {name} (keys: {keys})")));
        }
        if pairs.iter().any(|(seen, _)| *seen == k) {
            return Err(spec_error(spec, format!("key '{k}' given twice")));
        }
        pairs.push((k, v));
    }
    Ok(pairs)
}

struct Params<'a> {
    spec: &'a str,
    name: &'a str,
    pairs: Vec<(&'a str, &'a str)>,
}

impl Params<'_> {
    fn raw(&self, key: &str) -> Option<&str> {
        self.pairs.iter().find(|(k, _)| *k == key).map(|(_, v)| *v)
    }

    fn parse<T: FromStr>(&self, key: &str, what: &str, ok: impl Fn(&T) -> bool) -> Result<Option<T>, OracleError> {
        match self.raw(key) {
            None => Ok(None),
            Some(v) => match v.parse::<T>() {
                Ok(x) if ok(&x) => Ok(Some(x)),
                _ => Err(spec_error(
                    self.spec,
                    format!("{}: key '{key}' must be {what}, got '{v}'", self.name),
                )),
            },
        }
    }

    fn required<T: FromStr>(&self, key: &str, what: &str, ok: impl Fn(&T) -> bool) -> Result<T, OracleError> {
        self.parse(key, what, ok)?
            .ok_or_else(|| spec_error(self.spec, format!("{} needs key '{key}' ({what})", self.name)))
    }
}

fn finite_positive(x: &f64) -> bool {
    x.is_finite() && *x > 0.0
}

fn finite_non_negative(x: &f64) -> bool {
    x.is_finite() && *x >= 0.0
}

/// The names accepted by [`Defense::from_str`].
pub const DEFENSE_NAMES: &str = "none, round, topk, label, gaussian, reverse-sigmoid, adaptive-misinformation, mad";

impl FromStr for Defense {
    type Err = OracleError;

    /// `name` or `name:key=value,...` (module docs list them).
    fn from_str(spec: &str) -> Result<Self, OracleError> {
        let spec = spec.trim();
        let (name, params) = spec.split_once(':').unwrap_or((spec, ""));
        let name = name.trim().to_ascii_lowercase();
        let keys: &[&str] = match name.as_str() {
            "none" | "label" | "label-only" => &[],
            "round" | "rounding" => &["decimals"],
            "topk" | "top-k" => &["k"],
            "gaussian" | "noise" => &["sigma"],
            "reverse-sigmoid" => &["beta", "gamma"],
            "adaptive-misinformation" | "am" => &["tau", "nu", "epochs", "train", "lr"],
            "mad" | "prediction-poisoning" => &["epsilon", "argmax"],
            _ => {
                return Err(spec_error(
                    spec,
                    format!("unknown defense '{name}' (known: {DEFENSE_NAMES})"),
                ))
            }
        };
        let p = Params {
            spec,
            name: &name,
            pairs: parse_pairs(spec, &name, params, keys)?,
        };
        Ok(match name.as_str() {
            "none" => Defense::None,
            "label" | "label-only" => Defense::LabelOnly,
            "round" | "rounding" => Defense::Round {
                decimals: p.required("decimals", "an integer 0..=9", |d: &u32| *d <= 9)?,
            },
            "topk" | "top-k" => Defense::TopK {
                k: p.required("k", "an integer >= 1", |k: &usize| *k >= 1)?,
            },
            "gaussian" | "noise" => Defense::Gaussian {
                sigma: p.required("sigma", "a number >= 0", finite_non_negative)?,
            },
            "reverse-sigmoid" => Defense::ReverseSigmoid {
                beta: p.required("beta", "a number > 0", finite_positive)?,
                gamma: p.required("gamma", "a number > 0", finite_positive)?,
            },
            "adaptive-misinformation" | "am" => {
                let d = MisinformationOptions::default();
                Defense::AdaptiveMisinformation {
                    tau: p.required("tau", "a number in [0, 1]", |t: &f64| (0.0..=1.0).contains(t))?,
                    nu: p.required("nu", "a number >= 0", finite_non_negative)?,
                    options: MisinformationOptions {
                        epochs: p
                            .parse("epochs", "an integer >= 1", |e: &usize| *e >= 1)?
                            .unwrap_or(d.epochs),
                        train_images: p
                            .parse("train", "an integer >= 1", |n: &usize| *n >= 1)?
                            .unwrap_or(d.train_images),
                        lr: p.parse("lr", "a number > 0", finite_positive)?.unwrap_or(d.lr),
                    },
                    model: Prepared::none(),
                }
            }
            "mad" | "prediction-poisoning" => Defense::Mad {
                epsilon: p.required("epsilon", "a number in [0, 2]", |e: &f64| (0.0..=2.0).contains(e))?,
                argmax: p.parse("argmax", "true or false", |_: &bool| true)?.unwrap_or(false),
                model: Prepared::none(),
            },
            _ => unreachable!("names checked above"),
        })
    }
}

impl fmt::Display for Defense {
    /// The canonical spec, which parses back to an equal defense; optional keys are
    /// written only when they differ from their defaults.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Defense::None => f.write_str("none"),
            Defense::Round { decimals } => write!(f, "round:decimals={decimals}"),
            Defense::TopK { k } => write!(f, "topk:k={k}"),
            Defense::LabelOnly => f.write_str("label"),
            Defense::Gaussian { sigma } => write!(f, "gaussian:sigma={sigma}"),
            Defense::ReverseSigmoid { beta, gamma } => write!(f, "reverse-sigmoid:beta={beta},gamma={gamma}"),
            Defense::AdaptiveMisinformation { tau, nu, options, .. } => {
                write!(f, "adaptive-misinformation:tau={tau},nu={nu}")?;
                let d = MisinformationOptions::default();
                if options.epochs != d.epochs {
                    write!(f, ",epochs={}", options.epochs)?;
                }
                if options.train_images != d.train_images {
                    write!(f, ",train={}", options.train_images)?;
                }
                if options.lr != d.lr {
                    write!(f, ",lr={}", options.lr)?;
                }
                Ok(())
            }
            Defense::Mad { epsilon, argmax, .. } => {
                write!(f, "mad:epsilon={epsilon}")?;
                if *argmax {
                    f.write_str(",argmax=true")?;
                }
                Ok(())
            }
        }
    }
}

impl Defense {
    /// The spec name (`round`, `reverse-sigmoid`, ...).
    pub fn name(&self) -> &'static str {
        match self {
            Defense::None => "none",
            Defense::Round { .. } => "round",
            Defense::TopK { .. } => "topk",
            Defense::LabelOnly => "label",
            Defense::Gaussian { .. } => "gaussian",
            Defense::ReverseSigmoid { .. } => "reverse-sigmoid",
            Defense::AdaptiveMisinformation { .. } => "adaptive-misinformation",
            Defense::Mad { .. } => "mad",
        }
    }

    /// Whether [`DefenseChain::prepare`] must run before this defense answers.
    pub fn needs_model(&self) -> bool {
        matches!(self, Defense::AdaptiveMisinformation { .. } | Defense::Mad { .. })
    }

    /// Whether the defense's model is ready (always true for those without one).
    pub fn is_prepared(&self) -> bool {
        match self {
            Defense::AdaptiveMisinformation { model, .. } => model.0.is_some(),
            Defense::Mad { model, .. } => model.0.is_some(),
            _ => true,
        }
    }
}

impl fmt::Display for DefenseChain {
    /// The specs joined by " + "; an empty chain is "none".
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.0.is_empty() {
            return f.write_str("none");
        }
        let specs: Vec<String> = self.0.iter().map(Defense::to_string).collect();
        f.write_str(&specs.join(" + "))
    }
}

impl FromStr for DefenseChain {
    type Err = OracleError;

    /// Specs joined by "+" (the form [`fmt::Display`] writes).
    fn from_str(s: &str) -> Result<Self, OracleError> {
        let defenses: Result<Vec<Defense>, _> = s.split('+').map(str::parse).collect();
        Ok(DefenseChain(defenses?))
    }
}

impl DefenseChain {
    pub fn none() -> Self {
        DefenseChain(Vec::new())
    }

    /// Whether every answer is one-hot: the chain contains `label` and only defenses
    /// that keep a one-hot vector one-hot (none, round, topk) follow it.
    pub fn labels_only(&self) -> bool {
        let mut labels = false;
        for d in &self.0 {
            match d {
                Defense::LabelOnly => labels = true,
                Defense::None | Defense::Round { .. } | Defense::TopK { .. } => {}
                _ => labels = false,
            }
        }
        labels
    }

    /// Train or load the models the defenses need (adaptive misinformation's
    /// misinformation model, cached in `victim_dir`; MAD's proxy surrogate). Defenses
    /// already prepared are left alone.
    pub fn prepare(&mut self, victim_dir: &Path, device: Device, seed: u64) -> Result<(), OracleError> {
        for d in &mut self.0 {
            match d {
                Defense::AdaptiveMisinformation { options, model, .. } if model.0.is_none() => {
                    let m = MisinformationModel::load_or_train(victim_dir, options, device, seed)?;
                    *model = Prepared(Some(Rc::new(m)));
                }
                Defense::Mad { model, .. } if model.0.is_none() => {
                    *model = Prepared(Some(Rc::new(Proxy::for_victim(victim_dir, device, seed)?)));
                }
                _ => {}
            }
        }
        Ok(())
    }

    /// Whether every defense's model is ready.
    pub fn is_prepared(&self) -> bool {
        self.0.iter().all(Defense::is_prepared)
    }

    /// The defended vectors of a batch: `clean[i]` is the victim's answer to the i-th
    /// image of `images` (each `C*H*W` codes of `shape`), and `first_index` numbers the
    /// first image among all images ever answered under `seed` (the noise stream).
    pub fn apply(
        &self,
        clean: &[Vec<f32>],
        images: &[u8],
        shape: [usize; 3],
        seed: u64,
        first_index: u64,
    ) -> Result<Vec<Vec<f32>>, OracleError> {
        let image_len: usize = shape.iter().product();
        if image_len == 0 || images.len() != clean.len() * image_len {
            return Err(OracleError::Defense(format!(
                "{} bytes of images for {} probability vectors of {image_len}-byte images",
                images.len(),
                clean.len()
            )));
        }
        let mut current: Vec<Vec<f32>> = clean.to_vec();
        for (stage, d) in self.0.iter().enumerate() {
            current = match d {
                Defense::None => current,
                Defense::Round { decimals } => current.iter().map(|y| round(y, *decimals)).collect(),
                Defense::TopK { k } => current.iter().map(|y| top_k(y, *k)).collect(),
                Defense::LabelOnly => current.iter().map(|y| label_only(y)).collect(),
                Defense::Gaussian { sigma } => current
                    .iter()
                    .enumerate()
                    .map(|(i, y)| {
                        // One stream per (image, chain position): stages never share noise.
                        let mut rng = image_rng(
                            seed ^ (stage as u64).wrapping_mul(0x9e37_79b9_7f4a_7c15),
                            first_index + i as u64,
                        );
                        gaussian(y, *sigma, &mut rng)
                    })
                    .collect(),
                Defense::ReverseSigmoid { beta, gamma } => {
                    current.iter().map(|y| reverse_sigmoid(y, *beta, *gamma)).collect()
                }
                Defense::AdaptiveMisinformation { tau, nu, model, .. } => {
                    let m = model.get().ok_or_else(|| unprepared(d))?;
                    let mis = m.probabilities(images, shape)?;
                    current
                        .iter()
                        .zip(&mis)
                        .map(|(y, y_mis)| adaptive_misinformation(y, y_mis, *tau, *nu))
                        .collect()
                }
                Defense::Mad { epsilon, argmax, model } => {
                    let proxy = model.get().ok_or_else(|| unprepared(d))?;
                    let maps = proxy.gradient_maps(images, shape)?;
                    current
                        .iter()
                        .zip(&maps)
                        .map(|(y, g)| super::poisoning::mad(y, g, *epsilon, *argmax))
                        .collect()
                }
            };
        }
        Ok(current)
    }
}

fn unprepared(d: &Defense) -> OracleError {
    OracleError::Defense(format!(
        "{}: its model is not prepared (call DefenseChain::prepare with the victim directory)",
        d.name()
    ))
}
