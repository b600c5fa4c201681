//! Starting the cargo build before the plan has named it. `cargo metadata`
//! and a no-op `cargo build` take ~12 ms each, and the build needs the plan,
//! which needs the metadata. So the command of a single-triple build is
//! remembered (in the target dir's store) under the invocation that made it:
//! cargo-krust's arguments, working directory and manifest. The next run
//! with the same invocation starts that command at once, beside `cargo
//! metadata`, with its output held back.
//!
//! The early build is used only when the planned command is the same:
//! program, arguments, working directory and every variable set for it
//! (both inherit this process's environment), so it is the very process the
//! plan would start. Otherwise it is waited for, its output dropped, before
//! the planned build starts: killing cargo would leave its rustc processes
//! writing into the target directory beside the next build's. It is the build the last
//! run made, so after a settings change it is mostly fresh and short.

use std::ffi::{OsStr, OsString};
use std::io::Read;
use std::path::{Path, PathBuf};
use std::process::{Child, Command};

use serde::{Deserialize, Serialize};
use sha2::{Digest as _, Sha256};

use crate::progress;
use crate::store::BlobStore;

/// Record kind of remembered build commands.
const RECORDS: &str = "early-build";

/// The early build, as messages name it.
const EARLY: &str = "the cargo build started from the last run's command";

/// A command, as compared and remembered: only UTF-8 commands are.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
struct Recorded {
    program: String,
    args: Vec<String>,
    /// Variables set (`Some`) or removed (`None`) for the command, in the
    /// order they were given.
    envs: Vec<(String, Option<String>)>,
    dir: Option<String>,
}

impl Recorded {
    fn of(command: &Command) -> Option<Recorded> {
        let text = |s: &OsStr| s.to_str().map(String::from);
        // A removed variable is `None`; a set one that is not UTF-8 makes the
        // whole command `None`.
        let value = |v: Option<&OsStr>| match v {
            Some(v) => text(v).map(Some),
            None => Some(None),
        };
        Some(Recorded {
            program: text(command.get_program())?,
            args: command.get_args().map(text).collect::<Option<_>>()?,
            envs: command
                .get_envs()
                .map(|(key, v)| Some((text(key)?, value(v)?)))
                .collect::<Option<_>>()?,
            dir: value(command.get_current_dir().map(Path::as_os_str))?,
        })
    }

    fn command(&self) -> Command {
        let mut command = Command::new(&self.program);
        command.args(&self.args);
        for (key, value) in &self.envs {
            match value {
                Some(value) => command.env(key, value),
                None => command.env_remove(key),
            };
        }
        if let Some(dir) = &self.dir {
            command.current_dir(dir);
        }
        command
    }
}

/// This run's early build, if one was started, and the key its command is
/// remembered under.
#[derive(Debug, Default)]
pub struct Speculation {
    key: Option<String>,
    started: Option<Started>,
}

#[derive(Debug)]
struct Started {
    recorded: Recorded,
    child: Option<Child>,
}

impl Speculation {
    /// No early build, and nothing remembered (for callers whose plan does
    /// not come from their arguments alone, such as resolve's YAML).
    pub fn none() -> Speculation {
        Speculation::default()
    }

    /// Starts the build remembered for this invocation of cargo-krust on
    /// `manifest_path`, if there is one. `target_dir` is the `--target-dir`
    /// given, if any; otherwise the record is looked for where cargo puts
    /// target directories by default.
    pub fn start(manifest_path: &Path, target_dir: Option<&Path>) -> Speculation {
        let key = invocation_key(manifest_path);
        let started = stores(manifest_path, target_dir)
            .into_iter()
            .find_map(|store| store.read_record(RECORDS, &key))
            .and_then(|bytes| serde_json::from_slice::<Recorded>(&bytes).ok())
            .and_then(|recorded| {
                let mut command = recorded.command();
                let child = super::spawn(&mut command).ok()?;
                progress::trace(format!(
                    "started the last run's cargo build early: {command:?}"
                ));
                Some(Started {
                    recorded,
                    child: Some(child),
                })
            });
        Speculation {
            key: Some(key),
            started,
        }
    }

