//! MTCNN's resampling on the GPU (`shaders/area_resize.wgsl`): area resizes of frame
//! rectangles, normalised like facenet, many per launch — every pyramid level of every
//! frame in one launch, every R-Net/O-Net box crop in another.
//!
//! The CPU twin is [`IntegralImage::resize_area_normalised`], the function the CPU
//! detector uses; [`area_resize_reference`] runs it job by job. Window sums of 8-bit
//! values are exact in both (the CPU from an integer integral image, the shader summing
//! whole numbers in f32, exact below 2^24), so the only difference can come from the two
//! f32 divisions: WGSL allows 2.5 ulp each where the CPU rounds exactly. Bound: 1e-6
//! absolute on the normalised values (which lie in [-1, 1]); lavapipe is exact.

use std::sync::Arc;

use burn::tensor::{Shape, Tensor};

use super::GpuError;
use super::kernel::{self, AREA_RESIZE, Arg};
use crate::mtcnn::boxes::{self, CropRect};
use crate::mtcnn::resample::IntegralImage;

/// The largest window the shader's f32 sums hold exactly: 255 * 65_792 < 2^24.
pub const MAX_WINDOW_PIXELS: usize = 65_792;

/// One resize: rectangle `rect` of frame `frame`, to `out_h x out_w`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct AreaJob {
    pub frame: usize,
    pub rect: CropRect,
    pub out_h: usize,
    pub out_w: usize,
}

impl AreaJob {
    fn pixels(&self) -> usize {
        self.out_h * self.out_w
    }

    /// The largest averaging window of this job, in input pixels.
    fn max_window(&self) -> usize {
        let side = |n_in: usize, n_out: usize| n_in.div_ceil(n_out) + 1;
        side(self.rect.height(), self.out_h) * side(self.rect.width(), self.out_w)
    }
}

/// The jobs' parameter block (see `shaders/area_resize.wgsl`), after checking each job
/// against the frames' size.
fn job_words(
    jobs: &[AreaJob],
    frames: usize,
    height: usize,
    width: usize,
) -> Result<Vec<u32>, GpuError> {
    let mut words = Vec::with_capacity(4 + 8 * jobs.len());
    let total: usize = jobs.iter().map(AreaJob::pixels).sum();
    if 3 * total >= u32::MAX as usize || 3 * frames * height * width >= u32::MAX as usize {
        return Err(GpuError::TooLarge {
            what: format!("{} resize jobs", jobs.len()),
        });
    }
    words.extend([jobs.len() as u32, height as u32, width as u32, total as u32]);
    let mut start = 0usize;
    for (j, job) in jobs.iter().enumerate() {
        let r = job.rect;
        let bad = |why: &str| GpuError::BadJob {
            index: j,
            reason: format!("{why}: {job:?}"),
        };
        if job.frame >= frames {
            return Err(bad(&format!("frame out of {frames}")));
        }
        if !(r.x0 < r.x1 && r.y0 < r.y1 && r.x1 <= width && r.y1 <= height) {
            return Err(bad(&format!(
                "rectangle not inside the {width}x{height} frame"
            )));
        }
        if job.out_h == 0 || job.out_w == 0 {
            return Err(bad("empty output"));
        }
        if job.max_window() > MAX_WINDOW_PIXELS {
            return Err(bad("averaging window too large for exact f32 sums"));
        }
        words.extend(
            [
                start, job.frame, r.x0, r.y0, r.x1, r.y1, job.out_h, job.out_w,
            ]
            .map(|v| v as u32),
        );
        start += job.pixels();
    }
    Ok(words)
}

/// `frames: [n, 3, h, w]` (8-bit values as f32) → all jobs' outputs back to back, job `j`
/// as `[3, out_h, out_w]` normalised like facenet: `[3 · Σ out_h · out_w]`.
pub fn area_resize(frames: Tensor<4>, jobs: &[AreaJob]) -> Result<Tensor<1>, GpuError> {
    let [n, c, h, w] = frames.dims();
    if c != 3 {
        return Err(GpuError::BadPicture {
            reason: format!("frames have {c} channels, not 3"),
        });
    }
    if jobs.is_empty() {
        return Err(GpuError::BadJob {
            index: 0,
            reason: "no jobs".into(),
        });
    }
    let words = job_words(jobs, n, h, w)?;
    let total = words[3] as usize;
    let device = frames.device();
    let out = kernel::launch(
        &device,
        &AREA_RESIZE,
        total as u64,
        vec![
            Arg::Input(kernel::primitive(frames)?),
            Arg::Words(Arc::from(words)),
            Arg::Output(Shape::new([3 * total])),
        ],
    )?;
    Ok(kernel::tensor(out.into_iter().next().expect("one output")))
}

