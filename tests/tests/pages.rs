//! The pages in headless Chromium, checked as a person would and against the API: the wall at
//! 1920×1080 and 3840×2160 (the same layout scaled), the analyst page's charts, map and
//! drill-down, the planner's legend and drill-down. Every chart's series is compared with
//! the values the API gives the same token; every map must draw one shape per region in
//! scope and none outside it; nothing may spill out of the screen or its panel at either
//! size. Screenshots are compared with golden images in `tests/golden/pages/` within a
//! tolerance, the clock and live pictures masked (`make bless` rewrites them after a
//! reviewed change); they need the real boundaries of `../shared/data` and skip without it.
//! The README's screenshots are these golden images.

use databrain_tests::cdp::{Browser, Cdp};
use databrain_tests::golden::{self, Mask, Tolerance};
use databrain_tests::{Server, run, sample_db};
use serde_json::{Value, json};
use std::path::{Path, PathBuf};

/// Chromium draws the same page the same way on one machine; text antialiasing and the
/// charts' canvases may move a few pixels between Chromium builds.
const TOLERANCE: Tolerance = Tolerance {
    channel_tolerance: 32,
    max_differing_share: 0.01,
};
const ANALYST_NJ: &str = "pages-analyst-nanjing-0001";
const SIZES: [(u32, u32); 2] = [(1920, 1080), (3840, 2160)];

fn shared_boundaries() -> Option<PathBuf> {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../shared/data/boundaries_jiangsu");
    dir.join("jiangsu_cities.geojson").is_file().then_some(dir)
}

/// The sample with the supervised tasks of the demo, the real city and Nanjing district
/// outlines when the shared data is there, and a server with an admin and a Nanjing analyst.
fn setup(dir: &Path) -> Server {
    let db = sample_db(dir, 7);
    let d = db.to_str().unwrap();
    if let Some(b) = shared_boundaries() {
        let out = run(&[
            "boundaries",
            "--db",
            d,
            "--crs",
            "GCJ-02",
            b.join("jiangsu_cities.geojson").to_str().unwrap(),
            b.join("nanjing_districts.geojson").to_str().unwrap(),
        ]);
        assert!(out.starts_with("24 region boundaries replaced"), "{out}");
    }
    run(&["tasks", "seed", "--db", d]);
    let tokens = dir.join("tokens.toml");
    std::fs::write(
        &tokens,
        format!(
            "[[token]]\nname = \"nanjing analyst\"\nrole = \"analyst\"\nscope = \"3201\"\nsecret = \"{ANALYST_NJ}\"\n"
        ),
    )
    .unwrap();
    Server::start_with(
        &db,
        &[],
        &["--tokens", tokens.to_str().unwrap(), "--clock", "data"],
    )
}

async fn get(server: &Server, token: &str, path: &str) -> Value {
    let r = server.get_as(token, path).await;
    assert_eq!(r.status().as_u16(), 200, "{path}");
    r.json().await.unwrap()
}

/// A chart's current option, as ECharts holds it.
async fn option(cdp: &mut Cdp, selector: &str) -> Value {
    let v = cdp
        .eval(&format!(
            "JSON.stringify(echarts.getInstanceByDom(document.querySelector({})).getOption())",
            serde_json::to_string(selector).unwrap()
        ))
        .await;
    serde_json::from_str(
        v.as_str()
            .unwrap_or_else(|| panic!("no chart at {selector}")),
    )
    .unwrap()
}

async fn ready(cdp: &mut Cdp, what: &str) {
    cdp.wait_for(
        "document.body.dataset.ready === '1' && !document.querySelector('[data-pending]') && !document.body.dataset.error",
        what,
    )
    .await;
    let error = cdp.eval("document.body.dataset.error || ''").await;
    assert_eq!(error, json!(""), "{what}");
}

