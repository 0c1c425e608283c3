//! The one XML parser the SAML code uses, configured for hostile input: no
//! DTD (so no entities beyond the five predefined), bounded size and node
//! count. Signature checks and data reads walk the same tree, so there is no
//! parser differential to exploit.

use roxmltree::{Document, Node, ParsingOptions};

pub const NS_SAMLP: &str = "urn:oasis:names:tc:SAML:2.0:protocol";
pub const NS_SAML: &str = "urn:oasis:names:tc:SAML:2.0:assertion";
pub const NS_DS: &str = "http://www.w3.org/2000/09/xmldsig#";
pub const NS_XENC: &str = "http://www.w3.org/2001/04/xmlenc#";
pub const NS_XENC11: &str = "http://www.w3.org/2009/xmlenc11#";
pub const NS_MD: &str = "urn:oasis:names:tc:SAML:2.0:metadata";
pub const NS_EXC_C14N: &str = "http://www.w3.org/2001/10/xml-exc-c14n#";

/// Largest document accepted (decoded). Real responses are a few KiB; a
/// metadata aggregate of one entity stays well under this.
pub const MAX_XML: usize = 512 * 1024;
const MAX_NODES: u32 = 20_000;

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum XmlError {
    #[error("document type declarations are not accepted")]
    Dtd,
    #[error("document larger than {MAX_XML} bytes")]
    TooLarge,
    #[error("not well-formed XML: {0}")]
    Syntax(String),
}

pub fn parse(text: &str) -> Result<Document<'_>, XmlError> {
    if text.len() > MAX_XML {
        return Err(XmlError::TooLarge);
    }
    let opt = ParsingOptions {
        allow_dtd: false,
        nodes_limit: MAX_NODES,
        ..ParsingOptions::default()
    };
    Document::parse_with_options(text, opt).map_err(|e| match e {
        roxmltree::Error::DtdDetected => XmlError::Dtd,
        e => XmlError::Syntax(e.to_string()),
    })
}

pub fn is(n: Node<'_, '_>, ns: &str, name: &str) -> bool {
    n.is_element() && n.tag_name().name() == name && n.tag_name().namespace() == Some(ns)
}

/// Element children with this expanded name.
pub fn children<'a, 'i>(
    n: Node<'a, 'i>,
    ns: &'static str,
    name: &'static str,
) -> impl Iterator<Item = Node<'a, 'i>> {
    n.children().filter(move |c| is(*c, ns, name))
}

pub fn child<'a, 'i>(
    n: Node<'a, 'i>,
    ns: &'static str,
    name: &'static str,
) -> Option<Node<'a, 'i>> {
    children(n, ns, name).next()
}

/// The element's character content: every text child, concatenated. A value
/// split by a comment (`alice@example.com<!---->.evil.com`) reads whole,
/// exactly as canonicalisation (and so the signature) sees it; callers that
/// want to refuse such input check [`has_comment`] first.
pub fn text(n: Node<'_, '_>) -> String {
    let mut s = String::new();
    for c in n.children() {
        if c.is_text() {
            s.push_str(c.text().unwrap_or(""));
        }
    }
    s
}

/// Trimmed text, as for values whose schema type collapses whitespace.
pub fn text_trim(n: Node<'_, '_>) -> String {
    text(n).trim().to_string()
}

pub fn has_comment(n: Node<'_, '_>) -> bool {
    n.descendants().any(|d| d.is_comment() || d.is_pi())
}

/// The qualified name as written (`saml:Assertion`), which canonical form
/// must reproduce; roxmltree keeps only the expanded name.
pub fn qname<'i>(doc: &Document<'i>, n: Node<'_, 'i>) -> &'i str {
    let text = doc.input_text();
    let start = n.range().start + 1;
    let rest = text.get(start..).unwrap_or("");
    let end = rest
        .find(|c: char| c.is_ascii_whitespace() || c == '/' || c == '>')
        .unwrap_or(rest.len());
    &rest[..end]
}

pub fn prefix_of(qname: &str) -> &str {
    qname.split_once(':').map_or("", |(p, _)| p)
}

/// Strict base64 after dropping the line breaks and spaces XML allows in
/// `base64Binary`.
pub fn b64(s: &str) -> Option<Vec<u8>> {
    use base64::Engine as _;
    let clean: String = s.chars().filter(|c| !c.is_ascii_whitespace()).collect();
    base64::engine::general_purpose::STANDARD.decode(clean).ok()
}
