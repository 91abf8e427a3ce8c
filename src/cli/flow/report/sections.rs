//! The report's sections, in order.

use std::collections::BTreeMap;
use std::path::Path;

use trainer::attack::experiment::budget_chart;
use trainer::attack::metrics::AttackMetrics;

use super::doc::{count, pct, pct_or_dash, rel, Doc};
use super::Inputs;
use crate::cli::flow::config::FlowConfig;
use crate::cli::flow::Invocation;

pub fn build(config: &FlowConfig, inputs: &Inputs, invocation: &Invocation) -> Doc {
    let mut doc = Doc {
        title: "divqat flow report".into(),
        ..Doc::default()
    };
    let hw = &inputs.compile.hw;
    doc.para(format!(
        "{} on {}, W{}A{}; QAT and DivQAT (w = {}, T = {}) fine-tuned from the FP model; accelerator {}x{} \
         (the smallest buffers the model compiles with) for the {} at {} MHz; attacks: {} with {} queries.",
        config.train.arch,
        config.data.dataset,
        config.train.weight_bits,
        config.train.activation_bits,
        config.train_divqat.div_weight,
        config.train_divqat.temperature,
        hw.rows,
        hw.cols,
        inputs.board.board,
        hw.clock_mhz,
        config.attack.attack.as_str(),
        config.attack.queries
    ));
    accuracy(&mut doc, inputs);
    bit_exactness(&mut doc, inputs);
    cycles(&mut doc, inputs);
    board(&mut doc, inputs);
    attacks(&mut doc, config, inputs);
    provenance(&mut doc, inputs, invocation);
    doc
}

fn accuracy(doc: &mut Doc, inputs: &Inputs) {
    let a = &inputs.accuracy;
    let sims = &inputs.simulate.victims;
    let sample = sims.first().map_or(0, |s| s.images);
    doc.h2("Accuracy");
    doc.para(format!(
        "Test accuracy on {} {} test images (float, fake-quant, integer); the RTL column is the simulated \
         accelerator on a sample of {sample} of them (the integer reference on the same sample in parentheses). \
         QAT/DivQAT float: their float shadow weights without quantization.",
        count(a.images as u64),
        a.dataset
    ));
    let rows = a
        .models
        .iter()
        .map(|m| {
            let sim = sims.iter().find(|s| s.victim.eq_ignore_ascii_case(&m.model));
            vec![
                m.model.clone(),
                pct(m.float),
                pct_or_dash(m.fakequant),
                pct_or_dash(m.integer),
                sim.map_or("–".into(), |s| {
                    format!("{} ({})", pct(s.rtl_accuracy), pct(s.reference_accuracy))
                }),
                pct_or_dash(m.agreement),
            ]
        })
        .collect();
    doc.table(
        &[
            "model",
            "float",
            "fake-quant",
            "integer (reference)",
            "RTL (sample)",
            "fake-quant = integer (top-1)",
        ],
        rows,
    );
}

fn bit_exactness(doc: &mut Doc, inputs: &Inputs) {
    doc.h2("Bit-exactness");
    doc.para(format!(
        "Every logit of every sampled test image on the {} accelerator's RTL (Verilator) and on the ISA-level \
         functional model, compared with the software integer reference; and the RTL serving as the attack \
         oracle, each answer (probability vector) compared bit for bit with the reference oracle's.",
        inputs.simulate.hw
    ));
    let rows = inputs
        .simulate
        .victims
        .iter()
        .map(|s| {
            let cc = inputs.cross_checks.iter().find(|c| c.victim == s.victim);
            vec![
                label(&s.victim),
                s.images.to_string(),
                count(s.logits_compared as u64),
                s.rtl_mismatches.to_string(),
                s.functional_mismatches.to_string(),
                cc.map_or("–".into(), |c| {
                    format!("{} of {} ({})", c.confirmed, c.queries, c.query_set)
                }),
                if s.first_mismatch.is_none() && cc.is_some_and(|c| c.confirmed == c.queries) {
                    "**bit-exact**".into()
                } else {
                    s.first_mismatch
                        .clone()
                        .unwrap_or_else(|| "cross-check incomplete".into())
                },
            ]
        })
        .collect();
    doc.table(
        &[
            "victim",
            "images",
            "logits compared",
            "RTL mismatches",
            "functional mismatches",
            "RTL oracle answers = reference",
            "verdict",
        ],
        rows,
    );
}

