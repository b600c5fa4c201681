//! The toolchain strategy for one (package, target) pair: which linker, and
//! which C compiler for the C code of its build graph (SPEC §6).
//!
//! - A `linker` key in `[package.metadata.krust]` decides.
//! - Otherwise a linker the user configured for the target (environment,
//!   RUSTFLAGS, `.cargo/config.toml`) is left alone.
//! - Otherwise pure Rust links with rust-lld (shipped with rustup); a build
//!   graph with C code (or `-Zbuild-std`, which needs a musl libc from
//!   somewhere) uses zig through cargo-zigbuild, or on an x86_64 host for
//!   x86_64 Debian's musl-gcc; without either it fails before anything is
//!   built, with the command that installs zig.

use std::fmt;

use anyhow::{Result, bail};

use super::native::NativeCode;
use super::tools::Tools;
use crate::plan::LinkerChoice;

/// The install hint for a C cross compiler, exactly as the user should type it.
pub const ZIG_INSTALL_HINT: &str =
    "`pip install ziglang cargo-zigbuild` (or `cargo install cargo-zigbuild` plus zig)";

/// How a triple's binaries are built and linked.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Strategy {
    /// `cargo build` with `CARGO_TARGET_<T>_LINKER=rust-lld`.
    RustLld,
    /// `cargo build` with cargo-zigbuild's environment: zig compiles C and
    /// links, with its musl libc.
    Zig,
    /// `cargo build` with `CC_<triple>=musl-gcc`, linked by rust-lld.
    MuslGcc,
    /// `cargo build` exactly as cargo would run it: nothing set by cargo-krust.
    CargoDefaults,
}

impl fmt::Display for Strategy {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Strategy::RustLld => "rust-lld",
            Strategy::Zig => "zig (cargo-zigbuild)",
            Strategy::MuslGcc => "musl-gcc and rust-lld",
            Strategy::CargoDefaults => "cargo's defaults",
        })
    }
}

/// A strategy and the reason for it, for `-v`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Choice {
    pub strategy: Strategy,
    pub why: String,
}

/// Everything the choice for one (package, target) depends on.
#[derive(Debug, Clone)]
pub struct Inputs<'a> {
    pub package: &'a str,
    /// e.g. `linux/arm64`, for messages.
    pub platform: &'a str,
    pub triple: &'a str,
    /// The `linker` key, if set.
    pub configured: Option<LinkerChoice>,
    /// Where the user configured a linker for the triple, if they did.
    pub user_linker: Option<String>,
    pub native: &'a [NativeCode],
    pub build_std: bool,
}

/// Decides the strategy, or explains which tool to install.
pub fn choose(inputs: &Inputs, tools: &dyn Tools) -> Result<Choice> {
    let Inputs {
        package,
        platform,
        triple,
        ..
    } = *inputs;
    match inputs.configured {
        Some(LinkerChoice::Zig) => {
            if let Err(problem) = tools.zig() {
                bail!(
                    "package `{package}` sets linker = \"zig\" but {problem}: install it with {ZIG_INSTALL_HINT}"
                );
            }
            return Ok(choice(
                Strategy::Zig,
                "linker = \"zig\" is set in its metadata".into(),
            ));
        }
        Some(LinkerChoice::RustLld) => {
            return Ok(choice(
                Strategy::RustLld,
                "linker = \"rust-lld\" is set in its metadata".into(),
            ));
        }
        Some(LinkerChoice::Cc) => {
            return Ok(choice(
                Strategy::CargoDefaults,
                "linker = \"cc\" is set in its metadata".into(),
            ));
        }
        None => {}
    }
    if let Some(place) = &inputs.user_linker {
        return Ok(choice(
            Strategy::CargoDefaults,
            format!("you configured a linker for {triple} ({place})"),
        ));
    }

    let needs_c = if inputs.native.is_empty() {
        None
    } else {
        let list: Vec<String> = inputs.native.iter().map(ToString::to_string).collect();
        Some(format!("its build compiles C ({})", list.join("; ")))
    };
    let reason = match (needs_c, inputs.build_std) {
        (None, false) => return Ok(choice(Strategy::RustLld, "it is pure Rust".into())),
        (Some(c), _) => c,
        (None, true) => "it builds std from source, which needs a C toolchain with musl".into(),
    };
    let zig_problem = match tools.zig() {
        Ok(_) => return Ok(choice(Strategy::Zig, reason)),
        Err(problem) => problem,
    };
    if !inputs.build_std && tools.is_host_arch(triple) && tools.musl_gcc() {
        return Ok(choice(
            Strategy::MuslGcc,
            format!("{reason} and zig is not available ({zig_problem})"),
        ));
    }
    let musl_tools = if tools.is_host_arch(triple) && !inputs.build_std {
        ", or for this platform alone `apt-get install musl-tools`"
    } else {
        ""
    };
    bail!(
        "`{package}` for {platform} ({triple}): {reason}, and there is no C cross compiler for it ({zig_problem}). \
         Install zig with {ZIG_INSTALL_HINT}{musl_tools}; or set linker = \"cc\" in [package.metadata.krust] to use your own toolchain"
    )
}

