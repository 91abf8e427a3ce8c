//! The simulate step: a sample of test images on the accelerator's RTL (Verilator)
//! and on the ISA-level functional model, every logit compared with the integer
//! reference, cycles per layer measured against the cycle model. A mismatch is a
//! result the report shows (with the first differing layer), and fails the step.

use std::time::Instant;

use anyhow::{bail, Context};
use compiler::arith::argmax;
use compiler::cycles::layer_cycles;
use compiler::hw::HwConfig;
use compiler::{Backend, Reference};
use datasets::{DataLocations, SplitKind};
use sim::{first_mismatch, Rtl, RtlOptions};

use super::compile::HW_FILE;
use super::results::{SimResult, SimVictim, SIMULATE_FILE};
use super::stamp::write_json;
use super::steps::{Ctx, Step, VICTIMS};

pub fn run(ctx: &Ctx) -> anyhow::Result<()> {
    let hw = HwConfig::load(&ctx.dir(Step::Compile).join(HW_FILE))?;
    let mut victims = Vec::new();
    for (name, step) in VICTIMS {
        victims.push(simulate(ctx, name, &ctx.model(step), &hw)?);
    }
    let result = SimResult {
        hw: format!("{}x{}", hw.rows, hw.cols),
        victims,
    };
    write_json(&ctx.dir(Step::Simulate).join(SIMULATE_FILE), &result)?;
    let bad: Vec<String> = result
        .victims
        .iter()
        .filter_map(|v| v.first_mismatch.as_ref().map(|m| format!("{}: {m}", v.victim)))
        .collect();
    if !bad.is_empty() {
        bail!(
            "the RTL or the functional model differs from the reference ({}); see {}",
            bad.join("; "),
            ctx.dir(Step::Simulate).join(SIMULATE_FILE).display()
        );
    }
    Ok(())
}

fn simulate(ctx: &Ctx, name: &str, path: &std::path::Path, hw: &HwConfig) -> anyhow::Result<SimVictim> {
    let start = Instant::now();
    let s = &ctx.config.simulate;
    let model = compiler::load(path)?;
    let locations = DataLocations::default_locations().with_cifar_dir(ctx.config.data.data_dir.clone());
    let data = datasets::load(ctx.config.data.dataset, SplitKind::Test, &locations)?.subset(s.images, s.seed);
    let compiled = compiler::lower::compile(&model, hw)
        .with_context(|| format!("cannot compile {} for {}x{}", path.display(), hw.rows, hw.cols))?;
    let model_cycles = compiler::cycles::report(&model, &compiled)?.total_cycles;
    ctx.progress
        .message(format!("{name}: building the {}x{} RTL", hw.rows, hw.cols));
    let rtl = Rtl::new(compiled.clone(), RtlOptions::default()).context("cannot build the RTL")?;
    let info = rtl.build_info();
    let functional = compiler::functional::Functional::new(compiled);
    let reference = Reference::new(model.clone());
    let (mut rtl_bad, mut functional_bad, mut compared) = (0, 0, 0);
    let (mut rtl_correct, mut ref_correct) = (0, 0);
    let (mut cycles, mut ticks, mut sim_seconds) = (0u64, 0u64, 0.0);
    let mut first = None;
    let mut layers = Vec::new();
    for (i, (image, &label)) in data.images.chunks_exact(data.image_len()).zip(&data.labels).enumerate() {
        ctx.progress
            .message(format!("{name}: image {}/{} on the RTL", i + 1, data.len()));
        let run = rtl
            .run_image_with(image, i == 0, None)
            .with_context(|| format!("{name}: image {i}"))?;
        if let Some(ends) = &run.instruction_end {
            layers = layer_cycles(rtl.compiled(), ends);
        }
        cycles += run.cycles;
        ticks += run.ticks;
        sim_seconds += run.seconds;
        let expected = reference.logits(image);
        compared += expected.len();
        let functional_logits = functional.infer(image)?.logits.remove(0);
        functional_bad += usize::from(functional_logits != expected);
        rtl_correct += usize::from(argmax(&run.logits) == Some(label as usize));
        ref_correct += usize::from(argmax(&expected) == Some(label as usize));
        if run.logits != expected {
            rtl_bad += 1;
            if first.is_none() {
                let trace = reference.trace(image);
                first = Some(match first_mismatch(&model, rtl.compiled(), &trace, &run.memory) {
                    Some(m) => format!("image {i}: {m}"),
                    None => format!("image {i}: logits {:?}, expected {expected:?}", run.logits),
                });
            }
        } else if functional_logits != expected && first.is_none() {
            first = Some(format!(
                "image {i}: functional model logits {functional_logits:?}, expected {expected:?}"
            ));
        }
    }
    let n = data.len();
    Ok(SimVictim {
        victim: name.to_string(),
        images: n,
        logits_compared: compared,
        rtl_mismatches: rtl_bad,
        functional_mismatches: functional_bad,
        first_mismatch: first,
        rtl_accuracy: rtl_correct as f64 / n as f64,
        reference_accuracy: ref_correct as f64 / n as f64,
        rtl_cycles_per_image: cycles as f64 / n as f64,
        model_cycles_per_image: model_cycles,
        rtl_layer_cycles: layers,
        sim_cycles_per_second: ticks as f64 / sim_seconds.max(1e-9),
        build_seconds: info.generate_seconds + info.seconds,
        seconds: start.elapsed().as_secs_f64(),
    })
}
