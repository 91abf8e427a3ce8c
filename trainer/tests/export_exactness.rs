//! Fake quantization (exact arithmetic) against the integer reference interpreter on
//! the exported model: every logit must be equal.

use compiler::arith::Precision;
use compiler::zoo::Arch;
use compiler::{Backend, Reference};
use tch::nn::{self, ModuleT};
use tch::{Device, Kind, Tensor};
use trainer::export::export;
use trainer::float_net::FloatNet;
use trainer::quant_net::{Arithmetic, Mode, QuantNet};

fn pixels(n: i64, shape: [usize; 3], seed: i64) -> Tensor {
    tch::manual_seed(seed);
    Tensor::randint(
        256,
        [n, shape[0] as i64, shape[1] as i64, shape[2] as i64],
        (Kind::Float, Device::Cpu),
    )
}

/// Build a random float net, run a few training-mode passes so batch-norm statistics
/// are not trivial, fold, calibrate, export and compare.
fn check(arch: Arch, shape: [usize; 3], width: f64, precision: Precision) {
    tch::manual_seed(1);
    let vs = nn::VarStore::new(Device::Cpu);
    let float = FloatNet::new(&vs.root(), &arch.blocks(10, width), shape);
    tch::no_grad(|| {
        for i in 0..3 {
            let _ = float.forward_t(&pixels(16, shape, i), true);
        }
    });
    let qvs = nn::VarStore::new(Device::Cpu);
    let mut net = QuantNet::from_float(&qvs.root(), &float, precision);
    let calibrate = Mode {
        calibrating: true,
        arithmetic: Arithmetic::Fast,
    };
    for i in 0..4 {
        let _ = tch::no_grad(|| net.forward(&pixels(32, shape, 10 + i), calibrate));
    }
    let model = export(&net, "test", shape).expect("export validates");
    let batch = pixels(24, shape, 99);
    let exact = Mode {
        calibrating: false,
        arithmetic: Arithmetic::Exact,
    };
    let codes = tch::no_grad(|| net.forward_codes(&batch, exact));
    let fake: Vec<Vec<f64>> = Vec::try_from(codes.values.to_kind(Kind::Double)).unwrap();
    let bytes: Vec<u8> = Vec::<f32>::try_from(batch.flatten(0, -1))
        .unwrap()
        .iter()
        .map(|&v| v as u8)
        .collect();
    let logits = Reference::new(model).infer(&bytes).unwrap().logits;
    for (i, (f, r)) in fake.iter().zip(&logits).enumerate() {
        let f: Vec<i32> = f.iter().map(|&v| v as i32).collect();
        assert_eq!(&f, r, "{arch} image {i}");
    }
    // The logits use a good part of their range (the comparison is not vacuous).
    assert!(
        logits.iter().flatten().any(|&v| v.abs() > 100),
        "{arch}: logits are all tiny"
    );
}

#[test]
fn small_cnn_w8a8_exports_exactly() {
    check(Arch::SmallCnn, [1, 28, 28], 0.5, Precision::W8A8);
}

#[test]
fn small_cnn_w4a4_exports_exactly() {
    check(
        Arch::SmallCnn,
        [1, 28, 28],
        0.5,
        Precision {
            weight_bits: 4,
            activation_bits: 4,
        },
    );
}

#[test]
fn resnet8_exports_exactly() {
    check(
        Arch::Resnet8,
        [3, 16, 16],
        0.5,
        Precision {
            weight_bits: 6,
            activation_bits: 8,
        },
    );
}

#[test]
fn cnv_w2a3_exports_exactly() {
    check(
        Arch::Cnv,
        [1, 12, 12],
        0.125,
        Precision {
            weight_bits: 2,
            activation_bits: 3,
        },
    );
}
