//! refresh and logout in-process against the emulator, with a fixed clock.

use portcullis::Error;
use portcullis::login::{Credentials, LoginOutput, login};
use portcullis::session::{LogoutScope, logout, refresh};
use portcullis::store::RefreshStatus;
use portcullis::token::TokenUse;
use portcullis_tests::{World, unique_email};

const NOW: i64 = 1_800_000_000;
const PASSWORD: &str = "Corr3ct-horse!";

async fn logged_in(w: &World, email: &str) -> LoginOutput {
    let creds = Credentials {
        email: email.into(),
        password: PASSWORD.into(),
    };
    login(&w.state, &creds, "192.0.2.10", NOW).await.unwrap()
}

#[tokio::test]
async fn rotation_spends_the_old_token_in_two_requests() {
    let w = World::new(&[("REFRESH_REUSE_GRACE_SECONDS", "10")]).await;
    let email = unique_email("rot");
    w.user(&email, PASSWORD, "user").await;
    let first = logged_in(&w, &email).await;
    w.counter.reset();
    let second = refresh(
        &w.state,
        &first.tokens.refresh_token,
        "192.0.2.10",
        NOW + 60,
    )
    .await
    .unwrap();
    assert_eq!(w.counter.total(), 2, "{:?}", w.counter.by_operation());
    assert_eq!(second.family_id, first.family_id);
    assert_ne!(second.tokens.refresh_token, first.tokens.refresh_token);
    assert_eq!(
        w.refresh_status(&first.tokens.refresh_token).await,
        RefreshStatus::Spent
    );
    assert_eq!(
        w.refresh_status(&second.tokens.refresh_token).await,
        RefreshStatus::Active
    );
    let claims = w
        .state
        .tokens
        .verify(&second.tokens.access_token, TokenUse::Access, NOW + 60)
        .unwrap();
    assert_eq!(claims.iat, NOW + 60);
    // the old token is refused afterwards (within the race grace: no family revocation)
    let again = refresh(
        &w.state,
        &first.tokens.refresh_token,
        "192.0.2.10",
        NOW + 61,
    )
    .await
    .unwrap_err();
    assert!(matches!(again, Error::InvalidRefreshToken));
    assert_eq!(
        w.refresh_status(&second.tokens.refresh_token).await,
        RefreshStatus::Active
    );
}

/// Issue 16: a grace of 0 (the default) means every replay of a spent token is reuse, even
/// in the very second of the rotation (it used to be `now - spent_at <= grace`, so a
/// same-second replay kept the family).
#[tokio::test]
async fn with_no_grace_a_same_second_replay_revokes_the_family() {
    let w = World::new(&[]).await;
    assert_eq!(w.state.config.refresh_reuse_grace, 0, "the default");
    let email = unique_email("nograce");
    w.user(&email, PASSWORD, "user").await;
    let first = logged_in(&w, &email).await;
    let second = refresh(&w.state, &first.tokens.refresh_token, "ip", NOW + 60)
        .await
        .unwrap();
    let err = refresh(&w.state, &first.tokens.refresh_token, "ip", NOW + 60)
        .await
        .unwrap_err();
    assert!(matches!(err, Error::InvalidRefreshToken));
    assert_eq!(
        w.refresh_status(&second.tokens.refresh_token).await,
        RefreshStatus::Revoked
    );
    assert!(matches!(
        refresh(&w.state, &second.tokens.refresh_token, "ip", NOW + 61).await,
        Err(Error::InvalidRefreshToken)
    ));
}

/// With a grace, a replay strictly inside it keeps the family; at its end it is reuse.
#[tokio::test]
async fn a_grace_covers_strictly_less_than_its_seconds() {
    let w = World::new(&[("REFRESH_REUSE_GRACE_SECONDS", "3")]).await;
    let email = unique_email("grace3");
    w.user(&email, PASSWORD, "user").await;
    let first = logged_in(&w, &email).await;
    let second = refresh(&w.state, &first.tokens.refresh_token, "ip", NOW + 60)
        .await
        .unwrap();
    for t in [NOW + 60, NOW + 62] {
        assert!(
            refresh(&w.state, &first.tokens.refresh_token, "ip", t)
                .await
                .is_err()
        );
        assert_eq!(
            w.refresh_status(&second.tokens.refresh_token).await,
            RefreshStatus::Active
        );
    }
    assert!(
        refresh(&w.state, &first.tokens.refresh_token, "ip", NOW + 63)
            .await
            .is_err()
    );
    assert_eq!(
        w.refresh_status(&second.tokens.refresh_token).await,
        RefreshStatus::Revoked
    );
}

