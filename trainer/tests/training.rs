//! Training runs on small subsets: learning happens, resuming is exact, bad teachers
//! and corrupt checkpoints are refused, CIFAR-format data trains.

use std::path::{Path, PathBuf};

use compiler::zoo::Arch;
use datasets::{DataLocations, DatasetId};
use tch::Device;
use trainer::config::{TrainConfig, TrainMode};
use trainer::train::{run, RunOptions, TrainSummary};

fn options(out: &Path) -> RunOptions {
    RunOptions {
        out: out.to_path_buf(),
        resume: false,
        device: Device::Cpu,
        show_progress: false,
        locations: DataLocations::default_locations(),
        pause_after: None,
    }
}

fn tiny(mode: TrainMode, teacher: Option<PathBuf>) -> TrainConfig {
    TrainConfig {
        width: 0.5,
        epochs: 2,
        batch_size: 64,
        train_limit: Some(1200),
        test_limit: Some(300),
        calibration_batches: 4,
        teacher,
        lr: if mode == TrainMode::Fp { 3e-3 } else { 3e-4 },
        ..TrainConfig::defaults(mode, DatasetId::FashionMnist)
    }
}

fn train(config: &TrainConfig, out: &Path) -> TrainSummary {
    run(config, &options(out)).unwrap().expect("not paused")
}

/// Everything but wall-clock time.
fn without_time(mut s: TrainSummary) -> TrainSummary {
    s.seconds = 0.0;
    s
}

#[test]
fn fp_then_qat_and_divqat_learn_and_export_exactly() {
    let dir = tempfile::tempdir().unwrap();
    let fp = train(&tiny(TrainMode::Fp, None), &dir.path().join("fp"));
    assert!(fp.test_accuracy > 0.6, "fp accuracy {}", fp.test_accuracy);
    let teacher = Some(dir.path().join("fp"));
    let qat = train(&tiny(TrainMode::Qat, teacher.clone()), &dir.path().join("qat"));
    assert_eq!(
        qat.agreement,
        Some(1.0),
        "fake-quant and integer predictions must agree"
    );
    assert_eq!(qat.fakequant_accuracy, qat.integer_accuracy);
    assert!(
        qat.test_accuracy > fp.test_accuracy - 0.05,
        "qat {} vs fp {}",
        qat.test_accuracy,
        fp.test_accuracy
    );
    assert!(dir.path().join("qat/model.qnn").is_file());
    compiler::load(&dir.path().join("qat/model.qnn")).unwrap();
    let div = TrainConfig {
        div_weight: 0.2,
        ..tiny(TrainMode::Divqat, teacher)
    };
    let div = train(&div, &dir.path().join("div"));
    assert_eq!(div.agreement, Some(1.0));
    assert!(
        div.kl_to_teacher.unwrap() > qat.kl_to_teacher.unwrap(),
        "divqat must move away from the teacher: {div:?} vs {qat:?}"
    );
    let lines = std::fs::read_to_string(dir.path().join("div/metrics.jsonl")).unwrap();
    assert_eq!(lines.lines().count(), 2);
}

#[test]
fn interrupted_and_resumed_runs_end_identically() {
    let dir = tempfile::tempdir().unwrap();
    let config = TrainConfig {
        epochs: 3,
        ..tiny(TrainMode::Fp, None)
    };
    let straight = train(&config, &dir.path().join("straight"));
    let paused = dir.path().join("paused");
    let first = RunOptions {
        pause_after: Some(1),
        ..options(&paused)
    };
    assert!(run(&config, &first).unwrap().is_none());
    let again = RunOptions {
        resume: false,
        ..options(&paused)
    };
    let err = run(&config, &again).unwrap_err().to_string();
    assert!(err.contains("already holds a run"), "{err}");
    let resumed = run(
        &config,
        &RunOptions {
            resume: true,
            ..options(&paused)
        },
    )
    .unwrap()
    .unwrap();
    assert_eq!(without_time(straight), without_time(resumed));

    // QAT resumes exactly too (observers and optimizer state are checkpointed).
    let qat = TrainConfig {
        epochs: 2,
        ..tiny(TrainMode::Qat, Some(dir.path().join("straight")))
    };
    let q_straight = train(&qat, &dir.path().join("q1"));
    let q_paused = dir.path().join("q2");
    assert!(run(
        &qat,
        &RunOptions {
            pause_after: Some(1),
            ..options(&q_paused)
        }
    )
    .unwrap()
    .is_none());
    let q_resumed = run(
        &qat,
        &RunOptions {
            resume: true,
            ..options(&q_paused)
        },
    )
    .unwrap()
    .unwrap();
    assert_eq!(without_time(q_straight), without_time(q_resumed));
}

