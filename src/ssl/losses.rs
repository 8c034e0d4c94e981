//! Losses of the joint-embedding and generative baselines.

use burn::prelude::*;
use burn::tensor::activation::log_softmax;

/// NT-Xent (SimCLR's normalised temperature-scaled cross-entropy) of two views `a`, `b`
/// (`[n, d]`, row `i` of each from the same image): the `2n` embeddings are L2-normalised;
/// each one's positive is its other view and its negatives the other `2n − 2`; the loss is the
/// mean over all `2n` of `−log softmax(sim / τ)` at the positive, self-similarity excluded.
pub fn nt_xent(a: Tensor<2>, b: Tensor<2>, temperature: f32) -> Tensor<1> {
    let [n, _] = a.dims();
    let z = Tensor::cat(vec![a, b], 0);
    let norm = (z.clone().square().sum_dim(1) + 1e-12).sqrt();
    let z = z / norm;
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
    -(logp * pos).sum() / (2 * n) as f32
}

/// BYOL's regression loss: `2 − 2·cos(p, z)` per row of the online prediction `p` and the
/// (detached) target projection `z` (`[n, d]`), averaged over the rows.
pub fn byol(p: Tensor<2>, z: Tensor<2>) -> Tensor<1> {
    let [n, _] = p.dims();
    let dot = (p.clone() * z.clone()).sum_dim(1);
    let np = (p.square().sum_dim(1) + 1e-12).sqrt();
    let nz = (z.square().sum_dim(1) + 1e-12).sqrt();
    let cos = dot / (np * nz); // [n, 1]
    (-cos * 2.0 + 2.0).sum() / n as f32
}

/// MAE's reconstruction loss: the mean squared error of the predicted pixels of each patch
/// (`pred`, `target` `[b, patches, pixels]`), averaged over the masked patches only (`mask`
/// `[b, patches]`, 1 where a patch was hidden from the encoder, 0 where it was seen).
pub fn mae(pred: Tensor<3>, target: Tensor<3>, mask: Tensor<2>) -> Tensor<1> {
    let per_patch = (pred - target).square().mean_dim(2).squeeze_dim::<2>(2); // [b, patches]
    let hidden = mask.clone().sum();
    (per_patch * mask).sum() / (hidden + 1e-12)
}
