//! The reference interpreter against an independent evaluation written straight from
//! docs/integer-semantics.md: direct nested loops over the definitions, exact rational
//! rounding in i128, no im2col and no use of `compiler::arith`.

use compiler::arith::{AddRescale, DType, Requant};
use compiler::builder::{ConvGeometry, ModelBuilder, OutType};
use compiler::ir::{Layer, MacParams, Model, Op, TensorType, INPUT_NAME};
use compiler::synthetic::{self, random_mac_params, Precision};
use compiler::{Backend, Reference};
use proptest::prelude::*;
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;

/// floor(p / 2^s + 1/2), exactly (docs §3).
fn round_half_up(p: i128, s: u8) -> i128 {
    (2 * p + (1i128 << s)).div_euclid(2i128 << s)
}

fn saturate(v: i128, t: DType) -> i32 {
    let (lo, hi) = if t.signed {
        (-(1i128 << (t.bits - 1)), (1i128 << (t.bits - 1)) - 1)
    } else {
        (0, (1i128 << t.bits) - 1)
    };
    v.clamp(lo, hi) as i32
}

fn requant(v: i128, rq: Requant, t: DType) -> i32 {
    saturate(round_half_up(v * rq.multiplier as i128, rq.shift), t)
}

fn at(x: &[i32], shape: [usize; 3], c: usize, y: isize, xx: isize) -> i128 {
    if y < 0 || xx < 0 || y as usize >= shape[1] || xx as usize >= shape[2] {
        0
    } else {
        x[(c * shape[1] + y as usize) * shape[2] + xx as usize] as i128
    }
}

fn naive_layer(layer: &Layer, ins: &[(&Vec<i32>, &TensorType)]) -> Vec<i32> {
    let (x, xt) = ins[0];
    let out = &layer.output;
    let [oc, oh, ow] = out.shape;
    let mut y = Vec::new();
    match &layer.op {
        Op::Conv2d(c) => {
            let p = &c.params;
            for o in 0..oc {
                for oy in 0..oh {
                    for ox in 0..ow {
                        let mut acc = p.bias[o] as i128;
                        for i in 0..c.in_channels {
                            for ky in 0..c.kernel[0] {
                                for kx in 0..c.kernel[1] {
                                    let iy = (oy * c.stride[0] + ky) as isize - c.padding[0] as isize;
                                    let ix = (ox * c.stride[1] + kx) as isize - c.padding[1] as isize;
                                    let w = p.weights[((o * c.in_channels + i) * c.kernel[0] + ky) * c.kernel[1] + kx];
                                    acc += at(x, xt.shape, i, iy, ix) * w as i128;
                                }
                            }
                        }
                        y.push(requant(acc, p.requant[o], out.dtype));
                    }
                }
            }
        }
        Op::Linear(l) => {
            let p = &l.params;
            for o in 0..l.out_features {
                let acc: i128 = p.bias[o] as i128
                    + (0..l.in_features)
                        .map(|i| x[i] as i128 * p.weights[o * l.in_features + i] as i128)
                        .sum::<i128>();
                y.push(requant(acc, p.requant[o], out.dtype));
            }
        }
        Op::MaxPool(pool) | Op::AvgPool { pool, .. } => {
            for c in 0..oc {
                for oy in 0..oh {
                    for ox in 0..ow {
                        let vals: Vec<i128> = (0..pool.kernel[0])
                            .flat_map(|ky| (0..pool.kernel[1]).map(move |kx| (ky, kx)))
                            .map(|(ky, kx)| {
                                at(
                                    x,
                                    xt.shape,
                                    c,
                                    (oy * pool.stride[0] + ky) as isize,
                                    (ox * pool.stride[1] + kx) as isize,
                                )
                            })
                            .collect();
                        y.push(match &layer.op {
                            Op::AvgPool { requant: rq, .. } => requant(vals.iter().sum(), *rq, out.dtype),
                            _ => *vals.iter().max().unwrap() as i32,
                        });
                    }
                }
            }
        }
        Op::GlobalAvgPool { requant: rq } => {
            let hw = xt.shape[1] * xt.shape[2];
            for c in 0..oc {
                y.push(requant(
                    x[c * hw..(c + 1) * hw].iter().map(|&v| v as i128).sum(),
                    *rq,
                    out.dtype,
                ));
            }
        }
        Op::Add(r) => {
            let b = ins[1].0;
            for i in 0..x.len() {
                let sum = x[i] as i128 * r.multiplier_a as i128 + b[i] as i128 * r.multiplier_b as i128;
                y.push(saturate(round_half_up(sum, r.shift), out.dtype));
            }
        }
        Op::Flatten => y = x.clone(),
    }
    y
}

