//! What an agent is made of, as a file: [`AgentSpec`], written in RON (`agent.ron`), naming
//! its model files (relative to the spec's folder), how it acts, its planner, memories and
//! configurator rules. A spec and its model files are the whole agent: `eval`, `run` and
//! mode-1 distillation build the same object from them.
//!
//! ```ron
//! (
//!     mode: Plan,
//!     models: ["keypoints.safetensors", "spatial.safetensors"],
//!     predictor: Spatial,
//!     together: Switch(after: 32),
//!     blocked: 5.0,
//!     planner: (horizon: 16, repeat: 8, samples: 100, iterations: 2, legs: 50, leg_count: 3),
//! )
//! ```
//!
//! Every entry but `mode` has a default; an entry the spec does not know is an error that names
//! it, with the file, line and column.

use crate::actor::hierarchy::HierarchyConfig;
use crate::actor::planner::{PlannerConfig, PlannerKind};
use crate::configurator::ConfiguratorConfig;
use crate::file::{locate_field, parse_ron, FileError};
use crate::memory::MemoryConfig;
use serde::{Deserialize, Serialize};
use std::path::{Path, PathBuf};

/// The file name of an agent spec inside an agent folder (`assets/<scene>/`, a `train --all`
/// run folder).
pub const SPEC_FILE: &str = "agent.ron";

/// How the agent chooses its actions.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum Mode {
    /// Uniform random actions in the ball of the scene's largest step (a baseline).
    Random,
    /// Mode 2 with the true simulator instead of a world model: what the planner can do with a
    /// perfect model (a baseline; the world supplies the simulator).
    Oracle,
    /// Mode 2: plan with the world model(s) every `planner.replan_every` steps, warm-started
    /// from the rest of the previous plan.
    Plan,
    /// Mode 2 in two levels: level 2 plans macro-actions far ahead, the state it predicts is
    /// level 1's subgoal.
    Hierarchical,
    /// Mode 1 alone: the distilled policy `π(z, z_goal)`, one forward pass per step.
    Mode1,
    /// The configurator decides, step by step: mode 1 where its imagined check passes, mode 2
    /// behind it (flat at the horizon it sets, with the critic as terminal cost, or
    /// hierarchical), both memories, and a new setting on every stall, logged with its reason.
    Configured,
}

/// Which of a world model's predictors imagines the futures.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
pub enum PredictorKind {
    /// The predictor on the latent vector.
    #[default]
    Latent,
    /// The spatial predictor (the encoder's feature map rolled forward), where the model has
    /// one; a model without one imagines with its latent predictor.
    Spatial,
}

/// How several world models plan together.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum Together {
    /// Every candidate is rolled out by each model and scored on all their latents at once.
    Ensemble,
    /// One model plans at a time, the first first; when the goal distance in its own latents
    /// has not reached a new low for `after` environment steps, the next takes over.
    Switch { after: usize },
}

/// The mode-1 check of the configured agent: mode 1's action stands when imagining `steps`
/// steps of the policy lowers the energy by at least `gain` steps per step imagined.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Mode1Check {
    pub steps: usize,
    pub gain: f32,
}

impl Default for Mode1Check {
    fn default() -> Self {
        Mode1Check { steps: 4, gain: 0.5 }
    }
}

/// An agent: its models, how it acts, its planner, memories and configurator rules.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AgentSpec {
    /// How it chooses actions.
    pub mode: Mode,
    /// Level-1 world models (encoder and predictors), relative to the spec's folder. The first
    /// is the agent's own: its latents are what the critic, mode 1 and level 2 read. More than
    /// one plan together (`together`).
    #[serde(default)]
    pub models: Vec<PathBuf>,
    /// Which predictor imagines (flat planning).
    #[serde(default)]
    pub predictor: PredictorKind,
    /// How the models plan together, when there are several.
    #[serde(default)]
    pub together: Option<Together>,
    /// The level-2 model (hierarchical planning), tied to the first model.
    #[serde(default)]
    pub level2: Option<PathBuf>,
    /// The critic `C(z, z_goal)` (the configured agent's energy and terminal cost, flat
    /// planning with `planner.cost.critic > 0`), tied to the first model.
    #[serde(default)]
    pub critic: Option<PathBuf>,
    /// The mode-1 policy, tied to the first model.
    #[serde(default)]
    pub mode1: Option<PathBuf>,
    /// The flat planner (and the configured agent's, whose horizon and cost weights the
    /// configurator sets).
    #[serde(default)]
    pub planner: PlannerConfig,
    /// The hierarchical planner; when absent, its defaults for the level-2 model's `k`.
    #[serde(default)]
    pub hierarchy: Option<HierarchyConfig>,
    /// Weight of the blocked-move cost (one model acting at a time; see `memory::blocked`): a replan that
    /// finds the agent stuck where the last plan imagined it moving makes the direction it
    /// pushed costly there for the rest of the episode. 0: off.
    #[serde(default)]
    pub blocked: f32,
    /// Short-term and episodic memory (the configured agent).
    #[serde(default)]
    pub memory: MemoryConfig,
    /// The configurator's rules (the configured agent).
    #[serde(default)]
    pub configurator: ConfiguratorConfig,
    /// The configured agent's check of mode 1.
    #[serde(default)]
    pub mode1_check: Mode1Check,
}

