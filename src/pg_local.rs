//! A throwaway local PostgreSQL for tests and the demo: finds the server binaries,
//! creates a cluster in a directory (or reuses the one already there), starts it
//! on a free loopback port with its unix socket inside the data directory, and
//! stops it. Nothing here is for production databases.
//!
//! Postgres refuses to run as root, so when this process is root the cluster is
//! created and run as the `postgres` user (through `runuser`), which then owns
//! the directory.

use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

#[derive(Debug, thiserror::Error)]
pub enum PgLocalError {
    #[error(
        "PostgreSQL server binaries (initdb, pg_ctl) not found on PATH or in \
         /usr/lib/postgresql/*/bin; install postgresql, e.g. apt-get install postgresql"
    )]
    BinariesNotFound,
    #[error("{what} failed: {detail}")]
    Command { what: String, detail: String },
    #[error(
        "the postgres user cannot enter {} (a directory only its owner may enter, such as \
         root's home), and {why}: choose one it can enter with --data-dir",
        .asked.display()
    )]
    Unreachable { asked: PathBuf, why: String },
    #[error("{0}")]
    Io(#[from] std::io::Error),
}

/// A cluster started (or found running) by [`LocalPostgres::start`].
#[derive(Debug, Clone)]
pub struct LocalPostgres {
    bin_dir: PathBuf,
    data_dir: PathBuf,
    port: u16,
    run_as: Option<&'static str>,
}

/// The user the server runs as when this process is root.
const UNPRIVILEGED_USER: &str = "postgres";

impl LocalPostgres {
    /// The directory with initdb, pg_ctl and postgres: PATH first, then the newest
    /// Debian-style /usr/lib/postgresql/<version>/bin.
    pub fn find_binaries() -> Result<PathBuf, PgLocalError> {
        let has_all = |dir: &Path| {
            ["initdb", "pg_ctl", "postgres"]
                .iter()
                .all(|b| dir.join(b).is_file())
        };
        if let Some(path) = std::env::var_os("PATH") {
            if let Some(dir) = std::env::split_paths(&path).find(|d| has_all(d)) {
                return Ok(dir);
            }
        }
        let mut versions: Vec<(u32, PathBuf)> = std::fs::read_dir("/usr/lib/postgresql")
            .into_iter()
            .flatten()
            .flatten()
            .filter_map(|e| {
                let v = e.file_name().to_str()?.parse::<u32>().ok()?;
                Some((v, e.path().join("bin")))
            })
            .filter(|(_, bin)| has_all(bin))
            .collect();
        versions.sort();
        versions
            .pop()
            .map(|(_, bin)| bin)
            .ok_or(PgLocalError::BinariesNotFound)
    }

