//! Parity of the self-supervised losses with their official implementations: the losses and
//! gradients in `tests/data/ssl_parity.json` were computed (in float64) by
//! `bench/ssl_parity.py`, which follows each official implementation line by line (files and
//! commits cited there); here the same float32 inputs go through `amisim::ssl::losses` on the
//! autodiff backend and the loss and every gradient must agree to 1e-5, relative to the
//! largest golden value of each. `cargo test --release parity -- --nocapture` prints the
//! errors.

use amisim::ssl::losses;
use burn::prelude::*;
use serde::Deserialize;
use std::collections::BTreeMap;

#[derive(Deserialize)]
struct Array {
    shape: Vec<usize>,
    data: Vec<f64>,
}

#[derive(Deserialize)]
struct Case {
    name: String,
    params: serde_json::Value,
    inputs: BTreeMap<String, Array>,
    loss: f64,
    grads: BTreeMap<String, Array>,
}

#[derive(Deserialize)]
struct Golden {
    cases: Vec<Case>,
}

const TOLERANCE: f64 = 1e-5;

fn device() -> Device {
    Device::flex().autodiff()
}

fn tensor<const D: usize>(a: &Array) -> Tensor<D> {
    let shape: [usize; D] = a.shape.clone().try_into().expect("rank");
    let v: Vec<f32> = a.data.iter().map(|&x| x as f32).collect();
    Tensor::from_data(TensorData::new(v, shape), &device()).require_grad()
}

/// Largest |got − want| over the largest |want| (a relative error that a near-zero entry does
/// not blow up).
fn rel(got: &[f32], want: &[f64]) -> f64 {
    assert_eq!(got.len(), want.len(), "lengths");
    let scale = want.iter().fold(0f64, |m, w| m.max(w.abs())).max(1e-12);
    got.iter()
        .zip(want)
        .fold(0f64, |m, (&g, &w)| m.max((g as f64 - w).abs()))
        / scale
}

fn blocks(params: &serde_json::Value) -> Vec<Vec<Vec<usize>>> {
    serde_json::from_value(params["masks_pred"].clone()).expect("masks_pred")
}

fn f(params: &serde_json::Value, key: &str) -> f32 {
    params[key].as_f64().unwrap_or_else(|| panic!("{key}")) as f32
}

/// Reads one leaf's gradient out of the gradients of a backward pass.
type GradOf = Box<dyn Fn(&burn::tensor::Gradients) -> Vec<f32>>;

/// Runs one case: its loss and the gradients it names, as `(name, tensor)` pairs.
fn run(c: &Case) -> (f32, Vec<(String, Vec<f32>)>) {
    let t2 = |k: &str| tensor::<2>(&c.inputs[k]);
    let t3 = |k: &str| tensor::<3>(&c.inputs[k]);
    let grads_of = |loss: Tensor<1>, leaves: Vec<(&str, GradOf)>| {
        let value = amisim::values(loss.clone())[0];
        let g = loss.backward();
        (
            value,
            leaves.into_iter().map(|(k, read)| (k.to_string(), read(&g))).collect(),
        )
    };
    macro_rules! leaf {
        ($t:expr) => {{
            let t = $t.clone();
            Box::new(move |g: &burn::tensor::Gradients| amisim::values(t.grad(g).expect("a gradient")))
                as Box<dyn Fn(&burn::tensor::Gradients) -> Vec<f32>>
        }};
    }
    let name = c.name.as_str();
    match name {
        "vicreg" => {
            let (x, y) = (t2("x"), t2("y"));
            let w = (f(&c.params, "sim"), f(&c.params, "std"), f(&c.params, "cov"));
            let [loss, ..] = losses::vicreg(x.clone(), y.clone(), w);
            grads_of(loss, vec![("x", leaf!(x)), ("y", leaf!(y))])
        }
        n if n.starts_with("simclr") => {
            let (a, b) = (t2("h1"), t2("h2"));
            let loss = losses::nt_xent(a.clone(), b.clone(), f(&c.params, "temperature"));
            grads_of(loss, vec![("h1", leaf!(a)), ("h2", leaf!(b))])
        }
        "byol" => {
            let (p1, p2) = (t2("p1"), t2("p2"));
            let (z1, z2) = (t2("z1").detach(), t2("z2").detach());
            let loss = losses::byol(p1.clone(), z2) + losses::byol(p2.clone(), z1);
            grads_of(loss, vec![("p1", leaf!(p1)), ("p2", leaf!(p2))])
        }
        n if n.starts_with("mae") => {
            let imgs = tensor::<4>(&c.inputs["imgs"]).detach();
            let pred = t3("pred");
            let mask = t2("mask").detach();
            let p = c.params["patch"].as_u64().expect("patch") as usize;
            let norm = c.params["norm_pix_loss"].as_bool().expect("norm_pix_loss");
            let loss = losses::mae(pred.clone(), losses::patchify(imgs, p), mask, norm);
            grads_of(loss, vec![("pred", leaf!(pred))])
        }
        "ijepa" | "vjepa" => {
            let (h, z) = (t3("h").detach(), t3("z"));
            let b = blocks(&c.params);
            let loss = if name == "ijepa" {
                losses::ijepa(z.clone(), h, &b)
            } else {
                losses::vjepa(z.clone(), h, &b)
            };
            grads_of(loss, vec![("z", leaf!(z))])
        }
        "sigreg" | "lejepa" => {
            let (proj, a) = (t3("proj"), t2("A").detach());
            let loss = if name == "sigreg" {
                losses::sigreg(proj.clone(), a)
            } else {
                let [total, ..] = losses::lejepa(proj.clone(), a, f(&c.params, "lamb"));
                total
            };
            grads_of(loss, vec![("proj", leaf!(proj))])
        }
        "batchnorm" => {
            let t1 = |k: &str| tensor::<1>(&c.inputs[k]);
            let (x, gamma, beta, w) = (t2("x"), t1("gamma"), t1("beta"), t2("w").detach());
            let y = amisim::ssl::model::batch_norm(x.clone(), gamma.clone(), beta.clone());
            let loss = (y * w).sum();
            grads_of(
                loss,
                vec![("x", leaf!(x)), ("gamma", leaf!(gamma)), ("beta", leaf!(beta))],
            )
        }
        other => panic!("no runner for golden case {other:?}"),
    }
}

