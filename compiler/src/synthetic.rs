//! Integer models with random parameters, for benchmarks and tests that need a
//! realistic network before (or without) training one. Requantizers are chosen so
//! activations use a good part of their range, which makes the arithmetic exercise
//! rounding and saturation the way a trained model does.

use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;

pub use crate::arith::Precision;
use crate::arith::{AddRescale, DType, Requant};
use crate::builder::{ConvGeometry, ModelBuilder, OutType};
use crate::hw::HwConfig;
use crate::ir::{MacParams, Model};
use crate::validate::ModelError;
use crate::zoo::{Arch, Block, ConvSpec};

/// Random MAC parameters for `outputs` channels of `products` products each.
pub fn random_mac_params(
    rng: &mut ChaCha8Rng,
    outputs: usize,
    products: usize,
    weight_bits: u8,
    input: DType,
) -> MacParams {
    let w = DType::signed(weight_bits);
    let weights = (0..outputs * products)
        .map(|_| rng.gen_range(w.min()..=w.max()) as i8)
        .collect();
    let bias_span = (products as i32).saturating_mul(input.max() / 2 + 1).max(1);
    let bias = (0..outputs).map(|_| rng.gen_range(-bias_span..=bias_span)).collect();
    // A typical |acc| is about sqrt(K) * (max|x|/2) * (max|w|/2); map it to ~1/4 of the output range.
    let typical = (products as f64).sqrt() * (input.max_magnitude() as f64 / 2.0) * (w.max_magnitude() as f64 / 2.0);
    let requant = (0..outputs)
        .map(|_| {
            let jitter = rng.gen_range(0.5..1.5);
            Requant::from_factor(jitter * 32.0 / typical.max(1.0)).expect("factor <= 48 is in range")
        })
        .collect();
    let weight_scales = (0..outputs).map(|_| rng.gen_range(0.001f32..0.1)).collect();
    MacParams {
        weight_bits,
        weights,
        weight_scales,
        bias,
        requant,
    }
}

fn relu_out(p: Precision) -> OutType {
    OutType {
        dtype: DType::unsigned(p.activation_bits),
        scale: 0.05,
    }
}

fn out_type(p: Precision, relu: bool) -> OutType {
    let dtype = if relu {
        DType::unsigned(p.activation_bits)
    } else {
        DType::signed(p.activation_bits)
    };
    OutType { dtype, scale: 0.05 }
}

fn logits_out() -> OutType {
    OutType {
        dtype: DType::signed(16),
        scale: 0.01,
    }
}

fn conv(b: &mut ModelBuilder, rng: &mut ChaCha8Rng, name: &str, g: ConvGeometry, p: Precision, out: OutType) {
    let input = b.current().clone();
    let products = input.shape[0] * g.kernel[0] * g.kernel[1];
    let params = random_mac_params(rng, g.out_channels, products, p.weight_bits, input.dtype);
    b.conv2d(name, g, params, out);
}

fn linear(b: &mut ModelBuilder, rng: &mut ChaCha8Rng, name: &str, outputs: usize, p: Precision, out: OutType) {
    let input = b.current().clone();
    let params = random_mac_params(rng, outputs, input.elements(), p.weight_bits, input.dtype);
    b.linear(name, outputs, params, out);
}

fn geometry(c: &ConvSpec) -> ConvGeometry {
    ConvGeometry {
        out_channels: c.out_channels,
        kernel: [c.kernel; 2],
        stride: [c.stride; 2],
        padding: [c.padding; 2],
    }
}

/// A zoo architecture with random parameters; the last linear layer gives 16-bit logits.
pub fn random_model(
    arch: Arch,
    input: [usize; 3],
    classes: usize,
    width: f64,
    p: Precision,
    seed: u64,
) -> Result<Model, ModelError> {
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    let mut b = ModelBuilder::new(&format!("{arch}-random"), input);
    let blocks = arch.blocks(classes, width);
    let last = blocks.len() - 1;
    for (i, block) in blocks.iter().enumerate() {
        let name = |part: &str| format!("b{i}_{part}");
        match block {
            Block::Conv(c) => conv(&mut b, &mut rng, &name("conv"), geometry(c), p, out_type(p, c.relu)),
            Block::MaxPool { kernel, stride } => {
                b.max_pool(&name("maxpool"), *kernel, *stride);
            }
            Block::GlobalAvgPool => {
                let rq = gap_requant(b.current().shape);
                b.global_avg_pool(&name("gap"), rq, relu_out(p));
            }
            Block::Flatten => {
                b.flatten(&name("flatten"));
            }
            Block::Linear { out_features, relu } => {
                let out = if i == last { logits_out() } else { out_type(p, *relu) };
                linear(&mut b, &mut rng, &name("fc"), *out_features, p, out);
            }
            Block::Residual { body, shortcut } => residual(&mut b, &mut rng, &name(""), body, shortcut.as_ref(), p),
        }
    }
    b.build()
}

fn residual(
    b: &mut ModelBuilder,
    rng: &mut ChaCha8Rng,
    prefix: &str,
    body: &[ConvSpec],
    shortcut: Option<&ConvSpec>,
    p: Precision,
) {
    let block_input = b.current_name().to_string();
    let skip = match shortcut {
        Some(c) => {
            conv(
                b,
                rng,
                &format!("{prefix}shortcut"),
                geometry(c),
                p,
                out_type(p, c.relu),
            );
            b.current_name().to_string()
        }
        None => block_input.clone(),
    };
    b.from_tensor(&block_input);
    for (j, c) in body.iter().enumerate() {
        conv(b, rng, &format!("{prefix}conv{j}"), geometry(c), p, out_type(p, c.relu));
    }
    let rescale = AddRescale {
        multiplier_a: rng.gen_range(1..4096),
        multiplier_b: rng.gen_range(1..4096),
        shift: 12,
    };
    b.add(&format!("{prefix}add"), &skip, rescale, relu_out(p));
}

