//! The review service: where the engine is assembled, once, from the layered configuration and
//! a workspace root. It owns the providers (critic and reviser), the prompts, the review cache,
//! the `verify.command` that may run in this workspace (trust), and the policy for fetching the
//! default local model. The LSP server, the command line (`review`, `doctor`) and `eval` all
//! review through it; none assembles the parts itself. It knows no LSP.

mod dismissals;
mod record;

use std::path::{Path, PathBuf};
use std::sync::{Arc, RwLock};
use std::time::Duration;

use tokio_util::sync::CancellationToken;

use crate::cache::Cache;
use crate::config::{Config, ProviderConfig, Resolved};
use crate::dismissed::{Dismissal, DismissalError, Dismissals};
use crate::engine::verify::CommandCheck;
use crate::engine::{Engine, Event, ProbePolicy, ReviewInput, ReviewOutcome};
use crate::learning::{Fate, FateRecord, Record, Recorder};
use crate::llm::{Provider, ProviderError};
use crate::prompts::Prompts;

/// The critic and the reviser (the same endpoint unless `critic`/`reviser` say otherwise).
#[derive(Debug)]
pub struct Providers {
    /// Critiques.
    pub critic: Provider,
    /// Revises.
    pub reviser: Provider,
}

impl Providers {
    /// `critic` or, when the two differ, `critic (critic) and reviser (reviser)`.
    pub fn describe(&self) -> String {
        let (c, r) = (self.critic.describe(), self.reviser.describe());
        if c == r {
            c
        } else {
            format!("{c} (critic) and {r} (reviser)")
        }
    }
}

/// Where the providers are.
#[derive(Debug, Clone)]
enum Setup {
    Ready(Arc<Providers>),
    /// They can be built once this local model (a catalogue name; `None`: the default) is
    /// downloaded.
    NeedsModel(Option<String>),
    Failed(String),
}

/// Why the service cannot do what was asked, typed; each reads as one sentence.
#[derive(Debug, thiserror::Error)]
pub enum ServiceError {
    /// The providers could not be built from the configuration (the sentence why).
    #[error("{0}")]
    Providers(String),
    /// The embedded model the configuration needs is not downloaded yet.
    #[error(transparent)]
    NeedsModel(ProviderError),
    /// There is no folder to download the model into.
    #[error("no cache folder on this system; set REFINE_LS_MODELS_DIR")]
    NoModelsFolder,
    /// The configuration names a model the catalogue does not have.
    #[error("{0}")]
    UnknownModel(String),
    /// Downloading the model failed.
    #[error(transparent)]
    Download(#[from] crate::models::PullError),
    /// A secrets file: never sent to a model unless `privacy.review_sensitive_files`.
    #[error(
        "{path} is a secrets file (.env*, keys, .netrc/.npmrc/.pypirc, kubeconfig, *.tfvars, ...; a link to one counts): it is never sent to a model unless privacy.review_sensitive_files is true"
    )]
    SecretsFile {
        /// The file as the user named it.
        path: String,
    },
}

/// The command line reports errors as sentences.
impl From<ServiceError> for String {
    fn from(e: ServiceError) -> Self {
        e.to_string()
    }
}

/// Builds both providers from the configuration.
fn build(cfg: &Config) -> Setup {
    let both = Provider::from_config(&cfg.critic_provider()).and_then(|critic| {
        Ok(Providers {
            critic,
            reviser: Provider::from_config(&cfg.reviser_provider())?,
        })
    });
    match both {
        Ok(p) => Setup::Ready(Arc::new(p)),
        Err(ProviderError::NoLocalModel { model, .. }) => Setup::NeedsModel(model),
        Err(e) => Setup::Failed(e.to_string()),
    }
}

