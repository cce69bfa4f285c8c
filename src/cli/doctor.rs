//! `refine-ls doctor`: the effective configuration with the source of each value, and a check
//! of each provider (reachable, model served, structured-output mode).

use std::io::Write;
use std::path::Path;

use serde_json::Value;
use tokio_util::sync::CancellationToken;

use super::args::DoctorArgs;
use super::setup::load_config;
use crate::llm::Provider;
use crate::service::ReviewService;

/// Runs `doctor`: prints the effective configuration with the source of each value, checks
/// each endpoint (reachable, model served, structured-output mode), and returns 0 when all is
/// well, 1 otherwise.
pub async fn doctor(args: DoctorArgs) -> u8 {
    let cwd = std::env::current_dir().ok();
    let root = cwd.as_deref().and_then(|d| {
        d.ancestors()
            .find(|a| a.join(".refine.toml").exists() || a.join(".git").exists())
            .map(Path::to_path_buf)
    });
    let service = ReviewService::open(load_config(root.as_deref(), &args.flags), root);
    let mut problems = Vec::new();
    let mut out = std::io::stdout().lock();
    print_configuration(&mut out, &service, &mut problems);
    let roles = service.roles();
    let same = roles[0].1 == roles[1].1;
    for (role, _, provider) in roles {
        if role == "reviser" && same {
            let _ = writeln!(out, "\nreviser: same endpoint as the critic");
            break;
        }
        match provider {
            Ok(p) => check_provider(&mut out, role, &p, args.no_probe, &mut problems).await,
            Err(e) => {
                let _ = writeln!(out, "\n{role}: cannot be set up: {e}");
                problems.push(format!("{role}: {e}"));
            }
        }
    }
    if problems.is_empty() {
        let _ = writeln!(out, "\nok: refine-ls can review with this configuration");
        0
    } else {
        let _ = writeln!(out, "\nproblems:");
        for p in &problems {
            let _ = writeln!(out, "  - {p}");
        }
        1
    }
}

/// The version, the workspace and whether it is trusted, the sandbox, and every configuration
/// value with where it came from; the configuration's warnings go to `problems`.
fn print_configuration(out: &mut impl Write, service: &ReviewService, problems: &mut Vec<String>) {
    let resolved = service.resolved();
    let _ = writeln!(out, "refine-ls {}", env!("CARGO_PKG_VERSION"));
    let _ = writeln!(
        out,
        "\nworkspace: {}",
        match (service.root(), resolved.trust) {
            (None, _) => "none".to_owned(),
            (Some(r), Some(by)) => format!("{} ({})", r.display(), by.label()),
            (Some(r), None) => format!(
                "{} (not trusted: its .refine.toml may not set {})",
                r.display(),
                crate::trust::gated_keys()
            ),
        }
    );
    let _ = writeln!(
        out,
        "verify.command sandbox: {}",
        crate::sandbox::describe()
    );
    let _ = writeln!(out, "\nconfiguration (value, then where it came from):");
    let mut leaves = Vec::new();
    flatten(
        &serde_json::to_value(&resolved.config).unwrap_or(Value::Null),
        String::new(),
        &mut leaves,
    );
    for (key, value) in leaves {
        let source = match resolved.sources.get(&key) {
            Some(s) => s.label().to_owned(),
            None => env_source(&key, &resolved.config).unwrap_or_else(|| "default".to_owned()),
        };
        // Keys a workspace may set only when trusted (the workspace line says whether it is).
        let gate = if crate::trust::needs_trust(&key) {
            "  [needs trust]"
        } else {
            ""
        };
        let _ = writeln!(out, "  {key} = {value}  ({source}){gate}");
    }
    for (key, source) in &resolved.refused {
        let _ = writeln!(
            out,
            "  {key}: set by {}, ignored (needs trust; the workspace is not trusted)",
            source.label()
        );
    }
    for w in &resolved.warnings {
        problems.push(format!("configuration: {w}"));
    }
}

