//! `amisim eval`: arguments and the command.

use amisim::agent::{Agent, Mode};
use amisim::agents;
use amisim::checkpoint::cpu_device;
use amisim::data::collect::Recorder;
use amisim::eval::journal::Journal;
use amisim::eval::run::{merge, run, write_strips, EvalConfig, Player, Report, Row};
use amisim::probe::{position_probes, LinearProbe, Probes};
use amisim::world::Scene;
use anyhow::{bail, Context, Result};
use serde::{Deserialize, Serialize};
use std::collections::HashMap;
use std::path::PathBuf;

/// Goal-reaching episodes played by agents, one row each, with a report.
#[derive(clap::Args)]
pub struct EvalArgs {
    /// Scene to evaluate in (a name under scenes/, or a .ron file) [default: two_rooms].
    #[arg(long)]
    pub scene: Option<String>,
    /// The rows, comma-separated: `default` (the scene's shipped agent,
    /// assets/<scene>/agent.ron), a preset beside it (cem, mppi, gradient, hierarchical,
    /// mode1, configured, …), a spec file, a folder with an agent.ron, `random`, or `oracle`
    /// (the true simulator with the first agent's planner) [default: random,default,oracle].
    #[arg(long, value_delimiter = ',')]
    pub agent: Option<Vec<String>>,
    /// Override an entry of every agent's spec (`--set planner.samples=200`), or with `eval.`
    /// a setting of the evaluation (`--set eval.max_steps=100`; see --config).
    #[arg(long = "set", value_name = "KEY=VALUE")]
    pub sets: Vec<String>,
    /// Evaluation settings from a RON file: scene, agents, episodes, envs, seed, max_steps,
    /// strips, record_steps, sets, jpeg; flags and --set override it.
    #[arg(long)]
    pub config: Option<PathBuf>,
    /// Episodes per row [default: 200].
    #[arg(long)]
    pub episodes: Option<usize>,
    /// Environments run (and planned for) side by side [default: 20].
    #[arg(long)]
    pub envs: Option<usize>,
    /// Episode k is drawn from (seed, k), so rows play the same episodes [default: 0].
    #[arg(long)]
    pub seed: Option<u64>,
    /// Run only part of the episodes: `i/n` takes batches i, i+n, … (join them with --merge).
    #[arg(long)]
    pub shard: Option<String>,
    /// Write report.json, report.csv and PNG strips of the first episodes here (and, while it
    /// runs, progress.jsonl: each finished batch).
    #[arg(long)]
    pub out: Option<PathBuf>,
    /// Continue the evaluation a killed run left in --out: play only the batches it did not finish.
    #[arg(long, requires = "out")]
    pub resume: bool,
    /// Record the episodes the learned agents play as a dataset here (for `train --data`).
    #[arg(long)]
    pub record: Option<PathBuf>,
    /// Merge shard reports (report.json files) into one, written to --out.
    #[arg(long, num_args = 1..)]
    pub merge: Vec<PathBuf>,
    /// Pass every observation and goal image through JPEG at this quality (1–100) before the
    /// agents see them, as stable-worldmodel's datasets and most image tools store frames.
    #[arg(long, value_parser = clap::value_parser!(u8).range(1..=100))]
    pub jpeg: Option<u8>,
    /// Print the report as JSON.
    #[arg(long)]
    pub json: bool,
}

/// The settings of an evaluation (`--config FILE`, `--set eval.KEY=VALUE`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct EvalSettings {
    pub scene: String,
    pub agents: Vec<String>,
    pub episodes: usize,
    pub envs: usize,
    pub seed: u64,
    /// Step budget per episode (the scene's when absent).
    pub max_steps: Option<u32>,
    /// Episodes per row drawn as PNG strips (with --out).
    pub strips: usize,
    /// Actions per recorded piece (with --record).
    pub record_steps: usize,
    /// `KEY=VALUE` overrides of every agent's spec.
    pub sets: Vec<String>,
    /// JPEG quality the observations and goal images pass through (absent: as rendered).
    pub jpeg: Option<u8>,
}

impl Default for EvalSettings {
    fn default() -> Self {
        EvalSettings {
            scene: "two_rooms".into(),
            agents: vec!["random".into(), "default".into(), "oracle".into()],
            episodes: 200,
            envs: 20,
            seed: 0,
            max_steps: None,
            strips: 3,
            record_steps: 16,
            sets: Vec::new(),
            jpeg: None,
        }
    }
}

