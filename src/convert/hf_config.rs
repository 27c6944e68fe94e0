//! `config.json` / `generation_config.json` ↔ GGUF hyper-parameters for the architectures we map.
//!
//! Both directions go through [`HfHparams`], the few numbers the two formats share. The GGUF side
//! follows llama.cpp's `convert_hf_to_gguf.py` (`TextModel.set_gguf_parameters`, plus
//! `LlamaModel.set_gguf_parameters` for `llama.vocab_size` and `llama.rope.dimension_count`), so
//! importing an HF directory yields the keys llama.cpp's converter would write.
//!
//! Invariants: f32 GGUF values are written to JSON as the shortest decimal that reads back as the
//! same f32 (so `1e-6`, not `9.999999974752427e-07`), and read back by rounding to f32: the round
//! trip is exact. Anything the HF classes cannot express (partial rotary, a value length unequal
//! to the key length, rope scaling other than linear) is refused with the key named, never
//! dropped.

use serde_json::{json, Map, Value};

use super::ConvertError;
use crate::formats::gguf::GgufValue;
use crate::formats::names::MappedArch;

/// The hyper-parameters HF configs and GGUF metadata share.
#[derive(Clone, Debug, PartialEq)]
pub struct HfHparams {
    /// Architecture.
    pub arch: MappedArch,
    /// `hidden_size` / `embedding_length`.
    pub hidden_size: u64,
    /// `intermediate_size` / `feed_forward_length`.
    pub intermediate_size: u64,
    /// `num_hidden_layers` / `block_count`.
    pub num_hidden_layers: u64,
    /// `num_attention_heads` / `attention.head_count`.
    pub num_attention_heads: u64,
    /// `num_key_value_heads` / `attention.head_count_kv`.
    pub num_key_value_heads: u64,
    /// `head_dim` / `attention.key_length`, when given explicitly.
    pub head_dim: Option<u64>,
    /// `rms_norm_eps` / `attention.layer_norm_rms_epsilon`.
    pub rms_norm_eps: f32,
    /// `rope_theta` / `rope.freq_base`.
    pub rope_theta: f32,
    /// `max_position_embeddings` / `context_length`.
    pub max_position_embeddings: u64,
    /// `vocab_size` (rows of the token embedding).
    pub vocab_size: u64,
    /// Linear rope scaling factor (`rope_scaling: {type: linear}` / `rope.scaling.*`).
    pub rope_linear_factor: Option<f32>,
}

fn usage(msg: impl Into<String>) -> ConvertError {
    ConvertError::Usage(msg.into())
}

/// The shortest decimal that reads back as `x` (an f32), as a JSON number.
pub fn f32_json(x: f32) -> Value {
    format!("{x}")
        .parse::<f64>()
        .ok()
        .and_then(serde_json::Number::from_f64)
        .map_or(Value::Null, Value::Number)
}

impl HfHparams {
    /// Effective head dimension.
    pub fn head_dim(&self) -> u64 {
        self.head_dim
            .unwrap_or_else(|| self.hidden_size / self.num_attention_heads.max(1))
    }

