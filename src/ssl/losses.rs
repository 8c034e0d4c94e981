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
