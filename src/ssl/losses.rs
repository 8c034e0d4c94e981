//! Losses of the self-supervised objectives, each written to give the number its official
//! implementation gives (same reductions, constants and scale), and checked against it:
//! `bench/ssl_parity.py` follows the official code line by line (the files and commits are
//! cited there) and writes the golden losses and gradients that `tests/integration/ssl_parity.rs`
//! asserts to 1e-5.
//!
//! | function | official |
//! |---|---|
//! | [`nt_xent`] | SimCLR `tf2/objective.py` `add_contrastive_loss` |
//! | [`byol`] | BYOL `cosine_loss_fn`, symmetrised by the caller |
//! | [`patchify`], [`mae`] | MAE `models_mae.py` `patchify`, `forward_loss` |
//! | [`ijepa`] | I-JEPA `apply_masks` + `forward_target` + smooth-L1 `loss_fn` |
//! | [`vjepa`] | V-JEPA `forward_target` + `loss_fn` (L1, `loss_exp` 1) |
//! | [`vicreg`] | VICReg `main_vicreg.py` `VICReg.forward` |
//! | [`sigreg`], [`lejepa`] | LeJEPA `EppsPulley` (17 knots on [0, 3]) sliced, and its loss |

use crate::ssl::model::gather_tokens;
use crate::world_model::loss::sigreg as world_sigreg;
use burn::prelude::*;
use burn::tensor::activation::{log_softmax, relu};

/// Rows scaled to unit length, `x / max(‖x‖, ε)` with ε² = 1e-12 (TensorFlow's
/// `l2_normalize`, PyTorch's `F.normalize` up to where the clamp sits).
fn unit_rows(x: Tensor<2>) -> Tensor<2> {
    let norm = x.clone().square().sum_dim(1).clamp_min(1e-12).sqrt();
    x / norm
}

/// NT-Xent (SimCLR's normalised temperature-scaled cross-entropy) of two views `a`, `b`
/// (`[n, d]`, row `i` of each from the same image): every embedding L2-normalised; view 1's
/// row `i` classifies its positive `b[i]` among `b` and the other rows of `a` (itself
/// excluded), and view 2's the same way round; the loss is the mean over the `n` images of the
/// two cross-entropies' sum, as `add_contrastive_loss` reduces it.
pub fn nt_xent(a: Tensor<2>, b: Tensor<2>, temperature: f32) -> Tensor<1> {
    let [n, _] = a.dims();
    let z = unit_rows(Tensor::cat(vec![a, b], 0));
    let sim = z.clone().matmul(z.transpose()) / temperature; // [2n, 2n]
    let device = sim.device();
    // Self-similarity out of the softmax: a large negative on the diagonal.
    let eye = Tensor::<2>::eye(2 * n, &device);
    let logp = log_softmax(sim - eye * 1e9, 1);
    // The positive of row i is row (i + n) mod 2n.
    let pos: Vec<f32> = (0..2 * n)
        .flat_map(|i| (0..2 * n).map(move |j| (j == (i + n) % (2 * n)) as u8 as f32))
        .collect();
    let pos = Tensor::<2>::from_data(TensorData::new(pos, [2 * n, 2 * n]), &device);
    -(logp * pos).sum() / n as f32
}

/// BYOL's regression loss: `2 − 2·cos(p, z)` per row of the online prediction `p` and the
/// (detached) target projection `z` (`[n, d]`), averaged over the rows. BYOL's loss is
/// `byol(p1, z2) + byol(p2, z1)`.
pub fn byol(p: Tensor<2>, z: Tensor<2>) -> Tensor<1> {
    let [n, _] = p.dims();
    let cos = (unit_rows(p) * unit_rows(z)).sum_dim(1); // [n, 1]
    (-cos * 2.0 + 2.0).sum() / n as f32
}

/// MAE's patches of images `[b, c, h, w]` (`h`, `w` multiples of `p`): `[b, patches, p·p·c]`,
/// patches row-major and each patch's pixels in `(row, column, channel)` order, as MAE's
/// `patchify` (`nchpwq → nhwpqc`) lays them out.
pub fn patchify(imgs: Tensor<4>, p: usize) -> Tensor<3> {
    let [b, c, h, w] = imgs.dims();
    let (gh, gw) = (h / p, w / p);
    imgs.slice([0..b, 0..c, 0..gh * p, 0..gw * p])
        .reshape([b, c, gh, p, gw, p])
        .permute([0, 2, 4, 3, 5, 1])
        .reshape([b, gh * gw, p * p * c])
}

/// MAE's reconstruction loss: the mean squared error of the predicted pixels of each patch
/// (`pred`, `target` `[b, patches, pixels]`, the target from [`patchify`]), averaged over the
/// masked patches only (`mask` `[b, patches]`, 1 where a patch was hidden from the encoder, 0
/// where it was seen). `norm_pix` normalises each target patch by its own mean and (unbiased)
/// variance first, MAE's `norm_pix_loss`.
pub fn mae(pred: Tensor<3>, target: Tensor<3>, mask: Tensor<2>, norm_pix: bool) -> Tensor<1> {
    let target = if norm_pix {
        let mean = target.clone().mean_dim(2);
        let var = target.clone().var(2);
        (target - mean) / (var + 1e-6).sqrt()
    } else {
        target
    };
    let per_patch = (pred - target).square().mean_dim(2).squeeze_dim::<2>(2); // [b, patches]
    (per_patch * mask.clone()).sum() / mask.sum()
}

