//! The MNIST data set: the four IDX files, gzipped or raw, verified by checksum.
//!
//! The IDX format is a big-endian header (magic number, item count, and for
//! images rows and columns) followed by one byte per label or pixel. Every
//! file's *decompressed* content is checked against the SHA-256 of the
//! published file, so a corrupt or half-downloaded copy is never trained on,
//! whatever compression the mirror it came from used.

use std::{
    fs,
    io::Read,
    path::{Path, PathBuf},
};

use sha2::{Digest, Sha256};

use crate::{Error, IMAGE_PIXELS, IMAGE_SIDE, Result};

/// Images in the training files.
pub const TRAIN_IMAGES: usize = 60_000;

/// Training images held out for validation unless told otherwise: the last
/// 5,000 of the 60,000, as many as the test set has per half. `mnist-train`
/// holds them out by default; `photo_accuracy --split validation` draws
/// its photos from them, to choose between models without the test set.
pub const VALIDATION_IMAGES: usize = 5_000;

const IMAGES_MAGIC: u32 = 0x0000_0803;
const LABELS_MAGIC: u32 = 0x0000_0801;

/// One of MNIST's two splits.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Split {
    /// 60,000 training images.
    Train,
    /// 10,000 test images.
    Test,
}

/// One published MNIST file.
#[derive(Debug, Clone, Copy)]
pub struct DataFile {
    /// Base name without `.gz`, as published.
    pub name: &'static str,
    /// Hex SHA-256 of the uncompressed content.
    pub sha256: &'static str,
}

impl Split {
    /// The (images, labels) files of this split.
    pub fn files(self) -> (DataFile, DataFile) {
        match self {
            Split::Train => (
                DataFile {
                    name: "train-images-idx3-ubyte",
                    sha256: "ba891046e6505d7aadcbbe25680a0738ad16aec93bde7f9b65e87a2fc25776db",
                },
                DataFile {
                    name: "train-labels-idx1-ubyte",
                    sha256: "65a50cbbf4e906d70832878ad85ccda5333a97f0f4c3dd2ef09a8a9eef7101c5",
                },
            ),
            Split::Test => (
                DataFile {
                    name: "t10k-images-idx3-ubyte",
                    sha256: "0fa7898d509279e482958e8ce81c8e77db3f2f8254e26661ceb7762c4d494ce7",
                },
                DataFile {
                    name: "t10k-labels-idx1-ubyte",
                    sha256: "ff7bcfd416de33731a308c3f266cc351222c34898ecbeaf847f06e48f7ec33f2",
                },
            ),
        }
    }
}

/// All four published files.
pub fn all_files() -> [DataFile; 4] {
    let (a, b) = Split::Train.files();
    let (c, d) = Split::Test.files();
    [a, b, c, d]
}

/// An MNIST split in memory: `len` images of 28x28 bytes, row-major, and
/// their labels.
#[derive(Debug, Clone)]
pub struct Mnist {
    /// `len * 784` pixel bytes, image after image.
    pub images: Vec<u8>,
    /// `len` labels, 0 to 9.
    pub labels: Vec<u8>,
}

impl Mnist {
    /// Loads a split from `dir`, reading `NAME.gz` or `NAME` for each file and
    /// verifying its checksum.
    pub fn load(dir: &Path, split: Split) -> Result<Self> {
        let (images_file, labels_file) = split.files();
        let images_path = locate(dir, images_file)?;
        let labels_path = locate(dir, labels_file)?;
        let images_bytes = read_verified(&images_path, images_file.sha256)?;
        let labels_bytes = read_verified(&labels_path, labels_file.sha256)?;
        let images = parse_images(&images_bytes, &images_path)?;
        let labels = parse_labels(&labels_bytes, &labels_path)?;
        if images.len() / IMAGE_PIXELS != labels.len() {
            return Err(Error::CountMismatch {
                images_path,
                images: images.len() / IMAGE_PIXELS,
                labels_path,
                labels: labels.len(),
            });
        }
        Ok(Self { images, labels })
    }

