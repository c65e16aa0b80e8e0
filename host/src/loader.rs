//! Opens a plugin library and checks it against the stable-ABI interface.
//!
//! [`load_plugin`] runs these checks in order, stopping at the first that fails; each has
//! its own [`LoadError`] variant:
//!
//! 1. the path exists and is a regular file; it is opened once; with a pin
//!    ([`LoadOptions::sha256`], `TA_PERSISTENCE_MODULE_SHA256`) it is hashed (SHA-256)
//!    through that descriptor and the hash must match; and neither the file nor
//!    its directory can be changed by another user (writable by group or others, or owned
//!    by a user other than this one and root): a warning, or with [`LoadOptions::strict`]
//!    a refusal;
//! 2. it is a complete shared library for this platform: its headers are read through
//!    the same descriptor (without loading it) and every loadable segment and section
//!    lies inside the file, so a truncated or damaged file is refused here instead of
//!    crashing the process when the dynamic loader maps it;
//! 3. it is a loadable library (the dynamic loader opens it: on Linux through
//!    `/proc/self/fd/N`, the descriptor of step 1, so the file hashed and checked is the
//!    file loaded even if the path is replaced meanwhile);
//! 4. it exports the root-module symbol;
//! 5. it was built with a compatible abi_stable, and the interface's type layout matches
//!    (this host's, or that of interface 2, frozen in `ta_persistence_api::ffi::compat`:
//!    such a library loads, and the operations it lacks answer `Unsupported`);
//! 6. the interface crate's version is compatible;
//! 7. the interface version ([`INTERFACE_VERSION`]) is one this host accepts;
//! 8. the plugin was built with `panic = "unwind"`, as its export macro recorded: only then
//!    can a panic in it become an error instead of ending the process;
//! 9. the requested class is exported;
//! 10. the class's constructor succeeds.
//!
//! [`open_library_with`] runs checks 1 to 8 under [`LoadOptions`]; [`PluginFile`] splits
//! them into check 1 ([`PluginFile::open`]) and the rest ([`PluginFile::load`]), and
//! [`check_file`] runs checks 1 and 2 alone, which only read the file.
//!
//! Loading runs the library's code (its static initialisers run at step 3): only load
//! files you trust, and pin them. Libraries are never unloaded, so one process can load
//! several, and loading the same path twice returns the same library while the file is
//! the same one, unchanged (same inode, length and modification time; a file replaced or
//! rewritten since is loaded anew).
//!
//! Where `/proc/self/fd` is not available (macOS, Windows, Linux without `/proc`), the
//! dynamic loader opens the path again after the path is checked to still name the file
//! that was hashed (same device and inode on Unix): a file swapped in the instant between
//! that check and the load is not detected there.

mod file;
mod image;

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::{Mutex, OnceLock, PoisonError};

use abi_stable::library::{lib_header_from_path, LibHeader, LibraryError, RootModule};
use abi_stable::sabi_types::VersionNumber;
use ta_persistence_api::ffi::{
    compat, ForeignManager, PluginModule_Ref, INTERFACE_VERSION, MIN_INTERFACE_VERSION,
};
use ta_persistence_api::ErrorKind;
use tracing::{debug, info, warn};

pub use self::file::{parse_hex, to_hex, Exposure, Sha256Digest};
use self::file::{FileRefusal, Identity, Opened};
use self::image::Refusal;

