//! Step 1 of the loader: opens a plugin file once, hashes that descriptor (when asked),
//! and checks who else could change the file.
//!
//! Every later step reads the descriptor opened here (the header check of step 2, and on
//! Linux the dynamic loader itself, through `/proc/self/fd/N`), so the file that was
//! hashed is the file that runs: replacing the path with another file after this step
//! changes nothing. Rewriting the same file in place is not prevented by this; that is
//! what the ownership and permission check is for.

use std::fmt;
use std::fs::File;
use std::io::Read;
use std::path::{Path, PathBuf};

use sha2::{Digest, Sha256};

/// A SHA-256 digest of a plugin file.
pub type Sha256Digest = [u8; 32];

/// A way in which a plugin file could be changed by someone other than its owner and
/// root. A warning by default; with `TA_PERSISTENCE_STRICT=true` the load is refused.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum Exposure {
    /// The file, or the directory holding it, may be written by its group or by anyone.
    Writable {
        /// The file or directory.
        path: PathBuf,
        /// `"file"` or `"directory"`.
        what: &'static str,
        /// Its permission bits.
        mode: u32,
    },
    /// The file, or the directory holding it, belongs to another user who is not root.
    ForeignOwner {
        /// The file or directory.
        path: PathBuf,
        /// `"file"` or `"directory"`.
        what: &'static str,
        /// The owner's user id.
        uid: u32,
    },
}

impl fmt::Display for Exposure {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Exposure::Writable { path, what, mode } => write!(
                f,
                "plugin {what} {} is writable by {} (mode {:04o}); anyone who can write it can run code in this process",
                path.display(),
                if mode & 0o002 != 0 { "anyone" } else { "its group" },
                mode & 0o7777
            ),
            Exposure::ForeignOwner { path, what, uid } => write!(
                f,
                "plugin {what} {} belongs to user {uid}, neither this user nor root; that user can run code in this process",
                path.display()
            ),
        }
    }
}

/// A plugin file opened for loading.
#[derive(Debug)]
pub(super) struct Opened {
    /// The descriptor every later step reads.
    pub(super) file: File,
    /// The SHA-256 of its contents, read through `file`, if it was asked for.
    pub(super) sha256: Option<Sha256Digest>,
    /// What tells this file from one that replaced it or rewrote it.
    pub(super) identity: Identity,
    /// Who else could change it.
    pub(super) exposures: Vec<Exposure>,
}

/// Why step 1 failed, before the caller attaches the path.
#[derive(Debug)]
pub(super) enum FileRefusal {
    /// Nothing at the path (or it cannot be opened).
    NotFound,
    /// Not a regular file.
    NotAFile(&'static str),
    /// The descriptor could not be read.
    Unreadable(String),
}

/// What tells a file from another at the same path, or from itself rewritten: its device
/// and inode, length and modification time (on Unix; elsewhere length and time only).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub(super) struct Identity {
    device: u64,
    inode: u64,
    len: u64,
    modified: Option<std::time::SystemTime>,
}

impl Identity {
    fn of(meta: &std::fs::Metadata) -> Self {
        #[cfg(unix)]
        let (device, inode) = {
            use std::os::unix::fs::MetadataExt;
            (meta.dev(), meta.ino())
        };
        #[cfg(not(unix))]
        let (device, inode) = (0, 0);
        Identity {
            device,
            inode,
            len: meta.len(),
            modified: meta.modified().ok(),
        }
    }
}

/// Opens `path` once, checks that it is a regular file, hashes it if `hash` is set, and
/// checks who else may change it.
pub(super) fn open(path: &Path, hash: bool) -> Result<Opened, FileRefusal> {
    // The path's own metadata first, so that a directory is named as such (opening one
    // for reading succeeds on Unix and fails only at the first read).
    let meta = std::fs::metadata(path).map_err(|_| FileRefusal::NotFound)?;
    if !meta.is_file() {
        return Err(FileRefusal::NotAFile(if meta.is_dir() {
            "directory"
        } else {
            "special file"
        }));
    }
    let mut file = File::open(path).map_err(|_| FileRefusal::NotFound)?;
    // What was opened may differ from what was looked at a moment ago: decide on the
    // descriptor.
    let meta = file
        .metadata()
        .map_err(|e| FileRefusal::Unreadable(e.to_string()))?;
    if !meta.is_file() {
        return Err(FileRefusal::NotAFile("special file"));
    }
    let sha256 = if hash {
        Some(sha256(&mut file).map_err(|e| FileRefusal::Unreadable(e.to_string()))?)
    } else {
        None
    };
    let exposures = exposures(path, &meta);
    Ok(Opened {
        file,
        sha256,
        identity: Identity::of(&meta),
        exposures,
    })
}

/// The SHA-256 of everything `file` holds, read from its start.
fn sha256(file: &mut File) -> std::io::Result<Sha256Digest> {
    use std::io::{Seek, SeekFrom};
    file.seek(SeekFrom::Start(0))?;
    let mut hasher = Sha256::new();
    let mut buf = vec![0u8; 64 * 1024];
    loop {
        let n = file.read(&mut buf)?;
        if n == 0 {
            break;
        }
        hasher.update(&buf[..n]);
    }
    Ok(hasher.finalize().into())
}

