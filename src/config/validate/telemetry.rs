//! `[telemetry]`: the collector's URL is checked at load, so a typo is a load error
//! rather than spans that silently go nowhere.

use crate::config::raw::RawTelemetry;
use crate::config::TelemetryPolicy;

/// OTLP/HTTP's traces path, appended to a collector's base URL as the OpenTelemetry
/// SDKs do with `OTEL_EXPORTER_OTLP_ENDPOINT`.
const TRACES_PATH: &str = "/v1/traces";

pub(super) fn policy(t: &RawTelemetry) -> Result<Option<TelemetryPolicy>, String> {
    let Some(endpoint) = t.otlp_endpoint.as_deref().map(str::trim) else {
        if t.capture_content {
            tracing::debug!("telemetry.capture_content has no effect without otlp_endpoint");
        }
        return Ok(None);
    };
    let uri: http::Uri = endpoint.parse().map_err(|e| {
        format!("telemetry.otlp_endpoint: {endpoint:?} is not a URL: {e} (write e.g. \"http://127.0.0.1:4318\")")
    })?;
    match uri.scheme_str() {
        Some("http") | Some("https") => {}
        _ => {
            return Err(format!(
                "telemetry.otlp_endpoint: {endpoint:?} must start with http:// or https:// (OTLP over HTTP)"
            ))
        }
    }
    if uri.authority().is_none() {
        return Err(format!("telemetry.otlp_endpoint: {endpoint:?} has no host"));
    }
    if uri.authority().is_some_and(|a| a.as_str().contains('@')) {
        return Err("telemetry.otlp_endpoint: credentials do not belong in the URL; the collector's headers come from OTEL_EXPORTER_OTLP_HEADERS".into());
    }
    if uri.query().is_some() {
        return Err(format!(
            "telemetry.otlp_endpoint: {endpoint:?} must not have a query"
        ));
    }
    let path = uri.path().trim_end_matches('/');
    let full = if path.ends_with(TRACES_PATH) {
        uri
    } else {
        let base = endpoint.trim_end_matches('/');
        format!("{base}{TRACES_PATH}")
            .parse()
            .map_err(|e| format!("telemetry.otlp_endpoint: {endpoint:?}: {e}"))?
    };
    if t.queue_size == 0 {
        return Err("telemetry.queue_size: must be at least 1".into());
    }
    if t.service_name.trim().is_empty() {
        return Err("telemetry.service_name: must not be empty".into());
    }
    // Written so that NaN fails too.
    if !(t.sample_ratio > 0.0 && t.sample_ratio <= 1.0) {
        return Err(format!(
            "telemetry.sample_ratio: {} must be above 0 and at most 1 (1 keeps every trace)",
            t.sample_ratio
        ));
    }
    Ok(Some(TelemetryPolicy {
        endpoint: full,
        capture_content: t.capture_content,
        service_name: t.service_name.trim().to_string(),
        queue_size: t.queue_size,
        sample_ratio: t.sample_ratio,
    }))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn raw(endpoint: Option<&str>) -> RawTelemetry {
        RawTelemetry {
            otlp_endpoint: endpoint.map(str::to_string),
            ..RawTelemetry::default()
        }
    }

    #[test]
    fn off_without_an_endpoint() {
        assert_eq!(policy(&raw(None)).unwrap(), None);
    }

    #[test]
    fn a_base_url_gets_the_traces_path() {
        let p = policy(&raw(Some("http://127.0.0.1:4318")))
            .unwrap()
            .unwrap();
        assert_eq!(p.endpoint.to_string(), "http://127.0.0.1:4318/v1/traces");
        let p = policy(&raw(Some("http://collector:4318/otlp/")))
            .unwrap()
            .unwrap();
        assert_eq!(
            p.endpoint.to_string(),
            "http://collector:4318/otlp/v1/traces"
        );
    }

    #[test]
    fn a_full_traces_url_is_kept() {
        let p = policy(&raw(Some("https://otel.example.com/v1/traces")))
            .unwrap()
            .unwrap();
        assert_eq!(p.endpoint.to_string(), "https://otel.example.com/v1/traces");
    }

    #[test]
    fn bad_endpoints_name_the_key() {
        for bad in [
            "127.0.0.1:4318",
            "grpc://collector:4317",
            "http://user:pw@collector:4318",
            "not a url",
        ] {
            let e = policy(&raw(Some(bad))).unwrap_err();
            assert!(e.starts_with("telemetry.otlp_endpoint:"), "{bad}: {e}");
            assert!(!e.contains("pw@"), "{e}");
        }
        let mut r = raw(Some("http://c:4318"));
        r.queue_size = 0;
        assert!(policy(&r).unwrap_err().starts_with("telemetry.queue_size"));
    }

    #[test]
    fn a_sample_ratio_is_a_share_above_zero() {
        let ok = |ratio: f64| {
            let mut r = raw(Some("http://c:4318"));
            r.sample_ratio = ratio;
            policy(&r).map(|p| p.unwrap().sample_ratio)
        };
        assert_eq!(
            policy(&raw(Some("http://c:4318")))
                .unwrap()
                .unwrap()
                .sample_ratio,
            1.0
        );
        assert_eq!(ok(0.25), Ok(0.25));
        assert_eq!(ok(1.0), Ok(1.0));
        for bad in [0.0, -0.5, 1.5, f64::NAN] {
            let e = ok(bad).unwrap_err();
            assert!(e.starts_with("telemetry.sample_ratio:"), "{bad}: {e}");
        }
    }
}
