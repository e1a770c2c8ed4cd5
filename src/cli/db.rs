//! The `--database-url` flag and the connection pool behind it.

use std::time::Duration;

use sqlx::postgres::{PgConnectOptions, PgPoolOptions};
use sqlx::{ConnectOptions, Connection, PgPool};

use crate::error::{describe_db, ConfigError};
use crate::secret::Secret;

#[derive(Clone, Debug, clap::Args)]
pub struct DbArgs {
    /// PostgreSQL connection URL, e.g. postgres://user:password@host:5432/db.
    #[arg(long, env = "DATABASE_URL", hide_env_values = true, value_parser = parse_secret)]
    pub database_url: Option<Secret>,
}

pub(crate) fn parse_secret(s: &str) -> Result<Secret, String> {
    Ok(Secret::new(s))
}

impl DbArgs {
    pub fn url(&self) -> Result<&str, ConfigError> {
        self.database_url
            .as_ref()
            .map(Secret::expose)
            .ok_or_else(|| ConfigError::new("no database: pass --database-url or set DATABASE_URL"))
    }
}

/// How long connecting may take, the first connection or any from the pool.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(15);

/// The `application_name` of the job's database sessions.
pub const APPLICATION_NAME: &str = "ecp-inventory";

/// Connects, or fails with a message that names the problem but never the password.
pub async fn connect(url: &str, max_connections: u32) -> anyhow::Result<PgPool> {
    let scheme_ok = ["postgres://", "postgresql://"].iter().any(|scheme| {
        url.get(..scheme.len())
            .is_some_and(|s| s.eq_ignore_ascii_case(scheme))
    });
    let url = &if scheme_ok {
        known_parameters_only(url)?
    } else {
        url.to_owned()
    };
    let parsed = if scheme_ok {
        // sqlx's reasons name the part (the port, the sslmode value), never
        // the password; it repeats its own prefix, said once here.
        url.parse::<PgConnectOptions>().map_err(|e| {
            let why = e.to_string();
            let prefix = "error with configuration: ";
            why.rsplit(prefix).next().unwrap_or(&why).to_owned()
        })
    } else {
        Err("it does not start with postgres:// or postgresql://".to_owned())
    };
    let options = parsed.map_err(|why| {
        ConfigError::new(format!(
            "DATABASE_URL / --database-url is not a valid PostgreSQL URL: {why} \
             (expected postgres://user:password@host:port/database)"
        ))
    })?;
    // A password with a character a URL reserves, not percent-encoded, ends
    // the user part early: the rest of it becomes host, port or database name,
    // which messages would then print.
    if options.get_host().contains('@') || options.get_database().is_some_and(|d| d.contains('@')) {
        return Err(unencoded_password().into());
    }
    check_tls_files(url)?;
    // Named in pg_stat_activity, so a DBA can tell the job's sessions apart. A URL
    // that sets its own application_name keeps it.
    let options = if options.get_application_name().is_none() {
        options.application_name(APPLICATION_NAME)
    } else {
        options
    };
    // sqlx warns of every statement past a second, with its whole text: in a batch
    // job whose applies take seconds by design, that is dozens of lines of SQL in
    // every run's log. The job logs each scope's timings itself; the statements
    // stay at debug level for whoever looks into one.
    let options = options.log_slow_statements(log::LevelFilter::Debug, Duration::from_secs(1));
    // A URL whose `options` (or PGOPTIONS, which sqlx adds to them) touch any
    // of the jit settings keeps the server's JIT as those set it.
    let jit_off = !options.get_options().is_some_and(|o| o.contains("jit"));
    let target = format!(
        "{}@{}:{}/{}",
        options.get_username(),
        options.get_host(),
        options.get_port(),
        options.get_database().unwrap_or("")
    );
    // One connection first, on its own: the pool retries a failed connection
    // until its timeout, and then says only that it timed out, where a refused
    // port or an unknown host is clear at once.
    let first = match tokio::time::timeout(CONNECT_TIMEOUT, options.connect()).await {
        Ok(connected) => connected,
        Err(_) => Err(sqlx::Error::PoolTimedOut),
    };
    // The pool then opens its connections as they are needed.
    let pool = match first {
        Ok(conn) => {
            let _ = conn.close().await;
            Ok(PgPoolOptions::new()
                .max_connections(max_connections)
                .acquire_timeout(CONNECT_TIMEOUT)
                .after_connect(move |conn, _| {
                    Box::pin(async move {
                        super::nodelay::set(conn).await;
                        if jit_off {
                            turn_off_jit(conn).await;
                        }
                        Ok(())
                    })
                })
                .connect_lazy_with(options))
        }
        Err(e) => Err(e),
    };
    let pool = pool.map_err(|e| {
        let mut message = format!(
            "cannot connect to PostgreSQL at {target}: {}",
            describe_db(&e)
        );
        let wrong_password = e
            .as_database_error()
            .and_then(|db| db.code())
            .is_some_and(|code| code == INVALID_PASSWORD);
        if wrong_password && !gives_password(url) && std::env::var_os("PGPASSWORD").is_none() {
            message.push_str(
                "; the URL gives no password: postgres://user:PASSWORD@host/database (or \
                 PGPASSWORD, or a line in ~/.pgpass)",
            );
        }
        // A wrong password, an unknown user or database, TLS the server does not
        // offer or a certificate that does not verify: the invocation is wrong, and
        // trying again will not help (exit 2). Anything else may pass (exit 1).
        let refused = is_tls_setup(&e)
            || e.as_database_error()
                .and_then(|db| db.code())
                .is_some_and(|code| code.starts_with("28") || code == "3D000");
        if refused {
            anyhow::Error::new(ConfigError::new(message))
        } else {
            anyhow::anyhow!(message)
        }
    })?;
    Ok(pool)
}

