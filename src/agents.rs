//! Finding and opening agents by name, for the command line and the window.
//!
//! An agent is a spec file and the model files it names. Each shipped scene has a folder,
//! `assets/<scene>/`, whose `agent.ron` is its best known agent (the default of `eval` and
//! `run`) and whose other `.ron` files are named presets (`cem`, `hierarchical`, `mode1`, …);
//! a `train --all` run folder has the same layout. A name given to `--agent` is, in order:
//! `random` or `oracle` (the baselines), `default`, a preset of the scene's folder, a `.ron`
//! file, or a folder holding an `agent.ron`.

use crate::actor::planner::PlannerConfig;
use crate::agent::{load_models, AgentSpec, Mode, ModelFile, Models, World, SPEC_FILE};
use crate::configurator::{GoalKind, Task};
use crate::world::env::env_rng;
use crate::world::scene::Scene;
use crate::world::sim;
use anyhow::{bail, Context, Result};
use std::path::{Path, PathBuf};

/// The shipped assets' folder.
pub fn assets_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("assets")
}

/// The folder of a scene's shipped agents and models (`assets/<scene>/`).
pub fn scene_agents(scene: &str) -> PathBuf {
    assets_dir().join(scene_stem(scene))
}

/// A model file as the window shows it: relative to the scene's folder (`assets/<scene>/`) where
/// it lies in it (`keypoints.safetensors`), else relative to the current folder where it lies
/// below it, else its last two components (`…/run/checkpoint.safetensors`): never this
/// machine's absolute path.
pub fn shown_path(path: &Path, scene: &str) -> PathBuf {
    let normal = |p: &Path| crate::file::relative_path(p, Path::new("."));
    let p = normal(path);
    let rel = crate::file::relative_path(&p, &normal(&scene_agents(scene)));
    if !rel.starts_with("..") {
        return rel;
    }
    if !p.is_absolute() && !p.starts_with("..") {
        return p;
    }
    let tail: Vec<_> = path.components().rev().take(2).collect();
    let mut out = PathBuf::from("…");
    for c in tail.into_iter().rev() {
        out.push(c.as_os_str());
    }
    out
}

/// A scene's name from a name or a path to its file (`scenes/two_rooms.ron` → `two_rooms`).
fn scene_stem(scene: &str) -> String {
    Path::new(scene)
        .file_stem()
        .map_or_else(|| scene.to_string(), |s| s.to_string_lossy().into_owned())
}

/// The level-1 model of a scene's shipped agents (`assets/<scene>/checkpoint.safetensors`):
/// what `probe` and the later training stages read by default.
pub fn default_checkpoint(scene: &str) -> PathBuf {
    scene_agents(scene).join(crate::checkpoint::CHECKPOINT)
}

/// The error for a scene with no shipped model where one is needed.
pub fn missing_checkpoint(path: &Path, scene: &str) -> anyhow::Error {
    anyhow::anyhow!(
        "no checkpoint at {}: train one with `amisim train --all --scene {scene} --out runs/{scene}` and pass --checkpoint runs/{scene}/checkpoint.safetensors (or --agent runs/{scene})",
        path.display()
    )
}

/// The presets a scene's folder offers (the names of its `.ron` files, `agent` first as
/// `default`).
pub fn presets(scene: &str) -> Vec<String> {
    let mut names: Vec<String> = std::fs::read_dir(scene_agents(scene))
        .into_iter()
        .flatten()
        .flatten()
        .filter_map(|e| {
            let p = e.path();
            let stem = p.file_stem()?.to_string_lossy().into_owned();
            (p.extension()? == "ron").then_some(stem)
        })
        .map(|n| if n == "agent" { "default".to_string() } else { n })
        .collect();
    names.sort_by_key(|n| (n != "default", n.clone()));
    names
}

/// Where an agent comes from.
#[derive(Debug, Clone, PartialEq)]
pub enum Source {
    Random,
    /// The true simulator with the planner of another row (or the default planner).
    Oracle,
    File(PathBuf),
}

/// The agent `name` stands for in `scene` (see the module documentation).
pub fn resolve(name: &str, scene: &str) -> Result<Source> {
    let folder = scene_agents(scene);
    match name {
        "random" => return Ok(Source::Random),
        "oracle" => return Ok(Source::Oracle),
        _ => {}
    }
    let preset = folder.join(format!("{}.ron", if name == "default" { "agent" } else { name }));
    let path = Path::new(name);
    if !name.contains(['/', '\\', '.']) && preset.is_file() {
        return Ok(Source::File(preset));
    }
    if path.is_file() {
        return Ok(Source::File(path.to_path_buf()));
    }
    if path.is_dir() {
        let spec = path.join(SPEC_FILE);
        if spec.is_file() {
            return Ok(Source::File(spec));
        }
        bail!("--agent {name}: the folder has no {SPEC_FILE}");
    }
    let known = presets(scene);
    if known.is_empty() {
        bail!(
            "--agent {name}: no such spec file or folder, and scene {} ships no agents (no folder {}); train one with `amisim train --all --scene {scene} --out runs/{}` and pass --agent runs/{}, or use random or oracle",
            scene_stem(scene),
            folder.display(),
            scene_stem(scene),
            scene_stem(scene)
        );
    }
    bail!(
        "--agent {name}: no such spec file, folder or preset; {} offers: {}, random, oracle",
        scene_stem(scene),
        known.join(", ")
    )
}

