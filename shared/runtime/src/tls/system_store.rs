//! Reads the system's certificate store: the same places, in the same order, with the same
//! result as `rustls-native-certs` (a test holds the two equal on the machine it runs on).
//!
//! Why not that crate itself: it decodes PEM with rustls-pki-types' constant-time Base64,
//! which is made for private keys and costs ~3 ms for a 220 KB bundle of 145 roots (Amazon
//! Linux's and Debian's), most of a function's cold start; the `pem` crate (plain Base64)
//! reads the same bundle in ~0.4 ms. Root certificates are public, so nothing is lost.
//! Where to look still comes from `openssl-probe`, as it does for that crate.

use std::collections::HashSet;
use std::ffi::OsString;
use std::path::{Path, PathBuf};
use std::{env, fs, io};

/// Where the store is: `SSL_CERT_FILE` / `SSL_CERT_DIR` when either is set, else the
/// platform's usual places as OpenSSL finds them.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Locations {
    pub file: Option<PathBuf>,
    pub dirs: Vec<PathBuf>,
}

impl Locations {
    pub fn from_env() -> Locations {
        Locations::from_vars(env::var_os("SSL_CERT_FILE"), env::var_os("SSL_CERT_DIR"))
            .unwrap_or_else(|| {
                let probed = openssl_probe::probe();
                Locations {
                    file: probed.cert_file,
                    dirs: probed.cert_dir,
                }
            })
    }

    /// The locations the two variables name, or `None` when neither names any (then the
    /// platform's places are used).
    pub fn from_vars(file: Option<OsString>, dirs: Option<OsString>) -> Option<Locations> {
        let dirs: Vec<PathBuf> = dirs
            .map(|dirs| {
                env::split_paths(&dirs)
                    .filter(|dir| !dir.as_os_str().is_empty())
                    .collect()
            })
            .unwrap_or_default();
        let file = file.map(PathBuf::from);
        (file.is_some() || !dirs.is_empty()).then_some(Locations { file, dirs })
    }
}

/// The certificates found (DER, sorted, each once) and what could not be read.
#[derive(Debug, Default)]
pub struct Found {
    pub certificates: Vec<Vec<u8>>,
    pub errors: Vec<String>,
}

/// Every `CERTIFICATE` of the file, then of each regular file in the directories (a file
/// reached twice, through a link or as the bundle, is read once).
pub fn load(locations: &Locations) -> Found {
    let mut found = Found::default();
    let mut seen = SeenFiles::default();
    if let Some(file) = &locations.file {
        if let Ok(metadata) = fs::metadata(file) {
            seen.first_visit(&metadata);
        }
        read_file(file, &mut found);
    }
    for dir in &locations.dirs {
        read_dir(dir, &mut found, &mut seen);
    }
    found.certificates.sort_unstable();
    found.certificates.dedup();
    found
}

fn read_dir(dir: &Path, found: &mut Found, seen: &mut SeenFiles) {
    let entries = match fs::read_dir(dir) {
        Ok(entries) => entries,
        Err(e) => return found.errors.push(format!("{}: {e}", dir.display())),
    };
    for entry in entries {
        let path = match entry {
            Ok(entry) => entry.path(),
            Err(e) => {
                found.errors.push(format!("{}: {e}", dir.display()));
                continue;
            }
        };
        match fs::metadata(&path) {
            Ok(metadata) if metadata.is_file() && seen.first_visit(&metadata) => {
                read_file(&path, found)
            }
            Ok(_) => {}
            // A dangling link, as the stores have after a package removal.
            Err(e) if e.kind() == io::ErrorKind::NotFound => {}
            Err(e) => found.errors.push(format!("{}: {e}", path.display())),
        }
    }
}

fn read_file(path: &Path, found: &mut Found) {
    match fs::read(path) {
        Ok(text) => {
            let errors = certificates_in(&text, &mut found.certificates);
            found.errors.extend(
                errors
                    .into_iter()
                    .map(|e| format!("{}: {e}", path.display())),
            );
        }
        Err(e) => found.errors.push(format!("{}: {e}", path.display())),
    }
}

const BEGIN: &[u8] = b"-----BEGIN ";
const END: &[u8] = b"-----END ";

/// Appends the DER of each `CERTIFICATE` block of `text`; other blocks (keys, `TRUSTED
/// CERTIFICATE`) and text between blocks (a bundle's comments) are skipped. A broken block
/// is an error of its own: the blocks around it are still read.
pub fn certificates_in(text: &[u8], certificates: &mut Vec<Vec<u8>>) -> Vec<pem::PemError> {
    let mut errors = Vec::new();
    // `pem::parse_many` fails a whole file for one bad block, so the text is cut after each
    // END line and each piece parsed alone.
    let mut rest = text;
    while let Some(block) = next_block(&mut rest) {
        if find(block, BEGIN).is_none() {
            continue; // text after the last block
        }
        match pem::parse(block) {
            Ok(found) if found.tag() == "CERTIFICATE" => certificates.push(found.into_contents()),
            Ok(_) => {}
            Err(e) => errors.push(e),
        }
    }
    errors
}

/// The text up to the end of the next END line (or all that is left), advancing `rest`.
fn next_block<'a>(rest: &mut &'a [u8]) -> Option<&'a [u8]> {
    if rest.is_empty() {
        return None;
    }
    let text = *rest;
    let cut = find(text, END)
        .map(|at| {
            text[at..]
                .iter()
                .position(|&byte| byte == b'\n')
                .map_or(text.len(), |newline| at + newline + 1)
        })
        .unwrap_or(text.len());
    *rest = &text[cut..];
    Some(&text[..cut])
}

fn find(text: &[u8], what: &[u8]) -> Option<usize> {
    text.windows(what.len()).position(|window| window == what)
}

