//! The functional model executes compiled programs exactly like the reference
//! interpreter, for random layers, random arrays and random buffer sizes.

use compiler::arith::Precision;
use compiler::functional::run_image;
use compiler::hw::HwConfig;
use compiler::lower::compile;
use compiler::synthetic;
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

proptest! {
    #![proptest_config(ProptestConfig::with_cases(48))]
    #[test]
    fn random_layers_and_hardware_match_reference(seed in any::<u64>()) {
        let (model, hw) = synthetic::random_layer_case(seed, 64, 16);
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
