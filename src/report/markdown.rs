//! Markdown report for CI job summaries.
