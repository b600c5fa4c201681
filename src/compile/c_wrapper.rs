//! cargo-krust's C and C++ compilers for zig and musl-gcc builds: what
//! reproducible images and a shared compile cache need of the C a build
//! compiles.
//!
//! cargo-zigbuild makes a wrapper script of its own the target's `CC` and
//! `CXX`; the musl-gcc strategy makes musl-gcc `CC`. cargo-krust puts a
//! script of its own in front of each (never in front of a compiler the
//! user chose), which
//! - appends `-ffile-prefix-map` flags for the prefixes rustc's output is
//!   remapped from (the checkout, the target dir, cargo's and rustup's
//!   homes) to every compile, from an argument file named by an environment
//!   variable: C debug info and `__FILE__` are the same from any checkout,
//!   and a compile cache, which hashes the command line, sees the same
//!   command from every checkout (as rustc's flags, see [`super::rustc_shim`]);
//! - when the build's rustc wrapper is a compile cache that caches C too
//!   (sccache, cachepot, buildcache: the ones the cc crate itself puts in
//!   front of the C compiler), runs the compile through it unless the cache
//!   is what called it. Build scripts that run `$CC` themselves (configure
//!   and make, as tikv-jemalloc-sys does) then hit the cache as the cc
//!   crate's compiles do; without it a second machine compiles all of
//!   jemalloc again.

use std::ffi::OsString;
use std::path::{Path, PathBuf};
use std::process::Command;

use anyhow::Result;
use sha2::{Digest as _, Sha256};

/// The argument file the wrappers append.
const ARGFILE_VAR: &str = "KRUST_CC_ARGFILE";
/// The compile cache the wrappers run compiles through.
const LAUNCHER_VAR: &str = "KRUST_CC_LAUNCHER";

/// Compile caches that cache C as well as Rust, by the file stem of the
/// rustc wrapper (the cc crate's list).
const C_CACHING_WRAPPERS: &[&str] = &["sccache", "cachepot", "buildcache"];

/// The compiler variables cargo-zigbuild sets, per triple.
fn compiler_vars(triple: &str) -> [String; 2] {
    let triple = triple.replace('-', "_");
    [format!("CC_{triple}"), format!("CXX_{triple}")]
}

