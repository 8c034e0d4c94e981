//! Distilling the mode-1 policy `π(z, z_goal)` from an agent (its teacher, mode 2): the teacher
//! drives goal-reaching episodes in the world; every executed step gives a sample (the
//! student's latent of the frame, the goal's latent, the action the teacher took), and `π` is
//! regressed onto those actions (mean squared error). The teacher is any agent — the shipped
//! one with its several world models included — and the student reads the latents of the
//! level-1 model it is tied to.

use super::store::{steps_bar, warmup_cosine};
use crate::actor::mode1::Mode1;
use crate::agent::{encode, Agent, AgentSpec};
use crate::episode::EpisodeBatch;
use crate::goal_net::{GoalNet, GoalNetShape};
use crate::world::scene::Scene;
use crate::world_model::jepa::Jepa;
use anyhow::{bail, Result};
use burn::optim::GradientsParams;
use burn::prelude::*;
use rand::{RngExt, SeedableRng};
use rand_chacha::ChaCha8Rng;
use serde::{Deserialize, Serialize};

/// Settings of a mode-1 distillation run (saved in its checkpoint).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Mode1TrainConfig {
    /// Goal-reaching episodes the teacher drives to make the samples.
    pub demo_episodes: usize,
    /// Environments side by side while collecting.
    pub envs: usize,
    /// The agent that is distilled (its spec, model paths as resolved).
    pub teacher: AgentSpec,
    /// The policy's actions are `max_action · tanh(output)` (the teacher planner's action ball).
    pub max_action: f32,
    /// Seed of the demonstration episodes (apart from eval's episodes).
    pub demo_seed: u64,
    /// DAgger rounds after the first: the policy drives `dagger_episodes` more episodes, the
    /// teacher labels every state it reaches, and the policy is trained again on all samples.
    #[serde(default)]
    pub dagger_rounds: usize,
    #[serde(default)]
    pub dagger_episodes: usize,
    pub hidden: usize,
    pub steps: usize,
    pub batch: usize,
    pub lr: f64,
    pub min_lr: f64,
    pub warmup: usize,
    pub weight_decay: f32,
    pub clip: f32,
    /// Share of the samples (whole episodes) held out to score the policy.
    pub held_out: f32,
    pub seed: u64,
}

impl Mode1TrainConfig {
    /// The defaults, distilling `teacher`.
    pub fn default_for(teacher: AgentSpec) -> Mode1TrainConfig {
        Mode1TrainConfig {
            demo_episodes: 200,
            envs: 20,
            max_action: teacher.planner.max_action,
            teacher,
            demo_seed: 1_000_003,
            dagger_rounds: 2,
            dagger_episodes: 100,
            hidden: 256,
            steps: 3000,
            batch: 256,
            lr: 1e-3,
            min_lr: 1e-5,
            warmup: 100,
            weight_decay: 1e-4,
            clip: 1.0,
            held_out: 0.1,
            seed: 0,
        }
    }

    /// Settings that cannot work, named by their config keys.
    pub fn validate(&self) -> Result<(), String> {
        crate::require_counts(
            "mode1",
            &[
                ("demo_episodes", self.demo_episodes),
                ("envs", self.envs),
                ("hidden", self.hidden),
                ("steps", self.steps),
                ("batch", self.batch),
            ],
        )?;
        if !(0.0..0.9).contains(&self.held_out) {
            return Err(format!("mode1.held_out = {} must be in [0, 0.9)", self.held_out));
        }
        crate::require_positive("mode1", &[("max_action", self.max_action)])?;
        self.teacher
            .validate()
            .map_err(|(field, m)| format!("mode1.teacher.{field}: {m}"))?;
        if !self.teacher.learned() {
            return Err(format!(
                "mode1.teacher.mode = {:?}: the teacher acts with world models (the student learns from what they see)",
                self.teacher.mode
            ));
        }
        Ok(())
    }
}

/// The planner's decisions: per executed step the latent, the goal latent and the action.
#[derive(Debug, Clone, Default)]
pub struct Demos {
    pub latent: usize,
    pub z: Vec<f32>,
    pub goal: Vec<f32>,
    pub action: Vec<f32>,
    /// The episode each sample comes from (for a held-out split by episode).
    pub episode: Vec<usize>,
    pub episodes: usize,
    pub successes: usize,
}

