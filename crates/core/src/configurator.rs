//! The configurator: reads the task (the scene, the kind of goal) and what the agent has
//! (a critic, a level-2 model, a mode-1 policy), and sets the actor and cost up for it — cost
//! weights, planner horizon, hierarchy on or off, mode 1 on or off. When the short-term memory
//! says the agent has stalled it reconfigures, one remedy at a time, in this order: stop
//! trusting mode 1 (deliberate instead), raise the planning horizon, switch to hierarchical
//! planning, steer to an episodic-memory waypoint. Every decision is logged with its reason.

use crate::memory::Stall;
use serde::{Deserialize, Serialize};

/// What the goal asks for.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum GoalKind {
    /// Bring the agent to a place.
    Place,
    /// Bring an object (the box) to a place.
    Object,
}

/// The task as the configurator reads it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Task {
    pub scene: String,
    pub goal: GoalKind,
    /// Rooms the scene's layout has (1 where there are no inner walls).
    pub rooms: usize,
    /// The cost terms the scene file declares for its task.
    #[serde(default)]
    pub cost: TaskCost,
}

/// Cost terms a scene declares for its task (weights; 0 leaves a term out).
#[derive(Debug, Clone, Copy, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TaskCost {
    /// Weight of the effort `mean ‖a‖²`.
    #[serde(default)]
    pub effort: f32,
    /// Weight of the predicted collision (what the inverse-dynamics head reads back falling
    /// short of the action: pushing into something that does not give).
    #[serde(default)]
    pub collision: f32,
}

/// The modules the agent has.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct Available {
    pub critic: bool,
    pub level2: bool,
    pub mode1: bool,
}

/// The configurator's own settings.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ConfiguratorConfig {
    /// Planning horizon (decisions) with the critic as terminal cost; without a critic the
    /// planner starts at `max_horizon`.
    pub short_horizon: usize,
    pub max_horizon: usize,
    /// Weight of the critic's terminal cost (in goal-distance units per step of cost-to-go).
    pub critic_weight: f32,
    /// Scenes with at least this many rooms start hierarchical (goals are doors away).
    pub hierarchy_rooms: usize,
    /// Use mode 1 when there is a policy.
    pub mode1: bool,
}

impl Default for ConfiguratorConfig {
    fn default() -> Self {
        ConfiguratorConfig {
            short_horizon: 4,
            max_horizon: 24,
            critic_weight: 1.0,
            hierarchy_rooms: 3,
            mode1: true,
        }
    }
}

/// How the actor and the cost are set now.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Settings {
    /// Try mode 1 first (mode 2 when its check fails).
    pub mode1: bool,
    /// Plan with the hierarchy (level 2 sets level 1's subgoals) instead of the flat planner.
    pub hierarchical: bool,
    /// The flat planner's horizon (decisions).
    pub horizon: usize,
    /// Weights of the cost's terms.
    pub critic: f32,
    pub effort: f32,
    pub collision: f32,
}

/// One decision, with its reason.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Decision {
    pub step: u32,
    /// A short name (`mode1-off`, `horizon`, `hierarchical`, `waypoint`, `setup`, `no-remedy`).
    pub kind: String,
    pub change: String,
    pub reason: String,
}

/// What a stall changed.
#[derive(Debug, Clone, PartialEq)]
pub enum Remedy {
    Mode1Off,
    Horizon { from: usize, to: usize },
    Hierarchical,
    Waypoint,
}

/// The configurator of one agent.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Configurator {
    pub cfg: ConfiguratorConfig,
    pub available: Available,
    pub settings: Settings,
    pub log: Vec<Decision>,
    /// A stall with no remedy left has been logged (logged once).
    exhausted: bool,
}

