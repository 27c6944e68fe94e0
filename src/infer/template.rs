//! Chat templates: the model's own Jinja template (`tokenizer.chat_template`) rendered with
//! minijinja the way llama-cpp-python's `create_chat_completion` renders it for a GGUF file
//! (its `Jinja2ChatFormatter`, llama-cpp-python 0.3.36 `llama_chat_format.py`): a sandbox with
//! `trim_blocks` and `lstrip_blocks`, the trailing newline of the template dropped, loop
//! controls, and the variables `messages`, `add_generation_prompt`, `bos_token`,
//! `eos_token` (the raw token texts), `raise_exception`, `strftime_now`, and `tools`,
//! `functions`, `function_call`, `tool_choice` as none; `tojson` renders like Python's
//! `json.dumps(ensure_ascii=False)`. The prompt is then tokenized with `add_special = false`,
//! `parse_special = true`.
//!
//! Safety: there is no loader (no `include`/`import`, no filesystem access); every render runs
//! on a fuel budget (minijinja counts instructions) and stops with
//! [`TemplateError::OutOfFuel`]; the output is capped ([`TemplateError::OutputTooLarge`]).
//! Invariant: a `ChatTemplate` is compiled once and renders any number of times.
//!
//! Not supported: HF's `{% generation %}` tag (a parse error here), and Python methods beyond
//! the common string/dict ones listed in `py_method`.

use std::cell::Cell;
use std::io;

use indexmap::IndexMap;
use minijinja::value::Kwargs;
use minijinja::{Environment, Error, ErrorKind, State, Value};

use crate::formats::gguf::GgufValue;
use crate::infer::tokenizer::Tokenizer;
use crate::model::Model;

/// One chat message.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ChatMessage {
    /// `system`, `user`, `assistant`, …
    pub role: String,
    /// The text.
    pub content: String,
}

impl ChatMessage {
    /// A message from its role and content.
    pub fn new(role: impl Into<String>, content: impl Into<String>) -> Self {
        Self {
            role: role.into(),
            content: content.into(),
        }
    }
}

/// Why a template cannot be loaded or rendered.
#[derive(Debug, thiserror::Error)]
pub enum TemplateError {
    /// The model has no `tokenizer.chat_template`.
    #[error("the model has no tokenizer.chat_template")]
    Missing,
    /// `tokenizer.chat_template` is not a UTF-8 string.
    #[error("tokenizer.chat_template is not a UTF-8 string ({0})")]
    NotAString(String),
    /// The template does not compile.
    #[error("chat template does not compile: {0}")]
    Syntax(String),
    /// The template failed while rendering (including `raise_exception`).
    #[error("chat template failed: {0}")]
    Render(String),
    /// The render used up its fuel (an endless or too long loop).
    #[error(
        "chat template stopped: out of fuel after {fuel} instructions (endless or too long loop?)"
    )]
    OutOfFuel {
        /// The budget.
        fuel: u64,
    },
    /// The render produced more output than allowed.
    #[error("chat template output exceeds {limit} bytes")]
    OutputTooLarge {
        /// The limit.
        limit: usize,
    },
}

/// A compiled chat template with its BOS/EOS texts and limits.
pub struct ChatTemplate {
    env: Environment<'static>,
    bos_token: String,
    eos_token: String,
    fuel: u64,
    max_output: usize,
}

impl std::fmt::Debug for ChatTemplate {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ChatTemplate")
            .field("bos_token", &self.bos_token)
            .field("eos_token", &self.eos_token)
            .field("fuel", &self.fuel)
            .field("max_output", &self.max_output)
            .finish_non_exhaustive()
    }
}

const NAME: &str = "chat_template";

impl ChatTemplate {
    /// Default fuel: far above what chat templates need (hundreds of instructions per message).
    pub const DEFAULT_FUEL: u64 = 2_000_000;
    /// Default output cap: 4 MiB.
    pub const DEFAULT_MAX_OUTPUT: usize = 4 << 20;

