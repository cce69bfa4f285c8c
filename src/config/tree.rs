//! Configuration values as JSON trees addressed by dotted keys (`provider.model`): merging a
//! layer's changes, listing its leaves, reading and setting one key.

use serde_json::{Map, Value};

/// Merges `from` into `into`: objects merge key by key, other values replace, `null` removes
/// the key.
pub(super) fn merge_into(into: &mut Value, from: Value) {
    match (into, from) {
        (Value::Object(a), Value::Object(b)) => {
            for (k, v) in b {
                if v.is_null() {
                    a.remove(&k);
                } else {
                    merge_into(a.entry(k).or_insert(Value::Null), v);
                }
            }
        }
        (slot, v) => *slot = v,
    }
}

/// Lists `(dotted.path, value)` for every value that is not an object the schema breaks down
/// further: objects whose keys are the user's own (headers, say: empty or unset in the
/// defaults) and empty objects are leaves as a whole.
pub(super) fn collect_leaves(
    value: &Value,
    defaults: &Value,
    prefix: String,
    out: &mut Vec<(String, Value)>,
) {
    let opaque = !prefix.is_empty()
        && match defaults.pointer(&format!("/{}", prefix.replace('.', "/"))) {
            Some(Value::Null) => true,
            Some(Value::Object(m)) => m.is_empty(),
            _ => false,
        };
    match value {
        Value::Object(map) if !opaque && (!map.is_empty() || prefix.is_empty()) => {
            for (k, v) in map {
                let path = if prefix.is_empty() {
                    k.clone()
                } else {
                    format!("{prefix}.{k}")
                };
                collect_leaves(v, defaults, path, out);
            }
        }
        other => out.push((prefix, other.clone())),
    }
}

/// Whether the dotted key `path` is in the schema's `defaults`.
pub(super) fn key_exists(defaults: &Value, path: &str) -> bool {
    let mut cur = defaults;
    for part in path.split('.') {
        match cur.get(part) {
            Some(v) => cur = v,
            None => return false,
        }
    }
    true
}

/// Sets the dotted key `path` in `root` to `value`, making the objects on the way.
pub(super) fn set_path(root: &mut Value, path: &str, value: Value) {
    let mut cur = root;
    let parts: Vec<&str> = path.split('.').collect();
    for (i, part) in parts.iter().enumerate() {
        if !cur.is_object() {
            *cur = Value::Object(Map::new());
        }
        let Value::Object(map) = cur else { return };
        if i + 1 == parts.len() {
            map.insert((*part).to_owned(), value);
            return;
        }
        cur = map.entry((*part).to_owned()).or_insert(Value::Null);
    }
}
