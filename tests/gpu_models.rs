//! The networks on burn's wgpu backend (lavapipe in CI) against the CPU backend, on the
//! committed fixtures, and fed by the GPU pre-processing shaders:
//!
//! - MTCNN (`models/mtcnn`) finds the same faces on both devices: scores within 1e-3,
//!   boxes and landmarks within 0.05 px, also when a small buffer limit splits a batch
//!   into several passes;
//! - P-Net on the shader-built pyramid gives the probabilities P-Net gives on the CPU
//!   resampler's pyramid, within 1e-4 on the same device and 1e-3 against the CPU device;
//! - the ViT expression model on GPU face crops gives the CPU path's probabilities
//!   (`align` + `ExpressionModel::predict_probs` on flex) within 1e-3.
//!
//! Skips only when wgpu finds no adapter at all, or (with a message) when the MTCNN
//! weights are absent from `models/`.

mod gpu_common;

use std::path::{Path, PathBuf};

use burn::tensor::activation::softmax;
use burn::tensor::{Device, Tensor, TensorData};
use gpu_common::{Rng, gpu_device, host, max_abs_diff};
use mimic::align;
use mimic::geometry::FaceDetection;
use mimic::gpu::area::mtcnn_pyramid;
use mimic::gpu::colour::DecodedPicture;
use mimic::gpu::crops::{CropStyle, FaceCrop, face_crops};
use mimic::gpu::pictures_to_rgb;
use mimic::model::{ExpressionModel, ModelConfig};
use mimic::mtcnn::boxes::{pyramid_scales, scaled_size};
use mimic::mtcnn::nets::PNet;
use mimic::mtcnn::passes::{CropNet, PassLimit};
use mimic::mtcnn::resample::IntegralImage;
use mimic::mtcnn::{FaceDetector, MtcnnConfig};
use mimic::vit::{GlobalPool, VitConfig};

fn root() -> &'static Path {
    Path::new(env!("CARGO_MANIFEST_DIR"))
}

fn mtcnn_dir() -> Option<PathBuf> {
    let dir = root().join("models/mtcnn");
    if dir.join("pnet.safetensors").is_file() {
        Some(dir)
    } else {
        eprintln!(
            "SKIPPED: no MTCNN weights in {} (run scripts/convert_mtcnn.py)",
            dir.display()
        );
        None
    }
}

fn fixture_image(name: &str) -> image::RgbImage {
    image::open(root().join("tests/fixtures/mtcnn").join(name))
        .unwrap()
        .to_rgb8()
}

/// Pairs each CPU face with the GPU face of nearest box; panics past the bounds.
fn assert_same_faces(cpu: &[FaceDetection], gpu: &[FaceDetection], what: &str) {
    assert_eq!(
        cpu.len(),
        gpu.len(),
        "{what}: {} faces on the CPU, {} on the GPU",
        cpu.len(),
        gpu.len()
    );
    for c in cpu {
        let g = gpu
            .iter()
            .max_by(|a, b| a.bbox.iou(&c.bbox).total_cmp(&b.bbox.iou(&c.bbox)))
            .unwrap();
        let boxes = [
            (c.bbox.x1, g.bbox.x1),
            (c.bbox.y1, g.bbox.y1),
            (c.bbox.x2, g.bbox.x2),
            (c.bbox.y2, g.bbox.y2),
        ];
        let box_diff = boxes.iter().map(|(a, b)| (a - b).abs()).fold(0.0, f32::max);
        let lm_diff = c
            .landmarks
            .iter()
            .zip(&g.landmarks)
            .map(|(a, b)| (a[0] - b[0]).abs().max((a[1] - b[1]).abs()))
            .fold(0.0, f32::max);
        assert!(
            (c.score - g.score).abs() <= 1e-3,
            "{what}: score {} vs {}",
            c.score,
            g.score
        );
        assert!(
            box_diff <= 0.05,
            "{what}: boxes {:?} vs {:?}",
            c.bbox,
            g.bbox
        );
        assert!(
            lm_diff <= 0.05,
            "{what}: landmarks {:?} vs {:?}",
            c.landmarks,
            g.landmarks
        );
    }
}

