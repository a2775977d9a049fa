//! The whiteboard: the panel of the call screen (a 16:9 canvas scaled to its width, with tools
//! and colours), and a saved board in the chat's timeline, drawn as SVG built from its items.
//!
//! Board units (0..=10000 on both axes) are scaled to the canvas; what is drawn here shows at
//! once and goes to the node (`media::whiteboard`), which sends everyone's drawing to everyone.

use std::collections::BTreeSet;
use std::f64::consts::TAU;

use leptos::html;
use leptos::prelude::*;
use veche_protocol::ids::AccountId;
use veche_protocol::whiteboard::{Item, MAX_BOARD_TEXT_CHARS, MAX_STROKE_POINTS, Point, Shape};
use veche_ui_core::board::{Outline, StrokeBuilder, UNITS, WIDE_X, WIDE_Y, hit, to_board, to_canvas};
use wasm_bindgen::JsCast;

use crate::components::BTN_SECONDARY;
use crate::i18n::use_i18n;
use crate::media::whiteboard::{clear, draw, erase};
use crate::state::AppState;
use crate::views::recovery::download;

/// The colours to draw with, and their names' message ids.
const COLORS: [(u32, &str); 6] = [
    (0x1e293b, "wb-color-black"),
    (0xdc2626, "wb-color-red"),
    (0x2563eb, "wb-color-blue"),
    (0x16a34a, "wb-color-green"),
    (0xf59e0b, "wb-color-yellow"),
    (0x9333ea, "wb-color-purple"),
];
/// Line width, in board units across.
const LINE_WIDTH: u16 = 40;
/// Text height, in board units down.
const TEXT_SIZE: u16 = 420;
/// A freehand stroke keeps a point once the pointer moved this far (CSS pixels).
const STROKE_GAP_PX: f64 = 3.0;
/// How near a click must be to an item to erase it (CSS pixels).
const ERASER_REACH_PX: f64 = 8.0;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Tool {
    Pen,
    Line,
    Rect,
    Ellipse,
    Text,
    Eraser,
}

impl Tool {
    const ALL: [Tool; 6] = [Tool::Pen, Tool::Line, Tool::Rect, Tool::Ellipse, Tool::Text, Tool::Eraser];

    fn name(self) -> &'static str {
        match self {
            Tool::Pen => "pen",
            Tool::Line => "line",
            Tool::Rect => "rect",
            Tool::Ellipse => "ellipse",
            Tool::Text => "text",
            Tool::Eraser => "eraser",
        }
    }

    fn label(self) -> &'static str {
        match self {
            Tool::Pen => "wb-pen",
            Tool::Line => "wb-line",
            Tool::Rect => "wb-rect",
            Tool::Ellipse => "wb-ellipse",
            Tool::Text => "wb-text",
            Tool::Eraser => "wb-eraser",
        }
    }
}

fn tool_icon(tool: Tool) -> AnyView {
    let icon = match tool {
        Tool::Pen => view! { <path d="M4 20l4-1L19 8l-3-3L5 16l-1 4Z"/> }.into_any(),
        Tool::Line => view! { <path d="M5 19 19 5"/> }.into_any(),
        Tool::Rect => view! { <rect x="4" y="6" width="16" height="12" rx="1"/> }.into_any(),
        Tool::Ellipse => view! { <ellipse cx="12" cy="12" rx="8.5" ry="6"/> }.into_any(),
        Tool::Text => view! { <path d="M5 6h14M12 6v13M9 19h6"/> }.into_any(),
        Tool::Eraser => view! { <path d="M8 19h11M4.5 14.5l9-9 6 6-7.5 7.5H9l-4.5-4.5Z"/> }.into_any(),
    };
    view! {
        <svg class="h-5 w-5" viewBox="0 0 24 24" fill="none" stroke="currentColor" stroke-width="1.8"
            stroke-linecap="round" stroke-linejoin="round" aria-hidden="true">{icon}</svg>
    }
    .into_any()
}

