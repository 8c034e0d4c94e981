//! What README.md and docs/ tell users stays true: every `amisim …` / `cargo run … -- …`
//! command line in them parses with today's command line (parsed, not run), and nothing under
//! assets/ or docs/ carries a machine's absolute path.
//!
//! Commands kept as history are marked where a reader sees it: a paragraph that starts with
//! `*History:*` marks the rest of its section (up to the next heading of the same or a higher
//! level) as commands of their time, which the check skips.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

const HISTORY_MARK: &str = "*History:*";

fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

/// README.md and every Markdown file under docs/.
fn markdown_files() -> Vec<PathBuf> {
    let mut out = vec![root().join("README.md")];
    let mut stack = vec![root().join("docs")];
    while let Some(dir) = stack.pop() {
        for e in std::fs::read_dir(&dir).unwrap() {
            let p = e.unwrap().path();
            if p.is_dir() {
                stack.push(p);
            } else if p.extension().is_some_and(|x| x == "md") {
                out.push(p);
            }
        }
    }
    out.sort();
    out
}

/// Shell-like words: quotes group, a backslash escapes, `#` starts a comment.
fn words(line: &str) -> Vec<String> {
    let mut out = Vec::new();
    let mut cur = String::new();
    let mut has = false;
    let mut quote: Option<char> = None;
    let mut chars = line.chars().peekable();
    while let Some(c) = chars.next() {
        match (quote, c) {
            (Some(q), c) if c == q => quote = None,
            (Some(_), c) => cur.push(c),
            (None, '\'' | '"') => {
                quote = Some(c);
                has = true;
            }
            (None, '\\') => {
                if let Some(n) = chars.next() {
                    cur.push(n);
                    has = true;
                }
            }
            (None, '#') if !has => break,
            (None, c) if c.is_whitespace() => {
                if has {
                    out.push(std::mem::take(&mut cur));
                    has = false;
                }
            }
            (None, c) => {
                cur.push(c);
                has = true;
            }
        }
    }
    if has {
        out.push(cur);
    }
    out
}

/// The arguments after `amisim` (the first word) or after `cargo run … --`, up to a shell
/// operator; `None` where the words run neither.
fn amisim_args(w: &[String]) -> Option<Vec<String>> {
    let start = if w.first().is_some_and(|x| x == "amisim") {
        1
    } else {
        let i = w.windows(2).position(|p| p[0] == "cargo" && p[1] == "run")?;
        i + 2 + w[i + 2..].iter().position(|x| x == "--")? + 1
    };
    let args: Vec<String> = w[start..]
        .iter()
        .take_while(|x| !["&&", "||", "|", ";", ">", "2>", "&", "2>&1"].contains(&x.as_str()))
        .cloned()
        .collect();
    Some(args)
}

/// A command found in a file: where, its text, its arguments.
struct Found {
    file: PathBuf,
    line: usize,
    text: String,
    args: Vec<String>,
}

/// The level of a Markdown heading line (`## x` → 2).
fn heading_level(line: &str) -> Option<usize> {
    let n = line.chars().take_while(|&c| c == '#').count();
    (n > 0 && line.chars().nth(n) == Some(' ')).then_some(n)
}

