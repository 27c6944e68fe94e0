//! From a user prompt to token ids: optionally rendered with the model's own chat template
//! (minijinja, fuel-limited), then tokenized with special-token parsing as llama.cpp's chat
//! path does; raw prompts are tokenized without special parsing.

use super::template::{ChatMessage, ChatTemplate, TemplateError};
use super::tokenizer::{Tokenizer, TokenizerError};
use crate::model::Model;

/// Errors turning a prompt into tokens.
#[derive(Debug, thiserror::Error)]
pub enum PromptError {
    /// The tokenizer could not be built from the metadata.
    #[error(transparent)]
    Tokenizer(#[from] TokenizerError),
    /// The chat template is missing or failed to render.
    #[error(transparent)]
    Template(#[from] TemplateError),
}

/// The text fed to the model for `prompt` (chat-templated when `chat`).
pub fn prompt_text(
    model: &Model,
    tok: &Tokenizer,
    prompt: &str,
    chat: bool,
) -> Result<String, PromptError> {
    if !chat {
        return Ok(prompt.to_string());
    }
    let t = ChatTemplate::from_model(model, tok)?;
    Ok(t.render(&[ChatMessage::new("user", prompt)], true)?)
}

/// The token ids fed to the model for `prompt`.
pub fn prompt_tokens(
    model: &Model,
    tok: &Tokenizer,
    prompt: &str,
    chat: bool,
) -> Result<Vec<u32>, PromptError> {
    let text = prompt_text(model, tok, prompt, chat)?;
    Ok(tok.encode(&text, true, chat))
}