#[tokio::test]
async fn reuse_after_the_grace_revokes_the_whole_family_including_the_newest() {
    let w = World::new(&[("REFRESH_REUSE_GRACE_SECONDS", "10")]).await;
    let email = unique_email("reuse");
    w.user(&email, PASSWORD, "user").await;
    let first = logged_in(&w, &email).await;
    let other_session = logged_in(&w, &email).await;
    let second = refresh(&w.state, &first.tokens.refresh_token, "ip", NOW + 100)
        .await
        .unwrap();
    let third = refresh(&w.state, &second.tokens.refresh_token, "ip", NOW + 200)
        .await
        .unwrap();
    // the stolen first token comes back long after it was spent
    let err = refresh(&w.state, &first.tokens.refresh_token, "attacker", NOW + 300)
        .await
        .unwrap_err();
    assert!(matches!(err, Error::InvalidRefreshToken));
    for token in [
        &first.tokens.refresh_token,
        &second.tokens.refresh_token,
        &third.tokens.refresh_token,
    ] {
        assert_eq!(w.refresh_status(token).await, RefreshStatus::Revoked);
    }
    assert!(matches!(
        refresh(&w.state, &third.tokens.refresh_token, "ip", NOW + 301).await,
        Err(Error::InvalidRefreshToken)
    ));
    // another login of the same user is a different family and keeps working
    assert_eq!(
        w.refresh_status(&other_session.tokens.refresh_token).await,
        RefreshStatus::Active
    );
    refresh(
        &w.state,
        &other_session.tokens.refresh_token,
        "ip",
        NOW + 302,
    )
    .await
    .unwrap();
}

#[tokio::test]
async fn fifty_concurrent_refreshes_have_exactly_one_winner_and_keep_the_family() {
    let w = World::new(&[("REFRESH_REUSE_GRACE_SECONDS", "10")]).await;
    let email = unique_email("race");
    w.user(&email, PASSWORD, "user").await;
    let first = logged_in(&w, &email).await;
    let mut tasks = Vec::new();
    for _ in 0..50 {
        let state = w.state.clone();
        let token = first.tokens.refresh_token.clone();
        tasks.push(tokio::spawn(async move {
            refresh(&state, &token, "ip", NOW + 5).await
        }));
    }
    let mut winners = Vec::new();
    let mut losers = 0;
    for t in tasks {
        match t.await.unwrap() {
            Ok(out) => winners.push(out),
            Err(Error::InvalidRefreshToken) => losers += 1,
            Err(other) => panic!("unexpected {other:?}"),
        }
    }
    assert_eq!((winners.len(), losers), (1, 49));
    // the honest client's new token still works: a race is not reuse
    assert_eq!(
        w.refresh_status(&winners[0].tokens.refresh_token).await,
        RefreshStatus::Active
    );
    refresh(&w.state, &winners[0].tokens.refresh_token, "ip", NOW + 6)
        .await
        .unwrap();
}

#[tokio::test]
async fn expired_items_not_yet_deleted_are_refused() {
    let w = World::new(&[("REFRESH_TOKEN_TTL_SECONDS", "600")]).await;
    let email = unique_email("exp");
    w.user(&email, PASSWORD, "user").await;
    let first = logged_in(&w, &email).await;
    // the item is still in the table (TTL deletes lazily), but past its expiry
    assert!(
        w.state
            .refresh_tokens
            .get(&portcullis::ids::digest(&first.tokens.refresh_token))
            .await
            .unwrap()
            .is_some()
    );
    assert!(matches!(
        refresh(&w.state, &first.tokens.refresh_token, "ip", NOW + 600).await,
        Err(Error::InvalidRefreshToken)
    ));
    assert_eq!(
        w.refresh_status(&first.tokens.refresh_token).await,
        RefreshStatus::Active,
        "nothing changed"
    );
}

