//! Compiling the zoo for several arrays, the cycle model's utilization, and refusals.

use std::time::Instant;

use compiler::arith::{DType, Precision};
use compiler::builder::{ConvGeometry, ModelBuilder, OutType};
use compiler::cycles::{report, schedule};
use compiler::hw::HwConfig;
use compiler::lower::{compile, CompileError};
use compiler::synthetic::{self, random_mac_params};
use compiler::zoo::Arch;
use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;

#[test]
fn zoo_models_compile_for_small_and_large_arrays() {
    let models = [
        synthetic::small_cnn([1, 28, 28], 10, Precision::W8A8, 0).unwrap(),
        synthetic::random_model(Arch::Resnet8, [3, 32, 32], 10, 1.0, Precision::W8A8, 0).unwrap(),
        synthetic::random_model(Arch::Resnet18, [3, 32, 32], 10, 1.0, Precision::W8A8, 0).unwrap(),
    ];
    for model in &models {
        for side in [2, 8, 16] {
            let hw = HwConfig::preset(side, side).unwrap();
            let start = Instant::now();
            let compiled = compile(model, &hw).unwrap_or_else(|e| panic!("{} on {side}x{side}: {e}", model.name));
            let seconds = start.elapsed().as_secs_f64();
            assert!(seconds < 5.0, "{} on {side}x{side} took {seconds:.1} s", model.name);
            let r = report(model, &compiled).unwrap();
            assert!(
                r.total_cycles > 0 && r.utilization > 0.0 && r.utilization <= 1.0,
                "{}: {r:?}",
                model.name
            );
        }
    }
}

#[test]
fn resnet18_compiles_with_small_buffers() {
    let model = synthetic::random_model(Arch::Resnet18, [3, 32, 32], 10, 1.0, Precision::W8A8, 0).unwrap();
    let hw = HwConfig {
        act_buffer_words: 2048,
        weight_buffer_words: 64,
        acc_buffer_words: 64,
        out_buffer_words: 1024,
        param_buffer_entries: 16,
        ..HwConfig::preset(8, 8).unwrap()
    };
    let compiled = compile(&model, &hw).unwrap();
    schedule(&hw, &compiled.program).unwrap();
}

/// One conv layer whose channels fill the array, then a classifier.
fn filling_conv(channels: usize, size: usize) -> compiler::Model {
    let mut rng = ChaCha8Rng::seed_from_u64(1);
    let mut b = ModelBuilder::new("fill", [channels, size, size]);
    let g = ConvGeometry::square(channels, 3, 1);
    let p = random_mac_params(&mut rng, channels, channels * 9, 8, DType::U8);
    b.conv2d(
        "conv",
        g,
        p,
        OutType {
            dtype: DType::U8,
            scale: 0.1,
        },
    );
    b.global_avg_pool(
        "gap",
        compiler::arith::Requant::from_factor(1.0 / (size * size) as f64).unwrap(),
        OutType {
            dtype: DType::U8,
            scale: 0.1,
        },
    );
    let fc = random_mac_params(&mut rng, 10, channels, 8, DType::U8);
    b.linear(
        "fc",
        10,
        fc,
        OutType {
            dtype: DType::signed(16),
            scale: 0.1,
        },
    );
    b.build().unwrap()
}

#[test]
fn conv_layers_that_fill_the_array_use_it_well() {
    let hw = HwConfig::preset(8, 8).unwrap();
    for (channels, size) in [(64, 14), (32, 28), (128, 7)] {
        let model = filling_conv(channels, size);
        let r = report(&model, &compile(&model, &hw).unwrap()).unwrap();
        let conv = &r.layers[0];
        assert!(
            conv.utilization >= 0.85,
            "{channels} channels at {size}x{size}: utilization {:.3}",
            conv.utilization
        );
    }
}

#[test]
fn unsupported_widths_and_tiny_buffers_are_refused_by_name() {
    let model = synthetic::small_cnn([1, 28, 28], 10, Precision::W8A8, 0).unwrap();
    let hw = HwConfig {
        weight_bits: 4,
        ..HwConfig::preset(4, 4).unwrap()
    };
    let err = compile(&model, &hw).unwrap_err();
    assert_eq!(
        err.to_string(),
        "layer 'b0_conv': 8-bit weights but the hardware supports 4 bits (weight_bits in the hardware config)"
    );
    let hw = HwConfig {
        activation_bits: 6,
        ..HwConfig::preset(4, 4).unwrap()
    };
    assert!(compile(&model, &hw)
        .unwrap_err()
        .to_string()
        .contains("layer 'b0_conv': 8-bit input activations"));
    let hw = HwConfig {
        accumulator_bits: 16,
        ..HwConfig::preset(4, 4).unwrap()
    };
    assert!(compile(&model, &hw)
        .unwrap_err()
        .to_string()
        .contains("accumulator_bits"));
    let hw = HwConfig {
        act_buffer_words: 40,
        ..HwConfig::preset(4, 4).unwrap()
    };
    let err = compile(&model, &hw).unwrap_err();
    assert!(
        matches!(err, CompileError::DoesNotFit { ref layer, buffer: "activation", .. } if layer == "b2_conv"),
        "{err}"
    );
    assert!(err.to_string().contains("of the activation buffer"), "{err}");
}

/// Hardware without the add unit runs plain CNNs and refuses residual ones by layer.
#[test]
fn residual_adds_need_the_add_unit() {
    let hw = HwConfig {
        add_unit: false,
        ..HwConfig::preset(4, 4).unwrap()
    };
    let cnn = synthetic::small_cnn([1, 28, 28], 10, Precision::W8A8, 0).unwrap();
    compile(&cnn, &hw).unwrap();
    let resnet = synthetic::tiny_resnet([3, 8, 8], 4, Precision::W8A8, 0).unwrap();
    let add = resnet
        .layers
        .iter()
        .find(|l| matches!(l.op, compiler::ir::Op::Add(_)))
        .expect("a residual add");
    let err = compile(&resnet, &hw).unwrap_err();
    assert_eq!(
        err.to_string(),
        format!(
            "layer '{}': a residual add needs the add unit, which this hardware leaves out \
             (add_unit = false in the hardware config)",
            add.name
        )
    );
    assert!(compile(&resnet, &HwConfig::preset(4, 4).unwrap()).is_ok());
}

#[test]
fn a_few_channel_input_is_packed_as_im2col_when_that_saves_slices() {
    use compiler::lower::layout::InputPacking;
    let model = synthetic::small_cnn([1, 28, 28], 10, Precision::W8A8, 0).unwrap();
    let on = |side: usize| compile(&model, &HwConfig::preset(side, side).unwrap()).unwrap();
    assert!(matches!(
        on(8).layout.input_packing,
        InputPacking::Im2col {
            kernel: [3, 3],
            stride: 1,
            ..
        }
    ));
    // A 1-row array gains nothing: 9 slices either way.
    assert_eq!(on(1).layout.input_packing, InputPacking::Direct);
    let first_conv = report(&model, &on(8)).unwrap().layers[0].utilization;
    assert!(first_conv > 0.25, "first conv utilization {first_conv:.3}"); // 10.6% unpacked
}
