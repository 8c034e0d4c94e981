//! amisim: a simulator for autonomous machine intelligence in the sense of LeCun's
//! "A Path Towards Autonomous Machine Intelligence".
//!
//! - [`world`]: scenes, deterministic physics, and the Bevy app that renders many
//!   environments into video observations in one frame.
//! - [`train`]: data collection by exploration (and, later, self-supervised training).
//! - [`bench`]: throughput measurements.
//! - [`ui`]: `amisim run`, a window onto a scene with an overlay that inspects planning live.

pub mod actor;
pub mod agent;
pub mod bench;
pub mod configurator;
pub mod cost;
pub mod eval;
pub mod goal_net;
pub mod image;
mod matmul;
pub mod memory;
pub mod perception;
pub mod ssl;
pub mod train;
pub mod ui;
pub mod world;
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

/// Keeps freed memory in the process instead of handing it back to the kernel at once.
///
/// A training step allocates and frees the same few hundred tensors (many of several MB) each
/// time; with glibc's defaults every one of them is a fresh `mmap` that page-faults in and an
/// `munmap` that shoots down TLBs on every core. Measured on 2 cores with `amisim bench train`
/// (B=32, T=17): 45 % of the time in the kernel before, 1.4× the steps per second after.
/// Call once, at the start of `main`, before other threads exist.
pub fn tune_allocator() {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    // SAFETY: `mallopt` only changes glibc's allocation thresholds; called before any thread.
    unsafe {
        libc::mallopt(libc::M_MMAP_THRESHOLD, 32 << 20); // glibc's maximum
        libc::mallopt(libc::M_TRIM_THRESHOLD, i32::MAX);
        libc::mallopt(libc::M_TOP_PAD, 64 << 20);
    }
}
