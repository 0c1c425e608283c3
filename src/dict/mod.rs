//! RADIUS dictionaries in the FreeRADIUS text format, loaded at startup.
//!
//! Maps attribute names to numbers and types (and back) so packets can be
//! decoded and policies written with names instead of numbers.

mod builtin;
mod error;
mod parser;
mod types;

#[cfg(test)]
mod tests;

use std::collections::HashMap;
use std::io;
use std::path::Path;

pub use self::builtin::{add_builtin, builtin};
pub use self::error::{DictError, ParseErrorKind};
pub use self::parser::DictionaryBuilder;
pub use self::types::{AttrFlags, AttrId, Attribute, DataType, Encrypt, Vendor};

/// Where an attribute sits: its container, vendor space and number.
///
/// `parent` is the container's index + 1 so that 0 means top level and the
/// key stays plain integers (cheap to hash, no allocation on lookup).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
struct Key {
    parent: u32,
    vendor: u32,
    number: u32,
}

impl Key {
    fn new(parent: Option<AttrId>, vendor: u32, number: u32) -> Self {
        Self {
            parent: parent.map_or(0, |p| p.0.saturating_add(1)),
            vendor,
            number,
        }
    }

    fn of(attr: &Attribute) -> Self {
        Self::new(attr.parent, attr.vendor, attr.number)
    }
}

/// Named values of one attribute number.
#[derive(Debug, Default, Clone)]
struct ValueTable {
    entries: Vec<(Box<str>, u64)>,
    /// Lowercased name -> index into `entries`.
    by_name: HashMap<Box<str>, usize>,
    /// Number -> index of the most recently defined name for it, which is
    /// the one FreeRADIUS prints (compat names come first, canonical later).
    by_number: HashMap<u64, usize>,
}

/// A loaded set of RADIUS dictionaries.
#[derive(Debug, Clone)]
pub struct Dictionary {
    attrs: Vec<Attribute>,
    /// Lowercased name (including aliases) -> attribute.
    by_name: HashMap<Box<str>, AttrId>,
    by_key: HashMap<Key, AttrId>,
    /// Fast path for the standard attribute space, the hottest lookup.
    standard: Vec<Option<AttrId>>,
    vendors: Vec<Vendor>,
    vendor_by_name: HashMap<Box<str>, usize>,
    vendor_by_id: HashMap<u32, usize>,
    /// Value tables are per attribute number, not per name, so that names
    /// declared for an old alias of an attribute apply to the new one too.
    values: HashMap<Key, ValueTable>,
}

impl Default for Dictionary {
    fn default() -> Self {
        Self {
            attrs: Vec::new(),
            by_name: HashMap::new(),
            by_key: HashMap::new(),
            standard: vec![None; 256],
            vendors: Vec::new(),
            vendor_by_name: HashMap::new(),
            vendor_by_id: HashMap::new(),
            values: HashMap::new(),
        }
    }
}

impl Dictionary {
    /// Read `path` from disk and everything it `$INCLUDE`s.
    pub fn load(path: &Path) -> Result<Self, DictError> {
        let mut b = DictionaryBuilder::new();
        b.load_file(path)?;
        b.finish()
    }

    /// Parse `text` as if it were the file `file`; includes are fetched with
    /// `loader`, given the include path joined to `file`'s directory.
    pub fn parse<F>(text: &str, file: &Path, loader: F) -> Result<Self, DictError>
    where
        F: FnMut(&Path) -> io::Result<String>,
    {
        let mut b = DictionaryBuilder::new();
        b.parse_str(text, file, loader)?;
        b.finish()
    }

    /// Attribute by name, ASCII case-insensitive (as FreeRADIUS does).
    pub fn attribute(&self, name: &str) -> Option<&Attribute> {
        let id = with_lowercase(name, |n| self.by_name.get(n).copied())?;
        self.get(id)
    }

    /// Top-level attribute: standard when `vendor` is 0, else the
    /// Vendor-Specific attribute `number` of `vendor`.
    pub fn attribute_by_number(&self, vendor: u32, number: u32) -> Option<&Attribute> {
        let id = if vendor == 0 && number < 256 {
            self.standard.get(number as usize).copied().flatten()?
        } else {
            *self.by_key.get(&Key::new(None, vendor, number))?
        };
        self.get(id)
    }

