//! Self-supervised objectives for the perception encoder, beside the JEPA world model's own:
//! the representation-learning family side by side.
//!
//! - [`masks`]: I-JEPA's multi-block masks over a grid of patches (context and target blocks as
//!   index lists), and V-JEPA's tubes of them through a clip.
//! - [`losses`]: each objective's loss as its official implementation computes it (SimCLR,
//!   BYOL, MAE, I-JEPA, V-JEPA, VICReg, LeJEPA's SIGReg), checked against PyTorch twins.
//! - [`augment`]: photometric augmentations for the two-view objectives.
//! - [`model`]: the objectives (I-JEPA, V-JEPA, MC-JEPA, SimCLR, BYOL, MAE, VICReg, SIGReg,
//!   energy-based) and their heads around one ViT encoder.
//! - [`train`]: the pretraining loop.
//! - [`compare`]: `amisim compare`, every objective on the same data and budget, probed and
//!   planned with; [`charts`] draws its table.

pub mod augment;
pub mod charts;
pub mod compare;
pub mod losses;
pub mod masks;
pub mod model;
pub mod train;
