//! The native module of the `amisim` Python package: amisim's environments, agent and datasets
//! behind a small surface that moves whole batches as bytes. The package's Python code
//! (`python/amisim/`) turns them into numpy arrays and Gymnasium environments.
//!
//! Arrays cross as `(bytearray, dtype, shape)` triples: one copy of a whole batch into a
//! bytearray, which numpy then views without copying (`np.frombuffer`, writable).

use amisim::agent::{Agent as CoreAgent, Observations, Trace};
use amisim::data::dataset::{shard_path, Provenance, Shard};
use amisim::data::Episodes;
use amisim::world::gym::{GymEnvs, GymStep};
use amisim::world::sim::{EnvState, STATE_DIM, STATE_NAMES};
use amisim::world::Scene;
use pyo3::create_exception;
use pyo3::exceptions::{PyRuntimeError, PyValueError};
use pyo3::prelude::*;
use pyo3::types::{PyByteArray, PyDict, PyList};
use std::path::Path;

create_exception!(
    _amisim,
    SceneError,
    PyValueError,
    "A scene file that could not be read, parsed or validated (the message names the file, line and field)."
);
create_exception!(
    _amisim,
    AmisimError,
    PyRuntimeError,
    "An error inside amisim (the message says what and where)."
);

/// An array for Python: the bytes, numpy's dtype string and the shape.
type Array<'py> = (Bound<'py, PyByteArray>, &'static str, Vec<usize>);

fn u8s<'py>(py: Python<'py>, v: &[u8], shape: Vec<usize>) -> Array<'py> {
    (PyByteArray::new(py, v), "u1", shape)
}

fn f32s<'py>(py: Python<'py>, v: &[f32], shape: Vec<usize>) -> Array<'py> {
    let bytes: Vec<u8> = v.iter().flat_map(|x| x.to_le_bytes()).collect();
    (PyByteArray::new(py, &bytes), "<f4", shape)
}

fn bools<'py>(py: Python<'py>, v: &[bool]) -> Array<'py> {
    let bytes: Vec<u8> = v.iter().map(|&b| b as u8).collect();
    (PyByteArray::new(py, &bytes), "?", vec![v.len()])
}

fn err(e: anyhow::Error) -> PyErr {
    if let Some(s) = e.downcast_ref::<amisim::world::SceneError>() {
        return SceneError::new_err(s.to_string());
    }
    AmisimError::new_err(format!("{e:#}"))
}

fn scene(name_or_path: &str) -> PyResult<Scene> {
    Scene::load(name_or_path).map_err(|e| SceneError::new_err(e.to_string()))
}

/// Little-endian f32 bytes as `n` actions.
fn actions_from(bytes: &[u8], n: usize) -> PyResult<Vec<[f32; 2]>> {
    if bytes.len() != n * 8 {
        return Err(PyValueError::new_err(format!(
            "actions: expected shape ({n}, 2) float32 ({} bytes), got {} bytes",
            n * 8,
            bytes.len()
        )));
    }
    let v: Vec<f32> = amisim::le_f32s(bytes).collect();
    Ok(v.chunks_exact(2).map(|a| [a[0], a[1]]).collect())
}

fn states_rows(states: &[EnvState]) -> Vec<f32> {
    states.iter().flat_map(|s| s.to_vec()).collect()
}

/// A scene's state entries: [`STATE_NAMES`] without the box's where it has none.
fn state_names_of(scene: &Scene) -> Vec<&'static str> {
    let has_box = matches!(scene, Scene::TopDown(t) if t.pushable.is_some());
    STATE_NAMES
        .iter()
        .copied()
        .filter(|n| has_box || !n.starts_with("box_"))
        .collect()
}

/// The entries of `scene`'s state rows (see `Envs.state_names`).
#[pyfunction]
fn state_names(scene_name: &str) -> PyResult<Vec<&'static str>> {
    Ok(state_names_of(&scene(scene_name)?))
}

/// Every dataset state entry, in order.
#[pyfunction]
fn all_state_names() -> Vec<&'static str> {
    STATE_NAMES.to_vec()
}