#[derive(Default)]
struct SeenFiles {
    ids: HashSet<(u64, u64)>,
}

impl SeenFiles {
    fn first_visit(&mut self, metadata: &fs::Metadata) -> bool {
        use std::os::unix::fs::MetadataExt;
        self.ids.insert((metadata.dev(), metadata.ino()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use base64::Engine as _;
    use base64::engine::general_purpose::STANDARD;

    fn block(label: &str, der: &[u8]) -> String {
        let body = STANDARD.encode(der);
        let lines: Vec<&str> = body
            .as_bytes()
            .chunks(64)
            .map(|line| std::str::from_utf8(line).unwrap())
            .collect();
        format!(
            "-----BEGIN {label}-----\n{}\n-----END {label}-----\n",
            lines.join("\n")
        )
    }

    #[test]
    fn reads_the_certificates_of_a_bundle_with_comments_and_other_blocks() {
        let text = format!(
            "# Issuer: CN=First\n{}\n# Issuer: CN=Second\r\n{}{}{}",
            block("CERTIFICATE", b"first"),
            block("PRIVATE KEY", b"not a root"),
            block("TRUSTED CERTIFICATE", b"openssl's own form"),
            block("CERTIFICATE", b"second").replace('\n', "\r\n"),
        );
        let mut found = Vec::new();
        let errors = certificates_in(text.as_bytes(), &mut found);
        assert!(errors.is_empty(), "{errors:?}");
        assert_eq!(found, vec![b"first".to_vec(), b"second".to_vec()]);
    }

    #[test]
    fn a_broken_block_is_an_error_of_its_own() {
        let text = format!(
            "{}-----BEGIN CERTIFICATE-----\n!!not base64!!\n-----END CERTIFICATE-----\n{}\
             -----BEGIN CERTIFICATE-----\nYWJj\n-----END PRIVATE KEY-----\n{}",
            block("CERTIFICATE", b"before"),
            block("CERTIFICATE", b"after"),
            "-----BEGIN CERTIFICATE-----\nYWJj\n",
        );
        let mut found = Vec::new();
        let errors = certificates_in(text.as_bytes(), &mut found);
        assert_eq!(found, vec![b"before".to_vec(), b"after".to_vec()]);
        assert_eq!(errors.len(), 3, "{errors:?}");
    }

    #[test]
    fn nothing_but_text_is_no_certificate_and_no_error() {
        let mut found = Vec::new();
        assert!(certificates_in(b"# an empty bundle\n", &mut found).is_empty());
        assert!(certificates_in(b"", &mut found).is_empty());
        assert!(found.is_empty());
    }

    #[test]
    fn the_variables_win_over_the_platform_when_either_is_set() {
        assert_eq!(Locations::from_vars(None, None), None);
        assert_eq!(Locations::from_vars(None, Some("".into())), None);
        assert_eq!(
            Locations::from_vars(Some("/roots.pem".into()), None),
            Some(Locations {
                file: Some("/roots.pem".into()),
                dirs: vec![],
            })
        );
        assert_eq!(
            Locations::from_vars(None, Some("/a::/b".into())),
            Some(Locations {
                file: None,
                dirs: vec!["/a".into(), "/b".into()],
            })
        );
    }

    #[test]
    fn reads_a_file_once_however_it_is_reached_and_skips_dangling_links() {
        let dir = tempfile::tempdir().unwrap();
        let bundle = dir.path().join("bundle.pem");
        fs::write(
            &bundle,
            block("CERTIFICATE", b"one") + &block("CERTIFICATE", b"two"),
        )
        .unwrap();
        fs::write(dir.path().join("extra.pem"), block("CERTIFICATE", b"three")).unwrap();
        std::os::unix::fs::symlink(&bundle, dir.path().join("1a2b3c4d.0")).unwrap();
        std::os::unix::fs::symlink(dir.path().join("gone.pem"), dir.path().join("5e6f.0")).unwrap();
        fs::create_dir(dir.path().join("nested")).unwrap();
        let found = load(&Locations {
            file: Some(bundle),
            dirs: vec![dir.path().to_owned(), dir.path().join("missing")],
        });
        assert_eq!(
            found.certificates,
            vec![b"one".to_vec(), b"three".to_vec(), b"two".to_vec()]
        );
        assert_eq!(
            found.errors.len(),
            1,
            "the missing folder: {:?}",
            found.errors
        );
    }

    fn sorted(certificates: Vec<rustls::pki_types::CertificateDer<'static>>) -> Vec<Vec<u8>> {
        let mut certificates: Vec<Vec<u8>> =
            certificates.into_iter().map(|der| der.to_vec()).collect();
        certificates.sort_unstable();
        certificates
    }

    #[test]
    fn finds_what_rustls_native_certs_finds_on_this_machine() {
        let reference = rustls_native_certs::load_native_certs();
        let ours = load(&Locations::from_env());
        assert!(!ours.certificates.is_empty());
        assert_eq!(
            ours.errors.len(),
            reference.errors.len(),
            "{:?}",
            ours.errors
        );
        assert_eq!(ours.certificates, sorted(reference.certs));
        // The platform's file and folder each alone, as SSL_CERT_FILE or SSL_CERT_DIR.
        let probed = openssl_probe::probe();
        for (file, dir) in [
            (probed.cert_file.as_deref(), None),
            (None, probed.cert_dir.first()),
        ] {
            let reference =
                rustls_native_certs::load_certs_from_paths(file, dir.map(PathBuf::as_path));
            let ours = load(&Locations {
                file: file.map(Path::to_owned),
                dirs: dir.into_iter().cloned().collect(),
            });
            assert_eq!(
                ours.certificates,
                sorted(reference.certs),
                "{file:?} {dir:?}"
            );
        }
    }
}
