//! Tests of the public entry points, including those that read the real,
//! installed datasets (skipped with a note where they are not installed).

use std::io::Read;

use serde::de::IntoDeserializer;
use std::time::Instant;

use super::*;
use crate::testutil::write;

fn installed(id: DatasetId) -> Option<DataLocations> {
    let loc = DataLocations::default_locations();
    if loc.is_installed(id) {
        Some(loc)
    } else {
        eprintln!(
            "note: {id} not installed at {}; skipping real-data test",
            loc.location(id)
        );
        None
    }
}

#[test]
fn ids_round_trip_through_strings() {
    for id in DatasetId::ALL {
        assert_eq!(id.to_string().parse::<DatasetId>().unwrap(), id);
    }
    let names: Vec<String> = DatasetId::ALL.iter().map(|id| id.to_string()).collect();
    assert_eq!(
        names,
        ["fashion-mnist", "animal-mnist", "digits", "cifar10", "cifar100"]
    );
    let err = "mnist".parse::<DatasetId>().unwrap_err().to_string();
    assert!(err.starts_with("unknown dataset 'mnist'"), "{err}");
    assert_eq!("Test".parse::<SplitKind>().unwrap(), SplitKind::Test);
    assert!("val".parse::<SplitKind>().is_err());
}

#[test]
fn serde_names_match_display() {
    // serde's kebab-case names (checked via Deserialize) must agree with Display.
    let info = info(DatasetId::Cifar100, &DataLocations::default_locations());
    assert_eq!(
        (info.shape, info.classes, info.train, info.test),
        ([3, 32, 32], 100, 50_000, 10_000)
    );
    for id in DatasetId::ALL {
        let de: serde::de::value::StrDeserializer<serde::de::value::Error> = id.as_str().into_deserializer();
        assert_eq!(DatasetId::deserialize(de).unwrap(), id);
    }
}

#[test]
fn default_locations() {
    let loc = DataLocations::default_locations();
    assert_eq!(loc.fashion_mnist, Path::new("/usr/share/datasets/fashion-mnist"));
    assert_eq!(loc.cifar_dir, None);
    if std::env::var_os(DATA_DIR_ENV).is_none() {
        assert!(loc.deps_data.ends_with(".deps/data"), "{}", loc.deps_data.display());
        assert!(loc
            .deps_data
            .parent()
            .unwrap()
            .parent()
            .unwrap()
            .join("datasets")
            .is_dir());
    }
    let loc = loc.with_cifar_dir(Some("/c".into()));
    assert_eq!(loc.cifar_dir.as_deref(), Some(Path::new("/c")));
}

#[test]
fn catalog_reports_missing_files_without_decoding() {
    let dir = tempfile::tempdir().unwrap();
    let loc = DataLocations::default_locations()
        .with_deps_data(dir.path().join("none"))
        .with_fashion_mnist(dir.path().join("none"));
    let cat = catalog(&loc);
    assert_eq!(cat.len(), 5);
    assert!(cat.iter().all(|row| !row.installed));
    assert_eq!(cat[4].location, "(no CIFAR directory given)");
    assert!(cat[1].note.contains("query set for extraction attacks; no test split"));
    assert!(cat[2].note.contains("first 1437 rows train, last 360 test"));
}

#[test]
fn catalog_sees_cifar_files() {
    let dir = tempfile::tempdir().unwrap();
    let nested = dir.path().join("cifar-100-binary");
    std::fs::create_dir(&nested).unwrap();
    write(&nested, "train.bin", b"x");
    write(&nested, "test.bin", b"x");
    let loc = DataLocations::default_locations().with_cifar_dir(Some(dir.path().into()));
    assert!(info(DatasetId::Cifar100, &loc).installed);
    assert!(!info(DatasetId::Cifar10, &loc).installed);
}

