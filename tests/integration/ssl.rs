//! Self-supervised objectives: I-JEPA's mask sampler, NT-Xent.

use amisim::ssl::losses::nt_xent;
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
fn nt_xent_matches_its_formula() {
    let device = cpu_device();
    let a = [[1.0f32, 0.0], [0.0, 2.0]];
    let b = [[1.0f32, 1.0], [0.0, -1.0]];
    let tau = 0.5f32;
    let t = |x: &[[f32; 2]; 2]| Tensor::<2>::from_data(TensorData::new(x.concat(), [2, 2]), &device);
    let got = amisim::values(nt_xent(t(&a), t(&b), tau))[0] as f64;
    // By hand: normalise the four embeddings, cosine similarities / τ, and for each its
    // positive against everything but itself.
    let z: Vec<[f64; 2]> = [a[0], a[1], b[0], b[1]]
        .iter()
        .map(|v| {
            let n = ((v[0] * v[0] + v[1] * v[1]) as f64).sqrt();
            [v[0] as f64 / n, v[1] as f64 / n]
        })
        .collect();
    let sim = |i: usize, j: usize| (z[i][0] * z[j][0] + z[i][1] * z[j][1]) / tau as f64;
    let mut want = 0.0;
    for i in 0..4 {
        let pos = (i + 2) % 4;
        let denom: f64 = (0..4).filter(|&j| j != i).map(|j| sim(i, j).exp()).sum();
        want += -(sim(i, pos).exp() / denom).ln();
    }
    want /= 4.0;
    assert!((got - want).abs() < 1e-4, "nt-xent {got} vs {want}");
}

#[test]
fn byol_and_mae_losses_match_hand_computed_values() {
    let device = cpu_device();
    // BYOL: rows at 0° and 90° to their targets: (2 − 2·1 + 2 − 2·0) / 2 = 1.
    let p = Tensor::<2>::from_data(TensorData::new(vec![2.0f32, 0.0, 0.0, 3.0], [2, 2]), &device);
    let z = Tensor::<2>::from_data(TensorData::new(vec![5.0f32, 0.0, 1.0, 0.0], [2, 2]), &device);
    let got = amisim::values(amisim::ssl::losses::byol(p, z))[0];
    assert!((got - 1.0).abs() < 1e-5, "byol {got}");
    // MAE: one image, three patches of two pixels; patch errors (per pixel squared, mean over
    // the patch) 1, 4 and 9; only patches 0 and 2 were hidden: (1 + 9) / 2 = 5. The seen
    // patch's error must not count.
    let pred = Tensor::<3>::from_data(
        TensorData::new(vec![1.0f32, 1.0, 2.0, 2.0, 3.0, 3.0], [1, 3, 2]),
        &device,
    );
    let target = Tensor::<3>::zeros([1, 3, 2], &device);
    let mask = Tensor::<2>::from_data(TensorData::new(vec![1.0f32, 0.0, 1.0], [1, 3]), &device);
    let got = amisim::values(amisim::ssl::losses::mae(pred, target, mask))[0];
    assert!((got - 5.0).abs() < 1e-5, "mae {got}");
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
