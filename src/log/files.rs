//! Names and small files of a partition directory.

use std::fs::{self, File};
use std::io::{self, Write};
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};

/// One past the last record made durable: all readers may see.
pub(crate) const HWM: &str = "hwm";
/// Written then renamed over `hwm`, so readers never see a half-written value.
pub(crate) const HWM_TMP: &str = "hwm.tmp";
/// Left by a clean close; its absence at open means the writer crashed.
pub(crate) const CLEAN_SHUTDOWN: &str = "clean-shutdown";

const LOG_EXT: &str = ".log";
const INDEX_EXT: &str = ".index";
const DIGITS: usize = 20;

pub(crate) fn log_path(dir: &Path, base: u64) -> PathBuf {
    dir.join(format!("{base:020}{LOG_EXT}"))
}

pub(crate) fn index_path(dir: &Path, base: u64) -> PathBuf {
    dir.join(format!("{base:020}{INDEX_EXT}"))
}

/// The file name of a segment, for messages.
pub(crate) fn log_name(base: u64) -> String {
    format!("{base:020}{LOG_EXT}")
}

fn parse_base(name: &str, ext: &str) -> Option<u64> {
    let digits = name.strip_suffix(ext)?;
    if digits.len() != DIGITS || !digits.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    digits.parse().ok()
}

/// Segment and index files present in a directory, each sorted by base offset.
#[derive(Debug, Default)]
pub(crate) struct Listing {
    pub logs: Vec<u64>,
    pub indexes: Vec<u64>,
}

pub(crate) fn list(dir: &Path) -> io::Result<Listing> {
    let mut listing = Listing::default();
    for entry in fs::read_dir(dir)? {
        let entry = entry?;
        let name = entry.file_name();
        let Some(name) = name.to_str() else { continue };
        if let Some(base) = parse_base(name, LOG_EXT) {
            listing.logs.push(base);
        } else if let Some(base) = parse_base(name, INDEX_EXT) {
            listing.indexes.push(base);
        }
    }
    listing.logs.sort_unstable();
    listing.indexes.sort_unstable();
    Ok(listing)
}

/// `hwm` holds the value and its bitwise complement (16 bytes), so a reader
/// that races an in-place update can tell a torn value from a real one.
fn encode_hwm(value: u64) -> [u8; 16] {
    let mut b = [0; 16];
    b[..8].copy_from_slice(&value.to_le_bytes());
    b[8..].copy_from_slice(&(!value).to_le_bytes());
    b
}

fn decode_hwm(b: &[u8; 16]) -> Option<u64> {
    let value = u64::from_le_bytes(b[..8].try_into().ok()?);
    let check = u64::from_le_bytes(b[8..].try_into().ok()?);
    (check == !value).then_some(value)
}

/// The high watermark; 0 if the file is absent or too short to hold one.
pub(crate) fn read_hwm(dir: &Path) -> io::Result<u64> {
    let file = match File::open(dir.join(HWM)) {
        Ok(f) => f,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(0),
        Err(e) => return Err(e),
    };
    let mut b = [0; 16];
    // A torn read needs a concurrent update, so a retry soon sees a whole one.
    for _ in 0..1000 {
        match file.read_exact_at(&mut b, 0) {
            Ok(()) => {}
            Err(e) if e.kind() == io::ErrorKind::UnexpectedEof => return Ok(0),
            Err(e) => return Err(e),
        }
        if let Some(v) = decode_hwm(&b) {
            return Ok(v);
        }
        std::thread::yield_now();
    }
    Err(io::Error::new(
        io::ErrorKind::InvalidData,
        format!("{}: corrupt high watermark", dir.join(HWM).display()),
    ))
}