fn naive_logits(model: &Model, image: &[u8]) -> Vec<i32> {
    let mut values: Vec<(String, Vec<i32>, TensorType)> = vec![(
        INPUT_NAME.into(),
        image.iter().map(|&v| v as i32).collect(),
        model.input.clone(),
    )];
    for layer in &model.layers {
        let ins: Vec<(&Vec<i32>, &TensorType)> = layer
            .inputs
            .iter()
            .map(|n| {
                values
                    .iter()
                    .find(|(name, _, _)| name == n)
                    .map(|(_, v, t)| (v, t))
                    .unwrap()
            })
            .collect();
        let y = naive_layer(layer, &ins);
        values.push((layer.name.clone(), y, layer.output.clone()));
    }
    values.pop().unwrap().1
}

fn random_images(rng: &mut ChaCha8Rng, model: &Model, n: usize) -> Vec<u8> {
    let len = model.input.elements() * n;
    // Mix uniform noise with saturated pixels so the extremes 0 and 255 occur often.
    (0..len)
        .map(|_| match rng.gen_range(0..4) {
            0 => 0,
            1 => 255,
            _ => rng.gen(),
        })
        .collect()
}

fn assert_reference_matches_naive(model: &Model, seed: u64, n: usize) {
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    let images = random_images(&mut rng, model, n);
    let reference = Reference::new(model.clone());
    let got = reference.infer(&images).unwrap().logits;
    for (i, image) in images.chunks_exact(model.input.elements()).enumerate() {
        assert_eq!(got[i], naive_logits(model, image), "image {i}");
    }
}

#[test]
fn small_cnn_matches_naive_evaluation() {
    let model = synthetic::small_cnn([1, 28, 28], 10, Precision::W8A8, 3).unwrap();
    assert_reference_matches_naive(&model, 1, 4);
}

#[test]
fn tiny_resnet_matches_naive_evaluation_at_low_precision() {
    for (wb, ab) in [(8, 8), (4, 4), (2, 3), (5, 7)] {
        let model = synthetic::tiny_resnet(
            [3, 12, 12],
            5,
            Precision {
                weight_bits: wb,
                activation_bits: ab,
            },
            wb as u64,
        )
        .unwrap();
        assert_reference_matches_naive(&model, 2, 3);
    }
}

