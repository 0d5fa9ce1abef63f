//! indicatif progress for pulls, image builds and long steps, drawn on stderr only when it is a terminal.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::Duration;

use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};

use super::Output;
use crate::model::PullObserver;

/// Aggregates per-layer pull progress into one bar.
pub(crate) struct PullProgress {
    bar: ProgressBar,
    layers: Mutex<HashMap<String, (u64, u64)>>,
}

impl PullProgress {
    pub(crate) fn new(output: &Output) -> Self {
        let bar = ProgressBar::with_draw_target(Some(0), draw_target(output));
        bar.set_style(
            ProgressStyle::with_template(
                "{spinner} pulling {msg} {wide_bar} {bytes}/{total_bytes} ({bytes_per_sec})",
            )
            .expect("valid template"),
        );
        PullProgress {
            bar,
            layers: Mutex::new(HashMap::new()),
        }
    }
}

impl PullObserver for PullProgress {
    fn started(&self, image: &str) {
        self.bar.set_message(image.to_string());
        self.bar.enable_steady_tick(Duration::from_millis(120));
    }

    fn layer(&self, layer: &str, current: u64, total: u64) {
        let mut layers = self.layers.lock().expect("progress lock");
        layers.insert(layer.to_string(), (current, total));
        let (done, all) = layers
            .values()
            .fold((0, 0), |(d, a), (c, t)| (d + c, a + t));
        self.bar.set_length(all);
        self.bar.set_position(done);
    }

    fn finished(&self) {
        self.bar.finish_and_clear();
    }

    fn build_step(&self, image: &str, line: &str) {
        // A build has steps, not bytes: the bar becomes a spinner naming the current step.
        if self.bar.length().is_some() {
            self.bar.unset_length();
            self.bar.set_style(
                ProgressStyle::with_template("{spinner} building {prefix}: {wide_msg}")
                    .expect("valid template"),
            );
            self.bar.set_prefix(image.to_string());
            self.bar.enable_steady_tick(Duration::from_millis(120));
        }
        // Build output comes from inside a container: no control sequences reach the terminal.
        self.bar
            .set_message(line.chars().filter(|c| !c.is_control()).collect::<String>());
    }
}

/// A spinner with a message for a step of unknown length.
pub(crate) struct Spinner {
    bar: ProgressBar,
}

impl Spinner {
    pub(crate) fn new(output: &Output, message: &str) -> Self {
        let bar = ProgressBar::with_draw_target(None, draw_target(output));
        bar.set_style(ProgressStyle::with_template("{spinner} {msg}").expect("valid template"));
        bar.set_message(message.to_string());
        bar.enable_steady_tick(Duration::from_millis(120));
        Spinner { bar }
    }
}

impl Drop for Spinner {
    fn drop(&mut self) {
        self.bar.finish_and_clear();
    }
}

fn draw_target(output: &Output) -> ProgressDrawTarget {
    if output.show_progress() {
        ProgressDrawTarget::stderr()
    } else {
        ProgressDrawTarget::hidden()
    }
}
