//! CIM loading: the real sample files load with the right counts, places and semantics; the
//! streamed CityJSONSeq path equals the whole-file path; bad input fails the whole file with
//! an error naming every bad object. Tests on real files skip when `../shared/data` is absent.

use std::path::{Path, PathBuf};
use twin::cim::{
    self, CimError, DEFAULT_HEIGHT_M, LoadOptions, RegionOptions, Shape, SurfaceKind, load_file,
};
use twin::crs::Crs;

fn shared(relative: &str) -> Option<PathBuf> {
    let p = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../../shared/data")
        .join(relative);
    if p.exists() {
        Some(p)
    } else {
        eprintln!("skipped: {} is absent", p.display());
        None
    }
}

fn lon_lat_bounds(model: &twin::CityModel) -> [f64; 4] {
    let mut b = [
        f64::INFINITY,
        f64::INFINITY,
        f64::NEG_INFINITY,
        f64::NEG_INFINITY,
    ];
    for o in &model.objects {
        if let Some([x, y]) = o.anchor_lon_lat() {
            b = [b[0].min(x), b[1].min(y), b[2].max(x), b[3].max(y)];
        }
    }
    b
}

#[test]
fn delft_cityjson_2_loads_in_place() {
    let Some(path) = shared("cityjson_citygml/delft.json") else {
        return;
    };
    let model = load_file(&path, &LoadOptions::default()).unwrap();
    assert_eq!(model.objects.len(), 570);
    assert_eq!(model.buildings().count(), 160);
    assert_eq!(model.sources[0].1, Crs::Epsg(7415));
    assert!(model.buildings().all(|b| b.lod.as_deref() == Some("1")));
    // Delft's centre is at about 4.36 E, 52.01 N.
    let b = lon_lat_bounds(&model);
    assert!(
        b[0] > 4.34 && b[2] < 4.38 && b[1] > 52.0 && b[3] < 52.02,
        "{b:?}"
    );
    // LoD1 blocks are a few metres to a few tens of metres tall.
    let tallest = model
        .buildings()
        .filter_map(|o| o.height_range_m())
        .map(|r| r[1] - r[0])
        .fold(0.0, f64::max);
    assert!((5.0..60.0).contains(&tallest), "{tallest}");
}

#[test]
fn rotterdam_needs_a_crs_and_keeps_its_semantics() {
    let Some(path) = shared("cityjson_citygml/rotterdam_subset.json") else {
        return;
    };
    let e = load_file(&path, &LoadOptions::default()).unwrap_err();
    assert!(matches!(e, CimError::MissingCrs { .. }), "{e}");
    assert!(e.to_string().ends_with("rotterdam_subset.json"), "{e}");
    let options = LoadOptions {
        crs: Some(Crs::Epsg(7415)),
        preferred_lod: Some("2".into()),
    };
    let model = load_file(&path, &options).unwrap();
    assert_eq!(model.buildings().count(), 16);
    let kinds: Vec<SurfaceKind> = model
        .objects
        .iter()
        .flat_map(|o| match &o.shape {
            Shape::Surfaces(s) => s.iter().map(|s| s.kind).collect(),
            _ => Vec::new(),
        })
        .collect();
    for k in [SurfaceKind::Roof, SurfaceKind::Wall, SurfaceKind::Ground] {
        assert!(kinds.contains(&k), "no {k:?} surface");
    }
    let b = lon_lat_bounds(&model);
    assert!(
        b[0] > 4.4 && b[2] < 4.5 && b[1] > 51.9 && b[3] < 51.95,
        "{b:?}"
    );
}

#[test]
fn den_haag_cityjson_1_1_keeps_building_parts_under_their_building() {
    let Some(path) = shared("cityjson_citygml/DH_01_subs.city.json") else {
        return;
    };
    let options = LoadOptions {
        crs: Some(Crs::Epsg(28992)),
        preferred_lod: None,
    };
    let model = load_file(&path, &options).unwrap();
    assert_eq!(model.objects.len(), 12);
    let parts: Vec<_> = model
        .objects
        .iter()
        .filter(|o| o.kind == "BuildingPart")
        .collect();
    assert_eq!(parts.len(), 8);
    for p in parts {
        let parent = p.parent.as_deref().expect("a part names its building");
        assert!(
            model
                .objects
                .iter()
                .any(|o| o.id == parent && o.kind == "Building"),
            "{parent}"
        );
        assert!(matches!(p.shape, Shape::Surfaces(_)));
    }
}

