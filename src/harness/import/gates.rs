//! The gate lists and the ignored blocks of an incumbent playbook (see the invariants of
//! [`super`]).

use serde_json::{Map, Value};

use super::{Ctx, ImportError, DIFFERENTIAL};

pub(super) fn import_gates(c: &mut Ctx, top: &Map<String, Value>) -> Result<(), ImportError> {
    if let Some(v) = top.get("contract_tests") {
        let m = c.map(v, "contract_tests", &["invariants"])?;
        let inv = m
            .get("invariants")
            .map(|v| c.strings(v, "contract_tests.invariants"))
            .transpose()?
            .unwrap_or_default();
        for (i, name) in inv.iter().enumerate() {
            match name.as_str() {
                "I-2" => c.gate("F-NAMES-001"),
                "I-3" => c.gate("F-CONTRACT-I3-001"),
                "I-4" => c.gate("F-ROSETTA-STATS-001"),
                "I-5" => c.gate("F-GOLDEN-RULE-001"),
                _ => c.drop(
                    format!("contract_tests.invariants[{i}]"),
                    format!("invariant {name} has no apr-qa gate"),
                ),
            }
        }
    }
    let list = |c: &Ctx, key: &str| -> Result<Vec<Value>, ImportError> {
        match top.get(key) {
            None => Ok(Vec::new()),
            Some(Value::Array(a)) => Ok(a.clone()),
            Some(_) => Err(c.err(key, "expected a list")),
        }
    };
    for (i, g) in list(c, "falsification_gates")?.iter().enumerate() {
        let p = format!("falsification_gates[{i}]");
        let m = c.map(g, &p, &["id", "description", "condition", "severity"])?;
        c.listed_gate(&format!("{p}.id"), m.get("id"))?;
        for k in ["condition", "severity", "description"]
            .iter()
            .filter(|k| m.contains_key(**k))
        {
            c.drop(format!("{p}.{k}"), "a gate's falsifier, tolerance and severity are fixed in the catalogue (`apr-qa gates`)");
        }
    }
    for (i, g) in list(c, "verification_gates")?.iter().enumerate() {
        let p = format!("verification_gates[{i}]");
        let m = c.map(g, &p, &["id", "gate", "condition", "description"])?;
        c.listed_gate(&format!("{p}.gate"), m.get("gate"))?;
        for k in ["id", "condition", "description"]
            .iter()
            .filter(|k| m.contains_key(**k))
        {
            c.drop(format!("{p}.{k}"), "the gate is judged by the catalogue's falsifier and tolerance; verification ids are the ticket's, not apr-qa's");
        }
    }
    if let Some(v) = top.get("differential_tests") {
        let d = c.map(v, "differential_tests", &DIFFERENTIAL)?;
        for (k, block) in d {
            let p = format!("differential_tests.{k}");
            let b = block
                .as_object()
                .ok_or_else(|| c.err(&p, "expected a mapping"))?;
            let enabled = b
                .get("enabled")
                .map(|e| c.boolean(e, &format!("{p}.enabled")))
                .transpose()?
                .unwrap_or(true);
            if !enabled {
                c.drop(p, "disabled");
                continue;
            }
            if let Some(g) = b.get("gates") {
                let gp = format!("{p}.gates");
                let ids = c.strings(g, &gp)?;
                for (i, id) in ids.iter().enumerate() {
                    c.listed_gate(&format!("{gp}[{i}]"), Some(&Value::String(id.clone())))?;
                }
            }
            for f in b.keys().filter(|f| *f != "enabled" && *f != "gates") {
                c.drop(format!("{p}.{f}"), "settings of the incumbent's rosetta subcommands; apr-qa's gates compute these themselves");
            }
        }
    }
    Ok(())
}

pub(super) fn import_misc(
    c: &mut Ctx,
    top: &Map<String, Value>,
) -> Result<Option<String>, ImportError> {
    let why: [(&str, &str); 11] = [
        ("property_tests", "never executed by the incumbent; generated blocks are `apr-qa hunt` and F-QUANT-002"),
        ("state_machine", "never executed by the incumbent; apr-qa has no scenario state machine"),
        ("profile_ci", "F-PERF floors are ratios to a reference measured in the same run (F-PERF-001/002), never absolute throughput or latency figures"),
        ("trace_payload", "never executed by the incumbent; tracing is not a gate in apr-qa"),
        ("ollama_parity", "the reference engine is llama.cpp (F-INFER-001 references); apr-qa does not drive ollama"),
        ("gates", "gateways: the run checks that the model loads and matches model.expect before any gate (exit 2 otherwise)"),
        ("oracles", "each gate's oracle is fixed in the catalogue, never chosen from the prompt text"),
        ("failure_policy", "a run option in apr-qa: `apr-qa run --fail-fast`"),
        ("kernel_profile", "kernel selection is not a playbook setting"),
        ("acceptance", "a run passes when every gate is corroborated (exit 0): the gates are the acceptance criteria"),
        ("metadata", "informational"),
    ];
    for (k, w) in why {
        if let Some(v) = top.get(k) {
            if k == "metadata" {
                let m = v
                    .as_object()
                    .ok_or_else(|| c.err("metadata", "expected a mapping"))?;
                for key in m.keys().filter(|key| *key != "ticket") {
                    c.drop(format!("metadata.{key}"), w);
                }
            } else {
                c.drop(k, w);
            }
        }
    }
    match top.get("metadata").and_then(|m| m.get("ticket")) {
        None => Ok(None),
        Some(Value::String(s)) => Ok(Some(s.clone())),
        Some(_) => Err(c.err("metadata.ticket", "expected a string")),
    }
}
