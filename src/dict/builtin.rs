//! The dictionaries of `dictionaries/`, compiled in, so a server with no
//! `radius.dictionary_dir` still names every attribute it logs and stores,
//! and a package needs no data files to be useful.

use std::io;
use std::path::Path;
use std::sync::{Arc, OnceLock};

use super::{DictError, Dictionary, DictionaryBuilder};

macro_rules! files {
    ($($name:literal),* $(,)?) => {
        &[$(($name, include_str!(concat!("../../dictionaries/", $name)))),*]
    };
}

const FILES: &[(&str, &str)] = files![
    "dictionary",
    "dictionary.rfc2865",
    "dictionary.rfc2866",
    "dictionary.rfc2867",
    "dictionary.rfc2868",
    "dictionary.rfc2869",
    "dictionary.rfc3162",
    "dictionary.rfc3579",
    "dictionary.rfc3580",
    "dictionary.rfc4818",
    "dictionary.rfc5176",
    "dictionary.rfc5997",
    "dictionary.rfc6911",
    "dictionary.rfc6929",
    "dictionary.cisco",
    "dictionary.microsoft",
    "dictionary.aruba",
    "dictionary.juniper",
];

/// Where the built-in files claim to live, for error messages.
const ROOT: &str = "<built-in>/dictionary";

/// Adds the built-in set to `b`.
pub fn add_builtin(b: &mut DictionaryBuilder) -> Result<(), DictError> {
    let top = FILES[0].1;
    b.parse_str(top, Path::new(ROOT), |p| {
        let name = p.file_name().and_then(|n| n.to_str()).unwrap_or_default();
        FILES
            .iter()
            .find(|(n, _)| *n == name)
            .map(|(_, text)| (*text).to_string())
            .ok_or_else(|| io::Error::new(io::ErrorKind::NotFound, "not built in"))
    })
}

/// The built-in set alone, parsed once per process.
pub fn builtin() -> Arc<Dictionary> {
    static DICT: OnceLock<Arc<Dictionary>> = OnceLock::new();
    DICT.get_or_init(|| {
        let mut b = DictionaryBuilder::new();
        // The files are ours and tested below; failing here is a build bug.
        add_builtin(&mut b).expect("built-in dictionaries parse");
        Arc::new(b.finish().expect("built-in dictionaries resolve"))
    })
    .clone()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn builtin_set_is_complete_and_names_vendor_attributes() {
        let d = builtin();
        assert_eq!(d.attribute("Acct-Status-Type").map(|a| a.number), Some(40));
        let cisco = d.attribute("Cisco-AVPair").expect("cisco");
        assert_eq!((cisco.vendor, cisco.number), (9, 1));
        assert!(d.attribute("MS-CHAP2-Success").is_some());
        assert!(d.attribute("Aruba-User-Role").is_some());
        // Every file in the directory is compiled in.
        let on_disk = std::fs::read_dir(concat!(env!("CARGO_MANIFEST_DIR"), "/dictionaries"))
            .unwrap()
            .filter_map(|e| e.ok()?.file_name().into_string().ok())
            .filter(|n| n.starts_with("dictionary"))
            .count();
        assert_eq!(on_disk, FILES.len());
    }
}
