//! The start page, `GET /?token=TOKEN`: the demo scene's snapshot (streamed live once the
//! page's script connects to `/ws/view`; drag to orbit, wheel to zoom) and a KPI table of every
//! indicator for the token's region in the latest complete year. Without a token the page
//! says how to get one and shows no data. Hand-written HTML, no front-end build step; the
//! script passes the page's token on to the image and the stream.

use crate::error::AppError;
use crate::http::auth::Caller;
use crate::http::work::blocking;
use crate::state::{AppState, Rendering};
use analytics::{Audience, IndicatorValue};
use axum::extract::State;
use axum::response::Html;
use indicators::{Grain, IndicatorQuery, Status};

fn esc(s: &str) -> String {
    s.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
}

fn fmt(v: Option<f64>, unit: &str) -> String {
    match v {
        None => "–".into(),
        Some(v) if unit == "ratio" => format!("{:.1}%", v * 100.0),
        Some(v) if v.abs() >= 1000.0 => format!("{v:.0}"),
        Some(v) => format!("{v:.2}"),
    }
}

/// The latest complete year's value for `region` of every indicator computed per year at its
/// level, as `audience` sees it (a year after the data's last day is partial and never shown
/// as the latest).
fn kpis(
    state: &AppState,
    audience: &Audience,
    region: &str,
) -> Result<Vec<(indicators::Indicator, Option<IndicatorValue>)>, AppError> {
    let level = indicators::region_level(region)
        .map_err(|e| AppError::Internal(format!("token scope {region}: {e}")))?;
    let mut out = Vec::new();
    for ind in &state.catalogue.indicators {
        if !(ind.levels.contains(&level) && ind.grains.contains(&Grain::Year)) {
            continue;
        }
        let q = IndicatorQuery {
            level,
            grain: Grain::Year,
            from: None,
            to: None,
            region: Some(region.to_owned()),
        };
        let rows = state.engine.values(audience, ind, &q)?;
        out.push((
            ind.clone(),
            rows.into_iter()
                .filter(|r| !r.partial)
                .max_by(|a, b| a.period.cmp(&b.period)),
        ));
    }
    Ok(out)
}

