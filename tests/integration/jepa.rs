//! The JEPA world model on tiny settings: shapes, learning, checkpoints, resume, NaN handling.

use amisim::data::Episodes;
use amisim::perception::{Encoder, EncoderConfig, EncoderKind};
use amisim::train::jepa::{cpu_device, load_checkpoint, save_checkpoint, train, TrainConfig};
use amisim::world_model::jepa::{JepaConfig, LossWeights};
use burn::prelude::*;
use rand::{RngExt, SeedableRng};

pub const RES: usize = 16;

/// Synthetic episodes: a bright square that moves by the actions, on 16×16 frames.
pub fn toy_episodes(episodes: usize, steps: usize) -> Episodes {
    let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(3);
    let mut e = Episodes {
        episodes,
        steps,
        frame_shape: [3, RES, RES],
        state_dim: 7,
        scene: "toy".into(),
        ..Default::default()
    };
    for _ in 0..episodes {
        let (mut x, mut y) = (rng.random_range(3.0..12.0f32), rng.random_range(3.0..12.0f32));
        for t in 0..=steps {
            let mut f = vec![0u8; 3 * RES * RES];
            for dy in 0..2 {
                for dx in 0..2 {
                    f[(y as usize + dy) * RES + x as usize + dx] = 255;
                }
            }
            e.frames.extend(f);
            e.states.extend([x, y, 0.0, f32::NAN, f32::NAN, 0.0, 0.0]);
            if t < steps {
                let a = [rng.random_range(-1.0..1.0f32), rng.random_range(-1.0..1.0f32)];
                e.actions.extend(a);
                x = (x + a[0]).clamp(1.0, 13.0);
                y = (y + a[1]).clamp(1.0, 13.0);
            }
        }
    }
    e
}

fn tiny_config() -> TrainConfig {
    TrainConfig::new(JepaConfig::new(EncoderConfig::lenet(RES, 16), LossWeights::new()))
        .with_batch(8)
        .with_window(4)
        .with_steps(4)
        .with_warmup(1)
        .with_log_every(1)
        .with_checkpoint_every(2)
}

/// Every model tensor of a checkpoint, by name (the optimizer state and metadata aside).
pub fn weights(path: &std::path::Path) -> Vec<(String, Vec<u8>)> {
    let bytes = std::fs::read(path).unwrap();
    let st = safetensors::SafeTensors::deserialize(&bytes).unwrap();
    let mut v: Vec<(String, Vec<u8>)> = st
        .tensors()
        .into_iter()
        .filter(|(n, _)| n != "__optimizer__")
        .map(|(n, t)| (n, t.data().to_vec()))
        .collect();
    v.sort();
    assert!(!v.is_empty());
    v
}

