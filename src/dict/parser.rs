//! Line parser for the FreeRADIUS dictionary format (version 3 syntax, with
//! the version 4 keywords recognised well enough to be skipped safely).

use std::collections::HashSet;
use std::io;
use std::path::{Component, Path, PathBuf};

use super::error::{DictError, ParseErrorKind as K};
use super::types::{AttrFlags, AttrId, Attribute, DataType, Encrypt, Vendor};
use super::{Dictionary, Key, ValueTable};

/// Deeper include chains are almost certainly a loop we failed to spot
/// lexically (symlinks, `a/../a/...`).
const MAX_INCLUDE_DEPTH: usize = 32;
/// Bounds BEGIN-* nesting and dotted-number length so hostile input cannot
/// make us do unbounded work per line.
const MAX_NESTING: usize = 16;
/// FreeRADIUS's own limit on vendor ids (the high octet is reserved).
const MAX_VENDOR_ID: u32 = (1 << 24) - 1;

/// Accumulates one or more dictionary files, then resolves forward
/// references in [`finish`](DictionaryBuilder::finish).
#[derive(Debug, Default)]
pub struct DictionaryBuilder {
    dict: Dictionary,
    /// VALUEs seen before their ATTRIBUTE; FreeRADIUS allows that.
    fixups: Vec<Fixup>,
    /// Names declared by v4 `ENUM`; VALUEs for them are skipped.
    enums: HashSet<Box<str>>,
}

#[derive(Debug)]
struct Fixup {
    file: PathBuf,
    line: usize,
    attr: Box<str>,
    name: Box<str>,
    number: Num,
}

/// A parsed integer before we know the type it must fit in.
#[derive(Debug, Clone, Copy)]
struct Num {
    negative: bool,
    magnitude: u64,
}

#[derive(Debug)]
enum Block {
    Vendor {
        name: String,
        id: u32,
        /// Set for `format=Extended-Vendor-Specific-N`.
        evs: Option<AttrId>,
        line: usize,
    },
    Tlv {
        attr: AttrId,
        name: String,
        line: usize,
    },
    Protocol {
        name: String,
        /// Not RADIUS: everything inside is ignored.
        skip: bool,
        line: usize,
    },
}

/// State that FreeRADIUS keeps per file: blocks do not leak into or out of
/// included files.
struct FileState<'a> {
    path: &'a Path,
    line: usize,
    blocks: Vec<Block>,
    internal: bool,
}

impl FileState<'_> {
    fn err(&self, kind: K) -> DictError {
        DictError::Parse {
            file: self.path.to_path_buf(),
            line: self.line,
            kind,
        }
    }

    fn skipping(&self) -> bool {
        self.blocks
            .iter()
            .any(|b| matches!(b, Block::Protocol { skip: true, .. }))
    }
}

impl DictionaryBuilder {
    pub fn new() -> Self {
        Self::default()
    }

    /// Add a file from disk (and its includes).
    pub fn load_file(&mut self, path: &Path) -> Result<(), DictError> {
        let text = read_lossy(path).map_err(|source| DictError::Read {
            path: path.to_path_buf(),
            source,
        })?;
        self.parse_str(&text, path, read_lossy)
    }

    /// Add `text`, named `file` in errors and for resolving relative includes.
    pub fn parse_str<F>(&mut self, text: &str, file: &Path, mut loader: F) -> Result<(), DictError>
    where
        F: FnMut(&Path) -> io::Result<String>,
    {
        let mut stack = vec![normalize(file)];
        self.parse_file(text, file, &mut loader, &mut stack)
    }

    /// Resolve VALUEs that were seen before their attribute.
    pub fn finish(mut self) -> Result<Dictionary, DictError> {
        for f in std::mem::take(&mut self.fixups) {
            let err = |kind| DictError::Parse {
                file: f.file.clone(),
                line: f.line,
                kind,
            };
            let lower = f.attr.to_ascii_lowercase();
            match self.dict.by_name.get(lower.as_str()).copied() {
                Some(id) => self.add_value(id, &f.name, f.number).map_err(err)?,
                None if self.enums.contains(lower.as_str()) => {}
                None => {
                    return Err(err(K::ValueForUnknownAttribute {
                        attr: f.attr.into(),
                        name: f.name.into(),
                    }));
                }
            }
        }
        Ok(self.dict)
    }

