//! A real Postgres server for tests: a fresh cluster (`initdb`) in a scratch directory,
//! started on a free loopback port, killed on drop.
//!
//! The binaries come from `$TA_TEST_PG_BIN` (a directory), else the newest
//! `/usr/lib/postgresql/<version>/bin` (Debian's `postgresql` package), else the `PATH`.
//! Without them, [`PostgresServer::maybe_start`] prints a loud notice and returns `None`
//! so a developer without Postgres can still run the other tests; with `CI` set it
//! panics instead, since a CI run that silently skipped the Postgres tests would prove
//! nothing.
//!
//! Postgres refuses to run as root. When the tests run as root (as CI does), the
//! cluster's directory is given to the unprivileged `postgres` user (which the package
//! creates) and `initdb` and the server run as that user through `setpriv`, which execs
//! the server directly: its process id is the one the test kills.
//!
//! The server asks every TCP client for a password (SCRAM), so the plugin's password
//! handling is exercised for real; `psql` over the server's Unix socket is trusted.

use std::collections::BTreeMap;
use std::os::unix::fs::MetadataExt as _;
use std::os::unix::process::CommandExt as _;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use ta_persistence_api::ffi::ForeignManager;

use crate::redis_server::{free_port, loud_notice, write_certificates};

/// The class the Postgres plugin library exports.
pub const POSTGRES_CLASS: &str = "PostgresTaskPersistenceManager";

/// The variable naming the directory of the Postgres binaries to use.
pub const BIN_VAR: &str = "TA_TEST_PG_BIN";

/// The superuser the test cluster is created with.
pub const SUPERUSER: &str = "ta";

/// How long a server may take to accept connections.
const READY_WITHIN: Duration = Duration::from_secs(30);

/// Builds the Postgres plugin library (once per test binary) and constructs a manager
/// of it with these `TA_*` variables, through the host's loader.
pub fn load_postgres_plugin(
    vars: &BTreeMap<String, String>,
) -> Result<ForeignManager, ta_persistence::loader::LoadError> {
    let path = crate::cdylib::plugin("ta-plugin-postgres");
    ta_persistence::loader::load_plugin(&path, Some(POSTGRES_CLASS), vars)
        .map(|(_, manager)| manager)
}

/// The directory holding `initdb`, `postgres`, `pg_isready` and `psql`, if there is one.
pub fn bin_dir() -> Option<PathBuf> {
    let has_all = |dir: &Path| {
        ["initdb", "postgres", "pg_isready", "psql"]
            .iter()
            .all(|b| dir.join(b).is_file())
    };
    if let Some(dir) = std::env::var_os(BIN_VAR) {
        let dir = PathBuf::from(dir);
        return has_all(&dir).then_some(dir);
    }
    let mut versions: Vec<(u32, PathBuf)> = std::fs::read_dir("/usr/lib/postgresql")
        .into_iter()
        .flatten()
        .flatten()
        .filter_map(|e| {
            let version = e.file_name().to_str()?.parse::<u32>().ok()?;
            Some((version, e.path().join("bin")))
        })
        .filter(|(_, bin)| has_all(bin))
        .collect();
    versions.sort();
    if let Some((_, bin)) = versions.pop() {
        return Some(bin);
    }
    std::env::var_os("PATH").and_then(|paths| std::env::split_paths(&paths).find(|d| has_all(d)))
}

/// Whether this process runs as root (the owner of `/proc/self` is the effective user).
fn running_as_root() -> bool {
    std::fs::metadata("/proc/self").is_ok_and(|m| m.uid() == 0)
}

/// How a server is started.
#[derive(Debug, Clone, Default)]
pub struct ServerOptions {
    /// Serve TLS (with a CA and server certificate generated for the server).
    pub tls: bool,
    /// More `-c name=value` settings.
    pub settings: Vec<(String, String)>,
}

impl ServerOptions {
    /// Serving TLS.
    pub fn tls(mut self) -> Self {
        self.tls = true;
        self
    }

