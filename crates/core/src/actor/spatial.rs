//! The spatial predictor as planning dynamics: a hand-written batched rollout of its 3×3
//! convolutions (im2col + gemm, candidates split over threads) and of the encoder's read-out,
//! off autodiff, with weights copied out of burn. The first convolution's action channels are
//! the same in every cell, so their part is summed per tap once per candidate and jump instead
//! of convolved (a quarter of the rollout's arithmetic in the shipped shape).

use super::model::{critic_costs, matmul_acc_serial, repeat_rows, Dynamics};
use crate::cost::CostConfig;
use crate::perception::{cell_coord, ConvEncoder};
use crate::values as to_vec;
use crate::world_model::linear_bias;
use crate::world_model::spatial::SpatialPredictor;
use rayon::prelude::*;

/// One 3×3 convolution (padding 1), its weight laid out for im2col rows: `[9·c_in, c_out]`,
/// row `(ky·3 + kx)·c_in + ci`.
#[derive(Debug, Clone)]
struct Conv3 {
    c_in: usize,
    c_out: usize,
    w: Vec<f32>,
    b: Vec<f32>,
}

/// The spatial predictor and the read-out, copied out of burn. Maps are kept channels-last
/// (`[cell, channel]`) inside; starts come channels-first as the encoder gives them.
#[derive(Debug, Clone)]
pub struct SpatialRollout {
    channels: usize,
    side: usize,
    k: usize,
    /// The convolutions; the first one's map channels only (its action channels in `action_w`).
    convs: Vec<Conv3>,
    /// The first convolution's action part, `[2k, 9·c_out]`: row `j·9 + tap`, tap `ky·3 + kx`.
    action_w: Vec<f32>,
    /// An anchored predictor's first convolution on the start map (no bias): the same at every
    /// jump of a rollout, so it is computed once per rollout.
    anchor: Option<Conv3>,
    latent: usize,
    /// The head `[c·s² (+ 2c), latent]`, its map rows reordered to the channels-last layout.
    head_w: Vec<f32>,
    head_b: Vec<f32>,
    soft_argmax: bool,
    /// Weight of the soft-argmax keypoints joined to each latent (0: the latent alone; see
    /// [`CostConfig::keypoints`]).
    keypoints: f32,
    /// Cell coordinates in `[-1, 1]`, as the encoder's soft-argmax uses them.
    coord: Vec<f32>,
}

impl SpatialRollout {
    pub fn new(p: &SpatialPredictor, encoder: &ConvEncoder) -> SpatialRollout {
        let side = encoder.feature_map_side();
        let channels = p.convs.last().map_or(0, |c| c.weight.dims()[0]);
        let mut action_w = Vec::new();
        let mut anchor = None;
        let convs: Vec<Conv3> = p
            .convs
            .iter()
            .enumerate()
            .map(|(i, c)| {
                let [c_out, c_all, kh, kw] = c.weight.dims();
                assert_eq!((kh, kw), (3, 3), "the spatial predictor's convolutions are 3×3");
                let raw = to_vec(c.weight.val());
                // The first convolution reads the map, the start map when anchored, and then
                // the jump's 2k actions.
                let c_in = if i == 0 { channels } else { c_all };
                if i == 0 {
                    let maps = if p.anchor { 2 * channels } else { channels };
                    assert_eq!(
                        c_all,
                        maps + 2 * p.k,
                        "the first convolution reads the map(s) and 2k actions"
                    );
                    action_w = gather_taps(&raw, c_out, c_all, maps..c_all, |t, j| j * 9 + t);
                    anchor = p.anchor.then(|| Conv3 {
                        c_in: channels,
                        c_out,
                        w: gather_taps(&raw, c_out, c_all, channels..maps, |t, ci| t * channels + ci),
                        b: vec![0.0; c_out],
                    });
                }
                let w = gather_taps(&raw, c_out, c_all, 0..c_in, |t, ci| t * c_in + ci);
                let b = c.bias.as_ref().map(|b| to_vec(b.val())).unwrap_or(vec![0.0; c_out]);
                Conv3 { c_in, c_out, w, b }
            })
            .collect();
        assert!(!convs.is_empty(), "the spatial predictor has at least one convolution");
        let head = encoder.head();
        let [inputs, latent] = head.weight.dims();
        let raw = to_vec(head.weight.val());
        let cells = side * side;
        let flat = channels * cells;
        assert!(
            inputs == flat || inputs == flat + 2 * channels,
            "head input {inputs} vs map {channels}×{side}²"
        );
        let mut head_w = raw.clone();
        for c in 0..channels {
            for p in 0..cells {
                let (src, dst) = (c * cells + p, p * channels + c);
                head_w[dst * latent..(dst + 1) * latent].copy_from_slice(&raw[src * latent..(src + 1) * latent]);
            }
        }
        let coord = (0..side).map(|i| cell_coord(i, side)).collect();
        SpatialRollout {
            channels,
            side,
            k: p.k,
            convs,
            action_w,
            anchor,
            latent,
            head_w,
            head_b: linear_bias(head),
            soft_argmax: inputs > flat,
            keypoints: 0.0,
            coord,
        }
    }