/// Turns JIT compilation off for a session of the job. The server compiles
/// every statement whose estimated cost passes `jit_above_cost`, and an
/// estimate can be far off where the job's small tables were never analyzed:
/// after a first sync, the end-of-run query for scopes nobody crawls any more
/// (`sql/unsynced_scopes.sql`, six rows of ledger) was estimated at 67 scopes
/// times a scan of every instance, and spent 230 ms compiling to run in less
/// than one (BENCHMARKS.md). The job's other statements are COPYs and
/// set-based joins, which took as long without JIT in the runs measured. Best
/// effort: a server that refuses the setting runs the job as before.
async fn turn_off_jit(conn: &mut sqlx::PgConnection) {
    if let Err(e) = sqlx::raw_sql("SET jit = off").execute(conn).await {
        tracing::debug!(error = %e, "JIT left as the server sets it");
    }
}

/// The parameters sqlx reads from a URL's query (sqlx-postgres's
/// `options/parse.rs`); it logs any other at warn level, value and all, and
/// the value may be a secret (libpq's `sslpassword`).
const KNOWN_PARAMETERS: [&str; 17] = [
    "sslmode",
    "ssl-mode",
    "sslrootcert",
    "ssl-root-cert",
    "ssl-ca",
    "sslcert",
    "ssl-cert",
    "sslkey",
    "ssl-key",
    "statement-cache-capacity",
    "host",
    "hostaddr",
    "port",
    "dbname",
    "user",
    "password",
    "application_name",
];