/// Why a plugin could not be loaded. One variant per check of [`load_plugin`].
#[derive(Debug, Clone, thiserror::Error)]
#[non_exhaustive]
pub enum LoadError {
    /// Step 1: nothing at the path.
    #[error("{}: no such file", .path.display())]
    NotFound {
        /// The path.
        path: PathBuf,
    },
    /// Step 1: the path is not a regular file (a directory, say).
    #[error("{}: not a regular file (it is a {kind})", .path.display())]
    NotAFile {
        /// The path.
        path: PathBuf,
        /// What it is instead.
        kind: &'static str,
    },
    /// Step 1: the file could not be read.
    #[error("{}: cannot be read: {reason}", .path.display())]
    Unreadable {
        /// The path.
        path: PathBuf,
        /// The operating system's message.
        reason: String,
    },
    /// Step 1: the file's SHA-256 is not the pinned one (`TA_PERSISTENCE_MODULE_SHA256`):
    /// it is not the library that was shipped.
    #[error("{}: SHA-256 {found} does not match the pinned {expected} (TA_PERSISTENCE_MODULE_SHA256); it is not the library that was pinned", .path.display())]
    PinMismatch {
        /// The path.
        path: PathBuf,
        /// The pinned digest, as hex.
        expected: String,
        /// The file's digest, as hex.
        found: String,
    },
    /// Step 1, when strict: the file or its directory can be changed by another user.
    #[error("{}: {exposure} (refused because TA_PERSISTENCE_STRICT is set)", .path.display())]
    Exposed {
        /// The path.
        path: PathBuf,
        /// Who else could change it.
        exposure: Exposure,
    },
    /// Step 2: not a shared library for this platform (another format, another
    /// architecture, an executable, not an object file at all).
    #[error("{}: not a shared library for this platform: {reason}", .path.display())]
    NotASharedLibrary {
        /// The path.
        path: PathBuf,
        /// What the file is instead.
        reason: String,
    },
    /// Step 2: a library whose headers do not hold together, or whose contents reach past
    /// the end of the file (a copy cut short); the dynamic loader would crash on it.
    #[error("{}: truncated or damaged library: {reason}", .path.display())]
    Damaged {
        /// The path.
        path: PathBuf,
        /// What is wrong with it.
        reason: String,
    },
    /// Step 3: the dynamic loader could not open the file.
    #[error("{}: not a loadable library: {reason}", .path.display())]
    NotALibrary {
        /// The path.
        path: PathBuf,
        /// The dynamic loader's message.
        reason: String,
    },
    /// Step 4: a library, but not a ta-persistence plugin.
    #[error("{}: not a ta-persistence plugin (no root-module symbol; was it built with export_plugin!?)", .path.display())]
    NoRootModule {
        /// The path.
        path: PathBuf,
    },
    /// Step 5: built with an incompatible abi_stable.
    #[error("{}: built with an incompatible abi_stable: {reason}", .path.display())]
    AbiStableMismatch {
        /// The path.
        path: PathBuf,
        /// abi_stable's message.
        reason: String,
    },
    /// Step 5: the interface's types have another layout in the library than in the host.
    #[error("{}: interface layout mismatch: {summary} (RUST_LOG=debug shows the full report); rebuild the plugin against this host's ta-persistence-api", .path.display())]
    LayoutMismatch {
        /// The path.
        path: PathBuf,
        /// The first lines of abi_stable's report.
        summary: String,
    },
    /// Step 6: built against an incompatible version of the interface crate.
    #[error("{}: built against ta-persistence-api {found}, this host has {expected}", .path.display())]
    CrateVersionMismatch {
        /// The path.
        path: PathBuf,
        /// The host's version.
        expected: String,
        /// The library's version.
        found: String,
    },
    /// Step 7: built for an interface version this host does not accept.
    #[error("{}: interface version {found} is not supported (this host accepts {min} to {max})", .path.display())]
    InterfaceVersion {
        /// The path.
        path: PathBuf,
        /// The library's interface version.
        found: u32,
        /// The oldest accepted.
        min: u32,
        /// The newest accepted.
        max: u32,
    },
    /// Step 8: built with `panic = "abort"`: its first panic would end the host's process.
    #[error("{}: built with panic = \"abort\", so a panic in it would end this process; rebuild it with panic = \"unwind\", the default (remove `panic = \"abort\"` from the [profile.*] sections of its workspace's Cargo.toml, and `-C panic=abort` from RUSTFLAGS)", .path.display())]
    PanicAbort {
        /// The path.
        path: PathBuf,
    },
    /// Step 9: no class was named and the library's are listed, or the named one is
    /// not exported.
    #[error("{}: {}; it exports: {}", .path.display(), match .class { Some(c) => format!("class {c:?} is not exported"), None => "TA_PERSISTENCE_CLASS is not set".to_owned() }, .available.join(", "))]
    ClassNotFound {
        /// The path.
        path: PathBuf,
        /// The requested class (`None`: none was given).
        class: Option<String>,
        /// The classes the library exports.
        available: Vec<String>,
    },
    /// Step 10: the constructor returned an error (or panicked).
    #[error("{}: constructor of {class} failed: {reason}", .path.display())]
    Constructor {
        /// The path.
        path: PathBuf,
        /// The class.
        class: String,
        /// The constructor's error, with its causes.
        reason: String,
        /// The constructor's error kind, as the plugin gave it (`Unavailable`: the
        /// backend could not be reached; `Backend`: it refused, e.g. a wrong password;
        /// `Plugin`: the constructor panicked; `Timeout`: it did not return in time).
        kind: ErrorKind,
    },
    /// Step 3 to 6: the library's root-module loader itself failed or panicked.
    #[error("{}: the library failed to initialise: {reason}", .path.display())]
    Init {
        /// The path.
        path: PathBuf,
        /// abi_stable's message.
        reason: String,
    },
}