    /// Values of one start map (channels-first, as the encoder gives it).
    pub fn map_len(&self) -> usize {
        self.channels * self.side * self.side
    }

    /// The same rollout with the spatial state's keypoints, times `weight`, joined to each
    /// latent (none for 0). Needs an encoder with soft-argmax keypoints.
    pub fn with_keypoints(mut self, weight: f32) -> SpatialRollout {
        assert!(
            weight == 0.0 || self.soft_argmax,
            "keypoints need an encoder with spatial soft-argmax"
        );
        self.keypoints = weight;
        self
    }

    /// Whether the encoder reads soft-argmax keypoints off its map.
    pub fn has_keypoints(&self) -> bool {
        self.soft_argmax
    }

    /// Size of an imagined state: the latent, and the keypoints where they are joined to it.
    pub fn state_dim(&self) -> usize {
        self.latent + if self.keypoints != 0.0 { 2 * self.channels } else { 0 }
    }

    /// The imagined-state view of `m` maps as the encoder gives them (channels-first): what a
    /// rollout from them starts at, to compare with the states it imagines.
    pub fn states_of(&self, maps0: &[f32], m: usize) -> Vec<f32> {
        self.readout(&self.channels_last(maps0, m), m)
    }

    /// `m` maps channels-first `[m, c, s²]` → channels-last `[m, s², c]`.
    fn channels_last(&self, maps0: &[f32], m: usize) -> Vec<f32> {
        let (c, cells) = (self.channels, self.side * self.side);
        let mut map = vec![0.0; m * cells * c];
        for r in 0..m {
            for ch in 0..c {
                for p in 0..cells {
                    map[(r * cells + p) * c + ch] = maps0[(r * c + ch) * cells + p];
                }
            }
        }
        map
    }

    /// Floating-point operations per environment step (a jump's convolutions and read-out over
    /// its `k` steps; an anchored predictor's start-map convolution, once per rollout, is left
    /// out).
    pub fn flop_per_step(&self) -> f64 {
        let cells = (self.side * self.side) as f64;
        let convs: f64 = self
            .convs
            .iter()
            .map(|c| 2.0 * cells * (9 * c.c_in * c.c_out) as f64)
            .sum();
        let actions = 2.0 * self.action_w.len() as f64 + cells * (9 * self.convs[0].c_out) as f64;
        let head = 2.0 * (self.head_w.len()) as f64;
        (convs + actions + head) / self.k as f64
    }

    /// Read-out of `m` channels-last maps `[m, s², c]` → latents `[m, latent]`, or with the
    /// keypoints joined, `[m, latent + 2c]`.
    fn readout(&self, maps: &[f32], m: usize) -> Vec<f32> {
        let (c, cells) = (self.channels, self.side * self.side);
        let width = c * cells + if self.soft_argmax { 2 * c } else { 0 };
        let mut features = vec![0.0; m * width];
        for r in 0..m {
            let map = &maps[r * cells * c..(r + 1) * cells * c];
            let f = &mut features[r * width..(r + 1) * width];
            f[..cells * c].copy_from_slice(map);
            if self.soft_argmax {
                for ch in 0..c {
                    let max = (0..cells).map(|p| map[p * c + ch]).fold(f32::NEG_INFINITY, f32::max);
                    let (mut sum, mut sx, mut sy) = (0.0, 0.0, 0.0);
                    for p in 0..cells {
                        let e = (map[p * c + ch] - max).exp();
                        sum += e;
                        sx += e * self.coord[p % self.side];
                        sy += e * self.coord[p / self.side];
                    }
                    f[cells * c + ch] = sx / sum;
                    f[cells * c + c + ch] = sy / sum;
                }
            }
        }
        let mut z = repeat_rows([&self.head_b[..]], m);
        matmul_acc_serial(&features, &self.head_w, &mut z, m, width, self.latent);
        if self.keypoints == 0.0 {
            return z;
        }
        let mut states = Vec::with_capacity(m * self.state_dim());
        for (z, f) in z.chunks_exact(self.latent).zip(features.chunks_exact(width)) {
            states.extend_from_slice(z);
            states.extend(f[cells * c..].iter().map(|k| self.keypoints * k));
        }
        states
    }