/// Sets `hwm` at open, before the writer's handle. In place when the file
/// exists, so a full disk does not keep the log from opening (readers tell
/// a torn value by its complement); else a new file renamed into place.
/// It is not fsynced: the writer rewrites it from the recovered log at
/// every open.
pub(crate) fn write_hwm(dir: &Path, value: u64) -> io::Result<()> {
    let bytes = encode_hwm(value);
    match fs::OpenOptions::new().write(true).open(dir.join(HWM)) {
        Ok(file) => {
            file.write_all_at(&bytes, 0)?;
            return file.set_len(bytes.len() as u64);
        }
        Err(e) if e.kind() == io::ErrorKind::NotFound => {}
        Err(e) => return Err(e),
    }
    let tmp = dir.join(HWM_TMP);
    File::create(&tmp)?.write_all(&bytes)?;
    fs::rename(&tmp, dir.join(HWM))
}

/// The writer's open `hwm`, updated in place after every sync: one
/// positioned write, no file creation or rename on the commit path.
#[derive(Debug)]
pub(crate) struct HwmFile(File);

impl HwmFile {
    pub(crate) fn open(dir: &Path) -> io::Result<HwmFile> {
        fs::OpenOptions::new()
            .write(true)
            .open(dir.join(HWM))
            .map(HwmFile)
    }

    pub(crate) fn set(&self, value: u64) -> io::Result<()> {
        self.0.write_all_at(&encode_hwm(value), 0)
    }
}

/// Replaces `dir/name` with `contents` so that a crash leaves the old
/// contents or the new, never a mix or nothing: written to `dir/tmp_name`,
/// fsynced, renamed over `name`, and the directory fsynced so the rename
/// itself survives. `tmp_name` must be unique to the writer.
pub(crate) fn replace_durably(
    dir: &Path,
    name: &str,
    tmp_name: &str,
    contents: &[u8],
) -> io::Result<()> {
    let tmp = dir.join(tmp_name);
    let mut f = File::create(&tmp)?;
    f.write_all(contents)?;
    f.sync_data()?;
    fs::rename(&tmp, dir.join(name))?;
    File::open(dir)?.sync_all()
}

/// Removes a file, treating "already gone" as success.
pub(crate) fn remove_if_exists(path: &Path) -> io::Result<bool> {
    match fs::remove_file(path) {
        Ok(()) => Ok(true),
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(false),
        Err(e) => Err(e),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_round_trip() {
        let dir = Path::new("/x");
        assert_eq!(log_path(dir, 42), Path::new("/x/00000000000000000042.log"));
        assert_eq!(
            index_path(dir, u64::MAX),
            Path::new("/x/18446744073709551615.index")
        );
        assert_eq!(parse_base("00000000000000000042.log", LOG_EXT), Some(42));
        assert_eq!(parse_base("0000000000000000042.log", LOG_EXT), None);
        assert_eq!(parse_base("0000000000000000004x.log", LOG_EXT), None);
        assert_eq!(parse_base("99999999999999999999.log", LOG_EXT), None);
        assert_eq!(parse_base("00000000000000000042.index", LOG_EXT), None);
    }

    #[test]
    fn replace_durably_leaves_only_the_new_contents() {
        let dir = tempfile::tempdir().unwrap();
        replace_durably(dir.path(), "f", "f.tmp", b"one").unwrap();
        replace_durably(dir.path(), "f", "f.tmp", b"two").unwrap();
        assert_eq!(fs::read(dir.path().join("f")).unwrap(), b"two");
        assert!(!dir.path().join("f.tmp").exists());
        let missing = dir.path().join("missing");
        assert!(replace_durably(&missing, "f", "f.tmp", b"x").is_err());
    }

    #[test]
    fn hwm_defaults_to_zero() {
        let dir = tempfile::tempdir().unwrap();
        assert_eq!(read_hwm(dir.path()).unwrap(), 0);
        fs::write(dir.path().join(HWM), [1, 2]).unwrap();
        assert_eq!(read_hwm(dir.path()).unwrap(), 0);
        write_hwm(dir.path(), 1234).unwrap();
        assert_eq!(read_hwm(dir.path()).unwrap(), 1234);
    }
}
