//! Model files: every model amisim trains (level 1, level 2, the critic and mode 1) is a
//! safetensors file carrying its config and training step as metadata, written to a temporary
//! file and renamed so that none is ever half-written, and read back with a clear error when it
//! is of another kind, made for another model, or does not fit. No training code: the training
//! loops (`amisim::train`) write these files, everything else reads them.

use crate::perception::EncoderConfig;
use crate::world_model::jepa::{Jepa, JepaConfig, LossWeights};
use crate::world_model::level2::{Level2, Level2Config, Level2Weights};
use anyhow::{bail, Context, Result};
use burn::module::{ModuleMapper, ModuleVisitor, Param, ParamId};
use burn::optim::ModuleOptimizer;
use burn::prelude::*;
use burn::store::{ModuleSnapshot, SafetensorsStore};
use safetensors::tensor::{Dtype, TensorView};
use std::collections::HashMap;
use std::path::{Path, PathBuf};

/// A module's weights as safetensors bytes (enum variants left out of the names, as the
/// config says which variant it is).
pub fn module_bytes<M: Module>(model: &M) -> Result<Vec<u8>> {
    let mut store = SafetensorsStore::from_bytes(None).skip_enum_variants(true);
    model
        .save_into(&mut store)
        .map_err(|e| anyhow::anyhow!("serialising the model: {e:?}"))?;
    store
        .get_bytes()
        .map_err(|e| anyhow::anyhow!("serialising the model: {e:?}"))
}

/// Writes `views` with `meta` to `path`: to a temporary file first, then renamed, so a
/// checkpoint is never half-written.
pub fn write_atomic(path: &Path, views: Vec<(String, TensorView<'_>)>, meta: HashMap<String, String>) -> Result<()> {
    if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
        std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
    }
    let tmp = path.with_extension("safetensors.tmp");
    safetensors::serialize_to_file(views, Some(meta), &tmp).with_context(|| format!("writing {}", tmp.display()))?;
    std::fs::rename(&tmp, path).with_context(|| format!("writing {}", path.display()))?;
    Ok(())
}

/// Writes `model`'s weights with `meta` to `path` atomically ([`write_atomic`]).
pub fn save_module<M: Module>(path: &Path, model: &M, meta: HashMap<String, String>) -> Result<()> {
    let bytes = module_bytes(model)?;
    let st = safetensors::SafeTensors::deserialize(&bytes)?;
    write_atomic(path, st.tensors(), meta)
}

/// Reads a safetensors file and its metadata; `what` names it in errors.
pub fn read_with_metadata(path: &Path, what: &str) -> Result<(Vec<u8>, HashMap<String, String>)> {
    let bytes = std::fs::read(path).with_context(|| format!("reading {what} {}", path.display()))?;
    let (_, meta) = safetensors::SafeTensors::read_metadata(&bytes)
        .with_context(|| format!("{}: not a safetensors file", path.display()))?;
    let meta = meta.metadata().clone().unwrap_or_default();
    Ok((bytes, meta))
}

/// Loads the weights in `bytes` (read from `path`) into `model`; every weight must fit.
pub fn load_weights<M: Module>(mut model: M, bytes: Vec<u8>, path: &Path) -> Result<M> {
    check_finite(&bytes, path)?;
    let result = model
        .load_from(&mut SafetensorsStore::from_bytes(Some(bytes)).skip_enum_variants(true))
        .map_err(|e| anyhow::anyhow!("{}: loading weights: {e:?}", path.display()))?;
    if !result.missing.is_empty() || !result.errors.is_empty() {
        bail!(
            "{}: the weights do not fit the model (missing {:?}, errors {:?})",
            path.display(),
            result.missing,
            result.errors
        );
    }
    Ok(model)
}

/// Every f32 weight in the safetensors `bytes` (read from `path`) is finite: a model file with
/// a NaN or an infinity is refused, naming the tensor, rather than planning with it.
fn check_finite(bytes: &[u8], path: &Path) -> Result<()> {
    let st = safetensors::SafeTensors::deserialize(bytes)
        .map_err(|e| anyhow::anyhow!("{}: not a safetensors file: {e}", path.display()))?;
    for (name, t) in st.tensors() {
        if t.dtype() != safetensors::Dtype::F32 {
            continue;
        }
        let bad = crate::le_f32s(t.data()).position(|v| !v.is_finite());
        if let Some(i) = bad {
            bail!(
                "{}: tensor `{name}` holds a non-finite value (NaN or ∞) at element {i}",
                path.display()
            );
        }
    }
    Ok(())
}

