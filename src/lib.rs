//! amisim: a simulator for autonomous machine intelligence in the sense of LeCun's
//! "A Path Towards Autonomous Machine Intelligence".
//!
//! - [`world`]: scenes, deterministic physics, and the Bevy app that renders many
//!   environments into video observations in one frame.
//! - [`train`]: data collection by exploration (and, later, self-supervised training).
//! - [`bench`]: throughput measurements.

pub mod bench;
pub mod eval;
pub mod image;
pub mod perception;
pub mod train;
pub mod world;
pub mod world_model;
