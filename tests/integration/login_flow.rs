//! The login use case in-process, against the emulator, with a fixed clock.

use portcullis::Error;
use portcullis::login::{Credentials, login};
use portcullis::password::HashingPolicy;
use portcullis::token::TokenUse;
use portcullis_tests::{World, unique_email};

const NOW: i64 = 1_800_000_000;
const PASSWORD: &str = "Corr3ct-horse!";

fn creds(email: &str, password: &str) -> Credentials {
    Credentials {
        email: email.into(),
        password: password.into(),
    }
}

#[tokio::test]
async fn success_issues_a_verifiable_pair_and_stores_only_the_refresh_hash() {
    let w = World::new(&[]).await;
    let email = unique_email("ok");
    let user = w.user(&email, PASSWORD, "admin").await;
    let out = login(
        &w.state,
        &creds(&email.to_uppercase(), PASSWORD),
        "192.0.2.1",
        NOW,
    )
    .await
    .unwrap();
    // DynamoDB requests of one successful login: rate limit, user read, refresh token write.
    assert_eq!(w.counter.total(), 3, "{:?}", w.counter.by_operation());
    assert_eq!(
        (
            out.user.id.as_str(),
            out.user.email.as_str(),
            out.user.role.as_str()
        ),
        (user.id.as_str(), email.as_str(), "admin")
    );
    assert_eq!(out.tokens.token_type, "Bearer");
    assert_eq!(out.tokens.expires_in, 900);
    let access = w
        .state
        .tokens
        .verify(&out.tokens.access_token, TokenUse::Access, NOW)
        .unwrap();
    assert_eq!(
        (access.sub.as_str(), access.role.as_deref()),
        (user.id.as_str(), Some("admin"))
    );
    let refresh = w
        .state
        .tokens
        .verify(&out.tokens.refresh_token, TokenUse::Refresh, NOW)
        .unwrap();
    assert_eq!(refresh.fam.as_deref(), Some(out.family_id.as_str()));
    let stored = w
        .state
        .refresh_tokens
        .get(&portcullis::ids::digest(&out.tokens.refresh_token))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(
        (stored.user_id.as_str(), stored.family_id.as_str()),
        (user.id.as_str(), out.family_id.as_str())
    );
    assert_eq!(stored.expires_at, NOW + 604_800);
    assert!(
        w.state
            .refresh_tokens
            .get(&out.tokens.refresh_token)
            .await
            .unwrap()
            .is_none(),
        "the raw token is never a key"
    );
}

#[tokio::test]
async fn wrong_password_and_unknown_email_answer_alike() {
    let w = World::new(&[]).await;
    let email = unique_email("wp");
    w.user(&email, PASSWORD, "user").await;
    let wrong = login(&w.state, &creds(&email, "Wr0ng-horse!"), "192.0.2.2", NOW)
        .await
        .unwrap_err();
    assert_eq!(
        w.counter.total(),
        3,
        "wrong password: rate limit + read + counter update"
    );
    w.counter.reset();
    let unknown = login(
        &w.state,
        &creds(&unique_email("nobody"), "Wr0ng-horse!"),
        "192.0.2.2",
        NOW,
    )
    .await
    .unwrap_err();
    assert_eq!(w.counter.total(), 2, "unknown email: rate limit + read");
    assert!(matches!(wrong, Error::InvalidCredentials));
    assert!(matches!(unknown, Error::InvalidCredentials));
    assert_eq!(wrong.public_message(), unknown.public_message());
    assert_eq!(w.failed_attempts(&email).await, 1);
}

#[tokio::test]
async fn lockout_at_threshold_refuses_even_the_right_password_until_it_expires() {
    let w = World::new(&[("LOCKOUT_THRESHOLD", "3"), ("LOCKOUT_SECONDS", "600")]).await;
    let email = unique_email("lock");
    w.user(&email, PASSWORD, "user").await;
    for _ in 0..3 {
        assert!(matches!(
            login(&w.state, &creds(&email, "nope-Nope1!"), "192.0.2.3", NOW).await,
            Err(Error::InvalidCredentials)
        ));
    }
    let user = w.state.users.get(&email).await.unwrap().unwrap();
    assert_eq!(
        (user.failed_attempts, user.locked_until),
        (3, Some(NOW + 600))
    );
    w.counter.reset();
    match login(&w.state, &creds(&email, PASSWORD), "192.0.2.3", NOW + 10).await {
        Err(Error::AccountLocked { retry_after }) => assert_eq!(retry_after, 590),
        other => panic!("expected ACCOUNT_LOCKED, got {other:?}"),
    }
    assert_eq!(
        w.counter.total(),
        2,
        "a locked account is refused without a write"
    );
    assert_eq!(
        w.failed_attempts(&email).await,
        3,
        "locked attempts are not counted"
    );
    // after the lock expires the right password works and clears the counter
    let out = login(&w.state, &creds(&email, PASSWORD), "192.0.2.3", NOW + 600)
        .await
        .unwrap();
    assert_eq!(out.user.email, email);
    let user = w.state.users.get(&email).await.unwrap().unwrap();
    assert_eq!((user.failed_attempts, user.locked_until), (0, None));
}

