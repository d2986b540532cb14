//! The secrets guard: keeps credentials out of records and logs.
//!
//! Policy: **redact**. An attribute whose key names a secret keeps its key
//! (so you can see that something tried to record one) and its value is
//! replaced by [`REDACTED`]. Free text (error messages) has anything that
//! looks like a credential (`sk-…`, `Bearer …`) replaced the same way.

/// What a secret value becomes.
pub const REDACTED: &str = "[REDACTED]";

/// Key fragments that name a secret, compared after lower-casing and removing
/// `-` and `_`. `token` alone is a secret, but the counters `input_tokens`,
/// `output_tokens` … are not, so plural `tokens` is checked first.
const SECRET_FRAGMENTS: &[&str] = &[
    "apikey",
    "password",
    "passwd",
    "passphrase",
    "secret",
    "token",
    "authorization",
    "auth",
    "cookie",
    "credential",
    "privatekey",
    "signature",
    "sessionid",
];

/// True when `key` names a secret (`api_key`, `X-Api-Key`, `db_password`,
/// `Authorization`, `access_token` …).
///
/// ```
/// use costtrace_core::secrets::is_secret_key;
/// assert!(is_secret_key("OPENAI_API_KEY"));
/// assert!(is_secret_key("refresh-token"));
/// assert!(!is_secret_key("input_tokens"));
/// assert!(!is_secret_key("tenant_id"));
/// ```
pub fn is_secret_key(key: &str) -> bool {
    // Most keys are short ASCII: normalized on the stack (this runs for every
    // attribute of every record).
    let mut buf = [0u8; 64];
    let mut n = 0;
    if key.len() <= buf.len() && key.is_ascii() {
        for &b in key.as_bytes() {
            if !matches!(b, b'_' | b'-' | b'.' | b' ') {
                buf[n] = b.to_ascii_lowercase();
                n += 1;
            }
        }
        return is_secret_normalized(&buf[..n]);
    }
    let norm: String = key
        .chars()
        .filter(|c| *c != '_' && *c != '-' && *c != '.' && *c != ' ')
        .flat_map(char::to_lowercase)
        .collect();
    is_secret_normalized(norm.as_bytes())
}

fn contains(haystack: &[u8], needle: &[u8]) -> bool {
    haystack.windows(needle.len()).any(|w| w == needle)
}

/// [`is_secret_key`] on a key lower-cased without `-`, `_`, `.` and spaces.
fn is_secret_normalized(norm: &[u8]) -> bool {
    // Token *counts* (`input_tokens`, `max_tokens`, `token_count` …) are not
    // secrets, but `access_tokens`, `refresh_tokens`, `id_tokens` … are: the
    // suffix is dropped and the rest of the key is judged on its own.
    let body = match norm
        .strip_suffix(b"tokens")
        .or_else(|| norm.strip_suffix(b"tokencount"))
    {
        Some(prefix) => {
            if prefix == b"id" || TOKEN_KINDS.iter().any(|k| prefix.ends_with(k.as_bytes())) {
                return true;
            }
            prefix
        }
        None => norm,
    };
    SECRET_FRAGMENTS.iter().any(|f| {
        if *f == "auth" {
            contains_auth(body)
        } else {
            contains(body, f.as_bytes())
        }
    })
}

/// Kinds of credential tokens: `<kind>_tokens` is a secret, not a count.
const TOKEN_KINDS: &[&str] = &[
    "access", "refresh", "bearer", "session", "csrf", "xsrf", "auth", "api", "jwt", "oidc",
    "github", "slack", "personal", "device",
];

/// `auth` anywhere except as the start of `author` (`author`, `coauthor`,
/// `authority` are not credentials; `authorization` is its own fragment).
fn contains_auth(h: &[u8]) -> bool {
    (0..h.len()).any(|i| h[i..].starts_with(b"auth") && !h[i..].starts_with(b"author"))
}

/// Well-known credential prefixes: OpenAI/Anthropic keys, GitHub and Slack
/// tokens, AWS access keys, and HTTP bearer credentials.
const SECRET_PREFIXES: &[&str] = &[
    "sk-",
    "sk_live_",
    "sk_test_",
    "rk_live_",
    "ghp_",
    "gho_",
    "ghs_",
    "github_pat_",
    "xoxb-",
    "xoxp-",
    "AKIA",
    "AIza",
];

/// True when a value looks like a credential regardless of its key.
pub fn looks_like_secret(value: &str) -> bool {
    let v = value.trim();
    let starts_with_ignore_case = |p: &str| {
        v.as_bytes()
            .get(..p.len())
            .is_some_and(|s| s.eq_ignore_ascii_case(p.as_bytes()))
    };
    if starts_with_ignore_case("bearer ") || starts_with_ignore_case("basic ") {
        return true;
    }
    SECRET_PREFIXES
        .iter()
        .any(|p| v.starts_with(p) && v.len() >= p.len() + 12 && !v.contains(' '))
}