/// Environments of one scene with Gymnasium's semantics (next-step autoreset).
#[pyclass(module = "amisim._amisim")]
struct Envs {
    envs: Threadable,
}

/// The environments, movable between Python's threads (stable-worldmodel steps its
/// environments from a thread pool).
///
/// Their Bevy app is not `Send` for one reason: the boxed runner closure an `App` keeps for
/// `App::run`, which amisim never calls (it drives `update` itself). Everything else it holds
/// is `Send`, and Bevy checks at run time that a non-send resource is only touched on the
/// thread that made it (a headless app has none: no window, no event loop). PyO3 hands out
/// `&mut` to one caller at a time, so no two threads use the app at once.
struct Threadable(GymEnvs);

// SAFETY: see the type's documentation: the only non-thread-safe part is never used, and
// access is exclusive through PyO3's borrow checking.
unsafe impl Send for Threadable {}
unsafe impl Sync for Threadable {}

impl std::ops::Deref for Threadable {
    type Target = GymEnvs;
    fn deref(&self) -> &GymEnvs {
        &self.0
    }
}

impl std::ops::DerefMut for Threadable {
    fn deref_mut(&mut self) -> &mut GymEnvs {
        &mut self.0
    }
}

#[pymethods]
impl Envs {
    /// Observations `(num_envs, H, W, 3)` when `channels_last`, else `(num_envs, 3, H, W)`.
    #[new]
    fn new(scene_name: &str, num_envs: usize, channels_last: bool) -> PyResult<Envs> {
        let s = scene(scene_name)?;
        let envs = GymEnvs::new(s, num_envs, channels_last).map_err(err)?;
        Ok(Envs { envs: Threadable(envs) })
    }

    #[getter]
    fn num_envs(&self) -> usize {
        self.envs.num_envs()
    }

    #[getter]
    fn frame_shape(&self) -> Vec<usize> {
        self.envs.frame_shape().to_vec()
    }

    #[getter]
    fn scene_name(&self) -> String {
        self.envs.scene().name().to_string()
    }

    #[getter]
    fn max_steps(&self) -> u32 {
        self.envs.scene().episode().max_steps
    }

    /// The largest action component the world takes (actions are clipped to it).
    #[getter]
    fn max_action(&self) -> PyResult<f32> {
        Ok(amisim::agents::world(self.envs.scene()).map_err(err)?.max_step)
    }

    /// The largest action per component: (step x, step y) top-down, (metres forward, radians
    /// turned) first-person.
    #[getter]
    fn action_high(&self) -> (f32, f32) {
        match self.envs.scene() {
            Scene::TopDown(s) => (s.agent.max_step, s.agent.max_step),
            Scene::FirstPerson(s) => (s.agent.max_forward, s.agent.max_turn_degrees.to_radians()),
        }
    }

    #[getter]
    fn first_person(&self) -> bool {
        matches!(self.envs.scene(), Scene::FirstPerson(_))
    }

    #[getter]
    fn non_finite_actions(&self) -> u64 {
        self.envs.non_finite_actions()
    }

