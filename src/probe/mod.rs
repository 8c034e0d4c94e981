//! `amisim probe`: how much of the ground truth the frozen encoder's latents hold, and how well
//! the predictor keeps it over an open-loop rollout.
//!
//! - Linear probe: ridge regression from latents to positions, fitted on training episodes,
//!   scored on held-out episodes. RMSE in pixels is `sqrt(mean ‖p̂ − p‖²)` (Euclidean).
//! - MLP probe: one hidden layer (ReLU), trained with Adam on the same split.
//! - Rollout probe: from a real first frame, the predictor is unrolled with the real actions;
//!   the linear probe reads each predicted latent; RMSE per step.
//! - Collapse diagnostics: per-dimension std and effective rank
//!   (`exp(entropy of the normalised covariance eigenvalues)`).

pub mod jump_probe;

use crate::agent::Space;
use crate::data::Episodes;
use crate::world_model::jepa::Jepa;
use burn::nn::{Linear, LinearConfig};
use burn::optim::{AdamConfig, GradientsParams};
use burn::prelude::*;
use burn::tensor::activation::relu;
use serde::Serialize;

/// Every frame of `data` in order, as batches of at most `chunk` frames `[n, c, h, w]` in
/// `0..=1`, each handed to `f`; returns `f`'s rows, concatenated, and their width.
pub fn map_frames(
    data: &Episodes,
    device: &Device,
    chunk: usize,
    mut f: impl FnMut(Tensor<4>) -> Tensor<2>,
) -> (Vec<f32>, usize) {
    let [c, h, w] = data.frame_shape;
    let n = data.episodes * (data.steps + 1);
    let mut out = Vec::new();
    let mut d = 0;
    for start in (0..n).step_by(chunk.max(1)) {
        let end = (start + chunk).min(n);
        let frames: Vec<f32> = data.frames[start * c * h * w..end * c * h * w]
            .iter()
            .map(|&v| v as f32 / 255.0)
            .collect();
        let y = f(Tensor::<4>::from_data(
            TensorData::new(frames, [end - start, c, h, w]),
            device,
        ));
        d = y.dims()[1];
        out.extend(crate::values(y));
    }
    (out, d)
}

/// Latents of every frame of `data`, `[episodes·(steps+1), d]` row-major, in batches.
pub fn encode_all(model: &Jepa, data: &Episodes, device: &Device) -> (Vec<f32>, usize) {
    let (z, _) = map_frames(data, device, 256, |x| model.encode(x));
    (z, model.latent())
}

/// A linear probe fitted on the dimensions of latents `x` `[n, d]` that `model`'s predictor
/// moves (all of them unless it holds the context dimensions): a rollout leaves the held ones
/// at the start's values, so a probe that read positions partly from them would read the
/// start rather than the plan. Wider states are read by their first dimensions
/// ([`Probes::path_of_states`]).
fn moved_probe(model: &Jepa, x: &[f32], y: &[f32], d: usize, k: usize) -> LinearProbe {
    let m = model.predictor.moved().min(d);
    if m == d {
        return LinearProbe::fit(x, y, d, k, 1e-6);
    }
    let first: Vec<f32> = x.chunks_exact(d).flat_map(|r| r[..m].iter().copied()).collect();
    LinearProbe::fit(&first, y, m, k, 1e-6)
}

/// Episodes of the random walk [`position_probe`] is fitted on (16 steps each).
pub const POSITION_PROBE_EPISODES: usize = 100;

/// A linear probe from `model`'s latents to positions (agent, and box where there is one),
/// fitted on fresh random-walk episodes of `scene`: what `eval`'s strips and `amisim run` use to
/// draw imagined paths.
pub fn position_probe(model: &Jepa, scene: &str, device: &Device) -> anyhow::Result<LinearProbe> {
    Ok(position_probes(model, None, scene, device)?.0)
}

/// [`position_probe`], and with a level-2 model also a probe from its states (the abstraction
/// of the same latents) to positions.
pub fn position_probes(
    model: &Jepa,
    level2: Option<&crate::world_model::level2::Level2>,
    scene: &str,
    device: &Device,
) -> anyhow::Result<(LinearProbe, Option<LinearProbe>)> {
    let walk = crate::data::collect::CollectConfig::random_walk(scene, POSITION_PROBE_EPISODES, 16, 50, 7_000_001);
    let data = Episodes::collect(&walk)?;
    let (x, d) = encode_all(model, &data, device);
    let (y, k, _) = targets(&data);
    let high = level2.map(|l2| {
        let s = l2.abstract_rows(&x, d, device);
        LinearProbe::fit(&s, &y, s.len() / (x.len() / d), k, 1e-6)
    });
    // Imagined states are read by the dimensions the predictor moves (see `moved_probe`).
    Ok((moved_probe(model, &x, &y, d, k), high))
}

