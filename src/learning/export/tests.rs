//! Folding, exporting and counting a small record.

use serde_json::Value;

use super::*;
use crate::learning::{
    Fate, FateRecord, FindingFix, FindingRecord, Record, ReviewRecord, RevisionRecord, parse_since,
};
use crate::prompts::Prompts;

fn finding(id: usize, principle: &str) -> FindingRecord {
    FindingRecord {
        id,
        principle: principle.to_owned(),
        severity: "warning".to_owned(),
        message: format!("problem {id}"),
        quote: format!("line{id}"),
        start_line: 1,
        end_line: 1,
        suggestion: None,
        confidence: 0.9,
        shown: true,
    }
}

fn review(id: &str, findings: Vec<FindingRecord>, revision: bool) -> Record {
    Record::Review(Box::new(ReviewRecord {
        id: id.to_owned(),
        at: "2026-12-02T10:00:00Z".to_owned(),
        path: "src/a.py".to_owned(),
        language: "python".to_owned(),
        first_line: 0,
        last_line: 1,
        critic: "critic-model".to_owned(),
        reviser: "reviser-model".to_owned(),
        code: "line0\nline1\n".to_owned(),
        unwanted: vec![],
        findings,
        revision: revision.then(|| RevisionRecord {
            code: "fixed0\nfixed1\n".to_owned(),
            fixes: vec![0, 1],
            by_finding: vec![
                FindingFix {
                    finding: 0,
                    code: "fixed0\nline1\n".to_owned(),
                },
                FindingFix {
                    finding: 1,
                    code: "line0\nfixed1\n".to_owned(),
                },
            ],
            round: 1,
        }),
        redactions: 0,
    }))
}

fn fate(id: &str, fate: Fate, findings: &[usize]) -> Record {
    Record::Fate(FateRecord {
        id: id.to_owned(),
        at: "2026-12-02T10:01:00Z".to_owned(),
        fate,
        findings: findings.to_vec(),
        scope: None,
    })
}

#[test]
fn fates_fold_by_precedence() {
    let records = vec![
        review(
            "a",
            vec![finding(0, "correctness"), finding(1, "style")],
            true,
        ),
        review(
            "b",
            vec![finding(0, "correctness"), finding(1, "style")],
            true,
        ),
        review("c", vec![finding(0, "correctness")], true),
        review("d", vec![finding(0, "style")], true),
        fate("a", Fate::Previewed, &[]),
        fate("a", Fate::Applied, &[]),
        fate("a", Fate::Superseded, &[]),
        fate("b", Fate::Dismissed, &[1]),
        fate("b", Fate::AppliedFindings, &[0]),
        fate("c", Fate::Previewed, &[]),
        fate("d", Fate::Dismissed, &[0]),
        fate("d", Fate::Undismissed, &[0]),
    ];
    let f = fold(&records, None);
    assert_eq!(f[0].revision, Some(RevisionFate::Applied));
    assert_eq!(f[0].findings, [FindingFate::Fixed, FindingFate::Fixed]);
    assert_eq!(f[1].revision, Some(RevisionFate::AppliedFindings));
    assert_eq!(f[1].findings, [FindingFate::Fixed, FindingFate::Dismissed]);
    assert_eq!(f[2].revision, Some(RevisionFate::Discarded));
    assert_eq!(f[2].findings, [FindingFate::Ignored]);
    assert_eq!(f[3].revision, Some(RevisionFate::Ignored));
    assert_eq!(f[3].findings, [FindingFate::Ignored]);

    let prompts = Prompts::load_from(&[]);
    let (rows, counts) = rows(&f, Format::Dpo, &prompts).unwrap();
    assert_eq!(counts.revision_accepted, 2);
    assert_eq!(counts.revision_discarded, 1);
    assert_eq!(counts.critic, 1);
    assert_eq!(rows.len(), 4);
    // a: the whole revision over the original.
    assert_eq!(
        rows[0]["chosen"][0]["content"],
        "```python\nfixed0\nfixed1\n```"
    );
    assert_eq!(
        rows[0]["rejected"][0]["content"],
        "```python\nline0\nline1\n```"
    );
    // b: only finding 0's edits, prompted with finding 0 alone.
    assert_eq!(
        rows[1]["chosen"][0]["content"],
        "```python\nfixed0\nline1\n```"
    );
    let user = rows[1]["prompt"][1]["content"].as_str().unwrap();
    assert!(
        user.contains("problem 0") && !user.contains("problem 1"),
        "{user}"
    );
    // b: the critic pair keeps finding 0 only.
    let kept: Value =
        serde_json::from_str(rows[2]["chosen"][0]["content"].as_str().unwrap()).unwrap();
    assert_eq!(kept["findings"].as_array().unwrap().len(), 1);
    assert_eq!(kept["findings"][0]["message"], "problem 0");
    // c: the original over the discarded revision.
    assert_eq!(
        rows[3]["chosen"][0]["content"],
        "```python\nline0\nline1\n```"
    );

    let s = stats(&f);
    assert_eq!(s.total.findings, 6);
    assert_eq!(s.total.dismissed, 1);
    assert_eq!(s.by_principle["style"].dismissed, 1);
    assert_eq!(s.by_model["reviser-model"].revisions, 4);
    assert_eq!(s.by_model["reviser-model"].applied, 2);
    assert_eq!(s.by_model["reviser-model"].acceptance_rate, Some(0.5));
    assert_eq!(s.by_principle["style"].precision, Some(2.0 / 3.0));
}

#[test]
fn since_keeps_later_reviews() {
    let records = vec![review("a", vec![], false)];
    let later = parse_since("2026-12-03").ok();
    assert!(fold(&records, later).is_empty());
    let earlier = parse_since("2026-12-01").ok();
    assert_eq!(fold(&records, earlier).len(), 1);
}
