//! A throwaway PostgreSQL server for tests, started by the test itself: Debian's `postgresql`
//! package's `initdb` and `pg_ctl` on a fresh cluster in a temporary directory, listening on
//! 127.0.0.1 on a free port (and a Unix socket inside the directory), trust authentication,
//! no fsync. No mock and no shared server: every [`TestPostgres`] is its own cluster, stopped
//! and deleted when dropped. `./dev setup` installs the package.
//!
//! PostgreSQL refuses to run as root; under root (CI) the cluster belongs to the `postgres`
//! system user the package creates, and its commands run as that user (`runuser`).

use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::OnceLock;

/// Overrides where `initdb` and `pg_ctl` are looked for.
pub const BIN_ENV: &str = "MAILROOM_PG_BIN";

#[derive(Debug, thiserror::Error)]
pub enum PgError {
    #[error(
        "PostgreSQL's server programs (initdb, pg_ctl) were not found: install Debian's \
         `postgresql` package (`./dev setup` does), or set {BIN_ENV} to their directory"
    )]
    NotInstalled,
    #[error("{step} failed: {detail}")]
    Failed { step: &'static str, detail: String },
    #[error("{0}")]
    Io(#[from] std::io::Error),
}

/// A running throwaway cluster; stopped and deleted on drop.
#[derive(Debug)]
pub struct TestPostgres {
    bin: PathBuf,
    data: PathBuf,
    port: u16,
    as_user: Option<String>,
    _dir: tempfile::TempDir,
}

/// The user the cluster runs as.
const SUPERUSER: &str = "mailroom";

impl TestPostgres {
    /// Creates and starts a cluster (a second or two).
    pub fn start() -> Result<Self, PgError> {
        let bin = bin_dir().ok_or(PgError::NotInstalled)?;
        let dir = tempfile::Builder::new().prefix("mailroom-pg-").tempdir()?;
        let as_user = if running_as_root() {
            let (uid, gid) = system_user("postgres").ok_or_else(|| PgError::Failed {
                step: "finding the postgres user",
                detail: "running as root, PostgreSQL needs the `postgres` system user (the `postgresql` package creates it)".into(),
            })?;
            std::os::unix::fs::chown(dir.path(), Some(uid), Some(gid))?;
            Some("postgres".to_string())
        } else {
            None
        };
        let data = dir.path().join("data");
        let port = free_port()?;
        let mut pg = TestPostgres {
            bin,
            data,
            port,
            as_user,
            _dir: dir,
        };
        pg.run(
            "initdb",
            "initdb",
            &[
                "-D",
                &pg.data.display().to_string(),
                "-U",
                SUPERUSER,
                "--auth=trust",
                "--no-sync",
                "-E",
                "UTF8",
                "--locale=C",
            ],
        )?;
        let options = format!(
            "-p {} -k {} -c listen_addresses=127.0.0.1 -F -c max_connections=200",
            pg.port,
            pg._dir.path().display()
        );
        let log = pg._dir.path().join("server.log");
        let started = pg.run(
            "pg_ctl start",
            "pg_ctl",
            &[
                "-D",
                &pg.data.display().to_string(),
                "-o",
                &options,
                "-l",
                &log.display().to_string(),
                "-w",
                "-t",
                "60",
                "start",
            ],
        );
        if let Err(e) = started {
            let log = std::fs::read_to_string(&log).unwrap_or_default();
            pg.as_user = None; // nothing to stop
            return Err(PgError::Failed {
                step: "pg_ctl start",
                detail: format!("{e}; server log: {log}"),
            });
        }
        // A free port can be taken between the check and the start: pg_ctl then fails above.
        Ok(pg)
    }

    /// The port the server listens on (127.0.0.1).
    pub fn port(&self) -> u16 {
        self.port
    }

    /// One cluster for the whole test process, started at the first call. A static is never
    /// dropped, so a watchdog process stops and deletes the cluster once this process has
    /// ended. Each test takes its own database from it ([`TestPostgres::new_database`]).
    pub fn shared() -> Result<&'static TestPostgres, PgError> {
        static SHARED: OnceLock<Result<TestPostgres, String>> = OnceLock::new();
        SHARED
            .get_or_init(|| {
                let pg = TestPostgres::start().map_err(|e| e.to_string())?;
                pg.watch_this_process().map_err(|e| e.to_string())?;
                Ok(pg)
            })
            .as_ref()
            .map_err(|detail| PgError::Failed {
                step: "starting the shared cluster",
                detail: detail.clone(),
            })
    }

    /// Creates a new, empty database (named uniquely within this process) and returns its URL.
    pub fn new_database(&self) -> Result<String, PgError> {
        static NEXT: AtomicU64 = AtomicU64::new(1);
        let name = format!(
            "test_{}_{}",
            std::process::id(),
            NEXT.fetch_add(1, Ordering::Relaxed)
        );
        let out = Command::new(self.bin.join("createdb"))
            .args([
                "-h",
                "127.0.0.1",
                "-p",
                &self.port.to_string(),
                "-U",
                SUPERUSER,
                &name,
            ])
            .env_remove("PGPASSWORD")
            .output()?;
        if !out.status.success() {
            return Err(PgError::Failed {
                step: "createdb",
                detail: String::from_utf8_lossy(&out.stderr).into_owned(),
            });
        }
        Ok(self.url(&name))
    }

    /// Starts a process that stops the cluster and deletes its directory once this process
    /// has ended.
    fn watch_this_process(&self) -> Result<(), PgError> {
        let pg_ctl = self.bin.join("pg_ctl");
        let stop = match &self.as_user {
            Some(user) => format!(
                "runuser -u {user} -- '{}' -D '{}' -m immediate -w stop",
                pg_ctl.display(),
                self.data.display()
            ),
            None => format!(
                "'{}' -D '{}' -m immediate -w stop",
                pg_ctl.display(),
                self.data.display()
            ),
        };
        let script = format!(
            "while kill -0 {pid} 2>/dev/null; do sleep 0.5; done; {stop} >/dev/null 2>&1; rm -rf '{dir}'",
            pid = std::process::id(),
            dir = self._dir.path().display()
        );
        Command::new("sh")
            .args(["-c", &script])
            .stdin(std::process::Stdio::null())
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .spawn()?;
        Ok(())
    }

    /// A connection URL for `database` (`postgres` exists from the start; create others with
    /// `CREATE DATABASE`).
    pub fn url(&self, database: &str) -> String {
        format!("postgres://{SUPERUSER}@127.0.0.1:{}/{database}", self.port)
    }

    fn run(&self, step: &'static str, program: &str, args: &[&str]) -> Result<(), PgError> {
        let program = self.bin.join(program);
        let mut command = match &self.as_user {
            Some(user) => {
                let mut c = Command::new("runuser");
                c.args(["-u", user, "--"]).arg(&program);
                c
            }
            None => Command::new(&program),
        };
        // Never the caller's PG* settings (a developer's PGHOST, PGDATA).
        for (name, _) in std::env::vars_os() {
            if name.to_string_lossy().starts_with("PG") {
                command.env_remove(&name);
            }
        }
        let out = command.args(args).current_dir(self._dir.path()).output()?;
        if out.status.success() {
            Ok(())
        } else {
            Err(PgError::Failed {
                step,
                detail: format!(
                    "{}{}",
                    String::from_utf8_lossy(&out.stdout),
                    String::from_utf8_lossy(&out.stderr)
                ),
            })
        }
    }
}