/// Position probes of an agent's models, to draw its imagined paths and judge whether its
/// plans go through walls: one per world model (`None` where none was fitted), and level 2's.
#[derive(Debug, Clone, Default)]
pub struct Probes {
    pub models: Vec<Option<LinearProbe>>,
    pub level2: Option<LinearProbe>,
}

impl Probes {
    /// The agent positions along a plan's imagined states in `space`.
    pub fn path(&self, plan: &crate::actor::planner::Plan, space: Space) -> Vec<[f32; 2]> {
        self.path_of_states(&plan.imagined, plan.actions.len() / 2, space)
    }

    /// The agent positions of `len` states (row-major) in `space`. A state wider than its
    /// probe (an ensemble's members end to end, keypoints joined after the latent) is read by
    /// its first part.
    pub fn path_of_states(&self, states: &[f32], len: usize, space: Space) -> Vec<[f32; 2]> {
        let len = len.max(1);
        let dim = states.len() / len;
        let probe = match space {
            Space::Latent(m) => self.models.get(m).and_then(Option::as_ref),
            Space::Level2 => self.level2.as_ref(),
            Space::Simulator => {
                return states.chunks_exact(dim.max(1)).map(|p| [p[0], p[1]]).collect();
            }
        };
        let Some(probe) = probe else { return Vec::new() };
        let pred = if dim > probe.d {
            let first: Vec<f32> = states
                .chunks_exact(dim)
                .flat_map(|z| z[..probe.d].iter().copied())
                .collect();
            probe.predict(&first)
        } else {
            probe.predict(states)
        };
        pred.chunks_exact(probe.k).map(|p| [p[0], p[1]]).collect()
    }
}

/// A linear map with bias from `d` inputs to `k` outputs (`w` is `(d+1) × k`, bias last).
#[derive(Debug, Clone)]
pub struct LinearProbe {
    pub d: usize,
    pub k: usize,
    pub w: Vec<f64>,
}

impl LinearProbe {
    /// Ridge regression on rows `x` `[n, d]` → `y` `[n, k]`.
    pub fn fit(x: &[f32], y: &[f32], d: usize, k: usize, ridge: f64) -> LinearProbe {
        let n = x.len() / d;
        let m = d + 1;
        let mut a = vec![0.0f64; m * m];
        let mut b = vec![0.0f64; m * k];
        let mut row = vec![0.0f64; m];
        for i in 0..n {
            for j in 0..d {
                row[j] = x[i * d + j] as f64;
            }
            row[d] = 1.0;
            for p in 0..m {
                let rp = row[p];
                for q in p..m {
                    a[p * m + q] += rp * row[q];
                }
                for c in 0..k {
                    b[p * k + c] += rp * y[i * k + c] as f64;
                }
            }
        }
        for p in 0..m {
            for q in 0..p {
                a[p * m + q] = a[q * m + p];
            }
            if p < d {
                a[p * m + p] += ridge * n as f64;
            }
        }
        let w = solve_spd(&mut a, &mut b, m, k);
        LinearProbe { d, k, w }
    }

    pub fn predict(&self, x: &[f32]) -> Vec<f32> {
        let n = x.len() / self.d;
        let mut out = vec![0.0f32; n * self.k];
        for i in 0..n {
            for c in 0..self.k {
                let mut s = self.w[self.d * self.k + c];
                for j in 0..self.d {
                    s += x[i * self.d + j] as f64 * self.w[j * self.k + c];
                }
                out[i * self.k + c] = s as f32;
            }
        }
        out
    }
}