/// Checks one role's endpoint: reachable, the model served, and (unless `no_probe`) which
/// structured-output mode it takes; what is wrong goes to `problems`.
async fn check_provider(
    out: &mut impl Write,
    role: &str,
    provider: &Provider,
    no_probe: bool,
    problems: &mut Vec<String>,
) {
    let _ = writeln!(out, "\n{role}: {}", provider.describe());
    if let Some(why) = provider.chosen_because() {
        let _ = writeln!(out, "  chosen by provider.kind = \"auto\": {why}");
    }
    match provider.list_models().await {
        Ok(models) => check_model(out, role, provider, &models, problems),
        Err(e) => {
            let _ = writeln!(out, "  reachable: no");
            problems.push(format!("{role}: {e}"));
            return;
        }
    }
    if no_probe {
        return;
    }
    match probe_structured(provider).await {
        Ok(mode) => {
            let name = match mode {
                crate::llm::StructuredMode::JsonSchema => {
                    "json_schema (the critique schema is enforced)"
                }
                crate::llm::StructuredMode::JsonObject => {
                    "json_object (JSON mode; schema in the prompt)"
                }
                crate::llm::StructuredMode::PromptOnly => {
                    "prompt only (the schema is asked for in the prompt)"
                }
            };
            let _ = writeln!(out, "  structured output: {name}");
        }
        Err(e) => {
            let _ = writeln!(out, "  structured output: probe failed");
            problems.push(format!("{role}: a test call failed: {e}"));
        }
    }
}

/// Whether the endpoint, which listed `models`, serves the configured model.
fn check_model(
    out: &mut impl Write,
    role: &str,
    provider: &Provider,
    models: &[String],
    problems: &mut Vec<String>,
) {
    let _ = writeln!(out, "  reachable: yes ({} models listed)", models.len());
    let wanted = provider.model();
    let found = models
        .iter()
        .any(|m| m == wanted || m.split(':').next() == Some(wanted));
    if found || models.is_empty() {
        let _ = writeln!(
            out,
            "  model {wanted}: {}",
            if found {
                "served"
            } else {
                "not listed (the server lists none)"
            }
        );
    } else {
        let shown: Vec<&str> = models.iter().take(8).map(String::as_str).collect();
        let _ = writeln!(
            out,
            "  model {wanted}: NOT served (it serves: {})",
            shown.join(", ")
        );
        problems.push(format!(
            "{role}: the model `{wanted}` is not served at {}; set provider.model (or --model) to one it serves",
            provider.location()
        ));
    }
}

/// Sends a tiny critique request to learn which structured-output mode the endpoint takes.
async fn probe_structured(provider: &Provider) -> Result<crate::llm::StructuredMode, String> {
    use crate::llm::{ChatRequest, JsonSchema, Message};
    let req = ChatRequest {
        messages: vec![
            Message::system(
                "# refine-ls critic\nThis is a connection test. Answer with {\"findings\": []} and nothing else.",
            ),
            Message::user("Reply with {\"findings\": []}."),
        ],
        json_schema: Some(JsonSchema {
            name: "critique",
            schema: crate::engine::critique::schema(),
        }),
        temperature: None,
    };
    provider
        .chat(&req, &CancellationToken::new(), &mut |_| {})
        .await
        .map_err(|e| e.to_string())?;
    Ok(provider.structured_mode())
}

/// Where an unset value comes from when the environment supplies it.
fn env_source(key: &str, cfg: &crate::config::Config) -> Option<String> {
    let var = match (key, cfg.provider.kind.as_str()) {
        ("provider.base_url", "openai") => "OPENAI_BASE_URL",
        ("provider.base_url", "ollama") => "OLLAMA_HOST",
        _ => return None,
    };
    std::env::var(var)
        .ok()
        .filter(|v| !v.is_empty())
        .map(|v| format!("unset; environment {var}={v}"))
}

/// The configuration as `key.path = value` leaves (headers by name only: they may be
/// credentials).
fn flatten(v: &Value, prefix: String, out: &mut Vec<(String, String)>) {
    match v {
        Value::Object(m)
            if !m.is_empty() && !prefix.ends_with("headers") && !prefix.ends_with("extra_body") =>
        {
            for (k, v) in m {
                let p = if prefix.is_empty() {
                    k.clone()
                } else {
                    format!("{prefix}.{k}")
                };
                flatten(v, p, out);
            }
        }
        Value::Object(m) if prefix.ends_with("headers") => {
            // Header values may be credentials: names only.
            let names: Vec<&str> = m.keys().map(String::as_str).collect();
            out.push((prefix, format!("[{}]", names.join(", "))));
        }
        other => out.push((prefix, other.to_string())),
    }
}
