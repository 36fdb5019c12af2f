//! Every WGSL shader of `shaders/` against its CPU twin, on random inputs: odd widths and
//! heights, 1-pixel images, padded planes, crops that leave the frame. Runs on any wgpu
//! adapter (lavapipe in CI); skips only where wgpu finds no adapter at all.
//!
//! Error bounds (stated in each test): colour conversion exact (integer maths); area
//! resize 1e-6 (two f32 divisions, 2.5 ulp each allowed by WGSL); face crops 1e-5, or one
//! 8-bit level on at most 0.5 % of the values (a fused multiply-add may move a sample).

mod gpu_common;

use burn::tensor::{Tensor, TensorData};
use gpu_common::{Rng, gpu_device, host, max_abs_diff};
use mimic::align::{self, Similarity};
use mimic::gpu::area::{AreaJob, area_resize, area_resize_reference, mtcnn_crops, mtcnn_pyramid};
use mimic::gpu::colour::{
    DecodedPicture, PixelLayout, YuvMatrix, convert_reference, decoded_to_rgb, rgb_planes,
};
use mimic::gpu::crops::{CropStyle, FaceCrop, face_crops, face_crops_reference};
use mimic::gpu::pictures_to_rgb;
use mimic::mtcnn::boxes::{CropRect, pyramid_scales, scaled_size};
use mimic::mtcnn::resample::IntegralImage;

/// Odd, even, 1-pixel and thin sizes `(width, height)`.
const SIZES: [(u32, u32); 9] = [
    (1, 1),
    (2, 2),
    (3, 1),
    (1, 5),
    (7, 3),
    (17, 9),
    (64, 35),
    (33, 48),
    (130, 67),
];

/// A picture of `layout` with random bytes and rows padded to a random stride.
fn random_picture(
    rng: &mut Rng,
    layout: PixelLayout,
    w: u32,
    h: u32,
    matrix: YuvMatrix,
) -> DecodedPicture {
    let (w, h) = (w as usize, h as usize);
    let (cw, ch) = (w.div_ceil(2), h.div_ceil(2));
    let extents: Vec<(usize, usize)> = match layout {
        PixelLayout::Yuv420p => vec![(w, h), (cw, ch), (cw, ch)],
        PixelLayout::Nv12 => vec![(w, h), (2 * cw, ch)],
        PixelLayout::Rgb24 => vec![(3 * w, h)],
    };
    let planes: Vec<(Vec<u8>, usize)> = extents
        .iter()
        .map(|&(row, rows)| {
            let stride = row + rng.below(9);
            (rng.bytes(stride * rows), stride)
        })
        .collect();
    let borrowed: Vec<(&[u8], usize)> = planes.iter().map(|(b, s)| (b.as_slice(), *s)).collect();
    DecodedPicture::from_planes(layout, w as u32, h as u32, &borrowed, matrix).unwrap()
}

#[test]
fn decoded_to_rgb_shader_equals_its_cpu_twin_exactly() {
    // Bound: exact. Both compute swscale's 16-bit fixed point in integers.
    let Some(device) = gpu_device() else { return };
    let mut rng = Rng::new(1);
    let matrices = [
        YuvMatrix::bt601(false),
        YuvMatrix::bt709(false),
        YuvMatrix::bt709(true),
    ];
    for (k, &(w, h)) in SIZES.iter().enumerate() {
        for layout in [PixelLayout::Yuv420p, PixelLayout::Nv12, PixelLayout::Rgb24] {
            let picture = random_picture(&mut rng, layout, w, h, matrices[k % matrices.len()]);
            let want = rgb_planes(&convert_reference(&picture).unwrap());
            let got = host(decoded_to_rgb(&picture, &device).unwrap());
            let (diff, at) = max_abs_diff(&got, &want);
            assert_eq!(
                diff, 0.0,
                "{layout:?} {w}x{h}: differs by {diff} at value {at}"
            );
        }
    }
}

#[test]
fn pictures_of_a_batch_stack_in_order() {
    let Some(device) = gpu_device() else { return };
    let mut rng = Rng::new(2);
    let pictures: Vec<DecodedPicture> = (0..3)
        .map(|_| {
            random_picture(
                &mut rng,
                PixelLayout::Yuv420p,
                6,
                4,
                YuvMatrix::bt601(false),
            )
        })
        .collect();
    let batch = pictures_to_rgb(&pictures, &device).unwrap();
    assert_eq!(batch.dims(), [3, 3, 4, 6]);
    let want: Vec<f32> = pictures
        .iter()
        .flat_map(|p| rgb_planes(&convert_reference(p).unwrap()))
        .collect();
    assert_eq!(host(batch), want);
}