/// Solves `A X = B` for symmetric positive-definite `A` (`m × m`) by Cholesky; `B` is `m × k`.
fn solve_spd(a: &mut [f64], b: &mut [f64], m: usize, k: usize) -> Vec<f64> {
    // A = L Lᵀ, L stored in the lower triangle of `a`.
    for j in 0..m {
        let mut s = a[j * m + j];
        for p in 0..j {
            s -= a[j * m + p] * a[j * m + p];
        }
        let l = s.max(1e-12).sqrt();
        a[j * m + j] = l;
        for i in j + 1..m {
            let mut s = a[i * m + j];
            for p in 0..j {
                s -= a[i * m + p] * a[j * m + p];
            }
            a[i * m + j] = s / l;
        }
    }
    for c in 0..k {
        for i in 0..m {
            let mut s = b[i * k + c];
            for p in 0..i {
                s -= a[i * m + p] * b[p * k + c];
            }
            b[i * k + c] = s / a[i * m + i];
        }
        for i in (0..m).rev() {
            let mut s = b[i * k + c];
            for p in i + 1..m {
                s -= a[p * m + i] * b[p * k + c];
            }
            b[i * k + c] = s / a[i * m + i];
        }
    }
    b.to_vec()
}

/// `sqrt(mean over rows of ‖pred − truth‖²)` for rows of `k` values.
pub fn rmse(pred: &[f32], truth: &[f32], k: usize) -> f32 {
    let n = pred.len() / k;
    let s: f64 = pred.iter().zip(truth).map(|(p, t)| ((p - t) as f64).powi(2)).sum();
    (s / n.max(1) as f64).sqrt() as f32
}

/// Euclidean position error of target `i` (columns `2i`, `2i + 1` of rows of `k` values).
pub fn position_rmse(pred: &[f32], truth: &[f32], k: usize, i: usize) -> f32 {
    let n = pred.len() / k;
    let s: f64 = (0..n)
        .map(|r| {
            (2 * i..2 * i + 2)
                .map(|c| ((pred[r * k + c] - truth[r * k + c]) as f64).powi(2))
                .sum::<f64>()
        })
        .sum();
    (s / n.max(1) as f64).sqrt() as f32
}

/// Per-dimension mean of rows `x` `[n, d]`.
fn column_means(x: &[f32], d: usize) -> Vec<f64> {
    let n = (x.len() / d) as f64;
    (0..d)
        .map(|j| x.iter().skip(j).step_by(d).map(|&v| v as f64).sum::<f64>() / n)
        .collect()
}

/// Per-dimension standard deviation of rows `x` `[n, d]`.
pub fn dim_std(x: &[f32], d: usize) -> Vec<f32> {
    let n = (x.len() / d) as f64;
    column_means(x, d)
        .into_iter()
        .enumerate()
        .map(|(j, mean)| {
            let var: f64 = x
                .iter()
                .skip(j)
                .step_by(d)
                .map(|&v| (v as f64 - mean).powi(2))
                .sum::<f64>()
                / n;
            var.sqrt() as f32
        })
        .collect()
}

/// `Σ_i (x_i − mean)(x_i − mean)ᵀ` of rows `x` `[n, d]`, `[d, d]` row-major (the covariance
/// up to its `n`, or with a zero `mean` the Gram matrix `XᵀX`).
fn scatter(x: &[f32], d: usize, mean: &[f64]) -> Vec<f64> {
    let mut m = vec![0.0f64; d * d];
    for row in x.chunks_exact(d) {
        for p in 0..d {
            let xp = row[p] as f64 - mean[p];
            for q in p..d {
                m[p * d + q] += xp * (row[q] as f64 - mean[q]);
            }
        }
    }
    for p in 0..d {
        for q in 0..p {
            m[p * d + q] = m[q * d + p];
        }
    }
    m
}

/// RankMe (Garrido et al., 2023) of rows `x` `[n, d]`: `exp(H(p))` with `p_k = σ_k / ‖σ‖₁ + ε`
/// (ε = 1e-7), `σ` the singular values of the (uncentred) embedding matrix. Up to `min(n, d)`;
/// near 1 for collapsed embeddings. Unlike [`effective_rank`] the mean is not removed, so a
/// constant offset counts as one direction.
pub fn rank_me(x: &[f32], d: usize) -> f32 {
    let gram = scatter(x, d, &vec![0.0; d]);
    let sigma: Vec<f64> = symmetric_eigenvalues(gram, d)
        .into_iter()
        .map(|e| e.max(0.0).sqrt())
        .collect();
    let total: f64 = sigma.iter().sum();
    if total <= 0.0 {
        return 0.0;
    }
    let h: f64 = sigma.iter().map(|s| s / total + 1e-7).map(|p| -p * p.ln()).sum();
    h.exp() as f32
}