    fn parse_file(
        &mut self,
        text: &str,
        path: &Path,
        loader: &mut dyn FnMut(&Path) -> io::Result<String>,
        stack: &mut Vec<PathBuf>,
    ) -> Result<(), DictError> {
        let mut st = FileState {
            path,
            line: 0,
            blocks: Vec::new(),
            internal: false,
        };
        for (i, raw) in text.lines().enumerate() {
            st.line = i + 1;
            let content = raw.find('#').map_or(raw, |p| &raw[..p]);
            let fields: Vec<&str> = content.split_whitespace().collect();
            let Some(&keyword) = fields.first() else {
                continue;
            };
            self.line(&mut st, keyword, &fields, loader, stack)?;
        }
        if let Some(b) = st.blocks.last() {
            let (keyword, name, line) = match b {
                Block::Vendor { name, line, .. } => ("BEGIN-VENDOR", name, *line),
                Block::Tlv { name, line, .. } => ("BEGIN-TLV", name, *line),
                Block::Protocol { name, line, .. } => ("BEGIN-PROTOCOL", name, *line),
            };
            st.line = line;
            return Err(st.err(K::UnclosedBlock {
                keyword,
                name: name.clone(),
            }));
        }
        Ok(())
    }

    fn line(
        &mut self,
        st: &mut FileState<'_>,
        keyword: &str,
        fields: &[&str],
        loader: &mut dyn FnMut(&Path) -> io::Result<String>,
        stack: &mut Vec<PathBuf>,
    ) -> Result<(), DictError> {
        let kw = keyword.to_ascii_uppercase();
        if st.skipping() {
            // Only track protocol nesting so we know when skipping ends.
            return match kw.as_str() {
                "BEGIN-PROTOCOL" | "END-PROTOCOL" => self.protocol(st, &kw, fields),
                _ => Ok(()),
            };
        }
        match kw.as_str() {
            "ATTRIBUTE" => self.attribute(st, fields).map_err(|k| st.err(k)),
            "VALUE" => self.value(st, fields).map_err(|k| st.err(k)),
            "VENDOR" => self.vendor(fields).map_err(|k| st.err(k)),
            "BEGIN-VENDOR" => self.begin_vendor(st, fields).map_err(|k| st.err(k)),
            "END-VENDOR" => end_block(st, "END-VENDOR", fields),
            "BEGIN-TLV" => self.begin_tlv(st, fields).map_err(|k| st.err(k)),
            "END-TLV" => end_block(st, "END-TLV", fields),
            "BEGIN-PROTOCOL" | "END-PROTOCOL" => self.protocol(st, &kw, fields),
            "$INCLUDE" | "$INCLUDE-" => self.include(st, &kw, fields, loader, stack),
            "FLAGS" => {
                for f in &fields[1..] {
                    match *f {
                        "internal" => st.internal = true,
                        "!internal" => st.internal = false,
                        _ => {}
                    }
                }
                Ok(())
            }
            "ALIAS" => {
                self.alias(fields);
                Ok(())
            }
            "ENUM" => {
                if let Some(name) = fields.get(1) {
                    self.enums.insert(name.to_ascii_lowercase().into());
                }
                Ok(())
            }
            // Declarations we have no use for: PROTOCOL only names a
            // protocol number; STRUCT/MEMBER describe v4 struct layouts we
            // treat as opaque; DEFINE makes number-less internal attributes;
            // VALUE-ALIAS is a long-gone v1 feature.
            "PROTOCOL" | "STRUCT" | "MEMBER" | "DEFINE" | "VALUE-ALIAS" => Ok(()),
            _ => Err(st.err(K::UnknownKeyword(keyword.to_string()))),
        }
    }

    fn protocol(
        &mut self,
        st: &mut FileState<'_>,
        kw: &str,
        fields: &[&str],
    ) -> Result<(), DictError> {
        let [_, name, ..] = fields else {
            return Err(st.err(K::Usage("BEGIN-PROTOCOL/END-PROTOCOL name")));
        };
        if kw == "BEGIN-PROTOCOL" {
            if st.blocks.len() >= MAX_NESTING {
                return Err(st.err(K::TooDeep(MAX_NESTING)));
            }
            let skip = !name.eq_ignore_ascii_case("RADIUS");
            st.blocks.push(Block::Protocol {
                name: name.to_string(),
                skip,
                line: st.line,
            });
            Ok(())
        } else {
            end_block(st, "END-PROTOCOL", fields)
        }
    }