fn cycles(doc: &mut Doc, inputs: &Inputs) {
    let hw = &inputs.compile.hw;
    let peak = (hw.rows * hw.cols) as f64;
    doc.h2("Cycles and utilization per layer");
    doc.para(format!(
        "The cycle model (compiler) against the cycles the RTL measured on the first simulated image, per layer \
         (a layer's cycles run from the end of the previous layer's last instruction to the end of its own). \
         Utilization = MACs / ({}x{} PEs x cycles).",
        hw.rows, hw.cols
    ));
    for victim in &inputs.compile.victims {
        let Some(sim) = inputs.simulate.victims.iter().find(|s| s.victim == victim.victim) else {
            continue;
        };
        doc.h3(format!(
            "{}: {} instructions, {} bytes of memory image",
            label(&victim.victim),
            victim.instructions,
            count(victim.memory_image_bytes as u64)
        ));
        let util = |macs: u64, cycles: u64| {
            if cycles == 0 {
                "–".into()
            } else {
                pct(macs as f64 / (peak * cycles as f64))
            }
        };
        let mut rows: Vec<Vec<String>> = victim
            .layers
            .iter()
            .enumerate()
            .map(|(i, l)| {
                let measured = sim.rtl_layer_cycles.get(i).copied();
                vec![
                    l.name.clone(),
                    l.kind.clone(),
                    count(l.macs),
                    count(l.cycles),
                    measured.map_or("–".into(), count),
                    measured.map_or("–".into(), |m| rel(m as f64, l.cycles as f64)),
                    pct(l.utilization),
                    measured.map_or("–".into(), |m| util(l.macs, m)),
                ]
            })
            .collect();
        rows.push(vec![
            "**total**".into(),
            String::new(),
            count(victim.macs),
            count(victim.total_cycles),
            count(sim.rtl_cycles_per_image.round() as u64),
            rel(sim.rtl_cycles_per_image, victim.total_cycles as f64),
            pct(victim.utilization),
            util(victim.macs, sim.rtl_cycles_per_image.round() as u64),
        ]);
        doc.table(
            &[
                "layer",
                "kind",
                "MACs",
                "model cycles",
                "RTL cycles",
                "difference",
                "model util.",
                "RTL util.",
            ],
            rows,
        );
        doc.para(format!(
            "RTL: {} cycles per image over {} images, simulated at {:.2} M cycles/s (build {:.1} s).",
            count(sim.rtl_cycles_per_image.round() as u64),
            sim.images,
            sim.sim_cycles_per_second / 1e6,
            sim.build_seconds
        ));
    }
}

fn board(doc: &mut Doc, inputs: &Inputs) {
    let b = &inputs.board;
    doc.h2(format!("Board: {} ({})", b.board, b.device));
    let kind = if b.estimate_only {
        "synthesis estimate"
    } else {
        "yosys + nextpnr"
    };
    let verdict = if b.fits {
        match (b.fmax_mhz, b.meets_timing) {
            (Some(f), Some(true)) => format!("**fits**, fmax {f:.2} MHz (target {} MHz: met)", b.target_mhz),
            (Some(f), _) => format!("**fits**, fmax {f:.2} MHz (target {} MHz: **missed**)", b.target_mhz),
            (None, _) => format!("**fits** (no timing: {kind})"),
        }
    } else {
        format!("**does not fit**: {}", b.overflows.join("; "))
    };
    doc.para(format!(
        "The {} accelerator in its board wrapper (clock, reset, UART host bridge), {kind}{}: {verdict}.",
        b.hw,
        if b.cached { ", from the synthesis cache" } else { "" }
    ));
    let a = &b.available;
    let row = |name: &str, used: u64, avail: u64| {
        vec![
            name.to_string(),
            count(used),
            count(avail),
            if avail == 0 {
                "–".into()
            } else {
                pct(used as f64 / avail as f64)
            },
            if used > avail {
                format!("+{}", count(used - avail))
            } else {
                String::new()
            },
        ]
    };
    doc.table(
        &["resource", "used", "available", "use", "overflow"],
        vec![
            row("LUT", b.used.lut, a.lut),
            row("FF", b.used.ff, a.ff),
            row("DSP", b.used.dsp, a.dsp),
            row("BRAM", b.used.bram, a.bram_blocks),
            row("SPRAM", b.used.spram, a.spram_blocks),
        ],
    );
    doc.para(format!(
        "Speed with the QAT model: {} cycles per image (cycle model) -> {:.2} images/s at {} MHz{}; \
         {:.3} images/s over the UART host link. Tools: {}.",
        count(b.cycles_per_image),
        b.images_per_second,
        b.fmax_mhz.map_or(b.target_mhz, |f| f.min(b.target_mhz)),
        if b.fits { "" } else { " (if it fit)" },
        b.link_images_per_second,
        b.tool_versions.join(", ")
    ));
    if let Some(bitstream) = &b.bitstream {
        doc.para(format!("Bitstream: `synthesize/{bitstream}`."));
    }
}

/// QAT / DivQAT from a victim directory or name.
fn label(victim: &str) -> String {
    let name = Path::new(victim)
        .file_name()
        .map_or(victim.to_string(), |n| n.to_string_lossy().into_owned());
    match name.trim_start_matches("train-") {
        "qat" => "QAT".into(),
        "divqat" => "DivQAT".into(),
        "fp" => "FP".into(),
        other => other.to_string(),
    }
}

