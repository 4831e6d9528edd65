//! The workspace's one progress-bar helper: every loop a user waits for (decoding, embedding,
//! training, sweeps, downloads) draws on stderr in the same style when stderr is a terminal, and
//! not at all otherwise, so logs and CI output stay clean. A hidden bar answers `is_hidden()`,
//! which callers use to print a plain line instead where a log should say something.

use std::io::IsTerminal;

pub use indicatif::ProgressBar;
use indicatif::ProgressStyle;

/// A bar of `len` steps labelled `what` (status text goes in `set_message`), hidden when
/// stderr is not a terminal.
pub fn bar(len: u64, what: &str) -> ProgressBar {
    styled(
        ProgressBar::new(len),
        "{prefix} [{elapsed_precise}] {wide_bar} {pos}/{len} ({per_sec}, eta {eta}) {msg}",
        what,
    )
}

/// A spinner that counts steps of unknown number (e.g. files extracted from an archive),
/// labelled `what`, hidden when stderr is not a terminal.
pub fn counter(what: &str) -> ProgressBar {
    styled(
        ProgressBar::no_length(),
        "{spinner} {prefix} {pos} [{elapsed_precise}] {msg}",
        what,
    )
}

fn styled(pb: ProgressBar, template: &str, what: &str) -> ProgressBar {
    if !std::io::stderr().is_terminal() {
        return ProgressBar::hidden();
    }
    if let Ok(style) = ProgressStyle::with_template(template) {
        pb.set_style(style);
    }
    pb.set_prefix(what.to_string());
    pb
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Tests run with stderr captured or redirected: the bars must not draw there.
    #[test]
    fn hidden_off_a_terminal() {
        if std::io::stderr().is_terminal() {
            return;
        }
        assert!(bar(10, "x").is_hidden());
        assert!(counter("x").is_hidden());
    }
}
