//! How a session's events look in the shell: output as it comes, values as Python's REPL shows
//! them, tracebacks (in colour on a terminal), images saved to files with their paths printed.

use std::fs;
use std::io::{self, Write};
use std::path::{Path, PathBuf};

use base64::Engine as _;
use owo_colors::OwoColorize;
use serde_json::{Map, Value};

use crate::error::Quoted;
use crate::session::{DoneStatus, SessionEvent, StreamName};

/// Where a piece of rendered output goes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Out {
    Stdout(Vec<u8>),
    Stderr(Vec<u8>),
}

pub(crate) struct Renderer {
    /// Colour on stderr (tracebacks, notices).
    color: bool,
    image_dir: PathBuf,
    /// Names the image files: `<prefix>-<n>.png`.
    prefix: String,
    images: u32,
}

impl Renderer {
    pub(crate) fn new(color: bool, image_dir: PathBuf, prefix: &str) -> Self {
        Renderer {
            color,
            image_dir,
            prefix: prefix.to_string(),
            images: 0,
        }
    }

    /// Writes `event` to our stdout and stderr.
    pub(crate) fn show(&mut self, event: SessionEvent) {
        for out in self.render(event) {
            // A reader that went away (`shell | head`) is not the session's problem.
            let _ = match out {
                Out::Stdout(bytes) => write_all(&mut io::stdout().lock(), &bytes),
                Out::Stderr(bytes) => write_all(&mut io::stderr().lock(), &bytes),
            };
        }
    }

    pub(crate) fn render(&mut self, event: SessionEvent) -> Vec<Out> {
        match event {
            SessionEvent::Stream { name, text } => vec![match name {
                StreamName::Stdout => Out::Stdout(text.into_bytes()),
                StreamName::Stderr => Out::Stderr(text.into_bytes()),
            }],
            SessionEvent::Display { data, .. } => {
                vec![Out::Stdout(self.display(&data).into_bytes())]
            }
            SessionEvent::Error { traceback, .. } => {
                vec![Out::Stderr(self.traceback(&traceback).into_bytes())]
            }
            SessionEvent::Notice { text } => vec![Out::Stderr(self.notice(&text).into_bytes())],
            SessionEvent::Done { status } => match self.ending(status) {
                Some(text) => vec![Out::Stderr(text.into_bytes())],
                None => Vec::new(),
            },
            SessionEvent::Ready { .. }
            | SessionEvent::IsComplete { .. }
            | SessionEvent::Completions { .. } => Vec::new(),
        }
    }

    /// A MIME bundle: an image is saved and its path shown; else its text.
    fn display(&mut self, data: &Map<String, Value>) -> String {
        for (mime, extension) in [("image/png", "png"), ("image/svg+xml", "svg")] {
            if let Some(Value::String(content)) = data.get(mime) {
                return match self.save_image(mime, extension, content) {
                    Ok(line) => line,
                    Err(e) => format!("[{mime}: not saved: {e:#}]\n"),
                };
            }
        }
        if let Some(Value::String(text)) = data.get("text/plain") {
            return with_newline(text);
        }
        let kinds: Vec<&str> = data.keys().map(String::as_str).collect();
        format!("[{}: not shown in a terminal]\n", kinds.join(", "))
    }

    fn save_image(&mut self, mime: &str, extension: &str, content: &str) -> anyhow::Result<String> {
        let bytes = if extension == "png" {
            let cleaned: String = content.chars().filter(|c| !c.is_whitespace()).collect();
            base64::engine::general_purpose::STANDARD.decode(cleaned)?
        } else {
            content.as_bytes().to_vec()
        };
        fs::create_dir_all(&self.image_dir)
            .map_err(|e| anyhow::anyhow!("creating `{}`: {e}", self.image_dir.display()))?;
        let path = loop {
            self.images += 1;
            let path = self
                .image_dir
                .join(format!("{}-{}.{extension}", self.prefix, self.images));
            if !path.exists() {
                break path;
            }
        };
        fs::write(&path, &bytes)
            .map_err(|e| anyhow::anyhow!("writing `{}`: {e}", path.display()))?;
        let size = match png_size(&bytes) {
            Some((w, h)) if extension == "png" => format!(" {w}x{h}"),
            _ => String::new(),
        };
        Ok(format!("[{mime}{size} saved to {}]\n", path.display()))
    }

