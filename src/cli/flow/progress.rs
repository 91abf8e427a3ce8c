//! The one progress display of the flow: a bar over the steps on stderr, the current
//! step's name and what it is doing, with a line per finished step above it. Hidden
//! when stderr is not a terminal (the step lines are then printed plainly) or with
//! `--json`.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};

pub struct Progress {
    bar: ProgressBar,
    quiet: bool,
}

/// Updates the message from a closure until dropped.
pub struct Watch {
    stop: Arc<AtomicBool>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl Drop for Watch {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

impl Progress {
    pub fn new(steps: u64, quiet: bool) -> Self {
        let bar = ProgressBar::new(steps);
        bar.set_style(
            ProgressStyle::with_template(
                "{spinner} flow [{elapsed_precise}] [{bar:18}] {pos}/{len} {prefix}: {wide_msg}",
            )
            .expect("the template is valid")
            .progress_chars("=> "),
        );
        if quiet {
            bar.set_draw_target(ProgressDrawTarget::hidden());
        } else {
            bar.enable_steady_tick(Duration::from_millis(200));
        }
        Progress { bar, quiet }
    }

    pub fn start(&self, step: &str) {
        self.bar.set_prefix(step.to_string());
        self.bar.set_message("starting");
    }

    pub fn message(&self, msg: impl Into<String>) {
        self.bar.set_message(msg.into());
    }

    /// A line above the bar (or on stderr when the bar is hidden); nothing when quiet.
    pub fn line(&self, text: impl AsRef<str>) {
        if self.quiet {
            return;
        }
        if self.bar.is_hidden() {
            eprintln!("{}", text.as_ref());
        } else {
            self.bar.println(text.as_ref());
        }
    }

    pub fn step_done(&self) {
        self.bar.inc(1);
    }

    pub fn finish(&self) {
        self.bar.finish_and_clear();
    }

    /// Set the message from `f` twice a second while the returned guard lives.
    pub fn watch(&self, f: impl Fn() -> String + Send + 'static) -> Watch {
        let stop = Arc::new(AtomicBool::new(false));
        let (bar, flag) = (self.bar.clone(), stop.clone());
        let thread = std::thread::spawn(move || {
            while !flag.load(Ordering::Relaxed) {
                bar.set_message(f());
                for _ in 0..5 {
                    if flag.load(Ordering::Relaxed) {
                        return;
                    }
                    std::thread::sleep(Duration::from_millis(100));
                }
            }
        });
        Watch {
            stop,
            thread: Some(thread),
        }
    }
}