#[test]
fn ssl_losses_and_gradients_match_the_official_implementations() {
    let path = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/data/ssl_parity.json");
    let golden: Golden = serde_json::from_str(&std::fs::read_to_string(path).expect("golden file")).expect("json");
    let expected = [
        "vicreg",
        "simclr_t0.1",
        "simclr_t0.5",
        "byol",
        "mae_norm0",
        "mae_norm1",
        "ijepa",
        "vjepa",
        "sigreg",
        "lejepa",
        "batchnorm",
    ];
    let names: Vec<&str> = golden.cases.iter().map(|c| c.name.as_str()).collect();
    assert_eq!(names, expected, "the golden file's cases");
    let mut failures = Vec::new();
    eprintln!(
        "{:<12} {:>12} {:>12} {:>10} {:>10}",
        "objective", "loss", "golden", "loss rel", "grad rel"
    );
    for c in &golden.cases {
        let (loss, grads) = run(c);
        let loss_err = (loss as f64 - c.loss).abs() / c.loss.abs().max(1e-12);
        assert_eq!(grads.len(), c.grads.len(), "{}: gradients", c.name);
        let grad_err = grads.iter().map(|(k, g)| rel(g, &c.grads[k].data)).fold(0f64, f64::max);
        eprintln!(
            "{:<12} {:>12.7} {:>12.7} {:>10.2e} {:>10.2e}",
            c.name, loss, c.loss, loss_err, grad_err
        );
        if loss_err > TOLERANCE || grad_err > TOLERANCE {
            failures.push(format!("{}: loss {loss_err:.2e}, gradient {grad_err:.2e}", c.name));
        }
    }
    assert!(failures.is_empty(), "beyond {TOLERANCE:e} relative: {failures:?}");
}

#[test]
fn a_changed_reduction_is_caught() {
    // The test's power: the pre-parity NT-Xent (mean over 2n rows, half the official value)
    // and VICReg without the official `/ 2` on the variance are both outside the tolerance.
    let path = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/data/ssl_parity.json");
    let golden: Golden = serde_json::from_str(&std::fs::read_to_string(path).expect("golden file")).expect("json");
    let simclr = golden.cases.iter().find(|c| c.name == "simclr_t0.1").expect("simclr");
    let (loss, _) = run(simclr);
    let halved = loss as f64 / 2.0;
    assert!((halved - simclr.loss).abs() / simclr.loss > TOLERANCE);
    let vic = golden.cases.iter().find(|c| c.name == "vicreg").expect("vicreg");
    let (x, y) = (tensor::<2>(&vic.inputs["x"]), tensor::<2>(&vic.inputs["y"]));
    let [_, inv, var, cov] = losses::vicreg(x, y, (25.0, 25.0, 1.0));
    let [inv, var, cov] = [inv, var, cov].map(|t| amisim::values(t)[0] as f64);
    assert!(var > 0.0, "the variance hinge is active in the golden inputs");
    let unhalved = 25.0 * inv + 25.0 * 2.0 * var + cov;
    assert!((unhalved - vic.loss).abs() / vic.loss > TOLERANCE);
}