/// CPU twin of [`area_resize`]: the same flat output from the frames' integral images.
pub fn area_resize_reference(frames: &[IntegralImage], jobs: &[AreaJob]) -> Vec<f32> {
    let mut out = Vec::new();
    for job in jobs {
        let start = out.len();
        out.resize(start + 3 * job.pixels(), 0.0);
        frames[job.frame].resize_area_normalised(job.rect, job.out_h, job.out_w, &mut out[start..]);
    }
    out
}

/// P-Net's image pyramid of a batch of equal-size frames, one launch for all levels:
/// `frames: [n, 3, h, w]` → per scale of `scales`, `[n, 3, h_s, w_s]` with facenet's sizes
/// ([`boxes::scaled_size`]).
pub fn mtcnn_pyramid(frames: Tensor<4>, scales: &[f64]) -> Result<Vec<Tensor<4>>, GpuError> {
    let [n, _, h, w] = frames.dims();
    if scales.is_empty() {
        return Ok(Vec::new());
    }
    let full = CropRect {
        x0: 0,
        y0: 0,
        x1: w,
        y1: h,
    };
    let sizes: Vec<(usize, usize)> = scales
        .iter()
        .map(|&s| boxes::scaled_size(w as u32, h as u32, s))
        .collect();
    let jobs: Vec<AreaJob> = sizes
        .iter()
        .flat_map(|&(out_h, out_w)| {
            (0..n).map(move |frame| AreaJob {
                frame,
                rect: full,
                out_h,
                out_w,
            })
        })
        .collect();
    let flat = area_resize(frames, &jobs)?;
    let mut levels = Vec::with_capacity(sizes.len());
    let mut start = 0;
    for (out_h, out_w) in sizes {
        let len = n * 3 * out_h * out_w;
        levels.push(
            flat.clone()
                .slice([start..start + len])
                .reshape([n, 3, out_h, out_w]),
        );
        start += len;
    }
    Ok(levels)
}

/// R-Net / O-Net inputs: each `(frame, rect)` area-resized to `side x side`, one launch:
/// `frames: [n, 3, h, w]` → `[crops, 3, side, side]`.
pub fn mtcnn_crops(
    frames: Tensor<4>,
    crops: &[(usize, CropRect)],
    side: usize,
) -> Result<Tensor<4>, GpuError> {
    let jobs: Vec<AreaJob> = crops
        .iter()
        .map(|&(frame, rect)| AreaJob {
            frame,
            rect,
            out_h: side,
            out_w: side,
        })
        .collect();
    let flat = area_resize(frames, &jobs)?;
    Ok(flat.reshape([crops.len(), 3, side, side]))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn job(
        frame: usize,
        x0: usize,
        y0: usize,
        x1: usize,
        y1: usize,
        out_h: usize,
        out_w: usize,
    ) -> AreaJob {
        AreaJob {
            frame,
            rect: CropRect { x0, y0, x1, y1 },
            out_h,
            out_w,
        }
    }

    #[test]
    fn job_words_hold_running_pixel_starts_and_reject_bad_jobs() {
        let jobs = [job(0, 0, 0, 4, 3, 2, 2), job(1, 1, 1, 3, 3, 3, 1)];
        let w = job_words(&jobs, 2, 3, 4).unwrap();
        assert_eq!(&w[..4], &[2, 3, 4, 7]);
        assert_eq!(&w[4..12], &[0, 0, 0, 0, 4, 3, 2, 2]);
        assert_eq!(&w[12..20], &[4, 1, 1, 1, 3, 3, 3, 1]);
        assert!(job_words(&[job(2, 0, 0, 1, 1, 1, 1)], 2, 3, 4).is_err());
        assert!(job_words(&[job(0, 0, 0, 5, 1, 1, 1)], 2, 3, 4).is_err());
        assert!(job_words(&[job(0, 1, 0, 1, 1, 1, 1)], 2, 3, 4).is_err());
        assert!(job_words(&[job(0, 0, 0, 1, 1, 0, 1)], 2, 3, 4).is_err());
    }

    #[test]
    fn reference_concatenates_the_cpu_detectors_resizes() {
        let a = crate::frame::RgbImage::from_fn(5, 4, |x, y| {
            image::Rgb([(x * 40) as u8, (y * 50) as u8, 9])
        });
        let b = crate::frame::RgbImage::from_fn(5, 4, |x, y| image::Rgb([(x + y) as u8, 3, 200]));
        let frames = [IntegralImage::new(&a), IntegralImage::new(&b)];
        let jobs = [job(0, 0, 0, 5, 4, 2, 3), job(1, 1, 1, 4, 3, 4, 4)];
        let out = area_resize_reference(&frames, &jobs);
        let mut first = vec![0.0; 18];
        frames[0].resize_area_normalised(jobs[0].rect, 2, 3, &mut first);
        let mut second = vec![0.0; 48];
        frames[1].resize_area_normalised(jobs[1].rect, 4, 4, &mut second);
        assert_eq!(out, [first, second].concat());
    }
}