/// Every command line of `text`: in shell code blocks (```sh, ```bash, ```shell, or a
/// `cargo run` line in any block), each line joined over trailing backslashes; in the prose,
/// inline code spans (within a paragraph) that start with `amisim ` or `cargo run`. Sections
/// marked as history are skipped.
fn commands_in(file: &Path, text: &str) -> Vec<Found> {
    let mut out = Vec::new();
    let mut block: Option<bool> = None; // inside a code block: whether it is a shell block
    let mut history_level: Option<usize> = None;
    let mut current_level = 0;
    let mut pending: Option<(usize, String)> = None;
    let mut paragraph: Option<(usize, String)> = None;
    let mut found = |line: usize, span: &str, args: Vec<String>| {
        out.push(Found {
            file: file.to_path_buf(),
            line,
            text: span.trim().to_string(),
            args,
        })
    };
    let flush = |paragraph: &mut Option<(usize, String)>, found: &mut dyn FnMut(usize, &str, Vec<String>)| {
        if let Some((start, p)) = paragraph.take() {
            for (k, span) in p.split('`').enumerate() {
                if k % 2 == 1 && (span.starts_with("amisim ") || span.starts_with("cargo run")) {
                    if let Some(args) = amisim_args(&words(span)) {
                        found(start, span, args);
                    }
                }
            }
        }
    };
    for (i, raw) in text.lines().enumerate() {
        let line = raw.trim_end();
        let fence = line.trim_start().strip_prefix("```");
        if let Some(info) = fence {
            flush(&mut paragraph, &mut found);
            block = match block {
                Some(_) => None,
                None => Some(matches!(info.trim(), "sh" | "bash" | "shell" | "console")),
            };
            continue;
        }
        if let Some(shell) = block {
            if history_level.is_some() {
                continue;
            }
            let (start, mut joined) = pending.take().unwrap_or((i + 1, String::new()));
            let (body, more) = match line.strip_suffix('\\') {
                Some(b) => (b, true),
                None => (line, false),
            };
            joined.push_str(body);
            joined.push(' ');
            if more {
                pending = Some((start, joined));
                continue;
            }
            let w = words(&joined);
            let runs_cargo = w.windows(2).any(|p| p[0] == "cargo" && p[1] == "run");
            if shell || runs_cargo {
                if let Some(args) = amisim_args(&w) {
                    found(start, &joined, args);
                }
            }
            continue;
        }
        if let Some(level) = heading_level(line) {
            flush(&mut paragraph, &mut found);
            current_level = level;
            if history_level.is_some_and(|h| level <= h) {
                history_level = None;
            }
            continue;
        }
        if line.trim_start().starts_with(HISTORY_MARK) {
            flush(&mut paragraph, &mut found);
            history_level = Some(current_level);
        }
        if history_level.is_some() {
            continue;
        }
        if line.trim().is_empty() {
            flush(&mut paragraph, &mut found);
        } else {
            let p = paragraph.get_or_insert((i + 1, String::new()));
            p.1.push_str(line.trim());
            p.1.push(' ');
        }
    }
    flush(&mut paragraph, &mut found);
    out
}

/// Parses every command with the binary's own parser; returns the refused ones with clap's
/// first error line.
fn refused(found: &[Found]) -> Vec<String> {
    let mut child = Command::new(env!("CARGO_BIN_EXE_amisim"))
        .arg("check-commands")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .expect("amisim check-commands");
    {
        let mut stdin = child.stdin.take().unwrap();
        for f in found {
            writeln!(stdin, "{}", serde_json::to_string(&f.args).unwrap()).unwrap();
        }
    }
    let out = child.wait_with_output().unwrap();
    assert!(out.status.success(), "check-commands failed");
    let verdicts: Vec<serde_json::Value> = String::from_utf8(out.stdout)
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(verdicts.len(), found.len());
    found
        .iter()
        .zip(&verdicts)
        .filter(|(_, v)| v["ok"] != true)
        .map(|(f, v)| {
            let err = v["error"]
                .as_str()
                .unwrap_or("")
                .lines()
                .next()
                .unwrap_or("")
                .to_string();
            format!(
                "{}:{}: `{}`\n    {err}",
                f.file.strip_prefix(root()).unwrap_or(&f.file).display(),
                f.line,
                f.text
            )
        })
        .collect()
}

#[test]
fn every_command_in_readme_and_docs_parses() {
    let mut found = Vec::new();
    for f in markdown_files() {
        let text = std::fs::read_to_string(&f).unwrap();
        found.extend(commands_in(&f, &text));
    }
    assert!(
        found.len() > 20,
        "only {} commands found: the extraction is broken",
        found.len()
    );
    let bad = refused(&found);
    assert!(
        bad.is_empty(),
        "{} of {} commands in README.md and docs/ do not parse with today's CLI (rewrite them, or mark their section `{HISTORY_MARK}`):\n{}",
        bad.len(),
        found.len(),
        bad.join("\n")
    );
}