    /// With a server setting, such as `("shared_preload_libraries", "pg_stat_statements")`.
    pub fn setting(mut self, name: &str, value: &str) -> Self {
        self.settings.push((name.to_owned(), value.to_owned()));
        self
    }
}

/// A running Postgres server.
#[derive(Debug)]
pub struct PostgresServer {
    child: Option<Child>,
    bin: PathBuf,
    port: u16,
    dir: PathBuf,
    password: String,
    options: ServerOptions,
    as_postgres: bool,
}

fn scratch_dir() -> PathBuf {
    static NEXT: AtomicUsize = AtomicUsize::new(0);
    let n = NEXT.fetch_add(1, Ordering::Relaxed);
    let dir = std::env::temp_dir().join(format!("ta-pg-test-{}-{n}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).expect("a scratch directory for Postgres");
    dir
}

impl PostgresServer {
    /// Starts a server, or returns `None` (after a loud notice) when there are no
    /// Postgres binaries and `CI` is unset. Panics when `CI` is set and there are none.
    pub fn maybe_start() -> Option<Self> {
        Self::maybe_start_with(ServerOptions::default())
    }

    /// [`PostgresServer::maybe_start`] with options.
    pub fn maybe_start_with(options: ServerOptions) -> Option<Self> {
        if bin_dir().is_none() {
            if std::env::var_os("CI").is_some() {
                panic!("CI is set but there are no Postgres binaries: install them (apt-get install postgresql) or set {BIN_VAR}");
            }
            loud_notice(&format!(
                "SKIPPED: no Postgres binaries found (install postgresql or set {BIN_VAR}); the Postgres tests did not run"
            ));
            return None;
        }
        Some(Self::start_with(options))
    }

    /// Starts a server; panics if there are no binaries or it does not start.
    pub fn start_with(options: ServerOptions) -> Self {
        let bin = bin_dir()
            .unwrap_or_else(|| panic!("no Postgres binaries: install postgresql or set {BIN_VAR}"));
        let dir = scratch_dir();
        let as_postgres = running_as_root();
        let password = format!("ta-test-secret-{}", std::process::id());
        std::fs::write(dir.join("pwfile"), &password).expect("the password file");
        if options.tls {
            write_certificates(&dir);
        }
        let mut server = PostgresServer {
            child: None,
            bin,
            port: free_port(),
            dir,
            password,
            options,
            as_postgres,
        };
        server.init();
        if let Err(why) = server.launch() {
            panic!("{why}");
        }
        server
    }

    /// A command running `program` from the binaries' directory as the server's user.
    fn server_command(&self, program: &str) -> Command {
        let path = self.bin.join(program);
        if self.as_postgres {
            let mut cmd = Command::new("setpriv");
            cmd.args([
                "--reuid=postgres",
                "--regid=postgres",
                "--init-groups",
                "--",
            ])
            .arg(path);
            cmd
        } else {
            Command::new(path)
        }
    }

    fn init(&self) {
        if self.as_postgres {
            let key = self.dir.join("server.key");
            if key.exists() {
                let status = Command::new("chmod").arg("600").arg(&key).status();
                assert!(status.is_ok_and(|s| s.success()), "chmod of the TLS key");
            }
            let status = Command::new("chown")
                .args(["-R", "postgres:postgres"])
                .arg(&self.dir)
                .status();
            assert!(
                status.is_ok_and(|s| s.success()),
                "chown of {} to postgres",
                self.dir.display()
            );
        }
        let out = self
            .server_command("initdb")
            .arg("-D")
            .arg(self.data_dir())
            .args([
                "-U",
                SUPERUSER,
                "--auth-host=scram-sha-256",
                "--auth-local=trust",
            ])
            .args(["-E", "UTF8", "--locale=C", "--no-sync"])
            .arg(format!("--pwfile={}", self.dir.join("pwfile").display()))
            .output()
            .expect("initdb runs");
        assert!(
            out.status.success(),
            "initdb failed:\n{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
    }

    fn data_dir(&self) -> PathBuf {
        self.dir.join("data")
    }

    fn launch(&mut self) -> Result<(), String> {
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(self.dir.join("postgres.log"))
            .map_err(|e| format!("the server log: {e}"))?;
        let mut cmd = self.server_command("postgres");
        cmd.arg("-D")
            .arg(self.data_dir())
            .args(["-p", &self.port.to_string()])
            .args(["-c", "listen_addresses=127.0.0.1"])
            .arg("-c")
            .arg(format!("unix_socket_directories={}", self.dir.display()))
            // A test cluster: no fsync (a killed server still keeps what it committed,
            // since its writes reached the kernel), no durability against power loss.
            .args(["-c", "fsync=off", "-c", "max_connections=200"]);
        if self.options.tls {
            cmd.args(["-c", "ssl=on"])
                .arg("-c")
                .arg(format!(
                    "ssl_cert_file={}",
                    self.dir.join("server.crt").display()
                ))
                .arg("-c")
                .arg(format!(
                    "ssl_key_file={}",
                    self.dir.join("server.key").display()
                ));
        }
        for (name, value) in &self.options.settings {
            cmd.arg("-c").arg(format!("{name}={value}"));
        }
        let stderr = log.try_clone().map_err(|e| e.to_string())?;
        // Its own process group: killing the group kills the server and its backends.
        cmd.process_group(0)
            .stdin(Stdio::null())
            .stdout(Stdio::from(log))
            .stderr(Stdio::from(stderr));
        let mut child = cmd
            .spawn()
            .map_err(|e| format!("cannot start {}: {e}", self.bin.join("postgres").display()))?;
        let started = Instant::now();
        loop {
            if let Ok(Some(status)) = child.try_wait() {
                return Err(format!(
                    "postgres exited ({status}) before it was ready:\n{}",
                    self.log()
                ));
            }
            if self.is_ready() {
                break;
            }
            if started.elapsed() > READY_WITHIN {
                kill_group(&mut child);
                return Err(format!(
                    "postgres on port {} was not ready within {READY_WITHIN:?}:\n{}",
                    self.port,
                    self.log()
                ));
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        self.child = Some(child);
        Ok(())
    }

    fn is_ready(&self) -> bool {
        Command::new(self.bin.join("pg_isready"))
            .args([
                "-q",
                "-h",
                "127.0.0.1",
                "-t",
                "1",
                "-p",
                &self.port.to_string(),
            ])
            .status()
            .is_ok_and(|s| s.success())
    }

    /// The server's log so far.
    pub fn log(&self) -> String {
        std::fs::read_to_string(self.dir.join("postgres.log")).unwrap_or_default()
    }

    /// The port it listens on.
    pub fn port(&self) -> u16 {
        self.port
    }

    /// The superuser's password.
    pub fn password(&self) -> &str {
        &self.password
    }

    /// The binaries' directory (for `pgbench`).
    pub fn bin(&self) -> &Path {
        &self.bin
    }

    /// The CA certificate a TLS server's certificate is signed with.
    pub fn ca_cert(&self) -> PathBuf {
        self.dir.join("ca.crt")
    }

    /// Kills the server and all its processes (SIGKILL: no shutdown, no checkpoint).
    pub fn kill(&mut self) {
        if let Some(mut child) = self.child.take() {
            kill_group(&mut child);
        }
    }

    /// Starts a killed server again, on the same port, with the same data (the server
    /// recovers from its log).
    pub fn start_again(&mut self) {
        assert!(self.child.is_none(), "the server is still running");
        if let Err(why) = self.launch() {
            panic!("{why}");
        }
    }

    /// The `TA_PG_*` variables that reach database `database` of this server as the
    /// superuser.
    pub fn vars(&self, database: &str) -> BTreeMap<String, String> {
        let mut vars = BTreeMap::from([
            ("TA_PG_PORT".to_owned(), self.port.to_string()),
            ("TA_PG_DATABASE".to_owned(), database.to_owned()),
            ("TA_PG_USER".to_owned(), SUPERUSER.to_owned()),
            ("TA_PG_PASSWORD".to_owned(), self.password.clone()),
        ]);
        if self.options.tls {
            vars.insert("TA_PG_HOST".to_owned(), "localhost".to_owned());
            vars.insert("TA_PG_TLS".to_owned(), "required".to_owned());
            vars.insert(
                "TA_PG_CA_CERT".to_owned(),
                self.ca_cert().display().to_string(),
            );
        } else {
            vars.insert("TA_PG_HOST".to_owned(), "127.0.0.1".to_owned());
            vars.insert("TA_PG_TLS".to_owned(), "off".to_owned());
        }
        vars
    }

    /// [`vars`](Self::vars) with more variables.
    pub fn vars_with(&self, database: &str, extra: &[(&str, &str)]) -> BTreeMap<String, String> {
        let mut vars = self.vars(database);
        vars.extend(
            extra
                .iter()
                .map(|(k, v)| ((*k).to_owned(), (*v).to_owned())),
        );
        vars
    }

    /// A manager of the plugin library on a database, with more variables; panics if it
    /// cannot be constructed.
    pub fn plugin(&self, database: &str, extra: &[(&str, &str)]) -> ForeignManager {
        load_postgres_plugin(&self.vars_with(database, extra)).expect("the Postgres plugin loads")
    }

    /// Creates a new, empty database named after `name` and returns its name.
    pub fn database(&self, name: &str) -> String {
        static NEXT: AtomicUsize = AtomicUsize::new(0);
        let db = format!("{name}_{}", NEXT.fetch_add(1, Ordering::Relaxed));
        self.psql("postgres", &format!("CREATE DATABASE \"{db}\""));
        db
    }

    fn psql_command(&self, database: &str) -> Command {
        let mut cmd = Command::new(self.bin.join("psql"));
        cmd.args(["-X", "-q", "-A", "-t", "-v", "ON_ERROR_STOP=1"])
            .arg("-h")
            .arg(&self.dir)
            .args([
                "-p",
                &self.port.to_string(),
                "-U",
                SUPERUSER,
                "-d",
                database,
            ]);
        cmd
    }

    /// Runs SQL as the superuser; its output (unaligned, tuples only) or the error.
    pub fn try_psql(&self, database: &str, sql: &str) -> Result<String, String> {
        let out = self
            .psql_command(database)
            .arg("-c")
            .arg(sql)
            .output()
            .map_err(|e| format!("psql: {e}"))?;
        if out.status.success() {
            Ok(String::from_utf8_lossy(&out.stdout).trim().to_owned())
        } else {
            Err(String::from_utf8_lossy(&out.stderr).into_owned())
        }
    }

    /// Runs SQL as the superuser and returns its output; panics on an error.
    pub fn psql(&self, database: &str, sql: &str) -> String {
        self.try_psql(database, sql)
            .unwrap_or_else(|e| panic!("psql {sql:?} failed: {e}"))
    }

    /// Starts SQL in a `psql` of its own and returns at once (to hold a lock, say).
    pub fn spawn_psql(&self, database: &str, sql: &str) -> Child {
        self.psql_command(database)
            .arg("-c")
            .arg(sql)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("psql starts")
    }
}

impl Drop for PostgresServer {
    fn drop(&mut self) {
        self.kill();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// Kills a process group and waits until every process of it is gone (a new server
/// cannot start on the same data while an old backend still holds its shared memory).
fn kill_group(child: &mut Child) {
    let group = format!("-{}", child.id());
    let _ = Command::new("kill").args(["-KILL", "--", &group]).status();
    let _ = child.wait();
    let started = Instant::now();
    while started.elapsed() < Duration::from_secs(10) {
        let alive = Command::new("kill")
            .args(["-0", "--", &group])
            .stderr(Stdio::null())
            .status()
            .is_ok_and(|s| s.success());
        if !alive {
            return;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}
