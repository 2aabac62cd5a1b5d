//! ZooKeeper's path rules (`PathUtils.validatePath`) and the small string
//! helpers every write uses: parent/name split, system paths, the sequential
//! suffix. Knows strings only, not nodes.

/// The nodes a fresh server has; `delete` refuses them with BadArguments.
pub(crate) const SYSTEM_PATHS: [&str; 4] =
    ["/", "/zookeeper", "/zookeeper/quota", "/zookeeper/config"];

/// True when `path` passes ZooKeeper's `PathUtils.validatePath`: starts with
/// `/`, is `/` alone or has no trailing `/`, no empty, `.` or `..`
/// component, and no forbidden code point.
///
/// Java checks UTF-16 code units, so every character outside the BMP (a
/// surrogate pair there) is rejected too. The server uses this for
/// setData/setACL/check and for the full path of a create; reads don't check.
pub fn validate_path(path: &str) -> bool {
    let Some(rest) = path.strip_prefix('/') else {
        return false;
    };
    if rest.is_empty() {
        return true;
    }
    if rest.ends_with('/') {
        return false;
    }
    rest.split('/').all(|component| {
        !component.is_empty()
            && component != "."
            && component != ".."
            && !component.chars().any(is_forbidden_char)
    })
}

/// PathUtils' rejected ranges: U+0000–U+001F, U+007F–U+009F,
/// U+D800–U+F8FF, U+FFF0–U+FFFF, plus anything outside the BMP.
fn is_forbidden_char(c: char) -> bool {
    let u = c as u32;
    u <= 0x1F
        || (0x7F..=0x9F).contains(&u)
        || (0xD800..=0xF8FF).contains(&u)
        || (0xFFF0..=0xFFFF).contains(&u)
        || u > 0xFFFF
}

/// Splits at the last `/` like Java's `substring(0, lastSlash)`: `/a` gives
/// parent `""` (the root alias) and name `a`. `None` when there is no `/`.
pub(crate) fn split_parent(path: &str) -> Option<(&str, &str)> {
    let slash = path.rfind('/')?;
    Some((&path[..slash], &path[slash + 1..]))
}

/// The key a path is stored under: the root has two names, `""` and `/`.
pub(crate) fn canonical(path: &str) -> &str {
    if path.is_empty() {
        "/"
    } else {
        path
    }
}

/// The path watch events use for a parent: the root alias `""` becomes `/`.
pub(crate) fn event_path(parent: &str) -> &str {
    canonical(parent)
}

/// `child` under `parent`, where the root is `/`.
pub(crate) fn join(parent: &str, child: &str) -> String {
    let mut path = String::with_capacity(parent.len() + 1 + child.len());
    if parent != "/" {
        path.push_str(parent);
    }
    path.push('/');
    path.push_str(child);
    path
}

pub(crate) fn is_system_path(path: &str) -> bool {
    SYSTEM_PATHS.contains(&path)
}

/// Java's `String.format("%010d", counter)`: ten characters, zero padded, a
/// minus sign counted in the width (`-1` → `-000000001`).
pub(crate) fn sequential_suffix(counter: i32) -> String {
    format!("{counter:010}")
}

/// Java's `String.length()`: UTF-16 code units. ZooKeeper's data-size figure
/// counts paths this way.
pub(crate) fn utf16_len(s: &str) -> usize {
    s.chars().map(char::len_utf16).sum()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn path_validation_follows_path_utils() {
        let valid = [
            "/",
            "/a",
            "/a/b",
            "/...",
            "/.a",
            "/a.",
            "/a/.b/c..",
            "/ ",
            "/zookeeper",
            "/\u{00A0}",
            "/\u{D7FF}",
            "/\u{F900}",
            "/\u{FFEF}",
            "/a-0000000001",
        ];
        for path in valid {
            assert!(validate_path(path), "{path:?} should be valid");
        }
        let invalid = [
            "",
            "a",
            "a/b",
            "/a/",
            "//",
            "//a",
            "/a//b",
            "/.",
            "/..",
            "/a/.",
            "/a/../b",
            "/./a",
            "/a\0b",
            "/\u{1}",
            "/\u{1F}",
            "/\u{7F}",
            "/\u{9F}",
            "/\u{E000}",
            "/\u{F8FF}",
            "/\u{FFF0}",
            "/\u{FFFF}",
            "/\u{1F600}",
            "/\u{10000}",
        ];
        for path in invalid {
            assert!(!validate_path(path), "{path:?} should be invalid");
        }
    }

    #[test]
    fn sequential_suffix_matches_java_percent_010d() {
        assert_eq!(sequential_suffix(0), "0000000000");
        assert_eq!(sequential_suffix(42), "0000000042");
        assert_eq!(sequential_suffix(i32::MAX), "2147483647");
        assert_eq!(sequential_suffix(-1), "-000000001");
        assert_eq!(sequential_suffix(i32::MIN), "-2147483648");
    }

    #[test]
    fn parent_of_a_top_level_node_is_the_root_alias() {
        assert_eq!(split_parent("/a"), Some(("", "a")));
        assert_eq!(split_parent("/a/b"), Some(("/a", "b")));
        assert_eq!(split_parent("/p/"), Some(("/p", "")));
        assert_eq!(split_parent("a"), None);
        assert_eq!(join("/", "a"), "/a");
        assert_eq!(join("/a", "b"), "/a/b");
    }

    #[test]
    fn utf16_length_counts_code_units() {
        assert_eq!(utf16_len("/abc"), 4);
        assert_eq!(utf16_len("/é"), 2);
        assert_eq!(utf16_len("/\u{1F600}"), 3);
    }
}
