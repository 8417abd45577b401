//! Keeps this replica's health mirror in step with the fleet's. `publish` writes what
//! this replica learned to the engine and announces it; `subscribe` applies what the
//! others announce, and after every (re)connection reads the engine's whole state
//! once, so what was announced while this replica was away is not lost.

use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use futures_util::StreamExt;
use serde::{Deserialize, Serialize};
use tokio::sync::mpsc;

use super::Engine;
use crate::failover::health::{Health, Learned, TRIAL_LEASE};

/// What travels on the events channel, and what the engine keeps under each key.
#[derive(Debug, Serialize, Deserialize, PartialEq)]
#[serde(tag = "ev", rename_all = "snake_case")]
enum Wire {
    Cooled {
        from: String,
        key: String,
        until_ms: u64,
        rate_limited: bool,
    },
    Opened {
        from: String,
        provider: String,
        until_ms: u64,
        /// The open period (breaker backoff); absent from older replicas' events.
        #[serde(default)]
        open_for_ms: u64,
    },
    Closed {
        from: String,
        provider: String,
    },
}

/// Sets KEYS[1] to ARGV[2] (expiring at ARGV[1], ms since the epoch) and publishes it
/// on KEYS[2] — unless the key already holds a later deadline: the later always
/// wins, whichever replica learned it first.
const LATER_WINS: &str = r#"
local cur = redis.call('GET', KEYS[1])
if cur then
  local ok, v = pcall(cjson.decode, cur)
  if ok and type(v) == 'table' and tonumber(v.until_ms) and tonumber(v.until_ms) >= tonumber(ARGV[1]) then
    return 0
  end
end
redis.call('SET', KEYS[1], ARGV[2], 'PXAT', ARGV[1])
redis.call('PUBLISH', KEYS[2], ARGV[2])
return 1
"#;

fn epoch_ms(t: SystemTime) -> u64 {
    t.duration_since(UNIX_EPOCH).unwrap_or_default().as_millis() as u64
}

fn from_epoch_ms(ms: u64) -> SystemTime {
    UNIX_EPOCH + Duration::from_millis(ms)
}

pub async fn publish(engine: Arc<Engine>, health: Arc<Health>, mut rx: mpsc::Receiver<Learned>) {
    let script = redis::Script::new(LATER_WINS);
    while let Some(learned) = rx.recv().await {
        let from = engine.replica.clone();
        let (key, until, wire) = match learned {
            Learned::Cooled {
                key,
                until,
                rate_limited,
            } => (
                engine.key("cool", &key),
                until,
                Wire::Cooled {
                    from,
                    key,
                    until_ms: epoch_ms(until),
                    rate_limited,
                },
            ),
            Learned::Opened {
                provider,
                until,
                open_for,
            } => (
                engine.key("circuit", &provider),
                until,
                Wire::Opened {
                    from,
                    provider,
                    until_ms: epoch_ms(until),
                    open_for_ms: open_for.as_millis() as u64,
                },
            ),
            Learned::Closed { provider } => {
                close(&engine, from, provider).await;
                continue;
            }
            Learned::WantTrial { provider } => {
                want_trial(&engine, &health, &provider).await;
                continue;
            }
        };
        let Ok(payload) = serde_json::to_string(&wire) else {
            continue;
        };
        let channel = engine.channel();
        let script = &script;
        let _ = engine
            .op("share a deadline", |mut c| async move {
                script
                    .key(key)
                    .key(channel)
                    .arg(epoch_ms(until))
                    .arg(payload)
                    .invoke_async::<i64>(&mut c)
                    .await
            })
            .await;
    }
}

async fn close(engine: &Engine, from: String, provider: String) {
    let circuit = engine.key("circuit", &provider);
    let trial = engine.key("trial", &provider);
    let channel = engine.channel();
    let Ok(payload) = serde_json::to_string(&Wire::Closed { from, provider }) else {
        return;
    };
    let _ = engine
        .op("share a closed circuit", |mut c| async move {
            redis::pipe()
                .del(&[circuit, trial])
                .ignore()
                .publish(channel, payload)
                .ignore()
                .query_async::<()>(&mut c)
                .await
        })
        .await;
}

/// The fleet's one half-open trial: whoever sets the lease first sends it. With the
/// engine out of reach, this replica trials on its own, as it would alone.
async fn want_trial(engine: &Engine, health: &Health, provider: &str) {
    let lease = engine.key("trial", provider);
    let me = engine.replica.clone();
    let won = engine
        .op("take the trial lease", |mut c| async move {
            redis::cmd("SET")
                .arg(lease)
                .arg(me)
                .arg("NX")
                .arg("PX")
                .arg(TRIAL_LEASE.as_millis() as u64)
                .query_async::<Option<String>>(&mut c)
                .await
        })
        .await;
    match won {
        Ok(Some(_)) | Err(_) => health.grant_trial(provider),
        Ok(None) => tracing::debug!(%provider, "another replica holds the half-open trial"),
    }
}

pub async fn subscribe(engine: Arc<Engine>, health: Arc<Health>) {
    let mut backoff = Duration::from_millis(100);
    loop {
        match connect(&engine).await {
            Ok(mut pubsub) => {
                backoff = Duration::from_millis(100);
                if resync(&engine, &health).await.is_ok() {
                    engine.link.ok();
                }
                follow(&engine, &health, &mut pubsub).await;
            }
            Err(e) => engine.link.failed("connect", &e),
        }
        tokio::time::sleep(backoff.mul_f64(0.5 + fastrand::f64() / 2.0)).await;
        backoff = (backoff * 2).min(Duration::from_secs(5));
    }
}

