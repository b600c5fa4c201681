//! Getting each bin's dependency data ([`crate::supply::auditable`]) into
//! its link, whatever links it (rust-lld, zig, cc, build-std).
//!
//! Before cargo runs, the object of every bin is written to `<triple target
//! dir>/krust-auditable/<features>/<package>/<bin>.o` (only when its bytes changed, so
//! that its mtime does not make cargo relink): the dependency data, or
//! nothing at all for a bin that does not want it. cargo then
//! runs with cargo-krust itself as `RUSTC_WORKSPACE_WRAPPER` (see
//! [`configure`] for how it is named; cargo puts a
//! user's `RUSTC_WRAPPER`, e.g. sccache, in front of it; a user's own
//! workspace wrapper is run by it in turn): for the rustc invocation that
//! links a bin, the wrapper adds `-C link-arg=<object>` (unless the object
//! is empty) and, once rustc succeeded, names the object among the bin's
//! inputs in rustc's dep-info file, so that cargo relinks the bin when the
//! object changes (`auditable` switched, other dependencies). Every
//! other invocation is handed on unchanged (`exec`, no extra process).

use std::collections::{BTreeMap, BTreeSet};
use std::ffi::{OsStr, OsString};
use std::path::{Path, PathBuf};
use std::process::Command;

use anyhow::{Context, Result};

use super::Unit;
use crate::plan::graph::{Query, TargetGraph};
use crate::store::BlobStore;

/// Set on cargo's environment: the directory of the objects. Its presence
/// makes the cargo-krust executable act as the rustc wrapper.
pub const OBJECTS_DIR_VAR: &str = "KRUST_AUDITABLE_OBJECTS";
/// The workspace wrapper the user had set, which ours runs in turn.
const INNER_WRAPPER_VAR: &str = "KRUST_AUDITABLE_INNER_WRAPPER";

/// Where the objects of one triple build go, for one set of features
/// (`features_key`): a bin built with other features (another run's
/// `--features`) has other dependencies and another output of cargo's, so
/// its object must not replace this one, which would relink this one next
/// time.
pub fn objects_dir(target_dir: &Path, features_key: &str) -> PathBuf {
    target_dir.join("krust-auditable").join(features_key)
}

/// Names the features an invocation asks for (the command line's and each
/// package's configured ones): a short hash, `default` when none.
pub fn features_key(
    cargo: &crate::plan::CargoOptions,
    package_features: &std::collections::HashMap<String, Vec<String>>,
) -> String {
    use sha2::{Digest as _, Sha256};
    let packages: BTreeMap<&String, BTreeSet<&String>> = package_features
        .iter()
        .map(|(package, features)| (package, features.iter().collect()))
        .collect();
    let mut features: Vec<&String> = cargo.features.iter().collect();
    features.sort_unstable();
    if features.is_empty()
        && packages.is_empty()
        && !cargo.all_features
        && !cargo.no_default_features
    {
        return "default".into();
    }
    let described = format!(
        "{features:?} {packages:?} {} {}",
        cargo.all_features, cargo.no_default_features
    );
    hex::encode(&Sha256::digest(described.as_bytes())[..8])
}

fn object_path(objects_dir: &Path, package: &OsStr, bin: &OsStr) -> PathBuf {
    let mut file = bin.to_os_string();
    file.push(".o");
    objects_dir.join(package).join(file)
}

/// The object of each unit of `units` (all of one cargo invocation, whose
/// graph `query` resolves), for `triple`.
pub fn objects<'a>(
    query: &Query,
    units: impl IntoIterator<Item = &'a Unit>,
    records: &BlobStore,
) -> Result<BTreeMap<Unit, Vec<u8>>> {
    let mut units = units.into_iter().peekable();
    if units.peek().is_none() {
        return Ok(BTreeMap::new());
    }
    let graph = TargetGraph::load(query, records)?;
    let mut by_package: BTreeMap<&Path, Vec<u8>> = BTreeMap::new();
    let mut objects = BTreeMap::new();
    for unit in units {
        let object = match by_package.get(unit.manifest_path.as_path()) {
            Some(object) => object.clone(),
            None => {
                let root = graph.package_at(&unit.manifest_path).with_context(|| {
                    format!(
                        "package `{}` ({}) is not in cargo's dependency graph for {}",
                        unit.package,
                        unit.manifest_path.display(),
                        query.triple
                    )
                })?;
                let object = crate::supply::auditable::object_for(&graph, root, query.triple)
                    .with_context(|| format!("dependency data of package `{}`", unit.package))?;
                by_package.insert(&unit.manifest_path, object.clone());
                object
            }
        };
        objects.insert(unit.clone(), object);
    }
    Ok(objects)
}