/// Elements outside the screen, and boxes whose content spills out (cut-off titles
/// included), except the lists that scroll by design.
async fn overflow(cdp: &mut Cdp, boxes: &str) -> Vec<String> {
    let js = format!(
        r#"(() => {{
        const W = innerWidth, H = innerHeight, bad = [];
        const name = e => e.tagName.toLowerCase() + (e.id ? '#' + e.id : '') + (e.className && typeof e.className === 'string' ? '.' + e.className.trim().split(/\s+/).join('.') : '');
        const scrolls = e => e.closest('#ticker, #alertlist, .tablewrap');
        for (const e of document.querySelectorAll('body *')) {{
          if (scrolls(e) || !e.checkVisibility({{ visibilityProperty: true }})) continue;
          const r = e.getBoundingClientRect();
          if (!r.width || !r.height) continue;
          if (r.left < -1 || r.top < -1 || r.right > W + 1 || (document.body.dataset.fixed && r.bottom > H + 1)) bad.push(name(e) + ' outside the screen ' + JSON.stringify(r));
        }}
        for (const e of document.querySelectorAll({boxes})) {{
          if (scrolls(e) || !e.checkVisibility({{ visibilityProperty: true }})) continue;
          if (e.scrollWidth > e.clientWidth + 1 || e.scrollHeight > e.clientHeight + 1) bad.push(name(e) + ` spills: ${{e.scrollWidth}}x${{e.scrollHeight}} in ${{e.clientWidth}}x${{e.clientHeight}}`);
        }}
        if (document.documentElement.scrollWidth > W + 1) bad.push('the page scrolls sideways');
        return JSON.stringify(bad);
      }})()"#,
        boxes = serde_json::to_string(boxes).unwrap()
    );
    serde_json::from_str(cdp.eval(&js).await.as_str().unwrap()).unwrap()
}

/// Compares a screenshot with its golden image; a 4K one at half size (the golden images
/// stay small in the repository, and the layout is the same at every size).
fn compare(name: &str, shot: image::RgbaImage, masks: Vec<Mask>) -> Option<String> {
    let (w, h) = shot.dimensions();
    if w <= 1920 {
        return golden::check(&format!("{name}_{w}x{h}"), &shot, &masks, TOLERANCE);
    }
    let half = image::imageops::resize(&shot, w / 2, h / 2, image::imageops::FilterType::Triangle);
    let masks: Vec<Mask> = masks
        .into_iter()
        .map(|m| Mask {
            x: m.x / 2,
            y: m.y / 2,
            width: m.width.div_ceil(2) + 1,
            height: m.height.div_ceil(2) + 1,
        })
        .collect();
    golden::check(&format!("{name}_{w}x{h}_half"), &half, &masks, TOLERANCE)
}

/// The page's screenshot against its golden image, `masked` left out; nothing to compare
/// without the shared boundaries (the golden images show the real ones).
async fn golden_shot(cdp: &mut Cdp, name: &str, masked: &str) -> Option<String> {
    shared_boundaries()?;
    let masks = cdp.rects(masked).await;
    let shot = cdp.screenshot().await;
    let viewport = cdp.eval("[innerWidth, innerHeight]").await;
    assert_eq!(
        json!([shot.width(), shot.height()]),
        viewport,
        "{name}: the screenshot's size"
    );
    compare(name, shot, masks)
}

fn nums(v: &Value) -> Vec<Option<f64>> {
    v.as_array()
        .unwrap()
        .iter()
        .map(|d| {
            let x = if d.is_object() { &d["value"] } else { d };
            x.as_f64()
        })
        .collect()
}

fn close(a: &[Option<f64>], b: &[Option<f64>]) -> bool {
    a.len() == b.len()
        && a.iter().zip(b).all(|(x, y)| match (x, y) {
            (Some(x), Some(y)) => (x - y).abs() <= 1e-9 * x.abs().max(1.0),
            (None, None) => true,
            _ => false,
        })
}

