//! A real OpenLDAP `slapd` (Debian slapd + ldap-utils) for the directory
//! tests: its own temporary database, loopback ports, a test CA made with
//! openssl for StartTLS and ldaps, the memberof overlay, and the LDIF of
//! the issue (alice, bob, dave, erin, and a name made of filter syntax).
//! Started unprivileged (as `nobody` when the tests run as root); killed on
//! drop.

use std::net::{SocketAddr, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::Instant;

use crate::harness::WAIT;

pub const BASE: &str = "dc=example,dc=org";
pub const ADMIN_DN: &str = "cn=admin,dc=example,dc=org";
pub const ADMIN_PW: &str = "slapd-admin-secret";
pub const SERVICE_DN: &str = "cn=portcullis,ou=services,dc=example,dc=org";
pub const SERVICE_PW: &str = "service-secret-0123456789";
/// The entry whose uid is filter syntax.
pub const INJECTOR: &str = "*)(uid=*";

pub const PASSWORDS: [(&str, &str); 5] = [
    ("alice", "alice-dir-1"),
    ("bob", "bob-dir-2"),
    ("dave", "dave-dir-4"),
    ("erin", "erin-dir-5"),
    (INJECTOR, "injector-dir-6"),
];

pub fn password(user: &str) -> &'static str {
    PASSWORDS.iter().find(|(u, _)| *u == user).unwrap().1
}

pub struct Slapd {
    child: Option<Child>,
    pub dir: tempfile::TempDir,
    /// `ldap://127.0.0.1:PORT` (StartTLS offered).
    pub ldap: SocketAddr,
    /// `ldaps://127.0.0.1:PORT`.
    pub ldaps: SocketAddr,
    /// The CA that signed slapd's certificate.
    pub ca: PathBuf,
    /// A CA nobody used: a directory trusting only it must refuse slapd.
    pub other_ca: PathBuf,
}

fn free_port() -> SocketAddr {
    let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    l.local_addr().unwrap()
}

