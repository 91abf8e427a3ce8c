//! The evaluate step: test accuracy of FP, QAT and DivQAT through the float,
//! fake-quant and integer-reference backends (the RTL column comes from simulate).

use std::time::Instant;

use anyhow::Context;
use datasets::{DataLocations, SplitKind};
use trainer::attack::defense::argmax;
use trainer::attack::oracle::{load_victim, VictimKind};

use super::results::{Accuracies, ModelAccuracy, ACCURACY_FILE};
use super::stamp::write_json;
use super::steps::{Ctx, Step};

const BATCH: usize = 500;

/// Seed of the evaluate step's test subset (`evaluate.test_limit`).
const SUBSET_SEED: u64 = 0xe7a1;

pub fn run(ctx: &Ctx) -> anyhow::Result<()> {
    let start = Instant::now();
    let config = ctx.config;
    let locations = DataLocations::default_locations().with_cifar_dir(config.data.data_dir.clone());
    let test = datasets::load(config.data.dataset, SplitKind::Test, &locations)?;
    let test = match config.evaluate.test_limit {
        Some(n) => test.subset(n, SUBSET_SEED),
        None => test,
    };
    let models = [
        ("FP", Step::TrainFp, &[VictimKind::Float][..]),
        (
            "QAT",
            Step::TrainQat,
            &[VictimKind::Float, VictimKind::FakeQuant, VictimKind::Reference][..],
        ),
        (
            "DivQAT",
            Step::TrainDivqat,
            &[VictimKind::Float, VictimKind::FakeQuant, VictimKind::Reference][..],
        ),
    ];
    let mut rows = Vec::new();
    for (name, step, kinds) in models {
        let dir = ctx.dir(step);
        let mut predictions = Vec::new();
        for &kind in kinds {
            ctx.progress.message(format!("{name} on the {kind} backend"));
            let mut victim = load_victim(&dir, kind, None, ctx.device)
                .with_context(|| format!("{name} ({}) on the {kind} backend", dir.display()))?;
            let mut p = Vec::with_capacity(test.len());
            for batch in test.images.chunks(BATCH * test.image_len()) {
                p.extend(victim.probabilities(batch)?.iter().map(|v| argmax(v)));
            }
            predictions.push(p);
        }
        let accuracy = |p: &Vec<usize>| {
            p.iter().zip(&test.labels).filter(|(p, l)| **p == **l as usize).count() as f64 / test.len() as f64
        };
        let agreement = predictions
            .get(2)
            .map(|int| int.iter().zip(&predictions[1]).filter(|(a, b)| a == b).count() as f64 / test.len() as f64);
        rows.push(ModelAccuracy {
            model: name.into(),
            float: accuracy(&predictions[0]),
            fakequant: predictions.get(1).map(accuracy),
            integer: predictions.get(2).map(accuracy),
            agreement,
        });
    }
    let result = Accuracies {
        dataset: config.data.dataset.to_string(),
        images: test.len(),
        models: rows,
        seconds: start.elapsed().as_secs_f64(),
    };
    write_json(&ctx.dir(Step::Evaluate).join(ACCURACY_FILE), &result)
}
