//! The one interface every way of running an integer model implements: the reference
//! interpreter here, and later the functional model and the Verilator co-simulation.
//! The verification ladder and the attack oracle take any `Backend`.

/// Integer logits of a batch, plus the cycles each image took where the backend knows.
#[derive(Clone, Debug, PartialEq)]
pub struct Inference {
    pub logits: Vec<Vec<i32>>,
    pub cycles: Option<Vec<u64>>,
}

#[derive(Debug, thiserror::Error)]
pub enum BackendError {
    #[error("image batch of {len} bytes is not a whole number of {image_len}-byte images")]
    BatchShape { len: usize, image_len: usize },
    #[error("{backend}: {message}")]
    Failed { backend: String, message: String },
}

pub trait Backend: Send + Sync {
    /// Short name used in reports and `--backend` (e.g. "reference").
    fn name(&self) -> &str;

    /// Bytes per input image (`C*H*W` u8 codes).
    fn input_len(&self) -> usize;

    /// Run a batch of images laid out back to back, each `input_len()` u8 codes in
    /// `[C][H][W]` order, and return one logit vector per image.
    fn infer(&self, images: &[u8]) -> Result<Inference, BackendError>;

    /// Cut a batch into images, refusing a ragged batch.
    fn split_images<'a>(&self, images: &'a [u8]) -> Result<Vec<&'a [u8]>, BackendError> {
        let image_len = self.input_len();
        if image_len == 0 || !images.len().is_multiple_of(image_len) {
            return Err(BackendError::BatchShape {
                len: images.len(),
                image_len,
            });
        }
        Ok(images.chunks_exact(image_len).collect())
    }
}
