//! Writes the sample files the README uses, from MNIST test digits:
//!
//! - `examples/digits/`: digits as people's files look (dark ink on white,
//!   enlarged, off-center, JPEG, transparent background) next to plain
//!   28x28 MNIST ones;
//! - `examples/requests/`: JSON request bodies for ghz and grpcurl holding
//!   a real digit (base64 pixels and a base64 PNG), and the same digit as
//!   Open Inference Protocol requests: `oip-infer.json` for
//!   `inference.GRPCInferenceService/ModelInfer` (grpcurl, ghz) and
//!   `oip-rest.json` for `POST /v2/models/mnist/infer` (curl);
//! - `examples/numbers/`: photos of handwritten numbers (`mnist::synth`),
//!   named after the digits they show, and `examples/requests/read.json`, a
//!   `ReadOne` request holding one of them (ghz, grpcurl).
//!
//! Run: `MNIST_DIR=... cargo run --features synth --example make_samples`

use std::{fs, io::Cursor, path::Path};

use image::{DynamicImage, GrayImage, ImageFormat, Rgba, RgbaImage, imageops};
use mnist::{
    dataset::{Mnist, Split, default_dir},
    synth::{Condition, PhotoGenerator, Spacing},
};

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let test = Mnist::load(&default_dir(), Split::Test)?;
    let digits = Path::new("examples/digits");
    fs::create_dir_all(digits)?;
    let gray = |i: usize| GrayImage::from_raw(28, 28, test.image(i).to_vec()).ok_or("bad image");

    for i in 0..4 {
        gray(i)?.save(digits.join(format!("mnist-{i}-label-{}.png", test.labels[i])))?;
    }
    // Dark ink on white paper, scanned large.
    let scan = gray(4)?;
    let paper = GrayImage::from_fn(28, 28, |x, y| image::Luma([255 - scan.get_pixel(x, y).0[0]]));
    let big = imageops::resize(&paper, 280, 280, imageops::FilterType::CatmullRom);
    big.save(digits.join(format!("scan-dark-on-white-label-{}.png", test.labels[4])))?;
    DynamicImage::ImageLuma8(big).write_to(
        &mut fs::File::create(digits.join(format!("photo-label-{}.jpg", test.labels[4])))?,
        ImageFormat::Jpeg,
    )?;
    // Off to one side of a wide canvas.
    let mut canvas = GrayImage::new(200, 120);
    imageops::overlay(&mut canvas, &imageops::resize(&gray(5)?, 70, 70, imageops::FilterType::Triangle), 120, 10);
    canvas.save(digits.join(format!("off-center-label-{}.png", test.labels[5])))?;
    // Black strokes on a transparent sheet.
    let strokes = gray(6)?;
    let rgba = RgbaImage::from_fn(84, 84, |x, y| Rgba([20, 20, 60, strokes.get_pixel(x / 3, y / 3).0[0]]));
    rgba.save(digits.join(format!("transparent-label-{}.png", test.labels[6])))?;
    fs::write(digits.join("notes.txt"), "Not an image: mnist-client skips it.\n")?;

    let requests = Path::new("examples/requests");
    fs::create_dir_all(requests)?;
    let mut png = Vec::new();
    gray(0)?.write_to(&mut Cursor::new(&mut png), ImageFormat::Png)?;
    let pixels = base64(test.image(0));
    let png = base64(&png);
    let label = test.labels[0];
    fs::write(requests.join("pixels.json"), format!("{{\"id\": \"digit-{label}\", \"pixels\": \"{pixels}\"}}\n"))?;
    fs::write(requests.join("png.json"), format!("{{\"id\": \"digit-{label}-png\", \"image\": \"{png}\"}}\n"))?;
    // The same digit for one model by name (a server serving several).
    fs::write(
        requests.join("pixels-int8.json"),
        format!("{{\"id\": \"digit-{label}\", \"model\": \"mnist-int8\", \"pixels\": \"{pixels}\"}}\n"),
    )?;
    // Ten digits for one Predict stream: ghz takes a JSON array of messages,
    // grpcurl a sequence of JSON objects.
    let stream: Vec<String> =
        (0..10).map(|i| format!("{{\"id\": \"{i}\", \"pixels\": \"{}\"}}", base64(test.image(i)))).collect();
    fs::write(requests.join("stream-ghz.json"), format!("[\n  {}\n]\n", stream.join(",\n  ")))?;
    fs::write(requests.join("stream-grpcurl.json"), stream.join("\n") + "\n")?;
    // The Open Inference Protocol: UINT8 pixels as typed contents (gRPC)
    // and as JSON data (REST), so the answers are readable JSON too.
    let values: Vec<String> = test.image(0).iter().map(u8::to_string).collect();
    let values = values.join(",");
    fs::write(
        requests.join("oip-infer.json"),
        format!(
            "{{\"model_name\": \"mnist\", \"id\": \"digit-{label}\", \"inputs\": [{{\"name\": \"pixels\", \
             \"datatype\": \"UINT8\", \"shape\": [1, 784], \"contents\": {{\"uint_contents\": [{values}]}}}}]}}\n"
        ),
    )?;
    fs::write(
        requests.join("oip-rest.json"),
        format!(
            "{{\"id\": \"digit-{label}\", \"inputs\": [{{\"name\": \"pixels\", \"datatype\": \"UINT8\", \
             \"shape\": [1, 784], \"data\": [{values}]}}], \"outputs\": [{{\"name\": \"digit\"}}, \
             {{\"name\": \"probabilities\", \"parameters\": {{\"classification\": 3}}}}]}}\n"
        ),
    )?;
    // Numbers: a meter reading, a zip code, an amount; wide to touching.
    let numbers = Path::new("examples/numbers");
    fs::create_dir_all(numbers)?;
    let mut generator = PhotoGenerator::new(2026, 640);
    let cases = [
        ("meter", Spacing::Normal, Condition::UnevenLight, &[11usize, 12, 13, 14, 15, 16][..]),
        ("zip", Spacing::Close, Condition::Ruled, &[20, 21, 22, 23, 24][..]),
        ("amount", Spacing::Wide, Condition::Clean, &[30, 31, 32][..]),
        ("touching", Spacing::Touching, Condition::FaintPencil, &[40, 41, 42, 43][..]),
    ];
    let mut read_request = None;
    for (what, spacing, condition, indices) in cases {
        let digits: Vec<&[u8]> = indices.iter().map(|&i| test.image(i)).collect();
        let text: String = indices.iter().map(|&i| char::from(b'0' + test.labels[i])).collect();
        let photo = generator.number_jpeg(&digits, spacing, condition);
        fs::write(numbers.join(format!("{what}-{text}.jpg")), &photo)?;
        read_request
            .get_or_insert_with(|| format!("{{\"id\": \"{what}-{text}\", \"image\": \"{}\"}}\n", base64(&photo)));
    }
    if let Some(request) = read_request {
        fs::write(requests.join("read.json"), request)?;
    }
    println!("wrote examples/digits, examples/numbers and examples/requests");
    Ok(())
}

/// Standard base64 with padding (what protobuf's JSON mapping uses for bytes).
fn base64(bytes: &[u8]) -> String {
    const ALPHABET: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let mut out = String::with_capacity(bytes.len().div_ceil(3) * 4);
    for chunk in bytes.chunks(3) {
        let b = [chunk[0], *chunk.get(1).unwrap_or(&0), *chunk.get(2).unwrap_or(&0)];
        let n = (u32::from(b[0]) << 16) | (u32::from(b[1]) << 8) | u32::from(b[2]);
        for (i, shift) in [18, 12, 6, 0].into_iter().enumerate() {
            out.push(if i <= chunk.len() { ALPHABET[((n >> shift) & 63) as usize] as char } else { '=' });
        }
    }
    out
}
