//! Image folders: `root/<class>/*.{png,jpg,jpeg}` (labels from the folder names) and flat folders
//! `root/*.{png,jpg,jpeg}` (no labels). Files are read in sorted file-name order (byte order of the
//! names), so row `i` of any output is the `i`-th file. Decoding runs in parallel (rayon).
//!
//! JPEG decoding uses one decoder, `zune-jpeg` pinned to an exact version in the workspace, with
//! its portable (non-SIMD) code path, so the same file gives the same pixels on every machine.
//! PNGs go through the `png` decoder of the `image` crate. All images of a set must have the size
//! and channel count of the first one; grayscale (1 channel) and RGB (3) are read as they are, an
//! RGBA image whose alpha is fully opaque is read as RGB, anything else is refused, naming the file.

use std::path::{Path, PathBuf};

use rayon::prelude::*;
use zune_core::bytestream::ZCursor;
use zune_core::colorspace::ColorSpace;
use zune_core::options::DecoderOptions;
use zune_jpeg::JpegDecoder;

use crate::error::DataError;
use crate::imageset::ImageSet;

/// A decoded image: `[H, W, C]` bytes.
#[derive(Debug, Clone, PartialEq)]
pub struct Decoded {
    pub height: usize,
    pub width: usize,
    pub channels: usize,
    pub pixels: Vec<u8>,
}

/// Is `path` an image file this module reads (by extension, case-insensitive)?
pub fn is_image_file(path: &Path) -> bool {
    matches!(
        path.extension()
            .map(|e| e.to_string_lossy().to_ascii_lowercase())
            .as_deref(),
        Some("png" | "jpg" | "jpeg")
    )
}

/// Decode PNG or JPEG bytes (detected by magic number). `path` names the file in errors.
pub fn decode_image(bytes: &[u8], path: &Path) -> Result<Decoded, DataError> {
    if bytes.starts_with(&[0xFF, 0xD8]) {
        decode_jpeg(bytes, path)
    } else if bytes.starts_with(b"\x89PNG\r\n\x1a\n") {
        decode_png(bytes, path)
    } else {
        Err(DataError::image(
            path,
            "not a PNG or JPEG file (bad magic bytes)",
        ))
    }
}

/// Decode a JPEG with the pinned decoder (strict mode: a truncated or corrupt stream is an error).
pub fn decode_jpeg(bytes: &[u8], path: &Path) -> Result<Decoded, DataError> {
    let bad = |e: zune_jpeg::errors::DecodeErrors| {
        DataError::image(path, format!("cannot decode JPEG: {e:?}"))
    };
    let probe_opts = DecoderOptions::default().set_strict_mode(true);
    let mut probe = JpegDecoder::new_with_options(ZCursor::new(bytes), probe_opts);
    probe.decode_headers().map_err(bad)?;
    let gray = matches!(probe.input_colorspace(), Some(ColorSpace::Luma));
    let out = if gray {
        ColorSpace::Luma
    } else {
        ColorSpace::RGB
    };
    let opts = DecoderOptions::default()
        .set_strict_mode(true)
        .jpeg_set_out_colorspace(out);
    let mut dec = JpegDecoder::new_with_options(ZCursor::new(bytes), opts);
    let pixels = dec.decode().map_err(bad)?;
    let info = dec
        .info()
        .ok_or_else(|| DataError::image(path, "JPEG headers missing"))?;
    let (h, w) = (info.height as usize, info.width as usize);
    let c = if gray { 1 } else { 3 };
    if pixels.len() != h * w * c {
        return Err(DataError::image(
            path,
            format!(
                "JPEG decoded to {} bytes, expected {h}x{w}x{c}",
                pixels.len()
            ),
        ));
    }
    Ok(Decoded {
        height: h,
        width: w,
        channels: c,
        pixels,
    })
}

/// Decode a PNG (8-bit gray, RGB, or RGBA with opaque alpha; palette images expand to RGB).
pub fn decode_png(bytes: &[u8], path: &Path) -> Result<Decoded, DataError> {
    let img = image::load_from_memory_with_format(bytes, image::ImageFormat::Png)
        .map_err(|e| DataError::image(path, format!("cannot decode PNG: {e}")))?;
    let (w, h) = (img.width() as usize, img.height() as usize);
    let (channels, pixels) = match img {
        image::DynamicImage::ImageLuma8(b) => (1, b.into_raw()),
        image::DynamicImage::ImageRgb8(b) => (3, b.into_raw()),
        image::DynamicImage::ImageRgba8(b) => {
            let raw = b.into_raw();
            if raw.chunks_exact(4).any(|p| p[3] != 255) {
                return Err(DataError::image(
                    path,
                    "RGBA image with transparent pixels; convert it to RGB first",
                ));
            }
            (
                3,
                raw.chunks_exact(4)
                    .flat_map(|p| [p[0], p[1], p[2]])
                    .collect(),
            )
        }
        other => {
            return Err(DataError::image(
                path,
                format!(
                    "unsupported PNG pixel format {:?} (need 8-bit gray, RGB or opaque RGBA)",
                    other.color()
                ),
            ))
        }
    };
    Ok(Decoded {
        height: h,
        width: w,
        channels,
        pixels,
    })
}

/// Image files of `dir`, sorted by file name (byte order).
pub fn list_images(dir: &Path) -> Result<Vec<PathBuf>, DataError> {
    let mut files: Vec<PathBuf> = std::fs::read_dir(dir)
        .map_err(|e| DataError::io(dir, e))?
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.is_file() && is_image_file(p))
        .collect();
    files.sort_by(|a, b| a.file_name().cmp(&b.file_name()));
    Ok(files)
}