/// Learning rate at `step` of `steps`: linear warm-up over `warmup` steps to `lr`, then cosine
/// decay to `min_lr`.
pub fn warmup_cosine(step: usize, steps: usize, warmup: usize, lr: f64, min_lr: f64) -> f64 {
    if step < warmup {
        return lr * (step + 1) as f64 / warmup as f64;
    }
    let span = (steps.saturating_sub(warmup)).max(1) as f64;
    let p = ((step - warmup) as f64 / span).min(1.0);
    min_lr + 0.5 * (lr - min_lr) * (1.0 + (std::f64::consts::PI * p).cos())
}

/// Everything a training run is defined by; saved in every checkpoint.
#[derive(Config, Debug)]
pub struct TrainConfig {
    pub model: JepaConfig,
    #[config(default = 1500)]
    pub steps: usize,
    #[config(default = 32)]
    pub batch: usize,
    /// Frames per training window (the predictor is unrolled `window − 1` steps).
    #[config(default = 17)]
    pub window: usize,
    #[config(default = 1e-3)]
    pub lr: f64,
    #[config(default = 1e-5)]
    pub min_lr: f64,
    #[config(default = 100)]
    pub warmup: usize,
    #[config(default = 1e-4)]
    pub weight_decay: f32,
    /// Each parameter's gradient is clipped to this L2 norm.
    #[config(default = 1.0)]
    pub clip: f32,
    #[config(default = 0)]
    pub seed: u64,
    #[config(default = 50)]
    pub log_every: usize,
    #[config(default = 500)]
    pub checkpoint_every: usize,
    /// JPEG round trips of training windows (absent: none), so that the model holds up under
    /// the images users' tools store.
    pub jpeg: Option<JpegAugment>,
}

/// JPEG as a training augmentation: each window (all its frames alike, as a stored video
/// would be) goes through JPEG with probability `p`, at a quality drawn uniformly from
/// `min_quality..=100`.
#[derive(Debug, Clone, Copy, PartialEq, serde::Serialize, serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub struct JpegAugment {
    pub p: f32,
    pub min_quality: u8,
}

impl JpegAugment {
    /// Settings that cannot be drawn, named by their config keys.
    pub fn validate(&self) -> Result<(), String> {
        if !(0.0..=1.0).contains(&self.p) {
            return Err(format!("config.jpeg.p = {} must be in 0..=1", self.p));
        }
        if !(1..=100).contains(&self.min_quality) {
            return Err(format!(
                "config.jpeg.min_quality = {} must be in 1..=100",
                self.min_quality
            ));
        }
        Ok(())
    }
}

impl TrainConfig {
    /// The default recipe for frames of `resolution` pixels.
    pub fn default_for(resolution: usize) -> TrainConfig {
        TrainConfig::new(JepaConfig::new(
            EncoderConfig::new().with_resolution(resolution),
            LossWeights::new(),
        ))
    }

    /// Settings that cannot train, named by their config keys: counts of zero, rates and
    /// weights that are not finite or negative, and the model's own checks.
    pub fn validate(&self) -> Result<(), String> {
        crate::require_counts(
            "config",
            &[
                ("steps", self.steps),
                ("batch", self.batch),
                ("log_every", self.log_every),
                ("checkpoint_every", self.checkpoint_every),
            ],
        )?;
        if self.window < 2 {
            return Err(format!(
                "config.window = {} must be ≥ 2 (frames per training window)",
                self.window
            ));
        }
        crate::require_positive("config", &[("lr", self.lr as f32), ("clip", self.clip)])?;
        let rates = [("min_lr", self.min_lr as f32), ("weight_decay", self.weight_decay)];
        if let Some((name, v)) = rates.iter().find(|(_, v)| !(v.is_finite() && *v >= 0.0)) {
            return Err(format!("config.{name} = {v} must be a number ≥ 0"));
        }
        if let Some(j) = &self.jpeg {
            j.validate()?;
        }
        self.model.validate()
    }