fn hex(color: u32) -> String {
    format!("#{:06x}", color & 0xFF_FFFF)
}

/// What a click would hit of an item.
fn outline(item: &Item) -> Outline<'_> {
    match &item.shape {
        Shape::Stroke { points } => Outline::Polyline(points),
        Shape::Line { from, to } => Outline::Segment(*from, *to),
        Shape::Rect { from, to } => Outline::Rect(*from, *to),
        Shape::Ellipse { from, to } => Outline::Ellipse(*from, *to),
        Shape::Text { at, text, size } => Outline::Text { at: *at, size: *size, chars: text.chars().count() },
    }
}

/// Paints one item on a canvas of `w`×`h` CSS pixels.
fn paint(ctx: &web_sys::CanvasRenderingContext2d, item: &Item, w: f64, h: f64) {
    let px = |p: Point| to_canvas(p, w, h);
    let color = hex(item.color);
    let line = (f64::from(item.width) * w / UNITS).max(1.5);
    ctx.set_stroke_style_str(&color);
    ctx.set_fill_style_str(&color);
    ctx.set_line_width(line);
    ctx.set_line_cap("round");
    ctx.set_line_join("round");
    ctx.begin_path();
    match &item.shape {
        Shape::Stroke { points } => match points.as_slice() {
            [] => {}
            [only] => {
                let (x, y) = px(*only);
                let _ = ctx.arc(x, y, line / 2.0, 0.0, TAU);
                ctx.fill();
            }
            [first, rest @ ..] => {
                let (x, y) = px(*first);
                ctx.move_to(x, y);
                for p in rest {
                    let (x, y) = px(*p);
                    ctx.line_to(x, y);
                }
                ctx.stroke();
            }
        },
        Shape::Line { from, to } => {
            let ((x0, y0), (x1, y1)) = (px(*from), px(*to));
            ctx.move_to(x0, y0);
            ctx.line_to(x1, y1);
            ctx.stroke();
        }
        Shape::Rect { from, to } => {
            let ((x0, y0), (x1, y1)) = (px(*from), px(*to));
            ctx.stroke_rect(x0.min(x1), y0.min(y1), (x1 - x0).abs(), (y1 - y0).abs());
        }
        Shape::Ellipse { from, to } => {
            let ((x0, y0), (x1, y1)) = (px(*from), px(*to));
            let (rx, ry) = (((x1 - x0) / 2.0).abs().max(0.5), ((y1 - y0) / 2.0).abs().max(0.5));
            let _ = ctx.ellipse((x0 + x1) / 2.0, (y0 + y1) / 2.0, rx, ry, 0.0, 0.0, TAU);
            ctx.stroke();
        }
        Shape::Text { at, text, size } => {
            ctx.set_font(&format!("{:.1}px sans-serif", (f64::from(*size) * h / UNITS).max(6.0)));
            let (x, y) = px(*at);
            let _ = ctx.fill_text(text, x, y);
        }
    }
}

/// What the pointer is drawing right now.
#[derive(Debug, Clone)]
enum Draft {
    Stroke(StrokeBuilder),
    Shape { tool: Tool, from: Point, to: Point },
    Erasing,
}

impl Draft {
    fn shape(&self) -> Option<Shape> {
        match self {
            Draft::Stroke(stroke) => Some(Shape::Stroke { points: stroke.points().to_vec() }),
            Draft::Shape { tool: Tool::Line, from, to } => Some(Shape::Line { from: *from, to: *to }),
            Draft::Shape { tool: Tool::Rect, from, to } => Some(Shape::Rect { from: *from, to: *to }),
            Draft::Shape { tool: Tool::Ellipse, from, to } => Some(Shape::Ellipse { from: *from, to: *to }),
            _ => None,
        }
    }
}

