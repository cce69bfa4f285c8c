//! Dismissals in a review: where they are read and written for a workspace (its
//! `.refine/dismissed.toml`, shared through version control, and the user's own), the names
//! they give a file, what the critic is told this codebase does not want, and the findings
//! (and revision) taken out of an outcome.

use std::path::{Path, PathBuf};

use crate::dismissed::{self, Dismissal, DismissalError, Dismissals};
use crate::engine::{Event, Note, ReviewInput, ReviewOutcome};

/// The dismissals in force: the workspace's (read from `settings`: the root, or the base of a
/// change) and the user's own, read afresh each time (either may be edited by hand).
pub(super) fn read(settings: Option<&Path>) -> Result<Dismissals, DismissalError> {
    let workspace = match settings {
        Some(root) => Dismissals::read(&dismissed::workspace_file(root), Some(root))?,
        None => Dismissals::default(),
    };
    let user = match dismissed::user_file() {
        Some(f) => Dismissals::read(&f, None)?,
        None => Dismissals::default(),
    };
    Ok(workspace.merged(user))
}

/// The names dismissals may give a file: relative to the workspace root (`/`-separated; the
/// workspace's store), and absolute (the user's store); the review's own path when neither
/// is known.
pub(super) fn paths(root: Option<&Path>, path: &str, file: Option<&Path>) -> Vec<String> {
    let relative = relative_path(root, file);
    let absolute = file.map(|f| f.to_string_lossy().into_owned());
    let mut out: Vec<String> = relative.into_iter().chain(absolute).collect();
    if out.is_empty() {
        out.push(path.to_owned());
    }
    out
}

/// Where a new dismissal goes, and the path it names the file by: the workspace's file
/// (path relative to the root), or the user's (`user`, or no workspace: absolute path).
pub(super) fn target(
    root: Option<&Path>,
    path: &str,
    file: Option<&Path>,
    user: bool,
) -> Result<(PathBuf, String), DismissalError> {
    match (root, relative_path(root, file)) {
        (Some(root), Some(relative)) if !user => Ok((dismissed::workspace_file(root), relative)),
        _ => {
            let store = dismissed::user_file().ok_or(DismissalError::NoUserStore)?;
            let name = file.map_or_else(|| path.to_owned(), |f| f.to_string_lossy().into_owned());
            Ok((store, name))
        }
    }
}

/// `file` relative to the workspace root, `/`-separated, when it is inside it.
pub(super) fn relative_path(root: Option<&Path>, file: Option<&Path>) -> Option<String> {
    root.zip(file)
        .and_then(|(root, f)| f.strip_prefix(root).ok())
        .map(|rel| rel.to_string_lossy().replace('\\', "/"))
}

/// Adds a dismissal to `store` (from [`target`]); `false` when it was there already.
pub(super) fn add(root: Option<&Path>, store: &Path, d: Dismissal) -> Result<bool, DismissalError> {
    Dismissals::update(store, store_root(root, store), |all| all.add(d))
}

/// The workspace a store lies in, when it is the workspace's (never written through a link
/// out of it), `None` for the user's.
fn store_root<'a>(root: Option<&'a Path>, store: &Path) -> Option<&'a Path> {
    root.filter(|root| dismissed::workspace_file(root) == store)
}

/// Removes the dismissals, in the workspace's store and the user's, that cover any of the
/// findings (`(principle, quote)`) in the file `paths` name; how many. Each store is read
/// and written once.
pub(super) fn remove(
    root: Option<&Path>,
    paths: &[String],
    findings: &[(&str, &str)],
) -> Result<usize, DismissalError> {
    let stores = root
        .map(|root| (dismissed::workspace_file(root), Some(root)))
        .into_iter()
        .chain(dismissed::user_file().map(|f| (f, None)));
    let mut removed = 0usize;
    for (store, root) in stores {
        let n = Dismissals::update(&store, root, |all| {
            paths
                .iter()
                .flat_map(|p| findings.iter().map(move |f| (p, f)))
                .map(|(p, (principle, quote))| all.remove_covering(p, principle, quote))
                .sum::<usize>()
        })?;
        removed = removed.saturating_add(n);
    }
    Ok(removed)
}

/// Whether a progress event is a finding the dismissals cover (not streamed).
pub(super) fn hides(
    dismissals: &Result<Dismissals, DismissalError>,
    paths: &[String],
    event: &Event,
) -> bool {
    match (event, dismissals) {
        (Event::Finding(f), Ok(d)) => d.covers_any(paths, &f.raw.principle, &f.raw.quote),
        _ => false,
    }
}

/// `input` with what the critic is to be told this codebase does not want, when there is
/// something to tell.
pub(super) fn told(
    input: &ReviewInput,
    dismissals: &Result<Dismissals, DismissalError>,
    paths: &[String],
) -> Option<ReviewInput> {
    let unwanted = unwanted(dismissals.as_ref().ok()?, paths);
    (!unwanted.is_empty()).then(|| ReviewInput {
        unwanted,
        ..input.clone()
    })
}

/// What the critic is told this codebase does not want in `path`: each dismissed finding
/// (principle and quote, shortened) and each dismissed principle, at most 12 lines. A file
/// dismissed whole tells nothing: every finding there is taken out anyway.
pub(super) fn unwanted(dismissals: &Dismissals, paths: &[String]) -> Vec<String> {
    dismissals
        .all()
        .iter()
        .filter(|d| paths.contains(&d.path))
        .filter_map(|d| match (d.scope, &d.principle, &d.quote) {
            (dismissed::Scope::Finding, Some(p), Some(q)) => {
                let q: String = q.split_whitespace().collect::<Vec<_>>().join(" ");
                let short: String = q.chars().take(80).collect();
                Some(format!("{p}: `{short}`"))
            }
            (dismissed::Scope::Principle, Some(p), _) => Some(format!("any {p} finding")),
            _ => None,
        })
        .take(12)
        .collect()
}

/// Takes the findings `dismissals` cover out of `outcome` (into `outcome.dismissed`), with a note
/// saying how many.
pub(super) fn drop_dismissed(
    paths: &[String],
    dismissals: &Result<Dismissals, DismissalError>,
    outcome: &mut ReviewOutcome,
) {
    let dismissals = match dismissals {
        Ok(d) if d.is_empty() => return,
        Ok(d) => d,
        Err(e) => {
            tracing::warn!("dismissals not applied: {e}");
            outcome
                .notes
                .push(Note::DismissalsNotApplied { why: e.to_string() });
            return;
        }
    };
    let (dismissed, kept) = std::mem::take(&mut outcome.findings)
        .into_iter()
        .partition(|f| dismissals.covers_any(paths, &f.raw.principle, &f.raw.quote));
    outcome.findings = kept;
    outcome.dismissed = dismissed;
    let count = outcome.dismissed.len();
    if count == 0 {
        return;
    }
    outcome.notes.push(Note::Dismissed { count });
    // A revision that changes code only for dismissed findings is not offered: the user said
    // they do not want those (a model told so may change the code anyway).
    let is_dismissed = |id: usize| outcome.dismissed.iter().any(|f| f.id == id);
    if let Some(r) = &mut outcome.revision {
        let only_dismissed =
            !r.per_finding.is_empty() && r.per_finding.iter().all(|(id, _)| is_dismissed(*id));
        if only_dismissed {
            outcome.revision = None;
            outcome.notes.push(Note::OnlyDismissedFixes);
        } else {
            r.per_finding.retain(|(id, _)| !is_dismissed(*id));
            r.fixes = r.per_finding.len();
        }
    }
}
