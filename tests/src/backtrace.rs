//! Crash backtraces in a guest's console: naming them with `scripts/symbolize` and reading the
//! named frames back.

use std::io::Write;
use std::path::Path;
use std::process::{Command, Stdio};

use crate::session::repo_root;

/// One named frame of a symbolized backtrace (`   3: function (file:line)`), inlined calls
/// included, innermost first.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Frame {
    /// Its number in the backtrace (0 is the innermost).
    pub index: usize,
    /// The function (demangled), or `0x… <unknown>`.
    pub function: String,
    /// `file:line` (the file relative to the repository when it is in it), if known.
    pub location: Option<String>,
}

/// Runs `scripts/symbolize` with the debug files or directories `debug` on `console`; returns
/// its output: the console with a named call stack after each backtrace.
pub fn symbolize(debug: &[&Path], console: &[String]) -> Result<Vec<String>, String> {
    let mut child = Command::new(repo_root().join("scripts/symbolize"))
        .args(debug)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .map_err(|e| format!("cannot run scripts/symbolize: {e}"))?;
    let mut input = console.join("\n");
    input.push('\n');
    let mut stdin = child.stdin.take().expect("piped stdin");
    // The console is small; the writer thread keeps a large one from blocking on a full pipe.
    let writer = std::thread::spawn(move || stdin.write_all(input.as_bytes()));
    let out = child
        .wait_with_output()
        .map_err(|e| format!("scripts/symbolize: {e}"))?;
    writer
        .join()
        .map_err(|_| "writer thread panicked".to_string())?
        .map_err(|e| format!("writing to scripts/symbolize: {e}"))?;
    if !out.status.success() {
        return Err(format!(
            "scripts/symbolize failed ({}): {}",
            out.status,
            String::from_utf8_lossy(&out.stderr)
        ));
    }
    Ok(String::from_utf8_lossy(&out.stdout)
        .lines()
        .map(str::to_string)
        .collect())
}

/// The named backtraces in symbolized output: one list of frames per `stack backtrace (...)`
/// header (a header saying no debug file was found gives none).
pub fn named_backtraces(symbolized: &[String]) -> Vec<Vec<Frame>> {
    let mut all: Vec<Vec<Frame>> = Vec::new();
    let mut open = false;
    for line in symbolized {
        if line.starts_with("stack backtrace (") {
            all.push(Vec::new());
            open = true;
            continue;
        }
        let frame = open.then(|| parse_frame(line)).flatten();
        match (frame, all.last_mut()) {
            (Some(f), Some(frames)) => frames.push(f),
            _ => open = false,
        }
    }
    all
}

/// `   3: function (file:line)` or `   3: function`.
fn parse_frame(line: &str) -> Option<Frame> {
    let (index, rest) = line.trim_start().split_once(": ")?;
    let index = index.parse().ok()?;
    let (function, location) = match rest.strip_suffix(')').and_then(|r| r.rsplit_once(" (")) {
        Some((f, loc)) if loc.contains(':') && !loc.contains(' ') => (f, Some(loc.to_string())),
        _ => (rest, None),
    };
    Some(Frame {
        index,
        function: function.to_string(),
        location,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn lines(text: &str) -> Vec<String> {
        text.lines().map(str::to_string).collect()
    }

    #[test]
    fn reads_named_frames() {
        let out = lines(
            "about to panic\n\
             backtrace: build-id ab\n\
             backtrace: #0 ra 0xffffffff80001000\n\
             backtrace: end (1 frames, stack ends)\n\
             stack backtrace (build-id ab, target/xen/panic.debug):\n   \
                0: core::panicking::panic_fmt (/rustc/x/library/core/src/panicking.rs:75)\n   \
                1: panic::__xenia_user_main::{{closure}} (examples/panic/src/main.rs:51)\n   \
                2: _start\n\
             after\n\
             stack backtrace: no debug file with build-id cd in target/xen (...)\n   \
                7: not a frame (x.rs:1)\n",
        );
        let all = named_backtraces(&out);
        assert_eq!(all.len(), 1);
        let f = &all[0];
        assert_eq!(f.len(), 3);
        assert_eq!(f[1].index, 1);
        assert_eq!(f[1].function, "panic::__xenia_user_main::{{closure}}");
        assert_eq!(
            f[1].location.as_deref(),
            Some("examples/panic/src/main.rs:51")
        );
        assert_eq!(
            f[2],
            Frame {
                index: 2,
                function: "_start".into(),
                location: None
            }
        );
    }

    #[test]
    fn a_frame_without_location_keeps_parentheses_of_its_name() {
        let f = parse_frame("  4: <T as core::fmt::Display>::fmt (in x)").unwrap();
        assert_eq!(f.function, "<T as core::fmt::Display>::fmt (in x)");
        assert_eq!(f.location, None);
        assert!(parse_frame("stack backtrace: none").is_none());
    }
}