#[test]
fn missing_files_get_an_install_hint() {
    let dir = tempfile::tempdir().unwrap();
    let loc = DataLocations::default_locations().with_deps_data(dir.path().into());
    let msg = load(DatasetId::Digits, SplitKind::Train, &loc).unwrap_err().to_string();
    let path = dir.path().join("digits/digits.csv.gz");
    assert_eq!(
        msg,
        format!(
            "{}: not found (run scripts/setup.sh or set DIVQAT_DATA_DIR)",
            path.display()
        )
    );
    let msg = load(DatasetId::Cifar10, SplitKind::Test, &loc).unwrap_err().to_string();
    assert!(msg.starts_with("cifar10: no CIFAR directory configured"), "{msg}");
    let loc = loc.with_cifar_dir(Some(dir.path().into()));
    let msg = load(DatasetId::Cifar10, SplitKind::Test, &loc).unwrap_err().to_string();
    assert!(msg.starts_with(&format!(
        "{}: not found (expected the CIFAR-10",
        dir.path().join("test_batch.bin").display()
    )));
}

#[test]
fn animal_mnist_has_no_test_split() {
    let msg = load(
        DatasetId::AnimalMnist,
        SplitKind::Test,
        &DataLocations::default_locations(),
    )
    .unwrap_err();
    assert!(msg.to_string().starts_with("animal-mnist: no test split"), "{msg}");
}

#[test]
fn real_fashion_mnist() {
    let Some(loc) = installed(DatasetId::FashionMnist) else {
        return;
    };
    let start = Instant::now();
    let train = load(DatasetId::FashionMnist, SplitKind::Train, &loc).unwrap();
    eprintln!("fashion-mnist train decoded in {:?}", start.elapsed());
    assert_eq!((train.len(), train.shape, train.classes), (60_000, [1, 28, 28], 10));
    assert_eq!(train.class_counts(), vec![6000; 10]);
    let test = load(DatasetId::FashionMnist, SplitKind::Test, &loc).unwrap();
    assert_eq!(test.len(), 10_000);
    assert_eq!(test.class_counts(), vec![1000; 10]);
    // First training image is an ankle boot (class 9), first test image too.
    assert_eq!((train.label(0), test.label(0)), (9, 9));
}

#[test]
fn real_animal_mnist() {
    let Some(loc) = installed(DatasetId::AnimalMnist) else {
        return;
    };
    let train = load(DatasetId::AnimalMnist, SplitKind::Train, &loc).unwrap();
    assert_eq!((train.len(), train.shape, train.classes), (10_000, [1, 28, 28], 10));
    assert_eq!(train.class_counts(), vec![1000; 10]);
    assert!(train.images.contains(&255));
}

#[test]
fn real_animal_mnist_headers_match_the_test_writer() {
    // The fixtures in animal.rs mimic the real files byte for byte up to the data.
    let Some(loc) = installed(DatasetId::AnimalMnist) else {
        return;
    };
    let [images, labels] = animal::files(&loc.animal_mnist_dir());
    let expect = [
        (
            images,
            pickle::write_ndarray("u1", "|", &[10_000, 28, 28], &vec![0; 10_000 * 784]),
        ),
        (
            labels,
            pickle::write_ndarray("i8", "<", &[10_000], &vec![0; 10_000 * 8]),
        ),
    ];
    for (path, fake) in expect {
        let mut raw = Vec::new();
        flate2::read::GzDecoder::new(std::fs::File::open(&path).unwrap())
            .read_to_end(&mut raw)
            .unwrap();
        assert_eq!(raw.len(), fake.len(), "{}", path.display());
        let data_start = raw.len() - 14 - if fake.len() > 100_000 { 10_000 * 784 } else { 10_000 * 8 };
        assert_eq!(raw[..data_start], fake[..data_start], "{}", path.display());
        assert_eq!(raw[raw.len() - 14..], fake[fake.len() - 14..], "{}", path.display());
    }
}

#[test]
fn real_digits() {
    let Some(loc) = installed(DatasetId::Digits) else {
        return;
    };
    let train = load(DatasetId::Digits, SplitKind::Train, &loc).unwrap();
    let test = load(DatasetId::Digits, SplitKind::Test, &loc).unwrap();
    assert_eq!((train.len(), test.len(), train.shape), (1437, 360, [1, 8, 8]));
    let all = train.concat(&test).unwrap();
    assert_eq!(
        all.class_counts(),
        vec![178, 182, 177, 183, 181, 182, 181, 179, 174, 180]
    );
    // Row 0 starts 0,0,5,13: round(5*255/16) = 80, round(13*255/16) = 207.
    assert_eq!(all.image(0)[..4], [0, 0, 80, 207]);
}
