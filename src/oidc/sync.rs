//! Group membership sync for external (IdP) users, as a pure function so the
//! store layer only has to write the result.

/// The external user's local group memberships after a login.
///
/// - `token_groups == None` (the token had no groups claim at all): the
///   memberships stay as they were. An IdP whose groups claim was switched
///   off must not silently demote everyone.
/// - Otherwise the user is in exactly those `local_groups` whose names
///   appear in the token (exact, case-sensitive match, because group names
///   are policy keys). Token groups with no local group are ignored: a login
///   never creates groups.
/// - `builtin` groups (e.g. `all-users`) are never synced: kept if the user
///   had them, never added because the token names them.
///
/// The result lists kept built-in groups first (in `current` order), then
/// synced groups in `local_groups` order, without duplicates.
pub fn sync_groups(
    current: &[String],
    token_groups: Option<&[String]>,
    local_groups: &[String],
    builtin: &[String],
) -> Vec<String> {
    let Some(token) = token_groups else {
        return current.to_vec();
    };
    let mut out: Vec<String> = Vec::with_capacity(token.len() + 1);
    for g in current {
        if builtin.contains(g) && !out.contains(g) {
            out.push(g.clone());
        }
    }
    for g in local_groups {
        if !builtin.contains(g) && token.contains(g) && !out.contains(g) {
            out.push(g.clone());
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn v(xs: &[&str]) -> Vec<String> {
        xs.iter().map(|s| s.to_string()).collect()
    }

    const LOCAL: &[&str] = &["netadmins", "helpdesk", "auditors", "all-users"];
    const BUILTIN: &[&str] = &["all-users"];

    fn run(current: &[&str], token: Option<&[&str]>) -> Vec<String> {
        let token = token.map(v);
        sync_groups(&v(current), token.as_deref(), &v(LOCAL), &v(BUILTIN))
    }

    #[test]
    fn first_login_adds_matching_local_groups() {
        assert_eq!(
            run(&[], Some(&["netadmins", "helpdesk"])),
            v(&["netadmins", "helpdesk"])
        );
    }

    #[test]
    fn token_groups_without_local_group_are_ignored() {
        assert_eq!(
            run(&[], Some(&["Everyone", "okta-admins", "helpdesk"])),
            v(&["helpdesk"])
        );
    }

    #[test]
    fn groups_not_listed_are_removed() {
        assert_eq!(
            run(&["netadmins", "helpdesk"], Some(&["helpdesk"])),
            v(&["helpdesk"])
        );
    }

    #[test]
    fn empty_groups_claim_removes_all_synced_groups_but_keeps_builtin() {
        assert_eq!(
            run(&["all-users", "netadmins"], Some(&[])),
            v(&["all-users"])
        );
    }

    #[test]
    fn missing_groups_claim_keeps_memberships() {
        assert_eq!(
            run(&["all-users", "netadmins", "auditors"], None),
            v(&["all-users", "netadmins", "auditors"])
        );
    }

    #[test]
    fn builtin_never_added_from_token() {
        assert_eq!(run(&[], Some(&["all-users", "auditors"])), v(&["auditors"]));
    }

    #[test]
    fn builtin_never_removed() {
        assert_eq!(
            run(&["all-users"], Some(&["auditors"])),
            v(&["all-users", "auditors"])
        );
    }

    #[test]
    fn match_is_case_sensitive() {
        assert_eq!(
            run(&[], Some(&["NetAdmins", "HELPDESK"])),
            Vec::<String>::new()
        );
    }

    #[test]
    fn duplicates_collapse_and_order_is_local_order() {
        assert_eq!(
            run(
                &["all-users", "all-users"],
                Some(&["auditors", "netadmins", "auditors"])
            ),
            v(&["all-users", "netadmins", "auditors"])
        );
    }

    #[test]
    fn stale_membership_of_deleted_local_group_is_dropped() {
        assert_eq!(
            run(&["gone"], Some(&["gone", "helpdesk"])),
            v(&["helpdesk"])
        );
    }
}