/// MTCNN on the CPU backend and on the wgpu device; `None` when either is missing (with
/// the skip message).
fn detectors() -> Option<(FaceDetector, FaceDetector)> {
    let device = gpu_device()?;
    let dir = mtcnn_dir()?;
    let cpu = FaceDetector::load(&dir, MtcnnConfig::default(), &Device::flex()).unwrap();
    let gpu = FaceDetector::load(&dir, MtcnnConfig::default(), &device).unwrap();
    Some((cpu, gpu))
}

/// `images` uploaded together and detected on `gpu`; each frame's faces checked against
/// `cpu` on that image alone. Returns the CPU's faces per frame.
fn assert_uploaded_batch_finds_the_cpu_faces(
    cpu: &FaceDetector,
    gpu: &FaceDetector,
    images: &[&image::RgbImage],
    what: &str,
) -> Vec<Vec<FaceDetection>> {
    let batch = mimic::gpu::upload_frames(images, gpu.device()).unwrap();
    let found = gpu.detect_on_device(batch).unwrap();
    assert_eq!(found.len(), images.len());
    let mut on_cpu = Vec::with_capacity(images.len());
    for (k, (picture, faces)) in images.iter().zip(found).enumerate() {
        let cpu_faces = cpu.detect(picture);
        let on_gpu: Vec<FaceDetection> = faces.into_iter().map(|f| f.face).collect();
        assert_same_faces(&cpu_faces, &on_gpu, &format!("{what} {k}"));
        on_cpu.push(cpu_faces);
    }
    on_cpu
}

#[test]
fn mtcnn_on_wgpu_finds_the_faces_it_finds_on_the_cpu() {
    let Some((cpu, gpu)) = detectors() else {
        return;
    };
    let images = [
        fixture_image("frame_000.png"),
        fixture_image("frame_240.png"),
    ];
    let refs: Vec<&image::RgbImage> = images.iter().collect();
    let on_cpu = cpu.detect_batch(&refs);
    let on_gpu = gpu.detect_batch(&refs);
    let mut faces = 0;
    for (k, (c, g)) in on_cpu.iter().zip(&on_gpu).enumerate() {
        assert_same_faces(c, g, &format!("image {k}"));
        faces += c.len();
    }
    assert!(faces >= 2, "the fixtures hold faces; found {faces}");
}

#[test]
fn mtcnn_on_uploaded_frames_finds_the_faces_it_finds_on_the_cpu() {
    // The GPU path of the analyzer: frames uploaded once, the pyramid and the R-Net/O-Net
    // crops resampled by the area shader on the device, only boxes coming back.
    let Some((cpu, gpu)) = detectors() else {
        return;
    };
    let device = gpu.device().clone();
    assert!(gpu.runs_on_gpu() && !cpu.runs_on_gpu());
    // Two frames uploaded together (batch mode), each compared with the CPU alone.
    let (image, other) = (
        fixture_image("frame_000.png"),
        fixture_image("frame_120.png"),
    );
    let on_cpu =
        assert_uploaded_batch_finds_the_cpu_faces(&cpu, &gpu, &[&image, &other], "uploaded frame");
    for (k, faces) in on_cpu.iter().enumerate() {
        assert!(!faces.is_empty(), "fixture frame {k} holds faces");
    }
    let frames = mimic::gpu::upload_frames(&[&image], &device).unwrap();

    // Following the faces into the same frame keeps them where they are, on both paths.
    let followed_cpu = cpu.follow(&image, &cpu.detect_followable(&image));
    let previous = gpu.detect_on_device(frames.clone()).unwrap().pop().unwrap();
    let followed_gpu: Vec<FaceDetection> = gpu
        .follow_on_device(frames, &previous)
        .unwrap()
        .into_iter()
        .map(|f| f.face)
        .collect();
    let followed_cpu: Vec<FaceDetection> = followed_cpu.into_iter().map(|f| f.face).collect();
    assert_same_faces(&followed_cpu, &followed_gpu, "followed faces");
    // The CPU backend cannot run the shaders: a clear error, not a panic.
    let host_frames = Tensor::<4>::zeros([1, 3, 24, 24], &Device::flex());
    assert!(cpu.detect_on_device(host_frames).is_err());
}

