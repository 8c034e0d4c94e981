//! Episodes of the world as data: collection by exploration policies, the safetensors dataset
//! format on disk, and episodes in memory (what training and the probes read).

pub mod collect;
pub mod dataset;
pub mod episodes;

pub use episodes::Episodes;