/// Reviews code with one configuration in one workspace.
#[derive(Debug)]
pub struct ReviewService {
    resolved: Resolved,
    root: Option<PathBuf>,
    /// Where the workspace's own settings (`.refine/dismissed.toml`) are read: the root, or
    /// the copy of the base's that `review --diff` reviews under.
    settings: Option<PathBuf>,
    prompts: Arc<Prompts>,
    setup: RwLock<Setup>,
    cache: Option<Arc<Cache>>,
    /// `verify.command`, when it may run here.
    command: Option<String>,
    /// Why a workspace's `verify.command` may not run.
    command_refused: Option<String>,
    /// The learning record, when `learning.record` is on.
    recorder: Option<Recorder>,
    /// The languages whose first prompt head was warmed (`warm_for`).
    warmed: std::sync::Mutex<std::collections::HashSet<String>>,
}

impl ReviewService {
    /// Assembles the service. `cache` is the store an earlier service of this process had open
    /// (a store is opened once per process); without one, the default store is opened when
    /// `cache.enabled`.
    pub fn new(
        resolved: Resolved,
        root: Option<PathBuf>,
        prompts: Arc<Prompts>,
        cache: Option<Arc<Cache>>,
    ) -> Self {
        let setup = build(&resolved.config);
        let cache = if resolved.config.cache.enabled {
            cache.or_else(|| {
                crate::cache::default_path()
                    .and_then(|p| Cache::open(&p))
                    .map(Arc::new)
            })
        } else {
            None
        };
        let (command, command_refused) = verify_command(&resolved, root.as_deref());
        let learning = &resolved.config.learning;
        let recorder = if learning.record {
            let dir = crate::learning::default_dir();
            if dir.is_none() {
                tracing::warn!(
                    "learning.record is on but there is no data folder (set REFINE_LS_DATA_DIR): nothing is recorded"
                );
            }
            dir.map(|d| Recorder::new(d, learning.max_mb.saturating_mul(1024 * 1024)))
        } else {
            None
        };
        Self {
            resolved,
            settings: root.clone(),
            root,
            prompts,
            setup: RwLock::new(setup),
            cache,
            command,
            command_refused,
            recorder,
            warmed: Default::default(),
        }
    }

    /// The service for a workspace, its prompts read from the workspace.
    pub fn open(resolved: Resolved, root: Option<PathBuf>) -> Self {
        let prompts = Arc::new(Prompts::load(root.as_deref()));
        Self::new(resolved, root, prompts, None)
    }

    /// Reads the workspace's own settings (dismissals) from `dir` instead of the root:
    /// `review --diff` reads them from the base of the change, never from the change.
    #[must_use]
    pub fn with_settings_from(mut self, dir: Option<PathBuf>) -> Self {
        self.settings = dir;
        self
    }

    /// The configuration in force.
    pub fn config(&self) -> &Config {
        &self.resolved.config
    }

    /// The configuration and where each value came from.
    pub fn resolved(&self) -> &Resolved {
        &self.resolved
    }

    /// The workspace root.
    pub fn root(&self) -> Option<&Path> {
        self.root.as_deref()
    }

    /// The prompt templates.
    pub fn prompts(&self) -> &Arc<Prompts> {
        &self.prompts
    }

    /// The review cache in use.
    pub fn cache(&self) -> Option<&Arc<Cache>> {
        self.cache.as_ref()
    }

    /// Why a workspace's `verify.command` will not run, if it will not.
    pub fn command_refused(&self) -> Option<&str> {
        self.command_refused.as_deref()
    }

    fn setup(&self) -> Setup {
        self.setup
            .read()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .clone()
    }

    /// The providers, or why there are none.
    pub fn providers(&self) -> Result<Arc<Providers>, ServiceError> {
        match self.setup() {
            Setup::Ready(p) => Ok(p),
            Setup::NeedsModel(model) => {
                Err(ServiceError::NeedsModel(ProviderError::NoLocalModel {
                    source_name: crate::models::wanted(model.as_deref())
                        .map(|s| s.name)
                        .unwrap_or_default(),
                    model,
                }))
            }
            Setup::Failed(e) => Err(ServiceError::Providers(e)),
        }
    }

    /// The providers can be built only once the default local model is downloaded.
    pub fn needs_model(&self) -> bool {
        matches!(self.setup(), Setup::NeedsModel(_))
    }

    /// The local model that must be downloaded before the providers can be built, if one must.
    pub fn pending_model(&self) -> Option<crate::models::Source> {
        match self.setup() {
            Setup::NeedsModel(model) => crate::models::wanted(model.as_deref()).ok(),
            _ => None,
        }
    }