pub fn temp_dir(name: &str) -> std::path::PathBuf {
    let d = std::env::temp_dir().join(format!("amisim-{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&d);
    d
}

#[test]
fn shapes() {
    let device = cpu_device();
    let enc = EncoderConfig::new().init(&device);
    let z = enc.forward(Tensor::zeros([2, 3, 65, 65], &device));
    assert_eq!(z.dims(), [2, 64]);
    let cfg = JepaConfig::new(EncoderConfig::lenet(RES, 16), LossWeights::new());
    let model = cfg.init(&device);
    let rolled = model
        .predictor
        .rollout(Tensor::zeros([3, 16], &device), Tensor::zeros([3, 5, 2], &device));
    assert_eq!(rolled.dims(), [3, 5, 16]);
    // The conv encoder with spatial soft-argmax features, and the ViT with its patch tokens
    // (65 px cropped to 16 patches of 16 px).
    let conv = EncoderConfig::new().with_spatial_softmax(true).init(&device);
    assert_eq!(conv.forward(Tensor::zeros([2, 3, 65, 65], &device)).dims(), [2, 64]);
    let vit_cfg = EncoderConfig::new()
        .with_kind(EncoderKind::Vit)
        .with_patch(16)
        .with_width(32)
        .with_latent(24);
    let Encoder::Vit(vit) = vit_cfg.init(&device) else {
        panic!("kind Vit builds a ViT")
    };
    let (z, tokens) = vit.forward_tokens(Tensor::zeros([2, 3, 65, 65], &device));
    assert_eq!((z.dims(), tokens.dims()), ([2, 24], [2, 16, 32]));
}

#[test]
fn keypoint_head_reads_only_where_the_keypoints_are() {
    let device = cpu_device();
    let cfg = EncoderConfig::new().with_keypoint_head(true);
    let Encoder::Conv(kp) = cfg.init(&device) else {
        panic!("kind Conv builds a conv encoder")
    };
    assert_eq!(kp.forward(Tensor::zeros([2, 3, 65, 65], &device)).dims(), [2, 64]);
    // A softmax does not see a constant added to a channel's map, so the keypoints, and a head
    // that reads them alone, do not either; the head that also reads the map does.
    let map = Tensor::<4>::random([2, 32, 9, 9], burn::tensor::Distribution::Default, &device);
    let shifted = map.clone() + 3.0;
    let gap = |e: &amisim::perception::ConvEncoder| {
        let d = e.readout(map.clone()) - e.readout(shifted.clone());
        d.abs().max().into_scalar::<f32>()
    };
    assert!(gap(&kp) < 1e-5, "keypoint head moved by {}", gap(&kp));
    let Encoder::Conv(full) = EncoderConfig::new().init(&device) else {
        panic!("kind Conv builds a conv encoder")
    };
    assert!(gap(&full) > 1e-3, "the whole-map head did not see the map");
    // It needs the keypoints, and the spatial predictor's read-out takes the whole map.
    let err = cfg.clone().with_spatial_softmax(false).validate().unwrap_err();
    assert!(
        err.contains("keypoint_head") && err.contains("spatial_softmax"),
        "{err}"
    );
    let err = cfg.with_spatial_state(8).validate().unwrap_err();
    assert!(
        err.contains("keypoint_head") && err.contains("spatial_state = 8"),
        "{err}"
    );
}

#[test]
fn vit_world_model_learns_and_bad_encoder_config_is_named() {
    let data = toy_episodes(16, 6);
    let mut cfg = tiny_config();
    cfg.model.encoder = EncoderConfig::tiny_vit(RES, 16);
    let (first, last) = thirty_steps_on_one_batch(&cfg, &data);
    assert!(last.total < first.total * 0.9, "loss {} → {}", first.total, last.total);
    // Width 18 does not split over 4 heads: train refuses before building anything.
    cfg.model.encoder = cfg.model.encoder.clone().with_width(18).with_heads(4);
    let dir = temp_dir("badvit");
    let err = train(&cfg, &data, &dir, false, false).err().unwrap().to_string();
    assert!(
        err.contains("model.encoder.width = 18") && err.contains("model.encoder.heads = 4"),
        "{err}"
    );
    let _ = std::fs::remove_dir_all(&dir);
}

/// The loss terms of one fixed batch before and after 30 AdamW steps on it.
fn thirty_steps_on_one_batch(
    cfg: &TrainConfig,
    data: &Episodes,
) -> (
    amisim::world_model::jepa::LossTerms,
    amisim::world_model::jepa::LossTerms,
) {
    let device = cpu_device().autodiff();
    let mut model = amisim::train::jepa::seeded(&device, 1, || cfg.model.init(&device));
    let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(0);
    let (frames, actions) = data.batch(8, 4, &mut rng, &device);
    let mut optim = burn::optim::AdamWConfig::new().init();
    let (_, first) = model.loss(frames.clone(), actions.clone(), &cfg.model);
    for _ in 0..30 {
        let (loss, _) = model.loss(frames.clone(), actions.clone(), &cfg.model);
        let grads = burn::optim::GradientsParams::from_grads(loss.backward(), &model);
        model = optim.step(5e-3, model, grads);
    }
    let (_, last) = model.loss(frames, actions, &cfg.model);
    (first, last)
}

#[test]
fn a_few_steps_lower_the_loss_on_a_fixed_batch() {
    let data = toy_episodes(16, 6);
    let cfg = tiny_config();
    let (first, last) = thirty_steps_on_one_batch(&cfg, &data);
    assert!(last.total < first.total * 0.9, "loss {} → {}", first.total, last.total);
}

#[test]
fn checkpoint_round_trip_gives_identical_outputs_and_mismatch_is_an_error() {
    let dir = temp_dir("ckpt");
    let cfg = tiny_config();
    let device = cpu_device();
    let model = cfg.model.init(&device);
    let path = dir.join("c.safetensors");
    save_checkpoint(&path, &cfg, 7, &model, None).unwrap();
    let ck = load_checkpoint(&path, Some(&cfg.model), &device).unwrap();
    assert_eq!(ck.step, 7);
    let x = Tensor::<4>::random([2, 3, RES, RES], burn::tensor::Distribution::Default, &device);
    let a = model.encoder.forward(x.clone()).into_data();
    let b = ck.model.encoder.forward(x).into_data();
    assert_eq!(a, b);
    // A different model config is refused with both configs in the message.
    let other = JepaConfig::new(EncoderConfig::lenet(RES, 32), LossWeights::new());
    let err = load_checkpoint(&path, Some(&other), &device).err().unwrap().to_string();
    assert!(
        err.contains("model.encoder.latent: checkpoint 16, requested 32"),
        "{err}"
    );
    // Not a checkpoint at all.
    std::fs::write(dir.join("junk.safetensors"), b"junk").unwrap();
    assert!(load_checkpoint(&dir.join("junk.safetensors"), None, &device).is_err());
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn training_is_deterministic() {
    let data = toy_episodes(16, 6);
    let (a, b) = (temp_dir("det-a"), temp_dir("det-b"));
    train(&tiny_config(), &data, &a, false, false).unwrap();
    train(&tiny_config(), &data, &b, false, false).unwrap();
    let (wa, wb) = (
        weights(&a.join("checkpoint.safetensors")),
        weights(&b.join("checkpoint.safetensors")),
    );
    assert!(wa == wb, "two runs with the same seed differ");
    std::fs::remove_dir_all(&a).unwrap();
    std::fs::remove_dir_all(&b).unwrap();
}

#[test]
fn resume_continues_exactly() {
    let data = toy_episodes(16, 6);
    let (a, b) = (temp_dir("straight"), temp_dir("resumed"));
    train(&tiny_config(), &data, &a, false, false).unwrap();
    // Stop after 2 steps (a checkpoint is written at 2), then resume to 4.
    train(&tiny_config().with_steps(2), &data, &b, false, false).unwrap();
    let resumed = train(&tiny_config(), &data, &b, true, false).unwrap();
    assert_eq!(resumed.steps, 4);
    let (wa, wb) = (
        weights(&a.join("checkpoint.safetensors")),
        weights(&b.join("checkpoint.safetensors")),
    );
    assert!(wa == wb, "resumed run differs from the straight one");
    // Without the optimizer state the resumed run would differ: the test can fail.
    let c = temp_dir("no-optim");
    train(&tiny_config().with_steps(2), &data, &c, false, false).unwrap();
    let ck = load_checkpoint(&c.join("checkpoint.safetensors"), None, &cpu_device()).unwrap();
    amisim::train::jepa::save_checkpoint(&c.join("checkpoint.safetensors"), &tiny_config(), 2, &ck.model, None)
        .unwrap();
    train(&tiny_config(), &data, &c, true, false).unwrap();
    assert!(
        weights(&c.join("checkpoint.safetensors")) != wa,
        "dropping the optimizer state changed nothing"
    );
    std::fs::remove_dir_all(&c).unwrap();
    let csv = std::fs::read_to_string(b.join("metrics.csv")).unwrap();
    assert_eq!(csv.lines().count(), 5, "header + one row per step:\n{csv}");
    std::fs::remove_dir_all(&a).unwrap();
    std::fs::remove_dir_all(&b).unwrap();
}

#[test]
fn a_non_finite_loss_stops_training_and_keeps_the_last_checkpoint() {
    let data = toy_episodes(16, 6);
    let dir = temp_dir("nan");
    let cfg = tiny_config()
        .with_steps(200)
        .with_checkpoint_every(1)
        .with_lr(1e12)
        .with_clip(1e30);
    let err = train(&cfg, &data, &dir, false, false)
        .expect_err("training should stop")
        .to_string();
    assert!(err.contains("training stopped"), "{err}");
    let ck = load_checkpoint(&dir.join("checkpoint.safetensors"), None, &cpu_device()).unwrap();
    assert!(ck.step >= 1 && ck.step < 200);
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn ema_update_follows_its_formula() {
    use amisim::world_model::jepa::{ema_momentum_at, ema_update};
    let device = cpu_device();
    let cfg = EncoderConfig::lenet(RES, 8);
    let online = amisim::train::jepa::seeded(&device, 1, || cfg.init(&device));
    let target = amisim::train::jepa::seeded(&device, 2, || cfg.init(&device));
    // Same structure built twice: give both the path-derived ids the trainer uses.
    let online = amisim::train::jepa::stable_param_ids(online);
    let target = amisim::train::jepa::stable_param_ids(target);
    let flat = |e: &amisim::perception::Encoder| -> Vec<f32> {
        let mut st = burn::store::SafetensorsStore::from_bytes(None);
        burn::store::ModuleSnapshot::save_into(e, &mut st).unwrap();
        let bytes = st.get_bytes().unwrap();
        let s = safetensors::SafeTensors::deserialize(&bytes).unwrap();
        let mut names: Vec<String> = s.names().into_iter().map(|n| n.to_string()).collect();
        names.sort();
        names
            .iter()
            .flat_map(|n| {
                s.tensor(n)
                    .unwrap()
                    .data()
                    .chunks_exact(4)
                    .map(|c| f32::from_le_bytes([c[0], c[1], c[2], c[3]]))
                    .collect::<Vec<_>>()
            })
            .collect()
    };
    let (o, t) = (flat(&online), flat(&target));
    let updated = flat(&ema_update(target, &online, 0.9));
    assert_eq!(updated.len(), o.len());
    for ((u, o), t) in updated.iter().zip(&o).zip(&t) {
        assert!((u - (0.9 * t + 0.1 * o)).abs() < 1e-6, "{u} vs 0.9·{t} + 0.1·{o}");
    }
    // The momentum schedule runs from m0 to 1.
    assert!((ema_momentum_at(0.996, 0, 100) - 0.996).abs() < 1e-12);
    assert!((ema_momentum_at(0.996, 100, 100) - 1.0).abs() < 1e-12);
}

#[test]
fn ema_and_sigreg_objectives_train() {
    let data = toy_episodes(16, 6);
    let dir = temp_dir("ema");
    let mut cfg = tiny_config();
    cfg.model.ema_momentum = Some(0.99);
    cfg.model.weights.variance = 0.0;
    cfg.model.weights.covariance = 0.0;
    cfg.model.weights.sigreg = 1.0;
    let s = train(&cfg, &data, &dir, false, false).unwrap();
    let t = s.last.unwrap();
    assert!(t.total.is_finite() && t.sigreg > 0.0, "{t:?}");
    // The target encoder is saved and reloads.
    let ck = load_checkpoint(
        &dir.join("checkpoint.safetensors"),
        Some(&s_config(&dir)),
        &cpu_device(),
    )
    .unwrap();
    assert!(ck.model.target.is_some());
    std::fs::remove_dir_all(&dir).unwrap();
}

/// The model config a run saved.
fn s_config(dir: &std::path::Path) -> JepaConfig {
    let text = std::fs::read_to_string(dir.join("config.json")).unwrap();
    let cfg: TrainConfig = serde_json::from_str(&text).unwrap();
    cfg.model
}

#[test]
fn probe_json_on_the_shipped_two_rooms_model() {
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_amisim"))
        .args([
            "probe",
            "--scene",
            "two_rooms",
            "--train-episodes",
            "60",
            "--test-episodes",
            "16",
            "--rollout",
            "8",
            "--json",
        ])
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let linear = v["linear_rmse_px"].as_f64().unwrap();
    assert!(v["mlp_rmse_px"].as_f64().unwrap().is_finite());
    assert_eq!(v["rollout_rmse_px"].as_array().unwrap().len(), 8);
    assert!(v["effective_rank"].as_f64().unwrap() > 2.0);
    // One target (the agent): its own error is the overall one.
    let agent = &v["by_target"][0];
    assert_eq!(agent["target"], "agent");
    assert!(
        (agent["linear_rmse_px"].as_f64().unwrap() - linear).abs() < 1e-4,
        "{agent}"
    );
    // An untrained encoder sits near the spread of positions (about 22 px); the shipped one
    // must locate the agent.
    assert!(linear < 6.0, "linear probe {linear} px");
}

#[test]
fn context_encoder_trains_round_trips_and_bad_context_config_is_named() {
    let data = toy_episodes(16, 6);
    let mut cfg = tiny_config();
    cfg.model.context_dims = 4;
    cfg.model.context_encoder = true;
    cfg.model.weights.context = 1.0;
    cfg.model.weights.context_contrast = 0.5;
    let device = cpu_device();
    let model = cfg.model.init(&device);
    assert!(model.context.is_some());
    let x = Tensor::<4>::random([3, 3, RES, RES], burn::tensor::Distribution::Default, &device);
    assert_eq!((model.encode(x.clone()).dims(), model.latent()), ([3, 16], 16));
    // Its own weights: the context dimensions are the context encoder's latents.
    let ctx = model.context.as_ref().unwrap().forward(x.clone());
    let z = model.encode(x.clone()).slice([0..3, 12..16]);
    assert_eq!(z.into_data(), ctx.into_data());
    let (first, last) = thirty_steps_on_one_batch(&cfg, &data);
    assert!(last.total < first.total * 0.9, "loss {} → {}", first.total, last.total);
    assert!(first.context_contrast > 0.0 && first.context >= 0.0);
    let dir = temp_dir("ctxenc");
    let path = dir.join("c.safetensors");
    save_checkpoint(&path, &cfg, 3, &model, None).unwrap();
    let ck = load_checkpoint(&path, Some(&cfg.model), &device).unwrap();
    assert_eq!(ck.model.encode(x.clone()).into_data(), model.encode(x).into_data());
    cfg.model.context_dims = 16;
    let err = train(&cfg, &data, &dir, false, false).err().unwrap().to_string();
    assert!(err.contains("model.context_dims = 16"), "{err}");
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn held_context_and_context_queue_train_round_trip_and_bad_settings_are_named() {
    let data = toy_episodes(16, 6);
    let mut cfg = tiny_config();
    cfg.model.context_dims = 4;
    cfg.model.hold_context = true;
    cfg.model.context_queue = 16;
    cfg.model.weights.context = 1.0;
    cfg.model.weights.context_contrast = 0.5;
    let device = cpu_device();
    let model = cfg.model.init(&device);
    assert_eq!(
        model.predictor.moved(),
        12,
        "the predictor moves the 12 other dimensions"
    );
    // A rollout keeps the start's context dimensions.
    let z0 = Tensor::<2>::random([3, 16], burn::tensor::Distribution::Default, &device);
    let a = Tensor::<3>::ones([3, 5, 2], &device);
    let rolled = model
        .predictor
        .rollout(z0.clone(), a)
        .slice([0..3, 4..5, 0..16])
        .reshape([3, 16]);
    assert_eq!(
        rolled.clone().slice([0..3, 12..16]).into_data(),
        z0.clone().slice([0..3, 12..16]).into_data()
    );
    // Trains (the queue fills after the first step) and round-trips.
    let dir = temp_dir("held");
    train(&cfg, &data, &dir, false, false).unwrap();
    let ck = load_checkpoint(&dir.join("checkpoint.safetensors"), None, &device).unwrap();
    assert!(ck.config.model.hold_context);
    assert_eq!(ck.model.predictor.moved(), 12);
    let (first, last) = thirty_steps_on_one_batch(&cfg, &data);
    assert!(last.total < first.total * 0.9, "loss {} → {}", first.total, last.total);
    // Each refused by its key.
    for (set, key) in [
        ("model.context_dims=0", "model.hold_context"),
        ("model.weights.context_contrast=0", "model.context_queue"),
    ] {
        let bad: TrainConfig = amisim::config::with_sets(cfg.clone(), &[set.to_string()]).unwrap();
        let err = train(&bad, &data, &dir, false, false).err().unwrap().to_string();
        assert!(err.contains(key), "{set}: {err}");
    }
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn spatial_world_model_trains_round_trips_and_bad_spatial_config_is_named() {
    let data = toy_episodes(16, 6);
    let mut cfg = tiny_config();
    cfg.model.encoder = cfg.model.encoder.clone().with_spatial_state(3);
    cfg.model.spatial_k = 1; // windows of 4 frames: three jumps of one step
    let device = cpu_device();
    let model = cfg.model.init(&device);
    assert!(model.spatial.is_some());
    let x = Tensor::<4>::random([3, 3, RES, RES], burn::tensor::Distribution::Default, &device);
    // The latent is the read-out of the spatial state.
    let (z, map) = model.encoder.forward_with_map(x.clone());
    let map = map.expect("a spatial state");
    assert_eq!(map.dims()[..2], [3, 3]);
    assert_eq!(model.encoder.readout(map).into_data(), z.clone().into_data());
    assert_eq!(model.encode(x.clone()).into_data(), z.into_data());
    let (first, last) = thirty_steps_on_one_batch(&cfg, &data);
    assert!(first.spatial > 0.0 && first.spatial_variance >= 0.0);
    assert!(last.total < first.total * 0.9, "loss {} → {}", first.total, last.total);
    // The maps grow to unit variance per channel (their error grows with their scale).
    assert!(
        last.spatial_variance < first.spatial_variance,
        "spatial variance term {} → {}",
        first.spatial_variance,
        last.spatial_variance
    );
    let dir = temp_dir("spatial");
    let path = dir.join("c.safetensors");
    save_checkpoint(&path, &cfg, 3, &model, None).unwrap();
    let ck = load_checkpoint(&path, Some(&cfg.model), &device).unwrap();
    let a = Tensor::<3>::zeros([3, 1, 2], &device);
    let m0 = model.encoder.forward_with_map(x.clone()).1.unwrap();
    let sp = |m: &amisim::world_model::jepa::Jepa| m.spatial.as_ref().unwrap().forward(m0.clone(), &m0, a.clone());
    assert_eq!(sp(&ck.model).into_data(), sp(&model).into_data());
    cfg.model.encoder = cfg.model.encoder.clone().with_kind(EncoderKind::Vit);
    let err = train(&cfg, &data, &dir, false, false).err().unwrap().to_string();
    assert!(err.contains("model.encoder.spatial_state"), "{err}");
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn a_config_file_written_before_an_entry_existed_takes_its_default_and_bad_ones_are_named() {
    use amisim::train::jepa::read_config_file;
    let dir = std::env::temp_dir().join(format!("amisim-config-file-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let mut cfg = tiny_config();
    cfg.model.spatial_hidden = 24;
    // An older file: without `model.spatial_anchor`.
    let mut v = serde_json::to_value(&cfg).unwrap();
    v["model"].as_object_mut().unwrap().remove("spatial_anchor").unwrap();
    let old = dir.join("old.json");
    std::fs::write(&old, v.to_string()).unwrap();
    let mut defaults = tiny_config();
    defaults.model.spatial_anchor = true;
    let read: TrainConfig = read_config_file(&old, defaults.clone()).unwrap();
    assert!(read.model.spatial_anchor, "the missing entry takes the default's value");
    assert_eq!(read.model.spatial_hidden, 24, "the file's own entries are kept");
    // A wrong type is an error that names the file and the value.
    v["model"]["spatial_hidden"] = serde_json::json!("wide");
    std::fs::write(&old, v.to_string()).unwrap();
    let err = read_config_file::<TrainConfig>(&old, defaults).unwrap_err().to_string();
    assert!(err.contains("old.json") && err.contains("wide"), "{err}");
    std::fs::remove_dir_all(&dir).unwrap();
}