    /// The entries of a state row (`info["state"]`): every entry of a dataset's state
    /// except the box's in a scene without one.
    #[getter]
    fn state_names(&self) -> Vec<&'static str> {
        state_names_of(self.envs.scene())
    }

    fn reset<'py>(&mut self, py: Python<'py>, seed: u64) -> PyResult<Bound<'py, PyDict>> {
        let step = self.envs.reset(seed).map_err(err)?;
        self.result(py, &step)
    }

    /// New episodes in the environments `which` only.
    fn restart<'py>(&mut self, py: Python<'py>, which: Vec<usize>) -> PyResult<Bound<'py, PyDict>> {
        let step = self.envs.restart(&which).map_err(err)?;
        self.result(py, &step)
    }

    /// `actions`: little-endian float32 bytes of shape `(num_envs, 2)`.
    fn step<'py>(&mut self, py: Python<'py>, actions: &[u8]) -> PyResult<Bound<'py, PyDict>> {
        let actions = actions_from(actions, self.envs.num_envs())?;
        let step = self.envs.step(&actions).map_err(err)?;
        self.result(py, &step)
    }

    /// Goal observations of the running episodes, in the observations' layout.
    fn goal_frames<'py>(&self, py: Python<'py>) -> Array<'py> {
        let [a, b, c] = self.envs.frame_shape();
        u8s(py, self.envs.goal_frames(), vec![self.envs.num_envs(), a, b, c])
    }

    /// Moves environment `i`'s agent (and box) to a state row's; returns the observations.
    fn set_agent<'py>(&mut self, py: Python<'py>, i: usize, row: Vec<f32>) -> PyResult<Bound<'py, PyDict>> {
        let step = self.envs.set_agent(i, &row).map_err(err)?;
        self.result(py, &step)
    }

    /// Gives environment `i` the goal a state row shows (its agent's place, or its box's).
    fn set_goal(&mut self, i: usize, row: Vec<f32>) -> PyResult<()> {
        self.envs.set_goal(i, &row).map_err(err)
    }
}

impl Envs {
    fn result<'py>(&self, py: Python<'py>, step: &GymStep) -> PyResult<Bound<'py, PyDict>> {
        let n = self.envs.num_envs();
        let d = PyDict::new(py);
        d.set_item("obs", u8s(py, &step.obs.frames, step.obs.shape.to_vec()))?;
        d.set_item("reward", f32s(py, &step.reward, vec![n]))?;
        d.set_item("terminated", bools(py, &step.terminated))?;
        d.set_item("truncated", bools(py, &step.truncated))?;
        d.set_item("started", bools(py, &step.started))?;
        let success: Vec<bool> = step.info.iter().map(|i| i.success).collect();
        let collided: Vec<bool> = step.info.iter().map(|i| i.collided).collect();
        let distance: Vec<f32> = step.info.iter().map(|i| i.goal_distance).collect();
        let steps: Vec<f32> = step.info.iter().map(|i| i.steps as f32).collect();
        d.set_item("success", bools(py, &success))?;
        d.set_item("collided", bools(py, &collided))?;
        d.set_item("goal_distance", f32s(py, &distance, vec![n]))?;
        d.set_item("steps", f32s(py, &steps, vec![n]))?;
        d.set_item("state", f32s(py, &states_rows(self.envs.states()), vec![n, STATE_DIM]))?;
        let layout: Vec<f32> = self
            .envs
            .states()
            .iter()
            .flat_map(amisim::data::collect::layout_row)
            .collect();
        d.set_item("layout", f32s(py, &layout, vec![n, layout.len() / n.max(1)]))?;
        d.set_item(
            "goal_state",
            f32s(py, &states_rows(self.envs.goal_states()), vec![n, STATE_DIM]),
        )?;
        Ok(d)
    }
}

/// An agent (a spec file and its models) acting in `num_envs` environments side by side.
#[pyclass(module = "amisim._amisim")]
struct Agent {
    agent: CoreAgent,
    name: String,
    describe: String,
    last: Option<Trace>,
}

fn observations<'a>(bytes: &'a [u8], n: usize, frame: [usize; 3], what: &str) -> PyResult<Observations<'a>> {
    let [c, h, w] = frame;
    if bytes.len() != n * c * h * w {
        return Err(PyValueError::new_err(format!(
            "{what}: expected shape ({n}, {c}, {h}, {w}) uint8 ({} bytes), got {} bytes",
            n * c * h * w,
            bytes.len()
        )));
    }
    Ok(Observations {
        frames: bytes,
        shape: [n, c, h, w],
        truth: None,
    })
}

