//! Reads a library file's headers before the dynamic loader sees it, so that a truncated
//! or damaged file, or one for another platform, is refused with a reason.
//!
//! The dynamic loader maps each loadable segment of a library straight from the file. A
//! segment that reaches past the end of the file (a copy cut short, an interrupted
//! download) maps pages with nothing behind them, and the first touch of such a page kills
//! the process with `SIGBUS` before anything can report why. So the headers are read here
//! first, with `object`, reading only the bytes they occupy: the file must be a shared
//! library in this platform's format and architecture, and every loadable segment and
//! every section with contents must lie inside the file.

use std::fs::File;

use object::read::macho::{FatArch, MachOFatFile32, MachOFatFile64};
use object::read::{ReadCache, ReadCacheOps, ReadRef};
use object::{
    Architecture, BinaryFormat, FileKind, Object, ObjectKind, ObjectSection, ObjectSegment,
};

/// Why a file is not a complete shared library for this platform.
#[derive(Debug)]
pub(super) enum Refusal {
    /// The file could not be opened or read.
    Unreadable(String),
    /// A library's headers are inconsistent, or its contents lie past the end of the file.
    Damaged(String),
    /// Readable and whole, but not a shared library this platform can load.
    NotASharedLibrary(String),
}

/// The object format this platform's dynamic loader reads.
fn host_format() -> BinaryFormat {
    if cfg!(target_vendor = "apple") {
        BinaryFormat::MachO
    } else if cfg!(windows) {
        BinaryFormat::Pe
    } else {
        BinaryFormat::Elf
    }
}

/// The architecture this host was built for, where `object` has a name for it.
fn host_architecture() -> Option<Architecture> {
    let wide = cfg!(target_pointer_width = "64");
    Some(if cfg!(target_arch = "x86_64") {
        if wide {
            Architecture::X86_64
        } else {
            Architecture::X86_64_X32
        }
    } else if cfg!(target_arch = "x86") {
        Architecture::I386
    } else if cfg!(target_arch = "aarch64") {
        if wide {
            Architecture::Aarch64
        } else {
            Architecture::Aarch64_Ilp32
        }
    } else if cfg!(target_arch = "arm") {
        Architecture::Arm
    } else if cfg!(target_arch = "riscv64") {
        Architecture::Riscv64
    } else if cfg!(target_arch = "riscv32") {
        Architecture::Riscv32
    } else if cfg!(target_arch = "powerpc64") {
        Architecture::PowerPc64
    } else if cfg!(target_arch = "s390x") {
        Architecture::S390x
    } else if cfg!(target_arch = "loongarch64") {
        Architecture::LoongArch64
    } else {
        return None;
    })
}

fn format_name(format: BinaryFormat) -> &'static str {
    match format {
        BinaryFormat::Elf => "ELF",
        BinaryFormat::MachO => "Mach-O",
        BinaryFormat::Pe => "PE",
        BinaryFormat::Coff => "COFF",
        BinaryFormat::Wasm => "WebAssembly",
        BinaryFormat::Xcoff => "XCOFF",
        _ => "another object format",
    }
}

fn kind_name(kind: ObjectKind) -> &'static str {
    match kind {
        ObjectKind::Relocatable => "a relocatable object file",
        ObjectKind::Executable => "an executable",
        ObjectKind::Dynamic => "a shared library",
        ObjectKind::Core => "a core dump",
        _ => "an object file of unknown kind",
    }
}

/// Checks that the open `file` is a complete shared library for this platform. It
/// reads through the descriptor the caller hashed (and will load), not by path.
pub(super) fn check(file: &File) -> Result<(), Refusal> {
    let len = file
        .metadata()
        .map_err(|e| Refusal::Unreadable(e.to_string()))?
        .len();
    let cache = ReadCache::new(file);
    let kind = FileKind::parse(&cache).map_err(|_| {
        Refusal::NotASharedLibrary(format!(
            "not an object file (this platform loads {} shared libraries)",
            format_name(host_format())
        ))
    })?;
    match kind {
        FileKind::MachOFat32 => {
            let fat = MachOFatFile32::parse(&cache).map_err(damaged_headers)?;
            check_slice(&cache, len, fat.arches())
        }
        FileKind::MachOFat64 => {
            let fat = MachOFatFile64::parse(&cache).map_err(damaged_headers)?;
            check_slice(&cache, len, fat.arches())
        }
        _ => check_object(&cache, 0, len),
    }
}

