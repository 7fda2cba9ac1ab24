//! Rendering of classification results: top-5 lists, the per-layer table with speed-up and
//! error, and the per-layer bar chart (SVG).

use yew::prelude::*;

use crate::profile::{ErrorStats, OpKind, PathKind};

use super::protocol::{Mode, PathResult};

/// A classification as the page shows it.
#[derive(Debug, Clone, PartialEq)]
pub struct Outcome {
    /// Where the image came from (file name or demo photo).
    pub source: String,
    pub mode: Mode,
    pub crop_size: usize,
    /// `[crop_size, crop_size, 3]` RGB.
    pub crop: Vec<u8>,
    pub float: Option<PathResult>,
    pub int: Option<PathResult>,
}

/// One layer of the table: the timings of both paths and the integer path's error.
#[derive(Debug, Clone, PartialEq)]
pub struct LayerRow {
    pub layer: String,
    pub op: OpKind,
    pub float_us: Option<f64>,
    pub int_us: Option<f64>,
    pub error: Option<ErrorStats>,
}

/// Joins the records of both paths by layer name, in the order of the integer path (or of
/// the float path when only it ran); layers of one path only come last.
pub fn layer_rows(outcome: &Outcome) -> Vec<LayerRow> {
    let (primary, secondary) = match (&outcome.int, &outcome.float) {
        (Some(int), float) => (int, float.as_ref()),
        (None, Some(float)) => (float, None),
        (None, None) => return Vec::new(),
    };

    let mut rows: Vec<LayerRow> = primary
        .layers
        .iter()
        .map(|record| LayerRow {
            layer: record.layer.clone(),
            op: record.op,
            float_us: (record.path == PathKind::Float).then_some(record.micros),
            int_us: (record.path == PathKind::Int).then_some(record.micros),
            error: record.error,
        })
        .collect();

    for record in secondary
        .map(|result| result.layers.as_slice())
        .unwrap_or_default()
    {
        match rows.iter_mut().find(|row| row.layer == record.layer) {
            Some(row) => row.float_us = Some(row.float_us.unwrap_or(0.0) + record.micros),
            None => rows.push(LayerRow {
                layer: record.layer.clone(),
                op: record.op,
                float_us: Some(record.micros),
                int_us: None,
                error: None,
            }),
        }
    }
    rows
}

fn path_name(path: PathKind) -> &'static str {
    match path {
        PathKind::Float => "Float path (f32)",
        PathKind::Int => "Integer path (int8/int32)",
    }
}

/// The top-5 classes and the total time of one path.
pub fn top5_card(path: PathKind, result: &PathResult) -> Html {
    let rows = result.top.iter().map(|class| {
        let percent = class.probability * 100.0;
        html! {
            <tr>
                <td class="num">{ format!("{percent:.2} %") }</td>
                <td class="bar-cell">
                    <span class={classes!("prob-bar", path_class(path))} style={format!("width: {:.1}%", percent.clamp(0.0, 100.0))}></span>
                </td>
                <td class="num dim">{ class.index }</td>
                <td>{ &class.label }</td>
            </tr>
        }
    });

    html! {
        <section class={classes!("card", path_class(path))} data-testid={format!("top5-{}", path_key(path))}>
            <h3>{ path_name(path) }</h3>
            <p class="total-time">{ format!("forward pass: {}", format_ms(result.micros)) }</p>
            <table class="top5">
                <thead><tr><th class="num">{ "probability" }</th><th></th><th class="num">{ "class" }</th><th>{ "name" }</th></tr></thead>
                <tbody>{ for rows }</tbody>
            </table>
        </section>
    }
}

fn path_key(path: PathKind) -> &'static str {
    match path {
        PathKind::Float => "float",
        PathKind::Int => "int",
    }
}

fn path_class(path: PathKind) -> &'static str {
    match path {
        PathKind::Float => "float",
        PathKind::Int => "int",
    }
}

/// Milliseconds with two decimals, from microseconds.
pub fn format_ms(micros: f64) -> String {
    format!("{:.2} ms", micros / 1000.0)
}

