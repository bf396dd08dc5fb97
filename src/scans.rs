//! The scans a manifest names: found inside the batch only (no `..`, no absolute paths, no links
//! out of it), within the size limit, and of a scan's type judged by content, not by name.

use std::io::Read;
use std::path::{Component, Path};

use crate::messages::{Reason, ScanProblem};

/// A scan read and checked.
pub struct Scan {
    pub bytes: Vec<u8>,
    /// Lowercase hex SHA-256: its archive key and what the signed record binds.
    pub sha256: String,
}

/// The file types a scan may be, by their first bytes.
fn sniff(head: &[u8]) -> Option<&'static str> {
    const KINDS: [(&[u8], &str); 5] = [
        (b"\xFF\xD8\xFF", "JPEG"),
        (b"\x89PNG\r\n\x1a\n", "PNG"),
        (b"II*\x00", "TIFF"),
        (b"MM\x00*", "TIFF"),
        (b"%PDF-", "PDF"),
    ];
    KINDS
        .iter()
        .find(|(magic, _)| head.starts_with(magic))
        .map(|(_, kind)| *kind)
}

/// Reads the scan `relative` of the batch at `root` (canonical), refusing anything that could
/// read outside the batch, a file over `max_bytes`, or one that is no JPEG, PNG, TIFF or PDF.
pub fn read_scan(root: &Path, relative: &str, max_bytes: u64) -> Result<Scan, Reason> {
    let fail = |problem: ScanProblem| Reason::Scan {
        name: relative.to_string(),
        problem,
    };
    if relative.is_empty() {
        return Err(fail(ScanProblem::Missing));
    }
    let rel = Path::new(relative);
    for part in rel.components() {
        match part {
            Component::Normal(_) | Component::CurDir => {}
            Component::ParentDir => return Err(fail(ScanProblem::ClimbsOut)),
            Component::RootDir | Component::Prefix(_) => return Err(fail(ScanProblem::Absolute)),
        }
    }
    let path = root.join(rel);
    let meta = std::fs::symlink_metadata(&path).map_err(|_| fail(ScanProblem::NotInBatch))?;
    if meta.file_type().is_symlink() {
        return Err(fail(ScanProblem::Link));
    }
    // A linked folder on the way would lead out too: the real path must stay inside.
    let real = path
        .canonicalize()
        .map_err(|e| fail(ScanProblem::Unreadable(e.to_string())))?;
    if !real.starts_with(root) {
        return Err(fail(ScanProblem::LeadsOut));
    }
    if !meta.is_file() {
        return Err(fail(ScanProblem::NotAFile));
    }
    if meta.len() > max_bytes {
        return Err(fail(ScanProblem::TooLarge {
            bytes: Some(meta.len()),
            max: max_bytes,
        }));
    }
    let mut bytes = Vec::with_capacity(meta.len() as usize);
    std::fs::File::open(&real)
        .and_then(|f| f.take(max_bytes + 1).read_to_end(&mut bytes))
        .map_err(|e| fail(ScanProblem::Unreadable(e.to_string())))?;
    if bytes.len() as u64 > max_bytes {
        return Err(fail(ScanProblem::TooLarge {
            bytes: None,
            max: max_bytes,
        }));
    }
    if sniff(&bytes).is_none() {
        return Err(fail(ScanProblem::NotAnImage));
    }
    let sha256 = crate::hash::sha256_hex(&bytes);
    Ok(Scan { bytes, sha256 })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn scans_outside_the_batch_too_large_or_of_the_wrong_kind_are_refused() {
        let outside = tempfile::tempdir().unwrap();
        std::fs::write(outside.path().join("secret.png"), b"\x89PNG\r\n\x1a\nzz").unwrap();
        let batch = tempfile::tempdir().unwrap();
        let root = batch.path().canonicalize().unwrap();
        std::fs::create_dir(root.join("scans")).unwrap();
        std::fs::write(root.join("scans/a.png"), b"\x89PNG\r\n\x1a\nabc").unwrap();
        std::fs::write(root.join("scans/b.jpg"), b"not really a jpeg").unwrap();
        std::fs::write(root.join("scans/big.jpg"), vec![0xFF; 2000]).unwrap();
        std::os::unix::fs::symlink(outside.path().join("secret.png"), root.join("link.png"))
            .unwrap();
        std::os::unix::fs::symlink(outside.path(), root.join("linked")).unwrap();

        let ok = read_scan(&root, "scans/a.png", 1000).unwrap();
        assert_eq!(ok.sha256, crate::hash::sha256_hex(b"\x89PNG\r\n\x1a\nabc"));
        let refused = |rel: &str| read_scan(&root, rel, 1000).err().unwrap().en();
        assert!(refused("../x.png").contains("climbs out"));
        assert!(refused("scans/../../x.png").contains("climbs out"));
        assert!(refused("/etc/passwd").contains("absolute"));
        assert!(refused("link.png").contains("is a link"));
        assert!(refused("linked/secret.png").contains("leads out"));
        assert!(refused("scans/b.jpg").contains("not a JPEG, PNG, TIFF or PDF"));
        assert!(refused("scans/big.jpg").contains("over the limit of 1000 bytes"));
        assert!(refused("scans/none.png").contains("not in the batch"));
        assert!(refused("scans").contains("not a file"));
        assert!(refused("").contains("is empty"));
    }
}
