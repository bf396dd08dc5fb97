//! An uploaded zip, from the bytes a client sent to the folder a job converts: checked
//! completely before anything is kept — names inside the batch, sizes, what it expands to, CRCs,
//! manifest line lengths, and (in [`super::zip_directory`]) the central directory the zip reader
//! would take in — then unpacked, the manifest and only the scans it names. Apart from the jobs
//! because this is all about a hostile file, nothing about running a conversion.

use std::collections::HashSet;
use std::fmt::Display;
use std::fs::File;
use std::io::{BufReader, Read, Seek, Write};
use std::path::{Component, Path, PathBuf};

use zip::ZipArchive;

use super::limits::ManifestRows;
use super::manifest::Manifest;
use super::zip_directory::check_central_directory;
use crate::app::{App, AppError, Result};
use crate::directory::Directory;

/// The largest manifest a zip may carry.
const MAX_MANIFEST_BYTES: u64 = 512 << 20;

/// The folder entries a zip may have beside a file per manifest row.
const MAX_FOLDERS: u64 = 1000;

/// What an uploaded zip may hold, from the settings.
#[derive(Debug, Clone, Copy)]
pub(super) struct UploadLimits {
    scan: u64,
    rows: u64,
    expanded: u64,
    manifest_line: u64,
}

impl UploadLimits {
    pub(super) fn of(app: &App) -> UploadLimits {
        let s = &app.settings;
        UploadLimits {
            scan: s.max_scan_bytes,
            rows: s.max_manifest_rows,
            expanded: s.max_expanded_bytes,
            manifest_line: s.max_manifest_line_bytes,
        }
    }
}

/// Opens a zip that starts at the start of the upload (no data before it, as a self-extracting
/// archive has), so that the zip reader reads the central directory exactly where the end
/// record says, where [`check_central_directory`] measured it.
fn open_zip<R: Read + Seek>(reader: R) -> Result<ZipArchive<R>> {
    let config = zip::read::Config {
        archive_offset: zip::read::ArchiveOffset::Known(0),
    };
    ZipArchive::with_config(config, reader).map_err(|e| bad(format!("not a readable zip: {e}")))
}

pub(super) fn bad(reason: String) -> AppError {
    AppError::BadInput(format!("the uploaded batch: {reason}"))
}

/// Checks a zip completely, writing nothing: readable; `manifest.csv` at its root, within its
/// size limit (a scan's limit is its row's concern); every entry a plain file or folder named
/// inside the batch; no two entries sharing
/// bytes; all of them together expanding to no more than the limit; and every entry read to its
/// end, so that its size and CRC are proven and the manifest's lines measured.
pub(super) fn check_zip(zip: &File, limits: &UploadLimits) -> Result<()> {
    // The zip reader holds every entry's metadata (~400 bytes each, and its name, extra fields
    // and comment): bound them first.
    let most = limits.rows + MAX_FOLDERS;
    check_central_directory(zip, most)?;
    let mut archive = open_zip(BufReader::new(zip))?;
    if archive.len() as u64 > most {
        return Err(bad(format!(
            "{} entries is too many: at most {most}",
            archive.len()
        )));
    }
    // Entries sharing their compressed bytes expand a small zip many times over.
    if archive
        .has_overlapping_entries()
        .map_err(|e| bad(format!("not a readable zip: {e}")))?
    {
        return Err(bad("two entries share the same bytes of the zip".into()));
    }
    let mut manifest = None;
    let mut paths = std::collections::HashMap::new();
    let mut expanded: u64 = 0;
    for i in 0..archive.len() {
        let file = archive
            .by_index_raw(i)
            .map_err(|e| bad(format!("entry {i}: {e}")))?;
        let name = String::from_utf8_lossy(file.name_raw()).into_owned();
        if file.is_symlink() {
            return Err(bad(format!("{name:?} is a link; a batch holds files only")));
        }
        // Judged on the raw name too: the zip reader would quietly drop a leading '/'.
        let path = file
            .enclosed_name()
            .and_then(|_| within_batch(Path::new(&name.replace('\\', "/"))))
            .ok_or_else(|| bad(format!("{name:?} would be written outside the batch")))?;
        // The extraction takes the last entry with a path: two would let one pass unchecked.
        if let Some(first) = paths.insert(path.clone(), name.clone()) {
            return Err(bad(format!(
                "{first:?} and {name:?} are the same path in the batch"
            )));
        }
        // A scan over its limit is its row's failure, as on a folder (the extraction leaves it
        // packed); what protects memory and disk is the bound on all entries together below.
        if path == Path::new("manifest.csv") {
            manifest = Some(i);
            if file.size() > MAX_MANIFEST_BYTES {
                return Err(bad(format!(
                    "{name:?} is {} bytes, over the limit of {MAX_MANIFEST_BYTES}",
                    file.size()
                )));
            }
        }
        expanded = expanded.saturating_add(file.size());
    }
    if manifest.is_none() {
        return Err(bad("it has no manifest.csv at its root".into()));
    }
    if expanded > limits.expanded {
        return Err(bad(format!(
            "its entries expand to {expanded} bytes, over the limit of {} bytes",
            limits.expanded
        )));
    }
    for i in 0..archive.len() {
        let mut file = archive
            .by_index(i)
            .map_err(|e| bad(format!("entry {i}: {e}")))?;
        if file.is_dir() {
            continue;
        }
        let mut lines = (manifest == Some(i)).then(|| ManifestRows::new(limits.manifest_line));
        copy_entry(&mut file, &mut std::io::sink(), lines.as_mut())?;
    }
    Ok(())
}

