//! The rest of AMI: the critic learns cost-to-go by hindsight relabelling, memories stay
//! bounded, the configurator reacts to stalls, the agent's state saves and loads, mode 1
//! distils from demonstrations.

use amisim::agent::{AgentSpec, AgentState, Mode};
use amisim::configurator::{Available, Configurator, ConfiguratorConfig, GoalKind, Remedy, Task};
use amisim::memory::{EpisodicMemory, MemoryConfig, Moment, ShortTermMemory, Stall};
use amisim::train::critic::{spearman, train_critic, CriticTrainConfig};
use amisim::train::jepa::{cpu_device, load_checkpoint};
use amisim::train::level2::LatentEpisodes;
use amisim::train::mode1::{train_mode1, Demos, Mode1TrainConfig};
use rand::{RngExt, SeedableRng};
use rand_chacha::ChaCha8Rng;

/// Random walks on a chain of `n` states (left, right or stay), each state seen as a one-hot
/// latent.
fn chain_walks(n: usize, episodes: usize, steps: usize, seed: u64) -> LatentEpisodes {
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    let mut z = Vec::new();
    for _ in 0..episodes {
        let mut s = rng.random_range(0..n) as i64;
        for t in 0..=steps {
            if t > 0 {
                s = (s + rng.random_range(-1i64..=1)).clamp(0, n as i64 - 1);
            }
            z.extend((0..n).map(|k| (k as i64 == s) as u8 as f32));
        }
    }
    LatentEpisodes {
        episodes,
        steps,
        latent: n,
        z,
        actions: vec![0.0; episodes * steps * 2],
    }
}

#[test]
fn critic_on_a_toy_chain_learns_the_cost_to_go_ordering() {
    let n = 10;
    let data = chain_walks(n, 300, 24, 3);
    let cfg = CriticTrainConfig {
        hidden: 64,
        steps: 3000,
        batch: 256,
        target_every: 10,
        scale: 8.0,
        ..CriticTrainConfig::default()
    };
    let s = train_critic(&cfg, &data, None, false, &cpu_device()).unwrap();
    let onehot = |k: usize| (0..n).map(|j| (j == k) as u8 as f32).collect::<Vec<f32>>();
    let (mut z, mut g, mut truth) = (Vec::new(), Vec::new(), Vec::new());
    for from in 0..n {
        for to in 0..n {
            z.extend(onehot(from));
            g.extend(onehot(to));
            truth.push(from.abs_diff(to) as f32);
        }
    }
    let c = s.critic.steps(&z, &g, n * n);
    let rho = spearman(&c, &truth);
    assert!(rho > 0.95, "rank correlation with the true cost-to-go {rho}: {c:?}");
    // Per goal, on each side, one state further costs more.
    let mut wrong = Vec::new();
    for to in 0..n {
        for from in 0..n {
            let further = if from < to {
                from.checked_sub(1)
            } else if from > to {
                Some(from + 1).filter(|&f| f < n)
            } else {
                None
            };
            if let Some(f) = further {
                if c[f * n + to] <= c[from * n + to] {
                    wrong.push((from, f, to));
                }
            }
        }
    }
    assert!(
        wrong.len() <= 2,
        "states further from the goal costing less (from, further, goal): {wrong:?}"
    );
    // At the goal the cost-to-go is near 0, and far below that of the far end.
    assert!(
        c[0] < 1.0 && c[n - 1] > 3.0,
        "C(0, 0) = {}, C(0, {}) = {}",
        c[0],
        n - 1,
        c[n - 1]
    );
}

