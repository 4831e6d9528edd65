//! Image folders, `.npy`/`.npz` arrays and MNIST IDX files, each written by the test in its real
//! format, plus the bad inputs each reader must refuse with one error naming the file.

use std::fs;
use std::io::Write;
use std::path::Path;

use mr_data::arrays::{read_image_npy, read_image_npz};
use mr_data::folder::{decode_image, read_class_folder, read_flat_folder, read_image_folder};
use mr_data::idx::{read_idx_pair, read_mnist_dir};
use mr_data::npy::{write_npy, write_npz, NpyArray, NpyData};
use mr_data::DataError;

fn rgb(w: u32, h: u32, seed: u8) -> image::RgbImage {
    image::RgbImage::from_fn(w, h, |x, y| {
        image::Rgb([seed.wrapping_add(x as u8 * 8), (y as u8) * 8, seed ^ 0x55])
    })
}

fn save_png(img: &image::RgbImage, p: &Path) {
    fs::create_dir_all(p.parent().unwrap()).unwrap();
    img.save_with_format(p, image::ImageFormat::Png).unwrap();
}

fn save_jpeg(img: &image::RgbImage, p: &Path) {
    fs::create_dir_all(p.parent().unwrap()).unwrap();
    let mut f = fs::File::create(p).unwrap();
    let mut enc = image::codecs::jpeg::JpegEncoder::new_with_quality(&mut f, 90);
    enc.encode_image(img).unwrap();
}

#[test]
fn class_folder_reads_pngs_and_jpegs_in_sorted_order() {
    let tmp = tempfile::tempdir().unwrap();
    let root = tmp.path();
    save_png(&rgb(8, 6, 1), &root.join("cat/b.png"));
    save_png(&rgb(8, 6, 2), &root.join("cat/a.png"));
    save_jpeg(&rgb(8, 6, 3), &root.join("dog/0001.jpg"));
    save_jpeg(&rgb(8, 6, 4), &root.join("dog/0000.JPEG"));
    fs::write(root.join("dog/notes.txt"), "ignored").unwrap();
    let set = read_class_folder(root, None).unwrap();
    assert_eq!(set.shape(), [4, 6, 8, 3]);
    assert_eq!(set.class_names, vec!["cat", "dog"]);
    assert_eq!(set.labels.as_ref().unwrap(), &vec![0, 0, 1, 1]);
    // PNG is lossless: a.png (seed 2) is row 0
    assert_eq!(set.image(0), rgb(8, 6, 2).as_raw().as_slice());
    // byte-order sort: "0000.JPEG" < "0001.jpg"; JPEG is lossy but close
    let want = rgb(8, 6, 4);
    let err: i32 = set
        .image(2)
        .iter()
        .zip(want.as_raw())
        .map(|(a, b)| (*a as i32 - *b as i32).abs())
        .max()
        .unwrap();
    assert!(err < 40, "jpeg max error {err}");
    // decoding is deterministic
    assert_eq!(
        read_class_folder(root, None).unwrap().content_hash(),
        set.content_hash()
    );
    // a fixed class order puts labels in that order; a stray folder is refused
    let fixed = read_class_folder(root, Some(&["dog", "cat"])).unwrap();
    assert_eq!(fixed.labels.as_ref().unwrap(), &vec![0, 0, 1, 1]);
    assert_eq!(fixed.image(0), set.image(2));
    let e = read_class_folder(root, Some(&["cat"]))
        .unwrap_err()
        .to_string();
    assert!(e.contains("unknown class folder 'dog'"), "{e}");
}

#[test]
fn flat_folder_row_i_is_the_ith_file() {
    let tmp = tempfile::tempdir().unwrap();
    for (name, seed) in [("b.png", 1u8), ("10.png", 2), ("a.png", 3), ("2.png", 4)] {
        save_png(&rgb(4, 4, seed), &tmp.path().join(name));
    }
    let set = read_image_folder(tmp.path()).unwrap();
    assert!(set.labels.is_none());
    // byte order: "10.png" < "2.png" < "a.png" < "b.png"
    for (i, seed) in [2u8, 4, 3, 1].iter().enumerate() {
        assert_eq!(
            set.image(i),
            rgb(4, 4, *seed).as_raw().as_slice(),
            "row {i}"
        );
    }
}

