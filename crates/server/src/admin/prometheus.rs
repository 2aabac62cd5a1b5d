//! Prometheus's text format for the figures `mntr` reports, under the names
//! ZooKeeper's PrometheusMetricsProvider gives them (`mntr`'s without the
//! `zk_` prefix), so dashboards built for ZooKeeper find them.

use std::fmt::Write as _;

use crate::core::Shared;
use crate::fourlw;

/// Every numeric figure as a gauge; text figures (version, state) have no
/// place in the format and are left out, as ZooKeeper leaves them out.
pub fn render(shared: &Shared) -> String {
    let mut out = String::new();
    for (key, value) in fourlw::monitor_figures(shared, false) {
        let Some(number) = value.as_f64() else {
            continue;
        };
        let name = key.strip_prefix("zk_").unwrap_or(key);
        let _ = writeln!(out, "# HELP {name} {name}");
        let _ = writeln!(out, "# TYPE {name} gauge");
        // Java's client prints every sample as a double: `5.0`.
        let _ = writeln!(out, "{name} {number:?}");
    }
    out
}
