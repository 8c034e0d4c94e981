//! `amisim eval`: deterministic reports, shards that merge into the whole run.

use amisim::actor::hierarchy::HierarchyConfig;
use amisim::actor::mode1::Mode1;
use amisim::actor::planner::{PlannerConfig, PlannerKind};
use amisim::agent::AgentConfig;
use amisim::cost::critic::Critic;
use amisim::eval::probe::LinearProbe;
use amisim::eval::run::{merge, run, run_recorded, wilson, EvalConfig, Loaded, LoadedLevel2, Policy, Report};
use amisim::goal_net::GoalNetShape;
use amisim::perception::EncoderConfig;
use amisim::train::jepa::cpu_device;
use amisim::world_model::jepa::{JepaConfig, LossWeights};
use amisim::world_model::level2::{Level2Config, Level2Weights};

fn tiny_planner(kind: PlannerKind) -> PlannerConfig {
    let mut c = PlannerConfig::default_for(kind);
    c.horizon = 3;
    c.repeat = 2;
    c.samples = 16;
    c.elites = 4;
    c.iterations = 2;
    c.replan_every = 2;
    c
}

fn config(shard: (usize, usize)) -> EvalConfig {
    EvalConfig {
        scene: "two_rooms".into(),
        episodes: 5,
        envs: 2,
        seed: 11,
        max_steps: 10,
        policies: vec![
            Policy::Random,
            Policy::Latent(tiny_planner(PlannerKind::Cem)),
            Policy::Latent(tiny_planner(PlannerKind::Mppi)),
            Policy::Oracle(tiny_planner(PlannerKind::Cem)),
            Policy::Hierarchical(tiny_hierarchy()),
            Policy::Latent(with_critic(tiny_planner(PlannerKind::Cem))),
            Policy::Mode1,
            Policy::Agent(Box::new(tiny_agent())),
        ],
        shard,
        checkpoint: "untrained".into(),
        checkpoint_step: 0,
        model: serde_json::Value::Null,
        level2: None,
        ensemble: Vec::new(),
        critic: None,
        mode1: None,
    }
}

fn with_critic(mut c: PlannerConfig) -> PlannerConfig {
    c.cost.critic = 1.0;
    c
}

/// The whole agent, with a stall window short enough to reconfigure within 10 steps.
fn tiny_agent() -> AgentConfig {
    let mut a = AgentConfig::new(tiny_planner(PlannerKind::Cem), Some(tiny_hierarchy()));
    (a.memory.short_term, a.memory.stall_window) = (8, 4);
    (a.configurator.short_horizon, a.configurator.max_horizon) = (2, 4);
    a
}

fn level2_config() -> Level2Config {
    Level2Config::new(8, Level2Weights::new())
        .with_k(2)
        .with_state(4)
        .with_hidden(16)
}

fn tiny_hierarchy() -> HierarchyConfig {
    let mut h = HierarchyConfig::default_for(2, 2.0);
    (h.high.horizon, h.high.samples, h.high.elites, h.high.iterations) = (3, 16, 4, 2);
    (h.low.horizon, h.low.samples, h.low.elites, h.low.iterations) = (2, 16, 4, 2);
    h
}

/// Everything but the timings, which are the only thing allowed to differ between runs.
/// The error `run` refuses `cfg` with (it must refuse).
fn refusal(cfg: &EvalConfig, loaded: &Loaded) -> String {
    run(cfg, loaded, 0, |_, _| {}).err().unwrap().to_string()
}

fn outcomes(r: &Report) -> Vec<(String, String, f64, [f64; 2])> {
    r.rows
        .iter()
        .map(|row| {
            (
                row.name.clone(),
                serde_json::to_string(&row.episodes).unwrap(),
                row.success_rate,
                row.success_ci95,
            )
        })
        .collect()
}

