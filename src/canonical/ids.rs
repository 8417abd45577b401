//! Ids and timestamps the proxy mints where a provider gives none.

/// Seconds since the Unix epoch, for `created` where a provider reports none.
pub fn unix_now() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0)
}

/// A fresh tool-call id for providers that give none (`call_<random>`).
pub fn new_call_id() -> String {
    random_id("call_", 24)
}

/// `prefix` followed by `len` random alphanumerics.
pub fn random_id(prefix: &str, len: usize) -> String {
    let mut s = String::with_capacity(prefix.len() + len);
    s.push_str(prefix);
    s.extend(std::iter::repeat_with(fastrand::alphanumeric).take(len));
    s
}