impl AgentSpec {
    /// A spec acting in `mode` with the defaults (no models).
    pub fn new(mode: Mode) -> AgentSpec {
        AgentSpec {
            mode,
            models: Vec::new(),
            predictor: PredictorKind::Latent,
            together: None,
            level2: None,
            critic: None,
            mode1: None,
            planner: PlannerConfig::default(),
            hierarchy: None,
            blocked: 0.0,
            memory: MemoryConfig::default(),
            configurator: ConfiguratorConfig::default(),
            mode1_check: Mode1Check::default(),
        }
    }

    /// The baseline that acts at random.
    pub fn random() -> AgentSpec {
        AgentSpec::new(Mode::Random)
    }

    /// The oracle: `planner` with the true simulator (a gradient planner becomes CEM: the
    /// simulator has no gradient).
    pub fn oracle(planner: &PlannerConfig) -> AgentSpec {
        let mut planner = planner.clone();
        if planner.kind == PlannerKind::Gradient {
            planner = PlannerConfig::default_for(PlannerKind::Cem);
        }
        planner.cost.critic = 0.0;
        planner.cost.collision = 0.0;
        planner.cost.keypoints = 0.0;
        AgentSpec {
            planner,
            ..AgentSpec::new(Mode::Oracle)
        }
    }

    /// Reads a spec file (RON). Errors name the file, the line and column, and the entry.
    pub fn load(path: &Path) -> Result<AgentSpec, FileError> {
        let text = std::fs::read_to_string(path).map_err(|e| FileError {
            file: path.to_path_buf(),
            position: None,
            field: None,
            message: format!("cannot read agent spec: {e}"),
        })?;
        AgentSpec::parse(&text, path)
    }

    /// Parses and validates spec text; `file` names it in errors.
    pub fn parse(text: &str, file: &Path) -> Result<AgentSpec, FileError> {
        let spec: AgentSpec = parse_ron(text, file)?;
        spec.validate().map_err(|(field, message)| FileError {
            file: file.to_path_buf(),
            position: locate_field(text, &field),
            field: Some(field),
            message,
        })?;
        Ok(spec)
    }

    /// The spec as RON text (every entry written out).
    pub fn to_ron(&self) -> String {
        let cfg = ron::ser::PrettyConfig::new().depth_limit(3).struct_names(false);
        ron::ser::to_string_pretty(self, cfg).expect("an agent spec serialises")
    }

    /// The agent in one line: how it acts, with which models and planner.
    pub fn describe(&self) -> String {
        let p = &self.planner;
        let kind = match p.kind {
            PlannerKind::Cem => "CEM",
            PlannerKind::Mppi => "MPPI",
            PlannerKind::Gradient => "gradient descent",
        };
        let legs = if p.legs > 0 {
            format!(" ({} of them {} straight legs)", p.legs, p.leg_count)
        } else {
            String::new()
        };
        let planner = format!(
            "{kind}, {} decisions × {} steps ahead, {} candidates{legs} × {} iterations, replanning every {} steps",
            p.horizon, p.repeat, p.samples, p.iterations, p.replan_every
        );
        let models = match (self.models.len(), self.together) {
            (0, _) => String::new(),
            (1, _) => "one world model".to_string(),
            (n, Some(Together::Switch { after })) => {
                format!("{n} world models taking turns (the next after {after} steps without progress)")
            }
            (n, _) => format!("{n} world models as an ensemble"),
        };
        let predictor = match self.predictor {
            PredictorKind::Latent => "latent predictor",
            PredictorKind::Spatial => "spatial predictor",
        };
        let mut extra = Vec::new();
        if p.cost.critic != 0.0 {
            extra.push(format!(
                "the critic's cost-to-go as terminal cost (weight {})",
                p.cost.critic
            ));
        }
        if p.cost.keypoints != 0.0 {
            extra.push(format!("keypoints in the goal distance (weight {})", p.cost.keypoints));
        }
        if self.blocked > 0.0 {
            extra.push(format!("blocked moves made costly (weight {})", self.blocked));
        }
        let extra = if extra.is_empty() {
            String::new()
        } else {
            format!("; {}", extra.join(", "))
        };
        match self.mode {
            Mode::Random => "uniform random actions".into(),
            Mode::Oracle => format!("the true simulator, {planner}"),
            Mode::Plan => format!("plans with {models}, {predictor}: {planner}{extra}"),
            Mode::Hierarchical => match &self.hierarchy {
                Some(h) => format!(
                    "plans hierarchically with one world model: level 2 {} jumps of {} steps, level 1 {} decisions × {} steps toward the subgoal",
                    h.high.horizon, h.k, h.low.horizon, h.low.repeat
                ),
                None => "plans hierarchically with one world model".into(),
            },
            Mode::Mode1 => "mode 1 alone (the distilled policy)".into(),
            Mode::Configured => {
                "configured: the configurator, both memories, mode 1 checked by the critic, mode 2 behind it".into()
            }
        }
    }

