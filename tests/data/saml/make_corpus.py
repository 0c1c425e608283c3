#!/usr/bin/env python3
"""Writes the SAML adversarial corpus: responses signed (and encrypted) by
the xmlsec1 command-line tool, an implementation independent of ours, then
tampered with as each case says, plus manifest.json with the outcome a
strict verifier must give. Re-runnable; keys are made once (test-only).

Fixed values (the verifier's tests inject the clock, now 2026-01-01T00:01:00Z):
IdP https://idp.example.test/saml, SP https://sp.example.test/saml/metadata,
ACS https://sp.example.test/auth/saml/corp/acs, request _req-0001.
"""
import json
import os
import subprocess
import tempfile

HERE = os.path.dirname(os.path.abspath(__file__))
IDP = "https://idp.example.test/saml"
SP = "https://sp.example.test/saml/metadata"
ACS = "https://sp.example.test/auth/saml/corp/acs"
NS = ('xmlns:samlp="urn:oasis:names:tc:SAML:2.0:protocol" '
      'xmlns:saml="urn:oasis:names:tc:SAML:2.0:assertion"')
SAML_NS = 'xmlns:saml="urn:oasis:names:tc:SAML:2.0:assertion"'
ID_ATTRS = ["--id-attr:ID", "urn:oasis:names:tc:SAML:2.0:assertion:Assertion",
            "--id-attr:ID", "urn:oasis:names:tc:SAML:2.0:protocol:Response"]


def keys():
    for k in ("idp", "attacker", "sp"):
        if not os.path.exists(os.path.join(HERE, f"{k}-key.pem")):
            subprocess.run(["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes",
                            "-keyout", f"{k}-key.pem", "-out", f"{k}-cert.pem",
                            "-days", "3650", "-sha256", "-subj", f"/CN={k}.example.test"],
                           cwd=HERE, check=True, capture_output=True)


def sig_template(ref, sha1=False, prefixes="xs"):
    sm = ("http://www.w3.org/2000/09/xmldsig#rsa-sha1" if sha1
          else "http://www.w3.org/2001/04/xmldsig-more#rsa-sha256")
    dm = ("http://www.w3.org/2000/09/xmldsig#sha1" if sha1
          else "http://www.w3.org/2001/04/xmlenc#sha256")
    inc = (f'<ec:InclusiveNamespaces xmlns:ec="http://www.w3.org/2001/10/xml-exc-c14n#" '
           f'PrefixList="{prefixes}"/>' if prefixes else "")
    return (
        '<ds:Signature xmlns:ds="http://www.w3.org/2000/09/xmldsig#"><ds:SignedInfo>'
        '<ds:CanonicalizationMethod Algorithm="http://www.w3.org/2001/10/xml-exc-c14n#"/>'
        f'<ds:SignatureMethod Algorithm="{sm}"/><ds:Reference URI="#{ref}"><ds:Transforms>'
        '<ds:Transform Algorithm="http://www.w3.org/2000/09/xmldsig#enveloped-signature"/>'
        f'<ds:Transform Algorithm="http://www.w3.org/2001/10/xml-exc-c14n#">{inc}</ds:Transform>'
        f'</ds:Transforms><ds:DigestMethod Algorithm="{dm}"/><ds:DigestValue/></ds:Reference>'
        '</ds:SignedInfo><ds:SignatureValue/><ds:KeyInfo><ds:X509Data/></ds:KeyInfo></ds:Signature>')