/// Layer norm without learned parameters over the last dimension, ε 1e-5 (PyTorch's
/// `F.layer_norm` as I-JEPA and V-JEPA apply it to their targets).
pub fn layer_norm<const D: usize>(x: Tensor<D>) -> Tensor<D> {
    let mean = x.clone().mean_dim(D - 1);
    let centred = x - mean;
    let var = centred.clone().square().mean_dim(D - 1);
    centred / (var + 1e-5).sqrt()
}

/// The targets of I-JEPA and V-JEPA: the target encoder's tokens `h` `[b, n, w]`,
/// layer-normed, gathered at each target block (`blocks[m][i]`: the token indices of block
/// `m` of image `i`, equal lengths) and stacked block-major (row `m·b + i`), as `apply_masks`
/// stacks them.
pub fn jepa_targets(h: Tensor<3>, blocks: &[Vec<Vec<usize>>]) -> Tensor<3> {
    let h = layer_norm(h);
    let b = h.dims()[0];
    let at: Vec<Vec<usize>> = blocks.iter().flat_map(|m| m.iter().cloned()).collect();
    assert!(
        blocks.iter().all(|m| m.len() == b),
        "one index list per image in every block"
    );
    let blocks_n = blocks.len();
    gather_tokens(Tensor::cat(vec![h; blocks_n], 0), &at).detach()
}

/// I-JEPA's loss: smooth L1 (β = 1, mean over every element) between the predictions `z`
/// `[blocks·b, k, w]` (block-major) and [`jepa_targets`] of the target tokens `h`.
pub fn ijepa(z: Tensor<3>, h: Tensor<3>, blocks: &[Vec<Vec<usize>>]) -> Tensor<1> {
    let d = (z - jepa_targets(h, blocks)).abs();
    // 0.5·d² below 1, d − 0.5 above: 0.5·min(d, 1)² + (d − min(d, 1)).
    let m = d.clone().clamp_max(1.0);
    (m.clone().square() * 0.5 + d - m).mean()
}

/// V-JEPA's loss with `loss_exp` 1: the mean absolute error per target block, averaged over
/// the blocks (`z` block-major as in [`ijepa`]).
pub fn vjepa(z: Tensor<3>, h: Tensor<3>, blocks: &[Vec<Vec<usize>>]) -> Tensor<1> {
    // Every block has the same token count, so the mean of the blocks' means is the mean.
    (z - jepa_targets(h, blocks)).abs().mean()
}

/// VICReg's loss of two batches of embeddings `[n, d]` with weights `(sim, std, cov)`:
/// returns `(total, invariance, variance, covariance)`, invariance the MSE, variance the mean
/// of the two views' hinge on each dimension's std (the official `/ 2` each), covariance the
/// two views' squared off-diagonal covariances, each summed over the matrix and divided by
/// `d`, added.
pub fn vicreg(x: Tensor<2>, y: Tensor<2>, weights: (f32, f32, f32)) -> [Tensor<1>; 4] {
    let [n, d] = x.dims();
    let inv = (x.clone() - y.clone()).square().mean();
    let std_hinge = |z: Tensor<2>| relu(-(z.var(0) + 1e-4).sqrt() + 1.0).mean() / 2.0;
    let cov_term = |z: Tensor<2>| {
        let c = z.clone() - z.mean_dim(0);
        let cov = c.clone().transpose().matmul(c) / (n as f32 - 1.0).max(1.0);
        let diag = cov.clone() * Tensor::eye(d, &cov.device());
        (cov.square().sum() - diag.square().sum()) / d as f32
    };
    let var = std_hinge(x.clone()) + std_hinge(y.clone());
    let cov = cov_term(x) + cov_term(y);
    let (ws, wv, wc) = weights;
    let total = inv.clone() * ws + var.clone() * wv + cov.clone() * wc;
    [total, inv, var, cov]
}

/// SIGReg as LeJEPA computes it, for views `[v, n, d]` and slice directions `[d, m]`: the
/// sliced Epps–Pulley statistic ([`crate::world_model::loss::sigreg`]) of each view, averaged
/// over the views.
pub fn sigreg(views: Tensor<3>, directions: Tensor<2>) -> Tensor<1> {
    let [v, n, d] = views.dims();
    let per_view: Vec<Tensor<1>> = (0..v)
        .map(|i| {
            world_sigreg(
                views.clone().slice([i..i + 1, 0..n, 0..d]).reshape([n, d]),
                directions.clone(),
            )
        })
        .collect();
    Tensor::cat(per_view, 0).mean()
}

/// LeJEPA's loss of views `[v, n, d]`: `λ·SIGReg + (1 − λ)·invariance`, invariance the mean
/// squared distance of every view from the views' mean. Returns `(total, invariance, sigreg)`.
pub fn lejepa(views: Tensor<3>, directions: Tensor<2>, lambda: f32) -> [Tensor<1>; 3] {
    let centre = views.clone().mean_dim(0);
    let inv = (centre - views.clone()).square().mean();
    let sig = sigreg(views, directions);
    let total = sig.clone() * lambda + inv.clone() * (1.0 - lambda);
    [total, inv, sig]
}
