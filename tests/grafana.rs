//! deploy/grafana/understudy.json is what operators import: it must be a dashboard
//! Grafana takes as is (its datasource chosen at import), and every metric its
//! PromQL names must be one a running proxy's `/metrics` exposes after traffic — so a
//! renamed metric cannot leave a panel silently empty.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::unreachable
)]

mod common;

use std::collections::BTreeSet;

use common::*;
use serde_json::{json, Value};

fn dashboard() -> Value {
    let path = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/deploy/grafana/understudy.json"
    );
    serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap()
}

/// Every `expr` in the dashboard, wherever it sits (panels, rows, variables).
fn exprs(v: &Value, out: &mut Vec<String>) {
    match v {
        Value::Object(m) => {
            for (k, v) in m {
                match (k.as_str(), v) {
                    ("expr", Value::String(e)) => out.push(e.clone()),
                    _ => exprs(v, out),
                }
            }
        }
        Value::Array(a) => a.iter().for_each(|v| exprs(v, out)),
        _ => {}
    }
}

/// `s` without what `open`…`close` enclose (not nested in PromQL's `{}` and `[]`).
fn without(s: &str, open: char, close: char) -> String {
    let mut out = String::new();
    let mut depth = 0;
    for c in s.chars() {
        match c {
            c if c == open => depth += 1,
            c if c == close && depth > 0 => depth -= 1,
            c if depth == 0 => out.push(c),
            _ => {}
        }
    }
    out
}

const KEYWORDS: [&str; 11] = [
    "by",
    "without",
    "on",
    "ignoring",
    "group_left",
    "group_right",
    "bool",
    "offset",
    "and",
    "or",
    "unless",
];

/// The metric names of one PromQL expression: identifiers that are neither a
/// function (followed by `(`), a keyword, nor inside label matchers, ranges, string
/// literals or a `by (…)` / `without (…)` label list.
fn metric_names(expr: &str) -> BTreeSet<String> {
    let mut s = String::new();
    let mut quoted = false;
    for c in expr.chars() {
        if c == '"' {
            quoted = !quoted;
        } else if !quoted {
            s.push(c);
        }
    }
    let s = without(&without(&s, '{', '}'), '[', ']');
    let chars: Vec<char> = s.chars().collect();
    let mut names = BTreeSet::new();
    let mut i = 0;
    let mut after_grouping = false;
    while i < chars.len() {
        let c = chars[i];
        if c.is_ascii_alphabetic() || c == '_' || c == ':' {
            let start = i;
            while i < chars.len() && (chars[i].is_ascii_alphanumeric() || "_:".contains(chars[i])) {
                i += 1;
            }
            let word: String = chars[start..i].iter().collect();
            if KEYWORDS.contains(&word.as_str()) {
                after_grouping = true;
                continue;
            }
            // A function is followed by `(`; an aggregation may be followed by its
            // label list first (`sum by (le) (…)`).
            let rest: String = chars[i..].iter().collect::<String>();
            let rest = rest.trim_start();
            let grouped = ["by", "without"].iter().any(|k| {
                rest.strip_prefix(k)
                    .is_some_and(|r| r.trim_start().starts_with('('))
            });
            if !rest.starts_with('(') && !grouped {
                names.insert(word);
            }
        } else if c.is_ascii_digit() || c == '.' {
            // A number or duration (`0.99`, `5m`, `1e3`).
            while i < chars.len() && (chars[i].is_ascii_alphanumeric() || chars[i] == '.') {
                i += 1;
            }
            after_grouping = false;
        } else if c == '(' && after_grouping {
            // A label list: skip to its end.
            while i < chars.len() && chars[i] != ')' {
                i += 1;
            }
            after_grouping = false;
            i += 1;
        } else {
            if !c.is_whitespace() {
                after_grouping = false;
            }
            i += 1;
        }
    }
    names
}

#[test]
fn metric_names_are_told_from_functions_labels_and_ranges() {
    let names = |e: &str| metric_names(e).into_iter().collect::<Vec<_>>();
    assert_eq!(
        names(
            r#"histogram_quantile(0.99, sum by (provider, le) (rate(a_bucket{x="y",le!="1"}[$__rate_interval])))"#
        ),
        ["a_bucket"]
    );
    assert_eq!(
        names(
            r#"sum(rate(b_total{r="hit"}[5m])) / sum without (route) (rate(c_total[5m])) * 3600"#
        ),
        ["b_total", "c_total"]
    );
    assert_eq!(names("max(d) or on (provider) e offset 5m"), ["d", "e"]);
}

