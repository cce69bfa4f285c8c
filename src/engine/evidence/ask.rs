//! The two questions the evidence stage asks the model: inputs to run the functions on (edge
//! cases first), and what a few calls should return by the functions' documentation, name and
//! signature alone (the body is not shown: the intent must not be read off either version).
//! Requests and tolerant reply parsers; no call is made here.

use serde_json::{Value, json};

use crate::engine::critique::find_json;
use crate::llm::{ChatRequest, JsonSchema, Message};
use crate::probe::{Call, Target};
use crate::prompts::{PromptError, Prompts};

/// Longest argument list or expected value kept from a reply, in chars.
const MAX_EXPR_CHARS: usize = 400;

/// The prober's request: the functions and the selection (already redacted).
pub(crate) fn inputs_request(
    prompts: &Prompts,
    (path, language): (&str, &str),
    targets: &[Target],
    selection: &str,
    max_inputs: u32,
) -> Result<ChatRequest, PromptError> {
    let functions: Vec<Value> = targets
        .iter()
        .map(|t| json!({"name": t.name, "signature": t.signature}))
        .collect();
    let system = prompts.render(
        "probe_system.md",
        json!({"language": language, "max_inputs": max_inputs}),
    )?;
    let user = prompts.render(
        "probe_user.md",
        json!({"path": path, "language": language, "functions": functions, "selection": selection}),
    )?;
    let names: Vec<&str> = targets.iter().map(|t| t.name.as_str()).collect();
    Ok(ChatRequest {
        messages: vec![Message::system(system), Message::user(user)],
        json_schema: Some(JsonSchema {
            name: "inputs",
            schema: json!({
                "type": "object",
                "properties": {"inputs": {"type": "array", "items": {
                    "type": "object",
                    "properties": {
                        "function": {"type": "string", "enum": names},
                        "args": {"type": "string"}
                    },
                    "required": ["function", "args"]
                }}},
                "required": ["inputs"]
            }),
        }),
        temperature: None,
    })
}

/// The inputs of a prober's reply: calls of known functions, at most `max` per function,
/// without repeats (a missing `function` means the only one, when there is one).
pub(crate) fn parse_inputs(reply: &str, targets: &[Target], max: usize) -> Vec<Call> {
    let Some(v) = find_json(reply) else {
        return Vec::new();
    };
    let items = v
        .get("inputs")
        .and_then(Value::as_array)
        .cloned()
        .unwrap_or_default();
    let mut out: Vec<Call> = Vec::new();
    for it in items {
        let function = match it.get("function").and_then(Value::as_str) {
            Some(f) => f.trim().to_owned(),
            None if targets.len() == 1 => {
                targets.first().map(|t| t.name.clone()).unwrap_or_default()
            }
            None => continue,
        };
        let Some(args) = it.get("args").and_then(args_text) else {
            continue;
        };
        if !targets.iter().any(|t| t.name == function)
            || args.chars().count() > MAX_EXPR_CHARS
            || out.iter().filter(|c| c.function == function).count() >= max
        {
            continue;
        }
        let call = Call {
            function,
            args,
            expected: None,
        };
        if !out.contains(&call) {
            out.push(call);
        }
    }
    out
}

/// An argument list as the model gave it: a string, or (leniently) an array of strings.
fn args_text(v: &Value) -> Option<String> {
    let text = match v {
        Value::String(s) => s.trim().to_owned(),
        Value::Array(items) => items
            .iter()
            .map(|i| match i {
                Value::String(s) => s.trim().to_owned(),
                other => other.to_string(),
            })
            .collect::<Vec<_>>()
            .join(", "),
        Value::Number(n) => n.to_string(),
        _ => return None,
    };
    // The model sometimes wraps the list in the call's own parentheses.
    let text = text
        .strip_prefix('(')
        .and_then(|t| t.strip_suffix(')'))
        .filter(|inner| super::seeds::balanced(inner))
        .map_or(text.clone(), |t| t.trim().to_owned());
    (!text.contains('\n')).then_some(text)
}

