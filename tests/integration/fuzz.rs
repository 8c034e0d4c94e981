//! Every kind of file amisim reads, fuzzed: random bytes, truncations, one field mutated (NaN,
//! ±∞, 0, negative, huge, wrong type, an unknown field), byte flips, another kind of model file.
//! Each input must load, or give an error that names the file, and never panic or hang.
//!
//! `FUZZ_CASES` cases per kind run with the suite (a fixed seed, so a failure reproduces);
//! `AMISIM_FUZZ_CASES=N AMISIM_FUZZ_SEED=S cargo test --release -- --ignored fuzz --nocapture`
//! runs N per kind from seed S and prints the counts.

use amisim::agents;
use amisim::data::dataset::{shard_path, write_header, DatasetHeader, Shard, FORMAT};
use amisim::data::episodes::Episodes;
use amisim::eval::run::{merge, Report};
use amisim::world::env::env_rng;
use amisim::world::scene::{shipped_scene_names, Scene};
use amisim::world::sim::sample_episode;
use amisim_core::agent::load_models;
use amisim_core::checkpoint::{cpu_device, read_config_file, TrainConfig};
use proptest::prelude::*;
use proptest::strategy::ValueTree;
use proptest::test_runner::{Config, RngAlgorithm, TestRng, TestRunner};
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

/// Cases per input kind in the suite.
const FUZZ_CASES: u32 = 256;
/// One case taking longer than this counts as a hang.
const HANG: Duration = Duration::from_secs(20);

/// What goes in place of a number or a word of a valid file.
const REPLACEMENTS: [&str; 16] = [
    "NaN",
    "inf",
    "-inf",
    "0",
    "-1",
    "-0.0",
    "1e30",
    "-1e30",
    "4294967296",
    "18446744073709551616",
    "0.5",
    "\"x\"",
    "true",
    "()",
    "[]",
    "{}",
];

/// One change to a valid file.
#[derive(Debug, Clone)]
enum Mutation {
    /// The file replaced by these bytes.
    Bytes(Vec<u8>),
    /// The file cut at this fraction of its length.
    Truncate(f64),
    /// The k-th number or word (mod their count) replaced.
    Token(usize, usize),
    /// An unknown entry inserted after the k-th `(` or `{`.
    Unknown(usize),
    /// The byte at this fraction of the file xor-ed (mostly in its first 4 KiB).
    Flip(f64, u8, bool),
}

fn mutation() -> impl Strategy<Value = Mutation> {
    prop_oneof![
        prop::collection::vec(any::<u8>(), 0..256).prop_map(Mutation::Bytes),
        (0.0f64..1.0).prop_map(Mutation::Truncate),
        (any::<usize>(), 0..REPLACEMENTS.len()).prop_map(|(k, r)| Mutation::Token(k, r)),
        any::<usize>().prop_map(Mutation::Unknown),
        (0.0f64..1.0, 1u8..=255, any::<bool>()).prop_map(|(f, x, head)| Mutation::Flip(f, x, head)),
    ]
}

/// Spans of numbers and words (identifiers, `true`) in a text file.
fn tokens(text: &[u8]) -> Vec<(usize, usize)> {
    let mut out = Vec::new();
    let mut i = 0;
    while i < text.len() {
        let c = text[i];
        if c.is_ascii_alphanumeric() || c == b'-' || c == b'.' {
            let s = i;
            while i < text.len() && (text[i].is_ascii_alphanumeric() || b"-.+_".contains(&text[i])) {
                i += 1;
            }
            out.push((s, i));
        } else if c == b'"' {
            // Skip strings whole (file names, descriptions).
            i += 1;
            while i < text.len() && text[i] != b'"' {
                i += 1;
            }
            i += 1;
        } else {
            i += 1;
        }
    }
    out
}

fn apply(base: &[u8], m: &Mutation, json: bool) -> Vec<u8> {
    match m {
        Mutation::Bytes(b) => b.clone(),
        Mutation::Truncate(f) => base[..((base.len() as f64 * f) as usize).min(base.len())].to_vec(),
        Mutation::Token(k, r) => {
            let t = tokens(base);
            if t.is_empty() {
                return base.to_vec();
            }
            let (s, e) = t[k % t.len()];
            [&base[..s], REPLACEMENTS[*r].as_bytes(), &base[e..]].concat()
        }
        Mutation::Unknown(k) => {
            let opens: Vec<usize> = (0..base.len())
                .filter(|&i| base[i] == b'(' || base[i] == b'{')
                .collect();
            if opens.is_empty() {
                return base.to_vec();
            }
            let at = opens[k % opens.len()] + 1;
            let field: &[u8] = if json {
                b"\"bogus_field\": 1,"
            } else {
                b"bogus_field: 1,"
            };
            [&base[..at], field, &base[at..]].concat()
        }
        Mutation::Flip(f, x, head) => {
            let mut out = base.to_vec();
            if !out.is_empty() {
                let span = if *head { out.len().min(4096) } else { out.len() };
                let i = ((span as f64 * f) as usize).min(span - 1);
                out[i] ^= x;
            }
            out
        }
    }
}