    /// Compiles `source` with the given BOS/EOS texts.
    pub fn new(source: &str, bos_token: &str, eos_token: &str) -> Result<Self, TemplateError> {
        let mut env = Environment::new();
        let syntax = minijinja::syntax::SyntaxConfig::builder()
            .trim_blocks(true)
            .lstrip_blocks(true)
            .keep_trailing_newline(false)
            .build()
            .map_err(|e| TemplateError::Syntax(e.to_string()))?;
        env.set_syntax(syntax);
        env.set_fuel(Some(Self::DEFAULT_FUEL));
        env.add_function("raise_exception", |msg: String| -> Result<Value, Error> {
            Err(Error::new(
                ErrorKind::InvalidOperation,
                format!("raise_exception: {msg}"),
            ))
        });
        env.add_function("strftime_now", |fmt: String| strftime_now(&fmt));
        env.add_filter("tojson", tojson);
        env.set_unknown_method_callback(py_method);
        env.add_template_owned(NAME, source.to_string())
            .map_err(|e| TemplateError::Syntax(format!("{e:#}")))?;
        Ok(Self {
            env,
            bos_token: bos_token.to_string(),
            eos_token: eos_token.to_string(),
            fuel: Self::DEFAULT_FUEL,
            max_output: Self::DEFAULT_MAX_OUTPUT,
        })
    }

    /// The model's `tokenizer.chat_template`, with BOS/EOS texts from its vocabulary (the raw
    /// token texts, as llama-cpp-python passes them; empty when the id is absent).
    pub fn from_model(m: &Model, tok: &Tokenizer) -> Result<Self, TemplateError> {
        let v = m
            .get("tokenizer.chat_template")
            .ok_or(TemplateError::Missing)?;
        let src = v
            .as_str()
            .ok_or_else(|| TemplateError::NotAString(GgufValue::describe(v)))?;
        let text = |id: Option<u32>| {
            id.map(|i| String::from_utf8_lossy(tok.token_text(i)).into_owned())
                .unwrap_or_default()
        };
        Self::new(src, &text(tok.bos()), &text(tok.eos()))
    }

    /// The same template with another fuel budget and output cap.
    pub fn with_limits(mut self, fuel: u64, max_output: usize) -> Self {
        self.env.set_fuel(Some(fuel));
        self.fuel = fuel;
        self.max_output = max_output;
        self
    }

    /// Renders the conversation.
    pub fn render(
        &self,
        messages: &[ChatMessage],
        add_generation_prompt: bool,
    ) -> Result<String, TemplateError> {
        let msgs: Vec<Value> = messages
            .iter()
            .map(|m| {
                let mut map = IndexMap::new();
                map.insert(Value::from("role"), Value::from(m.role.as_str()));
                map.insert(Value::from("content"), Value::from(m.content.as_str()));
                Value::from_object(map)
            })
            .collect();
        let mut ctx: IndexMap<Value, Value> = IndexMap::new();
        ctx.insert("messages".into(), Value::from(msgs));
        ctx.insert("eos_token".into(), Value::from(self.eos_token.as_str()));
        ctx.insert("bos_token".into(), Value::from(self.bos_token.as_str()));
        ctx.insert(
            "add_generation_prompt".into(),
            Value::from(add_generation_prompt),
        );
        for k in ["functions", "function_call", "tools", "tool_choice"] {
            ctx.insert(k.into(), Value::from(()));
        }
        let tmpl = self
            .env
            .get_template(NAME)
            .map_err(|e| TemplateError::Syntax(e.to_string()))?;
        let hit = Cell::new(false);
        let mut buf = Vec::new();
        let w = Capped {
            buf: &mut buf,
            limit: self.max_output,
            hit: &hit,
        };
        match tmpl.render_captured_to(Value::from_object(ctx), w) {
            Ok(_) => String::from_utf8(buf).map_err(|e| TemplateError::Render(e.to_string())),
            Err(_) if hit.get() => Err(TemplateError::OutputTooLarge {
                limit: self.max_output,
            }),
            Err(e) if e.kind() == ErrorKind::OutOfFuel => {
                Err(TemplateError::OutOfFuel { fuel: self.fuel })
            }
            Err(e) => Err(TemplateError::Render(format!("{e:#}"))),
        }
    }
}

/// An `io::Write` that refuses to grow past `limit` bytes.
struct Capped<'a> {
    buf: &'a mut Vec<u8>,
    limit: usize,
    hit: &'a Cell<bool>,
}

impl io::Write for Capped<'_> {
    fn write(&mut self, data: &[u8]) -> io::Result<usize> {
        if self.buf.len().saturating_add(data.len()) > self.limit {
            self.hit.set(true);
            return Err(io::Error::other("chat template output limit"));
        }
        self.buf.extend_from_slice(data);
        Ok(data.len())
    }
    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

