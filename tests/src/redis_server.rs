//! A real `redis-server` for tests: started on a free loopback port, killed on drop.
//!
//! The binary is `$TA_TEST_REDIS_SERVER`, or `redis-server` on the `PATH`. Without one,
//! [`RedisServer::maybe_start`] prints a loud notice and returns `None` so a developer
//! without Redis can still run the other tests; with `CI` set it panics instead, since a
//! CI run that silently skipped the Redis tests would prove nothing.
//!
//! Each server has its own scratch directory (its log, its append-only file when asked
//! for one, its TLS certificates), removed on drop.

use std::collections::BTreeMap;
use std::io::{Read as _, Write as _};
use std::net::{TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use ta_persistence_api::ffi::ForeignManager;
use ta_persistence_api::{AgentTask, AgentTaskItem, MultiModalItem, Role, Timestamp};

/// The class the Redis plugin library exports.
pub const REDIS_CLASS: &str = "RedisTaskPersistenceManager";

/// Builds the Redis plugin library (once per test binary) and constructs a manager of
/// it with these `TA_*` variables, through the host's loader.
pub fn load_redis_plugin(
    vars: &BTreeMap<String, String>,
) -> Result<ForeignManager, ta_persistence::loader::LoadError> {
    let path = crate::cdylib::plugin("ta-plugin-redis");
    ta_persistence::loader::load_plugin(&path, Some(REDIS_CLASS), vars).map(|(_, manager)| manager)
}

/// The Python original's key of a task document (the default prefix).
pub fn python_task_key(task_id: &str) -> String {
    format!("task_persistence:task:{task_id}")
}

/// The Python original's key of a request id's set (the default prefix).
pub fn python_index_key(request_id: &str) -> String {
    format!("task_persistence:request_index:{request_id}")
}

/// A task with one short user item per request id, created at `created` (ISO 8601).
pub fn sample_task(task_id: &str, created: &str, request_ids: &[&str]) -> AgentTask {
    let created = Timestamp::parse(created).expect("a valid timestamp");
    let mut task = AgentTask::new(task_id, "session", "user", created);
    task.items = request_ids
        .iter()
        .map(|rid| {
            AgentTaskItem::new(
                task_id,
                *rid,
                Role::User,
                MultiModalItem::text("hi"),
                created,
            )
        })
        .collect();
    task
}

/// The variable naming the `redis-server` binary to use.
pub const SERVER_VAR: &str = "TA_TEST_REDIS_SERVER";

/// How long a server may take to accept connections.
const READY_WITHIN: Duration = Duration::from_secs(10);

/// How a server is started.
#[derive(Debug, Clone, Default)]
pub struct ServerOptions {
    /// `--requirepass`.
    pub password: Option<String>,
    /// Serve TLS only (with a CA and server certificate generated for the server).
    pub tls: bool,
    /// More `redis-server` arguments, after the defaults (so they override them).
    pub extra_args: Vec<String>,
}

impl ServerOptions {
    /// With a password.
    pub fn password(mut self, password: &str) -> Self {
        self.password = Some(password.to_owned());
        self
    }

    /// Serving TLS only.
    pub fn tls(mut self) -> Self {
        self.tls = true;
        self
    }

    /// With more arguments, such as `["--appendonly", "yes"]`.
    pub fn args(mut self, args: &[&str]) -> Self {
        self.extra_args.extend(args.iter().map(|a| (*a).to_owned()));
        self
    }
}

/// A running `redis-server`.
#[derive(Debug)]
pub struct RedisServer {
    child: Option<Child>,
    binary: PathBuf,
    port: u16,
    dir: PathBuf,
    options: ServerOptions,
}

/// The `redis-server` binary, if there is one.
pub fn server_binary() -> Option<PathBuf> {
    if let Some(path) = std::env::var_os(SERVER_VAR) {
        // A path that names no file counts as no server (and says so through the
        // caller's notice), rather than a failure to start one.
        let path = PathBuf::from(path);
        return path.is_file().then_some(path);
    }
    std::env::var_os("PATH").and_then(|paths| {
        std::env::split_paths(&paths)
            .map(|dir| dir.join("redis-server"))
            .find(|p| p.is_file())
    })
}

/// Prints a notice that stands out in test output.
pub fn loud_notice(message: &str) {
    let bar = "!".repeat(78);
    // Straight to the stream: the test harness captures `eprintln!` of passing tests.
    let _ = writeln!(std::io::stderr(), "\n{bar}\n!! {message}\n{bar}\n");
}

/// A port nothing listens on right now.
pub fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("a free loopback port")
}

