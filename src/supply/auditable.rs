//! The dependency list embedded in every binary, in the format cargo-auditable
//! defines (read by `rust-audit-info`, `cargo audit bin`, syft, trivy and
//! grype): a JSON document of the packages one bin's build used — name,
//! version, kind of source, `runtime` or `build`, dependencies by index and
//! the root — zlib-compressed, in the non-allocated ELF section `.dep-v0`
//! of a relocatable object made for the target triple, which the link adds
//! to the bin. Non-allocated sections are outside the linkers' section
//! garbage collection, so no symbol has to be kept alive, and no linker
//! flag (whose spelling differs between rust-lld, zig and cc) is needed.
//!
//! Everything here is a pure function of the graph and the triple, so that
//! the same build embeds the same bytes.

use std::io::Write;

use anyhow::{Context, Result, bail};
use flate2::Compression;
use flate2::write::ZlibEncoder;
use object::write::{Object, StandardSegment};
use object::{Architecture, BinaryFormat, Endianness, FileFlags, SectionFlags, SectionKind, elf};
use serde::{Deserialize, Serialize};

use crate::plan::graph::{Role, TargetGraph};

/// The section scanners look for.
pub const SECTION: &str = ".dep-v0";

/// The format version cargo-auditable writes (`format` in the document).
const FORMAT: u32 = 1;

/// The document: packages sorted by (name, version, source), exactly one
/// of them the root.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct DependencyList {
    pub packages: Vec<ListedPackage>,
    #[serde(default)]
    pub format: u32,
}

/// One package of a [`DependencyList`]; fields at their default are left
/// out, as cargo-auditable does.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ListedPackage {
    pub name: String,
    pub version: String,
    /// `crates.io`, `git`, `local`, `registry`, or the kind of an other source.
    pub source: String,
    #[serde(default, skip_serializing_if = "Kind::is_runtime")]
    pub kind: Kind,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub dependencies: Vec<usize>,
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub root: bool,
}

/// Where a package's code ends up: linked into the binary, or run on the
/// build machine only (build scripts, proc macros and what they use).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Kind {
    #[default]
    Runtime,
    Build,
}

impl Kind {
    fn is_runtime(&self) -> bool {
        *self == Kind::Runtime
    }
}

/// The dependency list of the bin of package `root` (an index into
/// `graph.packages`): what its build uses, with cargo's roles.
pub fn dependency_list(graph: &TargetGraph, root: usize) -> DependencyList {
    let used = graph.build_use(root);
    // The graph is sorted by (name, version, source), so its order is the
    // document's; only the indices shrink to the packages used.
    let new_index: std::collections::BTreeMap<usize, usize> = used
        .packages
        .keys()
        .enumerate()
        .map(|(new, old)| (*old, new))
        .collect();
    let packages = used
        .packages
        .iter()
        .filter_map(|(index, role)| {
            let package = graph.packages.get(*index)?;
            let mut dependencies: Vec<usize> = package
                .dependencies
                .iter()
                .filter_map(|edge| new_index.get(&edge.package).copied())
                .collect();
            dependencies.sort_unstable();
            dependencies.dedup();
            Some(ListedPackage {
                name: package.name.clone(),
                version: package.version.clone(),
                source: source_kind(package.source.as_deref()),
                kind: match role {
                    Role::Runtime => Kind::Runtime,
                    Role::Build => Kind::Build,
                },
                dependencies,
                root: *index == root,
            })
        })
        .collect();
    DependencyList {
        packages,
        format: FORMAT,
    }
}

/// cargo-auditable's name for a cargo source id: `crates.io`, `local` for a
/// path package, else the id's kind (`git`, `registry`, …). A sparse index
/// is a registry too.
fn source_kind(source: Option<&str>) -> String {
    let Some(source) = source else {
        return "local".into();
    };
    if crate::plan::graph::is_crates_io(source) {
        return "crates.io".into();
    }
    match source.split_once('+').map_or(source, |(kind, _)| kind) {
        "sparse" => "registry".into(),
        kind => kind.into(),
    }
}

/// The section's content: the document as JSON, zlib-compressed.
pub fn section_data(list: &DependencyList) -> Result<Vec<u8>> {
    let json = serde_json::to_vec(list).context("cannot serialise the dependency list")?;
    let mut encoder = ZlibEncoder::new(Vec::new(), Compression::best());
    encoder
        .write_all(&json)
        .and_then(|()| encoder.finish())
        .context("cannot compress the dependency list")
}

