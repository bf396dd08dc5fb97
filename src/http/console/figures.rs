//! The supervision figures on the 电子监察 page: what each department did in a range of days
//! (the last 30 by default), as charts drawn on the server (plotters' SVG backend, inline in the
//! page: nothing to load, nothing the page's policy must allow) and as a table, from the same
//! [`App::supervision_summary`](crate::app::App::supervision_summary) as the API.

use std::collections::BTreeMap;

use maud::{html, Markup, PreEscaped};
use plotters::coord::ranged1d::{IntoSegmentedCoord, SegmentValue};
use plotters::prelude::*;
use serde::Deserialize;
use time::Date;

use super::layout::error_box;
use super::{words, SharedState};
use crate::app::signin::ConsoleSession;
use crate::app::{permissions, Figures, Scope, Summary};
use crate::app::{Action, AppError};
use crate::time_util;

/// The range the form asks for: dates as the date inputs send them, a department's USCC.
#[derive(Deserialize, Default, Clone)]
pub struct FigureQuery {
    #[serde(default)]
    from: String,
    #[serde(default)]
    to: String,
    #[serde(default)]
    department: String,
}

/// The kinds of change a day's bar stacks, bottom first, with their colours.
const CHANGES: [(&str, RGBColor); 7] = [
    ("转换", RGBColor(0x0b, 0x3a, 0x8c)),
    ("签发", RGBColor(0x2e, 0x7d, 0x32)),
    ("变更", RGBColor(0xc7, 0x7c, 0x02)),
    ("延续", RGBColor(0x00, 0x83, 0x8f)),
    ("暂停", RGBColor(0x8d, 0x6e, 0x63)),
    ("恢复", RGBColor(0x6a, 0x1b, 0x9a)),
    ("注销", RGBColor(0xb4, 0x23, 0x18)),
];

fn changes_of(f: &Figures) -> [i64; 7] {
    [
        f.converted,
        f.issued,
        f.amended,
        f.renewed,
        f.suspended,
        f.reinstated,
        f.revoked,
    ]
}

/// The figures section of the page, or why it cannot be shown (the trail below still is).
pub async fn section(state: &SharedState, session: &ConsoleSession, query: &FigureQuery) -> Markup {
    let text = |s: &str| Some(s.trim()).filter(|s| !s.is_empty()).map(str::to_string);
    let summary = state
        .app
        .supervision_summary(
            &session.actor,
            text(&query.from).as_deref(),
            text(&query.to).as_deref(),
            text(&query.department).as_deref(),
        )
        .await;
    let service_wide = matches!(
        permissions::scope(&session.actor, Action::ReadAudit),
        Ok(Scope::Service)
    );
    let departments = if service_wide {
        state.app.directory.issuers()
    } else {
        Vec::new()
    };
    // The form shows the range answered (the last 30 days when none was asked for).
    let (from, to) = match &summary {
        Ok(s) => (s.from.as_str(), s.to.as_str()),
        Err(_) => (query.from.as_str(), query.to.as_str()),
    };
    html! {
        section aria-labelledby="figures" {
            h2 id="figures" { "监察数据" }
            form method="get" action="/console/audit" class="card filters" {
                div { label for="from" { "统计起始日期" } input id="from" name="from" type="date" value=(from); }
                div { label for="to" { "统计截止日期" } input id="to" name="to" type="date" value=(to); }
                @if service_wide {
                    div {
                        label for="department" { "部门" }
                        select id="department" name="department" {
                            option value="" { "全部部门" }
                            @for d in &departments {
                                option value=(d.uscc) selected[query.department.trim() == d.uscc.as_str()] { (d.name) }
                            }
                        }
                    }
                }
                div { button type="submit" { "统计" } }
            }
            @match &summary {
                Ok(summary) => (figures(summary)),
                Err(e) => (error_box(e)),
            }
        }
    }
}