/// The wall at both sizes: gauges, ranking, trend and map equal the API's numbers, the map
/// has every city, the same layout fills both screens and nothing spills.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_wall_shows_the_apis_numbers_at_1080p_and_4k() {
    let tmp = tempfile::tempdir().unwrap();
    let server = setup(tmp.path());
    let token = server.token.clone();
    let mut problems = Vec::new();
    for (w, h) in SIZES {
        let url = format!(
            "{}/wall?scene=jiangsu_by_city&centre=map&token={token}",
            server.base_url
        );
        let mut browser = Browser::open_still(tmp.path(), &url, (w, h)).await;
        let cdp = &mut browser.cdp;
        ready(cdp, "the wall drawn").await;
        cdp.wait_for(
            "document.getElementById('alerts').dataset.count !== undefined && document.getElementById('supervision').style.display === 'flex'",
            "the alerts and the task board",
        )
        .await;
        cdp.eval("document.body.dataset.fixed = '1'").await;

        // One layout, scaled: 1rem is a tenth of a design pixel's 10, i.e. width / 192.
        let (iw, rem) = (
            cdp.eval("innerWidth").await,
            cdp.eval("parseFloat(getComputedStyle(document.documentElement).fontSize)")
                .await,
        );
        assert_eq!(iw, json!(w), "the viewport");
        assert_eq!(rem.as_f64().unwrap(), w as f64 / 192.0, "rem at {w}");
        let wall: Vec<f64> = serde_json::from_str(
            cdp.eval("JSON.stringify(Object.values(document.getElementById('wall').getBoundingClientRect().toJSON()))")
                .await
                .as_str()
                .unwrap(),
        )
        .unwrap();
        assert_eq!(
            (wall[2], wall[3]),
            (w as f64, h as f64),
            "the wall fills the screen"
        );

        // Gauges: the scope's latest complete year of each 2025 target.
        let ids: Vec<String> = serde_json::from_str(
            cdp.eval("JSON.stringify([...document.querySelectorAll('.gauge')].map(g => g.dataset.indicator))")
                .await
                .as_str()
                .unwrap(),
        )
        .unwrap();
        let catalogue = get(&server, &token, "/api/indicators").await;
        let targets: Vec<&str> = catalogue["indicators"]
            .as_array()
            .unwrap()
            .iter()
            .filter(|i| i["target"]["year"] == 2025)
            .map(|i| i["id"].as_str().unwrap())
            .collect();
        assert_eq!(ids, targets, "one gauge per 2025 target");
        for id in &ids {
            let api = get(
                &server,
                &token,
                &format!("/api/indicators/{id}/series?grain=year"),
            )
            .await;
            let last = api["points"]
                .as_array()
                .unwrap()
                .iter()
                .rfind(|p| !p["value"].is_null() && p["partial"] == false)
                .map(|p| p["value"].as_f64().unwrap());
            let o = option(cdp, &format!(".gauge[data-indicator=\"{id}\"]")).await;
            let shown = o["series"][0]["data"][0]["value"].as_f64();
            assert!(
                close(&[shown], &[last.or(Some(0.0))]),
                "gauge {id}: {shown:?} vs the API's {last:?}"
            );
        }

        // The focus indicator: ranking and map by city in its latest complete year.
        let focus = cdp.eval("document.body.dataset.focus").await;
        let period = cdp.eval("document.body.dataset.period").await;
        let (focus, period) = (focus.as_str().unwrap(), period.as_str().unwrap());
        let values = get(
            &server,
            &token,
            &format!("/api/indicators/{focus}/values?level=city&grain=year&region=32&from={period}&to={period}"),
        )
        .await;
        let mut rows: Vec<&Value> = values["rows"]
            .as_array()
            .unwrap()
            .iter()
            .filter(|r| !r["value"].is_null())
            .collect();
        rows.sort_by(|a, b| {
            b["value"]
                .as_f64()
                .partial_cmp(&a["value"].as_f64())
                .unwrap()
        });
        let o = option(cdp, "#ranking").await;
        let codes: Vec<&str> = o["series"][0]["data"]
            .as_array()
            .unwrap()
            .iter()
            .map(|d| d["code"].as_str().unwrap())
            .collect();
        let api_codes: Vec<&str> = rows
            .iter()
            .map(|r| r["region_code"].as_str().unwrap())
            .collect();
        assert_eq!(codes, api_codes, "the ranking's order");
        let api_values: Vec<Option<f64>> = rows.iter().map(|r| r["value"].as_f64()).collect();
        assert!(
            close(&nums(&o["series"][0]["data"]), &api_values),
            "the ranking's values"
        );
        assert_eq!(o["yAxis"][0]["data"].as_array().unwrap().len(), rows.len());

        let trend = get(
            &server,
            &token,
            &format!("/api/indicators/{focus}/series?grain=quarter"),
        )
        .await;
        let o = option(cdp, "#trend").await;
        let api_trend: Vec<Option<f64>> = trend["points"]
            .as_array()
            .unwrap()
            .iter()
            .map(|p| p["value"].as_f64())
            .collect();
        assert!(
            close(&nums(&o["series"][0]["data"]), &api_trend),
            "the trend: {:?} vs {api_trend:?}",
            o["series"][0]["data"]
        );
        assert!(
            o["series"][0]["markLine"]["data"][0]["yAxis"]
                .as_f64()
                .is_some(),
            "the trend's target line"
        );

        let regions = get(&server, &token, "/api/regions?within=32&level=city").await;
        let mut in_scope: Vec<&str> = regions["regions"]
            .as_array()
            .unwrap()
            .iter()
            .map(|r| r["code"].as_str().unwrap())
            .collect();
        in_scope.sort();
        let o = option(cdp, "#map").await;
        let mut drawn: Vec<&str> = o["series"][0]["data"]
            .as_array()
            .unwrap()
            .iter()
            .map(|d| d["name"].as_str().unwrap())
            .collect();
        drawn.sort();
        assert_eq!(drawn, in_scope, "one map shape per city");
        let registered = cdp
            .eval(&format!(
                "MAPS.get({}).features.length",
                json!(o["series"][0]["map"])
            ))
            .await;
        assert_eq!(
            registered,
            json!(in_scope.len()),
            "shapes registered for the map"
        );
        for d in o["series"][0]["data"].as_array().unwrap() {
            let row = rows.iter().find(|r| r["region_code"] == d["name"]);
            assert!(
                close(
                    &[d["value"].as_f64()],
                    &[row.and_then(|r| r["value"].as_f64())]
                ),
                "map value of {}",
                d["name"]
            );
        }

        // The alert list holds the API's alerts, the board the API's counts.
        let listed = cdp
            .eval("document.querySelectorAll('#alertitems li[data-alert]').length")
            .await;
        let count = cdp
            .eval("Number(document.getElementById('alerts').dataset.count)")
            .await;
        assert_eq!(listed, count, "the list and the ticker");
        let board = get(&server, &token, "/api/tasks?limit=1").await;
        let red = cdp.eval("document.getElementById('red').textContent").await;
        assert_eq!(red, json!(board["cards"]["red"].to_string()));

        let spilt = overflow(cdp, ".panel, .panel h2, header, header *").await;
        if !spilt.is_empty() {
            problems.push(format!("{w}x{h}: {}", spilt.join("; ")));
        }
        problems.extend(golden_shot(cdp, "pages/wall", "[data-volatile]").await);
    }
    assert!(problems.is_empty(), "{}", problems.join("\n"));
}

