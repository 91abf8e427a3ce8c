//! The full-precision network: zoo blocks as libtorch modules (conv + batch norm +
//! ReLU). Like the quantized network it takes pixel codes 0..=255 and computes on
//! pixels / 255, the same real values the integer model sees.

use compiler::zoo::{Block, ConvSpec};
use tch::nn::{self, Module, ModuleT};
use tch::Tensor;

/// A convolution without bias followed by batch norm (folded away before QAT).
#[derive(Debug)]
pub struct ConvBn {
    pub spec: ConvSpec,
    pub conv: nn::Conv2D,
    pub bn: nn::BatchNorm,
}

impl ConvBn {
    fn new(p: nn::Path, in_channels: usize, spec: ConvSpec) -> Self {
        let cfg = nn::ConvConfig {
            stride: spec.stride as i64,
            padding: spec.padding as i64,
            bias: false,
            ..Default::default()
        };
        let conv = nn::conv2d(
            &p / "conv",
            in_channels as i64,
            spec.out_channels as i64,
            spec.kernel as i64,
            cfg,
        );
        let bn = nn::batch_norm2d(&p / "bn", spec.out_channels as i64, Default::default());
        ConvBn { spec, conv, bn }
    }

    fn forward_t(&self, x: &Tensor, train: bool) -> Tensor {
        let y = self.bn.forward_t(&self.conv.forward(x), train);
        if self.spec.relu {
            y.relu()
        } else {
            y
        }
    }
}

#[derive(Debug)]
pub enum FloatLayer {
    Conv(ConvBn),
    MaxPool {
        kernel: i64,
        stride: i64,
    },
    GlobalAvgPool,
    Flatten,
    Linear {
        linear: nn::Linear,
        relu: bool,
    },
    Residual {
        body: Vec<ConvBn>,
        shortcut: Option<ConvBn>,
    },
}

#[derive(Debug)]
pub struct FloatNet {
    pub layers: Vec<FloatLayer>,
}

/// Channels/features flowing between blocks while building, to size the next one.
struct ShapeTracker {
    shape: [usize; 3],
}

impl ShapeTracker {
    fn conv(&mut self, s: &ConvSpec) {
        let out = |d: usize| (d + 2 * s.padding).saturating_sub(s.kernel) / s.stride + 1;
        self.shape = [s.out_channels, out(self.shape[1]), out(self.shape[2])];
    }
}

impl FloatNet {
    /// Build `blocks` for inputs of `input` shape `[C, H, W]` under `vs`.
    pub fn new(vs: &nn::Path, blocks: &[Block], input: [usize; 3]) -> Self {
        let mut t = ShapeTracker { shape: input };
        let layers = blocks
            .iter()
            .enumerate()
            .map(|(i, block)| Self::layer(vs / format!("b{i}"), block, &mut t))
            .collect();
        FloatNet { layers }
    }

    fn layer(p: nn::Path, block: &Block, t: &mut ShapeTracker) -> FloatLayer {
        match block {
            Block::Conv(s) => {
                let layer = ConvBn::new(p, t.shape[0], *s);
                t.conv(s);
                FloatLayer::Conv(layer)
            }
            Block::MaxPool { kernel, stride } => {
                t.shape = [
                    t.shape[0],
                    (t.shape[1] - kernel) / stride + 1,
                    (t.shape[2] - kernel) / stride + 1,
                ];
                FloatLayer::MaxPool {
                    kernel: *kernel as i64,
                    stride: *stride as i64,
                }
            }
            Block::GlobalAvgPool => {
                t.shape = [t.shape[0], 1, 1];
                FloatLayer::GlobalAvgPool
            }
            Block::Flatten => {
                t.shape = [t.shape.iter().product(), 1, 1];
                FloatLayer::Flatten
            }
            Block::Linear { out_features, relu } => {
                let linear = nn::linear(&p / "fc", t.shape[0] as i64, *out_features as i64, Default::default());
                t.shape = [*out_features, 1, 1];
                FloatLayer::Linear { linear, relu: *relu }
            }
            Block::Residual { body, shortcut } => {
                let input_channels = t.shape[0];
                let mut convs = Vec::new();
                for (j, s) in body.iter().enumerate() {
                    convs.push(ConvBn::new(&p / format!("conv{j}"), t.shape[0], *s));
                    t.conv(s);
                }
                let shortcut = shortcut.map(|s| ConvBn::new(&p / "shortcut", input_channels, s));
                FloatLayer::Residual { body: convs, shortcut }
            }
        }
    }
}

impl ModuleT for FloatNet {
    /// `pixels`: codes 0..=255 as floats, `[N, C, H, W]`.
    fn forward_t(&self, pixels: &Tensor, train: bool) -> Tensor {
        let mut x = pixels / 255.0;
        for layer in &self.layers {
            x = match layer {
                FloatLayer::Conv(c) => c.forward_t(&x, train),
                FloatLayer::MaxPool { kernel, stride } => {
                    x.max_pool2d([*kernel, *kernel], [*stride, *stride], [0, 0], [1, 1], false)
                }
                FloatLayer::GlobalAvgPool => x.mean_dim(&[2i64, 3][..], true, None),
                FloatLayer::Flatten => x.flatten(1, -1),
                FloatLayer::Linear { linear, relu } => {
                    let y = linear.forward(&x.flatten(1, -1));
                    if *relu {
                        y.relu()
                    } else {
                        y
                    }
                }
                FloatLayer::Residual { body, shortcut } => {
                    let skip = shortcut
                        .as_ref()
                        .map_or_else(|| x.shallow_clone(), |s| s.forward_t(&x, train));
                    let y = body.iter().fold(x.shallow_clone(), |h, c| c.forward_t(&h, train));
                    (y + skip).relu()
                }
            };
        }
        x
    }
}
