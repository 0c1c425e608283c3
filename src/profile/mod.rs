//! Vendor profiles: how one protocol-neutral grant is written for a given
//! kind of appliance. Every (profile, role) pair is rendered once when the
//! configuration loads, so replies splice ready-made bytes.
//!
//! To add a profile: a variant, its name in `parse`/`as_str`, and its arms in
//! `radius_attributes` and `tacacs_args`.

use crate::policy::{PolicyTable, Role};

/// RADIUS Service-Type values (RFC 2865 §5.6).
const SERVICE_TYPE: u8 = 6;
const ADMINISTRATIVE_USER: u32 = 6;
const NAS_PROMPT_USER: u32 = 7;
/// Vendor-Specific (RFC 2865 §5.26) and Cisco's enterprise number and
/// Cisco-AVPair sub-attribute.
const VENDOR_SPECIFIC: u8 = 26;
const VENDOR_CISCO: u32 = 9;
const CISCO_AVPAIR: u8 = 1;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Profile {
    /// SD-WAN orchestrator: `LOGIN:priv-lvl=`, `LOGIN:rbac-roles=`, `LOGIN:rbac-aag=`.
    Orchestrator,
    /// Cisco IOS / IOS-XE / NX-OS shells: `shell:priv-lvl=`.
    CiscoIos,
}

/// One RADIUS reply attribute, as `explain` prints it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RadiusAttr {
    ServiceType(u32),
    CiscoAvPair(String),
}

impl RadiusAttr {
    fn encode_into(&self, out: &mut Vec<u8>) {
        match self {
            Self::ServiceType(v) => {
                out.extend_from_slice(&[SERVICE_TYPE, 6]);
                out.extend_from_slice(&v.to_be_bytes());
            }
            Self::CiscoAvPair(s) => {
                // Values are bounded at config validation to fit one attribute.
                let v = &s.as_bytes()[..s.len().min(247)];
                out.extend_from_slice(&[VENDOR_SPECIFIC, (v.len() + 8) as u8]);
                out.extend_from_slice(&VENDOR_CISCO.to_be_bytes());
                out.extend_from_slice(&[CISCO_AVPAIR, (v.len() + 2) as u8]);
                out.extend_from_slice(v);
            }
        }
    }
}

impl std::fmt::Display for RadiusAttr {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::ServiceType(ADMINISTRATIVE_USER) => {
                f.write_str("Service-Type = Administrative-User")
            }
            Self::ServiceType(NAS_PROMPT_USER) => f.write_str("Service-Type = NAS-Prompt-User"),
            Self::ServiceType(v) => write!(f, "Service-Type = {v}"),
            Self::CiscoAvPair(s) => write!(f, "Cisco-AVPair = \"{s}\""),
        }
    }
}

impl Profile {
    pub const ALL: [Self; 2] = [Self::Orchestrator, Self::CiscoIos];

    pub fn parse(s: &str) -> Option<Self> {
        match s {
            "orchestrator" => Some(Self::Orchestrator),
            "cisco-ios" => Some(Self::CiscoIos),
            _ => None,
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Self::Orchestrator => "orchestrator",
            Self::CiscoIos => "cisco-ios",
        }
    }

    fn index(self) -> usize {
        self as usize
    }

    /// The attributes an Access-Accept carries for `role`.
    pub fn radius_attributes(self, role: &Role) -> Vec<RadiusAttr> {
        let service = if role.priv_lvl == 15 {
            ADMINISTRATIVE_USER
        } else {
            NAS_PROMPT_USER
        };
        let mut attrs = vec![RadiusAttr::ServiceType(service)];
        match self {
            Self::Orchestrator => {
                attrs.push(RadiusAttr::CiscoAvPair(format!(
                    "LOGIN:priv-lvl={}",
                    role.priv_lvl
                )));
                if !role.rbac_roles.is_empty() {
                    attrs.push(RadiusAttr::CiscoAvPair(format!(
                        "LOGIN:rbac-roles={}",
                        role.rbac_roles
                    )));
                }
                if !role.rbac_aag.is_empty() {
                    attrs.push(RadiusAttr::CiscoAvPair(format!(
                        "LOGIN:rbac-aag={}",
                        role.rbac_aag
                    )));
                }
            }
            Self::CiscoIos => {
                attrs.push(RadiusAttr::CiscoAvPair(format!(
                    "shell:priv-lvl={}",
                    role.priv_lvl
                )));
            }
        }
        attrs
    }

