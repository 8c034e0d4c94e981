//! Self-supervised pretraining of every trained part starts from data: collection by
//! exploration lives here.

pub mod collect;
pub mod dataset;
