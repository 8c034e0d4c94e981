//! What the planner imagines with: the learned predictor (batched, off autodiff, a
//! hand-written rollout on the same matmul kernels as burn's CPU backend). The world supplies
//! the true simulator for the oracle baseline as another [`Dynamics`].

use crate::cost::CostConfig;
use crate::matmul::Operand;
use crate::world_model::Predictor;
use burn::prelude::*;

/// A batched model of the dynamics for planning.
pub trait Dynamics: Sync {
    /// What a planning problem starts from (a latent, a simulator state).
    type Start: Sync;
    /// Size of an imagined state.
    fn dim(&self) -> usize;
    /// Rolls out `n` action sequences per start: `actions` `[starts·n, len, 2]` (the `n`
    /// candidates of start `p` are rows `p·n..(p+1)·n`) → states `[starts·n, len, dim]`.
    fn rollout(&self, starts: &[Self::Start], n: usize, actions: &[f32], len: usize) -> Vec<f32>;
    /// Costs the model itself estimates, one per trajectory (`states` as returned by
    /// [`rollout`](Self::rollout), `goals` `[starts, dim]`), added to the goal energy: the
    /// predicted collisions and the critic's terminal cost-to-go.
    #[allow(clippy::too_many_arguments)]
    fn task_costs(
        &self,
        _starts: &[Self::Start],
        _goals: &[f32],
        _n: usize,
        _actions: &[f32],
        _states: &[f32],
        _len: usize,
        _cost: &CostConfig,
    ) -> Option<Vec<f32>> {
        None
    }
    /// Energies and their gradients with respect to the actions, where the model is
    /// differentiable: `goals` `[starts, dim]`.
    fn energy_gradient(
        &self,
        _starts: &[Self::Start],
        _n: usize,
        _actions: &[f32],
        _len: usize,
        _goals: &[f32],
        _cost: &CostConfig,
    ) -> Option<(Vec<f32>, Vec<f32>)> {
        None
    }
}

/// `out[m, n] = x[m, k] · w[k, n]` added to what `out` holds (all row-major).
pub(crate) fn matmul_acc(x: &[f32], w: &[f32], out: &mut [f32], m: usize, k: usize, n: usize) {
    gemm_acc(x, w, out, m, k, n, m * n * k > 1 << 20)
}

/// [`matmul_acc`] on this thread alone (inside a task that is itself one of many).
pub(crate) fn matmul_acc_serial(x: &[f32], w: &[f32], out: &mut [f32], m: usize, k: usize, n: usize) {
    gemm_acc(x, w, out, m, k, n, false)
}

fn gemm_acc(x: &[f32], w: &[f32], out: &mut [f32], m: usize, k: usize, n: usize, parallel: bool) {
    let (x, w) = (Operand::row_major(x, k), Operand::row_major(w, n));
    crate::matmul::gemm(out, true, x, w, m, k, n, parallel);
}

use crate::values as to_vec;
use crate::world_model::linear_bias;

/// The residual-MLP predictor `z' = z + W3·relu(W2·relu(W1·[z, a] + b1) + b2) + b3`, with its
/// weights copied out of burn.
#[derive(Debug, Clone)]
pub struct MlpRollout {
    latent: usize,
    hidden: usize,
    /// Dimensions the MLP moves (the first ones; the rest are held as they are).
    moved: usize,
    /// `W1` split into its latent rows `[latent, hidden]` and action rows `[2, hidden]`.
    w1z: Vec<f32>,
    w1a: Vec<f32>,
    b1: Vec<f32>,
    w2: Vec<f32>,
    b2: Vec<f32>,
    w3: Vec<f32>,
    b3: Vec<f32>,
}

impl MlpRollout {
    pub fn new(p: &Predictor) -> MlpRollout {
        let [l1, l2, l3] = p.layers();
        let [inputs, hidden] = l1.weight.dims();
        let latent = inputs - 2;
        let w1 = to_vec(l1.weight.val());
        MlpRollout {
            latent,
            hidden,
            moved: l3.weight.dims()[1],
            w1z: w1[..latent * hidden].to_vec(),
            w1a: w1[latent * hidden..].to_vec(),
            b1: linear_bias(l1),
            w2: to_vec(l2.weight.val()),
            b2: linear_bias(l2),
            w3: to_vec(l3.weight.val()),
            b3: linear_bias(l3),
        }
    }

