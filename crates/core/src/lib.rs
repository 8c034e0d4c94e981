//! amisim's learning core: the AMI modules without the world that renders them. Perception,
//! the world models, the cost, the memories, the actor, the configurator and the agent that
//! puts them together, and their model files. It imports no Bevy and no training, evaluation
//! or window code: those live in `amisim`, which uses this crate.
//!
//! - [`agent`]: the one object that acts, built from an [`agent::AgentSpec`] and its model files.
//! - [`perception`]: encoders from frames to latents (conv, ViT).
//! - [`world_model`]: the level-1 JEPA (latent and spatial predictors), the level-2 model.
//! - [`cost`]: the energy of imagined futures, and the critic.
//! - [`memory`]: short-term, episodic, and blocked-move memory.
//! - [`actor`]: planners (CEM, MPPI, gradient), receding-horizon control, the hierarchy, mode 1.
//! - [`configurator`]: settings for the task, and new ones when the agent stalls.
//! - [`checkpoint`], [`goal_net`]: model files; [`file`]: RON files with errors that say where.

pub mod actor;
pub mod agent;
pub mod checkpoint;
pub mod configurator;
pub mod cost;
pub mod file;
pub mod goal_net;
mod matmul;
pub mod memory;
pub mod perception;
pub mod world_model;

/// A tensor's values, row-major, as `f32` (every model here computes in `f32`).
pub fn values<const D: usize>(t: burn::tensor::Tensor<D>) -> Vec<f32> {
    t.into_data()
        .convert::<f32>()
        .try_into_vec::<f32>()
        .expect("f32 tensor")
}

/// Writes `bytes` to `path` atomically: the parent folder is created, the bytes go to a
/// temporary file beside it, which is then renamed, so a reader never sees half a file.
pub fn write_file_atomic(path: &std::path::Path, bytes: impl AsRef<[u8]>) -> anyhow::Result<()> {
    use anyhow::Context;
    if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
        std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
    }
    let mut name = path.file_name().unwrap_or_default().to_os_string();
    name.push(".tmp");
    let tmp = path.with_file_name(name);
    std::fs::write(&tmp, bytes).with_context(|| format!("writing {}", tmp.display()))?;
    std::fs::rename(&tmp, path).with_context(|| format!("writing {}", path.display()))
}

/// The little-endian f32 values of `bytes` (a safetensors F32 tensor's data).
pub fn le_f32s(bytes: &[u8]) -> impl Iterator<Item = f32> + '_ {
    bytes
        .chunks_exact(4)
        .map(|c| f32::from_le_bytes([c[0], c[1], c[2], c[3]]))
}

/// Checks settings that count something: the first of `values` that is 0 is an error naming
/// it as `prefix.name`.
pub fn require_counts(prefix: &str, values: &[(&str, usize)]) -> Result<(), String> {
    match values.iter().find(|(_, v)| *v == 0) {
        Some((name, _)) => Err(format!("{prefix}.{name} must be ≥ 1")),
        None => Ok(()),
    }
}

/// Checks settings that must be positive numbers: the first of `values` that is not finite
/// and above 0 is an error naming it as `prefix.name` with its value.
pub fn require_positive(prefix: &str, values: &[(&str, f32)]) -> Result<(), String> {
    match values.iter().find(|(_, v)| !(v.is_finite() && *v > 0.0)) {
        Some((name, v)) => Err(format!("{prefix}.{name} = {v} must be a positive number")),
        None => Ok(()),
    }
}

/// For `skip_serializing_if`: a count left at zero is not written.
pub fn is_zero<T: Default + PartialEq>(v: &T) -> bool {
    *v == T::default()
}

/// Rows `idx` of a row-major matrix `x` with rows of `d` values, one after another.
pub fn gather_rows(x: &[f32], d: usize, idx: &[usize]) -> Vec<f32> {
    idx.iter()
        .flat_map(|&i| x[i * d..(i + 1) * d].iter().copied())
        .collect()
}