    /// One 3×3 convolution of `m` channels-last maps `x` `[m, s², c_in]` into `out`
    /// `[m, s², c_out]`; `cols` is scratch.
    fn conv(&self, conv: &Conv3, x: &[f32], out: &mut Vec<f32>, cols: &mut Vec<f32>, m: usize) {
        out.resize(m * self.side * self.side * conv.c_out, 0.0);
        for o in out.chunks_exact_mut(conv.c_out) {
            copy_small(o, &conv.b);
        }
        self.conv_acc(conv, x, out, cols, m);
    }

    /// The first convolution's bias and action part for `m` maps into `out` `[m, s², c_out]`,
    /// from the jumps' actions `a` `[m, 2k]` (the same in every cell): per tap `W_tapᵀ a`, and
    /// per cell the sum of the taps that fall inside the map (the padding reads zeros).
    fn action_part(&self, conv: &Conv3, a: &[f32], out: &mut Vec<f32>, m: usize) {
        let (s, co) = (self.side, conv.c_out);
        let mut taps = vec![0.0; m * 9 * co];
        matmul_acc_serial(a, &self.action_w, &mut taps, m, 2 * self.k, 9 * co);
        out.resize(m * s * s * co, 0.0);
        for r in 0..m {
            let taps = &taps[r * 9 * co..(r + 1) * 9 * co];
            for y in 0..s {
                for x in 0..s {
                    let o = &mut out[((r * s + y) * s + x) * co..][..co];
                    copy_small(o, &conv.b);
                    let (kys, kxs) = taps_inside(y, x, s);
                    for ky in kys {
                        for kx in kxs.clone() {
                            let t = &taps[(ky * 3 + kx) * co..][..co];
                            o.iter_mut().zip(t).for_each(|(o, t)| *o += t);
                        }
                    }
                }
            }
        }
    }

    /// Adds one 3×3 convolution (no bias) of `m` channels-last maps `x` `[m, s², c_in]` to
    /// `out` `[m, s², c_out]`. `cols` is this layer's im2col scratch: zeroed when its shape
    /// changes, after which only the taps inside the map are written (the padding's zeros stay).
    fn conv_acc(&self, conv: &Conv3, x: &[f32], out: &mut [f32], cols: &mut Vec<f32>, m: usize) {
        let (s, ci) = (self.side, conv.c_in);
        let rows = m * s * s;
        if cols.len() != rows * 9 * ci {
            cols.clear();
            cols.resize(rows * 9 * ci, 0.0);
        }
        for r in 0..m {
            let map = &x[r * s * s * ci..(r + 1) * s * s * ci];
            for y in 0..s {
                for xx in 0..s {
                    let row = &mut cols[((r * s + y) * s + xx) * 9 * ci..][..9 * ci];
                    let (kys, kxs) = taps_inside(y, xx, s);
                    for ky in kys {
                        for kx in kxs.clone() {
                            let cell = (y + ky - 1) * s + xx + kx - 1;
                            copy_small(&mut row[(ky * 3 + kx) * ci..][..ci], &map[cell * ci..][..ci]);
                        }
                    }
                }
            }
        }
        matmul_acc_serial(cols, &conv.w, out, rows, 9 * ci, conv.c_out);
    }

    /// Open-loop rollout of `m` rows: start maps `[m, c, s, s]` (channels-first), `actions`
    /// `[m, len, 2]` → states `[m, len, state_dim]` (latents, and keypoints where joined). The
    /// model jumps `k` steps at a time (a last partial jump is padded with standing still); the
    /// states between two jumps' ends are interpolated linearly.
    pub fn rollout_rows(&self, maps0: &[f32], actions: &[f32], m: usize, len: usize) -> Vec<f32> {
        const CHUNK: usize = 8;
        let d = self.state_dim();
        let mut out = vec![0.0; m * len * d];
        out.par_chunks_mut(CHUNK * len * d).enumerate().for_each(|(q, out)| {
            let r0 = q * CHUNK;
            let rows = (m - r0).min(CHUNK);
            self.rollout_chunk(
                &maps0[r0 * self.map_len()..(r0 + rows) * self.map_len()],
                &actions[r0 * len * 2..(r0 + rows) * len * 2],
                rows,
                len,
                out,
            );
        });
        out
    }

