//! `amisim bench`: throughput measurements, printed as a table or JSON.

use crate::world::scene::{shipped_scene_names, Scene};
use crate::world::VecEnv;
use anyhow::Result;
use rand::{RngExt, SeedableRng};
use serde::Serialize;
use std::time::{Duration, Instant};

/// One row of `bench env`.
#[derive(Debug, Clone, Serialize)]
pub struct EnvBenchRow {
    pub scene: String,
    pub envs: usize,
    /// Observations (frames of one environment, drawn and read back) per second.
    pub obs_per_s: f64,
    /// Milliseconds per vectorised step (physics + render + readback of all environments).
    pub ms_per_step: f64,
    pub steps: usize,
}

/// Steps `envs` environments of `scene` with uniform random actions for at least `budget`
/// (and at least 3 steps) after 2 warm-up steps, and reports throughput.
pub fn bench_env(scene: &Scene, envs: usize, budget: Duration) -> Result<EnvBenchRow> {
    let mut env = VecEnv::new(scene.clone(), envs)?;
    env.reset(0)?;
    let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(0);
    let actions = |rng: &mut rand_chacha::ChaCha8Rng| -> Vec<[f32; 2]> {
        (0..envs)
            .map(|_| [rng.random_range(-1.0..1.0), rng.random_range(-1.0..1.0)])
            .collect()
    };
    for _ in 0..2 {
        env.step(&actions(&mut rng))?;
    }
    let start = Instant::now();
    let mut steps = 0;
    while steps < 3 || start.elapsed() < budget {
        env.step(&actions(&mut rng))?;
        steps += 1;
    }
    let secs = start.elapsed().as_secs_f64();
    Ok(EnvBenchRow {
        scene: scene.name().to_string(),
        envs,
        obs_per_s: (envs * steps) as f64 / secs,
        ms_per_step: secs * 1e3 / steps as f64,
        steps,
    })
}

/// Runs `bench env` for the given scenes (all shipped scenes when empty) and env counts.
pub fn bench_env_all(
    scenes: &[String],
    counts: &[usize],
    budget: Duration,
    mut each: impl FnMut(&EnvBenchRow),
) -> Result<Vec<EnvBenchRow>> {
    let names = if scenes.is_empty() {
        shipped_scene_names()
    } else {
        scenes.to_vec()
    };
    let mut rows = Vec::new();
    for name in &names {
        let scene = Scene::load(name)?;
        for &n in counts {
            let row = bench_env(&scene, n, budget)?;
            each(&row);
            rows.push(row);
        }
    }
    Ok(rows)
}

/// One row of `bench train`.
#[derive(Debug, Clone, Serialize)]
pub struct TrainBenchRow {
    pub backend: String,
    pub batch: usize,
    pub window: usize,
    pub ms_per_step: f64,
    pub frames_per_s: f64,
    /// Estimated floating-point operations of one step (forward + backward ≈ 3 × forward).
    pub gflop_per_step: f64,
    pub gflop_per_s: f64,
    /// `gflop_per_s` over the CPU's estimated fp32 peak (cores × GHz × FMA width).
    pub peak_fraction: Option<f64>,
}

/// Forward FLOPs of the JEPA model on one window of `window` frames (encoder on every frame,
/// predictor and inverse dynamics on `window − 1` steps).
pub fn jepa_forward_flops(cfg: &crate::world_model::jepa::JepaConfig, window: usize) -> f64 {
    let e = &cfg.encoder;
    let enc = match e.kind {
        crate::perception::EncoderKind::Conv => {
            let mut side = e.resolution;
            let mut c_in = e.in_channels;
            let mut enc = 0.0;
            for (&c, &s) in e.channels.iter().zip(&e.strides) {
                side = side.div_ceil(s);
                enc += 2.0 * (c_in * c * 9 * side * side) as f64;
                enc += e.res_blocks as f64 * 2.0 * 2.0 * (c * c * 9 * side * side) as f64;
                c_in = c;
            }
            let keypoints = if e.spatial_softmax { 2 * c_in } else { 0 };
            let flat = if e.keypoint_head { 0 } else { c_in * side * side };
            enc + 2.0 * ((flat + keypoints) * e.latent) as f64
        }
        crate::perception::EncoderKind::Vit => {
            // Patch embedding, then per block: QKV + output projections (4 w²), the MLP
            // (8 w²) per token and attention scores + mixing (2 n w) per token.
            let (n, w) = (e.tokens(), e.width);
            let p2c = e.patch * e.patch * e.in_channels;
            let per_token = p2c * w + e.depth * (12 * w * w + 2 * n * w);
            2.0 * (n * per_token + w * e.latent) as f64
        }
    };
    let d = e.latent;
    let h = cfg.predictor_hidden;
    let pred = 2.0 * ((d + 2) * h + h * h + h * d) as f64;
    let idm = 2.0 * (2 * d * cfg.idm_hidden + cfg.idm_hidden * 2) as f64;
    enc * window as f64 + (pred + idm) * (window - 1) as f64
}