/// Who other than the file's owner and root could change the file (or swap it, through
/// its directory).
#[cfg(unix)]
fn exposures(path: &Path, meta: &std::fs::Metadata) -> Vec<Exposure> {
    use std::os::unix::fs::MetadataExt;

    // SAFETY: `geteuid` takes no arguments, cannot fail and touches no memory of ours.
    let me = unsafe { libc::geteuid() };
    let mut out = Vec::new();
    let mut look = |path: PathBuf, what: &'static str, meta: &std::fs::Metadata| {
        let mode = meta.mode();
        // A sticky directory (like /tmp) still lets others add files, but not replace
        // or remove this one: the file's own permissions decide then.
        let sticky = what == "directory" && mode & 0o1000 != 0;
        if mode & 0o022 != 0 && !sticky {
            out.push(Exposure::Writable {
                path: path.clone(),
                what,
                mode,
            });
        }
        let uid = meta.uid();
        if uid != me && uid != 0 {
            out.push(Exposure::ForeignOwner { path, what, uid });
        }
    };
    look(path.to_path_buf(), "file", meta);
    let dir = std::fs::canonicalize(path)
        .ok()
        .and_then(|p| p.parent().map(Path::to_path_buf));
    if let Some(dir) = dir {
        if let Ok(dir_meta) = std::fs::metadata(&dir) {
            look(dir, "directory", &dir_meta);
        }
    }
    out
}

/// Other platforms: permissions are not inspected (Windows ACLs are not modelled here).
#[cfg(not(unix))]
fn exposures(_path: &Path, _meta: &std::fs::Metadata) -> Vec<Exposure> {
    Vec::new()
}

/// A digest as lower-case hex, as `sha256sum` prints it.
pub fn to_hex(digest: &Sha256Digest) -> String {
    hex::encode(digest)
}

/// Parses a SHA-256 digest written as 64 hex digits (either case; surrounding spaces
/// are ignored, and so is a `sha256sum`-style ` *file` or `  file` tail).
pub fn parse_hex(text: &str) -> Option<Sha256Digest> {
    let digits = text.split_whitespace().next()?;
    let mut out = [0u8; 32];
    hex::decode_to_slice(digits, &mut out).ok()?;
    Some(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn digests_round_trip_through_hex_and_reject_anything_else() {
        let empty = "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855";
        let digest = parse_hex(empty).unwrap();
        assert_eq!(to_hex(&digest), empty);
        assert_eq!(parse_hex(&empty.to_uppercase()), Some(digest));
        assert_eq!(parse_hex(&format!(" {empty}  libx.so\n")), Some(digest));
        for bad in [
            "",
            "xyz",
            &empty[..63],
            &format!("{empty}0"),
            &empty.replace('e', "g"),
        ] {
            assert_eq!(parse_hex(bad), None, "{bad:?}");
        }
    }

    #[test]
    fn the_hash_is_of_the_whole_file_read_through_the_descriptor() {
        let scratch = tempfile::tempdir().unwrap();
        let dir = scratch.path().to_path_buf();
        let path = dir.join("empty.so");
        std::fs::write(&path, b"").unwrap();
        let opened = open(&path, true).unwrap();
        assert_eq!(
            to_hex(&opened.sha256.unwrap()),
            "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"
        );
        let path = dir.join("abc.so");
        std::fs::write(&path, b"abc").unwrap();
        assert_eq!(
            to_hex(&open(&path, true).unwrap().sha256.unwrap()),
            "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"
        );
        assert_eq!(open(&path, false).unwrap().sha256, None);
        assert!(matches!(
            open(&dir, true),
            Err(FileRefusal::NotAFile("directory"))
        ));
        assert!(matches!(
            open(&dir.join("missing.so"), true),
            Err(FileRefusal::NotFound)
        ));
    }

    #[cfg(unix)]
    #[test]
    fn a_file_writable_by_others_is_an_exposure_and_a_private_one_is_not() {
        use std::os::unix::fs::PermissionsExt;
        let scratch = tempfile::tempdir().unwrap();
        let dir = scratch.path().to_path_buf();
        std::fs::set_permissions(&dir, std::fs::Permissions::from_mode(0o700)).unwrap();
        let path = dir.join("p.so");
        std::fs::write(&path, b"x").unwrap();
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o644)).unwrap();
        assert_eq!(open(&path, false).unwrap().exposures, vec![]);
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o666)).unwrap();
        let exposures = open(&path, false).unwrap().exposures;
        assert!(
            matches!(
                exposures.as_slice(),
                [Exposure::Writable { what: "file", .. }]
            ),
            "{exposures:?}"
        );
        assert!(exposures[0].to_string().contains("writable by anyone"));
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o644)).unwrap();
        std::fs::set_permissions(&dir, std::fs::Permissions::from_mode(0o770)).unwrap();
        let exposures = open(&path, false).unwrap().exposures;
        assert!(
            matches!(
                exposures.as_slice(),
                [Exposure::Writable {
                    what: "directory",
                    ..
                }]
            ),
            "{exposures:?}"
        );
        assert!(exposures[0].to_string().contains("writable by its group"));
        std::fs::set_permissions(&dir, std::fs::Permissions::from_mode(0o700)).unwrap();

        // Owned by another user who is not root: only root can hand a file over, so
        // this part runs where the tests run as root.
        // SAFETY: as above, `geteuid` has no preconditions.
        if unsafe { libc::geteuid() } == 0 {
            std::os::unix::fs::chown(&path, Some(65534), None).unwrap();
            let exposures = open(&path, false).unwrap().exposures;
            assert!(
                matches!(
                    exposures.as_slice(),
                    [Exposure::ForeignOwner {
                        what: "file",
                        uid: 65534,
                        ..
                    }]
                ),
                "{exposures:?}"
            );
            std::os::unix::fs::chown(&path, Some(0), None).unwrap();
            assert_eq!(open(&path, false).unwrap().exposures, vec![]);
        }
    }
}