def assertion(aid="_a-0001", issuer=IDP, name_id="alice", recipient=ACS, audience=SP,
              not_before="2025-12-31T23:59:00Z", not_after="2026-01-01T00:05:00Z",
              irt="_req-0001", signed=True, sha1=False, groups=("netadmins", "all-staff")):
    irt_attr = f' InResponseTo="{irt}"' if irt else ""
    vals = "".join(f'<saml:AttributeValue xsi:type="xs:string">{g}</saml:AttributeValue>'
                   for g in groups)
    return (
        f'<saml:Assertion xmlns:xs="http://www.w3.org/2001/XMLSchema" '
        f'xmlns:xsi="http://www.w3.org/2001/XMLSchema-instance" ID="{aid}" Version="2.0" '
        f'IssueInstant="2026-01-01T00:00:00Z">\n'
        f'<saml:Issuer>{issuer}</saml:Issuer>\n'
        + (sig_template(aid, sha1) + "\n" if signed else "") +
        '<saml:Subject><saml:NameID Format="urn:oasis:names:tc:SAML:2.0:nameid-format:persistent">'
        f'{name_id}</saml:NameID>\n<saml:SubjectConfirmation Method="urn:oasis:names:tc:SAML:2.0:cm:bearer">'
        f'<saml:SubjectConfirmationData NotOnOrAfter="{not_after}" Recipient="{recipient}"{irt_attr}/>'
        '</saml:SubjectConfirmation></saml:Subject>\n'
        f'<saml:Conditions NotBefore="{not_before}" NotOnOrAfter="{not_after}">'
        f'<saml:AudienceRestriction><saml:Audience>{audience}</saml:Audience></saml:AudienceRestriction>'
        '</saml:Conditions>\n'
        '<saml:AuthnStatement AuthnInstant="2026-01-01T00:00:00Z" SessionIndex="_s-0001"><saml:AuthnContext>'
        '<saml:AuthnContextClassRef>urn:oasis:names:tc:SAML:2.0:ac:classes:PasswordProtectedTransport'
        '</saml:AuthnContextClassRef></saml:AuthnContext></saml:AuthnStatement>\n'
        '<saml:AttributeStatement>'
        '<saml:Attribute Name="email" NameFormat="urn:oasis:names:tc:SAML:2.0:attrname-format:basic">'
        '<saml:AttributeValue xsi:type="xs:string">alice@example.com</saml:AttributeValue></saml:Attribute>'
        '<saml:Attribute Name="displayName" NameFormat="urn:oasis:names:tc:SAML:2.0:attrname-format:basic">'
        '<saml:AttributeValue xsi:type="xs:string">Alice Example</saml:AttributeValue></saml:Attribute>'
        '<saml:Attribute Name="groups" NameFormat="urn:oasis:names:tc:SAML:2.0:attrname-format:basic">'
        f'{vals}</saml:Attribute></saml:AttributeStatement>\n</saml:Assertion>')


def response(body, rid="_r-0001", dest=ACS, irt="_req-0001", signed=False, sha1=False,
             status="urn:oasis:names:tc:SAML:2.0:status:Success", sub=None, issuer=IDP):
    irt_attr = f' InResponseTo="{irt}"' if irt else ""
    dest_attr = f' Destination="{dest}"' if dest else ""
    sub_code = f'<samlp:StatusCode Value="{sub}"/>' if sub else ""
    return (
        f'<?xml version="1.0" encoding="UTF-8"?>\n<samlp:Response {NS} ID="{rid}" Version="2.0" '
        f'IssueInstant="2026-01-01T00:00:00Z"{dest_attr}{irt_attr}>\n'
        f'<saml:Issuer>{issuer}</saml:Issuer>\n'
        + (sig_template(rid, sha1, prefixes="") + "\n" if signed else "") +
        f'<samlp:Status><samlp:StatusCode Value="{status}">{sub_code}</samlp:StatusCode></samlp:Status>\n'
        f'{body}\n</samlp:Response>\n')


def xmlsec(args, text):
    with tempfile.TemporaryDirectory() as d:
        src, out = os.path.join(d, "in.xml"), os.path.join(d, "out.xml")
        with open(src, "w") as f:
            f.write(text)
        r = subprocess.run(["xmlsec1"] + args + ["--output", out, src], cwd=HERE,
                           capture_output=True, text=True)
        if r.returncode != 0:
            raise SystemExit(f"xmlsec1 {' '.join(args)} failed:\n{r.stderr}")
        with open(out) as f:
            return f.read()


def sign(text, key="idp"):
    """Signs every signature template, innermost (the assertion's) first:
    xmlsec1 signs the first template in document order, so the Response's
    template is held back until the assertion is signed."""
    marker = "<!--RESPONSE-SIGNATURE-->"
    rsig = text.find('<ds:Signature', 0, text.find("<samlp:Status"))
    held = None
    if rsig >= 0 and text.find("<saml:Assertion") > rsig:
        end = text.index("</ds:Signature>", rsig) + len("</ds:Signature>")
        held = text[rsig:end]
        text = text[:rsig] + marker + text[end:]
    if "<ds:Signature" in text:
        text = xmlsec(["--sign", "--privkey-pem", f"{key}-key.pem,{key}-cert.pem"] + ID_ATTRS, text)
    if held:
        text = text.replace(marker, held)
        text = xmlsec(["--sign", "--privkey-pem", f"{key}-key.pem,{key}-cert.pem"] + ID_ATTRS, text)
    return text