async fn connect(engine: &Engine) -> Result<redis::aio::PubSub, String> {
    let timeout = super::connect_timeout(&engine.policy);
    let mut pubsub = tokio::time::timeout(timeout, engine.client.get_async_pubsub())
        .await
        .map_err(|_| format!("no answer within {timeout:?}"))?
        .map_err(|e| e.to_string())?;
    tokio::time::timeout(timeout, pubsub.subscribe(engine.channel()))
        .await
        .map_err(|_| format!("no answer within {timeout:?}"))?
        .map_err(|e| e.to_string())?;
    Ok(pubsub)
}

/// Applies the others' announcements until the subscription ends. While the link is
/// marked down (an operation failed or timed out), checks once a second whether the
/// engine answers again, and re-syncs when it does.
async fn follow(engine: &Engine, health: &Health, pubsub: &mut redis::aio::PubSub) {
    let mut tick = tokio::time::interval(Duration::from_secs(1));
    let mut messages = pubsub.on_message();
    loop {
        tokio::select! {
            msg = messages.next() => {
                let Some(msg) = msg else {
                    engine.link.failed("subscription", &"connection closed");
                    return;
                };
                match serde_json::from_slice::<Wire>(msg.get_payload_bytes()) {
                    Ok(wire) => apply(engine, health, wire),
                    Err(e) => tracing::debug!(error = %e, "shared state: ignoring an event this version does not read"),
                }
            }
            _ = tick.tick() => {
                if !engine.link.is_up() && resync(engine, health).await.is_ok() {
                    engine.link.ok();
                }
            }
        }
    }
}

fn apply(engine: &Engine, health: &Health, wire: Wire) {
    match wire {
        Wire::Cooled { from, .. } | Wire::Opened { from, .. } | Wire::Closed { from, .. }
            if from == engine.replica => {}
        Wire::Cooled {
            key,
            until_ms,
            rate_limited,
            ..
        } => health.remote_cooled(&key, from_epoch_ms(until_ms), rate_limited),
        Wire::Opened {
            provider,
            until_ms,
            open_for_ms,
            ..
        } => health.remote_opened(
            &provider,
            from_epoch_ms(until_ms),
            Duration::from_millis(open_for_ms),
        ),
        Wire::Closed { provider, .. } => health.remote_closed(&provider),
    }
}

/// Reads every cooldown and open circuit the engine holds into the local mirror.
async fn resync(engine: &Engine, health: &Health) -> Result<(), super::StateError> {
    for kind in ["cool", "circuit"] {
        let pattern = engine.key(kind, "*");
        let mut keys: Vec<String> = Vec::new();
        let mut cursor = 0u64;
        // Bounded: a runaway prefix must not keep the link from coming up.
        for _ in 0..10_000 {
            let pattern = pattern.clone();
            let (next, batch): (u64, Vec<String>) = engine
                .try_op("re-sync", |mut c| async move {
                    redis::cmd("SCAN")
                        .arg(cursor)
                        .arg("MATCH")
                        .arg(pattern)
                        .arg("COUNT")
                        .arg(500)
                        .query_async(&mut c)
                        .await
                })
                .await?;
            keys.extend(batch);
            cursor = next;
            if cursor == 0 {
                break;
            }
        }
        for chunk in keys.chunks(500) {
            let chunk = chunk.to_vec();
            let values: Vec<Option<String>> = engine
                .try_op("re-sync", |mut c| async move {
                    redis::cmd("MGET").arg(chunk).query_async(&mut c).await
                })
                .await?;
            for v in values.into_iter().flatten() {
                if let Ok(wire) = serde_json::from_str::<Wire>(&v) {
                    // Our own entries too: after a restart, they are news to us.
                    let mut wire = wire;
                    if let Wire::Cooled { from, .. } | Wire::Opened { from, .. } = &mut wire {
                        from.clear();
                    }
                    apply(engine, health, wire);
                }
            }
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn wire_events_read_back_as_written() {
        let w = Wire::Cooled {
            from: "a".into(),
            key: "p|openai|http://x|m".into(),
            until_ms: 1_700_000_000_000,
            rate_limited: true,
        };
        let s = serde_json::to_string(&w).unwrap();
        assert!(s.contains(r#""ev":"cooled""#), "{s}");
        assert!(s.contains(r#""until_ms":1700000000000"#), "{s}");
        assert_eq!(serde_json::from_str::<Wire>(&s).unwrap(), w);
    }

    #[test]
    fn an_open_circuit_carries_its_period_and_reads_without_one() {
        let w = Wire::Opened {
            from: "a".into(),
            provider: "p|openai|http://x".into(),
            until_ms: 1_700_000_000_000,
            open_for_ms: 120_000,
        };
        let s = serde_json::to_string(&w).unwrap();
        assert!(s.contains(r#""open_for_ms":120000"#), "{s}");
        assert_eq!(serde_json::from_str::<Wire>(&s).unwrap(), w);
        // what a replica from before the backoff writes: the period reads as zero
        let old = r#"{"ev":"opened","from":"b","provider":"p","until_ms":5}"#;
        assert!(matches!(
            serde_json::from_str::<Wire>(old).unwrap(),
            Wire::Opened { open_for_ms: 0, .. }
        ));
    }
}