/// Effective rank of rows `x` `[n, d]`: `exp(H(p))` with `p` the normalised eigenvalues of the
/// covariance (Roy & Vetterli, 2007). `d` for isotropic latents, 1 for a collapsed line.
pub fn effective_rank(x: &[f32], d: usize) -> f32 {
    let cov = scatter(x, d, &column_means(x, d));
    let eig = symmetric_eigenvalues(cov, d);
    let total: f64 = eig.iter().map(|e| e.max(0.0)).sum();
    if total <= 0.0 {
        return 0.0;
    }
    let h: f64 = eig
        .iter()
        .map(|e| e.max(0.0) / total)
        .filter(|p| *p > 0.0)
        .map(|p| -p * p.ln())
        .sum();
    h.exp() as f32
}

/// Eigenvalues of a symmetric matrix by cyclic Jacobi rotations.
fn symmetric_eigenvalues(mut a: Vec<f64>, n: usize) -> Vec<f64> {
    for _sweep in 0..100 {
        let off: f64 = (0..n)
            .flat_map(|p| (0..n).filter(move |&q| q != p).map(move |q| (p, q)))
            .map(|(p, q)| a[p * n + q].powi(2))
            .sum();
        let scale: f64 = (0..n).map(|p| a[p * n + p].powi(2)).sum::<f64>().max(1e-300);
        if off <= 1e-22 * scale {
            break;
        }
        for p in 0..n {
            for q in p + 1..n {
                let apq = a[p * n + q];
                if apq.abs() < 1e-300 {
                    continue;
                }
                let theta = (a[q * n + q] - a[p * n + p]) / (2.0 * apq);
                let t = theta.signum() / (theta.abs() + (theta * theta + 1.0).sqrt());
                let t = if theta == 0.0 { 1.0 } else { t };
                let c = 1.0 / (t * t + 1.0).sqrt();
                let s = t * c;
                for k in 0..n {
                    let akp = a[k * n + p];
                    let akq = a[k * n + q];
                    a[k * n + p] = c * akp - s * akq;
                    a[k * n + q] = s * akp + c * akq;
                }
                for k in 0..n {
                    let apk = a[p * n + k];
                    let aqk = a[q * n + k];
                    a[p * n + k] = c * apk - s * aqk;
                    a[q * n + k] = s * apk + c * aqk;
                }
            }
        }
    }
    (0..n).map(|p| a[p * n + p]).collect()
}

/// A one-hidden-layer MLP probe.
#[derive(Module, Debug)]
pub struct MlpProbe {
    l1: Linear,
    l2: Linear,
}

impl MlpProbe {
    pub fn forward(&self, x: Tensor<2>) -> Tensor<2> {
        self.l2.forward(relu(self.l1.forward(x)))
    }

    /// Trains on rows `x` `[n, d]` → `y` `[n, k]` (full batch Adam, inputs and targets
    /// standardised inside), and returns predictions for `x_test`.
    pub fn fit_predict(x: &[f32], y: &[f32], x_test: &[f32], d: usize, k: usize, steps: usize, seed: u64) -> Vec<f32> {
        let device = Device::flex().autodiff();
        let n = x.len() / d;
        let (xm, xs) = moments(x, d);
        let (ym, ys) = moments(y, k);
        let norm = |v: &[f32], m: &[f32], s: &[f32], w: usize| -> Vec<f32> {
            v.iter().enumerate().map(|(i, &a)| (a - m[i % w]) / s[i % w]).collect()
        };
        let xt = Tensor::<2>::from_data(TensorData::new(norm(x, &xm, &xs, d), [n, d]), &device);
        let yt = Tensor::<2>::from_data(TensorData::new(norm(y, &ym, &ys, k), [n, k]), &device);
        let mut model = crate::checkpoint::seeded(&device, seed, || MlpProbe {
            l1: LinearConfig::new(d, 128).init(&device),
            l2: LinearConfig::new(128, k).init(&device),
        });
        let mut optim = AdamConfig::new().init();
        for _ in 0..steps {
            let loss = (model.forward(xt.clone()) - yt.clone()).square().mean();
            let grads = GradientsParams::from_grads(loss.backward(), &model);
            model = optim.step(3e-3, model, grads);
        }
        let model = model.valid();
        let nt = x_test.len() / d;
        let xq = Tensor::<2>::from_data(TensorData::new(norm(x_test, &xm, &xs, d), [nt, d]), &Device::flex());
        let out = crate::values(model.forward(xq));
        out.iter()
            .enumerate()
            .map(|(i, &v)| v * ys[i % k] + ym[i % k])
            .collect()
    }
}