fn sh(cmd: &mut Command) {
    let out = cmd.output().unwrap_or_else(|e| panic!("{cmd:?}: {e}"));
    assert!(
        out.status.success(),
        "{cmd:?}: {}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}

/// A CA and, when `server` is given, a certificate it signs for
/// 127.0.0.1 / localhost.
pub(crate) fn make_ca(dir: &Path, name: &str, server: bool) -> PathBuf {
    let ca_key = dir.join(format!("{name}.key"));
    let ca = dir.join(format!("{name}.pem"));
    sh(Command::new("openssl")
        .args([
            "req",
            "-x509",
            "-newkey",
            "ec",
            "-pkeyopt",
            "ec_paramgen_curve:P-256",
        ])
        .args(["-nodes", "-days", "2", "-subj"])
        .arg(format!("/CN=portcullis test {name}"))
        .arg("-keyout")
        .arg(&ca_key)
        .arg("-out")
        .arg(&ca)
        .args(["-addext", "basicConstraints=critical,CA:TRUE"])
        .args(["-addext", "keyUsage=critical,keyCertSign,cRLSign"]));
    if server {
        let ext = dir.join("server.ext");
        std::fs::write(
            &ext,
            "subjectAltName=DNS:localhost,IP:127.0.0.1\nextendedKeyUsage=serverAuth\nbasicConstraints=CA:FALSE\n",
        )
        .unwrap();
        sh(Command::new("openssl")
            .args([
                "req",
                "-newkey",
                "ec",
                "-pkeyopt",
                "ec_paramgen_curve:P-256",
            ])
            .args(["-nodes", "-subj", "/CN=localhost", "-keyout"])
            .arg(dir.join("server.key"))
            .arg("-out")
            .arg(dir.join("server.csr")));
        sh(Command::new("openssl")
            .args(["x509", "-req", "-days", "2", "-in"])
            .arg(dir.join("server.csr"))
            .arg("-CA")
            .arg(&ca)
            .arg("-CAkey")
            .arg(&ca_key)
            .arg("-CAcreateserial")
            .arg("-extfile")
            .arg(&ext)
            .arg("-out")
            .arg(dir.join("server.pem")));
    }
    ca
}

fn ldif() -> String {
    let mut s = format!(
        "dn: {BASE}\nobjectClass: dcObject\nobjectClass: organization\ndc: example\no: Example\n\n\
         dn: ou=people,{BASE}\nobjectClass: organizationalUnit\nou: people\n\n\
         dn: ou=groups,{BASE}\nobjectClass: organizationalUnit\nou: groups\n\n\
         dn: ou=services,{BASE}\nobjectClass: organizationalUnit\nou: services\n\n\
         dn: {SERVICE_DN}\nobjectClass: applicationProcess\nobjectClass: simpleSecurityObject\ncn: portcullis\nuserPassword: {SERVICE_PW}\n\n"
    );
    for (i, (uid, pw)) in PASSWORDS.iter().enumerate() {
        // The injector's RDN is its cn, so its DN needs no escaping.
        let cn = if *uid == INJECTOR { "injector" } else { uid };
        let rdn = if *uid == INJECTOR {
            "cn=injector".to_string()
        } else {
            format!("uid={uid}")
        };
        s += &format!(
            "dn: {rdn},ou=people,{BASE}\nobjectClass: inetOrgPerson\nuid: {uid}\ncn: {cn}\nsn: {cn}\n\
             mail: {cn}@example.org\nuserPassword: {pw}\nemployeeNumber: {i}\n\n"
        );
    }
    for (group, members) in [
        ("netadmins", ["alice", "dave"]),
        ("helpdesk", ["bob", "dave"]),
    ] {
        s += &format!("dn: cn={group},ou=groups,{BASE}\nobjectClass: groupOfNames\ncn: {group}\n");
        for m in members {
            s += &format!("member: uid={m},ou=people,{BASE}\n");
        }
        s += "\n";
    }
    s
}

impl Slapd {
    pub fn start() -> Self {
        let dir = tempfile::tempdir().unwrap();
        let d = dir.path();
        let ca = make_ca(d, "ca", true);
        let other_ca = make_ca(d, "other-ca", false);
        std::fs::create_dir(d.join("db")).unwrap();
        let conf = format!(
            r#"include /etc/ldap/schema/core.schema
include /etc/ldap/schema/cosine.schema
include /etc/ldap/schema/inetorgperson.schema
include /etc/ldap/schema/nis.schema
modulepath /usr/lib/ldap
moduleload back_mdb
moduleload memberof
pidfile {dir}/slapd.pid
referral ldap://ldap.elsewhere.example/
TLSCACertificateFile {dir}/ca.pem
TLSCertificateFile {dir}/server.pem
TLSCertificateKeyFile {dir}/server.key
database mdb
maxsize 16777216
suffix "{BASE}"
rootdn "{ADMIN_DN}"
rootpw {ADMIN_PW}
directory {dir}/db
overlay memberof
memberof-group-oc groupOfNames
memberof-member-ad member
memberof-memberof-ad memberOf
memberof-refint true
access to attrs=userPassword by anonymous auth by self write by * none
access to * by users read by * none
"#,
            dir = d.display()
        );
        std::fs::write(d.join("slapd.conf"), conf).unwrap();
        let (ldap, ldaps) = (free_port(), free_port());
        let mut cmd = Command::new("/usr/sbin/slapd");
        cmd.arg("-f")
            .arg(d.join("slapd.conf"))
            .arg("-h")
            .arg(format!("ldap://{ldap}/ ldaps://{ldaps}/"))
            // -d keeps it in the foreground, where drop can kill it.
            .args(["-d", "0"]);
        // SAFETY: geteuid has no preconditions.
        if unsafe { libc::geteuid() } == 0 {
            // Root runs the tests in CI containers: slapd drops to nobody,
            // so it needs to own its files.
            for e in walk(d) {
                let _ = std::os::unix::fs::chown(&e, Some(65534), Some(65534));
            }
            cmd.args(["-u", "nobody", "-g", "nogroup"]);
        }
        let child = cmd
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .expect("slapd (Debian slapd; scripts/install-test-deps.sh)");
        let mut s = Self {
            child: Some(child),
            dir,
            ldap,
            ldaps,
            ca,
            other_ca,
        };
        s.wait_up();
        let data = s.dir.path().join("data.ldif");
        std::fs::write(&data, ldif()).unwrap();
        s.ldap_tool("ldapadd", &data);
        s
    }

    fn wait_up(&mut self) {
        let deadline = Instant::now() + WAIT;
        while TcpStream::connect(self.ldap).is_err() || TcpStream::connect(self.ldaps).is_err() {
            if let Some(status) = self.child.as_mut().unwrap().try_wait().unwrap() {
                let mut err = String::new();
                use std::io::Read;
                let _ = self
                    .child
                    .as_mut()
                    .unwrap()
                    .stderr
                    .take()
                    .unwrap()
                    .read_to_string(&mut err);
                panic!("slapd exited ({status}): {err}");
            }
            assert!(Instant::now() < deadline, "slapd did not start listening");
            std::thread::yield_now();
        }
    }

    /// Runs ldapadd / ldapmodify as the admin over ldap://.
    pub fn ldap_tool(&self, tool: &str, ldif: &Path) {
        sh(Command::new(tool)
            .args(["-x", "-H"])
            .arg(format!("ldap://{}", self.ldap))
            .args(["-D", ADMIN_DN, "-w", ADMIN_PW, "-f"])
            .arg(ldif));
    }

    /// Applies an LDIF change with ldapmodify.
    pub fn modify(&self, change: &str) {
        let f = self.dir.path().join("change.ldif");
        std::fs::write(&f, change).unwrap();
        self.ldap_tool("ldapmodify", &f);
    }

    /// Stops slapd (an outage).
    pub fn stop(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }

    /// A `[[directory]]` block for this slapd: search-then-bind with the
    /// service account, memberOf groups, StartTLS with the test CA.
    pub fn directory_block(&self, extra: &str) -> String {
        format!(
            r#"
[[directory]]
name = "corp"
urls = ["ldap://{ldap}"]
ca_file = "{ca}"
bind_dn = "{SERVICE_DN}"
bind_password = "{SERVICE_PW}"
user_base = "ou=people,{BASE}"
user_filter = "(&(objectClass=inetOrgPerson)(uid={{user}}))"
{extra}
"#,
            ldap = self.ldap,
            ca = self.ca.display(),
        )
    }
}

fn walk(d: &Path) -> Vec<PathBuf> {
    let mut out = vec![d.to_path_buf()];
    for e in std::fs::read_dir(d).unwrap().flatten() {
        if e.path().is_dir() {
            out.extend(walk(&e.path()));
        } else {
            out.push(e.path());
        }
    }
    out
}

impl Drop for Slapd {
    fn drop(&mut self) {
        self.stop();
    }
}