#[test]
fn shanghai_osm_footprints_merge_clipped_pieces_and_default_heights() {
    let Some(path) = shared("buildings_osm_china/shanghai_bund_lujiazui_buildings.geojson") else {
        return;
    };
    let model = load_file(&path, &LoadOptions::default()).unwrap();
    // 1,572 features, 1,450 distinct buildings (pieces clipped at tile edges share an id).
    assert_eq!(model.objects.len(), 1450);
    let heights: Vec<f64> = model
        .objects
        .iter()
        .filter_map(|o| o.height_range_m())
        .map(|r| r[1])
        .collect();
    let tallest = heights.iter().copied().fold(0.0, f64::max);
    assert_eq!(tallest, 632.0); // the Shanghai Tower
    assert!(heights.iter().filter(|h| **h == DEFAULT_HEIGHT_M).count() > 500);
    let b = lon_lat_bounds(&model);
    assert!(
        b[0] > 121.4 && b[2] < 121.6 && b[1] > 31.1 && b[3] < 31.3,
        "{b:?}"
    );
}

#[test]
fn jiangsu_boundaries_are_corrected_from_gcj02() {
    let Some(path) = shared("boundaries_jiangsu/jiangsu_cities.geojson") else {
        return;
    };
    let options = RegionOptions {
        crs: Crs::Gcj02,
        ..RegionOptions::default()
    };
    let regions = cim::load_regions(&path, &options).unwrap();
    let mut codes: Vec<&str> = regions.iter().map(|r| r.code.as_str()).collect();
    codes.sort();
    let expected: Vec<String> = (1..=13).map(|c| format!("32{c:02}")).collect();
    assert_eq!(codes, expected);
    let raw = cim::load_regions(&path, &RegionOptions::default()).unwrap();
    let nanjing =
        |rs: &[twin::RegionShape]| rs.iter().find(|r| r.code == "3201").unwrap().polygons[0][0][0];
    let (g, w) = (nanjing(&raw), nanjing(&regions));
    let shift_m = (((g[0] - w[0]) * 94_500.0).powi(2) + ((g[1] - w[1]) * 110_900.0).powi(2)).sqrt();
    assert!((200.0..800.0).contains(&shift_m), "{shift_m} m");
}

/// Writes a CityJSON file as CityJSONSeq: a header line, then one feature per object with its
/// own (re-indexed) vertices.
fn to_seq(cityjson: &serde_json::Value) -> String {
    let mut header = cityjson.clone();
    header["CityObjects"] = serde_json::json!({});
    header["vertices"] = serde_json::json!([]);
    let mut out = serde_json::to_string(&header).unwrap();
    let vertices = cityjson["vertices"].as_array().unwrap();
    for (id, object) in cityjson["CityObjects"].as_object().unwrap() {
        let mut object = object.clone();
        let mut local: Vec<serde_json::Value> = Vec::new();
        let mut map = std::collections::HashMap::new();
        fn remap(
            v: &mut serde_json::Value,
            vertices: &[serde_json::Value],
            local: &mut Vec<serde_json::Value>,
            map: &mut std::collections::HashMap<u64, usize>,
        ) {
            match v {
                serde_json::Value::Array(a) => {
                    a.iter_mut().for_each(|x| remap(x, vertices, local, map))
                }
                serde_json::Value::Number(n) => {
                    let i = n.as_u64().unwrap();
                    let k = *map.entry(i).or_insert_with(|| {
                        local.push(vertices[i as usize].clone());
                        local.len() - 1
                    });
                    *v = serde_json::json!(k);
                }
                _ => {}
            }
        }
        for g in object["geometry"].as_array_mut().into_iter().flatten() {
            remap(&mut g["boundaries"], vertices, &mut local, &mut map);
        }
        let feature = serde_json::json!({
            "type": "CityJSONFeature", "id": id,
            "CityObjects": { id.clone(): object }, "vertices": local,
        });
        out.push('\n');
        out.push_str(&serde_json::to_string(&feature).unwrap());
    }
    out.push('\n');
    out
}