/// The call's whiteboard: the canvas, the tools, the colours, and for moderators "Clear".
#[component]
pub fn WhiteboardPanel() -> impl IntoView {
    let app = expect_context::<AppState>();
    let i18n = use_i18n();
    let canvas = NodeRef::<html::Canvas>::new();
    let text_input = NodeRef::<html::Input>::new();
    let tool = RwSignal::new(Tool::Pen);
    let color = RwSignal::new(COLORS[0].0);
    let typing = RwSignal::new(None::<Point>);
    let draft = StoredValue::new(None::<Draft>);
    let erased = StoredValue::new(BTreeSet::<(u32, u64)>::new());
    let frame_asked = StoredValue::new(false);
    let moderating = move || app.call.with(|c| c.as_ref().is_some_and(|c| c.moderating()));
    let count = move || app.whiteboard.with(|w| w.board.len());
    let pending = move || app.whiteboard.with(|w| w.pending.len());

    // Everything on the board, what waits for the node (lighter), and what is being drawn.
    let redraw = move || {
        let Some(el) = canvas.get_untracked() else { return };
        let rect = el.get_bounding_client_rect();
        let (w, h) = (rect.width(), rect.height());
        if w <= 0.0 || h <= 0.0 {
            return;
        }
        let ratio = web_sys::window().map(|w| w.device_pixel_ratio()).unwrap_or(1.0).max(1.0);
        let (pw, ph) = ((w * ratio).round() as u32, (h * ratio).round() as u32);
        if el.width() != pw || el.height() != ph {
            el.set_width(pw);
            el.set_height(ph);
        }
        let Some(ctx) =
            el.get_context("2d").ok().flatten().and_then(|c| c.dyn_into::<web_sys::CanvasRenderingContext2d>().ok())
        else {
            return;
        };
        let _ = ctx.set_transform(ratio, 0.0, 0.0, ratio, 0.0, 0.0);
        ctx.set_global_alpha(1.0);
        ctx.set_fill_style_str("#ffffff");
        ctx.fill_rect(0.0, 0.0, w, h);
        app.whiteboard.with_untracked(|board| {
            for (by, item) in board.items() {
                ctx.set_global_alpha(if by.is_some() { 1.0 } else { 0.6 });
                paint(&ctx, item, w, h);
            }
        });
        ctx.set_global_alpha(1.0);
        let color = color.get_untracked();
        draft.with_value(|d| {
            if let Some(shape) = d.as_ref().and_then(Draft::shape) {
                paint(&ctx, &Item { id: 0, color, width: LINE_WIDTH, shape }, w, h);
            }
        });
    };
    let redraw_soon = move || {
        if frame_asked.get_value() {
            return;
        }
        frame_asked.set_value(true);
        request_animation_frame(move || {
            frame_asked.set_value(false);
            redraw();
        });
    };
    Effect::new(move |_| {
        app.whiteboard.track();
        canvas.track();
        redraw();
    });
    let resized = window_event_listener(leptos::ev::resize, move |_| redraw_soon());
    on_cleanup(move || resized.remove());
    // The text box takes the keyboard as soon as it shows.
    Effect::new(move |_| {
        if let Some(input) = text_input.get() {
            let _ = input.focus();
        }
    });

    let at = move |ev: &web_sys::PointerEvent| -> Option<(Point, f64)> {
        let el = canvas.get_untracked()?;
        let rect = el.get_bounding_client_rect();
        let x = f64::from(ev.client_x()) - rect.left();
        let y = f64::from(ev.client_y()) - rect.top();
        Some((to_board(x, y, rect.width(), rect.height()), rect.width()))
    };
    let erase_at = move |p: Point, width_px: f64| {
        let reach = ERASER_REACH_PX * WIDE_X / width_px.max(1.0);
        let found = app.whiteboard.with_untracked(|w| {
            // Each item is reached half its line width further.
            let items = w
                .board
                .items()
                .map(|(by, item)| ((by, item.id), outline(item), reach + f64::from(item.width) * WIDE_X / UNITS / 2.0));
            hit(items, p)
        });
        if let Some(key) = found
            && erased.try_update_value(|e| e.insert(key)).unwrap_or(false)
        {
            erase(app, key.0, key.1);
        }
    };
    let finish = move || {
        let Some(done) = draft.try_update_value(|d| d.take()).flatten() else { return };
        let color = color.get_untracked();
        match done {
            Draft::Shape { from, to, .. } if from == to => {}
            d => {
                if let Some(shape) = d.shape() {
                    draw(app, color, LINE_WIDTH, shape);
                }
            }
        }
        redraw_soon();
    };
    let on_down = move |ev: web_sys::PointerEvent| {
        if ev.button() != 0 {
            return;
        }
        let Some((p, width)) = at(&ev) else { return };
        ev.prevent_default();
        if let Some(el) = canvas.get_untracked() {
            let _ = el.set_pointer_capture(ev.pointer_id());
        }
        let next = match tool.get_untracked() {
            Tool::Pen => {
                let gap = STROKE_GAP_PX * WIDE_X / width.max(1.0);
                Some(Draft::Stroke(StrokeBuilder::new(p, gap, MAX_STROKE_POINTS)))
            }
            t @ (Tool::Line | Tool::Rect | Tool::Ellipse) => Some(Draft::Shape { tool: t, from: p, to: p }),
            Tool::Text => {
                typing.set(Some(p));
                None
            }
            Tool::Eraser => {
                erased.update_value(|e| e.clear());
                erase_at(p, width);
                Some(Draft::Erasing)
            }
        };
        draft.set_value(next);
        redraw_soon();
    };
    let on_move = move |ev: web_sys::PointerEvent| {
        let Some((p, width)) = at(&ev) else { return };
        let full = draft
            .try_update_value(|d| match d {
                Some(Draft::Stroke(stroke)) => {
                    stroke.push(p);
                    stroke.is_full()
                }
                Some(Draft::Shape { to, .. }) => {
                    *to = p;
                    false
                }
                _ => false,
            })
            .unwrap_or(false);
        if draft.with_value(|d| matches!(d, Some(Draft::Erasing))) {
            erase_at(p, width);
            return;
        }
        if full {
            // The longest stroke the board takes: it goes as it is, and drawing goes on from
            // its end as a new one.
            let last = draft.with_value(|d| match d {
                Some(Draft::Stroke(s)) => s.points().last().copied(),
                _ => None,
            });
            finish();
            if let Some(last) = last {
                let gap = STROKE_GAP_PX * WIDE_X / width.max(1.0);
                draft.set_value(Some(Draft::Stroke(StrokeBuilder::new(last, gap, MAX_STROKE_POINTS))));
            }
        }
        if draft.with_value(|d| d.is_some()) {
            redraw_soon();
        }
    };
    let on_up = move |ev: web_sys::PointerEvent| {
        if let Some((p, _)) = at(&ev) {
            draft.update_value(|d| match d {
                Some(Draft::Stroke(stroke)) => {
                    stroke.push(p);
                }
                Some(Draft::Shape { to, .. }) => *to = p,
                _ => {}
            });
        }
        finish();
    };
    let on_cancel = move |_: web_sys::PointerEvent| {
        draft.set_value(None);
        redraw_soon();
    };
    let commit_text = move || {
        let Some(p) = typing.get_untracked() else { return };
        let Some(input) = text_input.get_untracked() else { return };
        let text: String = input.value().trim().chars().take(MAX_BOARD_TEXT_CHARS).collect();
        typing.set(None);
        if !text.is_empty() {
            draw(app, color.get_untracked(), 1, Shape::Text { at: p, text, size: TEXT_SIZE });
        }
    };
    let input_style = move || {
        typing
            .get()
            .map(|p| {
                format!(
                    "left: {:.2}%; top: {:.2}%; transform: translateY(-100%)",
                    f64::from(p[0]) / UNITS * 100.0,
                    f64::from(p[1]) / UNITS * 100.0
                )
            })
            .unwrap_or_default()
    };
    let swatch =
        "h-7 w-7 shrink-0 rounded-full focus-visible:outline focus-visible:outline-2 focus-visible:outline-indigo-600";
    view! {
        <div class="rounded-xl bg-slate-800 p-1.5 sm:p-2" data-testid="whiteboard" role="group"
            aria-label=move || i18n.t("whiteboard")>
            <div class="mb-1.5 flex flex-wrap items-center gap-1">
                {Tool::ALL.into_iter().map(|t| view! {
                    <button type="button" data-testid="wb-tool" data-tool=t.name()
                        class=move || format!("inline-flex h-9 w-9 items-center justify-center rounded-lg {}",
                            if tool.get() == t { "bg-indigo-500 text-white" } else { "bg-slate-700 text-slate-200 hover:bg-slate-600" })
                        aria-pressed=move || (tool.get() == t).to_string()
                        aria-label=move || i18n.t(t.label()) title=move || i18n.t(t.label())
                        on:click=move |_| { tool.set(t); typing.set(None); }>
                        {tool_icon(t)}
                    </button>
                }).collect_view()}
                <span class="mx-1 h-6 w-px bg-slate-600" aria-hidden="true"></span>
                {COLORS.into_iter().map(|(c, label)| view! {
                    <button type="button" data-testid="wb-color" data-color=format!("{c:06x}")
                        class=move || format!("{swatch} {}", if color.get() == c { "ring-[3px] ring-white" } else { "ring-1 ring-slate-400/70" })
                        style=format!("background-color: {}", hex(c))
                        aria-pressed=move || (color.get() == c).to_string()
                        aria-label=move || i18n.t(label) title=move || i18n.t(label)
                        on:click=move |_| color.set(c)></button>
                }).collect_view()}
                <Show when=moderating>
                    <button type="button" class=format!("{BTN_SECONDARY} ml-auto !px-3 !py-1.5") data-testid="wb-clear"
                        disabled=move || count() == 0 on:click=move |_| clear(app)>
                        {move || i18n.t("wb-clear")}
                    </button>
                </Show>
            </div>
            // As wide as the panel, but never taller than about half the screen.
            <div class="relative mx-auto w-full overflow-hidden rounded-lg"
                style="aspect-ratio: 16 / 9; max-width: min(100%, calc(50dvh * 16 / 9))">
                <canvas node_ref=canvas data-testid="wb-canvas" data-items=count data-pending=pending
                    data-tool=move || tool.get().name()
                    class=move || format!("absolute inset-0 h-full w-full touch-none bg-white {}",
                        if tool.get() == Tool::Text { "cursor-text" } else { "cursor-crosshair" })
                    on:pointerdown=on_down on:pointermove=on_move on:pointerup=on_up on:pointercancel=on_cancel></canvas>
                <Show when=move || typing.get().is_some()>
                    <input node_ref=text_input type="text" data-testid="wb-text-input" maxlength=MAX_BOARD_TEXT_CHARS
                        class="absolute z-10 w-48 max-w-[60%] rounded border border-indigo-400 bg-white/95 px-1.5 py-0.5 text-sm text-slate-900 shadow"
                        style=input_style placeholder=move || i18n.t("wb-text-placeholder")
                        aria-label=move || i18n.t("wb-text")
                        on:keydown=move |ev: web_sys::KeyboardEvent| {
                            if ev.key() == "Enter" && !ev.is_composing() {
                                ev.prevent_default();
                                commit_text();
                            } else if ev.key() == "Escape" {
                                typing.set(None);
                            }
                        }/>
                </Show>
            </div>
        </div>
    }
}