    /// Learning rate at `step`: linear warm-up, then cosine decay to `min_lr`.
    pub fn lr_at(&self, step: usize) -> f64 {
        warmup_cosine(step, self.steps, self.warmup, self.lr, self.min_lr)
    }
}

/// Gives every parameter an id derived from its path in the module tree. Burn draws ids at
/// random; the optimizer's state is keyed by id, so a resumed run (a freshly built model with
/// loaded weights) only finds its Adam moments again when ids are the same in every process.
pub fn stable_param_ids<M: Module>(module: M) -> M {
    struct StableIds(Vec<String>);
    impl ModuleMapper for StableIds {
        // Enum variants (the encoder's kind) are not part of the path, as in the checkpoint
        // files: the config says which kind it is.
        fn enter_module(&mut self, name: &str, container_type: &str) {
            if !container_type.starts_with("Enum:") {
                self.0.push(name.to_string());
            }
        }
        fn exit_module(&mut self, _name: &str, container_type: &str) {
            if !container_type.starts_with("Enum:") {
                self.0.pop();
            }
        }
        fn map_float<const D: usize>(&mut self, mut param: Param<Tensor<D>>) -> Param<Tensor<D>> {
            // FNV-1a of the path.
            let mut h: u64 = 0xcbf2_9ce4_8422_2325;
            for b in self.0.join(".").bytes() {
                h = (h ^ b as u64).wrapping_mul(0x0100_0000_01b3);
            }
            param.id = ParamId::from(h);
            param
        }
    }
    module.map(&mut StableIds(Vec::new()))
}

/// Builds a module with its random initial values drawn from `seed`. Burn's seed may be global
/// to the process and parameters are initialised lazily (on first use), so the build and the
/// first touch of every parameter happen under one lock: models built at once on different
/// threads would otherwise draw interleaved values.
pub fn seeded<M: Module>(device: &Device, seed: u64, build: impl FnOnce() -> M) -> M {
    struct Touch;
    impl ModuleVisitor for Touch {
        fn visit_float<const D: usize>(&mut self, param: &Param<Tensor<D>>) {
            let _ = param.val();
        }
    }
    static LOCK: std::sync::Mutex<()> = std::sync::Mutex::new(());
    let _guard = LOCK.lock().unwrap_or_else(|e| e.into_inner());
    device.seed(seed);
    let module = build();
    module.visit(&mut Touch);
    module
}

/// The CPU device used for training and inference.
pub fn cpu_device() -> Device {
    Device::flex()
}

/// The device named on the command line: `cpu` (burn's flex backend), or `wgpu` (the default
/// GPU adapter, in builds with the `wgpu` feature).
pub fn device_named(name: &str) -> Result<Device> {
    match name {
        "cpu" | "flex" => Ok(cpu_device()),
        #[cfg(feature = "wgpu")]
        "wgpu" => Ok(Device::wgpu(burn::tensor::DeviceKind::DefaultDevice)),
        #[cfg(not(feature = "wgpu"))]
        "wgpu" => bail!(
            "--device wgpu: this build has no GPU backend; build with it: cargo run --release --features wgpu -- …"
        ),
        other => bail!("--device {other}: expected cpu or wgpu"),
    }
}

/// Name of the checkpoint file in a run folder.
pub const CHECKPOINT: &str = "checkpoint.safetensors";

/// A loaded checkpoint.
pub struct Checkpoint {
    pub config: TrainConfig,
    pub step: usize,
    pub model: Jepa,
    /// The optimizer's state, where the file holds one (a run to resume).
    pub optimizer: Option<Vec<u8>>,
}

