//! Test-only hooks, read once from `APR_QA_TEST_HOOK=KIND:GATE` (`hang:F-EDGE-004`,
//! `panic:F-EDGE-004`, `slow3:F-PERF-001`). They exist so the executor's timeout, crash and
//! timing paths can be tested on the real binary; with the variable unset nothing changes.

/// What a hook does to its gate.
#[derive(Clone, Debug, PartialEq)]
pub enum HookKind {
    /// The gate never returns.
    Hang,
    /// The gate panics.
    Panic,
    /// Timed engine work in the gate takes this many times longer.
    Slow(f64),
}

/// A hook on one gate.
#[derive(Clone, Debug, PartialEq)]
pub struct Hook {
    /// What it does.
    pub kind: HookKind,
    /// The canonical gate id it applies to.
    pub gate: String,
}

impl Hook {
    /// The hook named by `APR_QA_TEST_HOOK`, if any; a malformed value is an error.
    pub fn from_env() -> Result<Option<Self>, String> {
        match std::env::var("APR_QA_TEST_HOOK") {
            Ok(v) if !v.is_empty() => Self::parse(&v).map(Some),
            _ => Ok(None),
        }
    }

    /// Parses `KIND:GATE`.
    pub fn parse(v: &str) -> Result<Self, String> {
        let (kind, gate) = v
            .split_once(':')
            .ok_or_else(|| format!("APR_QA_TEST_HOOK={v:?}: expected KIND:GATE"))?;
        let kind = match kind {
            "hang" => HookKind::Hang,
            "panic" => HookKind::Panic,
            k => match k.strip_prefix("slow").and_then(|f| f.parse::<f64>().ok()) {
                Some(f) if f >= 1.0 => HookKind::Slow(f),
                _ => {
                    return Err(format!(
                        "APR_QA_TEST_HOOK: unknown kind {k:?} (hang, panic, slowN)"
                    ))
                }
            },
        };
        Ok(Self {
            kind,
            gate: gate.to_string(),
        })
    }

    /// Applies the hook inside its gate's thread; returns the slowdown factor.
    pub fn apply(&self) -> f64 {
        match self.kind {
            HookKind::Hang => loop {
                std::thread::sleep(std::time::Duration::from_secs(3600));
            },
            HookKind::Panic => panic!("test hook: {} panics", self.gate),
            HookKind::Slow(f) => f,
        }
    }
}