#[test]
fn eval_is_deterministic_and_shards_merge_into_the_whole_run() {
    let device = cpu_device();
    let model = amisim::train::jepa::seeded(&device, 5, || {
        JepaConfig::new(EncoderConfig::lenet(65, 8), LossWeights::new()).init(&device)
    });
    let level2 = amisim::train::jepa::seeded(&device, 6, || level2_config().init(&device));
    // Probes that put every latent somewhere in the arena (the first two dimensions, scaled,
    // around the centre), so that plans are judged for walls.
    let probe = |d: usize| {
        let mut w = vec![0.0f64; (d + 1) * 2];
        (w[0], w[3], w[2 * d], w[2 * d + 1]) = (40.0, 40.0, 32.0, 32.0);
        LinearProbe { d, k: 2, w }
    };
    let shape = |out| GoalNetShape {
        latent: 8,
        hidden: 16,
        out,
    };
    let critic_net = amisim::train::jepa::seeded(&device, 7, || shape(1).init(&device));
    let policy_net = amisim::train::jepa::seeded(&device, 8, || shape(2).init(&device));
    let loaded = Loaded {
        model: &model,
        differentiable: None,
        probe: Some(probe(8)),
        level2: Some(LoadedLevel2 {
            model: level2,
            cfg: level2_config(),
            probe: Some(probe(4)),
        }),
        critic: Some(Critic::new(&critic_net, 8.0, 1.0)),
        mode1: Some(Mode1::new(&policy_net, 1.8)),
        ensemble: Vec::new(),
        ensemble_probes: Vec::new(),
    };
    let (a, _) = run(&config((0, 1)), &loaded, 0, |_, _| {}).unwrap();
    let (b, _) = run(&config((0, 1)), &loaded, 0, |_, _| {}).unwrap();
    assert_eq!(outcomes(&a), outcomes(&b), "same seed and config, same report");
    // Every planner row judged its plans (the random, mode-1 and agent rows make none).
    for row in &a.rows[1..6] {
        assert!(row.episodes.iter().all(|e| e.plans > 0), "{}", row.name);
    }
    assert!(a.rows[0].episodes.iter().all(|e| e.plans == 0));
    assert_eq!(a.episodes, 5);
    let names: Vec<&str> = a.rows.iter().map(|r| r.name.as_str()).collect();
    assert_eq!(
        names,
        [
            "random",
            "cem@3",
            "mppi@3",
            "oracle-cem",
            "hierarchical",
            "cem@3+critic",
            "mode1",
            "agent"
        ]
    );
    // Mode 1 acts every step; the agent logs its setup and, stalled in 10 steps of an
    // untrained model, reconfigures with a reason.
    assert!(a.rows[6].episodes.iter().all(|e| e.mode1_steps == e.steps));
    let agent = &a.rows[7];
    for e in &agent.episodes {
        assert_eq!(e.mode1_steps + e.mode2_steps, e.steps, "episode {}", e.episode);
        assert!(e.decisions.iter().any(|d| d.kind == "setup"));
    }
    assert!(!agent.decisions.is_empty(), "no reconfiguration in 5 stalled episodes");
    assert!(agent
        .episodes
        .iter()
        .flat_map(|e| &e.decisions)
        .all(|d| !d.reason.is_empty()));
    for row in &a.rows {
        let ids: Vec<usize> = row.episodes.iter().map(|e| e.episode).collect();
        assert_eq!(ids, vec![0, 1, 2, 3, 4], "{}", row.name);
    }
    // Every row plays the same episodes: the start distances agree.
    let starts = |i: usize| a.rows[i].episodes.iter().map(|e| e.start_distance).collect::<Vec<_>>();
    assert_eq!(starts(0), starts(3));
    let (s0, _) = run(&config((0, 2)), &loaded, 0, |_, _| {}).unwrap();
    let (s1, _) = run(&config((1, 2)), &loaded, 0, |_, _| {}).unwrap();
    assert_eq!(s0.rows[0].episodes.len() + s1.rows[0].episodes.len(), 5);
    let merged = merge(vec![s1, s0.clone()]).unwrap();
    assert_eq!(outcomes(&merged), outcomes(&a), "shards merged equal the unsharded run");
    assert_eq!(merged.settings, a.settings);
    // A shard missing is an error that says so.
    let err = merge(vec![s0]).unwrap_err().to_string();
    assert!(err.contains("shards 0..2"), "{err}");
}

#[test]
fn wilson_interval() {
    // 95 of 100: the Wilson interval is about [88.8 %, 97.8 %].
    let [lo, hi] = wilson(95, 100);
    assert!((lo - 0.8882).abs() < 1e-3 && (hi - 0.9785).abs() < 1e-3, "{lo} {hi}");
    assert_eq!(wilson(0, 0), [0.0, 1.0]);
    let [lo, hi] = wilson(10, 10);
    assert!(hi == 1.0 && lo > 0.69 && lo < 0.73, "{lo}");
}