#[test]
fn cityjson_seq_streams_the_same_model() {
    let Some(path) = shared("cityjson_citygml/delft.json") else {
        return;
    };
    let whole = load_file(&path, &LoadOptions::default()).unwrap();
    let json: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&path).unwrap()).unwrap();
    let dir = tempfile::tempdir().unwrap();
    let seq = dir.path().join("delft.city.jsonl");
    std::fs::write(&seq, to_seq(&json)).unwrap();
    let streamed = load_file(&seq, &LoadOptions::default()).unwrap();
    let mut a = whole.objects.clone();
    let mut b = streamed.objects.clone();
    a.sort_by(|x, y| x.id.cmp(&y.id));
    b.sort_by(|x, y| x.id.cmp(&y.id));
    assert_eq!(a, b);
}

fn cityjson_with(objects: serde_json::Value, vertices: serde_json::Value) -> serde_json::Value {
    serde_json::json!({
        "type": "CityJSON", "version": "2.0",
        "transform": { "scale": [0.001, 0.001, 0.001], "translate": [85000.0, 447500.0, 0.0] },
        "metadata": { "referenceSystem": "https://www.opengis.net/def/crs/EPSG/0/28992" },
        "CityObjects": objects, "vertices": vertices,
    })
}

fn box_geometry(lod: &str) -> serde_json::Value {
    serde_json::json!({
        "type": "MultiSurface", "lod": lod,
        "boundaries": [[[0, 1, 2, 3]], [[4, 5, 6, 7]]],
    })
}

fn square_vertices() -> serde_json::Value {
    serde_json::json!([
        [0, 0, 0],
        [10000, 0, 0],
        [10000, 10000, 0],
        [0, 10000, 0],
        [0, 0, 5000],
        [10000, 0, 5000],
        [10000, 10000, 5000],
        [0, 10000, 5000]
    ])
}

fn parse(text: &str) -> Result<twin::CityModel, CimError> {
    parse_with(text, &LoadOptions::default())
}

fn parse_with(text: &str, options: &LoadOptions) -> Result<twin::CityModel, CimError> {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("input.json");
    std::fs::write(&path, text).unwrap();
    load_file(&path, options)
}

#[test]
fn lod_selection_prefers_then_falls_back() {
    let doc = cityjson_with(
        serde_json::json!({ "b1": { "type": "Building",
            "geometry": [box_geometry("1"), box_geometry("2.2")] } }),
        square_vertices(),
    )
    .to_string();
    let lod = |preferred: Option<&str>| {
        let options = LoadOptions {
            crs: None,
            preferred_lod: preferred.map(String::from),
        };
        parse_with(&doc, &options).unwrap().objects[0]
            .lod
            .clone()
            .unwrap()
    };
    assert_eq!(lod(None), "2.2");
    assert_eq!(lod(Some("2.2")), "2.2");
    assert_eq!(lod(Some("2")), "1"); // the nearest below
    assert_eq!(lod(Some("0")), "1"); // none below: the lowest above
}

#[test]
fn bad_cityjson_fails_whole_naming_each_object() {
    // A vertex index out of range and a NaN vertex, in two objects; a third is fine.
    let doc = cityjson_with(
        serde_json::json!({
            "good": { "type": "Building", "geometry": [box_geometry("1")] },
            "far": { "type": "Building", "geometry": [{ "type": "MultiSurface", "lod": "1",
                     "boundaries": [[[0, 1, 99]]] }] },
            "nan": { "type": "Building", "geometry": [{ "type": "MultiSurface", "lod": "1",
                     "boundaries": [[[0, 1, 8]]] }] },
        }),
        serde_json::json!([
            [0, 0, 0],
            [10000, 0, 0],
            [10000, 10000, 0],
            [0, 10000, 0],
            [0, 0, 5000],
            [10000, 0, 5000],
            [10000, 10000, 5000],
            [0, 10000, 5000],
            [1, 1, 1]
        ]),
    )
    .to_string()
    .replace("[1,1,1]", "[NaN,1,1]");
    let e = parse(&doc).unwrap_err();
    let CimError::BadObjects {
        problems, total, ..
    } = &e
    else {
        panic!("{e}")
    };
    assert_eq!(*total, 2, "{e}");
    let text = e.to_string();
    assert!(
        text.contains("far: vertex index 99 is out of range (the vertex list has 9)"),
        "{text}"
    );
    assert!(
        text.contains("nan: vertex 8 is not a finite coordinate"),
        "{text}"
    );
    assert!(
        text.contains("nothing was loaded") && text.ends_with("input.json"),
        "{text}"
    );
    assert_eq!(problems.len(), 2);

    // A missing transform is named as such.
    let mut doc = cityjson_with(serde_json::json!({}), serde_json::json!([]));
    doc.as_object_mut().unwrap().remove("transform");
    let e = parse(&doc.to_string()).unwrap_err().to_string();
    assert!(e.contains("missing \"transform\""), "{e}");

    // An unknown CRS names the code.
    let mut doc = cityjson_with(serde_json::json!({}), serde_json::json!([]));
    doc["metadata"]["referenceSystem"] = "EPSG:999999".into();
    let e = parse(&doc.to_string()).unwrap_err().to_string();
    assert!(e.contains("EPSG:999999 is unknown to PROJ"), "{e}");

    // So does an unreadable one.
    let mut doc = cityjson_with(serde_json::json!({}), serde_json::json!([]));
    doc["metadata"]["referenceSystem"] = "Amersfoort please".into();
    let e = parse(&doc.to_string()).unwrap_err().to_string();
    assert!(
        e.contains("unrecognised coordinate reference system \"Amersfoort please\""),
        "{e}"
    );
}

