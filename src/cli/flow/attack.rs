//! The attack step: KnockoffNets-style extraction of both victims through the
//! integer-reference oracle, with no defense and with the configured one, at each
//! budget (a `trainer::attack::experiment` grid in `attack/`: cells.jsonl makes an
//! interrupted grid continue, results.json/csv and SVG plots at the end); then the
//! RTL oracle answers a sample of queries per victim, each answer checked bit for bit
//! against the reference oracle (`attack/cross-check.json`).

use std::time::Instant;

use anyhow::Context;
use compiler::hw::HwConfig;
use datasets::DataLocations;
use trainer::attack::defense::DefenseChain;
use trainer::attack::experiment::{run_experiment, ChainSpec, ExperimentConfig, RunEnv};
use trainer::attack::jbda::JbdaConfig;
use trainer::attack::knockoff::AdaptiveConfig;
use trainer::attack::oracle::{load_victim, Oracle, VictimKind};
use trainer::attack::queries::load_query_set;

use super::compile::HW_FILE;
use super::results::{CrossCheck, CROSS_CHECK_FILE};
use super::stamp::write_json;
use super::steps::{Ctx, Step, VICTIMS};

/// Seed of the cross-checked query sample.
const CROSS_CHECK_SEED: u64 = 0xc4ec;

/// The experiment grid of this flow.
pub fn grid(ctx: &Ctx) -> ExperimentConfig {
    let a = &ctx.config.attack;
    ExperimentConfig {
        out: None,
        victims: VICTIMS.iter().map(|(_, step)| ctx.dir(*step)).collect(),
        oracle: "reference".into(),
        hw: None,
        defenses: vec![ChainSpec::One("none".into()), ChainSpec::One(a.defense.clone())],
        budgets: a.budgets.clone(),
        attacks: vec![a.attack],
        seeds: a.seeds.clone(),
        queries: a.queries.clone(),
        test_dataset: Some(ctx.config.data.dataset),
        data_dir: ctx.config.data.data_dir.clone(),
        test_limit: a.test_limit,
        query_batch: a.query_batch,
        surrogate: a.surrogate.clone(),
        adaptive: AdaptiveConfig::default(),
        jbda: JbdaConfig::default(),
        baseline: None,
    }
}

pub fn run(ctx: &Ctx) -> anyhow::Result<()> {
    let out = ctx.dir(Step::Attack);
    let env = RunEnv {
        device: ctx.device,
        locations: DataLocations::default_locations(),
        show_progress: false,
    };
    let config = grid(ctx);
    config
        .validate()
        .map_err(|e| anyhow::anyhow!("{}: attack: {e}", ctx.config_name))?;
    let progress = ctx.progress;
    run_experiment(&config, &out, &env, |i, total, spec, skipped| {
        let victim = spec
            .victim
            .file_name()
            .map_or(String::new(), |n| n.to_string_lossy().into_owned());
        progress.message(format!(
            "cell {}/{total}: {victim}, defense {}, {} queries{}",
            i + 1,
            spec.defense,
            spec.attack.budget,
            if skipped { " (done)" } else { "" }
        ));
    })
    .context("the attack grid")?;
    let hw = HwConfig::load(&ctx.dir(Step::Compile).join(HW_FILE))?;
    let mut checks = Vec::new();
    for (name, step) in VICTIMS {
        progress.message(format!("{name}: RTL oracle cross-checked against the reference"));
        checks.push(cross_check(ctx, name, &ctx.dir(step), &hw)?);
    }
    write_json(&out.join(CROSS_CHECK_FILE), &checks)
}

fn cross_check(ctx: &Ctx, name: &str, dir: &std::path::Path, hw: &HwConfig) -> anyhow::Result<CrossCheck> {
    let start = Instant::now();
    let a = &ctx.config.attack;
    let rtl = load_victim(dir, VictimKind::Rtl, Some(hw), ctx.device)?;
    let shape = rtl.input_shape();
    let reference = load_victim(dir, VictimKind::Reference, Some(hw), ctx.device)?;
    let queries = load_query_set(&a.queries, shape, &DataLocations::default_locations())?
        .subset(a.cross_check_queries, CROSS_CHECK_SEED);
    let mut oracle = Oracle::new(rtl, DefenseChain(Vec::new()), queries.len(), CROSS_CHECK_SEED).cross_check(reference);
    for batch in queries.images.chunks(8 * queries.image_len()) {
        oracle
            .query(batch)
            .with_context(|| format!("{name}: the RTL oracle against the reference"))?;
    }
    Ok(CrossCheck {
        victim: name.to_string(),
        query_set: a.queries.to_string(),
        queries: queries.len(),
        confirmed: oracle.confirmed_queries(),
        seconds: start.elapsed().as_secs_f64(),
    })
}
