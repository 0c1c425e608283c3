//! The layering rules, checked over the source tree: codecs stay pure (no
//! tokio, sockets or files), only `main.rs` reaches the composition root,
//! and TACACS+ borrows nothing from RADIUS. A test, not a linter: it fails
//! the build's tests when a rule is broken.

use std::path::{Path, PathBuf};

/// One rule: files whose path (relative to the crate root, `/`-separated)
/// starts with `under`, and is not `except`, must not mention any of
/// `forbidden` outside comments.
struct Rule {
    name: &'static str,
    under: &'static str,
    except: &'static [&'static str],
    forbidden: &'static [&'static str],
}

const RULES: &[Rule] = &[
    Rule {
        name: "a codec is pure: no tokio, sockets or files",
        under: "src/radius/codec/",
        except: &[],
        forbidden: &["tokio", "std::net", "std::fs"],
    },
    Rule {
        name: "a codec is pure: no tokio, sockets or files",
        under: "src/tacacs/codec/",
        except: &[],
        forbidden: &["tokio", "std::net", "std::fs"],
    },
    Rule {
        name: "only main.rs imports the composition root",
        under: "src/",
        except: &["src/main.rs", "src/architecture.rs"],
        forbidden: &["crate::server", "portcullis::server", "super::server"],
    },
    Rule {
        name: "only main.rs imports the composition root",
        under: "benches/",
        except: &[],
        forbidden: &["portcullis::server"],
    },
    Rule {
        name: "only main.rs imports the composition root",
        under: "tests/",
        except: &[],
        forbidden: &["portcullis::server"],
    },
    Rule {
        name: "TACACS+ imports nothing from RADIUS",
        under: "src/tacacs/",
        except: &[],
        forbidden: &[
            "crate::radius",
            "super::super::radius",
            "portcullis::radius",
        ],
    },
];

/// The broken rules in one file's text, as `path:line: rule (`what`)`.
fn check(path: &str, text: &str) -> Vec<String> {
    let mut found = Vec::new();
    for rule in RULES {
        if !path.starts_with(rule.under) || rule.except.contains(&path) {
            continue;
        }
        for (i, line) in text.lines().enumerate() {
            let code = line.split("//").next().unwrap_or("");
            for word in rule.forbidden {
                if code.contains(word) {
                    found.push(format!("{path}:{}: {} (`{word}`)", i + 1, rule.name));
                }
            }
        }
    }
    found
}

fn rust_files(dir: &Path, out: &mut Vec<PathBuf>) {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return;
    };
    for e in entries.flatten() {
        let p = e.path();
        if p.is_dir() {
            rust_files(&p, out);
        } else if p.extension().is_some_and(|x| x == "rs") {
            out.push(p);
        }
    }
}

#[test]
fn the_layering_rules_hold() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let mut files = Vec::new();
    for dir in ["src", "benches", "tests"] {
        rust_files(&root.join(dir), &mut files);
    }
    assert!(files.len() > 50, "found only {} files", files.len());
    let mut broken = Vec::new();
    for f in &files {
        let rel = f
            .strip_prefix(root)
            .unwrap()
            .to_string_lossy()
            .replace('\\', "/");
        let text = std::fs::read_to_string(f).unwrap();
        broken.extend(check(&rel, &text));
    }
    assert!(
        broken.is_empty(),
        "layering rules broken:\n{}",
        broken.join("\n")
    );
}

#[test]
fn each_rule_catches_what_it_forbids_and_passes_comments() {
    let cases = [
        ("src/radius/codec/reader.rs", "use tokio::net::UdpSocket;"),
        ("src/tacacs/codec/body.rs", "let f = std::fs::read(p);"),
        ("src/radius/codec/mod.rs", "use std::net::IpAddr;"),
        ("src/http/mod.rs", "use crate::server::Server;"),
        ("benches/x.rs", "use portcullis::server::Server;"),
        ("src/tacacs/service.rs", "use crate::radius::codec::Secret;"),
    ];
    for (path, line) in cases {
        assert_eq!(check(path, line).len(), 1, "{path}: {line}");
        let commented = format!("// {line}");
        assert!(check(path, &commented).is_empty(), "{path}: {commented}");
    }
    assert!(check("src/main.rs", "use portcullis::server::Server;").is_empty());
    assert!(check("src/radius/service.rs", "use tokio::time;").is_empty());
}
