//! Reading the canonical types' JSON objects — known fields typed, every other key
//! kept in `extra` — without `#[serde(flatten)]`, which buffers each object into an
//! untyped tree and then reads it a second time: on a stream that is most of what
//! parsing an event costs. Keys are borrowed from the input when they can be.

use std::fmt;
use std::marker::PhantomData;

use serde::de::{self, DeserializeSeed, MapAccess, Visitor};
use serde::Deserializer;
use serde_json::{Map, Value};

/// An object with named fields and an open rest.
pub(crate) trait Open: Sized {
    /// The fields read so far.
    type Draft: Default;
    const EXPECTING: &'static str;
    /// Reads the value of `key` into `draft` when it is one of the type's own fields;
    /// `false` leaves the value unread, for `extra`.
    fn field<'de, A: MapAccess<'de>>(
        draft: &mut Self::Draft,
        key: &str,
        map: &mut A,
    ) -> Result<bool, A::Error>;
    /// The value, or the error naming the first required field that never came.
    fn build(draft: Self::Draft, extra: Map<String, Value>) -> Result<Self, &'static str>;
}

/// Reads one `T` from a JSON object.
pub(crate) fn read<'de, D: Deserializer<'de>, T: Open>(d: D) -> Result<T, D::Error> {
    d.deserialize_map(ObjectVisitor::<T>(PhantomData))
}

/// A field the object requires.
pub(crate) fn required<T>(value: Option<T>, name: &'static str) -> Result<T, &'static str> {
    value.ok_or(name)
}

struct ObjectVisitor<T>(PhantomData<T>);

impl<'de, T: Open> Visitor<'de> for ObjectVisitor<T> {
    type Value = T;

    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str(T::EXPECTING)
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<T, A::Error> {
        let mut draft = T::Draft::default();
        let mut extra = Map::new();
        while let Some(key) = map.next_key_seed(KeySeed)? {
            if !T::field(&mut draft, key.as_str(), &mut map)? {
                let value: Value = map.next_value()?;
                extra.insert(key.into_owned(), value);
            }
        }
        T::build(draft, extra).map_err(de::Error::missing_field)
    }
}

/// A key as the input spells it: borrowed unless it had escapes to undo.
enum Key<'de> {
    Borrowed(&'de str),
    Owned(String),
}

impl Key<'_> {
    fn as_str(&self) -> &str {
        match self {
            Key::Borrowed(s) => s,
            Key::Owned(s) => s,
        }
    }

    fn into_owned(self) -> String {
        match self {
            Key::Borrowed(s) => s.to_string(),
            Key::Owned(s) => s,
        }
    }
}

struct KeySeed;

impl<'de> DeserializeSeed<'de> for KeySeed {
    type Value = Key<'de>;

    fn deserialize<D: Deserializer<'de>>(self, d: D) -> Result<Key<'de>, D::Error> {
        d.deserialize_str(KeySeed)
    }
}

impl<'de> Visitor<'de> for KeySeed {
    type Value = Key<'de>;

    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("an object key")
    }

    fn visit_borrowed_str<E: de::Error>(self, v: &'de str) -> Result<Key<'de>, E> {
        Ok(Key::Borrowed(v))
    }

    fn visit_str<E: de::Error>(self, v: &str) -> Result<Key<'de>, E> {
        Ok(Key::Owned(v.to_string()))
    }

    fn visit_string<E: de::Error>(self, v: String) -> Result<Key<'de>, E> {
        Ok(Key::Owned(v))
    }
}

/// `Deserialize` for types that are [`Open`].
macro_rules! deserialize_open {
    ($($t:ty),*) => {$(
        impl<'de> serde::Deserialize<'de> for $t {
            fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
                super::open::read(d)
            }
        }
    )*};
}
pub(crate) use deserialize_open;

#[cfg(test)]
mod tests {
    use serde_json::json;

    use crate::canonical::{ChatChunk, ChatResponse};

    #[test]
    fn unknown_keys_at_every_level_are_kept_and_written_back() {
        let chunk = json!({"id": "c", "object": "chat.completion.chunk", "created": 1,
            "model": "m", "system_fingerprint": "fp", "obfuscation": "x\"y",
            "choices": [{"index": 0, "logprobs": null, "finish_reason": null, "seq": 3,
                "delta": {"content": "hi", "reasoning_content": "r"}}],
            "usage": {"prompt_tokens": 1, "completion_tokens": 2, "total_tokens": 3,
                "prompt_tokens_details": {"cached_tokens": 0}}});
        let text = chunk.to_string().replace("\"seq\"", "\"s\\u0065q\"");
        let parsed: ChatChunk = serde_json::from_str(&text).unwrap();
        assert_eq!(parsed.extra["obfuscation"], "x\"y");
        assert_eq!(
            parsed.choices[0].extra["seq"], 3,
            "an escaped key is read too"
        );
        assert_eq!(parsed.choices[0].delta.extra["reasoning_content"], "r");
        let usage = parsed.usage.as_ref().unwrap();
        assert_eq!(usage.extra["prompt_tokens_details"]["cached_tokens"], 0);
        assert_eq!(serde_json::to_value(&parsed).unwrap(), chunk);
        let from_tree: ChatChunk = serde_json::from_value(chunk.clone()).unwrap();
        assert_eq!(serde_json::to_value(&from_tree).unwrap(), chunk);
    }

    #[test]
    fn defaults_and_missing_fields_read_as_before() {
        let c: ChatChunk = serde_json::from_str(r#"{"id":"c","created":1,"model":""}"#).unwrap();
        assert_eq!(c.object, "chat.completion.chunk");
        assert!(c.choices.is_empty() && c.usage.is_none());
        for (body, missing) in [
            (r#"{"error":{"message":"boom"}}"#, "id"),
            (r#"{"id":"c","model":"m"}"#, "created"),
            (
                r#"{"id":"c","created":1,"model":"m","choices":[{"delta":{}}]}"#,
                "index",
            ),
        ] {
            let e = serde_json::from_str::<ChatChunk>(body)
                .unwrap_err()
                .to_string();
            assert!(e.contains(&format!("missing field `{missing}`")), "{e}");
        }
        let e = serde_json::from_str::<ChatChunk>(r#"{"id":1,"created":1,"model":"m"}"#);
        assert!(e.is_err(), "a typed field keeps its type");
        let answer = r#"{"id":"a","created":1,"model":"m","choices":[{"index":0,
            "message":{"role":"assistant","content":null,"annotations":[]},"finish_reason":"stop"}]}"#;
        let a: ChatResponse = serde_json::from_str(answer).unwrap();
        assert_eq!(a.object, "chat.completion");
        assert_eq!(a.choices[0].message.extra["annotations"], json!([]));
        assert!(a.choices[0].message.refusal.is_none() && a.choices[0].logprobs.is_none());
        let e = serde_json::from_str::<ChatResponse>(r#"{"id":"a","created":1,"model":"m"}"#);
        assert!(e
            .unwrap_err()
            .to_string()
            .contains("missing field `choices`"));
    }
}
