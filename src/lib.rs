//! mimic: per-frame facial-expression analysis of video.
//!
//! The analyzer is a pipeline of stages (decode → detect → align → infer →
//! sinks), each on its own thread, joined by bounded channels. The expression
//! model is a plain vision Transformer ([`vit`]) trained by the `mimic-train`
//! crate with MIMIC (masked-image pre-training + mix-supervised contrastive
//! fine-tuning).

pub mod align;
pub mod batch;
pub mod chart;
pub mod colours;
pub mod decode;
pub mod device;
pub mod frame;
pub mod gelu;
pub mod geometry;
pub mod gpu;
pub mod head_pose;
pub mod model;
pub mod model_choice;
pub mod mtcnn;
pub mod pipeline;
pub mod record;
pub mod report;
pub mod sink;
pub mod track;
pub mod vit;
