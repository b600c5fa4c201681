//! `apply` and `create`: the resolved YAML streamed into `kubectl apply|create
//! -f -` with the user's extra arguments. kubectl's own stdout and stderr are
//! the user's; its exit status becomes ours.

use std::io::Write;
use std::path::Path;
use std::process::{Command, Stdio};

use anyhow::{Context, Result};

use crate::progress;

/// Runs `KUBECTL VERB -f - ARGS…` with `yaml` on its stdin and returns its
/// exit code (128 + N when it was killed by signal N, as shells report it).
pub fn pipe(kubectl: &Path, verb: &str, args: &[String], yaml: &str) -> Result<i32> {
    let mut command = Command::new(kubectl);
    command
        .arg(verb)
        .args(["-f", "-"])
        .args(args)
        .stdin(Stdio::piped());
    progress::verbose(format!("running {command:?}"));
    let mut child = command.spawn().map_err(|err| match err.kind() {
        std::io::ErrorKind::NotFound => anyhow::anyhow!(
            "cannot run `{}`: not found; install kubectl or name it with --kubectl PATH or KRUST_KUBECTL",
            kubectl.display()
        ),
        _ => anyhow::Error::new(err).context(format!("cannot run `{}`", kubectl.display())),
    })?;
    let mut stdin = child
        .stdin
        .take()
        .context("kubectl's stdin is not captured")?;
    match stdin.write_all(yaml.as_bytes()) {
        // kubectl stopped reading (e.g. a bad flag): its status says why.
        Err(err) if err.kind() == std::io::ErrorKind::BrokenPipe => {}
        other => other.with_context(|| format!("cannot write to `{}`", kubectl.display()))?,
    }
    drop(stdin);
    let status = child
        .wait()
        .with_context(|| format!("cannot wait for `{}`", kubectl.display()))?;
    Ok(exit_code(status))
}

fn exit_code(status: std::process::ExitStatus) -> i32 {
    use std::os::unix::process::ExitStatusExt;
    status
        .code()
        .or_else(|| status.signal().map(|signal| 128 + signal))
        .unwrap_or(1)
}