#[test]
fn mtcnn_split_into_passes_that_fit_a_small_buffer_limit_finds_the_same_faces() {
    // Under a 4 MiB buffer limit a 640x360 frame goes alone (P-Net's first level takes
    // 3.3 MB), and R-Net and O-Net take 77 and 15 crops a pass: two frames uploaded
    // together become two passes, each with several R-Net and O-Net passes.
    let Some((cpu, gpu)) = detectors() else {
        return;
    };
    let gpu = gpu.with_pass_limit(PassLimit::new(4 << 20));
    let (image, other) = (
        fixture_image("frame_000.png"),
        fixture_image("frame_120.png"),
    );
    let (w, h) = image.dimensions();
    assert_eq!(gpu.frames_per_device_pass(w, h).unwrap(), 1);
    assert_eq!(PassLimit::new(4 << 20).crops_per_pass(CropNet::ONet), 15);
    assert_uploaded_batch_finds_the_cpu_faces(&cpu, &gpu, &[&image, &other], "frame in passes");
    // A frame that no pass can hold is an error, not a failed allocation.
    let tiny = gpu.with_pass_limit(PassLimit::new(1 << 20));
    assert!(tiny.frames_per_device_pass(w, h).is_err());
}

#[test]
fn pnet_on_the_shader_pyramid_equals_pnet_on_the_cpu_pyramid() {
    // Bounds: 1e-4 between the two inputs on the wgpu device (the pyramids agree to 1e-6),
    // 1e-3 against P-Net on the CPU device.
    let Some(device) = gpu_device() else { return };
    let Some(dir) = mtcnn_dir() else { return };
    let image = fixture_image("frame_000.png");
    let (w, h) = image.dimensions();
    let pnet_gpu = PNet::load(&dir.join("pnet.safetensors"), &device).unwrap();
    let pnet_cpu = PNet::load(&dir.join("pnet.safetensors"), &Device::flex()).unwrap();
    let frames = pictures_to_rgb(&[DecodedPicture::from_rgb(&image)], &device).unwrap();
    // The coarse end of the pyramid keeps the test quick on a software adapter.
    let scales: Vec<f64> = pyramid_scales(w, h, 20.0, 0.709)
        .into_iter()
        .skip(3)
        .collect();
    let levels = mtcnn_pyramid(frames, &scales).unwrap();
    let integral = IntegralImage::new(&image);
    for (level, &scale) in levels.into_iter().zip(&scales) {
        let (lh, lw) = scaled_size(w, h, scale);
        let mut cpu_input = vec![0.0; 3 * lh * lw];
        integral.resize_area_normalised(integral.full_rect(), lh, lw, &mut cpu_input);
        let shape = [1, 3, lh, lw];
        let (_, p_shader) = pnet_gpu.forward(level);
        let (_, p_upload) = pnet_gpu.forward(Tensor::from_data(
            TensorData::new(cpu_input.clone(), shape),
            &device,
        ));
        let (_, p_cpu) = pnet_cpu.forward(Tensor::from_data(
            TensorData::new(cpu_input, shape),
            &Device::flex(),
        ));
        let (p_shader, p_upload, p_cpu) = (host(p_shader), host(p_upload), host(p_cpu));
        let (same_device, _) = max_abs_diff(&p_shader, &p_upload);
        let (across, _) = max_abs_diff(&p_shader, &p_cpu);
        assert!(
            same_device <= 1e-4,
            "scale {scale}: shader vs uploaded pyramid {same_device}"
        );
        assert!(across <= 1e-3, "scale {scale}: wgpu vs CPU {across}");
    }
}

