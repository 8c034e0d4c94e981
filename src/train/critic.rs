//! Training the critic `C(z, z_goal)` by hindsight goal relabelling: no reward labels, only
//! exploration videos. Every sample is a latent `z[t]` of an episode with a goal latent drawn
//! in hindsight:
//!
//! - the same frame (`p_current`): cost-to-go 0;
//! - a later frame of the same episode, `Δ` steps on (`p_future`): the episode shows the goal
//!   reached in `Δ` steps, an upper bound on the cost-to-go;
//! - any frame of any episode (the rest): nothing is known but the step that follows.
//!
//! The target is a multi-step temporal-difference bound, `min over k ≤ td_steps of
//! k + C̄(z[t+k], g)` with `C̄` a periodically refreshed copy of the critic (each `k` is a way
//! the data shows, plus the critic's estimate of the rest), and for later frames of the same
//! episode the smaller of that and `Δ`. The regression is an expectile (`expectile` > ½ weighs over-estimates more), so the
//! critic learns the lower envelope of the observed ways to the goal — the shortest, not the
//! random walk's average — as in goal-conditioned value learning (IQL / HIQL).

use super::level2::LatentEpisodes;
use super::store::{steps_bar, warmup_cosine};
use crate::cost::critic::Critic;
use crate::goal_net::{softplus, FastGoalNet, GoalNet, GoalNetShape};
use anyhow::{bail, Result};
use burn::optim::GradientsParams;
use burn::prelude::*;
use burn::tensor::activation;
use rand::{RngExt, SeedableRng};
use rand_chacha::ChaCha8Rng;
use serde::{Deserialize, Serialize};
use std::io::Write;
use std::path::Path;

/// Settings of a critic training run (saved in its checkpoint).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct CriticTrainConfig {
    pub hidden: usize,
    pub steps: usize,
    pub batch: usize,
    pub lr: f64,
    pub min_lr: f64,
    pub warmup: usize,
    pub weight_decay: f32,
    pub clip: f32,
    /// Weight of over-estimates in the expectile regression (1 − it for under-estimates).
    pub expectile: f32,
    /// Optimiser steps between refreshes of the bootstrap copy `C̄`.
    pub target_every: usize,
    /// Steps `k` of the data the bootstrap looks ahead (the least of `k + C̄(z[t+k], g)`):
    /// the cost-to-go spreads this many steps per refresh.
    pub td_steps: usize,
    /// Goal sampling: the same frame, a later frame of the same episode, else any frame.
    pub p_current: f32,
    pub p_future: f32,
    /// Steps per unit of the network's softplus output.
    pub scale: f32,
    /// Largest cost-to-go in steps (bootstrapped targets are capped here).
    pub max_cost: f32,
    pub seed: u64,
    pub log_every: usize,
}

impl Default for CriticTrainConfig {
    fn default() -> Self {
        CriticTrainConfig {
            hidden: 256,
            steps: 8000,
            batch: 512,
            lr: 1e-3,
            min_lr: 1e-5,
            warmup: 100,
            weight_decay: 1e-4,
            clip: 1.0,
            expectile: 0.9,
            target_every: 20,
            td_steps: 8,
            p_current: 0.2,
            p_future: 0.5,
            scale: 32.0,
            max_cost: 256.0,
            seed: 0,
            log_every: 100,
        }
    }
}

impl CriticTrainConfig {
    /// Settings that cannot work, named by their config keys.
    pub fn validate(&self) -> Result<(), String> {
        crate::require_counts(
            "critic",
            &[
                ("hidden", self.hidden),
                ("steps", self.steps),
                ("batch", self.batch),
                ("target_every", self.target_every),
                ("td_steps", self.td_steps),
                ("log_every", self.log_every),
            ],
        )?;
        if !(0.0..1.0).contains(&self.expectile) {
            return Err(format!("critic.expectile = {} must be in [0, 1)", self.expectile));
        }
        if !(self.p_current >= 0.0 && self.p_future >= 0.0 && self.p_current + self.p_future <= 1.0) {
            return Err(format!(
                "critic.p_current = {} and critic.p_future = {} must be ≥ 0 with a sum ≤ 1",
                self.p_current, self.p_future
            ));
        }
        crate::require_positive("critic", &[("scale", self.scale), ("max_cost", self.max_cost)])?;
        Ok(())
    }
}

