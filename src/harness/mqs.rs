//! The Model Qualification Score — the one scoring function (DESIGN §3.4).
//!
//! - A gate's category comes from the catalogue, never from the evidence or the playbook.
//! - Per category: points = max × passed / judged, where judged = Corroborated + Falsified +
//!   Timeout + Crashed (a gate that ran and failed to conclude counts against the model) and
//!   passed = Corroborated. Skipped gates are not judged and never count as passed.
//! - A category with no judged gate scores 0, with a note saying so: absence of evidence earns
//!   nothing.
//! - raw = Σ points (0–1000); normalized = 100·log10(1 + 9·raw/1000) (raw 83 → 24.2);
//!   grades A+ ≥ 97, A ≥ 93, A- ≥ 90, B+ ≥ 87, B ≥ 83, B- ≥ 80, C+ ≥ 77, C ≥ 73, C- ≥ 70,
//!   D+ ≥ 67, D ≥ 63, D- ≥ 60, else F.
//! - status: BLOCKED when any P0 gate is falsified; else NOT QUALIFIED when anything failed or
//!   normalized < 70; else QUALIFIED.

use super::catalog::{lookup, CATEGORIES};
use crate::evidence::{CategoryScore, Evidence, Mqs, Outcome};

/// normalized = 100·log10(1 + 9·raw/1000).
pub fn normalize(raw: f64) -> f64 {
    100.0 * (1.0 + 9.0 * raw / 1000.0).log10()
}

/// The letter grade of a normalized score.
pub fn grade(normalized: f64) -> &'static str {
    const GRADES: [(f64, &str); 12] = [
        (97.0, "A+"),
        (93.0, "A"),
        (90.0, "A-"),
        (87.0, "B+"),
        (83.0, "B"),
        (80.0, "B-"),
        (77.0, "C+"),
        (73.0, "C"),
        (70.0, "C-"),
        (67.0, "D+"),
        (63.0, "D"),
        (60.0, "D-"),
    ];
    GRADES
        .iter()
        .find(|(min, _)| normalized >= *min)
        .map_or("F", |(_, g)| g)
}

/// The category of a gate id (catalogue), or `None` for ids outside the catalogue.
pub fn category_of(gate_id: &str) -> Option<&'static str> {
    lookup(gate_id).map(|g| g.category.as_str())
}

/// Scores a set of evidence records.
pub fn score(evidence: &[Evidence]) -> Mqs {
    let mut m = Mqs::default();
    for (cat, max) in CATEGORIES {
        let mut s = CategoryScore {
            max,
            ..CategoryScore::default()
        };
        for e in evidence
            .iter()
            .filter(|e| category_of(&e.gate_id) == Some(cat))
        {
            match e.outcome {
                Outcome::Corroborated => {
                    s.judged += 1;
                    s.passed += 1;
                }
                Outcome::Falsified | Outcome::Timeout | Outcome::Crashed => s.judged += 1,
                Outcome::Skipped => {}
            }
        }
        if s.judged == 0 {
            s.note = Some(format!("no {cat} gate was judged: 0 of {max} points"));
        } else {
            s.points = max * s.passed as f64 / s.judged as f64;
        }
        m.raw += s.points;
        m.categories.insert(cat.to_string(), s);
    }
    m.normalized = normalize(m.raw);
    m.grade = grade(m.normalized).to_string();
    m.p0_falsified = evidence
        .iter()
        .filter(|e| {
            e.outcome == Outcome::Falsified
                && lookup(&e.gate_id).is_some_and(|g| g.severity == "P0")
        })
        .map(|e| e.gate_id.clone())
        .collect();
    m.p0_falsified.dedup();
    let failed = evidence.iter().any(|e| e.outcome.fails());
    m.status = if !m.p0_falsified.is_empty() {
        "BLOCKED"
    } else if failed || m.normalized < 70.0 {
        "NOT QUALIFIED"
    } else {
        "QUALIFIED"
    }
    .to_string();
    m
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ev(gate: &str, outcome: Outcome) -> Evidence {
        Evidence {
            id: gate.into(),
            gate_id: gate.into(),
            scenario: "s".into(),
            format: String::new(),
            backend: String::new(),
            category: String::new(),
            severity: String::new(),
            outcome,
            reason: String::new(),
            metrics: Default::default(),
            duration_ms: 0,
            output: String::new(),
            stderr: None,
            exit_code: None,
            timestamp: String::new(),
            host: String::new(),
            metadata: Default::default(),
        }
    }

    #[test]
    fn seed_dashboard_normalization() {
        assert!((normalize(83.0) - 24.2).abs() < 0.05);
        assert!((normalize(1000.0) - 100.0).abs() < 1e-9);
        assert_eq!(normalize(0.0), 0.0);
        assert_eq!(grade(97.0), "A+");
        assert_eq!(grade(59.9), "F");
    }

    #[test]
    fn skipped_never_counts_and_empty_categories_score_zero() {
        let all_skipped = score(&[
            ev("F-CONV-G-A", Outcome::Skipped),
            ev("F-PERF-001", Outcome::Skipped),
        ]);
        assert_eq!(all_skipped.raw, 0.0);
        assert!(all_skipped.categories["COMP"]
            .note
            .as_deref()
            .unwrap_or("")
            .contains("no COMP gate"));
        let one = score(&[
            ev("F-CONV-G-A", Outcome::Corroborated),
            ev("F-CONV-A-G", Outcome::Skipped),
        ]);
        assert_eq!(one.categories["COMP"].points, 150.0);
        assert_eq!(one.categories["COMP"].judged, 1);
        assert_eq!(one.raw, 150.0);
        let half = score(&[
            ev("F-CONV-G-A", Outcome::Corroborated),
            ev("F-CONV-A-G", Outcome::Crashed),
        ]);
        assert_eq!(half.categories["COMP"].points, 75.0);
    }

    #[test]
    fn p0_falsified_blocks() {
        let m = score(&[ev("F-CONV-G-A", Outcome::Falsified)]);
        assert_eq!(m.status, "BLOCKED");
        assert_eq!(m.p0_falsified, vec!["F-CONV-G-A".to_string()]);
        let m = score(&[ev("F-EDGE-004", Outcome::Falsified)]);
        assert_eq!(m.status, "NOT QUALIFIED");
    }

    #[test]
    fn aliases_score_in_their_gates_category() {
        let m = score(&[ev("F-CONV-003", Outcome::Corroborated)]);
        assert_eq!(m.categories["COMP"].passed, 1);
    }
}
