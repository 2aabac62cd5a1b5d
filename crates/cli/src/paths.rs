//! Znode path checks with the messages of Java's `PathUtils.validatePath`,
//! which zkCli prints as they are ("Path must start with / character").
//! The shell checks paths itself before a request so that its messages are
//! the Java client's, not the Rust client's.

/// Checks `path` like `PathUtils.validatePath(path)`. Positions in messages
/// count UTF-16 units, as Java's do.
pub fn validate(path: &str) -> Result<(), String> {
    if path.is_empty() {
        return Err("Path length must be > 0".into());
    }
    if !path.starts_with('/') {
        return Err("Path must start with / character".into());
    }
    if path.len() == 1 {
        return Ok(());
    }
    if path.ends_with('/') {
        return Err("Path must not end with / character".into());
    }
    let units: Vec<u16> = path.encode_utf16().collect();
    let dot = u16::from(b'.');
    let slash = u16::from(b'/');
    let mut last = slash;
    for i in 1..units.len() {
        let c = units[i];
        let ends_component = i + 1 == units.len() || units[i + 1] == slash;
        let reason = if c == 0 {
            Some("null character not allowed")
        } else if c == slash && last == slash {
            Some("empty node name specified")
        } else if c == dot && last == dot {
            (units[i - 2] == slash && ends_component).then_some("relative paths not allowed")
        } else if c == dot {
            (units[i - 1] == slash && ends_component).then_some("relative paths not allowed")
        } else if (0x01..=0x1f).contains(&c)
            || (0x7f..=0x9f).contains(&c)
            || (0xd800..=0xf8ff).contains(&c)
            || c >= 0xfff0
        {
            Some("invalid character")
        } else {
            None
        };
        if let Some(reason) = reason {
            return Err(format!(
                "Invalid path string \"{path}\" caused by {reason} @{i}"
            ));
        }
        last = c;
    }
    Ok(())
}

/// `PathUtils.validatePath(path, isSequential)`: a sequential node's path is
/// checked with a digit appended, so `/queue/` is fine for `create -s`.
pub fn validate_create(path: &str, sequential: bool) -> Result<(), String> {
    if sequential {
        validate(&format!("{path}1"))
    } else {
        validate(path)
    }
}

/// The path of a child, written as the Java helpers write it
/// (`ZKUtil`: the root's children are `/name`).
pub fn child(parent: &str, name: &str) -> String {
    if parent == "/" {
        format!("/{name}")
    } else {
        format!("{parent}/{name}")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn messages_are_javas() {
        assert_eq!(validate("/"), Ok(()));
        assert_eq!(validate("/a/b-c.d"), Ok(()));
        assert_eq!(
            validate("a").unwrap_err(),
            "Path must start with / character"
        );
        assert_eq!(validate("").unwrap_err(), "Path length must be > 0");
        assert_eq!(
            validate("/a/").unwrap_err(),
            "Path must not end with / character"
        );
        assert_eq!(
            validate("/a//b").unwrap_err(),
            "Invalid path string \"/a//b\" caused by empty node name specified @3"
        );
        assert_eq!(
            validate("/a/../b").unwrap_err(),
            "Invalid path string \"/a/../b\" caused by relative paths not allowed @4"
        );
        assert_eq!(
            validate("/a/.").unwrap_err(),
            "Invalid path string \"/a/.\" caused by relative paths not allowed @3"
        );
        assert_eq!(validate("/a/.b"), Ok(()));
        assert_eq!(
            validate("/a\u{1}").unwrap_err(),
            "Invalid path string \"/a\u{1}\" caused by invalid character @2"
        );
        // Outside the BMP Java sees surrogates, which it refuses.
        assert!(validate("/\u{1F600}").is_err());
        assert_eq!(validate("/é☃"), Ok(()));
        assert_eq!(validate_create("/q/", true), Ok(()));
        assert!(validate_create("/q/", false).is_err());
    }

    #[test]
    fn children_of_the_root_have_one_slash() {
        assert_eq!(child("/", "a"), "/a");
        assert_eq!(child("/a", "b"), "/a/b");
    }
}