    fn include(
        &mut self,
        st: &mut FileState<'_>,
        kw: &str,
        fields: &[&str],
        loader: &mut dyn FnMut(&Path) -> io::Result<String>,
        stack: &mut Vec<PathBuf>,
    ) -> Result<(), DictError> {
        let [_, target] = fields else {
            return Err(st.err(K::Usage("$INCLUDE path")));
        };
        let optional = kw == "$INCLUDE-";
        let path = st
            .path
            .parent()
            .unwrap_or_else(|| Path::new(""))
            .join(target);
        let norm = normalize(&path);
        if stack.contains(&norm) {
            return Err(st.err(K::IncludeCycle { path }));
        }
        if stack.len() >= MAX_INCLUDE_DEPTH {
            return Err(st.err(K::IncludeTooDeep(MAX_INCLUDE_DEPTH)));
        }
        let text = match loader(&path) {
            Ok(t) => t,
            Err(e) if optional && e.kind() == io::ErrorKind::NotFound => return Ok(()),
            Err(error) => return Err(st.err(K::Include { path, error })),
        };
        stack.push(norm);
        let r = self.parse_file(&text, &path, loader, stack);
        stack.pop();
        r
    }

    /// Where unqualified attribute numbers go: the innermost TLV, else the
    /// vendor block, else the standard space.
    fn context(&self, st: &FileState<'_>) -> (Option<AttrId>, u32) {
        for b in st.blocks.iter().rev() {
            match b {
                Block::Tlv { attr, .. } => {
                    let vendor = self.dict.get(*attr).map_or(0, |a| a.vendor);
                    return (Some(*attr), vendor);
                }
                Block::Vendor { id, evs, .. } => return (*evs, *id),
                Block::Protocol { .. } => {}
            }
        }
        (None, 0)
    }

    fn attribute(&mut self, st: &FileState<'_>, fields: &[&str]) -> Result<(), K> {
        const USAGE: &str = "ATTRIBUTE name number type [flags]";
        let (name, number, ty, flag_text) = match fields {
            [_, n, num, t] => (*n, *num, *t, None),
            [_, n, num, t, f] => (*n, *num, *t, Some(*f)),
            _ => return Err(K::Usage(USAGE)),
        };
        check_name("attribute", name)?;
        let components = parse_oid(number)?;
        let (data_type, length) = parse_type(ty).ok_or_else(|| K::UnknownType {
            ty: ty.to_string(),
            attr: name.to_string(),
        })?;

        let mut flags = AttrFlags {
            length,
            internal: st.internal,
            ..AttrFlags::default()
        };
        let mut vendor_flag = None;
        if let Some(text) = flag_text {
            for flag in text.split(',').filter(|f| !f.is_empty()) {
                let bad = || K::InvalidFlag {
                    flag: flag.to_string(),
                    attr: name.to_string(),
                };
                match flag {
                    "has_tag" | "has_tag=1" => flags.has_tag = true,
                    "array" => flags.array = true,
                    "concat" => flags.concat = true,
                    "virtual" => flags.virtual_ = true,
                    "internal" => flags.internal = true,
                    "secret" => flags.secret = true,
                    _ if flag.starts_with("encrypt=") => {
                        // A wrong value here would silently mis-encrypt
                        // passwords, so it is an error, not a tolerated flag.
                        flags.encrypt = match &flag["encrypt=".len()..] {
                            "0" => Encrypt::None,
                            "1" | "User-Password" => Encrypt::UserPassword,
                            "2" | "Tunnel-Password" => Encrypt::TunnelPassword,
                            "3" | "Ascend-Secret" => Encrypt::AscendSecret,
                            _ => return Err(bad()),
                        }
                    }
                    // Old syntax: the vendor name as the only flag.
                    _ if flag == text && components.len() == 1 => {
                        vendor_flag = self.dict.vendor(flag).map(|v| v.id);
                    }
                    // Flags from newer FreeRADIUS versions (enum=, ref=,
                    // clone=, key, ...) do not change how we parse.
                    _ => {}
                }
            }
        }

        let (ctx_parent, ctx_vendor) = match vendor_flag {
            Some(v) if st.blocks.is_empty() => (None, v),
            _ => self.context(st),
        };
        let (parent, vendor, num) = self.resolve(&components, ctx_parent, ctx_vendor, number)?;
        self.check_number(parent, vendor, num)?;
        self.add_attribute(name, parent, vendor, num, data_type, flags)
    }

