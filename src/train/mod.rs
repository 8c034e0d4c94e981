//! Self-supervised pretraining: data collection by exploration, the episode data, and the
//! training loop of the JEPA world model.

pub mod collect;
pub mod data;
pub mod dataset;
pub mod jepa;
