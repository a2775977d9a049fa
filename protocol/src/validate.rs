//! Input rules shared by the node and clients, so both sides refuse the same things.

/// A display name or chat name was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum NameError {
    #[error("{what} must not be empty")]
    Empty { what: &'static str },
    #[error("{what} must be at most {max} characters")]
    TooLong { what: &'static str, max: usize },
    #[error("{what} must not contain control characters")]
    ControlChar { what: &'static str },
}

/// Longest display name, in characters.
pub const MAX_DISPLAY_NAME: usize = 64;
/// Longest chat name, in characters.
pub const MAX_CHAT_NAME: usize = 100;
/// Longest chat description, in characters.
pub const MAX_CHAT_DESCRIPTION: usize = 1000;

fn check(value: &str, what: &'static str, max: usize, allow_newlines: bool) -> Result<String, NameError> {
    let trimmed = value.trim();
    if trimmed.is_empty() {
        return Err(NameError::Empty { what });
    }
    if trimmed.chars().count() > max {
        return Err(NameError::TooLong { what, max });
    }
    if trimmed.chars().any(|c| c.is_control() && !(allow_newlines && c == '\n')) {
        return Err(NameError::ControlChar { what });
    }
    Ok(trimmed.to_string())
}

/// Validates a display name (1-64 characters after trimming, no control characters).
pub fn display_name(value: &str) -> Result<String, NameError> {
    check(value, "display name", MAX_DISPLAY_NAME, false)
}

/// Validates a chat name.
pub fn chat_name(value: &str) -> Result<String, NameError> {
    check(value, "chat name", MAX_CHAT_NAME, false)
}

/// Validates a chat description (may be empty; newlines allowed).
pub fn chat_description(value: &str) -> Result<String, NameError> {
    if value.trim().is_empty() {
        return Ok(String::new());
    }
    check(value, "description", MAX_CHAT_DESCRIPTION, true)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn display_names() {
        assert_eq!(display_name("  Anna ").unwrap(), "Anna");
        assert_eq!(display_name("Анна Каренина").unwrap(), "Анна Каренина");
        assert!(matches!(display_name("   "), Err(NameError::Empty { .. })));
        assert!(display_name(&"я".repeat(64)).is_ok());
        assert!(matches!(display_name(&"я".repeat(65)), Err(NameError::TooLong { .. })));
        assert!(matches!(display_name("a\u{7}b"), Err(NameError::ControlChar { .. })));
    }
}
