//! Per-kind settings: each kind deserializes the keys of its `[providers.NAME]` table
//! that are its own into its own `deny_unknown_fields` struct, so a key of another
//! kind is an error naming that key, and `config/` never lists any kind's keys.

use std::any::Any;
use std::fmt;

use serde::de::DeserializeOwned;
use serde::Deserialize;

use super::Kind;

/// A kind's typed settings, held by its providers behind a trait object and read back
/// by the kind's adapter with [`super::Provider::settings`].
pub trait KindSettings: Any + fmt::Debug + Send + Sync {
    fn as_any(&self) -> &dyn Any;
}

impl<T: Any + fmt::Debug + Send + Sync> KindSettings for T {
    fn as_any(&self) -> &dyn Any {
        self
    }
}

/// For kinds with no keys of their own.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NoSettings {}

/// Deserializes `table` into `T`. An unknown key reads "KEY: not a setting of kind
/// "KIND"", other errors name their key path.
pub(crate) fn typed<T: DeserializeOwned>(kind: Kind, table: toml::Table) -> Result<T, String> {
    serde_path_to_error::deserialize(toml::Value::Table(table)).map_err(|e| {
        let path = e.path().to_string();
        let message = e.into_inner().to_string();
        if let Some(field) = message
            .strip_prefix("unknown field `")
            .and_then(|rest| rest.split('`').next())
        {
            return format!("{field}: not a setting of kind {:?}", kind.as_str());
        }
        if path.is_empty() || path == "." {
            message
        } else {
            format!("{path}: {message}")
        }
    })
}

/// A version string sent in a header or query: letters, digits and dashes.
pub(crate) fn check_version(key: &str, v: &str, example: &str) -> Result<(), String> {
    if v.is_empty() || !v.chars().all(|c| c.is_ascii_alphanumeric() || c == '-') {
        return Err(format!("{key}: {v:?} is not a version like {example:?}"));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::providers::adapter_for;

    fn settings_error(kind: Kind, toml_text: &str) -> String {
        let table: toml::Table = toml::from_str(toml_text).unwrap();
        adapter_for(kind).settings(table).unwrap_err()
    }

    #[test]
    fn each_kind_takes_only_its_own_keys() {
        let foreign: &[(Kind, &[&str])] = &[
            (Kind::Openai, &["version", "max_tokens", "api_version"]),
            (Kind::Azure, &["version", "max_tokens"]),
            (Kind::Anthropic, &["api_version"]),
            (Kind::Gemini, &["version", "max_tokens", "api_version"]),
            (Kind::Ollama, &["version", "max_tokens", "api_version"]),
        ];
        for (kind, keys) in foreign {
            assert!(adapter_for(*kind).settings(toml::Table::new()).is_ok());
            for key in *keys {
                let err = settings_error(*kind, &format!("{key} = \"x\""));
                assert_eq!(
                    err,
                    format!("{key}: not a setting of kind {:?}", kind.as_str()),
                    "{kind:?}"
                );
            }
        }
    }

    #[test]
    fn values_are_checked_with_their_key() {
        assert!(settings_error(Kind::Anthropic, "max_tokens = 0").contains("max_tokens"));
        assert!(settings_error(Kind::Anthropic, "max_tokens = \"x\"").starts_with("max_tokens"));
        assert!(
            settings_error(Kind::Anthropic, "version = \"2023 06\\n01\"").starts_with("version")
        );
        assert!(settings_error(Kind::Azure, "api_version = \"a/b\"").starts_with("api_version"));
    }
}