/// The intent question: the functions' signatures and docs, and the calls.
pub(crate) fn intent_request(
    prompts: &Prompts,
    language: &str,
    targets: &[Target],
    calls: &[String],
) -> Result<ChatRequest, PromptError> {
    let functions: Vec<Value> = targets
        .iter()
        .map(|t| json!({"name": t.name, "signature": t.signature, "doc": t.doc}))
        .collect();
    let system = prompts.render("intent_system.md", json!({"language": language}))?;
    let user = prompts.render(
        "intent_user.md",
        json!({"functions": functions, "calls": calls}),
    )?;
    let numbers: Vec<usize> = (1..=calls.len().max(1)).collect();
    Ok(ChatRequest {
        messages: vec![Message::system(system), Message::user(user)],
        json_schema: Some(JsonSchema {
            name: "answers",
            schema: json!({
                "type": "object",
                "properties": {"answers": {"type": "array", "items": {
                    "type": "object",
                    "properties": {
                        "call": {"type": "integer", "enum": numbers},
                        "returns": {"type": "string"}
                    },
                    "required": ["call", "returns"]
                }}},
                "required": ["answers"]
            }),
        }),
        temperature: None,
    })
}

/// The intent's answer for each of `n` calls (`None`: unknown, or not given).
pub(crate) fn parse_intent(reply: &str, n: usize) -> Vec<Option<String>> {
    let mut out = vec![None; n];
    let Some(v) = find_json(reply) else {
        return out;
    };
    let items = v
        .get("answers")
        .and_then(Value::as_array)
        .cloned()
        .unwrap_or_default();
    for (k, it) in items.iter().enumerate() {
        let i = it
            .get("call")
            .and_then(Value::as_u64)
            .and_then(|i| usize::try_from(i).ok())
            .and_then(|i| i.checked_sub(1))
            .unwrap_or(k);
        let said = match it.get("returns") {
            Some(Value::String(s)) => s.trim().to_owned(),
            Some(Value::Number(x)) => x.to_string(),
            Some(Value::Bool(b)) => b.to_string(),
            _ => continue,
        };
        let said = said.trim_matches('`').trim().to_owned();
        let unknown = said.is_empty()
            || said.eq_ignore_ascii_case("unknown")
            || said.chars().count() > MAX_EXPR_CHARS
            || said.contains('\n');
        if let (Some(slot), false) = (out.get_mut(i), unknown) {
            *slot = Some(said);
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn target(name: &str) -> Target {
        Target {
            name: name.into(),
            signature: format!("fn {name}(xs: &[i64]) -> i64"),
            doc: String::new(),
            examples: Vec::new(),
        }
    }

    #[test]
    fn inputs_are_read_tolerantly_and_bounded() {
        let t = [target("sum_even")];
        let calls = parse_inputs(
            r#"{"inputs":[{"function":"sum_even","args":"&[]"},{"args":"(&[2])"},{"function":"nope","args":"1"},{"function":"sum_even","args":"&[]"},{"function":"sum_even","args":["&[1", "2]"]},{"function":"sum_even","args":"&[3]"}]}"#,
            &t,
            3,
        );
        let args: Vec<&str> = calls.iter().map(|c| c.args.as_str()).collect();
        assert_eq!(args, ["&[]", "&[2]", "&[1, 2]"]);
        assert!(parse_inputs("no json", &t, 3).is_empty());
        assert_eq!(args_text(&json!("(a), (b)")).as_deref(), Some("(a), (b)"));
    }

    #[test]
    fn intent_answers_by_call_number_and_unknowns_are_none() {
        let a = parse_intent(
            r#"{"answers":[{"call":2,"returns":"`Some(2)`"},{"call":1,"returns":"unknown"},{"call":9,"returns":"1"}]}"#,
            2,
        );
        assert_eq!(a, vec![None, Some("Some(2)".to_owned())]);
        assert_eq!(parse_intent("", 1), vec![None]);
    }
}