    /// Walk a dotted number like `26.9.1` or `241.26.11344.1` down to the
    /// container that will hold the last component.
    fn resolve(
        &self,
        components: &[u32],
        mut parent: Option<AttrId>,
        mut vendor: u32,
        text: &str,
    ) -> Result<(Option<AttrId>, u32, u32), K> {
        let mut i = 0;
        loop {
            let Some(&number) = components.get(i) else {
                return Err(K::InvalidNumber {
                    what: "attribute number",
                    text: text.to_string(),
                });
            };
            if i + 1 == components.len() {
                return Ok((parent, vendor, number));
            }
            let container = self
                .dict
                .by_key
                .get(&Key::new(parent, vendor, number))
                .and_then(|id| self.dict.get(*id))
                .ok_or_else(|| K::MissingParent {
                    parent: self.describe(parent, vendor),
                    number,
                })?;
            match container.data_type {
                DataType::Tlv | DataType::Extended | DataType::LongExtended => {
                    parent = Some(container.id);
                    vendor = container.vendor;
                    i += 1;
                }
                DataType::Vsa | DataType::Evs => {
                    // The next component is a vendor id, and a vendor
                    // attribute number must follow it.
                    let (Some(&vid), true) = (components.get(i + 1), i + 2 < components.len())
                    else {
                        return Err(K::InvalidNumber {
                            what: "attribute number",
                            text: text.to_string(),
                        });
                    };
                    if self.dict.vendor_by_id(vid).is_none() {
                        return Err(K::UnknownVendorId(vid));
                    }
                    parent = (container.data_type == DataType::Evs).then_some(container.id);
                    vendor = vid;
                    i += 2;
                }
                _ => return Err(K::NotAContainer(container.name.to_string())),
            }
        }
    }

    fn describe(&self, parent: Option<AttrId>, vendor: u32) -> String {
        match (parent.and_then(|p| self.dict.get(p)), vendor) {
            (Some(p), _) => p.name.to_string(),
            (None, 0) => "the standard space".to_string(),
            (None, v) => match self.dict.vendor_by_id(v) {
                Some(v) => format!("vendor {}", v.name),
                None => format!("vendor {v}"),
            },
        }
    }

    /// Reject numbers that cannot be encoded in the container's type field.
    fn check_number(&self, parent: Option<AttrId>, vendor: u32, number: u32) -> Result<(), K> {
        let max: u64 = match parent {
            // TLV, extended and EVS sub-attributes all have a one-octet type.
            Some(_) => 255,
            None if vendor == 0 => u32::MAX.into(),
            None => match self.dict.vendor_by_id(vendor).map(|v| v.type_size) {
                Some(1) => 255,
                Some(2) => 65535,
                _ => u32::MAX.into(),
            },
        };
        if u64::from(number) > max {
            return Err(K::OutOfRange {
                what: "attribute number",
                number: number.into(),
                max,
            });
        }
        Ok(())
    }

    fn add_attribute(
        &mut self,
        name: &str,
        parent: Option<AttrId>,
        vendor: u32,
        number: u32,
        data_type: DataType,
        flags: AttrFlags,
    ) -> Result<(), K> {
        let d = &mut self.dict;
        let key = Key::new(parent, vendor, number);
        let lower: Box<str> = name.to_ascii_lowercase().into();
        let id = match d.by_name.get(&lower).copied() {
            Some(id) => {
                let Some(existing) = d.attrs.get_mut(id.index()) else {
                    return Err(K::UnknownAttribute(name.to_string()));
                };
                if Key::of(existing) != key {
                    return Err(K::DuplicateAttribute {
                        name: name.to_string(),
                    });
                }
                // Same name and number: a later file may refine the type or
                // flags, as FreeRADIUS allows.
                existing.data_type = data_type;
                existing.flags = flags;
                id
            }
            None => {
                let Ok(raw) = u32::try_from(d.attrs.len()) else {
                    return Err(K::TooDeep(u32::MAX as usize));
                };
                let id = AttrId(raw);
                d.attrs.push(Attribute {
                    id,
                    name: name.into(),
                    vendor,
                    number,
                    parent,
                    data_type,
                    flags,
                });
                d.by_name.insert(lower, id);
                id
            }
        };
        // Last definition wins for number -> name, so a compat name defined
        // early is shadowed by the canonical one defined later.
        d.by_key.insert(key, id);
        if parent.is_none()
            && vendor == 0
            && let Some(slot) = d.standard.get_mut(number as usize)
        {
            *slot = Some(id);
        }
        Ok(())
    }

