//! Opens a plugin library and checks it against the stable-ABI interface.
//!
//! [`load_plugin`] runs these checks in order, stopping at the first that fails; each has
//! its own [`LoadError`] variant:
//!
//! 1. the path exists and is a regular file;
//! 2. it is a complete shared library for this platform: its headers are read (without
//!    loading it) and every loadable segment and section lies inside the file, so a
//!    truncated or damaged file is refused here instead of crashing the process when the
//!    dynamic loader maps it;
//! 3. it is a loadable library (the dynamic loader opens it);
//! 4. it exports the root-module symbol;
//! 5. it was built with a compatible abi_stable, and the interface's type layout matches;
//! 6. the interface crate's version is compatible;
//! 7. the interface version ([`INTERFACE_VERSION`]) is one this host accepts;
//! 8. the plugin was built with `panic = "unwind"`, as its export macro recorded: only then
//!    can a panic in it become an error instead of ending the process;
//! 9. the requested class is exported;
//! 10. the class's constructor succeeds.
//!
//! Loading runs the library's code (its static initialisers run at step 3): only load
//! files you trust. Libraries are never unloaded, so one process can load several, and
//! loading the same path twice returns the same library.

mod image;

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::{Mutex, OnceLock, PoisonError};

use abi_stable::library::{lib_header_from_path, LibraryError, RootModule};
use abi_stable::sabi_types::VersionNumber;
use ta_persistence_api::ffi::{
    ForeignManager, PluginModule_Ref, INTERFACE_VERSION, MIN_INTERFACE_VERSION,
};
use tracing::{debug, info};

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
    /// Step 2: the file could not be read.
    #[error("{}: cannot be read: {reason}", .path.display())]
    Unreadable {
        /// The path.
        path: PathBuf,
        /// The operating system's message.
        reason: String,
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
            LoadError::NotFound { .. } | LoadError::NotAFile { .. } => 1,
            LoadError::Unreadable { .. }
            | LoadError::NotASharedLibrary { .. }
            | LoadError::Damaged { .. } => 2,
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

/// The names of the checks, by step number (index 0 is step 1).
pub const CHECKS: [&str; 10] = [
    "file exists and is a regular file",
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

/// A plugin library that passed checks 1 to 8.
#[derive(Clone, Copy)]
pub struct PluginLibrary {
    module: PluginModule_Ref,
    path: &'static Path,
}

impl std::fmt::Debug for PluginLibrary {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PluginLibrary")
            .field("path", &self.path)
            .field("name", &self.name())
            .field("version", &self.version())
            .field("classes", &self.classes())
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
                info!(plugin = self.name(), version = self.version(), class, path = %self.path.display(), "plugin manager constructed");
                Ok(manager)
            }
            Err(err) => Err(LoadError::Constructor {
                path,
                class: class.to_owned(),
                reason: err.report(),
            }),
        }
    }
}

/// Libraries already opened, by canonical path: the same file gives the same library.
fn opened() -> &'static Mutex<HashMap<PathBuf, PluginLibrary>> {
    static OPENED: OnceLock<Mutex<HashMap<PathBuf, PluginLibrary>>> = OnceLock::new();
    OPENED.get_or_init(Default::default)
}

/// Runs checks 1 to 8 on a library file (see the module doc), opening it if needed.
pub fn open_library(path: &Path) -> Result<PluginLibrary, LoadError> {
    // Step 1: the file exists and is a regular file.
    let meta = std::fs::metadata(path).map_err(|_| LoadError::NotFound {
        path: path.to_path_buf(),
    })?;
    if !meta.is_file() {
        let kind = if meta.is_dir() {
            "directory"
        } else {
            "special file"
        };
        return Err(LoadError::NotAFile {
            path: path.to_path_buf(),
            kind,
        });
    }
    let canonical = std::fs::canonicalize(path).unwrap_or_else(|_| path.to_path_buf());
    let mut opened = opened().lock().unwrap_or_else(PoisonError::into_inner);
    if let Some(lib) = opened.get(&canonical) {
        return Ok(*lib);
    }
    let lib = open_uncached(path)?;
    let lib = PluginLibrary {
        path: Box::leak(canonical.clone().into_boxed_path()),
        ..lib
    };
    opened.insert(canonical, lib);
    Ok(lib)
}

fn open_uncached(path: &Path) -> Result<PluginLibrary, LoadError> {
    let owned = || path.to_path_buf();
    // Step 2: the file is a complete shared library for this platform. Before the dynamic
    // loader maps it: a segment past the end of the file would crash the process there.
    image::check(path).map_err(|refusal| match refusal {
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
    })?;

    // Steps 3 and 4 (and the abi_stable header of step 5): `lib_header_from_path` opens
    // the library, never closes it, and reads the header symbol. Unlike
    // `RootModule::load_from_file` it keeps no per-type cache, so a failed library does
    // not poison later loads of other paths.
    let header = lib_header_from_path(path).map_err(|err| match err {
        LibraryError::OpenError { err, .. } => LoadError::NotALibrary {
            path: owned(),
            reason: open_failure(&err),
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

    // Step 5: the interface's type layout matches.
    header.ensure_layout::<PluginModule_Ref>().map_err(|err| {
        let full = err.to_string();
        debug!(path = %path.display(), report = %full, "plugin interface layout mismatch");
        LoadError::LayoutMismatch {
            path: owned(),
            summary: summarize(&full),
        }
    })?;

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

    let module = header
        .check_layout::<PluginModule_Ref>()
        .map_err(|err| LoadError::Init {
            path: owned(),
            reason: err.to_string(),
        })?;

    // Step 7: the interface version is accepted.
    let version = module.interface_version();
    if !(MIN_INTERFACE_VERSION..=INTERFACE_VERSION).contains(&version) {
        return Err(LoadError::InterfaceVersion {
            path: owned(),
            found: version,
            min: MIN_INTERFACE_VERSION,
            max: INTERFACE_VERSION,
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
    })
}

/// Why the dynamic loader refused a file, in its own words where it gave any.
fn open_failure(err: &libloading::Error) -> String {
    match err {
        libloading::Error::DlOpenUnknown => "the dynamic loader gave no reason".to_owned(),
        other => other.to_string(),
    }
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

/// Checks 1 to 10: opens a library and constructs one of its classes.
pub fn load_plugin<'a>(
    path: &Path,
    class: Option<&str>,
    vars: impl IntoIterator<Item = (&'a String, &'a String)>,
) -> Result<(PluginLibrary, ForeignManager), LoadError> {
    let lib = open_library(path)?;
    let manager = lib.construct(class, vars)?;
    Ok((lib, manager))
}
