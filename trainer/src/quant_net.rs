//! The quantized network used for QAT and DivQAT: it computes, in floating point,
//! exactly the integers of docs/integer-semantics.md.
//!
//! Tensors flowing between layers hold integer values (the codes `q`), each with a
//! known real scale. Weights are quantized per output channel on every step,
//! biases to i32 in units of `input_scale * weight_scale`, and every output is
//! requantized with the same 16-bit multiplier/shift pair that export writes, using
//! round-half-up and saturation. Rounding and clamping pass gradients straight
//! through (STE). Batch norm is folded into the convolutions before QAT starts, so
//! export changes nothing.
//!
//! The requantization runs in f64, where `acc * m / 2^s` is exact; with
//! `Arithmetic::Exact` the convolutions also run in f64, which makes evaluation
//! agree with the integer reference bit for bit.

use compiler::arith::{AddRescale, DType, Precision, Requant};
use compiler::zoo::ConvSpec;
use tch::nn;
use tch::{Kind, Tensor};

use crate::float_net::{ConvBn, FloatLayer, FloatNet};

/// Scale of the network input: pixels 0..=255 stand for 0..=1 (docs §1).
pub const INPUT_SCALE: f64 = 1.0 / 255.0;
/// Width of the logits the last layer produces.
pub const LOGIT_BITS: u8 = 16;

/// Float precision of the multiply-accumulates.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Arithmetic {
    /// f32 convolutions: exact while partial sums stay below 2^24 (training speed).
    Fast,
    /// f64 convolutions: exact for every model the loader accepts (evaluation).
    Exact,
}

impl Arithmetic {
    fn kind(self) -> Kind {
        match self {
            Arithmetic::Fast => Kind::Float,
            Arithmetic::Exact => Kind::Double,
        }
    }
}

/// Round half up with a straight-through gradient.
fn ste_round_half_up(v: &Tensor) -> Tensor {
    let rounded = (v + 0.5).floor();
    v + (rounded - v).detach()
}

/// Round half up, then saturate to `dtype`: docs §3 on float tensors.
fn requantize(v: &Tensor, dtype: DType) -> Tensor {
    ste_round_half_up(v).clamp(dtype.min() as f64, dtype.max() as f64)
}

/// Running mean of per-batch maxima of a real-valued tensor while calibrating, then
/// frozen. The state lives in the var store so checkpoints carry it.
#[derive(Debug)]
pub struct RangeObserver {
    max: Tensor,
    batches: Tensor,
}

impl RangeObserver {
    fn new(p: &nn::Path) -> Self {
        RangeObserver {
            max: p.zeros_no_train("range_max", &[1]),
            batches: p.zeros_no_train("range_batches", &[1]),
        }
    }

    /// Fold the largest |value| of this batch into the running mean.
    fn observe(&mut self, real: &Tensor) {
        tch::no_grad(|| {
            let batch_max = real.abs().max().to_kind(Kind::Float).reshape([1]);
            let n = &self.batches;
            let updated = (&self.max * n + batch_max) / (n + 1.0);
            self.max.copy_(&updated);
            self.batches.copy_(&(n + 1.0));
        });
    }

    /// Scale at which the observed range maps onto `dtype`'s largest code.
    pub fn scale(&self, dtype: DType) -> f64 {
        self.max.double_value(&[0]).max(1e-8) / dtype.max() as f64
    }
}

/// The integer parameters of a conv/linear layer at the current weights.
pub struct MacQuant {
    /// Integer-valued weights with a straight-through gradient to the float weights.
    pub weights: Tensor,
    /// Integer-valued biases (i32 units, f64), straight-through as well.
    pub bias: Tensor,
    pub weight_scales: Vec<f64>,
    pub requant: Vec<Requant>,
    pub output_scale: f64,
}

/// A convolution or linear layer with folded batch norm and fake quantization.
#[derive(Debug)]
pub struct QMac {
    /// `[O, I, kh, kw]` (a linear layer is a 1x1 convolution on a `[N, I, 1, 1]` input).
    pub weight: Tensor,
    pub bias: Tensor,
    pub spec: ConvSpec,
    pub weight_bits: u8,
    pub output: DType,
    pub observer: RangeObserver,
    /// Exported as `linear` (input flattened to a vector) rather than `conv2d`.
    pub linear: bool,
}

