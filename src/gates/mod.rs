//! Gates: one file per family, each judging one falsifiable hypothesis by numbers (tensor
//! bytes, dequantized values, token ids, logits — never stdout text) and returning a
//! [`Judgement`]. A gate that cannot judge returns `Err` (the harness records Crashed or
//! Skipped with the reason); a refuted hypothesis is a result, not an error.

pub mod artifacts;
pub mod conversion;
pub mod edge;
pub mod format;
pub mod hf;
pub mod inference;
pub mod perf;
pub mod quant;
pub mod reference;
pub mod rosetta;

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

use crate::evidence::Outcome;
pub use artifacts::Artifacts;

/// A format a playbook converts through.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Fmt {
    /// GGUF.
    Gguf,
    /// APR.
    Apr,
    /// SafeTensors.
    Safetensors,
}

impl Fmt {
    /// File extension.
    pub fn ext(self) -> &'static str {
        match self {
            Self::Gguf => "gguf",
            Self::Apr => "apr",
            Self::Safetensors => "safetensors",
        }
    }

    /// The format a gate-id letter names.
    pub fn from_letter(c: char) -> Option<Self> {
        match c {
            'G' => Some(Self::Gguf),
            'A' => Some(Self::Apr),
            'S' => Some(Self::Safetensors),
            _ => None,
        }
    }
}

/// What a gate concluded.
#[derive(Clone, Debug, PartialEq)]
pub struct Judgement {
    /// Corroborated, Falsified or Skipped (Timeout/Crashed are the harness's).
    pub outcome: Outcome,
    /// One sentence with the numbers.
    pub reason: String,
    /// Measured values.
    pub metrics: Map<String, Value>,
    /// Output excerpt (never the basis of the verdict).
    pub output: String,
}

impl Judgement {
    /// Corroborated, or Falsified when `falsified`.
    pub fn verdict(
        falsified: bool,
        reason: impl Into<String>,
        metrics: Map<String, Value>,
    ) -> Self {
        let outcome = if falsified {
            Outcome::Falsified
        } else {
            Outcome::Corroborated
        };
        Self {
            outcome,
            reason: reason.into(),
            metrics,
            output: String::new(),
        }
    }
    /// Not judged, with the reason.
    pub fn skipped(reason: impl Into<String>) -> Self {
        Self {
            outcome: Outcome::Skipped,
            reason: reason.into(),
            metrics: Map::new(),
            output: String::new(),
        }
    }
}

/// What a gate gets: the shared artifacts and its settings.
pub struct GateCtx<'a> {
    /// Shared run artifacts.
    pub art: &'a Artifacts,
    /// Canonical gate id.
    pub gate_id: &'a str,
    /// Tolerance in force (playbook's, else the catalogue's).
    pub tolerance: f64,
    /// Formats the playbook covers.
    pub formats: &'a [Fmt],
    /// Inference settings (the playbook's `inference:` section).
    pub infer: Option<&'a inference::InferSettings>,
    /// Test-only slowdown factor for timed work (1 = none); see `harness::hooks`.
    pub slowdown: f64,
}

/// Runs gate `ctx.gate_id`; `Err` when it could not judge, `Ok(None)` when no gate of this
/// build implements the id.
pub fn run(ctx: &GateCtx<'_>) -> Option<Result<Judgement, String>> {
    let id = ctx.gate_id;
    let r = match id {
        "F-CONV-G-A" | "F-CONV-A-G" | "F-CONV-G-S" | "F-CONV-S-G" | "F-CONV-A-S" | "F-CONV-S-A"
        | "F-CONV-G-G" | "F-CONV-A-A" | "F-CONV-S-S" => conversion::pair(ctx),
        "F-CONV-RT-001" | "F-CONV-RT-002" | "F-CONV-RT-003" => conversion::round_trip(ctx),
        "F-CONV-IDEM-001" => conversion::idempotence(ctx),
        "F-CONV-COM-001" => conversion::commutativity(ctx),
        "F-GOLDEN-RULE-002" => conversion::tensor_count(ctx),
        "F-LAYOUT-002" => conversion::layout(ctx),
        "F-NAMES-001" => format::names(ctx),
        "F-CONTRACT-I3-001" => format::dtype_contract(ctx),
        "F-APR-FORMAT-001" | "F-APR-FORMAT-002" | "F-APR-FORMAT-003" => format::apr(ctx),
        "F-ROSETTA-FP-001" => rosetta::fingerprints(ctx),
        "F-ROSETTA-STATS-001" => rosetta::stats(ctx),
        "F-QUANT-001" => quant::oracle(ctx),
        "F-QUANT-002" => rosetta::f32_export(ctx),
        "F-STAB-001" => conversion::determinism(ctx),
        "F-EDGE-001" | "F-EDGE-002" | "F-EDGE-003" | "F-EDGE-004" | "F-EDGE-005" => edge::run(ctx),
        "F-PERF-001" => perf::conversion_vs_cp(ctx),
        "F-GOLDEN-RULE-001" => inference::golden_rule(ctx),
        "F-GOLDEN-RULE-003" => inference::not_garbage(ctx),
        "F-STAB-002" | "F-STAB-003" => inference::determinism(ctx),
        "F-CONV-G-HF" => hf::export_complete(ctx),
        "F-INFER-001" => reference::reference_tokens(ctx),
        "F-INFER-003" => inference::recompute(ctx),
        "F-INFER-002" => inference::known_answer(ctx),
        "F-EDGE-006" => inference::hostile_prompts(ctx),
        _ => return None,
    };
    Some(r)
}

/// `{ key: value }` helper for metrics.
#[macro_export]
macro_rules! metrics {
    ($($k:expr => $v:expr),* $(,)?) => {{
        #[allow(unused_mut)]
        let mut m = serde_json::Map::new();
        $( m.insert($k.to_string(), serde_json::json!($v)); )*
        m
    }};
}