    /// Whether it acts with learned models (every mode but random and oracle).
    pub fn learned(&self) -> bool {
        !matches!(self.mode, Mode::Random | Mode::Oracle)
    }

    /// Every model file the spec names, with the entry that names it (`models[1]`, `critic`).
    pub fn files(&self) -> Vec<(String, &Path)> {
        let mut out: Vec<(String, &Path)> = self
            .models
            .iter()
            .enumerate()
            .map(|(i, p)| (format!("models[{i}]"), p.as_path()))
            .collect();
        for (name, p) in [
            ("level2", &self.level2),
            ("critic", &self.critic),
            ("mode1", &self.mode1),
        ] {
            if let Some(p) = p {
                out.push((name.to_string(), p.as_path()));
            }
        }
        out
    }

    /// The same spec with every relative path taken from `dir`.
    pub fn relative_to(&self, dir: &Path) -> AgentSpec {
        let at = |p: &PathBuf| if p.is_absolute() { p.clone() } else { dir.join(p) };
        AgentSpec {
            models: self.models.iter().map(at).collect(),
            level2: self.level2.as_ref().map(at),
            critic: self.critic.as_ref().map(at),
            mode1: self.mode1.as_ref().map(at),
            ..self.clone()
        }
    }

    /// The same spec with every path written relative to `dir` (the inverse of
    /// [`AgentSpec::relative_to`]), for specs saved inside a file in `dir`: a model file's
    /// header names its teacher's models as the folder's own files, not by this machine's
    /// absolute paths.
    pub fn paths_from(&self, dir: &Path) -> AgentSpec {
        let rel = |p: &PathBuf| crate::file::relative_path(p, dir);
        AgentSpec {
            models: self.models.iter().map(rel).collect(),
            level2: self.level2.as_ref().map(rel),
            critic: self.critic.as_ref().map(rel),
            mode1: self.mode1.as_ref().map(rel),
            ..self.clone()
        }
    }

    /// Checks what can be checked without the model files; the error names the entry at fault.
    pub fn validate(&self) -> Result<(), (String, String)> {
        if self.learned() && self.models.is_empty() {
            return Err((
                "models".into(),
                format!(
                    "{:?} acts with a world model: name at least one (models: [\"checkpoint.safetensors\"])",
                    self.mode
                ),
            ));
        }
        if self.mode == Mode::Hierarchical && self.level2.is_none() {
            return Err((
                "level2".into(),
                "hierarchical planning needs a level-2 model: level2: \"level2.safetensors\"".into(),
            ));
        }
        if self.mode == Mode::Mode1 && self.mode1.is_none() {
            return Err((
                "mode1".into(),
                "mode Mode1 acts with the mode-1 policy: mode1: \"mode1.safetensors\"".into(),
            ));
        }
        if self.mode == Mode::Plan && self.planner.cost.critic != 0.0 && self.critic.is_none() {
            return Err((
                "planner.cost.critic".into(),
                "a critic's terminal cost needs a critic: name one (critic: \"critic.safetensors\")".into(),
            ));
        }
        self.validate_with(self.models.len())
    }