#[test]
fn spatial_planner_rows_are_deterministic_and_need_a_spatial_model() {
    let device = cpu_device();
    let spatial_cfg = |state| {
        let mut c = JepaConfig::new(
            EncoderConfig::lenet(65, 8).with_spatial_state(state),
            LossWeights::new(),
        );
        c.spatial_hidden = 8;
        c
    };
    let model = amisim::train::jepa::seeded(&device, 5, || spatial_cfg(4).init(&device));
    let with = |model, ensemble| Loaded {
        model,
        differentiable: None,
        probe: None,
        level2: None,
        critic: None,
        mode1: None,
        ensemble,
        ensemble_probes: Vec::new(),
    };
    let loaded = |model| with(model, Vec::new());
    let mut spatial = tiny_planner(PlannerKind::Cem);
    spatial.spatial = true;
    let mut cfg = config((0, 1));
    cfg.policies = vec![
        Policy::Latent(spatial.clone()),
        Policy::Latent(tiny_planner(PlannerKind::Cem)),
    ];
    let (a, _) = run(&cfg, &loaded(&model), 0, |_, _| {}).unwrap();
    let (b, _) = run(&cfg, &loaded(&model), 0, |_, _| {}).unwrap();
    assert_eq!(outcomes(&a), outcomes(&b), "same seed and config, same report");
    let names: Vec<&str> = a.rows.iter().map(|r| r.name.as_str()).collect();
    assert_eq!(names, ["cem@3+spatial", "cem@3"]);
    // The two rows imagine with different predictors: their episodes differ.
    assert_ne!(outcomes(&a)[0].1, outcomes(&a)[1].1);
    // A model without a spatial predictor, or the gradient planner, is refused by name.
    let flat = amisim::train::jepa::seeded(&device, 5, || spatial_cfg(0).init(&device));
    let err = refusal(&cfg, &loaded(&flat));
    assert!(
        err.contains("cem@3+spatial") && err.contains("no spatial predictor"),
        "{err}"
    );
    let mut grad = tiny_planner(PlannerKind::Gradient);
    grad.spatial = true;
    cfg.policies = vec![Policy::Latent(grad)];
    let err = refusal(&cfg, &loaded(&model));
    assert!(err.contains("not differentiable"), "{err}");

    // The keypoints beside the latent in the goal distance: the same report twice, and other
    // episodes than the latent alone.
    let mut kp = spatial.clone();
    kp.cost.keypoints = 5.0;
    cfg.policies = vec![Policy::Latent(kp.clone()), Policy::Latent(spatial.clone())];
    let (a, _) = run(&cfg, &loaded(&model), 0, |_, _| {}).unwrap();
    let (b, _) = run(&cfg, &loaded(&model), 0, |_, _| {}).unwrap();
    assert_eq!(outcomes(&a), outcomes(&b), "same seed and config, same report");
    assert_ne!(outcomes(&a)[0].1, outcomes(&a)[1].1);
    // Refused: without +spatial, with the critic (which reads latents), a negative weight.
    for (change, want) in [
        (
            (|c: &mut PlannerConfig| c.spatial = false) as fn(&mut PlannerConfig),
            "keypoints come from the spatial state",
        ),
        (|c| c.cost.critic = 1.0, "the critic reads latents alone"),
        (|c| c.cost.keypoints = -1.0, "planner.cost.keypoints = -1"),
    ] {
        let mut bad = kp.clone();
        change(&mut bad);
        cfg.policies = vec![Policy::Latent(bad)];
        let err = refusal(&cfg, &loaded(&model));
        assert!(err.contains(want), "{err}");
    }
    // And refused for a model whose encoder reads no keypoints off its map.
    let mut no_kp = spatial_cfg(4);
    no_kp.encoder.spatial_softmax = false;
    let no_kp = amisim::train::jepa::seeded(&device, 5, || no_kp.init(&device));
    cfg.policies = vec![Policy::Latent(kp.clone())];
    let err = refusal(&cfg, &loaded(&no_kp));
    assert!(
        err.contains("--keypoints needs encoders with spatial soft-argmax"),
        "{err}"
    );

    // An ensemble of the model with itself scores every candidate √2 × the model's own cost:
    // the same ranking, so the same plans and episodes as the model alone.
    let mut ens = spatial.clone();
    ens.ensemble = true;
    cfg.policies = vec![Policy::Latent(ens.clone()), Policy::Latent(spatial.clone())];
    let (twin, _) = run(&cfg, &with(&model, vec![&model]), 0, |_, _| {}).unwrap();
    let names: Vec<&str> = twin.rows.iter().map(|r| r.name.as_str()).collect();
    assert_eq!(names, ["cem@3+spatial+ensemble", "cem@3+spatial"]);
    assert_eq!(outcomes(&twin)[0].1, outcomes(&twin)[1].1);
    // Another model beside it changes the plans, deterministically.
    let other = amisim::train::jepa::seeded(&device, 9, || spatial_cfg(4).init(&device));
    let (a, _) = run(&cfg, &with(&model, vec![&other]), 0, |_, _| {}).unwrap();
    let (b, _) = run(&cfg, &with(&model, vec![&other]), 0, |_, _| {}).unwrap();
    assert_eq!(outcomes(&a), outcomes(&b), "same seed and config, same report");
    assert_ne!(outcomes(&a)[0].1, outcomes(&a)[1].1);
    // An ensemble row without other models, or without +spatial, is refused by name.
    let err = refusal(&cfg, &loaded(&model));
    assert!(
        err.contains("cem@3+spatial+ensemble") && err.contains("--ensemble"),
        "{err}"
    );
    ens.spatial = false;
    cfg.policies = vec![Policy::Latent(ens)];
    let err = refusal(&cfg, &with(&model, vec![&other]));
    assert!(err.contains("cem@3+ensemble") && err.contains("+spatial"), "{err}");

    // A +switch row that never stalls long enough plans with the checkpoint's model alone:
    // the same episodes as the plain row, and no switch.
    let mut sw = spatial.clone();
    sw.switch_after = 1000;
    cfg.policies = vec![Policy::Latent(sw.clone()), Policy::Latent(spatial.clone())];
    let (late, _) = run(&cfg, &with(&model, vec![&other]), 0, |_, _| {}).unwrap();
    let names: Vec<&str> = late.rows.iter().map(|r| r.name.as_str()).collect();
    assert_eq!(names, ["cem@3+spatial+switch", "cem@3+spatial"]);
    assert_eq!(outcomes(&late)[0].1, outcomes(&late)[1].1);
    assert!(late.rows[0].episodes.iter().all(|e| e.switches == 0));
    // Passing on after every plan without a new low: switches happen, plans change, and the
    // report is the same twice.
    sw.switch_after = 1;
    cfg.policies = vec![Policy::Latent(sw.clone()), Policy::Latent(spatial.clone())];
    let (a, _) = run(&cfg, &with(&model, vec![&other]), 0, |_, _| {}).unwrap();
    let (b, _) = run(&cfg, &with(&model, vec![&other]), 0, |_, _| {}).unwrap();
    assert_eq!(outcomes(&a), outcomes(&b), "same seed and config, same report");
    assert!(a.rows[0].episodes.iter().map(|e| e.switches).sum::<u32>() > 0);
    assert_ne!(outcomes(&a)[0].1, outcomes(&a)[1].1);
    // The row sums its switches up, and the table says so for the +switch row alone.
    let row = &a.rows[0];
    let passed: Vec<&amisim::eval::run::EpisodeResult> = row.episodes.iter().filter(|e| e.switches > 0).collect();
    assert_eq!(
        row.switches,
        row.episodes.iter().map(|e| e.switches as u64).sum::<u64>()
    );
    assert_eq!(row.switched_episodes, passed.len());
    assert_eq!(row.switched_succeeded, passed.iter().filter(|e| e.success).count());
    let line = format!(
        "cem@3+spatial+switch: {} of {} episodes passed to another model ({} passes in all)",
        row.switched_episodes,
        row.episodes.len(),
        row.switches
    );
    let table = a.table();
    assert!(table.contains(&line), "{table}");
    // The policy column fits the longest name: each row's episode count ends under the header's.
    let lines: Vec<Vec<char>> = table
        .lines()
        .take(1 + a.rows.len())
        .map(|l| l.chars().collect())
        .collect();
    let end = table.lines().next().unwrap().find("episodes").unwrap() + "episodes".len();
    for l in &lines[1..] {
        assert!(l[end - 1].is_ascii_digit() && l[end] == ' ', "{table}");
    }
    assert!(!table.contains("cem@3+spatial: "), "{table}");
    assert_eq!((a.rows[1].switches, a.rows[1].switched_episodes), (0, 0));
    // With keypoints (in the plans and in the progress measure): other episodes, still the
    // same report twice.
    let without = outcomes(&a)[0].1.clone();
    let mut sw_kp = sw.clone();
    sw_kp.cost.keypoints = 5.0;
    cfg.policies = vec![Policy::Latent(sw_kp)];
    let (a, _) = run(&cfg, &with(&model, vec![&other]), 0, |_, _| {}).unwrap();
    let (b, _) = run(&cfg, &with(&model, vec![&other]), 0, |_, _| {}).unwrap();
    assert_eq!(outcomes(&a), outcomes(&b), "same seed and config, same report");
    assert!(a.rows[0].switches > 0);
    assert_ne!(outcomes(&a)[0].1, without);
    // Another model without a spatial predictor plans with its latent one once passed to:
    // switches happen, the episodes differ from those with the spatial twin, the same report
    // twice. Keypoints, which come from spatial states, are refused for it.
    let flat = amisim::train::jepa::seeded(&device, 9, || spatial_cfg(0).init(&device));
    cfg.policies = vec![Policy::Latent(sw.clone())];
    let (a, _) = run(&cfg, &with(&model, vec![&flat]), 0, |_, _| {}).unwrap();
    let (b, _) = run(&cfg, &with(&model, vec![&flat]), 0, |_, _| {}).unwrap();
    assert_eq!(outcomes(&a), outcomes(&b), "same seed and config, same report");
    assert!(a.rows[0].switches > 0);
    assert_ne!(outcomes(&a)[0].1, without);
    let mut flat_kp = sw.clone();
    flat_kp.cost.keypoints = 5.0;
    cfg.policies = vec![Policy::Latent(flat_kp)];
    let err = refusal(&cfg, &with(&model, vec![&flat]));
    assert!(err.contains("--keypoints needs"), "{err}");
    // The checkpoint's model may be the latent one, planning first: then the spatial model
    // plans once passed to. Some model of the row must have a spatial predictor (+spatial).
    cfg.policies = vec![Policy::Latent(sw.clone())];
    let (a, _) = run(&cfg, &with(&flat, vec![&model]), 0, |_, _| {}).unwrap();
    let (b, _) = run(&cfg, &with(&flat, vec![&model]), 0, |_, _| {}).unwrap();
    assert_eq!(outcomes(&a), outcomes(&b), "same seed and config, same report");
    assert!(a.rows[0].switches > 0);
    let (c, _) = run(&cfg, &with(&model, vec![&flat]), 0, |_, _| {}).unwrap();
    assert_ne!(outcomes(&a)[0].1, outcomes(&c)[0].1, "who plans first matters");
    let err = refusal(&cfg, &with(&flat, vec![&flat]));
    assert!(
        err.contains("cem@3+spatial+switch: this world model has no spatial predictor"),
        "{err}"
    );
    cfg.policies = vec![Policy::Latent(sw.clone()), Policy::Latent(spatial.clone())];
    // Without other models, or with +ensemble too, it is refused by name.
    let err = refusal(&cfg, &loaded(&model));
    assert!(
        err.contains("cem@3+spatial+switch") && err.contains("--ensemble"),
        "{err}"
    );
    sw.ensemble = true;
    cfg.policies = vec![Policy::Latent(sw)];
    let err = refusal(&cfg, &with(&model, vec![&other]));
    assert!(err.contains("one spatial predictor at a time"), "{err}");
    // The oracle imagines with the simulator: a learned-model modifier on it is refused.
    let mut oracle = tiny_planner(PlannerKind::Cem);
    oracle.spatial = true;
    cfg.policies = vec![Policy::Oracle(oracle)];
    let err = refusal(&cfg, &loaded(&model));
    assert!(err.contains("+spatial is for the cem and mppi rows"), "{err}");
    // So does the hierarchical planner, whose levels imagine with the latent predictors.
    let mut h = HierarchyConfig::default_for(4, 3.0);
    h.low.spatial = true;
    cfg.policies = vec![Policy::Hierarchical(h)];
    let err = refusal(&cfg, &loaded(&model));
    assert!(err.contains("hierarchy.low: +spatial"), "{err}");
}