/// A row's name for the table: the preset's name, `default` for the shipped agent, the spec
/// file's stem, or the folder's name.
pub fn row_name(name: &str, source: &Source) -> String {
    match source {
        Source::Random => "random".into(),
        Source::Oracle => "oracle".into(),
        Source::File(p) if !name.contains(['/', '\\', '.']) => name.to_string(),
        Source::File(p) => {
            let stem = p
                .file_stem()
                .map(|s| s.to_string_lossy().into_owned())
                .unwrap_or_default();
            if stem == "agent" {
                p.parent()
                    .and_then(|d| d.file_name())
                    .map_or(stem, |d| d.to_string_lossy().into_owned())
            } else {
                stem
            }
        }
    }
}

/// A spec file read, its paths taken from its folder, its defaults filled in
/// ([`resolve_defaults`]), then every `KEY=VALUE` of `sets` applied.
pub fn read_spec(path: &Path, sets: &[String]) -> Result<AgentSpec> {
    let spec = AgentSpec::load(path)?;
    let dir = path.parent().unwrap_or(Path::new("."));
    let spec = resolve_defaults(spec.relative_to(dir)).with_context(|| format!("{}", path.display()))?;
    with_sets(spec, sets).with_context(|| format!("{}", path.display()))
}

/// `spec` with the defaults that depend on its models written out: a hierarchy (hierarchical
/// or configured agents with a level-2 model) takes its defaults for the level-2 model's `k`.
pub fn resolve_defaults(mut spec: AgentSpec) -> Result<AgentSpec> {
    if let (None, Some(p), Mode::Hierarchical | Mode::Configured) = (&spec.hierarchy, &spec.level2, spec.mode) {
        if p.is_file() {
            let l2 = crate::checkpoint::load_level2(p, None, &crate::checkpoint::cpu_device()).context("level2")?;
            let m = &l2.config.model;
            spec.hierarchy = Some(crate::actor::hierarchy::HierarchyConfig::default_for(
                m.k,
                m.macro_radius,
            ));
        }
    }
    Ok(spec)
}

/// `spec` with every `KEY=VALUE` of `sets` applied, validated.
pub fn with_sets(spec: AgentSpec, sets: &[String]) -> Result<AgentSpec> {
    let spec: AgentSpec = crate::config::with_sets(spec, sets)?;
    spec.validate()
        .map_err(|(field, m)| anyhow::anyhow!("entry `{field}`: {m}"))?;
    Ok(spec)
}

/// What an agent needs to know of `scene`: the task (goal kind and rooms, read off episode 0),
/// the largest step, and the simulator for an oracle.
pub fn world(scene: &Scene) -> Result<World> {
    let first = sim::sample_episode(scene, &mut env_rng(0, 0))?;
    Ok(World {
        task: Task {
            scene: scene.name().to_string(),
            goal: if first.pushable.is_some() {
                GoalKind::Object
            } else {
                GoalKind::Place
            },
            rooms: first.layout.as_ref().map_or(1, |l| l.room_count),
            cost: scene.episode().task_cost,
        },
        max_step: match scene {
            Scene::TopDown(s) => s.agent.max_step,
            Scene::FirstPerson(s) => s.agent.max_forward,
        },
        simulator: Some(crate::episode::simulator(scene)),
    })
}

/// The planner an agent of `scene` starts from: the defaults, with first-person scenes'
/// actions (metres forward, radians turned per step) sampled and bounded at their own scale.
pub fn default_planner(scene: &Scene) -> PlannerConfig {
    let mut p = PlannerConfig::default();
    if let Some(s) = scene.first_person() {
        let max = s.agent.max_forward.max(s.agent.max_turn_degrees.to_radians());
        p.max_action = max;
        p.init_std = 0.7 * max;
        p.min_std = 0.1 * max;
        // `forward_only` stays off: on room_3d it planned worse (docs/first_person.md).
    }
    p
}

/// An agent's spec, models and files, ready to build.
pub struct Opened {
    pub name: String,
    pub spec: AgentSpec,
    pub models: Models,
    pub files: Vec<ModelFile>,
}

/// Opens the agents `names` for `scene`: each spec read with `sets` applied and its models
/// loaded. An oracle takes the planner of the first agent that plans with learned models (the
/// default planner if none), and the `planner.*` entries of `sets`; the random baseline none.
pub fn open(names: &[String], scene: &str, sets: &[String]) -> Result<Vec<Opened>> {
    let device = crate::checkpoint::cpu_device();
    let mut out: Vec<Option<Opened>> = Vec::new();
    let mut oracles = Vec::new();
    for name in names {
        let source = resolve(name, scene)?;
        let row = row_name(name, &source);
        match &source {
            Source::Random => out.push(Some(Opened {
                name: row,
                spec: AgentSpec::random(),
                models: Models::none(),
                files: Vec::new(),
            })),
            Source::Oracle => {
                oracles.push(out.len());
                out.push(None);
            }
            Source::File(path) => {
                let spec = read_spec(path, sets)?;
                let (models, files) =
                    load_models(&spec, &device).with_context(|| format!("agent {}", path.display()))?;
                out.push(Some(Opened {
                    name: row,
                    spec,
                    models,
                    files,
                }));
            }
        }
    }
    let paired = out
        .iter()
        .flatten()
        .find(|o| o.spec.learned() && o.spec.mode != Mode::Mode1)
        .map(|o| o.spec.planner.clone());
    let paired = match paired {
        Some(p) => p,
        None => default_planner(&Scene::load(scene)?),
    };
    // The oracle takes the planner's entries of `sets` (the rest describe learned agents).
    let planner_sets: Vec<String> = sets.iter().filter(|s| s.starts_with("planner.")).cloned().collect();
    for i in oracles {
        out[i] = Some(Opened {
            name: "oracle".into(),
            spec: with_sets(AgentSpec::oracle(&paired), &planner_sets).context("oracle")?,
            models: Models::none(),
            files: Vec::new(),
        });
    }
    Ok(out.into_iter().flatten().collect())
}
