//! `amisim compare`: every objective trained on the same episodes for the same budget, then
//! judged the same way with its encoder frozen:
//!
//! 1. probes (linear and MLP) from latents to the agent's position, the box's, and the
//!    episode's wall layout, on held-out episodes; effective rank and RankMe of the latents;
//!    the linear agent probe and RankMe again on augmented frames (what the two-view
//!    objectives trained on), to tell a collapsed latent from a probe off its distribution;
//! 2. a level-1 world model `z[t+1] = P(z[t], a[t])` fitted on the frozen latents (the same
//!    predictor, steps and data for every row), its open-loop rollout probe, and its energy
//!    `E(x, y) = ‖s_y − P(s_x, a)‖²` on observed and mismatched transitions (AUC: how often an
//!    observed pair has the lower energy);
//! 3. planning success with that world model (CEM, the eval's own loop and settings).
//!
//! One table, printed and written as CSV, JSON and SVG charts; each row's world model is
//! a checkpoint `amisim eval --checkpoint` and `amisim probe --checkpoint` take.

use super::model::{Objective, SslConfig};
use super::train::{family, pretrain, Budget, Pretrained};
use crate::actor::planner::{PlannerConfig, PlannerKind};
use crate::agent::{Agent, AgentSpec, Mode, Models};
use crate::data::collect::CollectConfig;
use crate::data::Episodes;
use crate::eval::run::{run, EvalConfig, Player, Row as EvalRow};
use crate::perception::{Encoder, VitEncoder};
use crate::probe::{encode_all, probe, ProbeReport};
use crate::train::jepa::{save_checkpoint, seeded, stable_param_ids, TrainConfig};
use crate::train::store::adamw;
use crate::world_model::jepa::{Jepa, JepaConfig, LossWeights};
use crate::world_model::{Predictor, PredictorConfig};
use anyhow::{bail, Context, Result};
use burn::optim::GradientsParams;
use burn::prelude::*;
use rand::{RngExt, SeedableRng};
use rand_chacha::ChaCha8Rng;
use serde::Serialize;
use std::path::{Path, PathBuf};
use std::time::Instant;

/// Settings of a comparison.
#[derive(Debug, Clone, Serialize)]
pub struct CompareConfig {
    pub scene: String,
    pub objectives: Vec<Objective>,
    pub budget: Budget,
    /// Random-walk episodes pretraining (and the level-1 fit) read, and their length.
    pub episodes: usize,
    pub episode_steps: usize,
    /// Episodes the probes are fitted on and scored on (fresh seeds).
    pub probe_train: usize,
    pub probe_test: usize,
    pub mlp_steps: usize,
    /// Steps of the level-1 fit on the frozen latents (batch 64 windows of 9 latents).
    pub level1_steps: usize,
    /// Planning episodes per row (0: no planning), and the planner's horizon in decisions.
    pub plan_episodes: usize,
    pub plan_horizon: usize,
    pub seed: u64,
    /// Tiny models and data (tests).
    pub tiny: bool,
}

impl CompareConfig {
    pub fn new(scene: &str) -> CompareConfig {
        CompareConfig {
            scene: scene.to_string(),
            objectives: Objective::ALL.to_vec(),
            budget: Budget::Seconds(120.0),
            episodes: 400,
            episode_steps: 16,
            probe_train: 300,
            probe_test: 100,
            mlp_steps: 300,
            level1_steps: 1000,
            plan_episodes: 40,
            plan_horizon: 6,
            seed: 0,
            tiny: false,
        }
    }

    fn ssl(&self, objective: Objective, resolution: usize) -> SslConfig {
        let mut c = if self.tiny {
            SslConfig::tiny(objective, resolution)
        } else {
            SslConfig::new(objective, resolution)
        };
        c.seed = self.seed;
        c
    }

    fn planner(&self) -> PlannerConfig {
        PlannerConfig {
            horizon: self.plan_horizon,
            ..PlannerConfig::default_for(PlannerKind::Cem)
        }
    }
}

