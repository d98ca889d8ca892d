//! API keys against the emulator: create, validate, revoke, expiry before TTL deletion,
//! last-used throttling, one read per validation, none while cached.

use portcullis::Error;
use portcullis::apikeys::validate;
use portcullis::store::api_keys::generate;
use portcullis_tests::World;

const NOW: i64 = 1_800_000_000;

async fn stored_key(w: &World, scopes: &[&str], expires_at: Option<i64>) -> (String, String) {
    let new = generate(
        "ci",
        scopes.iter().map(|s| s.to_string()).collect(),
        NOW,
        expires_at,
    );
    w.state.api_keys.put(&new.record).await.unwrap();
    w.counter.reset();
    (new.record.id, new.key)
}

#[tokio::test]
async fn a_valid_key_costs_one_read_and_reports_its_scopes() {
    let w = World::new(&[]).await;
    let (id, key) = stored_key(&w, &["orders:read", "orders:write"], Some(NOW + 86_400)).await;
    let info = validate(&w.state, Some(&key), NOW).await.unwrap();
    assert_eq!(info.id, id);
    assert_eq!(info.name, "ci");
    assert_eq!(info.scopes, vec!["orders:read", "orders:write"]);
    assert_eq!(info.expires_at.as_deref(), Some("2027-01-16T08:00:00Z"));
    let ops = w.counter.by_operation();
    assert_eq!(ops.get("GetItem"), Some(&1), "{ops:?}");
    assert_eq!(
        ops.get("UpdateItem"),
        Some(&1),
        "first use records last-used: {ops:?}"
    );
    // stored: only the digest, never the key
    let record = w.state.api_keys.get(&id).await.unwrap().unwrap();
    assert_eq!(record.key_hash, portcullis::ids::digest(&key));
    assert_eq!(record.last_used_at, Some(NOW));
}

#[tokio::test]
async fn last_used_is_written_at_most_once_per_interval() {
    let w = World::new(&[("API_KEY_LAST_USED_INTERVAL_SECONDS", "300")]).await;
    let (id, key) = stored_key(&w, &[], None).await;
    for t in 0..10 {
        validate(&w.state, Some(&key), NOW + t).await.unwrap();
    }
    let ops = w.counter.by_operation();
    assert_eq!(ops.get("GetItem"), Some(&10));
    assert_eq!(ops.get("UpdateItem"), Some(&1), "{ops:?}");
    validate(&w.state, Some(&key), NOW + 300).await.unwrap();
    assert_eq!(w.counter.by_operation().get("UpdateItem"), Some(&2));
    assert_eq!(
        w.state
            .api_keys
            .get(&id)
            .await
            .unwrap()
            .unwrap()
            .last_used_at,
        Some(NOW + 300)
    );
    // concurrent first uses in one interval: the condition lets exactly one write through
    let mut wrote = 0;
    for _ in 0..5 {
        if w.state.api_keys.touch(&id, NOW + 400, 300).await.unwrap() {
            wrote += 1;
        }
    }
    assert_eq!(wrote, 0, "the last write at NOW+300 is inside the interval");
    assert!(w.state.api_keys.touch(&id, NOW + 600, 300).await.unwrap());
}

#[tokio::test]
async fn wrong_revoked_expired_missing_and_malformed_keys_are_refused() {
    let w = World::new(&[]).await;
    let (id, key) = stored_key(&w, &[], Some(NOW + 60)).await;
    // expired: the item is still there (TTL is lazy) but the code says no
    assert!(matches!(
        validate(&w.state, Some(&key), NOW + 60).await,
        Err(Error::ApiKeyExpired)
    ));
    assert!(w.state.api_keys.get(&id).await.unwrap().is_some());
    assert!(validate(&w.state, Some(&key), NOW + 59).await.is_ok());
    // right id, wrong secret
    let forged = format!("{}{}", &key[..26], "A".repeat(43));
    assert!(matches!(
        validate(&w.state, Some(&forged), NOW).await,
        Err(Error::InvalidApiKey)
    ));
    assert!(matches!(
        validate(&w.state, None, NOW).await,
        Err(Error::MissingApiKey)
    ));
    assert!(matches!(
        validate(&w.state, Some("  "), NOW).await,
        Err(Error::MissingApiKey)
    ));
    w.counter.reset();
    for junk in ["ak_", "not-a-key", "ak_short_x"] {
        assert!(matches!(
            validate(&w.state, Some(junk), NOW).await,
            Err(Error::InvalidApiKey)
        ));
    }
    assert_eq!(w.counter.total(), 0, "malformed keys cost no request");
    let unknown = generate("x", vec![], NOW, None).key;
    assert!(matches!(
        validate(&w.state, Some(&unknown), NOW).await,
        Err(Error::InvalidApiKey)
    ));
    // revoke takes effect at once
    assert!(w.state.api_keys.revoke(&id, NOW).await.unwrap());
    assert!(matches!(
        validate(&w.state, Some(&key), NOW).await,
        Err(Error::InvalidApiKey)
    ));
    assert!(!w.state.api_keys.revoke("no-such-id", NOW).await.unwrap());
}