    fn value(&mut self, st: &FileState<'_>, fields: &[&str]) -> Result<(), K> {
        let [_, attr, name, number] = fields else {
            return Err(K::Usage("VALUE attribute name number"));
        };
        let num = parse_num(number).ok_or_else(|| K::InvalidNumber {
            what: "VALUE number",
            text: number.to_string(),
        })?;
        let lower = attr.to_ascii_lowercase();
        match self.dict.by_name.get(lower.as_str()).copied() {
            Some(id) => self.add_value(id, name, num),
            None if self.enums.contains(lower.as_str()) => Ok(()),
            None => {
                self.fixups.push(Fixup {
                    file: st.path.to_path_buf(),
                    line: st.line,
                    attr: (*attr).into(),
                    name: (*name).into(),
                    number: num,
                });
                Ok(())
            }
        }
    }

    fn add_value(&mut self, id: AttrId, name: &str, num: Num) -> Result<(), K> {
        let Some(attr) = self.dict.get(id) else {
            return Err(K::UnknownAttribute(name.to_string()));
        };
        if !attr.data_type.takes_values() {
            return Err(K::ValueNotAllowed {
                attr: attr.name.to_string(),
                ty: attr.data_type.to_string(),
            });
        }
        let max = attr.data_type.max_value();
        let number = if num.negative {
            // Stored as the wire representation so decoders can look up
            // the raw 32 bits.
            if attr.data_type != DataType::Signed || num.magnitude > 1 << 31 {
                return Err(K::InvalidNumber {
                    what: "VALUE number",
                    text: format!("-{}", num.magnitude),
                });
            }
            u64::from((num.magnitude as u32).wrapping_neg())
        } else {
            num.magnitude
        };
        if number > max {
            return Err(K::OutOfRange {
                what: "VALUE",
                number,
                max,
            });
        }
        let attr_name = attr.name.to_string();
        let table: &mut ValueTable = self.dict.values.entry(Key::of(attr)).or_default();
        let lower: Box<str> = name.to_ascii_lowercase().into();
        if let Some(&i) = table.by_name.get(&lower) {
            let existing = table.entries.get(i).map_or(number, |e| e.1);
            if existing == number {
                // Exact duplicates are common across vendor files.
                return Ok(());
            }
            return Err(K::DuplicateValue {
                attr: attr_name,
                name: name.to_string(),
                existing,
            });
        }
        let i = table.entries.len();
        table.entries.push((name.into(), number));
        table.by_name.insert(lower, i);
        table.by_number.insert(number, i);
        Ok(())
    }