    /// The providers, downloading the default local model first when that is all they lack
    /// (`progress(done, total)` as bytes arrive). One download at a time per process.
    pub async fn ensure_providers(
        &self,
        progress: &mut (dyn FnMut(u64, Option<u64>) + Send),
    ) -> Result<Arc<Providers>, ServiceError> {
        let dir = crate::models::models_dir().ok_or(ServiceError::NoModelsFolder)?;
        // The critic's model first, then the reviser's when it names another.
        for _ in 0..2 {
            let Setup::NeedsModel(model) = self.setup() else {
                break;
            };
            let source =
                crate::models::wanted(model.as_deref()).map_err(ServiceError::UnknownModel)?;
            tracing::info!("downloading {} into {}", source.name, dir.display());
            crate::models::pull(&source, &dir, progress).await?;
            let built = build(&self.resolved.config);
            *self
                .setup
                .write()
                .unwrap_or_else(std::sync::PoisonError::into_inner) = built;
        }
        self.providers()
    }

    /// Each role's provider settings and provider (or why it cannot be built), for `doctor`.
    pub fn roles(&self) -> [(&'static str, ProviderConfig, Result<Provider, String>); 2] {
        let make = |cfg: ProviderConfig| {
            let built = Provider::from_config(&cfg).map_err(|e| e.to_string());
            (cfg, built)
        };
        let (c, cp) = make(self.resolved.config.critic_provider());
        let (r, rp) = make(self.resolved.config.reviser_provider());
        [("critic", c, cp), ("reviser", r, rp)]
    }

    /// `verify.command` for a file of this workspace (an absolute path), when one may run.
    pub fn command_for(&self, file: &Path) -> Option<CommandCheck> {
        let command = self.command.clone()?;
        let root = self.root.clone()?;
        let file = file.strip_prefix(&root).ok()?.to_path_buf();
        Some(CommandCheck {
            command,
            root,
            file,
            timeout: Duration::from_secs(self.resolved.config.verify.timeout_secs),
            network: self.resolved.config.verify.network,
        })
    }

    /// Refuses a secrets file (unless `privacy.review_sensitive_files`), with the sentence why.
    pub fn check_sendable(&self, path: &str) -> Result<(), ServiceError> {
        if !self.resolved.config.privacy.review_sensitive_files
            && crate::secrets::is_sensitive_file(Path::new(path))
        {
            return Err(ServiceError::SecretsFile {
                path: path.to_owned(),
            });
        }
        Ok(())
    }

    /// Reviews `input` from `file` (an absolute path, for `verify.command`) with the review
    /// cache. Never fails: a missing provider is the outcome's `error`.
    pub async fn review(
        &self,
        input: &ReviewInput,
        file: Option<&Path>,
        cancel: &CancellationToken,
        progress: &mut (dyn FnMut(Event) + Send),
    ) -> ReviewOutcome {
        let command = file.and_then(|f| self.command_for(f));
        // Fault injection for the supervision test (debug builds only): a review that panics
        // must still end, as an error, with its progress closed.
        #[cfg(debug_assertions)]
        if std::env::var("REFINE_LS_FAULT").is_ok_and(|f| f == "panic-in-review") {
            panic!("injected by REFINE_LS_FAULT=panic-in-review");
        }
        // Dismissed findings are neither streamed nor returned (read once: the file may change).
        let paths = self.dismissal_paths(&input.path, file);
        let in_force = self.dismissals();
        let mut shown = |event: Event| {
            if !dismissals::hides(&in_force, &paths, &event) {
                progress(event);
            }
        };
        let told = dismissals::told(input, &in_force, &paths);
        let input = told.as_ref().unwrap_or(input);
        let mut outcome = self
            .review_with(input, command.as_ref(), true, cancel, &mut shown)
            .await;
        dismissals::drop_dismissed(&paths, &in_force, &mut outcome);
        outcome
    }

    /// Whether reviews are recorded (`learning.record`).
    pub fn recording(&self) -> bool {
        self.recorder.is_some()
    }

    /// Adds a finished review to the learning record (nothing unless `learning.record`):
    /// `review_id` is the id the editor knows it by.
    pub fn record_review(
        &self,
        review_id: &str,
        input: &ReviewInput,
        file: Option<&Path>,
        outcome: &ReviewOutcome,
    ) {
        let Some(recorder) = &self.recorder else {
            return;
        };
        if outcome.error.is_some() || outcome.cancelled {
            return;
        }
        let models = match self.providers() {
            Ok(p) => (p.critic.describe(), p.reviser.describe()),
            Err(_) => return,
        };
        let paths = self.dismissal_paths(&input.path, file);
        let told = ReviewInput {
            unwanted: self
                .dismissals()
                .map(|d| dismissals::unwanted(&d, &paths))
                .unwrap_or_default(),
            ..input.clone()
        };
        let path =
            dismissals::relative_path(self.root(), file).unwrap_or_else(|| input.path.clone());
        let rec = record::review_record(
            crate::learning::record_id(review_id),
            path,
            &told,
            outcome,
            models,
        );
        recorder.append(&Record::Review(Box::new(rec)));
    }

    /// Adds what the user did with a review to the learning record (nothing unless
    /// `learning.record`).
    pub fn record_fate(
        &self,
        review_id: &str,
        fate: Fate,
        findings: Vec<usize>,
        scope: Option<&str>,
    ) {
        let Some(recorder) = &self.recorder else {
            return;
        };
        recorder.append(&Record::Fate(FateRecord {
            id: crate::learning::record_id(review_id),
            at: crate::learning::now(),
            fate,
            findings,
            scope: scope.map(str::to_owned),
        }));
    }

    /// The dismissals in force: the workspace's (`.refine/dismissed.toml`, shared through version
    /// control) and the user's own, read afresh each time (either may be edited by hand).
    pub fn dismissals(&self) -> Result<Dismissals, DismissalError> {
        dismissals::read(self.settings.as_deref())
    }

    /// The names dismissals may give a file: relative to the workspace root (`/`-separated; the
    /// workspace's store), and absolute (the user's store); the review's own path when neither
    /// is known.
    pub fn dismissal_paths(&self, path: &str, file: Option<&Path>) -> Vec<String> {
        dismissals::paths(self.root(), path, file)
    }

    /// Where a new dismissal goes, and the path it names the file by: the workspace's file
    /// (path relative to the root), or the user's (`user`, or no workspace: absolute path).
    pub fn dismissal_target(
        &self,
        path: &str,
        file: Option<&Path>,
        user: bool,
    ) -> Result<(PathBuf, String), DismissalError> {
        dismissals::target(self.root(), path, file, user)
    }

    /// Adds a dismissal to `store` (from [`Self::dismissal_target`]); `false` when it was
    /// there already.
    pub fn dismiss(&self, store: &Path, d: Dismissal) -> Result<bool, DismissalError> {
        dismissals::add(self.root(), store, d)
    }

    /// Removes the dismissals, in the workspace's store and the user's, that cover any of the
    /// findings (`(principle, quote)`) in the file `paths` name; how many. Each store is read
    /// and written once.
    pub fn undismiss(
        &self,
        paths: &[String],
        findings: &[(&str, &str)],
    ) -> Result<usize, DismissalError> {
        dismissals::remove(self.root(), paths, findings)
    }

    fn engine<'a>(
        &'a self,
        providers: &'a Providers,
        command: Option<&'a CommandCheck>,
        cached: bool,
    ) -> Engine<'a> {
        Engine {
            critic: &providers.critic,
            reviser: &providers.reviser,
            prompts: &self.prompts,
            config: &self.resolved.config.refine_loop,
            redact_secrets: self.resolved.config.privacy.redact_secrets,
            command,
            cache: if cached { self.cache.as_deref() } else { None },
            probes: probe_policy(&self.resolved),
            workspace: self.root(),
        }
    }

    /// With the embedded model answering the strategy's first call: processes that call's
    /// system prompt for `language` (fix-first's fixer, else the critic) into its cache, once
    /// per language, so that the first review of a file in that language only processes its
    /// own part. Called when a document opens.
    pub async fn warm_for(&self, language: &str) {
        // Not yet when the model is still to be downloaded: the next document tries again.
        let Ok(providers) = self.providers() else {
            return;
        };
        let first = self
            .warmed
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .insert(language.to_owned());
        if !first {
            return;
        }
        let engine = self.engine(&providers, None, false);
        let (system, to_reviser) = match engine.first_system(language) {
            Ok(s) => s,
            Err(e) => {
                tracing::warn!("the first call's prompt could not be rendered: {e}");
                return;
            }
        };
        let provider = if to_reviser {
            &providers.reviser
        } else {
            &providers.critic
        };
        if provider.kind() != crate::llm::Kind::Local {
            return;
        }
        match provider.warm(&[crate::llm::Message::system(system)]).await {
            Ok(()) => tracing::info!(
                language,
                to_reviser,
                "the first call's prompt head is being processed"
            ),
            Err(e) => tracing::warn!("the local model could not be warmed: {e}"),
        }
    }

    /// With the embedded model as the critic: loads it and processes the critic's constant
    /// prompt head into its cache, so that the first review only processes its own part.
    /// Nothing for an endpoint, or when the model is not downloaded yet.
    pub async fn warm(&self) {
        let Ok(providers) = self.providers() else {
            return;
        };
        if providers.critic.kind() != crate::llm::Kind::Local {
            return;
        }
        let engine = self.engine(&providers, None, false);
        let system = match engine.critic_system("", 1, 1) {
            Ok(s) => s,
            Err(e) => {
                tracing::warn!("the critic's prompt could not be rendered: {e}");
                return;
            }
        };
        let started = std::time::Instant::now();
        match providers
            .critic
            .warm(&[crate::llm::Message::system(system)])
            .await
        {
            Ok(()) => tracing::info!(
                ms = started.elapsed().as_millis() as u64,
                "the local model is loaded; its prompt head is being processed"
            ),
            Err(e) => tracing::warn!("the local model could not be warmed: {e}"),
        }
    }

    /// Reviews `input` with a given outside check and, when `cached`, the review cache.
    pub async fn review_with(
        &self,
        input: &ReviewInput,
        command: Option<&CommandCheck>,
        cached: bool,
        cancel: &CancellationToken,
        progress: &mut (dyn FnMut(Event) + Send),
    ) -> ReviewOutcome {
        let providers = match self.providers() {
            Ok(p) => p,
            Err(why) => {
                return ReviewOutcome {
                    error: Some(why.to_string()),
                    ..ReviewOutcome::default()
                };
            }
        };
        let engine = self.engine(&providers, command, cached);
        engine.review(input, cancel, progress).await
    }
}

