//! Self-supervised objectives: masks, the energy and flow losses against hand-computed values
//! (the official objectives' losses are checked against their PyTorch twins in `ssl_parity`),
//! EMA, pretraining and `compare`.

use amisim::ssl::masks::{sample, MaskConfig};
use amisim::train::jepa::cpu_device;
use burn::prelude::*;
use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;

#[test]
fn mask_sampler_statistics_follow_the_configured_ranges() {
    let cfg = MaskConfig::default();
    let (rows, cols) = (8, 8);
    let mut rng = ChaCha8Rng::seed_from_u64(1);
    let (mut as_context, mut as_target) = (vec![0u32; 64], vec![0u32; 64]);
    let (mut target_share, mut context_share) = (0.0f64, 0.0f64);
    let draws = 2000;
    for _ in 0..draws {
        let m = sample(&cfg, rows, cols, &mut rng);
        assert_eq!(m.targets.len(), 4);
        assert!(m.context.len() >= cfg.min_context);
        for t in &m.targets {
            // A rectangle: its rows × its columns, every cell present once.
            let (mut rs, mut cs): (Vec<usize>, Vec<usize>) = t.iter().map(|&i| (i / cols, i % cols)).unzip();
            rs.dedup();
            cs.sort_unstable();
            cs.dedup();
            assert_eq!(rs.len() * cs.len(), t.len(), "not a block: {t:?}");
            let aspect = rs.len() as f32 / cs.len() as f32;
            assert!((0.5..=2.0).contains(&aspect), "aspect {aspect} of {t:?}");
            let share = t.len() as f32 / 64.0;
            assert!((0.1..=0.3).contains(&share), "share {share}");
            target_share += share as f64;
            for &i in t {
                as_target[i] += 1;
                assert!(!m.context.contains(&i), "patch {i} is both context and target");
            }
        }
        for &i in &m.context {
            as_context[i] += 1;
        }
        context_share += m.context.len() as f64 / 64.0;
    }
    assert!(
        as_context.iter().all(|&c| c > 0),
        "a patch never in the context: {as_context:?}"
    );
    assert!(
        as_target.iter().all(|&c| c > 0),
        "a patch never a target: {as_target:?}"
    );
    let mean_target = target_share / (4 * draws) as f64;
    assert!((0.14..=0.24).contains(&mean_target), "mean target share {mean_target}");
    // The context (0.85–1 of the grid) with four targets of ~0.18 removed.
    let mean_context = context_share / draws as f64;
    assert!(
        (0.25..0.85).contains(&mean_context),
        "mean context share {mean_context}"
    );
    let bad = MaskConfig {
        target_scale: (0.3, 0.2),
        ..MaskConfig::default()
    };
    assert!(bad.validate().unwrap_err().contains("masks.target_scale"));
}

#[test]
fn tube_masks_hold_each_block_through_every_frame() {
    let cfg = MaskConfig::default();
    let (frames, rows, cols) = (3, 6, 6);
    let mut rng = ChaCha8Rng::seed_from_u64(2);
    for _ in 0..200 {
        let m = amisim::ssl::masks::sample_tubes(&cfg, frames, rows, cols, &mut rng);
        for mask in m.targets.iter().chain(std::iter::once(&m.context)) {
            assert_eq!(mask.len() % frames, 0);
            let per = mask.len() / frames;
            let first: Vec<usize> = mask[..per].to_vec();
            assert!(first.iter().all(|&i| i < rows * cols), "frame 0 first");
            for t in 1..frames {
                let spatial: Vec<usize> = mask[t * per..(t + 1) * per]
                    .iter()
                    .map(|&i| i - t * rows * cols)
                    .collect();
                assert_eq!(spatial, first, "frame {t} differs from frame 0");
            }
        }
        for t in &m.targets {
            assert!(t.iter().all(|i| !m.context.contains(i)));
        }
    }
}

fn t1(v: &[f32]) -> Tensor<1> {
    Tensor::from_data(TensorData::new(v.to_vec(), [v.len()]), &cpu_device())
}

fn scalar(t: Tensor<1>) -> f32 {
    t.into_scalar::<f32>()
}

#[test]
fn energy_loss_matches_hand_computed_values() {
    use amisim::ssl::model::contrastive_energy_loss;
    // E⁺ = (1, 2), E⁻ = (3, 5), α = 0.5: gap 4 − 1.5 = 2.5, magnitude mean(1 + 9, 4 + 25) = 19.5,
    // loss −2.5 + 0.5 · 19.5 = 7.25.
    let (l, gap, mag) = contrastive_energy_loss(t1(&[1.0, 2.0]), t1(&[3.0, 5.0]), 0.5);
    assert!((scalar(l) - 7.25).abs() < 1e-5);
    assert!((scalar(gap) - 2.5).abs() < 1e-5);
    assert!((scalar(mag) - 19.5).abs() < 1e-5);
}