/// The analyst page: its charts equal the API's values; a click on the map and on a bar
/// drills down a level each; the breadcrumbs lead back; comparisons add the second region's
/// line and the second period's bars; the state is in the URL, and the downloads are the
/// query's rows.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_analyst_page_drills_down_and_its_charts_are_the_apis_numbers() {
    let tmp = tempfile::tempdir().unwrap();
    let server = setup(tmp.path());
    let token = server.token.clone();
    let base = server.base_url.clone();
    let url = format!("{base}/analyst?indicator=hotline_on_time_rate&grain=year&token={token}");
    let mut browser = Browser::open_still(tmp.path(), &url, SIZES[0]).await;
    let cdp = &mut browser.cdp;
    ready(cdp, "the analyst page").await;

    async fn check_view(
        cdp: &mut Cdp,
        server: &Server,
        token: &str,
        region: &str,
        level: &str,
    ) -> Value {
        let state: Value = serde_json::from_str(
            cdp.eval("document.body.dataset.state")
                .await
                .as_str()
                .unwrap(),
        )
        .unwrap();
        assert_eq!(
            (
                state["region"].as_str().unwrap(),
                state["level"].as_str().unwrap()
            ),
            (region, level),
            "{state}"
        );
        let period = state["period"].as_str().unwrap().to_owned();
        // The line: the region's own series, complete periods only.
        let series = get(
            server,
            token,
            &format!("/api/indicators/hotline_on_time_rate/series?grain=year&region={region}"),
        )
        .await;
        let api: Vec<Option<f64>> = series["points"]
            .as_array()
            .unwrap()
            .iter()
            .filter(|p| p["partial"] == false)
            .map(|p| p["value"].as_f64())
            .collect();
        let o = option(cdp, "#line").await;
        assert!(
            close(&nums(&o["series"][0]["data"]), &api),
            "line of {region}: {:?} vs {api:?}",
            o["series"][0]["data"]
        );
        // The bars and the map: the level's regions inside it, in the period.
        let values = get(server, token, &format!("/api/indicators/hotline_on_time_rate/values?grain=year&level={level}&region={region}&from={period}&to={period}")).await;
        let rows = values["rows"].as_array().unwrap();
        let o = option(cdp, "#bars").await;
        let bars = o["series"][0]["data"].as_array().unwrap();
        assert_eq!(bars.len(), rows.len(), "one bar per region of {region}");
        for b in bars {
            let r = rows
                .iter()
                .find(|r| r["region_code"] == b["code"])
                .unwrap_or_else(|| panic!("bar {} is no row of the API", b["code"]));
            assert!(
                close(&[b["value"].as_f64()], &[r["value"].as_f64()]),
                "bar {}",
                b["code"]
            );
        }
        let listed = get(
            server,
            token,
            &format!("/api/regions?within={region}&level={level}"),
        )
        .await;
        let mut in_scope: Vec<&str> = listed["regions"]
            .as_array()
            .unwrap()
            .iter()
            .map(|r| r["code"].as_str().unwrap())
            .collect();
        in_scope.sort();
        let o = option(cdp, "#map").await;
        let mut drawn: Vec<String> = o["series"][0]["data"]
            .as_array()
            .unwrap()
            .iter()
            .map(|d| d["name"].as_str().unwrap().to_owned())
            .collect();
        drawn.sort();
        assert_eq!(drawn, in_scope, "one map shape per {level} of {region}");
        let crumbs = cdp.eval("JSON.stringify([...document.querySelectorAll('#crumbs [data-code]')].map(c => c.dataset.code))").await;
        let crumbs: Vec<String> = serde_json::from_str(crumbs.as_str().unwrap()).unwrap();
        assert_eq!(
            crumbs.last().map(String::as_str),
            Some(region),
            "breadcrumbs {crumbs:?}"
        );
        state
    }

    check_view(cdp, &server, &token, "32", "city").await;
    // A click on Nanjing in the map: its counties.
    let nanjing = cdp
        .eval("(() => { const c = echarts.getInstanceByDom(document.getElementById('map')); \
               const r = document.getElementById('map').getBoundingClientRect(); \
               const p = c.convertToPixel({ seriesIndex: 0 }, [118.80, 32.06]); return JSON.stringify([r.x + p[0], r.y + p[1]]); })()")
        .await;
    let [x, y]: [f64; 2] = serde_json::from_str(nanjing.as_str().unwrap()).unwrap();
    cdp.mouse("mousePressed", x, y).await;
    cdp.mouse("mouseReleased", x, y).await;
    cdp.wait_for("document.body.dataset.ready === '1' && JSON.parse(document.body.dataset.state).region === '3201'", "the drill into Nanjing").await;
    ready(cdp, "Nanjing's counties").await;
    check_view(cdp, &server, &token, "3201", "county").await;
    let href = cdp.eval("location.href").await;
    assert!(
        href.as_str().unwrap().contains("region=3201")
            && href.as_str().unwrap().contains("level=county"),
        "{href}"
    );

    // A click on the first bar: that county's townships.
    let bar = cdp
        .eval("(() => { const c = echarts.getInstanceByDom(document.getElementById('bars')); const o = c.getOption(); \
               const d = o.series[0].data[0]; const r = document.getElementById('bars').getBoundingClientRect(); \
               const p = c.convertToPixel({ seriesIndex: 0 }, [0, d.value / 2]); return JSON.stringify([d.code, r.x + p[0], r.y + p[1]]); })()")
        .await;
    let (county, bx, by): (String, f64, f64) = serde_json::from_str(bar.as_str().unwrap()).unwrap();
    cdp.mouse("mousePressed", bx, by).await;
    cdp.mouse("mouseReleased", bx, by).await;
    cdp.wait_for(
        &format!("JSON.parse(document.body.dataset.state || '{{}}').region === '{county}'"),
        "the drill into a county",
    )
    .await;
    ready(cdp, "the county's townships").await;
    check_view(cdp, &server, &token, &county, "township").await;

    // Back up through the breadcrumbs to the province.
    cdp.eval("document.querySelector('#crumbs a[data-code=\"32\"]').click()")
        .await;
    cdp.wait_for("JSON.parse(document.body.dataset.state || '{}').region === '32' && document.body.dataset.ready === '1'", "back at the province").await;
    ready(cdp, "the province again").await;
    check_view(cdp, &server, &token, "32", "city").await;

    // Compare: Nanjing's line beside the province's; an earlier period's bars beside the latest.
    cdp.eval("const c = document.getElementById('compare'); c.value = '3201'; c.dispatchEvent(new Event('change'))").await;
    cdp.wait_for("JSON.parse(document.body.dataset.state || '{}').compare === '3201' && document.body.dataset.ready === '1'", "the comparison").await;
    ready(cdp, "the comparison drawn").await;
    let o = option(cdp, "#line").await;
    let nj = get(
        &server,
        &token,
        "/api/indicators/hotline_on_time_rate/series?grain=year&region=3201",
    )
    .await;
    let api: Vec<Option<f64>> = nj["points"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|p| p["partial"] == false)
        .map(|p| p["value"].as_f64())
        .collect();
    assert!(
        close(&nums(&o["series"][1]["data"]), &api),
        "the compared line"
    );
    let periods = cdp.eval("JSON.stringify([...document.getElementById('vs').options].map(o => o.value).filter(Boolean))").await;
    let periods: Vec<String> = serde_json::from_str(periods.as_str().unwrap()).unwrap();
    assert!(periods.len() >= 2, "{periods:?}");
    let earlier = periods[0].clone();
    cdp.eval(&format!("const v = document.getElementById('vs'); v.value = '{earlier}'; v.dispatchEvent(new Event('change'))")).await;
    cdp.wait_for(&format!("JSON.parse(document.body.dataset.state || '{{}}').vs === '{earlier}' && document.body.dataset.ready === '1'"), "the period compared").await;
    ready(cdp, "the period comparison drawn").await;
    let o = option(cdp, "#bars").await;
    let then = get(&server, &token, &format!("/api/indicators/hotline_on_time_rate/values?grain=year&level=city&from={earlier}&to={earlier}")).await;
    for b in o["series"][1]["data"].as_array().unwrap() {
        let r = then["rows"]
            .as_array()
            .unwrap()
            .iter()
            .find(|r| r["region_code"] == b["code"])
            .unwrap();
        assert!(
            close(&[b["value"].as_f64()], &[r["value"].as_f64()]),
            "{earlier} bar of {}",
            b["code"]
        );
    }

    // The URL carries the view: opened again, the page shows the same state.
    let shared_url = cdp.eval("location.href").await;
    let before = cdp.eval("document.body.dataset.state").await;
    cdp.eval(&format!(
        "setTimeout(() => {{ location.href = {shared_url}; }}, 0)"
    ))
    .await;
    tokio::time::sleep(std::time::Duration::from_millis(500)).await;
    ready(cdp, "the shared view").await;
    assert_eq!(
        cdp.eval("document.body.dataset.state").await,
        before,
        "the view from its URL"
    );

    // The downloads are the table's query in each format.
    let link = |id: &str| format!("document.getElementById('{id}').href");
    let csv = reqwest::get(cdp.eval(&link("csv")).await.as_str().unwrap())
        .await
        .unwrap();
    assert_eq!(csv.status().as_u16(), 200);
    let csv = csv.text().await.unwrap();
    let table_rows = cdp
        .eval("document.querySelectorAll('#rows tr').length")
        .await
        .as_u64()
        .unwrap();
    assert_eq!(
        csv.lines().count() as u64 - 1,
        table_rows,
        "CSV rows and the table's"
    );
    let sdmx = reqwest::get(cdp.eval(&link("sdmx")).await.as_str().unwrap())
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(
        sdmx.starts_with("DATAFLOW,"),
        "{}",
        &sdmx[..80.min(sdmx.len())]
    );
    assert_eq!(sdmx.lines().count(), csv.lines().count());
    let parquet = reqwest::get(cdp.eval(&link("parquet")).await.as_str().unwrap())
        .await
        .unwrap();
    assert_eq!(
        parquet.headers()["content-type"],
        "application/vnd.apache.parquet"
    );
    let parquet = parquet.bytes().await.unwrap();
    assert!(
        parquet.starts_with(b"PAR1") && parquet.ends_with(b"PAR1"),
        "not a Parquet file"
    );

    // The same page on a 4K screen: scaled, nothing cut off or sideways.
    drop(browser);
    let mut problems = Vec::new();
    for (w, h) in SIZES {
        let mut browser = Browser::open_still(tmp.path(), &url, (w, h)).await;
        let cdp = &mut browser.cdp;
        ready(cdp, "the analyst page").await;
        let rem = cdp
            .eval("parseFloat(getComputedStyle(document.documentElement).fontSize)")
            .await;
        assert_eq!(rem.as_f64().unwrap(), w as f64 / 192.0);
        let spilt = overflow(cdp, ".box, .box h3, form, nav").await;
        if !spilt.is_empty() {
            problems.push(format!("analyst {w}x{h}: {}", spilt.join("; ")));
        }
        problems.extend(golden_shot(cdp, "pages/analyst", "[data-volatile]").await);
    }
    assert!(problems.is_empty(), "{}", problems.join("\n"));
}