/// A small ViT with random weights of ordinary size, saved and loaded like a package.
fn random_model(dir: &Path) -> ModelConfig {
    let device = Device::flex();
    device.seed(7);
    let vit = VitConfig::new()
        .with_image_size(32)
        .with_patch_size(8)
        .with_dim(64)
        .with_depth(2)
        .with_heads(4)
        .with_num_classes(7)
        .with_global_pool(GlobalPool::Cls);
    let classes = (0..7).map(|i| format!("c{i}")).collect();
    let mut config = ModelConfig::new("gpu-test", vit.clone(), classes);
    config.weights_dtype = "f32".into();
    let mut model = vit.init(&device);
    // Head weights of ordinary size, so the probabilities are not all ~1/7.
    let head = model.head.as_mut().unwrap();
    head.weight = burn::module::Param::from_tensor(Tensor::random(
        head.weight.dims(),
        burn::tensor::Distribution::Normal(0.0, 0.5),
        &device,
    ));
    ExpressionModel::from_parts(model, config.clone(), &device)
        .save(dir, "test\n")
        .unwrap();
    config
}

#[test]
fn vit_on_gpu_face_crops_gives_the_cpu_paths_probabilities() {
    // Bound: 1e-3 on every probability.
    let Some(device) = gpu_device() else { return };
    let dir = tempfile::tempdir().unwrap();
    random_model(dir.path());
    let cpu = ExpressionModel::load(dir.path(), &Device::flex()).unwrap();
    let gpu = ExpressionModel::load(dir.path(), &device).unwrap();
    let size = cpu.input_size();
    let template = align::scale_template(&align::ARCFACE_112, 112, size);

    let mut rng = Rng::new(21);
    let frames: Vec<image::RgbImage> = (0..2).map(|_| rng.textured_image(120, 90)).collect();
    let faces: Vec<(usize, [[f32; 2]; 5])> = (0..6)
        .map(|i| {
            let (cx, cy, s) = (
                rng.uniform(20.0, 100.0),
                rng.uniform(15.0, 75.0),
                rng.uniform(0.5, 1.5),
            );
            let lm = [
                [-10.0, -8.0],
                [10.0, -8.0],
                [0.0, 2.0],
                [-8.0, 12.0],
                [8.0, 12.0],
            ]
            .map(|[x, y]| [cx + s * x, cy + s * y]);
            (i % 2, lm)
        })
        .collect();

    // CPU path: 8-bit aligned crops, then the model's own pre-processing.
    let crops: Vec<image::RgbImage> = faces
        .iter()
        .map(|(f, lm)| align::align_face(&frames[*f], lm, &template, size))
        .collect();
    let want: Vec<f32> = cpu.predict_probs(&crops).concat();

    // GPU path: frames uploaded once, crops and normalisation in the shader.
    let pictures: Vec<DecodedPicture> = frames.iter().map(DecodedPicture::from_rgb).collect();
    let on_device = pictures_to_rgb(&pictures, &device).unwrap();
    let requests: Vec<FaceCrop> = faces
        .iter()
        .map(|(f, lm)| FaceCrop::from_landmarks(*f, lm, &template))
        .collect();
    let input = face_crops(on_device, &requests, &CropStyle::of_model(gpu.config())).unwrap();
    let got = host(softmax(gpu.vit().forward(input), 1));

    let (diff, at) = max_abs_diff(&got, &want);
    assert!(diff <= 1e-3, "probabilities differ by {diff} at {at}");
    // The network alone: the CPU crops pre-processed on the host, run on wgpu.
    let probs_of_cpu_crops = host(softmax(gpu.vit().forward(gpu.preprocess(&crops)), 1));
    let (diff, _) = max_abs_diff(&probs_of_cpu_crops, &want);
    assert!(diff <= 1e-3, "ViT on wgpu vs flex, same input: {diff}");
}