    /// Reads the GGUF metadata of a mapped architecture; `vocab_rows` is `token_embd`'s row count.
    pub fn from_gguf(
        arch: MappedArch,
        md: &[(String, GgufValue)],
        vocab_rows: u64,
    ) -> Result<Self, ConvertError> {
        let a = arch.gguf_name();
        let get = |k: &str| md.iter().find(|(key, _)| key == k).map(|(_, v)| v);
        let int = |k: &str| -> Result<Option<u64>, ConvertError> {
            let key = format!("{a}.{k}");
            get(&key)
                .map(|v| {
                    v.as_u64()
                        .ok_or_else(|| usage(format!("{key} = {} is not an integer", v.describe())))
                })
                .transpose()
        };
        let req = |k: &str| -> Result<u64, ConvertError> {
            int(k)?.ok_or_else(|| usage(format!("GGUF metadata lacks {a}.{k}")))
        };
        let float = |k: &str| -> Result<Option<f32>, ConvertError> {
            let key = format!("{a}.{k}");
            get(&key)
                .map(|v| match v {
                    GgufValue::F32(x) => Ok(*x),
                    other => other.as_f64().map(|x| x as f32).ok_or_else(|| {
                        usage(format!("{key} = {} is not a number", other.describe()))
                    }),
                })
                .transpose()
        };
        let n_head = req("attention.head_count")?;
        let hidden = req("embedding_length")?;
        if n_head == 0 {
            return Err(usage(format!("{a}.attention.head_count is 0")));
        }
        let key_len = int("attention.key_length")?;
        if let (Some(k), Some(v)) = (key_len, int("attention.value_length")?) {
            if k != v {
                return Err(usage(format!(
                    "{a}.attention.key_length {k} != value_length {v}: no HF config expresses it"
                )));
            }
        }
        let head_dim = key_len.filter(|&k| k * n_head != hidden);
        let eff = head_dim.unwrap_or(hidden / n_head);
        if let Some(rd) = int("rope.dimension_count")? {
            if rd != eff {
                return Err(usage(format!(
                    "{a}.rope.dimension_count {rd} != head dim {eff}: partial rotary is not in {}",
                    class_name(arch)
                )));
            }
        }
        let rope_linear_factor = match get(&format!("{a}.rope.scaling.type")) {
            None => None,
            Some(v) if v.as_str() == Some("none") => None,
            Some(v) if v.as_str() == Some("linear") => float("rope.scaling.factor")?,
            Some(v) => {
                return Err(usage(format!(
                    "{a}.rope.scaling.type = {}: only linear rope scaling is exported",
                    v.describe()
                )))
            }
        };
        Ok(Self {
            arch,
            hidden_size: hidden,
            intermediate_size: req("feed_forward_length")?,
            num_hidden_layers: req("block_count")?,
            num_attention_heads: n_head,
            num_key_value_heads: int("attention.head_count_kv")?.unwrap_or(n_head),
            head_dim,
            rms_norm_eps: float("attention.layer_norm_rms_epsilon")?.ok_or_else(|| {
                usage(format!(
                    "GGUF metadata lacks {a}.attention.layer_norm_rms_epsilon"
                ))
            })?,
            rope_theta: float("rope.freq_base")?.unwrap_or(10000.0),
            max_position_embeddings: req("context_length")?,
            vocab_size: vocab_rows,
            rope_linear_factor,
        })
    }

    /// Reads an HF `config.json`.
    pub fn from_config(cfg: &Value) -> Result<Self, ConvertError> {
        let model_type = cfg.get("model_type").and_then(Value::as_str).unwrap_or("");
        let arch = match model_type {
            "qwen2" => MappedArch::Qwen2,
            "llama" => MappedArch::Llama,
            other => {
                return Err(usage(format!(
                "config.json model_type {other:?} is not an architecture we import (qwen2, llama)"
            )))
            }
        };
        let int = |k: &str| {
            cfg.get(k).filter(|v| !v.is_null()).map(|v| {
                v.as_u64()
                    .ok_or_else(|| usage(format!("config.json {k} = {v} is not an integer")))
            })
        };
        let req = |k: &str| int(k).unwrap_or_else(|| Err(usage(format!("config.json lacks {k}"))));
        let float = |k: &str| {
            cfg.get(k).filter(|v| !v.is_null()).map(|v| {
                v.as_f64()
                    .map(|x| x as f32)
                    .ok_or_else(|| usage(format!("config.json {k} = {v} is not a number")))
            })
        };
        let n_head = req("num_attention_heads")?;
        let hidden = req("hidden_size")?;
        if n_head == 0 {
            return Err(usage("config.json num_attention_heads is 0"));
        }
        let head_dim = int("head_dim")
            .transpose()?
            .filter(|&d| d * n_head != hidden);
        let rope_linear_factor = match cfg.get("rope_scaling").filter(|v| !v.is_null()) {
            None => None,
            Some(rs) => {
                let ty = rs
                    .get("rope_type")
                    .or_else(|| rs.get("type"))
                    .and_then(Value::as_str)
                    .unwrap_or("");
                match (ty, rs.get("factor").and_then(Value::as_f64)) {
                    ("linear", Some(f)) => Some(f as f32),
                    ("default", _) => None,
                    _ => {
                        return Err(usage(format!(
                            "config.json rope_scaling {rs} is not supported (only linear)"
                        )))
                    }
                }
            }
        };
        Ok(Self {
            arch,
            hidden_size: hidden,
            intermediate_size: req("intermediate_size")?,
            num_hidden_layers: req("num_hidden_layers")?,
            num_attention_heads: n_head,
            num_key_value_heads: int("num_key_value_heads").transpose()?.unwrap_or(n_head),
            head_dim,
            rms_norm_eps: float("rms_norm_eps")
                .unwrap_or_else(|| Err(usage("config.json lacks rms_norm_eps")))?,
            rope_theta: float("rope_theta").transpose()?.unwrap_or(10000.0),
            max_position_embeddings: req("max_position_embeddings")?,
            vocab_size: req("vocab_size")?,
            rope_linear_factor,
        })
    }