fn figures(summary: &Summary) -> Markup {
    let days = days_of(summary);
    let mut reasons: BTreeMap<&str, i64> = BTreeMap::new();
    for t in &summary.totals {
        for (code, n) in &t.rejected_by_reason {
            *reasons.entry(code).or_default() += n;
        }
    }
    let mut reasons: Vec<(&str, i64)> = reasons.into_iter().collect();
    reasons.sort_by(|a, b| b.1.cmp(&a.1).then(a.0.cmp(b.0)));
    html! {
        p class="hint" {
            (words::date(&summary.from)) " 至 " (words::date(&summary.to))
            "（按北京时间计日）。每日零点后，前一日的数据作为一条审计记录（supervision.summary）报送市监察平台。"
        }
        figure class="card chart" {
            figcaption { "证照办理（按日）" }
            ul class="legend" {
                @for (name, colour) in CHANGES {
                    li { (swatch(colour)) (name) }
                }
            }
            (svg(changes_chart(&days)))
        }
        div class="charts" {
            figure class="card chart" {
                figcaption { "转换拒收原因（行数）" }
                @if reasons.is_empty() {
                    p class="hint" { "区间内没有被拒收的转换行。" }
                } @else {
                    (svg(reasons_chart(&reasons)))
                }
            }
            figure class="card chart" {
                figcaption { "公众扫码核验（按日）" }
                (svg(verifications_chart(&days)))
            }
        }
        (table("各部门合计", &summary.totals, false))
        details {
            summary { "按日明细" }
            (table("各部门每日数据", &summary.days, true))
        }
    }
}

/// A legend's colour: a small square drawn inline (the page's policy allows no style attribute).
fn swatch(colour: RGBColor) -> Markup {
    let RGBColor(r, g, b) = colour;
    html! {
        svg width="12" height="12" aria-hidden="true" {
            rect width="12" height="12" fill=(format!("#{r:02x}{g:02x}{b:02x}")) {}
        }
    }
}

/// Every day of the range with the day's figures summed over departments (zeros for a day
/// with none).
fn days_of(summary: &Summary) -> Vec<(Date, Figures)> {
    let (Some(from), Some(to)) = (
        time_util::parse_date(&summary.from),
        time_util::parse_date(&summary.to),
    ) else {
        return Vec::new();
    };
    let mut by_day: BTreeMap<String, Vec<&Figures>> = BTreeMap::new();
    for f in &summary.days {
        if let Some(date) = &f.date {
            by_day.entry(date.clone()).or_default().push(f);
        }
    }
    let mut days = Vec::new();
    let mut day = from;
    while day <= to {
        let mut sum = Figures::default();
        for f in by_day
            .get(&time_util::format_date(day))
            .into_iter()
            .flatten()
        {
            sum.add(f);
        }
        days.push((day, sum));
        match day.next_day() {
            Some(next) => day = next,
            None => break,
        }
    }
    days
}

/// The figures as a table, a row per department (and day, `by_day`).
fn table(caption: &str, rows: &[Figures], by_day: bool) -> Markup {
    let seconds = |f: &Figures| match &f.conversion_seconds {
        Some(s) => format!("{} / {}", s.median, s.p95),
        None => "—".into(),
    };
    html! {
        div class="table-wrap" {
            table {
                caption { (caption) }
                thead { tr {
                    @if by_day { th scope="col" { "日期" } }
                    th scope="col" { "部门" }
                    @for (name, _) in CHANGES { th scope="col" { (name) } }
                    th scope="col" { "拒收行" } th scope="col" { "被拒绝操作" }
                    th scope="col" { "公众核验" } th scope="col" { "转换用时（秒，中位 / 95%）" }
                } }
                tbody {
                    @for f in rows {
                        tr {
                            @if by_day { td { (f.date.as_deref().map(words::date).unwrap_or_default()) } }
                            th scope="row" { (department_name(f)) }
                            @for n in changes_of(f) { td { (n) } }
                            td { (f.rejected_rows) } td { (f.refused_attempts) }
                            td { (f.verifications) } td { (seconds(f)) }
                        }
                    }
                    @if rows.is_empty() { tr { td colspan="13" { "区间内没有办理、拒绝或核验。" } } }
                }
            }
        }
    }
}