    /// [`validate`](Self::validate) for an agent given `count` world models (in memory, the
    /// spec need not name their files).
    pub fn validate_with(&self, count: usize) -> Result<(), (String, String)> {
        let planning = matches!(self.mode, Mode::Plan | Mode::Oracle | Mode::Configured);
        if planning {
            self.planner
                .validate()
                .map_err(|e| field_of(&e, "planner", e.clone()))?;
        }
        if let Some(h) = &self.hierarchy {
            h.validate().map_err(at("hierarchy"))?;
        }
        if self.mode == Mode::Configured {
            self.memory.validate().map_err(|e| field_of(&e, "memory", e.clone()))?;
            crate::require_counts("mode1_check", &[("steps", self.mode1_check.steps)])
                .map_err(at("mode1_check.steps"))?;
            let c = &self.configurator;
            if c.short_horizon == 0 || c.max_horizon < c.short_horizon {
                return Err((
                    "configurator.short_horizon".into(),
                    format!(
                        "short_horizon = {} must be ≥ 1 and ≤ max_horizon = {}",
                        c.short_horizon, c.max_horizon
                    ),
                ));
            }
        }
        if !self.learned() && count > 0 {
            return Err((
                "models".into(),
                format!("{:?} acts without a world model: drop models", self.mode),
            ));
        }
        match (count > 1, self.together) {
            (true, None) => {
                return Err((
                    "together".into(),
                    format!("{count} models: say how they plan together (together: Switch(after: 32) or Ensemble)"),
                ))
            }
            (false, Some(_)) => {
                return Err((
                    "together".into(),
                    "one model plans alone: drop together (or name more models)".into(),
                ))
            }
            _ => {}
        }
        let flat_only = |what: &str, field: &str| -> Result<(), (String, String)> {
            if self.mode != Mode::Plan {
                return Err((
                    field.into(),
                    format!(
                        "{what} is for mode Plan (flat planning with the world models), not {:?}",
                        self.mode
                    ),
                ));
            }
            Ok(())
        };
        if self.predictor == PredictorKind::Spatial {
            flat_only("predictor: Spatial", "predictor")?;
        }
        if self.together.is_some() {
            flat_only("planning with several models", "together")?;
        }
        if self.planner.cost.keypoints != 0.0 && self.predictor != PredictorKind::Spatial {
            return Err((
                "planner.cost.keypoints".into(),
                "the keypoints come from the spatial state: set predictor: Spatial".into(),
            ));
        }
        if self.together == Some(Together::Ensemble) && self.predictor != PredictorKind::Spatial {
            return Err((
                "together".into(),
                "an ensemble rolls every candidate out through each model's spatial predictor: set predictor: Spatial"
                    .into(),
            ));
        }
        if let Some(Together::Switch { after }) = self.together {
            if after == 0 {
                return Err(("together".into(), "Switch(after: 0): give a number of steps ≥ 1".into()));
            }
        }
        if !(self.blocked.is_finite() && self.blocked >= 0.0) {
            return Err((
                "blocked".into(),
                format!("blocked = {}: expected a finite weight ≥ 0", self.blocked),
            ));
        }
        if self.blocked > 0.0 && self.together == Some(Together::Ensemble) {
            return Err((
                "blocked".into(),
                "the blocked-move cost goes with one model acting at a time: a model alone or together: Switch(after: N)".into(),
            ));
        }
        if self.mode == Mode::Plan {
            let p = &self.planner;
            let sampled = p.kind != PlannerKind::Gradient;
            if !sampled && (self.predictor == PredictorKind::Spatial || self.together.is_some() || self.blocked > 0.0) {
                return Err((
                    "planner.kind".into(),
                    "gradient planning goes through the latent predictor of one model: use Cem or Mppi".into(),
                ));
            }
            if !sampled && p.cost.critic != 0.0 {
                return Err((
                    "planner.cost.critic".into(),
                    "the gradient planner cannot use the critic's terminal cost (use Cem or Mppi)".into(),
                ));
            }
            if p.cost.critic != 0.0 && (self.together.is_some() || p.cost.keypoints != 0.0) {
                return Err((
                    "planner.cost.critic".into(),
                    "the critic reads the first model's latents alone: drop it when models plan together or keypoints count".into(),
                ));
            }
            if self.predictor == PredictorKind::Spatial && p.cost.collision != 0.0 {
                return Err((
                    "planner.cost.collision".into(),
                    "the predicted-collision cost reads latents step by step; the spatial predictor jumps (set it to 0)".into(),
                ));
            }
        }
        if matches!(self.mode, Mode::Oracle | Mode::Configured) && self.planner.kind == PlannerKind::Gradient {
            return Err((
                "planner.kind".into(),
                format!("{:?} plans by sampling: use Cem or Mppi", self.mode),
            ));
        }
        Ok(())
    }
}

/// A message about `field`, for `map_err`.
fn at(field: &'static str) -> impl Fn(String) -> (String, String) {
    move |m| (field.to_string(), m)
}

/// The field a validation message names (`planner.horizon must be ≥ 1` → `planner.horizon`),
/// else `fallback`.
fn field_of(message: &str, fallback: &str, m: String) -> (String, String) {
    let head = message.split([' ', ':']).next().unwrap_or("");
    let field = if head.starts_with(fallback) && head.len() > fallback.len() {
        head.to_string()
    } else {
        fallback.to_string()
    };
    (field, m)
}