#[test]
fn folder_refuses_odd_images_naming_the_file() {
    let tmp = tempfile::tempdir().unwrap();
    let d = tmp.path();
    save_png(&rgb(4, 4, 1), &d.join("a.png"));
    save_png(&rgb(5, 4, 1), &d.join("b.png"));
    let e = read_flat_folder(d).unwrap_err();
    assert!(matches!(e, DataError::Image { .. }));
    let e = e.to_string();
    assert!(e.contains("b.png") && e.contains("4x5x3"), "{e}");

    fs::remove_file(d.join("b.png")).unwrap();
    image::GrayImage::from_pixel(4, 4, image::Luma([9]))
        .save(d.join("c.png"))
        .unwrap();
    let e = read_flat_folder(d).unwrap_err().to_string();
    assert!(e.contains("c.png") && e.contains("4x4x1"), "{e}");

    fs::remove_file(d.join("c.png")).unwrap();
    image::RgbaImage::from_pixel(4, 4, image::Rgba([1, 2, 3, 100]))
        .save(d.join("d.png"))
        .unwrap();
    let e = read_flat_folder(d).unwrap_err().to_string();
    assert!(e.contains("d.png") && e.contains("transparent"), "{e}");

    // opaque RGBA is read as RGB
    image::RgbaImage::from_pixel(4, 4, image::Rgba([1, 2, 3, 255]))
        .save(d.join("d.png"))
        .unwrap();
    let set = read_flat_folder(d).unwrap();
    assert_eq!(set.image(1)[..3], [1, 2, 3]);

    // 16-bit PNG refused
    image::ImageBuffer::<image::Rgb<u16>, Vec<u16>>::from_pixel(4, 4, image::Rgb([1, 2, 3]))
        .save(d.join("e.png"))
        .unwrap();
    let e = read_flat_folder(d).unwrap_err().to_string();
    assert!(e.contains("e.png") && e.contains("unsupported PNG"), "{e}");
    fs::remove_file(d.join("e.png")).unwrap();

    // wrong magic, truncated JPEG, truncated PNG
    fs::write(d.join("f.jpg"), b"GIF89a....").unwrap();
    let e = read_flat_folder(d).unwrap_err().to_string();
    assert!(e.contains("f.jpg") && e.contains("magic"), "{e}");
    let mut jpg = Vec::new();
    image::codecs::jpeg::JpegEncoder::new_with_quality(&mut jpg, 90)
        .encode_image(&rgb(16, 16, 7))
        .unwrap();
    fs::write(d.join("f.jpg"), &jpg[..jpg.len() / 2]).unwrap();
    let e = read_flat_folder(d).unwrap_err().to_string();
    assert!(e.contains("f.jpg") && e.contains("JPEG"), "{e}");
    fs::remove_file(d.join("f.jpg")).unwrap();
    let png = fs::read(d.join("a.png")).unwrap();
    fs::write(d.join("g.png"), &png[..png.len() - 20]).unwrap();
    let e = read_flat_folder(d).unwrap_err().to_string();
    assert!(e.contains("g.png"), "{e}");
    assert!(decode_image(b"", Path::new("empty.png")).is_err());
}

