//! `Split`: a set of labelled images held in memory, and the seeded,
//! platform-independent ways to cut it (subset, validation split, selection).

use std::fmt;

use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;

use crate::error::{DataError, Result};

/// Labelled images in memory. `images` holds `len()` images of `C*H*W` bytes
/// each, channel-major (CHW) within an image, pixel values 0..=255.
#[derive(Clone, PartialEq, Eq)]
pub struct Split {
    /// Image shape `[channels, height, width]`.
    pub shape: [usize; 3],
    /// Number of classes; every label is `< classes`.
    pub classes: usize,
    pub images: Vec<u8>,
    pub labels: Vec<u16>,
}

impl Split {
    /// Builds a split, checking that sizes agree and that labels are in range.
    pub fn new(shape: [usize; 3], classes: usize, images: Vec<u8>, labels: Vec<u16>) -> Result<Self> {
        let pixels = shape.iter().product::<usize>();
        if pixels == 0 || images.len() != labels.len().saturating_mul(pixels) {
            return Err(DataError::InvalidArgument(format!(
                "split with shape {shape:?} and {} labels needs {} image bytes, got {}",
                labels.len(),
                labels.len().saturating_mul(pixels),
                images.len()
            )));
        }
        if let Some((i, &l)) = labels.iter().enumerate().find(|(_, &l)| usize::from(l) >= classes) {
            return Err(DataError::InvalidArgument(format!(
                "label {l} of image {i} out of range (expected 0..{classes})"
            )));
        }
        Ok(Split {
            shape,
            classes,
            images,
            labels,
        })
    }

    /// An empty split of the given shape and class count.
    pub fn empty(shape: [usize; 3], classes: usize) -> Self {
        Split {
            shape,
            classes,
            images: Vec::new(),
            labels: Vec::new(),
        }
    }

    pub fn len(&self) -> usize {
        self.labels.len()
    }

    pub fn is_empty(&self) -> bool {
        self.labels.is_empty()
    }

    /// Bytes per image: `C*H*W`.
    pub fn image_len(&self) -> usize {
        self.shape.iter().product()
    }

    /// The pixels of image `i` (CHW). Panics if `i >= len()`.
    pub fn image(&self, i: usize) -> &[u8] {
        let n = self.image_len();
        &self.images[i * n..(i + 1) * n]
    }

    /// The label of image `i`. Panics if `i >= len()`.
    pub fn label(&self, i: usize) -> u16 {
        self.labels[i]
    }

    /// How many images each class has (index = class). Labels `>= classes`
    /// (possible only in a hand-built split) are not counted.
    pub fn class_counts(&self) -> Vec<usize> {
        let mut counts = vec![0; self.classes];
        for &l in &self.labels {
            if let Some(c) = counts.get_mut(usize::from(l)) {
                *c += 1;
            }
        }
        counts
    }

    /// The images at `indices`, in that order (repeats allowed).
    pub fn select(&self, indices: &[usize]) -> Result<Split> {
        if let Some(&bad) = indices.iter().find(|&&i| i >= self.len()) {
            return Err(DataError::InvalidArgument(format!(
                "index {bad} out of range for a split of {} images",
                self.len()
            )));
        }
        let mut images = Vec::with_capacity(indices.len() * self.image_len());
        for &i in indices {
            images.extend_from_slice(self.image(i));
        }
        let labels = indices.iter().map(|&i| self.labels[i]).collect();
        Ok(Split {
            shape: self.shape,
            classes: self.classes,
            images,
            labels,
        })
    }

    /// This split followed by `other`; both must have the same shape and class count.
    pub fn concat(&self, other: &Split) -> Result<Split> {
        if self.shape != other.shape || self.classes != other.classes {
            return Err(DataError::InvalidArgument(format!(
                "cannot concatenate a {:?}/{}-class split with a {:?}/{}-class split",
                self.shape, self.classes, other.shape, other.classes
            )));
        }
        let mut joined = self.clone();
        joined.images.extend_from_slice(&other.images);
        joined.labels.extend_from_slice(&other.labels);
        Ok(joined)
    }

    /// `limit` images drawn at random without replacement, in the order they
    /// were drawn (the same for the same seed on every platform). With
    /// `limit >= len()` the whole split is returned in its original order.
    pub fn subset(&self, limit: usize, seed: u64) -> Split {
        if limit >= self.len() {
            return self.clone();
        }
        let picked = partial_shuffle(self.len(), limit, seed);
        self.select_valid(&picked[..limit])
    }

    /// Splits off a validation set of `round(len * fraction)` images chosen by a
    /// seeded shuffle; returns `(train, validation)`, each keeping the original
    /// relative order of its images. `fraction` must lie in `[0, 1)`; a
    /// positive fraction that yields no validation image, or a split that
    /// leaves no training image, is an error.
    pub fn split_off_validation(&self, fraction: f64, seed: u64) -> Result<(Split, Split)> {
        let n_val = self.validation_size(fraction)?;
        let mut val = partial_shuffle(self.len(), n_val, seed);
        val.truncate(n_val);
        let mut in_val = vec![false; self.len()];
        for &i in &val {
            in_val[i] = true;
        }
        let train: Vec<usize> = (0..self.len()).filter(|&i| !in_val[i]).collect();
        val.sort_unstable();
        Ok((self.select_valid(&train), self.select_valid(&val)))
    }

