//! The central directory of an uploaded zip, measured before the zip reader takes it in: the
//! reader holds every entry's metadata in memory, so a zip declaring too many entries, or names,
//! extra fields or comments too long, is refused from its end records and headers alone. A room
//! of its own because it reads the ZIP format byte by byte, below the zip crate.

use std::fs::File;
use std::io::{BufReader, Read, Seek};

use super::upload::bad;
use crate::app::{AppError, Result};

/// A central directory an end record declares, as the zip reader would take it: from the ZIP64
/// end record whenever the classic record has a field saturated (as zip's `may_be_zip64`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct DeclaredDirectory {
    entries: u64,
    size: u64,
    start: u64,
}

/// The bytes of central directory an upload may have, whatever its entry count: the zip reader
/// holds all of it, several times over, while it reads the zip.
const MAX_DIRECTORY_BYTES: u64 = 32 << 20;

/// The central-directory bytes allowed per entry: 46 fixed bytes, a name of up to
/// [`MAX_NAME_BYTES`] and some extra fields (a typical entry takes about 120).
const DIRECTORY_BYTES_PER_ENTRY: u64 = 1536;

/// The longest entry name an upload may have (a scan's path in the manifest is far shorter).
const MAX_NAME_BYTES: u64 = 1024;

/// The most bytes of extra fields, or of comment, an entry may carry.
const MAX_EXTRA_BYTES: u64 = 4096;

fn le(bytes: &[u8]) -> u64 {
    bytes
        .iter()
        .rev()
        .fold(0u64, |n, &b| (n << 8) | u64::from(b))
}

/// Every central directory declared by an end-of-central-directory record the zip reader could
/// use (those in the last 64 KiB + 22 bytes, and the ZIP64 records they point at), read before
/// the reader takes in the central directory.
fn declared_directories(zip: &File) -> std::io::Result<Vec<DeclaredDirectory>> {
    let invalid =
        |what: &str| std::io::Error::new(std::io::ErrorKind::InvalidData, what.to_string());
    let mut zip = BufReader::new(zip);
    let length = zip.seek(std::io::SeekFrom::End(0))?;
    let start = length.saturating_sub(22 + (1 << 16));
    zip.seek(std::io::SeekFrom::Start(start))?;
    let mut tail = Vec::new();
    zip.read_to_end(&mut tail)?;
    let mut declared = Vec::new();
    for at in (0..tail.len().saturating_sub(21)).filter(|&at| tail[at..].starts_with(b"PK\x05\x06"))
    {
        let end = &tail[at..at + 22];
        let classic = DeclaredDirectory {
            entries: le(&end[8..10]).max(le(&end[10..12])),
            size: le(&end[12..16]),
            start: le(&end[16..20]),
        };
        let zip64 = classic.entries >= 0xFFFF
            || classic.size == 0xFFFF_FFFF
            || classic.start == 0xFFFF_FFFF;
        if !zip64 {
            declared.push(classic);
            continue;
        }
        // ZIP64: the locator just before the record says where the ZIP64 record is.
        let locator = at
            .checked_sub(20)
            .map(|l| &tail[l..l + 20])
            .filter(|l| l.starts_with(b"PK\x06\x07"))
            .ok_or_else(|| invalid("a ZIP64 end record without its locator"))?;
        let mut record = [0u8; 56];
        zip.seek(std::io::SeekFrom::Start(le(&locator[8..16])))?;
        zip.read_exact(&mut record)?;
        if !record.starts_with(b"PK\x06\x06") {
            return Err(invalid("a ZIP64 locator pointing nowhere"));
        }
        declared.push(DeclaredDirectory {
            entries: le(&record[24..32]).max(le(&record[32..40])),
            size: le(&record[40..48]),
            start: le(&record[48..56]),
        });
    }
    Ok(declared)
}

/// Refuses a zip whose central directory would exhaust memory once the zip reader takes it in:
/// too many entries or bytes declared, or (walking the entries the reader would read, a header
/// at a time) a name, extra field or comment too long, or more bytes than allowed in all.
pub(super) fn check_central_directory(zip: &File, most_entries: u64) -> Result<()> {
    let unreadable = |e: std::io::Error| bad(format!("not a readable zip: {e}"));
    let most_bytes = most_entries
        .saturating_mul(DIRECTORY_BYTES_PER_ENTRY)
        .min(MAX_DIRECTORY_BYTES);
    for directory in declared_directories(zip).map_err(unreadable)? {
        if directory.entries > most_entries {
            return Err(bad(format!(
                "{} entries is too many: at most {most_entries} (a scan per manifest row, and \
                 folders)",
                directory.entries
            )));
        }
        if directory.size > most_bytes {
            return Err(too_big_a_directory(directory.size, most_bytes));
        }
        walk_central_directory(zip, &directory, most_bytes)?;
    }
    Ok(())
}

