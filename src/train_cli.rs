//! `amisim train --level critic | mode1` and `amisim train --all`.

use crate::{eval_cli, train_config, TrainArgs};
use amisim::actor::hierarchy::HierarchyConfig;
use amisim::actor::model::Abstracted;
use amisim::actor::model::LatentDynamics;
use amisim::actor::planner::{PlannerConfig, PlannerKind};
use amisim::cost::critic::Critic;
use amisim::goal_net::{companion_path, load_goal_net, save_goal_net, GoalNetMeta, GoalNetShape};
use amisim::train::collect::CollectConfig;
use amisim::train::critic::{critic_probe, train_critic, CriticTrainConfig};
use amisim::train::data::Episodes;
use amisim::train::jepa::{cpu_device, load_checkpoint, Checkpoint};
use amisim::train::level2::LatentEpisodes;
use amisim::train::level2::{default_level2_path, load_level2, LEVEL2_CHECKPOINT};
use amisim::train::mode1::{collect_demos, train_mode1, Mode1TrainConfig, Teacher, TeacherModels};
use amisim::world::Scene;
use anyhow::{bail, Result};
use std::path::{Path, PathBuf};
use std::time::Instant;

/// The level-1 checkpoint a later stage reads: `--checkpoint`, else the run folder's own
/// (`--all`), else the shipped model for the scene.
fn level1(a: &TrainArgs, scene: &str) -> Result<(PathBuf, Checkpoint)> {
    let own = a.out.join(amisim::train::jepa::CHECKPOINT);
    let path = match &a.checkpoint {
        Some(p) => p.clone(),
        None if a.all && own.exists() => own,
        None => eval_cli::default_checkpoint(scene),
    };
    if !path.exists() {
        return Err(eval_cli::missing_checkpoint(&path, scene));
    }
    let ck = load_checkpoint(&path, None, &cpu_device())?;
    Ok((path, ck))
}

fn scene_of(a: &TrainArgs) -> Result<String> {
    match (a.data.as_slice(), &a.scene) {
        ([first, ..], _) => Ok(Episodes::header(first)?.scene),
        ([], Some(s)) => Ok(s.clone()),
        ([], None) => bail!("give --data DIR (a collected dataset) or --scene S (collect on the fly)"),
    }
}

/// `amisim train --level critic`: the critic on the latents of exploration episodes of 64
/// steps (or `--data`), then its probe on fresh episodes. Returns the probe as one line.
pub fn critic_command(a: &TrainArgs) -> Result<String> {
    let scene = scene_of(a)?;
    let (path, ck) = level1(a, &scene)?;
    let device = cpu_device();
    let data = match a.data.as_slice() {
        [_, ..] => Episodes::load_all(&a.data)?,
        [] => {
            let steps = a.episode_steps.unwrap_or(64);
            eprintln!("collecting {} episodes of {steps} steps in {scene} …", a.episodes);
            Episodes::collect(&CollectConfig::random_walk(&scene, a.episodes, steps, 256, 0))?
        }
    };
    let cfg: CriticTrainConfig = train_config(a, CriticTrainConfig::default)?;
    eprintln!(
        "training the critic on {} episodes × {} frames under {}; run folder {}",
        data.episodes,
        data.steps + 1,
        path.display(),
        a.out.display()
    );
    let latents = LatentEpisodes::encode(&ck.model, &data, &device);
    std::fs::create_dir_all(&a.out)?;
    std::fs::write(a.out.join("critic_config.json"), serde_json::to_string_pretty(&cfg)?)?;
    let summary = train_critic(&cfg, &latents, Some(&a.out), true, &device)?;
    let meta = GoalNetMeta {
        kind: "critic".into(),
        shape: GoalNetShape {
            latent: latents.latent,
            hidden: cfg.hidden,
            out: 1,
        },
        scale: cfg.scale,
        distance_per_step: summary.critic.distance_per_step,
        config: serde_json::to_value(&cfg)?,
        step: cfg.steps,
    };
    let out = a.out.join("critic.safetensors");
    save_goal_net(&out, &summary.net, &meta, &ck.model)?;
    println!(
        "done: {} steps in {:.0} s, loss {:.5}; latent distance per step {:.4}",
        cfg.steps, summary.seconds, summary.last_loss, summary.critic.distance_per_step
    );
    println!("critic: {}", out.display());
    let test = Episodes::collect(&CollectConfig::random_walk(&scene, 200, data.steps, 200, 3_000_017))?;
    let test_latents = LatentEpisodes::encode(&ck.model, &test, &device);
    let probe = critic_probe(&summary.critic, &test_latents, &test, 5);
    std::fs::write(a.out.join("critic_probe.json"), serde_json::to_string_pretty(&probe)?)?;
    let line = format!(
        "rank correlation with steps apart {:.3}, with pixel distance {:.3}; mean cost-to-go at the goal {:.1} steps, ≥ {} steps apart {:.1} ({} held-out pairs)",
        probe.spearman_steps,
        probe.spearman_px,
        probe.mean_at_goal,
        test.steps / 2,
        probe.mean_far,
        probe.pairs
    );
    println!("critic probe: {line}");
    Ok(line)
}