/// The value to store for `key`: the value itself, or [`REDACTED`].
pub fn guard_attr<'a>(key: &str, value: &'a str) -> &'a str {
    if is_secret_key(key) || looks_like_secret(value) {
        REDACTED
    } else {
        value
    }
}

/// Replaces credential-looking words in free text (error messages).
///
/// ```
/// use costtrace_core::secrets::redact_text;
/// assert_eq!(
///     redact_text("401: invalid key sk-abcdefghijklmnop1234"),
///     "401: invalid key [REDACTED]"
/// );
/// ```
pub fn redact_text(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    let mut redact_next = false;
    for (i, word) in text.split(' ').enumerate() {
        if i > 0 {
            out.push(' ');
        }
        let bare = word.trim_matches(|c: char| matches!(c, '"' | '\'' | ',' | ';' | '(' | ')'));
        if redact_next && !bare.is_empty() {
            out.push_str(REDACTED);
            redact_next = false;
            continue;
        }
        let lower = bare.to_ascii_lowercase();
        if lower == "bearer" || lower == "basic" {
            redact_next = true;
            out.push_str(word);
        } else if looks_like_secret(bare) {
            out.push_str(&word.replace(bare, REDACTED));
        } else {
            out.push_str(word);
        }
    }
    out
}

/// A sink URL or connection string fit for logs, errors and `Debug`: the
/// password of `scheme://user:secret@host` becomes `***`, and so does the
/// value of every parameter whose name suggests a secret (`password=`,
/// `sslpassword=`, `token=`, `key=` …), in a URL's query string
/// (`?password=s3cret`) as in a key=value connection string
/// (`host=db password='s3 cr3t'`).
pub fn redact_url(url: &str) -> String {
    let Some((scheme, rest)) = url.split_once("://") else {
        return redact_params(url, |c| c.is_whitespace());
    };
    // The user info ends at the last '@' (a password may hold an '@').
    let (userinfo, tail) = match rest.rfind('@') {
        Some(at) => (Some(&rest[..at]), &rest[at + 1..]),
        None => (None, rest),
    };
    let mut out = format!("{scheme}://");
    if let Some(userinfo) = userinfo {
        match userinfo.split_once(':') {
            // Whatever is not plainly a user name is hidden too.
            Some((user, _)) if !user.contains(['/', '?', '#', '&', '=']) => {
                out.push_str(user);
                out.push_str(":***@");
            }
            None if !userinfo.contains(['/', '?', '#', '&', '=']) => {
                out.push_str(userinfo);
                out.push('@');
            }
            _ => out.push_str("***@"),
        }
    }
    match tail.split_once('?') {
        Some((path, query)) => {
            out.push_str(path);
            out.push('?');
            out.push_str(&redact_params(query, |c| c == '&' || c == '#'));
        }
        None => out.push_str(tail),
    }
    out
}

/// Whether a parameter with this name holds a secret.
fn is_secret_param(name: &str) -> bool {
    let n = name.to_ascii_lowercase();
    [
        "pass",
        "pwd",
        "secret",
        "token",
        "key",
        "auth",
        "credential",
    ]
    .iter()
    .any(|w| n.contains(w))
}