/// One row of the table.
#[derive(Debug, Clone, Serialize)]
pub struct Row {
    pub objective: String,
    pub family: String,
    pub steps: usize,
    pub train_s: f64,
    pub frames_per_s: f64,
    pub first_loss: f32,
    pub last_loss: f32,
    pub agent_linear_px: f32,
    pub agent_mlp_px: f32,
    /// A linear probe from the encoder's tokens averaged over a 4 × 4 grid of regions (the
    /// spatial readout, beside the latent's), agent and box.
    pub agent_grid_px: f32,
    pub box_grid_px: Option<f32>,
    pub box_linear_px: Option<f32>,
    pub box_mlp_px: Option<f32>,
    /// Layout probe error over the layout's spread (1 = no better than the mean), linear and MLP,
    /// averaged over the layout values that vary.
    pub layout_linear_rel: Option<f32>,
    pub layout_mlp_rel: Option<f32>,
    pub effective_rank: f32,
    /// RankMe of the held-out latents, and of the same frames augmented as the two-view
    /// objectives' views are.
    pub rank_me: f32,
    pub rank_me_aug: f32,
    /// The linear agent probe fitted and scored on augmented frames.
    pub agent_linear_aug_px: f32,
    pub latent_dim: usize,
    /// The level-1 model's open-loop rollout probe at 8 and 16 steps (agent and box together).
    pub rollout8_px: f32,
    pub rollout16_px: f32,
    /// How often an observed transition has a lower JEPA energy than a mismatched one.
    pub jepa_energy_auc: f32,
    /// The same for the energy objective's own head.
    pub energy_head_auc: Option<f32>,
    pub plan_success: Option<f64>,
    pub plan_ci95: Option<[f64; 2]>,
    pub checkpoint: String,
}

/// The comparison's result.
#[derive(Debug, Clone, Serialize)]
pub struct Comparison {
    pub config: CompareConfig,
    pub rows: Vec<Row>,
    /// Energies of observed and mismatched held-out transitions, per row:
    /// `(label, observed, mismatched)` (JEPA energy of each row, and the energy head's).
    #[serde(skip)]
    pub energies: Vec<(String, Vec<f32>, Vec<f32>)>,
}

/// Runs the comparison, writing each row's world model under `out/<objective>/`.
pub fn compare(cfg: &CompareConfig, out: &Path, mut log: impl FnMut(&str)) -> Result<Comparison> {
    if cfg.objectives.is_empty() {
        bail!("--objectives: give at least one");
    }
    std::fs::create_dir_all(out).with_context(|| format!("creating {}", out.display()))?;
    let envs = 128;
    log(&format!(
        "collecting {} episodes of {} steps in {} (pretraining and the level-1 fit) …",
        cfg.episodes, cfg.episode_steps, cfg.scene
    ));
    let data = Episodes::collect(&CollectConfig::random_walk(
        &cfg.scene,
        cfg.episodes,
        cfg.episode_steps,
        envs,
        cfg.seed,
    ))?;
    let probe_train = Episodes::collect(&CollectConfig::random_walk(
        &cfg.scene,
        cfg.probe_train,
        16,
        envs,
        cfg.seed + 2_000_003,
    ))?;
    let probe_test = Episodes::collect(&CollectConfig::random_walk(
        &cfg.scene,
        cfg.probe_test,
        16,
        envs,
        cfg.seed + 2_000_004,
    ))?;
    let resolution = data.frame_shape[1];
    let mut rows = Vec::new();
    let mut energies = Vec::new();
    for &objective in &cfg.objectives {
        let ssl = cfg.ssl(objective, resolution);
        let started = Instant::now();
        let pre = pretrain(&ssl, &data, cfg.budget, false)?;
        log(&if pre.steps == 0 {
            format!("{}: nothing to train", objective.name())
        } else {
            format!(
                "{}: {} steps in {:.0} s ({:.0} frames/s), loss {:.4} → {:.4}",
                objective.name(),
                pre.steps,
                pre.seconds,
                pre.frames_per_s,
                pre.first[0].1,
                pre.last[0].1
            )
        });
        let (row, e) = judge(cfg, objective, &pre, &data, &probe_train, &probe_test, out)?;
        log(&format!(
            "{}: agent {:.2} / {:.2} / {:.2} px (linear / MLP / grid; {:.2} augmented), rank {:.1}, RankMe {:.1} ({:.1} augmented), rollout@16 {:.2} px, energy AUC {:.3}{} ({:.0} s in all)",
            objective.name(),
            row.agent_linear_px,
            row.agent_mlp_px,
            row.agent_grid_px,
            row.agent_linear_aug_px,
            row.effective_rank,
            row.rank_me,
            row.rank_me_aug,
            row.rollout16_px,
            row.jepa_energy_auc,
            row.plan_success
                .map(|s| format!(", planning {:.0} %", 100.0 * s))
                .unwrap_or_default(),
            started.elapsed().as_secs_f64()
        ));
        rows.push(row);
        energies.extend(e);
    }
    Ok(Comparison {
        config: cfg.clone(),
        rows,
        energies,
    })
}

