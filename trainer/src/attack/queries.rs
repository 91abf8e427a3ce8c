//! Query sets: the images an attacker sends to the oracle, converted to the victim's
//! input shape.
//!
//! | name | images | labels (the adaptive attack's actions) |
//! |---|---|---|
//! | `animal-mnist` | 10000 Animal-MNIST images, 1x28x28 (out of distribution for Fashion-MNIST) | its 10 animal classes |
//! | `fashion-mnist-train` | the 60000 Fashion-MNIST training images (in distribution) | the 10 garment classes |
//! | `digits` | the 1797 scikit-learn 8x8 digits (train and test rows), upscaled bilinearly | the digit |
//! | `cifar10:DIR` | the 50000 CIFAR-10 training images from the binary batches in `DIR` | the 10 classes |
//!
//! Conversion to the victim's `[C, H, W]`: RGB to gray by the ITU-R BT.601 luma
//! weights (0.299, 0.587, 0.114), gray to RGB by replicating the channel, and a
//! bilinear resize with half-pixel centers (the convention of OpenCV and PyTorch's
//! `align_corners=False`), rounded to the nearest code. A set already of the victim's
//! shape is used unchanged.

use std::fmt;
use std::path::PathBuf;
use std::str::FromStr;

use datasets::{DataLocations, DatasetId, Split, SplitKind};
use serde::{Deserialize, Serialize};

use super::knockoff::AttackError;

/// Which images the attacker queries.
#[derive(Clone, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub enum QuerySetId {
    AnimalMnist,
    FashionMnistTrain,
    Digits,
    Cifar10(PathBuf),
}

impl FromStr for QuerySetId {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, String> {
        match s.trim() {
            "animal-mnist" => Ok(QuerySetId::AnimalMnist),
            "fashion-mnist-train" => Ok(QuerySetId::FashionMnistTrain),
            "digits" => Ok(QuerySetId::Digits),
            other => match other.strip_prefix("cifar10:") {
                Some(dir) if !dir.is_empty() => Ok(QuerySetId::Cifar10(PathBuf::from(dir))),
                _ => Err(format!(
                    "unknown query set '{s}' (expected animal-mnist, fashion-mnist-train, digits or cifar10:DIR)"
                )),
            },
        }
    }
}

impl fmt::Display for QuerySetId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            QuerySetId::AnimalMnist => f.write_str("animal-mnist"),
            QuerySetId::FashionMnistTrain => f.write_str("fashion-mnist-train"),
            QuerySetId::Digits => f.write_str("digits"),
            QuerySetId::Cifar10(dir) => write!(f, "cifar10:{}", dir.display()),
        }
    }
}

impl TryFrom<String> for QuerySetId {
    type Error = String;
    fn try_from(s: String) -> Result<Self, String> {
        s.parse()
    }
}

impl From<QuerySetId> for String {
    fn from(q: QuerySetId) -> String {
        q.to_string()
    }
}

/// Load a query set with its own labels, converted to `shape` (`[C, H, W]`).
pub fn load_query_set(id: &QuerySetId, shape: [usize; 3], locations: &DataLocations) -> Result<Split, AttackError> {
    let raw = match id {
        QuerySetId::AnimalMnist => datasets::load(DatasetId::AnimalMnist, SplitKind::Train, locations)?,
        QuerySetId::FashionMnistTrain => datasets::load(DatasetId::FashionMnist, SplitKind::Train, locations)?,
        QuerySetId::Digits => {
            let train = datasets::load(DatasetId::Digits, SplitKind::Train, locations)?;
            let test = datasets::load(DatasetId::Digits, SplitKind::Test, locations)?;
            train.concat(&test)?
        }
        QuerySetId::Cifar10(dir) => {
            let loc = locations.clone().with_cifar_dir(Some(dir.clone()));
            datasets::load(DatasetId::Cifar10, SplitKind::Train, &loc)?
        }
    };
    if raw.is_empty() {
        return Err(AttackError::Config(format!("query set {id} has no images")));
    }
    Ok(convert(&raw, shape))
}

/// `split` converted to `shape`: channels (gray <-> RGB) first, then a bilinear resize.
pub fn convert(split: &Split, shape: [usize; 3]) -> Split {
    if split.shape == shape {
        return split.clone();
    }
    let [c_in, h_in, w_in] = split.shape;
    let [c_out, h_out, w_out] = shape;
    let mut images = Vec::with_capacity(split.len() * c_out * h_out * w_out);
    let plane = h_in * w_in;
    for i in 0..split.len() {
        let image = split.image(i);
        let planes: Vec<Vec<f32>> = convert_channels(image, c_in, c_out, plane);
        for p in &planes {
            images.extend(resize_bilinear(p, [h_in, w_in], [h_out, w_out]));
        }
    }
    Split {
        shape,
        classes: split.classes,
        images,
        labels: split.labels.clone(),
    }
}