/// One batch of relabelled samples: latents, goals, per sample the hindsight bound (`Some(Δ)`
/// for a frame of the same episode) or nothing, and the bootstrap rows: the latents `k` steps
/// on (`ahead`, with their `k` and sample) and each one's goal.
struct Relabelled {
    z: Vec<f32>,
    goal: Vec<f32>,
    bound: Vec<Option<f32>>,
    ahead: Vec<f32>,
    ahead_goal: Vec<f32>,
    ahead_of: Vec<(usize, f32)>,
}

fn relabel(data: &LatentEpisodes, cfg: &CriticTrainConfig, rng: &mut ChaCha8Rng) -> Relabelled {
    let (d, t_len) = (data.latent, data.steps);
    let row = |e: usize, t: usize| &data.z[(e * (t_len + 1) + t) * d..(e * (t_len + 1) + t + 1) * d];
    let mut r = Relabelled {
        z: Vec::with_capacity(cfg.batch * d),
        goal: Vec::with_capacity(cfg.batch * d),
        bound: Vec::with_capacity(cfg.batch),
        ahead: Vec::new(),
        ahead_goal: Vec::new(),
        ahead_of: Vec::new(),
    };
    for i in 0..cfg.batch {
        let e = rng.random_range(0..data.episodes);
        let t = rng.random_range(0..t_len);
        let u: f32 = rng.random();
        let (goal, bound) = if u < cfg.p_current {
            (row(e, t), Some(0.0))
        } else if u < cfg.p_current + cfg.p_future {
            let j = rng.random_range(t + 1..=t_len);
            (row(e, j), Some((j - t) as f32))
        } else {
            let (e2, j) = (rng.random_range(0..data.episodes), rng.random_range(0..=t_len));
            let same = (e2 == e && j >= t).then(|| (j - t) as f32);
            (row(e2, j), same)
        };
        r.z.extend_from_slice(row(e, t));
        r.goal.extend_from_slice(goal);
        if bound != Some(0.0) {
            for k in 1..=cfg.td_steps.min(t_len - t) {
                r.ahead.extend_from_slice(row(e, t + k));
                r.ahead_goal.extend_from_slice(goal);
                r.ahead_of.push((i, k as f32));
            }
        }
        r.bound.push(bound);
    }
    r
}

/// Median latent distance per step over consecutive frames of `data`.
pub fn distance_per_step(data: &LatentEpisodes) -> f32 {
    let d = data.latent;
    let mut v: Vec<f32> = (0..data.episodes)
        .flat_map(|e| (0..data.steps).map(move |t| (e, t)))
        .map(|(e, t)| {
            let a = (e * (data.steps + 1) + t) * d;
            (0..d)
                .map(|k| (data.z[a + k] - data.z[a + d + k]).powi(2))
                .sum::<f32>()
                .sqrt()
        })
        .collect();
    v.sort_by(f32::total_cmp);
    v.get(v.len() / 2).copied().unwrap_or(1.0).max(1e-6)
}

/// What a finished critic run gives.
pub struct CriticSummary {
    pub net: GoalNet,
    pub critic: Critic,
    pub last_loss: f32,
    pub seconds: f64,
}