fn damaged_headers(err: object::Error) -> Refusal {
    Refusal::Damaged(format!("its headers cannot be read ({err})"))
}

/// A universal (fat) Mach-O file: the slice for this architecture must be whole, and a
/// complete library itself.
fn check_slice<R: ReadCacheOps, F: FatArch>(
    cache: &ReadCache<R>,
    len: u64,
    arches: &[F],
) -> Result<(), Refusal> {
    let wanted = host_architecture();
    let Some(arch) = arches.iter().find(|a| Some(a.architecture()) == wanted) else {
        return Err(Refusal::NotASharedLibrary(
            "a universal file without a slice for this architecture".to_owned(),
        ));
    };
    let (offset, size) = arch.file_range();
    within(len, offset, size, "this architecture's slice")?;
    check_object(cache, offset, size)
}

/// The object at `offset..offset + size` of the file.
fn check_object<R: ReadCacheOps>(
    cache: &ReadCache<R>,
    offset: u64,
    size: u64,
) -> Result<(), Refusal> {
    let data = cache.range(offset, size);
    let obj = object::File::parse(data).map_err(|err| {
        // A file whose magic names no format `object` reads is not a library at all;
        // one whose magic is right but whose headers do not hold together is damaged.
        if FileKind::parse(data).is_ok() {
            damaged_headers(err)
        } else {
            Refusal::NotASharedLibrary(format!("not an object file ({err})"))
        }
    })?;
    check_platform(&obj)?;
    let end = data.len().unwrap_or(size);
    for (i, segment) in obj.segments().enumerate() {
        let (start, len) = segment.file_range();
        within(end, start, len, &format!("loadable segment {i}"))?;
    }
    for section in obj.sections() {
        if let Some((start, len)) = section.file_range() {
            let name = section.name().unwrap_or("?");
            within(end, start, len, &format!("section {name:?}"))?;
        }
    }
    Ok(())
}

fn check_platform<'data, R: ReadRef<'data>>(obj: &object::File<'data, R>) -> Result<(), Refusal> {
    let wanted = host_format();
    let format = obj.format();
    if format != wanted {
        return Err(Refusal::NotASharedLibrary(format!(
            "it is a {} file, this platform loads {}",
            format_name(format),
            format_name(wanted)
        )));
    }
    if let Some(wanted) = host_architecture() {
        if obj.architecture() != wanted {
            return Err(Refusal::NotASharedLibrary(format!(
                "it is built for {:?}, this host is {wanted:?}",
                obj.architecture()
            )));
        }
    }
    if obj.is_little_endian() != cfg!(target_endian = "little") {
        return Err(Refusal::NotASharedLibrary(
            "its byte order is not this host's".to_owned(),
        ));
    }
    if obj.kind() != ObjectKind::Dynamic {
        return Err(Refusal::NotASharedLibrary(format!(
            "it is {}, not a shared library",
            kind_name(obj.kind())
        )));
    }
    Ok(())
}