#[pymethods]
impl Agent {
    /// `agent`: `default` (the scene's shipped agent), a preset of the scene's folder, a spec
    /// file, a folder holding an `agent.ron`, or `random`; `sets`: `KEY=VALUE` entries.
    #[new]
    fn new(agent: &str, scene_name: &str, num_envs: usize, sets: Vec<String>) -> PyResult<Agent> {
        if agent == "oracle" {
            return Err(PyValueError::new_err(
                "the oracle plans with the world's true states, which observations do not carry; use `amisim eval --agent oracle`",
            ));
        }
        let s = scene(scene_name)?;
        let mut opened = amisim::agents::open(&[agent.to_string()], scene_name, &sets).map_err(err)?;
        let o = opened.remove(0);
        let world = amisim::agents::world(&s).map_err(err)?;
        let describe = o.spec.describe();
        let core = CoreAgent::new(o.spec, o.models, num_envs, world).map_err(err)?;
        Ok(Agent {
            agent: core,
            name: o.name,
            describe,
            last: None,
        })
    }

    #[getter]
    fn name(&self) -> String {
        self.name.clone()
    }

    #[getter]
    fn num_envs(&self) -> usize {
        self.agent.envs()
    }

    /// The spec, as `eval` prints it.
    #[getter]
    fn spec(&self) -> String {
        self.describe.clone()
    }

    /// Width of the first world model's latent (0 for an agent without one).
    #[getter]
    fn latent_dim(&self) -> usize {
        self.agent.models().first().map_or(0, |m| m.latent())
    }

    /// Environment `i` starts a new episode: the agent forgets it (plans, memories), its
    /// random draws seeded with `seed`.
    fn reset(&mut self, i: usize, seed: u64) -> PyResult<()> {
        if i >= self.agent.envs() {
            return Err(PyValueError::new_err(format!(
                "environment {i} is not one of the agent's {}",
                self.agent.envs()
            )));
        }
        self.agent.reset(i, seed);
        Ok(())
    }

