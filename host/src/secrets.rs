//! Secret files: the admin token and signing keys. Each is created with mode
//! 0600 (on Unix) and never overwritten.
use std::io::{self, Write};
use std::path::{Path, PathBuf};

/// The admin token's file name inside the data directory.
pub const ADMIN_TOKEN_FILE: &str = "admin-token";

/// Random bytes in a generated admin token (hex-encoded in the file).
const TOKEN_BYTES: usize = 32;

/// Why the admin token file could not be used.
#[derive(Debug, thiserror::Error)]
pub enum SecretError {
    /// Reading, creating or fixing the file failed.
    #[error("{}: {source}", path.display())]
    Io {
        /// The file.
        path: PathBuf,
        /// Why.
        source: io::Error,
    },
    /// The file holds too short a token (it was written by hand, or truncated).
    #[error(
        "{} holds no usable admin token (16+ characters); delete it to have a new one made",
        path.display()
    )]
    Unusable {
        /// The file.
        path: PathBuf,
    },
    /// The operating system gave no random bytes.
    #[error("generating an admin token: {0}")]
    Random(getrandom::Error),
}

/// Where a host keeps the admin token it generated.
pub fn admin_token_path(data_dir: &Path) -> PathBuf {
    data_dir.join(ADMIN_TOKEN_FILE)
}

/// Creates `path` with `contents`, readable and writable by its owner only.
/// An existing file is an `AlreadyExists` error, never overwritten.
pub fn write_new(path: &Path, contents: &str) -> io::Result<()> {
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create_new(true);
    #[cfg(unix)]
    std::os::unix::fs::OpenOptionsExt::mode(&mut options, 0o600);
    let mut file = options.open(path)?;
    file.write_all(contents.as_bytes())?;
    file.sync_all()
}

/// Reads the admin token in `data_dir` (for the CLI, next to its host).
pub fn read_admin_token(data_dir: &Path) -> io::Result<String> {
    Ok(std::fs::read_to_string(admin_token_path(data_dir))?
        .trim()
        .to_owned())
}

/// The admin token in `data_dir`: the one made on an earlier start, or a new
/// random one. A token file others may read has its mode narrowed to 0600.
pub fn load_or_create_admin_token(data_dir: &Path) -> Result<String, SecretError> {
    let path = admin_token_path(data_dir);
    let io_error = |source| SecretError::Io {
        path: path.clone(),
        source,
    };
    match read_admin_token(data_dir) {
        Ok(token) if token.len() >= 16 => {
            restrict(&path).map_err(io_error)?;
            tracing::info!(path = %path.display(), "admin routes need the bearer token in this file");
            Ok(token)
        }
        Ok(_) => Err(SecretError::Unusable { path }),
        Err(e) if e.kind() == io::ErrorKind::NotFound => {
            let mut bytes = [0u8; TOKEN_BYTES];
            getrandom::fill(&mut bytes).map_err(SecretError::Random)?;
            let token = hex::encode(bytes);
            std::fs::create_dir_all(data_dir).map_err(io_error)?;
            write_new(&path, &token).map_err(io_error)?;
            tracing::info!(path = %path.display(), "created an admin token; admin routes need the bearer token in this file");
            Ok(token)
        }
        Err(e) => Err(io_error(e)),
    }
}

/// Narrows a group- or world-accessible file to 0600, with a warning: whoever
/// could read it may have the token.
#[cfg(unix)]
fn restrict(path: &Path) -> io::Result<()> {
    use std::os::unix::fs::PermissionsExt;
    let mode = std::fs::metadata(path)?.permissions().mode() & 0o777;
    if mode & 0o077 != 0 {
        std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o600))?;
        tracing::warn!(
            path = %path.display(),
            was = format!("{mode:o}"),
            "the admin token file was accessible to other users; its mode is now 600 (consider rotating the token)"
        );
    }
    Ok(())
}

#[cfg(not(unix))]
fn restrict(_: &Path) -> io::Result<()> {
    Ok(())
}
