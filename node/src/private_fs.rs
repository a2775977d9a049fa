//! Files only their owner may read: the node's and the client's databases (ciphertext metadata,
//! the client's device secret and history), and the one-time admin link.

use anyhow::Context;
use std::path::Path;

/// Creates `dir` (and missing parents) readable by the owner only. A dir that exists already keeps
/// its mode: it may be one the operator chose to share (or their home).
pub fn create_dir(dir: &Path) -> anyhow::Result<()> {
    let mut builder = std::fs::DirBuilder::new();
    builder.recursive(true);
    #[cfg(unix)]
    std::os::unix::fs::DirBuilderExt::mode(&mut builder, 0o700);
    builder.create(dir).with_context(|| format!("creating {}", dir.display()))
}

/// Opens (or creates) a redb database readable and writable by the owner only. The file is created
/// 0600 before redb opens it; an existing file with a looser mode is tightened first.
pub fn open_database(path: &Path) -> anyhow::Result<redb::Database> {
    let mut options = std::fs::OpenOptions::new();
    options.read(true).write(true).create(true).truncate(false);
    #[cfg(unix)]
    std::os::unix::fs::OpenOptionsExt::mode(&mut options, 0o600);
    let file = options.open(path).with_context(|| format!("opening {}", path.display()))?;
    tighten(&file, path)?;
    drop(file);
    redb::Database::create(path).with_context(|| format!("opening database {}", path.display()))
}

/// Writes `bytes` to `path` (through a temporary file), readable and writable by the owner only.
pub fn write(path: &Path, bytes: &[u8]) -> anyhow::Result<()> {
    use std::io::Write;
    let tmp = path.with_extension("tmp");
    let _ = std::fs::remove_file(&tmp);
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create_new(true);
    #[cfg(unix)]
    std::os::unix::fs::OpenOptionsExt::mode(&mut options, 0o600);
    let mut file = options.open(&tmp).with_context(|| format!("creating {}", tmp.display()))?;
    file.write_all(bytes)?;
    file.sync_all()?;
    std::fs::rename(&tmp, path).with_context(|| format!("writing {}", path.display()))
}

#[cfg(unix)]
fn tighten(file: &std::fs::File, path: &Path) -> anyhow::Result<()> {
    use std::os::unix::fs::PermissionsExt;
    let mode = file.metadata()?.permissions().mode();
    if mode & 0o077 != 0 {
        file.set_permissions(std::fs::Permissions::from_mode(mode & 0o700))
            .with_context(|| format!("making {} private", path.display()))?;
    }
    Ok(())
}

#[cfg(not(unix))]
fn tighten(_file: &std::fs::File, _path: &Path) -> anyhow::Result<()> {
    Ok(())
}

#[cfg(all(test, unix))]
mod tests {
    use super::*;
    use std::os::unix::fs::PermissionsExt;

    fn mode(path: &Path) -> u32 {
        std::fs::metadata(path).unwrap().permissions().mode() & 0o777
    }

    #[test]
    fn new_and_existing_files_end_up_private() {
        let dir = std::env::temp_dir().join(format!("veche-private-fs-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        create_dir(&dir.join("a/b")).unwrap();
        assert_eq!(mode(&dir.join("a/b")), 0o700);
        let db = dir.join("a/b/x.redb");
        drop(open_database(&db).unwrap());
        assert_eq!(mode(&db), 0o600);
        std::fs::set_permissions(&db, std::fs::Permissions::from_mode(0o644)).unwrap();
        drop(open_database(&db).unwrap());
        assert_eq!(mode(&db), 0o600);
        let text = dir.join("a/b/link.txt");
        write(&text, b"hello").unwrap();
        write(&text, b"again").unwrap();
        assert_eq!(mode(&text), 0o600);
        assert_eq!(std::fs::read(&text).unwrap(), b"again");
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
