//! Throughput of training steps: FP, QAT and DivQAT steps of one architecture on
//! random data, measured in the same process so their ratios are comparable.

use std::time::Instant;

use compiler::arith::Precision;
use compiler::zoo::Arch;
use serde::Serialize;
use tch::nn::{ModuleT, VarStore};
use tch::{Device, Kind, Tensor};

use crate::float_net::FloatNet;
use crate::loss::{loss, Divergence, KlDirection};
use crate::optim::{Optimizer, OptimizerKind};
use crate::quant_net::{Arithmetic, Mode, QuantNet};

#[derive(Clone, Debug, Serialize)]
pub struct StepRates {
    pub arch: String,
    pub input: [usize; 3],
    pub batch: usize,
    pub fp_images_per_second: f64,
    pub qat_images_per_second: f64,
    pub divqat_images_per_second: f64,
    /// QAT step time relative to an FP step (> 1 means slower).
    pub qat_cost_vs_fp: f64,
    pub divqat_cost_vs_fp: f64,
}

/// Images per second of `steps` optimizer steps of `step` (after one warm-up step).
fn rate(batch: usize, steps: usize, mut step: impl FnMut()) -> f64 {
    step();
    let start = Instant::now();
    for _ in 0..steps {
        step();
    }
    (batch * steps) as f64 / start.elapsed().as_secs_f64()
}

pub fn bench_steps(arch: Arch, input: [usize; 3], classes: usize, batch: usize, steps: usize) -> StepRates {
    tch::manual_seed(0);
    let [c, h, w] = input.map(|d| d as i64);
    let pixels = Tensor::randint(256, [batch as i64, c, h, w], (Kind::Float, Device::Cpu));
    let labels = Tensor::randint(classes as i64, [batch as i64], (Kind::Int64, Device::Cpu));
    let blocks = arch.blocks(classes, 1.0);
    let fvs = VarStore::new(Device::Cpu);
    let float = FloatNet::new(&fvs.root(), &blocks, input);
    let mut fopt = Optimizer::new(OptimizerKind::Adamw, &fvs, 1e-4);
    let fp = rate(batch, steps, || {
        let terms = loss(&float.forward_t(&pixels, true), &labels, None);
        fopt.zero_grad();
        terms.total.backward();
        fopt.step(1e-4);
    });
    let qvs = VarStore::new(Device::Cpu);
    let mut quant = QuantNet::from_float(&qvs.root(), &float, Precision::W8A8);
    let _ = tch::no_grad(|| {
        quant.forward(
            &pixels,
            Mode {
                calibrating: true,
                arithmetic: Arithmetic::Fast,
            },
        )
    });
    let mut qopt = Optimizer::new(OptimizerKind::Adamw, &qvs, 1e-4);
    let mode = Mode {
        calibrating: false,
        arithmetic: Arithmetic::Fast,
    };
    let divergence = Divergence {
        weight: 0.04,
        temperature: 4.0,
        direction: KlDirection::QuantToTeacher,
        defense: None,
        defense_at: Default::default(),
        defense_on: Default::default(),
    };
    let mut q_step = |divqat: bool| {
        let logits = quant.forward(&pixels, mode);
        let teacher = divqat.then(|| tch::no_grad(|| float.forward_t(&pixels, false)));
        let terms = loss(&logits, &labels, teacher.as_ref().map(|t| (t, &divergence)));
        qopt.zero_grad();
        terms.total.backward();
        qopt.step(1e-4);
    };
    let qat = rate(batch, steps, || q_step(false));
    let divqat = rate(batch, steps, || q_step(true));
    StepRates {
        arch: arch.to_string(),
        input,
        batch,
        fp_images_per_second: fp,
        qat_images_per_second: qat,
        divqat_images_per_second: divqat,
        qat_cost_vs_fp: fp / qat,
        divqat_cost_vs_fp: fp / divqat,
    }
}
