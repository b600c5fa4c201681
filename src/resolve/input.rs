//! The YAML inputs of `resolve`: `-f FILE`, `-f DIR` (its `.yaml`, `.yml`
//! and `.json` files in sorted order, subdirectories too with `-R`) and
//! `-f -` (stdin), read whole as UTF-8 text in the order given.

use std::io::Read;
use std::path::{Path, PathBuf};

use anyhow::{Context, Result, bail};

/// Extensions of the files taken from a directory.
const EXTENSIONS: &[&str] = &["yaml", "yml", "json"];

/// One input file and its text.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Source {
    /// The path as the user would write it (`-` for stdin), for messages.
    pub name: String,
    /// The directory `krust://` paths are relative to.
    pub dir: PathBuf,
    pub text: String,
}

/// Reads every input; `stdin` is read for `-`, which may be given once.
pub fn read_sources(args: &[PathBuf], recursive: bool, stdin: impl Read) -> Result<Vec<Source>> {
    let mut stdin = Some(stdin);
    let mut sources = Vec::new();
    for arg in args {
        if arg.as_os_str() == "-" {
            let Some(mut reader) = stdin.take() else {
                bail!("`-f -` is given twice: standard input can be read only once");
            };
            let mut bytes = Vec::new();
            reader
                .read_to_end(&mut bytes)
                .context("cannot read standard input")?;
            sources.push(Source {
                name: "-".into(),
                dir: std::env::current_dir().context("cannot read the current directory")?,
                text: utf8(bytes, "standard input")?,
            });
        } else if arg.is_dir() {
            let before = sources.len();
            read_dir(arg, recursive, &mut sources)?;
            if sources.len() == before {
                bail!(
                    "{} holds no .yaml, .yml or .json file{}",
                    arg.display(),
                    if recursive {
                        ""
                    } else {
                        " (-R also reads its subdirectories)"
                    }
                );
            }
        } else {
            sources.push(read_file(arg)?);
        }
    }
    Ok(sources)
}

/// The YAML files of a directory in file-name order, subdirectories read
/// where they sort when `recursive` (symbolic links to directories are not
/// followed, so a link loop cannot recurse forever).
fn read_dir(dir: &Path, recursive: bool, sources: &mut Vec<Source>) -> Result<()> {
    let mut entries = std::fs::read_dir(dir)
        .and_then(|entries| entries.collect::<std::io::Result<Vec<_>>>())
        .with_context(|| format!("cannot read directory {}", dir.display()))?;
    entries.sort_by_key(|entry| entry.file_name());
    for entry in entries {
        let path = entry.path();
        let file_type = entry
            .file_type()
            .with_context(|| format!("cannot read {}", path.display()))?;
        if file_type.is_dir() {
            if recursive {
                read_dir(&path, recursive, sources)?;
            }
        } else if path
            .extension()
            .and_then(|e| e.to_str())
            .is_some_and(|e| EXTENSIONS.contains(&e))
        {
            sources.push(read_file(&path)?);
        }
    }
    Ok(())
}

fn read_file(path: &Path) -> Result<Source> {
    let bytes = std::fs::read(path).with_context(|| format!("cannot read {}", path.display()))?;
    let dir = match path.parent() {
        Some(parent) if !parent.as_os_str().is_empty() => parent.to_path_buf(),
        _ => PathBuf::from("."),
    };
    Ok(Source {
        name: path.display().to_string(),
        dir,
        text: utf8(bytes, &path.display().to_string())?,
    })
}

fn utf8(bytes: Vec<u8>, name: &str) -> Result<String> {
    String::from_utf8(bytes).map_err(|err| {
        let at = err.utf8_error().valid_up_to();
        anyhow::anyhow!("{name} is not UTF-8 text (invalid byte at offset {at}): save it as UTF-8")
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn names(sources: &[Source]) -> Vec<String> {
        sources.iter().map(|s| s.name.clone()).collect()
    }

    fn tree() -> tempfile::TempDir {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path();
        std::fs::create_dir_all(root.join("b-sub/deeper")).unwrap();
        for (path, text) in [
            ("c.yaml", "c"),
            ("a.yml", "a"),
            ("b.json", "{}"),
            ("notes.txt", "skip"),
            ("b-sub/x.yaml", "x"),
            ("b-sub/deeper/y.yaml", "y"),
        ] {
            std::fs::write(root.join(path), text).unwrap();
        }
        dir
    }

    #[test]
    fn directories_are_read_in_sorted_order() {
        let dir = tree();
        let root = dir.path();
        let flat = read_sources(&[root.to_path_buf()], false, std::io::empty()).unwrap();
        let expected: Vec<String> = ["a.yml", "b.json", "c.yaml"]
            .iter()
            .map(|n| root.join(n).display().to_string())
            .collect();
        assert_eq!(names(&flat), expected);
        assert_eq!(flat[0].dir, root);

        let deep = read_sources(&[root.to_path_buf()], true, std::io::empty()).unwrap();
        let expected: Vec<String> = [
            "a.yml",
            "b-sub/deeper/y.yaml",
            "b-sub/x.yaml",
            "b.json",
            "c.yaml",
        ]
        .iter()
        .map(|n| root.join(n).display().to_string())
        .collect();
        assert_eq!(names(&deep), expected);
        assert_eq!(deep[1].dir, root.join("b-sub/deeper"));
    }

    #[test]
    fn files_keep_the_order_given_and_stdin_is_read_once() {
        let dir = tree();
        let root = dir.path();
        let args = [
            root.join("c.yaml"),
            PathBuf::from("-"),
            root.join("notes.txt"),
        ];
        let sources = read_sources(&args, false, &b"from: stdin\n"[..]).unwrap();
        assert_eq!(sources[1].name, "-");
        assert_eq!(sources[1].text, "from: stdin\n");
        assert_eq!(sources[1].dir, std::env::current_dir().unwrap());
        assert_eq!(sources[2].text, "skip");

        let twice = [PathBuf::from("-"), PathBuf::from("-")];
        let err = read_sources(&twice, false, std::io::empty()).unwrap_err();
        assert!(err.to_string().contains("given twice"), "{err}");
    }

    #[test]
    fn unreadable_inputs_are_named() {
        let dir = tree();
        let root = dir.path();
        let missing = root.join("missing.yaml");
        let err =
            read_sources(std::slice::from_ref(&missing), false, std::io::empty()).unwrap_err();
        assert!(
            format!("{err:#}").starts_with(&format!("cannot read {}", missing.display())),
            "{err:#}"
        );

        std::fs::write(root.join("latin1.yaml"), b"name: caf\xe9\n").unwrap();
        let err = read_sources(&[root.join("latin1.yaml")], false, std::io::empty()).unwrap_err();
        assert!(err.to_string().contains("is not UTF-8"), "{err}");

        let empty = root.join("b-sub/deeper/empty");
        std::fs::create_dir(&empty).unwrap();
        let err = read_sources(&[empty], true, std::io::empty()).unwrap_err();
        assert!(err.to_string().contains("holds no .yaml"), "{err}");
    }
}