fn format_us(micros: Option<f64>) -> String {
    micros.map_or_else(|| "–".to_string(), |us| format!("{us:.0}"))
}

fn speed_up(float_us: Option<f64>, int_us: Option<f64>) -> Option<f64> {
    match (float_us, int_us) {
        (Some(float), Some(int)) if int > 0.0 => Some(float / int),
        _ => None,
    }
}

fn format_speed_up(value: Option<f64>) -> String {
    value.map_or_else(|| "–".to_string(), |x| format!("{x:.2}x"))
}

/// The per-layer table: timings in microseconds, speed-up, and the integer path's SQNR and
/// cosine against the float path (Compare mode).
pub fn layer_table(outcome: &Outcome, rows: &[LayerRow]) -> Html {
    let float_sum: f64 = rows.iter().filter_map(|row| row.float_us).sum();
    let int_sum: f64 = rows.iter().filter_map(|row| row.int_us).sum();
    let has_float = outcome.float.is_some();
    let has_int = outcome.int.is_some();

    let body = rows.iter().map(|row| {
        let (sqnr, cosine) = row
            .error
            .map_or(("–".to_string(), "–".to_string()), |error| {
                (format_sqnr(error.sqnr_db), format!("{:.5}", error.cosine))
            });
        html! {
            <tr
                data-testid="layer-row"
                data-layer={ row.layer.clone() }
                data-int-us={ row.int_us.map(|us| format!("{us:.1}")) }
                data-float-us={ row.float_us.map(|us| format!("{us:.1}")) }
            >
                <td class="mono">{ &row.layer }</td>
                <td class="dim">{ format!("{:?}", row.op) }</td>
                <td class="num">{ format_us(row.float_us) }</td>
                <td class="num">{ format_us(row.int_us) }</td>
                <td class="num">{ format_speed_up(speed_up(row.float_us, row.int_us)) }</td>
                <td class="num">{ sqnr }</td>
                <td class="num">{ cosine }</td>
            </tr>
        }
    });

    let float_total = outcome.float.as_ref().map(|result| result.micros);
    let int_total = outcome.int.as_ref().map(|result| result.micros);
    html! {
        <table class="layers">
            <thead>
                <tr>
                    <th>{ "layer" }</th><th>{ "op" }</th>
                    <th class="num">{ "float µs" }</th><th class="num">{ "integer µs" }</th>
                    <th class="num">{ "speed-up" }</th><th class="num">{ "SQNR dB" }</th><th class="num">{ "cosine" }</th>
                </tr>
            </thead>
            <tbody>{ for body }</tbody>
            <tfoot>
                <tr>
                    <td>{ "sum of layers" }</td><td></td>
                    <td class="num">{ format_us(has_float.then_some(float_sum)) }</td>
                    <td class="num">{ format_us(has_int.then_some(int_sum)) }</td>
                    <td class="num">{ format_speed_up(speed_up(has_float.then_some(float_sum), has_int.then_some(int_sum))) }</td>
                    <td></td><td></td>
                </tr>
                <tr>
                    <td>{ "forward pass (wall time)" }</td><td></td>
                    <td class="num">{ format_us(float_total) }</td>
                    <td class="num">{ format_us(int_total) }</td>
                    <td class="num">{ format_speed_up(speed_up(float_total, int_total)) }</td>
                    <td></td><td></td>
                </tr>
            </tfoot>
        </table>
    }
}

fn format_sqnr(sqnr_db: f64) -> String {
    if sqnr_db.is_infinite() {
        "exact".to_string()
    } else {
        format!("{sqnr_db:.1}")
    }
}

/// Chart geometry in SVG user units.
const BAR_GROUP_WIDTH: f64 = 8.0;
const BAR_WIDTH: f64 = 3.5;
const PLOT_HEIGHT: f64 = 160.0;
const LEFT_MARGIN: f64 = 56.0;
const TOP_MARGIN: f64 = 12.0;
const BOTTOM_MARGIN: f64 = 28.0;