    /// One step for `m` rows in place: `z` `[m, latent]`, `a` `[m, 2]`; `h1`, `h2` scratch,
    /// and `delta` (`[m, moved]`, used only when dimensions are held).
    fn step(&self, z: &mut [f32], a: &[f32], h1: &mut [f32], h2: &mut [f32], delta: &mut [f32], m: usize) {
        let (d, h) = (self.latent, self.hidden);
        for r in 0..m {
            let (a0, a1) = (a[2 * r], a[2 * r + 1]);
            let row = &mut h1[r * h..(r + 1) * h];
            let (wx, wy) = self.w1a.split_at(h);
            for (((v, b), x), y) in row.iter_mut().zip(&self.b1).zip(wx).zip(wy) {
                *v = b + a0 * x + a1 * y;
            }
        }
        matmul_acc(z, &self.w1z, h1, m, d, h);
        h1[..m * h].iter_mut().for_each(|v| *v = v.max(0.0));
        for r in 0..m {
            h2[r * h..(r + 1) * h].copy_from_slice(&self.b2);
        }
        matmul_acc(h1, &self.w2, h2, m, h, h);
        h2[..m * h].iter_mut().for_each(|v| *v = v.max(0.0));
        if self.moved == d {
            for r in 0..m {
                for (v, b) in z[r * d..(r + 1) * d].iter_mut().zip(&self.b3) {
                    *v += b;
                }
            }
            matmul_acc(h2, &self.w3, z, m, h, d);
        } else {
            // The held dimensions stay; the moved ones get the MLP's output.
            let k = self.moved;
            let delta = &mut delta[..m * k];
            for row in delta.chunks_exact_mut(k) {
                row.copy_from_slice(&self.b3);
            }
            matmul_acc(h2, &self.w3, delta, m, h, k);
            for (row, dz) in z.chunks_exact_mut(d).zip(delta.chunks_exact(k)) {
                row[..k].iter_mut().zip(dz).for_each(|(v, x)| *v += x);
            }
        }
    }

    /// Open-loop rollout of `m` rows: `z0` `[m, latent]`, `actions` `[m, len, 2]` →
    /// `[m, len, latent]`.
    pub fn rollout_rows(&self, z0: &[f32], actions: &[f32], m: usize, len: usize) -> Vec<f32> {
        let (d, h) = (self.latent, self.hidden);
        let mut z = z0.to_vec();
        let mut a = vec![0.0; m * 2];
        let (mut h1, mut h2) = (vec![0.0; m * h], vec![0.0; m * h]);
        let mut delta = vec![0.0; if self.moved < d { m * self.moved } else { 0 }];
        let mut out = vec![0.0; m * len * d];
        for t in 0..len {
            for r in 0..m {
                a[2 * r..2 * r + 2].copy_from_slice(&actions[(r * len + t) * 2..(r * len + t) * 2 + 2]);
            }
            self.step(&mut z, &a, &mut h1, &mut h2, &mut delta, m);
            for r in 0..m {
                out[(r * len + t) * d..(r * len + t + 1) * d].copy_from_slice(&z[r * d..(r + 1) * d]);
            }
        }
        out
    }
}

/// The inverse-dynamics head `â = W2·relu(W1·[z, z'] + b1) + b2`, copied out of burn.
#[derive(Debug, Clone)]
pub struct MlpIdm {
    latent: usize,
    hidden: usize,
    /// `W1` split into the rows of `z` and of `z'`, each `[latent, hidden]`.
    w1a: Vec<f32>,
    w1b: Vec<f32>,
    b1: Vec<f32>,
    w2: Vec<f32>,
    b2: Vec<f32>,
}