/// The frozen encoder's world model: the encoder of `pre` and a level-1 predictor fitted on
/// its latents of `data`.
pub fn world_model(pre: &Pretrained, data: &Episodes, steps: usize, seed: u64) -> Result<(Jepa, JepaConfig)> {
    let device = crate::train::jepa::cpu_device();
    let jcfg = JepaConfig::new(pre.config.encoder.clone(), LossWeights::new());
    let mut jepa = stable_param_ids(seeded(&device, seed, || jcfg.init(&device)));
    jepa.encoder = Encoder::Vit(pre.model.encoder.clone());
    let (z, d) = encode_all(&jepa, data, &device);
    jepa.predictor = fit_predictor(&z, d, data, jcfg.predictor_hidden, steps, seed)?;
    Ok((jepa, jcfg))
}

/// Fits `P` on latents `z` (`[episodes·(steps+1), d]`) of `data` by unrolling it 8 steps from
/// each window's first latent, as level-1 training does, with the encoder out of the loop.
pub fn fit_predictor(
    z: &[f32],
    d: usize,
    data: &Episodes,
    hidden: usize,
    steps: usize,
    seed: u64,
) -> Result<Predictor> {
    let device = crate::train::jepa::cpu_device().autodiff();
    let mut p = stable_param_ids(seeded(&device, seed, || {
        PredictorConfig::new(d).with_hidden(hidden).init(&device)
    }));
    let mut optim = adamw(1e-4, 1.0).init();
    let window = 9.min(data.steps + 1);
    let batch = 64;
    for step in 0..steps {
        let mut rng = ChaCha8Rng::seed_from_u64(seed);
        rng.set_stream(step as u64 + 1);
        let (mut z0, mut zs, mut acts) = (Vec::new(), Vec::new(), Vec::new());
        for _ in 0..batch {
            let e = rng.random_range(0..data.episodes);
            let t0 = rng.random_range(0..=data.steps + 1 - window);
            let row = |t: usize| &z[(e * (data.steps + 1) + t) * d..(e * (data.steps + 1) + t + 1) * d];
            z0.extend_from_slice(row(t0));
            for t in t0 + 1..t0 + window {
                zs.extend_from_slice(row(t));
            }
            for t in t0..t0 + window - 1 {
                acts.extend_from_slice(&data.action(e, t));
            }
        }
        let k = window - 1;
        let z0 = Tensor::<2>::from_data(TensorData::new(z0, [batch, d]), &device);
        let zs = Tensor::<3>::from_data(TensorData::new(zs, [batch, k, d]), &device);
        let acts = Tensor::<3>::from_data(TensorData::new(acts, [batch, k, 2]), &device);
        let loss = crate::world_model::loss::mse(p.rollout(z0, acts), zs);
        let value = loss.clone().into_scalar::<f32>();
        if !value.is_finite() {
            bail!("level-1 fit: loss is {value} at step {step}");
        }
        let lr = crate::train::store::warmup_cosine(step, steps, steps / 10, 1e-3, 1e-5);
        let grads = GradientsParams::from_grads(loss.backward(), &p);
        p = optim.step(lr, p, grads);
    }
    Ok(p.valid())
}