/// A bar chart of the per-layer times: one float and one integer bar per layer, in table
/// order, with a tick at the first layer of each block.
pub fn layer_chart(rows: &[LayerRow]) -> Html {
    if rows.is_empty() {
        return html! {};
    }
    let max_us = rows
        .iter()
        .flat_map(|row| [row.float_us, row.int_us])
        .flatten()
        .fold(0.0f64, f64::max)
        .max(1.0);
    let width = LEFT_MARGIN + rows.len() as f64 * BAR_GROUP_WIDTH + 8.0;
    let height = TOP_MARGIN + PLOT_HEIGHT + BOTTOM_MARGIN;
    let baseline = TOP_MARGIN + PLOT_HEIGHT;
    let bar = |x: f64, micros: Option<f64>, class: &'static str, title: String| -> Html {
        let Some(micros) = micros else {
            return html! {};
        };
        let bar_height = (micros / max_us * PLOT_HEIGHT).max(0.5);
        html! {
            <rect class={class} x={format!("{x:.1}")} y={format!("{:.1}", baseline - bar_height)}
                width={BAR_WIDTH.to_string()} height={format!("{bar_height:.1}")}>
                <title>{ title }</title>
            </rect>
        }
    };

    let bars = rows.iter().enumerate().map(|(i, row)| {
        let x = LEFT_MARGIN + i as f64 * BAR_GROUP_WIDTH;
        html! {
            <>
                { bar(x, row.float_us, "float", format!("{}: float {} µs", row.layer, format_us(row.float_us))) }
                { bar(x + BAR_WIDTH, row.int_us, "int", format!("{}: integer {} µs", row.layer, format_us(row.int_us))) }
            </>
        }
    });

    let ticks = rows.iter().enumerate().filter_map(|(i, row)| {
        let label = block_label(&row.layer, i.checked_sub(1).map(|prev| rows[prev].layer.as_str()))?;
        let x = LEFT_MARGIN + i as f64 * BAR_GROUP_WIDTH;
        Some(html! {
            <>
                <line class="tick" x1={format!("{x:.1}")} x2={format!("{x:.1}")} y1={baseline.to_string()} y2={(baseline + 5.0).to_string()} />
                <text class="tick-label" x={format!("{x:.1}")} y={(baseline + 16.0).to_string()}>{ label }</text>
            </>
        })
    });

    html! {
        <figure class="chart">
            <svg viewBox={format!("0 0 {width:.0} {height:.0}")} width={format!("{width:.0}")} height={format!("{height:.0}")}
                role="img" aria-label="per-layer time of the float and the integer path, in microseconds">
                <line class="axis" x1={LEFT_MARGIN.to_string()} x2={format!("{width:.0}")} y1={baseline.to_string()} y2={baseline.to_string()} />
                <line class="axis" x1={LEFT_MARGIN.to_string()} x2={LEFT_MARGIN.to_string()} y1={TOP_MARGIN.to_string()} y2={baseline.to_string()} />
                <text class="axis-label" x={(LEFT_MARGIN - 4.0).to_string()} y={(TOP_MARGIN + 4.0).to_string()}>{ format!("{max_us:.0} µs") }</text>
                <text class="axis-label" x={(LEFT_MARGIN - 4.0).to_string()} y={baseline.to_string()}>{ "0" }</text>
                { for bars }
                { for ticks }
            </svg>
            <figcaption>
                <span class="swatch float"></span>{ " float  " }
                <span class="swatch int"></span>{ " integer; time per layer in µs, in forward order; ticks mark the first layer of each block (b0 is blocks.0)" }
            </figcaption>
        </figure>
    }
}

/// A short tick label when `layer` starts a new transformer block (`blocks.3.norm1` after
/// a `blocks.2` layer gives `b3`); layers outside the blocks get none.
fn block_label(layer: &str, previous: Option<&str>) -> Option<String> {
    let group = |name: &str| -> String {
        let mut parts = name.split('.');
        match (parts.next(), parts.next()) {
            (Some("blocks"), Some(index)) => format!("b{index}"),
            (Some(first), _) => first.to_string(),
            _ => String::new(),
        }
    };
    let current = group(layer);
    if !current.starts_with('b') || current == "blocks" {
        return None;
    }
    match previous {
        Some(previous) if group(previous) == current => None,
        _ => Some(current),
    }
}