impl EvalSettings {
    /// The settings `a` asks for: the file, then the flags, then `--set eval.*`.
    fn from_args(a: &EvalArgs) -> Result<EvalSettings> {
        let mut s = match &a.config {
            Some(p) => {
                let text = std::fs::read_to_string(p).with_context(|| format!("reading {}", p.display()))?;
                amisim::file::parse_ron(&text, p)?
            }
            None => EvalSettings::default(),
        };
        if let Some(v) = &a.scene {
            s.scene = v.clone();
        }
        if let Some(v) = &a.agent {
            s.agents = v.clone();
        }
        if let Some(v) = a.episodes {
            s.episodes = v;
        }
        if let Some(v) = a.envs {
            s.envs = v;
        }
        if let Some(v) = a.seed {
            s.seed = v;
        }
        if let Some(v) = a.jpeg {
            s.jpeg = Some(v);
        }
        let (ours, theirs): (Vec<&String>, Vec<&String>) = a.sets.iter().partition(|kv| kv.starts_with("eval."));
        let ours: Vec<String> = ours.iter().map(|kv| kv["eval.".len()..].to_string()).collect();
        let mut s: EvalSettings = amisim::config::with_sets(s, &ours).context("--set eval.*")?;
        s.sets.extend(theirs.into_iter().cloned());
        amisim::require_counts("eval", &[("episodes", s.episodes), ("envs", s.envs)]).map_err(anyhow::Error::msg)?;
        s.jpeg
            .map(amisim::jpeg::check_quality)
            .transpose()
            .context("eval.jpeg")?;
        if s.max_steps == Some(0) {
            bail!("eval.max_steps must be ≥ 1");
        }
        if s.agents.is_empty() {
            bail!("--agent: name at least one agent");
        }
        Ok(s)
    }
}

fn parse_shard(s: &str) -> Result<(usize, usize)> {
    let (i, n) = s
        .split_once('/')
        .with_context(|| format!("--shard {s}: expected i/n, e.g. 0/4"))?;
    let (i, n): (usize, usize) = (
        i.trim()
            .parse()
            .with_context(|| format!("--shard {s}: `{i}` is not a number"))?,
        n.trim()
            .parse()
            .with_context(|| format!("--shard {s}: `{n}` is not a number"))?,
    );
    if n == 0 || i >= n {
        bail!("--shard {s}: expected i/n with 0 ≤ i < n");
    }
    Ok((i, n))
}

fn print(report: &Report, json: bool) -> Result<()> {
    if json {
        println!("{}", serde_json::to_string(report)?);
    } else {
        print!("{}", report.table());
    }
    Ok(())
}

/// Position probes of an agent's models (fitted once per model file), to draw its imagined
/// paths and judge whether its plans go through walls. Mode 1 and the baselines make no plans
/// a probe reads.
fn probes_for(
    agent: &Agent,
    files: &[amisim::agent::ModelFile],
    scene: &str,
    cache: &mut HashMap<PathBuf, (LinearProbe, Option<LinearProbe>)>,
) -> Result<Probes> {
    if !agent.spec().learned() || agent.spec().mode == Mode::Mode1 {
        return Ok(Probes::default());
    }
    let device = cpu_device();
    let mut out = Probes::default();
    for (i, model) in agent.models().iter().enumerate() {
        let key = files
            .iter()
            .find(|f| f.entry == format!("models[{i}]"))
            .map(|f| f.file.clone())
            .unwrap_or_else(|| PathBuf::from(format!("<in memory {i}>")));
        let level2 = if i == 0 { agent.level2_model() } else { None };
        let key = if level2.is_some() { key.join("+level2") } else { key };
        if !cache.contains_key(&key) {
            cache.insert(key.clone(), position_probes(model, level2, scene, &device)?);
        }
        let (p, p2) = cache[&key].clone();
        out.models.push(Some(p));
        if i == 0 {
            out.level2 = p2;
        }
    }
    Ok(out)
}

