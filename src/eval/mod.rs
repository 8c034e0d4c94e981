//! Headless evaluation: probes of what the world model's latents hold.

pub mod jump_probe;
pub mod probe;
pub mod run;
