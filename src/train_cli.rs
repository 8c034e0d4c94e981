//! `amisim train --level critic | mode1` and `amisim train --all`.

use crate::{train_config, TrainArgs};
use amisim::actor::hierarchy::HierarchyConfig;
use amisim::agent::{load_models, Agent, AgentSpec, Mode, SPEC_FILE};
use amisim::agents;
use amisim::checkpoint::{
    companion_path, cpu_device, default_level2_path, load_checkpoint, load_level2, Checkpoint, LEVEL2_CHECKPOINT,
};
use amisim::data::collect::CollectConfig;
use amisim::data::Episodes;
use amisim::goal_net::{save_goal_net, GoalNetMeta, GoalNetShape};
use amisim::train::critic::{critic_probe, train_critic, CriticTrainConfig};
use amisim::train::level2::LatentEpisodes;
use amisim::train::mode1::{collect_demos, train_mode1, Mode1TrainConfig};
use amisim::train::recipe::{recipe_for, STAGES};
use amisim::world::Scene;
use anyhow::{bail, Context, Result};
use std::path::{Path, PathBuf};
use std::time::Instant;

/// The level-1 checkpoint a later stage reads: `--checkpoint`, else the run folder's own
/// (`--all`), else the shipped model for the scene.
fn level1(a: &TrainArgs, scene: &str) -> Result<(PathBuf, Checkpoint)> {
    let own = a.out.join(amisim::checkpoint::CHECKPOINT);
    let path = match &a.checkpoint {
        Some(p) => p.clone(),
        None if a.all && own.exists() => own,
        None => agents::default_checkpoint(scene),
    };
    if !path.exists() {
        return Err(agents::missing_checkpoint(&path, scene));
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
            let episodes = a.episodes.unwrap_or(crate::DEFAULT_EPISODES);
            eprintln!("collecting {episodes} episodes of {steps} steps in {scene} …");
            Episodes::collect(&CollectConfig::random_walk(&scene, episodes, steps, 256, 0))?
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

/// The teacher a mode-1 policy is distilled from: `--teacher NAME` (an agent as `eval --agent`
/// names it), else the run folder's own agent (`--all`), else the scene's shipped agent, else
/// one built from the level-1 checkpoint's folder: the hierarchical planner where there is a
/// level-2 model, CEM at a short horizon with the critic as terminal cost where there is a
/// critic, CEM otherwise.
fn teacher_spec(a: &TrainArgs, scene: &str, level1: &Path) -> Result<(String, AgentSpec)> {
    if let Some(name) = &a.teacher {
        let source = agents::resolve(name, scene)?;
        let agents::Source::File(path) = source else {
            bail!("--teacher {name}: the teacher acts with world models (not random, not the oracle)");
        };
        return Ok((path.display().to_string(), agents::read_spec(&path, &[])?));
    }
    let own = a.out.join(SPEC_FILE);
    if a.all && own.exists() {
        return Ok((own.display().to_string(), agents::read_spec(&own, &[])?));
    }
    let shipped = agents::scene_agents(scene).join(SPEC_FILE);
    if a.checkpoint.is_none() && !a.all && shipped.exists() {
        return Ok((shipped.display().to_string(), agents::read_spec(&shipped, &[])?));
    }
    let spec = folder_agent(level1, &a.out)?;
    Ok((format!("an agent of {}", level1.display()), spec))
}

/// The agent a folder's models make (a `train --all` run folder, or the folder of a level-1
/// checkpoint): the hierarchical planner where there is a level-2 model (the best and cheapest
/// planner of the measurements), else flat CEM, at a short horizon with the critic as terminal
/// cost where there is a critic. `extra` is searched for level 2 and the critic too.
pub fn folder_agent(level1: &Path, extra: &Path) -> Result<AgentSpec> {
    let find = |what: &str| {
        [extra.join(format!("{what}.safetensors")), companion_path(level1, what)]
            .into_iter()
            .find(|p| p.exists())
    };
    let level2 = [extra.join(LEVEL2_CHECKPOINT), default_level2_path(level1)]
        .into_iter()
        .find(|p| p.exists());
    let critic = find("critic");
    let mut spec = AgentSpec::new(if level2.is_some() {
        Mode::Hierarchical
    } else {
        Mode::Plan
    });
    spec.models = vec![level1.to_path_buf()];
    if let (Some(p), Mode::Hierarchical) = (&level2, spec.mode) {
        let l2 = load_level2(p, None, &cpu_device())?;
        let m = &l2.config.model;
        spec.hierarchy = Some(HierarchyConfig::default_for(m.k, m.macro_radius));
        spec.level2 = Some(p.clone());
    } else if let Some(c) = critic {
        spec.planner.horizon = 4;
        spec.planner.cost.critic = 1.0;
        spec.critic = Some(c);
    }
    Ok(spec)
}

/// `amisim train --level mode1`: an agent (the teacher) acts in goal-reaching episodes and the
/// mode-1 policy is regressed onto its actions, read from the level-1 model's latents. Returns
/// its held-out scores as one line.
pub fn mode1_command(a: &TrainArgs) -> Result<String> {
    if !a.data.is_empty() {
        bail!("--level mode1 learns from an agent acting in the world: give --scene, not --data");
    }
    let scene_name = scene_of(a)?;
    let (path, ck) = level1(a, &scene_name)?;
    let device = cpu_device();
    let (teacher_name, teacher) = teacher_spec(a, &scene_name, &path)?;
    let cfg: Mode1TrainConfig = train_config(a, || Mode1TrainConfig::default_for(teacher))?;
    cfg.validate().map_err(|e| anyhow::anyhow!("config: {e}"))?;
    let scene = Scene::load(&scene_name)?;
    let (models, _) = load_models(&cfg.teacher, &device).context("the teacher")?;
    let mut agent = Agent::new(
        cfg.teacher.clone(),
        models,
        cfg.envs.min(cfg.demo_episodes).max(1),
        agents::world(&scene)?,
    )
    .context("the teacher")?;
    eprintln!(
        "distilling mode 1 from {teacher_name} on {} episodes of {scene_name}; the student reads {}; run folder {}",
        cfg.demo_episodes,
        path.display(),
        a.out.display()
    );
    std::fs::create_dir_all(&a.out)?;
    // The config as saved (mode1_config.json, the model's header): the teacher's models named
    // from the run folder, not by this machine's paths.
    let saved = serde_json::to_value(Mode1TrainConfig {
        teacher: cfg.teacher.paths_from(&a.out),
        ..cfg.clone()
    })?;
    std::fs::write(a.out.join("mode1_config.json"), serde_json::to_string_pretty(&saved)?)?;
    let t0 = Instant::now();
    let bar = amisim::train::store::steps_bar("teacher episodes", cfg.demo_episodes, true);
    let mut demos = collect_demos(
        &scene,
        &ck.model,
        &mut agent,
        None,
        cfg.demo_seed,
        cfg.demo_episodes,
        &device,
        |_| bar.inc(1),
    )?;
    bar.finish();
    let teacher_success = demos.successes as f64 / demos.episodes.max(1) as f64;
    println!(
        "{} teacher steps from {} episodes ({} reached the goal, {:.1} %) in {:.0} s",
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
            &scene,
            &ck.model,
            &mut agent,
            Some(&summary.policy),
            cfg.demo_seed.wrapping_add(7919 * round as u64),
            cfg.dagger_episodes,
            &device,
            |_| bar.inc(1),
        )?;
        bar.finish();
        println!(
            "DAgger round {round}: mode 1 drove {} episodes ({} reached the goal, {:.1} %), {} states labelled by the teacher in {:.0} s; held-out cosine before it {:.3}",
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
        scale: cfg.max_action,
        distance_per_step: 0.0,
        config: saved,
        step: cfg.steps,
    };
    let out = a.out.join("mode1.safetensors");
    save_goal_net(&out, &summary.net, &meta, &ck.model)?;
    println!("mode-1 policy: {}", out.display());
    let line = format!(
        "held-out action RMSE {:.3} (actions of norm ≤ {}), mean cosine to the teacher's action {:.3} ({} train / {} held-out samples; teacher success {:.1} %)",
        summary.held_out_rmse,
        cfg.max_action,
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

/// `amisim train --all`: the scene's recipe ([`recipe_for`]): its walks, encoder + level 1,
/// then level 2, critic and mode 1 where the recipe (or `--stages`) runs them, in order, into
/// one run folder, and the folder's agents. A stage whose model is already there is skipped
/// (level 1 continues a stopped run with `--resume`); each prints its probe; a summary table
/// with the wall time ends it.
pub fn all_command(a: TrainArgs) -> Result<()> {
    let started = Instant::now();
    if !a.data.is_empty() {
        bail!("--all collects on the fly: give --scene");
    }
    if a.checkpoint.is_some() {
        bail!("--all trains level 1 itself into --out; drop --checkpoint");
    }
    let scene = scene_of(&a)?;
    for kv in &a.sets {
        if !["collect.", "level1.", "level2.", "critic.", "mode1."]
            .iter()
            .any(|p| kv.starts_with(p))
        {
            bail!(
                "--set {kv}: with --all, prefix the key with its stage: collect. (the walks, as recipe.json's \"collect\"), level1., level2., critic. or mode1."
            );
        }
    }
    let recipe = recipe_for(&scene);
    let stages: Vec<String> = match &a.stages {
        Some(list) => {
            for st in list {
                if !STAGES.contains(&st.as_str()) {
                    bail!("--stages {st}: expected level1, level2, critic or mode1");
                }
            }
            list.clone()
        }
        None => recipe.stages.clone(),
    };
    let seed = a.seed.unwrap_or(0);
    let mut collect = recipe.collect(&scene, seed);
    if let Some(n) = a.episodes {
        collect.episodes = n;
    }
    if let Some(n) = a.episode_steps {
        collect.steps = n;
    }
    let collect_sets: Vec<String> = a
        .sets
        .iter()
        .filter_map(|kv| kv.strip_prefix("collect.").map(str::to_string))
        .collect();
    if !collect_sets.is_empty() {
        collect = amisim::config::with_sets(collect, &collect_sets).context("--set collect.…")?;
        collect.validate().context("--set collect.…")?;
    }
    std::fs::create_dir_all(&a.out).with_context(|| format!("creating {}", a.out.display()))?;
    amisim::write_file_atomic(
        &a.out.join("recipe.json"),
        serde_json::to_string_pretty(&serde_json::json!({
            "scene": scene,
            "seed": seed,
            "collect": collect,
            "level1": recipe.level1,
            "level1_sets": a.sets.iter().filter(|kv| kv.starts_with("level1.")).collect::<Vec<_>>(),
            "collect_sets": collect_sets,
            "stages": stages,
        }))?,
    )?;
    println!(
        "recipe for {scene} (seed {seed}): {} walks of {} steps (wall walks {}, door walks {}); level 1 {}; stages {}",
        collect.episodes,
        collect.steps,
        collect.random_walk.wall_rate,
        collect.random_walk.door_rate,
        if recipe.level1.is_empty() {
            "the default config".to_string()
        } else {
            recipe.level1.join(" ")
        },
        stages.join(", ")
    );
    let mut rows: Vec<(String, String, f64, String)> = Vec::new();
    let ck_path = a.out.join(amisim::checkpoint::CHECKPOINT);
    // 1. Encoder and level 1: the recipe's entries first, then the user's.
    let t0 = Instant::now();
    let mut s1 = stage_args(&a, "level1");
    s1.sets = recipe.level1.iter().cloned().chain(s1.sets).collect();
    let done1 = ck_path.exists() && {
        let ck = load_checkpoint(&ck_path, None, &cpu_device())?;
        let want: amisim::checkpoint::TrainConfig = train_config(&s1, || ck.config.clone())?;
        ck.step >= want.steps
    };
    let status = if done1 {
        "done already".to_string()
    } else {
        s1.resume = ck_path.exists();
        crate::train_level1_with(&s1, Some(collect.clone()))?;
        if s1.resume {
            "resumed".into()
        } else {
            "trained".into()
        }
    };
    let ck = load_checkpoint(&ck_path, None, &cpu_device())?;
    let probe_train = Episodes::collect(&CollectConfig::random_walk(&scene, 300, 16, 128, 2_000_003))?;
    let probe_test = Episodes::collect(&CollectConfig::random_walk(&scene, 100, 16, 100, 2_000_004))?;
    let p = amisim::probe::probe(&ck.model, &probe_train, &probe_test, 300);
    let loaded = amisim::world::Scene::load(&scene)?;
    let u = loaded.position_unit();
    let mut m1 = format!(
        "position probe linear {:.2} {u}, MLP {:.2} {u}, rollout at 16 steps {:.2} {u}, effective rank {:.1}",
        p.linear_rmse_px,
        p.mlp_rmse_px,
        p.rollout_rmse_px.last().copied().unwrap_or(f32::NAN),
        p.effective_rank
    );
    for l in &p.layout {
        m1 += &format!(
            "; {} linear {:.2} px, MLP {:.2} px",
            l.column, l.linear_rmse_px, l.mlp_rmse_px
        );
    }
    if let Some(h) = &p.heading {
        m1 += &format!(
            "; heading linear {:.1}°, MLP {:.1}°, rollout at 16 steps {:.1}°",
            h.linear_rmse_deg,
            h.mlp_rmse_deg,
            h.rollout_rmse_deg.last().copied().unwrap_or(f32::NAN)
        );
    }
    println!("level 1: {m1}");
    rows.push(("encoder + level 1".into(), status, t0.elapsed().as_secs_f64(), m1));
    // 2–4: level 2, critic, mode 1, where the recipe runs them, each skipped when its model
    // is there.
    type Stage = fn(&TrainArgs) -> Result<String>;
    let later: [(&str, &str, &str, Stage); 3] = [
        ("level 2", "level2", "level2.safetensors", crate::train_level2_command),
        ("critic", "critic", "critic.safetensors", critic_command),
        ("mode 1", "mode1", "mode1.safetensors", mode1_command),
    ];
    for (name, key, file, run) in later {
        if !stages.iter().any(|s| s == key) {
            continue;
        }
        if key == "mode1" {
            // The run folder's agents, the teacher among them (`agent.ron`).
            write_presets(&a.out, &loaded, recipe.agent.as_deref())?;
        }
        let t = Instant::now();
        let mut s = stage_args(&a, key);
        s.checkpoint = Some(ck_path.clone());
        s.episode_steps = None;
        s.level = key.into();
        // Level 2 and the critic learn from 64-step episodes: 2 000 of them at most (the
        // level-2 default) whatever level 1 collected.
        s.episodes = Some(collect.episodes.min(2000));
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
    let written = write_presets(&a.out, &loaded, recipe.agent.as_deref())?;
    println!(
        "agents: {} in {} (`amisim eval --scene {scene} --agent {}` plays agent.ron)",
        written.join(", "),
        a.out.display(),
        a.out.display()
    );
    println!("\nsummary of {} ({scene})", a.out.display());
    println!("{:<18} {:<13} {:>8}  metric", "stage", "status", "seconds");
    for (name, status, secs, metric) in &rows {
        println!("{name:<18} {status:<13} {secs:>8.0}  {metric}");
    }
    let secs = started.elapsed().as_secs_f64();
    println!(
        "wall time {} min {:02} s ({:.0} s), collection included",
        (secs / 60.0) as u64,
        secs as u64 % 60,
        secs
    );
    Ok(())
}

/// Writes a run folder's agent specs, for the models it holds: `agent.ron` (hierarchical where
/// there is a level-2 model, else flat CEM with the critic's terminal cost where there is one,
/// else flat CEM), and the presets `cem`, `hierarchical`, `critic`, `mode1` and `configured`
/// where their models are there — the layout of the shipped `assets/<scene>/`. Returns the
/// names written.
pub fn write_presets(dir: &Path, scene: &amisim::world::Scene, recipe_agent: Option<&str>) -> Result<Vec<String>> {
    let has = |f: &str| dir.join(f).exists();
    // First-person actions are (metres forward, radians turned) per step: the planner samples
    // and bounds them at that scale. Hierarchical macro-actions are top-down displacements, so
    // a first-person run's agent plans flat.
    let fp = scene.first_person().map(|_| {
        let p = amisim::agents::default_planner(scene);
        format!(
            "max_action: {:.3}, init_std: {:.3}, min_std: {:.3}",
            p.max_action, p.init_std, p.min_std
        )
    });
    let (l2, critic, mode1) = (
        has(LEVEL2_CHECKPOINT),
        has("critic.safetensors"),
        has("mode1.safetensors"),
    );
    let mut written = Vec::new();
    let mut write = |name: &str, text: String| -> Result<()> {
        amisim::write_file_atomic(&dir.join(format!("{name}.ron")), text)?;
        written.push(format!("{name}.ron"));
        Ok(())
    };
    let planner = |entries: &str| match (&fp, entries.is_empty()) {
        (Some(f), true) => format!("    planner: ({f}),\n"),
        (Some(f), false) => format!("    planner: ({entries}, {f}),\n"),
        (None, true) => String::new(),
        (None, false) => format!("    planner: ({entries}),\n"),
    };
    let cem = format!(
        "(\n    mode: Plan,\n    models: [\"checkpoint.safetensors\"],\n{})\n",
        planner("")
    );
    let cem = cem.as_str();
    let hierarchical = "(\n    mode: Hierarchical,\n    models: [\"checkpoint.safetensors\"],\n    level2: \"level2.safetensors\",\n)\n";
    let with_critic = format!(
        "(\n    mode: Plan,\n    models: [\"checkpoint.safetensors\"],\n    critic: \"critic.safetensors\",\n{})\n",
        planner("horizon: 4, cost: (distance: L2, horizon: Closest, effort: 0.0, critic: 1.0)")
    );
    let with_critic = with_critic.as_str();
    let default = if l2 && fp.is_none() {
        hierarchical
    } else if critic {
        with_critic
    } else {
        cem
    };
    match recipe_agent {
        Some(spec) => write(
            "agent",
            format!("// This run's agent (written by `amisim train --all`, the scene's recipe).\n{spec}"),
        )?,
        None => write(
            "agent",
            format!("// This run's agent (written by `amisim train --all`).\n{default}"),
        )?,
    }
    write("cem", format!("// Flat CEM with this run's world model.\n{cem}"))?;
    if l2 {
        write(
            "hierarchical",
            format!("// Hierarchical planning with this run's level-2 model.\n{hierarchical}"),
        )?;
    }
    if critic {
        write(
            "critic",
            format!("// Flat CEM, 16 steps ahead, the critic as terminal cost.\n{with_critic}"),
        )?;
    }
    if mode1 {
        write(
            "mode1",
            "// Mode 1 alone.\n(\n    mode: Mode1,\n    models: [\"checkpoint.safetensors\"],\n    mode1: \"mode1.safetensors\",\n)\n".into(),
        )?;
    }
    let mut configured = String::from("// The configured agent: configurator, memories, critic, mode 1 and mode 2.\n(\n    mode: Configured,\n    models: [\"checkpoint.safetensors\"],\n");
    configured += &planner("");
    for (on, entry) in [(l2, "level2"), (critic, "critic"), (mode1, "mode1")] {
        if on {
            configured += &format!("    {entry}: \"{entry}.safetensors\",\n");
        }
    }
    configured += ")\n";
    write("configured", configured)?;
    Ok(written)
}
