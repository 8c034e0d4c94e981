//! Self-supervised pretraining of every trained part, in order: the JEPA world model (level 1),
//! the level-2 model, the critic and the mode-1 policy. The files they write are read by
//! `amisim_core::checkpoint`; the data they learn from comes from [`crate::data`].

pub mod critic;
pub mod jepa;
pub mod level2;
pub mod mode1;
pub mod recipe;
pub mod store;