impl LoadError {
    /// The check that failed (1 to 10, as numbered in [`load_plugin`]'s module doc).
    pub fn step(&self) -> u8 {
        match self {
            LoadError::NotFound { .. }
            | LoadError::NotAFile { .. }
            | LoadError::Unreadable { .. }
            | LoadError::PinMismatch { .. }
            | LoadError::Exposed { .. } => 1,
            LoadError::NotASharedLibrary { .. } | LoadError::Damaged { .. } => 2,
            LoadError::NotALibrary { .. } => 3,
            LoadError::NoRootModule { .. } => 4,
            LoadError::AbiStableMismatch { .. } | LoadError::LayoutMismatch { .. } => 5,
            LoadError::CrateVersionMismatch { .. } | LoadError::Init { .. } => 6,
            LoadError::InterfaceVersion { .. } => 7,
            LoadError::PanicAbort { .. } => 8,
            LoadError::ClassNotFound { .. } => 9,
            LoadError::Constructor { .. } => 10,
        }
    }
}

impl LoadError {
    /// The kind of the constructor's error (step 10), so that an application can tell a
    /// backend it could not reach (`Unavailable`, worth retrying) from one that refused
    /// the configuration (`Backend`); `None` for the other steps.
    pub fn constructor_error_kind(&self) -> Option<ErrorKind> {
        match self {
            LoadError::Constructor { kind, .. } => Some(*kind),
            _ => None,
        }
    }
}

/// The names of the checks, by step number (index 0 is step 1).
pub const CHECKS: [&str; 10] = [
    "file exists, is a regular file, matches its pin and is not writable by others",
    "file is a complete shared library for this platform",
    "file is a loadable library",
    "root-module symbol is exported",
    "abi_stable version and interface layout match",
    "interface crate version is compatible",
    "interface version is accepted",
    "plugin was built with panic = \"unwind\"",
    "class is exported",
    "constructor succeeds",
];

/// What step 1 checks beyond the file's existence.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct LoadOptions {
    /// The file's expected SHA-256 (`TA_PERSISTENCE_MODULE_SHA256`): any other content is
    /// refused with [`LoadError::PinMismatch`].
    pub sha256: Option<Sha256Digest>,
    /// Refuse a file that another user could change ([`LoadError::Exposed`]) instead of
    /// only reporting it.
    pub strict: bool,
    /// Hash the file even without a pin, for [`PluginLibrary::sha256`] (a pin always
    /// hashes it). Off by default: it reads the whole file.
    pub hash: bool,
}

impl LoadOptions {
    /// The options a configuration asks for.
    pub fn from_config(config: &crate::config::Config) -> Self {
        LoadOptions {
            sha256: config.module_sha256,
            strict: config.strict,
            hash: false,
        }
    }

    /// These options, hashing the file or not (see [`LoadOptions::hash`]).
    pub fn with_hash(mut self, hash: bool) -> Self {
        self.hash = hash;
        self
    }

    /// These options with a pinned digest.
    pub fn with_sha256(mut self, sha256: Sha256Digest) -> Self {
        self.sha256 = Some(sha256);
        self
    }

    /// These options, strict or not.
    pub fn with_strict(mut self, strict: bool) -> Self {
        self.strict = strict;
        self
    }
}

/// A plugin library that passed checks 1 to 8.
#[derive(Clone, Copy)]
pub struct PluginLibrary {
    module: PluginModule_Ref,
    path: &'static Path,
    sha256: Option<Sha256Digest>,
}

