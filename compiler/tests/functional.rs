//! The functional model executes compiled programs exactly like the reference
//! interpreter, for random layers, random arrays and random buffer sizes.

use compiler::arith::DType;
use compiler::arith::Precision;
use compiler::builder::{ConvGeometry, ModelBuilder, OutType};
use compiler::functional::run_image;
use compiler::hw::HwConfig;
use compiler::lower::compile;
use compiler::synthetic::{self, random_mac_params};
use compiler::zoo::Arch;
use compiler::{Model, Reference};
use proptest::prelude::*;
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;

fn images(model: &Model, n: usize, seed: u64) -> Vec<Vec<u8>> {
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    (0..n)
        .map(|_| (0..model.input.elements()).map(|_| rng.gen()).collect())
        .collect()
}

fn assert_functional_matches(model: &Model, hw: &HwConfig, n: usize) {
    let compiled = compile(model, hw).unwrap_or_else(|e| panic!("compile on {}x{}: {e}", hw.rows, hw.cols));
    let reference = Reference::new(model.clone());
    for (i, image) in images(model, n, 7).iter().enumerate() {
        let got = run_image(&compiled, image).unwrap();
        assert_eq!(
            got,
            reference.logits(image),
            "image {i} on {}x{} hw {hw:?}",
            hw.rows,
            hw.cols
        );
    }
}

#[test]
fn small_cnn_matches_reference_on_several_arrays() {
    let model = synthetic::small_cnn([1, 28, 28], 10, Precision::W8A8, 1).unwrap();
    for (r, c) in [(2, 2), (8, 8), (16, 16), (3, 5), (1, 1)] {
        assert_functional_matches(&model, &HwConfig::preset(r, c).unwrap(), 2);
    }
}

#[test]
fn residual_nets_match_reference_with_small_buffers() {
    let model = synthetic::random_model(
        Arch::Resnet8,
        [3, 16, 16],
        10,
        0.5,
        Precision {
            weight_bits: 6,
            activation_bits: 7,
        },
        3,
    )
    .unwrap();
    let hw = HwConfig {
        act_buffer_words: 160,
        weight_buffer_words: 64,
        acc_buffer_words: 24,
        out_buffer_words: 40,
        param_buffer_entries: 16,
        ..HwConfig::preset(4, 4).unwrap()
    };
    assert_functional_matches(&model, &hw, 2);
    let tiny = synthetic::tiny_resnet([2, 9, 9], 5, Precision::W8A8, 4).unwrap();
    assert_functional_matches(
        &tiny,
        &HwConfig {
            act_buffer_words: 64,
            acc_buffer_words: 8,
            out_buffer_words: 16,
            ..HwConfig::preset(3, 2).unwrap()
        },
        2,
    );
}

/// A random conv layer (kernel 1/3/5, stride 1/2, padding, odd sizes) followed by a
/// linear classifier, compiled for a random array and random buffers.
fn random_case(seed: u64) -> (Model, HwConfig) {
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    let k = [1, 3, 5][rng.gen_range(0..3)];
    let stride = rng.gen_range(1..=2);
    let padding = rng.gen_range(0..=k / 2);
    let input = [rng.gen_range(1..=64), rng.gen_range(k..=13), rng.gen_range(k..=13)];
    let out_channels = rng.gen_range(1..=64);
    let (wb, ab) = (rng.gen_range(2..=8), rng.gen_range(2..=8));
    let mut b = ModelBuilder::new("prop", input);
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
    b.linear(
        "fc",
        3,
        fc,
        OutType {
            dtype: DType::signed(16),
            scale: 0.1,
        },
    );
    let model = b.build().expect("valid random model");
    let (rows, cols) = (rng.gen_range(1..=16), rng.gen_range(1..=16));
    let base = HwConfig::preset(rows, cols).unwrap();
    // Lower bounds: the smallest tile of every layer must fit half of each buffer.
    let min_act = 2 * k * k * input[0].div_ceil(rows);
    let min_out = 2 * out_channels.div_ceil(rows).max(6usize.div_ceil(rows));
    let hw = HwConfig {
        act_buffer_words: rng.gen_range(min_act..=min_act + 4096),
        weight_buffer_words: rng.gen_range(2 * rows..=512),
        acc_buffer_words: rng.gen_range(2..=256),
        out_buffer_words: rng.gen_range(min_out..=min_out + 512),
        param_buffer_entries: rng.gen_range(2 * cols..=128),
        ..base
    };
    (model, hw)
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(48))]
    #[test]
    fn random_layers_and_hardware_match_reference(seed in any::<u64>()) {
        let (model, hw) = random_case(seed);
        assert_functional_matches(&model, &hw, 1);
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(24))]
    /// Residual blocks, average pooling and flatten on random arrays and buffers.
    #[test]
    fn residual_models_on_random_hardware_match_reference(seed in any::<u64>(), rows in 1usize..=8, cols in 1usize..=8) {
        let mut rng = ChaCha8Rng::seed_from_u64(seed);
        let model = synthetic::tiny_resnet([rng.gen_range(1..=4), 8, 8], 4, Precision { weight_bits: rng.gen_range(2..=8), activation_bits: rng.gen_range(2..=8) }, seed).unwrap();
        let hw = HwConfig {
            act_buffer_words: rng.gen_range(64..=2048),
            weight_buffer_words: rng.gen_range(2 * rows..=256),
            acc_buffer_words: rng.gen_range(2..=128),
            out_buffer_words: rng.gen_range(32..=256),
            param_buffer_entries: rng.gen_range(2 * cols..=64),
            ..HwConfig::preset(rows, cols).unwrap()
        };
        prop_assume!(compile(&model, &hw).is_ok());
        assert_functional_matches(&model, &hw, 1);
    }
}

#[test]
fn the_functional_backend_takes_images_as_the_reference_does() {
    use compiler::Backend;
    let model = synthetic::small_cnn([1, 28, 28], 10, Precision::W8A8, 2).unwrap();
    let backend = compiler::functional::Functional::new(compile(&model, &HwConfig::preset(8, 8).unwrap()).unwrap());
    let batch: Vec<u8> = images(&model, 3, 1).concat();
    assert_eq!(backend.input_len(), 784);
    assert_eq!(
        backend.infer(&batch).unwrap().logits,
        Reference::new(model).infer(&batch).unwrap().logits
    );
}