/// A page as built into the binary, or, when `DATABRAIN_PAGES` names a directory (for work
/// on the pages: no rebuild per edit), as that directory has it now. The variable is the
/// operator's, like every other path the server reads.
fn page(name: &str, built_in: &'static str) -> std::borrow::Cow<'static, str> {
    match std::env::var_os("DATABRAIN_PAGES") {
        Some(dir) => match std::fs::read_to_string(std::path::Path::new(&dir).join(name)) {
            Ok(text) => text.into(),
            Err(e) => {
                tracing::warn!(
                    "DATABRAIN_PAGES: cannot read {name} ({e}); serving the built-in page"
                );
                built_in.into()
            }
        },
        None => built_in.into(),
    }
}

/// `/` without a token: how to get one, and no data.
pub fn welcome() -> Html<String> {
    Html(
            r#"<!doctype html>
<html lang="zh-CN"><head><meta charset="utf-8"><title>databrain 数据大脑</title></head>
<body style="background:#0b1220;color:#e6edf7;font-family:'Noto Sans CJK SC',sans-serif;margin:24px">
<h1>databrain 数据大脑</h1>
<p>请使用令牌打开本页 Open this page with your token: <code>/?token=…</code></p>
<p>The operator gives each person a token with a role and a region; <code>databrain demo</code>
prints one per role.</p>
</body></html>
"#
        .to_owned(),
    )
}

/// `/?token=`: the start page, for the caller's scope (reached through `http::start_page`).
pub async fn index(
    State(state): State<AppState>,
    caller: Caller,
) -> Result<Html<String>, AppError> {
    let audience = caller.audience(&state);
    let who = caller.0;
    let (s, region, a) = (state.clone(), who.scope.clone(), audience.clone());
    let rows = blocking(move || kpis(&s, &a, &region)).await?;
    let mut table = String::new();
    for (ind, v) in &rows {
        let status = v.as_ref().map_or(Status::NoData, |v| v.status);
        table += &format!(
            "<tr><td>{}<br><small>{}</small></td><td>{}</td><td class=num>{}</td><td class=num>{}</td><td><span class=\"status {st}\">{st}</span></td></tr>\n",
            esc(&ind.name_zh),
            esc(&ind.name_en),
            v.as_ref().map_or("–".into(), |v| esc(&v.period)),
            fmt(v.as_ref().and_then(|v| v.value), &ind.unit),
            fmt(ind.target.as_ref().map(|t| t.value), &ind.unit),
            st = status.as_str(),
        );
    }
    // The first scene inside the token's scope.
    let scene = state
        .scenes
        .iter()
        .find(|s| s.region.as_deref().is_some_and(|r| audience.covers(r)))
        .map(|s| s.id.clone())
        .unwrap_or_default();
    let view = match &*state.rendering {
        Rendering::Available(_) => format!(
            "<img id=view width=960 height=540 alt=\"city twin\" data-scene=\"{s}\">\
             <p class=hint>Drag to orbit, scroll to zoom (streamed from the server).</p>",
            s = esc(&scene)
        ),
        Rendering::Unavailable(why) => format!(
            "<p class=warn>Rendering is unavailable on this server: {}</p>",
            esc(why)
        ),
    };
    Ok(Html(format!(
        r#"<!doctype html>
<html lang="zh-CN"><head><meta charset="utf-8"><title>databrain 数据大脑</title>
<style>
body {{ background:#0b1220; color:#e6edf7; font-family:"Noto Sans CJK SC","Noto Sans",sans-serif; margin:24px; }}
h1 {{ font-size:24px; margin:0 0 12px; }} h2 {{ font-size:18px; margin:16px 0 8px; }}
.wrap {{ display:flex; gap:24px; flex-wrap:wrap; align-items:flex-start; }}
#view {{ border:1px solid #2a3a55; background:#050a14; cursor:grab; }}
table {{ border-collapse:collapse; min-width:520px; }} td,th {{ border-bottom:1px solid #22324d; padding:6px 10px; text-align:left; }}
th {{ color:#9fb3d1; font-weight:normal; }} td.num {{ text-align:right; font-variant-numeric:tabular-nums; }}
small {{ color:#8ea2c0; }} .hint {{ color:#8ea2c0; font-size:13px; }} .warn {{ color:#fc8d59; }}
.status {{ padding:2px 8px; border-radius:8px; font-size:12px; }} .ok {{ background:#1a9850; }} .warning {{ background:#d9a400; color:#111; }}
.critical {{ background:#d73027; }} .no_data {{ background:#555; }}
</style></head>
<body>
<h1>databrain 数据大脑 <small>江苏省 · 城市运行监测一张图</small></h1>
<div class=wrap>
<section><h2>城市孪生 City twin</h2>{view}</section>
<section><h2>关键指标 Key indicators ({scope}, latest complete year) <small>{role}</small></h2>
<table><thead><tr><th>指标 Indicator</th><th>期 Period</th><th>值 Value</th><th>目标 Target</th><th>状态 Status</th></tr></thead>
<tbody>
{table}</tbody></table>
<p class=hint>Catalogue {version}. Pages: <a class=pagelink href="/wall?scene=jiangsu_by_city" style="color:#9fc5ff">指挥大屏 wall</a> ·
<a class=pagelink href="/analyst" style="color:#9fc5ff">指标分析 analyst</a> ·
<a class=pagelink href="/planner?scene=demo_district" style="color:#9fc5ff">规划 planner</a> ·
<a class=pagelink href="/tiles?scene=demo_district" style="color:#9fc5ff">三维瓦片 3D Tiles</a> ·
<a class=pagelink href="/tasks" style="color:#9fc5ff">督办 tasks</a> ·
API: <a href="/api/openapi.json" style="color:#9fc5ff">/api/openapi.json</a></p>
</section></div>
<script>
(() => {{
  const token = encodeURIComponent(new URLSearchParams(location.search).get('token') || '');
  // The pages take the same token.
  document.querySelectorAll('a.pagelink').forEach(a => {{
    a.href += (a.href.includes('?') ? '&' : '?') + 'token=' + token;
  }});
  const img = document.getElementById('view');
  if (!img) return;
  img.src = `/api/scenes/${{img.dataset.scene}}/snapshot.png?width=960&height=540&token=${{token}}`;
  const proto = location.protocol === 'https:' ? 'wss' : 'ws';
  const ws = new WebSocket(`${{proto}}://${{location.host}}/ws/view?scene=${{img.dataset.scene}}&width=960&height=540&token=${{token}}`);
  ws.binaryType = 'blob';
  ws.onmessage = (ev) => {{
    if (typeof ev.data === 'string') return;
    const url = URL.createObjectURL(ev.data);
    const old = img.src; img.src = url;
    if (old.startsWith('blob:')) URL.revokeObjectURL(old);
  }};
  let drag = null;
  img.addEventListener('mousedown', (e) => {{ drag = [e.clientX, e.clientY]; e.preventDefault(); }});
  window.addEventListener('mouseup', () => {{ drag = null; }});
  window.addEventListener('mousemove', (e) => {{
    if (!drag || ws.readyState !== 1) return;
    const [dx, dy] = [e.clientX - drag[0], e.clientY - drag[1]];
    drag = [e.clientX, e.clientY];
    ws.send(JSON.stringify({{type: 'orbit', d_yaw_deg: dx * 0.3, d_pitch_deg: dy * 0.2}}));
  }});
  img.addEventListener('wheel', (e) => {{
    e.preventDefault();
    if (ws.readyState === 1) ws.send(JSON.stringify({{type: 'zoom', factor: e.deltaY > 0 ? 1.15 : 0.87}}));
  }});
}})();
</script>
</body></html>
"#,
        version = esc(&state.catalogue.version),
        scope = esc(&who.scope),
        role = who.role.as_str(),
    )))
}

/// The command-centre wall (`/wall?scene=ID&token=`): the scene's tour streamed in a shared
/// session, KPI cards against the 2025 targets with progress and sparklines, an alert ticker.
#[utoipa::path(get, path = "/wall", tag = "pages",
    params(("scene" = Option<String>, Query, description = "the scene shown"), ("token" = Option<String>, Query, description = "the page's token, for its scripts")),
    responses((status = 200, description = "the wall's HTML (no data: its script fetches it)", body = String, content_type = "text/html")))]
pub async fn wall() -> Html<std::borrow::Cow<'static, str>> {
    Html(page("wall.html", include_str!("pages/wall.html")))
}

/// The analyst page (`/analyst?token=`): pick indicator, level, grain, region and periods; a
/// table, small charts and the CSV of the same query.
#[utoipa::path(get, path = "/analyst", tag = "pages",
    params(("token" = Option<String>, Query, description = "the page's token, for its scripts")),
    responses((status = 200, description = "the analyst page's HTML", body = String, content_type = "text/html")))]
pub async fn analyst() -> Html<std::borrow::Cow<'static, str>> {
    Html(page("analyst.html", include_str!("pages/analyst.html")))
}

/// The planner page (`/planner?scene=ID&token=`): the interactive streamed twin with a pick
/// panel and the scene's bookmarks.
#[utoipa::path(get, path = "/planner", tag = "pages",
    params(("scene" = Option<String>, Query, description = "the scene shown"), ("token" = Option<String>, Query, description = "the page's token, for its scripts")),
    responses((status = 200, description = "the planner page's HTML", body = String, content_type = "text/html")))]
pub async fn planner() -> Html<std::borrow::Cow<'static, str>> {
    Html(page("planner.html", include_str!("pages/planner.html")))
}

/// The 3D Tiles page (`/tiles?scene=ID&token=`): the scene's tiles in CesiumJS (served from
/// `node_modules`, no Cesium ion, no imagery or terrain from anywhere); a click picks a
/// building and shows its properties from the tile's property table.
#[utoipa::path(get, path = "/tiles", tag = "pages",
    params(("scene" = Option<String>, Query, description = "the scene shown"), ("token" = Option<String>, Query, description = "the page's token, for its scripts")),
    responses((status = 200, description = "the 3D Tiles page's HTML", body = String, content_type = "text/html")))]
pub async fn tiles() -> Html<std::borrow::Cow<'static, str>> {
    Html(page("tiles.html", include_str!("pages/tiles.html")))
}

/// The task board and a department's inbox (`/tasks?token=`, optionally
/// `&indicator=&region=&period=` from an alert): counts by state, late and carded tasks
/// first, one task's events, evaluation and the actions of the caller's role.
#[utoipa::path(get, path = "/tasks", tag = "pages",
    params(
        ("token" = Option<String>, Query, description = "the page's token, for its scripts"),
        ("indicator" = Option<String>, Query, description = "from an alert: its indicator"),
        ("region" = Option<String>, Query, description = "from an alert: its region"),
        ("period" = Option<String>, Query, description = "from an alert: its period"),
        ("task" = Option<String>, Query, description = "the task shown"),
    ),
    responses((status = 200, description = "the task page's HTML", body = String, content_type = "text/html")))]
pub async fn tasks() -> Html<std::borrow::Cow<'static, str>> {
    Html(page("tasks.html", include_str!("pages/tasks.html")))
}

/// The pages' shared script.
#[utoipa::path(get, path = "/pages/common.js", tag = "pages",
    responses((status = 200, description = "the pages' shared script", body = String, content_type = "text/javascript")))]
pub async fn common_js() -> impl axum::response::IntoResponse {
    (
        [(
            axum::http::header::CONTENT_TYPE,
            "text/javascript; charset=utf-8",
        )],
        page("common.js", include_str!("pages/common.js")),
    )
}
