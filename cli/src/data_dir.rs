//! The data directory's errors, said as what to fix: which directory refused, and which
//! permission svctoken needs on it.

use std::io::ErrorKind;
use std::path::{Path, PathBuf};

use anyhow::anyhow;

/// `error`, from using the data directory `dir`, made into what to fix when it is a permission
/// refused (or a read-only file system); any other error as it is.
pub(crate) fn explain(dir: &Path, error: anyhow::Error) -> anyhow::Error {
    let Some((kind, path)) = refused(&error) else {
        return error;
    };
    let shown = std::path::absolute(dir).unwrap_or_else(|_| dir.to_owned());
    let fix = "Give the user running svctoken that permission (chown or chmod), or choose \
               another directory with --data-dir or SVCTOKEN_DATA_DIR (or data_dir in the \
               configuration file)";
    if kind == ErrorKind::ReadOnlyFilesystem {
        return anyhow!(
            "the data directory {} is on a read-only file system ({} could not be written); \
             svctoken writes its keys and audit trail there. Choose another directory with \
             --data-dir or SVCTOKEN_DATA_DIR (or data_dir in the configuration file)",
            shown.display(),
            path.map_or_else(|| shown.display().to_string(), |p| p.display().to_string())
        );
    }
    match nearest_existing(&shown) {
        Some(parent) if parent != shown => anyhow!(
            "cannot create the data directory {}: permission denied on {}, where it would be \
             made; svctoken needs write and execute permission on {}. {fix}",
            shown.display(),
            parent.display(),
            parent.display()
        ),
        _ => anyhow!(
            "the data directory {} refuses access (permission denied on {}): svctoken needs \
             read, write and execute permission on it (it makes it mode 0700) and read and \
             write permission on the files in it. {fix}",
            shown.display(),
            path.map_or_else(|| shown.display().to_string(), |p| p.display().to_string())
        ),
    }
}

/// The kind of a refused access in `error`'s chain (permission denied, read-only file system)
/// and the path it was refused on, when the error names one.
fn refused(error: &anyhow::Error) -> Option<(ErrorKind, Option<PathBuf>)> {
    let denied = |kind: ErrorKind| {
        matches!(
            kind,
            ErrorKind::PermissionDenied | ErrorKind::ReadOnlyFilesystem
        )
    };
    error.chain().find_map(|cause| {
        if let Some(svctoken_issuer::Error::Io { path, error }) = cause.downcast_ref() {
            return denied(error.kind()).then(|| (error.kind(), Some(path.clone())));
        }
        let io = cause.downcast_ref::<std::io::Error>()?;
        denied(io.kind()).then_some((io.kind(), None))
    })
}

/// `path` or its nearest ancestor that exists.
fn nearest_existing(path: &Path) -> Option<PathBuf> {
    path.ancestors()
        .find(|p| !p.as_os_str().is_empty() && p.exists())
        .map(Path::to_owned)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_refused_directory_is_named_with_the_permission_needed() {
        let io = std::io::Error::from(ErrorKind::PermissionDenied);
        let missing = Path::new("/proc/svctoken-test/data");
        let said = explain(missing, anyhow::Error::from(io)).to_string();
        assert!(said.contains("permission denied on /proc,"), "{said}");
        assert!(
            said.contains("write and execute permission on /proc"),
            "{said}"
        );
        let other = explain(missing, anyhow!("something else")).to_string();
        assert_eq!(other, "something else");
    }
}