/// `tojson` as llama-cpp-python defines it: `json.dumps(x, ensure_ascii=False, indent=…)`
/// (separators `", "` / `": "`, or `","` and newlines with an indent).
fn tojson(value: &Value, kwargs: Kwargs) -> Result<Value, Error> {
    let indent: Option<usize> = kwargs.get("indent")?;
    let _: Option<bool> = kwargs.get("ensure_ascii")?;
    let _: Option<bool> = kwargs.get("sort_keys")?;
    kwargs.assert_all_used()?;
    let mut out = String::new();
    py_json(value, indent, 0, &mut out)?;
    Ok(Value::from_safe_string(out))
}

fn py_json(v: &Value, indent: Option<usize>, level: usize, out: &mut String) -> Result<(), Error> {
    use minijinja::value::ValueKind as K;
    let newline = |out: &mut String, level: usize| {
        if let Some(n) = indent {
            out.push('\n');
            out.push_str(&" ".repeat(n * level));
        }
    };
    let item_sep = if indent.is_some() { "," } else { ", " };
    match v.kind() {
        K::Undefined | K::None => out.push_str("null"),
        K::Bool => out.push_str(if v.is_true() { "true" } else { "false" }),
        K::Number => {
            if let Some(i) = v.as_i64() {
                out.push_str(&i.to_string());
            } else {
                let f = f64::try_from(v.clone())
                    .map_err(|e| Error::new(ErrorKind::InvalidOperation, e.to_string()))?;
                out.push_str(&if f.is_finite() {
                    format!("{f:?}")
                } else if f.is_nan() {
                    "NaN".into()
                } else if f > 0.0 {
                    "Infinity".into()
                } else {
                    "-Infinity".into()
                });
            }
        }
        K::String => {
            out.push_str(&serde_json::to_string(v.as_str().unwrap_or_default()).unwrap_or_default())
        }
        K::Seq | K::Iterable => {
            let items: Vec<Value> = v.try_iter()?.collect();
            if items.is_empty() {
                out.push_str("[]");
                return Ok(());
            }
            out.push('[');
            for (i, it) in items.iter().enumerate() {
                if i > 0 {
                    out.push_str(item_sep);
                }
                newline(out, level + 1);
                py_json(it, indent, level + 1, out)?;
            }
            newline(out, level);
            out.push(']');
        }
        K::Map => {
            let keys: Vec<Value> = v.try_iter()?.collect();
            if keys.is_empty() {
                out.push_str("{}");
                return Ok(());
            }
            out.push('{');
            for (i, k) in keys.iter().enumerate() {
                if i > 0 {
                    out.push_str(item_sep);
                }
                newline(out, level + 1);
                let ks = k.as_str().map_or_else(|| k.to_string(), str::to_string);
                out.push_str(&serde_json::to_string(&ks).unwrap_or_default());
                out.push_str(": ");
                py_json(&v.get_item(k)?, indent, level + 1, out)?;
            }
            newline(out, level);
            out.push('}');
        }
        _ => out.push_str(&serde_json::to_string(&v.to_string()).unwrap_or_default()),
    }
    Ok(())
}