/// Writes the object of every unit of `units` into `objects_dir` (in a
/// triple's target dir, held by this run): its dependency data when `wanted` has
/// it, else an empty file, which the wrapper leaves out of the link but
/// still names as an input, so that switching `auditable` either way
/// changes a file cargo watches.
pub fn stage(
    objects_dir: &Path,
    units: &BTreeSet<Unit>,
    wanted: &BTreeMap<Unit, Vec<u8>>,
) -> Result<()> {
    for unit in units {
        let path = object_path(objects_dir, unit.package.as_ref(), unit.bin.as_ref());
        let bytes = wanted.get(unit).map_or(&[][..], Vec::as_slice);
        let parent = crate::fsutil::parent_dir(&path);
        std::fs::create_dir_all(parent)
            .with_context(|| format!("cannot create {}", parent.display()))?;
        crate::fsutil::write_if_changed(&path, bytes)?;
    }
    Ok(())
}

/// The name cargo is given for the wrapper, found on `PATH`: cargo mixes
/// the workspace wrapper as written into the `-C metadata` of workspace
/// crates, so a path (which differs between installations) would change
/// the binaries.
const WRAPPER_NAME: &str = "krust-rustc-wrapper";

/// Makes `command` (a cargo build into `target_dir`, which this run holds)
/// run rustc through the wrapper, which finds the objects in `objects_dir`: a link to this executable under the
/// stable name, in a directory put first on `PATH`. Always, whether or not
/// a bin wants its data: cargo then sees the same wrapper from one run to
/// the next.
pub fn configure(
    command: &mut Command,
    cwd: &Path,
    target_dir: &Path,
    objects_dir: &Path,
) -> Result<()> {
    let exe = std::env::current_exe().context("cannot find the cargo-krust executable")?;
    let dir = target_dir.join("krust-auditable").join("bin");
    let link = dir.join(WRAPPER_NAME);
    if std::fs::read_link(&link).ok().as_ref() != Some(&exe) {
        let replace = || -> std::io::Result<()> {
            std::fs::create_dir_all(&dir)?;
            let staged = dir.join(format!(".{WRAPPER_NAME}.{}", std::process::id()));
            let _ = std::fs::remove_file(&staged);
            std::os::unix::fs::symlink(&exe, &staged)?;
            std::fs::rename(&staged, &link)
        };
        replace()
            .with_context(|| format!("cannot link {} to {}", link.display(), exe.display()))?;
    }
    // The PATH the command already has (a strategy may have set one), else ours.
    let path = command
        .get_envs()
        .find(|(name, _)| *name == "PATH")
        .and_then(|(_, value)| value.map(OsStr::to_os_string))
        .or_else(|| std::env::var_os("PATH"))
        .unwrap_or_default();
    let path =
        std::env::join_paths(std::iter::once(dir.clone()).chain(std::env::split_paths(&path)))
            .with_context(|| format!("cannot put {} on PATH", dir.display()))?;
    if let Some(inner) = super::cargo_config::build_wrapper(cwd, "rustc-workspace-wrapper") {
        command.env(INNER_WRAPPER_VAR, inner);
    }
    command
        .env("PATH", path)
        .env("RUSTC_WORKSPACE_WRAPPER", WRAPPER_NAME)
        .env(OBJECTS_DIR_VAR, objects_dir);
    Ok(())
}

/// The wrapper's entry: `Some(exit code)` when this process was started as
/// the rustc wrapper, `None` otherwise (the ordinary command line).
pub fn wrapper_main() -> Option<std::process::ExitCode> {
    let objects_dir = std::env::var_os(OBJECTS_DIR_VAR)?;
    // cargo-krust's own subcommand word: started by cargo as a subcommand
    // from a build that itself runs under the wrapper, not as the wrapper.
    let mut args = std::env::args_os().skip(1).peekable();
    if args.peek().is_some_and(|a| a == "krust") {
        return None;
    }
    Some(match run_wrapped(Path::new(&objects_dir), args.collect()) {
        Ok(code) => code,
        Err(err) => {
            eprintln!("error: cargo-krust (as rustc wrapper): {err:#}");
            std::process::ExitCode::FAILURE
        }
    })
}

