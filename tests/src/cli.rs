//! Running the `ta-persist` binary as a user would: a clean environment (only the `TA_*`
//! variables a test passes), logs off, and the output and exit code to inspect.

use std::io::Write as _;
use std::process::{Command, Output, Stdio};

use crate::cdylib::ta_persist;

/// A `ta-persist` command with these arguments and only the given `TA_*` variables set
/// (every inherited `TA_*` variable is removed, and `NO_COLOR`), and `RUST_LOG=off`.
pub fn command(args: &[&str], vars: &[(&str, &str)]) -> Command {
    let mut cmd = Command::new(ta_persist());
    cmd.args(args).env("RUST_LOG", "off").env_remove("NO_COLOR");
    for (name, _) in std::env::vars() {
        if name.starts_with("TA_") {
            cmd.env_remove(name);
        }
    }
    for (name, value) in vars {
        cmd.env(name, value);
    }
    cmd
}

/// Runs `ta-persist` with `stdin` as its standard input.
pub fn run(args: &[&str], vars: &[(&str, &str)], stdin: &[u8]) -> Output {
    run_command(command(args, vars), stdin)
}

/// Runs a prepared command with `stdin` as its standard input. The command may stop
/// reading early (a size limit): a broken pipe is expected then, and ignored.
pub fn run_command(mut cmd: Command, stdin: &[u8]) -> Output {
    let mut child = cmd
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("ta-persist starts");
    let mut input = child.stdin.take().expect("a stdin pipe");
    let _ = input.write_all(stdin);
    drop(input);
    child.wait_with_output().expect("ta-persist runs")
}

/// The exit code; a death by signal fails the test with the signal named.
#[track_caller]
pub fn code(out: &Output) -> i32 {
    match out.status.code() {
        Some(code) => code,
        None => panic!(
            "ta-persist was killed by a signal: {:?}\n{}",
            out.status,
            text(out)
        ),
    }
}

/// Standard output, as text.
pub fn stdout(out: &Output) -> String {
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// Standard error, as text.
pub fn stderr(out: &Output) -> String {
    String::from_utf8_lossy(&out.stderr).into_owned()
}

/// Standard output then standard error, as text.
pub fn text(out: &Output) -> String {
    format!("{}{}", stdout(out), stderr(out))
}
