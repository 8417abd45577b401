//! Egress (DESIGN §12) against local servers only: HTTPS upstreams with a
//! certificate of a private test CA, over h2 and HTTP/1.1; the CA trusted through
//! `ca_file` or `tls_roots = "native"`; mutual TLS; a CONNECT proxy set by
//! `HTTPS_PROXY` (and bypassed by `NO_PROXY`), a forwarding one set by `HTTP_PROXY`,
//! the provider's own `proxy` key; proxies that refuse or hang failing over within the
//! connect timeout, named without their credentials.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::unreachable
)]

mod common;

use common::*;
use understudy::failover::probe;

/// The CA's certificate, and a client certificate of it, as files beside the config.
fn pki_files(ca: &TestCa) -> Vec<(&'static str, String)> {
    let client = ca.client("understudy-test-client");
    vec![
        ("ca.pem", ca.pem()),
        ("client.pem", client.cert_pem()),
        ("client.key", client.key_pem()),
    ]
}

async fn https_mock(ca: &TestCa, alpn: Alpn, client_cert: bool) -> Mock {
    Mock::start_tls(ca.server_config(&ca.server(), alpn, client_cert)).await
}

/// An `a/m-a` attempt's outcome count in `/metrics`.
async fn attempts(p: &Proxy, provider: &str, outcome: &str) -> String {
    let metrics = get(&p.url("/metrics")).await.text();
    let key =
        format!("understudy_attempts_total{{provider=\"{provider}\",outcome=\"{outcome}\"}} ");
    metrics
        .lines()
        .find_map(|l| l.strip_prefix(&key))
        .unwrap_or("0")
        .to_string()
}

#[tokio::test]
async fn an_https_upstream_of_a_private_ca_answers_over_h2_and_over_http1() {
    for (alpn, version) in [
        (Alpn::H2AndHttp1, http::Version::HTTP_2),
        (Alpn::Http1Only, http::Version::HTTP_11),
    ] {
        let ca = TestCa::new("understudy test CA");
        let up = https_mock(&ca, alpn, false).await;
        up.push(Reply::json(200, completion("gpt-4o", "hello over tls")));
        up.push(stream_reply("gpt-4o", &["streamed ", "over tls"]));
        let toml = with_keys(
            &openai_config(&[("a", up.url())], ""),
            "a",
            "ca_file = \"ca.pem\"",
        );
        let p = Proxy::start_with_files(&toml, &pki_files(&ca), env_of(&[UPSTREAM_KEY])).await;

        let r = p.chat(user("default")).await;
        assert_eq!(r.status, 200, "{alpn:?}: {}", r.text());
        assert_eq!(
            r.json()["choices"][0]["message"]["content"],
            "hello over tls"
        );
        let r = p.chat(user_stream("default")).await;
        assert_eq!(r.status, 200, "{alpn:?}: {}", r.text());
        let data = r.sse_data();
        let text: String = data
            .iter()
            .filter_map(|d| serde_json::from_str::<serde_json::Value>(d).ok())
            .filter_map(|c| {
                c["choices"][0]["delta"]["content"]
                    .as_str()
                    .map(String::from)
            })
            .collect();
        assert_eq!(text, "streamed over tls", "{alpn:?}");
        assert_eq!(data.last().map(String::as_str), Some("[DONE]"));

        let got = up.received();
        assert_eq!(got.len(), 2);
        for req in &got {
            assert_eq!(req.version, version, "{alpn:?}: negotiated by ALPN");
            assert_eq!(req.path, "/v1/chat/completions");
            assert_eq!(req.headers["authorization"], "Bearer sk-upstream-secret");
        }
        assert_eq!(got[1].json()["stream"], true);
    }
}