fn run_wrapped(objects_dir: &Path, mut args: Vec<OsString>) -> Result<std::process::ExitCode> {
    use std::os::unix::process::CommandExt;
    // cargo passes the rustc to run first; a caching wrapper in front of us
    // may ask us as if we were rustc (`-vV`).
    let rustc = match args.first() {
        Some(first) if !first.to_string_lossy().starts_with('-') => args.remove(0),
        _ => OsString::from("rustc"),
    };
    let mut command = match std::env::var_os(INNER_WRAPPER_VAR) {
        Some(inner) => {
            let mut command = Command::new(inner);
            command.arg(&rustc);
            command
        }
        None => Command::new(&rustc),
    };
    command.args(&args);
    let object = linked_bin_object(objects_dir, &args)
        .and_then(|object| Some((std::fs::metadata(&object).ok()?.len(), object)));
    let Some((size, object)) = object else {
        let err = command.exec();
        return Err(err).with_context(|| format!("cannot run {}", rustc.to_string_lossy()));
    };
    if size > 0 {
        let mut link_arg = OsString::from("-Clink-arg=");
        link_arg.push(&object);
        command.arg(link_arg);
    }
    let status = command
        .status()
        .with_context(|| format!("cannot run {}", rustc.to_string_lossy()))?;
    if status.success()
        && let Some(dep_info) = dep_info_path(&args)
    {
        add_to_dep_info(&dep_info, &object)?;
    }
    Ok(std::process::ExitCode::from(
        status.code().unwrap_or(1).clamp(0, 255) as u8,
    ))
}

/// The object for the rustc invocation of `args` when it links a bin of a
/// package cargo-krust builds (cargo names it in the environment).
fn linked_bin_object(objects_dir: &Path, args: &[OsString]) -> Option<PathBuf> {
    let package = std::env::var_os("CARGO_PKG_NAME")?;
    let bin = std::env::var_os("CARGO_BIN_NAME")?;
    let links_bin = args
        .windows(2)
        .any(|pair| pair[0] == "--crate-type" && pair[1] == "bin")
        && !args.iter().any(|a| a == "--test");
    links_bin.then(|| object_path(objects_dir, &package, &bin))
}

/// The value of option `name` in rustc's `args`, given as `name value` or
/// `name=value`.
fn option_value<'a>(args: &'a [OsString], name: &str) -> Option<&'a OsStr> {
    let mut iter = args.iter();
    while let Some(arg) = iter.next() {
        if arg == name {
            return iter.next().map(OsString::as_os_str);
        }
        if let Some(value) = arg
            .to_str()
            .and_then(|a| a.strip_prefix(name)?.strip_prefix('='))
        {
            return Some(OsStr::new(value));
        }
    }
    None
}

/// Where rustc writes the dep-info cargo reads: `<out-dir>/<crate
/// name><extra filename>.d`, when the invocation emits one.
fn dep_info_path(args: &[OsString]) -> Option<PathBuf> {
    let emit = option_value(args, "--emit")?.to_str()?;
    if !emit.split(',').any(|kind| kind == "dep-info") {
        return None;
    }
    let out_dir = option_value(args, "--out-dir")?;
    let crate_name = option_value(args, "--crate-name")?.to_str()?;
    let extra = args
        .iter()
        .zip(args.iter().skip(1))
        .find_map(|(flag, value)| {
            let codegen = if flag == "-C" {
                value.to_str()?
            } else {
                flag.to_str()?.strip_prefix("-C")?
            };
            codegen.strip_prefix("extra-filename=")
        })
        .unwrap_or_default();
    Some(Path::new(out_dir).join(format!("{crate_name}{extra}.d")))
}