fn too_big_a_directory(size: u64, most_bytes: u64) -> AppError {
    bad(format!(
        "its central directory is {size} bytes, over the limit of {most_bytes} \
         ({DIRECTORY_BYTES_PER_ENTRY} bytes per entry allowed, {MAX_DIRECTORY_BYTES} at most)"
    ))
}

/// Reads the central-directory headers `directory` declares, one at a time, refusing an entry
/// whose name, extra fields or comment is too long, or a directory over `most_bytes` in all.
/// Stops quietly where the headers stop: the zip reader refuses the zip there too.
fn walk_central_directory(
    zip: &File,
    directory: &DeclaredDirectory,
    most_bytes: u64,
) -> Result<()> {
    let mut reader = BufReader::new(zip);
    if reader
        .seek(std::io::SeekFrom::Start(directory.start))
        .is_err()
    {
        return Ok(());
    }
    let mut walked: u64 = 0;
    for index in 0..directory.entries {
        let mut header = [0u8; 46];
        if reader.read_exact(&mut header).is_err() || !header.starts_with(b"PK\x01\x02") {
            return Ok(());
        }
        let (name_bytes, extra_bytes, comment_bytes) = (
            le(&header[28..30]),
            le(&header[30..32]),
            le(&header[32..34]),
        );
        let mut name = vec![0; name_bytes.min(MAX_NAME_BYTES) as usize];
        if reader.read_exact(&mut name).is_err() {
            return Ok(());
        }
        let mut name = String::from_utf8_lossy(&name).into_owned();
        if name_bytes > MAX_NAME_BYTES {
            name = name.chars().take(40).chain("…".chars()).collect();
            return Err(bad(format!(
                "entry {index} ({name:?}) has a name of {name_bytes} bytes, over the limit of \
                 {MAX_NAME_BYTES}"
            )));
        }
        for (what, bytes) in [("extra fields", extra_bytes), ("comment", comment_bytes)] {
            if bytes > MAX_EXTRA_BYTES {
                return Err(bad(format!(
                    "entry {index} ({name:?}) carries {bytes} bytes of {what}, over the limit \
                     of {MAX_EXTRA_BYTES}"
                )));
            }
        }
        walked += 46 + name_bytes + extra_bytes + comment_bytes;
        if walked > most_bytes {
            return Err(bad(format!(
                "its central directory passes {most_bytes} bytes at entry {index} ({name:?}), \
                 over the limit ({DIRECTORY_BYTES_PER_ENTRY} bytes per entry allowed, \
                 {MAX_DIRECTORY_BYTES} at most)"
            )));
        }
        // At most 8 KiB: the buffered reader mostly skips within its buffer.
        if reader
            .seek_relative((extra_bytes + comment_bytes) as i64)
            .is_err()
        {
            return Ok(());
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use std::io::{Read, Seek, Write};

    use super::*;
    use crate::batch::upload::check_zip;
    use crate::batch::upload::tests::{check_bytes, zip_of, LIMITS};

    #[test]
    fn the_entry_count_is_judged_from_the_end_record_before_the_zip_is_read() {
        let mut zip = zip_of(&[("manifest.csv", b"x"), ("scans/a.png", b"png")]);
        assert_eq!(
            declared_directories(&zip).unwrap()[0].entries,
            2,
            "the entry count as declared"
        );
        // Claim 60,000 entries (the central directory still holds 2).
        let end = zip.seek(std::io::SeekFrom::End(-22)).unwrap();
        for at in [8, 10] {
            zip.seek(std::io::SeekFrom::Start(end + at)).unwrap();
            zip.write_all(&60_000u16.to_le_bytes()).unwrap();
        }
        let refused = check_zip(&zip, &LIMITS).unwrap_err().to_string();
        assert!(
            refused.contains("60000 entries is too many: at most 1010"),
            "{refused}"
        );
    }

    /// The bytes of `zip` (no comment) with its end record rewritten by `change`.
    fn with_end_record(zip: File, change: impl FnOnce(&mut Vec<u8>)) -> Vec<u8> {
        let mut bytes = Vec::new();
        (&zip).read_to_end(&mut bytes).unwrap();
        let mut end = bytes.split_off(bytes.len() - 22);
        assert!(end.starts_with(b"PK\x05\x06"));
        change(&mut end);
        bytes.extend_from_slice(&end);
        bytes
    }

    fn refusal(bytes: &[u8]) -> String {
        check_bytes(bytes).unwrap_err().to_string()
    }

    #[test]
    fn a_zip64_count_is_read_whenever_the_directory_offset_sends_the_reader_there() {
        let zip = zip_of(&[("manifest.csv", b"x"), ("scans/a.png", b"png")]);
        let bytes = with_end_record(zip, |_| {});
        let (end, directory_size) = (bytes.len() - 22, &bytes[bytes.len() - 10..bytes.len() - 6]);
        let directory_size = u32::from_le_bytes(directory_size.try_into().unwrap());
        let directory_start = end as u64 - u64::from(directory_size);
        // A ZIP64 end record claiming 60,000 entries, its locator, and an end record claiming
        // 2 entries whose directory offset (0xFFFFFFFF) sends the zip reader to the ZIP64 record.
        let mut hostile = bytes[..end].to_vec();
        let zip64_at = hostile.len() as u64;
        hostile.extend_from_slice(b"PK\x06\x06");
        hostile.extend_from_slice(&44u64.to_le_bytes());
        hostile.extend_from_slice(&[45, 0, 45, 0, 0, 0, 0, 0, 0, 0, 0, 0]);
        hostile.extend_from_slice(&60_000u64.to_le_bytes());
        hostile.extend_from_slice(&60_000u64.to_le_bytes());
        hostile.extend_from_slice(&u64::from(directory_size).to_le_bytes());
        hostile.extend_from_slice(&directory_start.to_le_bytes());
        hostile.extend_from_slice(b"PK\x06\x07\0\0\0\0");
        hostile.extend_from_slice(&zip64_at.to_le_bytes());
        hostile.extend_from_slice(&1u32.to_le_bytes());
        hostile.extend_from_slice(b"PK\x05\x06\0\0\0\0\x02\0\x02\0");
        hostile.extend_from_slice(&directory_size.to_le_bytes());
        hostile.extend_from_slice(&u32::MAX.to_le_bytes());
        hostile.extend_from_slice(&[0, 0]);
        let refused = refusal(&hostile);
        assert!(
            refused.contains("60000 entries is too many: at most 1010"),
            "{refused}"
        );
    }

    #[test]
    fn a_central_directory_declared_over_its_bound_is_refused_before_it_is_read() {
        let zip = zip_of(&[("manifest.csv", b"x"), ("scans/a.png", b"png")]);
        let bytes = with_end_record(zip, |end| {
            end[12..16].copy_from_slice(&2_000_000u32.to_le_bytes());
        });
        let refused = refusal(&bytes);
        assert!(
            refused.contains("its central directory is 2000000 bytes, over the limit of 1551360"),
            "{refused}"
        );
    }

    #[test]
    fn an_entry_with_a_name_over_a_kib_is_refused_naming_it() {
        let long = format!("scans/{}.png", "a".repeat(1100));
        let refused = refusal(&with_end_record(
            zip_of(&[("manifest.csv", b"x"), (&long, b"png")]),
            |_| {},
        ));
        assert!(
            refused.contains("entry 1 (\"scans/aaaa")
                && refused.contains("has a name of 1110 bytes, over the limit of 1024"),
            "{refused}"
        );
        // The second central-directory header claims a comment of 5000 bytes.
        let commented = with_end_record(
            zip_of(&[("manifest.csv", b"x"), ("scans/a.png", b"png")]),
            |_| {},
        );
        let mut commented = commented;
        let second = (0..commented.len())
            .filter(|&at| commented[at..].starts_with(b"PK\x01\x02"))
            .nth(1)
            .unwrap();
        commented[second + 32..second + 34].copy_from_slice(&5000u16.to_le_bytes());
        let refused = refusal(&commented);
        assert!(
            refused.contains(
                "entry 1 (\"scans/a.png\") carries 5000 bytes of comment, over the limit of 4096"
            ),
            "{refused}"
        );
    }
}
