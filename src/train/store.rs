//! What every training loop shares: checkpoint files (safetensors with amisim metadata, written
//! to a temporary file and renamed), the warm-up-then-cosine learning rate, the progress bar.

use indicatif::{ProgressBar, ProgressStyle};

pub use crate::checkpoint::{load_weights, module_bytes, read_with_metadata, save_module, warmup_cosine, write_atomic};

/// AdamW with decoupled `weight_decay` and the gradient's norm clipped to `clip`: every
/// training loop's optimiser.
pub fn adamw(weight_decay: f32, clip: f32) -> burn::optim::AdamWConfig {
    burn::optim::AdamWConfig::new()
        .with_weight_decay(weight_decay)
        .with_grad_clipping(Some(burn::grad_clipping::GradientClippingConfig::Norm(clip)))
}

/// A progress bar over `steps` named `name` (hidden without `show`: the loops then log a line
/// every few steps instead).
pub fn steps_bar(name: &str, steps: usize, show: bool) -> ProgressBar {
    let bar = if show {
        ProgressBar::new(steps as u64)
    } else {
        ProgressBar::hidden()
    };
    bar.set_style(
        ProgressStyle::with_template(&format!("{name} [{{bar:25}}] {{pos}}/{{len}} {{msg}}"))
            .expect("template")
            .progress_chars("=> "),
    );
    bar
}
