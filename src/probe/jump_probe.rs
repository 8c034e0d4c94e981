//! The level-2 rollout probe: how well the agent's position survives `j` level-2 jumps of `k`
//! steps, against `j · k` chained level-1 steps from the same first frame with the same
//! actions.
//!
//! Linear probes are fitted on training episodes: one from level-1 latents to positions, one
//! from level-2 states (`A(z1)`) to positions. On held-out episodes, level 1 is unrolled with
//! the real actions and level 2 with the macro-actions its encoder infers from the real action
//! chunks; each probe reads its own level's predictions at every multiple of `k`.

use super::{encode_all, position_rmse, targets, LinearProbe};
use crate::data::Episodes;
use crate::world_model::jepa::Jepa;
use crate::world_model::level2::{Level2, Level2Config};
use burn::prelude::*;
use serde::Serialize;

/// Agent position error (px) after each jump.
#[derive(Debug, Clone, Serialize)]
pub struct JumpProbeReport {
    pub k: usize,
    /// Environment steps ahead: `k, 2k, …`.
    pub steps: Vec<usize>,
    /// `j · k` chained level-1 predictions.
    pub level1_rmse_px: Vec<f32>,
    /// `j` level-2 jumps.
    pub level2_rmse_px: Vec<f32>,
    /// The probes on the real frames' latents (what each level's states hold at all).
    pub level1_encode_rmse_px: f32,
    pub level2_encode_rmse_px: f32,
}

impl JumpProbeReport {
    pub fn table(&self) -> String {
        let mut s = format!(
            "level-2 rollout probe (agent position RMSE, px; k = {}):\n{:>6} {:>16} {:>14}\n",
            self.k, "steps", "level 1 chained", "level 2 jumps"
        );
        s += &format!(
            "{:>6} {:>16.2} {:>14.2}   (real frames)\n",
            0, self.level1_encode_rmse_px, self.level2_encode_rmse_px
        );
        for ((t, a), b) in self.steps.iter().zip(&self.level1_rmse_px).zip(&self.level2_rmse_px) {
            s += &format!("{t:>6} {a:>16.2} {b:>14.2}\n");
        }
        s
    }
}

/// Runs the probe: `train` fits the probes, `test` (episodes of at least `k` steps) scores
/// them over as many whole jumps as its episodes hold.
pub fn jump_probe(
    level1: &Jepa,
    level2: &Level2,
    cfg: &Level2Config,
    train: &Episodes,
    test: &Episodes,
    device: &Device,
) -> anyhow::Result<JumpProbeReport> {
    let k = cfg.k;
    let jumps = test.steps / k;
    if jumps == 0 {
        anyhow::bail!("the probe's episodes have {} steps, fewer than k = {k}", test.steps);
    }
    let (x_train, d) = encode_all(level1, train, device);
    let (y_train, ky, _) = targets(train);
    let p1 = LinearProbe::fit(&x_train, &y_train, d, ky, 1e-6);
    let p2 = LinearProbe::fit(
        &level2.abstract_rows(&x_train, d, device),
        &y_train,
        cfg.state,
        ky,
        1e-6,
    );

    let (x_test, _) = encode_all(level1, test, device);
    let (y_test, _, _) = targets(test);
    let frames = test.steps + 1;
    let e = test.episodes;
    let enc1 = position_rmse(&p1.predict(&x_test), &y_test, ky, 0);
    let enc2 = position_rmse(&p2.predict(&level2.abstract_rows(&x_test, d, device)), &y_test, ky, 0);

    // First latents and the actions of the first `jumps · k` steps.
    let z0: Vec<f32> = (0..e)
        .flat_map(|i| x_test[i * frames * d..(i * frames + 1) * d].to_vec())
        .collect();
    let span = jumps * k;
    let actions: Vec<f32> = (0..e)
        .flat_map(|i| test.actions[i * test.steps * 2..(i * test.steps + span) * 2].to_vec())
        .collect();
    let z0_t = Tensor::<2>::from_data(TensorData::new(z0.clone(), [e, d]), device);
    let a_t = Tensor::<3>::from_data(TensorData::new(actions.clone(), [e, span, 2]), device);
    let l1 = crate::values(level1.predictor.rollout(z0_t.clone(), a_t.clone())); // [e, span, d]
    let macros = level2
        .encode_macro(a_t.reshape([e * jumps, k, 2]), cfg.macro_radius)
        .reshape([e, jumps, 2]);
    let l2 = crate::values(level2.predictor.rollout(level2.abstract_state(z0_t), macros)); // [e, jumps, s]

    let (mut r1, mut r2, mut steps) = (Vec::new(), Vec::new(), Vec::new());
    for j in 1..=jumps {
        let t = j * k;
        let truth: Vec<f32> = (0..e)
            .flat_map(|i| y_test[(i * frames + t) * ky..(i * frames + t + 1) * ky].to_vec())
            .collect();
        let pred1: Vec<f32> = (0..e)
            .flat_map(|i| l1[(i * span + t - 1) * d..(i * span + t) * d].to_vec())
            .collect();
        let s = cfg.state;
        let pred2: Vec<f32> = (0..e)
            .flat_map(|i| l2[(i * jumps + j - 1) * s..(i * jumps + j) * s].to_vec())
            .collect();
        r1.push(position_rmse(&p1.predict(&pred1), &truth, ky, 0));
        r2.push(position_rmse(&p2.predict(&pred2), &truth, ky, 0));
        steps.push(t);
    }
    Ok(JumpProbeReport {
        k,
        steps,
        level1_rmse_px: r1,
        level2_rmse_px: r2,
        level1_encode_rmse_px: enc1,
        level2_encode_rmse_px: enc2,
    })
}
