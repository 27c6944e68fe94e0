//! Integration tests: one binary.
mod apr;
mod gguf;
mod safetensors;