#[tokio::test]
async fn list_shows_every_key_without_secrets() {
    let w = World::new(&[]).await;
    let (a, key_a) = stored_key(&w, &["x"], None).await;
    let (b, _) = stored_key(&w, &[], Some(NOW + 5)).await;
    let list = w.state.api_keys.list().await.unwrap();
    let ids: Vec<&str> = list.iter().map(|k| k.id.as_str()).collect();
    assert_eq!(ids.len(), 2);
    assert!(ids.contains(&a.as_str()) && ids.contains(&b.as_str()));
    assert!(!format!("{list:?}").contains(&key_a));
}

#[tokio::test]
async fn validate_key_reads_every_time_by_default_and_not_at_all_while_cached() {
    // Default: no cache, every validation reads, so a revocation is seen at once.
    let w = World::new(&[]).await;
    assert_eq!(w.state.config.validate_key_cache, 0);
    let (_, key) = stored_key(&w, &[], None).await;
    for t in 0..3 {
        w.state
            .key_cache
            .validate(&w.state, Some(&key), 0, NOW + t)
            .await
            .unwrap();
    }
    assert_eq!(w.counter.by_operation().get("GetItem"), Some(&3));

    // VALIDATE_KEY_CACHE_SECONDS=30: cold = one read (+ the first last-used write), warm = none.
    let w = World::new(&[("VALIDATE_KEY_CACHE_SECONDS", "30")]).await;
    let ttl = w.state.config.validate_key_cache;
    assert_eq!(ttl, 30);
    let cache = &w.state.key_cache;
    let (id, key) = stored_key(&w, &["orders:read"], Some(NOW + 40)).await;
    let cold = cache
        .validate(&w.state, Some(&key), ttl, NOW)
        .await
        .unwrap();
    assert_eq!(cold.id, id);
    let ops = w.counter.by_operation();
    assert_eq!(ops.get("GetItem"), Some(&1), "{ops:?}");
    assert_eq!(ops.get("UpdateItem"), Some(&1), "{ops:?}");
    w.counter.reset();
    for t in 0..100 {
        let warm = cache
            .validate(&w.state, Some(&key), ttl, NOW + t % 30)
            .await
            .unwrap();
        assert_eq!(warm, cold);
    }
    // the same key with surrounding whitespace is the same key
    let padded = format!(" {key} ");
    cache
        .validate(&w.state, Some(&padded), ttl, NOW + 1)
        .await
        .unwrap();
    assert_eq!(w.counter.total(), 0, "warm validations make no request");
    // after the window: read again; the entry now lasts only to the key's expiry (NOW + 40)
    cache
        .validate(&w.state, Some(&key), ttl, NOW + 30)
        .await
        .unwrap();
    assert_eq!(w.counter.by_operation().get("GetItem"), Some(&1));
    cache
        .validate(&w.state, Some(&key), ttl, NOW + 39)
        .await
        .unwrap();
    assert_eq!(w.counter.by_operation().get("GetItem"), Some(&1));
    assert!(matches!(
        cache.validate(&w.state, Some(&key), ttl, NOW + 40).await,
        Err(Error::ApiKeyExpired)
    ));
    assert_eq!(
        w.counter.by_operation().get("GetItem"),
        Some(&2),
        "a cached key is never trusted past its own expiry"
    );

    // refusals are not cached: each costs its read, and a new key works at once
    w.counter.reset();
    let unknown = generate("x", vec![], NOW, None).key;
    for _ in 0..2 {
        assert!(matches!(
            cache.validate(&w.state, Some(&unknown), ttl, NOW).await,
            Err(Error::InvalidApiKey)
        ));
    }
    assert_eq!(w.counter.by_operation().get("GetItem"), Some(&2));

    // the revocation window is the cache's: still valid within it, refused after it
    let (id, key) = stored_key(&w, &[], None).await;
    cache
        .validate(&w.state, Some(&key), ttl, NOW)
        .await
        .unwrap();
    assert!(w.state.api_keys.revoke(&id, NOW).await.unwrap());
    assert!(
        cache
            .validate(&w.state, Some(&key), ttl, NOW + 29)
            .await
            .is_ok()
    );
    assert!(matches!(
        cache.validate(&w.state, Some(&key), ttl, NOW + 30).await,
        Err(Error::InvalidApiKey)
    ));
}
