//! `--preview`: a live window (OpenCV highgui) showing each frame as the annotated
//! video draws it. Pressing `q` or Esc, or closing the window, raises the stop flag
//! ([`PreviewSink::stop_flag`]) the pipeline watches.
//!
//! The window is created on the first `write`, so all GUI calls happen on the thread
//! that writes (GUI toolkits want one thread); whether a display exists at all is
//! checked at creation.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use opencv::highgui;

use super::draw::{draw_results, rgb_to_bgr_mat};
use super::{Sink, SinkError};
use crate::record::FrameResult;

const KEY_ESC: i32 = 27;

pub struct PreviewSink {
    title: String,
    class_names: Vec<String>,
    stop: Arc<AtomicBool>,
    shown: bool,
}

impl PreviewSink {
    /// Fails at once when there is no display to open a window on.
    pub fn create(title: &str, class_names: &[String]) -> Result<Self, SinkError> {
        check_display()?;
        Ok(Self {
            title: title.to_string(),
            class_names: class_names.to_vec(),
            stop: Arc::new(AtomicBool::new(false)),
            shown: false,
        })
    }

    /// Becomes true when the user asks to stop (q, Esc, window closed).
    pub fn stop_flag(&self) -> Arc<AtomicBool> {
        self.stop.clone()
    }

    fn gui_error(e: opencv::Error) -> SinkError {
        SinkError::Display(e.to_string())
    }
}

#[cfg(target_os = "linux")]
fn check_display() -> Result<(), SinkError> {
    let has = |v: &str| std::env::var_os(v).is_some_and(|s| !s.is_empty());
    if has("DISPLAY") || has("WAYLAND_DISPLAY") {
        Ok(())
    } else {
        Err(SinkError::Display(
            "no display to open a window on (neither DISPLAY nor WAYLAND_DISPLAY is set)".into(),
        ))
    }
}

#[cfg(not(target_os = "linux"))]
fn check_display() -> Result<(), SinkError> {
    Ok(())
}

impl Sink for PreviewSink {
    fn write(&mut self, result: &FrameResult) -> Result<(), SinkError> {
        if self.stop.load(Ordering::Relaxed) {
            return Ok(());
        }
        if self.shown {
            // imshow would reopen a window the user closed: check first.
            let visible = highgui::get_window_property(&self.title, highgui::WND_PROP_VISIBLE)
                .map_err(Self::gui_error)?;
            if visible < 1.0 {
                self.stop.store(true, Ordering::Relaxed);
                return Ok(());
            }
        } else {
            highgui::named_window(
                &self.title,
                highgui::WINDOW_NORMAL | highgui::WINDOW_KEEPRATIO,
            )
            .map_err(Self::gui_error)?;
        }
        if let Some(image) = &result.image {
            let mut mat = rgb_to_bgr_mat(image).map_err(Self::gui_error)?;
            draw_results(&mut mat, result, &self.class_names).map_err(Self::gui_error)?;
            highgui::imshow(&self.title, &mat).map_err(Self::gui_error)?;
            self.shown = true;
        }
        let key = highgui::wait_key(1).map_err(Self::gui_error)?;
        if key & 0xff == i32::from(b'q') || key & 0xff == KEY_ESC {
            self.stop.store(true, Ordering::Relaxed);
        }
        Ok(())
    }

    fn finish(&mut self) -> Result<(), SinkError> {
        if self.shown {
            let _ = highgui::destroy_window(&self.title);
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn without_a_display_creation_fails_clearly() {
        if std::env::var_os("DISPLAY").is_some() || std::env::var_os("WAYLAND_DISPLAY").is_some() {
            eprintln!("skipped: a display is available here");
            return;
        }
        let err = PreviewSink::create("mimic", &["a".to_string()])
            .err()
            .unwrap();
        assert!(err.to_string().contains("no display"), "{err}");
    }
}