fn choice(strategy: Strategy, why: String) -> Choice {
    Choice { strategy, why }
}

#[cfg(test)]
mod tests {
    use super::*;

    struct FakeTools {
        zig: bool,
        musl_gcc: bool,
    }

    impl Tools for FakeTools {
        fn zig(&self) -> Result<super::super::zig::ZigTools, String> {
            if self.zig {
                Ok(super::super::zig::ZigTools {
                    cargo_zigbuild: "/bin/cargo-zigbuild".into(),
                    zig: "/bin/zig".into(),
                })
            } else {
                Err("cargo-zigbuild is not on PATH".into())
            }
        }
        fn musl_gcc(&self) -> bool {
            self.musl_gcc
        }
        fn is_host_arch(&self, triple: &str) -> bool {
            triple.starts_with("x86_64-")
        }
    }

    const AMD64: &str = "x86_64-unknown-linux-musl";
    const ARM64: &str = "aarch64-unknown-linux-musl";

    fn inputs<'a>(triple: &'a str, native: &'a [NativeCode]) -> Inputs<'a> {
        Inputs {
            package: "app",
            platform: "linux/test",
            triple,
            configured: None,
            user_linker: None,
            native,
            build_std: false,
        }
    }

    fn zstd() -> Vec<NativeCode> {
        vec![NativeCode {
            package: "zstd-sys".into(),
            reason: "build script uses cc".into(),
        }]
    }

    #[test]
    fn table() {
        let c = zstd();
        let all = FakeTools {
            zig: true,
            musl_gcc: true,
        };
        let musl_only = FakeTools {
            zig: false,
            musl_gcc: true,
        };
        let none = FakeTools {
            zig: false,
            musl_gcc: false,
        };
        let cases: Vec<(Inputs, &FakeTools, Option<Strategy>)> = vec![
            (inputs(ARM64, &[]), &none, Some(Strategy::RustLld)),
            (inputs(ARM64, &c), &all, Some(Strategy::Zig)),
            (inputs(AMD64, &c), &all, Some(Strategy::Zig)),
            (inputs(AMD64, &c), &musl_only, Some(Strategy::MuslGcc)),
            (inputs(ARM64, &c), &musl_only, None),
            (inputs(AMD64, &c), &none, None),
            (
                Inputs {
                    build_std: true,
                    ..inputs(ARM64, &[])
                },
                &all,
                Some(Strategy::Zig),
            ),
            (
                Inputs {
                    build_std: true,
                    ..inputs(AMD64, &[])
                },
                &musl_only,
                None,
            ),
            (
                Inputs {
                    user_linker: Some("CARGO_TARGET_X_LINKER".into()),
                    ..inputs(ARM64, &c)
                },
                &none,
                Some(Strategy::CargoDefaults),
            ),
            (
                Inputs {
                    configured: Some(LinkerChoice::RustLld),
                    ..inputs(ARM64, &c)
                },
                &none,
                Some(Strategy::RustLld),
            ),
            (
                Inputs {
                    configured: Some(LinkerChoice::Cc),
                    ..inputs(ARM64, &c)
                },
                &none,
                Some(Strategy::CargoDefaults),
            ),
            (
                Inputs {
                    configured: Some(LinkerChoice::Zig),
                    ..inputs(ARM64, &[])
                },
                &all,
                Some(Strategy::Zig),
            ),
            (
                Inputs {
                    configured: Some(LinkerChoice::Zig),
                    ..inputs(ARM64, &[])
                },
                &musl_only,
                None,
            ),
        ];
        for (inputs, tools, expected) in cases {
            let got = choose(&inputs, tools).map(|c| c.strategy).ok();
            assert_eq!(got, expected, "{inputs:?}");
        }
    }

    #[test]
    fn missing_compiler_error_names_package_platform_and_hint() {
        let c = zstd();
        let err = choose(
            &inputs(ARM64, &c),
            &FakeTools {
                zig: false,
                musl_gcc: true,
            },
        )
        .unwrap_err()
        .to_string();
        assert!(err.contains("`app` for linux/test"), "{err}");
        assert!(err.contains("(zstd-sys: build script uses cc)"), "{err}");
        assert!(err.contains(ZIG_INSTALL_HINT), "{err}");
        assert!(!err.contains("musl-tools"), "{err}");
        let err = choose(
            &inputs(AMD64, &c),
            &FakeTools {
                zig: false,
                musl_gcc: false,
            },
        )
        .unwrap_err()
        .to_string();
        assert!(err.contains("apt-get install musl-tools"), "{err}");
    }

    #[test]
    fn reasons_explain_the_choice() {
        let c = zstd();
        let tools = FakeTools {
            zig: true,
            musl_gcc: false,
        };
        let chosen = choose(&inputs(ARM64, &c), &tools).unwrap();
        assert_eq!(
            chosen.why,
            "its build compiles C (zstd-sys: build script uses cc)"
        );
        assert_eq!(chosen.strategy.to_string(), "zig (cargo-zigbuild)");
    }
}