/// Estimated fp32 peak of this CPU in GFLOP/s: cores × GHz × flops per cycle per core
/// (2 FMA units × lanes × 2), from /proc/cpuinfo. `None` where that cannot be read.
pub fn cpu_peak_gflops() -> Option<f64> {
    let info = std::fs::read_to_string("/proc/cpuinfo").ok()?;
    let mhz: f64 = info
        .lines()
        .find(|l| l.starts_with("cpu MHz"))?
        .split(':')
        .nth(1)?
        .trim()
        .parse()
        .ok()?;
    let flags = info.lines().find(|l| l.starts_with("flags"))?;
    let lanes = if flags.contains(" avx512f") {
        16.0
    } else if flags.contains(" avx2") {
        8.0
    } else {
        4.0
    };
    let fma = if flags.contains(" fma") { 2.0 } else { 1.0 };
    let cores = std::thread::available_parallelism().ok()?.get() as f64;
    Some(cores * mhz / 1e3 * 2.0 * lanes * fma)
}

/// Times `steps` optimiser steps (after 2 warm-up steps) of the model in `cfg` on random
/// frames, on `device` (made autodiff here).
pub fn bench_train(
    cfg: &crate::train::jepa::TrainConfig,
    device: burn::prelude::Device,
    backend: &str,
    steps: usize,
) -> TrainBenchRow {
    use burn::optim::{AdamWConfig, GradientsParams};
    use burn::prelude::*;
    let device = device.autodiff();
    device.seed(0);
    let e = &cfg.model.encoder;
    let mut model = cfg.model.init(&device);
    let mut optim = AdamWConfig::new().init();
    let frames = Tensor::<5>::random(
        [cfg.batch, cfg.window, e.in_channels, e.resolution, e.resolution],
        burn::tensor::Distribution::Default,
        &device,
    );
    let actions = Tensor::<3>::random(
        [cfg.batch, cfg.window - 1, 2],
        burn::tensor::Distribution::Uniform(-1.0, 1.0),
        &device,
    );
    let mut run = |model: crate::world_model::jepa::Jepa| {
        let (loss, _) = model.loss(frames.clone(), actions.clone(), &cfg.model);
        let grads = GradientsParams::from_grads(loss.backward(), &model);
        optim.step(1e-4, model, grads)
    };
    for _ in 0..2 {
        model = run(model);
    }
    let start = Instant::now();
    for _ in 0..steps {
        model = run(model);
    }
    let secs = start.elapsed().as_secs_f64() / steps as f64;
    let gflop = 3.0 * jepa_forward_flops(&cfg.model, cfg.window) * cfg.batch as f64 / 1e9;
    TrainBenchRow {
        backend: backend.to_string(),
        batch: cfg.batch,
        window: cfg.window,
        ms_per_step: secs * 1e3,
        frames_per_s: (cfg.batch * cfg.window) as f64 / secs,
        gflop_per_step: gflop,
        gflop_per_s: gflop / secs,
        peak_fraction: cpu_peak_gflops().map(|p| gflop / secs / p),
    }
}

/// One row of `amisim bench plan`.
#[derive(Debug, Clone, serde::Serialize)]
pub struct PlanBenchRow {
    pub implementation: String,
    pub candidates: usize,
    pub horizon: usize,
    pub iterations: usize,
    pub ms_per_plan: f64,
    /// Predictor steps (one candidate, one step) per second.
    pub rollout_steps_per_s: f64,
    pub gflop_per_s: f64,
}