def encrypt(signed_response, data_alg, key_alg="http://www.w3.org/2001/04/xmlenc#rsa-oaep-mgf1p"):
    """Replaces the (signed) assertion by an EncryptedAssertion for the SP."""
    a0 = signed_response.index("<saml:Assertion")
    a1 = signed_response.index("</saml:Assertion>") + len("</saml:Assertion>")
    a = signed_response[a0:a1].replace("<saml:Assertion ", f"<saml:Assertion {SAML_NS} ", 1)
    session = {"http://www.w3.org/2009/xmlenc11#aes256-gcm": "aes-256",
               "http://www.w3.org/2001/04/xmlenc#aes128-cbc": "aes-128"}[data_alg]
    tmpl = (
        '<xenc:EncryptedData xmlns:xenc="http://www.w3.org/2001/04/xmlenc#" '
        'Type="http://www.w3.org/2001/04/xmlenc#Element">'
        f'<xenc:EncryptionMethod Algorithm="{data_alg}"/>'
        '<ds:KeyInfo xmlns:ds="http://www.w3.org/2000/09/xmldsig#"><xenc:EncryptedKey>'
        f'<xenc:EncryptionMethod Algorithm="{key_alg}"/>'
        '<xenc:CipherData><xenc:CipherValue/></xenc:CipherData></xenc:EncryptedKey></ds:KeyInfo>'
        '<xenc:CipherData><xenc:CipherValue/></xenc:CipherData></xenc:EncryptedData>')
    with tempfile.TemporaryDirectory() as d:
        data = os.path.join(d, "data.xml")
        with open(data, "w") as f:
            f.write('<?xml version="1.0" encoding="UTF-8"?>\n' + a)
        out = xmlsec(["--encrypt", "--pubkey-cert-pem", "sp-cert.pem", "--session-key", session,
                      "--xml-data", data, "--node-name",
                      "urn:oasis:names:tc:SAML:2.0:assertion:Assertion"], tmpl)
    e0 = out.index("<xenc:EncryptedData")
    e1 = out.index("</xenc:EncryptedData>") + len("</xenc:EncryptedData>")
    return (signed_response[:a0] + "<saml:EncryptedAssertion>" + out[e0:e1]
            + "</saml:EncryptedAssertion>" + signed_response[a1:])


def between(text, start, end):
    i = text.index(start)
    j = text.index(end, i) + len(end)
    return i, j


