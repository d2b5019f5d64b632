//! Reading one series from a Prometheus text exposition, as a test asserts on a count.

/// The value of the series named exactly `series` (name and labels as exposed, e.g.
/// `sworn_agent_workload_api_connections_closed_total{reason="limit"}`) in `exposition`;
/// `None` if it is not there (a counter never incremented is not exposed).
pub fn value(exposition: &str, series: &str) -> Option<f64> {
    exposition.lines().find_map(|line| {
        let rest = line.strip_prefix(series)?.strip_prefix(' ')?;
        rest.split_whitespace().next()?.parse().ok()
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn finds_the_exact_series_only() {
        let text =
            "# HELP x y\nm_total{reason=\"limit\"} 3\nm_total{reason=\"limits\"} 9\nm_total 1\n";
        assert_eq!(value(text, "m_total{reason=\"limit\"}"), Some(3.0));
        assert_eq!(value(text, "m_total"), Some(1.0));
        assert_eq!(value(text, "m_total{reason=\"idle\"}"), None);
    }
}
