//! `amisim compare`: the self-supervised objectives side by side.

use amisim::ssl::compare::{compare, CompareConfig};
use amisim::ssl::model::Objective;
use amisim::ssl::train::Budget;
use anyhow::Result;
use std::path::PathBuf;

#[derive(clap::Args)]
pub struct CompareArgs {
    /// Scene to collect, probe and plan in.
    #[arg(long, default_value = "two_rooms")]
    pub scene: String,
    /// Objectives to train, in order: ijepa, vjepa, mcjepa, simclr, byol, mae, vicreg, sigreg,
    /// energy (default: all).
    #[arg(long, value_delimiter = ',', value_parser = Objective::parse)]
    pub objectives: Vec<Objective>,
    /// Wall-clock seconds of pretraining per objective (turned into a step count by timing a
    /// few steps, so every schedule runs its course).
    #[arg(long, default_value_t = 120.0)]
    pub budget_s: f64,
    /// Pretraining steps per objective instead of a time budget (reproducible to the bit).
    #[arg(long)]
    pub steps: Option<usize>,
    /// Random-walk episodes to pretrain on (and to fit each level-1 model on).
    #[arg(long, default_value_t = 400)]
    pub episodes: usize,
    /// Episodes the probes are fitted on, and held-out episodes they are scored on.
    #[arg(long, default_value_t = 300)]
    pub probe_train: usize,
    #[arg(long, default_value_t = 100)]
    pub probe_test: usize,
    /// Steps of the level-1 fit on each frozen encoder's latents.
    #[arg(long, default_value_t = 1000)]
    pub level1_steps: usize,
    /// Planning episodes per row (0: skip planning).
    #[arg(long, default_value_t = 40)]
    pub plan_episodes: usize,
    /// The CEM planner's horizon, in decisions of 4 steps.
    #[arg(long, default_value_t = 6)]
    pub plan_horizon: usize,
    #[arg(long, default_value_t = 0)]
    pub seed: u64,
    /// Folder for compare.csv, compare.json, compare.svg, energy.svg and each row's world model
    /// (default runs/compare_<scene>).
    #[arg(long)]
    pub out: Option<PathBuf>,
    /// Tiny models, for a quick check of the whole pipeline.
    #[arg(long, hide = true)]
    pub tiny: bool,
}

pub fn compare_command(a: CompareArgs) -> Result<()> {
    let mut cfg = CompareConfig::new(&a.scene);
    if !a.objectives.is_empty() {
        cfg.objectives = a.objectives.clone();
    }
    cfg.budget = match a.steps {
        Some(s) => Budget::Steps(s),
        None => {
            if !(a.budget_s > 0.0 && a.budget_s.is_finite()) {
                anyhow::bail!("--budget-s {}: expected a positive number of seconds", a.budget_s);
            }
            Budget::Seconds(a.budget_s)
        }
    };
    cfg.episodes = a.episodes;
    cfg.probe_train = a.probe_train;
    cfg.probe_test = a.probe_test;
    cfg.level1_steps = a.level1_steps;
    cfg.plan_episodes = a.plan_episodes;
    cfg.plan_horizon = a.plan_horizon;
    cfg.seed = a.seed;
    cfg.tiny = a.tiny;
    if a.tiny {
        cfg.mlp_steps = 20;
    }
    for (flag, v) in [
        ("--episodes", cfg.episodes),
        ("--probe-train", cfg.probe_train),
        ("--probe-test", cfg.probe_test),
        ("--level1-steps", cfg.level1_steps),
        ("--plan-horizon", cfg.plan_horizon),
    ] {
        if v == 0 {
            anyhow::bail!("{flag} must be ≥ 1");
        }
    }
    let out = a
        .out
        .clone()
        .unwrap_or_else(|| PathBuf::from(format!("runs/compare_{}", a.scene)));
    report(&cfg, &out).map(|_| ())
}

/// Runs the comparison, prints its table and writes its files into `out`.
fn report(cfg: &CompareConfig, out: &std::path::Path) -> Result<amisim::ssl::compare::Comparison> {
    let result = compare(cfg, out, |line| eprintln!("{line}"))?;
    print!("{}", result.table());
    for p in result.write(out)? {
        println!("wrote {}", p.display());
    }
    Ok(result)
}

/// `amisim train --objective O --scene S`: one row of the comparison (no planning).
pub fn train_objective(
    o: Objective,
    scene: &str,
    episodes: usize,
    steps: usize,
    seed: u64,
    out: &std::path::Path,
) -> Result<()> {
    if steps == 0 || episodes == 0 {
        anyhow::bail!("--steps and --episodes must be ≥ 1");
    }
    let mut cfg = CompareConfig::new(scene);
    cfg.objectives = vec![o];
    cfg.budget = Budget::Steps(steps);
    cfg.episodes = episodes;
    cfg.plan_episodes = 0;
    cfg.seed = seed;
    let result = report(&cfg, out)?;
    println!("world model: {}", result.rows[0].checkpoint);
    Ok(())
}
