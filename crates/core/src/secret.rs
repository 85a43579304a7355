//! A wrapper for values that must never be printed or serialized by accident.

use zeroize::Zeroize;

/// A secret value: `Debug` prints `Secret([REDACTED])`, there is no `Display` and no
/// `Serialize`, and the memory is zeroed on drop. Reading it takes an explicit
/// [`Secret::expose_secret`], which is easy to find in review.
pub struct Secret<T: Zeroize>(T);

impl<T: Zeroize> Secret<T> {
    /// Wraps a value.
    pub fn new(value: T) -> Self {
        Self(value)
    }

    /// The wrapped value. Every call site is a place where a secret leaves its box.
    pub fn expose_secret(&self) -> &T {
        &self.0
    }
}

impl<T: Zeroize + Clone> Clone for Secret<T> {
    fn clone(&self) -> Self {
        Self(self.0.clone())
    }
}

impl<T: Zeroize> Drop for Secret<T> {
    fn drop(&mut self) {
        self.0.zeroize();
    }
}

impl<T: Zeroize> std::fmt::Debug for Secret<T> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Secret([REDACTED])")
    }
}

impl<T: Zeroize> From<T> for Secret<T> {
    fn from(value: T) -> Self {
        Self(value)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn debug_output_never_contains_the_secret() {
        let s = Secret::new(String::from("hunter2-hunter2"));
        let shown = format!("{s:?}");
        assert!(!shown.contains("hunter2"));
        assert_eq!(s.expose_secret(), "hunter2-hunter2");
    }
}