#[test]
fn npy_and_npz_image_arrays() {
    let tmp = tempfile::tempdir().unwrap();
    let p = tmp.path().join("x.npy");
    let px: Vec<u8> = (0..2 * 3 * 4 * 3).map(|i| i as u8).collect();
    write_npy(
        &p,
        &NpyArray::new(vec![2, 3, 4, 3], NpyData::U8(px.clone())),
    )
    .unwrap();
    let s = read_image_npy(&p).unwrap();
    assert_eq!((s.shape(), &s.pixels), ([2, 3, 4, 3], &px));
    write_npy(&p, &NpyArray::new(vec![2, 3, 12], NpyData::U8(px.clone()))).unwrap();
    assert_eq!(read_image_npy(&p).unwrap().shape(), [2, 3, 12, 1]);
    write_npy(
        &p,
        &NpyArray::new(vec![2, 3, 4, 3], NpyData::F32(vec![0.0; 72])),
    )
    .unwrap();
    let e = read_image_npy(&p).unwrap_err().to_string();
    assert!(e.contains("x.npy") && e.contains("float32"), "{e}");
    write_npy(
        &p,
        &NpyArray::new(
            vec![2, 3, 4, 3].into_iter().collect(),
            NpyData::U8(px.clone()),
        ),
    )
    .unwrap();
    write_npy(
        &p,
        &NpyArray::new(vec![2, 3, 2, 6], NpyData::U8(px.clone())),
    )
    .unwrap();
    let e = read_image_npy(&p).unwrap_err().to_string();
    assert!(e.contains("channels-first"), "{e}");
    fs::write(&p, b"not numpy").unwrap();
    assert!(read_image_npy(&p)
        .unwrap_err()
        .to_string()
        .contains("bad magic"));

    let z = tmp.path().join("s.npz");
    let x = NpyArray::new(vec![2, 3, 4, 3], NpyData::U8(px.clone()));
    let y = NpyArray::new(vec![2], NpyData::I64(vec![1, 4]));
    write_npz(&z, &[("x", &x), ("y", &y)]).unwrap();
    let s = read_image_npz(&z, None).unwrap();
    assert_eq!(s.labels.as_ref().unwrap(), &vec![1, 4]);
    assert_eq!(s.class_names.len(), 5);
    let y3 = NpyArray::new(vec![3], NpyData::I64(vec![1, 4, 0]));
    write_npz(&z, &[("x", &x), ("y", &y3)]).unwrap();
    assert!(matches!(
        read_image_npz(&z, None),
        Err(DataError::CountMismatch {
            labels: 3,
            images: 2,
            ..
        })
    ));
    write_npz(&z, &[("a", &x), ("b", &x)]).unwrap();
    let e = read_image_npz(&z, None).unwrap_err().to_string();
    assert!(e.contains("which array") && e.contains("a, b"), "{e}");
    assert_eq!(read_image_npz(&z, Some("b")).unwrap().len(), 2);
}

fn idx_bytes(kind: u8, dims: &[u32], data: &[u8]) -> Vec<u8> {
    let mut b = vec![0, 0, kind, dims.len() as u8];
    for d in dims {
        b.extend_from_slice(&d.to_be_bytes());
    }
    b.extend_from_slice(data);
    b
}

fn gz(bytes: &[u8]) -> Vec<u8> {
    let mut e = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
    e.write_all(bytes).unwrap();
    e.finish().unwrap()
}

#[test]
fn mnist32_is_the_digit_on_a_black_32x32_rgb_canvas() {
    let tmp = tempfile::tempdir().unwrap();
    let d = tmp.path().join("mnist");
    fs::create_dir_all(&d).unwrap();
    let px: Vec<u8> = (0..2 * 28 * 28).map(|i| (i % 251) as u8 + 1).collect();
    fs::write(
        d.join("t10k-images-idx3-ubyte"),
        idx_bytes(8, &[2, 28, 28], &px),
    )
    .unwrap();
    fs::write(
        d.join("t10k-labels-idx1-ubyte"),
        idx_bytes(8, &[2], &[4, 1]),
    )
    .unwrap();
    let raw = mr_data::registry::load("mnist-test", tmp.path()).unwrap();
    let s = mr_data::registry::load("mnist32-test[1,4]", tmp.path()).unwrap();
    assert_eq!(s.shape(), [2, 32, 32, 3]);
    assert_eq!(s.variant.as_deref(), Some("idx-pad32-rgb"));
    // labels renumbered in the order given ("1" → 0, "4" → 1), images in file order
    assert_eq!(s.labels.as_ref().unwrap(), &vec![1, 0]);
    for (i, img) in [(0, s.image(0)), (1, s.image(1))] {
        for y in 0..32 {
            for x in 0..32 {
                let inside = (2..30).contains(&y) && (2..30).contains(&x);
                let want = if inside {
                    raw.image(i)[(y - 2) * 28 + x - 2]
                } else {
                    0
                };
                assert_eq!(&img[(y * 32 + x) * 3..][..3], &[want; 3], "({y}, {x})");
            }
        }
    }
    // the same files, so the same fetch hint when they are missing
    let e = mr_data::registry::load("fashion-mnist32-train", tmp.path())
        .unwrap_err()
        .to_string();
    assert!(e.contains("fashion-mnist"), "{e}");
}