/// Mann–Whitney AUC: the share of (observed, mismatched) pairs where the observed energy is
/// the lower (ties count half).
pub fn auc(observed: &[f32], mismatched: &[f32]) -> f32 {
    let mut all: Vec<(f32, bool)> = observed
        .iter()
        .map(|&v| (v, true))
        .chain(mismatched.iter().map(|&v| (v, false)))
        .collect();
    all.sort_by(|a, b| a.0.total_cmp(&b.0));
    // Ranks (1-based, ties averaged) of the observed energies, counted from the low end.
    let mut rank_sum = 0.0f64;
    let mut i = 0;
    while i < all.len() {
        let mut j = i;
        while j + 1 < all.len() && all[j + 1].0 == all[i].0 {
            j += 1;
        }
        let avg = (i + j) as f64 / 2.0 + 1.0;
        rank_sum += all[i..=j].iter().filter(|x| x.1).count() as f64 * avg;
        i = j + 1;
    }
    let (n1, n2) = (observed.len() as f64, mismatched.len() as f64);
    if n1 == 0.0 || n2 == 0.0 {
        return 0.5;
    }
    // U of the observed sample counts pairs where observed > mismatched; AUC wants lower.
    let u = rank_sum - n1 * (n1 + 1.0) / 2.0;
    (1.0 - u / (n1 * n2)) as f32
}

/// Every transition of `data` as rows of latents `z` (`[episodes·(steps+1), d]`): `x` (step s),
/// its action, `y` (step s + 1) and `y_other` (step s + 1 of the next episode: a mismatched
/// pair at the same time), `[n, d]` each (actions `[n, 2]`).
pub struct Transitions {
    pub n: usize,
    pub x: Vec<f32>,
    pub actions: Vec<f32>,
    pub y: Vec<f32>,
    pub y_other: Vec<f32>,
}

impl Transitions {
    pub fn new(z: &[f32], d: usize, data: &Episodes) -> Transitions {
        let (e, t) = (data.episodes, data.steps);
        let row = |ep: usize, s: usize| &z[(ep * (t + 1) + s) * d..(ep * (t + 1) + s + 1) * d];
        let mut tr = Transitions {
            n: e * t,
            x: Vec::new(),
            actions: Vec::new(),
            y: Vec::new(),
            y_other: Vec::new(),
        };
        for ep in 0..e {
            for s in 0..t {
                tr.x.extend_from_slice(row(ep, s));
                tr.actions.extend_from_slice(&data.action(ep, s));
                tr.y.extend_from_slice(row(ep, s + 1));
                tr.y_other.extend_from_slice(row((ep + 1) % e, s + 1));
            }
        }
        tr
    }
}

/// `[n, w]` rows as a tensor.
fn rows(v: &[f32], n: usize, device: &Device) -> Tensor<2> {
    let w = v.len() / n.max(1);
    Tensor::<2>::from_data(TensorData::new(v.to_vec(), [n, w]), device)
}

/// The JEPA energy `‖z_y − P(z_x, a)‖²` of every transition (observed), and of each `x` with
/// its mismatched `y` ([`Transitions`]).
pub fn jepa_energies(model: &Jepa, tr: &Transitions) -> (Vec<f32>, Vec<f32>) {
    let device = crate::train::jepa::cpu_device();
    let n = tr.n;
    let d = tr.x.len() / n.max(1);
    let pred = crate::values(
        model
            .predictor
            .forward(rows(&tr.x, n, &device), rows(&tr.actions, n, &device)),
    );
    let energy = |y: &[f32]| -> Vec<f32> {
        (0..n)
            .map(|i| (0..d).map(|j| (y[i * d + j] - pred[i * d + j]).powi(2)).sum::<f32>())
            .collect()
    };
    (energy(&tr.y), energy(&tr.y_other))
}

/// Regions per side of [`grid_probe`]'s readout.
pub const GRID_CELLS: usize = 4;

