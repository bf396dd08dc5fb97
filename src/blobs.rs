//! The blob store (SPEC §11): archived scans (content-addressed by SHA-256) and rendered PDFs,
//! behind one interface. A folder under the data dir by default; the database itself when several
//! instances share PostgreSQL, so that every instance sees every blob.

use std::io::Write;
use std::path::PathBuf;

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