fn moments(v: &[f32], w: usize) -> (Vec<f32>, Vec<f32>) {
    let mean = column_means(v, w).into_iter().map(|m| m as f32).collect();
    (mean, dim_std(v, w).into_iter().map(|s| s.max(1e-6)).collect())
}

/// The probe report (`amisim probe --json`).
#[derive(Debug, Clone, Serialize)]
pub struct ProbeReport {
    pub linear_rmse_px: f32,
    pub mlp_rmse_px: f32,
    /// Error of the linear probe on the predictor's open-loop latents, steps 1, 2, ….
    pub rollout_rmse_px: Vec<f32>,
    /// The same for the spatial predictor, where the model has one (its latents between two
    /// jumps' ends interpolated, as the planner sees them).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub spatial_rollout_rmse_px: Option<Vec<f32>>,
    pub effective_rank: f32,
    /// RankMe of the held-out latents ([`rank_me`]).
    pub rank_me: f32,
    pub latent_dim: usize,
    pub min_dim_std: f32,
    pub mean_dim_std: f32,
    /// What was probed: `agent` (x, y), plus `box` (x, y) where the scene has one.
    pub targets: Vec<String>,
    pub train_frames: usize,
    pub test_frames: usize,
    /// The same errors for each target alone (agent, box), in the order of `targets`.
    pub by_target: Vec<TargetErrors>,
    /// How well each frame's latent gives the episode's layout (wall column, door row): one
    /// entry per layout value that varies between episodes.
    pub layout: Vec<LayoutErrors>,
    /// The agent's heading (first-person scenes, where it varies), in degrees.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub heading: Option<HeadingErrors>,
}

/// Heading probe: (cos, sin) of the heading regressed from the latent, its angle compared
/// with the true heading (the difference wrapped to ±180°), RMSE in degrees.
#[derive(Debug, Clone, Serialize)]
pub struct HeadingErrors {
    pub linear_rmse_deg: f32,
    pub mlp_rmse_deg: f32,
    /// The linear probe on the predictor's open-loop latents, steps 1, 2, ….
    pub rollout_rmse_deg: Vec<f32>,
    /// The error of always guessing one heading (the circular mean): what a latent without
    /// heading would score.
    pub constant_rmse_deg: f32,
}

/// Every frame's heading as (cos, sin), `[frames, 2]`.
fn heading_targets(data: &Episodes) -> Vec<f32> {
    let mut y = Vec::new();
    for e in 0..data.episodes {
        for t in 0..=data.steps {
            let h = data.state(e, t)[2];
            y.extend_from_slice(&[h.cos(), h.sin()]);
        }
    }
    y
}

/// RMSE in degrees between the angles of `[n, 2]` (cos, sin) rows.
pub fn angle_rmse_deg(pred: &[f32], truth: &[f32]) -> f32 {
    let n = pred.len() / 2;
    let sq: f64 = (0..n)
        .map(|r| {
            let a = pred[2 * r + 1].atan2(pred[2 * r]);
            let b = truth[2 * r + 1].atan2(truth[2 * r]);
            let d = (a - b + std::f32::consts::PI).rem_euclid(std::f32::consts::TAU) - std::f32::consts::PI;
            (d.to_degrees() as f64).powi(2)
        })
        .sum();
    (sq / n.max(1) as f64).sqrt() as f32
}

/// Probe errors of one layout value (e.g. `wall4_at`, `wall4_door0`), in pixels.
#[derive(Debug, Clone, Serialize)]
pub struct LayoutErrors {
    pub column: String,
    pub linear_rmse_px: f32,
    pub mlp_rmse_px: f32,
    /// Its spread over the held-out episodes: the error of always guessing the mean.
    pub std_px: f32,
}

/// Probe errors of one target, in pixels.
#[derive(Debug, Clone, Serialize)]
pub struct TargetErrors {
    pub target: String,
    pub linear_rmse_px: f32,
    pub mlp_rmse_px: f32,
    pub rollout_rmse_px: Vec<f32>,
}