impl MlpIdm {
    pub fn new(idm: &crate::world_model::InverseDynamics) -> MlpIdm {
        let [l1, l2] = idm.layers();
        let [inputs, hidden] = l1.weight.dims();
        let latent = inputs / 2;
        let w1 = to_vec(l1.weight.val());
        MlpIdm {
            latent,
            hidden,
            w1a: w1[..latent * hidden].to_vec(),
            w1b: w1[latent * hidden..].to_vec(),
            b1: linear_bias(l1),
            w2: to_vec(l2.weight.val()),
            b2: linear_bias(l2),
        }
    }

    /// Actions read from `m` pairs of latent rows `z`, `z'` (`[m, latent]` each) → `[m, 2]`.
    pub fn forward(&self, z: &[f32], z_next: &[f32], m: usize) -> Vec<f32> {
        let (d, h) = (self.latent, self.hidden);
        let mut hid = vec![0.0; m * h];
        for r in 0..m {
            hid[r * h..(r + 1) * h].copy_from_slice(&self.b1);
        }
        matmul_acc(z, &self.w1a, &mut hid, m, d, h);
        matmul_acc(z_next, &self.w1b, &mut hid, m, d, h);
        hid.iter_mut().for_each(|v| *v = v.max(0.0));
        let mut out = vec![0.0; m * 2];
        for r in 0..m {
            out[2 * r..2 * r + 2].copy_from_slice(&self.b2);
        }
        matmul_acc(&hid, &self.w2, &mut out, m, h, 2);
        out
    }
}

/// The learned world model as planning dynamics: starts are latents `[latent]`.
pub struct LatentDynamics {
    pub mlp: MlpRollout,
    /// The inverse-dynamics head, for the predicted-collision cost.
    pub idm: Option<MlpIdm>,
    /// The predictor on an autodiff device, for the gradient planner.
    pub differentiable: Option<Predictor>,
    /// The trained critic, for the terminal cost.
    pub critic: Option<crate::cost::critic::Critic>,
}

impl LatentDynamics {
    pub fn new(predictor: &Predictor, differentiable: Option<Predictor>) -> LatentDynamics {
        LatentDynamics {
            mlp: MlpRollout::new(predictor),
            idm: None,
            differentiable,
            critic: None,
        }
    }

    /// With the inverse-dynamics head (for the predicted-collision cost).
    pub fn with_idm(mut self, idm: &crate::world_model::InverseDynamics) -> LatentDynamics {
        self.idm = Some(MlpIdm::new(idm));
        self
    }

    /// With the trained critic (for its terminal cost).
    pub fn with_critic(mut self, critic: Option<crate::cost::critic::Critic>) -> LatentDynamics {
        self.critic = critic;
        self
    }
}

/// The critic's cost-to-go from each trajectory's last state to its start's goal: `states`
/// `[m, len, d]` (`n` candidates per start), `goals` `[m / n, d]`.
pub(crate) fn critic_costs(
    critic: &crate::cost::critic::Critic,
    goals: &[f32],
    states: &[f32],
    m: usize,
    n: usize,
    len: usize,
    d: usize,
) -> Vec<f32> {
    let last: Vec<f32> = (0..m)
        .flat_map(|i| states[((i + 1) * len - 1) * d..(i + 1) * len * d].iter().copied())
        .collect();
    let g = repeat_rows(goals.chunks_exact(d), n);
    critic.energy(&last, &g, m)
}

/// Copies each row `n` times: `[rows, d]` → `[rows·n, d]`.
pub(crate) fn repeat_rows<'a>(rows: impl IntoIterator<Item = &'a [f32]>, n: usize) -> Vec<f32> {
    rows.into_iter()
        .flat_map(|s| std::iter::repeat_n(s, n).flatten().copied())
        .collect()
}

impl Dynamics for LatentDynamics {
    type Start = Vec<f32>;

    fn dim(&self) -> usize {
        self.mlp.latent
    }