pub fn eval_command(a: EvalArgs) -> Result<()> {
    if !a.merge.is_empty() {
        let reports = a
            .merge
            .iter()
            .map(|p| {
                let text = std::fs::read_to_string(p).with_context(|| format!("reading {}", p.display()))?;
                serde_json::from_str::<Report>(&text).with_context(|| format!("{}: not an eval report", p.display()))
            })
            .collect::<Result<Vec<_>>>()?;
        let merged = merge(reports)?;
        if let Some(dir) = &a.out {
            merged.write(dir)?;
            eprintln!("wrote {}", dir.join("report.json").display());
        }
        return print(&merged, a.json);
    }
    let s = EvalSettings::from_args(&a)?;
    let scene = Scene::load(&s.scene)?;
    let world = agents::world(&scene)?;
    let opened = agents::open(&s.agents, &s.scene, &s.sets)?;
    let envs = s.envs.min(s.episodes);
    let mut cache = HashMap::new();
    let mut players = Vec::new();
    let mut rows = Vec::new();
    for o in opened {
        let agent = Agent::new(o.spec, o.models, envs, world.clone()).with_context(|| format!("agent {}", o.name))?;
        let probes = probes_for(&agent, &o.files, &s.scene, &mut cache)?;
        rows.push(Row {
            name: o.name,
            spec: agent.spec().clone(),
            models: o.files,
        });
        players.push(Player { agent, probes });
    }
    if a.record.is_some() && rows.iter().all(|r| !r.learned()) {
        bail!("--record records the agents that act with learned models, and this run has none (see --agent)");
    }
    let cfg = EvalConfig {
        scene: s.scene.clone(),
        episodes: s.episodes,
        envs,
        seed: s.seed,
        max_steps: s.max_steps.unwrap_or(scene.episode().max_steps),
        shard: a.shard.as_deref().map(parse_shard).transpose()?.unwrap_or((0, 1)),
        rows,
        jpeg: s.jpeg,
    };
    let per_row = cfg.episodes.div_ceil(cfg.envs).div_ceil(cfg.shard.1) * cfg.envs;
    let bar = indicatif::ProgressBar::new((per_row * cfg.rows.len()) as u64);
    bar.set_style(
        indicatif::ProgressStyle::with_template("{prefix:>12} [{bar:30}] {pos}/{len} episodes {elapsed}<{eta}")
            .expect("template")
            .progress_chars("=> "),
    );
    let mut recorder = a
        .record
        .as_ref()
        .map(|_| Recorder::new(&scene, &s.scene, s.record_steps))
        .transpose()?;
    let strips = if a.out.is_some() { s.strips } else { 0 };
    let lock = a
        .out
        .as_deref()
        .map(|dir| amisim::lock::DirLock::acquire(dir, "eval --out"))
        .transpose()?;
    let mut journal = a
        .out
        .as_deref()
        .map(|dir| Journal::open(dir, &cfg, a.resume))
        .transpose()?;
    if let Some(j) = journal.as_ref().filter(|j| j.finished() > 0) {
        eprintln!("resuming: {} batch(es) of rows finished before", j.finished());
    }
    let (report, strip_frames) = run(
        &cfg,
        &mut players,
        strips,
        |name, _| {
            bar.set_prefix(name.to_string());
            bar.inc(1);
        },
        recorder.as_mut(),
        journal.as_mut(),
    )?;
    bar.finish_and_clear();
    if let (Some(dir), Some(r)) = (&a.record, &recorder) {
        let learned: Vec<String> = report
            .rows
            .iter()
            .filter(|row| row.spec.learned())
            .map(|row| row.name.clone())
            .collect();
        r.write(
            dir,
            &format!("eval: {}", learned.join(",")),
            cfg.seed,
            serde_json::to_value(&cfg)?,
        )?;
        eprintln!(
            "recorded {} episodes as {} pieces of {} steps in {}",
            r.episodes,
            r.pieces(),
            s.record_steps,
            dir.display()
        );
    }
    if let Some(dir) = &a.out {
        report.write(dir)?;
        let side = scene.resolution() as usize;
        let pngs = write_strips(dir, &strip_frames, side)?;
        eprintln!(
            "wrote {} and {} strip(s) to {}",
            dir.join("report.json").display(),
            pngs.len(),
            dir.display()
        );
    }
    if let Some(j) = journal {
        j.finish()?;
    }
    drop(lock);
    print(&report, a.json)
}
