//! Integration tests: one binary.
mod apr;
mod gguf;
mod safetensors;
mod oracle;
mod fetch_models;
mod cli_hostile;
mod real_gguf;
mod util;
mod real_convert;