/// Writes the model (and optimizer state) at `step` to `path` atomically.
pub fn save_checkpoint(
    path: &Path,
    cfg: &TrainConfig,
    step: usize,
    model: &Jepa,
    optim: Option<&ModuleOptimizer>,
) -> Result<()> {
    let weights = module_bytes(model)?;
    let st = safetensors::SafeTensors::deserialize(&weights)?;
    let optim_bytes: Option<Vec<u8>> = match optim {
        Some(o) => Some(
            o.into_bytes()
                .map_err(|e| anyhow::anyhow!("serialising the optimizer: {e:?}"))?
                .to_vec(),
        ),
        None => None,
    };
    let mut views: Vec<(String, TensorView<'_>)> = st.tensors().into_iter().collect();
    if let Some(b) = &optim_bytes {
        views.push(("__optimizer__".into(), TensorView::new(Dtype::U8, vec![b.len()], b)?));
    }
    let mut meta = HashMap::new();
    meta.insert("amisim.config".to_string(), cfg.to_string());
    meta.insert("amisim.step".to_string(), step.to_string());
    meta.insert("amisim.format".to_string(), "amisim-jepa-v1".to_string());
    write_atomic(path, views, meta)
}

/// Reads a checkpoint. With `expected`, its model config must match (a clear error names the
/// difference otherwise).
pub fn load_checkpoint(path: &Path, expected: Option<&JepaConfig>, device: &Device) -> Result<Checkpoint> {
    let (bytes, meta) = read_with_metadata(path, "checkpoint")?;
    let config_json = meta.get("amisim.config").with_context(|| {
        format!(
            "{}: not an amisim checkpoint (no amisim.config metadata)",
            path.display()
        )
    })?;
    // Entries added to the config after the checkpoint was written take their defaults.
    let mut saved: serde_json::Value = serde_json::from_str(config_json)
        .with_context(|| format!("{}: the saved config is not JSON", path.display()))?;
    let defaults: serde_json::Value =
        serde_json::from_str(&TrainConfig::default_for(EncoderConfig::new().resolution).to_string())?;
    fill_missing(&mut saved, &defaults, "", &mut Vec::new());
    let config: TrainConfig = serde_json::from_value(saved)
        .with_context(|| format!("{}: the saved config does not parse", path.display()))?;
    if let Some(exp) = expected {
        check_model_config(path, &config.model, exp)?;
    }
    config
        .model
        .validate()
        .map_err(|e| anyhow::anyhow!("{}: {e}", path.display()))?;
    let step: usize = meta.get("amisim.step").and_then(|s| s.parse().ok()).unwrap_or(0);
    let st = safetensors::SafeTensors::deserialize(&bytes)?;
    let optimizer = st.tensor("__optimizer__").ok().map(|t| t.data().to_vec());
    let model = load_weights(stable_param_ids(config.model.init(device)), bytes, path)?;
    Ok(Checkpoint {
        config,
        step,
        model,
        optimizer,
    })
}

/// Fails, naming every differing entry, when a checkpoint's model config is not `expected`.
pub fn check_model_config(path: &Path, saved: &JepaConfig, expected: &JepaConfig) -> Result<()> {
    if saved == expected {
        return Ok(());
    }
    let a: serde_json::Value = serde_json::from_str(&saved.to_string())?;
    let b: serde_json::Value = serde_json::from_str(&expected.to_string())?;
    let mut diffs = Vec::new();
    json_diff("model", &a, &b, &mut diffs);
    bail!(
        "{}: the checkpoint's model config differs from the requested one: {}",
        path.display(),
        diffs.join("; ")
    );
}

/// A config file (JSON, as a run writes to `config.json`). Entries added to the config after
/// the file was written take their values from `defaults`, as a checkpoint's do; anything else
/// that does not parse is an error naming the file.
pub fn read_config_file<C: serde::Serialize + serde::de::DeserializeOwned>(path: &Path, defaults: C) -> Result<C> {
    let named = |e: &dyn std::fmt::Display| anyhow::anyhow!("{}: {e}", path.display());
    let text = std::fs::read_to_string(path).map_err(|e| named(&e))?;
    let mut v: serde_json::Value = serde_json::from_str(&text).map_err(|e| named(&e))?;
    let mut filled = Vec::new();
    fill_missing(&mut v, &serde_json::to_value(defaults)?, "", &mut filled);
    if !filled.is_empty() {
        eprintln!(
            "{}: not in the file, defaults used: {}",
            path.display(),
            filled.join(", ")
        );
    }
    serde_json::from_value(v).map_err(|e| named(&e))
}

/// Adds to `value` every object entry of `defaults` it lacks, recursively, and names each
/// one added (`model.spatial_anchor`) in `filled`; `at` is the path of `value`.
fn fill_missing(value: &mut serde_json::Value, defaults: &serde_json::Value, at: &str, filled: &mut Vec<String>) {
    if let (serde_json::Value::Object(v), serde_json::Value::Object(d)) = (value, defaults) {
        for (k, dv) in d {
            let path = if at.is_empty() { k.clone() } else { format!("{at}.{k}") };
            match v.get_mut(k) {
                Some(vv) => fill_missing(vv, dv, &path, filled),
                None => {
                    v.insert(k.clone(), dv.clone());
                    filled.push(path);
                }
            }
        }
    }
}

/// Lists the leaves where two JSON trees differ, as `path: checkpoint A, requested B`.
fn json_diff(path: &str, a: &serde_json::Value, b: &serde_json::Value, out: &mut Vec<String>) {
    match (a, b) {
        (serde_json::Value::Object(x), serde_json::Value::Object(y)) => {
            let keys: std::collections::BTreeSet<&String> = x.keys().chain(y.keys()).collect();
            for k in keys {
                let null = serde_json::Value::Null;
                json_diff(
                    &format!("{path}.{k}"),
                    x.get(k).unwrap_or(&null),
                    y.get(k).unwrap_or(&null),
                    out,
                );
            }
        }
        _ if a != b => out.push(format!("{path}: checkpoint {a}, requested {b}")),
        _ => {}
    }
}

/// Name of the level-2 checkpoint in a run folder.
pub const LEVEL2_CHECKPOINT: &str = "level2.safetensors";

/// Where a model tied to a level-1 checkpoint (`what`: `level2`, `critic`, `mode1`) lives by
/// default: `<what>.safetensors` beside a `checkpoint.safetensors` (a run or agent folder),
/// `<name>.<what>.safetensors` beside a checkpoint of another name.
pub fn companion_path(checkpoint: &Path, what: &str) -> PathBuf {
    let dir = checkpoint.parent().unwrap_or(Path::new(""));
    match checkpoint.file_name().and_then(|n| n.to_str()) {
        Some(CHECKPOINT) | None => dir.join(format!("{what}.safetensors")),
        Some(name) => dir.join(format!("{}.{what}.safetensors", name.trim_end_matches(".safetensors"))),
    }
}

/// Where the level-2 model of a level-1 checkpoint lives by default ([`companion_path`]).
pub fn default_level2_path(checkpoint: &Path) -> PathBuf {
    companion_path(checkpoint, "level2")
}

/// Everything a level-2 training run is defined by; saved in its checkpoint.
#[derive(Config, Debug)]
pub struct Level2TrainConfig {
    pub model: Level2Config,
    #[config(default = 3000)]
    pub steps: usize,
    #[config(default = 256)]
    pub batch: usize,
    /// Level-2 steps the predictor is unrolled per sample.
    #[config(default = 4)]
    pub jumps: usize,
    #[config(default = 1e-3)]
    pub lr: f64,
    #[config(default = 1e-5)]
    pub min_lr: f64,
    #[config(default = 100)]
    pub warmup: usize,
    #[config(default = 1e-4)]
    pub weight_decay: f32,
    #[config(default = 1.0)]
    pub clip: f32,
    #[config(default = 0)]
    pub seed: u64,
    #[config(default = 100)]
    pub log_every: usize,
}

impl Level2TrainConfig {
    /// The default recipe on level-1 latents of `latent` dimensions.
    pub fn default_for(latent: usize) -> Level2TrainConfig {
        Level2TrainConfig::new(Level2Config::new(latent, Level2Weights::new()))
    }

    /// Learning rate at `step`: linear warm-up, then cosine decay to `min_lr`.
    pub fn lr_at(&self, step: usize) -> f64 {
        warmup_cosine(step, self.steps, self.warmup, self.lr, self.min_lr)
    }
}

/// A fingerprint of a level-1 model's weights (FNV-1a over every parameter, in the module's
/// order): a level-2 model only fits the level-1 model it was trained on.
pub fn level1_fingerprint(model: &Jepa) -> String {
    struct Fnv(u64);
    impl ModuleVisitor for Fnv {
        fn visit_float<const D: usize>(&mut self, param: &Param<Tensor<D>>) {
            for x in crate::values(param.val()) {
                for b in x.to_bits().to_le_bytes() {
                    self.0 = (self.0 ^ b as u64).wrapping_mul(0x100_0000_01b3);
                }
            }
        }
    }
    let mut h = Fnv(0xcbf2_9ce4_8422_2325);
    model.visit(&mut h);
    format!("{:016x}", h.0)
}

/// Checks that the `what` stored at `path`, which reads `latent`-d level-1 latents and was
/// trained on the level-1 model with fingerprint `trained_on`, fits `level1`; the error says
/// how to train it again (`amisim train --level LEVEL`).
pub fn check_level1(
    path: &Path,
    what: &str,
    latent: usize,
    trained_on: &str,
    level1: &Jepa,
    level: &str,
) -> Result<()> {
    if level1.latent() != latent {
        bail!(
            "{}: the {what} reads {latent}-d level-1 latents, the level-1 model has {}",
            path.display(),
            level1.latent()
        );
    }
    let have = level1_fingerprint(level1);
    if have != trained_on {
        bail!(
            "{}: trained on the level-1 model with fingerprint {trained_on}, not on this one ({have}); train it again with `amisim train --level {level} --checkpoint …`",
            path.display()
        );
    }
    Ok(())
}

/// A loaded level-2 checkpoint.
pub struct Level2Checkpoint {
    pub config: Level2TrainConfig,
    pub step: usize,
    pub model: Level2,
    /// The level-1 model it was trained on ([`level1_fingerprint`]).
    pub level1: String,
}

/// Writes the level-2 model at `step` to `path` atomically.
pub fn save_level2(path: &Path, cfg: &Level2TrainConfig, step: usize, model: &Level2, level1: &str) -> Result<()> {
    let meta = HashMap::from([
        ("amisim.config".to_string(), cfg.to_string()),
        ("amisim.step".to_string(), step.to_string()),
        ("amisim.format".to_string(), "amisim-level2-v1".to_string()),
        ("amisim.level1".to_string(), level1.to_string()),
    ]);
    save_module(path, model, meta)
}

/// Reads a level-2 checkpoint; with `level1`, it must have been trained on that level-1 model
/// (a clear error says otherwise).
pub fn load_level2(path: &Path, level1: Option<&Jepa>, device: &Device) -> Result<Level2Checkpoint> {
    let (bytes, meta) = read_with_metadata(path, "level-2 checkpoint")?;
    if meta.get("amisim.format").map(String::as_str) != Some("amisim-level2-v1") {
        bail!(
            "{}: not a level-2 checkpoint (amisim.format is {:?}, expected amisim-level2-v1)",
            path.display(),
            meta.get("amisim.format")
        );
    }
    let config: Level2TrainConfig = serde_json::from_str(meta.get("amisim.config").map_or("", |s| s.as_str()))
        .with_context(|| format!("{}: the saved config does not parse", path.display()))?;
    config
        .model
        .validate()
        .map_err(|e| anyhow::anyhow!("{}: {e}", path.display()))?;
    let trained_on = meta.get("amisim.level1").cloned().unwrap_or_default();
    if let Some(m) = level1 {
        check_level1(path, "level-2 model", config.model.latent, &trained_on, m, "2")?;
    }
    let step: usize = meta.get("amisim.step").and_then(|s| s.parse().ok()).unwrap_or(0);
    let model = load_weights(stable_param_ids(config.model.init(device)), bytes, path)?;
    Ok(Level2Checkpoint {
        config,
        step,
        model,
        level1: trained_on,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn missing_config_entries_take_defaults() {
        let mut saved = serde_json::json!({"a": 1, "b": {"c": 2}});
        let defaults = serde_json::json!({"a": 9, "b": {"c": 9, "d": 3}, "e": 4});
        fill_missing(&mut saved, &defaults, "", &mut Vec::new());
        assert_eq!(saved, serde_json::json!({"a": 1, "b": {"c": 2, "d": 3}, "e": 4}));
    }

    #[test]
    fn learning_rate_warms_up_then_decays_to_min() {
        let cfg = TrainConfig::default_for(65)
            .with_steps(1000)
            .with_warmup(100)
            .with_lr(1e-3)
            .with_min_lr(1e-5);
        assert!((cfg.lr_at(0) - 1e-5).abs() < 1e-12);
        assert!((cfg.lr_at(99) - 1e-3).abs() < 1e-12);
        assert!((cfg.lr_at(100) - 1e-3).abs() < 1e-12);
        assert!((cfg.lr_at(550) - (1e-5 + 0.5 * (1e-3 - 1e-5))).abs() < 1e-9);
        assert!((cfg.lr_at(1000) - 1e-5).abs() < 1e-12);
    }
}