/// `start..start + len` must lie inside a file of `end` bytes.
fn within(end: u64, start: u64, len: u64, what: &str) -> Result<(), Refusal> {
    match start.checked_add(len) {
        Some(stop) if stop <= end => Ok(()),
        _ => Err(Refusal::Damaged(format!(
            "{what} needs bytes up to {} but the file has {end}",
            start.saturating_add(len)
        ))),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn check(path: &std::path::Path) -> Result<(), Refusal> {
        super::check(&File::open(path).unwrap())
    }

    /// A file holding `bytes`, removed when dropped.
    fn scratch(name: &str, bytes: &[u8]) -> tempfile::NamedTempFile {
        let mut file = tempfile::Builder::new()
            .prefix(name)
            .suffix(".so")
            .tempfile()
            .unwrap();
        std::io::Write::write_all(&mut file, bytes).unwrap();
        file
    }

    #[test]
    fn text_is_not_an_object_file() {
        let file = scratch("text", b"hello, this is not a library\n");
        let path = file.path();
        let refusal = check(path).unwrap_err();
        assert!(
            matches!(&refusal, Refusal::NotASharedLibrary(r) if r.contains("not an object file")),
            "{refusal:?}"
        );
    }

    /// A 64-bit little-endian x86-64 ELF shared-object header: program headers at
    /// `phoff`, `phnum` of them; no sections.
    fn elf_header(phoff: u64, phnum: u16) -> Vec<u8> {
        let mut h = vec![0u8; 64];
        h[..7].copy_from_slice(b"\x7fELF\x02\x01\x01");
        h[16..18].copy_from_slice(&3u16.to_le_bytes()); // ET_DYN
        h[18..20].copy_from_slice(&62u16.to_le_bytes()); // EM_X86_64
        h[20..24].copy_from_slice(&1u32.to_le_bytes());
        h[32..40].copy_from_slice(&phoff.to_le_bytes());
        h[52..54].copy_from_slice(&64u16.to_le_bytes());
        h[54..56].copy_from_slice(&56u16.to_le_bytes());
        h[56..58].copy_from_slice(&phnum.to_le_bytes());
        h
    }

    #[test]
    fn headers_that_point_past_the_end_are_damaged() {
        let file = scratch("cut-headers", &elf_header(4096, 8));
        let path = file.path();
        let refusal = check(path).unwrap_err();
        assert!(
            matches!(&refusal, Refusal::Damaged(r) if r.contains("headers cannot be read")),
            "{refusal:?}"
        );
    }

    #[cfg(all(target_arch = "x86_64", target_os = "linux"))]
    #[test]
    fn a_loadable_segment_past_the_end_is_damaged_and_one_inside_is_not() {
        let segment = |filesz: u64| {
            let mut bytes = elf_header(64, 1);
            let mut ph = vec![0u8; 56];
            ph[..4].copy_from_slice(&1u32.to_le_bytes()); // PT_LOAD
            ph[32..40].copy_from_slice(&filesz.to_le_bytes()); // p_filesz, from offset 0
            bytes.extend_from_slice(&ph);
            bytes
        };
        let whole = scratch("whole", &segment(120));
        assert!(check(whole.path()).is_ok(), "{:?}", check(whole.path()));
        let cut = scratch("cut", &segment(121));
        let refusal = check(cut.path()).unwrap_err();
        assert!(
            matches!(&refusal, Refusal::Damaged(r)
                if r == "loadable segment 0 needs bytes up to 121 but the file has 120"),
            "{refusal:?}"
        );
    }

    #[cfg(all(target_arch = "x86_64", target_os = "linux"))]
    #[test]
    fn an_executable_or_another_architecture_is_not_a_shared_library() {
        let mut exec = elf_header(0, 0);
        exec[16..18].copy_from_slice(&2u16.to_le_bytes()); // ET_EXEC
        let refusal = check(scratch("exec", &exec).path()).unwrap_err();
        assert!(
            matches!(&refusal, Refusal::NotASharedLibrary(r) if r.contains("an executable")),
            "{refusal:?}"
        );
        let mut arm = elf_header(0, 0);
        arm[18..20].copy_from_slice(&183u16.to_le_bytes()); // EM_AARCH64
        let refusal = check(scratch("arm", &arm).path()).unwrap_err();
        assert!(
            matches!(&refusal, Refusal::NotASharedLibrary(r) if r.contains("Aarch64")),
            "{refusal:?}"
        );
    }

    #[test]
    fn a_range_past_the_end_is_refused_and_one_inside_is_not() {
        assert!(within(100, 0, 100, "x").is_ok());
        let Err(Refusal::Damaged(reason)) = within(100, 40, 61, "segment 2") else {
            panic!("a range one byte past the end must be refused");
        };
        assert_eq!(
            reason,
            "segment 2 needs bytes up to 101 but the file has 100"
        );
        assert!(within(100, u64::MAX, 2, "x").is_err());
    }
}