/// One item of a saved board as SVG, in a 16:9 space of 16000×9000.
fn svg_item(item: &Item) -> AnyView {
    let (sx, sy) = (WIDE_X / UNITS, WIDE_Y / UNITS);
    let x = |p: &Point| f64::from(p[0]) * sx;
    let y = |p: &Point| f64::from(p[1]) * sy;
    let color = hex(item.color);
    let width = f64::from(item.width) * sx;
    match &item.shape {
        Shape::Stroke { points } if points.len() == 1 => view! {
            <circle data-item="stroke" cx=x(&points[0]) cy=y(&points[0]) r=width / 2.0 fill=color/>
        }
        .into_any(),
        Shape::Stroke { points } => {
            let list = points.iter().map(|p| format!("{:.0},{:.0}", x(p), y(p))).collect::<Vec<_>>().join(" ");
            view! {
                <polyline data-item="stroke" points=list fill="none" stroke=color stroke-width=width
                    stroke-linecap="round" stroke-linejoin="round"/>
            }
            .into_any()
        }
        Shape::Line { from, to } => view! {
            <line data-item="line" x1=x(from) y1=y(from) x2=x(to) y2=y(to) stroke=color stroke-width=width
                stroke-linecap="round"/>
        }
        .into_any(),
        Shape::Rect { from, to } => view! {
            <rect data-item="rect" x=x(from).min(x(to)) y=y(from).min(y(to)) width=(x(to) - x(from)).abs()
                height=(y(to) - y(from)).abs() fill="none" stroke=color stroke-width=width stroke-linejoin="round"/>
        }
        .into_any(),
        Shape::Ellipse { from, to } => view! {
            <ellipse data-item="ellipse" cx=(x(from) + x(to)) / 2.0 cy=(y(from) + y(to)) / 2.0
                rx=((x(to) - x(from)) / 2.0).abs() ry=((y(to) - y(from)) / 2.0).abs() fill="none" stroke=color
                stroke-width=width/>
        }
        .into_any(),
        Shape::Text { at, text, size } => view! {
            <text data-item="text" x=x(at) y=y(at) font-size=f64::from(*size) * sy fill=color
                font-family="sans-serif">{text.clone()}</text>
        }
        .into_any(),
    }
}