/// Adds `input` to the first rule of a Makefile-style dep-info file: the
/// rule of the crate's output, the one cargo reads its inputs from.
fn add_to_dep_info(dep_info: &Path, input: &Path) -> Result<()> {
    let text = std::fs::read_to_string(dep_info)
        .with_context(|| format!("cannot read {}", dep_info.display()))?;
    let escaped = input.to_string_lossy().replace(' ', "\\ ");
    let mut added = false;
    let lines: Vec<String> = text
        .lines()
        .map(|line| {
            if !added && !line.starts_with('#') && line.contains(": ") {
                added = true;
                format!("{line} {escaped}")
            } else {
                line.to_string()
            }
        })
        .collect();
    anyhow::ensure!(
        added,
        "{} names no output: cannot record {} as an input",
        dep_info.display(),
        input.display()
    );
    crate::fsutil::write_atomic(dep_info, format!("{}\n", lines.join("\n")).as_bytes())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn os(args: &[&str]) -> Vec<OsString> {
        args.iter().map(OsString::from).collect()
    }

    #[test]
    fn dep_info_is_found_from_rustc_arguments_in_both_spellings() {
        let args = os(&[
            "--crate-name",
            "hello",
            "--edition=2021",
            "src/main.rs",
            "--crate-type",
            "bin",
            "--emit=dep-info,link",
            "-C",
            "extra-filename=-0123abcd",
            "--out-dir",
            "/t/release/deps",
        ]);
        assert_eq!(
            dep_info_path(&args),
            Some(PathBuf::from("/t/release/deps/hello-0123abcd.d"))
        );
        let joined = os(&[
            "--crate-name=hello",
            "--emit",
            "dep-info,link",
            "-Cextra-filename=-ff",
            "--out-dir=/o",
        ]);
        assert_eq!(dep_info_path(&joined), Some(PathBuf::from("/o/hello-ff.d")));
        let no_dep_info = os(&["--crate-name", "x", "--emit=link", "--out-dir", "/o"]);
        assert_eq!(dep_info_path(&no_dep_info), None);
    }

    #[test]
    fn the_object_joins_the_first_rule_only() {
        let dir = tempfile::tempdir().unwrap();
        let dep_info = dir.path().join("hello-0123.d");
        std::fs::write(
            &dep_info,
            "/t/deps/hello-0123: src/main.rs\n\n/t/deps/hello-0123.d: src/main.rs\n\nsrc/main.rs:\n\n# env-dep:X=1\n",
        )
        .unwrap();
        add_to_dep_info(&dep_info, Path::new("/t/krust auditable/hello.o")).unwrap();
        assert_eq!(
            std::fs::read_to_string(&dep_info).unwrap(),
            "/t/deps/hello-0123: src/main.rs /t/krust\\ auditable/hello.o\n\n/t/deps/hello-0123.d: src/main.rs\n\nsrc/main.rs:\n\n# env-dep:X=1\n"
        );
        std::fs::write(&dep_info, "# nothing\n").unwrap();
        assert!(add_to_dep_info(&dep_info, Path::new("/o.o")).is_err());
    }

    #[test]
    fn each_feature_set_has_objects_of_its_own() {
        use std::collections::HashMap;
        let cargo = crate::plan::CargoOptions::default();
        assert_eq!(features_key(&cargo, &HashMap::new()), "default");
        let one = HashMap::from([("app".to_string(), vec!["b".into(), "a".into()])]);
        let same = HashMap::from([("app".to_string(), vec!["a".into(), "b".into()])]);
        assert_eq!(features_key(&cargo, &one), features_key(&cargo, &same));
        let other = HashMap::from([("app".to_string(), vec!["a".into()])]);
        assert_ne!(features_key(&cargo, &one), features_key(&cargo, &other));
        let all = crate::plan::CargoOptions {
            all_features: true,
            ..Default::default()
        };
        assert_ne!(features_key(&all, &HashMap::new()), "default");
    }

    #[test]
    fn staging_writes_changed_objects_only_and_empties_unwanted_ones() {
        let dir = tempfile::tempdir().unwrap();
        let unit = |bin: &str| Unit {
            manifest_path: PathBuf::from("/w/app/Cargo.toml"),
            package: "app".into(),
            bin: bin.into(),
        };
        let units = BTreeSet::from([unit("a"), unit("b")]);
        let path = |bin: &str| object_path(dir.path(), "app".as_ref(), bin.as_ref());
        let both = BTreeMap::from([(unit("a"), b"A".to_vec()), (unit("b"), b"B".to_vec())]);
        stage(dir.path(), &units, &both).unwrap();
        assert_eq!(std::fs::read(path("a")).unwrap(), b"A");
        let written = std::fs::metadata(path("a")).unwrap().modified().unwrap();
        std::thread::sleep(std::time::Duration::from_millis(20));
        let only_a = BTreeMap::from([(unit("a"), b"A".to_vec())]);
        stage(dir.path(), &units, &only_a).unwrap();
        assert_eq!(
            std::fs::metadata(path("a")).unwrap().modified().unwrap(),
            written,
            "unchanged bytes are not rewritten"
        );
        assert_eq!(std::fs::read(path("b")).unwrap(), b"");
    }
}
