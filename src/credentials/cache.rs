//! Caching of expiring credentials (STS via OIDC, ECS metadata, credentials URI):
//! when to refresh, one refresh at a time, and riding out a failed refresh while
//! the old credentials are still valid.

use chrono::{DateTime, TimeDelta, Utc};
use std::future::Future;

use super::{Credentials, CredentialsError};

/// Refresh this long before `Expiration`, as the SDKs do, so a request signed just
/// before the refresh point still has a comfortable margin on the server side.
pub(crate) const REFRESH_BEFORE: TimeDelta = TimeDelta::minutes(15);

/// After a failed refresh, old credentials are still handed out while they have at
/// least this much life left (enough for one request with its retries to land).
const MIN_REMAINING_ON_FAILURE: TimeDelta = TimeDelta::minutes(1);

/// Whether credentials expiring at `expiration` should be fetched again at `now`.
pub(crate) fn needs_refresh(now: DateTime<Utc>, expiration: DateTime<Utc>) -> bool {
    now + REFRESH_BEFORE >= expiration
}

#[derive(Debug)]
struct Expiring {
    credentials: Credentials,
    expiration: DateTime<Utc>,
}

/// Holds the last credentials and their expiry. The lock is held across a fetch,
/// so concurrent callers wait for one refresh instead of each starting their own.
#[derive(Debug, Default)]
pub(crate) struct CredentialsCache {
    slot: tokio::sync::Mutex<Option<Expiring>>,
}

impl CredentialsCache {
    /// Cached credentials if still fresh, else the result of `fetch`. A failed
    /// fetch falls back to the cached credentials while they remain usable.
    pub(crate) async fn get_or_refresh<F, Fut>(
        &self,
        provider: &str,
        fetch: F,
    ) -> Result<Credentials, CredentialsError>
    where
        F: FnOnce() -> Fut,
        Fut: Future<Output = Result<(Credentials, DateTime<Utc>), CredentialsError>>,
    {
        let mut slot = self.slot.lock().await;
        let now = Utc::now();
        if let Some(cached) = slot.as_ref() {
            if !needs_refresh(now, cached.expiration) {
                return Ok(cached.credentials.clone());
            }
        }
        match fetch().await {
            Ok((credentials, expiration)) => {
                tracing::info!(provider, %expiration, "fetched credentials");
                *slot = Some(Expiring {
                    credentials: credentials.clone(),
                    expiration,
                });
                Ok(credentials)
            }
            Err(e) => match slot.as_ref() {
                Some(cached) if now + MIN_REMAINING_ON_FAILURE < cached.expiration => {
                    tracing::warn!(
                        provider,
                        error = %e,
                        expiration = %cached.expiration,
                        "refreshing credentials failed; using the cached ones until they expire"
                    );
                    Ok(cached.credentials.clone())
                }
                _ => Err(e),
            },
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn creds(id: &str) -> Credentials {
        Credentials::new(id, "secret")
    }

    #[test]
    fn refresh_window_is_fifteen_minutes() {
        let now = Utc::now();
        assert!(!needs_refresh(now, now + TimeDelta::minutes(16)));
        assert!(needs_refresh(now, now + TimeDelta::minutes(15)));
        assert!(needs_refresh(now, now + TimeDelta::minutes(10)));
        assert!(needs_refresh(now, now - TimeDelta::minutes(1)));
    }

    #[tokio::test]
    async fn fresh_credentials_are_reused_and_stale_ones_refetched() {
        let cache = CredentialsCache::default();
        let far = Utc::now() + TimeDelta::hours(1);
        let c = cache
            .get_or_refresh("t", || async move { Ok((creds("a"), far)) })
            .await
            .unwrap();
        assert_eq!(c.access_key_id, "a");
        let c = cache
            .get_or_refresh("t", || async { panic!("must not fetch") })
            .await
            .unwrap();
        assert_eq!(c.access_key_id, "a");

        let cache = CredentialsCache::default();
        let near = Utc::now() + TimeDelta::minutes(10);
        cache
            .get_or_refresh("t", || async move { Ok((creds("a"), near)) })
            .await
            .unwrap();
        let c = cache
            .get_or_refresh("t", || async move { Ok((creds("b"), far)) })
            .await
            .unwrap();
        assert_eq!(c.access_key_id, "b");
    }

    #[tokio::test]
    async fn failed_refresh_falls_back_only_while_cached_ones_are_valid() {
        let cache = CredentialsCache::default();
        let near = Utc::now() + TimeDelta::minutes(10);
        cache
            .get_or_refresh("t", || async move { Ok((creds("a"), near)) })
            .await
            .unwrap();
        let c = cache
            .get_or_refresh("t", || async { Err(CredentialsError::new("down")) })
            .await
            .unwrap();
        assert_eq!(c.access_key_id, "a");

        let cache = CredentialsCache::default();
        let soon = Utc::now() + TimeDelta::seconds(30);
        cache
            .get_or_refresh("t", || async move { Ok((creds("a"), soon)) })
            .await
            .unwrap();
        let e = cache
            .get_or_refresh("t", || async { Err(CredentialsError::new("down")) })
            .await
            .unwrap_err();
        assert_eq!(e.0, "down");
    }
}