    /// Starts the cluster kept under `dir` (its data in `dir/data`), creating it on
    /// first use. When it is already running, returns it as it is.
    /// `settings` are extra server settings, e.g. `("fsync", "off")` for tests.
    pub fn start(dir: &Path, settings: &[(&str, &str)]) -> Result<Self, PgLocalError> {
        let bin_dir = Self::find_binaries()?;
        std::fs::create_dir_all(dir)?;
        let mut dir = dir.canonicalize()?;
        let run_as = running_as_root().then_some(UNPRIVILEGED_USER);
        if let Some(user) = run_as {
            if !reaches(user, &dir) {
                // Under a directory only root may enter (root's home, mode 700):
                // the server could not get to its data. The cluster goes to a
                // place named after the one asked for, found again next time.
                let elsewhere = reachable_stand_in(&dir, user)?;
                tracing::warn!(
                    asked = %dir.display(),
                    used = %elsewhere.display(),
                    "the {user} user cannot enter the directory asked for the local PostgreSQL: \
                     its cluster is kept elsewhere"
                );
                dir = elsewhere;
            }
            run("chown", Command::new("chown").arg("-R").arg(user).arg(&dir))?;
        }
        let data_dir = dir.join("data");
        let mut pg = LocalPostgres {
            bin_dir,
            data_dir,
            port: 0,
            run_as,
        };
        if !pg.data_dir.join("PG_VERSION").exists() {
            let mut initdb = pg.command("initdb");
            initdb.arg("-D").arg(&pg.data_dir).args([
                "-A",
                "trust",
                "-U",
                "postgres",
                "-E",
                "UTF8",
                "--no-sync",
            ]);
            run("initdb", &mut initdb)?;
        }
        if let Some(port) = pg.running_port() {
            pg.port = port;
            return Ok(pg);
        }
        pg.port = free_port()?;
        let mut options = format!(
            "-p {} -k {} -c listen_addresses=127.0.0.1",
            pg.port,
            pg.data_dir.display()
        );
        for (k, v) in settings {
            options.push_str(&format!(" -c {k}={v}"));
        }
        let mut pg_ctl = pg.command("pg_ctl");
        pg_ctl
            .arg("-D")
            .arg(&pg.data_dir)
            .arg("-l")
            .arg(pg.data_dir.join("server.log"))
            .args(["-w", "-t", "60", "-o", &options, "start"]);
        run("pg_ctl start", &mut pg_ctl).map_err(|e| match e {
            PgLocalError::Command { what, detail } => PgLocalError::Command {
                what,
                detail: format!(
                    "{detail} (see {})",
                    pg.data_dir.join("server.log").display()
                ),
            },
            other => other,
        })?;
        Ok(pg)
    }

    /// Stops the server (fast shutdown: sessions are disconnected).
    pub fn stop(&self) -> Result<(), PgLocalError> {
        let mut pg_ctl = self.command("pg_ctl");
        pg_ctl
            .arg("-D")
            .arg(&self.data_dir)
            .args(["-m", "fast", "-w", "stop"]);
        run("pg_ctl stop", &mut pg_ctl)?;
        Ok(())
    }

    pub fn port(&self) -> u16 {
        self.port
    }

    pub fn data_dir(&self) -> &Path {
        &self.data_dir
    }

    pub fn bin_dir(&self) -> &Path {
        &self.bin_dir
    }

    /// The URL of database `database` (create it with [`Self::create_database`]).
    pub fn url(&self, database: &str) -> String {
        format!("postgres://postgres@127.0.0.1:{}/{database}", self.port)
    }

    /// Creates `database` unless it exists; returns its URL.
    pub async fn create_database(&self, database: &str) -> Result<String, sqlx::Error> {
        use sqlx::Connection;
        let mut conn = sqlx::PgConnection::connect(&self.url("postgres")).await?;
        let exists: bool =
            sqlx::query_scalar("SELECT EXISTS (SELECT 1 FROM pg_database WHERE datname = $1)")
                .bind(database)
                .fetch_one(&mut conn)
                .await?;
        if !exists {
            let quoted = format!("\"{}\"", database.replace('"', "\"\""));
            sqlx::raw_sql(sqlx::AssertSqlSafe(format!("CREATE DATABASE {quoted}")))
                .execute(&mut conn)
                .await?;
        }
        conn.close().await?;
        Ok(self.url(database))
    }

    /// Drops `database` if it exists (disconnecting its sessions) and creates it
    /// empty; returns its URL.
    pub async fn recreate_database(&self, database: &str) -> Result<String, sqlx::Error> {
        use sqlx::Connection;
        let mut conn = sqlx::PgConnection::connect(&self.url("postgres")).await?;
        let quoted = format!("\"{}\"", database.replace('"', "\"\""));
        sqlx::raw_sql(sqlx::AssertSqlSafe(format!(
            "DROP DATABASE IF EXISTS {quoted} WITH (FORCE)"
        )))
        .execute(&mut conn)
        .await?;
        conn.close().await?;
        self.create_database(database).await
    }

    /// The port of the server already running on this data directory, if any.
    fn running_port(&self) -> Option<u16> {
        let mut status = self.command("pg_ctl");
        status.arg("-D").arg(&self.data_dir).arg("status");
        let ok = status.output().ok()?.status.success();
        if !ok {
            return None;
        }
        // postmaster.pid: line 4 is the port.
        let pid_file = std::fs::read_to_string(self.data_dir.join("postmaster.pid")).ok()?;
        pid_file.lines().nth(3)?.trim().parse().ok()
    }