    fn vendor(&mut self, fields: &[&str]) -> Result<(), K> {
        const USAGE: &str = "VENDOR name number [format=t,l[,c]]";
        let (name, number, opt) = match fields {
            [_, n, num] => (*n, *num, None),
            [_, n, num, o] => (*n, *num, Some(*o)),
            _ => return Err(K::Usage(USAGE)),
        };
        check_name("vendor", name)?;
        let id = parse_u32(number).ok_or_else(|| K::InvalidNumber {
            what: "vendor id",
            text: number.to_string(),
        })?;
        if id == 0 || id > MAX_VENDOR_ID {
            return Err(K::OutOfRange {
                what: "vendor id",
                number: id.into(),
                max: MAX_VENDOR_ID.into(),
            });
        }
        let (mut type_size, mut length_size, mut continuation) = (1, 1, false);
        if let Some(fmt) = opt.and_then(|o| o.strip_prefix("format=")) {
            let bad = || K::InvalidNumber {
                what: "vendor format",
                text: fmt.to_string(),
            };
            let parts: Vec<&str> = fmt.split(',').collect();
            let (t, l, c) = match parts.as_slice() {
                [t, l] => (*t, *l, false),
                [t, l, "c"] => (*t, *l, true),
                _ => return Err(bad()),
            };
            type_size = match t {
                "1" => 1,
                "2" => 2,
                "4" => 4,
                _ => return Err(bad()),
            };
            length_size = match l {
                "0" => 0,
                "1" => 1,
                "2" => 2,
                _ => return Err(bad()),
            };
            // The continuation octet only exists in the WiMAX 1,1 layout.
            if c && (type_size, length_size) != (1, 1) {
                return Err(bad());
            }
            continuation = c;
        }

        let d = &mut self.dict;
        let lower: Box<str> = name.to_ascii_lowercase().into();
        let idx = match d.vendor_by_name.get(&lower).copied() {
            Some(i) => {
                let Some(v) = d.vendors.get_mut(i) else {
                    return Err(K::UnknownVendor(name.to_string()));
                };
                if v.id != id {
                    return Err(K::DuplicateVendor {
                        name: name.to_string(),
                        existing: v.id,
                    });
                }
                v.type_size = type_size;
                v.length_size = length_size;
                v.continuation = continuation;
                i
            }
            None => {
                d.vendors.push(Vendor {
                    name: name.into(),
                    id,
                    type_size,
                    length_size,
                    continuation,
                });
                d.vendor_by_name.insert(lower, d.vendors.len() - 1);
                d.vendors.len() - 1
            }
        };
        d.vendor_by_id.insert(id, idx);
        Ok(())
    }

    fn begin_vendor(&mut self, st: &mut FileState<'_>, fields: &[&str]) -> Result<(), K> {
        let (name, opt) = match fields {
            [_, n] => (*n, None),
            [_, n, o] => (*n, Some(*o)),
            _ => {
                return Err(K::Usage(
                    "BEGIN-VENDOR name [format=Extended-Vendor-Specific-N]",
                ));
            }
        };
        let id = self
            .dict
            .vendor(name)
            .ok_or_else(|| K::UnknownVendor(name.to_string()))?
            .id;
        let mut evs = None;
        if let Some(target) = opt.and_then(|o| {
            o.strip_prefix("format=")
                .or_else(|| o.strip_prefix("parent="))
        }) {
            let a = self
                .dict
                .attribute(target)
                .ok_or_else(|| K::UnknownAttribute(target.to_string()))?;
            if a.data_type != DataType::Evs {
                return Err(K::NotAContainer(a.name.to_string()));
            }
            evs = Some(a.id);
        }
        if st.blocks.len() >= MAX_NESTING {
            return Err(K::TooDeep(MAX_NESTING));
        }
        st.blocks.push(Block::Vendor {
            name: name.to_string(),
            id,
            evs,
            line: st.line,
        });
        Ok(())
    }

    fn begin_tlv(&mut self, st: &mut FileState<'_>, fields: &[&str]) -> Result<(), K> {
        let [_, name] = fields else {
            return Err(K::Usage("BEGIN-TLV name"));
        };
        let a = self
            .dict
            .attribute(name)
            .ok_or_else(|| K::UnknownAttribute(name.to_string()))?;
        if a.data_type != DataType::Tlv {
            return Err(K::NotAContainer(a.name.to_string()));
        }
        if st.blocks.len() >= MAX_NESTING {
            return Err(K::TooDeep(MAX_NESTING));
        }
        st.blocks.push(Block::Tlv {
            attr: a.id,
            name: name.to_string(),
            line: st.line,
        });
        Ok(())
    }

    /// `ALIAS name target`: only resolvable when the target is a full
    /// attribute name; v4 path-style targets are ignored.
    fn alias(&mut self, fields: &[&str]) {
        let [_, name, target, ..] = fields else {
            return;
        };
        let Some(id) = self.dict.attribute(target).map(|a| a.id) else {
            return;
        };
        if check_name("attribute", name).is_err() {
            return;
        }
        let lower: Box<str> = name.to_ascii_lowercase().into();
        self.dict.by_name.entry(lower).or_insert(id);
    }
}