impl Configurator {
    /// Sets the agent up for `task` with what is `available`, logging each choice.
    pub fn new(cfg: ConfiguratorConfig, task: &Task, available: Available) -> Configurator {
        let mut log = Vec::new();
        let mut note = |kind: &str, change: String, reason: String| {
            log.push(Decision {
                step: 0,
                kind: kind.into(),
                change,
                reason,
            })
        };
        let critic = if available.critic { cfg.critic_weight } else { 0.0 };
        let horizon = if available.critic {
            note(
                "setup",
                format!(
                    "horizon {} decisions, critic as terminal cost (weight {critic})",
                    cfg.short_horizon
                ),
                "a critic is trained: it sees past the horizon, so a short one suffices".into(),
            );
            cfg.short_horizon
        } else {
            note(
                "setup",
                format!("horizon {} decisions, no critic", cfg.max_horizon),
                "no critic: only a long horizon sees around walls".into(),
            );
            cfg.max_horizon
        };
        let hierarchical = available.level2 && task.rooms >= cfg.hierarchy_rooms;
        if hierarchical {
            note(
                "setup",
                "hierarchical planning".into(),
                format!(
                    "{} has {} rooms (≥ {}): goals lie doors away, level 2 plans far",
                    task.scene, task.rooms, cfg.hierarchy_rooms
                ),
            );
        } else {
            let why = if available.level2 {
                format!("{} has {} room(s): flat planning reaches", task.scene, task.rooms)
            } else {
                "no level-2 model".into()
            };
            note("setup", "flat planning".into(), why);
        }
        let mode1 = available.mode1 && cfg.mode1;
        note(
            "setup",
            format!("mode 1 {}", if mode1 { "on, checked by the critic" } else { "off" }),
            if mode1 {
                "a distilled policy is available: act reactively while its step lowers the energy".into()
            } else if available.mode1 {
                "turned off in the configurator's settings".into()
            } else {
                "no mode-1 policy".into()
            },
        );
        // The task's own terms, as the scene declares them; pushing an object takes force, so
        // effort is not penalised there whatever the scene says.
        let effort = match task.goal {
            GoalKind::Place => task.cost.effort,
            GoalKind::Object => 0.0,
        };
        let collision = task.cost.collision;
        note(
            "setup",
            format!("task cost: effort weight {effort}, predicted-collision weight {collision}"),
            match task.goal {
                GoalKind::Place => format!("declared by {} (episode.task_cost)", task.scene),
                GoalKind::Object => format!(
                    "the goal moves an object: no effort penalty (the scene declares {}); collision as declared",
                    task.cost.effort
                ),
            },
        );
        Configurator {
            settings: Settings {
                mode1,
                hierarchical,
                horizon,
                critic,
                effort,
                collision,
            },
            cfg,
            available,
            log,
            exhausted: false,
        }
    }

    /// Reconfigures on a stall at `step`: the first remedy left, logged with `stall` as the
    /// reason. `waypoint` says whether the episodic memory can propose one now.
    pub fn on_stall(&mut self, step: u32, stall: &Stall, waypoint: bool) -> Option<Remedy> {
        let s = &mut self.settings;
        let (remedy, kind, change) = if s.mode1 {
            s.mode1 = false;
            (
                Remedy::Mode1Off,
                "mode1-off",
                "mode 1 off: plan every step (mode 2)".to_string(),
            )
        } else if !s.hierarchical && s.horizon < self.cfg.max_horizon {
            let from = s.horizon;
            s.horizon = (s.horizon * 2).min(self.cfg.max_horizon);
            (
                Remedy::Horizon { from, to: s.horizon },
                "horizon",
                format!("horizon {from} → {} decisions", s.horizon),
            )
        } else if !s.hierarchical && self.available.level2 {
            s.hierarchical = true;
            (
                Remedy::Hierarchical,
                "hierarchical",
                "switch to hierarchical planning".to_string(),
            )
        } else if waypoint {
            (
                Remedy::Waypoint,
                "waypoint",
                "steer to the episodic memory's next landmark toward the goal".to_string(),
            )
        } else {
            if !self.exhausted {
                self.exhausted = true;
                self.log.push(Decision {
                    step,
                    kind: "no-remedy".into(),
                    change: "none".into(),
                    reason: format!("{stall}; every remedy is in use"),
                });
            }
            return None;
        };
        self.log.push(Decision {
            step,
            kind: kind.into(),
            change,
            reason: stall.to_string(),
        });
        Some(remedy)
    }
}