/// Replaces the values of secret `name=value` parameters in `s` with `***`.
/// Parameters are separated by characters for which `sep` is true; a value
/// may be single-quoted (libpq style, `\'` escapes a quote) and the `=` may
/// have spaces around it.
fn redact_params(s: &str, sep: impl Fn(char) -> bool) -> String {
    let chars: Vec<char> = s.chars().collect();
    let mut out = String::with_capacity(s.len());
    let mut i = 0;
    while i < chars.len() {
        if sep(chars[i]) {
            out.push(chars[i]);
            i += 1;
            continue;
        }
        // A parameter name, then optional spaces, '=', optional spaces.
        let name_start = i;
        while i < chars.len() && !sep(chars[i]) && chars[i] != '=' && !chars[i].is_whitespace() {
            i += 1;
        }
        let name: String = chars[name_start..i].iter().collect();
        let mut j = i;
        while j < chars.len() && chars[j].is_whitespace() && chars[j] != '=' {
            j += 1;
        }
        if j >= chars.len() || chars[j] != '=' {
            // Not a parameter: copy what was read.
            out.extend(&chars[name_start..j]);
            if j == name_start {
                out.push(chars[j]);
                j += 1;
            }
            i = j;
            continue;
        }
        j += 1;
        while j < chars.len() && chars[j].is_whitespace() {
            j += 1;
        }
        // The value: quoted, or up to the next separator.
        let value_start = j;
        if j < chars.len() && chars[j] == '\'' {
            j += 1;
            while j < chars.len() && chars[j] != '\'' {
                if chars[j] == '\\' {
                    j += 1;
                }
                j += 1;
            }
            j = (j + 1).min(chars.len());
        } else {
            while j < chars.len() && !sep(chars[j]) {
                j += 1;
            }
        }
        out.push_str(&name);
        if is_secret_param(&name) {
            out.push_str("=***");
        } else {
            out.push('=');
            out.extend(&chars[value_start..j]);
        }
        i = j;
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The allocating definition the fast paths must agree with.
    fn is_secret_key_reference(key: &str) -> bool {
        let norm: String = key
            .chars()
            .filter(|c| *c != '_' && *c != '-' && *c != '.' && *c != ' ')
            .flat_map(char::to_lowercase)
            .collect();
        let body = match norm
            .strip_suffix("tokens")
            .or_else(|| norm.strip_suffix("tokencount"))
        {
            Some(prefix) => {
                if prefix == "id" || TOKEN_KINDS.iter().any(|k| prefix.ends_with(k)) {
                    return true;
                }
                prefix
            }
            None => norm.as_str(),
        };
        let auth = body
            .match_indices("auth")
            .any(|(i, _)| !body[i..].starts_with("author"));
        SECRET_FRAGMENTS
            .iter()
            .any(|f| if *f == "auth" { auth } else { body.contains(f) })
    }

    #[test]
    fn fast_paths_agree_with_the_definition() {
        let long = format!("{}_api_key", "x".repeat(70));
        let long_plain = "y".repeat(80);
        for k in [
            "",
            "a",
            "API.KEY",
            "Api Key",
            "TOKENS",
            "token_count",
            "Author_ization",
            "AUTHOR",
            "coAuthor_token",
            "Pass-Word",
            "ÄPI_KEY",
            "İtoken",
            "clé_secrète",
            long.as_str(),
            long_plain.as_str(),
            "tenant_id",
            "x-amz-signature",
            "author_api_key",
            "access_tokens",
            "oauth_authority_secret",
            "Auth_Tokens",
        ] {
            assert_eq!(is_secret_key(k), is_secret_key_reference(k), "{k}");
        }
        assert!(looks_like_secret("BEARER abc"));
        assert!(looks_like_secret("  Basic dXNlcjpwYXNz"));
        assert!(!looks_like_secret("bearer"));
        assert!(!looks_like_secret("bäsic x"));
    }

    #[test]
    fn secret_keys_are_recognised() {
        for k in [
            "api_key",
            "apiKey",
            "x-api-key",
            "password",
            "DB_PASSWORD",
            "secret",
            "client_secret",
            "token",
            "access_token",
            "Authorization",
            "auth",
            "cookie",
            "private_key",
            "aws_credentials",
            "session_id",
            // A key that contains `author` or ends in `tokens` can still
            // name a secret.
            "author_api_key",
            "coauthor_token",
            "oauth_authority_secret",
            "access_tokens",
            "refresh_tokens",
            "auth_tokens",
            "id_tokens",
            "api-tokens",
            "oauth",
        ] {
            assert!(is_secret_key(k), "{k} should be secret");
        }
        for k in [
            "tenant_id",
            "user_id",
            "job_id",
            "input_tokens",
            "max_tokens",
            "completion_tokens",
            "cache_creation_input_tokens",
            "reasoning_tokens",
            "token_count",
            "author",
            "authority",
            "coauthor",
            "model",
            "batch_id",
            "doc_id",
        ] {
            assert!(!is_secret_key(k), "{k} should not be secret");
        }
    }

    #[test]
    fn secret_values_are_recognised() {
        assert!(looks_like_secret("sk-proj-abcdefghijklmnopqrstuvwxyz"));
        assert!(looks_like_secret("Bearer abc.def.ghi"));
        assert!(!looks_like_secret("sk-short"));
        assert!(!looks_like_secret("acme-corp"));
        assert_eq!(
            guard_attr("note", "sk-ant-api03-aaaaaaaaaaaaaaaa"),
            REDACTED
        );
        assert_eq!(guard_attr("tenant_id", "acme"), "acme");
    }

    #[test]
    fn free_text_keeps_everything_but_the_credential() {
        assert_eq!(
            redact_text("header was Bearer eyJhbGciOi.x.y, retry"),
            "header was Bearer [REDACTED] retry"
        );
    }
}