#[test]
fn mnist_idx_plain_and_gzip() {
    let tmp = tempfile::tempdir().unwrap();
    let d = tmp.path();
    let px: Vec<u8> = (0..3 * 28 * 28).map(|i| (i % 256) as u8).collect();
    fs::write(
        d.join("train-images-idx3-ubyte"),
        idx_bytes(8, &[3, 28, 28], &px),
    )
    .unwrap();
    fs::write(
        d.join("train-labels-idx1-ubyte.gz"),
        gz(&idx_bytes(8, &[3], &[7, 0, 9])),
    )
    .unwrap();
    let names: Vec<String> = (0..10).map(|i| i.to_string()).collect();
    let s = read_mnist_dir(d, true, names.clone()).unwrap();
    assert_eq!(s.shape(), [3, 28, 28, 1]);
    assert_eq!(s.labels.as_ref().unwrap(), &vec![7, 0, 9]);
    assert_eq!(s.pixels, px);
    // MNIST_dir's dotted names also work
    fs::write(
        d.join("t10k-images.idx3-ubyte"),
        gz(&idx_bytes(8, &[1, 28, 28], &px[..784])),
    )
    .unwrap();
    fs::write(d.join("t10k-labels.idx1-ubyte"), idx_bytes(8, &[1], &[3])).unwrap();
    assert_eq!(read_mnist_dir(d, false, names.clone()).unwrap().len(), 1);

    let li = d.join("train-labels-idx1-ubyte.gz");
    let im = d.join("train-images-idx3-ubyte");
    // count mismatch
    fs::write(&li, gz(&idx_bytes(8, &[2], &[1, 2]))).unwrap();
    let e = read_idx_pair(&im, &li, names.clone()).unwrap_err();
    assert!(
        matches!(
            e,
            DataError::CountMismatch {
                labels: 2,
                images: 3,
                ..
            }
        ),
        "{e}"
    );
    // wrong magic / type / dims / truncation / bad gzip
    fs::write(&li, gz(&idx_bytes(8, &[3], &[1, 2, 11]))).unwrap();
    assert!(read_idx_pair(&im, &li, names.clone())
        .unwrap_err()
        .to_string()
        .contains("label 11"));
    fs::write(&li, b"\x01\x02\x08\x01").unwrap();
    assert!(read_idx_pair(&im, &li, names.clone())
        .unwrap_err()
        .to_string()
        .contains("bad magic"));
    fs::write(&li, idx_bytes(0x0d, &[3], &[0; 12])).unwrap();
    assert!(read_idx_pair(&im, &li, names.clone())
        .unwrap_err()
        .to_string()
        .contains("0x0d"));
    fs::write(&li, idx_bytes(8, &[3, 1], &[0; 3])).unwrap();
    assert!(read_idx_pair(&im, &li, names.clone())
        .unwrap_err()
        .to_string()
        .contains("2 dimensions"));
    fs::write(&im, idx_bytes(8, &[3, 28, 28], &px[..1000])).unwrap();
    fs::write(&li, idx_bytes(8, &[3], &[1, 2, 3])).unwrap();
    let e = read_idx_pair(&im, &li, names.clone())
        .unwrap_err()
        .to_string();
    assert!(
        e.contains("train-images-idx3-ubyte") && e.contains("truncated"),
        "{e}"
    );
    let g = gz(&idx_bytes(8, &[3, 28, 28], &px));
    fs::write(&im, &g[..g.len() / 2]).unwrap();
    let e = read_idx_pair(&im, &li, names).unwrap_err().to_string();
    assert!(e.contains("gzip"), "{e}");
}
