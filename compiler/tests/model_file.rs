//! The model file: round trip, corruption, versioning and validation errors.

use compiler::arith::{DType, Requant};
use compiler::builder::{ConvGeometry, ModelBuilder, OutType};
use compiler::format::{from_bytes, load, save, to_bytes};
use compiler::ir::{MacParams, Op};
use compiler::synthetic::{self, Precision};
use compiler::{Model, ModelError};

fn tiny_model() -> Model {
    synthetic::tiny_resnet(
        [1, 8, 8],
        3,
        Precision {
            weight_bits: 4,
            activation_bits: 6,
        },
        7,
    )
    .unwrap()
}

#[test]
fn save_then_load_round_trips() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("m.safetensors");
    let model = synthetic::small_cnn([1, 28, 28], 10, Precision::W8A8, 1).unwrap();
    save(&model, &path).unwrap();
    assert_eq!(load(&path).unwrap(), model);
    // No temp files are left beside the model.
    assert_eq!(std::fs::read_dir(dir.path()).unwrap().count(), 1);
}

#[test]
fn every_flipped_byte_is_refused() {
    let bytes = to_bytes(&tiny_model()).unwrap();
    for pos in 0..bytes.len() {
        for mask in [0xFFu8, 0x01] {
            let mut bad = bytes.clone();
            bad[pos] ^= mask;
            assert!(
                from_bytes(&bad).is_err(),
                "flipping byte {pos} with {mask:#x} was not detected"
            );
        }
    }
}

#[test]
fn truncated_files_are_refused() {
    let bytes = to_bytes(&tiny_model()).unwrap();
    for len in [0, 4, 8, 100, bytes.len() - 1] {
        let err = from_bytes(&bytes[..len]).unwrap_err();
        assert!(err.to_string().contains("safetensors"), "{err}");
    }
}

#[test]
fn wrong_version_is_refused_by_name() {
    let mut model = tiny_model();
    model.format_version = 99;
    let err = from_bytes(&to_bytes(&model).unwrap()).unwrap_err();
    assert_eq!(err, ModelError::Version { found: 99, expected: 1 });
    assert_eq!(
        err.to_string(),
        "unsupported format version 99 (this build reads version 1)"
    );
}

#[test]
fn weight_outside_its_bit_width_is_refused_naming_layer_and_field() {
    let mut model = tiny_model();
    let params = model.layers[1].op.mac_params_mut().unwrap();
    params.weights[5] = 8; // 4-bit weights span -8..=7
    let err = from_bytes(&to_bytes(&model).unwrap()).unwrap_err();
    assert_eq!(
        err.to_string(),
        "layer 'block_a': field 'weights': value 8 at index 5 outside the 4-bit signed range [-8, 7]"
    );
}

#[test]
fn errors_name_the_file() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("broken.safetensors");
    std::fs::write(&path, b"not a model").unwrap();
    let msg = load(&path).unwrap_err().to_string();
    assert!(msg.starts_with(&path.display().to_string()), "{msg}");
    assert!(!msg.contains('\n'), "one-line message expected: {msg}");
    let missing = load(&dir.path().join("nope")).unwrap_err().to_string();
    assert!(missing.contains("nope") && missing.contains("cannot read"), "{missing}");
}

#[test]
fn save_refuses_invalid_models_and_leaves_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("m.safetensors");
    let mut model = tiny_model();
    model.layers[0].op.mac_params_mut().unwrap().requant[0] = Requant {
        multiplier: 1 << 16,
        shift: 3,
    };
    let err = save(&model, &path).unwrap_err().to_string();
    assert!(err.contains("layer 'stem': field 'requant': channel 0"), "{err}");
    assert!(!path.exists());
}

fn conv_params(outputs: usize, products: usize, bias: i32) -> MacParams {
    MacParams {
        weight_bits: 8,
        weights: vec![1; outputs * products],
        weight_scales: vec![0.01; outputs],
        bias: vec![bias; outputs],
        requant: vec![Requant::IDENTITY; outputs],
    }
}

fn one_conv_model(bias: i32, geometry: ConvGeometry) -> Result<Model, ModelError> {
    let mut b = ModelBuilder::new("t", [1, 4, 4]);
    let products = geometry.kernel[0] * geometry.kernel[1];
    let out = OutType {
        dtype: DType::S8,
        scale: 0.1,
    };
    b.conv2d(
        "conv",
        geometry,
        conv_params(geometry.out_channels, products, bias),
        out,
    );
    b.flatten("flat");
    let lin = conv_params(2, b.current().elements(), 0);
    b.linear(
        "fc",
        2,
        lin,
        OutType {
            dtype: DType::signed(16),
            scale: 0.1,
        },
    );
    b.build()
}

#[test]
fn accumulator_overflow_risk_is_refused() {
    let g = ConvGeometry::square(1, 3, 1);
    let edge = i32::MAX - 9 * 255 * 128; // docs §7 example 5
    assert!(one_conv_model(edge, g).is_ok());
    let err = one_conv_model(edge + 1, g).unwrap_err().to_string();
    assert!(err.starts_with("layer 'conv': field 'bias': channel 0"), "{err}");
}

#[test]
fn impossible_geometry_is_refused() {
    let g = ConvGeometry {
        out_channels: 1,
        kernel: [7, 7],
        stride: [1, 1],
        padding: [0, 0],
    };
    let err = one_conv_model(0, g).unwrap_err().to_string();
    assert!(err.contains("layer 'conv': field 'kernel'"), "{err}");
}

#[test]
fn shape_chaining_is_checked() {
    let mut model = tiny_model();
    let flat = model.layers.iter_mut().find(|l| matches!(l.op, Op::Flatten)).unwrap();
    flat.output.shape[0] += 1;
    let err = from_bytes(&to_bytes(&model).unwrap()).unwrap_err().to_string();
    assert!(
        err.contains("layer 'flat': field 'output.shape': expected [64, 1, 1]"),
        "{err}"
    );
}

#[test]
fn dangling_inputs_and_unused_layers_are_refused() {
    let mut model = tiny_model();
    model.layers[3].inputs[1] = "nowhere".into();
    let err = from_bytes(&to_bytes(&model).unwrap()).unwrap_err().to_string();
    assert!(err.contains("layer 'residual': field 'inputs': 'nowhere'"), "{err}");

    let mut model = tiny_model();
    model.layers[2].inputs[0] = "stem".into(); // block_b skips block_a, whose output is now unread
    let err = from_bytes(&to_bytes(&model).unwrap()).unwrap_err().to_string();
    assert!(err.contains("never used"), "{err}");
}