/// The default small CNN (`Arch::SmallCnn`, width 1) with random parameters.
pub fn small_cnn(input: [usize; 3], classes: usize, p: Precision, seed: u64) -> Result<Model, ModelError> {
    random_model(Arch::SmallCnn, input, classes, 1.0, p, seed)
}

/// Requantizer of a global average pool over a `[C, H, W]` tensor at equal scales.
fn gap_requant(shape: [usize; 3]) -> Requant {
    Requant::from_factor(1.0 / (shape[1] * shape[2]) as f64).expect("1/N is in range")
}

/// A small residual network exercising every operator: conv with stride and padding,
/// residual add, average pool, flatten and linear.
pub fn tiny_resnet(input: [usize; 3], classes: usize, p: Precision, seed: u64) -> Result<Model, ModelError> {
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    let mut b = ModelBuilder::new("tiny-resnet-random", input);
    conv(&mut b, &mut rng, "stem", ConvGeometry::square(8, 3, 1), p, relu_out(p));
    conv(
        &mut b,
        &mut rng,
        "block_a",
        ConvGeometry::square(8, 3, 1),
        p,
        relu_out(p),
    );
    conv(
        &mut b,
        &mut rng,
        "block_b",
        ConvGeometry::square(8, 3, 1),
        p,
        OutType {
            dtype: DType::signed(p.activation_bits),
            scale: 0.05,
        },
    );
    let rescale = AddRescale {
        multiplier_a: rng.gen_range(1..4096),
        multiplier_b: rng.gen_range(1..4096),
        shift: 12,
    };
    b.add("residual", "stem", rescale, relu_out(p));
    let down = ConvGeometry {
        out_channels: 16,
        kernel: [3, 3],
        stride: [2, 2],
        padding: [1, 1],
    };
    conv(&mut b, &mut rng, "down", down, p, relu_out(p));
    b.avg_pool("avg", 2, 2, Requant::from_factor(0.25).expect("in range"), relu_out(p));
    b.flatten("flat");
    linear(&mut b, &mut rng, "fc", classes, p, logits_out());
    b.build()
}

/// A random conv layer (kernel 1/3/5, stride 1/2, padding, odd sizes, up to
/// `max_channels` channels, random widths and signedness), maybe a max pool, and a
/// linear classifier, with hardware of random shape (up to `max_side` x `max_side`),
/// random buffer sizes that still fit the smallest tile of every layer and random
/// instruction queue depths: the
/// randomized regression of the functional model and of the RTL.
pub fn random_layer_case(seed: u64, max_channels: usize, max_side: usize) -> (Model, HwConfig) {
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    let k = [1, 3, 5][rng.gen_range(0..3)];
    let stride = rng.gen_range(1..=2);
    let padding = rng.gen_range(0..=k / 2);
    let input = [
        rng.gen_range(1..=max_channels),
        rng.gen_range(k..=13),
        rng.gen_range(k..=13),
    ];
    let out_channels = rng.gen_range(1..=max_channels);
    let (wb, ab) = (rng.gen_range(2..=8), rng.gen_range(2..=8));
    let mut b = ModelBuilder::new("random-layer", input);
    let g = ConvGeometry {
        out_channels,
        kernel: [k, k],
        stride: [stride, stride],
        padding: [padding, padding],
    };
    let p = random_mac_params(&mut rng, out_channels, input[0] * k * k, wb, DType::U8);
    let signed = rng.gen_bool(0.3);
    let out = OutType {
        dtype: DType { bits: ab, signed },
        scale: 0.1,
    };
    b.conv2d("conv", g, p, out);
    if rng.gen_bool(0.5) && b.current().shape[1] >= 2 && b.current().shape[2] >= 2 {
        b.max_pool("pool", 2, 2);
    }
    b.flatten("flat");
    let n = b.current().elements();
    let fc = random_mac_params(&mut rng, 3, n, wb, DType { bits: ab, signed });
    b.linear("fc", 3, fc, logits_out());
    let model = b.build().expect("valid random model");
    let (rows, cols) = (rng.gen_range(1..=max_side), rng.gen_range(1..=max_side));
    let base = HwConfig::preset(rows, cols).expect("preset");
    // Lower bounds: the smallest tile of every layer must fit half of each buffer.
    let min_act = 2 * k * k * input[0].div_ceil(rows);
    let min_out = 2 * out_channels.div_ceil(rows).max(6usize.div_ceil(rows));
    let hw = HwConfig {
        act_buffer_words: rng.gen_range(min_act..=min_act + 4096),
        weight_buffer_words: rng.gen_range(2 * rows..=512),
        acc_buffer_words: rng.gen_range(2..=256),
        out_buffer_words: rng.gen_range(min_out..=min_out + 512),
        param_buffer_entries: rng.gen_range(2 * cols..=128),
        queue_depth: [1, 2, 4, 8][rng.gen_range(0..4)],
        fetch_depth: [1, 2, 4, 8][rng.gen_range(0..4)],
        ..base
    };
    (model, hw)
}
