//! What every training loop shares: checkpoint files (safetensors with amisim metadata, written
//! to a temporary file and renamed), the warm-up-then-cosine learning rate, the progress bar.

use anyhow::{bail, Context, Result};
use burn::prelude::*;
use burn::store::{ModuleSnapshot, SafetensorsStore};
use indicatif::{ProgressBar, ProgressStyle};
use safetensors::tensor::TensorView;
use std::collections::HashMap;
use std::path::Path;

/// A module's weights as safetensors bytes (enum variants left out of the names, as the
/// config says which variant it is).
pub fn module_bytes<M: Module>(model: &M) -> Result<Vec<u8>> {
    let mut store = SafetensorsStore::from_bytes(None).skip_enum_variants(true);
    model
        .save_into(&mut store)
        .map_err(|e| anyhow::anyhow!("serialising the model: {e:?}"))?;
    store
        .get_bytes()
        .map_err(|e| anyhow::anyhow!("serialising the model: {e:?}"))
}

/// Writes `views` with `meta` to `path`: to a temporary file first, then renamed, so a
/// checkpoint is never half-written.
pub fn write_atomic(path: &Path, views: Vec<(String, TensorView<'_>)>, meta: HashMap<String, String>) -> Result<()> {
    if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
        std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
    }
    let tmp = path.with_extension("safetensors.tmp");
    safetensors::serialize_to_file(views, Some(meta), &tmp).with_context(|| format!("writing {}", tmp.display()))?;
    std::fs::rename(&tmp, path).with_context(|| format!("writing {}", path.display()))?;
    Ok(())
}

/// Writes `model`'s weights with `meta` to `path` atomically ([`write_atomic`]).
pub fn save_module<M: Module>(path: &Path, model: &M, meta: HashMap<String, String>) -> Result<()> {
    let bytes = module_bytes(model)?;
    let st = safetensors::SafeTensors::deserialize(&bytes)?;
    write_atomic(path, st.tensors(), meta)
}

/// Reads a safetensors file and its metadata; `what` names it in errors.
pub fn read_with_metadata(path: &Path, what: &str) -> Result<(Vec<u8>, HashMap<String, String>)> {
    let bytes = std::fs::read(path).with_context(|| format!("reading {what} {}", path.display()))?;
    let (_, meta) = safetensors::SafeTensors::read_metadata(&bytes)
        .with_context(|| format!("{}: not a safetensors file", path.display()))?;
    let meta = meta.metadata().clone().unwrap_or_default();
    Ok((bytes, meta))
}

/// Loads the weights in `bytes` (read from `path`) into `model`; every weight must fit.
pub fn load_weights<M: Module>(mut model: M, bytes: Vec<u8>, path: &Path) -> Result<M> {
    let result = model
        .load_from(&mut SafetensorsStore::from_bytes(Some(bytes)).skip_enum_variants(true))
        .map_err(|e| anyhow::anyhow!("{}: loading weights: {e:?}", path.display()))?;
    if !result.missing.is_empty() || !result.errors.is_empty() {
        bail!(
            "{}: the weights do not fit the model (missing {:?}, errors {:?})",
            path.display(),
            result.missing,
            result.errors
        );
    }
    Ok(model)
}

/// AdamW with decoupled `weight_decay` and the gradient's norm clipped to `clip`: every
/// training loop's optimiser.
pub fn adamw(weight_decay: f32, clip: f32) -> burn::optim::AdamWConfig {
    burn::optim::AdamWConfig::new()
        .with_weight_decay(weight_decay)
        .with_grad_clipping(Some(burn::grad_clipping::GradientClippingConfig::Norm(clip)))
}

/// Learning rate at `step` of `steps`: linear warm-up over `warmup` steps to `lr`, then cosine
/// decay to `min_lr`.
pub fn warmup_cosine(step: usize, steps: usize, warmup: usize, lr: f64, min_lr: f64) -> f64 {
    if step < warmup {
        return lr * (step + 1) as f64 / warmup as f64;
    }
    let span = (steps.saturating_sub(warmup)).max(1) as f64;
    let p = ((step - warmup) as f64 / span).min(1.0);
    min_lr + 0.5 * (lr - min_lr) * (1.0 + (std::f64::consts::PI * p).cos())
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