    /// The GGUF keys llama.cpp's converter writes for these parameters, in its order.
    pub fn gguf_kv(&self) -> Vec<(String, GgufValue)> {
        let a = self.arch.gguf_name();
        let k = |s: &str| format!("{a}.{s}");
        let u32v = |x: u64| GgufValue::U32(u32::try_from(x).unwrap_or(u32::MAX));
        let mut kv = vec![
            (k("block_count"), u32v(self.num_hidden_layers)),
            (k("context_length"), u32v(self.max_position_embeddings)),
            (k("embedding_length"), u32v(self.hidden_size)),
            (k("feed_forward_length"), u32v(self.intermediate_size)),
            (k("attention.head_count"), u32v(self.num_attention_heads)),
            (k("attention.head_count_kv"), u32v(self.num_key_value_heads)),
            (k("rope.freq_base"), GgufValue::F32(self.rope_theta)),
            (
                k("attention.layer_norm_rms_epsilon"),
                GgufValue::F32(self.rms_norm_eps),
            ),
        ];
        if let Some(d) = self.head_dim {
            kv.push((k("attention.key_length"), u32v(d)));
            kv.push((k("attention.value_length"), u32v(d)));
        }
        if let Some(f) = self.rope_linear_factor {
            kv.push((
                k("rope.scaling.type"),
                GgufValue::String(b"linear".to_vec()),
            ));
            kv.push((k("rope.scaling.factor"), GgufValue::F32(f)));
        }
        if self.arch == MappedArch::Llama {
            kv.push((k("vocab_size"), u32v(self.vocab_size)));
            kv.push((k("rope.dimension_count"), u32v(self.head_dim())));
        }
        kv
    }

    /// `config.json`. `torch_dtype` is `float32` | `float16` | `bfloat16`.
    pub fn config_json(
        &self,
        tie_word_embeddings: bool,
        attention_bias: bool,
        bos: Option<u64>,
        eos: Option<u64>,
        torch_dtype: &str,
    ) -> Value {
        let mut m = Map::new();
        m.insert("architectures".into(), json!([class_name(self.arch)]));
        m.insert("model_type".into(), json!(self.arch.gguf_name()));
        m.insert("hidden_size".into(), json!(self.hidden_size));
        m.insert("intermediate_size".into(), json!(self.intermediate_size));
        m.insert("num_hidden_layers".into(), json!(self.num_hidden_layers));
        m.insert(
            "num_attention_heads".into(),
            json!(self.num_attention_heads),
        );
        m.insert(
            "num_key_value_heads".into(),
            json!(self.num_key_value_heads),
        );
        if let Some(d) = self.head_dim {
            m.insert("head_dim".into(), json!(d));
        }
        m.insert("hidden_act".into(), json!("silu"));
        m.insert("rms_norm_eps".into(), f32_json(self.rms_norm_eps));
        m.insert("rope_theta".into(), f32_json(self.rope_theta));
        m.insert(
            "rope_scaling".into(),
            self.rope_linear_factor.map_or(
                Value::Null,
                |f| json!({"type": "linear", "rope_type": "linear", "factor": f32_json(f)}),
            ),
        );
        m.insert(
            "max_position_embeddings".into(),
            json!(self.max_position_embeddings),
        );
        m.insert("vocab_size".into(), json!(self.vocab_size));
        m.insert("tie_word_embeddings".into(), json!(tie_word_embeddings));
        m.insert("attention_bias".into(), json!(attention_bias));
        m.insert("attention_dropout".into(), json!(0.0));
        match self.arch {
            MappedArch::Qwen2 => {
                m.insert("use_sliding_window".into(), json!(false));
                m.insert("sliding_window".into(), json!(self.max_position_embeddings));
                m.insert("max_window_layers".into(), json!(self.num_hidden_layers));
            }
            MappedArch::Llama => {
                m.insert("mlp_bias".into(), json!(false));
                m.insert("pretraining_tp".into(), json!(1));
            }
        }
        m.insert("initializer_range".into(), json!(0.02));
        m.insert("use_cache".into(), json!(true));
        m.insert("bos_token_id".into(), bos.map_or(Value::Null, |b| json!(b)));
        m.insert("eos_token_id".into(), eos.map_or(Value::Null, |e| json!(e)));
        m.insert("torch_dtype".into(), json!(torch_dtype));
        Value::Object(m)
    }
}

