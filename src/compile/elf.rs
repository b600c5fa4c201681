//! Checks a built executable before it goes into an image: an ELF file for
//! the platform's architecture (class, byte order and machine of the target
//! triple) that is statically linked — no program interpreter and no needed
//! shared library (static-pie, which has a dynamic section of its own
//! relocations, is fine). A user's linker or rustflags can produce anything
//! else without cargo complaining, and the image would not start. Only the
//! ELF header, the program headers and the dynamic section are read.

use std::fs::File;
use std::os::unix::fs::FileExt;
use std::path::Path;

use anyhow::{Context, Result, bail};

/// What the executables of a triple must be.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Kind {
    is_64bit: bool,
    little_endian: bool,
    machine: u16,
}

impl Kind {
    /// The ELF kind of a target triple, by its architecture.
    fn of_triple(triple: &str) -> Option<Kind> {
        let (is_64bit, little_endian, machine) = match triple.split('-').next()? {
            "x86_64" => (true, true, 62),
            "aarch64" => (true, true, 183),
            "armv7" | "arm" => (false, true, 40),
            "i686" => (false, true, 3),
            "powerpc64le" => (true, true, 21),
            "s390x" => (true, false, 22),
            "riscv64gc" => (true, true, 243),
            _ => return None,
        };
        Some(Kind {
            is_64bit,
            little_endian,
            machine,
        })
    }
}

impl std::fmt::Display for Kind {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let machine = match self.machine {
            62 => "x86-64".to_string(),
            183 => "AArch64".to_string(),
            40 => "ARM".to_string(),
            3 => "x86 (i386)".to_string(),
            21 => "PowerPC64".to_string(),
            22 => "S/390".to_string(),
            243 => "RISC-V".to_string(),
            other => format!("machine {other}"),
        };
        let bits = if self.is_64bit { 64 } else { 32 };
        let order = if self.little_endian { "little" } else { "big" };
        write!(f, "{machine} ({bits}-bit, {order}-endian)")
    }
}

/// `p_type` of the program header naming the program interpreter.
const PT_INTERP: u32 = 3;
/// `p_type` of the dynamic section's program header.
const PT_DYNAMIC: u32 = 2;
/// `p_type` of a loaded segment.
const PT_LOAD: u32 = 1;
/// Dynamic tags: end, a needed library, the string table.
const DT_NULL: u64 = 0;
const DT_NEEDED: u64 = 1;
const DT_STRTAB: u64 = 5;

/// Fails unless `path` is a static ELF executable for `triple`, saying what
/// it is instead and what usually causes that.
pub fn check_static_executable(path: &Path, triple: &str) -> Result<()> {
    let Some(expected) = Kind::of_triple(triple) else {
        return Ok(());
    };
    let file = File::open(path).with_context(|| format!("cannot read {}", path.display()))?;
    let elf = Elf::read(&file).with_context(|| format!("cannot read {}", path.display()))?;
    let Some(elf) = elf else {
        bail!(
            "{} is not an ELF executable; a linker setting (target.{triple}.linker, CARGO_TARGET_*_LINKER or -C linker= in RUSTFLAGS) may produce something else",
            path.display()
        );
    };
    if elf.kind != expected {
        bail!(
            "{} is an executable for {}, not {expected}; a linker setting (target.{triple}.linker, CARGO_TARGET_*_LINKER or -C linker= in RUSTFLAGS) links for another architecture",
            path.display(),
            elf.kind
        );
    }
    let linked = elf.linking(&file)?;
    if linked.interpreter.is_some() || !linked.needed.is_empty() {
        let mut needs: Vec<String> = Vec::new();
        if let Some(interpreter) = &linked.interpreter {
            needs.push(format!("the program interpreter {interpreter}"));
        }
        if !linked.needed.is_empty() {
            needs.push(linked.needed.join(", "));
        }
        bail!(
            "{} is dynamically linked (it needs {}), but an image holds it alone; likely causes: `-C target-feature=-crt-static` in RUSTFLAGS or .cargo/config.toml, or a linker for {triple} that links against this machine's libc",
            path.display(),
            needs.join("; ")
        );
    }
    Ok(())
}

/// The parts of an ELF header this check reads.
struct Elf {
    kind: Kind,
    /// (type, offset, virtual address, file size) of each program header.
    segments: Vec<Segment>,
}

#[derive(Debug, Clone, Copy)]
struct Segment {
    kind: u32,
    offset: u64,
    address: u64,
    size: u64,
}