impl Demos {
    /// Appends `other`'s samples, its episode ids shifted past this one's.
    pub fn extend(&mut self, other: Demos) {
        let offset = self.episodes;
        self.z.extend(other.z);
        self.goal.extend(other.goal);
        self.action.extend(other.action);
        self.episode.extend(other.episode.into_iter().map(|e| e + offset));
        self.episodes += other.episodes;
        self.successes += other.successes;
    }

    pub fn len(&self) -> usize {
        self.episode.len()
    }

    pub fn is_empty(&self) -> bool {
        self.episode.is_empty()
    }
}

/// Runs `episodes` goal-reaching episodes of `scene` (drawn from `seed`) acted by the
/// teacher, recording at every step the student's latent (`student_model`'s), the goal's and
/// the teacher's action. With a `student`, the student's actions are executed instead
/// (DAgger: the teacher labels, with a fresh plan, the states the student gets itself into).
/// `progress` is told each finished episode.
#[allow(clippy::too_many_arguments)]
pub fn collect_demos(
    scene: &Scene,
    student_model: &Jepa,
    teacher: &mut Agent,
    student: Option<&Mode1>,
    seed: u64,
    episodes: usize,
    device: &Device,
    mut progress: impl FnMut(usize),
) -> Result<Demos> {
    let envs = teacher.envs();
    let mut batch = EpisodeBatch::new(scene, envs, scene.episode().max_steps)?;
    let d = student_model.latent();
    let mut demos = Demos {
        latent: d,
        episodes,
        ..Default::default()
    };
    for b in 0..episodes.div_ceil(envs) {
        let ids: Vec<usize> = (b * envs..(b + 1) * envs).collect();
        batch.begin(seed, &ids)?;
        for (i, &ep) in ids.iter().enumerate() {
            teacher.reset(i, seed ^ ((ep as u64 + 1) << 20));
        }
        let goals = encode(student_model, &batch.goals(), device);
        batch.active.retain(|&i| ids[i] < episodes);
        while !batch.active.is_empty() {
            let active = batch.active.clone();
            let z = encode(student_model, &batch.observations(), device);
            if student.is_some() {
                // The student drives: the teacher's label at each state is a fresh plan.
                for &i in &active {
                    teacher.interrupt(i);
                }
            }
            let (taught, _) = teacher.act(&batch.observations(), &batch.goals(), &active)?;
            let driven: Vec<f32> = match student {
                Some(pi) => pi.act(
                    &crate::gather_rows(&z, d, &active),
                    &crate::gather_rows(&goals, d, &active),
                    active.len(),
                ),
                None => Vec::new(),
            };
            let mut actions = vec![[0.0f32; 2]; envs];
            for (k, &i) in active.iter().enumerate() {
                let a = taught[i];
                actions[i] = if driven.is_empty() {
                    a
                } else {
                    [driven[2 * k], driven[2 * k + 1]]
                };
                demos.z.extend_from_slice(&z[i * d..(i + 1) * d]);
                demos.goal.extend_from_slice(&goals[i * d..(i + 1) * d]);
                demos.action.extend_from_slice(&a);
                demos.episode.push(ids[i]);
            }
            let (infos, ended) = batch.step(&actions)?;
            for i in ended {
                demos.successes += infos[i].success as usize;
                progress(ids[i]);
            }
        }
    }
    Ok(demos)
}

/// What a finished distillation gives: the policy and its scores on held-out episodes.
pub struct Mode1Summary {
    pub net: GoalNet,
    pub policy: Mode1,
    pub samples: usize,
    pub held_out_samples: usize,
    /// Root mean squared error of the actions on held-out samples, and the mean cosine
    /// between the policy's and the planner's actions there.
    pub held_out_rmse: f32,
    pub held_out_cosine: f32,
    pub seconds: f64,
}