def main():
    os.chdir(HERE)
    keys()
    cases = []

    def case(name, text, expect, what, **options):
        with open(name, "w") as f:
            f.write(text)
        cases.append({"file": name, "expect": expect, "what": what, "options": options})

    good = sign(response(assertion()))
    case("good-assertion-signed.xml", good, "ok", "only the Assertion signed (xs in PrefixList)")
    case("good-response-signed.xml", sign(response(assertion(signed=False), signed=True)), "ok",
         "only the Response signed")
    both = sign(response(assertion(), signed=True))
    case("good-both-signed.xml", both, "ok", "Assertion signed, then the Response around it")
    gcm = encrypt(good, "http://www.w3.org/2009/xmlenc11#aes256-gcm")
    case("good-encrypted-gcm.xml", gcm, "ok", "signed assertion encrypted: AES-256-GCM, RSA-OAEP (mgf1p)",
         decrypt_key="sp-key.pem")
    case("good-encrypted-cbc.xml", encrypt(good, "http://www.w3.org/2001/04/xmlenc#aes128-cbc"), "ok",
         "signed assertion encrypted: AES-128-CBC, RSA-OAEP (mgf1p)", decrypt_key="sp-key.pem")
    case("encrypted-no-key.xml", gcm, "encrypted", "encrypted assertion, no SP key configured")
    idp_init = sign(response(assertion(irt=None), irt=None))
    case("good-idp-initiated.xml", idp_init, "ok", "no InResponseTo; IdP-initiated allowed",
         allow_idp_initiated=True)
    case("idp-initiated-refused.xml", idp_init, "unsolicited", "no InResponseTo; IdP-initiated not allowed")
    case("unsigned.xml", response(assertion(signed=False)), "unsigned", "no signature anywhere")
    case("wrong-key.xml", sign(response(assertion()), key="attacker"), "signature",
         "signed by a key that is not the IdP's (its own cert in KeyInfo)")
    case("tampered-nameid.xml", good.replace(">alice</saml:NameID>", ">admin</saml:NameID>"), "digest",
         "NameID changed after signing")
    case("tampered-group.xml", good.replace(
        '>all-staff</saml:AttributeValue>',
        '>all-staff</saml:AttributeValue><saml:AttributeValue xsi:type="xs:string">superadmins</saml:AttributeValue>'),
        "digest", "a group added after signing")
    evil_name = sign(response(assertion(name_id="alice@example.com.evil.com")))
    case("comment-nameid.xml", evil_name.replace("alice@example.com.evil.com</saml:NameID>",
                                                 "alice@example.com<!---->.evil.com</saml:NameID>"),
         "comment", "signed NameID alice@example.com.evil.com with <!----> inserted after .com")
    case("wrong-audience.xml", sign(response(assertion(audience="https://other-sp.example.test"))),
         "audience", "Audience names another SP")
    case("wrong-destination.xml", sign(response(assertion(signed=False), signed=True,
                                                dest="https://other-sp.example.test/acs")),
         "destination", "signed Response with another Destination")
    case("wrong-recipient.xml", sign(response(assertion(recipient="https://other-sp.example.test/acs"))),
         "recipient", "bearer confirmation for another ACS")
    case("wrong-issuer.xml", sign(response(assertion(issuer="https://evil.example.test"),
                                           issuer="https://evil.example.test")),
         "issuer", "Issuer is not the configured IdP (signed with the IdP key)")
    case("expired.xml", sign(response(assertion(not_before="2025-12-31T23:00:00Z",
                                                not_after="2025-12-31T23:30:00Z"))),
         "expired", "NotOnOrAfter half an hour before now")
    case("not-yet-valid.xml", sign(response(assertion(not_before="2026-01-01T00:30:00Z",
                                                      not_after="2026-01-01T01:00:00Z"))),
         "not_yet_valid", "NotBefore half an hour after now")
    case("good-expired-by-clock.xml", good, "expired", "the good response an hour later",
         now="2026-01-01T01:01:00Z")
    case("unsolicited-in-response-to.xml", sign(response(assertion(irt="_req-9999"), irt="_req-9999")),
         "in_response_to", "InResponseTo a request we never sent")
    case("status-failure.xml", sign(response("", signed=True,
                                             status="urn:oasis:names:tc:SAML:2.0:status:Requester",
                                             sub="urn:oasis:names:tc:SAML:2.0:status:AuthnFailed")),
         "status", "signed Response with Requester/AuthnFailed")
    sha1 = sign(response(assertion(sha1=True)))
    case("sha1.xml", sha1, "algorithm", "rsa-sha1 signature and sha1 digest")
    case("sha1-allowed.xml", sha1, "ok", "the same, with allow_sha1", allow_sha1=True)
    case("doctype-entity.xml", good.replace(
        '<?xml version="1.0" encoding="UTF-8"?>\n',
        '<?xml version="1.0" encoding="UTF-8"?>\n<!DOCTYPE samlp:Response [<!ENTITY who "alice">]>\n', 1)
        .replace(">alice</saml:NameID>", ">&who;</saml:NameID>"), "dtd",
        "a DOCTYPE declaring an entity used in the NameID")
    case("billion-laughs.xml",
         '<?xml version="1.0"?>\n<!DOCTYPE r [<!ENTITY a "aaaaaaaaaa"><!ENTITY b "&a;&a;&a;&a;&a;&a;&a;&a;&a;&a;">'
         '<!ENTITY c "&b;&b;&b;&b;&b;&b;&b;&b;&b;&b;"><!ENTITY d "&c;&c;&c;&c;&c;&c;&c;&c;&c;&c;">]>\n'
         f'<samlp:Response {NS} ID="_r">&d;</samlp:Response>\n', "dtd", "nested entity expansion")
    i, _ = between(good, "<samlp:Status>", "</samlp:Status>")
    case("duplicate-ids.xml", good[:i] + '<samlp:Extensions><x ID="_a-0001"/></samlp:Extensions>' + good[i:],
         "duplicate_id", "an extension element reuses the signed assertion's ID")
    evil = assertion(aid="_a-evil", name_id="admin", signed=False, groups=("netadmins",))
    a0, a1 = between(good, "<saml:Assertion", "</saml:Assertion>")
    signed_a = good[a0:a1]
    case("two-assertions.xml", good[:a1] + "\n" + evil + good[a1:], "assertion_count",
         "the signed assertion plus an unsigned one for admin after it")
    case("no-assertion.xml", sign(response("", signed=True)), "assertion_count",
         "signed Success Response with no assertion")

    # XML Signature Wrapping (Somorovsky et al., "On Breaking SAML", 2012).
    r_signed = sign(response(assertion(signed=False), signed=True))
    r0 = r_signed.index("<samlp:Response")
    orig_response = r_signed[r0:r_signed.rindex("</samlp:Response>") + len("</samlp:Response>")]
    rs0, rs1 = between(r_signed, "<ds:Signature", "</ds:Signature>")
    r_sig = r_signed[rs0:rs1]
    wrapper = (f'<?xml version="1.0" encoding="UTF-8"?>\n<samlp:Response {NS} ID="_r-evil" Version="2.0" '
               f'IssueInstant="2026-01-01T00:00:00Z" Destination="{ACS}" InResponseTo="_req-0001">'
               f'<saml:Issuer>{IDP}</saml:Issuer>')
    status = '<samlp:Status><samlp:StatusCode Value="urn:oasis:names:tc:SAML:2.0:status:Success"/></samlp:Status>'
    case("xsw1.xml", wrapper + r_sig.replace("</ds:Signature>", "<ds:Object>" + orig_response
                                              + "</ds:Object></ds:Signature>") + status + evil
         + "</samlp:Response>\n", "assertion_count",
         "XSW1: new Response root with an evil assertion; the signed Response (and its signature) moved into ds:Object of a copied signature")
    case("xsw2.xml", wrapper + orig_response + r_sig + status + evil + "</samlp:Response>\n",
         "assertion_count", "XSW2: as XSW1 but the signed Response placed before the copied signature (detached)")
    case("xsw3.xml", good[:a0] + evil.replace('ID="_a-evil"', 'ID="_a-0001"') + "\n" + good[a0:],
         "duplicate_id", "XSW3: evil assertion with the signed one's ID inserted before it, as a sibling")
    case("xsw3-new-id.xml", good[:a0] + evil + "\n" + good[a0:], "assertion_count",
         "XSW3 with a fresh ID on the evil assertion")
    case("xsw4.xml", good[:a0] + evil.replace("</saml:Assertion>", signed_a + "</saml:Assertion>") + good[a1:],
         "assertion_count", "XSW4: the signed assertion wrapped inside the evil one")
    as0, as1 = between(signed_a, "<ds:Signature", "</ds:Signature>")
    a_sig = signed_a[as0:as1]
    evil_with_sig = evil.replace("</saml:Issuer>", "</saml:Issuer>" + a_sig, 1)
    case("xsw5.xml", good[:a0] + evil_with_sig + "\n" + signed_a.replace(a_sig, "") + good[a1:],
         "assertion_count", "XSW5: evil assertion carries the original signature; the original (signature removed) appended")
    case("xsw6.xml", good[:a0] + evil.replace("</saml:Issuer>", "</saml:Issuer>" + a_sig.replace(
        "</ds:Signature>", "<ds:Object>" + signed_a.replace(a_sig, "") + "</ds:Object></ds:Signature>"), 1)
         + good[a1:], "assertion_count",
         "XSW6: evil assertion with the original signature whose ds:Object holds the original assertion")
    case("xsw7.xml", good[:a0] + "<samlp:Extensions>" + signed_a + "</samlp:Extensions>" + evil + good[a1:],
         "assertion_count", "XSW7: signed assertion hidden in samlp:Extensions, evil assertion in its place")
    case("xsw8.xml", good[:a0] + evil.replace("</saml:Issuer>", "</saml:Issuer>" + a_sig.replace(
        "</ds:Signature>", "<ds:Object>" + signed_a.replace(a_sig, "") + "</ds:Object></ds:Signature>"), 1)
         .replace('ID="_a-evil"', 'ID="_a-0001"', 1) + good[a1:], "duplicate_id",
         "XSW8: evil assertion with the original's ID and signature; original (unsigned) inside ds:Object")
    case("xsw-id-swap.xml", good[:a0] + evil_with_sig.replace('ID="_a-evil"', 'ID="_a-0001"', 1) + good[a1:],
         "digest", "only assertion is the evil one, with the original's ID and signature")
    case("xsw-foreign-reference.xml", good[:a0] + evil_with_sig + good[a1:], "reference",
         "only assertion is the evil one carrying a signature whose Reference names #_a-0001")
    case("not-xml.xml", "this is not XML\n", "malformed", "plain text")
    case("root-not-response.xml", '<?xml version="1.0"?>\n' + signed_a.replace(
        "<saml:Assertion ", f"<saml:Assertion {SAML_NS} ", 1) + "\n", "malformed",
        "a bare (signed) Assertion instead of a Response")

    with open("manifest.json", "w") as f:
        json.dump(cases, f, indent=1)
        f.write("\n")
    print(f"{len(cases)} cases")


if __name__ == "__main__":
    main()
