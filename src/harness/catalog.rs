//! The gate catalogue (`gates/catalog.yaml`, embedded): the one table of gate ids, categories,
//! severities, default tolerances, hypotheses and falsifiers. A gate's MQS category comes from
//! here and nowhere else.

use std::sync::OnceLock;

use serde::{Deserialize, Serialize};

/// The catalogue text, embedded at build time.
pub const CATALOG_YAML: &str = include_str!("../../gates/catalog.yaml");

/// MQS categories with their maximum points (DESIGN §3.4), in report order.
pub const CATEGORIES: [(&str, f64); 6] = [
    ("QUAL", 200.0),
    ("REGR", 150.0),
    ("EDGE", 150.0),
    ("PERF", 150.0),
    ("STAB", 200.0),
    ("COMP", 150.0),
];

/// One catalogue entry.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct GateDef {
    /// Canonical id.
    pub id: String,
    /// Other ids (seed tickets) naming the same gate.
    #[serde(default)]
    pub aliases: Vec<String>,
    /// MQS category.
    pub category: String,
    /// P0…P3.
    pub severity: String,
    /// Default tolerance (meaning depends on the gate; see its falsifier).
    pub tolerance: f64,
    /// What the gate claims.
    pub hypothesis: String,
    /// What refutes it.
    pub falsifier: String,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct CatalogFile {
    gates: Vec<GateDef>,
}

/// The parsed catalogue. Panics only if the embedded file is malformed, which the test
/// `catalogue_is_valid` rules out for every build.
pub fn catalog() -> &'static [GateDef] {
    static CAT: OnceLock<Vec<GateDef>> = OnceLock::new();
    CAT.get_or_init(|| {
        let f: CatalogFile = serde_yaml_ng::from_str(CATALOG_YAML)
            .expect("embedded gates/catalog.yaml is valid (tested)");
        f.gates
    })
}

/// The entry for an id or alias.
pub fn lookup(id: &str) -> Option<&'static GateDef> {
    catalog()
        .iter()
        .find(|g| g.id == id || g.aliases.iter().any(|a| a == id))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn catalogue_is_valid() {
        let cat = catalog();
        let mut ids: Vec<&str> = cat
            .iter()
            .flat_map(|g| {
                std::iter::once(g.id.as_str()).chain(g.aliases.iter().map(String::as_str))
            })
            .collect();
        let n = ids.len();
        ids.sort_unstable();
        ids.dedup();
        assert_eq!(ids.len(), n, "ids and aliases are unique");
        for g in cat {
            assert!(
                CATEGORIES.iter().any(|(c, _)| *c == g.category),
                "{}: category {}",
                g.id,
                g.category
            );
            assert!(
                ["P0", "P1", "P2", "P3"].contains(&g.severity.as_str()),
                "{}",
                g.id
            );
        }
    }

    #[test]
    fn categories_follow_the_design() {
        let cat = |id: &str| lookup(id).map(|g| g.category.as_str());
        for id in [
            "F-CONV-G-A",
            "F-CONV-001",
            "F-CONV-006",
            "F-CONV-G-HF",
            "F-CONV-BE-001",
            "F-APR-FORMAT-002",
            "F-CONTRACT-I3-001",
            "F-LAYOUT-002",
            "GH-190",
        ] {
            assert_eq!(cat(id), Some("COMP"), "{id}");
        }
        for id in [
            "F-CONV-RT-001",
            "F-CONV-RT-003",
            "F-CONV-IDEM-001",
            "F-CONV-COM-001",
        ] {
            assert_eq!(cat(id), Some("REGR"), "{id}");
        }
        for id in [
            "F-GOLDEN-RULE-001",
            "F-GOLDEN-RULE-003",
            "F-INFER-001",
            "F-ROSETTA-FP-001",
            "F-ROSETTA-STATS-001",
        ] {
            assert_eq!(cat(id), Some("QUAL"), "{id}");
        }
        assert_eq!(cat("F-EDGE-003"), Some("EDGE"));
        assert_eq!(cat("F-PERF-001"), Some("PERF"));
        assert_eq!(cat("F-STAB-002"), Some("STAB"));
        assert_eq!(cat("F-QUANT-001"), Some("STAB"));
        assert_eq!(cat("F-NOPE-1"), None);
    }
}