impl std::fmt::Debug for PluginLibrary {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PluginLibrary")
            .field("path", &self.path)
            .field("name", &self.name())
            .field("version", &self.version())
            .field("classes", &self.classes())
            .field("sha256", &self.sha256.as_ref().map(to_hex))
            .finish()
    }
}

impl PluginLibrary {
    /// The plugin's name.
    pub fn name(&self) -> &'static str {
        self.module.plugin_name().as_str()
    }

    /// The plugin's version.
    pub fn version(&self) -> &'static str {
        self.module.plugin_version().as_str()
    }

    /// The interface version it was built for.
    pub fn interface_version(&self) -> u32 {
        self.module.interface_version()
    }

    /// The manager classes it exports.
    pub fn classes(&self) -> Vec<String> {
        self.module.classes()
    }

    /// The path it was loaded from.
    pub fn path(&self) -> &Path {
        self.path
    }

    /// The SHA-256 of the file that was loaded (the value to pin it with), if it was
    /// hashed: when pinned, or opened with [`LoadOptions::hash`].
    pub fn sha256(&self) -> Option<&Sha256Digest> {
        self.sha256.as_ref()
    }

    /// Checks 9 and 10: constructs the named class with the given `TA_*` variables.
    pub fn construct<'a>(
        &self,
        class: Option<&str>,
        vars: impl IntoIterator<Item = (&'a String, &'a String)>,
    ) -> Result<ForeignManager, LoadError> {
        let path = self.path.to_path_buf();
        // Step 9: the class is exported.
        let Some(entry) = class.and_then(|c| self.module.find(c)) else {
            return Err(LoadError::ClassNotFound {
                path,
                class: class.map(str::to_owned),
                available: self.classes(),
            });
        };
        let class = entry.class.as_str();
        // Step 10: the constructor succeeds (the SDK's constructor returns its panics as
        // errors).
        let vars = vars.into_iter().map(|(k, v)| (k.as_str(), v.as_str()));
        match entry.construct(vars, format!("{}/{class}", self.name())) {
            Ok(manager) => {
                let manager = manager.of_plugin(self.name(), self.interface_version());
                info!(plugin = self.name(), version = self.version(), class, path = %self.path.display(), "plugin manager constructed");
                Ok(manager)
            }
            Err(err) => Err(LoadError::Constructor {
                path,
                class: class.to_owned(),
                reason: err.report(),
                kind: err.kind(),
            }),
        }
    }
}

/// Libraries already opened, by canonical path and file identity: the same file gives
/// the same library, and a file replaced or rewritten since is loaded anew.
type Cache = HashMap<(PathBuf, Identity), PluginLibrary>;

fn opened() -> &'static Mutex<Cache> {
    static OPENED: OnceLock<Mutex<Cache>> = OnceLock::new();
    OPENED.get_or_init(Default::default)
}

/// Runs checks 1 to 8 on a library file (see the module doc), opening it if needed,
/// with no pin; a file that others could change is logged as a warning.
pub fn open_library(path: &Path) -> Result<PluginLibrary, LoadError> {
    open_library_with(path, &LoadOptions::default()).map(|(lib, _)| lib)
}

/// Runs checks 1 to 8 on a library file with the given options, opening it if needed.
/// Also returns who else could change the file, when `options` is not strict (each is
/// logged at `warn` as well).
pub fn open_library_with(
    path: &Path,
    options: &LoadOptions,
) -> Result<(PluginLibrary, Vec<Exposure>), LoadError> {
    let file = PluginFile::open(path, options)?;
    let exposures = file.exposures().to_vec();
    Ok((file.load()?, exposures))
}

/// A plugin file that passed check 1: opened once, hashed through that descriptor, its
/// pin and permissions checked. [`PluginFile::load`] runs checks 2 to 8 on the same
/// descriptor, so what loads is what was hashed, whatever happens to the path meanwhile
/// (on Linux; see the module doc for other platforms).
#[derive(Debug)]
pub struct PluginFile {
    path: PathBuf,
    opened: Opened,
}

impl PluginFile {
    /// Check 1 (see the module doc).
    pub fn open(path: &Path, options: &LoadOptions) -> Result<Self, LoadError> {
        Ok(PluginFile {
            path: path.to_path_buf(),
            opened: open_file(path, options)?,
        })
    }