/// Copies an entry to `out`, reading no more than its header declares and to its end (where the
/// zip reader compares the CRC), measuring lines on the way when `lines` is given.
fn copy_entry<R: Read>(
    file: &mut zip::read::ZipFile<'_, R>,
    out: &mut impl Write,
    mut lines: Option<&mut ManifestRows>,
) -> Result<()> {
    let name = String::from_utf8_lossy(file.name_raw()).into_owned();
    let declared = file.size();
    let damaged = |e: &dyn Display| bad(format!("{name:?} is damaged: {e}"));
    let mut buffer = vec![0; 64 << 10];
    let mut copied: u64 = 0;
    let mut limited = file.take(declared + 1);
    loop {
        let n = limited.read(&mut buffer).map_err(|e| damaged(&e))?;
        if n == 0 {
            break;
        }
        copied += n as u64;
        if let Some(lines) = lines.as_deref_mut() {
            lines
                .measure(&buffer[..n])
                .map_err(|e| bad(e.to_string()))?;
        }
        out.write_all(&buffer[..n])
            .map_err(|e| AppError::Config(format!("extracting a batch: {e}")))?;
    }
    if copied != declared {
        return Err(bad(format!("{name:?} is not the size its header declares")));
    }
    Ok(())
}

/// Extracts a checked zip into `dir` (emptied first): the manifest, then only the entries its
/// rows name as scans (anything else in the zip is left packed).
pub(super) fn extract(
    zip: &File,
    dir: &Path,
    limits: &UploadLimits,
    directory: &Directory,
) -> Result<()> {
    check_zip(zip, limits)?;
    let io = |e: std::io::Error| AppError::Config(format!("extracting a batch: {e}"));
    let _ = std::fs::remove_dir_all(dir);
    std::fs::create_dir_all(dir).map_err(io)?;
    let mut reader = BufReader::new(zip);
    reader.rewind().map_err(io)?;
    let mut archive = open_zip(reader)?;
    // Each file entry by its path inside the batch.
    let mut files = std::collections::HashMap::new();
    for i in 0..archive.len() {
        let file = archive.by_index_raw(i).map_err(|e| bad(e.to_string()))?;
        if let Some(path) = file.enclosed_name().and_then(|p| within_batch(&p)) {
            if !file.is_dir() {
                files.insert(path, i);
            }
        }
    }
    let manifest = PathBuf::from("manifest.csv");
    let wanted = files.get(&manifest).copied();
    extract_entry(
        &mut archive,
        wanted,
        &dir.join(&manifest),
        MAX_MANIFEST_BYTES,
    )?;
    for scan in scans_named(&dir.join(&manifest), directory, limits.manifest_line) {
        // A scan not in the zip is reported on its row by the conversion.
        if let Some(&index) = files.get(&scan) {
            extract_entry(&mut archive, Some(index), &dir.join(&scan), limits.scan)?;
        }
    }
    Ok(())
}