#[test]
fn flow_warping_loss_matches_hand_computed_values() {
    use amisim::ssl::model::flow_losses;
    let device = cpu_device();
    let frame = |v: &[f32]| Tensor::<4>::from_data(TensorData::new(v.to_vec(), [1, 1, 2, 2]), &device);
    // One 2×2 patch, shifts in −1..=1: index = (dy + 1)·3 + (dx + 1); 4 is no motion, 5 is dx = +1.
    let x1 = frame(&[1.0, 2.0, 3.0, 4.0]);
    let weights = |w: &[(usize, f32)]| {
        let mut v = vec![0.0f32; 9];
        for &(i, p) in w {
            v[i] = p;
        }
        Tensor::<3>::from_data(TensorData::new(v, [1, 1, 9]), &device)
    };
    // dx = +1 reads each pixel's right neighbour (edge repeated): [[2, 2], [4, 4]].
    let (photo, smooth) = flow_losses(weights(&[(5, 1.0)]), frame(&[2.0, 2.0, 4.0, 4.0]), x1.clone(), 2, 1);
    assert!(scalar(photo).abs() < 1e-6);
    assert!(scalar(smooth).abs() < 1e-6);
    // Half no motion, half dx = +1, against a black frame: mean of [[1.5, 2], [3.5, 4]] = 2.75.
    let (photo, _) = flow_losses(weights(&[(4, 0.5), (5, 0.5)]), frame(&[0.0; 4]), x1, 2, 1);
    assert!((scalar(photo) - 2.75).abs() < 1e-5);
    // Smoothness on a 2×2 grid of patches: only the top-left moves (1, 0); each direction has
    // one difference of 1 among 4 values: (0.25 + 0.25) / 2.
    let mut w = vec![0.0f32; 4 * 9];
    w[5] = 1.0;
    for p in 1..4 {
        w[p * 9 + 4] = 1.0;
    }
    let w = Tensor::<3>::from_data(TensorData::new(w, [1, 4, 9]), &device);
    let z = Tensor::<4>::zeros([1, 1, 4, 4], &device);
    let (_, smooth) = flow_losses(w, z.clone(), z, 2, 1);
    assert!((scalar(smooth) - 0.25).abs() < 1e-6);
}

#[test]
fn auc_and_token_gathering_are_right() {
    use amisim::ssl::compare::auc;
    use amisim::ssl::model::gather_tokens;
    assert_eq!(auc(&[1.0, 2.0], &[3.0, 4.0]), 1.0);
    assert_eq!(auc(&[3.0, 4.0], &[1.0, 2.0]), 0.0);
    assert_eq!(auc(&[1.0, 2.0], &[3.0, 0.0]), 0.5);
    assert_eq!(auc(&[1.0], &[1.0]), 0.5);
    // Row i of the batch keeps its own tokens, in the order asked.
    let x = Tensor::<3>::from_data(
        TensorData::new((0..12).map(|v| v as f32).collect::<Vec<_>>(), [2, 3, 2]),
        &cpu_device(),
    );
    let g = amisim::values(gather_tokens(x, &[vec![2, 0], vec![1, 1]]));
    assert_eq!(g, vec![4.0, 5.0, 0.0, 1.0, 8.0, 9.0, 8.0, 9.0]);
}

/// Every float parameter of a module, in visiting order.
fn params<M: burn::module::Module>(m: &M) -> Vec<Vec<f32>> {
    struct Grab(Vec<Vec<f32>>);
    impl burn::module::ModuleVisitor for Grab {
        fn visit_float<const D: usize>(&mut self, p: &burn::module::Param<Tensor<D>>) {
            self.0.push(amisim::values(p.val()));
        }
    }
    let mut g = Grab(Vec::new());
    m.visit(&mut g);
    g.0
}

