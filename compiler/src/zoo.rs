//! The model zoo as plain data: each architecture is a list of blocks built only from
//! operators the integer model supports. The trainer turns blocks into libtorch
//! modules, `synthetic` into random integer models, so every architecture is defined
//! exactly once.

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};

/// A convolution (followed by batch norm while training in float) and an optional ReLU.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ConvSpec {
    pub out_channels: usize,
    pub kernel: usize,
    pub stride: usize,
    pub padding: usize,
    pub relu: bool,
}

impl ConvSpec {
    /// `k x k`, stride `s`, "same" padding, ReLU.
    pub fn relu(out_channels: usize, kernel: usize, stride: usize) -> Self {
        ConvSpec {
            out_channels,
            kernel,
            stride,
            padding: kernel / 2,
            relu: true,
        }
    }
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum Block {
    Conv(ConvSpec),
    MaxPool {
        kernel: usize,
        stride: usize,
    },
    GlobalAvgPool,
    Flatten,
    Linear {
        out_features: usize,
        relu: bool,
    },
    /// `relu(body(x) + shortcut(x))`; the shortcut is the identity when `None`.
    Residual {
        body: Vec<ConvSpec>,
        shortcut: Option<ConvSpec>,
    },
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Arch {
    SmallCnn,
    Cnv,
    Resnet8,
    Resnet20,
    Resnet18,
}

impl Arch {
    pub const ALL: [Arch; 5] = [Arch::SmallCnn, Arch::Cnv, Arch::Resnet8, Arch::Resnet20, Arch::Resnet18];

    pub fn as_str(self) -> &'static str {
        match self {
            Arch::SmallCnn => "small-cnn",
            Arch::Cnv => "cnv",
            Arch::Resnet8 => "resnet8",
            Arch::Resnet20 => "resnet20",
            Arch::Resnet18 => "resnet18",
        }
    }

    /// The blocks for `classes` outputs, channel counts scaled by `width` (at least 1
    /// channel each). The input channel count comes from the data, not the spec.
    pub fn blocks(self, classes: usize, width: f64) -> Vec<Block> {
        let ch = |c: usize| ((c as f64 * width).round() as usize).max(1);
        match self {
            Arch::SmallCnn => small_cnn(classes, ch),
            Arch::Cnv => cnv(classes, ch),
            Arch::Resnet8 => cifar_resnet(1, classes, ch),
            Arch::Resnet20 => cifar_resnet(3, classes, ch),
            Arch::Resnet18 => resnet18(classes, ch),
        }
    }
}

impl fmt::Display for Arch {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for Arch {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, String> {
        Arch::ALL.into_iter().find(|a| a.as_str() == s).ok_or_else(|| {
            let names: Vec<&str> = Arch::ALL.iter().map(|a| a.as_str()).collect();
            format!("unknown architecture '{s}' (expected one of {})", names.join(", "))
        })
    }
}

fn valid_conv(out_channels: usize) -> ConvSpec {
    ConvSpec {
        out_channels,
        kernel: 3,
        stride: 1,
        padding: 0,
        relu: true,
    }
}

/// conv32-pool-conv64-pool-conv64-fc64-fc (3x3 convs without padding): ~2.8 M MACs
/// on 28x28x1, the classic small CNN for MNIST-like data.
fn small_cnn(classes: usize, ch: impl Fn(usize) -> usize) -> Vec<Block> {
    vec![
        Block::Conv(valid_conv(ch(32))),
        Block::MaxPool { kernel: 2, stride: 2 },
        Block::Conv(valid_conv(ch(64))),
        Block::MaxPool { kernel: 2, stride: 2 },
        Block::Conv(valid_conv(ch(64))),
        Block::Flatten,
        Block::Linear {
            out_features: ch(64),
            relu: true,
        },
        Block::Linear {
            out_features: classes,
            relu: false,
        },
    ]
}

/// FINN's CNV topology (VGG-like: 2x64, 2x128, 2x256 convs, two 512 fc layers), with
/// "same" padding so it also fits 28x28 inputs.
fn cnv(classes: usize, ch: impl Fn(usize) -> usize) -> Vec<Block> {
    let mut blocks = Vec::new();
    for (i, c) in [64, 128, 256].into_iter().enumerate() {
        blocks.push(Block::Conv(ConvSpec::relu(ch(c), 3, 1)));
        blocks.push(Block::Conv(ConvSpec::relu(ch(c), 3, 1)));
        if i < 2 {
            blocks.push(Block::MaxPool { kernel: 2, stride: 2 });
        }
    }
    blocks.push(Block::GlobalAvgPool);
    blocks.push(Block::Flatten);
    blocks.push(Block::Linear {
        out_features: ch(512),
        relu: true,
    });
    blocks.push(Block::Linear {
        out_features: ch(512),
        relu: true,
    });
    blocks.push(Block::Linear {
        out_features: classes,
        relu: false,
    });
    blocks
}

/// A basic residual block: two 3x3 convs; a strided 1x1 projection when the shape changes.
fn basic_block(in_channels: usize, out_channels: usize, stride: usize) -> Block {
    let first = ConvSpec::relu(out_channels, 3, stride);
    let second = ConvSpec {
        relu: false,
        ..ConvSpec::relu(out_channels, 3, 1)
    };
    let shortcut = (stride != 1 || in_channels != out_channels).then_some(ConvSpec {
        out_channels,
        kernel: 1,
        stride,
        padding: 0,
        relu: false,
    });
    Block::Residual {
        body: vec![first, second],
        shortcut,
    }
}

fn stages(stem: usize, widths: &[usize], blocks_per_stage: usize) -> Vec<Block> {
    let mut blocks = vec![Block::Conv(ConvSpec::relu(stem, 3, 1))];
    let mut channels = stem;
    for (i, &w) in widths.iter().enumerate() {
        for b in 0..blocks_per_stage {
            let stride = if i > 0 && b == 0 { 2 } else { 1 };
            blocks.push(basic_block(channels, w, stride));
            channels = w;
        }
    }
    blocks
}

/// He et al.'s CIFAR ResNet-(6n+2): 16/32/64 channels, n blocks per stage.
fn cifar_resnet(n: usize, classes: usize, ch: impl Fn(usize) -> usize) -> Vec<Block> {
    let mut blocks = stages(ch(16), &[ch(16), ch(32), ch(64)], n);
    blocks.extend([
        Block::GlobalAvgPool,
        Block::Flatten,
        Block::Linear {
            out_features: classes,
            relu: false,
        },
    ]);
    blocks
}

/// ResNet-18 with the CIFAR stem (3x3 conv, no max-pool): 64..512 channels, 2 blocks per stage.
fn resnet18(classes: usize, ch: impl Fn(usize) -> usize) -> Vec<Block> {
    let mut blocks = stages(ch(64), &[ch(64), ch(128), ch(256), ch(512)], 2);
    blocks.extend([
        Block::GlobalAvgPool,
        Block::Flatten,
        Block::Linear {
            out_features: classes,
            relu: false,
        },
    ]);
    blocks
}
