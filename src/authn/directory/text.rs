//! The strings that cross into and out of a directory: user names checked
//! before they reach a filter or a DN (RFC 4515 / RFC 4514 escaping), and
//! group names read back from the server's answers (a DN's first RDN value).
//! Pure functions over hostile input; fuzzed by `fuzz_directory_text`.

use std::borrow::Cow;

/// Longer names are refused before any directory is asked: no real account
/// name comes close (AD's sAMAccountName is 20, a UPN at most 1024 but
/// RADIUS caps User-Name at 253).
pub const MAX_NAME: usize = 256;

/// Why a user name is not sent to a directory.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum NameError {
    #[error("empty user name")]
    Empty,
    #[error("user name longer than {MAX_NAME} bytes")]
    TooLong,
    #[error("user name contains a NUL or another control character")]
    Control,
}

/// A name fit for a filter or a DN template: 1..=`MAX_NAME` bytes, no
/// control characters (NUL included). Metacharacters are allowed here; they
/// are escaped where the name is used.
pub fn check_name(name: &str) -> Result<(), NameError> {
    if name.is_empty() {
        return Err(NameError::Empty);
    }
    if name.len() > MAX_NAME {
        return Err(NameError::TooLong);
    }
    if name.chars().any(char::is_control) {
        return Err(NameError::Control);
    }
    Ok(())
}

/// RFC 4515 §3: a value inside a filter, with `*`, `(`, `)`, `\` and NUL
/// written as `\XX`, so a name can never add a clause or a wildcard.
pub fn filter_value(v: &str) -> Cow<'_, str> {
    if !v
        .bytes()
        .any(|b| matches!(b, b'*' | b'(' | b')' | b'\\' | 0))
    {
        return Cow::Borrowed(v);
    }
    let mut out = String::with_capacity(v.len() + 8);
    for c in v.chars() {
        match c {
            '*' | '(' | ')' | '\\' | '\0' => out.push_str(&format!("\\{:02x}", c as u32)),
            c => out.push(c),
        }
    }
    Cow::Owned(out)
}

/// RFC 4514 §2.4: a value inside a DN (for a bind template such as
/// `uid={user},ou=people,...`): `, + " \ < > ; =` escaped with a backslash, a
/// leading `#` or space and a trailing space too.
pub fn dn_value(v: &str) -> Cow<'_, str> {
    let special = |c: char| matches!(c, ',' | '+' | '"' | '\\' | '<' | '>' | ';' | '=' | '\0');
    if !v.chars().any(special) && !v.starts_with(['#', ' ']) && !v.ends_with(' ') {
        return Cow::Borrowed(v);
    }
    let mut out = String::with_capacity(v.len() + 8);
    let last = v.chars().count().saturating_sub(1);
    for (i, c) in v.chars().enumerate() {
        if c == '\0' {
            out.push_str("\\00");
        } else if special(c) || (i == 0 && matches!(c, '#' | ' ')) || (i == last && c == ' ') {
            out.push('\\');
            out.push(c);
        } else {
            out.push(c);
        }
    }
    Cow::Owned(out)
}

/// Fills `{user}` in a filter with the escaped name.
pub fn fill_filter(template: &str, name: &str) -> String {
    template.replace("{user}", &filter_value(name))
}

/// Fills `{user}` in a bind template. A DN template (it has an `=`) gets the
/// RFC 4514 escaping; a UPN (`{user}@corp.example`) or a down-level name
/// (`CORP\{user}`) is not a DN, and gets the name as it is (already checked
/// by [`check_name`]).
pub fn fill_bind(template: &str, name: &str) -> String {
    if template.contains('=') {
        template.replace("{user}", &dn_value(name))
    } else {
        template.replace("{user}", name)
    }
}

/// The value of a DN's first RDN when its attribute type is `attr`
/// (case-insensitive), unescaped: `CN=Net Admins\, EMEA,OU=Groups,...` with
/// `cn` gives `Net Admins, EMEA`. `None` when the DN does not start with
/// `attr=`, or is malformed (a dangling escape, a multi-valued first RDN).
pub fn first_rdn_value(dn: &str, attr: &str) -> Option<String> {
    let (ty, rest) = dn.split_once('=')?;
    if !ty.trim().eq_ignore_ascii_case(attr) {
        return None;
    }
    let rest = rest.trim_start();
    let bytes = rest.as_bytes();
    let mut out: Vec<u8> = Vec::new();
    let mut i = 0;
    while i < bytes.len() {
        match bytes[i] {
            b'\\' => {
                let next = *bytes.get(i + 1)?;
                if next.is_ascii_hexdigit() {
                    let hi = next;
                    let lo = *bytes.get(i + 2)?;
                    let hex = [hi, lo];
                    let s = std::str::from_utf8(&hex).ok()?;
                    out.push(u8::from_str_radix(s, 16).ok()?);
                    i += 3;
                } else {
                    out.push(next);
                    i += 2;
                }
            }
            b',' | b';' => break,
            // A multi-valued RDN is not a group name we can name.
            b'+' => return None,
            b => {
                out.push(b);
                i += 1;
            }
        }
    }
    let value = String::from_utf8(out).ok()?;
    let value = value.trim_end();
    (!value.is_empty()).then(|| value.to_string())
}