/// Linear probe (ridge 1e-3) from [`VitEncoder::grid_features`] to the agent's position (and
/// the box's): RMSE in pixels on `test`.
pub fn grid_probe(encoder: &VitEncoder, train: &Episodes, test: &Episodes) -> Result<(f32, Option<f32>)> {
    let device = crate::train::jepa::cpu_device();
    let features =
        |data: &Episodes| crate::probe::map_frames(data, &device, 256, |x| encoder.grid_features(x, GRID_CELLS));
    let (x_train, d) = features(train);
    let (x_test, _) = features(test);
    let (y_train, k, names) = crate::probe::targets(train);
    let (y_test, _, _) = crate::probe::targets(test);
    let pred = crate::probe::LinearProbe::fit(&x_train, &y_train, d, k, 1e-3).predict(&x_test);
    let err = |i: usize| crate::probe::position_rmse(&pred, &y_test, k, i);
    Ok((err(0), (names.len() > 1).then(|| err(1))))
}

/// The linear agent probe and RankMe on augmented frames: every probe frame is augmented as
/// the two-view objectives' views are (seeded), the probe fitted on the augmented training
/// frames and scored on the augmented held-out ones. Returns `(agent RMSE px, RankMe)`.
pub fn augmented_probe(encoder: &VitEncoder, train: &Episodes, test: &Episodes, seed: u64) -> (f32, f32) {
    let device = crate::train::jepa::cpu_device();
    let mut rng = ChaCha8Rng::seed_from_u64(seed ^ 0xa5a5_0001);
    let mut features = |data: &Episodes| {
        crate::probe::map_frames(data, &device, 256, |x| {
            encoder.forward(super::augment::augment(x, &mut rng))
        })
    };
    let (x_train, d) = features(train);
    let (x_test, _) = features(test);
    let (y_train, k, _) = crate::probe::targets(train);
    let (y_test, _, _) = crate::probe::targets(test);
    let pred = crate::probe::LinearProbe::fit(&x_train, &y_train, d, k, 1e-3).predict(&x_test);
    (
        crate::probe::position_rmse(&pred, &y_test, k, 0),
        crate::probe::rank_me(&x_test, d),
    )
}

type Energies = Vec<(String, Vec<f32>, Vec<f32>)>;

