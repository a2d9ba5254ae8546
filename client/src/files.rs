//! Finding the images to classify among the paths a user gives.

use std::{
    fs,
    path::{Path, PathBuf},
};

/// Extensions of the formats the client and server decode.
pub const IMAGE_EXTENSIONS: &[&str] =
    &["png", "jpg", "jpeg", "bmp", "gif", "webp", "pnm", "pbm", "pgm", "ppm", "pam", "tif", "tiff"];

/// What a walk over the given paths found.
#[derive(Debug, Default)]
pub struct Collected {
    /// Images to classify, in a stable order: the order the paths were
    /// given, and sorted by name within each directory.
    pub images: Vec<PathBuf>,
    /// Files in directories that are not images (skipped).
    pub skipped: usize,
    /// Paths that could not be read, with the reason.
    pub unreadable: Vec<(PathBuf, String)>,
}

/// True when `path` has an image file extension.
pub fn is_image(path: &Path) -> bool {
    path.extension()
        .and_then(|e| e.to_str())
        .is_some_and(|e| IMAGE_EXTENSIONS.iter().any(|known| known.eq_ignore_ascii_case(e)))
}

/// Collects images from files and directories. A file named explicitly is
/// always taken (if it is not an image, decoding it reports that); in
/// directories only image files are, and subdirectories only when
/// `recursive`.
pub fn collect(paths: &[PathBuf], recursive: bool) -> Collected {
    let mut found = Collected::default();
    for path in paths {
        match fs::metadata(path) {
            Ok(meta) if meta.is_dir() => walk(path, recursive, &mut found),
            Ok(_) => found.images.push(path.clone()),
            Err(e) => found.unreadable.push((path.clone(), e.to_string())),
        }
    }
    found
}

fn walk(dir: &Path, recursive: bool, found: &mut Collected) {
    let entries = match fs::read_dir(dir) {
        Ok(entries) => entries,
        Err(e) => {
            found.unreadable.push((dir.to_path_buf(), e.to_string()));
            return;
        }
    };
    let mut paths: Vec<PathBuf> = entries.filter_map(|e| e.ok()).map(|e| e.path()).collect();
    paths.sort();
    for path in paths {
        if path.is_dir() {
            if recursive {
                walk(&path, recursive, found);
            }
        } else if is_image(&path) {
            found.images.push(path);
        } else {
            found.skipped += 1;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn walks_sorted_skips_non_images_and_descends_only_when_recursive() {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path();
        fs::write(root.join("b.png"), b"").unwrap();
        fs::write(root.join("a.JPG"), b"").unwrap();
        fs::write(root.join("notes.txt"), b"").unwrap();
        fs::create_dir(root.join("sub")).unwrap();
        fs::write(root.join("sub/c.webp"), b"").unwrap();

        let flat = collect(&[root.to_path_buf()], false);
        assert_eq!(flat.images, vec![root.join("a.JPG"), root.join("b.png")]);
        assert_eq!(flat.skipped, 1);

        let deep = collect(&[root.to_path_buf()], true);
        assert_eq!(deep.images.len(), 3);
        assert_eq!(deep.images[2], root.join("sub/c.webp"));

        let missing = collect(&[root.join("nope.png")], false);
        assert_eq!(missing.unreadable.len(), 1);

        let explicit = collect(&[root.join("notes.txt")], false);
        assert_eq!(explicit.images, vec![root.join("notes.txt")]);
    }
}