#[test]
fn memories_stay_bounded_under_10_000_inserts() {
    let cfg = MemoryConfig {
        landmarks: 32,
        max_neighbours: 4,
        ..MemoryConfig::default()
    };
    let mut short = ShortTermMemory::new(cfg.short_term);
    let mut episodic = EpisodicMemory::new(&cfg);
    let mut rng = ChaCha8Rng::seed_from_u64(9);
    let mut size_at_1000 = 0;
    for step in 0..10_000u32 {
        let z: Vec<f32> = (0..8).map(|_| rng.random_range(0.0..4.0f32)).collect();
        short.push(Moment {
            step,
            latent: z.clone(),
            action: [0.0, 0.0],
            energy: 1.0,
            plan: Some((vec![0.0; 32], 1.0)),
        });
        episodic.observe(&z, step, 1.0);
        if step == 999 {
            size_at_1000 = serde_json::to_string(&episodic).unwrap().len();
        }
    }
    assert_eq!(short.len(), cfg.short_term);
    assert_eq!(
        short.iter().next().unwrap().step,
        10_000 - cfg.short_term as u32,
        "the oldest are forgotten"
    );
    assert!(
        episodic.landmarks().len() <= 32,
        "{} landmarks",
        episodic.landmarks().len()
    );
    let ids: Vec<u64> = episodic.landmarks().iter().map(|l| l.id).collect();
    for l in episodic.landmarks() {
        assert!(l.neighbours.len() <= 4, "{} neighbours", l.neighbours.len());
        assert!(
            l.neighbours.iter().all(|(n, _)| ids.contains(n)),
            "a link to an evicted landmark"
        );
    }
    let size = serde_json::to_string(&episodic).unwrap().len();
    assert!(
        size <= size_at_1000 * 3 / 2,
        "{size} bytes after 10 000 inserts vs {size_at_1000} after 1 000"
    );
}

#[test]
fn episodic_memory_proposes_the_next_landmark_and_recognises_loops() {
    let cfg = MemoryConfig {
        loop_gap: 5,
        ..MemoryConfig::default()
    };
    let mut m = EpisodicMemory::new(&cfg);
    let at = |x: f32| vec![x, 0.0];
    // Walk 0 → 1 → 2 → 3, 2 steps per landmark, then straight back to 0.
    let path = [0.0, 0.0, 1.0, 1.0, 2.0, 2.0, 3.0, 3.0, 2.0, 1.0, 0.0];
    let mut loops = Vec::new();
    for (t, &x) in path.iter().enumerate() {
        loops.push(m.observe(&at(x), t as u32, 0.3).closed_loop);
    }
    assert_eq!(m.landmarks().len(), 4);
    assert!(loops[10], "back at landmark 0, left 9 steps ago: a loop");
    assert!(!loops[..8].iter().any(|&l| l), "no loop on the way out");
    // From 0 toward a goal near 3 the next landmark is 1; a goal never seen has no waypoint.
    assert_eq!(m.waypoint(&at(0.1), &at(2.9), 0.3), Some(at(1.0)));
    assert_eq!(m.waypoint(&at(0.1), &at(9.0), 0.3), None);
    assert_eq!(
        m.waypoint(&at(3.0), &at(3.1), 0.3),
        None,
        "at the goal's landmark already"
    );
}

fn two_rooms_task() -> Task {
    Task {
        scene: "two_rooms".into(),
        goal: GoalKind::Place,
        rooms: 2,
        cost: Default::default(),
    }
}