fn end_block(
    st: &mut FileState<'_>,
    keyword: &'static str,
    fields: &[&str],
) -> Result<(), DictError> {
    let found = fields.get(1).copied().unwrap_or("");
    let open = match st.blocks.last() {
        None => return Err(st.err(K::UnopenedBlock { keyword })),
        Some(Block::Vendor { name, .. }) if keyword == "END-VENDOR" => name,
        Some(Block::Tlv { name, .. }) if keyword == "END-TLV" => name,
        Some(Block::Protocol { name, .. }) if keyword == "END-PROTOCOL" => name,
        Some(Block::Vendor { name, .. })
        | Some(Block::Tlv { name, .. })
        | Some(Block::Protocol { name, .. }) => {
            return Err(st.err(K::BlockMismatch {
                keyword,
                found: found.to_string(),
                open: name.clone(),
            }));
        }
    };
    if !open.eq_ignore_ascii_case(found) {
        let open = open.clone();
        return Err(st.err(K::BlockMismatch {
            keyword,
            found: found.to_string(),
            open,
        }));
    }
    st.blocks.pop();
    Ok(())
}

/// Same character rules as FreeRADIUS, plus refusing the `Attr-N` form it
/// reserves for unknown attributes.
fn check_name(what: &'static str, name: &str) -> Result<(), K> {
    let ok = !name.is_empty()
        && name.len() <= 128
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.' | b'/'))
        && !name.bytes().all(|b| b.is_ascii_digit())
        && !name
            .get(..5)
            .is_some_and(|p| p.eq_ignore_ascii_case("Attr-"));
    if ok {
        Ok(())
    } else {
        Err(K::InvalidName {
            what,
            name: name.to_string(),
        })
    }
}

fn parse_oid(text: &str) -> Result<Vec<u32>, K> {
    let bad = || K::InvalidNumber {
        what: "attribute number",
        text: text.to_string(),
    };
    let mut out = Vec::new();
    for part in text.split('.') {
        if out.len() >= MAX_NESTING {
            return Err(K::TooDeep(MAX_NESTING));
        }
        out.push(parse_u32(part).ok_or_else(bad)?);
    }
    Ok(out)
}

/// Decimal, or hex with a `0x` prefix (used by several vendor files).
fn parse_u64(s: &str) -> Option<u64> {
    match s.strip_prefix("0x").or_else(|| s.strip_prefix("0X")) {
        Some(hex) if !hex.is_empty() && hex.bytes().all(|b| b.is_ascii_hexdigit()) => {
            u64::from_str_radix(hex, 16).ok()
        }
        Some(_) => None,
        None if !s.is_empty() && s.bytes().all(|b| b.is_ascii_digit()) => s.parse().ok(),
        None => None,
    }
}

fn parse_u32(s: &str) -> Option<u32> {
    parse_u64(s).and_then(|n| u32::try_from(n).ok())
}

fn parse_num(s: &str) -> Option<Num> {
    let (negative, rest) = match s.strip_prefix('-') {
        Some(r) => (true, r),
        None => (false, s),
    };
    Some(Num {
        negative,
        magnitude: parse_u64(rest)?,
    })
}

/// `type` or `type[N]` (fixed length).
fn parse_type(text: &str) -> Option<(DataType, Option<u32>)> {
    match text.split_once('[') {
        None => Some((DataType::from_name(text)?, None)),
        Some((base, rest)) => {
            let len = parse_u32(rest.strip_suffix(']')?)?;
            let t = DataType::from_name(base)?;
            if !matches!(t, DataType::Octets | DataType::String) || len == 0 {
                return None;
            }
            Some((t, Some(len)))
        }
    }
}

/// Lexical normalisation for include-cycle detection; does not touch the
/// filesystem so the parser stays pure.
fn normalize(p: &Path) -> PathBuf {
    let mut out = PathBuf::new();
    for c in p.components() {
        match c {
            Component::CurDir => {}
            Component::ParentDir => {
                let can_pop = matches!(out.components().next_back(), Some(Component::Normal(_)));
                if !can_pop || !out.pop() {
                    out.push("..");
                }
            }
            other => out.push(other.as_os_str()),
        }
    }
    out
}

/// Dictionaries are ASCII in practice; a stray Latin-1 byte in a comment
/// should not make the whole server refuse to start.
fn read_lossy(path: &Path) -> io::Result<String> {
    let bytes = std::fs::read(path)?;
    Ok(match String::from_utf8(bytes) {
        Ok(s) => s,
        Err(e) => String::from_utf8_lossy(e.as_bytes()).into_owned(),
    })
}
