//! `refine-ls learn export|stats`: the learning record (`learning.record = true`) as training
//! sets and as the user's own precision figures for the reviewer.

use std::io::Write;
use std::path::PathBuf;

use super::flags::ProviderFlags;
use super::setup::{EXIT_ERROR, load_config, workspace_root};
use crate::learning::export::{self, Format};
use crate::prompts::Prompts;

/// `refine-ls learn …`.
#[derive(Debug, clap::Subcommand)]
pub enum LearnAction {
    /// Write the record as training data: `dpo` (TRL's `prompt`/`chosen`/`rejected`: accepted
    /// and discarded revisions, kept over dismissed findings), `sft` (`prompt`/`completion`:
    /// accepted revisions) or `jsonl` (each review with its fates). A summary goes to stderr.
    Export {
        /// `dpo`, `sft` or `jsonl`.
        #[arg(long)]
        format: Format,
        /// Only reviews from this day (`YYYY-MM-DD`, UTC) or time (RFC 3339) on.
        #[arg(long, value_name = "DATE")]
        since: Option<String>,
        /// Write here instead of stdout.
        #[arg(long, short, value_name = "FILE")]
        output: Option<PathBuf>,
        /// The record's folder (default: `<data dir>/refine-ls/learning`).
        #[arg(long, value_name = "DIR")]
        dir: Option<PathBuf>,
    },
    /// Acceptance and dismissal rates per principle and per model.
    Stats {
        /// Only reviews from this day (`YYYY-MM-DD`, UTC) or time (RFC 3339) on.
        #[arg(long, value_name = "DATE")]
        since: Option<String>,
        /// As JSON.
        #[arg(long)]
        json: bool,
        /// The record's folder (default: `<data dir>/refine-ls/learning`).
        #[arg(long, value_name = "DIR")]
        dir: Option<PathBuf>,
    },
}

/// Runs `refine-ls learn …`; the exit status (0, or 2 on an error).
pub fn learn(action: LearnAction) -> u8 {
    match run(action) {
        Ok(()) => 0,
        Err(e) => {
            eprintln!("refine-ls: {e}");
            EXIT_ERROR
        }
    }
}

fn folded(dir: Option<PathBuf>, since: Option<&str>) -> Result<Vec<export::Folded>, String> {
    let since = since.map(crate::learning::parse_since).transpose()?;
    let dir = dir
        .or_else(crate::learning::default_dir)
        .ok_or("no data folder for the learning record (set REFINE_LS_DATA_DIR or pass --dir)")?;
    let read = crate::learning::read(&dir)?;
    if read.skipped > 0 {
        eprintln!(
            "refine-ls: {} line(s) of the record in {} could not be read (skipped)",
            read.skipped,
            dir.display()
        );
    }
    if read.records.is_empty() {
        eprintln!(
            "refine-ls: the record in {} is empty (set learning.record = true in the user's config to record reviews)",
            dir.display()
        );
    }
    Ok(export::fold(&read.records, since))
}

fn run(action: LearnAction) -> Result<(), String> {
    match action {
        LearnAction::Export {
            format,
            since,
            output,
            dir,
        } => {
            let folded = folded(dir, since.as_deref())?;
            let (rows, counts) = export::rows(&folded, format, &Prompts::load(None))?;
            let mut text = String::new();
            for row in &rows {
                text.push_str(&row.to_string());
                text.push('\n');
            }
            match &output {
                Some(path) => {
                    // Training data holds the user's code: theirs alone.
                    crate::secrets::create_private(path);
                    std::fs::write(path, text)
                        .map_err(|e| format!("cannot write {}: {e}", path.display()))?;
                }
                None => std::io::stdout()
                    .write_all(text.as_bytes())
                    .map_err(|e| format!("cannot write to stdout: {e}"))?,
            }
            eprintln!("refine-ls: {}", counts.summary(format));
            Ok(())
        }
        LearnAction::Stats { since, json, dir } => {
            let stats = export::stats(&folded(dir, since.as_deref())?);
            if json {
                let text = serde_json::to_string_pretty(&stats)
                    .map_err(|e| format!("cannot encode the figures: {e}"))?;
                println!("{text}");
            } else {
                print!("{}", export::stats_table(&stats));
            }
            Ok(())
        }
    }
}

/// `refine-ls dismiss`: what "Refine: dismiss …" does in an editor, from the terminal.
#[derive(Debug, clap::Args)]
pub struct DismissArgs {
    /// The file.
    pub path: PathBuf,
    /// The finding's principle (with `--quote`: that finding; alone: the principle in this
    /// file; neither: every finding in this file).
    #[arg(long)]
    pub principle: Option<String>,
    /// The code the finding quotes (its `quote` in `review --format json`).
    #[arg(long, requires = "principle")]
    pub quote: Option<String>,
    /// `workspace` (`.refine/dismissed.toml`, shared through version control) or `user` (your
    /// own store, every workspace).
    #[arg(long, default_value = "workspace")]
    pub scope: StoreArg,
}

/// Where a dismissal is stored.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum StoreArg {
    /// `.refine/dismissed.toml` at the workspace root.
    Workspace,
    /// The user's data folder.
    User,
}

/// Runs `refine-ls dismiss`; prints the file written.
pub fn dismiss(args: DismissArgs) -> u8 {
    use crate::dismissed::{Dismissal, Scope, fingerprint};
    if !args.path.is_file() {
        eprintln!("refine-ls: {} is not a file", args.path.display());
        return EXIT_ERROR;
    }
    let root = workspace_root(&args.path);
    let file = std::fs::canonicalize(&args.path).ok();
    let resolved = load_config(root.as_deref(), &ProviderFlags::default());
    let service = crate::service::ReviewService::new(
        resolved,
        root,
        std::sync::Arc::new(Prompts::load(None)),
        None,
    );
    let shown = args.path.display().to_string();
    let target = service.dismissal_target(&shown, file.as_deref(), args.scope == StoreArg::User);
    let (store, path) = match target {
        Ok(t) => t,
        Err(e) => {
            eprintln!("refine-ls: {e}");
            return EXIT_ERROR;
        }
    };
    let scope = match (&args.principle, &args.quote) {
        (Some(_), Some(_)) => Scope::Finding,
        (Some(_), None) => Scope::Principle,
        _ => Scope::File,
    };
    let one = scope == Scope::Finding;
    let dismissal = Dismissal {
        path: path.clone(),
        scope,
        principle: args.principle.clone(),
        fingerprint: match (&args.principle, &args.quote) {
            (Some(p), Some(q)) => Some(fingerprint(&path, p, q)),
            _ => None,
        },
        quote: args.quote.clone().filter(|_| one),
        message: None,
    };
    match service.dismiss(&store, dismissal) {
        Ok(added) => {
            println!("{}", store.display());
            if !added {
                eprintln!("refine-ls: already dismissed");
            }
            0
        }
        Err(e) => {
            eprintln!("refine-ls: {e}");
            EXIT_ERROR
        }
    }
}
