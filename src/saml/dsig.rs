//! Enveloped XML-DSig verification for one element (a Response or an
//! Assertion). Deliberately narrow: one Reference, which must name the very
//! element it sits in; enveloped-signature then exclusive c14n and nothing
//! else; keys only from configuration (KeyInfo in the document is ignored).
//! Whatever this accepts, the caller reads from that same node.

use aws_lc_rs::digest;
use roxmltree::{Document, Node};
use subtle::ConstantTimeEq as _;

use super::c14n::canonicalize;
use super::keys::{IdpCert, SigAlg};
use super::refusal::{Reason, Refusal, refuse};
use super::xml::{NS_DS, NS_EXC_C14N, b64, child, children, is, text};

const ENVELOPED: &str = "http://www.w3.org/2000/09/xmldsig#enveloped-signature";

/// The element's own `ds:Signature` child, if it has one. More than one is
/// refused: which would be "the" signature is exactly the ambiguity XSW
/// attacks live on.
pub fn signature_of<'a, 'i>(el: Node<'a, 'i>) -> Result<Option<Node<'a, 'i>>, Refusal> {
    let mut sigs = children(el, NS_DS, "Signature");
    let first = sigs.next();
    if sigs.next().is_some() {
        return refuse(Reason::Reference, "more than one Signature on one element");
    }
    Ok(first)
}

/// Verifies `sig` (a `ds:Signature` child of `el`) over `el` with one of
/// `keys`.
pub fn verify<'a, 'i: 'a>(
    doc: &'a Document<'i>,
    el: Node<'a, 'i>,
    sig: Node<'a, 'i>,
    keys: &[IdpCert],
    allow_sha1: bool,
) -> Result<(), Refusal> {
    let mut parts = sig.children().filter(Node::is_element);
    let (Some(si), Some(sv)) = (parts.next(), parts.next()) else {
        return refuse(
            Reason::Reference,
            "Signature lacks SignedInfo or SignatureValue",
        );
    };
    if !is(si, NS_DS, "SignedInfo") || !is(sv, NS_DS, "SignatureValue") {
        return refuse(Reason::Reference, "Signature children out of order");
    }
    let mut si_parts = si.children().filter(Node::is_element);
    let (Some(cm), Some(sm)) = (si_parts.next(), si_parts.next()) else {
        return refuse(Reason::Reference, "SignedInfo incomplete");
    };
    let refs: Vec<Node<'a, 'i>> = si_parts.collect();
    if !is(cm, NS_DS, "CanonicalizationMethod") || !is(sm, NS_DS, "SignatureMethod") {
        return refuse(Reason::Reference, "SignedInfo children out of order");
    }
    if refs.len() != 1 || !is(refs[0], NS_DS, "Reference") {
        return refuse(
            Reason::Reference,
            "SignedInfo must hold exactly one Reference",
        );
    }
    let reference = refs[0];

    // Algorithms first: a weak one is refused whatever else holds.
    let si_prefixes = c14n_method(cm)?;
    let sm_uri = sm.attribute("Algorithm").unwrap_or("");
    let Some(alg) = SigAlg::from_uri(sm_uri) else {
        return refuse(Reason::Algorithm, format!("signature method {sm_uri:?}"));
    };
    if alg.is_sha1() && !allow_sha1 {
        return refuse(Reason::Algorithm, "RSA-SHA1 signature (allow_sha1 is off)");
    }
    let dm = child(reference, NS_DS, "DigestMethod")
        .and_then(|d| d.attribute("Algorithm"))
        .unwrap_or("");
    let (dalg, sha1) = match dm {
        "http://www.w3.org/2001/04/xmlenc#sha256" => (&digest::SHA256, false),
        "http://www.w3.org/2001/04/xmldsig-more#sha384" => (&digest::SHA384, false),
        "http://www.w3.org/2001/04/xmlenc#sha512" => (&digest::SHA512, false),
        "http://www.w3.org/2000/09/xmldsig#sha1" => (&digest::SHA1_FOR_LEGACY_USE_ONLY, true),
        _ => return refuse(Reason::Algorithm, format!("digest method {dm:?}")),
    };
    if sha1 && !allow_sha1 {
        return refuse(Reason::Algorithm, "SHA-1 digest (allow_sha1 is off)");
    }

    // The Reference must point at this element, by its ID.
    let id = el.attribute("ID").unwrap_or("");
    let uri = reference.attribute("URI").unwrap_or("");
    if id.is_empty() || uri.strip_prefix('#') != Some(id) {
        return refuse(
            Reason::Reference,
            format!("Reference URI {uri:?} is not this element's ID {id:?}"),
        );
    }
    let prefixes = transforms(reference)?;

    let canonical = canonicalize(doc, el, Some(sig.id()), &prefixes);
    let computed = digest::digest(dalg, &canonical);
    let Some(expected) = child(reference, NS_DS, "DigestValue").and_then(|d| b64(&text(d))) else {
        return refuse(Reason::Reference, "DigestValue missing or not base64");
    };
    if !bool::from(computed.as_ref().ct_eq(&expected)) {
        return refuse(Reason::Digest, "signed content was changed");
    }

    let signed_info = canonicalize(doc, si, None, &si_prefixes);
    let Some(value) = b64(&text(sv)) else {
        return refuse(Reason::Signature, "SignatureValue not base64");
    };
    if keys.iter().any(|k| k.verify(alg, &signed_info, &value)) {
        Ok(())
    } else {
        refuse(
            Reason::Signature,
            "signature does not verify with the configured IdP certificate",
        )
    }
}

/// SignedInfo's canonicalisation: exclusive c14n without comments only.
fn c14n_method<'a>(cm: Node<'a, '_>) -> Result<Vec<&'a str>, Refusal> {
    let a = cm.attribute("Algorithm").unwrap_or("");
    if a != NS_EXC_C14N {
        return refuse(Reason::Algorithm, format!("canonicalization {a:?}"));
    }
    Ok(prefix_list(cm))
}

/// The Reference's transforms: enveloped-signature, then exclusive c14n.
fn transforms<'a>(reference: Node<'a, '_>) -> Result<Vec<&'a str>, Refusal> {
    let Some(ts) = child(reference, NS_DS, "Transforms") else {
        return refuse(Reason::Reference, "no Transforms");
    };
    let list: Vec<_> = ts.children().filter(Node::is_element).collect();
    let ok = list.len() == 2
        && list.iter().all(|t| is(*t, NS_DS, "Transform"))
        && list[0].attribute("Algorithm") == Some(ENVELOPED)
        && list[1].attribute("Algorithm") == Some(NS_EXC_C14N);
    if !ok {
        return refuse(
            Reason::Reference,
            "transforms must be enveloped-signature then exclusive c14n",
        );
    }
    Ok(prefix_list(list[1]))
}

fn prefix_list<'a>(n: Node<'a, '_>) -> Vec<&'a str> {
    child(n, NS_EXC_C14N, "InclusiveNamespaces")
        .and_then(|i| i.attribute("PrefixList"))
        .map(|p| p.split_ascii_whitespace().collect())
        .unwrap_or_default()
}