/// `url` without the query parameters sqlx does not read (the job never
/// needs them), each said by name if it is one of libpq's; `options` and
/// `options[name]` stay (sqlx reads them too).
fn known_parameters_only(url: &str) -> Result<String, ConfigError> {
    // A '#' has no place in a database URL: it is a password's, not
    // percent-encoded, and what follows it would be read as anything but.
    if url.contains('#') {
        return Err(unencoded_password());
    }
    let Ok(mut parsed) = reqwest::Url::parse(url) else {
        // sqlx says why, without the URL.
        return Ok(url.to_owned());
    };
    // An '@' in the query is a password's with a '?' in it, not encoded: the
    // query then begins inside the password, and a parameter's name, which
    // messages show, would be a piece of it.
    if parsed.query().is_some_and(|q| q.contains('@')) {
        return Err(unencoded_password());
    }
    let pairs: Vec<(String, String)> = parsed
        .query_pairs()
        .map(|(k, v)| (k.into_owned(), v.into_owned()))
        .collect();
    let (kept, dropped): (Vec<_>, Vec<_>) = pairs.into_iter().partition(|(k, _)| {
        KNOWN_PARAMETERS.contains(&k.as_str()) || k == "options" || k.starts_with("options[")
    });
    if dropped.is_empty() {
        return Ok(url.to_owned());
    }
    // A name libpq does not know is a misspelling, and left out it may have
    // been the one that asked for TLS (`sslmdoe=require`, `ssl=true`): the
    // connection would go unencrypted without a word.
    if let Some((key, _)) = dropped
        .iter()
        .find(|(k, _)| !LIBPQ_PARAMETERS.contains(&k.as_str()))
    {
        // Named only if it looks like a name (the URL is never shown).
        let plain = key.len() <= 40
            && key
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-');
        let name = if plain {
            format!("{key:?}")
        } else {
            "(not shown)".to_owned()
        };
        let tls = if key.eq_ignore_ascii_case("ssl") {
            " (for TLS: sslmode=require)"
        } else {
            ""
        };
        return Err(ConfigError::new(format!(
            "DATABASE_URL / --database-url has a parameter {name} that PostgreSQL's URLs do \
             not have{tls}: check its spelling (sslmode, sslrootcert, sslcert, sslkey, \
             application_name, options); the URL is not shown"
        )));
    }
    for (key, _) in &dropped {
        tracing::warn!(
            parameter = key.as_str(),
            "the database URL has a parameter this job does not use; it is left out"
        );
    }
    parsed.set_query(None);
    if !kept.is_empty() {
        parsed.query_pairs_mut().extend_pairs(kept);
    }
    Ok(parsed.to_string())
}

/// Every parameter of libpq's URLs (PostgreSQL 17's list), which a URL written
/// for psql may carry: those sqlx does not read are left out, and named.
const LIBPQ_PARAMETERS: &[&str] = &[
    "host",
    "hostaddr",
    "port",
    "dbname",
    "user",
    "password",
    "passfile",
    "require_auth",
    "channel_binding",
    "connect_timeout",
    "client_encoding",
    "options",
    "application_name",
    "fallback_application_name",
    "keepalives",
    "keepalives_idle",
    "keepalives_interval",
    "keepalives_count",
    "tcp_user_timeout",
    "replication",
    "gssencmode",
    "sslmode",
    "requiressl",
    "sslnegotiation",
    "sslcompression",
    "sslcert",
    "sslkey",
    "sslkeylogfile",
    "sslpassword",
    "sslcertmode",
    "sslrootcert",
    "sslcrl",
    "sslcrldir",
    "sslsni",
    "requirepeer",
    "ssl_min_protocol_version",
    "ssl_max_protocol_version",
    "krbsrvname",
    "gsslib",
    "gssdelegation",
    "service",
    "target_session_attrs",
    "load_balance_hosts",
];

fn unencoded_password() -> ConfigError {
    ConfigError::new(
        "DATABASE_URL / --database-url has a '#', or an '@' after its host (in the database \
         name or a parameter): most likely a password holding a '/', '?', '#' or '@', which \
         must be percent-encoded (%2F, %3F, %23, %40); the URL is not shown",
    )
}

/// SQLSTATE of a password the server refused (or one it asked for and did not get).
const INVALID_PASSWORD: &str = "28P01";