    /// The path it was opened from.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// The SHA-256 of its contents, read through the descriptor that is loaded (when
    /// pinned, or opened with [`LoadOptions::hash`]).
    pub fn sha256(&self) -> Option<&Sha256Digest> {
        self.opened.sha256.as_ref()
    }

    /// Who other than its owner and root could change it (when the options were not
    /// strict; strict refuses such a file in [`PluginFile::open`]).
    pub fn exposures(&self) -> &[Exposure] {
        &self.opened.exposures
    }

    /// Checks 2 to 8 on the opened descriptor. A file with the same path and contents as
    /// one loaded before gives that library again.
    pub fn load(self) -> Result<PluginLibrary, LoadError> {
        let canonical = std::fs::canonicalize(&self.path).unwrap_or_else(|_| self.path.clone());
        let mut cache = opened_libraries_lock();
        let key = (canonical, self.opened.identity);
        if let Some(lib) = cache.get(&key) {
            // The same file: a digest computed now is the library's too.
            return Ok(PluginLibrary {
                sha256: self.opened.sha256.or(lib.sha256),
                ..*lib
            });
        }
        let lib = open_uncached(&self.path, self.opened)?;
        let lib = PluginLibrary {
            path: Box::leak(key.0.clone().into_boxed_path()),
            ..lib
        };
        cache.insert(key, lib);
        Ok(lib)
    }
}

fn opened_libraries_lock() -> std::sync::MutexGuard<'static, Cache> {
    opened().lock().unwrap_or_else(PoisonError::into_inner)
}

/// Checks 1 and 2 only, without loading anything: reads the file (never runs it) and
/// returns its SHA-256 if it was hashed. What a lister can safely do in its own process.
pub fn check_file(path: &Path, options: &LoadOptions) -> Result<Option<Sha256Digest>, LoadError> {
    let opened = open_file(path, options)?;
    check_image(path, &opened.file)?;
    Ok(opened.sha256)
}

/// Step 1 (see the module doc).
fn open_file(path: &Path, options: &LoadOptions) -> Result<Opened, LoadError> {
    let owned = || path.to_path_buf();
    let hash = options.hash || options.sha256.is_some();
    let opened = file::open(path, hash).map_err(|refusal| match refusal {
        FileRefusal::NotFound => LoadError::NotFound { path: owned() },
        FileRefusal::NotAFile(kind) => LoadError::NotAFile {
            path: owned(),
            kind,
        },
        FileRefusal::Unreadable(reason) => LoadError::Unreadable {
            path: owned(),
            reason,
        },
    })?;
    if let (Some(pinned), Some(found)) = (&options.sha256, &opened.sha256) {
        if pinned != found {
            return Err(LoadError::PinMismatch {
                path: owned(),
                expected: to_hex(pinned),
                found: to_hex(found),
            });
        }
    }
    if let Some(exposure) = opened.exposures.first() {
        if options.strict {
            return Err(LoadError::Exposed {
                path: owned(),
                exposure: exposure.clone(),
            });
        }
    }
    for exposure in &opened.exposures {
        warn!(path = %path.display(), %exposure, "plugin file can be changed by another user");
    }
    Ok(opened)
}

/// Step 2 (see the module doc).
fn check_image(path: &Path, file: &std::fs::File) -> Result<(), LoadError> {
    let owned = || path.to_path_buf();
    // Before the dynamic loader maps it: a segment past the end of the file would crash
    // the process there.
    image::check(file).map_err(|refusal| match refusal {
        Refusal::Unreadable(reason) => LoadError::Unreadable {
            path: owned(),
            reason,
        },
        Refusal::NotASharedLibrary(reason) => LoadError::NotASharedLibrary {
            path: owned(),
            reason,
        },
        Refusal::Damaged(reason) => LoadError::Damaged {
            path: owned(),
            reason,
        },
    })
}

