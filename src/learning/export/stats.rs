//! `learn stats`: the user's own precision figures, per principle and per model.

use std::collections::BTreeMap;

use serde::Serialize;

use super::fold::{FindingFate, Folded, RevisionFate};

/// The figures of one principle or one model.
#[derive(Debug, Default, Clone, PartialEq, Serialize)]
pub struct Tally {
    /// Findings given.
    pub findings: usize,
    /// Of which dismissed.
    pub dismissed: usize,
    /// Of which fixed by an applied revision.
    pub fixed: usize,
    /// Of which neither.
    pub ignored: usize,
    /// Revisions offered.
    pub revisions: usize,
    /// Applied whole or per finding.
    pub applied: usize,
    /// Previewed and not applied.
    pub discarded: usize,
    /// Edited over.
    pub superseded: usize,
    /// The share of findings not dismissed: the user's precision figure (`None`: no findings).
    pub precision: Option<f64>,
    /// The share of findings dismissed.
    pub dismissal_rate: Option<f64>,
    /// The share of findings an applied revision fixed.
    pub fix_rate: Option<f64>,
    /// The share of revisions applied (whole or per finding).
    pub acceptance_rate: Option<f64>,
}

impl Tally {
    fn rates(&mut self) {
        self.precision = ratio(self.findings.saturating_sub(self.dismissed), self.findings);
        self.dismissal_rate = ratio(self.dismissed, self.findings);
        self.fix_rate = ratio(self.fixed, self.findings);
        self.acceptance_rate = ratio(self.applied, self.revisions);
    }
}

fn ratio(a: usize, b: usize) -> Option<f64> {
    (b > 0).then(|| a as f64 / b as f64)
}

/// `learn stats`: per principle and per model (the critic for findings, the reviser for
/// revisions).
#[derive(Debug, Default, Clone, PartialEq, Serialize)]
pub struct Stats {
    /// Reviews counted.
    pub reviews: usize,
    /// Everything.
    pub total: Tally,
    /// By the principle a finding cites.
    pub by_principle: BTreeMap<String, Tally>,
    /// By model.
    pub by_model: BTreeMap<String, Tally>,
}

/// The figures of the folded reviews.
pub fn stats(folded: &[Folded]) -> Stats {
    let mut s = Stats {
        reviews: folded.len(),
        ..Stats::default()
    };
    for f in folded {
        let r = &f.review;
        for (finding, fate) in r.findings.iter().zip(&f.findings) {
            let principle = s.by_principle.entry(finding.principle.clone()).or_default();
            let model = s.by_model.entry(r.critic.clone()).or_default();
            for t in [&mut s.total, principle, model] {
                t.findings += 1;
                match fate {
                    FindingFate::Dismissed => t.dismissed += 1,
                    FindingFate::Fixed => t.fixed += 1,
                    FindingFate::Ignored => t.ignored += 1,
                }
            }
        }
        if let Some(fate) = f.revision {
            let model = s.by_model.entry(r.reviser.clone()).or_default();
            for t in [&mut s.total, model] {
                t.revisions += 1;
                match fate {
                    RevisionFate::Applied | RevisionFate::AppliedFindings => t.applied += 1,
                    RevisionFate::Discarded => t.discarded += 1,
                    RevisionFate::Superseded => t.superseded += 1,
                    RevisionFate::Ignored => {}
                }
            }
        }
    }
    s.total.rates();
    for t in s.by_principle.values_mut().chain(s.by_model.values_mut()) {
        t.rates();
    }
    s
}

/// `learn stats` as a table.
pub fn stats_table(s: &Stats) -> String {
    let pct = |r: Option<f64>| r.map_or_else(|| "-".to_owned(), |r| format!("{:.0}%", r * 100.0));
    let mut out = format!("{} reviews\n\n", s.reviews);
    out.push_str(&format!(
        "{:<24} {:>8} {:>9} {:>6} {:>7} {:>9}\n",
        "principle", "findings", "dismissed", "fixed", "ignored", "precision"
    ));
    for (name, t) in s.by_principle.iter().chain([(&"all".to_owned(), &s.total)]) {
        out.push_str(&format!(
            "{:<24} {:>8} {:>9} {:>6} {:>7} {:>9}\n",
            name,
            t.findings,
            t.dismissed,
            t.fixed,
            t.ignored,
            pct(t.precision)
        ));
    }
    out.push_str(&format!(
        "\n{:<40} {:>8} {:>9} {:>9} {:>8} {:>9} {:>8}\n",
        "model", "findings", "precision", "revisions", "applied", "discarded", "accepted"
    ));
    for (name, t) in &s.by_model {
        out.push_str(&format!(
            "{:<40} {:>8} {:>9} {:>9} {:>8} {:>9} {:>8}\n",
            name,
            t.findings,
            pct(t.precision),
            t.revisions,
            t.applied,
            t.discarded,
            pct(t.acceptance_rate)
        ));
    }
    out
}
