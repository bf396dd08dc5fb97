//! The blob store (SPEC §11): archived scans (content-addressed by SHA-256) and rendered PDFs,
//! behind one interface. A folder under the data dir by default; the database itself when several
//! instances share PostgreSQL, so that every instance sees every blob. Large blobs (uploaded
//! batches) go in and out through files, never whole in memory: on the database in parts of
//! [`PART_BYTES`].

use std::io::{Read, Seek, Write};
use std::path::{Path, PathBuf};

use crate::store::{Store, StoreError};

#[derive(Debug, thiserror::Error)]
pub enum BlobError {
    #[error("blob key {0:?} is not a relative path of letters, digits, '.', '-' and '/'")]
    BadKey(String),
    #[error("blob store folder: {0}")]
    Io(#[from] std::io::Error),
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// The size of the parts a large blob is kept in on the database.
pub const PART_BYTES: usize = 1 << 20;

/// Where blobs live.
#[derive(Clone)]
pub enum Blobs {
    Folder(PathBuf),
    Database(Store),
}

impl Blobs {
    /// The key of an archived scan: its SHA-256, so the same scan is kept once.
    pub fn scan_key(sha256_hex: &str) -> String {
        format!("scans/{}/{sha256_hex}", &sha256_hex[..2])
    }

    /// The key of a version's rendered PDF.
    pub fn pdf_key(version_id: &str) -> String {
        format!("pdf/{version_id}.pdf")
    }

    /// The key of a batch uploaded over HTTP.
    pub fn upload_key(batch_id: &str) -> String {
        format!("uploads/{batch_id}.zip")
    }

    /// Stores `bytes` under `key`, durably, unless the key is there already (keys name their
    /// content, so a second write would write the same bytes).
    pub async fn put(&self, key: &str, bytes: &[u8]) -> Result<(), BlobError> {
        check_key(key)?;
        match self {
            Blobs::Folder(root) => {
                let path = root.join(key);
                if path.exists() {
                    return Ok(());
                }
                let dir = path.parent().expect("keys have a folder");
                let bytes = bytes.to_vec();
                let dir = dir.to_path_buf();
                tokio::task::spawn_blocking(move || -> std::io::Result<()> {
                    std::fs::create_dir_all(&dir)?;
                    // Written aside and renamed: a reader never sees half a blob, and a crash
                    // leaves at most a stray temporary file.
                    let mut file = tempfile::NamedTempFile::new_in(&dir)?;
                    file.write_all(&bytes)?;
                    file.as_file().sync_data()?;
                    file.persist(&path).map_err(|e| e.error)?;
                    Ok(())
                })
                .await
                .map_err(|e| std::io::Error::other(e.to_string()))??;
                Ok(())
            }
            Blobs::Database(store) => Ok(store.put_blob(key, bytes).await?),
        }
    }

    pub async fn get(&self, key: &str) -> Result<Option<Vec<u8>>, BlobError> {
        check_key(key)?;
        match self {
            Blobs::Folder(root) => match tokio::fs::read(root.join(key)).await {
                Ok(bytes) => Ok(Some(bytes)),
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
                Err(e) => Err(e.into()),
            },
            Blobs::Database(store) => Ok(store.blob(key).await?),
        }
    }
}

impl Blobs {
    /// Stores the whole of `file` (a finished temporary file) under `key`: moved into place in a
    /// folder, copied in parts of [`PART_BYTES`] into the database.
    pub async fn put_file(
        &self,
        key: &str,
        file: tempfile::NamedTempFile,
    ) -> Result<(), BlobError> {
        check_key(key)?;
        match self {
            Blobs::Folder(root) => {
                let path = root.join(key);
                tokio::task::spawn_blocking(move || -> std::io::Result<()> {
                    std::fs::create_dir_all(path.parent().expect("keys have a folder"))?;
                    file.as_file().sync_data()?;
                    // Renamed when the temporary file is on the same file system, else copied.
                    if let Err(e) = file.persist(&path) {
                        let mut aside = tempfile::NamedTempFile::new_in(
                            path.parent().expect("keys have a folder"),
                        )?;
                        let mut from = e.file.reopen()?;
                        std::io::copy(&mut from, &mut aside)?;
                        aside.as_file().sync_data()?;
                        aside.persist(&path).map_err(|e| e.error)?;
                    }
                    Ok(())
                })
                .await
                .map_err(|e| std::io::Error::other(e.to_string()))??;
                Ok(())
            }
            Blobs::Database(store) => Ok(put_parts(store, key, file.reopen()?).await?),
        }
    }

    /// Opens a blob stored with [`Blobs::put_file`] for reading: the file itself in a folder, a
    /// copy in an unnamed temporary file under `scratch` from the database.
    pub async fn open(
        &self,
        key: &str,
        scratch: &Path,
    ) -> Result<Option<std::fs::File>, BlobError> {
        check_key(key)?;
        match self {
            Blobs::Folder(root) => match std::fs::File::open(root.join(key)) {
                Ok(file) => Ok(Some(file)),
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
                Err(e) => Err(e.into()),
            },
            Blobs::Database(store) => {
                std::fs::create_dir_all(scratch)?;
                let mut copy = tempfile::tempfile_in(scratch)?;
                let mut part = 0;
                while let Some(bytes) = store.blob_part(key, part).await? {
                    copy =
                        tokio::task::spawn_blocking(move || copy.write_all(&bytes).map(|()| copy))
                            .await
                            .map_err(|e| std::io::Error::other(e.to_string()))??;
                    part += 1;
                }
                if part == 0 {
                    return Ok(None);
                }
                copy.rewind()?;
                Ok(Some(copy))
            }
        }
    }

    /// Removes a blob; nothing happens when it is not there.
    pub async fn delete(&self, key: &str) -> Result<(), BlobError> {
        check_key(key)?;
        match self {
            Blobs::Folder(root) => match tokio::fs::remove_file(root.join(key)).await {
                Err(e) if e.kind() != std::io::ErrorKind::NotFound => Err(e.into()),
                _ => Ok(()),
            },
            Blobs::Database(store) => Ok(store.delete_blob(key).await?),
        }
    }
}

/// Stores all that `from` reads under `key` on the database, in parts of [`PART_BYTES`], in one
/// transaction.
async fn put_parts(
    store: &Store,
    key: &str,
    mut from: impl Read + Send + 'static,
) -> Result<(), BlobError> {
    let (parts, received) = tokio::sync::mpsc::channel(2);
    let reader = tokio::task::spawn_blocking(move || {
        // At least one part, even when empty, so that an empty blob is there.
        for index in 0.. {
            let mut part = Vec::with_capacity(PART_BYTES);
            match (&mut from).take(PART_BYTES as u64).read_to_end(&mut part) {
                Ok(_) if part.is_empty() && index > 0 => break,
                Ok(_) => {
                    if parts.blocking_send(Ok(part)).is_err() {
                        break;
                    }
                }
                // Sent too, so that the parts written so far are not committed.
                Err(e) => {
                    let _ = parts.blocking_send(Err(e));
                    break;
                }
            }
        }
    });
    let stored = store.put_blob_parts(key, received).await;
    reader
        .await
        .map_err(|e| std::io::Error::other(e.to_string()))?;
    Ok(stored?)
}

fn check_key(key: &str) -> Result<(), BlobError> {
    let fine = !key.is_empty()
        && !key.starts_with('/')
        && key
            .split('/')
            .all(|part| !part.is_empty() && part != "." && part != "..")
        && key
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"./-".contains(&b));
    if fine {
        Ok(())
    } else {
        Err(BlobError::BadKey(key.to_string()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Reads `good` bytes, then fails.
    struct BreaksAfter {
        good: usize,
    }

    impl Read for BreaksAfter {
        fn read(&mut self, buffer: &mut [u8]) -> std::io::Result<usize> {
            if self.good == 0 {
                return Err(std::io::Error::other("the disk failed"));
            }
            let n = buffer.len().min(self.good);
            buffer[..n].fill(7);
            self.good -= n;
            Ok(n)
        }
    }

    #[tokio::test]
    async fn a_read_error_mid_blob_commits_none_of_it_on_the_database() {
        let dir = tempfile::tempdir().unwrap();
        let url = format!("sqlite:{}", dir.path().join("db.sqlite").display());
        let store = Store::open(&url).await.unwrap();
        let key = Blobs::upload_key("broken");
        let broken = BreaksAfter {
            good: PART_BYTES + 10,
        };
        assert!(put_parts(&store, &key, broken).await.is_err());
        let blobs = Blobs::Database(store);
        assert!(blobs.open(&key, dir.path()).await.unwrap().is_none());
    }

    #[tokio::test]
    async fn a_folder_blob_reads_back_and_bad_keys_are_refused() {
        let dir = tempfile::tempdir().unwrap();
        let blobs = Blobs::Folder(dir.path().to_path_buf());
        let key = Blobs::scan_key(&"ab".repeat(32));
        blobs.put(&key, b"scan").await.unwrap();
        assert_eq!(
            blobs.get(&key).await.unwrap().as_deref(),
            Some(&b"scan"[..])
        );
        assert_eq!(blobs.get("scans/none").await.unwrap(), None);
        for bad in [
            "../escape",
            "/abs",
            "a//b",
            "a\\b",
            "a/./b",
            "",
            "sp ace",
            "ü",
        ] {
            assert!(blobs.put(bad, b"x").await.is_err(), "{bad:?} accepted");
        }
    }
}
