//! Inference: tokenizer, chat template, forward pass (qwen2, llama), sampling.

pub mod template;
pub mod tokenizer;