fn footprint(id: &str, ring: &str) -> String {
    format!(
        r#"{{"type":"Feature","id":"{id}","properties":{{"height":12}},"geometry":{{"type":"Polygon","coordinates":[{ring}]}}}}"#
    )
}

#[test]
fn bad_footprints_fail_whole_naming_each_building() {
    let good = "[[121.50,31.23],[121.501,31.23],[121.501,31.231],[121.50,31.231],[121.50,31.23]]";
    let unclosed = "[[121.50,31.23],[121.501,31.23],[121.501,31.231],[121.50,31.231]]";
    let nan = "[[121.50,31.23],[NaN,31.23],[121.501,31.231],[121.50,31.231],[121.50,31.23]]";
    let bowtie = "[[121.50,31.23],[121.501,31.231],[121.501,31.23],[121.50,31.231],[121.50,31.23]]";
    let doc = format!(
        r#"{{"type":"FeatureCollection","features":[{},{},{},{}]}}"#,
        footprint("ok", good),
        footprint("open", unclosed),
        footprint("nan", nan),
        footprint("bowtie", bowtie),
    );
    let e = parse(&doc).unwrap_err().to_string();
    assert!(e.starts_with("3 bad objects: "), "{e}");
    assert!(
        e.contains("open: polygon 0 outer ring is not closed"),
        "{e}"
    );
    assert!(
        e.contains("nan: polygon 0 outer ring: vertex 1 is not a finite coordinate"),
        "{e}"
    );
    assert!(
        e.contains("bowtie: polygon 0: exterior ring has a self-intersection"),
        "{e}"
    );
    // The good one alone loads, with its height.
    let doc = format!(
        r#"{{"type":"FeatureCollection","features":[{}]}}"#,
        footprint("ok", good)
    );
    let model = parse(&doc).unwrap();
    assert_eq!(model.objects[0].height_range_m(), Some([0.0, 12.0]));
}

#[test]
fn buildings_join_their_grid_cell() {
    let Some(path) = shared("buildings_osm_china/shanghai_bund_lujiazui_buildings.geojson") else {
        return;
    };
    let mut model = load_file(&path, &LoadOptions::default()).unwrap();
    let [w, s, e, n] = lon_lat_bounds(&model);
    // A 3 x 3 grid of cells over the buildings, slightly larger than their extent.
    let (w, s, e, n) = (w - 1e-3, s - 1e-3, e + 1e-3, n + 1e-3);
    let (dx, dy) = ((e - w) / 3.0, (n - s) / 3.0);
    let cells: Vec<twin::RegionShape> = (0..9)
        .map(|k| {
            let (x, y) = (w + dx * (k % 3) as f64, s + dy * (k / 3) as f64);
            twin::RegionShape {
                code: format!("310101001001-{k:03}"),
                name: format!("cell {k}"),
                polygons: vec![vec![vec![
                    [x, y],
                    [x + dx, y],
                    [x + dx, y + dy],
                    [x, y + dy],
                ]]],
            }
        })
        .collect();
    let found = twin::join::join(&mut model, &twin::join::RegionIndex::new(&cells));
    assert_eq!(found, model.objects.len());
    for o in &model.objects {
        let [x, y] = o.anchor_lon_lat().unwrap();
        let k: usize = o.region.as_ref().unwrap()[13..].parse().unwrap();
        let col = ((x - w) / dx).floor() as usize;
        let row = ((y - s) / dy).floor() as usize;
        assert_eq!(k, row * 3 + col, "{}", o.id);
    }
}
