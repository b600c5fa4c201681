//! `cargo krust run`: the image of one bin, built for the host's platform
//! only and loaded into podman by the `--local` sink, then run with
//! `podman run`, its stdin, stdout and stderr those of cargo-krust and its
//! exit status passed through.

use std::io::IsTerminal;
use std::process::ExitCode;

use anyhow::{Context, Result, bail};

use crate::platform::Platform;
use crate::publish::local::{INSTALL_PODMAN, podman_path};

/// The `--platform` values of `run`, checked: only the host's can run here.
/// Returns the one platform to build.
pub fn host_platform(requested: &[String]) -> Result<String> {
    let host = Platform::host();
    for text in requested {
        let platform = Platform::parse(text).context("--platform")?;
        if platform != host {
            bail!(
                "--platform {platform}: `run` runs the image on this machine, which is {host}; leave --platform out (or use `cargo krust build --platform {platform}`)"
            );
        }
    }
    Ok(host.to_string())
}

/// podman must be there before anything is built.
pub fn check_podman() -> Result<()> {
    match podman_path() {
        Ok(_) => Ok(()),
        Err(_) => bail!(
            "`run` runs the image with podman, which is not on PATH: install it with `{INSTALL_PODMAN}`"
        ),
    }
}

/// `podman run --rm -i --pull never [--tty] --runtime runc PODMAN_ARGS… REFERENCE ARGS…`,
/// attached to our stdin/stdout/stderr; its exit status.
pub fn podman_run(reference: &str, podman_args: &[String], args: &[String]) -> Result<ExitCode> {
    let mut command = std::process::Command::new(podman_path()?);
    // crun fails on the machines this is tested on; runc is what `--local`
    // images are checked with. `--pull never`: the image just loaded is the
    // one to run, never one fetched from elsewhere.
    command.args(["run", "--rm", "-i", "--pull", "never", "--runtime", "runc"]);
    if std::io::stdin().is_terminal() {
        command.arg("--tty");
    }
    command.args(podman_args).arg(reference).args(args);
    let status = command
        .status()
        .with_context(|| format!("cannot run `podman run {reference}`"))?;
    // A container stopped by a signal has no code: 128 + signal, as shells say.
    let code = status.code().unwrap_or_else(|| {
        std::os::unix::process::ExitStatusExt::signal(&status).map_or(1, |signal| 128 + signal)
    });
    Ok(ExitCode::from(u8::try_from(code).unwrap_or(1)))
}