#[test]
fn recorded_episodes_are_the_learned_rows_cut_into_pieces_and_train_beside_collected_ones() {
    use amisim::train::collect::Recorder;
    use amisim::train::data::Episodes;
    use amisim::world::scene::Scene;
    let device = cpu_device();
    let model = amisim::train::jepa::seeded(&device, 5, || {
        JepaConfig::new(EncoderConfig::lenet(65, 8), LossWeights::new()).init(&device)
    });
    let loaded = Loaded {
        model: &model,
        differentiable: None,
        probe: None,
        level2: None,
        critic: None,
        mode1: None,
        ensemble: Vec::new(),
        ensemble_probes: Vec::new(),
    };
    let mut cfg = config((0, 1));
    cfg.episodes = 3; // two batches of two environments: the last one pads
    cfg.policies = vec![
        Policy::Random,
        Policy::Latent(tiny_planner(PlannerKind::Cem)),
        Policy::Oracle(tiny_planner(PlannerKind::Cem)),
    ];
    let scene = Scene::load("two_rooms").unwrap();
    let mut rec = Recorder::new(&scene, "two_rooms", 4).unwrap();
    let (plain, _) = run(&cfg, &loaded, 0, |_, _| {}).unwrap();
    let (recorded, _) = run_recorded(&cfg, &loaded, 0, |_, _| {}, Some(&mut rec)).unwrap();
    assert_eq!(outcomes(&plain), outcomes(&recorded), "recording changes nothing");
    // Only the learned row's three episodes, each cut into ⌊steps / 4⌋ pieces.
    assert_eq!(rec.episodes, 3);
    let expected: usize = recorded.rows[1].episodes.iter().map(|e| e.steps as usize / 4).sum();
    assert!(expected > 0);
    assert_eq!(rec.pieces(), expected);
    let dir = std::env::temp_dir().join(format!("amisim-record-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    let header = rec
        .write(&dir, "eval: cem@3", cfg.seed, serde_json::Value::Null)
        .unwrap();
    assert_eq!((header.episodes, header.steps_per_episode), (expected, 4));
    let data = Episodes::load(&dir).unwrap();
    assert_eq!(
        (data.episodes, data.steps, data.frame_shape),
        (expected, 4, [3, 65, 65])
    );
    // The pieces of an episode follow on: one piece's last state is the next one's first, and
    // each step moves the agent by at most its action.
    let first = recorded.rows[1].episodes[0].steps as usize / 4;
    for e in 0..first.saturating_sub(1) {
        // (bit for bit: the box's coordinates are NaN in a scene without one)
        let bits = |s: &[f32]| s.iter().map(|x| x.to_bits()).collect::<Vec<_>>();
        assert_eq!(bits(data.state(e, 4)), bits(data.state(e + 1, 0)), "piece {e}");
        assert_eq!(data.frame(e, 4), data.frame(e + 1, 0), "piece {e}");
    }
    for e in 0..data.episodes {
        for t in 0..4 {
            let (s0, s1, a) = (data.state(e, t), data.state(e, t + 1), data.action(e, t));
            assert!((s1[0] - s0[0]).abs() <= a[0].abs() + 1e-4, "piece {e} step {t}");
            assert!((s1[1] - s0[1]).abs() <= a[1].abs() + 1e-4, "piece {e} step {t}");
        }
    }
    // Two datasets train as one; pieces of another length are refused, naming the folder.
    let both = Episodes::load_all(&[dir.clone(), dir.clone()]).unwrap();
    assert_eq!(both.episodes, 2 * expected);
    assert_eq!(both.frame(expected, 0), data.frame(0, 0));
    let mut rec3 = Recorder::new(&scene, "two_rooms", 3).unwrap();
    run_recorded(&cfg, &loaded, 0, |_, _| {}, Some(&mut rec3)).unwrap();
    let dir3 = dir.with_extension("three");
    rec3.write(&dir3, "eval: cem@3", cfg.seed, serde_json::Value::Null)
        .unwrap();
    let err = Episodes::load_all(&[dir.clone(), dir3.clone()])
        .err()
        .unwrap()
        .to_string();
    assert!(
        err.contains(&dir3.display().to_string()) && err.contains("3 steps"),
        "{err}"
    );
    let _ = std::fs::remove_dir_all(&dir);
    let _ = std::fs::remove_dir_all(&dir3);
}
