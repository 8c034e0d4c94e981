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
