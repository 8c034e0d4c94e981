//! Loss terms of JEPA training, each a function of tensors so it can be tested against a
//! hand-computed value. Latents are `[n, d]` unless said otherwise.

use burn::prelude::*;
use burn::tensor::activation::relu;

/// Mean squared error over every element.
pub fn mse<const D: usize>(a: Tensor<D>, b: Tensor<D>) -> Tensor<1> {
    (a - b).square().mean()
}

/// VICReg variance term: `mean_d relu(1 − sqrt(var_d(z) + 1e-4))`, variance over the batch
/// (unbiased). Pushes every dimension to vary across samples.
pub fn variance(z: Tensor<2>) -> Tensor<1> {
    let std = (z.var(0) + 1e-4).sqrt(); // [1, d]
    relu(-std + 1.0).mean()
}

/// VICReg covariance term: squared off-diagonal entries of the batch covariance, summed and
/// divided by `d`. Pushes dimensions to carry different information.
pub fn covariance(z: Tensor<2>) -> Tensor<1> {
    let [n, d] = z.dims();
    let centred = z.clone() - z.mean_dim(0); // [n, d]
    let cov = centred.clone().transpose().matmul(centred) / (n as f32 - 1.0).max(1.0); // [d, d]
    let diag = cov.clone() * Tensor::eye(d, &cov.device());
    (cov.square().sum() - diag.square().sum()) / d as f32
}

/// Temporal smoothness: mean squared change between consecutive latents of `[b, t, d]`.
pub fn temporal_smoothness(z: Tensor<3>) -> Tensor<1> {
    let [b, t, d] = z.dims();
    if t < 2 {
        return Tensor::zeros([1], &z.device());
    }
    let next = z.clone().slice([0..b, 1..t, 0..d]);
    let prev = z.slice([0..b, 0..t - 1, 0..d]);
    mse(next, prev)
}

/// Context spread: mean squared deviation of each latent of `[b, t, d]` from its window's
/// mean (zero when every window's latents are constant in time).
pub fn context_spread(z: Tensor<3>) -> Tensor<1> {
    let mean = z.clone().mean_dim(1); // [b, 1, d]
    mse(z, mean)
}

/// Context contrast (InfoNCE over windows): the first and last latents of each window of
/// `[b, t, d]`, scaled to unit length, must pick each other out among all the windows'
/// last latents, with temperature `tau`. Unlike holding latents still (which any
/// episode-level feature satisfies), this rewards carrying everything that tells episodes
/// apart: two windows with the same wall column are told apart only by their door rows.
/// `negatives` `[q, d]` (unit rows, no gradient: earlier batches' last latents) join the
/// windows' own as further wrong answers: among a few dozen windows the wall's column alone
/// tells nearly all apart, among hundreds only the door row does.
pub fn context_contrast(z: Tensor<3>, tau: f32, negatives: Option<Tensor<2>>) -> Tensor<1> {
    let [b, t, d] = z.dims();
    let device = z.device();
    let first = unit_rows(z.clone().slice([0..b, 0..1, 0..d]).reshape([b, d]));
    let last = unit_rows(z.slice([0..b, t - 1..t, 0..d]).reshape([b, d]));
    let answers = match negatives {
        Some(n) => Tensor::cat(vec![last, n], 0),
        None => last,
    };
    let logits = first.matmul(answers.transpose()) / tau; // [b, b + q]
    let log_p = burn::tensor::activation::log_softmax(logits, 1).slice([0..b, 0..b]);
    let diag = log_p * Tensor::eye(b, &device);
    -diag.sum() / b as f32
}

/// Each row of `x` `[n, d]` scaled to unit length.
pub fn unit_rows(x: Tensor<2>) -> Tensor<2> {
    let norm = (x.clone().square().sum_dim(1) + 1e-8).sqrt();
    x / norm
}