#[test]
fn the_dashboard_imports_as_is_with_a_prometheus_datasource_chosen_at_import() {
    let d = dashboard();
    assert_eq!(d["uid"], "understudy");
    assert!(d["schemaVersion"].as_u64().unwrap() >= 36);
    assert_eq!(d["id"], Value::Null, "an exported dashboard carries no id");
    assert_eq!(
        d["__inputs"][0],
        json!({"name": "DS_PROMETHEUS", "label": "Prometheus",
            "description": "The Prometheus that scrapes understudy's /metrics",
            "type": "datasource", "pluginId": "prometheus", "pluginName": "Prometheus"})
    );
    let vars = d["templating"]["list"].as_array().unwrap();
    let ds = vars.iter().find(|v| v["name"] == "datasource").unwrap();
    assert_eq!(
        (&ds["type"], &ds["query"]),
        (&json!("datasource"), &json!("prometheus"))
    );
    let required: BTreeSet<&str> = d["__requires"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|r| r["type"] == "panel")
        .map(|r| r["id"].as_str().unwrap())
        .collect();
    let panels = d["panels"].as_array().unwrap();
    let mut ids = BTreeSet::new();
    let mut titles = Vec::new();
    for p in panels {
        assert!(ids.insert(p["id"].as_u64().unwrap()), "duplicate id: {p}");
        let g = &p["gridPos"];
        assert!(
            g["x"].as_u64().unwrap() + g["w"].as_u64().unwrap() <= 24,
            "{p}"
        );
        if p["type"] == "row" {
            continue;
        }
        assert!(required.contains(p["type"].as_str().unwrap()), "{p}");
        titles.push(p["title"].as_str().unwrap());
        let uses_variable = json!({"type": "prometheus", "uid": "${datasource}"});
        assert_eq!(p["datasource"], uses_variable, "{}", p["title"]);
        for t in p["targets"].as_array().unwrap() {
            assert_eq!(t["datasource"], uses_variable, "{}", p["title"]);
            assert!(!t["expr"].as_str().unwrap().is_empty());
        }
    }
    for topic in [
        "Request rate by status",
        "Failovers",
        "Attempt outcomes by provider",
        "Upstream latency quantiles",
        "Open circuits",
        "cooling down",
        "Tokens",
        "Spend",
    ] {
        assert!(
            titles.iter().any(|t| t.contains(topic)),
            "no panel on {topic:?}: {titles:?}"
        );
    }
}

/// Traffic that makes every series appear: a lead that fails (a failover, a cooldown,
/// an open circuit), a priced backup that answers (tokens, cost, latency), and the
/// same question again (a cache hit).
#[tokio::test]
async fn every_metric_the_dashboard_queries_is_exposed_after_traffic() {
    let mut names = BTreeSet::new();
    let mut all = Vec::new();
    exprs(&dashboard(), &mut all);
    assert!(all.len() >= 10, "{all:?}");
    for e in &all {
        let found = metric_names(e);
        assert!(!found.is_empty(), "no metric in {e:?}");
        names.extend(found);
    }

    let (a, b, _) = (Mock::start().await, Mock::start().await, ());
    let toml = with_keys(
        &openai_config(
            &[("a", a.url()), ("b", b.url())],
            "[cache]\nenabled = true\n[circuit_breaker]\nfailures = 1\n",
        ),
        "b",
        "prices.\"m-b\" = { input = 1.0, output = 4.0 }",
    );
    let p = Proxy::start(&toml, &[UPSTREAM_KEY]).await;
    a.always(Reply::json(503, r#"{"error":{"message":"down"}}"#));
    b.always(Reply::json(200, completion("m-b", "hello")));
    let mut question = user("default");
    question["temperature"] = json!(0);
    for expected_cache in ["miss", "hit"] {
        let r = p.chat(question.clone()).await;
        assert_eq!(r.status, 200, "{}", r.text());
        assert_eq!(r.header("x-understudy-cache"), Some(expected_cache));
    }
    let exposed = get(&p.url("/metrics")).await.text();
    let sampled: BTreeSet<&str> = exposed
        .lines()
        .filter(|l| !l.starts_with('#'))
        .filter_map(|l| l.split(['{', ' ']).next())
        .collect();
    let missing: Vec<&String> = names
        .iter()
        .filter(|n| !sampled.contains(n.as_str()))
        .collect();
    assert!(
        missing.is_empty(),
        "the dashboard queries {missing:?}, which /metrics does not expose:\n{exposed}"
    );
    for must in [
        "understudy_tokens_total",
        "understudy_cost_usd_total",
        "understudy_upstream_seconds_bucket",
        "understudy_circuit_open",
    ] {
        assert!(names.contains(must), "the dashboard does not chart {must}");
    }
}
