use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand};
use refine_ls::cli::{self, DoctorArgs, ReviewArgs};

/// refine-ls: an LLM critique-and-revise loop for code, as a language server.
#[derive(Debug, Parser)]
#[command(name = "refine-ls", version, about)]
struct Args {
    /// Speak LSP on stdin/stdout (the default when no command is given).
    #[arg(long)]
    stdio: bool,
    /// Write logs to this file instead of stderr (`RUST_LOG` sets the level).
    #[arg(long, global = true, value_name = "PATH", env = "REFINE_LS_LOG_FILE")]
    log_file: Option<PathBuf>,
    #[command(subcommand)]
    command: Option<Command>,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Review a file (or some of its lines) from the terminal.
    Review(ReviewArgs),
    /// Show the effective configuration and check that the providers answer.
    Doctor(DoctorArgs),
    /// Measure the loop on HumanEvalPack-style tasks (bug hits, passing revisions, drift).
    Eval(cli::eval::EvalArgs),
    /// Trust a workspace: its `.refine.toml` may then set the keys that decide where code goes,
    /// what runs or what loads (provider endpoints, keys, `verify.*`, `privacy.*`, ...).
    Trust {
        /// The workspace root (the current folder when left out).
        path: Option<PathBuf>,
    },
    /// Dismiss a finding (`--principle` and `--quote`), a principle in a file, or a file, in
    /// `.refine/dismissed.toml` (`--scope workspace`) or your own store (`--scope user`).
    Dismiss(cli::DismissArgs),
    /// The learning record (`learning.record = true`): training sets and the reviewer's
    /// precision as this user sees it.
    Learn {
        #[command(subcommand)]
        action: cli::LearnAction,
    },
    /// Models for the embedded provider (`provider.kind = "local"`).
    Model {
        #[command(subcommand)]
        action: cli::ModelAction,
    },
}

fn main() -> ExitCode {
    let args = Args::parse();
    let default_level = if args.command.is_some() {
        "warn"
    } else {
        "info"
    };
    if let Err(e) = init_logging(args.log_file.as_deref(), default_level) {
        eprintln!("refine-ls: cannot open the log file: {e}");
        return ExitCode::from(2);
    }
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("refine-ls: cannot start the async runtime: {e}");
            return ExitCode::from(2);
        }
    };
    match args.command {
        Some(Command::Review(review)) => {
            ExitCode::from(runtime.block_on(until_interrupted(cli::review(review))))
        }
        Some(Command::Eval(eval)) => {
            ExitCode::from(runtime.block_on(until_interrupted(cli::eval::eval(eval))))
        }
        Some(Command::Doctor(doctor)) => ExitCode::from(runtime.block_on(cli::doctor(doctor))),
        Some(Command::Dismiss(args)) => ExitCode::from(cli::dismiss(args)),
        Some(Command::Learn { action }) => ExitCode::from(cli::learn(action)),
        Some(Command::Model { action }) => ExitCode::from(runtime.block_on(cli::model(action))),
        Some(Command::Trust { path }) => {
            let path = path.unwrap_or_else(|| PathBuf::from("."));
            match refine_ls::trust::trust(&path) {
                Ok(root) => {
                    println!("trusted {}", root.display());
                    ExitCode::SUCCESS
                }
                Err(e) => {
                    eprintln!("refine-ls: {e}");
                    ExitCode::from(2)
                }
            }
        }
        None => {
            let _ = args.stdio;
            runtime.block_on(refine_ls::lsp::serve_stdio());
            // The stdin reader sits in a blocking read that would hold a normal shutdown.
            runtime.shutdown_background();
            ExitCode::SUCCESS
        }
    }
}

/// Runs a command that may start other processes and make scratch copies: the first Ctrl-C or
/// SIGTERM cancels it, so it stops what it started and removes its copies before exiting
/// (status 130); a second one, or a command that has not ended 10 s later, exits at once.
async fn until_interrupted(command: impl std::future::Future<Output = u8>) -> u8 {
    let token = cli::interrupted();
    tokio::spawn(async move {
        if !interrupt().await {
            return;
        }
        eprintln!("refine-ls: interrupted; stopping");
        token.cancel();
        tokio::select! {
            _ = interrupt() => {}
            () = tokio::time::sleep(std::time::Duration::from_secs(10)) => {}
        }
        std::process::exit(130);
    });
    let code = command.await;
    if token.is_cancelled() { 130 } else { code }
}

/// Waits for Ctrl-C or (on unix) SIGTERM; `false` when no handler could be installed.
async fn interrupt() -> bool {
    #[cfg(unix)]
    {
        use tokio::signal::unix::{SignalKind, signal};
        let Ok(mut term) = signal(SignalKind::terminate()) else {
            return tokio::signal::ctrl_c().await.is_ok();
        };
        tokio::select! {
            r = tokio::signal::ctrl_c() => r.is_ok(),
            s = term.recv() => s.is_some(),
        }
    }
    #[cfg(not(unix))]
    {
        tokio::signal::ctrl_c().await.is_ok()
    }
}

/// Logs go to stderr or a file, never to stdout (the LSP channel).
fn init_logging(file: Option<&std::path::Path>, default_level: &str) -> std::io::Result<()> {
    // llama.cpp's own warnings (e.g. about a GGUF's token types) mean nothing to a user; they
    // show with RUST_LOG.
    let filter = tracing_subscriber::EnvFilter::try_from_default_env().unwrap_or_else(|_| {
        tracing_subscriber::EnvFilter::new(format!("{default_level},llama-cpp-2=error"))
    });
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_ansi(false);
    match file {
        Some(path) => {
            // Logs hold code (redacted) and model output: the user's alone.
            refine_ls::secrets::create_private(path);
            let f = std::fs::OpenOptions::new()
                .create(true)
                .append(true)
                .open(path)?;
            builder.with_writer(std::sync::Mutex::new(f)).init();
        }
        None => builder.with_writer(std::io::stderr).init(),
    }
    Ok(())
}