    /// Sub-attribute `number` of a TLV or RFC 6929 extended attribute.
    pub fn sub_attribute(&self, parent: &Attribute, number: u32) -> Option<&Attribute> {
        let id = *self
            .by_key
            .get(&Key::new(Some(parent.id), parent.vendor, number))?;
        self.get(id)
    }

    /// Attribute `number` of `vendor` inside an Extended-Vendor-Specific
    /// attribute (e.g. 241.26).
    pub fn evs_attribute(&self, evs: &Attribute, vendor: u32, number: u32) -> Option<&Attribute> {
        let id = *self.by_key.get(&Key::new(Some(evs.id), vendor, number))?;
        self.get(id)
    }

    pub fn get(&self, id: AttrId) -> Option<&Attribute> {
        self.attrs.get(id.index())
    }

    /// Container of a TLV / extended sub-attribute.
    pub fn parent(&self, attr: &Attribute) -> Option<&Attribute> {
        attr.parent.and_then(|p| self.get(p))
    }

    /// Every definition, including old names that share a number with a
    /// newer one.
    pub fn attributes(&self) -> &[Attribute] {
        &self.attrs
    }

    pub fn vendor(&self, name: &str) -> Option<&Vendor> {
        let i = with_lowercase(name, |n| self.vendor_by_name.get(n).copied())?;
        self.vendors.get(i)
    }

    pub fn vendor_by_id(&self, id: u32) -> Option<&Vendor> {
        self.vendors.get(*self.vendor_by_id.get(&id)?)
    }

    pub fn vendors(&self) -> &[Vendor] {
        &self.vendors
    }

    /// Name of `number` for `attr`. Signed values are looked up by their
    /// 32-bit two's complement, i.e. as read off the wire.
    pub fn value_name(&self, attr: &Attribute, number: u64) -> Option<&str> {
        let t = self.values.get(&Key::of(attr))?;
        let i = *t.by_number.get(&number)?;
        t.entries.get(i).map(|(n, _)| &**n)
    }

    /// Number of the value called `name` (case-insensitive) for `attr`.
    pub fn value_number(&self, attr: &Attribute, name: &str) -> Option<u64> {
        let t = self.values.get(&Key::of(attr))?;
        let i = with_lowercase(name, |n| t.by_name.get(n).copied())?;
        t.entries.get(i).map(|&(_, v)| v)
    }

    /// All named values of `attr`, in definition order.
    pub fn values(&self, attr: &Attribute) -> impl Iterator<Item = (&str, u64)> {
        self.values
            .get(&Key::of(attr))
            .into_iter()
            .flat_map(|t| t.entries.iter().map(|(n, v)| (&**n, *v)))
    }
}

/// Run `f` on the ASCII-lowercased `s` without allocating for normal-length
/// names, since name lookups happen per request when policies are evaluated.
fn with_lowercase<R>(s: &str, f: impl FnOnce(&str) -> R) -> R {
    if !s.bytes().any(|b| b.is_ascii_uppercase()) {
        return f(s);
    }
    let mut buf = [0u8; 128];
    if let Some(dst) = buf.get_mut(..s.len()) {
        dst.copy_from_slice(s.as_bytes());
        dst.make_ascii_lowercase();
        // ASCII lowercasing keeps UTF-8 valid, so this always succeeds.
        if let Ok(lower) = std::str::from_utf8(dst) {
            return f(lower);
        }
    }
    f(&s.to_ascii_lowercase())
}

/// Parse arbitrary bytes as a dictionary; for fuzzing. Must never panic.
pub fn fuzz_parse(data: &[u8]) {
    let text = String::from_utf8_lossy(data);
    let result = Dictionary::parse(&text, Path::new("fuzz"), |_| {
        Err(io::Error::other("includes are disabled while fuzzing"))
    });
    match result {
        Ok(d) => {
            // Exercise the lookups on whatever was built.
            for a in d.attributes() {
                let _ = d.attribute(&a.name);
                let _ = d.attribute_by_number(a.vendor, a.number);
                let _ = d.parent(a);
                let _ = d.sub_attribute(a, 1);
                let _ = d.evs_attribute(a, a.vendor, 1);
                for (name, number) in d.values(a) {
                    let _ = d.value_name(a, number);
                    let _ = d.value_number(a, name);
                }
            }
            for v in d.vendors() {
                let _ = d.vendor(&v.name);
                let _ = d.vendor_by_id(v.id);
            }
        }
        Err(e) => {
            let _ = e.to_string();
        }
    }
}