    fn traceback(&self, lines: &[String]) -> String {
        let mut text = String::new();
        let count = lines.len();
        for (i, line) in lines.iter().enumerate() {
            let coloured = line.contains('\u{1b}');
            if !self.color {
                text.push_str(&strip_ansi(line));
            } else if coloured {
                text.push_str(line);
            } else if i + 1 == count {
                text.push_str(&line.red().bold().to_string());
            } else {
                text.push_str(line);
            }
            text.push('\n');
        }
        text
    }

    /// Our own line about the session; its text may carry the sandbox's words, escaped.
    fn notice(&self, text: &str) -> String {
        let text = Quoted(text);
        if self.color {
            format!("{} {text}\n", "enclave:".yellow().bold())
        } else {
            format!("enclave: {text}\n")
        }
    }

    fn ending(&self, status: DoneStatus) -> Option<String> {
        let text = match status {
            DoneStatus::Interrupted => "KeyboardInterrupt",
            DoneStatus::Timeout => {
                "TimeoutError: the input ran past its timeout and was interrupted (the session and its variables are kept)"
            }
            DoneStatus::Ok | DoneStatus::Error | DoneStatus::Restarted => return None,
        };
        Some(if self.color {
            format!("{}\n", text.red().bold())
        } else {
            format!("{text}\n")
        })
    }
}

fn write_all(out: &mut dyn Write, bytes: &[u8]) -> io::Result<()> {
    out.write_all(bytes)?;
    out.flush()
}

fn with_newline(text: &str) -> String {
    if text.ends_with('\n') {
        text.to_string()
    } else {
        format!("{text}\n")
    }
}

/// A PNG's width and height, from its IHDR chunk.
pub(crate) fn png_size(bytes: &[u8]) -> Option<(u32, u32)> {
    const SIGNATURE: &[u8] = b"\x89PNG\r\n\x1a\n";
    if bytes.len() < 24 || !bytes.starts_with(SIGNATURE) || &bytes[12..16] != b"IHDR" {
        return None;
    }
    let width = u32::from_be_bytes(bytes[16..20].try_into().ok()?);
    let height = u32::from_be_bytes(bytes[20..24].try_into().ok()?);
    Some((width, height))
}

/// Text without its ANSI escape sequences (a kernel's coloured traceback, colour turned off).
pub(crate) fn strip_ansi(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    let mut chars = text.chars().peekable();
    while let Some(c) = chars.next() {
        if c != '\u{1b}' {
            out.push(c);
            continue;
        }
        if chars.peek() == Some(&'[') {
            chars.next();
            for c in chars.by_ref() {
                if ('@'..='~').contains(&c) {
                    break;
                }
            }
        }
    }
    out
}