/// Writes entry `index` to `to`. An entry over `limit` bytes is not unpacked: a sparse file of
/// its size (checked against its CRC by [`check_zip`]) stands in for it, so the conversion
/// rejects its row by the same size check as on a folder, naming the size, at no cost in disk.
fn extract_entry<R: Read + Seek>(
    archive: &mut ZipArchive<R>,
    index: Option<usize>,
    to: &Path,
    limit: u64,
) -> Result<()> {
    let io = |e: std::io::Error| AppError::Config(format!("extracting a batch: {e}"));
    let index = index.ok_or_else(|| bad("it has no manifest.csv at its root".into()))?;
    let mut file = archive
        .by_index(index)
        .map_err(|e| bad(format!("entry {index}: {e}")))?;
    if let Some(parent) = to.parent() {
        std::fs::create_dir_all(parent).map_err(io)?;
    }
    let out = File::create(to).map_err(io)?;
    if file.size() > limit {
        return out.set_len(file.size()).map_err(io);
    }
    let mut out = std::io::BufWriter::new(out);
    copy_entry(&mut file, &mut out, None)?;
    out.flush().map_err(io)
}

/// The scans the manifest's rows name, as paths inside the batch (a name that would leave it is
/// left out: its row is rejected when converted). A manifest that cannot be read names none; the
/// conversion reports why.
fn scans_named(manifest: &Path, directory: &Directory, row_limit: u64) -> HashSet<PathBuf> {
    let Ok(rows) = Manifest::open(manifest, directory, row_limit) else {
        return HashSet::new();
    };
    rows.map_while(|row| row.ok())
        .filter_map(|row| within_batch(Path::new(row.get("scan"))))
        .collect()
}

/// `path` as plain names below the batch folder (`.` dropped); None when it has `..`, a root or
/// a prefix.
fn within_batch(path: &Path) -> Option<PathBuf> {
    let mut inside = PathBuf::new();
    for part in path.components() {
        match part {
            Component::Normal(name) => inside.push(name),
            Component::CurDir => {}
            _ => return None,
        }
    }
    (!inside.as_os_str().is_empty()).then_some(inside)
}

#[cfg(test)]
pub(super) mod tests {
    use super::*;

    pub(crate) fn zip_of(entries: &[(&str, &[u8])]) -> File {
        let mut out = tempfile::tempfile().unwrap();
        let mut zip = zip::ZipWriter::new(&mut out);
        for (name, bytes) in entries {
            zip.start_file(*name, zip::write::SimpleFileOptions::default())
                .unwrap();
            zip.write_all(bytes).unwrap();
        }
        zip.finish().unwrap();
        out.rewind().unwrap();
        out
    }

    pub(crate) const LIMITS: UploadLimits = UploadLimits {
        scan: 100,
        rows: 10,
        expanded: 1000,
        manifest_line: 80,
    };

    /// Bytes of a small valid upload, to damage.
    fn valid_upload() -> Vec<u8> {
        let mut zip = zip_of(&[
            ("manifest.csv", b"type_code,number\r\n1,2\r\n"),
            ("scans/a.png", &[7; 60]),
        ]);
        let mut bytes = Vec::new();
        zip.read_to_end(&mut bytes).unwrap();
        bytes
    }

    pub(crate) fn check_bytes(bytes: &[u8]) -> Result<()> {
        let mut file = tempfile::tempfile().unwrap();
        file.write_all(bytes).unwrap();
        file.rewind().unwrap();
        check_zip(&file, &LIMITS)
    }

    proptest::proptest! {
        #![proptest_config(proptest::prelude::ProptestConfig::with_cases(400))]

        /// A hostile client's zip — any bytes, or a valid upload cut, overwritten or spliced —
        /// is checked without a panic: passed, or refused naming the uploaded batch.
        #[test]
        fn no_damage_to_an_upload_makes_the_zip_check_panic(
            from in 0usize..400,
            to in 0usize..400,
            splice in proptest::collection::vec(proptest::prelude::any::<u8>(), 0..40),
            arbitrary in proptest::collection::vec(proptest::prelude::any::<u8>(), 0..600),
        ) {
            let good = valid_upload();
            let (from, to) = (from.min(to).min(good.len()), from.max(to).min(good.len()));
            let mut damaged = good.clone();
            damaged.splice(from..to, splice);
            for bytes in [damaged, arbitrary] {
                if let Err(e) = check_bytes(&bytes) {
                    proptest::prop_assert!(e.to_string().starts_with("the uploaded batch"), "{e}");
                }
            }
        }
    }