#[test]
fn configurator_reconfigures_on_a_forced_stall() {
    let mem = MemoryConfig::default();
    let all = Available {
        critic: true,
        level2: true,
        mode1: true,
    };
    let mut conf = Configurator::new(ConfiguratorConfig::default(), &two_rooms_task(), all);
    assert!(
        conf.settings.mode1 && !conf.settings.hierarchical,
        "two rooms start flat with mode 1"
    );
    assert_eq!(conf.settings.horizon, 4, "a critic: a short horizon");
    assert!(conf.log.iter().all(|d| d.kind == "setup" && !d.reason.is_empty()));
    // Energy falling: no stall. Energy flat: a stall, with the numbers in its reason.
    let mut short = ShortTermMemory::new(mem.short_term);
    for t in 0..mem.stall_window as u32 {
        short.push(Moment {
            step: t,
            latent: vec![t as f32, 0.0],
            action: [1.0, 0.0],
            energy: 40.0 - t as f32,
            plan: None,
        });
    }
    assert_eq!(short.stall(&mem), None);
    let mut short = ShortTermMemory::new(mem.short_term);
    for t in 0..mem.stall_window as u32 {
        short.push(Moment {
            step: t,
            latent: vec![(t % 2) as f32, 0.0],
            action: [1.0, 0.0],
            energy: 10.0,
            plan: None,
        });
    }
    let stall = short.stall(&mem).expect("flat energy is a stall");
    assert!(matches!(stall, Stall::NoProgress { .. }));
    // The remedies in order, each logged with the stall as its reason.
    let mut remedies = Vec::new();
    for step in 0..7 {
        remedies.push(conf.on_stall(100 + step, &stall, step == 5));
    }
    assert_eq!(
        remedies,
        vec![
            Some(Remedy::Mode1Off),
            Some(Remedy::Horizon { from: 4, to: 8 }),
            Some(Remedy::Horizon { from: 8, to: 16 }),
            Some(Remedy::Horizon { from: 16, to: 24 }),
            Some(Remedy::Hierarchical),
            Some(Remedy::Waypoint),
            None,
        ]
    );
    let after: Vec<&str> = conf
        .log
        .iter()
        .filter(|d| d.kind != "setup")
        .map(|d| d.kind.as_str())
        .collect();
    assert_eq!(
        after,
        [
            "mode1-off",
            "horizon",
            "horizon",
            "horizon",
            "hierarchical",
            "waypoint",
            "no-remedy"
        ]
    );
    assert!(conf.log.last().unwrap().reason.contains("energy not decreasing"));
    assert!(conf.settings.hierarchical && !conf.settings.mode1 && conf.settings.horizon == 24);
    // Without a level 2, four rooms stay flat; without a critic, the horizon starts long.
    let four = Task {
        scene: "four_rooms".into(),
        goal: GoalKind::Place,
        rooms: 4,
        cost: Default::default(),
    };
    let c = Configurator::new(ConfiguratorConfig::default(), &four, Available::default());
    assert!(!c.settings.hierarchical && !c.settings.mode1 && c.settings.horizon == 24);
    let c = Configurator::new(ConfiguratorConfig::default(), &four, all);
    assert!(
        c.settings.hierarchical,
        "four rooms with a level 2: hierarchical from the start"
    );
}

#[test]
fn agent_state_round_trips_through_a_file() {
    let cfg = AgentSpec::new(Mode::Configured);
    let all = Available {
        critic: true,
        level2: false,
        mode1: true,
    };
    let mut s = AgentState::new(&cfg.configurator, &cfg.memory, &two_rooms_task(), all);
    for t in 0..40u32 {
        let z = vec![(t % 7) as f32 * 0.5, (t / 7) as f32];
        s.short_term.push(Moment {
            step: t,
            latent: z.clone(),
            action: [0.5, -0.25],
            energy: 3.0 + (t % 3) as f32 * 0.1,
            plan: (t % 4 == 0).then(|| (vec![0.1; 8], 2.5)),
        });
        s.episodic.observe(&z, t, 0.6);
        if let Some(stall) = s.short_term.stall(&cfg.memory) {
            s.configurator.on_stall(t, &stall, false);
        }
        s.step = t + 1;
    }
    s.waypoint = Some(vec![1.0, 2.0]);
    assert!(s.decisions().len() > 4, "stalls were logged");
    let dir = std::env::temp_dir().join(format!("amisim-agent-state-{}", std::process::id()));
    let path = dir.join("agent.json");
    s.save(&path).unwrap();
    let back = AgentState::load(&path).unwrap();
    assert_eq!(back, s);
    // A file of something else is an error naming it.
    std::fs::write(&path, "{\"format\": \"other\"}").unwrap();
    let err = AgentState::load(&path).unwrap_err().to_string();
    assert!(
        err.contains("agent.json") && err.contains("not an agent state"),
        "{err}"
    );
    std::fs::remove_dir_all(&dir).ok();
}