/// A random conv stack with random geometry and extreme requantizers: u8 input, a
/// conv with signed output (so the second conv multiplies signed by signed, -128 included).
fn random_conv_model(
    seed: u64,
    g1: ConvGeometry,
    g2: ConvGeometry,
    bits: (u8, u8),
    input: [usize; 3],
) -> Option<Model> {
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    let mut b = ModelBuilder::new("prop", input);
    let extreme = |rng: &mut ChaCha8Rng, p: &mut MacParams| {
        for rq in &mut p.requant {
            match rng.gen_range(0..6) {
                0 => {
                    *rq = Requant {
                        multiplier: 0xFFFF,
                        shift: 47,
                    }
                }
                1 => {
                    *rq = Requant {
                        multiplier: 0xFFFF,
                        shift: 0,
                    }
                }
                2 => {
                    *rq = Requant {
                        multiplier: 0,
                        shift: 5,
                    }
                }
                3 => {
                    *rq = Requant {
                        multiplier: rng.gen_range(1..0x10000),
                        shift: rng.gen_range(0..=47),
                    }
                }
                _ => {}
            }
        }
        for w in p.weights.iter_mut().filter(|_| rng.gen_bool(0.2)) {
            *w = -(1i16 << (p.weight_bits - 1)) as i8; // the most negative weight
        }
    };
    let k1 = input[0] * g1.kernel[0] * g1.kernel[1];
    let mut p1 = random_mac_params(&mut rng, g1.out_channels, k1, bits.0, DType::U8);
    extreme(&mut rng, &mut p1);
    b.conv2d(
        "c1",
        g1,
        p1,
        OutType {
            dtype: DType::signed(bits.1),
            scale: 0.1,
        },
    );
    let k2 = g1.out_channels * g2.kernel[0] * g2.kernel[1];
    let mut p2 = random_mac_params(&mut rng, g2.out_channels, k2, bits.0, DType::signed(bits.1));
    extreme(&mut rng, &mut p2);
    b.conv2d(
        "c2",
        g2,
        p2,
        OutType {
            dtype: DType::unsigned(bits.1),
            scale: 0.1,
        },
    );
    b.flatten("flat");
    let k3 = b.current().elements();
    let p3 = random_mac_params(&mut rng, 3, k3, bits.0, DType::unsigned(bits.1));
    b.linear(
        "fc",
        3,
        p3,
        OutType {
            dtype: DType::signed(16),
            scale: 0.1,
        },
    );
    b.build().ok()
}

fn geometry() -> impl Strategy<Value = ConvGeometry> {
    (1usize..5, 1usize..4, 1usize..4, 1usize..3, 0usize..2).prop_map(|(out, kh, kw, s, p)| ConvGeometry {
        out_channels: out,
        kernel: [kh, kw],
        stride: [s, s.max(1)],
        padding: [p, p],
    })
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(64))]
    /// Random shapes, bit widths, -128 weights and extreme requantizers (docs §2-§4).
    #[test]
    fn random_conv_stacks_match_naive(seed in any::<u64>(), g1 in geometry(), g2 in geometry(),
                                      wb in 2u8..=8, ab in 2u8..=8, c in 1usize..4, h in 3usize..10, w in 3usize..10) {
        let model = random_conv_model(seed, g1, g2, (wb, ab), [c, h, w]);
        prop_assume!(model.is_some());
        assert_reference_matches_naive(&model.unwrap(), seed, 2);
    }
}

/// Hand-written MAC parameters with identity requantization and unit scales.
fn identity_params(weight_bits: u8, weights: Vec<i8>, bias: Vec<i32>) -> MacParams {
    let outputs = bias.len();
    MacParams {
        weight_bits,
        weights,
        weight_scales: vec![1.0; outputs],
        bias,
        requant: vec![Requant::IDENTITY; outputs],
    }
}

/// A linear layer to two 16-bit logits, the last layer of the hand-built models.
fn two_logits(b: &mut ModelBuilder, weight_bits: u8, weights: Vec<i8>, bias: Vec<i32>) {
    let out = OutType {
        dtype: DType::signed(16),
        scale: 1.0,
    };
    b.linear("fc", 2, identity_params(weight_bits, weights, bias), out);
}

