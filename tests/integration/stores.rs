//! Every store operation against the real DynamoDB API of the emulator.

use portcullis::config::RateLimit;
use portcullis::store::{RefreshRecord, RefreshStatus};
use portcullis_tests::{World, unique_email};

const NOW: i64 = 1_800_000_000;

#[tokio::test]
async fn users_create_get_and_refuse_duplicates() {
    let w = World::new(&[]).await;
    let email = unique_email("u");
    let user = w.user(&email, "Str0ng!pass", "admin").await;
    let got = w.state.users.get(&email).await.unwrap().unwrap();
    assert_eq!(got, user);
    assert_eq!(got.failed_attempts, 0);
    assert!(!got.disabled);
    assert!(
        w.state
            .users
            .get("nobody@example.com")
            .await
            .unwrap()
            .is_none()
    );
    assert!(
        !w.state.users.create(&user).await.unwrap(),
        "second create must not overwrite"
    );
    assert_eq!(w.state.users.get(&email).await.unwrap().unwrap(), user);
}

#[tokio::test]
async fn failure_counter_lock_unlock_disable() {
    let w = World::new(&[]).await;
    let email = unique_email("f");
    w.user(&email, "Str0ng!pass", "user").await;
    assert_eq!(w.state.users.record_failure(&email, None).await.unwrap(), 1);
    assert_eq!(
        w.state
            .users
            .record_failure(&email, Some(NOW + 60))
            .await
            .unwrap(),
        2
    );
    let user = w.state.users.get(&email).await.unwrap().unwrap();
    assert_eq!(
        (user.failed_attempts, user.locked_until),
        (2, Some(NOW + 60))
    );
    assert!(user.is_locked(NOW) && !user.is_locked(NOW + 60));
    assert!(w.state.users.unlock(&email).await.unwrap());
    let user = w.state.users.get(&email).await.unwrap().unwrap();
    assert_eq!((user.failed_attempts, user.locked_until), (0, None));
    assert!(w.state.users.set_disabled(&email, true).await.unwrap());
    assert!(w.state.users.get(&email).await.unwrap().unwrap().disabled);
    // unknown users are reported, not created
    assert!(!w.state.users.unlock("ghost@example.com").await.unwrap());
    assert!(
        !w.state
            .users
            .set_disabled("ghost@example.com", true)
            .await
            .unwrap()
    );
    assert!(
        w.state
            .users
            .record_failure("ghost@example.com", None)
            .await
            .is_err()
    );
    assert!(
        w.state
            .users
            .get("ghost@example.com")
            .await
            .unwrap()
            .is_none()
    );
}

#[tokio::test]
async fn twenty_concurrent_failures_count_exactly() {
    let w = World::new(&[]).await;
    let email = unique_email("c");
    w.user(&email, "Str0ng!pass", "user").await;
    let mut tasks = Vec::new();
    for _ in 0..20 {
        let users = w.state.users.clone();
        let email = email.clone();
        tasks.push(tokio::spawn(async move {
            users.record_failure(&email, None).await.unwrap()
        }));
    }
    let mut seen = Vec::new();
    for t in tasks {
        seen.push(t.await.unwrap());
    }
    seen.sort();
    assert_eq!(
        seen,
        (1..=20).collect::<Vec<u32>>(),
        "every increment is atomic and distinct"
    );
    assert_eq!(w.failed_attempts(&email).await, 20);
}

#[tokio::test]
async fn refresh_records_are_stored_by_hash_and_never_overwritten() {
    let w = World::new(&[]).await;
    let record = RefreshRecord {
        token_hash: portcullis::ids::digest("the-token"),
        user_id: "usr_1".into(),
        email: "a@example.com".into(),
        family_id: "fam_1".into(),
        status: RefreshStatus::Active,
        created_at: NOW,
        expires_at: NOW + 3600,
        spent_at: None,
    };
    w.state.refresh_tokens.put(&record).await.unwrap();
    let got = w
        .state
        .refresh_tokens
        .get(&record.token_hash)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(got, record);
    assert!(got.is_live(NOW));
    // expired but not yet deleted by TTL: present in the table, not live
    assert!(!got.is_live(NOW + 3600));
    assert!(w.state.refresh_tokens.put(&record).await.is_err());
    assert!(w.state.refresh_tokens.get("other").await.unwrap().is_none());
}

#[tokio::test]
async fn rate_limit_windows_count_and_reset() {
    let w = World::new(&[]).await;
    let limit = RateLimit {
        max: 3,
        window_seconds: 100,
    };
    let start = NOW - NOW.rem_euclid(100);
    let mut counts = Vec::new();
    for i in 0..4 {
        counts.push(
            w.state
                .rate_limits
                .hit("login#198.51.100.1", limit, start + 10 + i)
                .await
                .unwrap(),
        );
    }
    assert_eq!(
        counts.iter().map(|h| h.count).collect::<Vec<_>>(),
        vec![1, 2, 3, 4]
    );
    assert_eq!(
        counts.iter().map(|h| h.allowed).collect::<Vec<_>>(),
        vec![true, true, true, false]
    );
    assert_eq!(counts[3].retry_after, 100 - 13);
    // another subject and the next window are independent
    assert_eq!(
        w.state
            .rate_limits
            .hit("login#198.51.100.2", limit, start + 10)
            .await
            .unwrap()
            .count,
        1
    );
    let next = w
        .state
        .rate_limits
        .hit("login#198.51.100.1", limit, start + 100)
        .await
        .unwrap();
    assert_eq!((next.count, next.allowed, next.retry_after), (1, true, 100));
}