/// A Nanjing analyst's map holds Nanjing's counties and nothing else, and asking for the
/// province's shapes is refused.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_scoped_map_draws_its_own_regions_only() {
    let tmp = tempfile::tempdir().unwrap();
    let server = setup(tmp.path());
    let url = format!(
        "{}/analyst?indicator=hotline_on_time_rate&grain=year&token={ANALYST_NJ}",
        server.base_url
    );
    let mut browser = Browser::open_still(tmp.path(), &url, SIZES[0]).await;
    let cdp = &mut browser.cdp;
    ready(cdp, "the Nanjing analyst's page").await;
    let o = option(cdp, "#map").await;
    let drawn: Vec<&str> = o["series"][0]["data"]
        .as_array()
        .unwrap()
        .iter()
        .map(|d| d["name"].as_str().unwrap())
        .collect();
    let listed = get(&server, ANALYST_NJ, "/api/regions").await;
    assert_eq!(listed["within"], "3201");
    assert_eq!(listed["level"], "county");
    let codes: Vec<&str> = listed["regions"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["code"].as_str().unwrap())
        .collect();
    assert!(
        !codes.is_empty() && codes.iter().all(|c| c.starts_with("3201")),
        "{codes:?}"
    );
    assert_eq!(drawn, codes, "the map's shapes");
    let registered = cdp.eval("JSON.stringify([...MAPS.values()].flatMap(g => g.features.map(f => f.properties.code)))").await;
    let registered: Vec<String> = serde_json::from_str(registered.as_str().unwrap()).unwrap();
    assert!(
        registered.iter().all(|c| c.starts_with("3201")),
        "a shape outside the scope reached the page: {registered:?}"
    );
    let refused = reqwest::Client::new()
        .get(format!(
            "{}/api/regions/shapes?within=32&level=city",
            server.base_url
        ))
        .bearer_auth(ANALYST_NJ)
        .send()
        .await
        .unwrap();
    assert_eq!(refused.status().as_u16(), 403);
}