impl QMac {
    fn new(
        p: &nn::Path,
        weight: &Tensor,
        bias: &Tensor,
        spec: ConvSpec,
        weight_bits: u8,
        output: DType,
        linear: bool,
    ) -> Self {
        let w = p.var_copy("weight", weight);
        let b = p.var_copy("bias", bias);
        let observer = RangeObserver::new(&(p / "observer"));
        QMac {
            weight: w,
            bias: b,
            spec,
            weight_bits,
            output,
            observer,
            linear,
        }
    }

    fn from_conv_bn(p: &nn::Path, c: &ConvBn, weight_bits: u8, output: DType) -> Self {
        let (w, b) = fold_batch_norm(c);
        Self::new(p, &w, &b, c.spec, weight_bits, output, false)
    }

    /// Largest |weight code|: symmetric, so -2^(b-1) is never produced by training.
    fn weight_code_max(&self) -> f64 {
        ((1i64 << (self.weight_bits - 1)) - 1) as f64
    }

    /// Products per output value (docs §2 `K`).
    fn products(&self) -> i64 {
        self.weight.size()[1..].iter().product()
    }

    /// Quantize weights and bias and derive the per-channel requantizers for an
    /// input of `input` dtype and scale `s_in`.
    pub fn quantize(&self, s_in: f64, input: DType) -> MacQuant {
        let qmax = self.weight_code_max();
        let s_w = (self.weight.abs().amax([1i64, 2, 3], false).detach().clamp_min(1e-12) / qmax).to_kind(Kind::Double);
        let weight_scales: Vec<f64> = Vec::try_from(&s_w).expect("1-D double tensor");
        let w_codes = (&self.weight / s_w.view([-1, 1, 1, 1]).to_kind(Kind::Float)).clamp(-qmax, qmax);
        let weights = ste_round_half_up(&w_codes);
        // Keep |bias| within the accumulator bound of docs §2 so export always validates.
        let bias_limit = i32::MAX as f64 - self.products() as f64 * input.max_magnitude() as f64 * (qmax + 1.0);
        let bias_codes = (&self.bias.to_kind(Kind::Double) / (&s_w * s_in)).clamp(-bias_limit, bias_limit);
        // Kept in f64: biases beyond 2^24 are not exact in f32.
        let bias = ste_round_half_up(&bias_codes);
        let output_scale = self.observer.scale(self.output);
        let requant = weight_scales
            .iter()
            .map(|s| requant_for(s_in * s / output_scale))
            .collect();
        MacQuant {
            weights,
            bias,
            weight_scales,
            requant,
            output_scale,
        }
    }

    /// `(output codes, output scale)` for input codes `x` at scale `s_in`.
    fn forward(&mut self, x: &Tensor, s_in: f64, input: DType, mode: Mode) -> (Tensor, f64) {
        let x4 = if self.linear {
            x.view([x.size()[0], -1, 1, 1])
        } else {
            x.shallow_clone()
        };
        let kind = mode.arithmetic.kind();
        if mode.calibrating {
            // Observe the real-valued accumulator before the output scale is known.
            let q = self.quantize(s_in, input);
            let acc = self.accumulate(&x4, &q, kind);
            let s_w = Tensor::from_slice(&q.weight_scales)
                .view([1, -1, 1, 1])
                .to_device(acc.device());
            let real = acc.to_kind(Kind::Double) * s_w * s_in;
            self.observer
                .observe(&if self.output.signed { real } else { real.relu() });
        }
        let q = self.quantize(s_in, input);
        let acc = self.accumulate(&x4, &q, kind);
        let factors: Vec<f64> = q.requant.iter().map(|r| r.factor()).collect();
        let scaled =
            acc.to_kind(Kind::Double) * Tensor::from_slice(&factors).view([1, -1, 1, 1]).to_device(acc.device());
        let y = requantize(&scaled, self.output).to_kind(Kind::Float);
        let y = if self.linear { y.flatten(1, -1) } else { y };
        (y, q.output_scale)
    }

    fn accumulate(&self, x: &Tensor, q: &MacQuant, kind: Kind) -> Tensor {
        let s = self.spec;
        x.to_kind(kind).conv2d(
            &q.weights.to_kind(kind),
            Some(&q.bias.to_kind(kind)),
            [s.stride as i64; 2],
            [s.padding as i64; 2],
            [1, 1],
            1,
        )
    }
}

