//! Exclusive XML Canonicalization 1.0, without comments (the W3C
//! recommendation of 2002), over one element's subtree with one descendant
//! subtree left out: the enveloped-signature transform followed by exc-c14n,
//! which is the only shape SAML signatures use. Iterative, so a deep
//! document cannot exhaust the stack.

use roxmltree::{Document, Node, NodeId};

use super::xml::{prefix_of, qname};

/// Canonical bytes of `apex` (minus the subtree at `exclude`). `inclusive`
/// is the transform's InclusiveNamespaces PrefixList (`#default` for the
/// default namespace): those prefixes are declared wherever they are in
/// scope, not only where used, so QNames in content (`xsi:type="xs:string"`)
/// keep their binding.
pub fn canonicalize<'a, 'i: 'a>(
    doc: &'a Document<'i>,
    apex: Node<'a, 'i>,
    exclude: Option<NodeId>,
    inclusive: &[&'a str],
) -> Vec<u8> {
    let mut out = Vec::with_capacity(apex.range().len() + 256);
    // Declarations rendered by output ancestors, innermost last, and how
    // many each open element pushed.
    let mut rendered: Vec<(&'a str, &'a str)> = Vec::new();
    let mut pushed: Vec<usize> = Vec::new();
    // Depth-first walk by sibling and parent links, not recursion.
    let mut node = apex;
    'walk: loop {
        let mut descend = false;
        if Some(node.id()) != exclude {
            if node.is_element() {
                pushed.push(open_tag(doc, node, inclusive, &mut rendered, &mut out));
                descend = true;
            } else if node.is_text() {
                escape_text(node.text().unwrap_or(""), &mut out);
            } else if let Some(pi) = node.pi() {
                out.extend_from_slice(b"<?");
                out.extend_from_slice(pi.target.as_bytes());
                if let Some(v) = pi.value.filter(|v| !v.is_empty()) {
                    out.push(b' ');
                    out.extend_from_slice(v.as_bytes());
                }
                out.extend_from_slice(b"?>");
            }
            // Comments: this is the without-comments variant.
        }
        if descend && let Some(c) = node.first_child() {
            node = c;
            continue;
        }
        loop {
            if descend {
                out.extend_from_slice(b"</");
                out.extend_from_slice(qname(doc, node).as_bytes());
                out.push(b'>');
                let k = pushed.pop().unwrap_or(0);
                rendered.truncate(rendered.len().saturating_sub(k));
            }
            if node == apex {
                break 'walk;
            }
            if let Some(s) = node.next_sibling() {
                node = s;
                continue 'walk;
            }
            match node.parent() {
                Some(p) => {
                    node = p;
                    descend = true;
                }
                None => break 'walk,
            }
        }
    }
    out
}

fn open_tag<'a, 'i: 'a>(
    doc: &'a Document<'i>,
    n: Node<'a, 'i>,
    inclusive: &[&'a str],
    rendered: &mut Vec<(&'a str, &'a str)>,
    out: &mut Vec<u8>,
) -> usize {
    let text = doc.input_text();
    let q = qname(doc, n);
    out.push(b'<');
    out.extend_from_slice(q.as_bytes());

    // Visibly utilised prefixes: the element's own and its prefixed
    // attributes' (unprefixed attributes are in no namespace).
    let mut needed: Vec<(&'a str, &'a str)> = Vec::new();
    let ep = prefix_of(q);
    needed.push((ep, lookup(n, ep).unwrap_or("")));
    for a in n.attributes() {
        let aq = text.get(a.range_qname()).unwrap_or("");
        if let Some((ap, _)) = aq.split_once(':')
            && ap != "xml"
        {
            needed.push((ap, a.namespace().unwrap_or("")));
        }
    }
    for p in inclusive {
        let p = if *p == "#default" { "" } else { *p };
        if let Some(uri) = lookup(n, p) {
            needed.push((p, uri));
        }
    }
    needed.sort_unstable();
    needed.dedup_by(|a, b| a.0 == b.0);

    let mut count = 0;
    for (p, uri) in needed {
        let current = rendered.iter().rev().find(|(rp, _)| *rp == p).map(|r| r.1);
        if p.is_empty() && uri.is_empty() && current.is_none_or(str::is_empty) {
            continue;
        }
        if current == Some(uri) {
            continue;
        }
        if p.is_empty() {
            out.extend_from_slice(b" xmlns=\"");
        } else {
            out.extend_from_slice(b" xmlns:");
            out.extend_from_slice(p.as_bytes());
            out.extend_from_slice(b"=\"");
        }
        escape_attr(uri, out);
        out.push(b'"');
        rendered.push((p, uri));
        count += 1;
    }

    let mut attrs: Vec<_> = n.attributes().collect();
    attrs.sort_by(|a, b| {
        (a.namespace().unwrap_or(""), a.name()).cmp(&(b.namespace().unwrap_or(""), b.name()))
    });
    for a in attrs {
        out.push(b' ');
        out.extend_from_slice(text.get(a.range_qname()).unwrap_or("").as_bytes());
        out.extend_from_slice(b"=\"");
        escape_attr(a.value(), out);
        out.push(b'"');
    }
    out.push(b'>');
    count
}