/// Freezes the encoder of `pre` and measures everything the table reports.
fn judge(
    cfg: &CompareConfig,
    objective: Objective,
    pre: &Pretrained,
    data: &Episodes,
    probe_train: &Episodes,
    probe_test: &Episodes,
    out: &Path,
) -> Result<(Row, Energies)> {
    let (jepa, jcfg) = world_model(pre, data, cfg.level1_steps, cfg.seed)?;
    let report: ProbeReport = probe(&jepa, probe_train, probe_test, cfg.mlp_steps);
    let device = crate::train::jepa::cpu_device();
    let (z_test, d) = encode_all(&jepa, probe_test, &device);
    let tr = Transitions::new(&z_test, d, probe_test);
    let (obs, mis) = jepa_energies(&jepa, &tr);
    let mut energies = vec![(format!("{} (JEPA energy)", objective.name()), obs.clone(), mis.clone())];
    let energy_head_auc = if pre.model.energy.is_some() {
        let m = |v: &[f32]| rows(v, tr.n, &device);
        let pos = pre.model.energy_of(m(&tr.x), m(&tr.y));
        let neg = pre.model.energy_of(m(&tr.x), m(&tr.y_other));
        let (pos, neg) = (pos.context("the energy objective has a head")?, neg.context("a head")?);
        let a = auc(&pos, &neg);
        energies.push(("energy head".into(), pos, neg));
        Some(a)
    } else {
        None
    };
    // The world model as a checkpoint the other commands read.
    let dir = out.join(objective.name());
    let ckpt = dir.join(crate::train::jepa::CHECKPOINT);
    let tcfg = TrainConfig::new(jcfg).with_seed(cfg.seed);
    save_checkpoint(&ckpt, &tcfg, pre.steps, &jepa, None)?;
    let (plan_success, plan_ci95) = if cfg.plan_episodes > 0 {
        // The agent: flat CEM with this row's world model, as `eval` plays it.
        let scene = crate::world::scene::Scene::load(&cfg.scene)?;
        let mut spec = AgentSpec::new(Mode::Plan);
        spec.planner = cfg.planner();
        let envs = cfg.plan_episodes.min(20);
        let models = Models {
            members: vec![jepa.clone()],
            ..Models::none()
        };
        let agent = Agent::new(spec, models, envs, crate::agents::world(&scene)?)?;
        let eval = EvalConfig {
            scene: cfg.scene.clone(),
            episodes: cfg.plan_episodes,
            envs,
            seed: cfg.seed,
            max_steps: scene.episode().max_steps,
            shard: (0, 1),
            rows: vec![EvalRow {
                name: objective.name().to_string(),
                spec: agent.spec().clone(),
                models: Vec::new(),
            }],
            jpeg: None,
        };
        let mut players = [Player {
            agent,
            probes: Default::default(),
        }];
        let (report, _) = run(&eval, &mut players, 0, |_, _| {}, None, None)?;
        let r = &report.rows[0];
        (Some(r.success_rate), Some(r.success_ci95))
    } else {
        (None, None)
    };
    let target = |name: &str| report.by_target.iter().find(|t| t.target == name);
    let agent = target("agent").context("the probe reports the agent")?;
    let layout_rel = |f: fn(&crate::probe::LayoutErrors) -> f32| -> Option<f32> {
        let v: Vec<f32> = report.layout.iter().map(|l| f(l) / l.std_px.max(1e-6)).collect();
        (!v.is_empty()).then(|| v.iter().sum::<f32>() / v.len() as f32)
    };
    let (agent_grid_px, box_grid_px) = grid_probe(&pre.model.encoder, probe_train, probe_test)?;
    let (agent_linear_aug_px, rank_me_aug) = augmented_probe(&pre.model.encoder, probe_train, probe_test, cfg.seed);
    let at = |k: usize| {
        report
            .rollout_rmse_px
            .get(k - 1)
            .or(report.rollout_rmse_px.last())
            .copied()
            .unwrap_or(f32::NAN)
    };
    let row = Row {
        objective: objective.name().into(),
        family: family(objective).into(),
        steps: pre.steps,
        train_s: pre.seconds,
        frames_per_s: pre.frames_per_s,
        first_loss: pre.first[0].1,
        last_loss: pre.last[0].1,
        agent_linear_px: agent.linear_rmse_px,
        agent_mlp_px: agent.mlp_rmse_px,
        agent_grid_px,
        box_grid_px,
        box_linear_px: target("box").map(|t| t.linear_rmse_px),
        box_mlp_px: target("box").map(|t| t.mlp_rmse_px),
        layout_linear_rel: layout_rel(|l| l.linear_rmse_px),
        layout_mlp_rel: layout_rel(|l| l.mlp_rmse_px),
        effective_rank: report.effective_rank,
        rank_me: report.rank_me,
        rank_me_aug,
        agent_linear_aug_px,
        latent_dim: report.latent_dim,
        rollout8_px: at(8),
        rollout16_px: at(16),
        jepa_energy_auc: auc(&obs, &mis),
        energy_head_auc,
        plan_success,
        plan_ci95,
        checkpoint: ckpt.display().to_string(),
    };
    Ok((row, energies))
}