/// Frames on the device as `[n, 3, h, w]` and their integral images for the CPU twin.
fn frames_both_ways(
    device: &burn::tensor::Device,
    images: &[image::RgbImage],
) -> (Tensor<4>, Vec<IntegralImage>) {
    let (w, h) = (images[0].width() as usize, images[0].height() as usize);
    let data: Vec<f32> = images.iter().flat_map(rgb_planes).collect();
    let tensor = Tensor::from_data(TensorData::new(data, [images.len(), 3, h, w]), device);
    (tensor, images.iter().map(IntegralImage::new).collect())
}

/// A random rectangle inside a `w x h` frame.
fn random_rect(rng: &mut Rng, w: usize, h: usize) -> CropRect {
    let (x0, y0) = (rng.below(w), rng.below(h));
    CropRect {
        x0,
        y0,
        x1: x0 + 1 + rng.below(w - x0),
        y1: y0 + 1 + rng.below(h - y0),
    }
}

#[test]
fn area_resize_shader_matches_the_cpu_resampler_within_1e_6() {
    // Bound: 1e-6 absolute on normalised values in [-1, 1] (WGSL allows 2.5 ulp per
    // division; the window sums are exact on both sides).
    let Some(device) = gpu_device() else { return };
    let mut rng = Rng::new(3);
    let mut worst = 0.0f32;
    for &(w, h) in &SIZES {
        let images: Vec<_> = (0..2).map(|_| rng.image(w, h)).collect();
        let (frames, integrals) = frames_both_ways(&device, &images);
        let (wu, hu) = (w as usize, h as usize);
        let mut jobs = Vec::new();
        // Downscales, upscales (up to 3x) and identity of random rectangles, in both frames.
        for _ in 0..12 {
            let rect = random_rect(&mut rng, wu, hu);
            let out_h = 1 + rng.below(3 * rect.height());
            let out_w = 1 + rng.below(3 * rect.width());
            jobs.push(AreaJob {
                frame: rng.below(2),
                rect,
                out_h,
                out_w,
            });
        }
        jobs.push(AreaJob {
            frame: 1,
            rect: CropRect {
                x0: 0,
                y0: 0,
                x1: wu,
                y1: hu,
            },
            out_h: hu,
            out_w: wu,
        });
        jobs.push(AreaJob {
            frame: 0,
            rect: CropRect {
                x0: wu - 1,
                y0: hu - 1,
                x1: wu,
                y1: hu,
            },
            out_h: 2,
            out_w: 3,
        });
        let got = host(area_resize(frames, &jobs).unwrap());
        let want = area_resize_reference(&integrals, &jobs);
        let (diff, at) = max_abs_diff(&got, &want);
        assert!(diff <= 1e-6, "{w}x{h}: differs by {diff} at value {at}");
        worst = worst.max(diff);
    }
    eprintln!("area resize: largest difference {worst:e} (bound 1e-6)");
}

#[test]
fn mtcnn_pyramid_levels_are_the_cpu_detectors_inputs() {
    // Bound: 1e-6, as above; every level of every frame from one launch.
    let Some(device) = gpu_device() else { return };
    let mut rng = Rng::new(4);
    let images: Vec<_> = (0..3).map(|_| rng.textured_image(161, 93)).collect();
    let (frames, integrals) = frames_both_ways(&device, &images);
    let scales = pyramid_scales(161, 93, 12.0, 0.709);
    assert!(scales.len() > 4);
    let levels = mtcnn_pyramid(frames, &scales).unwrap();
    assert_eq!(levels.len(), scales.len());
    for (level, &scale) in levels.into_iter().zip(&scales) {
        let (h, w) = scaled_size(161, 93, scale);
        assert_eq!(level.dims(), [3, 3, h, w]);
        let got = host(level);
        for (k, integral) in integrals.iter().enumerate() {
            let mut want = vec![0.0; 3 * h * w];
            integral.resize_area_normalised(integral.full_rect(), h, w, &mut want);
            let (diff, at) = max_abs_diff(&got[k * 3 * h * w..(k + 1) * 3 * h * w], &want);
            assert!(diff <= 1e-6, "scale {scale}, frame {k}: {diff} at {at}");
        }
    }
}

#[test]
fn mtcnn_box_crops_match_the_cpu_crops() {
    // Bound: 1e-6. R-Net's 24x24 inputs of boxes clipped to the frame, from two frames.
    let Some(device) = gpu_device() else { return };
    let mut rng = Rng::new(5);
    let images: Vec<_> = (0..2).map(|_| rng.textured_image(75, 51)).collect();
    let (frames, integrals) = frames_both_ways(&device, &images);
    let crops: Vec<(usize, CropRect)> = (0..40)
        .map(|_| (rng.below(2), random_rect(&mut rng, 75, 51)))
        .collect();
    let got = host(mtcnn_crops(frames, &crops, 24).unwrap());
    let jobs: Vec<AreaJob> = crops
        .iter()
        .map(|&(frame, rect)| AreaJob {
            frame,
            rect,
            out_h: 24,
            out_w: 24,
        })
        .collect();
    let (diff, at) = max_abs_diff(&got, &area_resize_reference(&integrals, &jobs));
    assert!(diff <= 1e-6, "differs by {diff} at value {at}");
}

