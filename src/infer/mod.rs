//! Inference: tokenizer, chat template, forward pass (qwen2, llama), sampling.

pub mod template;
pub mod tokenizer;
pub mod kernels;
pub mod config;
pub mod engine;
mod forward;
pub mod kv_cache;
pub mod generate;
pub mod sampling;
pub mod prompt;
