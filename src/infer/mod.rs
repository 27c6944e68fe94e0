//! Inference: tokenizer, chat template, forward pass (qwen2, llama), sampling.

pub mod config;
pub mod engine;
mod forward;
pub mod generate;
pub mod kernels;
pub mod kv_cache;
mod mutants;
pub mod prompt;
pub mod sampling;
pub mod template;
pub mod tokenizer;