/// Fuzz entry: none of these panics on arbitrary input, and escaping never
/// lets a filter metacharacter through.
pub fn fuzz_directory_text(data: &[u8]) {
    let Ok(s) = std::str::from_utf8(data) else {
        return;
    };
    let _ = check_name(s);
    let f = filter_value(s);
    assert!(!f.contains(['*', '(', ')', '\0']));
    let _ = dn_value(s);
    let _ = fill_bind("uid={user},ou=people,dc=example", s);
    let _ = first_rdn_value(s, "cn");
    let _ = first_rdn_value(s, "CN");
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn filter_metacharacters_are_escaped() {
        assert_eq!(filter_value("alice"), "alice");
        assert_eq!(filter_value("*)(uid=*"), "\\2a\\29\\28uid=\\2a");
        assert_eq!(filter_value("a\\b"), "a\\5cb");
        assert_eq!(filter_value("nul\0"), "nul\\00");
        assert_eq!(
            fill_filter("(&(objectClass=person)(uid={user}))", "x*)(uid=*"),
            "(&(objectClass=person)(uid=x\\2a\\29\\28uid=\\2a))"
        );
        // Non-ASCII text passes as UTF-8, as RFC 4515 allows.
        assert_eq!(filter_value("jürgen"), "jürgen");
    }

    #[test]
    fn dn_values_are_escaped_for_dn_templates_only() {
        assert_eq!(dn_value("alice"), "alice");
        assert_eq!(dn_value("a,b+c"), "a\\,b\\+c");
        assert_eq!(dn_value(" #x "), "\\ #x\\ ");
        assert_eq!(dn_value("#x"), "\\#x");
        assert_eq!(
            fill_bind("uid={user},ou=people,dc=example", "evil,dc=x"),
            "uid=evil\\,dc\\=x,ou=people,dc=example"
        );
        assert_eq!(
            fill_bind("{user}@corp.example", "alice"),
            "alice@corp.example"
        );
    }

    #[test]
    fn names_are_checked_before_any_directory_sees_them() {
        assert_eq!(check_name("alice"), Ok(()));
        assert_eq!(check_name("*)(uid=*"), Ok(()), "escaped later, not refused");
        assert_eq!(check_name(""), Err(NameError::Empty));
        assert_eq!(check_name("a\0b"), Err(NameError::Control));
        assert_eq!(check_name("a\nb"), Err(NameError::Control));
        assert_eq!(check_name(&"a".repeat(257)), Err(NameError::TooLong));
        assert_eq!(check_name(&"a".repeat(256)), Ok(()));
    }

    #[test]
    fn group_names_come_from_the_first_rdn() {
        let v = |dn: &str| first_rdn_value(dn, "cn");
        assert_eq!(
            v("cn=netadmins,ou=groups,dc=example,dc=org").as_deref(),
            Some("netadmins")
        );
        assert_eq!(
            v("CN=NetAdmins,OU=Groups,DC=corp").as_deref(),
            Some("NetAdmins")
        );
        assert_eq!(
            v("CN=Net Admins\\, EMEA,OU=Groups").as_deref(),
            Some("Net Admins, EMEA")
        );
        assert_eq!(v("cn=caf\\c3\\a9,dc=x").as_deref(), Some("café"));
        assert_eq!(v("cn=solo").as_deref(), Some("solo"));
        assert_eq!(v("ou=netadmins,dc=x"), None);
        assert_eq!(v("cn=a+uid=b,dc=x"), None);
        assert_eq!(v("cn=,dc=x"), None);
        assert_eq!(v("cn=dangling\\"), None);
        assert_eq!(v("cn=bad\\zz"), Some("badzz".into()));
        assert_eq!(v("no equals"), None);
        assert_eq!(v("cn=\\ff\\fe"), None, "not UTF-8");
    }

    #[test]
    fn the_fuzz_entry_takes_odd_input() {
        for s in [
            "", "\\", "cn=\\", "cn=\\4", "=", "cn=,", "\0", "cn= ,", "é=é",
        ] {
            fuzz_directory_text(s.as_bytes());
        }
    }
}
