//! Just enough ELF parsing to check a binary's architecture (`e_machine`) and
//! that it is statically linked (no `PT_INTERP` program header).

use std::path::Path;

/// `e_machine` of x86_64.
pub const EM_X86_64: u16 = 62;
/// `e_machine` of aarch64.
pub const EM_AARCH64: u16 = 183;
/// `e_machine` of i386.
pub const EM_386: u16 = 3;
/// `e_machine` of 32-bit arm.
pub const EM_ARM: u16 = 40;

/// `e_machine` expected for an OCI architecture.
pub fn machine_of(architecture: &str) -> u16 {
    match architecture {
        "amd64" => EM_X86_64,
        "arm64" => EM_AARCH64,
        "386" => EM_386,
        "arm" => EM_ARM,
        other => panic!("no ELF machine known for {other}"),
    }
}

/// `p_type` of the program header naming the dynamic loader.
const PT_INTERP: u32 = 3;

/// What the tests want to know about an executable.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ElfInfo {
    /// ELFCLASS64?
    pub is_64bit: bool,
    /// `e_machine`.
    pub machine: u16,
    /// `e_type` (2 = EXEC, 3 = DYN, e.g. static-pie).
    pub elf_type: u16,
    /// True when a `PT_INTERP` header exists (dynamically linked).
    pub has_interp: bool,
}

impl ElfInfo {
    /// Statically linked: no program interpreter.
    pub fn is_static(&self) -> bool {
        !self.has_interp
    }
}

/// Read the ELF header and program headers of `path` (little-endian only).
pub fn read(path: &Path) -> Result<ElfInfo, String> {
    let bytes = std::fs::read(path).map_err(|e| format!("read {}: {e}", path.display()))?;
    parse(&bytes).map_err(|e| format!("{}: {e}", path.display()))
}

/// Parse an ELF image from memory.
pub fn parse(bytes: &[u8]) -> Result<ElfInfo, String> {
    if bytes.len() < 52 || &bytes[..4] != b"\x7fELF" {
        return Err("not an ELF file".into());
    }
    if bytes[5] != 1 {
        return Err("not little-endian".into());
    }
    let is_64bit = match bytes[4] {
        1 => false,
        2 => true,
        c => return Err(format!("bad EI_CLASS {c}")),
    };
    let u16_at = |off: usize| u16::from_le_bytes([bytes[off], bytes[off + 1]]);
    let u32_at = |off: usize| -> Result<u32, String> {
        bytes
            .get(off..off + 4)
            .map(|b| u32::from_le_bytes([b[0], b[1], b[2], b[3]]))
            .ok_or_else(|| format!("truncated at {off}"))
    };
    let u64_at = |off: usize| -> Result<u64, String> {
        let b = bytes
            .get(off..off + 8)
            .ok_or_else(|| format!("truncated at {off}"))?;
        Ok(u64::from_le_bytes([
            b[0], b[1], b[2], b[3], b[4], b[5], b[6], b[7],
        ]))
    };
    let elf_type = u16_at(16);
    let machine = u16_at(18);
    let (phoff, phentsize, phnum) = if is_64bit {
        (
            u64_at(32)? as usize,
            u16_at(54) as usize,
            u16_at(56) as usize,
        )
    } else {
        (
            u32_at(28)? as usize,
            u16_at(42) as usize,
            u16_at(44) as usize,
        )
    };
    let mut has_interp = false;
    for i in 0..phnum {
        if u32_at(phoff + i * phentsize)? == PT_INTERP {
            has_interp = true;
        }
    }
    Ok(ElfInfo {
        is_64bit,
        machine,
        elf_type,
        has_interp,
    })
}