/// How the executable is linked.
struct Linking {
    interpreter: Option<String>,
    needed: Vec<String>,
}

/// Reads integers of one byte order and word size out of a buffer, `None`
/// past its end.
struct Fields<'b> {
    bytes: &'b [u8],
    little_endian: bool,
}

impl Fields<'_> {
    fn take<const N: usize>(&self, at: u64) -> Option<[u8; N]> {
        let start = usize::try_from(at).ok()?;
        let mut array: [u8; N] = self
            .bytes
            .get(start..start.checked_add(N)?)?
            .try_into()
            .ok()?;
        if !self.little_endian {
            array.reverse();
        }
        Some(array)
    }
    fn u16(&self, at: u64) -> Option<u16> {
        self.take(at).map(u16::from_le_bytes)
    }
    fn u32(&self, at: u64) -> Option<u32> {
        self.take(at).map(u32::from_le_bytes)
    }
    fn u64(&self, at: u64) -> Option<u64> {
        self.take(at).map(u64::from_le_bytes)
    }
    /// A word: 8 bytes in a 64-bit file, 4 in a 32-bit one.
    fn word(&self, at: u64, is_64bit: bool) -> Option<u64> {
        if is_64bit {
            self.u64(at)
        } else {
            self.u32(at).map(u64::from)
        }
    }
}

/// Program headers read at most (real executables have about ten).
const MAX_SEGMENTS: u64 = 4096;

impl Elf {
    /// The header and program headers, or `None` when this is no ELF file.
    fn read(file: &File) -> Result<Option<Elf>> {
        let header = read_at(file, 0, 64)?;
        if header.len() < 52 || !header.starts_with(b"\x7fELF") {
            return Ok(None);
        }
        let (is_64bit, little_endian) = match (header[4], header[5]) {
            (class @ (1 | 2), data @ (1 | 2)) => (class == 2, data == 1),
            _ => return Ok(None),
        };
        let fields = Fields {
            bytes: &header,
            little_endian,
        };
        let corrupt = || anyhow::anyhow!("its ELF header is truncated");
        let machine = fields.u16(18).ok_or_else(corrupt)?;
        let (table, entry_size, count) = if is_64bit {
            (fields.u64(32), fields.u16(54), fields.u16(56))
        } else {
            (
                fields.u32(28).map(u64::from),
                fields.u16(42),
                fields.u16(44),
            )
        };
        let (table, entry_size, count) = (
            table.ok_or_else(corrupt)?,
            u64::from(entry_size.ok_or_else(corrupt)?),
            u64::from(count.ok_or_else(corrupt)?).min(MAX_SEGMENTS),
        );
        let headers = read_at(file, table, entry_size * count)?;
        let fields = Fields {
            bytes: &headers,
            little_endian,
        };
        let mut segments = Vec::new();
        for n in 0..count {
            let at = n * entry_size;
            // Offsets of p_offset, p_vaddr and p_filesz in each layout.
            let (offset, address, size) = if is_64bit {
                (at + 8, at + 16, at + 32)
            } else {
                (at + 4, at + 8, at + 16)
            };
            let segment = (|| {
                Some(Segment {
                    kind: fields.u32(at)?,
                    offset: fields.word(offset, is_64bit)?,
                    address: fields.word(address, is_64bit)?,
                    size: fields.word(size, is_64bit)?,
                })
            })();
            segments
                .push(segment.ok_or_else(|| anyhow::anyhow!("its program headers are truncated"))?);
        }
        Ok(Some(Elf {
            kind: Kind {
                is_64bit,
                little_endian,
                machine,
            },
            segments,
        }))
    }

    /// The interpreter and the needed libraries.
    fn linking(&self, file: &File) -> Result<Linking> {
        let interpreter = match self.segments.iter().find(|s| s.kind == PT_INTERP) {
            Some(segment) => {
                let bytes = read_at(file, segment.offset, segment.size.min(4096))?;
                Some(c_string(&bytes))
            }
            None => None,
        };
        let mut needed = Vec::new();
        if let Some(dynamic) = self.segments.iter().find(|s| s.kind == PT_DYNAMIC) {
            let bytes = read_at(file, dynamic.offset, dynamic.size.min(1 << 20))?;
            let fields = Fields {
                bytes: &bytes,
                little_endian: self.kind.little_endian,
            };
            let word = if self.kind.is_64bit { 8 } else { 4 };
            let mut names = Vec::new();
            let mut strings = None;
            let mut at = 0;
            while let (Some(tag), Some(value)) = (
                fields.word(at, self.kind.is_64bit),
                fields.word(at + word, self.kind.is_64bit),
            ) {
                match tag {
                    DT_NULL => break,
                    DT_NEEDED => names.push(value),
                    DT_STRTAB => strings = Some(value),
                    _ => {}
                }
                at += 2 * word;
            }
            let strings = strings.and_then(|address| self.file_offset(address));
            for name in names {
                let text = match strings {
                    Some(table) => c_string(&read_at(file, table.saturating_add(name), 256)?),
                    None => String::new(),
                };
                needed.push(if text.is_empty() {
                    "a shared library".to_string()
                } else {
                    text
                });
            }
        }
        Ok(Linking {
            interpreter,
            needed,
        })
    }