    fn rollout_chunk(&self, maps0: &[f32], actions: &[f32], m: usize, len: usize, out: &mut [f32]) {
        let (cells, d, k) = (self.side * self.side, self.state_dim(), self.k);
        let mut map = self.channels_last(maps0, m);
        let mut prev = self.readout(&map, m);
        let (mut x, mut y) = (Vec::new(), Vec::new());
        let mut cols = vec![Vec::new(); self.convs.len()];
        // The anchored predictor's start-map part of the first convolution, once.
        let fixed = self.anchor.as_ref().map(|an| {
            let mut fixed = vec![0.0; m * cells * an.c_out];
            self.conv_acc(an, &map, &mut fixed, &mut Vec::new(), m);
            fixed
        });
        let mut a = vec![0.0f32; m * 2 * k];
        for j in 0..len.div_ceil(k) {
            // The jump's actions (a last partial jump padded with standing still).
            a.fill(0.0);
            for r in 0..m {
                for i in (0..k).filter(|i| j * k + i < len) {
                    let t = j * k + i;
                    a[r * 2 * k + 2 * i..][..2].copy_from_slice(&actions[(r * len + t) * 2..][..2]);
                }
            }
            let last = self.convs.len() - 1;
            for (i, conv) in self.convs.iter().enumerate() {
                if i == 0 {
                    self.action_part(conv, &a, &mut y, m);
                    if let Some(fixed) = &fixed {
                        y.iter_mut().zip(fixed).for_each(|(y, f)| *y += f);
                    }
                    self.conv_acc(conv, &map, &mut y, &mut cols[i], m);
                } else {
                    self.conv(conv, &x, &mut y, &mut cols[i], m);
                }
                if i < last {
                    y.iter_mut().for_each(|v| *v = v.max(0.0));
                }
                std::mem::swap(&mut x, &mut y);
            }
            for (v, dv) in map.iter_mut().zip(&x) {
                *v += dv;
            }
            let next = self.readout(&map, m);
            for r in 0..m {
                for i in 0..k {
                    let t = j * k + i;
                    if t >= len {
                        break;
                    }
                    let w = (i + 1) as f32 / k as f32;
                    let o = &mut out[(r * len + t) * d..(r * len + t + 1) * d];
                    for ((o, a), b) in o
                        .iter_mut()
                        .zip(&prev[r * d..(r + 1) * d])
                        .zip(&next[r * d..(r + 1) * d])
                    {
                        *o = a + w * (b - a);
                    }
                }
            }
            prev = next;
        }
    }
}

/// A 3×3 convolution's weights `[c_out, c_all, 3, 3]` (row-major) for the input channels
/// `channels`, as a gemm right-hand side `[rows, c_out]`: `row(tap, i)` is the row of tap
/// `ky·3 + kx` of the range's `i`-th channel.
fn gather_taps(
    raw: &[f32],
    c_out: usize,
    c_all: usize,
    channels: std::ops::Range<usize>,
    row: impl Fn(usize, usize) -> usize,
) -> Vec<f32> {
    let mut w = vec![0.0; 9 * channels.len() * c_out];
    for co in 0..c_out {
        for (i, ci) in channels.clone().enumerate() {
            for t in 0..9 {
                w[row(t, i) * c_out + co] = raw[(co * c_all + ci) * 9 + t];
            }
        }
    }
    w
}

/// The taps `(ky, kx)` of a 3×3 convolution (padding 1) at cell `(y, x)` of a `side`² map that
/// fall inside it, as ranges of `ky` and `kx`: tap `(ky, kx)` reads cell `(y + ky − 1, x + kx − 1)`.
#[inline(always)]
fn taps_inside(y: usize, x: usize, side: usize) -> (std::ops::Range<usize>, std::ops::Range<usize>) {
    let range = |i: usize| usize::from(i == 0)..if i + 1 == side { 2 } else { 3 };
    (range(y), range(x))
}

/// `dst.copy_from_slice(src)`, inlined as vector moves for the channel counts of the shipped
/// shapes: a `memmove` call per few floats was most of the im2col's time.
#[inline(always)]
fn copy_small(dst: &mut [f32], src: &[f32]) {
    fn fixed<const N: usize>(dst: &mut [f32], src: &[f32]) {
        let d: &mut [f32; N] = dst.try_into().expect("equal lengths");
        *d = *<&[f32; N]>::try_from(src).expect("equal lengths");
    }
    match src.len() {
        4 => fixed::<4>(dst, src),
        8 => fixed::<8>(dst, src),
        16 => fixed::<16>(dst, src),
        32 => fixed::<32>(dst, src),
        _ => dst.copy_from_slice(src),
    }
}