    /// Number of images.
    pub fn len(&self) -> usize {
        self.labels.len()
    }

    /// True when there are no images.
    pub fn is_empty(&self) -> bool {
        self.labels.is_empty()
    }

    /// The 784 pixels of image `index`.
    ///
    /// # Panics
    /// When `index >= self.len()`.
    pub fn image(&self, index: usize) -> &[u8] {
        &self.images[index * IMAGE_PIXELS..(index + 1) * IMAGE_PIXELS]
    }

    /// Removes the last `n` images (all of them when `n` is larger) and
    /// returns them: how a validation split is held out of the training files.
    pub fn split_off_last(&mut self, n: usize) -> Self {
        let keep = self.len().saturating_sub(n);
        Self { images: self.images.split_off(keep * IMAGE_PIXELS), labels: self.labels.split_off(keep) }
    }

    /// The first `n` images (all of them when `n` is larger).
    pub fn take(mut self, n: usize) -> Self {
        let n = n.min(self.len());
        self.images.truncate(n * IMAGE_PIXELS);
        self.labels.truncate(n);
        self
    }
}

/// The path of `file` in `dir`: the gzipped name first, then the raw one.
pub fn locate(dir: &Path, file: DataFile) -> Result<PathBuf> {
    [format!("{}.gz", file.name), file.name.to_string()]
        .into_iter()
        .map(|name| dir.join(name))
        .find(|path| path.is_file())
        .ok_or_else(|| Error::MissingFile {
            dir: dir.to_path_buf(),
            name: file.name,
            hint: format!("expected {0}.gz or {0}", file.name),
        })
}

/// True when all four files are present in `dir` (not verified).
pub fn is_complete(dir: &Path) -> bool {
    all_files().into_iter().all(|f| locate(dir, f).is_ok())
}

/// Reads a file, gunzipping it when it starts with the gzip magic bytes.
pub fn read_maybe_gzipped(path: &Path) -> Result<Vec<u8>> {
    let io_err = |source| Error::Io { path: path.to_path_buf(), source };
    let raw = fs::read(path).map_err(io_err)?;
    if raw.starts_with(&[0x1f, 0x8b]) {
        let mut out = Vec::with_capacity(raw.len() * 4);
        flate2::read::MultiGzDecoder::new(raw.as_slice()).read_to_end(&mut out).map_err(io_err)?;
        Ok(out)
    } else {
        Ok(raw)
    }
}

/// Reads a file (see [`read_maybe_gzipped`]) and checks the SHA-256 of its content.
pub fn read_verified(path: &Path, sha256: &str) -> Result<Vec<u8>> {
    let bytes = read_maybe_gzipped(path)?;
    verify_sha256(&bytes, sha256, path)?;
    Ok(bytes)
}

/// Checks that `bytes` hash to `expected` (hex SHA-256).
pub fn verify_sha256(bytes: &[u8], expected: &str, path: &Path) -> Result<()> {
    let found = sha256_hex(bytes);
    if found.eq_ignore_ascii_case(expected) {
        Ok(())
    } else {
        Err(Error::ChecksumMismatch { path: path.to_path_buf(), found, expected: expected.to_string() })
    }
}

/// Hex SHA-256 of `bytes`.
pub fn sha256_hex(bytes: &[u8]) -> String {
    Sha256::digest(bytes).iter().map(|b| format!("{b:02x}")).collect()
}

/// Parses an IDX image file: returns `count * 784` pixel bytes.
pub fn parse_images(bytes: &[u8], path: &Path) -> Result<Vec<u8>> {
    let header = Header::read(bytes, path, "images", IMAGES_MAGIC, 16)?;
    let rows = be_u32(bytes, 8) as usize;
    let cols = be_u32(bytes, 12) as usize;
    if rows != IMAGE_SIDE || cols != IMAGE_SIDE {
        return Err(Error::BadImageSize { path: path.to_path_buf(), rows, cols });
    }
    let body = header.body(bytes, path, IMAGE_PIXELS)?;
    Ok(body.to_vec())
}

