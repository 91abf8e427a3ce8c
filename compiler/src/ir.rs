//! The integer model (IR): an integer-only CNN as a list of layers.
//!
//! Layers are stored in execution order; each names its inputs (`"input"` or an
//! earlier layer), so residual connections are expressed without a separate graph
//! type. Every tensor is `[C, H, W]`; a vector is `[N, 1, 1]`. The arithmetic of each
//! operation is defined in `docs/integer-semantics.md` and implemented in `arith`.

use serde::{Deserialize, Serialize};

use crate::arith::{AddRescale, DType, Requant};

/// Largest number of values in one tensor (keeps every size computation far from
/// overflow and every buffer allocatable).
pub const MAX_TENSOR_ELEMENTS: usize = 1 << 31;

/// The file format version this build reads and writes.
pub const FORMAT_VERSION: u32 = 1;

/// Name by which layers refer to the network input.
pub const INPUT_NAME: &str = "input";

/// Shape, dtype and (informational) real scale of an activation tensor.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct TensorType {
    /// `[channels, height, width]`.
    pub shape: [usize; 3],
    pub dtype: DType,
    /// Real value of one integer step; used only to dequantize (docs §1).
    pub scale: f32,
}

impl TensorType {
    /// Number of values; saturates instead of overflowing on absurd shapes, which
    /// validation then refuses (`MAX_TENSOR_ELEMENTS`).
    pub fn elements(&self) -> usize {
        self.shape.iter().fold(1usize, |acc, &d| acc.saturating_mul(d))
    }
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Model {
    pub format_version: u32,
    pub name: String,
    /// The network input; its dtype must be `u8` (image pixels, docs §1).
    pub input: TensorType,
    pub layers: Vec<Layer>,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Layer {
    pub name: String,
    /// `"input"` or names of earlier layers: one for most ops, two for `add`.
    pub inputs: Vec<String>,
    pub op: Op,
    pub output: TensorType,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum Op {
    Conv2d(Conv2d),
    Linear(Linear),
    MaxPool(Pool),
    AvgPool {
        #[serde(flatten)]
        pool: Pool,
        requant: Requant,
    },
    GlobalAvgPool {
        requant: Requant,
    },
    Add(AddRescale),
    Flatten,
}

/// Weights, biases and per-output-channel requantizers of a conv or linear layer.
/// The big arrays live in the safetensors part of the file, not in the JSON.
#[derive(Clone, Debug, PartialEq, Default, Serialize, Deserialize)]
pub struct MacParams {
    pub weight_bits: u8,
    /// Row-major `[out][in][kh][kw]` (conv) or `[out][in]` (linear).
    #[serde(skip)]
    pub weights: Vec<i8>,
    /// Real scale of each output channel's weights (informational).
    #[serde(skip)]
    pub weight_scales: Vec<f32>,
    #[serde(skip)]
    pub bias: Vec<i32>,
    #[serde(skip)]
    pub requant: Vec<Requant>,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Conv2d {
    pub in_channels: usize,
    pub out_channels: usize,
    /// `[kh, kw]`.
    pub kernel: [usize; 2],
    pub stride: [usize; 2],
    pub padding: [usize; 2],
    #[serde(flatten)]
    pub params: MacParams,
}

impl Conv2d {
    /// Products per output value (docs §2, `K`).
    /// Saturates on absurd geometry, which then fails the weight-count check.
    pub fn products(&self) -> usize {
        self.in_channels
            .saturating_mul(self.kernel[0])
            .saturating_mul(self.kernel[1])
    }
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Linear {
    pub in_features: usize,
    pub out_features: usize,
    #[serde(flatten)]
    pub params: MacParams,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Pool {
    pub kernel: [usize; 2],
    pub stride: [usize; 2],
}

impl Op {
    pub fn kind(&self) -> &'static str {
        match self {
            Op::Conv2d(_) => "conv2d",
            Op::Linear(_) => "linear",
            Op::MaxPool(_) => "max_pool",
            Op::AvgPool { .. } => "avg_pool",
            Op::GlobalAvgPool { .. } => "global_avg_pool",
            Op::Add(_) => "add",
            Op::Flatten => "flatten",
        }
    }

    pub fn mac_params(&self) -> Option<&MacParams> {
        match self {
            Op::Conv2d(c) => Some(&c.params),
            Op::Linear(l) => Some(&l.params),
            _ => None,
        }
    }

    pub fn mac_params_mut(&mut self) -> Option<&mut MacParams> {
        match self {
            Op::Conv2d(c) => Some(&mut c.params),
            Op::Linear(l) => Some(&mut l.params),
            _ => None,
        }
    }
}

/// Output extent of a window sliding over `size` with `kernel`, `stride`, `padding`,
/// or `None` when the window does not fit (docs §5).
pub fn window_output(size: usize, kernel: usize, stride: usize, padding: usize) -> Option<usize> {
    let padded = padding.checked_mul(2)?.checked_add(size)?;
    if kernel == 0 || stride == 0 || kernel > padded {
        return None;
    }
    Some((padded - kernel) / stride + 1)
}

impl Model {
    /// The last layer's output: the logits.
    pub fn output(&self) -> &TensorType {
        self.layers.last().map_or(&self.input, |l| &l.output)
    }

    pub fn num_classes(&self) -> usize {
        self.output().elements()
    }

    /// Multiply-accumulates of one inference.
    pub fn macs(&self) -> u64 {
        self.layers.iter().map(Layer::macs).sum()
    }

    /// Weights + biases.
    pub fn parameter_count(&self) -> usize {
        self.layers
            .iter()
            .filter_map(|l| l.op.mac_params())
            .map(|p| p.weights.len() + p.bias.len())
            .sum()
    }
}

impl Layer {
    pub fn macs(&self) -> u64 {
        let out = self.output.shape;
        match &self.op {
            Op::Conv2d(c) => c.products() as u64 * (out[0] * out[1] * out[2]) as u64,
            Op::Linear(l) => l.in_features as u64 * l.out_features as u64,
            _ => 0,
        }
    }
}
