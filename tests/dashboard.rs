//! The built-in dashboard (`GET /dashboard`): its data endpoint after a lead that
//! fails (circuit open, failovers, a cooling target, reloads), and the page itself
//! driven in headless Chromium (Debian's package, through playwright-core in
//! `tests/browser/`), which must show all of it live; the screenshot is kept at
//! `target/test-artifacts/dashboard.png`.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::unreachable
)]

mod common;
mod responses_common;

use std::path::PathBuf;
use std::time::Duration;

use serde_json::{json, Value};

use common::*;
use responses_common::{node, run_json};

const SECRET: &str = UPSTREAM_KEY.1;
/// A route name that is markup: the page must show it as text and never run it.
const ODD_ROUTE: &str = "<img src=x onerror=\"window.__understudy_xss=true\"><b>bold</b>";

fn manifest(rel: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join(rel)
}

/// `lead` fails with 500 (its message quoting the key), `limited` answers 429 with
/// ten minutes of Retry-After, `backup` answers; two failures open a circuit for an
/// hour. Plus a route whose name is markup.
async fn outage() -> (Mock, Mock, Mock, Proxy, String) {
    let (lead, limited, backup) = (
        Mock::start().await,
        Mock::start().await,
        Mock::start().await,
    );
    lead.always(Reply::json(
        500,
        json!({"error": {"message": format!("lead is down (key {SECRET} rejected)"), "type": "server_error", "param": null, "code": null}}).to_string(),
    ));
    limited.always(
        Reply::json(
            429,
            json!({"error": {"message": "slow down", "type": "requests", "param": null, "code": "rate_limit_exceeded"}}).to_string(),
        )
        .header("retry-after", "600"),
    );
    backup.always(Reply::json(200, completion("m-backup", "backup answers")));
    let mut toml = openai_config(
        &[
            ("lead", lead.url()),
            ("limited", limited.url()),
            ("backup", backup.url()),
        ],
        "\n[circuit_breaker]\nfailures = 2\nopen_for = \"1h\"\n",
    );
    toml.push_str(&format!(
        "\n[[routes]]\nmodel = '{ODD_ROUTE}'\ntargets = [\"backup/m-backup\"]\n"
    ));
    let p = Proxy::start_watched(&toml, env_of(&[UPSTREAM_KEY])).await;
    (lead, limited, backup, p, toml)
}

fn provider<'a>(data: &'a Value, name: &str) -> &'a Value {
    data["providers"]
        .as_array()
        .unwrap()
        .iter()
        .find(|p| p["name"] == name)
        .unwrap_or_else(|| panic!("no provider {name} in {data}"))
}

#[tokio::test]
async fn the_dashboard_shows_an_outage_live_in_chromium() {
    let (lead, limited, backup, p, toml) = outage().await;

    // A bad config, then a good one: both land in the reload history.
    p.write_by_rename("this is not [toml");
    assert!(
        eventually(Duration::from_secs(20), || p
            .app
            .reload_status()
            .last_error
            .is_some())
        .await
    );
    p.write_by_rename(&format!("{toml}\n# touched\n"));
    assert!(
        eventually(Duration::from_secs(20), || p.app.reload_status().reloads
            >= 1)
        .await
    );

    // The page, open in a real browser before the outage begins: it must follow
    // without a reload. lead fails, limited is rate-limited, backup answers; the
    // second failure opens lead's circuit, so the third request goes straight to
    // backup.
    let chromium =
        std::env::var("UNDERSTUDY_TEST_CHROMIUM").unwrap_or_else(|_| "/usr/bin/chromium".into());
    assert!(
        PathBuf::from(&chromium).exists(),
        "{chromium} is missing: run scripts/test.sh, which installs Debian's chromium"
    );
    let modules = manifest("tests/browser/node_modules/playwright-core");
    assert!(
        modules.exists(),
        "{} is missing: run scripts/test.sh, which runs `npm ci` in tests/browser",
        modules.display()
    );
    let shot = manifest("target/test-artifacts/dashboard.png");
    let _ = std::fs::remove_file(&shot);
    let seen = run_json(
        node(),
        vec![
            manifest("tests/browser/dashboard.mjs")
                .display()
                .to_string(),
            p.url("/dashboard"),
            shot.display().to_string(),
        ],
        json!({
            "lead": "lead", "lead_target": "lead/m-lead", "reason": "lead is down",
            "cooling_target": "limited/m-limited", "odd_route": ODD_ROUTE,
            "traffic": {"url": p.url("/v1/chat/completions"), "body": user("default"), "count": 3},
        }),
        Duration::from_secs(120),
    )
    .await;
    assert_eq!(seen["attempts"], json!(["3", "2", "1"]));
    assert_eq!(seen["loads"], 1, "the page was loaded once, never reloaded");
    assert_eq!((lead.count(), limited.count(), backup.count()), (2, 1, 3));
    let text = seen["text"].as_str().unwrap();
    assert!(!text.contains(SECRET), "{text}");
    assert!(text.contains("[redacted]"), "{text}");
    assert_eq!(seen["xss"], false, "a route name ran as markup:\n{text}");
    let png = std::fs::read(&shot).unwrap();
    assert!(png.starts_with(b"\x89PNG"), "{} is a PNG", shot.display());

    // What the page was drawn from.
    let resp = get(&p.url("/dashboard/data")).await;
    assert_eq!(resp.status, 200);
    assert!(!resp.text().contains(SECRET), "{}", resp.text());
    let data = resp.json();
    let l = provider(&data, "lead");
    assert_eq!(l["circuit"], "open");
    assert!(l["open_seconds_left"].as_f64().unwrap() > 3000.0, "{l}");
    assert_eq!(l["window"]["failed"], 2);
    assert_eq!(l["window"]["success_ratio"], 0.0);
    let lim = provider(&data, "limited");
    assert_eq!(lim["cooldowns"][0]["model"], "m-limited");
    assert!(
        lim["cooldowns"][0]["seconds_left"].as_f64().unwrap() > 500.0,
        "{lim}"
    );
    let b = provider(&data, "backup");
    assert_eq!(
        (b["window"]["ok"].as_u64(), b["window"]["failed"].as_u64()),
        (Some(3), Some(0))
    );
    assert!(b["window"]["p50_ms"].as_f64().unwrap() > 0.0, "{b}");
    let order: Vec<(String, String)> = data["routes"][0]["order"]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| {
            (
                t["target"].as_str().unwrap().into(),
                t["state"].as_str().unwrap().into(),
            )
        })
        .collect();
    assert_eq!(
        order,
        [
            ("lead/m-lead".into(), "circuit_open".into()),
            ("limited/m-limited".into(), "cooling".into()),
            ("backup/m-backup".into(), "ready".into()),
        ]
    );
    // newest first: lead's second failure, limited's 429, lead's first failure
    let failures: Vec<(&str, &str, &str)> = data["failures"]
        .as_array()
        .unwrap()
        .iter()
        .map(|f| {
            (
                f["target"].as_str().unwrap(),
                f["outcome"].as_str().unwrap(),
                f["then"].as_str().unwrap(),
            )
        })
        .collect();
    assert_eq!(
        failures,
        [
            ("lead/m-lead", "error_status", "failed over"),
            ("limited/m-limited", "rate_limited", "failed over"),
            ("lead/m-lead", "error_status", "failed over"),
        ]
    );
    assert!(
        data["failures"][0]["reason"]
            .as_str()
            .unwrap()
            .contains("lead is down (key [redacted] rejected)"),
        "{data}"
    );
    let reloads = data["reloads"].as_array().unwrap();
    assert_eq!(
        (reloads[0]["ok"].as_bool(), reloads[1]["ok"].as_bool()),
        (Some(true), Some(false))
    );
}

