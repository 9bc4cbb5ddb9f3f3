//! A plan as a table for operators: its moves, their sizes, and the time they take.

use std::fmt::Write as _;

use super::{Plan, PlanKind};

/// The plan as a table for operators: one line per move and a total with the time the
/// moves take at `rate_bytes_per_s` (0: unknown).
pub fn render(plan: &Plan, rate_bytes_per_s: u64) -> String {
    let title = match &plan.kind {
        PlanKind::Resize { count } => format!("resize to {count} shards"),
        PlanKind::Rebalance => "rebalance".to_string(),
        PlanKind::Drain { node } => format!("drain node {node}"),
    };
    let mut out = format!("plan: {title}, {} target shards\n", plan.target.len());
    if plan.moves.is_empty() {
        out.push_str("no moves: the layout is already the target\n");
        return out;
    }
    let slots: Vec<String> = plan
        .moves
        .iter()
        .map(|m| format!("{}..{}", m.slot_start, m.slot_end))
        .collect();
    let paths: Vec<String> = plan
        .moves
        .iter()
        .map(|m| format!("{} → {}", m.from, m.to))
        .collect();
    let (slots_header, paths_header) = ("slots", "from → to");
    let sw = width(&slots, slots_header);
    let pw = width(&paths, paths_header);
    let _ = writeln!(
        out,
        "  {:<sw$}  {:<pw$}  {:>12}  {:>10}",
        slots_header, paths_header, "rows", "bytes"
    );
    for ((m, s), p) in plan.moves.iter().zip(&slots).zip(&paths) {
        let _ = writeln!(
            out,
            "  {s:<sw$}  {p:<pw$}  {:>12}  {:>10}",
            m.rows,
            human_bytes(m.bytes)
        );
    }
    let time = match rate_bytes_per_s {
        0 => "time unknown (no transfer rate)".to_string(),
        rate => format!(
            "about {} at {}/s",
            human_duration(plan.bytes.div_ceil(rate)),
            human_bytes(rate)
        ),
    };
    let _ = writeln!(
        out,
        "total: {} moves, {} rows, {}; {time}",
        plan.moves.len(),
        plan.rows,
        human_bytes(plan.bytes)
    );
    out
}

/// The width of a column: its widest cell or its header, in characters.
fn width(cells: &[String], header: &str) -> usize {
    cells
        .iter()
        .map(|s| s.chars().count())
        .chain([header.chars().count()])
        .max()
        .unwrap_or(0)
}

/// `bytes` in B, KiB, MiB, GiB or TiB.
fn human_bytes(bytes: u64) -> String {
    const UNITS: [&str; 4] = ["KiB", "MiB", "GiB", "TiB"];
    if bytes < 1024 {
        return format!("{bytes} B");
    }
    let mut value = bytes as f64 / 1024.0;
    let mut unit = 0;
    while value >= 1024.0 && unit + 1 < UNITS.len() {
        value /= 1024.0;
        unit += 1;
    }
    format!("{value:.1} {}", UNITS[unit])
}

/// `secs` as `1 h 2 min`, `3 min 4 s` or `5 s`.
fn human_duration(secs: u64) -> String {
    match secs {
        0..60 => format!("{secs} s"),
        60..3600 => format!("{} min {} s", secs / 60, secs % 60),
        _ => format!("{} h {} min", secs / 3600, secs % 3600 / 60),
    }
}

/// A topology plan's predicted figures, one line each: before → after.
pub fn render_predicted(p: &super::Predicted) -> String {
    let rate = |v: f64| format!("{:.1} MB/s", v / 1e6);
    let ratio = |v: f64| format!("{v:.2}");
    let line = |name: &str, f: &super::BeforeAfter, show: &dyn Fn(f64) -> String| {
        format!(
            "  {name:<26} {:>12} -> {:>12}\n",
            show(f.before),
            show(f.after)
        )
    };
    let mut out = String::from("predicted (before -> after):\n");
    out += &line("cross-rack traffic", &p.cross_rack_bytes_per_s, &rate);
    out += &line("cross-zone traffic", &p.cross_zone_bytes_per_s, &rate);
    out += &line("max/mean load", &p.max_over_mean_load, &ratio);
    out += &line("cost (weighted bytes/s)", &p.cost, &rate);
    out
}

#[cfg(test)]
mod tests {
    use super::super::plan_rebalance;
    use super::super::tests::{layout, nodes};
    use super::*;

    #[test]
    fn render_lists_moves_and_time() {
        let current = layout(12, &["a", "b"]);
        let plan = plan_rebalance(&current, &nodes(&["a", "b", "c"])).expect("plan");
        let text = render(&plan, 1 << 20);
        assert!(text.contains("a → c") && text.contains("KiB"), "{text}");
        assert!(
            text.contains("total: 4 moves") && text.contains("1.0 MiB/s"),
            "{text}"
        );
        assert_eq!(text.lines().count(), 2 + plan.moves.len() + 1, "{text}");
        let idle = plan_rebalance(&layout(2, &["a", "b"]), &nodes(&["a", "b"])).expect("plan");
        assert!(render(&idle, 0).contains("no moves"));
        assert_eq!(human_duration(3725), "1 h 2 min");
        assert_eq!(human_bytes(3 << 30), "3.0 GiB");
    }
}
