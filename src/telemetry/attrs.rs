//! A span's attributes: the fixed set of keys understudy writes (GenAI's semantic
//! conventions and ours), one slot each.
//!
//! Why not the SDK's `Vec<KeyValue>`: each key was a `Cow` string and each set a push
//! (setting a key twice exported it twice, which OTLP forbids), and the vector grew
//! as the request went. Here a key is a byte naming its slot, setting it again
//! replaces the value, and the slots live inside the span's one allocation.

use std::sync::Arc;

/// Every attribute key a span of ours can carry.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) enum Key {
    OperationName,
    System,
    RequestModel,
    ResponseModel,
    InputTokens,
    OutputTokens,
    FinishReasons,
    InputMessages,
    OutputMessages,
    ErrorType,
    StatusCode,
    Api,
    Route,
    Attempt,
    Attempts,
    Failover,
    Outcome,
}

pub(super) const KEYS: usize = Key::Outcome as usize + 1;

impl Key {
    pub(super) const fn name(self) -> &'static str {
        match self {
            Key::OperationName => "gen_ai.operation.name",
            Key::System => "gen_ai.system",
            Key::RequestModel => "gen_ai.request.model",
            Key::ResponseModel => "gen_ai.response.model",
            Key::InputTokens => "gen_ai.usage.input_tokens",
            Key::OutputTokens => "gen_ai.usage.output_tokens",
            Key::FinishReasons => "gen_ai.response.finish_reasons",
            Key::InputMessages => "gen_ai.input.messages",
            Key::OutputMessages => "gen_ai.output.messages",
            Key::ErrorType => "error.type",
            Key::StatusCode => "http.response.status_code",
            Key::Api => "understudy.api",
            Key::Route => "understudy.route",
            Key::Attempt => "understudy.attempt",
            Key::Attempts => "understudy.attempts",
            Key::Failover => "understudy.failover",
            Key::Outcome => "understudy.outcome",
        }
    }
}

/// An attribute's value, in OTLP's `AnyValue` kinds. Strings shared between the
/// attempt span and its request span are `Arc`s: set on both, copied once.
#[derive(Clone, Debug, PartialEq)]
pub(super) enum Value {
    Static(&'static str),
    Shared(Arc<str>),
    /// Boxed, not a `String`: a value is 24 bytes, not 32, and a span has a slot for
    /// every key.
    Text(Box<str>),
    Int(i64),
    Bool(bool),
    Float(f64),
    Strings(Arc<[Arc<str>]>),
}

impl Value {
    pub(super) fn as_str(&self) -> Option<&str> {
        match self {
            Value::Static(s) => Some(s),
            Value::Shared(s) => Some(s),
            Value::Text(s) => Some(s),
            _ => None,
        }
    }
}

impl From<&'static str> for Value {
    fn from(s: &'static str) -> Value {
        Value::Static(s)
    }
}

impl From<Arc<str>> for Value {
    fn from(s: Arc<str>) -> Value {
        Value::Shared(s)
    }
}

impl From<String> for Value {
    fn from(s: String) -> Value {
        Value::Text(s.into_boxed_str())
    }
}

impl From<i64> for Value {
    fn from(n: i64) -> Value {
        Value::Int(n)
    }
}

impl From<u64> for Value {
    fn from(n: u64) -> Value {
        Value::Int(i64::try_from(n).unwrap_or(i64::MAX))
    }
}

impl From<bool> for Value {
    fn from(b: bool) -> Value {
        Value::Bool(b)
    }
}

/// One span's attributes, a slot per [`Key`].
#[derive(Debug)]
pub(super) struct Attributes([Option<Value>; KEYS]);

impl Default for Attributes {
    fn default() -> Attributes {
        Attributes([const { None }; KEYS])
    }
}

impl Attributes {
    pub(super) fn set(&mut self, key: Key, value: impl Into<Value>) {
        self.0[key as usize] = Some(value.into());
    }

    /// The attributes set, in [`Key`] order.
    pub(super) fn iter(&self) -> impl Iterator<Item = (Key, &Value)> {
        ALL.iter()
            .zip(&self.0)
            .filter_map(|(k, v)| Some((*k, v.as_ref()?)))
    }
}

pub(super) const ALL: [Key; KEYS] = [
    Key::OperationName,
    Key::System,
    Key::RequestModel,
    Key::ResponseModel,
    Key::InputTokens,
    Key::OutputTokens,
    Key::FinishReasons,
    Key::InputMessages,
    Key::OutputMessages,
    Key::ErrorType,
    Key::StatusCode,
    Key::Api,
    Key::Route,
    Key::Attempt,
    Key::Attempts,
    Key::Failover,
    Key::Outcome,
];

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_value_stays_small_as_every_span_has_a_slot_for_each_key() {
        assert!(std::mem::size_of::<Option<Value>>() <= 24);
    }

    #[test]
    fn every_key_has_its_slot_and_a_second_set_replaces_the_first() {
        for (i, k) in ALL.iter().enumerate() {
            assert_eq!(*k as usize, i, "{k:?}");
        }
        let mut a = Attributes::default();
        a.set(Key::ErrorType, "500");
        a.set(Key::Attempt, 2_i64);
        a.set(Key::ErrorType, String::from("timeout"));
        let set: Vec<_> = a.iter().map(|(k, v)| (k.name(), v.clone())).collect();
        assert_eq!(
            set,
            [
                ("error.type", Value::Text("timeout".into())),
                ("understudy.attempt", Value::Int(2)),
            ]
        );
    }
}