#[test]
fn mode1_distils_a_planner_from_its_demonstrations() {
    // The "planner" steps straight at the goal: action = clip(g − z) in a 2-d world.
    let mut rng = ChaCha8Rng::seed_from_u64(4);
    let mut d = Demos {
        latent: 2,
        episodes: 100,
        ..Default::default()
    };
    for ep in 0..100 {
        for _ in 0..20 {
            let z = [rng.random_range(-3.0..3.0f32), rng.random_range(-3.0..3.0f32)];
            let g = [rng.random_range(-3.0..3.0f32), rng.random_range(-3.0..3.0f32)];
            let mut a = [g[0] - z[0], g[1] - z[1]];
            amisim::actor::planner::project(&mut a, 1.0);
            d.z.extend(z);
            d.goal.extend(g);
            d.action.extend(a);
            d.episode.push(ep);
        }
    }
    let mut teacher = AgentSpec::new(Mode::Plan);
    teacher.models = vec!["checkpoint.safetensors".into()];
    let mut cfg = Mode1TrainConfig::default_for(teacher);
    cfg.max_action = 1.0;
    (cfg.hidden, cfg.steps, cfg.batch) = (64, 600, 128);
    let s = train_mode1(&cfg, &d, false, &cpu_device()).unwrap();
    assert_eq!(s.held_out_samples, 200, "whole episodes held out");
    assert!(
        s.held_out_cosine > 0.9,
        "cosine {} on held-out episodes",
        s.held_out_cosine
    );
    assert!(s.held_out_rmse < 0.3, "action RMSE {}", s.held_out_rmse);
}

#[test]
fn train_all_runs_every_stage_then_skips_what_is_done() {
    let dir = std::env::temp_dir().join(format!("amisim-train-all-{}", std::process::id()));
    let sets = [
        "level1.steps=2",
        "level1.batch=2",
        "level2.steps=2",
        "level2.batch=4",
        "critic.steps=5",
        "critic.batch=16",
        "mode1.demo_episodes=2",
        "mode1.envs=2",
        "mode1.steps=5",
        "mode1.batch=16",
        "mode1.dagger_rounds=1",
        "mode1.dagger_episodes=2",
        "mode1.teacher.hierarchy.high.samples=8",
        "mode1.teacher.hierarchy.high.elites=4",
        "mode1.teacher.hierarchy.low.samples=8",
        "mode1.teacher.hierarchy.low.elites=4",
    ];
    let run = || {
        let mut cmd = std::process::Command::new(env!("CARGO_BIN_EXE_amisim"));
        // Four-Rooms has no recipe of its own: the default one runs every stage.
        cmd.args(["train", "--all", "--scene", "four_rooms", "--episodes", "6", "--out"])
            .arg(&dir);
        for s in sets {
            cmd.args(["--set", s]);
        }
        let out = cmd.output().unwrap();
        assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
        String::from_utf8_lossy(&out.stdout).to_string()
    };
    let first = run();
    for file in [
        "checkpoint.safetensors",
        "level2.safetensors",
        "critic.safetensors",
        "mode1.safetensors",
    ] {
        assert!(dir.join(file).exists(), "{file} missing after --all:\n{first}");
    }
    // The run folder is an agent folder: its agent (hierarchical: there is a level-2 model)
    // and the presets, each a spec that loads with the folder's models.
    for spec in ["agent", "cem", "hierarchical", "critic", "mode1", "configured"] {
        let path = dir.join(format!("{spec}.ron"));
        let s = amisim::agents::read_spec(&path, &[]).unwrap_or_else(|e| panic!("{spec}: {e:#}"));
        amisim::agent::load_models(&s, &cpu_device()).unwrap_or_else(|e| panic!("{spec}: {e:#}"));
    }
    let agent = AgentSpec::load(&dir.join("agent.ron")).unwrap();
    assert_eq!(agent.mode, Mode::Hierarchical);
    let summary = &first[first.find("summary of").expect("a summary table")..];
    for stage in ["encoder + level 1", "level 2", "critic", "mode 1"] {
        let line = summary
            .lines()
            .find(|l| l.starts_with(stage))
            .unwrap_or_else(|| panic!("{stage}:\n{summary}"));
        assert!(line.contains("trained"), "{line}");
    }
    assert!(
        summary.contains("position probe linear") && summary.contains("rank correlation"),
        "{summary}"
    );
    // Again: every stage is done already.
    let second = run();
    let summary = &second[second.find("summary of").unwrap()..];
    assert_eq!(summary.matches("done already").count(), 4, "{summary}");
    // A stage key without its stage is refused, naming it.
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_amisim"))
        .args(["train", "--all", "--scene", "four_rooms", "--set", "steps=3", "--out"])
        .arg(&dir)
        .output()
        .unwrap();
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("--set steps=3"));
    std::fs::remove_dir_all(&dir).ok();
}