/// Python methods templates call on strings and dicts: `strip`/`lstrip`/`rstrip` (optional
/// characters), `startswith`, `endswith`, `upper`, `lower`, `title`, `capitalize`, `replace`,
/// `split` (optional separator), `items`, `keys`, `values`, `get`.
fn py_method(
    state: &mut State,
    value: &Value,
    method: &str,
    args: &[Value],
) -> Result<Value, Error> {
    let arg_str = |i: usize| args.get(i).and_then(Value::as_str);
    if let Some(s) = value.as_str() {
        let chars: Option<Vec<char>> = arg_str(0).map(|c| c.chars().collect());
        let trim_set = |c: char| {
            chars
                .as_ref()
                .map_or(c.is_whitespace(), |set| set.contains(&c))
        };
        return Ok(match method {
            "strip" => Value::from(s.trim_matches(trim_set)),
            "lstrip" => Value::from(s.trim_start_matches(trim_set)),
            "rstrip" => Value::from(s.trim_end_matches(trim_set)),
            "startswith" => Value::from(arg_str(0).is_some_and(|p| s.starts_with(p))),
            "endswith" => Value::from(arg_str(0).is_some_and(|p| s.ends_with(p))),
            "upper" => Value::from(s.to_uppercase()),
            "lower" => Value::from(s.to_lowercase()),
            "title" => state.apply_filter("title", std::slice::from_ref(value))?,
            "capitalize" => state.apply_filter("capitalize", std::slice::from_ref(value))?,
            "replace" => match (arg_str(0), arg_str(1)) {
                (Some(a), Some(b)) => Value::from(s.replace(a, b)),
                _ => {
                    return Err(Error::new(
                        ErrorKind::InvalidOperation,
                        "replace needs two strings",
                    ))
                }
            },
            "split" => match arg_str(0) {
                Some(sep) if !sep.is_empty() => {
                    Value::from(s.split(sep).map(Value::from).collect::<Vec<_>>())
                }
                _ => Value::from(s.split_whitespace().map(Value::from).collect::<Vec<_>>()),
            },
            _ => return Err(Error::from(ErrorKind::UnknownMethod)),
        });
    }
    if value.kind() == minijinja::value::ValueKind::Map {
        return match method {
            "items" => state.apply_filter("items", std::slice::from_ref(value)),
            "keys" => Ok(Value::from(value.try_iter()?.collect::<Vec<_>>())),
            "values" => {
                let vals: Result<Vec<Value>, Error> =
                    value.try_iter()?.map(|k| value.get_item(&k)).collect();
                Ok(Value::from(vals?))
            }
            "get" => {
                let k = args.first().cloned().unwrap_or_default();
                let got = value.get_item(&k)?;
                Ok(if got.is_undefined() {
                    args.get(1).cloned().unwrap_or(Value::from(()))
                } else {
                    got
                })
            }
            _ => Err(Error::from(ErrorKind::UnknownMethod)),
        };
    }
    Err(Error::from(ErrorKind::UnknownMethod))
}

/// `strftime_now(format)` in UTC: `%Y %m %d %e %H %M %S %y %j %b %B %a %A %p %%`.
fn strftime_now(fmt: &str) -> Result<String, Error> {
    let secs = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_err(|e| Error::new(ErrorKind::InvalidOperation, e.to_string()))?
        .as_secs();
    strftime(fmt, secs)
}

