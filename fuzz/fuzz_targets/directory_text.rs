#![no_main]
//! User names escaped for LDAP filters and DNs, and group names read back
//! from a directory's DNs, on arbitrary bytes.
libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    portcullis::authn::directory::text::fuzz_directory_text(data)
});