/// Regresses `π` onto the planner's actions in `demos`.
pub fn train_mode1(
    cfg: &Mode1TrainConfig,
    demos: &Demos,
    show_progress: bool,
    device: &Device,
) -> Result<Mode1Summary> {
    cfg.validate().map_err(|e| anyhow::anyhow!("config: {e}"))?;
    let started = std::time::Instant::now();
    let d = demos.latent;
    // Whole episodes are held out: every `1 / held_out`-th episode id.
    let every = if cfg.held_out > 0.0 {
        (1.0 / cfg.held_out).round() as usize
    } else {
        usize::MAX
    };
    let (train, test): (Vec<usize>, Vec<usize>) =
        (0..demos.len()).partition(|&i| demos.episode[i] % every != every - 1);
    if train.is_empty() {
        bail!("no demonstration samples to learn from ({} episodes)", demos.episodes);
    }
    let shape = GoalNetShape {
        latent: d,
        hidden: cfg.hidden,
        out: 2,
    };
    let ad = device.clone().autodiff();
    let mut net = super::jepa::stable_param_ids(super::jepa::seeded(&ad, cfg.seed, || shape.init(&ad)));
    let mut optim = super::store::adamw(cfg.weight_decay, cfg.clip).init();
    let max_action = cfg.max_action;
    let bar = steps_bar("mode-1", cfg.steps, show_progress);
    for step in 0..cfg.steps {
        let mut rng = ChaCha8Rng::seed_from_u64(cfg.seed);
        rng.set_stream(step as u64 + 1);
        let n = cfg.batch;
        let (mut z, mut g, mut a) = (
            Vec::with_capacity(n * d),
            Vec::with_capacity(n * d),
            Vec::with_capacity(n * 2),
        );
        for _ in 0..n {
            let i = train[rng.random_range(0..train.len())];
            z.extend_from_slice(&demos.z[i * d..(i + 1) * d]);
            g.extend_from_slice(&demos.goal[i * d..(i + 1) * d]);
            a.extend_from_slice(&demos.action[i * 2..i * 2 + 2]);
        }
        let z = Tensor::<2>::from_data(TensorData::new(z, [n, d]), &ad);
        let g = Tensor::<2>::from_data(TensorData::new(g, [n, d]), &ad);
        let a = Tensor::<2>::from_data(TensorData::new(a, [n, 2]), &ad);
        let pred = net.forward(z, g).tanh() * max_action;
        let loss = (pred - a).square().mean();
        let value = crate::values(loss.clone())[0];
        if !value.is_finite() {
            bar.abandon();
            bail!("mode-1 loss is {value} at step {step}; training stopped (nothing written)");
        }
        let lr = warmup_cosine(step, cfg.steps, cfg.warmup, cfg.lr, cfg.min_lr);
        let grads = GradientsParams::from_grads(loss.backward(), &net);
        net = optim.step(lr, net, grads);
        if (step + 1) % 100 == 0 {
            bar.set_message(format!("mse {value:.4}"));
        }
        bar.set_position(step as u64 + 1);
    }
    bar.finish();
    let net = net.valid();
    let policy = Mode1::new(&net, max_action);
    let (mut se, mut cos) = (0.0f64, 0.0f64);
    if !test.is_empty() {
        let pick = |v: &[f32], w: usize| crate::gather_rows(v, w, &test);
        let pred = policy.act(&pick(&demos.z, d), &pick(&demos.goal, d), test.len());
        let truth = pick(&demos.action, 2);
        for (p, t) in pred.chunks_exact(2).zip(truth.chunks_exact(2)) {
            se += ((p[0] - t[0]).powi(2) + (p[1] - t[1]).powi(2)) as f64;
            let (np, nt) = ((p[0] * p[0] + p[1] * p[1]).sqrt(), (t[0] * t[0] + t[1] * t[1]).sqrt());
            cos += ((p[0] * t[0] + p[1] * t[1]) / (np * nt).max(1e-6)) as f64;
        }
    }
    let m = test.len().max(1) as f64;
    Ok(Mode1Summary {
        net,
        policy,
        samples: train.len(),
        held_out_samples: test.len(),
        held_out_rmse: (se / m).sqrt() as f32,
        held_out_cosine: (cos / m) as f32,
        seconds: started.elapsed().as_secs_f64(),
    })
}