/// The requantizer for a real factor; factors beyond the 16-bit multiplier (an output
/// scale over 65535x smaller than the accumulator's) saturate to the largest one.
fn requant_for(factor: f64) -> Requant {
    Requant::from_factor(factor.clamp(0.0, 65535.0)).expect("clamped factor is representable")
}

/// Fold batch norm (running statistics) into the preceding bias-free convolution.
pub fn fold_batch_norm(c: &ConvBn) -> (Tensor, Tensor) {
    tch::no_grad(|| {
        let bn = &c.bn;
        let mean = bn.running_mean.shallow_clone();
        let var = bn.running_var.shallow_clone();
        let gamma = bn
            .ws
            .as_ref()
            .map_or_else(|| Tensor::ones_like(&mean), |w| w.shallow_clone());
        let beta = bn
            .bs
            .as_ref()
            .map_or_else(|| Tensor::zeros_like(&mean), |b| b.shallow_clone());
        // FloatNet builds every batch norm with the default config.
        let factor = gamma / (var + nn::BatchNormConfig::default().eps).sqrt();
        let weight = &c.conv.ws * factor.view([-1, 1, 1, 1]);
        let bias = beta - mean * factor;
        (weight.detach(), bias.detach())
    })
}

/// How a forward pass runs.
#[derive(Clone, Copy, Debug)]
pub struct Mode {
    pub calibrating: bool,
    pub arithmetic: Arithmetic,
}

#[derive(Debug)]
pub enum QLayer {
    Mac(QMac),
    MaxPool {
        kernel: i64,
        stride: i64,
    },
    GlobalAvgPool,
    Flatten,
    Residual {
        body: Vec<QMac>,
        shortcut: Option<QMac>,
        observer: RangeObserver,
        output: DType,
    },
}

/// Integer codes of a tensor with their real scale and dtype.
pub struct Codes {
    pub values: Tensor,
    pub scale: f64,
    pub dtype: DType,
}

#[derive(Debug)]
pub struct QuantNet {
    pub layers: Vec<QLayer>,
    pub precision: Precision,
}

impl QuantNet {
    /// Fold and quantize a trained float network. `vs` receives the QAT parameters.
    pub fn from_float(vs: &nn::Path, float: &FloatNet, precision: Precision) -> Self {
        let last = float.layers.len() - 1;
        let act = |relu: bool| {
            if relu {
                DType::unsigned(precision.activation_bits)
            } else {
                DType::signed(precision.activation_bits)
            }
        };
        let wb = precision.weight_bits;
        let layers = float
            .layers
            .iter()
            .enumerate()
            .map(|(i, layer)| {
                let p = vs / format!("b{i}");
                match layer {
                    FloatLayer::Conv(c) => QLayer::Mac(QMac::from_conv_bn(&p, c, wb, act(c.spec.relu))),
                    FloatLayer::MaxPool { kernel, stride } => QLayer::MaxPool {
                        kernel: *kernel,
                        stride: *stride,
                    },
                    FloatLayer::GlobalAvgPool => QLayer::GlobalAvgPool,
                    FloatLayer::Flatten => QLayer::Flatten,
                    FloatLayer::Linear { linear, relu } => {
                        let out = if i == last {
                            DType::signed(LOGIT_BITS)
                        } else {
                            act(*relu)
                        };
                        let [o, n] = linear.ws.size()[..] else {
                            unreachable!("linear weights are 2-D")
                        };
                        let w = linear.ws.view([o, n, 1, 1]);
                        let b = linear
                            .bs
                            .as_ref()
                            .map_or_else(|| Tensor::zeros([o], (Kind::Float, w.device())), |b| b.shallow_clone());
                        let spec = ConvSpec {
                            out_channels: o as usize,
                            kernel: 1,
                            stride: 1,
                            padding: 0,
                            relu: *relu,
                        };
                        QLayer::Mac(QMac::new(&(&p / "fc"), &w.detach(), &b.detach(), spec, wb, out, true))
                    }
                    FloatLayer::Residual { body, shortcut } => QLayer::Residual {
                        body: body
                            .iter()
                            .enumerate()
                            .map(|(j, c)| QMac::from_conv_bn(&(&p / format!("conv{j}")), c, wb, act(c.spec.relu)))
                            .collect(),
                        shortcut: shortcut
                            .as_ref()
                            .map(|c| QMac::from_conv_bn(&(&p / "shortcut"), c, wb, act(c.spec.relu))),
                        observer: RangeObserver::new(&(&p / "add_observer")),
                        output: act(true),
                    },
                }
            })
            .collect();
        QuantNet { layers, precision }
    }