/// Latency of one plan (`candidates × horizon × iterations` predictor steps through the default
/// predictor, cost included) three ways, side by side: burn tensor ops (off autodiff), the
/// hand-written rollout on gemm, and the full CEM planner around the latter (sampling, cost,
/// refit).
pub fn bench_plan(candidates: usize, horizon: usize, iterations: usize, reps: usize) -> Vec<PlanBenchRow> {
    use crate::actor::model::{LatentDynamics, MlpRollout};
    use crate::actor::planner::{plan, PlannerConfig, PlannerKind};
    use burn::prelude::*;
    use rand::SeedableRng;
    let device = Device::flex();
    let cfg = crate::train::jepa::TrainConfig::default_for(65).model;
    let (d, hidden) = (cfg.encoder.latent, cfg.predictor_hidden);
    let predictor = crate::train::jepa::seeded(&device, 0, || {
        crate::world_model::PredictorConfig::new(d)
            .with_hidden(hidden)
            .init(&device)
    });
    let flop_per_step = 2.0 * ((d + 2) * hidden + hidden * hidden + hidden * d) as f64;
    let steps = (candidates * horizon * iterations) as f64;
    let goal = vec![0.5f32; d];
    let row = |name: &str, secs: f64| PlanBenchRow {
        implementation: name.to_string(),
        candidates,
        horizon,
        iterations,
        ms_per_plan: secs * 1e3,
        rollout_steps_per_s: steps / secs,
        gflop_per_s: steps * flop_per_step / secs / 1e9,
    };
    let time = |f: &mut dyn FnMut()| {
        f();
        let t0 = Instant::now();
        for _ in 0..reps {
            f();
        }
        t0.elapsed().as_secs_f64() / reps as f64
    };
    let mut rows = Vec::new();
    // burn tensor ops: the predictor's own rollout, the cost read back each iteration.
    let g = Tensor::<2>::from_data(TensorData::new(goal.clone(), [1, d]), &device);
    let secs = time(&mut || {
        for _ in 0..iterations {
            let a = Tensor::<3>::random(
                [candidates, horizon, 2],
                burn::tensor::Distribution::Normal(0.0, 1.0),
                &device,
            );
            let z0 = Tensor::<2>::zeros([candidates, d], &device);
            let z = predictor.rollout(z0, a); // [n, h, d]
            let cost = (z - g.clone().reshape([1, 1, d])).square().sum_dim(2).sum_dim(1);
            let _ = cost.into_data();
        }
    });
    rows.push(row("burn tensor ops", secs));
    // The hand-written rollout, the same work.
    // Seconds per plan of a hand-written rollout (actions `[candidates, horizon, 2]` → latents),
    // the squared goal distance summed each iteration.
    let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(0);
    let mut time_rollout = |rollout: &dyn Fn(&[f32]) -> Vec<f32>| {
        time(&mut || {
            for _ in 0..iterations {
                let a: Vec<f32> = (0..candidates * horizon * 2)
                    .map(|_| crate::world::policy::normal(&mut rng))
                    .collect();
                let z = rollout(&a);
                let cost: f32 = z.iter().zip(goal.iter().cycle()).map(|(x, y)| (x - y) * (x - y)).sum();
                std::hint::black_box(cost);
            }
        })
    };
    let mlp = MlpRollout::new(&predictor);
    let secs = time_rollout(&|a| mlp.rollout_rows(&vec![0.0; candidates * d], a, candidates, horizon));
    rows.push(row("hand-written (gemm)", secs));
    // The whole CEM planner (sampling, projection, cost, elites) around it.
    let dynamics = LatentDynamics::new(&predictor, None);
    let mut pc = PlannerConfig::default_for(PlannerKind::Cem);
    pc.horizon = horizon;
    pc.repeat = 1;
    pc.samples = candidates;
    pc.iterations = iterations;
    pc.elites = pc.elites.min(candidates);
    let secs = time(&mut || {
        let mut rngs = vec![rand_chacha::ChaCha8Rng::seed_from_u64(1)];
        let p = plan(
            &pc,
            &dynamics,
            &[vec![0.0; d]],
            &goal,
            &[vec![0.0; pc.len() * 2]],
            &mut rngs,
            false,
        );
        std::hint::black_box(p);
    });
    rows.push(row("CEM planner (gemm)", secs));
    // The spatial predictor in the shape of the shipped Two-Rooms spatial model (4 channels on
    // a 17×17 map, two hidden layers of 16, one jump per 4 steps) with the encoder's read-out,
    // the same environment steps.
    let mut scfg = cfg.clone();
    scfg.encoder.strides = vec![2, 2, 1];
    scfg.encoder.spatial_state = 4;
    scfg.spatial_hidden = 16;
    scfg.spatial_depth = 2;
    let model = crate::train::jepa::seeded(&device, 0, || scfg.init(&device));
    if let Some(sp) = crate::actor::spatial::spatial_dynamics(&model, None) {
        let r = &sp.rollout;
        let maps = vec![0.1f32; candidates * r.map_len()];
        let secs = time_rollout(&|a| r.rollout_rows(&maps, a, candidates, horizon));
        let mut sr = row("spatial (im2col+gemm)", secs);
        sr.gflop_per_s = steps * r.flop_per_step() / secs / 1e9;
        rows.push(sr);
    }
    rows
}
