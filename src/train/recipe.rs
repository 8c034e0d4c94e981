//! What `amisim train --all --scene S` does for each scene: the walks it collects, the level-1
//! config it trains (as `--set` entries over the default), the stages it runs and the agent
//! it writes. A scene without a recipe of its own gets [`Recipe::default`]: 2 000 plain walks,
//! the default world model, every stage, the agent of the folder's models.
//!
//! A recipe is what made a shipped agent: `assets/<scene>/` is the output of `train --all`
//! with that scene's recipe (README says the command and its seed).

use crate::data::collect::CollectConfig;
use crate::world::policy::RandomWalkConfig;
use serde::Serialize;

/// The stages of `train --all`, in order.
pub const STAGES: [&str; 4] = ["level1", "level2", "critic", "mode1"];

#[derive(Debug, Clone, Serialize)]
pub struct Recipe {
    /// Walks collected for level 1, and their actions each.
    pub episodes: usize,
    pub episode_steps: usize,
    /// How the walks explore (shares of wall, door and corner walks).
    pub random_walk: RandomWalkConfig,
    /// `KEY=VALUE` entries over the default level-1 config (the user's `--set level1.…` come
    /// after them).
    pub level1: Vec<String>,
    /// The stages run when `--stages` is not given (level 1 always).
    pub stages: Vec<String>,
    /// The spec written as `agent.ron` (with a comment saying what it is); `None`: the agent
    /// the folder's models make (hierarchical with a level-2 model, else CEM).
    pub agent: Option<String>,
}

impl Default for Recipe {
    fn default() -> Recipe {
        Recipe {
            episodes: 2000,
            episode_steps: 16,
            random_walk: RandomWalkConfig::default(),
            level1: Vec::new(),
            stages: STAGES.iter().map(|s| s.to_string()).collect(),
            agent: None,
        }
    }
}

/// The Two-Rooms agent: one world model, flat CEM in its latent predictor 128 steps ahead (16
/// decisions held 8 steps), half the candidates three straight legs at full speed (along the
/// wall, through the door, on), and the blocked-move memory.
pub const TWO_ROOMS_AGENT: &str =
    "// One world model (the keypoint head), flat CEM in its latent predictor, 128 steps ahead
// (16 decisions held 8 steps), half the candidates three straight legs at full speed (along the
// wall, through the door, on). Moves the world did not let happen are remembered where they were
// tried and made costly there, so the next plan goes another way.
(
    mode: Plan,
    models: [\"checkpoint.safetensors\"],
    blocked: 5.0,
    planner: (
        kind: Cem,
        horizon: 16,
        repeat: 8,
        samples: 100,
        iterations: 2,
        legs: 50,
        leg_count: 3,
    ),
)
";

/// The recipe `train --all` follows in `scene` (a scene name, or a file whose stem is one).
pub fn recipe_for(scene: &str) -> Recipe {
    let name = std::path::Path::new(scene)
        .file_stem()
        .and_then(|s| s.to_str())
        .unwrap_or(scene);
    match name {
        "two_rooms" | "two_rooms_fixed" => two_rooms(),
        _ => Recipe::default(),
    }
}

/// Two-Rooms: 16 000 walks of which 30 % start into a wall and 40 % aim at a door's edge (what
/// tells the model where walls stop the agent and where the door lets it through); the
/// keypoint encoder (the agent and the wall as linear read-outs) with a 128-d latent, 96
/// context dimensions held constant over a window (the layout), inverse dynamics at weight 4,
/// a 512-wide predictor; 5 000 steps; half the windows through JPEG at quality 40–100. Level 2,
/// the critic and mode 1 do not lift this scene's agent and are left out (`--stages`).
fn two_rooms() -> Recipe {
    Recipe {
        episodes: 16_000,
        episode_steps: 16,
        random_walk: RandomWalkConfig {
            wall_rate: 0.3,
            door_rate: 0.4,
            ..RandomWalkConfig::default()
        },
        level1: [
            "steps=5000",
            "model.encoder.keypoint_head=true",
            "model.encoder.channels=[16,32,64]",
            "model.encoder.latent=128",
            "model.context_dims=96",
            "model.weights.context=1",
            "model.weights.context_contrast=0.5",
            "model.weights.idm=4",
            "model.predictor_hidden=512",
            r#"jpeg={"p":0.5,"min_quality":40}"#,
        ]
        .iter()
        .map(|s| s.to_string())
        .collect(),
        stages: vec!["level1".into()],
        agent: Some(TWO_ROOMS_AGENT.into()),
    }
}

impl Recipe {
    /// The collection of level 1's walks in `scene`, seeded with `seed`.
    pub fn collect(&self, scene: &str, seed: u64) -> CollectConfig {
        let mut c = CollectConfig::random_walk(scene, self.episodes, self.episode_steps, 256, seed);
        c.random_walk = self.random_walk.clone();
        c
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn two_rooms_has_its_recipe_and_other_scenes_the_default() {
        let r = recipe_for("two_rooms");
        assert_eq!(r.episodes, 16_000);
        assert_eq!(r.stages, vec!["level1".to_string()]);
        assert!(r.agent.is_some());
        assert_eq!(recipe_for("scenes/two_rooms.ron").episodes, 16_000);
        let d = recipe_for("four_rooms");
        assert_eq!(d.episodes, 2000);
        assert_eq!(d.stages.len(), 4);
        assert!(d.level1.is_empty() && d.agent.is_none());
    }

    #[test]
    fn recipes_apply_to_the_default_config() {
        for scene in ["two_rooms", "four_rooms"] {
            let r = recipe_for(scene);
            let cfg = crate::config::with_sets(crate::checkpoint::TrainConfig::default_for(65), &r.level1).unwrap();
            cfg.validate().unwrap();
        }
        let agent: crate::agent::AgentSpec =
            crate::file::parse_ron(TWO_ROOMS_AGENT, std::path::Path::new("agent.ron")).unwrap();
        assert_eq!(agent.models.len(), 1);
    }
}
