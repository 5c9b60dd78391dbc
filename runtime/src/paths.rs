//! Request paths (TFTP file names, HTTP paths) to tree keys, refusing anything that
//! could name a file outside the served tree.
//!
//! Only files listed in the generation are ever served, so a path that escapes could
//! not be found anyway; refusing it here as well gives a clear error and a log event.

/// Why a path was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum BadPath {
    #[error("path is empty")]
    Empty,
    #[error("path is longer than {MAX_LEN} bytes")]
    TooLong,
    #[error("path contains a NUL or control character")]
    Control,
    #[error("path contains a backslash")]
    Backslash,
    #[error("path contains a `..` component")]
    Parent,
    #[error("path is not valid percent-encoded UTF-8")]
    Encoding,
}

/// Longer than any name a build writes; bounds the work a hostile name can cause.
pub const MAX_LEN: usize = 512;

/// Clean a TFTP file name or an already percent-decoded HTTP path into a tree key:
/// leading slashes and `.` components dropped; `..`, backslashes and control
/// characters refused (they are never part of a name the compiler writes).
pub fn clean(raw: &str) -> Result<String, BadPath> {
    if raw.len() > MAX_LEN {
        return Err(BadPath::TooLong);
    }
    if raw.chars().any(|c| c.is_control()) {
        return Err(BadPath::Control);
    }
    if raw.contains('\\') {
        return Err(BadPath::Backslash);
    }
    // Built in place (one allocation: every HTTP request comes through here).
    let mut key = String::with_capacity(raw.len());
    for c in raw.split('/') {
        match c {
            "" | "." => {}
            ".." => return Err(BadPath::Parent),
            other => {
                if !key.is_empty() {
                    key.push('/');
                }
                key.push_str(other);
            }
        }
    }
    if key.is_empty() {
        return Err(BadPath::Empty);
    }
    Ok(key)
}

/// Decode an HTTP request path once, then clean it. A `%2e%2e` that decodes to `..` is
/// refused like a literal one; a double-encoded `%252e` decodes to the literal `%2e`,
/// which is not a name in the tree.
pub fn clean_http(path: &str) -> Result<String, BadPath> {
    let decoded = percent_encoding::percent_decode_str(path).decode_utf8().map_err(|_| BadPath::Encoding)?;
    clean(&decoded)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn accepts_tree_names() {
        assert_eq!(clean("ztp.json").unwrap(), "ztp.json");
        assert_eq!(clean("/devices/leaf1.sh").unwrap(), "devices/leaf1.sh");
        assert_eq!(clean("./custom//x.sh").unwrap(), "custom/x.sh");
        assert_eq!(clean_http("/images/a%20b.bin").unwrap(), "images/a b.bin");
    }

    #[test]
    fn refuses_escapes() {
        let cases = [
            ("../etc/passwd", BadPath::Parent),
            ("/devices/../../etc/passwd", BadPath::Parent),
            ("..", BadPath::Parent),
            ("a\\..\\b", BadPath::Backslash),
            ("a\0b", BadPath::Control),
            ("", BadPath::Empty),
            ("/", BadPath::Empty),
        ];
        for (p, want) in cases {
            assert_eq!(clean(p), Err(want), "{p:?}");
        }
        assert_eq!(clean(&"a".repeat(MAX_LEN + 1)), Err(BadPath::TooLong));
        assert_eq!(clean_http("/%2e%2e/etc/passwd"), Err(BadPath::Parent));
        assert_eq!(clean_http("/%2E%2E%2fetc"), Err(BadPath::Parent));
        assert_eq!(clean_http("/a%00b"), Err(BadPath::Control));
        assert_eq!(clean_http("/%ff"), Err(BadPath::Encoding));
        // Double encoding decodes once, to a literal name that is not in any tree.
        assert_eq!(clean_http("/%252e%252e/x").unwrap(), "%2e%2e/x");
    }
}