/// The planner page (the streamed twin with its legend and drill-down) and the task board,
/// as golden images: the README shows them. The live picture and the clock are masked.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_planner_and_the_task_board_match_their_golden_images() {
    if shared_boundaries().is_none() {
        eprintln!("skipped: ../shared/data/boundaries_jiangsu is absent");
        return;
    }
    let tmp = tempfile::tempdir().unwrap();
    let server = setup(tmp.path());
    let (base, token) = (server.base_url.clone(), server.token.clone());
    let mut problems = Vec::new();
    for (name, path, ready_js) in [
        (
            "planner",
            format!("/planner?scene=demo_district&token={token}"),
            "Number(document.getElementById('view').dataset.seq || 0) >= 1 && document.getElementById('legendbody').dataset.classes \
             && document.querySelector('#children button')",
        ),
        (
            "tasks",
            format!("/tasks?token={token}"),
            "document.querySelectorAll('#rows tr.task').length > 0 && document.getElementById('overdue')",
        ),
    ] {
        let mut browser = Browser::open_still(tmp.path(), &format!("{base}{path}"), SIZES[0]).await;
        let cdp = &mut browser.cdp;
        cdp.wait_for(ready_js, name).await;
        // The first streamed frame replaces the snapshot; give the image a moment to decode.
        tokio::time::sleep(std::time::Duration::from_millis(500)).await;
        problems.extend(golden_shot(cdp, &format!("pages/{name}"), "#view, [data-volatile]").await);
    }
    assert!(problems.is_empty(), "{}", problems.join("\n"));
}
