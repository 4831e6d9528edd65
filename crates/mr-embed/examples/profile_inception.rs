//! Times the FID Inception-v3 forward on the CPU backend, stage by stage (developer profiling aid).
//! `cargo run --release -p mr-embed --example profile_inception -- [N] [BATCH]`
use burn::backend::Flex;
use burn::tensor::{Tensor, TensorData};
use mr_embed::{Embedder, InceptionFid};
use std::time::Instant;

type B = Flex;

fn main() {
    let mut args = std::env::args().skip(1);
    let n: usize = args.next().and_then(|s| s.parse().ok()).unwrap_or(64);
    let batch: usize = args.next().and_then(|s| s.parse().ok()).unwrap_or(32);
    let dev = Default::default();
    let path =
        mr_embed::paths::fetched_weights("inception-fid", mr_embed::inception::FID_HELPER_FILE)
            .expect("weights");
    let model = InceptionFid::<B>::from_fid_helper(&path, &dev).expect("weights");
    let mut state = 12345u64;
    let px: Vec<f32> = (0..batch * 3 * 32 * 32)
        .map(|_| {
            state = state
                .wrapping_mul(6364136223846793005)
                .wrapping_add(1442695040888963407);
            ((state >> 33) % 256) as f32
        })
        .collect();
    let x = Tensor::<B, 4>::from_data(TensorData::new(px, [batch, 3, 32, 32]), &dev);
    let _ = model.embed(x.clone()).into_data();
    let t = Instant::now();
    let reps = n.div_ceil(batch);
    for _ in 0..reps {
        let _ = model.embed(x.clone()).into_data();
    }
    let dt = t.elapsed().as_secs_f64();
    println!(
        "{} images in {dt:.2} s: {:.2} images/s",
        reps * batch,
        (reps * batch) as f64 / dt
    );
}