fn attacks(doc: &mut Doc, config: &FlowConfig, inputs: &Inputs) {
    let a = &config.attack;
    doc.h2("Extraction attacks");
    doc.para(format!(
        "{} against each victim through the integer-reference oracle (the RTL oracle gives the same answers: \
         see Bit-exactness), {} queries from {}, surrogate {} trained {} epochs; fidelity = top-1 agreement of \
         surrogate and victim on {} test images. Defense: none, or `{}`. Lower fidelity and surrogate accuracy \
         are better for the defender.",
        a.attack.as_str(),
        a.budgets.iter().map(|b| b.to_string()).collect::<Vec<_>>().join(" / "),
        a.queries,
        a.surrogate.arch,
        a.surrogate.epochs,
        inputs.attacks.first().map_or(0, |m| m.test_images),
        a.defense
    ));
    let relabeled: Vec<AttackMetrics> = inputs
        .attacks
        .iter()
        .map(|m| AttackMetrics {
            victim: label(&m.victim),
            ..m.clone()
        })
        .collect();
    // Mean over seeds per (victim, defense, budget).
    let mut groups: BTreeMap<(String, String, usize), Vec<&AttackMetrics>> = BTreeMap::new();
    for m in &relabeled {
        groups
            .entry((m.victim.clone(), m.defense.clone(), m.budget))
            .or_default()
            .push(m);
    }
    let mean =
        |ms: &[&AttackMetrics], f: fn(&AttackMetrics) -> f64| ms.iter().map(|m| f(m)).sum::<f64>() / ms.len() as f64;
    let rows = groups
        .iter()
        .map(|((victim, defense, budget), ms)| {
            vec![
                victim.clone(),
                defense.clone(),
                budget.to_string(),
                ms.len().to_string(),
                pct(mean(ms, |m| m.victim_accuracy)),
                pct(mean(ms, |m| m.defended_accuracy)),
                format!("{:.4}", mean(ms, |m| m.l1)),
                pct(mean(ms, |m| m.surrogate_accuracy)),
                format!("**{}**", pct(mean(ms, |m| m.fidelity))),
            ]
        })
        .collect();
    doc.table(
        &[
            "victim",
            "defense",
            "queries",
            "seeds",
            "victim acc.",
            "defended acc.",
            "mean L1",
            "surrogate acc.",
            "fidelity",
        ],
        rows,
    );
    if let Some(line) = comparison(&groups, &a.defense) {
        doc.para(line);
    }
    let attack = a.attack.as_str();
    let fidelity = budget_chart(&relabeled, attack, |m| m.fidelity, "fidelity");
    doc.figure(
        "fidelity-vs-queries.svg",
        "Fidelity of the stolen surrogate vs queries: QAT vs DivQAT, with and without the defense.",
        fidelity.to_svg(),
    );
    let accuracy = budget_chart(&relabeled, attack, |m| m.surrogate_accuracy, "surrogate accuracy");
    doc.figure(
        "surrogate-accuracy-vs-queries.svg",
        "Test accuracy of the stolen surrogate vs queries.",
        accuracy.to_svg(),
    );
}

fn provenance(doc: &mut Doc, inputs: &Inputs, invocation: &Invocation) {
    doc.h2("Step times");
    doc.para("Wall time of the run that finished each step (a step skipped as up to date keeps its earlier time).");
    let total: f64 = inputs.step_seconds.iter().filter_map(|(_, s)| *s).sum();
    let mut rows: Vec<Vec<String>> = inputs
        .step_seconds
        .iter()
        .map(|(step, s)| vec![step.name().to_string(), s.map_or("–".into(), |s| format!("{s:.1} s"))])
        .collect();
    rows.push(vec![
        "**total**".into(),
        format!("{total:.1} s ({:.1} min)", total / 60.0),
    ]);
    doc.table(&["step", "time"], rows);
    doc.h2("How this report was made");
    doc.para("The command (run from the repository root):");
    doc.code("sh", invocation.command.clone());
    doc.para("The effective configuration (`flow.toml` in the output directory; pass it back with `--config`):");
    doc.code("toml", invocation.config_toml.clone());
}

/// "At N queries, DivQAT's surrogate is X points less/more faithful than QAT's
/// without a defense and Y with it", from the mean fidelities at the largest budget.
fn comparison(groups: &BTreeMap<(String, String, usize), Vec<&AttackMetrics>>, defense: &str) -> Option<String> {
    let budget = groups.keys().map(|k| k.2).max()?;
    let fidelity = |victim: &str, defense: &str| {
        let ms = groups.get(&(victim.to_string(), defense.to_string(), budget))?;
        Some(100.0 * ms.iter().map(|m| m.fidelity).sum::<f64>() / ms.len() as f64)
    };
    let delta = |defense: &str| -> Option<String> {
        let d = fidelity("DivQAT", defense)? - fidelity("QAT", defense)?;
        Some(format!(
            "{:.1} points {}",
            d.abs(),
            if d <= 0.0 { "less" } else { "more" }
        ))
    };
    Some(format!(
        "At {budget} queries the surrogate of DivQAT is {} faithful than that of QAT without a defense, \
         and {} with `{defense}`.",
        delta("none")?,
        delta(defense)?
    ))
}
