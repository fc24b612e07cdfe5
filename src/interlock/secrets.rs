//! Keeps secrets in the config (`AdminPass`, keys, tokens) out of diffs, plans, JSON and
//! logs, which end up in CI output and tickets. Pure.

/// What replaces a secret value.
pub const REDACTED: &str = "\"<redacted>\"";

/// Whether a key's value should be hidden: names with `pass`, `secret` or `token`, or
/// ending in `key` (`AdminPass`, `TLSKey`).
pub fn is_secret_key(key: &str) -> bool {
    let key = key
        .trim()
        .trim_matches('"')
        .trim_matches('\'')
        .to_ascii_lowercase();
    ["pass", "secret", "token"]
        .iter()
        .any(|word| key.contains(word))
        || key.ends_with("key")
}

/// One TOML line with a secret value replaced; other lines unchanged. A diff line's
/// leading `+`, `-` or space is kept.
pub fn redact_line(line: &str) -> String {
    if line.starts_with("+++") || line.starts_with("---") {
        return line.to_owned();
    }
    let (marker, body) = match line.chars().next() {
        Some(c @ ('+' | '-' | ' ')) => line.split_at(c.len_utf8()),
        _ => ("", line),
    };
    match body.split_once('=') {
        Some((key, _))
            if !key.trim_start().starts_with('#') && !key.contains('[') && is_secret_key(key) =>
        {
            format!("{marker}{key}= {REDACTED}")
        }
        _ => line.to_owned(),
    }
}

/// A whole text (TOML or diff) with secret values replaced, line by line.
pub fn redact_text(text: &str) -> String {
    let mut out: String = text.lines().map(redact_line).collect::<Vec<_>>().join("\n");
    if text.ends_with('\n') {
        out.push('\n');
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn secret_keys() {
        for key in [
            "AdminPass",
            "adminpass",
            "TLSKey",
            "ApiToken",
            "\"db.secret\"",
            "password",
        ] {
            assert!(is_secret_key(key), "{key}");
        }
        for key in ["KeepaliveTimeout", "ProxyReplicas", "SSLVerify", "Keys2"] {
            assert!(!is_secret_key(key), "{key}");
        }
    }

    #[test]
    fn lines_and_diffs_are_redacted_in_place() {
        assert_eq!(
            redact_line("\t\tAdminPass = \"s3cret\" # x"),
            "\t\tAdminPass = \"<redacted>\""
        );
        assert_eq!(
            redact_line("-    AdminPass = \"old\""),
            "-    AdminPass = \"<redacted>\""
        );
        assert_eq!(redact_line("+TLSKey=\"/k.pem\""), "+TLSKey= \"<redacted>\"");
        assert_eq!(
            redact_line("    ProxyReplicas = 2"),
            "    ProxyReplicas = 2"
        );
        assert_eq!(redact_line("# AdminPass = \"x\""), "# AdminPass = \"x\"");
        assert_eq!(redact_line("--- a/AdminPass=1"), "--- a/AdminPass=1");
        assert_eq!(
            redact_text("a = 1\nAdminPass = \"p\"\n"),
            "a = 1\nAdminPass = \"<redacted>\"\n"
        );
    }
}