#[test]
fn the_command_check_catches_a_renamed_flag_and_skips_history() {
    let text = "# T\n\n```sh\ncargo run --release -- eval --scene two_rooms --episodes 20\namisim eval --scene two_rooms --no-such-flag 3\n```\n\n```\namisim bench env (Rust), before   256   15342\n```\n\nSee `amisim train --all --scene two_rooms\n--out runs/A`.\n\n## Old\n\n*History:* as run then.\n\n```sh\namisim eval --planner cem\n```\n\n### Older\n\n`amisim eval --baseline none`\n\n## New\n\n`amisim eval --checkpoint x`\n";
    let found = commands_in(Path::new("t.md"), text);
    let texts: Vec<&str> = found.iter().map(|f| f.text.as_str()).collect();
    assert_eq!(found.len(), 4, "{texts:?}");
    let bad = refused(&found);
    assert_eq!(bad.len(), 2, "{bad:?}");
    assert!(bad[0].contains("--no-such-flag"), "{bad:?}");
    assert!(bad[1].contains("--checkpoint"), "{bad:?}");
}

#[test]
fn words_follow_the_shell() {
    assert_eq!(
        words(r#"amisim train --set 'model.encoder.channels=[16,32,64]' --out "runs/a b" # note"#),
        vec![
            "amisim",
            "train",
            "--set",
            "model.encoder.channels=[16,32,64]",
            "--out",
            "runs/a b"
        ]
    );
    assert_eq!(
        amisim_args(&words(
            "xvfb-run -a cargo run --release --features wgpu -- run --scene two_rooms && echo"
        )),
        Some(vec!["run".to_string(), "--scene".into(), "two_rooms".into()])
    );
    assert_eq!(
        amisim_args(&words("amisim bench env (Rust), before")).map(|a| a.len()),
        Some(4)
    );
    assert_eq!(amisim_args(&words("what amisim does")), None);
}

/// Roots of absolute paths on the machines amisim is built on.
const ABSOLUTE_ROOTS: [&str; 12] = [
    "/home/",
    "/root/",
    "/work/",
    "/tmp/",
    "/Users/",
    "/mnt/",
    "/var/",
    "/opt/",
    "/srv/",
    "/private/",
    "/builds/",
    "C:\\",
];

/// Where `bytes` hold an absolute path: this checkout's own, or one under a machine root
/// (after a quote, a space, `=`, `(` or the start).
fn absolute_path_in(bytes: &[u8]) -> Option<String> {
    let own = root().to_string_lossy().into_owned();
    let text = String::from_utf8_lossy(bytes);
    if let Some(i) = text.find(&own) {
        return Some(text[i..].chars().take(80).collect());
    }
    for r in ABSOLUTE_ROOTS {
        let mut from = 0;
        while let Some(k) = text[from..].find(r) {
            let at = from + k;
            let before = text[..at].chars().last();
            if before.is_none_or(|c| matches!(c, '"' | '\'' | ' ' | '=' | '(' | '`' | '\n' | ':')) {
                return Some(text[at..].chars().take(80).collect());
            }
            from = at + r.len();
        }
    }
    None
}

#[test]
fn nothing_shipped_carries_an_absolute_path() {
    let mut bad = Vec::new();
    let mut stack = vec![root().join("assets"), root().join("docs"), root().join("README.md")];
    let mut files = 0;
    while let Some(p) = stack.pop() {
        if p.is_dir() {
            for e in std::fs::read_dir(&p).unwrap() {
                stack.push(e.unwrap().path());
            }
            continue;
        }
        files += 1;
        let bytes = std::fs::read(&p).unwrap();
        // A safetensors file's text is its JSON header; the weights are not text.
        let scanned: &[u8] = if p.extension().is_some_and(|x| x == "safetensors") && bytes.len() >= 8 {
            let n = u64::from_le_bytes(bytes[..8].try_into().unwrap()) as usize;
            &bytes[8..(8 + n).min(bytes.len())]
        } else {
            &bytes
        };
        if let Some(hit) = absolute_path_in(scanned) {
            bad.push(format!("{}: {hit}", p.strip_prefix(root()).unwrap_or(&p).display()));
        }
    }
    assert!(files > 20, "only {files} files scanned");
    assert!(bad.is_empty(), "absolute paths in shipped files:\n{}", bad.join("\n"));
    assert!(absolute_path_in(br#"{"models": ["/root/runs/a/checkpoint.safetensors"]}"#).is_some());
    assert!(absolute_path_in(b"see docs/run.md and (a/b)").is_none());
}