    fn rollout(&self, starts: &[Vec<f32>], n: usize, actions: &[f32], len: usize) -> Vec<f32> {
        self.mlp.rollout_rows(
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
        actions: &[f32],
        states: &[f32],
        len: usize,
        cost: &CostConfig,
    ) -> Option<Vec<f32>> {
        let d = self.mlp.latent;
        let m = starts.len() * n;
        let mut total = vec![0.0f32; m];
        let mut any = false;
        if let (true, Some(idm)) = (cost.collision != 0.0, self.idm.as_ref()) {
            // Pairs (z[t−1], z[t]) of every step of every candidate, z[−1] the start.
            let mut before = Vec::with_capacity(m * len * d);
            for i in 0..m {
                before.extend_from_slice(&starts[i / n]);
                before.extend_from_slice(&states[i * len * d..((i + 1) * len - 1) * d]);
            }
            let read = idm.forward(&before, states, m * len);
            for (i, t) in total.iter_mut().enumerate() {
                let s: f32 = (0..len * 2)
                    .map(|k| (actions[i * len * 2 + k] - read[i * len * 2 + k]).powi(2))
                    .sum();
                *t += cost.collision * s / len as f32;
            }
            any = true;
        }
        if let (true, Some(critic)) = (cost.critic != 0.0, self.critic.as_ref()) {
            for (t, e) in total.iter_mut().zip(critic_costs(critic, goals, states, m, n, len, d)) {
                *t += cost.critic * e;
            }
            any = true;
        }
        any.then_some(total)
    }

    fn energy_gradient(
        &self,
        starts: &[Vec<f32>],
        n: usize,
        actions: &[f32],
        len: usize,
        goals: &[f32],
        cost: &CostConfig,
    ) -> Option<(Vec<f32>, Vec<f32>)> {
        let p = self.differentiable.as_ref()?;
        let device = p.devices().into_iter().next()?;
        let d = self.mlp.latent;
        let m = starts.len() * n;
        let z0 = Tensor::<2>::from_data(
            TensorData::new(repeat_rows(starts.iter().map(Vec::as_slice), n), [m, d]),
            &device,
        );
        let goal_rows = repeat_rows(goals.chunks_exact(d), n);
        let g = Tensor::<2>::from_data(TensorData::new(goal_rows, [m, d]), &device);
        let a = Tensor::<3>::from_data(TensorData::new(actions.to_vec(), [m, len, 2]), &device).require_grad();
        let states = p.rollout(z0, a.clone());
        let e = cost.energy_tensor(states, g, a.clone());
        let grads = e.clone().sum().backward();
        let ga = a.grad(&grads)?;
        Some((to_vec(e.inner()), to_vec(ga)))
    }
}

/// A dynamics model seen through a linear map of its states, `s ↦ s·W + b`: the level-1 model
/// imagining in level-2 space, so that its plans are scored against a level-2 subgoal.
pub struct Abstracted<'a, D> {
    pub inner: &'a D,
    /// `[from, to]` row-major.
    w: Vec<f32>,
    b: Vec<f32>,
    from: usize,
    to: usize,
}

impl<'a, D: Dynamics> Abstracted<'a, D> {
    /// `w` `[inner.dim(), b.len()]` row-major.
    pub fn new(inner: &'a D, w: Vec<f32>, b: Vec<f32>) -> Abstracted<'a, D> {
        let (from, to) = (inner.dim(), b.len());
        assert_eq!(w.len(), from * to, "the map's weights must be [{from}, {to}]");
        Abstracted { inner, w, b, from, to }
    }

    /// Maps rows of inner states `[m, from]` → `[m, to]`.
    pub fn map(&self, x: &[f32]) -> Vec<f32> {
        let m = x.len() / self.from;
        let mut out: Vec<f32> = (0..m).flat_map(|_| self.b.iter().copied()).collect();
        matmul_acc(x, &self.w, &mut out, m, self.from, self.to);
        out
    }
}

impl<D: Dynamics> Dynamics for Abstracted<'_, D> {
    type Start = D::Start;

    fn dim(&self) -> usize {
        self.to
    }

    fn rollout(&self, starts: &[D::Start], n: usize, actions: &[f32], len: usize) -> Vec<f32> {
        self.map(&self.inner.rollout(starts, n, actions, len))
    }
}