/// What a kind of input came to.
#[derive(Default)]
struct Tally {
    cases: u32,
    loaded: u32,
    refused: u32,
    panics: Vec<String>,
    hangs: Vec<String>,
    unnamed: Vec<String>,
    examples: Vec<String>,
}

/// Fuzzes one kind: each case writes a mutated `base` to `file` and runs `check` on it, which
/// loads it and returns `Ok` or the error as printed. An error must name `file` (or, with
/// `names` given, one of the files read together: a model that no longer fits another is an
/// error about the other).
fn fuzz(
    kind: &str,
    bases: &[(PathBuf, Vec<u8>)],
    cases: u32,
    seed: u64,
    json: bool,
    names: Option<&Path>,
    check: impl Fn(&Path) -> Result<(), String>,
) -> Tally {
    let mut tally = Tally::default();
    let mut runner = TestRunner::new_with_rng(
        Config {
            cases,
            failure_persistence: None,
            ..Config::default()
        },
        TestRng::from_seed(RngAlgorithm::ChaCha, &seed_bytes(seed)),
    );
    let strategy = (0..bases.len(), mutation());
    for _ in 0..cases {
        let (b, m) = strategy.new_tree(&mut runner).expect("a case").current();
        let (file, base) = &bases[b];
        let bytes = apply(base, &m, json);
        std::fs::write(file, &bytes).unwrap();
        let name = match names {
            Some(dir) => dir.to_string_lossy().to_string(),
            None => file.file_name().unwrap().to_string_lossy().to_string(),
        };
        let t0 = Instant::now();
        let outcome = catch_unwind(AssertUnwindSafe(|| check(file)));
        let took = t0.elapsed();
        tally.cases += 1;
        let what = format!("{kind} {} {m:?}", file.display());
        if took > HANG {
            tally.hangs.push(format!("{what}: {took:?}"));
        }
        match outcome {
            Ok(Ok(())) => tally.loaded += 1,
            Ok(Err(e)) => {
                tally.refused += 1;
                if !e.contains(&name) {
                    tally.unnamed.push(format!("{what}: {e}"));
                }
                if tally.examples.len() < 3
                    && !tally
                        .examples
                        .iter()
                        .any(|x| x[..20.min(x.len())] == e[..20.min(e.len())])
                {
                    tally.examples.push(e);
                }
            }
            Err(p) => {
                let msg = p
                    .downcast_ref::<String>()
                    .cloned()
                    .or_else(|| p.downcast_ref::<&str>().map(|s| s.to_string()))
                    .unwrap_or_default();
                tally.panics.push(format!("{what}: {msg}"));
            }
        }
    }
    println!(
        "fuzz {kind:<14} {:>6} cases: {:>6} loaded, {:>6} refused, {} panics, {} hangs",
        tally.cases,
        tally.loaded,
        tally.refused,
        tally.panics.len(),
        tally.hangs.len()
    );
    for e in &tally.examples {
        println!("    e.g. {}", e.lines().next().unwrap_or(""));
    }
    tally
}

fn seed_bytes(seed: u64) -> [u8; 32] {
    let mut b = [0u8; 32];
    for (i, c) in b.chunks_mut(8).enumerate() {
        c.copy_from_slice(&(seed ^ (i as u64).wrapping_mul(0x9e37_79b9_7f4a_7c15)).to_le_bytes());
    }
    b
}

fn assert_clean(kind: &str, t: &Tally) {
    assert!(
        t.panics.is_empty(),
        "{kind}: {} panics, first: {}",
        t.panics.len(),
        t.panics[0]
    );
    assert!(
        t.hangs.is_empty(),
        "{kind}: {} slow cases, first: {}",
        t.hangs.len(),
        t.hangs[0]
    );
    assert!(
        t.unnamed.is_empty(),
        "{kind}: {} errors without the file's name, first: {}",
        t.unnamed.len(),
        t.unnamed[0]
    );
}

