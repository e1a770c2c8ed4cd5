//! A string that must never be printed: access key secrets, security tokens and
//! database passwords. `Debug` and `Display` show a placeholder, so a secret that
//! ends up in a log line, an error or a `{:?}` dump is harmless.

use std::fmt;

#[derive(Clone, PartialEq, Eq)]
pub struct Secret(String);

impl Secret {
    pub fn new(value: impl Into<String>) -> Self {
        Secret(value.into())
    }

    /// The secret itself. Call this only where the value is consumed (an HMAC key,
    /// a header that the server needs), never to format it.
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Secret(***)")
    }
}

impl fmt::Display for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("***")
    }
}

impl From<String> for Secret {
    fn from(value: String) -> Self {
        Secret(value)
    }
}

impl From<&str> for Secret {
    fn from(value: &str) -> Self {
        Secret(value.to_owned())
    }
}

/// A URL without the password it may carry (a database's, a Pushgateway's), or
/// a client key's, to show or log. One that does not parse is not shown at all.
pub fn without_password(url: &str) -> String {
    let Ok(mut parsed) = reqwest::Url::parse(url) else {
        return "(a URL that does not parse)".to_owned();
    };
    let _ = parsed.set_password(None);
    // PostgreSQL's URLs may also carry it as a parameter (libpq's `sslpassword`
    // is the client key's), and sqlx takes a client key inline (`sslkey`).
    let secret = |name: &str| {
        let name = name.to_ascii_lowercase();
        name.contains("pass") || name == "sslkey" || name == "ssl-key"
    };
    if parsed.query_pairs().any(|(name, _)| secret(&name)) {
        let kept: Vec<(String, String)> = parsed
            .query_pairs()
            .filter(|(name, _)| !secret(name))
            .map(|(n, v)| (n.into_owned(), v.into_owned()))
            .collect();
        parsed.set_query(None);
        if !kept.is_empty() {
            parsed.query_pairs_mut().extend_pairs(kept);
        }
    }
    parsed.to_string()
}

/// `detail` with each of `secrets` (those of four characters or more) replaced by
/// `***`, as written and as percent-encoded once and twice (a query string, and
/// a V1 string to sign that encodes the query again): what a service quotes back
/// in a message is hidden even where nothing marks it as a quote.
pub fn redact(detail: &str, secrets: &[&str]) -> String {
    let mut out = detail.to_owned();
    for secret in secrets.iter().filter(|s| s.len() >= 4) {
        let once = crate::api::sign::rfc3986(secret);
        let twice = crate::api::sign::rfc3986(&once);
        for form in [twice, once, (*secret).to_owned()] {
            out = out.replace(&form, "***");
            // An excerpt cut inside the secret ends with its beginning: the
            // longest one of eight characters or more goes too.
            if let Some(start) = (MIN_PARTIAL..form.len())
                .rev()
                .filter(|&k| form.is_char_boundary(k))
                .map(|k| &form[..k])
                .find(|start| out.contains(start))
            {
                out = out.replace(start, "***");
            }
        }
    }
    out
}

/// The shortest beginning of a secret that [`redact`] takes for a cut one.
const MIN_PARTIAL: usize = 8;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn debug_and_display_hide_the_value() {
        let s = Secret::new("hunter2");
        assert_eq!(format!("{s:?}"), "Secret(***)");
        assert_eq!(format!("{s}"), "***");
        assert_eq!(s.expose(), "hunter2");
    }

    #[test]
    fn a_url_is_shown_without_its_password() {
        assert_eq!(
            without_password("postgres://writer:S3cret%21@db.internal:5432/ecp?sslmode=require"),
            "postgres://writer@db.internal:5432/ecp?sslmode=require"
        );
        let local = "postgres://postgres@127.0.0.1:5432/ecp_demo";
        assert_eq!(without_password(local), local);
        assert!(!without_password("postgres://u:pw@[bad").contains("pw"));
        assert_eq!(
            without_password("postgres://u@db/ecp?password=pw&sslmode=require"),
            "postgres://u@db/ecp?sslmode=require"
        );
        // The client key's passphrase and an inline key, whatever their case.
        assert_eq!(
            without_password(
                "postgres://u@db/ecp?sslpassword=kp&SSLKEY=k&Password=p&sslmode=require"
            ),
            "postgres://u@db/ecp?sslmode=require"
        );
    }

    #[test]
    fn secrets_are_redacted_as_written_and_percent_encoded() {
        let token = "CAIS+tok/en=";
        let once = crate::api::sign::rfc3986(token);
        let twice = crate::api::sign::rfc3986(&once);
        let text = format!("a {token} b {once} c {twice} d");
        assert_eq!(redact(&text, &[token, "abc"]), "a *** b *** c *** d");
        assert_eq!(redact("abc", &["abc"]), "abc", "too short to be a secret");
        // Cut by an excerpt: its beginning, from eight characters on.
        let long = "CAISabcdefghijklmnopqrstuvwxyz0123456789";
        assert_eq!(
            redact(&format!("token {}…", &long[..20]), &[long]),
            "token ***…"
        );
        assert_eq!(redact("token CAISabc", &[long]), "token CAISabc");
    }
}
