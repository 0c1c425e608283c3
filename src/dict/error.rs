use std::io;
use std::path::PathBuf;

/// Failure to load a dictionary.
#[derive(Debug, thiserror::Error)]
pub enum DictError {
    /// The top-level file could not be read.
    #[error("{}: cannot read dictionary: {source}", path.display())]
    Read {
        path: PathBuf,
        #[source]
        source: io::Error,
    },
    /// Something is wrong at a given line.
    #[error("{}:{line}: {kind}", file.display())]
    Parse {
        file: PathBuf,
        line: usize,
        kind: ParseErrorKind,
    },
}

impl DictError {
    /// What went wrong, for parse errors.
    pub fn kind(&self) -> Option<&ParseErrorKind> {
        match self {
            Self::Parse { kind, .. } => Some(kind),
            Self::Read { .. } => None,
        }
    }
}

/// What is wrong with a dictionary line.
#[derive(Debug, thiserror::Error)]
pub enum ParseErrorKind {
    #[error("unknown keyword \"{0}\"")]
    UnknownKeyword(String),
    #[error("wrong number of fields, expected: {0}")]
    Usage(&'static str),
    #[error("invalid {what} name \"{name}\"")]
    InvalidName { what: &'static str, name: String },
    #[error("invalid {what} \"{text}\"")]
    InvalidNumber { what: &'static str, text: String },
    #[error("{what} {number} is out of range (maximum {max})")]
    OutOfRange {
        what: &'static str,
        number: u64,
        max: u64,
    },
    #[error("unknown data type \"{ty}\" for attribute {attr}")]
    UnknownType { ty: String, attr: String },
    #[error("invalid flag \"{flag}\" for attribute {attr}")]
    InvalidFlag { flag: String, attr: String },
    #[error("unknown vendor \"{0}\"")]
    UnknownVendor(String),
    #[error("unknown vendor id {0}")]
    UnknownVendorId(u32),
    #[error("unknown attribute \"{0}\"")]
    UnknownAttribute(String),
    #[error("no attribute {number} under {parent} to hold sub-attributes")]
    MissingParent { parent: String, number: u32 },
    #[error("attribute {0} cannot have sub-attributes")]
    NotAContainer(String),
    #[error("attribute {name} is already defined with a different number")]
    DuplicateAttribute { name: String },
    #[error("vendor {name} is already defined with id {existing}")]
    DuplicateVendor { name: String, existing: u32 },
    #[error("VALUE {name} of {attr} is already defined as {existing}")]
    DuplicateValue {
        attr: String,
        name: String,
        existing: u64,
    },
    #[error("VALUEs cannot be defined for attribute {attr} of type {ty}")]
    ValueNotAllowed { attr: String, ty: String },
    #[error("VALUE {name} refers to undefined attribute \"{attr}\"")]
    ValueForUnknownAttribute { attr: String, name: String },
    #[error("{keyword} {found} does not match the open block {open}")]
    BlockMismatch {
        keyword: &'static str,
        found: String,
        open: String,
    },
    #[error("{keyword} without a matching BEGIN")]
    UnopenedBlock { keyword: &'static str },
    #[error("{keyword} {name} is not closed before the end of the file")]
    UnclosedBlock { keyword: &'static str, name: String },
    #[error("nesting deeper than {0} levels")]
    TooDeep(usize),
    #[error("cannot include \"{}\": {error}", path.display())]
    Include { path: PathBuf, error: io::Error },
    #[error("include cycle: \"{}\" is already being read", path.display())]
    IncludeCycle { path: PathBuf },
    #[error("includes nested deeper than {0} files")]
    IncludeTooDeep(usize),
}
