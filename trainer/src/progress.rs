//! Progress display of training epochs (stderr; hidden when asked or not a terminal).

use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};

pub fn epoch_bar(images: u64, epoch: usize, epochs: usize, visible: bool) -> ProgressBar {
    let bar = ProgressBar::new(images);
    if !visible {
        bar.set_draw_target(ProgressDrawTarget::hidden());
    }
    let template = format!(
        "epoch {}/{epochs} [{{bar:25}}] {{pos}}/{{len}} {{per_sec}} {{msg}} (eta {{eta}})",
        epoch + 1
    );
    bar.set_style(
        ProgressStyle::with_template(&template)
            .expect("valid template")
            .progress_chars("=> "),
    );
    bar
}