impl Comparison {
    /// The table as text.
    pub fn table(&self) -> String {
        let opt = |v: Option<f32>| v.map(|x| format!("{x:.2}")).unwrap_or("—".into());
        let mut s = format!(
            "{} · {} per objective · {} episodes of {} steps · probes on {} / {} held-out episodes\n",
            self.config.scene,
            self.config.budget.describe(),
            self.config.episodes,
            self.config.episode_steps,
            self.config.probe_train,
            self.config.probe_test
        );
        s += "objective  family           steps  frames/s  agent lin/MLP/grid px  box lin/MLP/grid px  layout lin/MLP  rank  RankMe  aug: agent px  RankMe  roll@16 px  E-AUC  planning\n";
        for r in &self.rows {
            let plan = match (r.plan_success, r.plan_ci95) {
                (Some(p), Some(ci)) => format!("{:.0} % ({:.0}–{:.0})", 100.0 * p, 100.0 * ci[0], 100.0 * ci[1]),
                _ => "—".into(),
            };
            let auc = match r.energy_head_auc {
                Some(h) => format!("{:.3} (head {h:.3})", r.jepa_energy_auc),
                None => format!("{:.3}", r.jepa_energy_auc),
            };
            s += &format!(
                "{:<10} {:<16} {:>5}  {:>8.0}  {:>5.2} / {:>5.2} / {:<5.2}  {:>5} / {:>5} / {:<5}  {:>5} / {:<5}   {:>4.1}  {:>6.1}  {:>13.2}  {:>6.1}  {:>9.2}  {}  {}\n",
                r.objective,
                r.family,
                r.steps,
                r.frames_per_s,
                r.agent_linear_px,
                r.agent_mlp_px,
                r.agent_grid_px,
                opt(r.box_linear_px),
                opt(r.box_mlp_px),
                opt(r.box_grid_px),
                opt(r.layout_linear_rel),
                opt(r.layout_mlp_rel),
                r.effective_rank,
                r.rank_me,
                r.agent_linear_aug_px,
                r.rank_me_aug,
                r.rollout16_px,
                auc,
                plan
            );
        }
        s += "agent, box: probe RMSE in pixels from the latent (linear, MLP) and from the tokens averaged over a 4×4 grid (linear); ";
        s += "layout: probe error over the layout's spread (1.00 = no better than guessing the mean); rank: effective rank of the latents' covariance; RankMe: of their singular values; aug: the linear agent probe and RankMe on augmented frames; E-AUC: share of (observed, mismatched) held-out transitions where the observed has the lower JEPA energy ‖s_y − P(s_x, a)‖²\n";
        s
    }

    /// Writes `compare.csv`, `compare.json`, `compare.svg` (a bar chart per metric) and
    /// `energy.svg` (the energies' histograms).
    pub fn write(&self, dir: &Path) -> Result<Vec<PathBuf>> {
        std::fs::create_dir_all(dir)?;
        let mut csv = String::from(
            "objective,family,steps,train_s,frames_per_s,first_loss,last_loss,agent_linear_px,agent_mlp_px,agent_grid_px,box_linear_px,box_mlp_px,box_grid_px,layout_linear_rel,layout_mlp_rel,effective_rank,rank_me,rank_me_aug,agent_linear_aug_px,latent_dim,rollout8_px,rollout16_px,jepa_energy_auc,energy_head_auc,plan_success,plan_ci_low,plan_ci_high,checkpoint\n",
        );
        let o = |v: Option<f32>| v.map(|x| x.to_string()).unwrap_or_default();
        let od = |v: Option<f64>| v.map(|x| x.to_string()).unwrap_or_default();
        for r in &self.rows {
            csv += &format!(
                "{},{},{},{:.1},{:.1},{},{},{},{},{},{},{},{},{},{},{},{},{},{},{},{},{},{},{},{},{},{},{}\n",
                r.objective,
                r.family,
                r.steps,
                r.train_s,
                r.frames_per_s,
                r.first_loss,
                r.last_loss,
                r.agent_linear_px,
                r.agent_mlp_px,
                r.agent_grid_px,
                o(r.box_linear_px),
                o(r.box_mlp_px),
                o(r.box_grid_px),
                o(r.layout_linear_rel),
                o(r.layout_mlp_rel),
                r.effective_rank,
                r.rank_me,
                r.rank_me_aug,
                r.agent_linear_aug_px,
                r.latent_dim,
                r.rollout8_px,
                r.rollout16_px,
                r.jepa_energy_auc,
                o(r.energy_head_auc),
                od(r.plan_success),
                od(r.plan_ci95.map(|c| c[0])),
                od(r.plan_ci95.map(|c| c[1])),
                r.checkpoint
            );
        }
        let paths = [
            dir.join("compare.csv"),
            dir.join("compare.json"),
            dir.join("compare.svg"),
            dir.join("energy.svg"),
        ];
        crate::write_file_atomic(&paths[0], &csv)?;
        crate::write_file_atomic(&paths[1], serde_json::to_string_pretty(self)?)?;
        crate::write_file_atomic(&paths[2], super::charts::bars(self)?)?;
        crate::write_file_atomic(&paths[3], super::charts::energies(&self.energies)?)?;
        Ok(paths.to_vec())
    }
}