/// Whether a PostgreSQL URL has a password in it, as its user's or as a
/// parameter (an empty one counts as none).
fn gives_password(url: &str) -> bool {
    reqwest::Url::parse(url).is_ok_and(|u| {
        u.password().is_some_and(|p| !p.is_empty())
            || u.query_pairs()
                .any(|(k, v)| k == "password" && !v.is_empty())
    })
}

/// TLS the server does not offer, or a certificate that does not verify: the
/// URL's mistake. Other TLS failures (a handshake cut short) may pass.
fn is_tls_setup(e: &sqlx::Error) -> bool {
    let sqlx::Error::Tls(tls) = e else {
        return false;
    };
    let text = tls.to_string().to_ascii_lowercase();
    text.contains("not support") || text.contains("certificate") || text.contains("issuer")
}

/// The certificate and key files the URL names must be readable where they
/// will be used: sqlx would only say "No such file or directory", without
/// saying which. As sqlx reads them: the CA file only to verify the server
/// (`verify-ca`, `verify-full`), the client's certificate and key whenever TLS
/// is asked for; a value that is the PEM text itself, not a path, is left alone
/// (and never repeated: it may be a key).
fn check_tls_files(url: &str) -> Result<(), ConfigError> {
    let Some((_, query)) = url.split_once('?') else {
        return Ok(());
    };
    let query = query.split_once('#').map_or(query, |(q, _)| q);
    let params: Vec<(String, String)> = form_urlencoded::parse(query.as_bytes())
        .into_owned()
        .collect();
    let mode = params
        .iter()
        .rev()
        .find(|(name, _)| name == "sslmode" || name == "ssl-mode")
        .map_or("prefer", |(_, mode)| mode.as_str());
    let verifies = matches!(mode, "verify-ca" | "verify-full");
    let requires = verifies || mode == "require";
    for (name, path) in &params {
        let used = match name.as_str() {
            "sslrootcert" | "ssl-root-cert" | "ssl-ca" => verifies,
            "sslcert" | "ssl-cert" | "sslkey" | "ssl-key" => requires,
            _ => false,
        };
        if !used || path.trim_start().starts_with("-----BEGIN") {
            continue;
        }
        if let Err(e) = std::fs::File::open(path) {
            return Err(ConfigError::new(format!(
                "--database-url: {name}={path} cannot be read: {e}"
            )));
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::{check_tls_files, connect, gives_password};

    #[test]
    fn parameters_sqlx_does_not_read_are_left_out_unseen() {
        let url = "postgres://u:p@h/db?sslpassword=KeyPass9&sslmode=disable&connect_timeout=5&options=-c%20a%3Db";
        let kept = super::known_parameters_only(url).unwrap();
        assert_eq!(kept, "postgres://u:p@h/db?sslmode=disable&options=-c+a%3Db");
        let search = "postgres://u@h/db?options%5Bsearch_path%5D=ecp";
        assert_eq!(super::known_parameters_only(search).unwrap(), search);
        let plain = "postgres://u:p@h/db?sslmode=disable";
        assert_eq!(super::known_parameters_only(plain).unwrap(), plain);
    }

    /// A misspelt parameter was left out with a warning: `sslmdoe=require`
    /// connected without TLS.
    #[test]
    fn a_parameter_postgres_urls_do_not_have_is_refused_by_name() {
        for (query, said) in [
            ("sslmdoe=require", "\"sslmdoe\""),
            ("ssl=true", "(for TLS: sslmode=require)"),
            ("sslmode=require&Password=KeyPass9", "\"Password\""),
            ("x%20y%3Dz=KeyPass9", "(not shown)"),
        ] {
            let url = format!("postgres://u:Pw9secret@h/db?{query}");
            let err = super::known_parameters_only(&url).unwrap_err().to_string();
            assert!(err.contains(said), "{query}: {err}");
            assert!(
                !err.contains("KeyPass9") && !err.contains("Pw9secret"),
                "{err}"
            );
        }
    }

    #[test]
    fn a_url_without_a_password_is_told_apart() {
        assert!(gives_password("postgres://u:pw@h/db"));
        assert!(gives_password(
            "postgresql://u:p%40ss@h:5433/db?sslmode=require"
        ));
        for url in [
            "postgres://u@h/db",
            "postgres://u:@h/db",
            "postgres://h/db",
            "not a url",
        ] {
            assert!(!gives_password(url), "{url}");
        }
    }

    #[tokio::test]
    async fn a_url_that_does_not_parse_is_said_why_without_its_password() {
        for (url, why) in [
            ("postgres://u:Pw9secret@db:notaport/ecp", "port"),
            ("postgres://u:Pw9secret@db/ecp?sslmode=bogus", "bogus"),
            ("mysql://u:Pw9secret@db/ecp", "postgres://"),
            // A reserved character in the password, not percent-encoded.
            (
                "postgres://u:5432/Pw9secret@127.0.0.1:1/ecp",
                "percent-encoded",
            ),
            (
                "postgres://u:1234?Pw9secret@127.0.0.1:1/ecp",
                "percent-encoded",
            ),
            // '#' cut the URL: the rest became a fragment, its host and
            // database printed as the target.
            (
                "postgres://u:Abc@Pw9secret/Staple#Q@127.0.0.1:1/ecp",
                "percent-encoded",
            ),
            (
                "postgres://u:ab#Pw9secret@127.0.0.1:1/ecp",
                "percent-encoded",
            ),
            // A '?' in the password: the query starts inside it, and a
            // parameter's name would be a piece of it.
            (
                "postgres://u:1234?Pw9secret=pw@127.0.0.1:1/ecp",
                "percent-encoded",
            ),
            (
                "postgres://u:?Pw9secret=x@127.0.0.1:1/ecp",
                "percent-encoded",
            ),
        ] {
            let err = format!("{:#}", connect(url, 1).await.unwrap_err());
            assert!(err.contains(why), "{url}: {err}");
            assert!(!err.contains("Pw9secret"), "{url}: {err}");
        }
    }

    #[test]
    fn a_certificate_file_the_url_names_must_be_there_when_it_is_used() {
        let base = "postgres://u:secret@db:5432/ecp";
        assert!(check_tls_files(base).is_ok());
        assert!(check_tls_files(&format!("{base}?sslmode=require")).is_ok());
        let err = check_tls_files(&format!(
            "{base}?sslmode=verify-full&sslrootcert=/nowhere/ca.pem"
        ))
        .unwrap_err()
        .to_string();
        assert!(err.contains("sslrootcert=/nowhere/ca.pem"), "{err}");
        assert!(!err.contains("secret"), "{err}");
        let err = check_tls_files(&format!("{base}?sslmode=require&sslkey=/nowhere/k.pem"))
            .unwrap_err()
            .to_string();
        assert!(err.contains("sslkey=/nowhere/k.pem"), "{err}");
        let here = file!(); // a file that exists, relative to the crate root
        assert!(check_tls_files(&format!("{base}?sslmode=verify-ca&sslrootcert={here}")).is_ok());
        // Files sqlx will not read in that mode, and PEM text given inline.
        for ok in [
            "?sslmode=require&sslrootcert=/nowhere/ca.pem",
            "?sslrootcert=/nowhere/ca.pem",
            "?sslmode=disable&sslcert=/nowhere/c.pem",
            "?sslmode=verify-full&sslrootcert=-----BEGIN%20CERTIFICATE-----x-----END%20CERTIFICATE-----",
        ] {
            assert!(check_tls_files(&format!("{base}{ok}")).is_ok(), "{ok}");
        }
        // A fragment is not part of the last value.
        let url = format!("{base}?sslmode=verify-full&sslrootcert={here}#fragment");
        assert!(check_tls_files(&url).is_ok(), "{url}");
    }
}