impl Drop for TestPostgres {
    fn drop(&mut self) {
        if !self.data.join("postmaster.pid").exists() {
            return;
        }
        let data = self.data.display().to_string();
        let _ = self.run(
            "pg_ctl stop",
            "pg_ctl",
            &["-D", &data, "-m", "immediate", "-w", "stop"],
        );
    }
}

/// `$MAILROOM_PG_BIN`, else the newest `/usr/lib/postgresql/<version>/bin` (Debian), else a
/// directory on `PATH` holding `pg_ctl`.
fn bin_dir() -> Option<PathBuf> {
    if let Some(dir) = std::env::var_os(BIN_ENV).filter(|d| !d.is_empty()) {
        return Some(PathBuf::from(dir));
    }
    let mut versions: Vec<(u32, PathBuf)> = std::fs::read_dir("/usr/lib/postgresql")
        .into_iter()
        .flatten()
        .flatten()
        .filter_map(|e| {
            let version = e.file_name().to_string_lossy().parse::<u32>().ok()?;
            let bin = e.path().join("bin");
            bin.join("pg_ctl").exists().then_some((version, bin))
        })
        .collect();
    versions.sort();
    if let Some((_, bin)) = versions.pop() {
        return Some(bin);
    }
    std::env::var_os("PATH").and_then(|path| {
        std::env::split_paths(&path)
            .find(|dir| dir.join("pg_ctl").exists() && dir.join("initdb").exists())
    })
}

fn running_as_root() -> bool {
    use std::os::unix::fs::MetadataExt as _;
    std::fs::metadata("/proc/self").is_ok_and(|m| m.uid() == 0)
}

/// The uid and gid of a system user, from `/etc/passwd`.
fn system_user(name: &str) -> Option<(u32, u32)> {
    let passwd = std::fs::read_to_string(Path::new("/etc/passwd")).ok()?;
    passwd.lines().find_map(|line| {
        let mut fields = line.split(':');
        (fields.next()? == name).then_some(())?;
        let _password = fields.next()?;
        let uid = fields.next()?.parse().ok()?;
        let gid = fields.next()?.parse().ok()?;
        Some((uid, gid))
    })
}

fn free_port() -> Result<u16, PgError> {
    Ok(TcpListener::bind("127.0.0.1:0")?.local_addr()?.port())
}