/// Step 3's dynamic-loader call, on the descriptor of step 1 where the platform allows.
fn open_header(path: &Path, file: &std::fs::File) -> Result<&'static LibHeader, LibraryError> {
    #[cfg(target_os = "linux")]
    {
        use std::os::fd::AsRawFd;
        let by_fd = PathBuf::from(format!("/proc/self/fd/{}", file.as_raw_fd()));
        if by_fd.exists() {
            return lib_header_from_path(&by_fd);
        }
    }
    // No `/proc/self/fd`: the path is opened again, after checking that it still names
    // the file that was hashed (the weaker guarantee the module doc describes).
    if !same_file(path, file) {
        return Err(LibraryError::OpenError {
            path: path.to_path_buf(),
            err: Box::new(libloading::Error::DlOpenUnknown),
        });
    }
    lib_header_from_path(path)
}

/// Whether `path` still names the file `file` was opened from.
#[cfg(unix)]
fn same_file(path: &Path, file: &std::fs::File) -> bool {
    use std::os::unix::fs::MetadataExt;
    match (std::fs::metadata(path), file.metadata()) {
        (Ok(a), Ok(b)) => a.dev() == b.dev() && a.ino() == b.ino(),
        _ => false,
    }
}

/// Without Unix file identities: the length and modification time must still agree.
#[cfg(not(unix))]
fn same_file(path: &Path, file: &std::fs::File) -> bool {
    match (std::fs::metadata(path), file.metadata()) {
        (Ok(a), Ok(b)) => a.len() == b.len() && a.modified().ok() == b.modified().ok(),
        _ => false,
    }
}

fn open_uncached(path: &Path, opened: Opened) -> Result<PluginLibrary, LoadError> {
    let owned = || path.to_path_buf();
    // Step 2: the file is a complete shared library for this platform.
    check_image(path, &opened.file)?;

    // Steps 3 and 4 (and the abi_stable header of step 5): `lib_header_from_path` opens
    // the library, never closes it, and reads the header symbol. Unlike
    // `RootModule::load_from_file` it keeps no per-type cache, so a failed library does
    // not poison later loads of other paths.
    // The dynamic loader remembers a library by the name it was opened with, here
    // `/proc/self/fd/N`, and answers a later open of the same name with that library
    // without looking at the file. So N must never name another file: once handed to
    // the dynamic loader the descriptor stays open for the life of the process, like
    // the library itself.
    let sha256 = opened.sha256;
    #[cfg(target_os = "linux")]
    let file = std::mem::ManuallyDrop::new(opened.file);
    #[cfg(not(target_os = "linux"))]
    let file = opened.file;
    let header = open_header(path, &file).map_err(|err| match err {
        LibraryError::OpenError { err, .. } => LoadError::NotALibrary {
            path: owned(),
            reason: open_failure(&err, path, &file),
        },
        LibraryError::GetSymbolError { .. } => LoadError::NoRootModule { path: owned() },
        LibraryError::InvalidAbiHeader(_) | LibraryError::InvalidCAbi { .. } => {
            LoadError::AbiStableMismatch {
                path: owned(),
                reason: err.to_string(),
            }
        }
        other => LoadError::Init {
            path: owned(),
            reason: other.to_string(),
        },
    })?;

    // Step 5: the interface's type layout matches: the current one, or failing that the
    // frozen layout of interface 2 (whose libraries lack the current table's trailing
    // methods, which abi_stable's check refuses).
    let layout = match header.ensure_layout::<PluginModule_Ref>() {
        Ok(()) => Layout::Current,
        Err(err) => match header.ensure_layout::<compat::v2::PluginModule_Ref>() {
            Ok(()) => Layout::V2,
            Err(_) => {
                let full = err.to_string();
                debug!(path = %path.display(), report = %full, "plugin interface layout mismatch");
                return Err(LoadError::LayoutMismatch {
                    path: owned(),
                    summary: summarize(&full),
                });
            }
        },
    };

    // Step 6: the interface crate's version is compatible.
    let expected = PluginModule_Ref::VERSION_STRINGS;
    let found = header.version_strings();
    let compatible = match (VersionNumber::new(expected), VersionNumber::new(found)) {
        (Ok(e), Ok(f)) => e.major == f.major && (e.major != 0 || e.minor <= f.minor),
        _ => false,
    };
    if !compatible {
        return Err(LoadError::CrateVersionMismatch {
            path: owned(),
            expected: expected.version.to_string(),
            found: found.version.to_string(),
        });
    }

    let module = match layout {
        Layout::Current => header.check_layout::<PluginModule_Ref>(),
        // SAFETY: the library's root module passed abi_stable's check against interface
        // 2's frozen types just above, and the current types are those plus trailing
        // prefix fields only (the manager table's `list_tasks` and `purge`; asserted by
        // the test beside `PluginModule`). A prefix type carries its own field count, so
        // reading it through the longer type never reads past what the library built:
        // each missing method is reported absent and its default body answers instead.
        Layout::V2 => unsafe {
            header.init_root_module_with_unchecked_layout::<PluginModule_Ref>()
        },
    }
    .map_err(|err| LoadError::Init {
        path: owned(),
        reason: err.to_string(),
    })?;

    // Step 7: the interface version is accepted (and, for a library with interface 2's
    // layout, is 2: the layout and the number must tell the same story).
    let version = module.interface_version();
    if !(MIN_INTERFACE_VERSION..=INTERFACE_VERSION).contains(&version)
        || (layout == Layout::V2 && version != 2)
    {
        return Err(LoadError::InterfaceVersion {
            path: owned(),
            found: version,
            min: MIN_INTERFACE_VERSION,
            max: if layout == Layout::V2 {
                2
            } else {
                INTERFACE_VERSION
            },
        });
    }

    // Step 8: the plugin unwinds on panic, so the SDK can turn its panics into errors.
    if !module.unwinds_on_panic() {
        return Err(LoadError::PanicAbort { path: owned() });
    }
    debug!(path = %path.display(), plugin = module.plugin_name().as_str(), version = module.plugin_version().as_str(), "plugin library opened");
    Ok(PluginLibrary {
        module,
        path: Box::leak(path.to_path_buf().into_boxed_path()),
        sha256,
    })
}

