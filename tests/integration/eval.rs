//! `amisim eval`: agents play the rows; deterministic reports, shards that merge into the whole
//! run, and every kind of agent refused by the entry at fault when its models cannot work.

use amisim::actor::hierarchy::HierarchyConfig;
use amisim::actor::mode1::Mode1;
use amisim::actor::planner::{PlannerConfig, PlannerKind};
use amisim::agent::{Agent, AgentSpec, Mode, Models, PredictorKind, Together, World};
use amisim::cost::critic::Critic;
use amisim::eval::run::{merge, run, wilson, EvalConfig, Player, Report, Row};
use amisim::goal_net::GoalNetShape;
use amisim::perception::EncoderConfig;
use amisim::probe::{LinearProbe, Probes};
use amisim::train::jepa::{cpu_device, seeded};
use amisim::world_model::jepa::{Jepa, JepaConfig, LossWeights};
use amisim::world_model::level2::{Level2, Level2Config, Level2Weights};
use anyhow::Result;

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

fn world() -> World {
    amisim::agents::world(&amisim::world::Scene::load("two_rooms").unwrap()).unwrap()
}

/// A spec of `mode` with the tiny planner.
fn spec(mode: Mode) -> AgentSpec {
    AgentSpec {
        planner: tiny_planner(PlannerKind::Cem),
        ..AgentSpec::new(mode)
    }
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

/// One row: its name, spec, models and the probes that read its plans.
struct Entry {
    name: &'static str,
    spec: AgentSpec,
    models: Models,
    probes: Probes,
}

fn entry(name: &'static str, spec: AgentSpec, models: Models) -> Entry {
    Entry {
        name,
        spec,
        models,
        probes: Probes::default(),
    }
}

/// `members` as the agent's world models.
fn members(models: &[&Jepa]) -> Models {
    Models {
        members: models.iter().map(|m| (*m).clone()).collect(),
        ..Models::none()
    }
}

/// Plays `rows` on 5 Two-Rooms episodes of 10 steps, 2 environments at a time (seed 11).
fn play(rows: Vec<Entry>, shard: (usize, usize)) -> Result<Report> {
    play_on(rows, shard, 5, None)
}

fn play_on(
    rows: Vec<Entry>,
    shard: (usize, usize),
    episodes: usize,
    record: Option<&mut amisim::data::collect::Recorder>,
) -> Result<Report> {
    let mut players = Vec::new();
    let mut cfg_rows = Vec::new();
    for e in rows {
        let agent = Agent::new(e.spec, e.models, 2, world())?;
        cfg_rows.push(Row {
            name: e.name.into(),
            spec: agent.spec().clone(),
            models: Vec::new(),
        });
        players.push(Player {
            agent,
            probes: e.probes,
        });
    }
    let cfg = EvalConfig {
        scene: "two_rooms".into(),
        episodes,
        envs: 2,
        seed: 11,
        max_steps: 10,
        shard,
        rows: cfg_rows,
        jpeg: None,
    };
    Ok(run(&cfg, &mut players, 0, |_, _| {}, record, None)?.0)
}

/// The error building or playing `rows` fails with (it must fail).
fn refusal(rows: Vec<Entry>) -> String {
    format!("{:#}", play(rows, (0, 1)).expect_err("refused"))
}

/// Everything but the timings, which are the only thing allowed to differ between runs.
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

/// The tiny models of the first test: a level-1 model (and its predictor on an autodiff
/// device, for the gradient planner), a level-2 model, a critic, a policy.
struct Tiny {
    model: Jepa,
    differentiable: amisim::world_model::Predictor,
    level2: Level2,
    critic: Critic,
    mode1: Mode1,
}

fn tiny() -> Tiny {
    let device = cpu_device();
    let shape = |out| GoalNetShape {
        latent: 8,
        hidden: 16,
        out,
    };
    let jepa = |device: &burn::prelude::Device| {
        seeded(device, 5, || {
            JepaConfig::new(EncoderConfig::lenet(65, 8), LossWeights::new()).init(device)
        })
    };
    Tiny {
        model: jepa(&device),
        differentiable: jepa(&device.clone().autodiff()).predictor,
        level2: seeded(&device, 6, || level2_config().init(&device)),
        critic: Critic::new(&seeded(&device, 7, || shape(1).init(&device)), 8.0, 1.0),
        mode1: Mode1::new(&seeded(&device, 8, || shape(2).init(&device)), 1.8),
    }
}

/// Every kind of agent, one row each.
fn every_kind(t: &Tiny) -> Vec<Entry> {
    // Probes that put every latent somewhere in the arena (the first two dimensions, scaled,
    // around the centre), so that plans are judged for walls.
    let probe = |d: usize| {
        let mut w = vec![0.0f64; (d + 1) * 2];
        (w[0], w[3], w[2 * d], w[2 * d + 1]) = (40.0, 40.0, 32.0, 32.0);
        LinearProbe { d, k: 2, w }
    };
    let probes = || Probes {
        models: vec![Some(probe(8))],
        level2: Some(probe(4)),
    };
    let with = |level2: bool, critic: bool, mode1: bool| Models {
        members: vec![t.model.clone()],
        level2: level2.then(|| (t.level2.clone(), level2_config())),
        critic: critic.then(|| t.critic.clone()),
        mode1: mode1.then(|| t.mode1.clone()),
        differentiable: None,
    };
    let learned = |name, spec, models| Entry {
        name,
        spec,
        models,
        probes: probes(),
    };
    let mut mppi = spec(Mode::Plan);
    mppi.planner = tiny_planner(PlannerKind::Mppi);
    let mut critic = spec(Mode::Plan);
    critic.planner.cost.critic = 1.0;
    let hierarchical = AgentSpec {
        hierarchy: Some(tiny_hierarchy()),
        ..spec(Mode::Hierarchical)
    };
    // The configured agent, with a stall window short enough to reconfigure within 10 steps.
    let mut configured = AgentSpec {
        hierarchy: Some(tiny_hierarchy()),
        ..spec(Mode::Configured)
    };
    (configured.memory.short_term, configured.memory.stall_window) = (8, 4);
    (
        configured.configurator.short_horizon,
        configured.configurator.max_horizon,
    ) = (2, 4);
    vec![
        entry("random", AgentSpec::random(), Models::none()),
        learned("cem", spec(Mode::Plan), with(false, false, false)),
        learned("mppi", mppi, with(false, false, false)),
        entry(
            "oracle",
            AgentSpec::oracle(&tiny_planner(PlannerKind::Cem)),
            Models::none(),
        ),
        learned("hierarchical", hierarchical, with(true, false, false)),
        learned("critic", critic, with(false, true, false)),
        learned("mode1", spec(Mode::Mode1), with(false, false, true)),
        learned("configured", configured, with(true, true, true)),
        learned(
            "gradient",
            AgentSpec {
                planner: tiny_planner(PlannerKind::Gradient),
                ..spec(Mode::Plan)
            },
            Models {
                differentiable: Some(t.differentiable.clone()),
                ..with(false, false, false)
            },
        ),
    ]
}

#[test]
fn eval_is_deterministic_and_shards_merge_into_the_whole_run() {
    let t = tiny();
    let a = play(every_kind(&t), (0, 1)).unwrap();
    let b = play(every_kind(&t), (0, 1)).unwrap();
    assert_eq!(outcomes(&a), outcomes(&b), "same seed and config, same report");
    // Every planner row judged its plans (the random and mode-1 rows make none).
    for row in a.rows[1..6].iter().chain(&a.rows[8..]) {
        assert!(row.episodes.iter().all(|e| e.plans > 0), "{}", row.name);
    }
    for i in [0, 6] {
        assert!(a.rows[i].episodes.iter().all(|e| e.plans == 0), "{}", a.rows[i].name);
    }
    assert_eq!(a.episodes, 5);
    // Mode 1 acts every step; the configured agent logs its setup and, stalled in 10 steps of
    // an untrained model, reconfigures with a reason.
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
    // The report keeps each row's resolved spec: the hierarchy's settings among them.
    assert_eq!(a.rows[4].spec.hierarchy, Some(tiny_hierarchy()));
    let s0 = play(every_kind(&t), (0, 2)).unwrap();
    let s1 = play(every_kind(&t), (1, 2)).unwrap();
    assert_eq!(s0.rows[0].episodes.len() + s1.rows[0].episodes.len(), 5);
    let merged = merge(vec![s1, s0.clone()]).unwrap();
    assert_eq!(outcomes(&merged), outcomes(&a), "shards merged equal the unsharded run");
    assert_eq!(merged.settings, a.settings);
    // A shard missing is an error that says so.
    let err = merge(vec![s0]).unwrap_err().to_string();
    assert!(err.contains("shards 0..2"), "{err}");
}

#[test]
fn an_agent_without_the_models_its_spec_needs_is_refused_by_entry() {
    let t = tiny();
    let only = |m| Models {
        members: vec![t.model.clone()],
        ..m
    };
    for (spec, models, field) in [
        (spec(Mode::Hierarchical), only(Models::none()), "level2"),
        (spec(Mode::Mode1), only(Models::none()), "mode1"),
        (
            AgentSpec {
                planner: PlannerConfig {
                    cost: amisim::cost::CostConfig {
                        critic: 1.0,
                        ..tiny_planner(PlannerKind::Cem).cost
                    },
                    ..tiny_planner(PlannerKind::Cem)
                },
                ..spec(Mode::Plan)
            },
            only(Models::none()),
            "critic",
        ),
        (spec(Mode::Plan), Models::none(), "models"),
        (AgentSpec::random(), only(Models::none()), "models"),
    ] {
        let err = refusal(vec![entry("x", spec, models)]);
        assert!(err.contains(&format!("agent spec, {field}")), "{field}: {err}");
    }
    // The gradient planner needs the first model's predictor on an autodiff device.
    let gradient = AgentSpec {
        planner: tiny_planner(PlannerKind::Gradient),
        ..spec(Mode::Plan)
    };
    let err = refusal(vec![entry("x", gradient, only(Models::none()))]);
    assert!(
        err.contains("agent spec, planner.kind") && err.contains("autodiff"),
        "{err}"
    );
    // The oracle needs the world's simulator.
    let no_sim = World {
        simulator: None,
        ..world()
    };
    let err = Agent::new(
        AgentSpec::oracle(&tiny_planner(PlannerKind::Cem)),
        Models::none(),
        2,
        no_sim,
    )
    .err()
    .unwrap()
    .to_string();
    assert!(err.contains("simulator"), "{err}");
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

/// A Plan agent of the tiny planner imagining with `predictor`, models taking turns after
/// `after` steps where given.
fn flat(predictor: PredictorKind, together: Option<Together>) -> AgentSpec {
    AgentSpec {
        predictor,
        together,
        ..spec(Mode::Plan)
    }
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
    let model = seeded(&device, 5, || spatial_cfg(4).init(&device));
    let spatial = flat(PredictorKind::Spatial, None);
    let latent = flat(PredictorKind::Latent, None);
    let both = |a: AgentSpec, b: AgentSpec, ma: &[&Jepa], mb: &[&Jepa]| {
        vec![entry("a", a, members(ma)), entry("b", b, members(mb))]
    };
    let a = play(both(spatial.clone(), latent.clone(), &[&model], &[&model]), (0, 1)).unwrap();
    let b = play(both(spatial.clone(), latent.clone(), &[&model], &[&model]), (0, 1)).unwrap();
    assert_eq!(outcomes(&a), outcomes(&b), "same seed and config, same report");
    // The two rows imagine with different predictors: their episodes differ.
    assert_ne!(outcomes(&a)[0].1, outcomes(&a)[1].1);
    // A model without a spatial predictor, or the gradient planner, is refused by entry.
    let no_map = seeded(&device, 5, || spatial_cfg(0).init(&device));
    let err = refusal(vec![entry("a", spatial.clone(), members(&[&no_map]))]);
    assert!(
        err.contains("predictor") && err.contains("no spatial predictor"),
        "{err}"
    );
    let mut grad = spatial.clone();
    grad.planner = tiny_planner(PlannerKind::Gradient);
    let err = refusal(vec![entry("a", grad, members(&[&model]))]);
    assert!(err.contains("planner.kind"), "{err}");

    // The keypoints beside the latent in the goal distance: the same report twice, and other
    // episodes than the latent alone.
    let mut kp = spatial.clone();
    kp.planner.cost.keypoints = 5.0;
    let a = play(both(kp.clone(), spatial.clone(), &[&model], &[&model]), (0, 1)).unwrap();
    let b = play(both(kp.clone(), spatial.clone(), &[&model], &[&model]), (0, 1)).unwrap();
    assert_eq!(outcomes(&a), outcomes(&b), "same seed and config, same report");
    assert_ne!(outcomes(&a)[0].1, outcomes(&a)[1].1);
    // Refused: with the latent predictor, with the critic (which reads latents), a negative
    // weight; each names its entry.
    for (change, want) in [
        (
            (|c: &mut AgentSpec| c.predictor = PredictorKind::Latent) as fn(&mut AgentSpec),
            "planner.cost.keypoints",
        ),
        (|c| c.planner.cost.critic = 1.0, "planner.cost.critic"),
        (|c| c.planner.cost.keypoints = -1.0, "planner.cost.keypoints"),
    ] {
        let mut bad = kp.clone();
        change(&mut bad);
        let models = Models {
            critic: Some(tiny().critic),
            ..members(&[&model])
        };
        let err = refusal(vec![entry("a", bad, models)]);
        assert!(err.contains(want), "{want}: {err}");
    }
    // And refused for a model whose encoder reads no keypoints off its map.
    let mut no_kp = spatial_cfg(4);
    no_kp.encoder.spatial_softmax = false;
    let no_kp = seeded(&device, 5, || no_kp.init(&device));
    let err = refusal(vec![entry("a", kp.clone(), members(&[&no_kp]))]);
    assert!(err.contains("spatial soft-argmax"), "{err}");

    // An ensemble of the model with itself scores every candidate √2 × the model's own cost:
    // the same ranking, so the same plans and episodes as the model alone.
    let ens = flat(PredictorKind::Spatial, Some(Together::Ensemble));
    let twin = play(both(ens.clone(), spatial.clone(), &[&model, &model], &[&model]), (0, 1)).unwrap();
    assert_eq!(outcomes(&twin)[0].1, outcomes(&twin)[1].1);
    // Another model beside it changes the plans, deterministically.
    let other = seeded(&device, 9, || spatial_cfg(4).init(&device));
    let a = play(both(ens.clone(), spatial.clone(), &[&model, &other], &[&model]), (0, 1)).unwrap();
    let b = play(both(ens.clone(), spatial.clone(), &[&model, &other], &[&model]), (0, 1)).unwrap();
    assert_eq!(outcomes(&a), outcomes(&b), "same seed and config, same report");
    assert_ne!(outcomes(&a)[0].1, outcomes(&a)[1].1);
    // Several models need `together`, one model must not have it, an ensemble needs every
    // model's spatial predictor: each refused by entry.
    let err = refusal(vec![entry("a", spatial.clone(), members(&[&model, &other]))]);
    assert!(err.contains("together"), "{err}");
    let err = refusal(vec![entry("a", ens.clone(), members(&[&model]))]);
    assert!(err.contains("together"), "{err}");
    let err = refusal(vec![entry("a", ens.clone(), members(&[&model, &no_map]))]);
    assert!(err.contains("models[1]") && err.contains("ensemble"), "{err}");

    // Models taking turns that never stall long enough: the first plans alone, the same
    // episodes as the plain row, and no switch.
    let late = flat(PredictorKind::Spatial, Some(Together::Switch { after: 1000 }));
    let r = play(both(late, spatial.clone(), &[&model, &other], &[&model]), (0, 1)).unwrap();
    assert_eq!(outcomes(&r)[0].1, outcomes(&r)[1].1);
    assert!(r.rows[0].episodes.iter().all(|e| e.switches == 0));
    // Passing on after every plan without a new low: switches happen, plans change, and the
    // report is the same twice.
    let sw = flat(PredictorKind::Spatial, Some(Together::Switch { after: 1 }));
    let a = play(both(sw.clone(), spatial.clone(), &[&model, &other], &[&model]), (0, 1)).unwrap();
    let b = play(both(sw.clone(), spatial.clone(), &[&model, &other], &[&model]), (0, 1)).unwrap();
    assert_eq!(outcomes(&a), outcomes(&b), "same seed and config, same report");
    assert!(a.rows[0].episodes.iter().map(|e| e.switches).sum::<u32>() > 0);
    assert_ne!(outcomes(&a)[0].1, outcomes(&a)[1].1);
    // The row sums its switches up, and the table says so for the switching row alone.
    let row = &a.rows[0];
    let passed: Vec<&amisim::eval::run::EpisodeResult> = row.episodes.iter().filter(|e| e.switches > 0).collect();
    assert_eq!(
        row.switches,
        row.episodes.iter().map(|e| e.switches as u64).sum::<u64>()
    );
    assert_eq!(row.switched_episodes, passed.len());
    assert_eq!(row.switched_succeeded, passed.iter().filter(|e| e.success).count());
    let line = format!(
        "a: {} of {} episodes passed to another model ({} passes in all)",
        row.switched_episodes,
        row.episodes.len(),
        row.switches
    );
    let table = a.table();
    assert!(table.contains(&line), "{table}");
    assert!(
        !table
            .lines()
            .any(|l| l.starts_with("b: ") && l.contains("passed to another model")),
        "{table}"
    );
    // Each row is described under the table: the switching one with its models and planner.
    assert!(
        table.contains("a: plans with 2 world models taking turns (the next after 1 steps without progress)"),
        "{table}"
    );
    assert_eq!((a.rows[1].switches, a.rows[1].switched_episodes), (0, 0));
    // With keypoints (in the plans and in the progress measure): other episodes, still the
    // same report twice.
    let without = outcomes(&a)[0].1.clone();
    let mut sw_kp = sw.clone();
    sw_kp.planner.cost.keypoints = 5.0;
    let once = || play(vec![entry("a", sw_kp.clone(), members(&[&model, &other]))], (0, 1)).unwrap();
    let (a, b) = (once(), once());
    assert_eq!(outcomes(&a), outcomes(&b), "same seed and config, same report");
    assert!(a.rows[0].switches > 0);
    assert_ne!(outcomes(&a)[0].1, without);
    // Another model without a spatial predictor plans with its latent one once passed to:
    // switches happen, the episodes differ from those with the spatial twin, the same report
    // twice. Keypoints, which come from spatial states, are refused for it.
    let once = |m: &[&Jepa]| play(vec![entry("a", sw.clone(), members(m))], (0, 1)).unwrap();
    let (a, b) = (once(&[&model, &no_map]), once(&[&model, &no_map]));
    assert_eq!(outcomes(&a), outcomes(&b), "same seed and config, same report");
    assert!(a.rows[0].switches > 0);
    assert_ne!(outcomes(&a)[0].1, without);
    let err = refusal(vec![entry("a", sw_kp.clone(), members(&[&model, &no_map]))]);
    assert!(err.contains("planner.cost.keypoints"), "{err}");
    // The first model may be the latent one, planning first: then the spatial model plans
    // once passed to. Some model must have a spatial predictor.
    let (a, b) = (once(&[&no_map, &model]), once(&[&no_map, &model]));
    assert_eq!(outcomes(&a), outcomes(&b), "same seed and config, same report");
    assert!(a.rows[0].switches > 0);
    let c = once(&[&model, &no_map]);
    assert_ne!(outcomes(&a)[0].1, outcomes(&c)[0].1, "who plans first matters");
    let err = refusal(vec![entry("a", sw.clone(), members(&[&no_map, &no_map]))]);
    assert!(
        err.contains("predictor") && err.contains("no model has a spatial predictor"),
        "{err}"
    );
    // A model alone remembers blocked moves too (in turns that never pass): the same report
    // twice, stalls noticed, no pass, and other episodes than without the cost. An ensemble
    // (no one model acting) with the cost is refused by entry.
    let blocked_alone = AgentSpec {
        blocked: 5.0,
        ..spatial.clone()
    };
    let alone = || play(vec![entry("a", blocked_alone.clone(), members(&[&model]))], (0, 1)).unwrap();
    let (a, b) = (alone(), alone());
    assert_eq!(outcomes(&a), outcomes(&b), "same seed and config, same report");
    assert_eq!(a.rows[0].switches, 0);
    assert!(a.rows[0].episodes.iter().any(|e| e.stalls > 0), "no stall noticed");
    let plain = play(vec![entry("a", spatial.clone(), members(&[&model]))], (0, 1)).unwrap();
    let moved = |r: &Report| r.rows[0].episodes.iter().map(|e| e.final_distance).collect::<Vec<_>>();
    assert_ne!(moved(&a), moved(&plain), "the blocked-move cost changed nothing");
    let ensemble_blocked = AgentSpec {
        blocked: 5.0,
        together: Some(Together::Ensemble),
        ..spatial.clone()
    };
    let err = refusal(vec![entry("a", ensemble_blocked, members(&[&model, &model]))]);
    assert!(err.contains("blocked"), "{err}");
    // The spatial predictor, the models taking turns and an ensemble with flat planning only
    // (not the oracle, not the hierarchy): each refused by entry.
    let mut h = AgentSpec {
        hierarchy: Some(tiny_hierarchy()),
        ..spec(Mode::Hierarchical)
    };
    h.predictor = PredictorKind::Spatial;
    let err = refusal(vec![entry("a", h, members(&[&model]))]);
    assert!(err.contains("agent spec, predictor"), "{err}");
}

#[test]
fn recorded_episodes_are_the_learned_rows_cut_into_pieces_and_train_beside_collected_ones() {
    use amisim::data::collect::Recorder;
    use amisim::data::Episodes;
    use amisim::world::scene::Scene;
    let t = tiny();
    let rows = || {
        vec![
            entry("random", AgentSpec::random(), Models::none()),
            entry("cem", spec(Mode::Plan), members(&[&t.model])),
            entry(
                "oracle",
                AgentSpec::oracle(&tiny_planner(PlannerKind::Cem)),
                Models::none(),
            ),
        ]
    };
    let scene = Scene::load("two_rooms").unwrap();
    let mut rec = Recorder::new(&scene, "two_rooms", 4).unwrap();
    // Three episodes: two batches of two environments, the last one pads.
    let plain = play_on(rows(), (0, 1), 3, None).unwrap();
    let recorded = play_on(rows(), (0, 1), 3, Some(&mut rec)).unwrap();
    assert_eq!(outcomes(&plain), outcomes(&recorded), "recording changes nothing");
    // Only the learned row's three episodes, each cut into ⌊steps / 4⌋ pieces.
    assert_eq!(rec.episodes, 3);
    let expected: usize = recorded.rows[1].episodes.iter().map(|e| e.steps as usize / 4).sum();
    assert!(expected > 0);
    assert_eq!(rec.pieces(), expected);
    let dir = std::env::temp_dir().join(format!("amisim-record-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    let header = rec.write(&dir, "eval: cem", 11, serde_json::Value::Null).unwrap();
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
    play_on(rows(), (0, 1), 3, Some(&mut rec3)).unwrap();
    let dir3 = dir.with_extension("three");
    rec3.write(&dir3, "eval: cem", 11, serde_json::Value::Null).unwrap();
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

#[test]
fn a_model_that_encodes_nan_is_an_error_not_a_plan() {
    // Broken input statistics (as a corrupted model file could hold): every latent is NaN.
    let device = cpu_device();
    let broken = seeded(&device, 5, || {
        let enc = EncoderConfig::lenet(65, 8)
            .with_input_mean(vec![f32::NAN; 3])
            .with_input_std(vec![1.0; 3]);
        JepaConfig::new(enc, LossWeights::new()).init(&device)
    });
    let err = refusal(vec![entry("a", spec(Mode::Plan), members(&[&broken]))]);
    assert!(err.contains("non-finite") && err.contains("NaN"), "{err}");
}

/// The oracle's plans are the simulator's own paths: none goes through a wall. Judged at
/// every imagined step, the measure counts none of them; read one position every 8 steps (as
/// before 2026-12-08), the straight chords between positions cut the corners of doors.
#[test]
fn the_oracles_true_paths_never_count_as_through_walls() {
    let mut planner = PlannerConfig::default_for(PlannerKind::Cem);
    (planner.horizon, planner.repeat, planner.samples, planner.iterations) = (16, 8, 64, 2);
    (planner.legs, planner.leg_count) = (32, 3);
    let report = play_on(
        vec![entry("oracle", AgentSpec::oracle(&planner), Models::none())],
        (0, 1),
        16,
        None,
    )
    .unwrap();
    let row = &report.rows[0];
    let plans: u32 = row.episodes.iter().map(|e| e.plans).sum();
    assert!(plans >= 16, "every episode planned ({plans} plans)");
    let through: u32 = row.episodes.iter().map(|e| e.plans_through_walls).sum();
    assert_eq!(through, 0, "{through} of {plans} true paths judged through a wall");
}
