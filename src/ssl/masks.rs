//! I-JEPA's multi-block masking: on a `rows × cols` grid of patches, `targets` blocks, each
//! covering a share of the grid drawn in `target_scale` with an aspect ratio (height / width)
//! drawn in `target_aspect`, and one context block covering a share drawn in `context_scale`
//! (aspect 1) with every target patch removed from it. Masks are lists of patch indices
//! (`row · cols + col`), which is what a ViT gathers its tokens with.

use rand::{Rng, RngExt};
use serde::{Deserialize, Serialize};

/// Settings of the mask sampler (I-JEPA's defaults).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct MaskConfig {
    pub targets: usize,
    pub target_scale: (f32, f32),
    pub target_aspect: (f32, f32),
    pub context_scale: (f32, f32),
    /// Fewest patches the context keeps after the targets are removed (redrawn otherwise).
    pub min_context: usize,
}

impl Default for MaskConfig {
    fn default() -> Self {
        MaskConfig {
            targets: 4,
            target_scale: (0.15, 0.2),
            target_aspect: (0.75, 1.5),
            context_scale: (0.85, 1.0),
            min_context: 4,
        }
    }
}

impl MaskConfig {
    /// Settings that cannot work, named by their keys.
    pub fn validate(&self) -> Result<(), String> {
        if self.targets == 0 {
            return Err("masks.targets must be ≥ 1".into());
        }
        for (name, (lo, hi)) in [
            ("target_scale", self.target_scale),
            ("target_aspect", self.target_aspect),
            ("context_scale", self.context_scale),
        ] {
            if !(lo.is_finite() && hi.is_finite() && lo > 0.0 && lo <= hi) {
                return Err(format!("masks.{name} = ({lo}, {hi}) must be positive with low ≤ high"));
            }
        }
        if self.target_scale.1 > 1.0 || self.context_scale.1 > 1.0 {
            return Err("masks: a block cannot cover more than the whole grid (scale ≤ 1)".into());
        }
        Ok(())
    }
}

/// One draw: the context's patch indices and each target block's, all sorted.
#[derive(Debug, Clone, PartialEq)]
pub struct Masks {
    pub context: Vec<usize>,
    pub targets: Vec<Vec<usize>>,
}

/// A block's size on the grid for a share `scale` of `rows · cols` patches and an aspect ratio
/// (height / width), clipped to the grid and at least one patch.
pub fn block_size(rows: usize, cols: usize, scale: f32, aspect: f32) -> (usize, usize) {
    let area = scale * (rows * cols) as f32;
    let h = (area * aspect).sqrt().round() as usize;
    let w = (area / aspect).sqrt().round() as usize;
    (h.clamp(1, rows), w.clamp(1, cols))
}

/// The patches of a `h × w` block at a uniformly drawn position.
fn block(rows: usize, cols: usize, h: usize, w: usize, rng: &mut impl Rng) -> Vec<usize> {
    let top = rng.random_range(0..=rows - h);
    let left = rng.random_range(0..=cols - w);
    (top..top + h)
        .flat_map(|r| (left..left + w).map(move |c| r * cols + c))
        .collect()
}

/// Draws the masks of one image. Tries up to 20 times for a context of at least
/// `min_context` patches; the last draw stands otherwise.
pub fn sample(cfg: &MaskConfig, rows: usize, cols: usize, rng: &mut impl Rng) -> Masks {
    let mut last = None;
    for _ in 0..20 {
        let s = rng.random_range(cfg.target_scale.0..=cfg.target_scale.1);
        let a = rng.random_range(cfg.target_aspect.0..=cfg.target_aspect.1);
        // All target blocks of an image share a size, as in I-JEPA.
        let (h, w) = block_size(rows, cols, s, a);
        let targets: Vec<Vec<usize>> = (0..cfg.targets).map(|_| block(rows, cols, h, w, rng)).collect();
        let cs = rng.random_range(cfg.context_scale.0..=cfg.context_scale.1);
        let (ch, cw) = block_size(rows, cols, cs, 1.0);
        let mut hidden = vec![false; rows * cols];
        for t in &targets {
            for &i in t {
                hidden[i] = true;
            }
        }
        let context: Vec<usize> = block(rows, cols, ch, cw, rng)
            .into_iter()
            .filter(|&i| !hidden[i])
            .collect();
        let ok = context.len() >= cfg.min_context;
        last = Some(Masks { context, targets });
        if ok {
            break;
        }
    }
    last.expect("at least one draw")
}

/// V-JEPA's tube masks over a clip of `frames` frames: one draw of [`sample`] on the spatial
/// grid, each block extended through every frame (token index `t · rows · cols + patch`), so
/// the model cannot fill a target in from the same place in a neighbouring frame.
pub fn sample_tubes(cfg: &MaskConfig, frames: usize, rows: usize, cols: usize, rng: &mut impl Rng) -> Masks {
    let m = sample(cfg, rows, cols, rng);
    let through = |idx: &[usize]| -> Vec<usize> {
        (0..frames)
            .flat_map(|t| idx.iter().map(move |&i| t * rows * cols + i))
            .collect()
    };
    Masks {
        context: through(&m.context),
        targets: m.targets.iter().map(|t| through(t)).collect(),
    }
}