    /// Actions `(num_envs, 2)` for observations and goals `(num_envs, 3, H, W)` u8, acting in
    /// the environments `active` (all when None; the others get 0).
    fn act<'py>(
        &mut self,
        py: Python<'py>,
        obs: &[u8],
        goal: &[u8],
        frame: [usize; 3],
        active: Option<Vec<usize>>,
    ) -> PyResult<Array<'py>> {
        let n = self.agent.envs();
        let o = observations(obs, n, frame, "obs")?;
        let g = observations(goal, n, frame, "goal")?;
        let active = active.unwrap_or_else(|| (0..n).collect());
        let (actions, trace) = self.agent.act(&o, &g, &active).map_err(err)?;
        self.last = Some(trace);
        let flat: Vec<f32> = actions.iter().flatten().copied().collect();
        Ok(f32s(py, &flat, vec![n, 2]))
    }

    /// What the agent did at its last `act`: per environment the world model that acted, the
    /// plan made (actions `[L, 2]`, imagined states `[L, D]`, cost) padded with NaN to the
    /// longest, and the time spent.
    fn trace<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyDict>> {
        let d = PyDict::new(py);
        let Some(t) = &self.last else { return Ok(d) };
        let n = t.envs.len();
        let len = t
            .envs
            .iter()
            .filter_map(|e| e.plan.as_ref())
            .map(|p| p.actions.len() / 2)
            .max()
            .unwrap_or(0);
        let dim = t
            .envs
            .iter()
            .filter_map(|e| e.plan.as_ref())
            .find(|p| !p.actions.is_empty())
            .map_or(0, |p| p.imagined.len() / (p.actions.len() / 2).max(1));
        let mut actions = vec![f32::NAN; n * len * 2];
        let mut imagined = vec![f32::NAN; n * len * dim];
        let mut cost = vec![f32::NAN; n];
        let mut planned = vec![false; n];
        let mut model = Vec::with_capacity(n);
        let mut mode1 = Vec::with_capacity(n);
        for (i, e) in t.envs.iter().enumerate() {
            model.push(e.model as f32);
            mode1.push(e.mode1);
            if let Some(p) = &e.plan {
                planned[i] = true;
                cost[i] = p.cost;
                actions[i * len * 2..i * len * 2 + p.actions.len()].copy_from_slice(&p.actions);
                if p.imagined.len() <= len * dim {
                    imagined[i * len * dim..i * len * dim + p.imagined.len()].copy_from_slice(&p.imagined);
                }
            }
        }
        d.set_item("planned", bools(py, &planned))?;
        d.set_item("model", f32s(py, &model, vec![n]))?;
        d.set_item("mode1", bools(py, &mode1))?;
        d.set_item("cost", f32s(py, &cost, vec![n]))?;
        d.set_item("plan_actions", f32s(py, &actions, vec![n, len, 2]))?;
        d.set_item("imagined", f32s(py, &imagined, vec![n, len, dim]))?;
        d.set_item("encode_ms", t.encode_ms)?;
        d.set_item("plan_ms", t.plan_ms)?;
        Ok(d)
    }

    /// The first world model's latents of frames `(B, 3, H, W)` u8: `(B, D)`.
    fn encode<'py>(&self, py: Python<'py>, frames: &[u8], shape: [usize; 4]) -> PyResult<Array<'py>> {
        let model = self.model()?;
        let [b, c, h, w] = shape;
        let o = observations(frames, b, [c, h, w], "frames")?;
        let z = amisim::agent::encode(model, &o, &amisim::checkpoint::cpu_device());
        let d = z.len() / b.max(1);
        Ok(f32s(py, &z, vec![b, d]))
    }

    /// The first world model's open-loop prediction from latents `(B, D)` under actions
    /// `(B, T, 2)`: `(B, T, D)`, step k the latent after action k.
    fn predict<'py>(&self, py: Python<'py>, z: &[u8], b: usize, actions: &[u8], steps: usize) -> PyResult<Array<'py>> {
        let model = self.model()?;
        let d = model.latent();
        let floats = |bytes: &[u8]| -> Vec<f32> { amisim::le_f32s(bytes).collect() };
        let (z, a) = (floats(z), floats(actions));
        if z.len() != b * d {
            return Err(PyValueError::new_err(format!(
                "z: expected shape ({b}, {d}) float32, got {} values",
                z.len()
            )));
        }
        if a.len() != b * steps * 2 {
            return Err(PyValueError::new_err(format!(
                "actions: expected shape ({b}, {steps}, 2) float32, got {} values",
                a.len()
            )));
        }
        let out = amisim::agent::predict(model, &z, &a, b, steps, &amisim::checkpoint::cpu_device());
        Ok(f32s(py, &out, vec![b, steps, d]))
    }
}

impl Agent {
    fn model(&self) -> PyResult<&amisim::world_model::jepa::Jepa> {
        self.agent
            .models()
            .first()
            .ok_or_else(|| PyValueError::new_err(format!("agent {} has no world model", self.name)))
    }
}

/// Every shard of a dataset folder (`amisim collect`, `eval --record`, `write_dataset`): its
/// arrays and its header (as JSON text).
#[pyfunction]
fn load_dataset<'py>(py: Python<'py>, dir: &str) -> PyResult<Bound<'py, PyDict>> {
    let path = Path::new(dir);
    let header = Episodes::header(path).map_err(err)?;
    let e = Episodes::load(path).map_err(err)?;
    let [c, h, w] = e.frame_shape;
    let d = PyDict::new(py);
    d.set_item("frames", u8s(py, &e.frames, vec![e.episodes, e.steps + 1, c, h, w]))?;
    d.set_item("actions", f32s(py, &e.actions, vec![e.episodes, e.steps, 2]))?;
    d.set_item(
        "states",
        f32s(py, &e.states, vec![e.episodes, e.steps + 1, e.state_dim]),
    )?;
    d.set_item("layout", f32s(py, &e.layout, vec![e.episodes, e.layout_width]))?;
    d.set_item("header", serde_json::to_string(&header).map_err(|e| err(e.into()))?)?;
    Ok(d)
}