/// A model small enough to compute by hand.
#[test]
fn hand_built_model_has_known_outputs() {
    // Input 1x2x2 = [[10, 20], [30, 255]].
    let mut b = ModelBuilder::new("hand", [1, 2, 2]);
    // conv 1x1, 2 output channels: ch0 = round((3x + 1) / 2) into u8, ch1 = (-128x) * 1 into s8 (saturates).
    let params = MacParams {
        weight_bits: 8,
        weights: vec![3, -128],
        weight_scales: vec![0.1, 0.1],
        bias: vec![1, 0],
        requant: vec![
            Requant {
                multiplier: 1,
                shift: 1,
            },
            Requant::IDENTITY,
        ],
    };
    let g = ConvGeometry {
        out_channels: 2,
        kernel: [1, 1],
        stride: [1, 1],
        padding: [0, 0],
    };
    b.conv2d(
        "conv",
        g,
        params,
        OutType {
            dtype: DType::S8,
            scale: 0.1,
        },
    );
    b.max_pool("pool", 2, 2);
    b.flatten("flat");
    two_logits(&mut b, 2, vec![1, 0, -2, 1], vec![0, 5]);
    let model = b.build().unwrap();
    let reference = Reference::new(model);
    let trace = reference.trace(&[10, 20, 30, 255]);
    // ch0: (31>>1)=15 -> 16 (15.5 rounds up), (61/2)=30.5 -> 31, 91/2=45.5 -> 46, 766/2=383 -> 127 (saturated s8)
    // ch1: -1280, -2560, -3840, -32640 all saturate to -128
    assert_eq!(trace[1], vec![16, 31, 46, 127, -128, -128, -128, -128]);
    assert_eq!(trace[2], vec![127, -128]);
    // fc: [127*1 + -128*0, 127*-2 + -128*1 + 5] = [127, -377]
    assert_eq!(reference.logits(&[10, 20, 30, 255]), vec![127, -377]);
}

#[test]
fn residual_add_and_global_pool_by_hand() {
    let mut b = ModelBuilder::new("hand-add", [1, 1, 2]);
    let id = |w: i8| identity_params(8, vec![w], vec![0]);
    b.conv2d(
        "neg",
        ConvGeometry {
            out_channels: 1,
            kernel: [1, 1],
            stride: [1, 1],
            padding: [0, 0],
        },
        id(-1),
        OutType {
            dtype: DType::S8,
            scale: 1.0,
        },
    );
    // a = -x (s8), b = x (u8): a*3 + b*4 = x, then >> 1 with rounding: x=5 -> 3, x=200 -> 100.
    b.add(
        "sum",
        INPUT_NAME,
        AddRescale {
            multiplier_a: 3,
            multiplier_b: 4,
            shift: 1,
        },
        OutType {
            dtype: DType::U8,
            scale: 1.0,
        },
    );
    b.global_avg_pool(
        "gap",
        Requant {
            multiplier: 1,
            shift: 1,
        },
        OutType {
            dtype: DType::U8,
            scale: 1.0,
        },
    );
    two_logits(&mut b, 8, vec![1, -1], vec![0, 0]);
    let reference = Reference::new(b.build().unwrap());
    let trace = reference.trace(&[5, 200]);
    // -x saturates to -128 for x=200: a*3 + b*4 = -384 + 800 = 416 -> 208.
    assert_eq!(trace[1], vec![-5, -128]);
    assert_eq!(trace[2], vec![3, 208]);
    assert_eq!(trace[3], vec![106]); // (3 + 208 + 1) >> 1 = 106
    assert_eq!(trace[4], vec![106, -106]);
}

#[test]
fn ragged_batches_are_refused() {
    let model = synthetic::tiny_resnet([1, 8, 8], 4, Precision::W8A8, 0).unwrap();
    let err = Reference::new(model).infer(&[0u8; 65]).unwrap_err();
    assert_eq!(
        err.to_string(),
        "image batch of 65 bytes is not a whole number of 64-byte images"
    );
}

#[test]
fn zoo_architectures_match_naive_evaluation() {
    use compiler::zoo::Arch;
    for arch in [Arch::Resnet8, Arch::Cnv] {
        let model = synthetic::random_model(
            arch,
            [3, 12, 12],
            10,
            0.25,
            Precision {
                weight_bits: 6,
                activation_bits: 7,
            },
            9,
        )
        .unwrap();
        assert_reference_matches_naive(&model, 4, 2);
    }
}