/// SIGReg (sketched isotropic Gaussian regularisation) as LeJEPA computes it, of latents
/// `[n, d]` along slice directions `[d, m]` (any length; each is scaled to unit length here):
/// per slice the Epps–Pulley statistic
/// `N·Σ_k w_k [(mean cos(t_k p) − e^{−t_k²/2})² + (mean sin(t_k p))²]` with 17 knots `t_k` on
/// `[0, 3]` and trapezoid weights doubled for the symmetric half (`2Δt` inside, `Δt` at the
/// ends) times `e^{−t_k²/2}` (LeJEPA's `EppsPulley`), averaged over the slices.
pub fn sigreg(z: Tensor<2>, directions: Tensor<2>) -> Tensor<1> {
    let n = z.dims()[0];
    let dirs = directions.clone() / directions.square().sum_dim(0).sqrt();
    let p = z.matmul(dirs); // [n, m]
    let m = p.dims()[1];
    let knots = 17;
    let dt = 3.0 / (knots - 1) as f32;
    let mut total: Option<Tensor<1>> = None;
    for k in 0..knots {
        let t = k as f32 * dt;
        let phi = (-t * t / 2.0).exp();
        let w = if k == 0 || k == knots - 1 { dt } else { 2.0 * dt } * phi;
        let tp = p.clone() * t;
        let re = tp.clone().cos().mean_dim(0) - phi; // [1, m]
        let im = tp.sin().mean_dim(0);
        let term = (re.square() + im.square()).sum() * (w * n as f32 / m as f32);
        total = Some(match total {
            Some(acc) => acc + term,
            None => term,
        });
    }
    total.expect("at least one knot")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn t2(v: &[f32], shape: [usize; 2]) -> Tensor<2> {
        Tensor::from_data(TensorData::new(v.to_vec(), shape), &Device::flex())
    }

    fn scalar(t: Tensor<1>) -> f32 {
        t.into_scalar()
    }

    #[test]
    fn variance_matches_hand_computation() {
        // Column 0: [0, 2] → var 2 (unbiased), std sqrt(2.0001) > 1 → 0.
        // Column 1: [1, 1] → var 0, std 0.01 → 0.99.
        let z = t2(&[0.0, 1.0, 2.0, 1.0], [2, 2]);
        assert!((scalar(variance(z)) - 0.99 / 2.0).abs() < 1e-5);
    }

    #[test]
    fn covariance_matches_hand_computation() {
        // Columns [0, 2, 4] and [1, 3, 8]: means 2 and 4; centred [-2, 0, 2], [-3, -1, 4].
        // cov01 = (6 + 0 + 8) / 2 = 7 → off-diagonal sum of squares 2·49 = 98, / d = 49.
        let z = t2(&[0.0, 1.0, 2.0, 3.0, 4.0, 8.0], [3, 2]);
        assert!((scalar(covariance(z)) - 49.0).abs() < 1e-3);
    }

    #[test]
    fn sigreg_matches_hand_computation_and_prefers_gaussian_latents() {
        // One direction, two samples at ±1: mean cos(t) − e^{−t²/2} and mean sin = 0; N = 2.
        let z = t2(&[1.0, -1.0], [2, 1]);
        let u = t2(&[3.0], [1, 1]); // scaled to unit length inside
        let dt = 3.0f32 / 16.0;
        let expect: f32 = (0..17)
            .map(|k| {
                let t = k as f32 * dt;
                let g = (-t * t / 2.0).exp();
                let w = if k == 0 || k == 16 { dt } else { 2.0 * dt };
                2.0 * (t.cos() - g).powi(2) * w * g
            })
            .sum();
        assert!((scalar(sigreg(z, u.clone())) - expect).abs() < 1e-5);
        // Collapsed latents (all zero) score worse than roughly Gaussian ones.
        let collapsed = t2(&[0.0; 8], [8, 1]);
        let spread = t2(&[-1.53, -0.89, -0.49, -0.16, 0.16, 0.49, 0.89, 1.53], [8, 1]);
        assert!(scalar(sigreg(collapsed, u.clone())) > 5.0 * scalar(sigreg(spread, u)));
    }

    #[test]
    fn smoothness_context_and_mse_match_hand_computation() {
        let z: Tensor<3> = Tensor::from_data(TensorData::new(vec![0.0f32, 0.0, 1.0, 2.0], [1, 2, 2]), &Device::flex());
        // Differences (1, 2): mean of squares 2.5.
        assert!((scalar(temporal_smoothness(z.clone())) - 2.5).abs() < 1e-6);
        // Window mean (0.5, 1); deviations ±0.5 and ±1: mean of squares 0.625.
        assert!((scalar(context_spread(z.clone())) - 0.625).abs() < 1e-6);
    }

    #[test]
    fn context_contrast_matches_hand_computation() {
        // Two windows of two latents in 2-d: window 0 (1,0)→(1,0), window 1 (0,1)→(1,1)/√2·2.
        let z: Tensor<3> = Tensor::from_data(
            TensorData::new(vec![1.0f32, 0.0, 3.0, 0.0, 0.0, 2.0, 1.0, 1.0], [2, 2, 2]),
            &Device::flex(),
        );
        let s = std::f32::consts::FRAC_1_SQRT_2;
        // Cosines first·last: [[1, s], [0, s]]; temperature 0.5.
        let row = |own: f32, other: f32| -(own / 0.5 - ((own / 0.5).exp() + (other / 0.5).exp()).ln());
        let expect = (row(1.0, s) + row(s, 0.0)) / 2.0;
        assert!((scalar(context_contrast(z.clone(), 0.5, None)) - expect).abs() < 1e-5);
        // A negative (0, 1) adds one more wrong answer to each row: cosines 0 and 1.
        let neg = t2(&[0.0, 1.0], [1, 2]);
        let row3 = |own: f32, other: f32, n: f32| {
            -(own / 0.5 - ((own / 0.5).exp() + (other / 0.5).exp() + (n / 0.5).exp()).ln())
        };
        let expect = (row3(1.0, s, 0.0) + row3(s, 0.0, 1.0)) / 2.0;
        assert!((scalar(context_contrast(z, 0.5, Some(neg))) - expect).abs() < 1e-5);
        assert!((scalar(mse(t2(&[1.0, 2.0], [1, 2]), t2(&[0.0, 0.0], [1, 2]))) - 2.5).abs() < 1e-6);
    }
}