/// Ground-truth probe targets of every frame: agent (x, y), and box (x, y) when present.
pub fn targets(data: &Episodes) -> (Vec<f32>, usize, Vec<String>) {
    let has_box = data.episodes > 0 && data.state(0, 0)[3].is_finite();
    let k = if has_box { 4 } else { 2 };
    let mut y = Vec::new();
    for e in 0..data.episodes {
        for t in 0..=data.steps {
            let s = data.state(e, t);
            y.extend_from_slice(&s[0..2]);
            if has_box {
                y.extend_from_slice(&s[3..5]);
            }
        }
    }
    let names = if has_box {
        vec!["agent".into(), "box".into()]
    } else {
        vec!["agent".into()]
    };
    (y, k, names)
}

/// The layout values in `columns` of each episode of `data`, repeated for each of its frames:
/// `[frames, columns]`.
fn layout_targets(data: &Episodes, columns: &[usize]) -> Vec<f32> {
    let mut y = Vec::new();
    for e in 0..data.episodes {
        let row = &data.layout[e * data.layout_width..(e + 1) * data.layout_width];
        for _ in 0..=data.steps {
            y.extend(columns.iter().map(|&c| row[c]));
        }
    }
    y
}

/// Indices of the layout columns whose values vary between the episodes of `data` (none when
/// `data` carries no layout).
fn varying_layout_columns(data: &Episodes) -> Vec<usize> {
    let w = data.layout_width;
    if w == 0 || data.layout.len() < data.episodes * w || data.layout_columns.len() != w {
        return Vec::new();
    }
    let std = dim_std(&data.layout[..data.episodes * w], w);
    (0..w).filter(|&c| std[c] > 1e-3).collect()
}

/// RMSE of column `i` of `[n, k]` predictions.
fn column_rmse(pred: &[f32], truth: &[f32], k: usize, i: usize) -> f32 {
    let n = pred.len() / k;
    let sq: f64 = (0..n)
        .map(|r| ((pred[r * k + i] - truth[r * k + i]) as f64).powi(2))
        .sum();
    (sq / n.max(1) as f64).sqrt() as f32
}

/// Linear and MLP probes from every frame's latent to the episode's varying layout values.
fn probe_layout(
    x_train: &[f32],
    x_test: &[f32],
    d: usize,
    train: &Episodes,
    test: &Episodes,
    mlp_steps: usize,
) -> Vec<LayoutErrors> {
    let columns = varying_layout_columns(train);
    if columns.is_empty()
        || test.layout_width != train.layout_width
        || test.layout.len() < test.episodes * test.layout_width
    {
        return Vec::new();
    }
    let k = columns.len();
    let y_train = layout_targets(train, &columns);
    let y_test = layout_targets(test, &columns);
    let linear = LinearProbe::fit(x_train, &y_train, d, k, 1e-6).predict(x_test);
    let mlp = MlpProbe::fit_predict(x_train, &y_train, x_test, d, k, mlp_steps, 1);
    let std = dim_std(&y_test, k);
    columns
        .iter()
        .enumerate()
        .map(|(i, &c)| LayoutErrors {
            column: train.layout_columns[c].clone(),
            linear_rmse_px: column_rmse(&linear, &y_test, k, i),
            mlp_rmse_px: column_rmse(&mlp, &y_test, k, i),
            std_px: std[i],
        })
        .collect()
}