#[tokio::test]
async fn the_dashboard_is_open_like_status_and_self_contained() {
    let a = Mock::start().await;
    let toml = openai_config(&[("a", a.url())], "api_keys_env = \"CLIENT_KEYS\"\n");
    let p = Proxy::start(&toml, &[UPSTREAM_KEY, ("CLIENT_KEYS", "client-secret")]).await;
    assert_eq!(p.chat(user("default")).await.status, 401);

    let page = get(&p.url("/dashboard")).await;
    assert_eq!(page.status, 200);
    assert_eq!(
        page.header("content-type"),
        Some("text/html; charset=utf-8")
    );
    let csp = page.header("content-security-policy").unwrap();
    assert!(
        csp.contains("default-src 'none'") && csp.contains("connect-src 'self'"),
        "{csp}"
    );
    let html = page.text();
    // no CDN, no external file: nothing is fetched but the data endpoint
    for external in ["<script src", "<link", "http://", "https://", "@import"] {
        assert!(!html.contains(external), "the page refers to {external}");
    }
    assert!(html.contains("dashboard/data"));
    assert!(
        !html.contains("innerHTML"),
        "the page renders text, never markup"
    );

    let data = get(&p.url("/dashboard/data")).await;
    assert_eq!(data.status, 200);
    let body = data.text();
    assert!(
        !body.contains("client-secret") && !body.contains(SECRET),
        "{body}"
    );
    assert_eq!(data.json()["providers"][0]["name"], "a");

    let post = send(&p.url("/dashboard"), "POST", &[], "").await;
    assert_eq!(post.status, 405);
    assert_eq!(post.header("allow"), Some("GET, HEAD"));
}

#[tokio::test]
async fn a_stream_cut_after_content_is_listed_as_such() {
    let (a, _b, p) = two("").await;
    let mut r = stream_reply("m-a", &["Hel", "lo"]);
    r.events.truncate(3); // role, "Hel", "lo" — then the connection drops
    a.push(r.end(End::Drop));
    let resp = p.chat(user_stream("default")).await;
    assert_eq!(resp.status, 200);
    // the error event is sent once the failure is booked
    assert!(resp.sse_data().last().unwrap().contains("upstream_error"));
    let data = get(&p.url("/dashboard/data")).await.json();
    let f = &data["failures"][0];
    assert_eq!(f["target"], "a/m-a", "{data}");
    assert_eq!(f["then"], "stream cut after content");
    assert_eq!(f["route"], Value::Null);
    assert!(
        f["reason"].as_str().unwrap().starts_with("stream failed"),
        "{f}"
    );
    // committed once (ok), then failed: both in a's window
    let w = &provider(&data, "a")["window"];
    assert_eq!(
        (w["ok"].as_u64(), w["failed"].as_u64()),
        (Some(1), Some(1)),
        "{w}"
    );
}