fn scratch_dir() -> PathBuf {
    static NEXT: AtomicUsize = AtomicUsize::new(0);
    let n = NEXT.fetch_add(1, Ordering::Relaxed);
    let dir = std::env::temp_dir().join(format!("ta-redis-test-{}-{n}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).expect("a scratch directory for redis-server");
    dir
}

impl RedisServer {
    /// Starts a plain server; panics if there is no `redis-server`.
    pub fn start() -> Self {
        Self::start_with(ServerOptions::default())
    }

    /// Starts a server with options; panics if there is no `redis-server`.
    pub fn start_with(options: ServerOptions) -> Self {
        let mut server = Self::prepare(options);
        if let Err(why) = server.launch() {
            panic!("{why}");
        }
        server
    }

    /// A server not started yet: its port, directory and certificates.
    fn prepare(options: ServerOptions) -> Self {
        let binary = server_binary()
            .unwrap_or_else(|| panic!("no redis-server: install it or set {SERVER_VAR}"));
        let dir = scratch_dir();
        if options.tls {
            write_certificates(&dir);
        }
        RedisServer {
            child: None,
            binary,
            port: free_port(),
            dir,
            options,
        }
    }

    /// Starts a plain server, or returns `None` (after a loud notice) when there is no
    /// `redis-server` and `CI` is unset. Panics when `CI` is set and there is none.
    pub fn maybe_start() -> Option<Self> {
        Self::maybe_start_with(ServerOptions::default())
    }

    /// [`RedisServer::maybe_start`] with options.
    pub fn maybe_start_with(options: ServerOptions) -> Option<Self> {
        if server_binary().is_none() {
            if std::env::var_os("CI").is_some() {
                panic!("CI is set but there is no redis-server: install it (apt-get install redis-server) or set {SERVER_VAR}");
            }
            loud_notice(&format!(
                "SKIPPED: no redis-server found (install it or set {SERVER_VAR}); the Redis tests did not run"
            ));
            return None;
        }
        if !options.tls {
            return Some(Self::start_with(options));
        }
        if !Self::can_make_certificates() {
            loud_notice(
                "SKIPPED: no openssl to make the TLS test certificates; the TLS test did not run",
            );
            return None;
        }
        let mut server = Self::prepare(options);
        match server.launch() {
            Ok(()) => Some(server),
            Err(why) if why.to_ascii_lowercase().contains("tls") => {
                loud_notice(&format!(
                    "SKIPPED: this redis-server does not serve TLS; the TLS test did not run:\n{why}"
                ));
                None
            }
            Err(why) => panic!("{why}"),
        }
    }

    /// Whether `openssl` (used to make the TLS test certificates) is available.
    pub fn can_make_certificates() -> bool {
        Command::new("openssl")
            .arg("version")
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status()
            .is_ok_and(|s| s.success())
    }

    fn launch(&mut self) -> Result<(), String> {
        let mut cmd = Command::new(&self.binary);
        cmd.args(["--bind", "127.0.0.1", "--save", "", "--appendonly", "no"])
            .arg("--dir")
            .arg(&self.dir)
            .arg("--logfile")
            .arg(self.dir.join("redis.log"));
        if self.options.tls {
            cmd.args(["--port", "0", "--tls-port", &self.port.to_string()])
                .arg("--tls-cert-file")
                .arg(self.dir.join("server.crt"))
                .arg("--tls-key-file")
                .arg(self.dir.join("server.key"))
                .arg("--tls-ca-cert-file")
                .arg(self.dir.join("ca.crt"))
                .args(["--tls-auth-clients", "no"]);
        } else {
            cmd.args(["--port", &self.port.to_string()]);
        }
        if let Some(password) = &self.options.password {
            cmd.args(["--requirepass", password]);
        }
        cmd.args(&self.options.extra_args)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped());
        let mut child = cmd
            .spawn()
            .map_err(|e| format!("cannot start {}: {e}", self.binary.display()))?;
        let started = Instant::now();
        loop {
            if let Ok(Some(status)) = child.try_wait() {
                let mut stderr = String::new();
                if let Some(mut err) = child.stderr.take() {
                    let _ = err.read_to_string(&mut stderr);
                }
                return Err(format!(
                    "redis-server exited ({status}) before it was ready:\n{stderr}\n{}",
                    self.log()
                ));
            }
            if self.is_ready() {
                break;
            }
            if started.elapsed() > READY_WITHIN {
                let _ = child.kill();
                let _ = child.wait();
                return Err(format!(
                    "redis-server on port {} was not ready within {READY_WITHIN:?}:\n{}",
                    self.port,
                    self.log()
                ));
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        self.child = Some(child);
        Ok(())
    }

    fn is_ready(&self) -> bool {
        let Ok(mut stream) = TcpStream::connect(("127.0.0.1", self.port)) else {
            return false;
        };
        if self.options.tls {
            // A TLS server cannot be asked in plain text; its log says when it is up.
            return self.log().contains("Ready to accept connections");
        }
        let _ = stream.set_read_timeout(Some(Duration::from_millis(500)));
        let mut reply = [0u8; 64];
        // Without the password the answer is an error, which still means "up".
        stream.write_all(b"PING\r\n").is_ok()
            && stream.read(&mut reply).is_ok_and(|n| {
                reply[..n].starts_with(b"+PONG") || reply[..n].starts_with(b"-NOAUTH")
            })
    }

    /// The server's log so far.
    pub fn log(&self) -> String {
        std::fs::read_to_string(self.dir.join("redis.log")).unwrap_or_default()
    }

    /// Whether it runs (it was not killed, or was started again).
    pub fn is_running(&self) -> bool {
        self.child.is_some()
    }

    /// The port it listens on (the TLS port for a TLS server).
    pub fn port(&self) -> u16 {
        self.port
    }

    /// Its scratch directory.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// The CA certificate a TLS server's certificate is signed with.
    pub fn ca_cert(&self) -> PathBuf {
        self.dir.join("ca.crt")
    }

    /// Kills the server (SIGKILL: no chance to save or say goodbye).
    pub fn kill(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    /// Starts a killed server again, on the same port, with the same options and data
    /// directory.
    pub fn start_again(&mut self) {
        assert!(self.child.is_none(), "the server is still running");
        if let Err(why) = self.launch() {
            panic!("{why}");
        }
    }

    /// Kills the server and starts it again on the same port.
    pub fn restart(&mut self) {
        self.kill();
        self.start_again();
    }

    /// A manager of the Redis plugin library on this server, with more variables (such
    /// as `("TA_REDIS_TTL", "1")`); panics if it cannot be constructed.
    pub fn plugin(&self, extra: &[(&str, &str)]) -> ForeignManager {
        load_redis_plugin(&self.vars_with(extra)).expect("the Redis plugin loads")
    }

    /// The `TA_REDIS_*` variables that reach this server, with more variables.
    pub fn vars_with(&self, extra: &[(&str, &str)]) -> BTreeMap<String, String> {
        let mut vars = self.vars();
        vars.extend(
            extra
                .iter()
                .map(|(k, v)| ((*k).to_owned(), (*v).to_owned())),
        );
        vars
    }

    /// The `TA_REDIS_*` variables that reach this server, with a key prefix.
    pub fn vars_with_prefix(&self, prefix: &str) -> BTreeMap<String, String> {
        let mut vars = self.vars();
        vars.insert("TA_REDIS_PREFIX".to_owned(), prefix.to_owned());
        vars
    }

    /// The `TA_REDIS_*` variables that reach this server (not the prefix or TTL).
    pub fn vars(&self) -> BTreeMap<String, String> {
        let mut vars = BTreeMap::from([
            (
                "TA_REDIS_HOST".to_owned(),
                if self.options.tls {
                    "localhost"
                } else {
                    "127.0.0.1"
                }
                .to_owned(),
            ),
            ("TA_REDIS_PORT".to_owned(), self.port.to_string()),
            ("TA_REDIS_SSL".to_owned(), self.options.tls.to_string()),
        ]);
        if let Some(password) = &self.options.password {
            vars.insert("TA_REDIS_PWD".to_owned(), password.clone());
        }
        if self.options.tls {
            vars.insert(
                "TA_REDIS_CA_CERT".to_owned(),
                self.ca_cert().display().to_string(),
            );
        }
        vars
    }

    /// A client for raw commands (plain servers only).
    pub fn client(&self) -> redis::Client {
        assert!(!self.options.tls, "raw commands are for plain servers");
        let settings = match &self.options.password {
            Some(password) => redis::RedisConnectionInfo::default().set_password(password),
            None => redis::RedisConnectionInfo::default(),
        };
        let info = redis::IntoConnectionInfo::into_connection_info(redis::ConnectionAddr::Tcp(
            "127.0.0.1".to_owned(),
            self.port,
        ))
        .expect("connection info")
        .set_redis_settings(settings);
        redis::Client::open(info).expect("a redis client")
    }

    /// A connection for raw commands (plain servers only).
    pub fn conn(&self) -> redis::Connection {
        self.client()
            .get_connection_with_timeout(Duration::from_secs(5))
            .expect("a connection to the test redis-server")
    }

    /// How many times each command ran since the last `CONFIG RESETSTAT`, by lowercase
    /// name (from `INFO commandstats`).
    pub fn command_calls(&self) -> BTreeMap<String, u64> {
        let info: String = redis::cmd("INFO")
            .arg("commandstats")
            .query(&mut self.conn())
            .expect("INFO commandstats");
        info.lines()
            .filter_map(|line| {
                let rest = line.strip_prefix("cmdstat_")?;
                let (name, stats) = rest.split_once(':')?;
                let calls = stats
                    .split(',')
                    .find_map(|kv| kv.strip_prefix("calls="))?
                    .parse()
                    .ok()?;
                Some((name.to_owned(), calls))
            })
            .collect()
    }

    /// `CONFIG RESETSTAT`: zeroes the command statistics.
    pub fn reset_stats(&self) {
        redis::cmd("CONFIG")
            .arg("RESETSTAT")
            .query::<()>(&mut self.conn())
            .expect("CONFIG RESETSTAT");
    }
}

impl Drop for RedisServer {
    fn drop(&mut self) {
        self.kill();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// A `MONITOR` connection: records every command the server runs, to count round trips.
#[derive(Debug)]
pub struct Monitor {
    lines: std::sync::Arc<std::sync::Mutex<Vec<String>>>,
    port: u16,
    marks: usize,
}

impl RedisServer {
    /// Starts recording the commands the server runs (plain servers without a password).
    pub fn monitor(&self) -> Monitor {
        assert!(
            !self.options.tls && self.options.password.is_none(),
            "monitor needs a plain, open server"
        );
        let mut stream =
            TcpStream::connect(("127.0.0.1", self.port)).expect("a monitor connection");
        stream.write_all(b"MONITOR\r\n").expect("MONITOR");
        let lines = std::sync::Arc::new(std::sync::Mutex::new(Vec::new()));
        let sink = std::sync::Arc::clone(&lines);
        std::thread::spawn(move || {
            use std::io::BufRead as _;
            for line in std::io::BufReader::new(stream).lines() {
                let Ok(line) = line else { break };
                sink.lock()
                    .unwrap_or_else(std::sync::PoisonError::into_inner)
                    .push(line);
            }
        });
        let mut monitor = Monitor {
            lines,
            port: self.port,
            marks: 0,
        };
        // Wait until the monitor is attached: it sees its own marker.
        let _ = monitor.client_commands();
        monitor
    }
}

impl Monitor {
    /// The commands clients sent since the last call (lowercase names, in order), not
    /// counting those that scripts ran or this monitor's own markers.
    pub fn client_commands(&mut self) -> Vec<String> {
        self.marks += 1;
        let marker = format!("ta-monitor-mark-{}", self.marks);
        let mut conn = TcpStream::connect(("127.0.0.1", self.port)).expect("a marker connection");
        conn.write_all(format!("ECHO {marker}\r\n").as_bytes())
            .expect("ECHO");
        let started = Instant::now();
        loop {
            {
                let mut lines = self
                    .lines
                    .lock()
                    .unwrap_or_else(std::sync::PoisonError::into_inner);
                if let Some(at) = lines.iter().position(|l| l.contains(&marker)) {
                    let seen: Vec<String> = lines.drain(..=at).collect();
                    return seen[..seen.len() - 1]
                        .iter()
                        .filter(|l| !l.contains(" lua] ") && !l.contains("ta-monitor-mark-"))
                        .filter_map(|l| l.split('"').nth(1).map(str::to_ascii_lowercase))
                        .collect();
                }
            }
            assert!(
                started.elapsed() < READY_WITHIN,
                "the monitor never saw its marker"
            );
            std::thread::sleep(Duration::from_millis(5));
        }
    }
}

/// Makes a CA and a server certificate for `localhost` and `127.0.0.1`, signed by it, in
/// `dir` (`ca.crt`, `server.crt`, `server.key`).
pub(crate) fn write_certificates(dir: &Path) {
    let run = |args: &[&str]| {
        let out = Command::new("openssl")
            .args(args)
            .current_dir(dir)
            .output()
            .expect("openssl (needed for the TLS test certificates)");
        assert!(
            out.status.success(),
            "openssl {args:?} failed:\n{}",
            String::from_utf8_lossy(&out.stderr)
        );
    };
    let ec = [
        "-newkey",
        "ec",
        "-pkeyopt",
        "ec_paramgen_curve:prime256v1",
        "-nodes",
    ];
    run(&[
        &["req", "-x509", "-new"][..],
        &ec[..],
        &[
            "-keyout",
            "ca.key",
            "-out",
            "ca.crt",
            "-days",
            "2",
            "-subj",
            "/CN=ta-persistence test CA",
            "-addext",
            "basicConstraints=critical,CA:TRUE",
            "-addext",
            "keyUsage=critical,keyCertSign,cRLSign",
        ][..],
    ]
    .concat());
    run(&[
        &["req", "-new"][..],
        &ec[..],
        &[
            "-keyout",
            "server.key",
            "-out",
            "server.csr",
            "-subj",
            "/CN=localhost",
        ][..],
    ]
    .concat());
    std::fs::write(
        dir.join("server.ext"),
        "subjectAltName=DNS:localhost,IP:127.0.0.1\nbasicConstraints=CA:FALSE\nkeyUsage=critical,digitalSignature\nextendedKeyUsage=serverAuth\n",
    )
    .expect("the certificate extensions file");
    run(&[
        "x509",
        "-req",
        "-in",
        "server.csr",
        "-CA",
        "ca.crt",
        "-CAkey",
        "ca.key",
        "-CAcreateserial",
        "-out",
        "server.crt",
        "-days",
        "2",
        "-extfile",
        "server.ext",
    ]);
}