/// The transformers class of an architecture.
pub fn class_name(arch: MappedArch) -> &'static str {
    match arch {
        MappedArch::Qwen2 => "Qwen2ForCausalLM",
        MappedArch::Llama => "LlamaForCausalLM",
    }
}

/// `generation_config.json`.
pub fn generation_config_json(bos: Option<u64>, eos: Option<u64>, pad: Option<u64>) -> Value {
    let mut m = Map::new();
    for (k, v) in [
        ("bos_token_id", bos),
        ("eos_token_id", eos),
        ("pad_token_id", pad),
    ] {
        if let Some(v) = v {
            m.insert(k.into(), json!(v));
        }
    }
    Value::Object(m)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn smol_md() -> Vec<(String, GgufValue)> {
        vec![
            ("llama.block_count".into(), GgufValue::U32(30)),
            ("llama.context_length".into(), GgufValue::U32(8192)),
            ("llama.embedding_length".into(), GgufValue::U32(576)),
            ("llama.feed_forward_length".into(), GgufValue::U32(1536)),
            ("llama.attention.head_count".into(), GgufValue::U32(9)),
            ("llama.attention.head_count_kv".into(), GgufValue::U32(3)),
            ("llama.rope.freq_base".into(), GgufValue::F32(100000.0)),
            (
                "llama.attention.layer_norm_rms_epsilon".into(),
                GgufValue::F32(1e-5),
            ),
            ("llama.vocab_size".into(), GgufValue::U32(49152)),
            ("llama.rope.dimension_count".into(), GgufValue::U32(64)),
        ]
    }

    #[test]
    fn f32_values_print_shortest_and_read_back_exactly() {
        // the f64 written is the short decimal, not the f32's exact binary value
        assert_eq!(f32_json(1e-5).as_f64(), Some(1e-5));
        assert_eq!(f32_json(1e-6).as_f64(), Some(1e-6));
        assert_eq!(f32_json(1e6).as_f64(), Some(1e6));
        assert_ne!(f64::from(1e-6f32), 1e-6);
        for x in [1e-5f32, 9.999999e-7, 0.1, 3.4e38, 1.17e-38] {
            let back = f32_json(x).as_f64().map(|v| v as f32);
            assert_eq!(back.map(f32::to_bits), Some(x.to_bits()));
        }
    }

    #[test]
    fn gguf_to_config_to_gguf_is_the_identity_on_the_shared_keys() {
        let md = smol_md();
        let hp = HfHparams::from_gguf(MappedArch::Llama, &md, 49152).expect("hparams");
        let cfg = hp.config_json(true, false, Some(1), Some(2), "float32");
        assert_eq!(cfg["architectures"], json!(["LlamaForCausalLM"]));
        assert_eq!(cfg["num_key_value_heads"], json!(3));
        assert_eq!(cfg["rms_norm_eps"], json!(1e-5));
        assert!(cfg.get("head_dim").is_none());
        let back = HfHparams::from_config(&cfg).expect("from config");
        assert_eq!(back, hp);
        assert_eq!(back.gguf_kv(), md);
    }

    #[test]
    fn refusals_name_the_key() {
        let mut md = smol_md();
        md.push((
            "llama.rope.scaling.type".into(),
            GgufValue::String(b"yarn".to_vec()),
        ));
        let e = HfHparams::from_gguf(MappedArch::Llama, &md, 49152).unwrap_err();
        assert!(e.to_string().contains("rope.scaling.type"), "{e}");
        let mut md = smol_md();
        md[9].1 = GgufValue::U32(32);
        let e = HfHparams::from_gguf(MappedArch::Llama, &md, 49152).unwrap_err();
        assert!(e.to_string().contains("partial rotary"), "{e}");
        let e = HfHparams::from_config(&json!({"model_type": "gemma3"})).unwrap_err();
        assert!(e.to_string().contains("gemma3"), "{e}");
    }
}