#[tokio::test]
async fn fifty_concurrent_wrong_passwords_leave_an_exact_counter_and_a_lock() {
    let w = World::new(&[("LOCKOUT_THRESHOLD", "5")]).await;
    let email = unique_email("race");
    w.user(&email, PASSWORD, "user").await;
    let mut tasks = Vec::new();
    for i in 0..50 {
        let state = w.state.clone();
        let email = email.clone();
        tasks.push(tokio::spawn(async move {
            login(
                &state,
                &creds(&email, "Wr0ng-horse!"),
                &format!("198.51.100.{i}"),
                NOW,
            )
            .await
            .unwrap_err()
        }));
    }
    let (mut invalid, mut locked) = (0u32, 0u32);
    for t in tasks {
        match t.await.unwrap() {
            Error::InvalidCredentials => invalid += 1,
            Error::AccountLocked { .. } => locked += 1,
            other => panic!("unexpected {other:?}"),
        }
    }
    assert_eq!(invalid + locked, 50);
    let user = w.state.users.get(&email).await.unwrap().unwrap();
    assert_eq!(
        user.failed_attempts, invalid,
        "every verified failure counted exactly once"
    );
    assert!(invalid >= 5, "at least the threshold was verified");
    assert!(user.is_locked(NOW), "the account is locked");
    assert!(matches!(
        login(&w.state, &creds(&email, PASSWORD), "192.0.2.9", NOW).await,
        Err(Error::AccountLocked { .. })
    ));
}

#[tokio::test]
async fn rate_limit_per_client_ip_with_retry_after() {
    let w = World::new(&[("LOGIN_RATE_LIMIT", "3/60")]).await;
    let email = unique_email("rl");
    w.user(&email, PASSWORD, "user").await;
    let t0 = NOW - NOW.rem_euclid(60);
    for i in 0..3 {
        login(&w.state, &creds(&email, PASSWORD), "203.0.113.7", t0 + i)
            .await
            .unwrap();
    }
    match login(&w.state, &creds(&email, PASSWORD), "203.0.113.7", t0 + 20).await {
        Err(Error::RateLimited { retry_after }) => assert_eq!(retry_after, 40),
        other => panic!("expected RATE_LIMITED, got {other:?}"),
    }
    // other clients are unaffected; the next window starts afresh
    login(&w.state, &creds(&email, PASSWORD), "203.0.113.8", t0 + 20)
        .await
        .unwrap();
    login(&w.state, &creds(&email, PASSWORD), "203.0.113.7", t0 + 60)
        .await
        .unwrap();
}

#[tokio::test]
async fn weaker_stored_hash_is_upgraded_at_login() {
    let w = World::new(&[("PASSWORD_HASH_PROFILE", "production")]).await;
    let email = unique_email("up");
    let weak = HashingPolicy::insecure_for_tests();
    portcullis::admin::create_user(
        &w.state.users,
        &weak,
        &w.state.config.password_rules,
        &email,
        "user",
        PASSWORD,
        NOW,
    )
    .await
    .unwrap();
    let before = w.state.users.get(&email).await.unwrap().unwrap();
    assert!(before.password_hash.as_stored().contains("m=256,t=1,p=1"));
    w.counter.reset();
    login(&w.state, &creds(&email, PASSWORD), "192.0.2.4", NOW)
        .await
        .unwrap();
    assert_eq!(w.counter.total(), 4, "the upgrade costs one extra write");
    let after = w.state.users.get(&email).await.unwrap().unwrap();
    assert!(after.password_hash.as_stored().contains("m=19456,t=2,p=1"));
    assert!(w.state.hashing.verify(PASSWORD, &after.password_hash));
    w.counter.reset();
    login(&w.state, &creds(&email, PASSWORD), "192.0.2.4", NOW)
        .await
        .unwrap();
    assert_eq!(w.counter.total(), 3, "no further upgrade");
}

#[tokio::test]
async fn disabled_users_get_no_tokens() {
    let w = World::new(&[]).await;
    let email = unique_email("dis");
    w.user(&email, PASSWORD, "user").await;
    w.state.users.set_disabled(&email, true).await.unwrap();
    assert!(matches!(
        login(&w.state, &creds(&email, PASSWORD), "192.0.2.5", NOW).await,
        Err(Error::InvalidCredentials)
    ));
}

#[tokio::test]
async fn bad_input_changes_no_state() {
    let w = World::new(&[]).await;
    for (email, password) in [
        ("not-an-email", PASSWORD),
        ("a@example.com", ""),
        ("a@example.com", &"x".repeat(2000)),
    ] {
        let err = login(&w.state, &creds(email, password), "192.0.2.6", NOW)
            .await
            .unwrap_err();
        assert_eq!(err.code(), "VALIDATION_ERROR");
    }
    assert_eq!(
        w.counter.total(),
        0,
        "validation happens before any DynamoDB request"
    );
}
