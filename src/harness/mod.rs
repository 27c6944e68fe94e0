//! The qualification harness: playbook → plan → executor → evidence → MQS.

pub mod catalog;
pub mod executor;
pub mod hooks;
pub mod hunt;
pub mod import;
pub mod matrix;
pub mod mqs;
pub mod playbook;
pub mod run;
