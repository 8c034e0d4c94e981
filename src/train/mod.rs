//! Self-supervised pretraining: data collection by exploration, the episode data, and the
//! training loops of the JEPA world model (level 1) and of the level-2 model.

pub mod collect;
pub mod critic;
pub mod data;
pub mod dataset;
pub mod jepa;
pub mod level2;
pub mod mode1;
pub mod store;
