//! `--set KEY=VALUE`: any entry of a config, an agent spec or the evaluation's settings,
//! addressed by its dotted path (`planner.samples`, `model.weights.variance`).

use anyhow::Result;

/// Sets `key` (dotted path) in a JSON tree to `value` (parsed as JSON, else as a string);
/// the key must exist.
pub fn set_json(tree: &mut serde_json::Value, key: &str, value: &str) -> Result<()> {
    let mut node = tree;
    let mut at = String::new();
    for part in key.split('.') {
        let empty = node.is_null();
        node = node.get_mut(part).ok_or_else(|| {
            if empty {
                anyhow::anyhow!("--set {key}={value}: `{at}` is not set here; set it whole or write it out in the file")
            } else if at.is_empty() {
                anyhow::anyhow!("--set {key}={value}: no entry `{part}`")
            } else {
                anyhow::anyhow!("--set {key}={value}: no entry `{part}` in `{at}`")
            }
        })?;
        if !at.is_empty() {
            at.push('.');
        }
        at.push_str(part);
    }
    *node = serde_json::from_str(value).unwrap_or_else(|_| serde_json::Value::String(value.to_string()));
    Ok(())
}

/// `base` with every `KEY=VALUE` of `sets` applied.
pub fn with_sets<C: serde::Serialize + serde::de::DeserializeOwned>(base: C, sets: &[String]) -> Result<C> {
    let mut tree: serde_json::Value = serde_json::to_value(&base)?;
    for kv in sets {
        let (k, v) = kv
            .split_once('=')
            .ok_or_else(|| anyhow::anyhow!("--set {kv}: expected KEY=VALUE"))?;
        set_json(&mut tree, k, v)?;
    }
    serde_json::from_value(tree).map_err(|e| anyhow::anyhow!("config: {e}"))
}
