//! SAML Response verification (parse, structure, exclusive c14n, SHA-256,
//! RSA-2048 signature, conditions) on the corpus's good response, and the
//! same with an AES-256-GCM encrypted assertion (adds RSA-OAEP decryption).

use std::time::Duration;

use criterion::{Criterion, criterion_group, criterion_main};
use portcullis::saml::{AttributeNames, Expect, IdpCert, SpKey, time, verify};

fn read(name: &str) -> Vec<u8> {
    std::fs::read(format!(
        "{}/tests/data/saml/{name}",
        env!("CARGO_MANIFEST_DIR")
    ))
    .unwrap()
}

fn bench(c: &mut Criterion) {
    let certs = IdpCert::from_pem(&String::from_utf8(read("idp-cert.pem")).unwrap()).unwrap();
    let key = SpKey::from_pem(&String::from_utf8(read("sp-key.pem")).unwrap()).unwrap();
    let names = AttributeNames::default();
    let ex = Expect {
        idp_entity_id: "https://idp.example.test/saml",
        sp_entity_id: "https://sp.example.test/saml/metadata",
        acs_url: "https://sp.example.test/auth/saml/corp/acs",
        certs: &certs,
        now: time::parse("2026-01-01T00:01:00Z").unwrap(),
        skew: Duration::from_secs(60),
        allow_sha1: false,
        allow_idp_initiated: false,
        sp_key: Some(&key),
        attributes: &names,
    };
    let good = read("good-assertion-signed.xml");
    let enc = read("good-encrypted-gcm.xml");
    assert!(verify(&good, &ex).is_ok() && verify(&enc, &ex).is_ok());
    c.bench_function("saml_verify_signed_assertion", |b| {
        b.iter(|| verify(&good, &ex).unwrap())
    });
    c.bench_function("saml_verify_encrypted_assertion", |b| {
        b.iter(|| verify(&enc, &ex).unwrap())
    });
}

criterion_group!(benches, bench);
criterion_main!(benches);