    /// Where a virtual address of a loaded segment is in the file.
    fn file_offset(&self, address: u64) -> Option<u64> {
        self.segments
            .iter()
            .filter(|s| s.kind == PT_LOAD)
            .find(|s| address >= s.address && address - s.address < s.size)
            .and_then(|s| s.offset.checked_add(address - s.address))
    }
}

/// Up to `len` bytes at `offset` (fewer at the end of the file).
fn read_at(file: &File, offset: u64, len: u64) -> Result<Vec<u8>> {
    let mut buffer = vec![0; usize::try_from(len.min(1 << 24)).unwrap_or(0)];
    let mut filled = 0;
    while filled < buffer.len() {
        let read = file
            .read_at(&mut buffer[filled..], offset.saturating_add(filled as u64))
            .context("cannot read the executable")?;
        if read == 0 {
            break;
        }
        filled += read;
    }
    buffer.truncate(filled);
    Ok(buffer)
}

/// The text up to the first NUL.
fn c_string(bytes: &[u8]) -> String {
    let end = bytes.iter().position(|&b| b == 0).unwrap_or(bytes.len());
    String::from_utf8_lossy(&bytes[..end]).into_owned()
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A minimal ELF image: header, program headers, then `tail`.
    fn elf(kind: Kind, segments: &[Segment], tail: &[u8]) -> Vec<u8> {
        let mut out = Vec::new();
        let put = |out: &mut Vec<u8>, value: u64, size: usize| {
            let bytes = value.to_le_bytes();
            let mut field = bytes[..size].to_vec();
            if !kind.little_endian {
                field.reverse();
            }
            out.extend(field);
        };
        let word = if kind.is_64bit { 8 } else { 4 };
        out.extend(b"\x7fELF");
        out.push(if kind.is_64bit { 2 } else { 1 });
        out.push(if kind.little_endian { 1 } else { 2 });
        out.extend([1; 1]);
        out.resize(16, 0);
        put(&mut out, 3, 2); // e_type: DYN
        put(&mut out, kind.machine.into(), 2);
        put(&mut out, 1, 4); // e_version
        put(&mut out, 0, word); // e_entry
        let header_size = if kind.is_64bit { 64 } else { 52 };
        let entry_size = if kind.is_64bit { 56 } else { 32 };
        put(&mut out, header_size, word); // e_phoff
        put(&mut out, 0, word); // e_shoff
        put(&mut out, 0, 4); // e_flags
        put(&mut out, header_size, 2); // e_ehsize
        put(&mut out, entry_size, 2); // e_phentsize
        put(&mut out, segments.len() as u64, 2); // e_phnum
        out.resize(header_size as usize, 0);
        for segment in segments {
            put(&mut out, segment.kind.into(), 4);
            // p_flags comes second in 64-bit headers, seventh in 32-bit ones.
            if kind.is_64bit {
                put(&mut out, 0, 4);
            }
            let (offset, address, size) = (segment.offset, segment.address, segment.size);
            for value in [offset, address, address, size, size] {
                put(&mut out, value, word);
            }
            if !kind.is_64bit {
                put(&mut out, 0, 4);
            }
            put(&mut out, 0, word); // p_align
        }
        out.extend(tail);
        out
    }

    fn check(bytes: &[u8], triple: &str) -> Result<()> {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("exe");
        std::fs::write(&path, bytes).unwrap();
        check_static_executable(&path, triple)
    }

    const AMD64: &str = "x86_64-unknown-linux-musl";

    #[test]
    fn static_executables_of_every_platform_pass() {
        for platform in crate::platform::Platform::all() {
            let triple = platform.rust_target().unwrap();
            let kind = Kind::of_triple(triple).unwrap();
            check(&elf(kind, &[], &[]), triple).unwrap();
        }
        // The host's own test binary is no static musl binary, but it is
        // an ELF file this reader must parse.
        let me = std::env::current_exe().unwrap();
        let host = format!("{}-unknown-linux-musl", std::env::consts::ARCH);
        let err = check_static_executable(&me, &host).unwrap_err().to_string();
        assert!(err.contains("dynamically linked"), "{err}");
    }

    #[test]
    fn other_architectures_and_non_elf_files_are_named() {
        let arm64 = Kind::of_triple("aarch64-unknown-linux-musl").unwrap();
        let err = check(&elf(arm64, &[], &[]), AMD64).unwrap_err().to_string();
        assert!(
            err.contains("an executable for AArch64 (64-bit, little-endian), not x86-64 (64-bit, little-endian)"),
            "{err}"
        );
        let s390x = Kind::of_triple("s390x-unknown-linux-musl").unwrap();
        let err = check(&elf(s390x, &[], &[]), "powerpc64le-unknown-linux-musl")
            .unwrap_err()
            .to_string();
        assert!(err.contains("S/390 (64-bit, big-endian)"), "{err}");
        let err = check(b"#!/bin/sh\n", AMD64).unwrap_err().to_string();
        assert!(err.contains("is not an ELF executable"), "{err}");
        let err = check(b"\x7fELF\x02\x01", AMD64).unwrap_err().to_string();
        assert!(err.contains("is not an ELF executable"), "{err}");
    }

    #[test]
    fn interpreter_and_needed_libraries_are_named_static_pie_passes() {
        for kind in [
            Kind::of_triple(AMD64).unwrap(),
            Kind::of_triple("armv7-unknown-linux-musleabihf").unwrap(),
            Kind::of_triple("s390x-unknown-linux-musl").unwrap(),
        ] {
            let triple = match kind.machine {
                62 => AMD64,
                40 => "armv7-unknown-linux-musleabihf",
                _ => "s390x-unknown-linux-musl",
            };
            let word = if kind.is_64bit { 8 } else { 4 };
            let headers = if kind.is_64bit {
                64 + 3 * 56
            } else {
                52 + 3 * 32
            };
            let interp = b"/lib/ld-musl.so.1\0";
            let strings = b"\0libc.so\0";
            let dynamic_at = headers + interp.len() as u64 + strings.len() as u64;
            let strings_at = headers + interp.len() as u64;
            let entry = |tag: u64, value: u64| {
                let mut out = Vec::new();
                for v in [tag, value] {
                    let bytes = v.to_le_bytes();
                    let mut field = bytes[..word].to_vec();
                    if !kind.little_endian {
                        field.reverse();
                    }
                    out.extend(field);
                }
                out
            };
            let dynamic_of = |entries: &[(u64, u64)]| -> Vec<u8> {
                entries.iter().flat_map(|(t, v)| entry(*t, *v)).collect()
            };
            let load = Segment {
                kind: PT_LOAD,
                offset: 0,
                address: 0x1000,
                size: 0x10000,
            };
            let with = |interp_segment: bool, dynamic: &[u8]| {
                let mut segments = vec![load];
                segments.push(Segment {
                    kind: if interp_segment { PT_INTERP } else { 6 },
                    offset: headers,
                    address: 0,
                    size: interp.len() as u64,
                });
                segments.push(Segment {
                    kind: PT_DYNAMIC,
                    offset: dynamic_at,
                    address: 0,
                    size: dynamic.len() as u64,
                });
                let mut tail = interp.to_vec();
                tail.extend(strings);
                tail.extend(dynamic);
                elf(kind, &segments, &tail)
            };
            let needs_libc = dynamic_of(&[
                (DT_STRTAB, 0x1000 + strings_at),
                (DT_NEEDED, 1),
                (DT_NULL, 0),
            ]);
            let err = check(&with(true, &needs_libc), triple)
                .unwrap_err()
                .to_string();
            assert!(
                err.contains("it needs the program interpreter /lib/ld-musl.so.1; libc.so)")
                    && err.contains("-crt-static"),
                "{err}"
            );
            let err = check(&with(false, &needs_libc), triple)
                .unwrap_err()
                .to_string();
            assert!(err.contains("(it needs libc.so)"), "{err}");
            // static-pie: a dynamic section with relocations only.
            let relocations_only = dynamic_of(&[(7, 0x1234), (DT_NULL, 0)]);
            check(&with(false, &relocations_only), triple).unwrap();
        }
    }
}