    /// Integer codes of every layer output for pixel codes `pixels` (`[N, C, H, W]`,
    /// values 0..=255 as floats).
    pub fn forward_codes(&mut self, pixels: &Tensor, mode: Mode) -> Codes {
        let mut x = Codes {
            values: pixels.shallow_clone(),
            scale: INPUT_SCALE,
            dtype: DType::U8,
        };
        for layer in &mut self.layers {
            x = layer_forward(layer, x, mode);
        }
        x
    }

    /// Real-valued logits (codes times their scale), for the loss.
    pub fn forward(&mut self, pixels: &Tensor, mode: Mode) -> Tensor {
        let out = self.forward_codes(pixels, mode);
        out.values * out.scale
    }
}

fn layer_forward(layer: &mut QLayer, x: Codes, mode: Mode) -> Codes {
    match layer {
        QLayer::Mac(m) => {
            let (values, scale) = m.forward(&x.values, x.scale, x.dtype, mode);
            Codes {
                values,
                scale,
                dtype: m.output,
            }
        }
        QLayer::MaxPool { kernel, stride } => {
            let values = x
                .values
                .max_pool2d([*kernel, *kernel], [*stride, *stride], [0, 0], [1, 1], false);
            Codes { values, ..x }
        }
        QLayer::GlobalAvgPool => {
            let [h, w] = [x.values.size()[2], x.values.size()[3]];
            let rq = gap_requant(h * w);
            let sum = x
                .values
                .to_kind(Kind::Double)
                .sum_dim_intlist(&[2i64, 3][..], true, Kind::Double);
            let values = requantize(&(sum * rq.factor()), x.dtype).to_kind(Kind::Float);
            Codes {
                values,
                scale: x.scale,
                dtype: x.dtype,
            }
        }
        QLayer::Flatten => Codes {
            values: x.values.flatten(1, -1),
            ..x
        },
        QLayer::Residual {
            body,
            shortcut,
            observer,
            output,
        } => residual_forward(body, shortcut.as_mut(), observer, *output, x, mode),
    }
}

/// Requantizer of a global average pool over `n` positions at an unchanged scale.
pub fn gap_requant(n: i64) -> Requant {
    Requant::from_factor(1.0 / n as f64).expect("1/n is representable")
}

fn residual_forward(
    body: &mut [QMac],
    shortcut: Option<&mut QMac>,
    observer: &mut RangeObserver,
    output: DType,
    x: Codes,
    mode: Mode,
) -> Codes {
    let skip = match shortcut {
        Some(s) => {
            let (values, scale) = s.forward(&x.values, x.scale, x.dtype, mode);
            Codes {
                values,
                scale,
                dtype: s.output,
            }
        }
        None => Codes {
            values: x.values.shallow_clone(),
            ..x
        },
    };
    let mut h = Codes {
        values: x.values.shallow_clone(),
        ..x
    };
    for m in body.iter_mut() {
        let (values, scale) = m.forward(&h.values, h.scale, h.dtype, mode);
        h = Codes {
            values,
            scale,
            dtype: m.output,
        };
    }
    if mode.calibrating {
        observer.observe(&(&h.values * h.scale + &skip.values * skip.scale).relu());
    }
    let s_out = observer.scale(output);
    let rescale = add_rescale(h.scale / s_out, skip.scale / s_out);
    let shift = (1u64 << rescale.shift) as f64;
    let sum = h.values.to_kind(Kind::Double) * (rescale.multiplier_a as f64 / shift)
        + skip.values.to_kind(Kind::Double) * (rescale.multiplier_b as f64 / shift);
    Codes {
        values: requantize(&sum, output).to_kind(Kind::Float),
        scale: s_out,
        dtype: output,
    }
}

/// The residual-add rescale for real factors, saturating like `requant_for`.
pub fn add_rescale(a_factor: f64, b_factor: f64) -> AddRescale {
    AddRescale::from_factors(a_factor.clamp(0.0, 65535.0), b_factor.clamp(0.0, 65535.0))
        .expect("clamped factors are representable")
}