/// The default directory images are saved in, relative to where the shell runs.
pub(crate) fn default_image_dir() -> &'static Path {
    Path::new("./enclave-out")
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A 3x2 PNG's first bytes: signature, IHDR length and type, width, height.
    fn png_header(w: u32, h: u32) -> Vec<u8> {
        let mut bytes = b"\x89PNG\r\n\x1a\n\0\0\0\x0dIHDR".to_vec();
        bytes.extend_from_slice(&w.to_be_bytes());
        bytes.extend_from_slice(&h.to_be_bytes());
        bytes.extend_from_slice(&[8, 6, 0, 0, 0]);
        bytes
    }

    #[test]
    fn png_size_comes_from_the_ihdr_chunk() {
        assert_eq!(png_size(&png_header(640, 480)), Some((640, 480)));
        assert_eq!(png_size(b"GIF89a"), None);
        let mut wrong_chunk = png_header(1, 1);
        wrong_chunk[12..16].copy_from_slice(b"IDAT");
        assert_eq!(png_size(&wrong_chunk), None);
    }

    fn text(outs: Vec<Out>) -> Vec<(bool, String)> {
        outs.into_iter()
            .map(|o| match o {
                Out::Stdout(b) => (true, String::from_utf8(b).unwrap()),
                Out::Stderr(b) => (false, String::from_utf8(b).unwrap()),
            })
            .collect()
    }

    fn bundle(pairs: &[(&str, &str)]) -> SessionEvent {
        SessionEvent::Display {
            data: pairs
                .iter()
                .map(|(k, v)| ((*k).to_string(), Value::String((*v).to_string())))
                .collect(),
            metadata: Map::new(),
            result: true,
        }
    }

    #[test]
    fn events_render_as_the_python_repl_shows_them() {
        let dir = tempfile::tempdir().unwrap();
        let mut r = Renderer::new(false, dir.path().to_path_buf(), "k3x9");
        assert_eq!(
            text(r.render(SessionEvent::Stream {
                name: StreamName::Stderr,
                text: "warn".into()
            })),
            [(false, "warn".to_string())]
        );
        assert_eq!(
            text(r.render(bundle(&[("text/plain", "6")]))),
            [(true, "6\n".to_string())]
        );
        let error = SessionEvent::Error {
            ename: "ZeroDivisionError".into(),
            evalue: "division by zero".into(),
            traceback: vec![
                "Traceback (most recent call last):".into(),
                "\u{1b}[0;31mZeroDivisionError\u{1b}[0m: division by zero".into(),
            ],
        };
        assert_eq!(
            text(r.render(error)),
            [(
                false,
                "Traceback (most recent call last):\nZeroDivisionError: division by zero\n"
                    .to_string()
            )]
        );
        assert_eq!(
            text(r.render(SessionEvent::Done {
                status: DoneStatus::Interrupted
            })),
            [(false, "KeyboardInterrupt\n".to_string())]
        );
        assert!(r
            .render(SessionEvent::Done {
                status: DoneStatus::Ok
            })
            .is_empty());
        assert_eq!(
            text(r.render(bundle(&[("text/html", "<b>")]))),
            [(true, "[text/html: not shown in a terminal]\n".to_string())]
        );
    }

    #[test]
    fn images_are_saved_and_their_size_printed() {
        let dir = tempfile::tempdir().unwrap();
        let mut r = Renderer::new(false, dir.path().join("out"), "k3x9");
        let png = png_header(640, 480);
        let encoded = base64::engine::general_purpose::STANDARD.encode(&png);
        let shown = text(r.render(bundle(&[
            ("image/png", &encoded),
            ("text/plain", "<Figure>"),
        ])));
        let path = dir.path().join("out/k3x9-1.png");
        assert_eq!(
            shown,
            [(
                true,
                format!("[image/png 640x480 saved to {}]\n", path.display())
            )]
        );
        assert_eq!(fs::read(&path).unwrap(), png);
        let shown = text(r.render(bundle(&[("image/svg+xml", "<svg/>")])));
        let path = dir.path().join("out/k3x9-2.svg");
        assert_eq!(
            shown,
            [(
                true,
                format!("[image/svg+xml saved to {}]\n", path.display())
            )]
        );
        assert_eq!(fs::read_to_string(path).unwrap(), "<svg/>");
    }

    #[test]
    fn colour_marks_the_exception_line_only_on_a_terminal() {
        let dir = tempfile::tempdir().unwrap();
        let r = Renderer::new(true, dir.path().to_path_buf(), "x");
        let shown = r.traceback(&["Traceback".into(), "NameError: x".into()]);
        assert!(shown.starts_with("Traceback\n\u{1b}["), "{shown:?}");
        assert!(shown.contains("NameError: x"));
    }
}