    fn validation_size(&self, fraction: f64) -> Result<usize> {
        if !(0.0..1.0).contains(&fraction) {
            return Err(DataError::InvalidArgument(format!(
                "validation fraction {fraction} must be in [0, 1)"
            )));
        }
        let n_val = (self.len() as f64 * fraction).round() as usize;
        if fraction > 0.0 && n_val == 0 {
            return Err(DataError::InvalidArgument(format!(
                "validation fraction {fraction} of {} images gives no validation image",
                self.len()
            )));
        }
        if n_val >= self.len() && !self.is_empty() {
            return Err(DataError::InvalidArgument(format!(
                "validation fraction {fraction} of {} images leaves no training image",
                self.len()
            )));
        }
        Ok(n_val)
    }

    /// `select` for indices known to be in range.
    fn select_valid(&self, indices: &[usize]) -> Split {
        match self.select(indices) {
            Ok(split) => split,
            Err(e) => unreachable!("internal index out of range: {e}"),
        }
    }
}

/// `0..n` with its first `k` positions shuffled by a partial Fisher-Yates
/// shuffle seeded with ChaCha8. Draws use `u64` ranges so the result does not
/// depend on the platform's pointer width.
fn partial_shuffle(n: usize, k: usize, seed: u64) -> Vec<usize> {
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    let mut order: Vec<usize> = (0..n).collect();
    for i in 0..k.min(n) {
        let j = rng.gen_range(i as u64..n as u64) as usize;
        order.swap(i, j);
    }
    order
}

impl fmt::Debug for Split {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Split")
            .field("shape", &self.shape)
            .field("classes", &self.classes)
            .field("len", &self.len())
            .finish()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// 20 one-pixel images whose pixel value equals their index.
    fn numbered(n: usize) -> Split {
        let images: Vec<u8> = (0..n as u8).collect();
        let labels = (0..n as u16).map(|i| i % 10).collect();
        Split::new([1, 1, 1], 10, images, labels).unwrap()
    }

    #[test]
    fn new_checks_sizes_and_labels() {
        assert!(Split::new([1, 2, 2], 10, vec![0; 8], vec![0, 9]).is_ok());
        assert!(Split::new([1, 2, 2], 10, vec![0; 7], vec![0, 9]).is_err());
        let e = Split::new([1, 2, 2], 10, vec![0; 8], vec![0, 10]).unwrap_err();
        assert!(e.to_string().contains("label 10 of image 1"), "{e}");
    }

    #[test]
    fn image_and_label_accessors() {
        let s = Split::new([1, 1, 2], 3, vec![1, 2, 3, 4], vec![2, 0]).unwrap();
        assert_eq!(s.image(1), &[3, 4]);
        assert_eq!(s.label(0), 2);
        assert_eq!(s.class_counts(), vec![1, 0, 1]);
    }

    #[test]
    fn subset_is_deterministic_and_without_replacement() {
        let s = numbered(20);
        let a = s.subset(7, 42);
        assert_eq!(a, s.subset(7, 42));
        assert_ne!(a.images, s.subset(7, 43).images);
        let mut seen = a.images.clone();
        seen.sort_unstable();
        seen.dedup();
        assert_eq!(seen.len(), 7);
        for i in 0..a.len() {
            assert_eq!(a.label(i), u16::from(a.image(i)[0]) % 10);
        }
    }

    #[test]
    fn subset_order_is_pinned() {
        // Guards reproducibility across rand/platform changes: this exact
        // sequence must never change for seed 1.
        let picked = numbered(20).subset(5, 1).images;
        let again = partial_shuffle(20, 5, 1)[..5]
            .iter()
            .map(|&i| i as u8)
            .collect::<Vec<_>>();
        assert_eq!(picked, again);
        assert_eq!(picked, PINNED_SUBSET_SEED1);
    }

    const PINNED_SUBSET_SEED1: [u8; 5] = [8, 2, 7, 15, 11];

    #[test]
    fn subset_larger_than_split_keeps_original_order() {
        let s = numbered(20);
        assert_eq!(s.subset(20, 3), s);
        assert_eq!(s.subset(1000, 3), s);
        assert_eq!(s.subset(0, 3).len(), 0);
    }

    #[test]
    fn validation_split_partitions_deterministically() {
        let s = numbered(20);
        let (train, val) = s.split_off_validation(0.25, 9).unwrap();
        assert_eq!((train.len(), val.len()), (15, 5));
        assert_eq!(s.split_off_validation(0.25, 9).unwrap(), (train.clone(), val.clone()));
        let mut all: Vec<u8> = train.images.iter().chain(&val.images).copied().collect();
        all.sort_unstable();
        assert_eq!(all, s.images);
        assert!(train.images.windows(2).all(|w| w[0] < w[1]));
        assert!(val.images.windows(2).all(|w| w[0] < w[1]));
        assert_ne!(val, s.split_off_validation(0.25, 10).unwrap().1);
    }

    #[test]
    fn validation_split_rejects_bad_fractions() {
        let s = numbered(20);
        for f in [-0.1, 1.0, 1.5, f64::NAN, 0.01, 0.99] {
            assert!(s.split_off_validation(f, 0).is_err(), "fraction {f}");
        }
        let (train, val) = s.split_off_validation(0.0, 0).unwrap();
        assert_eq!((train.len(), val.len()), (20, 0));
    }

    #[test]
    fn select_and_concat() {
        let s = numbered(20);
        let picked = s.select(&[3, 3, 19]).unwrap();
        assert_eq!(picked.images, vec![3, 3, 19]);
        assert!(s.select(&[20]).is_err());
        let both = picked.concat(&s.select(&[0]).unwrap()).unwrap();
        assert_eq!(both.images, vec![3, 3, 19, 0]);
        let other = Split::empty([1, 2, 1], 10);
        assert!(s.concat(&other).is_err());
    }
}
