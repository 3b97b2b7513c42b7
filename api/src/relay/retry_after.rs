//! How long a provider asks us to wait after a 429: `Retry-After` (seconds),
//! or OpenAI-style `x-ratelimit-reset-requests` (`1s`, `6m0s`, `20ms`).

use std::time::Duration;

use reqwest::header::HeaderMap;

/// The wait a 429 names, if any.
pub fn retry_after(headers: &HeaderMap) -> Option<Duration> {
    let get = |name: &str| headers.get(name).and_then(|v| v.to_str().ok()).map(str::trim);
    if let Some(secs) = get("retry-after").and_then(|v| v.parse::<f64>().ok()) {
        return Some(Duration::from_secs_f64(secs.max(0.0)));
    }
    if let Some(ms) = get("retry-after-ms").and_then(|v| v.parse::<f64>().ok()) {
        return Some(Duration::from_secs_f64(ms.max(0.0) / 1000.0));
    }
    [
        "x-ratelimit-reset-requests",
        "x-ratelimit-reset-tokens",
        "x-ratelimit-reset",
    ]
    .iter()
    .filter_map(|h| get(h).and_then(parse_go_duration))
    .max()
}

/// Parse `1h2m3.5s`, `20ms` or a bare number of seconds.
fn parse_go_duration(text: &str) -> Option<Duration> {
    if let Ok(secs) = text.parse::<f64>() {
        return Some(Duration::from_secs_f64(secs.max(0.0)));
    }
    let mut total = 0f64;
    let mut rest = text;
    while !rest.is_empty() {
        let num_end = rest.find(|c: char| !(c.is_ascii_digit() || c == '.'))?;
        let value: f64 = rest[..num_end].parse().ok()?;
        rest = &rest[num_end..];
        let unit_end = rest.find(|c: char| c.is_ascii_digit()).unwrap_or(rest.len());
        let factor = match &rest[..unit_end] {
            "h" => 3600.0,
            "m" => 60.0,
            "s" => 1.0,
            "ms" => 0.001,
            _ => return None,
        };
        total += value * factor;
        rest = &rest[unit_end..];
    }
    Some(Duration::from_secs_f64(total))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn headers(pairs: &[(&'static str, &'static str)]) -> HeaderMap {
        let mut h = HeaderMap::new();
        for (k, v) in pairs {
            h.insert(*k, v.parse().unwrap());
        }
        h
    }

    #[test]
    fn retry_after_seconds_win() {
        assert_eq!(
            retry_after(&headers(&[("retry-after", "7")])),
            Some(Duration::from_secs(7))
        );
    }

    #[test]
    fn openai_reset_headers_are_understood() {
        let h = headers(&[
            ("x-ratelimit-reset-requests", "1m30s"),
            ("x-ratelimit-reset-tokens", "20ms"),
        ]);
        assert_eq!(retry_after(&h), Some(Duration::from_secs(90)));
        assert_eq!(parse_go_duration("20ms"), Some(Duration::from_millis(20)));
        assert_eq!(parse_go_duration("soon"), None);
    }

    #[test]
    fn nvidia_sends_nothing() {
        assert_eq!(retry_after(&HeaderMap::new()), None);
    }
}
