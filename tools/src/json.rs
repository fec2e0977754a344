//! A minimal JSON object writer for `--json` output.
//!
//! Reports are flat records of numbers and strings; a few dozen lines here
//! avoid a serialization framework for them.

use std::fmt::Write;

/// Builds one JSON object, field by field, in insertion order.
#[derive(Debug, Default)]
pub struct Object {
    body: String,
}

impl Object {
    pub fn new() -> Self {
        Object::default()
    }

    fn key(&mut self, key: &str) {
        if !self.body.is_empty() {
            self.body.push(',');
        }
        push_string(&mut self.body, key);
        self.body.push(':');
    }

    pub fn str(mut self, key: &str, value: &str) -> Self {
        self.key(key);
        push_string(&mut self.body, value);
        self
    }

    pub fn u64(mut self, key: &str, value: u64) -> Self {
        self.key(key);
        let _ = write!(self.body, "{value}");
        self
    }

    pub fn bool(mut self, key: &str, value: bool) -> Self {
        self.key(key);
        self.body.push_str(if value { "true" } else { "false" });
        self
    }

    /// Non-finite numbers become `null`: JSON has no NaN or infinity.
    pub fn f64(mut self, key: &str, value: f64) -> Self {
        self.key(key);
        if value.is_finite() {
            let _ = write!(self.body, "{value}");
        } else {
            self.body.push_str("null");
        }
        self
    }

    pub fn opt_f64(self, key: &str, value: Option<f64>) -> Self {
        self.f64(key, value.unwrap_or(f64::NAN))
    }

    pub fn object(mut self, key: &str, value: Object) -> Self {
        self.key(key);
        self.body.push_str(&value.finish());
        self
    }

    pub fn objects(mut self, key: &str, values: Vec<Object>) -> Self {
        self.key(key);
        let parts: Vec<String> = values.into_iter().map(Object::finish).collect();
        let _ = write!(self.body, "[{}]", parts.join(","));
        self
    }

    pub fn strings(mut self, key: &str, values: &[String]) -> Self {
        self.key(key);
        self.body.push('[');
        for (i, v) in values.iter().enumerate() {
            if i > 0 {
                self.body.push(',');
            }
            push_string(&mut self.body, v);
        }
        self.body.push(']');
        self
    }

    pub fn finish(self) -> String {
        format!("{{{}}}", self.body)
    }
}

fn push_string(out: &mut String, s: &str) {
    out.push('"');
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            c if (c as u32) < 0x20 => {
                let _ = write!(out, "\\u{:04x}", c as u32);
            }
            c => out.push(c),
        }
    }
    out.push('"');
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn writes_objects() {
        let o = Object::new()
            .str("name", "a\"b\\c\n\u{1}")
            .u64("n", 3)
            .f64("x", 1.5)
            .f64("nan", f64::NAN)
            .bool("ok", true)
            .strings("e", &["x".into()])
            .objects("l", vec![Object::new().u64("a", 1)])
            .object("o", Object::new());
        assert_eq!(
            o.finish(),
            r#"{"name":"a\"b\\c\n\u0001","n":3,"x":1.5,"nan":null,"ok":true,"e":["x"],"l":[{"a":1}],"o":{}}"#
        );
    }
}