    fn command(&self, binary: &str) -> Command {
        let path = self.bin_dir.join(binary);
        match self.run_as {
            Some(user) => {
                let mut c = Command::new("runuser");
                c.args(["-u", user, "--"]).arg(path);
                // initdb goes back to the directory it started in, which the
                // user may not enter (root's); the cluster's own directory it may.
                if let Some(dir) = self.data_dir.parent() {
                    c.current_dir(dir);
                }
                c
            }
            None => Command::new(path),
        }
    }
}

/// Whether `user` may enter `dir` (every directory above it included).
fn reaches(user: &str, dir: &Path) -> bool {
    Command::new("runuser")
        .args(["-u", user, "--", "test", "-x"])
        .arg(dir)
        .current_dir("/")
        .status()
        .is_ok_and(|s| s.success())
}

/// A directory `user` may enter, named after `dir`, in one that root alone
/// may write to under the system's temporary directory:
/// `/root/x/.ecp-demo/postgres` becomes `ecp-inventory-pg/root_x_.ecp-demo_postgres`
/// there, found again next time. Root gives what it creates there to `user`,
/// so nothing another user could have put in its place is taken: a parent that
/// is not root's own, or open to others' writes, or a symlink anywhere, is refused.
fn reachable_stand_in(dir: &Path, user: &str) -> Result<PathBuf, PgLocalError> {
    use std::os::unix::fs::PermissionsExt;
    let refused = |why: String| PgLocalError::Unreachable {
        asked: dir.to_owned(),
        why,
    };
    let parent = std::env::temp_dir().join("ecp-inventory-pg");
    match std::fs::symlink_metadata(&parent) {
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            std::fs::create_dir(&parent)?;
            std::fs::set_permissions(&parent, std::fs::Permissions::from_mode(0o755))?;
        }
        Err(e) => return Err(e.into()),
        Ok(m)
            if m.file_type().is_symlink()
                || !m.is_dir()
                || m.uid() != 0
                || m.mode() & 0o022 != 0 =>
        {
            return Err(refused(format!(
                "{} is not a directory of root's that only root may write to",
                parent.display()
            )))
        }
        Ok(_) => {}
    }
    let name: String = dir
        .to_string_lossy()
        .trim_start_matches('/')
        .chars()
        .map(|c| if c == '/' { '_' } else { c })
        .collect();
    let stand_in = parent.join(name);
    match std::fs::symlink_metadata(&stand_in) {
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => std::fs::create_dir(&stand_in)?,
        Err(e) => return Err(e.into()),
        Ok(m) if m.file_type().is_symlink() || !m.is_dir() => {
            return Err(refused(format!(
                "{} is not a directory",
                stand_in.display()
            )))
        }
        Ok(_) => {}
    }
    if !reaches(user, &stand_in) {
        return Err(refused(format!(
            "cannot enter {} either",
            stand_in.display()
        )));
    }
    Ok(stand_in)
}

/// /proc/self belongs to the effective user of this process.
fn running_as_root() -> bool {
    std::fs::metadata("/proc/self")
        .map(|m| m.uid() == 0)
        .unwrap_or(false)
}

fn free_port() -> Result<u16, PgLocalError> {
    let listener = std::net::TcpListener::bind("127.0.0.1:0")?;
    Ok(listener.local_addr()?.port())
}

fn run(what: &str, command: &mut Command) -> Result<Output, PgLocalError> {
    let out = command.output().map_err(|e| PgLocalError::Command {
        what: what.to_string(),
        detail: e.to_string(),
    })?;
    if !out.status.success() {
        return Err(PgLocalError::Command {
            what: what.to_string(),
            detail: format!(
                "{}: {}{}",
                out.status,
                String::from_utf8_lossy(&out.stderr).trim(),
                String::from_utf8_lossy(&out.stdout).trim()
            ),
        });
    }
    Ok(out)
}