/// A board saved in the chat when its call ended, drawn from its (validated) items.
#[component]
pub fn WhiteboardMessage(items: Vec<Item>, sender: AccountId, time: String, time_ms: u64) -> impl IntoView {
    let app = expect_context::<AppState>();
    let i18n = use_i18n();
    let picture = NodeRef::<leptos::svg::Svg>::new();
    let count = items.len();
    let shapes = items.iter().map(svg_item).collect_view();
    let save = move |_| {
        let Some(svg) = picture.get_untracked() else { return };
        let file = format!("<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n{}", svg.outer_html());
        if let Err(e) = download(file.as_bytes(), &format!("whiteboard-{time_ms}.svg"), "image/svg+xml") {
            app.toast(e, true);
        }
    };
    view! {
        <li class="my-2 flex justify-center" data-testid="whiteboard-message" data-items=count>
            <figure class="w-full max-w-xl rounded-2xl bg-white p-2 shadow-sm ring-1 ring-slate-200">
                <figcaption class="mb-1.5 flex flex-wrap items-center gap-x-2 gap-y-0.5 px-1 text-xs text-slate-500">
                    <svg class="h-4 w-4 text-indigo-600" viewBox="0 0 24 24" fill="none" stroke="currentColor" stroke-width="1.8"
                        stroke-linecap="round" stroke-linejoin="round" aria-hidden="true">
                        <rect x="3" y="4" width="18" height="13" rx="1.5"/><path d="M8 21l4-4 4 4"/>
                    </svg>
                    <span class="font-semibold text-slate-800" data-testid="whiteboard-title">{move || i18n.t("whiteboard")}</span>
                    <span data-testid="whiteboard-sender">{move || app.name_of(&sender)}</span>
                    <span>{time}</span>
                    <button type="button" class="ml-auto font-semibold text-indigo-700 underline" data-testid="whiteboard-download"
                        on:click=save>{move || i18n.t("wb-download")}</button>
                </figcaption>
                <svg node_ref=picture xmlns="http://www.w3.org/2000/svg" viewBox="0 0 16000 9000"
                    class="block h-auto w-full rounded-lg ring-1 ring-slate-200" role="img" data-testid="whiteboard-svg"
                    aria-label=move || i18n.t("whiteboard")>
                    <rect width="16000" height="9000" fill="#ffffff"/>
                    {shapes}
                </svg>
            </figure>
        </li>
    }
}