fn scratch(kind: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("amisim-fuzz-{}-{kind}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

fn err(e: impl std::fmt::Display) -> String {
    format!("{e:#}")
}

fn repo(p: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join(p)
}

/// Scene files: a scene that loads must also let its episodes be drawn.
fn scenes(cases: u32, seed: u64) -> Tally {
    let dir = scratch("scene");
    let bases: Vec<(PathBuf, Vec<u8>)> = shipped_scene_names()
        .iter()
        .map(|n| {
            (
                dir.join(format!("{n}.ron")),
                std::fs::read(repo(&format!("scenes/{n}.ron"))).unwrap(),
            )
        })
        .collect();
    fuzz("scene", &bases, cases, seed, false, None, |p| {
        let s = Scene::load(p.to_str().unwrap()).map_err(err)?;
        for k in 0..3 {
            sample_episode(&s, &mut env_rng(1, k)).map_err(|e| format!("{}: {e}", p.display()))?;
        }
        Ok(())
    })
}

/// Agent specs (their model files beside them, as shipped).
fn specs(cases: u32, seed: u64) -> Tally {
    let dir = scratch("spec");
    let src = repo("assets/two_rooms");
    let mut bases = Vec::new();
    for entry in std::fs::read_dir(&src).unwrap() {
        let p = entry.unwrap().path();
        if p.extension().is_some_and(|e| e == "ron") {
            bases.push((dir.join(p.file_name().unwrap()), std::fs::read(&p).unwrap()));
        } else {
            std::os::unix::fs::symlink(&p, dir.join(p.file_name().unwrap())).unwrap();
        }
    }
    bases.sort();
    fuzz("agent spec", &bases, cases, seed, false, None, |p| {
        agents::read_spec(p, &[]).map(|_| ()).map_err(err)
    })
}

/// Training configs (`--config`).
fn configs(cases: u32, seed: u64) -> Tally {
    let dir = scratch("config");
    let base = serde_json::to_vec_pretty(&TrainConfig::default_for(65)).unwrap();
    fuzz(
        "train config",
        &[(dir.join("config.json"), base)],
        cases,
        seed,
        true,
        None,
        |p| {
            let c = read_config_file(p, TrainConfig::default_for(65)).map_err(err)?;
            c.validate().map_err(|e| format!("{}: {e}", p.display()))
        },
    )
}

/// A small dataset: 2 episodes of 3 steps of 3×8×8 frames.
fn tiny_dataset(dir: &Path) -> (Shard, DatasetHeader) {
    let (e, t, sd) = (2usize, 3usize, 7usize);
    let shard = Shard {
        episodes: e,
        steps: t,
        frame_shape: [3, 8, 8],
        frames: (0..e * (t + 1) * 192).map(|i| (i % 251) as u8).collect(),
        actions: (0..e * t * 2).map(|i| i as f32 * 0.1).collect(),
        states: (0..e * (t + 1) * sd).map(|i| i as f32).collect(),
        collided: vec![0; e * (t + 1)],
        layout: vec![1.0; e * 2],
        layout_width: 2,
        first_episode: 0,
    };
    let header = DatasetHeader {
        format: FORMAT.into(),
        scene: "two_rooms".into(),
        scene_file: "scenes/two_rooms.ron".into(),
        seed: 0,
        policy: "random".into(),
        settings: serde_json::json!({}),
        episodes: e,
        steps_per_episode: t,
        frame_shape: [3, 8, 8],
        state_names: (0..sd).map(|i| format!("s{i}")).collect(),
        layout_columns: vec!["a".into(), "b".into()],
        shards: vec!["shard-00000.safetensors".into()],
    };
    shard.write(&shard_path(dir, 0), &header).unwrap();
    write_header(dir, &header).unwrap();
    (shard, header)
}

/// Dataset shards and `header.json`, read as `train --data` reads them.
fn datasets(cases: u32, seed: u64) -> (Tally, Tally) {
    let dir = scratch("data");
    tiny_dataset(&dir);
    let shard = shard_path(&dir, 0);
    let good = std::fs::read(&shard).unwrap();
    let header = std::fs::read(dir.join("header.json")).unwrap();
    let load = |_: &Path| Episodes::load(&dir).map(|_| ()).map_err(err);
    let a = fuzz(
        "dataset shard",
        &[(shard.clone(), good.clone())],
        cases,
        seed,
        false,
        None,
        load,
    );
    std::fs::write(&shard, &good).unwrap();
    let b = fuzz(
        "header.json",
        &[(dir.join("header.json"), header)],
        cases,
        seed,
        true,
        None,
        load,
    );
    (a, b)
}

/// `report.json` files merged (`eval --merge`).
fn reports(cases: u32, seed: u64) -> Tally {
    let dir = scratch("report");
    let base = std::fs::read(repo("tests/data/report.json")).unwrap();
    fuzz(
        "report.json",
        &[(dir.join("report.json"), base)],
        cases,
        seed,
        true,
        None,
        |p| {
            let text = std::fs::read_to_string(p).map_err(|e| format!("{}: {e}", p.display()))?;
            let r: Report =
                serde_json::from_str(&text).map_err(|e| format!("{}: not an eval report: {e}", p.display()))?;
            merge(vec![r])
                .map(|_| ())
                .map_err(|e| format!("{}: {e:#}", p.display()))
        },
    )
}

/// Model files of every kind, loaded through the agent's one loader: level 1, level 2,
/// critic, mode 1; each mutated, or swapped for a file of another kind (or, for level 1, a
/// model of another size).
fn checkpoints(cases: u32, seed: u64) -> Tally {
    let dir = scratch("models");
    let src = repo("assets/four_rooms");
    let kinds = ["checkpoint", "level2", "critic", "mode1"];
    for k in kinds {
        std::fs::copy(
            src.join(format!("{k}.safetensors")),
            dir.join(format!("{k}.safetensors")),
        )
        .unwrap();
    }
    // One spec that names all four.
    let spec = "(mode: Configured, models: [\"checkpoint.safetensors\"], level2: \"level2.safetensors\", \
                critic: \"critic.safetensors\", mode1: \"mode1.safetensors\")";
    std::fs::write(dir.join("agent.ron"), spec).unwrap();
    let device = cpu_device();
    let mut total = Tally::default();
    for (i, k) in kinds.iter().enumerate() {
        let file = dir.join(format!("{k}.safetensors"));
        let good = std::fs::read(&file).unwrap();
        let other = std::fs::read(dir.join(format!("{}.safetensors", kinds[(i + 1) % 4]))).unwrap();
        let mut bases = vec![(file.clone(), good.clone()), (file.clone(), other)];
        if i == 0 {
            // A level-1 model of another size (the Two-Rooms keypoint model).
            bases.push((
                file.clone(),
                std::fs::read(repo("assets/two_rooms/checkpoint.safetensors")).unwrap(),
            ));
        }
        let t = fuzz(k, &bases, cases / 4, seed + i as u64, false, Some(&dir), |_| {
            let spec = agents::read_spec(&dir.join("agent.ron"), &[]).map_err(err)?;
            load_models(&spec, &device).map(|_| ()).map_err(err)
        });
        std::fs::write(&file, &good).unwrap();
        total.cases += t.cases;
        total.loaded += t.loaded;
        total.refused += t.refused;
        total.panics.extend(t.panics);
        total.hangs.extend(t.hangs);
        total.unnamed.extend(t.unnamed);
    }
    total
}

fn all(cases: u32, seed: u64) {
    let mut tallies = vec![
        ("scene", scenes(cases, seed)),
        ("agent spec", specs(cases, seed)),
        ("train config", configs(cases, seed)),
        ("report.json", reports(cases, seed)),
        ("model files", checkpoints(cases, seed)),
    ];
    let (a, b) = datasets(cases, seed);
    tallies.push(("dataset shard", a));
    tallies.push(("header.json", b));
    for (kind, t) in &tallies {
        assert_clean(kind, t);
        assert!(
            t.refused > 0,
            "{kind}: no mutation was refused, so the fuzzer reached nothing"
        );
    }
}

#[test]
fn every_file_amisim_reads_survives_fuzzing() {
    all(FUZZ_CASES, 0);
}

/// The longer run: `AMISIM_FUZZ_CASES` per kind (default 2 000) from `AMISIM_FUZZ_SEED`.
#[test]
#[ignore]
fn fuzz_long() {
    let var = |k: &str, d: u64| std::env::var(k).ok().and_then(|v| v.parse().ok()).unwrap_or(d);
    all(var("AMISIM_FUZZ_CASES", 2000) as u32, var("AMISIM_FUZZ_SEED", 1));
}

#[test]
fn a_model_file_with_a_non_finite_weight_is_refused_by_tensor() {
    let dir = scratch("nan");
    let src = repo("assets/four_rooms");
    std::fs::copy(src.join("checkpoint.safetensors"), dir.join("checkpoint.safetensors")).unwrap();
    let path = dir.join("critic.safetensors");
    let mut bytes = std::fs::read(src.join("critic.safetensors")).unwrap();
    // The last f32 of the file (the data ends the file): NaN, then +∞.
    let n = bytes.len();
    for bad in [f32::NAN, f32::INFINITY] {
        bytes[n - 4..].copy_from_slice(&bad.to_le_bytes());
        std::fs::write(&path, &bytes).unwrap();
        std::fs::write(
            dir.join("agent.ron"),
            "(mode: Plan, models: [\"checkpoint.safetensors\"], critic: \"critic.safetensors\", planner: (horizon: 4, cost: (distance: L2, horizon: Closest, effort: 0.0, critic: 1.0)))",
        )
        .unwrap();
        let spec = agents::read_spec(&dir.join("agent.ron"), &[]).unwrap();
        let e = format!("{:#}", load_models(&spec, &cpu_device()).err().expect("refused"));
        assert!(
            e.contains("critic.safetensors") && e.contains("non-finite") && e.contains("tensor `"),
            "{e}"
        );
    }
}

#[test]
fn every_truncation_of_the_small_files_and_of_the_model_file_headers_is_refused_cleanly() {
    // Text files: cut at every byte. Model files: cut at every byte of the length prefix and
    // the JSON header, and at every tensor's end.
    let dir = scratch("truncate");
    let mut cases = 0;
    let mut check = |file: &Path, bytes: &[u8], load: &dyn Fn(&Path) -> Result<(), String>| {
        for cut in 0..bytes.len() {
            std::fs::write(file, &bytes[..cut]).unwrap();
            let name = file.file_name().unwrap().to_string_lossy().to_string();
            match catch_unwind(AssertUnwindSafe(|| load(file))) {
                Ok(Ok(())) => {}
                Ok(Err(e)) => assert!(e.contains(&name), "cut at {cut}: {e}"),
                Err(_) => panic!("{name} cut at {cut} bytes: a panic"),
            }
            cases += 1;
        }
    };
    for n in shipped_scene_names() {
        let bytes = std::fs::read(repo(&format!("scenes/{n}.ron"))).unwrap();
        check(&dir.join(format!("{n}.ron")), &bytes, &|p| {
            Scene::load(p.to_str().unwrap()).map(|_| ()).map_err(err)
        });
    }
    let spec = std::fs::read(repo("assets/two_rooms/agent.ron")).unwrap();
    let _ = std::os::unix::fs::symlink(
        repo("assets/two_rooms/checkpoint.safetensors"),
        dir.join("checkpoint.safetensors"),
    );
    check(&dir.join("agent.ron"), &spec, &|p| {
        agents::read_spec(p, &[]).map(|_| ()).map_err(err)
    });
    let config = serde_json::to_vec_pretty(&TrainConfig::default_for(65)).unwrap();
    check(&dir.join("config.json"), &config, &|p| {
        read_config_file(p, TrainConfig::default_for(65))
            .map(|_| ())
            .map_err(err)
    });
    let text_cases = cases;
    // A model file: the level-1 checkpoint named by a one-model spec.
    std::fs::write(dir.join("one.ron"), "(mode: Plan, models: [\"cut.safetensors\"])").unwrap();
    let model = std::fs::read(repo("assets/four_rooms/checkpoint.safetensors")).unwrap();
    let header_len = 8 + u64::from_le_bytes(model[..8].try_into().unwrap()) as usize;
    let st = safetensors::SafeTensors::deserialize(&model).unwrap();
    let mut ends: Vec<usize> = st
        .tensors()
        .iter()
        .map(|(_, t)| t.data().as_ptr() as usize - model.as_ptr() as usize + t.data().len())
        .collect();
    ends.sort();
    let device = cpu_device();
    let file = dir.join("cut.safetensors");
    let load = |p: &Path| -> Result<(), String> {
        let spec = agents::read_spec(&p.with_file_name("one.ron"), &[]).map_err(err)?;
        load_models(&spec, &device).map(|_| ()).map_err(err)
    };
    let cuts: Vec<usize> = (0..=header_len).chain(ends.iter().map(|e| e - 1)).collect();
    for cut in cuts {
        std::fs::write(&file, &model[..cut]).unwrap();
        match catch_unwind(AssertUnwindSafe(|| load(&file))) {
            Ok(Ok(())) => panic!("a model file cut at {cut} of {} bytes loaded", model.len()),
            Ok(Err(e)) => assert!(e.contains("cut.safetensors"), "cut at {cut}: {e}"),
            Err(_) => panic!("model file cut at {cut} bytes: a panic"),
        }
        cases += 1;
    }
    println!(
        "truncations: {text_cases} of text files, {} of a model file; 0 panics",
        cases - text_cases
    );
}