    /// The early build's process if it runs exactly `planned`, the one
    /// build of the plan. Otherwise the early build (if any) is waited for
    /// (a status line says so while it runs) and `None` says to start the
    /// planned builds anew.
    pub fn take(&mut self, planned: Option<&Command>) -> Option<Child> {
        let mut started = self.started.take()?;
        match planned {
            Some(command) if Recorded::of(command).as_ref() == Some(&started.recorded) => {
                progress::verbose(format!("running {command:?} (started before planning)"));
                started.child.take()
            }
            _ => {
                progress::verbose(format!("{EARLY} is not this plan's; it is not used"));
                None
            }
        }
    }

    /// Remembers `command` as this invocation's build, in the store under
    /// `target_dir`, unless it is remembered already. Best effort.
    pub fn remember(&self, target_dir: &Path, command: &Command) {
        let (Some(key), Some(recorded)) = (&self.key, Recorded::of(command)) else {
            return;
        };
        let Ok(store) = BlobStore::open(&target_dir.join("krust")) else {
            return;
        };
        let Ok(bytes) = serde_json::to_vec(&recorded) else {
            return;
        };
        if store.read_record(RECORDS, key).as_deref() != Some(&bytes[..]) {
            let _ = store.write_record(RECORDS, key, &bytes);
        }
    }
}

impl Drop for Started {
    /// An early build nobody took (the plan differs, or failed) runs to its
    /// end, its output read and dropped (a full pipe would stop it).
    fn drop(&mut self) {
        let Some(mut child) = self.child.take() else {
            return;
        };
        if matches!(child.try_wait(), Ok(None)) {
            // Silence would look like a hang while it compiles.
            progress::status("Waiting", format!("for {EARLY} to end"));
        }
        let drain = |pipe: Option<Box<dyn Read + Send>>| {
            std::thread::spawn(move || {
                if let Some(mut pipe) = pipe {
                    let _ = std::io::copy(&mut pipe, &mut std::io::sink());
                }
            })
        };
        let stdout = drain(
            child
                .stdout
                .take()
                .map(|p| Box::new(p) as Box<dyn Read + Send>),
        );
        let stderr = drain(
            child
                .stderr
                .take()
                .map(|p| Box::new(p) as Box<dyn Read + Send>),
        );
        let _ = child.wait();
        let _ = stdout.join();
        let _ = stderr.join();
    }
}

/// What identifies an invocation: cargo-krust's version and arguments, the
/// working directory and the manifest.
fn invocation_key(manifest_path: &Path) -> String {
    let mut hasher = Sha256::new();
    hasher.update(concat!(
        "krust-early-build/1/",
        env!("CARGO_PKG_VERSION"),
        "\n"
    ));
    let cwd = std::env::current_dir().unwrap_or_default();
    for part in [cwd.as_os_str(), manifest_path.as_os_str()] {
        hasher.update(part.as_encoded_bytes());
        hasher.update(b"\n");
    }
    let args: Vec<OsString> = std::env::args_os().skip(1).collect();
    for arg in &args {
        hasher.update(arg.as_encoded_bytes());
        hasher.update(b"\0");
    }
    hex::encode(hasher.finalize())
}

/// The stores a remembered build may be in: under the target directory
/// given, else under cargo's target directory variables, else under
/// `target/` beside the manifest or one of its parent directories (the
/// workspace root).
fn stores(manifest_path: &Path, target_dir: Option<&Path>) -> Vec<BlobStore> {
    let candidates: Vec<PathBuf> = match target_dir {
        Some(dir) => vec![dir.to_path_buf()],
        None => ["CARGO_TARGET_DIR", "CARGO_BUILD_TARGET_DIR"]
            .iter()
            .filter_map(std::env::var_os)
            .map(PathBuf::from)
            .chain(
                manifest_path
                    .ancestors()
                    .skip(1)
                    .map(|dir| dir.join("target")),
            )
            .collect(),
    };
    candidates
        .iter()
        .filter_map(|dir| BlobStore::existing(&dir.join("krust")))
        .collect()
}
