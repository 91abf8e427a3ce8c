//! The randomized regression of the RTL: random layers (kernels 1/3/5, strides,
//! padding, pools, random widths) and residual networks, each on hardware of random
//! shape (1x1..8x8) and random buffer sizes (half of the plain nets on hardware
//! without the add unit, some on the serial controller), simulated in Verilator and compared with the reference
//! interpreter, every logit, and with the cycle model, every cycle. Each case builds
//! its own accelerator (a few seconds; cached afterwards).

use compiler::arith::Precision;
use compiler::cycles::schedule;
use compiler::hw::HwConfig;
use compiler::lower::compile;
use compiler::{synthetic, Model, Reference};
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use sim::harness::{Rtl, RtlOptions};

mod common;
use common::verilator_present;

/// Runs two random images of `model` on the RTL for `hw`.
fn assert_rtl_matches(model: &Model, hw: &HwConfig, case: &str) {
    let compiled = compile(model, hw).unwrap_or_else(|e| panic!("{case}: compile: {e}"));
    let predicted = schedule(hw, &compiled.program).expect("schedulable").total;
    if !verilator_present() {
        return;
    }
    let rtl = Rtl::from_verilog(compiled, &hdl::accelerator_verilog(hw), RtlOptions::default())
        .unwrap_or_else(|e| panic!("{case}: {e}"));
    let reference = Reference::new(model.clone());
    let mut rng = ChaCha8Rng::seed_from_u64(9);
    for i in 0..2 {
        let image: Vec<u8> = (0..model.input.elements()).map(|_| rng.gen()).collect();
        let run = rtl
            .run_image(&image)
            .unwrap_or_else(|e| panic!("{case}, image {i}: {e}"));
        assert_eq!(run.logits, reference.logits(&image), "{case}, image {i}: logits");
        assert_eq!(
            run.cycles, predicted,
            "{case}, image {i}: cycles against the cycle model"
        );
    }
    println!("{case}: {}x{}, {predicted} cycles, bit-exact", hw.rows, hw.cols);
}

#[test]
fn random_layers_on_random_hardware_match_the_reference() {
    for seed in 0..8 {
        let (model, hw) = synthetic::random_layer_case(seed, 16, 8);
        // Half of them on hardware without the add unit (these nets have no residual add),
        // a quarter on the serial controller (queue depth 0).
        let hw = HwConfig {
            add_unit: seed % 2 == 0,
            queue_depth: if seed % 4 == 3 { 0 } else { hw.queue_depth },
            ..hw
        };
        assert_rtl_matches(&model, &hw, &format!("random layer case {seed}"));
    }
}

#[test]
fn residual_networks_on_random_hardware_match_the_reference() {
    let mut rng = ChaCha8Rng::seed_from_u64(4);
    for case in 0..3 {
        let (rows, cols) = (rng.gen_range(1..=8), rng.gen_range(1..=8));
        let precision = Precision {
            weight_bits: rng.gen_range(2..=8),
            activation_bits: rng.gen_range(2..=8),
        };
        let model = synthetic::tiny_resnet([rng.gen_range(1..=4), 8, 8], 4, precision, case).unwrap();
        let hw = HwConfig {
            act_buffer_words: rng.gen_range(64..=2048),
            weight_buffer_words: rng.gen_range(2 * rows..=256),
            acc_buffer_words: rng.gen_range(8..=128),
            out_buffer_words: rng.gen_range(32..=256),
            param_buffer_entries: rng.gen_range(2 * cols..=64),
            queue_depth: if case == 1 {
                0
            } else {
                compiler::hw::DEFAULT_QUEUE_DEPTH
            },
            ..HwConfig::preset(rows, cols).unwrap()
        };
        if compile(&model, &hw).is_err() {
            continue;
        }
        assert_rtl_matches(&model, &hw, &format!("residual case {case}"));
    }
}