/// The `c_out` channel planes of a `c_in`-channel image, as floats.
fn convert_channels(image: &[u8], c_in: usize, c_out: usize, plane: usize) -> Vec<Vec<f32>> {
    let channel = |c: usize| -> Vec<f32> { image[c * plane..(c + 1) * plane].iter().map(|&v| v as f32).collect() };
    if c_in == c_out {
        return (0..c_in).map(channel).collect();
    }
    // One gray plane: the luma of RGB, the mean of other channel counts, or the channel itself.
    let gray: Vec<f32> = match c_in {
        1 => channel(0),
        3 => (0..plane)
            .map(|p| 0.299 * image[p] as f32 + 0.587 * image[plane + p] as f32 + 0.114 * image[2 * plane + p] as f32)
            .collect(),
        _ => (0..plane)
            .map(|p| (0..c_in).map(|c| image[c * plane + p] as f32).sum::<f32>() / c_in as f32)
            .collect(),
    };
    vec![gray; c_out]
}

/// Bilinear resize with half-pixel centers (edges clamped), rounded to 0..=255.
pub fn resize_bilinear(src: &[f32], [h_in, w_in]: [usize; 2], [h_out, w_out]: [usize; 2]) -> Vec<u8> {
    let round = |v: f32| v.round().clamp(0.0, 255.0) as u8;
    if h_in == h_out && w_in == w_out {
        return src.iter().map(|&v| round(v)).collect();
    }
    let coord = |o: usize, n_in: usize, n_out: usize| -> (usize, usize, f32) {
        let x = ((o as f32 + 0.5) * n_in as f32 / n_out as f32 - 0.5).max(0.0);
        let x0 = (x.floor() as usize).min(n_in - 1);
        let x1 = (x0 + 1).min(n_in - 1);
        (x0, x1, x - x0 as f32)
    };
    let mut out = Vec::with_capacity(h_out * w_out);
    for y in 0..h_out {
        let (y0, y1, fy) = coord(y, h_in, h_out);
        for x in 0..w_out {
            let (x0, x1, fx) = coord(x, w_in, w_out);
            let top = src[y0 * w_in + x0] * (1.0 - fx) + src[y0 * w_in + x1] * fx;
            let bottom = src[y1 * w_in + x0] * (1.0 - fx) + src[y1 * w_in + x1] * fx;
            out.push(round(top * (1.0 - fy) + bottom * fy));
        }
    }
    out
}

/// `n` distinct image indices of a set of `len`, drawn at random (seeded) without
/// replacement; a budget beyond the set size is refused, naming both.
pub fn sample_indices(len: usize, n: usize, seed: u64, set: &str) -> Result<Vec<usize>, AttackError> {
    if n > len {
        return Err(AttackError::Config(format!(
            "the budget of {n} queries exceeds the {len} images of the query set {set} (images are drawn without replacement)"
        )));
    }
    use rand::seq::index::sample;
    use rand::SeedableRng;
    let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(seed);
    Ok(sample(&mut rng, len, n).into_vec())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_round_trip() {
        for s in ["animal-mnist", "fashion-mnist-train", "digits", "cifar10:/data/c10"] {
            assert_eq!(s.parse::<QuerySetId>().unwrap().to_string(), s);
        }
        assert!("cifar10:".parse::<QuerySetId>().is_err());
        assert!("mnist".parse::<QuerySetId>().unwrap_err().contains("animal-mnist"));
    }

    #[test]
    fn resize_keeps_constant_images_and_upscales_by_two_exactly() {
        let flat = vec![100.0f32; 64];
        assert!(resize_bilinear(&flat, [8, 8], [28, 28]).iter().all(|&v| v == 100));
        // 2x upscale of [0, 100]: half-pixel centers give 0, 25, 75, 100.
        let row = resize_bilinear(&[0.0, 100.0], [1, 2], [1, 4]);
        assert_eq!(row, vec![0, 25, 75, 100]);
    }

    #[test]
    fn converts_rgb_to_gray_and_back() {
        let rgb = Split::new([3, 1, 2], 2, vec![255, 0, 0, 255, 0, 0], vec![1]).unwrap();
        let gray = convert(&rgb, [1, 1, 2]);
        assert_eq!(gray.images, vec![76, 150]);
        let back = convert(&gray, [3, 2, 4]);
        assert_eq!(back.shape, [3, 2, 4]);
        assert_eq!(back.images.len(), 24);
        assert_eq!(back.labels, vec![1]);
    }

    #[test]
    fn sampling_is_seeded_and_without_replacement() {
        let a = sample_indices(100, 50, 3, "x").unwrap();
        assert_eq!(a, sample_indices(100, 50, 3, "x").unwrap());
        let mut sorted = a.clone();
        sorted.sort();
        sorted.dedup();
        assert_eq!(sorted.len(), 50);
        assert!(sample_indices(10, 11, 0, "tiny")
            .unwrap_err()
            .to_string()
            .contains("tiny"));
    }
}