/// Subfolders of `dir`, sorted by name.
fn list_dirs(dir: &Path) -> Result<Vec<PathBuf>, DataError> {
    let mut dirs: Vec<PathBuf> = std::fs::read_dir(dir)
        .map_err(|e| DataError::io(dir, e))?
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.is_dir())
        .collect();
    dirs.sort();
    Ok(dirs)
}

/// Decode `files` in parallel into one `[N, H, W, C]` buffer. Every image must match the first
/// one's size and channels; the error names the first offending file (in list order).
pub fn decode_files(files: &[PathBuf], what: &str) -> Result<(Vec<u8>, [usize; 4]), DataError> {
    let Some(first) = files.first() else {
        return Ok((Vec::new(), [0, 0, 0, 0]));
    };
    let bytes = std::fs::read(first).map_err(|e| DataError::io(first, e))?;
    let d0 = decode_image(&bytes, first)?;
    let (h, w, c) = (d0.height, d0.width, d0.channels);
    let size = h * w * c;
    let mut out = vec![0u8; size * files.len()];
    let pb = crate::progress::bar(files.len() as u64, what);
    let results: Vec<Result<(), DataError>> = files
        .par_iter()
        .zip(out.par_chunks_mut(size.max(1)))
        .map(|(path, dst)| {
            let bytes = std::fs::read(path).map_err(|e| DataError::io(path, e))?;
            let d = decode_image(&bytes, path)?;
            if (d.height, d.width, d.channels) != (h, w, c) {
                return Err(DataError::image(
                    path,
                    format!(
                        "image is {}x{}x{}, but {} is {h}x{w}x{c} (all images of a set must match; resize or convert it)",
                        d.height,
                        d.width,
                        d.channels,
                        first.display()
                    ),
                ));
            }
            dst.copy_from_slice(&d.pixels);
            pb.inc(1);
            Ok(())
        })
        .collect();
    pb.finish_and_clear();
    results.into_iter().collect::<Result<Vec<()>, _>>()?;
    Ok((out, [files.len(), h, w, c]))
}

/// Decode `files` (in that order, without labels) into one set; every image must have the first
/// one's size and channels.
pub fn read_files(files: &[PathBuf]) -> Result<ImageSet, DataError> {
    let first = files
        .first()
        .ok_or_else(|| DataError::Invalid("no image files given".into()))?;
    let (pixels, shape) = decode_files(files, "decoding images")?;
    let source = match files.len() {
        1 => first.display().to_string(),
        n => format!("{} and {} more", first.display(), n - 1),
    };
    ImageSet::new(pixels, shape, None, Vec::new(), source)
}

/// Read a flat folder of images, in sorted file-name order, without labels.
pub fn read_flat_folder(dir: &Path) -> Result<ImageSet, DataError> {
    let files = list_images(dir)?;
    if files.is_empty() {
        return Err(DataError::format(dir, "no .png/.jpg/.jpeg files"));
    }
    let (pixels, shape) = decode_files(&files, &format!("decoding {}", dir.display()))?;
    ImageSet::new(pixels, shape, None, Vec::new(), dir.display().to_string())
}

/// Read `root/<class>/*.{png,jpg,jpeg}`. With `classes`, the class folders must be exactly those
/// names (labels follow that order); without, every subfolder is a class, in sorted order.
/// Images are ordered by class, then by file name.
pub fn read_class_folder(root: &Path, classes: Option<&[&str]>) -> Result<ImageSet, DataError> {
    let dirs = list_dirs(root)?;
    let names: Vec<String> = match classes {
        Some(c) => {
            for d in &dirs {
                let n = d
                    .file_name()
                    .map(|n| n.to_string_lossy())
                    .unwrap_or_default();
                if !c.contains(&n.as_ref()) {
                    return Err(DataError::format(
                        d,
                        format!("unknown class folder '{n}' (classes: {})", c.join(", ")),
                    ));
                }
            }
            c.iter().map(|s| s.to_string()).collect()
        }
        None => dirs
            .iter()
            .filter_map(|d| d.file_name().map(|n| n.to_string_lossy().into_owned()))
            .collect(),
    };
    if names.is_empty() {
        return Err(DataError::format(root, "no class folders"));
    }
    let mut files = Vec::new();
    let mut labels = Vec::new();
    for (label, name) in names.iter().enumerate() {
        let dir = root.join(name);
        if !dir.is_dir() {
            return Err(DataError::format(&dir, "class folder missing"));
        }
        let f = list_images(&dir)?;
        labels.extend(std::iter::repeat_n(label as u32, f.len()));
        files.extend(f);
    }
    if files.is_empty() {
        return Err(DataError::format(
            root,
            "no .png/.jpg/.jpeg files in the class folders",
        ));
    }
    let (pixels, shape) = decode_files(&files, &format!("decoding {}", root.display()))?;
    ImageSet::new(
        pixels,
        shape,
        Some(labels),
        names,
        root.display().to_string(),
    )
}

/// Read a folder of images: flat if it holds image files directly, else one subfolder per class.
pub fn read_image_folder(dir: &Path) -> Result<ImageSet, DataError> {
    if !list_images(dir)?.is_empty() {
        read_flat_folder(dir)
    } else {
        read_class_folder(dir, None)
    }
}