/// Trains the critic on `data`'s latents (episodes of at least 2 steps). With `out`, writes
/// `critic_metrics.csv` there. A non-finite loss stops training with an error.
pub fn train_critic(
    cfg: &CriticTrainConfig,
    data: &LatentEpisodes,
    out: Option<&Path>,
    show_progress: bool,
    device: &Device,
) -> Result<CriticSummary> {
    cfg.validate().map_err(|e| anyhow::anyhow!("config: {e}"))?;
    if data.steps < 1 || data.episodes == 0 {
        bail!(
            "the critic learns from episodes of ≥ 1 step; got {} × {}",
            data.episodes,
            data.steps
        );
    }
    let started = std::time::Instant::now();
    let shape = GoalNetShape {
        latent: data.latent,
        hidden: cfg.hidden,
        out: 1,
    };
    let ad = device.clone().autodiff();
    let mut net = super::jepa::stable_param_ids(super::jepa::seeded(&ad, cfg.seed, || shape.init(&ad)));
    let mut optim = super::store::adamw(cfg.weight_decay, cfg.clip).init();
    let mut csv = match out {
        Some(dir) => {
            std::fs::create_dir_all(dir)?;
            let mut f = std::fs::File::create(dir.join("critic_metrics.csv"))?;
            writeln!(f, "step,lr,loss,mean_target")?;
            Some(f)
        }
        None => None,
    };
    let bar = steps_bar("critic", cfg.steps, show_progress);
    let mut target = FastGoalNet::new(&net.valid());
    let mut last_loss = f32::NAN;
    let (tau, d) = (cfg.expectile, data.latent);
    for step in 0..cfg.steps {
        if step % cfg.target_every == 0 && step > 0 {
            target = FastGoalNet::new(&net.valid());
        }
        let mut rng = ChaCha8Rng::seed_from_u64(cfg.seed);
        rng.set_stream(step as u64 + 1);
        let b = relabel(data, cfg, &mut rng);
        let n = cfg.batch;
        let boot = target.forward(&b.ahead, &b.ahead_goal, b.ahead_of.len());
        let mut td = vec![cfg.max_cost; n];
        for (&(i, k), x) in b.ahead_of.iter().zip(&boot) {
            td[i] = td[i].min(k + cfg.scale * softplus(*x));
        }
        let targets: Vec<f32> = (0..n)
            .map(|i| {
                let td = td[i];
                match b.bound[i] {
                    Some(0.0) => 0.0,
                    Some(delta) => td.min(delta),
                    None => td,
                }
            })
            .collect();
        let mean_target = targets.iter().sum::<f32>() / n as f32;
        let z = Tensor::<2>::from_data(TensorData::new(b.z, [n, d]), &ad);
        let g = Tensor::<2>::from_data(TensorData::new(b.goal, [n, d]), &ad);
        let y = Tensor::<1>::from_data(TensorData::new(targets, [n]), &ad);
        let pred = activation::softplus(net.forward(z, g), 1.0).reshape([n]) * cfg.scale;
        // In units of `scale`, so the loss is O(1) whatever the step counts.
        let u = (y - pred) / cfg.scale;
        let w = u.clone().lower_elem(0.0).float() * (2.0 * tau - 1.0) + (1.0 - tau);
        let loss = (w * u.square()).mean();
        let value = crate::values(loss.clone())[0];
        if !value.is_finite() {
            bar.abandon();
            bail!("critic loss is {value} at step {step}; training stopped (nothing written)");
        }
        let lr = warmup_cosine(step, cfg.steps, cfg.warmup, cfg.lr, cfg.min_lr);
        let grads = GradientsParams::from_grads(loss.backward(), &net);
        net = optim.step(lr, net, grads);
        last_loss = value;
        let done = step + 1;
        if done % cfg.log_every == 0 || done == cfg.steps {
            if let Some(f) = csv.as_mut() {
                writeln!(f, "{done},{lr:.3e},{value:.6},{mean_target:.3}")?;
            }
            let msg = format!("loss {value:.5} mean target {mean_target:.1} steps");
            bar.set_message(msg.clone());
            if bar.is_hidden() && show_progress {
                eprintln!("critic step {done}/{}: {msg}", cfg.steps);
            }
        }
        bar.set_position(done as u64);
    }
    bar.finish();
    let net = net.valid();
    let critic = Critic::new(&net, cfg.scale, distance_per_step(data));
    Ok(CriticSummary {
        net,
        critic,
        last_loss,
        seconds: started.elapsed().as_secs_f64(),
    })
}

