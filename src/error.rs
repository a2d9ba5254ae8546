use std::path::PathBuf;

/// Errors of the shared library: reading MNIST files and decoding images.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// A file could not be read or written.
    #[error("{}: {source}", path.display())]
    Io {
        /// The file.
        path: PathBuf,
        /// The underlying error.
        source: std::io::Error,
    },

    /// A file does not start with the IDX magic number expected for its kind.
    #[error("{}: not an IDX {kind} file: magic number {found:#010x}, expected {expected:#010x}", path.display())]
    BadMagic {
        /// The file.
        path: PathBuf,
        /// "images" or "labels".
        kind: &'static str,
        /// The magic number read.
        found: u32,
        /// The magic number expected.
        expected: u32,
    },

    /// A file is shorter than its header says.
    #[error("{}: truncated: the header announces {expected} bytes, the file has {found}", path.display())]
    Truncated {
        /// The file.
        path: PathBuf,
        /// Bytes the header announces (header included).
        expected: usize,
        /// Bytes present.
        found: usize,
    },

    /// The image and label files of one split disagree on the number of items.
    #[error("{} holds {images} images but {} holds {labels} labels", images_path.display(), labels_path.display())]
    CountMismatch {
        /// The images file.
        images_path: PathBuf,
        /// Images in it.
        images: usize,
        /// The labels file.
        labels_path: PathBuf,
        /// Labels in it.
        labels: usize,
    },

    /// A label is not a digit 0-9.
    #[error("{}: label {label} at index {index} is not a digit", path.display())]
    BadLabel {
        /// The labels file.
        path: PathBuf,
        /// Index of the bad label.
        index: usize,
        /// Its value.
        label: u8,
    },

    /// An image file is not 28x28.
    #[error("{}: images are {rows}x{cols}, expected 28x28", path.display())]
    BadImageSize {
        /// The images file.
        path: PathBuf,
        /// Rows per image.
        rows: usize,
        /// Columns per image.
        cols: usize,
    },

    /// A file's content does not have the published SHA-256: it is corrupt,
    /// truncated or another data set.
    #[error(
        "{}: SHA-256 of the content is {found}, expected {expected} (the published MNIST file); \
         the file is corrupt or incomplete: delete it to download it again",
        path.display()
    )]
    ChecksumMismatch {
        /// The file.
        path: PathBuf,
        /// Hex SHA-256 found.
        found: String,
        /// Hex SHA-256 expected.
        expected: String,
    },

    /// A data file is missing and could not be downloaded.
    #[error("{name} not found in {} ({hint})", dir.display())]
    MissingFile {
        /// The directory searched.
        dir: PathBuf,
        /// The file's base name.
        name: &'static str,
        /// What to do about it.
        hint: String,
    },

    /// No mirror could deliver a file.
    #[error("could not download {name}: {attempts}")]
    Download {
        /// The file's base name.
        name: &'static str,
        /// What each mirror answered.
        attempts: String,
    },

    /// An encoded image is larger than allowed.
    #[error("encoded image is {size} bytes, more than the limit of {limit} bytes")]
    ImageTooLarge {
        /// Its size.
        size: usize,
        /// The limit.
        limit: usize,
    },

    /// An image's dimensions are over the limits (checked before its pixels
    /// are decoded, so decompression bombs are refused cheaply).
    #[error("image is {width}x{height}, over the limit of {max_side} pixels a side or {max_pixels} pixels")]
    ImageDimensions {
        /// Width in pixels.
        width: u32,
        /// Height in pixels.
        height: u32,
        /// Longest side allowed.
        max_side: u32,
        /// Most pixels allowed.
        max_pixels: u64,
    },

    /// An image with no pixels: a width or height of 0.
    #[error("image is {width}x{height}: it has no pixels")]
    EmptyImage {
        /// Width in pixels.
        width: u32,
        /// Height in pixels.
        height: u32,
    },

    /// The bytes are not an image in a supported format, or are corrupt.
    #[error("cannot decode image: {0}")]
    Decode(String),

    /// A raw pixel buffer does not hold exactly 28x28 bytes.
    #[error("pixels must be exactly 784 bytes (28x28, row-major), got {0}")]
    PixelCount(usize),

    /// Raw pixels of a number do not match the width and height given with them.
    #[error("pixels must be width x height bytes ({width}x{height} = {expected}), got {found}")]
    PixelDimensions {
        /// Width given.
        width: u32,
        /// Height given.
        height: u32,
        /// Bytes expected (width x height).
        expected: u64,
        /// Bytes sent.
        found: usize,
    },

    /// A reading was given classifier output that does not match its
    /// candidates (a bug in the caller, not bad input).
    #[error("cannot read the number: {0}")]
    Reading(String),
}

/// Result with the shared library's [`Error`].
pub type Result<T, E = Error> = std::result::Result<T, E>;