    #[test]
    fn uploads_that_escape_lack_a_manifest_or_are_too_large_are_refused() {
        let fine = zip_of(&[("manifest.csv", b"x"), ("scans/a.png", b"png")]);
        check_zip(&fine, &LIMITS).unwrap();
        let refused = |zip: File| check_zip(&zip, &LIMITS).unwrap_err().to_string();
        assert!(
            refused(zip_of(&[("manifest.csv", b"x"), ("../evil", b"x")]))
                .contains("outside the batch")
        );
        assert!(refused(zip_of(&[("scans/a.png", b"x")])).contains("no manifest.csv"));
        let mut not_a_zip = tempfile::tempfile().unwrap();
        not_a_zip.write_all(b"not a zip").unwrap();
        assert!(refused(not_a_zip).contains("not a readable zip"));
        let many: Vec<(String, &[u8])> = (0..11)
            .map(|i| (format!("{i}.png"), &[0u8; 99][..]))
            .collect();
        let many: Vec<(&str, &[u8])> = many.iter().map(|(n, b)| (n.as_str(), *b)).collect();
        let mut many = many;
        many.push(("manifest.csv", b"x"));
        assert!(refused(zip_of(&many)).contains("over the limit of 1000 bytes"));
    }

    #[test]
    fn two_entries_naming_the_same_path_are_refused_naming_both() {
        // The second would be the one extracted, checked only as a scan.
        let long_lines = "x".repeat(90);
        let refused = check_zip(
            &zip_of(&[
                ("manifest.csv", b"type_code\n"),
                ("./manifest.csv", long_lines.as_bytes()),
            ]),
            &LIMITS,
        )
        .unwrap_err()
        .to_string();
        assert!(
            refused.contains("\"manifest.csv\" and \"./manifest.csv\" are the same path"),
            "{refused}"
        );
        // Alone, it is the manifest, as the extraction takes it.
        check_zip(&zip_of(&[("./manifest.csv", b"x")]), &LIMITS).unwrap();
    }

    #[test]
    fn only_the_manifest_and_the_scans_it_names_are_extracted() {
        let directory =
            Directory::load(&Path::new(env!("CARGO_MANIFEST_DIR")).join("templates/directory"))
                .unwrap();
        let header = super::super::manifest::STANDARD_COLUMNS.join(",");
        let manifest = format!(
            "{header}\n11100000000013338W032,A1,甲,x,2026-01-01,,./scans/a.png\n\
             11100000000013338W032,A2,乙,x,2026-01-01,,../scans/b.png\n"
        );
        let zip = zip_of(&[
            ("manifest.csv", manifest.as_bytes()),
            ("scans/a.png", b"png"),
            ("scans/b.png", b"png"),
            ("other/c.png", b"png"),
        ]);
        let dir = tempfile::tempdir().unwrap();
        let batch = dir.path().join("b");
        extract(&zip, &batch, &LIMITS, &directory).unwrap();
        assert_eq!(std::fs::read(batch.join("scans/a.png")).unwrap(), b"png");
        assert!(!batch.join("scans/b.png").exists());
        assert!(!batch.join("other").exists());
    }

    #[test]
    fn a_scan_over_its_limit_passes_the_check_and_stands_in_by_its_size_only() {
        let directory =
            Directory::load(&Path::new(env!("CARGO_MANIFEST_DIR")).join("templates/directory"))
                .unwrap();
        let header = super::super::manifest::STANDARD_COLUMNS.join(",");
        let manifest =
            format!("{header}\n11100000000013338W032,A1,甲,x,2026-01-01,,scans/big.png\n");
        let big = [0x89; 101]; // one byte over LIMITS.scan
        let zip = zip_of(&[
            ("manifest.csv", manifest.as_bytes()),
            ("scans/big.png", &big),
        ]);
        check_zip(&zip, &LIMITS).unwrap();
        let dir = tempfile::tempdir().unwrap();
        let batch = dir.path().join("b");
        extract(&zip, &batch, &LIMITS, &directory).unwrap();
        let stand_in = std::fs::read(batch.join("scans/big.png")).unwrap();
        assert_eq!(
            stand_in.len(),
            101,
            "the entry's size, for the row's reason"
        );
        assert!(
            stand_in.iter().all(|&b| b == 0),
            "its bytes are not unpacked"
        );
        // The bound on all entries together still refuses a zip, before anything is read.
        let many = zip_of(&[
            ("manifest.csv", b"x"),
            ("a.png", &[0; 600]),
            ("b.png", &[0; 600]),
        ]);
        let refused = check_zip(&many, &LIMITS).unwrap_err().to_string();
        assert!(
            refused.contains("over the limit of 1000 bytes"),
            "{refused}"
        );
    }
}