#[tokio::test]
async fn the_private_ca_is_trusted_only_where_configured() {
    let ca = TestCa::new("understudy test CA");
    let up = https_mock(&ca, Alpn::H2AndHttp1, false).await;
    up.always(Reply::json(200, completion("gpt-4o", "trusted")));
    let spare = Mock::start().await;
    spare.always(Reply::json(200, completion("gpt-4o", "spare")));
    let toml = openai_config(&[("a", up.url()), ("b", spare.url())], "");
    let only_a = format!("{toml}\n[[routes]]\nmodel = \"only-a\"\ntargets = [\"a/m-a\"]\n");

    // The public web roots alone: the handshake fails, a connect failure that fails over.
    let p = Proxy::start_with_files(&only_a, &pki_files(&ca), env_of(&[UPSTREAM_KEY])).await;
    let r = p.chat(user("default")).await;
    assert_eq!(r.status, 200, "{}", r.text());
    assert_eq!(r.header("x-understudy-provider"), Some("b"));
    assert_eq!(r.header("x-understudy-attempts"), Some("2"));
    let r = p.chat(user("only-a")).await;
    assert_eq!(r.status, 502, "{}", r.text());
    let message = r.json()["error"]["message"].as_str().unwrap().to_string();
    assert!(message.contains("UnknownIssuer"), "{message}");
    assert_eq!(attempts(&p, "a", "connect").await, "2");
    assert_eq!(up.count(), 0, "no request reached the untrusted upstream");

    // The system's store, which SSL_CERT_FILE replaces: the CA trusted without ca_file.
    let dir = TempDir::new();
    let bundle = dir.path.join("roots.pem");
    std::fs::write(&bundle, ca.pem()).unwrap();
    let bundle = bundle.display().to_string();
    for roots in ["native", "both"] {
        let toml = with_keys(&only_a, "a", &format!("tls_roots = \"{roots}\""));
        let env = env_of(&[UPSTREAM_KEY, ("SSL_CERT_FILE", &bundle)]);
        let p = Proxy::start_with_env(&toml, env).await;
        let r = p.chat(user("only-a")).await;
        assert_eq!(r.status, 200, "{roots}: {}", r.text());
        assert_eq!(r.json()["choices"][0]["message"]["content"], "trusted");
    }
}

#[tokio::test]
async fn mutual_tls_is_accepted_with_the_client_certificate_and_refused_without() {
    let ca = TestCa::new("understudy test CA");
    let up = https_mock(&ca, Alpn::H2AndHttp1, true).await;
    up.always(Reply::json(200, completion("gpt-4o", "client known")));
    let spare = Mock::start().await;
    spare.always(Reply::json(200, completion("gpt-4o", "spare")));
    let toml = openai_config(&[("a", up.url()), ("b", spare.url())], "");
    let toml = with_keys(
        &toml,
        "a",
        "ca_file = \"ca.pem\"\nclient_cert = \"client.pem\"\nclient_key = \"client.key\"",
    );
    // `anon`: the same upstream, trusted, but without a client certificate.
    let toml = format!(
        "{toml}\n[providers.anon]\nkind = \"openai\"\nbase_url = \"{}/v1\"\napi_key_env = \"TEST_KEY\"\nca_file = \"ca.pem\"\n\
         [[routes]]\nmodel = \"anon-first\"\ntargets = [\"anon/m\", \"b/m-b\"]\n",
        up.url()
    );
    let p = Proxy::start_with_files(&toml, &pki_files(&ca), env_of(&[UPSTREAM_KEY])).await;

    let r = p.chat(user("default")).await;
    assert_eq!(r.status, 200, "{}", r.text());
    assert_eq!(r.json()["choices"][0]["message"]["content"], "client known");
    assert_eq!(up.count(), 1);

    let r = p.chat(user("anon-first")).await;
    assert_eq!(r.status, 200, "{}", r.text());
    assert_eq!(
        r.header("x-understudy-provider"),
        Some("b"),
        "refused, failed over"
    );
    assert_eq!(r.header("x-understudy-attempts"), Some("2"));
    assert_eq!(up.count(), 1, "the certificate-less request never arrived");
    assert_eq!(attempts(&p, "anon", "connect").await, "1");
}

