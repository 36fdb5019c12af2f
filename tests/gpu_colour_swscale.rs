//! The GPU colour conversion's CPU twin (`gpu::colour::convert_reference`, which the shader
//! equals bit for bit: `gpu_shaders.rs`) against what the CPU path really gets: FFmpeg's
//! swscale, called as `decode::video_file` calls it, and the decoder's own RGB frames of
//! the fixture clip. Needs no GPU.
//!
//! Bound: exact (0 levels) for 4:2:0 planar at even heights with swscale 5.1 on x86 — its
//! unscaled yuv2rgb path, which the twin reproduces — on random pictures of odd and even
//! widths, BT.601/BT.709, limited and full range, and on every frame of the clip.
//! (At odd heights and for NV12 swscale switches to its generic scaler, which
//! interpolates chroma; the GPU path is not meant for those, see `PixelLayout::swscale_exact`.)

mod gpu_common;

use std::path::Path;

use ffmpeg::format::Pixel;
use ffmpeg::software::scaling;
use ffmpeg_next as ffmpeg;
use gpu_common::Rng;
use mimic::decode::{InputSpec, open};
use mimic::gpu::colour::{DecodedPicture, PixelLayout, YuvMatrix, convert_reference};

/// swscale as the decoder sets it up: bilinear flags, the stream's matrix and range.
fn swscale_rgb(frame: &ffmpeg::frame::Video, colorspace: i32, full_range: bool) -> image::RgbImage {
    let (w, h) = (frame.width(), frame.height());
    let mut scaler = scaling::Context::get(
        frame.format(),
        w,
        h,
        Pixel::RGB24,
        w,
        h,
        scaling::Flags::BILINEAR,
    )
    .unwrap();
    // SAFETY: as in decode::video_file: static coefficient tables, our own context.
    unsafe {
        let src = ffmpeg::ffi::sws_getCoefficients(colorspace);
        let dst = ffmpeg::ffi::sws_getCoefficients(ffmpeg::ffi::SWS_CS_DEFAULT as i32);
        ffmpeg::ffi::sws_setColorspaceDetails(
            scaler.as_mut_ptr(),
            src,
            full_range as i32,
            dst,
            1,
            0,
            1 << 16,
            1 << 16,
        );
    }
    let mut rgb = ffmpeg::frame::Video::new(Pixel::RGB24, w, h);
    scaler.run(frame, &mut rgb).unwrap();
    let (stride, data) = (rgb.stride(0), rgb.data(0));
    let mut out = Vec::with_capacity((3 * w * h) as usize);
    for row in data.chunks(stride).take(h as usize) {
        out.extend_from_slice(&row[..3 * w as usize]);
    }
    image::RgbImage::from_raw(w, h, out).unwrap()
}

/// The picture of a decoded 4:2:0 frame, planes as FFmpeg holds them (padded strides).
fn picture_of(frame: &ffmpeg::frame::Video, matrix: YuvMatrix) -> DecodedPicture {
    let planes: Vec<(&[u8], usize)> = (0..3).map(|k| (frame.data(k), frame.stride(k))).collect();
    DecodedPicture::from_planes(
        PixelLayout::Yuv420p,
        frame.width(),
        frame.height(),
        &planes,
        matrix,
    )
    .unwrap()
}

fn levels_apart(a: &image::RgbImage, b: &image::RgbImage) -> u8 {
    a.as_raw()
        .iter()
        .zip(b.as_raw())
        .map(|(x, y)| x.abs_diff(*y))
        .max()
        .unwrap_or(0)
}

#[test]
fn twin_equals_swscale_on_random_420_pictures_of_even_height() {
    ffmpeg::init().unwrap();
    let mut rng = Rng::new(11);
    // AVCOL_SPC_BT709 = 1, unspecified = 2 (BT.601), SMPTE170M = 6, BT2020_NCL = 9.
    for (k, &(w, h)) in [
        (2, 2),
        (1, 2),
        (3, 2),
        (15, 8),
        (16, 8),
        (17, 10),
        (64, 36),
        (101, 54),
        (640, 360),
    ]
    .iter()
    .enumerate()
    {
        let colorspace = [1, 2, 6, 9][k % 4];
        let full_range = k % 3 == 0;
        let mut frame = ffmpeg::frame::Video::new(Pixel::YUV420P, w, h);
        for p in 0..3 {
            let n = frame.data(p).len();
            frame.data_mut(p).copy_from_slice(&rng.bytes(n));
        }
        let want = swscale_rgb(&frame, colorspace, full_range);
        let got = convert_reference(&picture_of(
            &frame,
            YuvMatrix::for_ffmpeg_colorspace(colorspace, full_range),
        ))
        .unwrap();
        let apart = levels_apart(&got, &want);
        assert_eq!(
            apart, 0,
            "{w}x{h}, colorspace {colorspace}, full range {full_range}: {apart} levels apart"
        );
    }
}

#[test]
fn twin_equals_the_decoders_rgb_frames_of_the_clip() {
    let clip = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/clip.mp4");
    ffmpeg::init().unwrap();
    // Our own decode to YUV, frame by frame beside the decoder's RGB frames.
    let mut input = ffmpeg::format::input(&clip).unwrap();
    let stream = input.streams().best(ffmpeg::media::Type::Video).unwrap();
    let index = stream.index();
    let context = ffmpeg::codec::context::Context::from_parameters(stream.parameters()).unwrap();
    let mut decoder = context.decoder().video().unwrap();
    let mut yuv = Vec::new();
    let receive = |decoder: &mut ffmpeg::decoder::Video, yuv: &mut Vec<image::RgbImage>| {
        let mut frame = ffmpeg::frame::Video::empty();
        while decoder.receive_frame(&mut frame).is_ok() {
            assert_eq!(frame.format(), Pixel::YUV420P);
            // SAFETY: plain fields of a frame the decoder just filled.
            let (colorspace, range) =
                unsafe { ((*frame.as_ptr()).colorspace, (*frame.as_ptr()).color_range) };
            let full = range == ffmpeg::ffi::AVColorRange::AVCOL_RANGE_JPEG;
            let matrix = YuvMatrix::for_ffmpeg_colorspace(colorspace as i32, full);
            yuv.push(convert_reference(&picture_of(&frame, matrix)).unwrap());
        }
    };
    for (s, packet) in input.packets() {
        if s.index() == index {
            decoder.send_packet(&packet).unwrap();
            receive(&mut decoder, &mut yuv);
        }
    }
    decoder.send_eof().unwrap();
    receive(&mut decoder, &mut yuv);

    let source = open(&InputSpec::Video(clip.clone())).unwrap();
    let rgb: Vec<image::RgbImage> = source.map(|f| f.unwrap().image).collect();
    assert_eq!(rgb.len(), yuv.len(), "frame counts differ");
    assert!(rgb.len() >= 30);
    for (i, (a, b)) in yuv.iter().zip(&rgb).enumerate() {
        assert_eq!(
            levels_apart(a, b),
            0,
            "frame {i} differs from the decoder's RGB"
        );
    }
}