/// The spatial predictor of `model` as planning dynamics (with `critic` for the terminal cost),
/// where the model has one.
pub fn spatial_dynamics(
    model: &crate::world_model::jepa::Jepa,
    critic: Option<crate::cost::critic::Critic>,
) -> Option<SpatialDynamics> {
    let (Some(sp), crate::perception::Encoder::Conv(enc)) = (&model.spatial, &model.encoder) else {
        return None;
    };
    Some(SpatialDynamics {
        rollout: SpatialRollout::new(sp, enc),
        critic,
    })
}

/// The spatial world model as planning dynamics: starts are the encoder's spatial states
/// `[c, s, s]`, imagined states the read-out latents (and keypoints where joined).
pub struct SpatialDynamics {
    pub rollout: SpatialRollout,
    /// The trained critic, for the terminal cost.
    pub critic: Option<crate::cost::critic::Critic>,
}

impl SpatialDynamics {
    /// The same dynamics with the keypoints joined to the latents with `weight` (see
    /// [`SpatialRollout::with_keypoints`]).
    pub fn with_keypoints(&self, weight: f32) -> SpatialDynamics {
        SpatialDynamics {
            rollout: self.rollout.clone().with_keypoints(weight),
            critic: self.critic.clone(),
        }
    }
}

impl Dynamics for SpatialDynamics {
    type Start = Vec<f32>;

    fn dim(&self) -> usize {
        self.rollout.state_dim()
    }

    fn rollout(&self, starts: &[Vec<f32>], n: usize, actions: &[f32], len: usize) -> Vec<f32> {
        self.rollout.rollout_rows(
            &repeat_rows(starts.iter().map(Vec::as_slice), n),
            actions,
            starts.len() * n,
            len,
        )
    }

    fn task_costs(
        &self,
        starts: &[Vec<f32>],
        goals: &[f32],
        n: usize,
        _actions: &[f32],
        states: &[f32],
        len: usize,
        cost: &CostConfig,
    ) -> Option<Vec<f32>> {
        let critic = self.critic.as_ref().filter(|_| cost.critic != 0.0)?;
        // The critic reads latents: planning refuses it with keypoints joined to them.
        assert_eq!(
            self.rollout.state_dim(),
            self.rollout.latent,
            "the critic reads latents alone"
        );
        let c = critic_costs(critic, goals, states, starts.len() * n, n, len, self.rollout.latent);
        Some(c.into_iter().map(|e| cost.critic * e).collect())
    }
}

/// Several spatial world models planning as one (an ensemble, as in PETS). A start is every
/// member's start map end to end, an imagined state every member's state (its latent, and
/// keypoints where joined) end to end, and the goal every member's goal state end to end: an
/// L2 goal distance on them is the root of the members' squared distances summed, so a plan
/// scores well only where every member imagines it reaching the goal, and a way through a wall
/// that one model wrongly believes in costs as much as that member's distance.
pub struct EnsembleDynamics {
    pub members: Vec<SpatialRollout>,
}

impl EnsembleDynamics {
    /// Length of one start (the members' maps).
    pub fn start_len(&self) -> usize {
        self.members.iter().map(SpatialRollout::map_len).sum()
    }
}

impl Dynamics for EnsembleDynamics {
    type Start = Vec<f32>;

    fn dim(&self) -> usize {
        self.members.iter().map(SpatialRollout::state_dim).sum()
    }

    fn rollout(&self, starts: &[Vec<f32>], n: usize, actions: &[f32], len: usize) -> Vec<f32> {
        let (rows, dim) = (starts.len() * n, self.dim());
        let mut out = vec![0.0; rows * len * dim];
        let (mut map_at, mut z_at) = (0, 0);
        for m in &self.members {
            let (ml, d) = (m.map_len(), m.state_dim());
            let maps = repeat_rows(starts.iter().map(|s| &s[map_at..map_at + ml]), n);
            let z = m.rollout_rows(&maps, actions, rows, len);
            for (o, z) in out.chunks_exact_mut(dim).zip(z.chunks_exact(d)) {
                o[z_at..z_at + d].copy_from_slice(z);
            }
            (map_at, z_at) = (map_at + ml, z_at + d);
        }
        out
    }
}
