//! amisim: a simulator for autonomous machine intelligence in the sense of LeCun's
//! "A Path Towards Autonomous Machine Intelligence".
//!
//! The learning core — perception, world models, cost, memory, actor, configurator and the
//! agent — is the `amisim_core` crate (no Bevy), re-exported here. This crate adds the world
//! and everything that runs the agent in it:
//!
//! - [`world`]: scenes, deterministic physics, and the Bevy app that renders many
//!   environments into video observations in one frame.
//! - [`agents`]: agents by name (the shipped specs in `assets/<scene>/`, spec files, baselines).
//! - [`episode`]: the episode loop's world side, shared by `eval`, `run` and distillation.
//! - [`data`]: collected episodes and the dataset format; [`probe`]: what latents hold.
//! - [`train`]: self-supervised training of every part; [`ssl`]: the objectives compared.
//! - [`eval`]: agents in goal-reaching episodes, and the report.
//! - [`bench`]: throughput measurements.
//! - [`ui`]: `amisim run`, a window onto a scene with an overlay that inspects planning live.

pub use amisim_core::{
    actor, agent, checkpoint, configurator, cost, file, gather_rows, goal_net, is_zero, le_f32s, memory, perception,
    require_counts, require_positive, values, world_model, write_file_atomic,
};

pub mod agents;
pub mod bench;
pub mod config;
pub mod data;
pub mod episode;
pub mod eval;
pub mod image;
pub mod jpeg;
pub mod lock;
pub mod probe;
pub mod ssl;
pub mod train;
pub mod ui;
pub mod world;

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
