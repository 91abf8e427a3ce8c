//! Mini-batches from an in-memory dataset split: a seeded shuffle per epoch and
//! optional augmentation (random crop with zero padding, horizontal flip), both
//! derived from `(seed, epoch)` only, so a resumed run sees the same batches.

use datasets::Split;
use rand::seq::SliceRandom;
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use serde::{Deserialize, Serialize};
use tch::{Kind, Tensor};

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize, clap::ValueEnum)]
#[serde(rename_all = "kebab-case")]
pub enum Augment {
    None,
    /// Random crop after zero-padding each side by 2 pixels (28x28) or 4 (32x32).
    Crop,
    /// Random crop and random horizontal flip.
    CropFlip,
}

impl Augment {
    /// The usual choice: crop+flip for 3-channel (CIFAR) images, none otherwise.
    pub fn default_for(shape: [usize; 3]) -> Self {
        if shape[0] == 3 {
            Augment::CropFlip
        } else {
            Augment::None
        }
    }
}

/// One mini-batch: pixel codes `[N, C, H, W]` as floats 0..=255, and int64 labels.
pub struct Batch {
    pub pixels: Tensor,
    pub labels: Tensor,
}

/// Deterministic per-epoch RNG.
fn epoch_rng(seed: u64, epoch: usize, stream: u64) -> ChaCha8Rng {
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    rng.set_stream(stream.wrapping_mul(1_000_003).wrapping_add(epoch as u64));
    rng
}

/// The batches of one training epoch: shuffled, augmented.
pub fn epoch_batches(
    data: &Split,
    batch_size: usize,
    seed: u64,
    epoch: usize,
    augment: Augment,
) -> impl Iterator<Item = Batch> + '_ {
    let mut order: Vec<usize> = (0..data.len()).collect();
    order.shuffle(&mut epoch_rng(seed, epoch, 1));
    let mut aug_rng = epoch_rng(seed, epoch, 2);
    let chunks: Vec<Vec<usize>> = order.chunks(batch_size).map(<[usize]>::to_vec).collect();
    chunks
        .into_iter()
        .map(move |idx| make_batch(data, &idx, augment, &mut aug_rng))
}

/// Batches in dataset order without augmentation (evaluation).
pub fn eval_batches(data: &Split, batch_size: usize) -> impl Iterator<Item = Batch> + '_ {
    let mut rng = ChaCha8Rng::seed_from_u64(0);
    (0..data.len()).step_by(batch_size.max(1)).map(move |start| {
        let idx: Vec<usize> = (start..(start + batch_size).min(data.len())).collect();
        make_batch(data, &idx, Augment::None, &mut rng)
    })
}

fn make_batch(data: &Split, idx: &[usize], augment: Augment, rng: &mut ChaCha8Rng) -> Batch {
    let len = data.image_len();
    let mut pixels = Vec::with_capacity(idx.len() * len);
    for &i in idx {
        let image = data.image(i);
        match augment {
            Augment::None => pixels.extend_from_slice(image),
            Augment::Crop | Augment::CropFlip => {
                pixels.extend(augment_image(image, data.shape, augment == Augment::CropFlip, rng))
            }
        }
    }
    let [c, h, w] = data.shape.map(|d| d as i64);
    let labels: Vec<i64> = idx.iter().map(|&i| data.label(i) as i64).collect();
    Batch {
        pixels: Tensor::from_slice(&pixels)
            .to_kind(Kind::Float)
            .view([idx.len() as i64, c, h, w]),
        labels: Tensor::from_slice(&labels),
    }
}

/// Random crop of the zero-padded image (and a random mirror when `flip`).
fn augment_image(image: &[u8], shape: [usize; 3], flip: bool, rng: &mut ChaCha8Rng) -> Vec<u8> {
    let [c, h, w] = shape;
    let pad = if h >= 32 { 4 } else { 2 };
    let dy = rng.gen_range(0..=2 * pad) as isize - pad as isize;
    let dx = rng.gen_range(0..=2 * pad) as isize - pad as isize;
    let mirror = flip && rng.gen_bool(0.5);
    let mut out = vec![0u8; image.len()];
    for ch in 0..c {
        for y in 0..h {
            let sy = y as isize + dy;
            if sy < 0 || sy >= h as isize {
                continue;
            }
            for x in 0..w {
                let xx = if mirror { w - 1 - x } else { x };
                let sx = xx as isize + dx;
                if sx >= 0 && sx < w as isize {
                    out[(ch * h + y) * w + x] = image[(ch * h + sy as usize) * w + sx as usize];
                }
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn split(n: usize) -> Split {
        let images = (0..n * 4).map(|v| v as u8).collect();
        let labels = (0..n).map(|v| (v % 3) as u16).collect();
        Split::new([1, 2, 2], 3, images, labels).unwrap()
    }

    fn labels_of(batches: impl Iterator<Item = Batch>) -> Vec<i64> {
        batches.flat_map(|b| Vec::<i64>::try_from(b.labels).unwrap()).collect()
    }

    #[test]
    fn epochs_are_reproducible_and_differ() {
        let data = split(30);
        let a = labels_of(epoch_batches(&data, 8, 7, 0, Augment::CropFlip));
        let b = labels_of(epoch_batches(&data, 8, 7, 0, Augment::CropFlip));
        let c = labels_of(epoch_batches(&data, 8, 7, 1, Augment::CropFlip));
        assert_eq!(a, b);
        assert_ne!(a, c);
        assert_eq!(a.len(), 30);
    }

    #[test]
    fn eval_batches_cover_the_split_in_order() {
        let data = split(10);
        let sizes: Vec<i64> = eval_batches(&data, 4).map(|b| b.pixels.size()[0]).collect();
        assert_eq!(sizes, vec![4, 4, 2]);
        let first = eval_batches(&data, 4).next().unwrap();
        assert_eq!(first.pixels.double_value(&[1, 0, 0, 1]), 5.0);
    }

    #[test]
    fn crop_shifts_and_zero_fills() {
        let mut rng = ChaCha8Rng::seed_from_u64(3);
        let image: Vec<u8> = (1..=16).collect();
        for _ in 0..20 {
            let out = augment_image(&image, [1, 4, 4], true, &mut rng);
            assert_eq!(out.len(), 16);
            // Every output pixel is either padding or some input pixel.
            assert!(out.iter().all(|&v| v == 0 || image.contains(&v)));
        }
    }
}
