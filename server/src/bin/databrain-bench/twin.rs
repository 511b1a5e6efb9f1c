//! `databrain-bench twin`: the city twin's speed on generated cities, written to the `twin`
//! section of `BENCHMARKS.md`. A benchmark, not a test: it measures and reports.
//!
//! For each size it writes a CityJSON 2.0 city of LoD1 blocks (boxes and L-shapes, integer
//! vertices, EPSG:4549 CGCS2000 Gauss-Krüger CM 120E around Nanjing) and, in a child process
//! of its own (so peak memory is per size), loads it (parse + PROJ to WGS84), joins every
//! building to 250 m grid cells, and prepares the scene (projection to the local frame,
//! meshing into tiles). For the smaller city it also times frames at 1280×720 and 1920×1080
//! on the machine's Vulkan device against the same view with the buildings removed (the floor
//! of this render path). The PyPI `cjio` package loads the same files for comparison.

use crate::catalogue::{machine, median, peak_rss_mib, write_section};
use crate::ssim::grey_ssim;
use anyhow::{Context, Result, bail};
use serde_json::{Value, json};
use std::fmt::Write as _;
use std::io::Write as _;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Instant;

/// Building spacing in the generated city, metres.
const SPACING_M: f64 = 30.0;
/// Grid cell size for the join, metres.
const CELL_M: f64 = 250.0;
/// Centre of the generated city in EPSG:4549 (near Nanjing).
const CENTRE: [f64; 2] = [390_000.0, 3_545_000.0];

/// A small deterministic generator (SplitMix64).
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> f64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        ((z ^ (z >> 31)) >> 11) as f64 / (1u64 << 53) as f64
    }
}

fn side(buildings: usize) -> usize {
    (buildings as f64).sqrt().ceil() as usize
}