/// Which interface's layout a library passed step 5 with.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Layout {
    /// This host's.
    Current,
    /// Interface 2's, frozen in `compat::v2`.
    V2,
}

/// Why the dynamic loader refused a file, in its own words where it gave any (naming
/// the path, not the descriptor it was opened through).
fn open_failure(err: &libloading::Error, path: &Path, file: &std::fs::File) -> String {
    let said = match err {
        libloading::Error::DlOpenUnknown if !same_file(path, file) => {
            return "the path no longer names the file that was checked (it was replaced)"
                .to_owned()
        }
        libloading::Error::DlOpenUnknown => "the dynamic loader gave no reason".to_owned(),
        other => other.to_string(),
    };
    #[cfg(target_os = "linux")]
    let said = {
        use std::os::fd::AsRawFd;
        let by_fd = format!("/proc/self/fd/{}", file.as_raw_fd());
        said.replace(&by_fd, &path.display().to_string())
    };
    said
}

/// The gist of abi_stable's layout report (which runs to hundreds of lines): each
/// `Error:` entry with its expected and found values, the innermost (most specific) first.
fn summarize(report: &str) -> String {
    let lines: Vec<&str> = report.lines().map(str::trim).collect();
    let value_after = |from: usize, label: &str| -> Option<&str> {
        let at = lines[from..].iter().position(|l| *l == label)? + from;
        lines.get(at + 1).copied().filter(|l| !l.is_empty())
    };
    let mut entries: Vec<String> = Vec::new();
    for (i, line) in lines.iter().enumerate() {
        let Some(what) = line.strip_prefix("Error:") else {
            continue;
        };
        let entry = match (value_after(i, "Expected:"), value_after(i, "Found:")) {
            (Some(e), Some(f)) => format!("{what}: expected {e}, found {f}"),
            _ => what.to_owned(),
        };
        if !entries.contains(&entry) {
            entries.push(entry);
        }
    }
    if entries.is_empty() {
        return report
            .lines()
            .next()
            .unwrap_or("layouts differ")
            .trim()
            .to_owned();
    }
    entries.reverse();
    entries.truncate(3);
    entries.join("; ")
}

/// Checks 1 to 10: opens a library (with no pin) and constructs one of its classes.
pub fn load_plugin<'a>(
    path: &Path,
    class: Option<&str>,
    vars: impl IntoIterator<Item = (&'a String, &'a String)>,
) -> Result<(PluginLibrary, ForeignManager), LoadError> {
    let lib = open_library(path)?;
    let manager = lib.construct(class, vars)?;
    Ok((lib, manager))
}