/// The wrapper in front of `compiler`. The cache is skipped when it is the
/// parent process (the cc crate put it in front already, or this script
/// did), and when this script started it (`KRUST_CC_LAUNCHED`, where
/// `/proc` cannot tell). The flags go to compiles and preprocessing only:
/// a link given them would warn, and configure scripts read warnings.
fn script(compiler: &Path) -> String {
    let compiler = compiler.display().to_string().replace('\'', r"'\''");
    format!(
        r#"#!/bin/sh
# cargo-krust's C compiler wrapper (src/compile/c_wrapper.rs in cargo-krust).
if [ -n "$KRUST_CC_LAUNCHER" ] && [ -z "$KRUST_CC_LAUNCHED" ]; then
    parent=
    {{ read -r parent < "/proc/$PPID/comm"; }} 2>/dev/null
    launcher=${{KRUST_CC_LAUNCHER##*/}}
    if [ "$parent" != "$(printf '%.15s' "$launcher")" ]; then
        KRUST_CC_LAUNCHED=1
        export KRUST_CC_LAUNCHED
        exec "$KRUST_CC_LAUNCHER" "$0" "$@"
    fi
fi
if [ -n "$KRUST_CC_ARGFILE" ] && [ -r "$KRUST_CC_ARGFILE" ]; then
    compiles=
    for arg in "$@"; do
        case $arg in -c|-E|-S) compiles=1 ;; esac
    done
    if [ -n "$compiles" ]; then
        while IFS= read -r flag; do set -- "$@" "$flag"; done < "$KRUST_CC_ARGFILE"
    fi
fi
exec '{compiler}' "$@"
"#
    )
}

/// Makes `command` (a build of `triple` whose C compilers cargo-krust or
/// cargo-zigbuild chose, by path) compile C through cargo-krust's wrappers,
/// with `prefix_map` remapped; `cwd` is where cargo runs (for the cargo
/// configuration).
pub fn apply(
    command: &mut Command,
    triple: &str,
    cwd: &Path,
    target_dir: &Path,
    prefix_map: &[(PathBuf, &str)],
) -> Result<()> {
    // Only the compilers chosen for the user, set on the command by path:
    // one the user chose is inherited instead.
    let chosen: Vec<(String, PathBuf)> = compiler_vars(triple)
        .into_iter()
        .filter_map(|var| {
            let (_, value) = command.get_envs().find(|(name, _)| *name == var.as_str())?;
            let path = PathBuf::from(value?);
            (path.is_absolute() && path.is_file()).then_some((var, path))
        })
        .collect();
    if chosen.is_empty() {
        return Ok(());
    }
    let argfile = target_dir.join("krust-cc.args");
    let flags: String = prefix_map
        .iter()
        .map(|(from, to)| format!("-ffile-prefix-map={}={to}\n", from.display()))
        .collect();
    crate::fsutil::write_if_changed(&argfile, flags.as_bytes())?;
    for (var, compiler) in chosen {
        command.env(var, install(&compiler)?);
    }
    command.env(ARGFILE_VAR, &argfile);
    match c_caching_launcher(cwd) {
        Some(launcher) => command.env(LAUNCHER_VAR, launcher),
        None => command.env_remove(LAUNCHER_VAR),
    };
    Ok(())
}

/// The build's rustc wrapper when it is a compile cache that caches C.
fn c_caching_launcher(cwd: &Path) -> Option<OsString> {
    let wrapper = super::cargo_config::build_wrapper(cwd, "rustc-wrapper")?;
    caches_c(Path::new(&wrapper)).then_some(wrapper)
}

fn caches_c(wrapper: &Path) -> bool {
    wrapper
        .file_stem()
        .and_then(|stem| stem.to_str())
        .is_some_and(|stem| C_CACHING_WRAPPERS.contains(&stem))
}

/// The wrapper for `compiler`, at a place that is the same for every
/// checkout (a compile cache hashes the compiler), named by its content so
/// that builds with other zig installations never share one.
fn install(compiler: &Path) -> Result<PathBuf> {
    let content = script(compiler);
    let name = compiler
        .file_name()
        .map(|n| n.to_string_lossy().trim_end_matches(".sh").to_owned())
        .unwrap_or_else(|| "cc".into());
    let hash = hex::encode(&Sha256::digest(content.as_bytes())[..6]);
    super::rustc_shim::install_script(&format!("krust-{name}-{hash}"), &content)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::PermissionsExt;

    /// A wrapper in front of a compiler that prints its arguments, run by
    /// `sh` (so its parent is never the launcher).
    fn run_wrapper(args: &[&str], env: &[(&str, &Path)]) -> String {
        let dir = tempfile::tempdir().unwrap();
        let echo = dir.path().join("it's cc");
        std::fs::write(&echo, "#!/bin/sh\nprintf '%s|' \"$@\"\n").unwrap();
        let wrapper = dir.path().join("wrapper");
        std::fs::write(&wrapper, script(&echo)).unwrap();
        for file in [&echo, &wrapper] {
            std::fs::set_permissions(file, std::fs::Permissions::from_mode(0o755)).unwrap();
        }
        let mut command = Command::new(&wrapper);
        command
            .args(args)
            .env_remove(ARGFILE_VAR)
            .env_remove(LAUNCHER_VAR)
            .env_remove("KRUST_CC_LAUNCHED");
        for (k, v) in env {
            command.env(k, v);
        }
        let out = command.output().unwrap();
        assert!(out.status.success(), "{out:?}");
        String::from_utf8(out.stdout)
            .unwrap()
            .replace(&wrapper.display().to_string(), "WRAPPER")
    }

    #[test]
    fn compiles_get_the_prefix_map_and_links_do_not() {
        let dir = tempfile::tempdir().unwrap();
        let args = dir.path().join("cc.args");
        std::fs::write(
            &args,
            "-ffile-prefix-map=/w=/krust/workspace\n-ffile-prefix-map=/a b=/x\n",
        )
        .unwrap();
        let env = [(ARGFILE_VAR, args.as_path())];
        assert_eq!(
            run_wrapper(&["-c", "a b.c", "-o", "a.o"], &env),
            "-c|a b.c|-o|a.o|-ffile-prefix-map=/w=/krust/workspace|-ffile-prefix-map=/a b=/x|"
        );
        assert_eq!(run_wrapper(&["a.o", "-o", "a"], &env), "a.o|-o|a|");
        assert_eq!(run_wrapper(&["-c", "a.c"], &[]), "-c|a.c|");
    }

    #[test]
    fn a_compile_not_started_by_the_cache_goes_through_it_once() {
        let dir = tempfile::tempdir().unwrap();
        // A stand-in cache that says it ran, then runs the compile as sccache does.
        let cache = dir.path().join("sccache");
        std::fs::write(&cache, "#!/bin/sh\nprintf 'cache|'\nexec \"$@\"\n").unwrap();
        std::fs::set_permissions(&cache, std::fs::Permissions::from_mode(0o755)).unwrap();
        let env = [(LAUNCHER_VAR, cache.as_path())];
        assert_eq!(run_wrapper(&["-c", "a.c"], &env), "cache|-c|a.c|");
    }

    #[test]
    fn only_caches_that_cache_c_are_put_in_front() {
        for (wrapper, expected) in [
            ("sccache", true),
            ("/opt/bin/sccache", true),
            ("/usr/bin/cachepot.exe", true),
            ("my-wrapper", false),
        ] {
            assert_eq!(caches_c(Path::new(wrapper)), expected, "{wrapper}");
        }
    }
}