/// The namespace a prefix is bound to at `n` (`""`: the default one).
fn lookup<'a>(n: Node<'a, '_>, prefix: &str) -> Option<&'a str> {
    n.lookup_namespace_uri((!prefix.is_empty()).then_some(prefix))
}

fn escape_text(s: &str, out: &mut Vec<u8>) {
    for b in s.bytes() {
        match b {
            b'&' => out.extend_from_slice(b"&amp;"),
            b'<' => out.extend_from_slice(b"&lt;"),
            b'>' => out.extend_from_slice(b"&gt;"),
            b'\r' => out.extend_from_slice(b"&#xD;"),
            _ => out.push(b),
        }
    }
}

fn escape_attr(s: &str, out: &mut Vec<u8>) {
    for b in s.bytes() {
        match b {
            b'&' => out.extend_from_slice(b"&amp;"),
            b'<' => out.extend_from_slice(b"&lt;"),
            b'"' => out.extend_from_slice(b"&quot;"),
            b'\t' => out.extend_from_slice(b"&#x9;"),
            b'\n' => out.extend_from_slice(b"&#xA;"),
            b'\r' => out.extend_from_slice(b"&#xD;"),
            _ => out.push(b),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::saml::xml::parse;

    fn c14n(xml: &str, apex: &str, exclude: Option<&str>, inclusive: &[&str]) -> String {
        let doc = parse(xml).unwrap();
        let find = |name: &str| {
            doc.descendants()
                .find(|n| n.is_element() && n.tag_name().name() == name)
                .unwrap()
        };
        let ex = exclude.map(|e| find(e).id());
        String::from_utf8(canonicalize(&doc, find(apex), ex, inclusive)).unwrap()
    }

    #[test]
    fn renders_only_visibly_used_namespaces_sorted_and_escaped() {
        let xml = "<r xmlns=\"urn:d\" xmlns:a=\"urn:a\" xmlns:b=\"urn:b\">\
                   <a:e b:y=\"2\" x=\"1&#9;&lt;\" a:z=\"3\"><!-- c --><f>t&amp;&#13;</f><b:g/>\
                   <sig:S xmlns:sig=\"urn:s\"><x/></sig:S></a:e></r>";
        assert_eq!(
            c14n(xml, "e", Some("S"), &[]),
            "<a:e xmlns:a=\"urn:a\" xmlns:b=\"urn:b\" x=\"1&#x9;&lt;\" a:z=\"3\" b:y=\"2\">\
             <f xmlns=\"urn:d\">t&amp;&#xD;</f><b:g></b:g></a:e>"
        );
    }

    #[test]
    fn inclusive_prefix_list_declares_prefixes_used_only_in_content() {
        let xml = "<p:Response xmlns:p=\"urn:p\" xmlns:s=\"urn:s\"><s:Assertion \
                   xmlns:xs=\"http://www.w3.org/2001/XMLSchema\" xmlns:xsi=\"urn:xsi\" ID=\"a\">\
                   <s:V xsi:type=\"xs:string\">v</s:V></s:Assertion></p:Response>";
        assert_eq!(
            c14n(xml, "Assertion", None, &["xs"]),
            "<s:Assertion xmlns:s=\"urn:s\" xmlns:xs=\"http://www.w3.org/2001/XMLSchema\" ID=\"a\">\
             <s:V xmlns:xsi=\"urn:xsi\" xsi:type=\"xs:string\">v</s:V></s:Assertion>"
        );
        // Without the list, `xs` is not visibly used and is left out.
        assert!(!c14n(xml, "Assertion", None, &[]).contains("xmlns:xs="));
    }

    #[test]
    fn default_namespace_is_declared_and_undeclared_as_needed() {
        let xml = "<r xmlns=\"urn:d\"><e><x xmlns=\"\"><y/></x></e></r>";
        assert_eq!(
            c14n(xml, "e", None, &[]),
            "<e xmlns=\"urn:d\"><x xmlns=\"\"><y></y></x></e>"
        );
        // A default namespace never declared needs no xmlns="" either.
        assert_eq!(c14n("<e><x/></e>", "e", None, &[]), "<e><x></x></e>");
    }

    #[test]
    fn deep_nesting_does_not_recurse() {
        let depth = 5_000;
        let xml = format!("{}{}", "<a>".repeat(depth), "</a>".repeat(depth));
        // `parse` refuses this depth before parsing; c14n must still not
        // recurse on whatever tree it is handed.
        let doc = Document::parse(&xml).unwrap();
        let out = canonicalize(&doc, doc.root_element(), None, &[]);
        assert_eq!(out.len(), xml.len());
    }
}