/// The critic to plan with while distilling: `--critic`, else beside the run folder's or the
/// level-1 checkpoint, if there is one.
fn critic_for(a: &TrainArgs, level1_path: &Path, ck: &Checkpoint) -> Result<Option<(PathBuf, Critic)>> {
    let candidates = match &a.critic {
        Some(p) => vec![p.clone()],
        None => vec![a.out.join("critic.safetensors"), companion_path(level1_path, "critic")],
    };
    for p in candidates {
        if p.exists() {
            let (net, meta) = load_goal_net(&p, "critic", Some(&ck.model), &cpu_device())?;
            return Ok(Some((p, Critic::new(&net, meta.scale, meta.distance_per_step))));
        }
    }
    if let Some(p) = &a.critic {
        bail!("--critic {}: no such file", p.display());
    }
    Ok(None)
}

/// `amisim train --level mode1`: runs the planner (mode 2) on goal-reaching episodes and
/// regresses the mode-1 policy onto its actions. Returns its held-out scores as one line.
pub fn mode1_command(a: &TrainArgs) -> Result<String> {
    if !a.data.is_empty() {
        bail!("--level mode1 learns from the planner acting in the world: give --scene, not --data");
    }
    let scene_name = scene_of(a)?;
    let (path, ck) = level1(a, &scene_name)?;
    let device = cpu_device();
    let critic = critic_for(a, &path, &ck)?;
    // The level-2 model beside the run folder's or the level-1 checkpoint, if there.
    let level2 = [a.out.join(LEVEL2_CHECKPOINT), default_level2_path(&path)]
        .into_iter()
        .find(|p| p.exists())
        .map(|p| load_level2(&p, Some(&ck.model), &device).map(|l| (p, l)))
        .transpose()?;
    let default = || {
        // The planner distilled: the hierarchical planner where there is a level-2 model
        // (the best and cheapest planner in the measurements), else CEM, at a short horizon
        // with the critic as terminal cost when there is a critic.
        let mut p = PlannerConfig::default_for(PlannerKind::Cem);
        if critic.is_some() {
            p.horizon = 4;
            p.cost.critic = 1.0;
        }
        let mut c = Mode1TrainConfig::default_for(p);
        if let Some((_, l2)) = &level2 {
            c.teacher = Teacher::Hierarchical;
            c.hierarchy = Some(HierarchyConfig::default_for(
                l2.config.model.k,
                l2.config.model.macro_radius,
            ));
        }
        c
    };
    let cfg: Mode1TrainConfig = train_config(a, default)?;
    cfg.validate().map_err(|e| anyhow::anyhow!("config: {e}"))?;
    if cfg.planner.cost.critic != 0.0 && critic.is_none() {
        bail!(
            "mode1.planner.cost.critic = {} but there is no critic (train one first, or pass --critic)",
            cfg.planner.cost.critic
        );
    }
    let scene = Scene::load(&scene_name)?;
    let dynamics = LatentDynamics::new(&ck.model.predictor, None)
        .with_idm(&ck.model.idm)
        .with_critic(critic.as_ref().map(|(_, c)| c.clone()));
    let teacher_name = match cfg.teacher {
        Teacher::Hierarchical => format!(
            "the hierarchical planner (level 2 {})",
            level2.as_ref().map_or("?".into(), |(p, _)| p.display().to_string())
        ),
        Teacher::Flat => format!(
            "{} (horizon {} × {}, critic weight {}{})",
            serde_json::to_value(cfg.planner.kind)?.as_str().unwrap_or("?"),
            cfg.planner.horizon,
            cfg.planner.repeat,
            cfg.planner.cost.critic,
            critic
                .as_ref()
                .map(|(p, _)| format!(", critic {}", p.display()))
                .unwrap_or_default()
        ),
    };
    eprintln!(
        "distilling mode 1 from {teacher_name} on {} episodes of {scene_name}; run folder {}",
        cfg.demo_episodes,
        a.out.display()
    );
    if cfg.teacher == Teacher::Hierarchical && level2.is_none() {
        bail!(
            "mode1.teacher = hierarchical: no level-2 model beside {} or in {}",
            path.display(),
            a.out.display()
        );
    }
    let l2_dyn = level2.as_ref().map(|(_, l2)| {
        let (w, b) = l2.model.abstraction_weights();
        (LatentDynamics::new(&l2.model.predictor, None), w, b)
    });
    let abstracted = l2_dyn
        .as_ref()
        .map(|(_, w, b)| Abstracted::new(&dynamics, w.clone(), b.clone()));
    let teacher = TeacherModels {
        latent: &dynamics,
        level2: l2_dyn.as_ref().zip(abstracted.as_ref()).map(|((h, _, _), l)| (h, l)),
    };
    std::fs::create_dir_all(&a.out)?;
    std::fs::write(a.out.join("mode1_config.json"), serde_json::to_string_pretty(&cfg)?)?;
    let t0 = Instant::now();
    let bar = amisim::train::store::steps_bar("planner episodes", cfg.demo_episodes, true);
    let mut demos = collect_demos(
        &cfg,
        &scene,
        &ck.model,
        &teacher,
        None,
        cfg.demo_seed,
        cfg.demo_episodes,
        &device,
        |_| bar.inc(1),
    )?;
    bar.finish();
    let teacher_success = demos.successes as f64 / demos.episodes.max(1) as f64;
    println!(
        "{} planner steps from {} episodes ({} reached the goal, {:.1} %) in {:.0} s",
        demos.len(),
        demos.episodes,
        demos.successes,
        100.0 * teacher_success,
        t0.elapsed().as_secs_f64()
    );
    let mut summary = train_mode1(&cfg, &demos, true, &device)?;
    for round in 1..=cfg.dagger_rounds {
        let t = Instant::now();
        let bar = amisim::train::store::steps_bar(&format!("DAgger round {round}"), cfg.dagger_episodes, true);
        let more = collect_demos(
            &cfg,
            &scene,
            &ck.model,
            &teacher,
            Some(&summary.policy),
            cfg.demo_seed.wrapping_add(7919 * round as u64),
            cfg.dagger_episodes,
            &device,
            |_| bar.inc(1),
        )?;
        bar.finish();
        println!(
            "DAgger round {round}: mode 1 drove {} episodes ({} reached the goal, {:.1} %), {} states labelled by the planner in {:.0} s; held-out cosine before it {:.3}",
            more.episodes,
            more.successes,
            100.0 * more.successes as f64 / more.episodes.max(1) as f64,
            more.len(),
            t.elapsed().as_secs_f64(),
            summary.held_out_cosine
        );
        demos.extend(more);
        summary = train_mode1(&cfg, &demos, true, &device)?;
    }
    let meta = GoalNetMeta {
        kind: "mode1".into(),
        shape: GoalNetShape {
            latent: ck.model.latent(),
            hidden: cfg.hidden,
            out: 2,
        },
        scale: cfg.planner.max_action,
        distance_per_step: 0.0,
        config: serde_json::to_value(&cfg)?,
        step: cfg.steps,
    };
    let out = a.out.join("mode1.safetensors");
    save_goal_net(&out, &summary.net, &meta, &ck.model)?;
    println!("mode-1 policy: {}", out.display());
    let line = format!(
        "held-out action RMSE {:.3} (actions of norm ≤ {}), mean cosine to the planner's action {:.3} ({} train / {} held-out samples; planner success {:.1} %)",
        summary.held_out_rmse,
        cfg.planner.max_action,
        summary.held_out_cosine,
        summary.samples,
        summary.held_out_samples,
        100.0 * teacher_success
    );
    println!("mode-1 probe: {line}");
    Ok(line)
}

