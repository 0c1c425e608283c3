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
/// Deepest element nesting accepted. A SAML Response nests about ten deep.
const MAX_DEPTH: usize = 64;
/// Namespace declarations accepted in one document. Resolving prefixes
/// costs the parser about (declarations in scope) x (depth) per element, so
/// nested elements each declaring one grow as n^3: 100 KB of them took
/// seconds of CPU. Real responses carry a few dozen.
const MAX_NS_DECLS: usize = 256;

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum XmlError {
    #[error("document type declarations are not accepted")]
    Dtd,
    #[error("document larger than {MAX_XML} bytes")]
    TooLarge,
    #[error("elements nested deeper than {MAX_DEPTH}")]
    TooDeep,
    #[error("more than {MAX_NS_DECLS} namespace declarations")]
    TooManyNamespaces,
    #[error("not well-formed XML: {0}")]
    Syntax(String),
}

/// One linear pass over the text before any parsing: nesting depth and
/// namespace declarations, so a document built to make the parser slow is
/// refused in microseconds. Approximate where it can afford to be (markup
/// inside comments, CDATA and processing instructions is skipped, quoted
/// values are read past); exact parsing comes after.
fn prescan(text: &str) -> Result<(), XmlError> {
    let b = text.as_bytes();
    let (mut depth, mut decls, mut i) = (0usize, 0usize, 0usize);
    let find = |from: usize, pat: &[u8]| {
        b[from..]
            .windows(pat.len())
            .position(|w| w == pat)
            .map_or(b.len(), |p| from + p + pat.len())
    };
    while i < b.len() {
        if b[i] != b'<' {
            i += 1;
            continue;
        }
        let rest = &b[i..];
        if rest.starts_with(b"<!--") {
            i = find(i + 4, b"-->");
        } else if rest.starts_with(b"<![CDATA[") {
            i = find(i + 9, b"]]>");
        } else if rest.starts_with(b"<?") {
            i = find(i + 2, b"?>");
        } else if rest.starts_with(b"</") {
            depth = depth.saturating_sub(1);
            i = find(i + 2, b">");
        } else {
            // A start tag: to its `>`, past quoted values (which may hold `>`).
            let mut j = i + 1;
            let mut quote = None;
            let mut self_closing = false;
            while j < b.len() {
                let c = b[j];
                match quote {
                    Some(q) if c == q => quote = None,
                    Some(_) => {}
                    None if c == b'"' || c == b'\'' => quote = Some(c),
                    None if c == b'>' => {
                        self_closing = b[j - 1] == b'/';
                        break;
                    }
                    None if b[j..].starts_with(b"xmlns")
                        && b[j - 1].is_ascii_whitespace()
                        && matches!(
                            b.get(j + 5),
                            Some(b':' | b'=' | b' ' | b'\t' | b'\n' | b'\r')
                        ) =>
                    {
                        decls += 1;
                        if decls > MAX_NS_DECLS {
                            return Err(XmlError::TooManyNamespaces);
                        }
                    }
                    None => {}
                }
                j += 1;
            }
            if !self_closing {
                depth += 1;
                if depth > MAX_DEPTH {
                    return Err(XmlError::TooDeep);
                }
            }
            i = j + 1;
        }
    }
    Ok(())
}

pub fn parse(text: &str) -> Result<Document<'_>, XmlError> {
    if text.len() > MAX_XML {
        return Err(XmlError::TooLarge);
    }
    prescan(text)?;
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

#[cfg(test)]
mod tests {
    use super::*;

    /// Nested elements, each declaring its own prefix: what made the parser
    /// spend seconds on 100 KB.
    fn nested_namespaces(n: usize) -> String {
        let mut s = String::new();
        for i in 0..n {
            s.push_str(&format!("<p{i}:e xmlns:p{i}=\"urn:x:{i}\">"));
        }
        for i in (0..n).rev() {
            s.push_str(&format!("</p{i}:e>"));
        }
        s
    }

    #[test]
    fn hostile_nesting_and_namespaces_are_refused_before_parsing() {
        // Close to the size limit: the parser took minutes on this.
        let doc = nested_namespaces(10_000);
        assert!(
            doc.len() > 400 * 1024 && doc.len() < MAX_XML,
            "{}",
            doc.len()
        );
        assert_eq!(parse(&doc).unwrap_err(), XmlError::TooDeep);
        // Flat: many declarations, little depth.
        let flat: String = (0..300)
            .map(|i| format!("<e xmlns:p{i}=\"urn:x\"/>"))
            .collect();
        assert_eq!(
            parse(&format!("<r>{flat}</r>")).unwrap_err(),
            XmlError::TooManyNamespaces
        );
    }

    #[test]
    fn ordinary_documents_pass_the_prescan() {
        let ok = [
            nested_namespaces(MAX_DEPTH),
            "<a xmlns=\"urn:a\"><!-- <b><c><d> --><b x=\"1>2\"/><![CDATA[<<<]]><?pi <x>?></a>"
                .into(),
            (0..200)
                .map(|i| format!("<e xmlns:p{i}=\"u\"/>"))
                .collect::<String>()
                + "",
            "<a><b xmlnsfoo=\"x\" data-xmlns=\"y\"/></a>".into(),
        ];
        for d in &ok {
            assert!(prescan(d).is_ok(), "{d:.80}");
        }
        assert!(parse(&ok[0]).is_ok());
        assert_eq!(
            prescan(&nested_namespaces(MAX_DEPTH + 1)),
            Err(XmlError::TooDeep)
        );
    }
}