#[tokio::test]
async fn disabled_or_deleted_users_get_no_new_tokens_and_role_is_current() {
    let w = World::new(&[]).await;
    let email = unique_email("dis");
    w.user(&email, PASSWORD, "user").await;
    let first = logged_in(&w, &email).await;
    w.state.users.set_disabled(&email, true).await.unwrap();
    assert!(matches!(
        refresh(&w.state, &first.tokens.refresh_token, "ip", NOW + 1).await,
        Err(Error::InvalidRefreshToken)
    ));
    assert_eq!(
        w.refresh_status(&first.tokens.refresh_token).await,
        RefreshStatus::Active
    );
    // a refresh token whose user record is gone
    let ghost = w
        .state
        .tokens
        .issue_refresh("usr_ghost", "ghost@example.com", "fam_x", NOW)
        .unwrap();
    assert!(matches!(
        refresh(&w.state, &ghost.token, "ip", NOW + 1).await,
        Err(Error::InvalidRefreshToken)
    ));
}

#[tokio::test]
async fn access_tokens_are_refused_as_refresh_tokens() {
    let w = World::new(&[]).await;
    let email = unique_email("typ");
    w.user(&email, PASSWORD, "user").await;
    let first = logged_in(&w, &email).await;
    w.counter.reset();
    assert!(matches!(
        refresh(&w.state, &first.tokens.access_token, "ip", NOW + 1).await,
        Err(Error::InvalidRefreshToken)
    ));
    assert!(matches!(
        refresh(&w.state, "garbage", "ip", NOW + 1).await,
        Err(Error::InvalidRefreshToken)
    ));
    assert_eq!(w.counter.total(), 0, "refused before any DynamoDB request");
}

#[tokio::test]
async fn logout_of_one_session_leaves_the_others_and_revokes_the_access_token() {
    let w = World::new(&[]).await;
    let email = unique_email("lo");
    w.user(&email, PASSWORD, "user").await;
    let a = logged_in(&w, &email).await;
    let b = logged_in(&w, &email).await;
    w.counter.reset();
    logout(
        &w.state,
        Some(&a.tokens.access_token),
        LogoutScope::Session(&a.tokens.refresh_token),
        "ip",
        NOW + 1,
    )
    .await
    .unwrap();
    assert_eq!(w.counter.total(), 2, "{:?}", w.counter.by_operation());
    assert_eq!(
        w.refresh_status(&a.tokens.refresh_token).await,
        RefreshStatus::Revoked
    );
    assert!(matches!(
        refresh(&w.state, &a.tokens.refresh_token, "ip", NOW + 2).await,
        Err(Error::InvalidRefreshToken)
    ));
    refresh(&w.state, &b.tokens.refresh_token, "ip", NOW + 2)
        .await
        .unwrap();
    let set = w.state.revoked.load(NOW + 2, 1000).await.unwrap();
    let a_claims = w
        .state
        .tokens
        .verify(&a.tokens.access_token, TokenUse::Access, NOW)
        .unwrap();
    let b_claims = w
        .state
        .tokens
        .verify(&b.tokens.access_token, TokenUse::Access, NOW)
        .unwrap();
    assert!(set.is_revoked(&a_claims.jti, &a_claims.sub, a_claims.iat));
    assert!(!set.is_revoked(&b_claims.jti, &b_claims.sub, b_claims.iat));
    // still in force within the verification leeway, gone after it (TTL-independent)
    let at_exp = w.state.revoked.load(a_claims.exp + 4, 1000).await.unwrap();
    assert!(at_exp.is_revoked(&a_claims.jti, &a_claims.sub, a_claims.iat));
    assert!(
        w.state
            .revoked
            .load(a_claims.exp + 5, 1000)
            .await
            .unwrap()
            .is_empty()
    );
}