/// A stage's arguments: the `--set` entries prefixed with `stage.` (prefix removed), and
/// `--steps` only where given as `stage.steps`.
fn stage_args(a: &TrainArgs, stage: &str) -> TrainArgs {
    let mut s = a.clone();
    let prefix = format!("{stage}.");
    s.sets = a
        .sets
        .iter()
        .filter_map(|kv| kv.strip_prefix(&prefix).map(str::to_string))
        .collect();
    s.steps = None;
    s.config = None;
    s
}

/// `amisim train --all`: encoder + level 1, level 2, critic, mode 1, in order, into one run
/// folder. A stage whose model is already there is skipped (level 1 continues a stopped run
/// with `--resume`); each prints its probe; a summary table ends it.
pub fn all_command(a: TrainArgs) -> Result<()> {
    if !a.data.is_empty() {
        bail!("--all collects on the fly: give --scene");
    }
    if a.checkpoint.is_some() {
        bail!("--all trains level 1 itself into --out; drop --checkpoint");
    }
    let scene = scene_of(&a)?;
    for kv in &a.sets {
        if !["level1.", "level2.", "critic.", "mode1."]
            .iter()
            .any(|p| kv.starts_with(p))
        {
            bail!("--set {kv}: with --all, prefix the key with its stage: level1., level2., critic. or mode1.");
        }
    }
    let mut rows: Vec<(String, String, f64, String)> = Vec::new();
    let ck_path = a.out.join(amisim::train::jepa::CHECKPOINT);
    // 1. Encoder and level 1.
    let t0 = Instant::now();
    let mut s1 = stage_args(&a, "level1");
    let done1 = ck_path.exists() && {
        let ck = load_checkpoint(&ck_path, None, &cpu_device())?;
        let want: amisim::train::jepa::TrainConfig = train_config(&s1, || ck.config.clone())?;
        ck.step >= want.steps
    };
    let status = if done1 {
        "done already".to_string()
    } else {
        s1.resume = ck_path.exists();
        crate::train_level1(&s1)?;
        if s1.resume {
            "resumed".into()
        } else {
            "trained".into()
        }
    };
    let ck = load_checkpoint(&ck_path, None, &cpu_device())?;
    let probe_train = Episodes::collect(&CollectConfig::random_walk(&scene, 300, 16, 128, 2_000_003))?;
    let probe_test = Episodes::collect(&CollectConfig::random_walk(&scene, 100, 16, 100, 2_000_004))?;
    let p = amisim::eval::probe::probe(&ck.model, &probe_train, &probe_test, 300);
    let m1 = format!(
        "position probe linear {:.2} px, MLP {:.2} px, rollout at 16 steps {:.2} px, effective rank {:.1}",
        p.linear_rmse_px,
        p.mlp_rmse_px,
        p.rollout_rmse_px.last().copied().unwrap_or(f32::NAN),
        p.effective_rank
    );
    println!("level 1: {m1}");
    rows.push(("encoder + level 1".into(), status, t0.elapsed().as_secs_f64(), m1));
    // 2–4: level 2, critic, mode 1, each skipped when its model is there.
    type Stage = fn(&TrainArgs) -> Result<String>;
    let stages: [(&str, &str, &str, Stage); 3] = [
        ("level 2", "level2", "level2.safetensors", crate::train_level2_command),
        ("critic", "critic", "critic.safetensors", critic_command),
        ("mode 1", "mode1", "mode1.safetensors", mode1_command),
    ];
    for (name, key, file, run) in stages {
        let t = Instant::now();
        let mut s = stage_args(&a, key);
        s.checkpoint = Some(ck_path.clone());
        s.episode_steps = None;
        s.level = key.into();
        // Level 2 and the critic learn from 64-step episodes: 2 000 of them at most (the
        // level-2 default) whatever level 1 collected.
        s.episodes = a.episodes.min(2000);
        let (status, metric) = if a.out.join(file).exists() {
            (
                "done already".to_string(),
                format!("{} is there; delete it to train again", a.out.join(file).display()),
            )
        } else {
            ("trained".to_string(), run(&s)?)
        };
        rows.push((name.into(), status, t.elapsed().as_secs_f64(), metric));
    }
    println!("\nsummary of {} ({scene})", a.out.display());
    println!("{:<18} {:<13} {:>8}  metric", "stage", "status", "seconds");
    for (name, status, secs, metric) in &rows {
        println!("{name:<18} {status:<13} {secs:>8.0}  {metric}");
    }
    Ok(())
}