/// Parses an IDX label file: returns one byte per label, each checked to be 0-9.
pub fn parse_labels(bytes: &[u8], path: &Path) -> Result<Vec<u8>> {
    let header = Header::read(bytes, path, "labels", LABELS_MAGIC, 8)?;
    let body = header.body(bytes, path, 1)?;
    if let Some((index, &label)) = body.iter().enumerate().find(|(_, l)| **l > 9) {
        return Err(Error::BadLabel { path: path.to_path_buf(), index, label });
    }
    Ok(body.to_vec())
}

/// The fixed part of an IDX header.
struct Header {
    count: usize,
    header_len: usize,
}

impl Header {
    fn read(bytes: &[u8], path: &Path, kind: &'static str, magic: u32, header_len: usize) -> Result<Self> {
        if bytes.len() < header_len {
            // Too short to hold even the header: report the magic if present,
            // since a wrong kind of file is the likelier mistake.
            if bytes.len() >= 4 && be_u32(bytes, 0) != magic {
                return Err(Error::BadMagic {
                    path: path.to_path_buf(),
                    kind,
                    found: be_u32(bytes, 0),
                    expected: magic,
                });
            }
            return Err(Error::Truncated { path: path.to_path_buf(), expected: header_len, found: bytes.len() });
        }
        let found = be_u32(bytes, 0);
        if found != magic {
            return Err(Error::BadMagic { path: path.to_path_buf(), kind, found, expected: magic });
        }
        Ok(Self { count: be_u32(bytes, 4) as usize, header_len })
    }

    /// The data after the header, checked to hold `count * item_len` bytes.
    fn body<'a>(&self, bytes: &'a [u8], path: &Path, item_len: usize) -> Result<&'a [u8]> {
        let expected = self.count.checked_mul(item_len).and_then(|n| n.checked_add(self.header_len));
        match expected {
            Some(expected) if bytes.len() >= expected => Ok(&bytes[self.header_len..expected]),
            _ => Err(Error::Truncated {
                path: path.to_path_buf(),
                expected: expected.unwrap_or(usize::MAX),
                found: bytes.len(),
            }),
        }
    }
}

fn be_u32(bytes: &[u8], offset: usize) -> u32 {
    u32::from_be_bytes([bytes[offset], bytes[offset + 1], bytes[offset + 2], bytes[offset + 3]])
}