#[tokio::test]
async fn https_proxy_tunnels_with_connect_probes_included_and_no_proxy_bypasses_it() {
    let ca = TestCa::new("understudy test CA");
    let up = https_mock(&ca, Alpn::H2AndHttp1, false).await;
    up.push(Reply::json(200, r#"{"object":"list","data":[]}"#));
    up.push(Reply::json(200, completion("gpt-4o", "through the tunnel")));
    up.push(stream_reply("gpt-4o", &["through ", "the tunnel"]));
    let corp = HttpProxy::start(ProxyMode::Auth("svc:s3cr@t".into())).await;
    let toml = with_keys(
        &openai_config(&[("a", up.url())], ""),
        "a",
        "ca_file = \"ca.pem\"",
    );
    let proxy_url = corp.url_with("svc:s3cr%40t");
    let p = Proxy::start_with_files(
        &toml,
        &pki_files(&ca),
        env_of(&[UPSTREAM_KEY, ("HTTPS_PROXY", &proxy_url)]),
    )
    .await;

    // A health probe goes the same way as requests.
    let snap = p.app.config.load_full();
    let a = snap.provider("a").unwrap();
    let found = probe::check(&p.app.upstream, a).await;
    assert!(found.is_ok(), "{found}");
    let connect = format!("CONNECT {} HTTP/1.1", up.addr);
    assert_eq!(corp.lines(), vec![connect.clone()]);
    assert_eq!(corp.seen()[0].credentials.as_deref(), Some("svc:s3cr@t"));

    let r = p.chat(user("default")).await;
    assert_eq!(r.status, 200, "{}", r.text());
    let r = p.chat(user_stream("default")).await;
    assert_eq!(r.status, 200, "{}", r.text());
    let got = up.received();
    assert_eq!(
        got.iter().map(|r| r.path.as_str()).collect::<Vec<_>>(),
        ["/v1/models", "/v1/chat/completions", "/v1/chat/completions"]
    );
    assert!(
        got.iter().all(|r| r.version == http::Version::HTTP_2),
        "h2 inside the tunnel"
    );
    assert_eq!(corp.lines(), vec![connect], "one tunnel, pooled");
    assert_eq!(up.connections.load(std::sync::atomic::Ordering::SeqCst), 1);

    let status = get(&p.url("/status")).await.text();
    let shown: serde_json::Value = serde_json::from_str(&status).unwrap();
    assert_eq!(shown["providers"][0]["proxy"], corp.addr.to_string());
    assert!(!status.contains("s3cr"), "{status}");

    // NO_PROXY: an address range (curl's CIDR form) or the address itself.
    up.always(Reply::json(200, completion("gpt-4o", "direct")));
    for no_proxy in ["127.0.0.0/8", "example.com, 127.0.0.1"] {
        let bypassed = HttpProxy::start(ProxyMode::Open).await;
        let env = env_of(&[
            UPSTREAM_KEY,
            ("HTTPS_PROXY", &bypassed.url()),
            ("no_proxy", no_proxy),
        ]);
        let p = Proxy::start_with_files(&toml, &pki_files(&ca), env).await;
        let r = p.chat(user("default")).await;
        assert_eq!(r.status, 200, "{no_proxy}: {}", r.text());
        assert!(
            bypassed.lines().is_empty(),
            "{no_proxy}: {:?}",
            bypassed.lines()
        );
        let status: serde_json::Value = get(&p.url("/status")).await.json();
        assert_eq!(status["providers"][0]["proxy"], serde_json::Value::Null);
    }
}

#[tokio::test]
async fn a_providers_proxy_key_overrides_the_environment() {
    let ca = TestCa::new("understudy test CA");
    let up = https_mock(&ca, Alpn::H2AndHttp1, false).await;
    up.always(Reply::json(200, completion("gpt-4o", "ok")));
    let env_proxy = HttpProxy::start(ProxyMode::Hang).await;
    let own = HttpProxy::start(ProxyMode::Open).await;
    let toml = openai_config(&[("direct", up.url()), ("own", up.url())], "");
    let toml = with_keys(&toml, "direct", "ca_file = \"ca.pem\"\nproxy = \"none\"");
    let toml = with_keys(
        &toml,
        "own",
        &format!("ca_file = \"ca.pem\"\nproxy = \"{}\"", own.url()),
    );
    // The environment's proxy hangs: `direct` must not wait on it.
    let env = env_of(&[UPSTREAM_KEY, ("HTTPS_PROXY", &env_proxy.url())]);
    let p = Proxy::start_with_files(&toml, &pki_files(&ca), env).await;
    let r = p.chat(user("direct/m")).await;
    assert_eq!(r.status, 200, "{}", r.text());
    assert!(env_proxy.lines().is_empty());
    let r = p.chat(user("own/m")).await;
    assert_eq!(r.status, 200, "{}", r.text());
    assert_eq!(own.lines(), vec![format!("CONNECT {} HTTP/1.1", up.addr)]);

    // NO_PROXY exempts every host, but not from a provider's own proxy.
    let exempt = env_of(&[UPSTREAM_KEY, ("NO_PROXY", "*")]);
    let p = Proxy::start_with_files(&toml, &pki_files(&ca), exempt).await;
    let r = p.chat(user("own/m")).await;
    assert_eq!(r.status, 200, "{}", r.text());
    assert_eq!(
        own.lines().len(),
        2,
        "NO_PROXY does not touch a provider's own proxy"
    );
}

#[tokio::test]
async fn an_http_upstream_goes_through_http_proxy_in_absolute_form() {
    let up = Mock::start().await;
    up.always(Reply::json(200, completion("llama3", "forwarded")));
    let fwd = HttpProxy::start(ProxyMode::Auth("u:pw".into())).await;
    let toml = openai_config(&[("a", up.url())], "");
    let env = env_of(&[UPSTREAM_KEY, ("http_proxy", &fwd.url_with("u:pw"))]);
    let p = Proxy::start_with_env(&toml, env).await;
    let r = p.chat(user("default")).await;
    assert_eq!(r.status, 200, "{}", r.text());
    assert_eq!(r.json()["choices"][0]["message"]["content"], "forwarded");
    assert_eq!(
        fwd.lines(),
        vec![format!(
            "POST http://{}/v1/chat/completions HTTP/1.1",
            up.addr
        )]
    );
    assert_eq!(fwd.seen()[0].credentials.as_deref(), Some("u:pw"));
    assert_eq!(up.received()[0].path, "/v1/chat/completions");

    // Wrong credentials: the forwarding proxy's 407 is a connect failure, not an answer.
    let env = env_of(&[UPSTREAM_KEY, ("HTTP_PROXY", &fwd.url_with("u:nope"))]);
    let p = Proxy::start_with_env(&toml, env).await;
    let r = p.chat(user("default")).await;
    assert_eq!(r.status, 502, "{}", r.text());
    let message = r.json()["error"]["message"].as_str().unwrap().to_string();
    assert!(
        message.contains(&format!("proxy {}: answered 407", fwd.addr)),
        "{message}"
    );
    assert!(!message.contains("nope"), "{message}");
    assert_eq!(attempts(&p, "a", "connect").await, "1");
}

#[tokio::test]
async fn a_proxy_that_refuses_or_hangs_fails_over_on_the_connect_timeout_named_without_credentials()
{
    let (logs, _logging) = Logs::capture();

    let ca = TestCa::new("understudy test CA");
    let up = https_mock(&ca, Alpn::H2AndHttp1, false).await;
    let spare = Mock::start().await;
    spare.always(Reply::json(200, completion("gpt-4o", "spare")));
    // `a`'s first byte and total are far away: only the connect timeout can end its
    // attempt in time for the answer to say so.
    let toml = with_keys(
        &openai_config(&[("a", up.url()), ("b", spare.url())], ""),
        "a",
        "ca_file = \"ca.pem\"\ntimeouts = { connect = \"300ms\", first_byte = \"5m\", total = \"10m\" }",
    );
    let toml = format!("{toml}\n[[routes]]\nmodel = \"only-a\"\ntargets = [\"a/m-a\"]\n");
    let refused = refused_url().await.replace("http://", "");
    let cases = [
        (
            ProxyMode::Auth("svc:right".into()),
            "answered 407 Proxy Authentication Required",
        ),
        (ProxyMode::Hang, "no tunnel within 300ms (timeouts.connect)"),
        (ProxyMode::Open, "cannot connect"),
    ];
    for (mode, says) in cases {
        let corp = HttpProxy::start(mode.clone()).await;
        // The last case names a proxy address where nothing listens.
        let at = if says == "cannot connect" {
            refused.clone()
        } else {
            corp.addr.to_string()
        };
        let env = env_of(&[
            UPSTREAM_KEY,
            ("HTTPS_PROXY", &format!("http://svc:hunter2@{at}")),
        ]);
        let p = Proxy::start_with_files(&toml, &pki_files(&ca), env).await;

        let r = p.chat(user("default")).await;
        assert_eq!(r.status, 200, "{mode:?}: {}", r.text());
        assert_eq!(r.header("x-understudy-provider"), Some("b"), "{mode:?}");
        assert_eq!(r.header("x-understudy-attempts"), Some("2"), "{mode:?}");

        let r = p.chat(user_stream("only-a")).await;
        assert_eq!(
            r.status,
            502,
            "{mode:?}: a connect failure, not a timeout: {}",
            r.text()
        );
        let message = r.json()["error"]["message"].as_str().unwrap().to_string();
        assert!(
            message.contains(&format!("proxy {at}: {says}")),
            "{mode:?}: {message}"
        );
        assert_eq!(attempts(&p, "a", "connect").await, "2", "{mode:?}");

        let status = get(&p.url("/status")).await.text();
        let metrics = get(&p.url("/metrics")).await.text();
        for (what, text) in [
            ("error", &message),
            ("/status", &status),
            ("/metrics", &metrics),
        ] {
            assert!(
                !text.contains("hunter2"),
                "{mode:?}: {what} shows the password: {text}"
            );
        }
        assert_eq!(up.count(), 0);
    }
    let logged = logs.text();
    assert!(logged.contains("answered 407"), "{logged}");
    assert!(logged.contains("no tunnel within 300ms"), "{logged}");
    assert!(
        !logged.contains("hunter2"),
        "the logs show the password: {logged}"
    );
}

#[tokio::test]
async fn a_reload_keeps_an_unchanged_providers_connections_and_rereads_its_files() {
    let ca = TestCa::new("understudy test CA");
    let up = https_mock(&ca, Alpn::H2AndHttp1, false).await;
    up.always(Reply::json(200, completion("gpt-4o", "ok")));
    let toml = with_keys(
        &openai_config(&[("a", up.url())], ""),
        "a",
        "ca_file = \"ca.pem\"",
    );
    let p = Proxy::start_with_files(&toml, &pki_files(&ca), env_of(&[UPSTREAM_KEY])).await;
    let connections = || up.connections.load(std::sync::atomic::Ordering::SeqCst);
    let ok = |r: Resp| assert_eq!(r.status, 200, "{}", r.text());
    ok(p.chat(user("default")).await);
    assert_eq!(connections(), 1);

    // Another route, the provider unchanged: its h2 connection carries on.
    p.write_in_place(&format!(
        "{toml}\n[[routes]]\nmodel = \"more\"\ntargets = [\"a/m-more\"]\n"
    ));
    assert!(understudy::config::watch::reload(&p.app));
    ok(p.chat(user("more")).await);
    assert_eq!(connections(), 1);

    // The same path with new contents is a new egress: a new pool.
    let dir = p.config_path.parent().unwrap().to_path_buf();
    let other = TestCa::new("another CA");
    std::fs::write(dir.join("ca.pem"), format!("{}{}", ca.pem(), other.pem())).unwrap();
    assert!(understudy::config::watch::reload(&p.app));
    ok(p.chat(user("default")).await);
    assert_eq!(connections(), 2);

    // A file gone: the reload fails naming the key, the running config serves on.
    std::fs::remove_file(dir.join("ca.pem")).unwrap();
    assert!(!understudy::config::watch::reload(&p.app));
    let error = p.app.reload_status().last_error.unwrap();
    assert!(error.contains("providers.a.ca_file: "), "{error}");
    assert!(error.contains("ca.pem: cannot read"), "{error}");
    ok(p.chat(user("default")).await);
}
