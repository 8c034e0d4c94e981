//! Self-supervised objectives for the perception encoder, beside the JEPA world model's own:
//! the pieces the representation-learning family shares.
//!
//! - [`masks`]: I-JEPA's multi-block masks over a grid of patches (context and target blocks as
//!   index lists), and V-JEPA's tubes of them through a clip.
//! - [`losses`]: NT-Xent (SimCLR), the BYOL regression loss, the MAE loss over masked patches.

pub mod losses;
pub mod masks;