#[test]
fn ema_targets_follow_their_formula_inside_one_model() {
    use amisim::ssl::model::{Objective, SslConfig};
    use amisim::train::jepa::{seeded, stable_param_ids};
    // The trainer's case: online and target sit at different paths of one model, so their
    // parameter ids differ; the update must still pair them.
    let cfg = SslConfig::tiny(Objective::Byol, 16);
    let device = cpu_device();
    let model = stable_param_ids(seeded(&device, 3, || cfg.init(&device)));
    let (o, t) = (params(&model.encoder), params(model.target.as_ref().unwrap()));
    let (po, pt) = (
        params(model.projector.as_ref().unwrap()),
        params(model.target_projector.as_ref().unwrap()),
    );
    // The targets start as copies of the online networks, as in I-JEPA and BYOL.
    assert_eq!(o, t, "the target encoder starts as a copy of the online one");
    assert_eq!(po, pt, "the target projector starts as a copy of the online one");
    // Training moves the online networks; the update must follow them.
    let other = stable_param_ids(seeded(&device, 4, || cfg.init(&device)));
    let mut model = model;
    model.encoder = amisim::world_model::jepa::ema_update(model.encoder, &other.encoder, 0.5);
    model.projector = Some(amisim::world_model::jepa::ema_update(
        model.projector.unwrap(),
        other.projector.as_ref().unwrap(),
        0.5,
    ));
    let (o, po) = (params(&model.encoder), params(model.projector.as_ref().unwrap()));
    assert_ne!(o, t, "the online encoder moved");
    let steps = 10;
    let m = amisim::world_model::jepa::ema_momentum_at(cfg.ema_momentum, 4, steps) as f32;
    let model = model.update_targets(&cfg, 4, steps);
    for (before, (online, after)) in [
        (t, (o, params(model.target.as_ref().unwrap()))),
        (pt, (po, params(model.target_projector.as_ref().unwrap()))),
    ] {
        for ((b, o), a) in before
            .iter()
            .flatten()
            .zip(online.iter().flatten())
            .zip(after.iter().flatten())
        {
            assert!(
                (a - (m * b + (1.0 - m) * o)).abs() < 1e-6,
                "{a} vs {m}·{b} + (1 − {m})·{o}"
            );
        }
    }
}

#[test]
fn every_objective_pretrains_reproducibly_and_moves_the_encoder() {
    use amisim::ssl::model::{Objective, SslConfig};
    use amisim::ssl::train::{pretrain, Budget};
    let data = crate::jepa::toy_episodes(12, 4);
    for o in Objective::ALL.into_iter().filter(|o| *o != Objective::Random) {
        let cfg = SslConfig::tiny(o, crate::jepa::RES);
        let a = pretrain(&cfg, &data, Budget::Steps(4), false).unwrap();
        for (name, v) in a.first.iter().chain(&a.last) {
            assert!(v.is_finite(), "{}: {name} = {v}", o.name());
        }
        let fresh = {
            let device = cpu_device();
            let mut c = a.config.clone();
            c.objective = o;
            amisim::train::jepa::stable_param_ids(amisim::train::jepa::seeded(&device, cfg.seed, || c.init(&device)))
        };
        assert_ne!(
            params(&a.model.encoder),
            params(&fresh.encoder),
            "{}: the encoder did not train",
            o.name()
        );
        let b = pretrain(&cfg, &data, Budget::Steps(4), false).unwrap();
        assert_eq!(a.last, b.last, "{}: same seed, different run", o.name());
    }
    // A clip longer than the episodes is a clear error.
    let mut cfg = SslConfig::tiny(Objective::VJepa, crate::jepa::RES);
    cfg.clip_frames = 9;
    let e = pretrain(&cfg, &data, Budget::Steps(1), false).unwrap_err().to_string();
    assert!(e.contains("vjepa") && e.contains("9 frames"), "{e}");
}