#[test]
fn wrong_teachers_and_corrupt_checkpoints_are_refused() {
    let dir = tempfile::tempdir().unwrap();
    let teacher = dir.path().join("fp");
    train(
        &TrainConfig {
            epochs: 1,
            ..tiny(TrainMode::Fp, None)
        },
        &teacher,
    );

    let wrong_width = TrainConfig {
        width: 1.0,
        ..tiny(TrainMode::Qat, Some(teacher.clone()))
    };
    let err = run(&wrong_width, &options(&dir.path().join("a")))
        .unwrap_err()
        .to_string();
    assert!(
        err.contains("architecture is small-cnn x0.5 but this run uses small-cnn x1"),
        "{err}"
    );

    // A config that claims the right architecture over weights of another one.
    let impostor = dir.path().join("impostor");
    train(
        &TrainConfig {
            epochs: 1,
            arch: Arch::Resnet8,
            width: 0.25,
            ..tiny(TrainMode::Fp, None)
        },
        &impostor,
    );
    std::fs::copy(teacher.join("config.toml"), impostor.join("config.toml")).unwrap();
    let err = run(&tiny(TrainMode::Qat, Some(impostor)), &options(&dir.path().join("b")))
        .unwrap_err()
        .to_string();
    assert!(err.contains("different architecture"), "{err}");

    let ckpt = teacher.join("checkpoint.safetensors");
    let mut bytes = std::fs::read(&ckpt).unwrap();
    bytes.truncate(bytes.len() / 2);
    std::fs::write(&ckpt, bytes).unwrap();
    let err = run(&tiny(TrainMode::Qat, Some(teacher)), &options(&dir.path().join("c")))
        .unwrap_err()
        .to_string();
    assert!(
        err.contains("checkpoint.safetensors") && err.contains("corrupt"),
        "{err}"
    );
    assert!(!err.contains('\n'), "{err}");

    let err = run(&tiny(TrainMode::Qat, None), &options(&dir.path().join("d")))
        .unwrap_err()
        .to_string();
    assert!(err.contains("config field 'teacher'"), "{err}");
}

/// CIFAR-10 binary files written here: 5 train batches + 1 test batch of 40 records.
fn write_cifar10(dir: &Path) {
    let record = |i: usize| {
        let label = (i % 10) as u8;
        let mut r = vec![label];
        // Class-dependent brightness so there is something to learn.
        r.extend((0..3072).map(|p| (label as usize * 25 + (p * 7 + i) % 20) as u8));
        r
    };
    for name in [
        "data_batch_1.bin",
        "data_batch_2.bin",
        "data_batch_3.bin",
        "data_batch_4.bin",
        "data_batch_5.bin",
        "test_batch.bin",
    ] {
        let bytes: Vec<u8> = (0..40).flat_map(record).collect();
        std::fs::write(dir.join(name), bytes).unwrap();
    }
}

#[test]
fn cifar_format_data_trains_a_resnet() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("cifar");
    std::fs::create_dir(&data).unwrap();
    write_cifar10(&data);
    let config = TrainConfig {
        arch: Arch::Resnet8,
        width: 0.25,
        data_dir: Some(data),
        train_limit: None,
        test_limit: None,
        epochs: 2,
        ..tiny(TrainMode::Fp, None)
    };
    let config = TrainConfig {
        dataset: DatasetId::Cifar10,
        ..config
    };
    let fp = train(&config, &dir.path().join("fp"));
    assert_eq!(fp.test_images, 40);
    let qat = TrainConfig {
        mode: TrainMode::Qat,
        teacher: Some(dir.path().join("fp")),
        lr: 3e-4,
        ..config
    };
    let qat = train(&qat, &dir.path().join("qat"));
    assert_eq!(qat.agreement, Some(1.0));
}
