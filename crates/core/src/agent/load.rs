//! Loading the model files an agent spec names, with one error policy: a file that is missing,
//! unreadable, of another kind, or made for another model is an error that names the spec's
//! entry and the file. Nothing is skipped or replaced.

use super::spec::AgentSpec;
use super::Models;
use crate::actor::mode1::Mode1;
use crate::actor::planner::PlannerKind;
use crate::checkpoint::{load_checkpoint, load_level2};
use crate::cost::critic::Critic;
use crate::goal_net::load_goal_net;
use anyhow::{bail, Context, Result};
use burn::prelude::*;
use serde::{Deserialize, Serialize};
use std::path::{Path, PathBuf};

/// A model file an agent read, for reports: the spec's entry, the file, its training step and
/// its resolved config.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ModelFile {
    pub entry: String,
    pub file: PathBuf,
    pub step: usize,
    pub config: serde_json::Value,
}

/// Loads every model `spec` names (paths as they stand: see [`AgentSpec::relative_to`]).
pub fn load_models(spec: &AgentSpec, device: &Device) -> Result<(Models, Vec<ModelFile>)> {
    let mut files = Vec::new();
    for (entry, path) in spec.files() {
        if !path.is_file() {
            bail!("agent spec, {entry}: no model file at {}", path.display());
        }
    }
    let mut members = Vec::with_capacity(spec.models.len());
    let mut resolution = None;
    for (i, path) in spec.models.iter().enumerate() {
        let entry = format!("models[{i}]");
        let ck = load_checkpoint(path, None, device).with_context(|| format!("agent spec, {entry}"))?;
        let got = ck.config.model.encoder.resolution;
        let want = *resolution.get_or_insert(got);
        if want != got {
            bail!(
                "agent spec, {entry}: {} reads {got}×{got} frames, models[0] {want}×{want}",
                path.display()
            );
        }
        files.push(ModelFile {
            entry,
            file: path.clone(),
            step: ck.step,
            config: serde_json::from_str(&ck.config.to_string()).unwrap_or_default(),
        });
        members.push(ck.model);
    }
    let first = members.first();
    let differentiable = match (spec.mode, &spec.models.first()) {
        (super::Mode::Plan, Some(path)) if spec.planner.kind == PlannerKind::Gradient => Some(
            load_checkpoint(path, None, &device.clone().autodiff())
                .context("agent spec, models[0] (for the gradient planner)")?
                .model
                .predictor,
        ),
        _ => None,
    };
    let level2 = match &spec.level2 {
        Some(path) => {
            let l2 = load_level2(path, first, device).context("agent spec, level2")?;
            files.push(ModelFile {
                entry: "level2".into(),
                file: path.clone(),
                step: l2.step,
                config: serde_json::to_value(&l2.config)?,
            });
            Some((l2.model, l2.config.model))
        }
        None => None,
    };
    let mut goal_net = |entry: &str, path: &Path| -> Result<_> {
        let (net, meta) = load_goal_net(path, entry, first, device).with_context(|| format!("agent spec, {entry}"))?;
        files.push(ModelFile {
            entry: entry.into(),
            file: path.to_path_buf(),
            step: meta.step,
            config: serde_json::json!({
                "scale": meta.scale,
                "distance_per_step": meta.distance_per_step,
                "config": meta.config,
            }),
        });
        Ok((net, meta))
    };
    let critic = match &spec.critic {
        Some(p) => {
            let (net, meta) = goal_net("critic", p)?;
            Some(Critic::new(&net, meta.scale, meta.distance_per_step))
        }
        None => None,
    };
    let mode1 = match &spec.mode1 {
        Some(p) => {
            let (net, meta) = goal_net("mode1", p)?;
            Some(Mode1::new(&net, meta.scale))
        }
        None => None,
    };
    Ok((
        Models {
            members,
            differentiable,
            level2,
            critic,
            mode1,
        },
        files,
    ))
}
