//! What a killed `eval --out DIR` leaves to go on from: `DIR/progress.jsonl`, its first line
//! the evaluation's settings, then one line per finished batch of a row, appended and synced
//! as each batch ends. `eval --resume` reads it back and plays only the batches not in it; the
//! report is the one an uninterrupted run writes (timings aside).

use super::run::{EpisodeResult, EvalConfig};
use anyhow::{bail, Context, Result};
use serde::{Deserialize, Serialize};
use std::collections::HashMap;
use std::io::Write;
use std::path::{Path, PathBuf};

/// The journal's file name in the output folder.
pub const JOURNAL_FILE: &str = "progress.jsonl";

/// One row's finished batch, as the report sums it.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct BatchResult {
    pub row: usize,
    pub batch: usize,
    pub episodes: Vec<EpisodeResult>,
    pub plan_ms_samples: Vec<f64>,
    pub plan_ms_total: f64,
    pub encode_ms_total: f64,
    pub env_steps: u64,
}

impl BatchResult {
    /// Nothing played yet.
    pub fn new(row: usize, batch: usize) -> BatchResult {
        BatchResult {
            row,
            batch,
            episodes: Vec::new(),
            plan_ms_samples: Vec::new(),
            plan_ms_total: 0.0,
            encode_ms_total: 0.0,
            env_steps: 0,
        }
    }

    /// Adds another batch's results to these.
    pub fn add(&mut self, other: BatchResult) {
        self.episodes.extend(other.episodes);
        self.plan_ms_samples.extend(other.plan_ms_samples);
        self.plan_ms_total += other.plan_ms_total;
        self.encode_ms_total += other.encode_ms_total;
        self.env_steps += other.env_steps;
    }
}

/// The open journal of an evaluation.
pub struct Journal {
    path: PathBuf,
    file: std::fs::File,
    done: HashMap<(usize, usize), BatchResult>,
}

impl Journal {
    /// Starts a journal in `dir` for `cfg`; with `resume`, continues the one there, which must
    /// come from the same settings (a last line cut short by the kill is dropped).
    pub fn open(dir: &Path, cfg: &EvalConfig, resume: bool) -> Result<Journal> {
        let path = dir.join(JOURNAL_FILE);
        let mut done = HashMap::new();
        let mut keep = 0usize;
        if resume {
            let text = match std::fs::read_to_string(&path) {
                Ok(t) => t,
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => bail!(
                    "{}: nothing to resume (no {JOURNAL_FILE}: the evaluation there finished, or never started); \
                     run without --resume",
                    dir.display()
                ),
                Err(e) => return Err(e).with_context(|| format!("reading {}", path.display())),
            };
            let lines: Vec<&str> = text.split_inclusive('\n').collect();
            let first = lines.first().map(|l| l.trim_end()).unwrap_or("");
            let saved: EvalConfig = serde_json::from_str(first)
                .with_context(|| format!("{}:1: not the settings of an evaluation", path.display()))?;
            if saved != *cfg {
                bail!(
                    "{}: written by an evaluation with other settings; resume with the same command, \
                     or run without --resume to start over\n  there: {}\n  now:   {}",
                    path.display(),
                    serde_json::to_string(&saved)?,
                    serde_json::to_string(cfg)?
                );
            }
            keep = lines[0].len();
            for (k, line) in lines.iter().enumerate().skip(1) {
                let complete = line.ends_with('\n');
                match serde_json::from_str::<BatchResult>(line.trim_end()) {
                    Ok(b) if complete => {
                        if b.row >= cfg.rows.len() {
                            bail!("{}:{}: row {} of {}", path.display(), k + 1, b.row, cfg.rows.len());
                        }
                        done.insert((b.row, b.batch), b);
                        keep += line.len();
                    }
                    // The write the kill interrupted.
                    _ if k + 1 == lines.len() => break,
                    Err(e) => bail!("{}:{}: not a finished batch: {e}", path.display(), k + 1),
                    Ok(_) => unreachable!("only the last line can lack its newline"),
                }
            }
        }
        let mut file = std::fs::OpenOptions::new()
            .create(true)
            .write(true)
            .truncate(!resume)
            .open(&path)
            .with_context(|| format!("opening {}", path.display()))?;
        if resume {
            file.set_len(keep as u64)
                .with_context(|| format!("truncating {}", path.display()))?;
            file = std::fs::OpenOptions::new()
                .append(true)
                .open(&path)
                .with_context(|| format!("opening {}", path.display()))?;
        } else {
            writeln!(file, "{}", serde_json::to_string(cfg)?).with_context(|| format!("writing {}", path.display()))?;
            file.sync_data()?;
        }
        Ok(Journal { path, file, done })
    }

    /// The batches already finished (when resuming).
    pub fn finished(&self) -> usize {
        self.done.len()
    }

    /// Row `row`'s batch `batch`, if it finished before.
    pub fn done(&self, row: usize, batch: usize) -> Option<&BatchResult> {
        self.done.get(&(row, batch))
    }

    /// Appends a finished batch and syncs it to disk.
    pub fn record(&mut self, b: &BatchResult) -> Result<()> {
        writeln!(self.file, "{}", serde_json::to_string(b)?)
            .and_then(|_| self.file.sync_data())
            .with_context(|| format!("writing {}", self.path.display()))
    }

    /// The report is written: the journal is no longer needed.
    pub fn finish(self) -> Result<()> {
        std::fs::remove_file(&self.path).with_context(|| format!("removing {}", self.path.display()))
    }
}