fn department_name(f: &Figures) -> String {
    match (&f.department_name, &f.department) {
        (Some(name), _) => name.clone(),
        (None, Some(uscc)) => uscc.clone(),
        (None, None) => "未登录的请求".into(),
    }
}

/// An SVG drawn by plotters, inline; a drawing error shows nothing rather than the page failing.
fn svg(drawn: Result<String, AppError>) -> Markup {
    match drawn {
        Ok(svg) => html! { div class="svg" { (PreEscaped(svg)) } },
        Err(e) => {
            tracing::error!(error = %e, "a supervision chart could not be drawn");
            html! { p class="hint" { "图表无法绘制。" } }
        }
    }
}

const WIDTH: u32 = 1080;
const FONT: &str = "sans-serif";

/// Draws into an SVG string of `size`; plotters' errors become internal errors.
fn draw(
    size: (u32, u32),
    paint: impl FnOnce(&DrawingArea<SVGBackend<'_>, plotters::coord::Shift>) -> Result<(), String>,
) -> Result<String, AppError> {
    let mut out = String::new();
    {
        let root = SVGBackend::with_string(&mut out, size).into_drawing_area();
        paint(&root).map_err(AppError::Internal)?;
        root.present()
            .map_err(|e| AppError::Internal(e.to_string()))?;
    }
    Ok(out)
}

/// A y axis running to a round number at least `max` (and at least 5, so that small counts do
/// not fill the chart).
fn y_top(max: i64) -> i64 {
    let max = max.max(5);
    let step = 10_i64.pow((max as f64).log10().floor() as u32).max(1);
    max.div_euclid(step) * step + if max % step == 0 { 0 } else { step }
}

fn day_label(days: &[(Date, Figures)], at: &SegmentValue<i32>) -> String {
    let (SegmentValue::CenterOf(i) | SegmentValue::Exact(i)) = at else {
        return String::new();
    };
    days.get(*i as usize)
        .map(|(d, _)| format!("{}-{:02}", u8::from(d.month()), d.day()))
        .unwrap_or_default()
}

/// Licences by kind per day: a bar a day, its kinds stacked.
fn changes_chart(days: &[(Date, Figures)]) -> Result<String, AppError> {
    let max = days
        .iter()
        .map(|(_, f)| changes_of(f).iter().sum::<i64>())
        .max()
        .unwrap_or(0);
    draw((WIDTH, 340), |root| {
        let e = |e: &dyn std::fmt::Display| e.to_string();
        root.fill(&WHITE).map_err(|x| e(&x))?;
        let mut chart = ChartBuilder::on(root)
            .margin(10)
            .x_label_area_size(28)
            .y_label_area_size(44)
            .build_cartesian_2d((0..days.len() as i32).into_segmented(), 0..y_top(max))
            .map_err(|x| e(&x))?;
        chart
            .configure_mesh()
            .light_line_style(TRANSPARENT)
            .disable_x_mesh()
            .x_labels(days.len().min(15))
            .x_label_formatter(&|at| day_label(days, at))
            .y_desc("件")
            .label_style((FONT, 13))
            .axis_desc_style((FONT, 13))
            .draw()
            .map_err(|x| e(&x))?;
        for (kind, (_, colour)) in CHANGES.iter().enumerate() {
            let bars = days.iter().enumerate().filter_map(|(i, (_, f))| {
                let counts = changes_of(f);
                let below: i64 = counts[..kind].iter().sum();
                let n = counts[kind];
                (n > 0).then(|| {
                    let i = i as i32;
                    let mut bar = Rectangle::new(
                        [
                            (SegmentValue::Exact(i), below),
                            (SegmentValue::Exact(i + 1), below + n),
                        ],
                        colour.filled(),
                    );
                    bar.set_margin(0, 0, 2, 2);
                    bar
                })
            });
            chart.draw_series(bars).map_err(|x| e(&x))?;
        }
        Ok(())
    })
}

/// Public verifications per day.
fn verifications_chart(days: &[(Date, Figures)]) -> Result<String, AppError> {
    let max = days.iter().map(|(_, f)| f.verifications).max().unwrap_or(0);
    draw((WIDTH / 2 - 10, 300), |root| {
        let e = |e: &dyn std::fmt::Display| e.to_string();
        root.fill(&WHITE).map_err(|x| e(&x))?;
        let mut chart = ChartBuilder::on(root)
            .margin(10)
            .x_label_area_size(28)
            .y_label_area_size(50)
            .build_cartesian_2d((0..days.len() as i32).into_segmented(), 0..y_top(max))
            .map_err(|x| e(&x))?;
        chart
            .configure_mesh()
            .light_line_style(TRANSPARENT)
            .disable_x_mesh()
            .x_labels(days.len().min(8))
            .x_label_formatter(&|at| day_label(days, at))
            .y_desc("次")
            .label_style((FONT, 13))
            .axis_desc_style((FONT, 13))
            .draw()
            .map_err(|x| e(&x))?;
        let colour = RGBColor(0x0b, 0x3a, 0x8c);
        chart
            .draw_series(
                days.iter()
                    .enumerate()
                    .filter(|(_, (_, f))| f.verifications > 0)
                    .map(|(i, (_, f))| {
                        let i = i as i32;
                        let mut bar = Rectangle::new(
                            [
                                (SegmentValue::Exact(i), 0),
                                (SegmentValue::Exact(i + 1), f.verifications),
                            ],
                            colour.filled(),
                        );
                        bar.set_margin(0, 0, 1, 1);
                        bar
                    }),
            )
            .map_err(|x| e(&x))?;
        Ok(())
    })
}

/// Rejected rows by reason, the most frequent first (ten at most), as horizontal bars.
fn reasons_chart(reasons: &[(&str, i64)]) -> Result<String, AppError> {
    let shown: Vec<(&str, i64)> = reasons.iter().take(10).copied().collect();
    let max = shown.iter().map(|(_, n)| *n).max().unwrap_or(0);
    let height = 60 + 30 * shown.len() as u32;
    draw((WIDTH / 2 - 10, height.max(160)), |root| {
        let e = |e: &dyn std::fmt::Display| e.to_string();
        root.fill(&WHITE).map_err(|x| e(&x))?;
        let mut chart = ChartBuilder::on(root)
            .margin(10)
            .x_label_area_size(28)
            .y_label_area_size(170)
            .build_cartesian_2d(0..y_top(max), (0..shown.len() as i32).into_segmented())
            .map_err(|x| e(&x))?;
        let label = |at: &SegmentValue<i32>| match at {
            SegmentValue::CenterOf(i) => shown
                .get(*i as usize)
                .map(|(code, _)| words::rejection_reason(code).to_string())
                .unwrap_or_default(),
            _ => String::new(),
        };
        chart
            .configure_mesh()
            .light_line_style(TRANSPARENT)
            .disable_y_mesh()
            .y_labels(shown.len())
            .y_label_formatter(&label)
            .x_desc("行")
            .label_style((FONT, 13))
            .axis_desc_style((FONT, 13))
            .draw()
            .map_err(|x| e(&x))?;
        let colour = RGBColor(0xb4, 0x23, 0x18);
        chart
            .draw_series(shown.iter().enumerate().map(|(i, (_, n))| {
                let i = i as i32;
                let mut bar = Rectangle::new(
                    [
                        (0, SegmentValue::Exact(i)),
                        (*n, SegmentValue::Exact(i + 1)),
                    ],
                    colour.filled(),
                );
                bar.set_margin(4, 4, 0, 0);
                bar
            }))
            .map_err(|x| e(&x))?;
        Ok(())
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_y_axis_ends_on_a_round_number() {
        assert_eq!(y_top(0), 5);
        assert_eq!(y_top(7), 7);
        assert_eq!(y_top(12), 20);
        assert_eq!(y_top(100), 100);
        assert_eq!(y_top(101), 200);
        assert_eq!(y_top(1_234), 2_000);
    }
}