/// Writes episodes as a dataset folder `amisim train --data` reads: frames `(E, T+1, 3, H, W)`
/// u8, actions `(E, T, 2)` f32, states `(E, T+1, 7)` f32, collided `(E, T+1)` u8, layout
/// `(E, L)` f32 (all as bytes, with their shapes checked here).
#[pyfunction]
#[allow(clippy::too_many_arguments)]
fn write_dataset(
    dir: &str,
    scene_name: &str,
    frames: &[u8],
    frame_shape: [usize; 5],
    actions: &[u8],
    states: &[u8],
    collided: &[u8],
    layout: &[u8],
    layout_width: usize,
    policy: &str,
    seed: u64,
) -> PyResult<String> {
    let s = scene(scene_name)?;
    let [e, t1, c, h, w] = frame_shape;
    if t1 < 2 {
        return Err(PyValueError::new_err("frames: an episode needs at least 2 frames"));
    }
    let res = s.resolution() as usize;
    if [c, h, w] != [3, res, res] {
        return Err(PyValueError::new_err(format!(
            "frames: scene {} observes (3, {res}, {res}) frames, got ({c}, {h}, {w})",
            s.name()
        )));
    }
    let columns = amisim::data::collect::layout_columns(&s);
    let checks = [
        ("frames", frames.len(), e * t1 * c * h * w),
        ("actions", actions.len(), e * (t1 - 1) * 2 * 4),
        ("states", states.len(), e * t1 * STATE_DIM * 4),
        ("collided", collided.len(), e * t1),
        ("layout", layout.len(), e * layout_width * 4),
    ];
    for (name, got, want) in checks {
        if got != want {
            return Err(PyValueError::new_err(format!(
                "{name}: {got} bytes, expected {want} for {e} episodes of {} steps",
                t1 - 1
            )));
        }
    }
    if layout_width != columns.len() {
        return Err(PyValueError::new_err(format!(
            "layout: {layout_width} columns, scene {} has {} ({})",
            s.name(),
            columns.len(),
            columns.join(", ")
        )));
    }
    let shard = Shard {
        episodes: e,
        steps: t1 - 1,
        frame_shape: [c, h, w],
        frames: frames.to_vec(),
        actions: amisim::le_f32s(actions).collect(),
        states: amisim::le_f32s(states).collect(),
        collided: collided.to_vec(),
        layout: amisim::le_f32s(layout).collect(),
        layout_width,
        first_episode: 0,
    };
    let out = Path::new(dir);
    let from = Provenance {
        scene: s.name().into(),
        scene_file: amisim::world::scene::resolve_scene_path(scene_name)
            .display()
            .to_string(),
        seed,
        policy: policy.into(),
        settings: serde_json::json!({ "written_by": "python" }),
        layout_columns: columns,
    };
    shard.write_dataset(out, from).map_err(err)?;
    Ok(shard_path(out, 0).display().to_string())
}

/// The layout row of each environment's episode (what a dataset's `layout` holds) and the
/// names of its columns.
#[pyfunction]
fn layout_columns(scene_name: &str) -> PyResult<Vec<String>> {
    Ok(amisim::data::collect::layout_columns(&scene(scene_name)?))
}

/// The scene files shipped with amisim (names for `make`).
#[pyfunction]
fn shipped_scenes<'py>(py: Python<'py>) -> PyResult<Bound<'py, PyList>> {
    PyList::new(py, amisim::world::scene::shipped_scene_names())
}

#[pymodule]
fn _amisim(m: &Bound<'_, PyModule>) -> PyResult<()> {
    m.add_class::<Envs>()?;
    m.add_class::<Agent>()?;
    m.add_function(wrap_pyfunction!(load_dataset, m)?)?;
    m.add_function(wrap_pyfunction!(write_dataset, m)?)?;
    m.add_function(wrap_pyfunction!(layout_columns, m)?)?;
    m.add_function(wrap_pyfunction!(shipped_scenes, m)?)?;
    m.add_function(wrap_pyfunction!(state_names, m)?)?;
    m.add_function(wrap_pyfunction!(all_state_names, m)?)?;
    m.add("SceneError", m.py().get_type::<SceneError>())?;
    m.add("AmisimError", m.py().get_type::<AmisimError>())?;
    Ok(())
}
