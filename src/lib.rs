//! apr-qa: qualifies LLM model files (GGUF, SafeTensors, APR) and the tools that convert and
//! run them. Modules mirror the pipeline (DESIGN §1): each imports only from those above it.
//!
//! dtype ← quant ← formats ← cli

#![deny(missing_docs)]

pub mod convert;
pub mod dtype;
pub mod evidence;
pub mod fault;
pub mod formats;
pub mod gates;
pub mod harness;
pub mod infer;
pub mod model;
pub mod quant;
pub mod report;
pub mod synth;