/// How an ELF object for `triple` must look for its linker to take it:
/// machine, byte order (the class follows the machine) and the `e_flags`
/// that state the ABI, as LLVM writes them for that target (lld refuses to
/// mix float ABIs on ARM and RISC-V, and ELFv1 objects on ppc64).
fn elf_target(triple: &str) -> Result<(Architecture, Endianness, u32)> {
    let arch = triple.split('-').next().unwrap_or_default();
    Ok(match arch {
        "x86_64" => (Architecture::X86_64, Endianness::Little, 0),
        "aarch64" => (Architecture::Aarch64, Endianness::Little, 0),
        "i686" | "i586" => (Architecture::I386, Endianness::Little, 0),
        "s390x" => (Architecture::S390x, Endianness::Big, 0),
        "powerpc64le" => (Architecture::PowerPc64, Endianness::Little, 2),
        "riscv64gc" => (
            Architecture::Riscv64,
            Endianness::Little,
            elf::EF_RISCV_RVC | elf::EF_RISCV_FLOAT_ABI_DOUBLE,
        ),
        _ if arch.starts_with("arm") => {
            let float_abi = if triple.ends_with("hf") {
                elf::EF_ARM_ABI_FLOAT_HARD
            } else {
                elf::EF_ARM_ABI_FLOAT_SOFT
            };
            (
                Architecture::Arm,
                Endianness::Little,
                elf::EF_ARM_EABI_VER5 | float_abi,
            )
        }
        _ => bail!("cargo-krust cannot embed dependency data for target {triple}"),
    })
}

/// A relocatable ELF object for `triple` whose only content is `data` in a
/// non-allocated [`SECTION`].
pub fn object_file(triple: &str, data: &[u8]) -> Result<Vec<u8>> {
    let (architecture, endianness, e_flags) = elf_target(triple)?;
    let mut object = Object::new(BinaryFormat::Elf, architecture, endianness);
    object.flags = FileFlags::Elf {
        os_abi: elf::ELFOSABI_NONE,
        abi_version: 0,
        e_flags,
    };
    let section = object.add_section(
        object.segment_name(StandardSegment::Data).to_vec(),
        SECTION.as_bytes().to_vec(),
        SectionKind::ReadOnlyData,
    );
    // Not SHF_ALLOC: not loaded at run time, and never garbage-collected.
    object.section_mut(section).flags = SectionFlags::Elf { sh_flags: 0 };
    object.append_section_data(section, data, 1);
    object
        .write()
        .with_context(|| format!("cannot write the dependency data object for {triple}"))
}

/// The object for the bin of package `root`, built for `triple`.
pub fn object_for(graph: &TargetGraph, root: usize, triple: &str) -> Result<Vec<u8>> {
    object_file(triple, &section_data(&dependency_list(graph, root))?)
}

#[cfg(test)]
mod tests {
    use std::path::Path;

    use object::read::elf::{ElfFile, FileHeader};
    use object::{Endian as _, Object as _, ObjectSection as _};

    use super::*;
    use crate::plan::graph::tests::graph;

    /// crates.io as `cargo metadata` names it, whatever protocol fetched it.
    const CRATES_IO: &str = "registry+https://github.com/rust-lang/crates.io-index";

    fn app(graph: &TargetGraph) -> usize {
        graph.package_at(Path::new("/w/app/Cargo.toml")).unwrap()
    }

    fn decompress(data: &[u8]) -> DependencyList {
        let mut json = Vec::new();
        std::io::Read::read_to_end(&mut flate2::read::ZlibDecoder::new(data), &mut json).unwrap();
        serde_json::from_slice(&json).unwrap()
    }

    #[test]
    fn the_list_holds_what_the_bin_uses_in_cargo_auditable_terms() {
        let graph = graph();
        let list = dependency_list(&graph, app(&graph));
        let json = serde_json::to_value(&list).unwrap();
        let crates_io = "crates.io";
        assert_eq!(
            json,
            serde_json::json!({"format": 1, "packages": [
                {"name": "app", "version": "1.0.0", "source": "local",
                 "dependencies": [3, 4, 5, 6], "root": true},
                {"name": "cc", "version": "1.0.0", "source": crates_io, "kind": "build"},
                {"name": "deep-sys", "version": "1.0.0", "source": crates_io, "kind": "build"},
                {"name": "host-sys", "version": "1.0.0", "source": crates_io, "kind": "build"},
                {"name": "mac", "version": "1.0.0", "source": crates_io, "kind": "build",
                 "dependencies": [2]},
                {"name": "pure", "version": "1.0.0", "source": crates_io},
                {"name": "sys", "version": "1.0.0", "source": crates_io, "dependencies": [1]},
            ]})
        );
        // The dev-dependency `tester` is not there; indices are sorted and
        // point forward or back but never at a missing package.
        for package in &list.packages {
            assert!(
                package
                    .dependencies
                    .iter()
                    .all(|&d| d < list.packages.len())
            );
        }
        // Ordered by name, as the format's readers expect to binary-search.
        let names: Vec<&str> = list.packages.iter().map(|p| p.name.as_str()).collect();
        let mut sorted = names.clone();
        sorted.sort_unstable();
        assert_eq!(names, sorted);
        // A library's own list: itself alone, as the root.
        let pure = graph.package_at(Path::new("/w/pure/Cargo.toml")).unwrap();
        assert_eq!(dependency_list(&graph, pure).packages.len(), 1);
    }