/// Runs every probe: fits on `train`, scores on `test`. The rollout probe unrolls from the
/// first frame of each test episode over all its actions.
pub fn probe(model: &Jepa, train: &Episodes, test: &Episodes, mlp_steps: usize) -> ProbeReport {
    let device = Device::flex();
    let model = model.valid();
    let (x_train, d) = encode_all(&model, train, &device);
    let (x_test, _) = encode_all(&model, test, &device);
    let (y_train, k, names) = targets(train);
    let (y_test, _, _) = targets(test);
    let linear = LinearProbe::fit(&x_train, &y_train, d, k, 1e-6);
    // Errors are per position: with a box, the RMSE over 4 values counts two positions.
    let per_pos = |p: &[f32], t: &[f32]| rmse(p, t, k) / ((k / 2) as f32).sqrt();
    let linear_pred = linear.predict(&x_test);
    let linear_rmse = per_pos(&linear_pred, &y_test);
    let mlp_pred = MlpProbe::fit_predict(&x_train, &y_train, &x_test, d, k, mlp_steps, 0);
    let mlp_rmse = per_pos(&mlp_pred, &y_test);
    // Rollout: z0 from frame 0 of each test episode, then the real actions.
    let e = test.episodes;
    let t = test.steps;
    let z0: Vec<f32> = (0..e)
        .flat_map(|i| x_test[i * (t + 1) * d..(i * (t + 1) + 1) * d].to_vec())
        .collect();
    let z0 = Tensor::<2>::from_data(TensorData::new(z0, [e, d]), &device);
    let actions = Tensor::<3>::from_data(TensorData::new(test.actions.clone(), [e, t, 2]), &device);
    let rolled = crate::values(model.predictor.rollout(z0, actions));
    // Every episode's latent at one step of a rollout `[e, t, d]`.
    let at_step =
        |rolled: &[f32], step: usize| crate::gather_rows(rolled, d, &(0..e).map(|i| i * t + step).collect::<Vec<_>>());
    // Per step: the linear probe's predictions on the rolled-out latents and the truth (read
    // by the dimensions the predictor moves).
    let held_probe;
    let moving = if model.predictor.moved() < d {
        held_probe = moved_probe(&model, &x_train, &y_train, d, k);
        &held_probe
    } else {
        &linear
    };
    let per_step: Vec<(Vec<f32>, Vec<f32>)> = (0..t)
        .map(|step| {
            let z = at_step(&rolled, step);
            let truth: Vec<f32> = (0..e)
                .flat_map(|i| y_test[(i * (t + 1) + step + 1) * k..(i * (t + 1) + step + 2) * k].to_vec())
                .collect();
            let z: Vec<f32> = z.chunks_exact(d).flat_map(|r| r[..moving.d].iter().copied()).collect();
            (moving.predict(&z), truth)
        })
        .collect();
    let rollout_rmse_px = per_step.iter().map(|(p, truth)| per_pos(p, truth)).collect();
    // The spatial predictor from the same first frames, through the planner's own rollout.
    let spatial_rollout_rmse_px = crate::actor::spatial::spatial_dynamics(&model, None).map(|sp| {
        let [c, h, w] = test.frame_shape;
        let first: Vec<f32> = (0..e)
            .flat_map(|i| test.frames[i * (t + 1) * c * h * w..(i * (t + 1) + 1) * c * h * w].iter())
            .map(|&v| v as f32 / 255.0)
            .collect();
        let x = Tensor::<4>::from_data(TensorData::new(first, [e, c, h, w]), &device);
        let maps = crate::values(model.encoder.forward_with_map(x).1.expect("a spatial state"));
        let rolled = sp.rollout.rollout_rows(&maps, &test.actions, e, t);
        (0..t)
            .map(|step| per_pos(&linear.predict(&at_step(&rolled, step)), &per_step[step].1))
            .collect()
    });
    let by_target = names
        .iter()
        .enumerate()
        .map(|(i, name)| TargetErrors {
            target: name.clone(),
            linear_rmse_px: position_rmse(&linear_pred, &y_test, k, i),
            mlp_rmse_px: position_rmse(&mlp_pred, &y_test, k, i),
            rollout_rmse_px: per_step
                .iter()
                .map(|(p, truth)| position_rmse(p, truth, k, i))
                .collect(),
        })
        .collect();
    let std = dim_std(&x_test, d);
    let layout = probe_layout(&x_train, &x_test, d, train, test, mlp_steps);
    // Heading, where it varies (first-person scenes; top-down agents have none).
    let h_train = heading_targets(train);
    let heading = (dim_std(&h_train, 2).iter().any(|&s| s > 1e-3)).then(|| {
        let h_test = heading_targets(test);
        let linear = LinearProbe::fit(&x_train, &h_train, d, 2, 1e-6);
        let mlp = MlpProbe::fit_predict(&x_train, &h_train, &x_test, d, 2, mlp_steps, 2);
        let rollout_rmse_deg = (0..t)
            .map(|step| {
                let truth: Vec<f32> = (0..e)
                    .flat_map(|i| h_test[(i * (t + 1) + step + 1) * 2..(i * (t + 1) + step + 2) * 2].to_vec())
                    .collect();
                angle_rmse_deg(&linear.predict(&at_step(&rolled, step)), &truth)
            })
            .collect();
        let n = h_train.len() / 2;
        let mean = [
            h_train.iter().step_by(2).sum::<f32>() / n as f32,
            h_train.iter().skip(1).step_by(2).sum::<f32>() / n as f32,
        ];
        let constant: Vec<f32> = (0..h_test.len() / 2).flat_map(|_| mean).collect();
        HeadingErrors {
            linear_rmse_deg: angle_rmse_deg(&linear.predict(&x_test), &h_test),
            mlp_rmse_deg: angle_rmse_deg(&mlp, &h_test),
            rollout_rmse_deg,
            constant_rmse_deg: angle_rmse_deg(&constant, &h_test),
        }
    });
    ProbeReport {
        linear_rmse_px: linear_rmse,
        mlp_rmse_px: mlp_rmse,
        rollout_rmse_px,
        spatial_rollout_rmse_px,
        effective_rank: effective_rank(&x_test, d),
        rank_me: rank_me(&x_test, d),
        latent_dim: d,
        min_dim_std: std.iter().cloned().fold(f32::INFINITY, f32::min),
        mean_dim_std: std.iter().sum::<f32>() / d as f32,
        targets: names,
        train_frames: x_train.len() / d,
        test_frames: x_test.len() / d,
        by_target,
        layout,
        heading,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn position_error_per_target() {
        // Two rows of (agent x, y, box x, y): the agent is exact, the box off by (3, 4) and (0, 0).
        let pred = [1.0, 2.0, 3.0, 4.0, 5.0, 6.0, 7.0, 8.0];
        let truth = [1.0, 2.0, 0.0, 0.0, 5.0, 6.0, 7.0, 8.0];
        assert_eq!(position_rmse(&pred, &truth, 4, 0), 0.0);
        assert!((position_rmse(&pred, &truth, 4, 1) - (25.0f32 / 2.0).sqrt()).abs() < 1e-6);
    }

    #[test]
    fn heading_error_wraps_around() {
        // 170° against -170°: 20° apart, not 340°; 0° against 90°: 90°.
        let rad = |d: f32| d.to_radians();
        let pred = [rad(170.0).cos(), rad(170.0).sin(), 1.0, 0.0];
        let truth = [rad(-170.0).cos(), rad(-170.0).sin(), 0.0, 1.0];
        let want = ((20.0f32 * 20.0 + 90.0 * 90.0) / 2.0).sqrt();
        assert!((angle_rmse_deg(&pred, &truth) - want).abs() < 1e-2);
    }

    #[test]
    fn linear_probe_recovers_a_linear_map() {
        // y = 2·x0 − x1 + 3, exactly.
        let x: Vec<f32> = (0..50).flat_map(|i| [i as f32 * 0.1, (i * i % 7) as f32]).collect();
        let y: Vec<f32> = x.chunks(2).map(|r| 2.0 * r[0] - r[1] + 3.0).collect();
        let p = LinearProbe::fit(&x, &y, 2, 1, 0.0);
        assert!(rmse(&p.predict(&x), &y, 1) < 1e-3);
    }

    #[test]
    fn effective_rank_of_isotropic_and_collapsed_latents() {
        // Rows ±e_j: covariance is a multiple of the identity → rank d.
        let d = 4;
        let mut x = Vec::new();
        for j in 0..d {
            for s in [1.0f32, -1.0] {
                let mut r = vec![0.0; d];
                r[j] = s;
                x.extend(r);
            }
        }
        assert!((effective_rank(&x, d) - 4.0).abs() < 1e-3);
        // All rows on one line → rank 1.
        let line: Vec<f32> = (0..10).flat_map(|i| [i as f32, 2.0 * i as f32, 0.0, 0.0]).collect();
        assert!((effective_rank(&line, d) - 1.0).abs() < 1e-3);
        // RankMe: 4 orthogonal directions of equal size give 4; a line through the origin 1.
        let axes: Vec<f32> = (0..4)
            .flat_map(|i| (0..d).map(move |j| if i == j { 3.0 } else { 0.0 }))
            .collect();
        assert!((rank_me(&axes, d) - 4.0).abs() < 1e-3, "{}", rank_me(&axes, d));
        assert!((rank_me(&line, d) - 1.0).abs() < 1e-3, "{}", rank_me(&line, d));
    }
}