/// `train --all --scene two_rooms` follows the scene's recipe: its walks, the keypoint model
/// with JPEG round trips, level 1 only, and the one-model agent with the blocked-move memory.
#[test]
fn train_all_follows_the_two_rooms_recipe() {
    let dir = std::env::temp_dir().join(format!("amisim-train-recipe-{}", std::process::id()));
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_amisim"))
        .args([
            "train",
            "--all",
            "--scene",
            "two_rooms",
            "--episodes",
            "6",
            "--seed",
            "3",
        ])
        .args(["--set", "level1.steps=2", "--set", "level1.batch=2", "--out"])
        .arg(&dir)
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    assert!(stdout.contains("wall walks 0.3, door walks 0.4"), "{stdout}");
    assert!(stdout.contains("wall time"), "{stdout}");
    assert!(
        stdout.contains("wall4_door0 linear"),
        "the door probe is printed: {stdout}"
    );
    let ck = load_checkpoint(&dir.join("checkpoint.safetensors"), None, &cpu_device()).unwrap();
    assert!(ck.config.model.encoder.keypoint_head);
    assert_eq!(ck.config.model.encoder.latent, 128);
    assert_eq!(ck.config.seed, 3);
    assert!(ck.config.jpeg.is_some(), "the recipe trains through JPEG");
    for absent in ["level2.safetensors", "critic.safetensors", "mode1.safetensors"] {
        assert!(!dir.join(absent).exists(), "{absent}: the recipe skips that stage");
    }
    let agent = amisim::agents::read_spec(&dir.join("agent.ron"), &[]).unwrap();
    assert_eq!(agent.mode, Mode::Plan);
    assert_eq!(agent.models.len(), 1);
    assert_eq!(agent.blocked, 5.0);
    assert_eq!(
        (agent.planner.horizon, agent.planner.repeat, agent.planner.leg_count),
        (16, 8, 3)
    );
    amisim::agent::load_models(&agent, &cpu_device()).unwrap();
    let recipe: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(dir.join("recipe.json")).unwrap()).unwrap();
    assert_eq!(recipe["collect"]["seed"], 3);
    assert_eq!(recipe["collect"]["episodes"], 6);
    // An unknown stage is refused by name.
    let bad = std::process::Command::new(env!("CARGO_BIN_EXE_amisim"))
        .args([
            "train",
            "--all",
            "--scene",
            "two_rooms",
            "--stages",
            "level1,level3",
            "--out",
        ])
        .arg(&dir)
        .output()
        .unwrap();
    assert!(!bad.status.success());
    assert!(String::from_utf8_lossy(&bad.stderr).contains("--stages level3"));
    // The walks can be changed too (the ablation's data rows), and a share out of range is
    // refused by its key before anything is collected.
    let run = |set: &str, out: &std::path::Path| {
        std::process::Command::new(env!("CARGO_BIN_EXE_amisim"))
            .args(["train", "--all", "--scene", "two_rooms", "--episodes", "4"])
            .args([
                "--set",
                "level1.steps=1",
                "--set",
                "level1.batch=2",
                "--set",
                set,
                "--out",
            ])
            .arg(out)
            .output()
            .unwrap()
    };
    let plain = dir.join("plain");
    let out = run("collect.random_walk.wall_rate=0", &plain);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    assert!(String::from_utf8_lossy(&out.stdout).contains("wall walks 0, door walks 0.4"));
    let recipe: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(plain.join("recipe.json")).unwrap()).unwrap();
    assert_eq!(recipe["collect"]["random_walk"]["wall_rate"], 0.0);
    let wrong = dir.join("wrong");
    let out = run("collect.random_walk.door_rate=1.5", &wrong);
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("collect.random_walk.door_rate = 1.5"), "{err}");
    assert!(
        !wrong.join("recipe.json").exists(),
        "nothing written for a refused setting"
    );
    std::fs::remove_dir_all(&dir).ok();
}