    #[test]
    fn sources_are_named_as_cargo_auditable_names_them() {
        for (source, kind) in [
            (None, "local"),
            (Some(CRATES_IO), "crates.io"),
            (Some("sparse+https://index.crates.io/"), "crates.io"),
            (Some("git+https://github.com/a/b?branch=x#0123abc"), "git"),
            (Some("registry+https://my.registry/index"), "registry"),
            (Some("sparse+https://my.registry/index/"), "registry"),
            (Some("directory+/vendor"), "directory"),
        ] {
            assert_eq!(source_kind(source), kind, "{source:?}");
        }
    }

    #[test]
    fn the_section_decompresses_to_the_same_document_every_time() {
        let graph = graph();
        let list = dependency_list(&graph, app(&graph));
        let data = section_data(&list).unwrap();
        assert_eq!(&data[..1], [0x78], "a zlib stream");
        assert_eq!(decompress(&data), list);
        assert_eq!(section_data(&list).unwrap(), data);
    }

    /// (triple, ELF machine, 64-bit, big-endian, e_flags) for every triple
    /// cargo-krust builds.
    const TARGETS: &[(&str, u16, bool, bool, u32)] = &[
        ("x86_64-unknown-linux-musl", elf::EM_X86_64, true, false, 0),
        (
            "aarch64-unknown-linux-musl",
            elf::EM_AARCH64,
            true,
            false,
            0,
        ),
        (
            "armv7-unknown-linux-musleabihf",
            elf::EM_ARM,
            false,
            false,
            0x0500_0400,
        ),
        (
            "arm-unknown-linux-musleabihf",
            elf::EM_ARM,
            false,
            false,
            0x0500_0400,
        ),
        ("i686-unknown-linux-musl", elf::EM_386, false, false, 0),
        (
            "powerpc64le-unknown-linux-musl",
            elf::EM_PPC64,
            true,
            false,
            2,
        ),
        ("s390x-unknown-linux-musl", elf::EM_S390, true, true, 0),
        (
            "riscv64gc-unknown-linux-musl",
            elf::EM_RISCV,
            true,
            false,
            0x5,
        ),
    ];

    /// (e_machine, e_flags, big-endian, (.dep-v0 data, its flags)) of an ELF
    /// object of either class.
    fn read_elf<Elf: FileHeader<Endian = object::Endianness>>(
        bytes: &[u8],
    ) -> (u16, u32, bool, (Vec<u8>, SectionFlags)) {
        let file = ElfFile::<Elf>::parse(bytes).unwrap();
        let header = file.elf_header();
        let endian = file.endian();
        let section = file.section_by_name(SECTION).unwrap();
        (
            header.e_machine(endian),
            header.e_flags(endian),
            endian.is_big_endian(),
            (section.data().unwrap().to_vec(), section.flags()),
        )
    }

    #[test]
    fn an_object_for_every_supported_triple_carries_the_section() {
        let supported: Vec<&str> = crate::platform::Platform::all()
            .iter()
            .filter_map(|p| p.rust_target())
            .collect();
        let tested: Vec<&str> = TARGETS.iter().map(|t| t.0).collect();
        assert_eq!(supported, tested, "every supported triple has a row");

        let graph = graph();
        let list = dependency_list(&graph, app(&graph));
        for &(triple, machine, is_64, big_endian, e_flags) in TARGETS {
            let bytes = object_for(&graph, app(&graph), triple).unwrap();
            let read = if is_64 {
                read_elf::<elf::FileHeader64<_>>
            } else {
                read_elf::<elf::FileHeader32<_>>
            };
            let (header_machine, header_flags, is_big_endian, section) = read(&bytes);
            assert_eq!(is_big_endian, big_endian, "{triple}");
            assert_eq!(header_machine, machine, "{triple}");
            assert_eq!(header_flags, e_flags, "{triple}");
            assert_eq!(decompress(&section.0), list, "{triple}");
            assert_eq!(section.1, SectionFlags::Elf { sh_flags: 0 }, "{triple}");
            assert_eq!(
                object_for(&graph, app(&graph), triple).unwrap(),
                bytes,
                "{triple}: deterministic"
            );
        }
        let err = object_file("mips-unknown-linux-musl", b"x").unwrap_err();
        assert!(err.to_string().contains("mips-unknown-linux-musl"), "{err}");
    }
}