/// Spearman rank correlation of two equally long samples (ties take their mean rank).
pub fn spearman(a: &[f32], b: &[f32]) -> f32 {
    fn ranks(x: &[f32]) -> Vec<f64> {
        let mut idx: Vec<usize> = (0..x.len()).collect();
        idx.sort_by(|&i, &j| x[i].total_cmp(&x[j]));
        let mut r = vec![0.0; x.len()];
        let mut i = 0;
        while i < idx.len() {
            let mut j = i;
            while j + 1 < idx.len() && x[idx[j + 1]] == x[idx[i]] {
                j += 1;
            }
            for &k in &idx[i..=j] {
                r[k] = (i + j) as f64 / 2.0;
            }
            i = j + 1;
        }
        r
    }
    let (ra, rb) = (ranks(a), ranks(b));
    let n = ra.len() as f64;
    if n < 2.0 {
        return 0.0;
    }
    let (ma, mb) = (ra.iter().sum::<f64>() / n, rb.iter().sum::<f64>() / n);
    let (mut sab, mut saa, mut sbb) = (0.0, 0.0, 0.0);
    for (x, y) in ra.iter().zip(&rb) {
        sab += (x - ma) * (y - mb);
        saa += (x - ma) * (x - ma);
        sbb += (y - mb) * (y - mb);
    }
    (sab / (saa * sbb).sqrt().max(1e-12)) as f32
}

/// How well a critic orders held-out goals: over pairs of frames `Δ` steps apart in fresh
/// exploration episodes (`Δ` uniform, goal = the later frame), the rank correlation of its
/// cost-to-go with `Δ` and with the pixel distance between the agent's two positions, and its
/// mean at the goal itself (`Δ = 0`) and at `Δ ≥ steps / 2`.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct CriticProbe {
    pub pairs: usize,
    pub spearman_steps: f32,
    pub spearman_px: f32,
    pub mean_at_goal: f32,
    pub mean_far: f32,
}

/// Scores `critic` on `latents` (of `data`, the same episodes).
pub fn critic_probe(critic: &Critic, latents: &LatentEpisodes, data: &crate::data::Episodes, seed: u64) -> CriticProbe {
    let (d, t_len) = (latents.latent, latents.steps);
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    let (mut z, mut g, mut delta, mut px) = (Vec::new(), Vec::new(), Vec::new(), Vec::new());
    let pairs = latents.episodes * 8;
    for _ in 0..pairs {
        let e = rng.random_range(0..latents.episodes);
        let t = rng.random_range(0..=t_len);
        let j = rng.random_range(t..=t_len);
        let row = |k: usize| (e * (t_len + 1) + k) * d;
        z.extend_from_slice(&latents.z[row(t)..row(t) + d]);
        g.extend_from_slice(&latents.z[row(j)..row(j) + d]);
        delta.push((j - t) as f32);
        let (a, b) = (data.state(e, t), data.state(e, j));
        px.push(((a[0] - b[0]).powi(2) + (a[1] - b[1]).powi(2)).sqrt());
    }
    let c = critic.steps(&z, &g, pairs);
    let mean_where = |f: &dyn Fn(f32) -> bool| {
        let v: Vec<f32> = c.iter().zip(&delta).filter(|(_, &x)| f(x)).map(|(&c, _)| c).collect();
        v.iter().sum::<f32>() / v.len().max(1) as f32
    };
    let half = t_len as f32 / 2.0;
    CriticProbe {
        pairs,
        spearman_steps: spearman(&c, &delta),
        spearman_px: spearman(&c, &px),
        mean_at_goal: mean_where(&|x| x == 0.0),
        mean_far: mean_where(&|x| x >= half),
    }
}
