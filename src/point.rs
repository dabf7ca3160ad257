//! One data point of the mapping's output: a registry metric, its
//! attributes and its value. Every consumer (instruments, the local
//! server, the text format, `[compat]`) reads this type, so it sits below
//! all of them and knows only the registry.

use crate::semconv::Metric;

#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub enum AttrValue {
    Str(String),
    Int(i64),
}

impl From<&str> for AttrValue {
    fn from(s: &str) -> Self {
        AttrValue::Str(s.to_owned())
    }
}

impl std::fmt::Display for AttrValue {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            AttrValue::Str(s) => f.write_str(s),
            AttrValue::Int(i) => write!(f, "{i}"),
        }
    }
}

/// One data point: a registry metric, its attributes and its value in the
/// registry's unit.
#[derive(Debug, Clone)]
pub struct Point {
    pub metric: &'static Metric,
    pub attrs: Vec<(&'static str, AttrValue)>,
    pub value: f64,
}

impl Point {
    pub(crate) fn new(metric: &'static Metric, value: f64) -> Self {
        Point {
            metric,
            attrs: Vec::new(),
            value,
        }
    }

    pub(crate) fn with(mut self, key: &'static str, value: impl Into<AttrValue>) -> Self {
        self.attrs.push((key, value.into()));
        self
    }
}