#[test]
fn compare_writes_its_table_reproducibly_and_each_row_is_a_checkpoint() {
    use amisim::ssl::compare::{compare, CompareConfig};
    use amisim::ssl::model::Objective;
    use amisim::ssl::train::Budget;
    let mut cfg = CompareConfig::new("two_rooms");
    cfg.objectives = vec![Objective::IJepa, Objective::Energy, Objective::Random];
    cfg.budget = Budget::Steps(3);
    cfg.tiny = true;
    cfg.episodes = 12;
    cfg.probe_train = 12;
    cfg.probe_test = 6;
    cfg.mlp_steps = 10;
    cfg.level1_steps = 5;
    cfg.plan_episodes = 2;
    let dir = crate::jepa::temp_dir("compare");
    let a = compare(&cfg, &dir.join("a"), |_| {}).unwrap();
    let b = compare(&cfg, &dir.join("b"), |_| {}).unwrap();
    assert_eq!(a.rows.len(), 3);
    for (x, y) in a.rows.iter().zip(&b.rows) {
        assert_eq!(
            (
                x.agent_linear_px,
                x.agent_mlp_px,
                x.effective_rank,
                x.jepa_energy_auc,
                x.plan_success,
                x.last_loss.to_bits()
            ),
            (
                y.agent_linear_px,
                y.agent_mlp_px,
                y.effective_rank,
                y.jepa_energy_auc,
                y.plan_success,
                y.last_loss.to_bits()
            ),
            "{}: same seed, different numbers",
            x.objective
        );
        assert!(x.agent_linear_px.is_finite() && x.agent_grid_px.is_finite());
        assert!(x.layout_linear_rel.is_some() && x.plan_success.is_some());
    }
    assert!(a.rows[1].energy_head_auc.is_some() && a.rows[0].energy_head_auc.is_none());
    let written = a.write(&dir.join("a")).unwrap();
    let csv = std::fs::read_to_string(&written[0]).unwrap();
    assert_eq!(csv.lines().count(), 4, "{csv}");
    // The untrained baseline row trains nothing.
    assert_eq!((a.rows[2].objective.as_str(), a.rows[2].steps), ("random", 0));
    assert!(csv.lines().nth(1).unwrap().starts_with("ijepa,JEPA,3,"));
    for p in &written {
        assert!(std::fs::metadata(p).unwrap().len() > 0, "{}", p.display());
    }
    // Each row's world model loads as a checkpoint, ViT encoder and all.
    let ck =
        amisim::train::jepa::load_checkpoint(std::path::Path::new(&a.rows[0].checkpoint), None, &cpu_device()).unwrap();
    assert_eq!(ck.config.model.encoder.kind, amisim::perception::EncoderKind::Vit);
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn the_level1_ema_target_starts_as_a_copy_of_the_encoder() {
    use amisim::perception::EncoderConfig;
    use amisim::world_model::jepa::{JepaConfig, LossWeights};
    let device = cpu_device();
    let jepa = JepaConfig::new(EncoderConfig::lenet(16, 8), LossWeights::new())
        .with_ema_momentum(Some(0.996))
        .init(&device);
    assert_eq!(params(&jepa.encoder), params(jepa.target.as_ref().unwrap()));
}

#[test]
fn augmented_views_stay_in_distribution_per_channel() {
    use amisim::ssl::augment::augment;
    // Two-Rooms-like frames: a small red blob (the agent), green walls, an empty blue channel,
    // and a fourth channel constant at 0.7.
    let (b, c, h, w) = (8usize, 4usize, 32usize, 32usize);
    let mut x = vec![0.0f32; b * c * h * w];
    for i in 0..b {
        let at = |ch: usize, y: usize, xx: usize| ((i * c + ch) * h + y) * w + xx;
        for y in 0..h {
            x[at(1, y, 10 + i)] = 1.0;
            for xx in 0..w {
                x[at(3, y, xx)] = 0.7;
            }
        }
        for (dy, dx) in [(0, 0), (0, 1), (1, 0), (1, 1)] {
            x[at(0, 5 + 2 * i + dy, 20 + dx)] = 1.0;
        }
    }
    let device = cpu_device();
    let frames = Tensor::<4>::from_data(TensorData::new(x.clone(), [b, c, h, w]), &device);
    let mut rng = ChaCha8Rng::seed_from_u64(1);
    let y = amisim::values(augment(frames, &mut rng));
    let channel = |v: &[f32], ch: usize| -> Vec<f32> {
        (0..b)
            .flat_map(|i| v[(i * c + ch) * h * w..(i * c + ch + 1) * h * w].to_vec())
            .collect()
    };
    for ch in 0..c {
        let (before, after) = (channel(&x, ch), channel(&y, ch));
        let n = before.len() as f32;
        let mean = before.iter().sum::<f32>() / n;
        let std = (before.iter().map(|v| (v - mean).powi(2)).sum::<f32>() / n).sqrt();
        let rms = (before.iter().zip(&after).map(|(a, b)| (a - b).powi(2)).sum::<f32>() / n).sqrt();
        if before.iter().all(|v| *v == before[0]) {
            assert_eq!(before, after, "channel {ch} is constant in the data and must stay so");
        } else {
            assert!(rms <= 3.0 * std, "channel {ch}: moved by {rms} (rms), its std is {std}");
            assert!(rms > 0.0, "channel {ch}: not augmented");
        }
    }
    // Nothing moves and the background stays the background: every pixel at its image's
    // channel background is unchanged, and no pixel leaves it except by the gain (so a red pixel
    // appears nowhere the agent was not; a grey cutout would put 0.5 there).
    for i in 0..b {
        for ch in 0..c {
            let at = (i * c + ch) * h * w;
            let (before, after) = (&x[at..at + h * w], &y[at..at + h * w]);
            let bg = before.iter().cloned().fold(f32::INFINITY, f32::min);
            for (p, (a, z)) in before.iter().zip(after).enumerate() {
                if *a == bg {
                    assert_eq!(*z, bg, "image {i} channel {ch} pixel {p}: background changed");
                } else {
                    let g = (z - bg) / (a - bg);
                    assert!(g == 0.0 || (0.69..=1.31).contains(&g), "pixel {p}: gain {g}");
                }
            }
        }
    }
}
