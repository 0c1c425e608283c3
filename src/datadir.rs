//! The data directory and the databases in it are the server's alone:
//! accounting keeps command lines and addresses, the identity store people's
//! names and groups. Directories are made 0700 and database files 0600
//! (SQLite gives its -wal and -shm files the database's mode).

use std::fs::{self, OpenOptions, Permissions};
use std::io;
use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};

/// Creates `dir` (and its parents) if needed and makes it 0700.
pub fn private_dir(dir: &Path) -> io::Result<()> {
    fs::create_dir_all(dir)?;
    fs::set_permissions(dir, Permissions::from_mode(0o700))
}

/// Creates the database file `path` as 0600 if it is missing, and takes
/// group and other access away from it and its journals if it has some.
pub fn private_db(path: &Path) -> io::Result<()> {
    OpenOptions::new()
        .create(true)
        .append(true)
        .mode(0o600)
        .open(path)?;
    for suffix in ["", "-wal", "-shm", "-journal"] {
        let mut p = path.as_os_str().to_owned();
        p.push(suffix);
        let p = Path::new(&p);
        match fs::metadata(p) {
            Ok(m) if m.permissions().mode() & 0o077 != 0 => {
                fs::set_permissions(p, Permissions::from_mode(0o600))?;
            }
            Ok(_) => {}
            Err(e) if e.kind() == io::ErrorKind::NotFound => {}
            Err(e) => return Err(e),
        }
    }
    Ok(())
}

/// Why [`open_sqlite`] failed; each store maps it to its own error.
#[derive(Debug)]
pub enum OpenError {
    /// The directory or the file could not be made private.
    Create { path: PathBuf, cause: io::Error },
    Db {
        path: PathBuf,
        cause: rusqlite::Error,
    },
}

/// Opens (creating it private) the SQLite database `file` in `data_dir`,
/// in WAL mode with the given `synchronous` level, and applies `schema`.
/// Calls on the connection block: use it off the async runtime.
pub fn open_sqlite(
    data_dir: &Path,
    file: &str,
    synchronous: &str,
    schema: &str,
) -> Result<(PathBuf, rusqlite::Connection), OpenError> {
    private_dir(data_dir).map_err(|cause| OpenError::Create {
        path: data_dir.to_path_buf(),
        cause,
    })?;
    let path = data_dir.join(file);
    private_db(&path).map_err(|cause| OpenError::Create {
        path: path.clone(),
        cause,
    })?;
    let db = |cause| OpenError::Db {
        path: path.clone(),
        cause,
    };
    let conn = rusqlite::Connection::open(&path).map_err(db)?;
    conn.busy_timeout(std::time::Duration::from_secs(5))
        .map_err(db)?;
    conn.execute_batch(&format!(
        "PRAGMA journal_mode = WAL; PRAGMA synchronous = {synchronous};"
    ))
    .map_err(db)?;
    conn.execute_batch(schema).map_err(db)?;
    Ok((path, conn))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn mode(p: &Path) -> u32 {
        fs::metadata(p).unwrap().permissions().mode() & 0o777
    }

    #[test]
    fn both_stores_keep_their_files_to_the_server() {
        let top = tempfile::tempdir().unwrap();
        let dir = top.path().join("data");
        let store = crate::accounting::SqliteStore::open(&dir, Default::default()).unwrap();
        let identity = crate::identity::IdentityStore::open(&dir).unwrap();
        assert_eq!(mode(&dir), 0o700);
        let files: Vec<_> = fs::read_dir(&dir)
            .unwrap()
            .map(|e| e.unwrap().path())
            .collect();
        assert!(files.len() >= 2, "{files:?}");
        for f in &files {
            assert_eq!(mode(f), 0o600, "{}", f.display());
        }
        store.close().unwrap();
        drop(identity);
    }

    #[test]
    fn loose_modes_are_tightened() {
        let top = tempfile::tempdir().unwrap();
        let dir = top.path().join("d");
        fs::create_dir(&dir).unwrap();
        fs::set_permissions(&dir, Permissions::from_mode(0o755)).unwrap();
        let db = dir.join("x.sqlite3");
        fs::write(&db, b"").unwrap();
        fs::set_permissions(&db, Permissions::from_mode(0o644)).unwrap();
        let wal = dir.join("x.sqlite3-wal");
        fs::write(&wal, b"").unwrap();
        fs::set_permissions(&wal, Permissions::from_mode(0o664)).unwrap();
        private_dir(&dir).unwrap();
        private_db(&db).unwrap();
        assert_eq!((mode(&dir), mode(&db), mode(&wal)), (0o700, 0o600, 0o600));
    }
}