/// A random crop transform: scale 0.2..3, any rotation, placed so the crop may lie
/// inside the frame, across its border, or wholly outside it.
fn random_similarity(rng: &mut Rng, w: u32, h: u32) -> Similarity {
    let (s, angle) = (rng.uniform(0.2, 3.0), rng.uniform(-3.2, 3.2));
    Similarity {
        a: s * angle.cos(),
        b: s * angle.sin(),
        tx: rng.uniform(-1.5, 1.5) * w as f32,
        ty: rng.uniform(-1.5, 1.5) * h as f32,
    }
}

#[test]
fn face_crops_shader_matches_align_and_normalize() {
    // Bound: 1e-5 per value where the 8-bit crop values agree; a value may differ by one
    // 8-bit level (1 / (255 std) + 1e-5) where a GPU fused multiply-add moves a sample
    // across a rounding edge, on at most 0.5 % of the values.
    let Some(device) = gpu_device() else { return };
    let mut rng = Rng::new(6);
    let mut worst_fraction = 0.0f64;
    for (k, &(w, h)) in SIZES.iter().enumerate() {
        let images: Vec<_> = (0..2).map(|_| rng.textured_image(w, h)).collect();
        let (frames, _) = frames_both_ways(&device, &images);
        let style = CropStyle {
            size: [1, 7, 16, 24][k % 4],
            grey: k % 2 == 0,
            mean: [0.485, 0.456, 0.406],
            std: [0.229, 0.224, 0.225],
        };
        let mut crops: Vec<FaceCrop> = (0..9)
            .map(|_| FaceCrop {
                frame: rng.below(2),
                to_frame: Some(random_similarity(&mut rng, w, h)),
            })
            .collect();
        crops.push(FaceCrop {
            frame: 0,
            to_frame: Some(Similarity::IDENTITY),
        });
        crops.push(FaceCrop {
            frame: 1,
            to_frame: None,
        });
        let got = host(face_crops(frames, &crops, &style).unwrap());
        let want = face_crops_reference(&images, &crops, &style);
        let level = 1.0 / (255.0 * 0.224) + 1e-5;
        let mut off_by_a_level = 0usize;
        for (i, (g, r)) in got.iter().zip(&want).enumerate() {
            let d = (g - r).abs();
            assert!(d <= level, "{w}x{h} crop value {i}: {g} vs {r}");
            if d > 1e-5 {
                off_by_a_level += 1;
            }
        }
        let fraction = off_by_a_level as f64 / got.len() as f64;
        assert!(
            fraction <= 0.005,
            "{w}x{h}: {off_by_a_level} of {} values off by a level",
            got.len()
        );
        worst_fraction = worst_fraction.max(fraction);
    }
    eprintln!(
        "face crops: at most {:.4} % of values off by one 8-bit level (bound 0.5 %)",
        100.0 * worst_fraction
    );
}

#[test]
fn face_crops_of_real_landmarks_equal_the_cpu_alignment() {
    // The pipeline's case: landmarks → template transform on the host, crops on the GPU.
    // Same bound as above.
    let Some(device) = gpu_device() else { return };
    let mut rng = Rng::new(7);
    let image = rng.textured_image(200, 150);
    let (frames, _) = frames_both_ways(&device, std::slice::from_ref(&image));
    let template = align::scale_template(&align::ARCFACE_112, 112, 32);
    let landmarks = [
        [
            [80.0, 60.0],
            [120.0, 62.0],
            [100.0, 85.0],
            [84.0, 105.0],
            [117.0, 106.0],
        ],
        // A face half out of the frame, tilted.
        [
            [-10.0, 20.0],
            [25.0, 5.0],
            [15.0, 35.0],
            [5.0, 60.0],
            [35.0, 48.0],
        ],
        // All points equal: `align` falls back to a pure translation.
        [[50.0, 50.0]; 5],
    ];
    let crops: Vec<FaceCrop> = landmarks
        .iter()
        .map(|l| FaceCrop::from_landmarks(0, l, &template))
        .collect();
    let style = CropStyle {
        size: 32,
        grey: true,
        mean: [0.5; 3],
        std: [0.25; 3],
    };
    let got = host(face_crops(frames, &crops, &style).unwrap());
    let mut want = Vec::new();
    for l in &landmarks {
        let aligned = align::align_face(&image, l, &template, 32);
        want.extend(mimic::model::normalize_crop(
            &aligned, true, style.mean, style.std,
        ));
    }
    let level = 1.0 / (255.0 * 0.25) + 1e-5;
    let off = got
        .iter()
        .zip(&want)
        .filter(|(g, r)| (*g - *r).abs() > 1e-5)
        .count();
    let (diff, at) = max_abs_diff(&got, &want);
    assert!(diff <= level, "differs by {diff} at value {at}");
    assert!(
        off as f64 <= 0.005 * got.len() as f64,
        "{off} values off by a level"
    );
}