#[tokio::test]
async fn logout_all_sessions_ends_every_session() {
    let w = World::new(&[]).await;
    let email = unique_email("all");
    w.user(&email, PASSWORD, "user").await;
    let sessions = [
        logged_in(&w, &email).await,
        logged_in(&w, &email).await,
        logged_in(&w, &email).await,
    ];
    logout(
        &w.state,
        Some(&sessions[0].tokens.access_token),
        LogoutScope::All,
        "ip",
        NOW + 1,
    )
    .await
    .unwrap();
    for s in &sessions {
        assert_eq!(
            w.refresh_status(&s.tokens.refresh_token).await,
            RefreshStatus::Revoked
        );
        assert!(matches!(
            refresh(&w.state, &s.tokens.refresh_token, "ip", NOW + 2).await,
            Err(Error::InvalidRefreshToken)
        ));
        let claims = w
            .state
            .tokens
            .verify(&s.tokens.access_token, TokenUse::Access, NOW)
            .unwrap();
        let set = w.state.revoked.load(NOW + 2, 1000).await.unwrap();
        assert!(
            set.is_revoked(&claims.jti, &claims.sub, claims.iat),
            "every access token of the user"
        );
    }
    // a new login afterwards works normally
    let after = {
        let creds = Credentials {
            email: email.clone(),
            password: PASSWORD.into(),
        };
        login(&w.state, &creds, "ip", NOW + 10).await.unwrap()
    };
    refresh(&w.state, &after.tokens.refresh_token, "ip", NOW + 11)
        .await
        .unwrap();
}

#[tokio::test]
async fn user_b_cannot_log_out_user_a() {
    let w = World::new(&[]).await;
    let (ea, eb) = (unique_email("a"), unique_email("b"));
    w.user(&ea, PASSWORD, "user").await;
    w.user(&eb, PASSWORD, "user").await;
    let a = logged_in(&w, &ea).await;
    let b = logged_in(&w, &eb).await;
    w.counter.reset();
    let err = logout(
        &w.state,
        Some(&b.tokens.access_token),
        LogoutScope::Session(&a.tokens.refresh_token),
        "ip",
        NOW + 1,
    )
    .await
    .unwrap_err();
    assert!(matches!(err, Error::InvalidRefreshToken));
    assert_eq!(w.counter.total(), 0, "no state touched");
    assert_eq!(
        w.refresh_status(&a.tokens.refresh_token).await,
        RefreshStatus::Active
    );
    assert!(
        w.state
            .revoked
            .load(NOW + 1, 1000)
            .await
            .unwrap()
            .is_empty()
    );
}

#[tokio::test]
async fn logout_needs_a_valid_access_token() {
    let w = World::new(&[]).await;
    let email = unique_email("auth");
    w.user(&email, PASSWORD, "user").await;
    let a = logged_in(&w, &email).await;
    let cases = [
        (None, "MISSING_TOKEN"),
        (Some("garbage"), "INVALID_TOKEN"),
        (Some(a.tokens.refresh_token.as_str()), "INVALID_TOKEN"),
    ];
    for (bearer, code) in cases {
        let err = logout(
            &w.state,
            bearer,
            LogoutScope::Session(&a.tokens.refresh_token),
            "ip",
            NOW,
        )
        .await
        .unwrap_err();
        assert_eq!(err.code(), code);
    }
    let err = logout(
        &w.state,
        Some(&a.tokens.access_token),
        LogoutScope::All,
        "ip",
        NOW + 100_000,
    )
    .await
    .unwrap_err();
    assert_eq!(err.code(), "TOKEN_EXPIRED");
    assert_eq!(
        w.refresh_status(&a.tokens.refresh_token).await,
        RefreshStatus::Active
    );
}

#[tokio::test]
async fn concurrent_logout_and_refresh_of_one_family_end_logged_out() {
    let w = World::new(&[]).await;
    let email = unique_email("lr");
    w.user(&email, PASSWORD, "user").await;
    let a = logged_in(&w, &email).await;
    let (s1, s2) = (w.state.clone(), w.state.clone());
    let (rt, at) = (
        a.tokens.refresh_token.clone(),
        a.tokens.access_token.clone(),
    );
    let rt2 = rt.clone();
    let refresh_task = tokio::spawn(async move { refresh(&s1, &rt, "ip", NOW + 1).await });
    let logout_task = tokio::spawn(async move {
        logout(&s2, Some(&at), LogoutScope::Session(&rt2), "ip", NOW + 1).await
    });
    let refreshed = refresh_task.await.unwrap();
    logout_task.await.unwrap().unwrap();
    // Whichever won, the presented token is dead and, if a successor was issued, the logout
    // of its (now spent) predecessor ended the whole session.
    assert_eq!(
        w.refresh_status(&a.tokens.refresh_token).await,
        RefreshStatus::Revoked
    );
    if let Ok(out) = refreshed {
        let status = w.refresh_status(&out.tokens.refresh_token).await;
        assert_eq!(
            status,
            RefreshStatus::Revoked,
            "successor left active after logout"
        );
    }
}
