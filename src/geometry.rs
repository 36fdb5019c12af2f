//! Plain geometry shared by the detector, the aligner, the tracker and the sinks.

/// An axis-aligned box in pixel coordinates of the frame: `x1,y1` top-left,
/// `x2,y2` bottom-right (MTCNN convention: inclusive corners, so the width is
/// `x2 - x1`).
#[derive(Clone, Copy, Debug, PartialEq, Default)]
pub struct BBox {
    pub x1: f32,
    pub y1: f32,
    pub x2: f32,
    pub y2: f32,
}

impl BBox {
    pub fn width(&self) -> f32 {
        self.x2 - self.x1
    }

    pub fn height(&self) -> f32 {
        self.y2 - self.y1
    }

    pub fn area(&self) -> f32 {
        self.width().max(0.0) * self.height().max(0.0)
    }

    pub fn center(&self) -> [f32; 2] {
        [(self.x1 + self.x2) * 0.5, (self.y1 + self.y2) * 0.5]
    }

    /// Intersection over union, 0 when either box is empty.
    pub fn iou(&self, other: &BBox) -> f32 {
        let iw = (self.x2.min(other.x2) - self.x1.max(other.x1)).max(0.0);
        let ih = (self.y2.min(other.y2) - self.y1.max(other.y1)).max(0.0);
        let inter = iw * ih;
        let union = self.area() + other.area() - inter;
        if union <= 0.0 { 0.0 } else { inter / union }
    }
}

/// The five facial landmarks in MTCNN order: left eye, right eye, nose,
/// left mouth corner, right mouth corner (left/right as seen in the image).
pub type Landmarks = [[f32; 2]; 5];

/// One face found by the detector.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct FaceDetection {
    pub bbox: BBox,
    /// Detector confidence in [0, 1] (O-Net face probability).
    pub score: f32,
    pub landmarks: Landmarks,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn iou_of_identical_boxes_is_one_and_of_disjoint_boxes_zero() {
        let a = BBox {
            x1: 0.0,
            y1: 0.0,
            x2: 10.0,
            y2: 10.0,
        };
        let b = BBox {
            x1: 20.0,
            y1: 20.0,
            x2: 30.0,
            y2: 30.0,
        };
        assert_eq!(a.iou(&a), 1.0);
        assert_eq!(a.iou(&b), 0.0);
        let c = BBox {
            x1: 5.0,
            y1: 0.0,
            x2: 15.0,
            y2: 10.0,
        };
        assert!((a.iou(&c) - 50.0 / 150.0).abs() < 1e-6);
    }
}
