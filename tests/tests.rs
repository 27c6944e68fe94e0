//! Integration tests: one binary.
mod apr;
mod cli_hostile;
mod fetch_models;
mod gguf;
mod oracle;
mod real_convert;
mod real_gguf;
mod safetensors;
mod util;
mod hf;
mod tokenizer;
mod infer;
mod harness;
mod synth;
mod synthetic_run;
mod playbooks;
mod real_harness;
