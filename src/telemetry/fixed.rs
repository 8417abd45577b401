//! Attributes that are the same on every span of a kind, encoded once and copied into
//! each span as bytes: a front door's operation and API, an attempt's target
//! (provider, model, host). Measured, encoding an attribute costs ~130 instructions
//! a span; copying all of them as bytes, one short `memcpy`.

use std::sync::{Arc, LazyLock, Mutex, OnceLock, PoisonError};

use super::attrs::{Key, Value};
use super::{facts, operation, otlp};
use crate::providers::Target;

/// A front door's fixed attributes: on its request spans, and on their attempts'.
pub(super) struct Door {
    api: &'static str,
    pub request: Vec<u8>,
    pub attempt: Vec<u8>,
}

/// Every front door's `api()`, encoded when traces first start.
const APIS: [&str; 5] = [
    "chat",
    "responses",
    "messages",
    "count_tokens",
    "embeddings",
];

impl Door {
    fn new(api: &'static str) -> Door {
        let op = (Key::OperationName.name(), Value::Static(operation(api)));
        Door {
            api,
            request: otlp::fixed_attributes([op.clone(), (Key::Api.name(), Value::Static(api))]),
            attempt: otlp::fixed_attributes([op]),
        }
    }
}

static DOORS: LazyLock<Vec<Door>> = LazyLock::new(|| APIS.map(Door::new).into());

/// A front door's attributes. An API missing from [`APIS`] gets its own, made once
/// and kept for the process (the APIs are the binary's own constants: a few at most).
pub(super) fn door(api: &'static str) -> &'static Door {
    static OTHERS: Mutex<Vec<&'static Door>> = Mutex::new(Vec::new());
    if let Some(d) = DOORS.iter().find(|d| d.api == api) {
        return d;
    }
    let mut others = OTHERS.lock().unwrap_or_else(PoisonError::into_inner);
    if let Some(d) = others.iter().find(|d| d.api == api) {
        return d;
    }
    let d: &'static Door = Box::leak(Box::new(Door::new(api)));
    others.push(d);
    d
}

/// A target's attempt attributes that do not change from one attempt to the next,
/// encoded on its first traced attempt.
#[derive(Debug, Default)]
pub struct TargetAttributes(OnceLock<TargetFixed>);

#[derive(Debug)]
pub(super) struct TargetFixed {
    /// For the span's name.
    pub model: Arc<str>,
    pub encoded: Arc<[u8]>,
}

impl TargetAttributes {
    /// `uri`: the attempt's upstream URL (its host is the base URL's: the same for
    /// every attempt at this target).
    pub(super) fn get(&self, target: &Target, uri: &http::Uri) -> &TargetFixed {
        self.0.get_or_init(|| {
            let provider = &target.provider;
            let mut attrs = vec![
                (
                    Key::System.name(),
                    Value::Static(facts::system(provider.kind)),
                ),
                (
                    Key::RequestModel.name(),
                    Value::Text(target.model.as_str().into()),
                ),
                (
                    "understudy.provider",
                    Value::Text(provider.name.as_str().into()),
                ),
                (
                    "understudy.target",
                    Value::Text(target.label.as_str().into()),
                ),
            ];
            if let Some(host) = uri.host() {
                attrs.push(("server.address", Value::Text(host.into())));
            }
            if let Some(port) = uri.port_u16() {
                attrs.push(("server.port", Value::Int(i64::from(port))));
            }
            TargetFixed {
                model: target.model.as_str().into(),
                encoded: otlp::fixed_attributes(attrs).into(),
            }
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::frontdoor::chat::CHAT;
    use crate::frontdoor::messages::{COUNT_TOKENS, MESSAGES};
    use crate::frontdoor::responses::RESPONSES;
    use crate::frontdoor::Dialect;

    #[test]
    fn every_front_door_has_its_attributes_encoded_once_and_any_other_on_first_use() {
        let doors: [&dyn Dialect; 4] = [&CHAT, &RESPONSES, &MESSAGES, &COUNT_TOKENS];
        for api in doors.iter().map(|d| d.api()).chain(["embeddings"]) {
            assert!(DOORS.iter().any(|d| d.api == api), "{api}");
        }
        // Another is made once and kept, with the same attributes.
        let other = door("other");
        assert!(std::ptr::eq(other, door("other")));
        assert_eq!(other.attempt, DOORS[0].attempt, "chat's operation");
        assert_ne!(other.request, DOORS[0].request, "its own API");
    }
}