/// Where MNIST is looked for when no directory is given: `$MNIST_DIR`, else
/// `data/mnist`.
pub fn default_dir() -> PathBuf {
    std::env::var_os("MNIST_DIR").map(PathBuf::from).unwrap_or_else(|| PathBuf::from("data/mnist"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_held_out_split_is_the_tail_and_leaves_the_head() {
        let mut all = Mnist {
            images: (0..5 * IMAGE_PIXELS).map(|i| (i / IMAGE_PIXELS) as u8).collect(),
            labels: vec![0, 1, 2, 3, 4],
        };
        let held_out = all.split_off_last(2);
        assert_eq!((all.labels.as_slice(), held_out.labels.as_slice()), (&[0, 1, 2][..], &[3, 4][..]));
        assert_eq!((all.image(2)[0], held_out.image(0)[0]), (2, 3));
        assert_eq!(all.split_off_last(10).len(), 3);
        assert!(all.is_empty());
    }

    fn idx_images(count: u32, rows: u32, cols: u32, data_len: usize) -> Vec<u8> {
        let mut v = Vec::new();
        for x in [IMAGES_MAGIC, count, rows, cols] {
            v.extend_from_slice(&x.to_be_bytes());
        }
        v.extend(std::iter::repeat_n(7u8, data_len));
        v
    }

    fn idx_labels(labels: &[u8], count: u32) -> Vec<u8> {
        let mut v = Vec::new();
        v.extend_from_slice(&LABELS_MAGIC.to_be_bytes());
        v.extend_from_slice(&count.to_be_bytes());
        v.extend_from_slice(labels);
        v
    }

    #[test]
    fn parses_well_formed_files() {
        let p = Path::new("x");
        let images = parse_images(&idx_images(2, 28, 28, 2 * 784), p).unwrap();
        assert_eq!(images.len(), 2 * 784);
        assert_eq!(parse_labels(&idx_labels(&[3, 9], 2), p).unwrap(), vec![3, 9]);
    }

    #[test]
    fn wrong_magic_names_file_and_kind() {
        let err = parse_labels(&idx_images(1, 28, 28, 784), Path::new("labels.idx")).unwrap_err();
        let msg = err.to_string();
        assert!(matches!(err, Error::BadMagic { .. }));
        assert!(msg.contains("labels.idx") && msg.contains("labels") && msg.contains("0x00000803"), "{msg}");
    }

    #[test]
    fn truncated_body_and_header_are_reported() {
        let err = parse_images(&idx_images(3, 28, 28, 2 * 784), Path::new("imgs")).unwrap_err();
        assert!(matches!(err, Error::Truncated { expected, .. } if expected == 16 + 3 * 784), "{err}");
        let err = parse_labels(&LABELS_MAGIC.to_be_bytes(), Path::new("l")).unwrap_err();
        assert!(matches!(err, Error::Truncated { .. }), "{err}");
    }

    #[test]
    fn bad_image_size_and_label_are_reported() {
        let err = parse_images(&idx_images(1, 32, 32, 1024), Path::new("i")).unwrap_err();
        assert!(matches!(err, Error::BadImageSize { rows: 32, cols: 32, .. }));
        let err = parse_labels(&idx_labels(&[1, 12], 2), Path::new("l")).unwrap_err();
        assert!(matches!(err, Error::BadLabel { index: 1, label: 12, .. }));
    }

    #[test]
    fn huge_count_does_not_overflow() {
        let err = parse_labels(&idx_labels(&[], u32::MAX), Path::new("l")).unwrap_err();
        assert!(matches!(err, Error::Truncated { .. }));
    }

    #[test]
    fn count_mismatch_and_checksum_are_detected() {
        let dir = tempfile::tempdir().unwrap();
        let (img, lab) = Split::Test.files();
        fs::write(dir.path().join(img.name), idx_images(2, 28, 28, 2 * 784)).unwrap();
        fs::write(dir.path().join(lab.name), idx_labels(&[1], 1)).unwrap();
        // These synthetic files cannot have the published checksum.
        let err = Mnist::load(dir.path(), Split::Test).unwrap_err();
        assert!(matches!(err, Error::ChecksumMismatch { .. }), "{err}");
        assert!(err.to_string().contains("delete it"));
    }

    #[test]
    fn missing_file_says_what_was_expected() {
        let dir = tempfile::tempdir().unwrap();
        let err = Mnist::load(dir.path(), Split::Train).unwrap_err();
        assert!(err.to_string().contains("train-images-idx3-ubyte.gz"), "{err}");
    }

    #[test]
    fn gzip_is_detected_by_content() {
        use std::io::Write;
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("f");
        let mut enc = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
        enc.write_all(b"hello").unwrap();
        fs::write(&path, enc.finish().unwrap()).unwrap();
        assert_eq!(read_maybe_gzipped(&path).unwrap(), b"hello");
        fs::write(&path, b"raw").unwrap();
        assert_eq!(read_maybe_gzipped(&path).unwrap(), b"raw");
    }

    /// The real files: the test command points `MNIST_DIR` at them.
    #[test]
    fn loads_real_test_split() {
        let dir = default_dir();
        assert!(is_complete(&dir), "MNIST not found in {} (set MNIST_DIR)", dir.display());
        let test = Mnist::load(&dir, Split::Test).unwrap();
        assert_eq!(test.len(), 10_000);
        assert_eq!(test.labels[..5], [7, 2, 1, 0, 4]);
    }
}
