//! Fuzzing the model loader: arbitrary bytes, and valid files whose structure is
//! mutated to extreme values (with a correct checksum, so validation itself is
//! exercised). Nothing may panic; whatever validates must also run.

use compiler::format::{from_bytes, to_bytes};
use compiler::ir::{Model, Op};
use compiler::synthetic::{self, Precision};
use compiler::{Backend, Reference};
use proptest::prelude::*;

const EXTREMES: [usize; 8] = [0, 1, 2, 3, 255, 1 << 31, usize::MAX / 2, usize::MAX];

fn base_model() -> Model {
    synthetic::tiny_resnet(
        [2, 6, 6],
        3,
        Precision {
            weight_bits: 3,
            activation_bits: 5,
        },
        11,
    )
    .unwrap()
}

/// Overwrite one structural field of one layer with `v`.
fn mutate(model: &mut Model, layer: usize, field: usize, v: usize) {
    let count = model.layers.len();
    let layer = &mut model.layers[layer % count];
    let small = v.min(255) as u8;
    match (field % 8, &mut layer.op) {
        (0, _) => layer.output.shape[v % 3] = v,
        (1, _) => layer.output.dtype.bits = small,
        (2, Op::Conv2d(c)) => c.kernel[v % 2] = v,
        (3, Op::Conv2d(c)) => c.stride[v % 2] = v,
        (4, Op::Conv2d(c)) => c.padding[v % 2] = v,
        (5, Op::Conv2d(c)) => c.in_channels = v,
        (5, Op::Linear(l)) => l.in_features = v,
        (6, op) => {
            if let Some(p) = op.mac_params_mut() {
                p.weight_bits = small;
            }
        }
        (7, Op::AvgPool { pool, .. }) => pool.kernel[v % 2] = v,
        _ => model.input.shape[v % 3] = v,
    }
}

fn run_if_valid(bytes: &[u8]) {
    if let Ok(model) = from_bytes(bytes) {
        let image = vec![255u8; model.input.elements()];
        Reference::new(model).infer(&image).unwrap();
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(512))]
    #[test]
    fn arbitrary_bytes_never_panic(bytes in proptest::collection::vec(any::<u8>(), 0..512)) {
        let _ = from_bytes(&bytes);
    }

    #[test]
    fn extreme_structure_never_panics(layer in 0usize..16, field in 0usize..8, pick in 0usize..8, other in any::<usize>()) {
        let mut model = base_model();
        let v = if pick == 7 { other } else { EXTREMES[pick] };
        mutate(&mut model, layer, field, v);
        if let Ok(bytes) = to_bytes(&model) {
            run_if_valid(&bytes);
        }
    }
}