/// Writes the city as CityJSON 2.0 (one Solid per building) and returns its path.
pub fn write_city(dir: &Path, buildings: usize) -> Result<PathBuf> {
    let path = dir.join(format!("city-{buildings}.city.json"));
    if path.exists() {
        return Ok(path);
    }
    std::fs::create_dir_all(dir)?;
    let partial = dir.join(format!("city-{buildings}.partial"));
    let file = std::fs::File::create(&partial)?;
    let mut w = std::io::BufWriter::with_capacity(1 << 20, file);
    let n_side = side(buildings);
    let origin = [
        CENTRE[0] - n_side as f64 * SPACING_M / 2.0,
        CENTRE[1] - n_side as f64 * SPACING_M / 2.0,
    ];
    write!(
        w,
        r#"{{"type":"CityJSON","version":"2.0","transform":{{"scale":[0.001,0.001,0.001],"translate":[{},{},0.0]}},"metadata":{{"referenceSystem":"https://www.opengis.net/def/crs/EPSG/0/4549"}},"CityObjects":{{"#,
        origin[0], origin[1]
    )?;
    let mut rng = Rng(42);
    let mut vertices: Vec<[i64; 3]> = Vec::with_capacity(buildings * 9);
    for b in 0..buildings {
        let (i, j) = (b % n_side, b / n_side);
        let x0 = i as f64 * SPACING_M + 2.0 + rng.next() * 4.0;
        let y0 = j as f64 * SPACING_M + 2.0 + rng.next() * 4.0;
        let (w_m, d_m) = (8.0 + rng.next() * 14.0, 8.0 + rng.next() * 14.0);
        let h_m = 6.0 + rng.next().powi(3) * 114.0;
        let ring: Vec<[f64; 2]> = if b % 5 == 0 {
            // An L: the full rectangle less its north-east quarter.
            vec![
                [x0, y0],
                [x0 + w_m, y0],
                [x0 + w_m, y0 + d_m / 2.0],
                [x0 + w_m / 2.0, y0 + d_m / 2.0],
                [x0 + w_m / 2.0, y0 + d_m],
                [x0, y0 + d_m],
            ]
        } else {
            vec![
                [x0, y0],
                [x0 + w_m, y0],
                [x0 + w_m, y0 + d_m],
                [x0, y0 + d_m],
            ]
        };
        let base = vertices.len();
        let mm = |v: f64| (v * 1000.0).round() as i64;
        for z in [0.0, h_m] {
            for p in &ring {
                vertices.push([mm(p[0]), mm(p[1]), mm(z)]);
            }
        }
        let n = ring.len();
        let bottom: Vec<usize> = (0..n).rev().map(|k| base + k).collect();
        let top: Vec<usize> = (0..n).map(|k| base + n + k).collect();
        let mut faces = vec![bottom, top];
        for k in 0..n {
            let k2 = (k + 1) % n;
            faces.push(vec![base + k, base + k2, base + n + k2, base + n + k]);
        }
        let faces: Vec<String> = faces
            .iter()
            .map(|f| {
                format!(
                    "[[{}]]",
                    f.iter()
                        .map(|v| v.to_string())
                        .collect::<Vec<_>>()
                        .join(",")
                )
            })
            .collect();
        if b > 0 {
            w.write_all(b",")?;
        }
        write!(
            w,
            r#""b{b}":{{"type":"Building","attributes":{{"measuredHeight":{h_m:.2}}},"geometry":[{{"type":"Solid","lod":"1","boundaries":[[{}]]}}]}}"#,
            faces.join(",")
        )?;
    }
    w.write_all(br#"},"vertices":["#)?;
    for (k, v) in vertices.iter().enumerate() {
        if k > 0 {
            w.write_all(b",")?;
        }
        write!(w, "[{},{},{}]", v[0], v[1], v[2])?;
    }
    w.write_all(b"]}")?;
    w.flush()?;
    drop(w);
    std::fs::rename(&partial, &path)?;
    Ok(path)
}

/// The 250 m grid cells over the city, in WGS84.
fn grid_cells(buildings: usize) -> Result<Vec<twin::RegionShape>> {
    let extent = side(buildings) as f64 * SPACING_M;
    let n = (extent / CELL_M).ceil() as usize;
    let origin = [CENTRE[0] - extent / 2.0, CENTRE[1] - extent / 2.0];
    let to_wgs84 = twin::crs::ToWgs84::new(twin::crs::Crs::Epsg(4549))?;
    let mut cells = Vec::with_capacity(n * n);
    for j in 0..n {
        for i in 0..n {
            let (x, y) = (origin[0] + i as f64 * CELL_M, origin[1] + j as f64 * CELL_M);
            let mut ring = vec![
                (x, y),
                (x + CELL_M, y),
                (x + CELL_M, y + CELL_M),
                (x, y + CELL_M),
            ];
            to_wgs84.convert(&mut ring)?;
            cells.push(twin::RegionShape {
                code: format!("320102001001-{:06}", j * n + i),
                name: format!("cell {i},{j}"),
                polygons: vec![vec![ring.into_iter().map(|(a, b)| [a, b]).collect()]],
            });
        }
    }
    Ok(cells)
}

/// One size, in this process: prints one JSON line with the measurements.
pub fn one(dir: &Path, buildings: usize, frames: bool) -> Result<()> {
    let path = write_city(dir, buildings)?;
    let file_mib = std::fs::metadata(&path)?.len() as f64 / 1048576.0;
    let cells = grid_cells(buildings)?;
    let values: std::collections::HashMap<String, f64> = cells
        .iter()
        .enumerate()
        .map(|(k, c)| (c.code.clone(), (k % 100) as f64 / 100.0))
        .collect();
    // Up to 200k buildings the whole path runs three times and medians are reported (this
    // machine's timings vary by tens of percent from run to run).
    let rounds = if buildings <= 200_000 { 3 } else { 1 };
    let (mut load, mut join, mut prep) = (Vec::new(), Vec::new(), Vec::new());
    let mut last = None;
    let mut joined = 0;
    for _ in 0..rounds {
        drop(last.take()); // free the previous round's scene first
        let t = Instant::now();
        let mut model = twin::cim::load_file(&path, &twin::LoadOptions::default())?;
        load.push(t.elapsed().as_secs_f64());
        let t = Instant::now();
        let index = twin::join::RegionIndex::new(&cells);
        joined = twin::join::join(&mut model, &index);
        join.push(t.elapsed().as_secs_f64());
        let input = twin::SceneInput {
            key: format!("bench-{buildings}"),
            model,
            regions: Vec::new(),
            overlay: Some(twin::Overlay {
                spec: twin::OverlaySpec {
                    title: "bench".into(),
                    unit: "ratio".into(),
                    period: "2025".into(),
                    higher_is_better: true,
                    target: None,
                    ramp: twin::RampKind::Diverging,
                },
                values: values.clone(),
                critical: Vec::new(),
                layers: twin::OverlayLayers::default(),
            }),
        };
        let t = Instant::now();
        let scene = twin::prepare(&input)?;
        prep.push(t.elapsed().as_secs_f64());
        drop(input);
        last = Some(scene);
    }
    let scene = last.expect("at least one round");
    let (load_s, join_s, prepare_s) = (median(&mut load), median(&mut join), median(&mut prep));
    let triangles: usize = scene.tiles.iter().map(|t| t.triangle_count()).sum();
    let mut out = json!({
        "buildings": buildings, "file_mib": file_mib, "load_s": load_s, "join_s": join_s,
        "joined": joined, "prepare_s": prepare_s, "ready_s": load_s + join_s + prepare_s,
        "triangles": triangles, "tiles": scene.tiles.len(),
    });
    if frames {
        let renderer = twin::Renderer::start()?;
        out["adapter"] = json!(renderer.adapter());
        let scene = Arc::new(scene);
        let mut empty = (*scene).clone();
        empty.key = format!("{}-empty", scene.key);
        empty.tiles.clear();
        let empty = Arc::new(empty);
        let camera = twin::OrbitCamera {
            yaw_deg: 20.0,
            pitch_deg: 50.0,
            distance_m: scene.radius_m * 2.2,
            target_en_m: [0.0, 0.0],
        };
        // The scene as prepared (far tiles as impostors), and every tile in full (what the
        // renderer drew before impostors), to show what the impostors cost in fidelity.
        let mut full = (*scene).clone();
        full.key = format!("{}-full", scene.key);
        full.impostors
            .iter_mut()
            .for_each(|i| *i = twin::Impostor::default());
        let full = Arc::new(full);
        let grey = |img: &image::RgbaImage| image::DynamicImage::ImageRgba8(img.clone()).to_luma8();
        // Two views: the overview (the whole city filling the view) and the same from twice
        // as far, where every tile may be its impostor.
        let far = twin::OrbitCamera {
            distance_m: camera.distance_m * 2.0,
            ..camera
        };
        for (prefix, camera) in [("", camera), ("far_", far)] {
            for (w, h) in [(1280u32, 720u32), (1920, 1080)] {
                // Runs of 7 in the order as prepared, empty, empty, as prepared, in full
                // (switching scenes costs a settling frame, so each run starts with an
                // untimed render); medians.
                let mut samples: [Vec<f64>; 3] = Default::default();
                for (s, k) in [
                    (&scene, 0),
                    (&empty, 1),
                    (&empty, 1),
                    (&scene, 0),
                    (&full, 2),
                ] {
                    renderer.render(s.clone(), camera, w, h)?;
                    for turn in 0..7 {
                        // A slightly different camera each time, as a moving viewer would ask.
                        let c = twin::OrbitCamera {
                            yaw_deg: camera.yaw_deg + turn as f32,
                            ..camera
                        };
                        let t = Instant::now();
                        renderer.render(s.clone(), c, w, h)?;
                        samples[k].push(t.elapsed().as_secs_f64() * 1e3);
                    }
                }
                let [prepared, floor, in_full] = &mut samples;
                out[format!("{prefix}frame_ms_{h}")] = json!(median(prepared));
                out[format!("{prefix}empty_ms_{h}")] = json!(median(floor));
                out[format!("{prefix}full_ms_{h}")] = json!(median(in_full));
                // The same view both ways, compared in grey (SSIM, 8×8 windows) and by the
                // mean absolute difference of the channels.
                let a = renderer.render(scene.clone(), camera, w, h)?;
                let b = renderer.render(full.clone(), camera, w, h)?;
                let ssim = grey_ssim(&grey(&a), &grey(&b))?;
                let mad = a
                    .as_raw()
                    .iter()
                    .zip(b.as_raw())
                    .map(|(x, y)| (*x as f64 - *y as f64).abs())
                    .sum::<f64>()
                    / a.as_raw().len() as f64;
                out[format!("{prefix}ssim_{h}")] = json!(ssim);
                out[format!("{prefix}mad_{h}")] = json!(mad);
                if let Some(dir) = std::env::var_os("DATABRAIN_BENCH_FRAMES") {
                    let dir = PathBuf::from(dir);
                    std::fs::create_dir_all(&dir)?;
                    a.save(dir.join(format!("{prefix}impostors-{h}.png")))?;
                    b.save(dir.join(format!("{prefix}full-{h}.png")))?;
                }
            }
        }
        let switch = |lines: u32| {
            let mut d: Vec<f32> = scene
                .impostors
                .iter()
                .filter(|i| i.size > 0)
                .map(|i| i.switch_distance_m(lines))
                .collect();
            d.sort_by(f32::total_cmp);
            d.get(d.len() / 2).copied()
        };
        out["switch_m_720"] = json!(switch(720));
        out["switch_m_1080"] = json!(switch(1080));
        out["camera_distance_m"] = json!(camera.distance_m);
    }
    out["peak_rss_mib"] = json!(peak_rss_mib());
    println!("{out}");
    Ok(())
}

/// The seconds the PyPI `cjio` package takes to read the file (median of `rounds` runs), or
/// why it could not.
fn cjio_load_s(python: &str, path: &Path, rounds: usize) -> Result<f64, String> {
    let mut runs = (0..rounds)
        .map(|_| cjio_once(python, path))
        .collect::<Result<Vec<f64>, String>>()?;
    Ok(median(&mut runs))
}

fn cjio_once(python: &str, path: &Path) -> Result<f64, String> {
    let script = "import sys, time\nfrom cjio import cityjson\nt = time.perf_counter()\nwith open(sys.argv[1]) as f:\n    cm = cityjson.reader(file=f)\nn = len(cm.j['CityObjects'])\nprint(time.perf_counter() - t, n)\n";
    let out = std::process::Command::new(python)
        .args(["-c", script, path.to_str().unwrap_or_default()])
        .output()
        .map_err(|e| format!("cannot run {python}: {e}"))?;
    if !out.status.success() {
        return Err(format!(
            "cjio failed (pip install cjio): {}",
            String::from_utf8_lossy(&out.stderr)
                .lines()
                .last()
                .unwrap_or("")
        ));
    }
    let text = String::from_utf8_lossy(&out.stdout);
    text.split_whitespace()
        .next()
        .and_then(|s| s.parse().ok())
        .ok_or_else(|| format!("unexpected cjio output {text:?}"))
}

pub struct TwinBenchArgs {
    pub dir: PathBuf,
    pub sizes: Vec<usize>,
    pub python: String,
    pub out: PathBuf,
}

pub fn run(args: &TwinBenchArgs) -> Result<()> {
    let exe = std::env::current_exe()?;
    let mut rows: Vec<Value> = Vec::new();
    for (k, &n) in args.sizes.iter().enumerate() {
        let path = write_city(&args.dir, n)?;
        eprintln!("bench-twin: {n} buildings");
        let mut cmd = std::process::Command::new(&exe);
        cmd.args(["twin-one", "--dir"])
            .arg(&args.dir)
            .args(["--buildings", &n.to_string()]);
        if k == 0 {
            cmd.arg("--frames");
        }
        let out = cmd.output()?;
        if !out.status.success() {
            bail!(
                "the {n}-building run failed: {}",
                String::from_utf8_lossy(&out.stderr)
            );
        }
        let line = String::from_utf8_lossy(&out.stdout);
        let mut row: Value = serde_json::from_str(line.trim().lines().last().unwrap_or(""))
            .context("the child's measurements")?;
        let rounds = if n <= 200_000 { 3 } else { 1 };
        row["cjio_s"] = match cjio_load_s(&args.python, &path, rounds) {
            Ok(s) => json!(s),
            Err(e) => json!(e),
        };
        rows.push(row);
    }
    let mut t = String::new();
    writeln!(t, "## The city twin\n")?;
    writeln!(
        t,
        "Written by `databrain-bench twin` on {} ({}).\n",
        machine(),
        chrono::Local::now().format("%Y-%m-%d %H:%M")
    )?;
    writeln!(
        t,
        "Generated cities of LoD1 blocks (CityJSON 2.0, EPSG:4549, in `{}`); \"ready\" is load \
         (parse + PROJ to WGS84) + join to {CELL_M} m grid cells + prepare (projection to the \
         local frame, meshing into tiles), median of 3 runs up to 200k buildings (cjio likewise). Frames are whole render jobs (draw and read back) on \
         the device named, median of 14 in runs of 7 (as prepared, empty, empty, as prepared; in full: 7); \"empty\" is the same view with the buildings removed.\n",
        args.dir.display()
    )?;
    writeln!(
        t,
        "| measure | {} | target |",
        rows.iter()
            .map(|r| format!("{} buildings", r["buildings"]))
            .collect::<Vec<_>>()
            .join(" | ")
    )?;
    writeln!(t, "|---|{}---|", "---|".repeat(rows.len()))?;
    let cell = |r: &Value, key: &str, f: &dyn Fn(f64) -> String| -> String {
        r[key]
            .as_f64()
            .map(f)
            .unwrap_or_else(|| r[key].as_str().map(str::to_owned).unwrap_or("-".into()))
    };
    let line = |label: &str, key: &str, f: &dyn Fn(f64) -> String, target: &str| -> String {
        format!(
            "| {label} | {} | {target} |",
            rows.iter()
                .map(|r| cell(r, key, f))
                .collect::<Vec<_>>()
                .join(" | ")
        )
    };
    let s = |v: f64| format!("{v:.2} s");
    let ms = |v: f64| format!("{v:.0} ms");
    writeln!(
        t,
        "{}",
        line("file size", "file_mib", &|v| format!("{v:.0} MiB"), "")
    )?;
    writeln!(t, "{}", line("load (parse + CRS)", "load_s", &s, ""))?;
    writeln!(t, "{}", line("join to grid cells", "join_s", &s, ""))?;
    writeln!(
        t,
        "{}",
        line("prepare (project + mesh)", "prepare_s", &s, "")
    )?;
    writeln!(t, "{}", line("ready (sum)", "ready_s", &s, "100k ≤ 3 s"))?;
    writeln!(
        t,
        "{}",
        line("triangles", "triangles", &|v| format!("{v:.0}"), "")
    )?;
    writeln!(
        t,
        "{}",
        line(
            "peak resident memory",
            "peak_rss_mib",
            &|v| format!("{v:.0} MiB"),
            ""
        )
    )?;
    writeln!(
        t,
        "{}",
        line("cjio 0.10 load of the same file", "cjio_s", &s, "")
    )?;
    let ratio = |r: &Value| match (
        r["cjio_s"].as_f64(),
        r["load_s"].as_f64(),
        r["ready_s"].as_f64(),
    ) {
        (Some(c), Some(l), Some(ready)) => format!("{:.0}× (ready: {:.0}×)", c / l, c / ready),
        _ => "-".into(),
    };
    writeln!(
        t,
        "| cjio ÷ our load | {} | ≥ 10× |",
        rows.iter().map(ratio).collect::<Vec<_>>().join(" | ")
    )?;
    for (p, view) in [("", "overview"), ("far_", "twice as far")] {
        for h in [720, 1080] {
            let ratio_of = |key: String| {
                move |r: &Value| match (r[&key].as_f64(), r[format!("{p}empty_ms_{h}")].as_f64()) {
                    (Some(f), Some(e)) => format!("{:.2}×", f / e),
                    _ => "-".into(),
                }
            };
            for (label, key) in [
                (
                    format!("{view}, {h}p: frame as prepared (far tiles as impostors)"),
                    format!("{p}frame_ms_{h}"),
                ),
                (
                    format!("{view}, {h}p: frame with every tile in full"),
                    format!("{p}full_ms_{h}"),
                ),
                (
                    format!("{view}, {h}p: empty frame (floor)"),
                    format!("{p}empty_ms_{h}"),
                ),
            ] {
                writeln!(t, "{}", line(&label, &key, &ms, ""))?;
            }
            for (label, key, target) in [
                (
                    format!("{view}, {h}p: frame ÷ empty, as prepared"),
                    format!("{p}frame_ms_{h}"),
                    "≤ 1.25×",
                ),
                (
                    format!("{view}, {h}p: frame ÷ empty, every tile in full"),
                    format!("{p}full_ms_{h}"),
                    "",
                ),
            ] {
                writeln!(
                    t,
                    "| {label} | {} | {target} |",
                    rows.iter()
                        .map(ratio_of(key))
                        .collect::<Vec<_>>()
                        .join(" | ")
                )?;
            }
            let (ssim, mad) = (format!("{p}ssim_{h}"), format!("{p}mad_{h}"));
            let both = |r: &Value| match (r[&ssim].as_f64(), r[&mad].as_f64()) {
                (Some(s), Some(m)) => format!("{s:.3} / {m:.1} of 255"),
                _ => "-".into(),
            };
            writeln!(
                t,
                "| {view}, {h}p: as prepared against in full, SSIM (grey, 8×8 windows) / mean absolute difference | {} | |",
                rows.iter().map(both).collect::<Vec<_>>().join(" | ")
            )?;
        }
    }
    if let Some(r) = rows.first()
        && let (Some(c), Some(a), Some(b)) = (
            r["camera_distance_m"].as_f64(),
            r["switch_m_720"].as_f64(),
            r["switch_m_1080"].as_f64(),
        )
    {
        writeln!(
            t,
            "\nThe view: the whole city from {:.1} km at 50° pitch (the camera {:.1} km above \
             the ground). A tile is drawn as its impostor (its roofs from above, \
             one textured quad) beyond the distance where its median building's walls are under 2 px \
             tall and a texel is under a pixel: {:.1} km for the median tile at 720 lines, {:.1} km at 1080. \
             \"Every tile in full\" is the same scene with the impostors removed; \"twice as far\" \
             is the same view from twice the distance.",
            c / 1000.0,
            c * (50f64.to_radians().sin()) / 1000.0,
            a / 1000.0,
            b / 1000.0
        )?;
    }
    if let Some(a) = rows.first().and_then(|r| r["adapter"].as_str()) {
        writeln!(
            t,
            "\nDevice: {a}. No GPU was lent to this run, so 4K frames per second with 1M buildings on a GPU are not measured."
        )?;
    }
    writeln!(t)?;
    write_section(&args.out, "twin", &t)?;
    println!("{t}");
    Ok(())
}