    /// The AV pairs a TACACS+ shell authorization returns (PASS_ADD).
    pub fn tacacs_args(self, role: &Role) -> Vec<String> {
        let mut args = vec![format!("priv-lvl={}", role.priv_lvl)];
        if self == Self::Orchestrator {
            if let Some(r) = role.tacacs_role {
                args.push(format!("role={}", r.as_str()));
            }
            if !role.rbac_roles.is_empty() {
                args.push(format!("rbac-roles={}", role.rbac_roles));
            }
            if !role.rbac_aag.is_empty() {
                args.push(format!("rbac-aag={}", role.rbac_aag));
            }
        }
        args
    }
}

/// Pre-rendered TACACS+ AV pairs of one role.
type AvPairs = Box<[Box<[u8]>]>;

/// Every profile × role rendering, built with the table it belongs to.
#[derive(Debug, Clone, Default)]
pub struct Renderings {
    /// `[profile][role]` → encoded RADIUS attributes.
    radius: Vec<Vec<Box<[u8]>>>,
    /// `[profile][role]` → TACACS+ AV pairs.
    tacacs: Vec<Vec<AvPairs>>,
}

impl Renderings {
    pub fn build(table: &PolicyTable) -> Self {
        let radius = Profile::ALL
            .iter()
            .map(|p| {
                table
                    .roles()
                    .iter()
                    .map(|r| {
                        let mut out = Vec::new();
                        for a in p.radius_attributes(r) {
                            a.encode_into(&mut out);
                        }
                        out.into_boxed_slice()
                    })
                    .collect()
            })
            .collect();
        let tacacs = Profile::ALL
            .iter()
            .map(|p| {
                table
                    .roles()
                    .iter()
                    .map(|r| {
                        p.tacacs_args(r)
                            .into_iter()
                            .map(|a| a.into_bytes().into_boxed_slice())
                            .collect()
                    })
                    .collect()
            })
            .collect();
        Self { radius, tacacs }
    }

    /// Encoded RADIUS attributes (type-length-value, ready to splice).
    pub fn radius(&self, profile: Profile, role: crate::policy::RoleId) -> &[u8] {
        &self.radius[profile.index()][usize::from(role)]
    }

    pub fn tacacs(&self, profile: Profile, role: crate::policy::RoleId) -> &[Box<[u8]>] {
        &self.tacacs[profile.index()][usize::from(role)]
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::policy::{CommandRules, TacacsRole};

    fn admin() -> Role {
        Role {
            name: "network-admin".into(),
            priv_lvl: 15,
            rbac_roles: "OverlayAdmin".into(),
            rbac_aag: "Global".into(),
            tacacs_role: Some(TacacsRole::Admin),
            admin: true,
            commands: CommandRules::permit_all(),
        }
    }

    #[test]
    fn orchestrator_renders_three_login_pairs() {
        let attrs = Profile::Orchestrator.radius_attributes(&admin());
        let shown: Vec<String> = attrs.iter().map(ToString::to_string).collect();
        assert_eq!(
            shown,
            [
                "Service-Type = Administrative-User",
                "Cisco-AVPair = \"LOGIN:priv-lvl=15\"",
                "Cisco-AVPair = \"LOGIN:rbac-roles=OverlayAdmin\"",
                "Cisco-AVPair = \"LOGIN:rbac-aag=Global\"",
            ]
        );
        assert_eq!(
            Profile::Orchestrator.tacacs_args(&admin()),
            [
                "priv-lvl=15",
                "role=admin",
                "rbac-roles=OverlayAdmin",
                "rbac-aag=Global"
            ]
        );
    }

    #[test]
    fn cisco_ios_renders_shell_priv_lvl() {
        let attrs = Profile::CiscoIos.radius_attributes(&admin());
        assert_eq!(
            attrs[1],
            RadiusAttr::CiscoAvPair("shell:priv-lvl=15".into())
        );
    }

    #[test]
    fn vsa_encoding_is_well_formed() {
        let mut out = Vec::new();
        RadiusAttr::CiscoAvPair("shell:priv-lvl=15".into()).encode_into(&mut out);
        assert_eq!(out[0], 26);
        assert_eq!(usize::from(out[1]), out.len());
        assert_eq!(&out[2..6], &9u32.to_be_bytes());
        assert_eq!(out[6], 1);
        assert_eq!(usize::from(out[7]), out.len() - 6);
        assert_eq!(&out[8..], b"shell:priv-lvl=15");
    }
}