/// Formats the UTC time `secs` after the epoch.
fn strftime(fmt: &str, secs: u64) -> Result<String, Error> {
    const MONTHS: [&str; 12] = [
        "January",
        "February",
        "March",
        "April",
        "May",
        "June",
        "July",
        "August",
        "September",
        "October",
        "November",
        "December",
    ];
    const DAYS: [&str; 7] = [
        "Thursday",
        "Friday",
        "Saturday",
        "Sunday",
        "Monday",
        "Tuesday",
        "Wednesday",
    ];
    let days = secs / 86_400;
    let rem = secs % 86_400;
    let (h, mi, s) = (rem / 3600, rem % 3600 / 60, rem % 60);
    // civil-from-days (H. Hinnant), days since 1970-01-01 → (y, m, d)
    let z = days as i64 + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy_mar = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy_mar + 2) / 153;
    let d = doy_mar - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    let y = yoe + era * 400 + i64::from(m <= 2);
    let leap = (y % 4 == 0 && y % 100 != 0) || y % 400 == 0;
    let cum = [0, 31, 59, 90, 120, 151, 181, 212, 243, 273, 304, 334];
    let yday = cum.get((m - 1) as usize).copied().unwrap_or(0) + d + i64::from(leap && m > 2);
    let month = MONTHS.get((m - 1) as usize).copied().unwrap_or("");
    let wday = DAYS.get((days % 7) as usize).copied().unwrap_or("");
    let mut out = String::new();
    let mut it = fmt.chars();
    while let Some(c) = it.next() {
        if c != '%' {
            out.push(c);
            continue;
        }
        let Some(spec) = it.next() else {
            return Err(Error::new(
                ErrorKind::InvalidOperation,
                "strftime_now: format ends with %",
            ));
        };
        match spec {
            'Y' => out.push_str(&y.to_string()),
            'y' => out.push_str(&format!("{:02}", y.rem_euclid(100))),
            'm' => out.push_str(&format!("{m:02}")),
            'd' => out.push_str(&format!("{d:02}")),
            'e' => out.push_str(&format!("{d:2}")),
            'j' => out.push_str(&format!("{yday:03}")),
            'H' => out.push_str(&format!("{h:02}")),
            'M' => out.push_str(&format!("{mi:02}")),
            'S' => out.push_str(&format!("{s:02}")),
            'p' => out.push_str(if h < 12 { "AM" } else { "PM" }),
            'B' => out.push_str(month),
            'b' => out.push_str(month.get(..3).unwrap_or(month)),
            'A' => out.push_str(wday),
            'a' => out.push_str(wday.get(..3).unwrap_or(wday)),
            '%' => out.push('%'),
            other => {
                return Err(Error::new(
                    ErrorKind::InvalidOperation,
                    format!("strftime_now: unsupported %{other}"),
                ))
            }
        }
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    //! Expected strings were checked against llama-cpp-python's Jinja2ChatFormatter (jinja2
    //! 3.1.6) and Python's time.strftime.
    use super::*;

    #[test]
    fn template_stops_an_endless_loop_by_fuel() {
        let src =
            "{% for i in range(100000) %}{% for j in range(100000) %}{% endfor %}{% endfor %}";
        let t = ChatTemplate::new(src, "", "").expect("compiles");
        let t0 = std::time::Instant::now();
        let e = t.render(&[], true).expect_err("must run out of fuel");
        assert!(matches!(e, TemplateError::OutOfFuel { .. }), "{e:?}");
        assert!(e.to_string().contains("out of fuel"), "{e}");
        assert!(t0.elapsed().as_secs() < 20, "fuel did not stop it quickly");
    }

    #[test]
    fn template_output_is_capped() {
        let t = ChatTemplate::new("{{ 'x' * 1000 }}", "", "")
            .expect("compiles")
            .with_limits(10_000, 100);
        let e = t.render(&[], false).expect_err("output too large");
        assert!(
            matches!(e, TemplateError::OutputTooLarge { limit: 100 }),
            "{e:?}"
        );
    }

    #[test]
    fn template_renders_like_jinja2_chat_formatter() {
        // trim_blocks + lstrip_blocks, trailing newline dropped, bos/eos and add_generation_prompt
        let src = "{{ bos_token }}\n{% for m in messages %}\n    {% if m.role == 'user' %}\n[U]{{ m.content }}{{ eos_token }}\n    {% else %}\n[{{ m['role'] | upper }}]{{ m.content.strip() }}\n    {% endif %}\n{% endfor %}\n{% if add_generation_prompt %}[A]{% endif %}\n";
        let t = ChatTemplate::new(src, "<s>", "</s>").expect("compiles");
        let msgs = [
            ChatMessage::new("system", "  be brief "),
            ChatMessage::new("user", "hi"),
        ];
        assert_eq!(
            t.render(&msgs, true).expect("render"),
            "<s>\n[SYSTEM]be brief\n[U]hi</s>\n[A]"
        );
        assert_eq!(
            t.render(&msgs, false).expect("render"),
            "<s>\n[SYSTEM]be brief\n[U]hi</s>\n"
        );
        // raise_exception surfaces the template's message
        let t = ChatTemplate::new("{{ raise_exception('roles must alternate') }}", "", "")
            .expect("compiles");
        let e = t.render(&msgs, true).expect_err("raises");
        assert!(e.to_string().contains("roles must alternate"), "{e}");
        // tojson as Python's json.dumps(ensure_ascii=False)
        let t = ChatTemplate::new(
            "{{ {'a': 1, 'b': [1, 'x\"é'], 'c': none} | tojson }}",
            "",
            "",
        )
        .expect("compiles");
        assert_eq!(
            t.render(&[], false).expect("render"),
            "{\"a\": 1, \"b\": [1, \"x\\\"é\"], \"c\": null}"
        );
        // tools are none, as llama-cpp-python passes them
        let t = ChatTemplate::new(
            "{% if tools %}T{% else %}N{% endif %}{{ tools is none }}",
            "",
            "",
        )
        .expect("compiles");
        assert_eq!(t.render(&[], false).expect("render"), "NTrue");
        // no filesystem: include has no loader
        let t = ChatTemplate::new("{% include '/etc/passwd' %}", "", "").expect("compiles");
        assert!(t.render(&[], false).is_err());
    }

    #[test]
    fn strftime_formats_utc_dates() {
        // 2023-11-14 22:13:20 UTC was a Tuesday; 1970-01-01 a Thursday; 2024-02-29 day 60
        assert_eq!(
            strftime("%Y-%m-%d %H:%M:%S %a %A %b %B %j", 1_700_000_000).expect("fmt"),
            "2023-11-14 22:13:20 Tue Tuesday Nov November 318"
        );
        assert_eq!(strftime("%d %b %Y", 0).expect("fmt"), "01 Jan 1970");
        assert_eq!(
            strftime("%j %e %y %%", 1_709_164_800).expect("fmt"),
            "060 29 24 %"
        );
        assert!(strftime("%Q", 0).is_err());
    }
}