/// Whether reviews may run the selected code on inputs: `loop.probes`, in the sandbox, or
/// without one only in a trusted workspace.
fn probe_policy(resolved: &Resolved) -> ProbePolicy {
    if !resolved.config.refine_loop.probes {
        return ProbePolicy::Off;
    }
    if matches!(crate::sandbox::detect(), crate::sandbox::Sandbox::Bwrap(_)) || resolved.trusted() {
        return ProbePolicy::Allowed;
    }
    ProbePolicy::NotAllowed(format!(
        "there is no sandbox here ({}) and this workspace is not trusted, so its code is not run",
        crate::sandbox::describe()
    ))
}

/// The `verify.command` that may run for this workspace, and why a configured one may not.
/// Whoever configured it, it runs the workspace's code (a build script, a test), so it runs
/// only in a trusted workspace.
fn verify_command(resolved: &Resolved, root: Option<&Path>) -> (Option<String>, Option<String>) {
    let Some(cmd) = resolved
        .config
        .verify
        .command
        .clone()
        .filter(|c| !c.trim().is_empty())
    else {
        return (None, None);
    };
    if resolved.trusted() {
        return (Some(cmd), None);
    }
    let root = root.map_or_else(|| ".".to_owned(), |r| r.display().to_string());
    (
        None,
        Some(format!(
            "verify.command was not run: it runs this workspace's code, and this workspace is not trusted (run `refine-ls trust {root}` if you trust it)"
        )),
    )
}
