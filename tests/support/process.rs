//! Running child processes with captured output and a hard timeout, so a hung
//! tool fails its test instead of hanging the suite. Only the child we started is
//! ever killed, by its own handle.

use std::io::Read;
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

/// Run `cmd` with stdin closed and stdout/stderr captured; kill it and return an
/// error after `timeout`.
pub fn output_with_timeout(cmd: &mut Command, timeout: Duration) -> std::io::Result<Output> {
    output_with_input(cmd, None, timeout)
}

/// [`output_with_timeout`], with `input` (when given) fed to the child's stdin
/// from a thread of its own and then closed.
pub fn output_with_input(
    cmd: &mut Command,
    input: Option<&[u8]>,
    timeout: Duration,
) -> std::io::Result<Output> {
    let mut child = cmd
        .stdin(if input.is_some() {
            Stdio::piped()
        } else {
            Stdio::null()
        })
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()?;
    if let (Some(mut pipe), Some(input)) = (child.stdin.take(), input) {
        let input = input.to_vec();
        // A child that stops reading early is its own business; its status tells.
        std::thread::spawn(move || {
            use std::io::Write;
            let _ = pipe.write_all(&input);
        });
    }
    let stdout = read_in_thread(child.stdout.take());
    let stderr = read_in_thread(child.stderr.take());
    let deadline = Instant::now() + timeout;
    let status = loop {
        if let Some(status) = child.try_wait()? {
            break status;
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            let _ = child.wait();
            let err = stderr.join().unwrap_or_default();
            return Err(std::io::Error::new(
                std::io::ErrorKind::TimedOut,
                format!(
                    "{cmd:?} still running after {timeout:?}; killed. stderr so far:\n{}",
                    String::from_utf8_lossy(&err)
                ),
            ));
        }
        std::thread::sleep(Duration::from_millis(20));
    };
    Ok(Output {
        status,
        stdout: stdout.join().unwrap_or_default(),
        stderr: stderr.join().unwrap_or_default(),
    })
}

/// Drain a pipe on its own thread (so a chatty child never blocks on a full pipe).
fn read_in_thread<R: Read + Send + 'static>(pipe: Option<R>) -> std::thread::JoinHandle<Vec<u8>> {
    std::thread::spawn(move || {
        let mut buf = Vec::new();
        if let Some(mut pipe) = pipe {
            let _ = pipe.read_to_end(&mut buf);
        }
        buf
    })
}

/// Run a helper tool and panic with its stderr unless it exits 0 within `timeout`.
pub fn run_ok(cmd: &mut Command, timeout: Duration, what: &str) -> Output {
    let output = output_with_timeout(cmd, timeout).unwrap_or_else(|e| panic!("{what}: {e}"));
    assert!(
        output.status.success(),
        "{what} failed ({}): {cmd:?}\nstdout:\n{}\nstderr:\n{}",
        output.status,
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
    output
}

/// Removes `path` once this test process has exited, by a small `sh`
/// watchdog: for the files of test doubles kept in statics, which are never
/// dropped.
pub fn remove_on_exit(path: &std::path::Path) {
    let spawned = Command::new("sh")
        .args([
            "-c",
            "while kill -0 \"$1\" 2>/dev/null; do sleep 0.5; done; rm -rf \"$2\"",
            "krust-cleanup",
        ])
        .arg(std::process::id().to_string())
        .arg(path)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn();
    if let Err(e) = spawned {
        panic!("cannot start sh to clean up {}: {e}", path.display());
    }
}
