//! The scene's 3D Tiles as a client reads them: `tileset.json` and every tile over HTTP, each
//! GLB through a third-party glTF reader, every building's properties checked against the
//! indicator API for the same caller, withheld values absent, scope kept; `databrain tiles`
//! writes the same tiles; and CesiumJS in Chromium draws them and picks a building whose id
//! and value are the tile's.

use databrain_tests::cdp::Browser;
use databrain_tests::{Server, run, sample_db};
use serde_json::Value;
use std::collections::HashMap;

const VIEWER_NJ: &str = "tiles-viewer-nanjing-0001";
const ANALYST_GULOU: &str = "tiles-analyst-gulou-00001";
const NO_VALUE: f64 = f64::MIN;

fn server(dir: &std::path::Path) -> (Server, std::path::PathBuf) {
    let db = sample_db(dir, 7);
    let tokens = dir.join("tokens.toml");
    std::fs::write(
        &tokens,
        format!(
            "[[token]]\nname = \"nanjing viewer\"\nrole = \"viewer\"\nscope = \"3201\"\nsecret = \"{VIEWER_NJ}\"\n\
             [[token]]\nname = \"gulou analyst\"\nrole = \"analyst\"\nscope = \"320106\"\nsecret = \"{ANALYST_GULOU}\"\n"
        ),
    )
    .unwrap();
    let server = Server::start_with(&db, &[], &["--tokens", tokens.to_str().unwrap()]);
    (server, db)
}

async fn get(server: &Server, token: &str, path: &str) -> (u16, Vec<u8>) {
    let r = server.get_as(token, path).await;
    (r.status().as_u16(), r.bytes().await.unwrap().to_vec())
}

/// One tile as read back: its features' properties and its placed vertices' bounds.
struct Tile {
    ids: Vec<String>,
    regions: Vec<String>,
    heights_m: Vec<f64>,
    values: Vec<f64>,
    /// glTF (y-up) bounds of the positions.
    bounds: [[f32; 3]; 2],
    /// Each feature's top centre, metres east, north and up of the tileset's origin.
    tops_enu: Vec<[f64; 3]>,
    value_description: String,
}

/// The bytes of buffer view `i` of the binary chunk.
fn buffer_view<'a>(blob: &'a [u8], doc: &Value, i: u64) -> &'a [u8] {
    let v = &doc["bufferViews"][i as usize];
    let start = v["byteOffset"].as_u64().unwrap_or(0) as usize;
    &blob[start..start + v["byteLength"].as_u64().unwrap() as usize]
}

/// Reads a GLB with the `gltf` crate (which validates it), then its two extensions.
fn read_tile(glb: &[u8]) -> Tile {
    let gltf = gltf::Gltf::from_slice(glb).expect("a valid GLB");
    let blob = gltf.blob.as_deref().expect("a binary chunk");
    let doc: Value = serde_json::to_value(gltf.document.as_json()).unwrap();
    let view = |i: u64| buffer_view(blob, &doc, i);
    // Extension data the gltf crate keeps as JSON: read it from the GLB's JSON chunk.
    let json_len = u32::from_le_bytes(glb[12..16].try_into().unwrap()) as usize;
    let raw: Value = serde_json::from_slice(&glb[20..20 + json_len]).unwrap();
    let used: Vec<&str> = raw["extensionsUsed"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v.as_str().unwrap())
        .collect();
    assert_eq!(used, ["EXT_mesh_features", "EXT_structural_metadata"]);
    let metadata = &raw["extensions"]["EXT_structural_metadata"];
    let table = &metadata["propertyTables"][0];
    let count = table["count"].as_u64().unwrap() as usize;
    let strings = |name: &str| -> Vec<String> {
        let p = &table["properties"][name];
        let data = view(p["values"].as_u64().unwrap());
        let offsets: Vec<usize> = view(p["stringOffsets"].as_u64().unwrap())
            .chunks(4)
            .map(|c| u32::from_le_bytes(c.try_into().unwrap()) as usize)
            .collect();
        assert_eq!(
            offsets.len(),
            count + 1,
            "{name}: one offset per row and one more"
        );
        offsets
            .windows(2)
            .map(|w| String::from_utf8(data[w[0]..w[1]].to_vec()).unwrap())
            .collect()
    };
    let numbers = |name: &str| -> Vec<f64> {
        let data = view(table["properties"][name]["values"].as_u64().unwrap());
        assert_eq!(data.len(), count * 8, "{name}");
        data.chunks(8)
            .map(|c| f64::from_le_bytes(c.try_into().unwrap()))
            .collect()
    };
    // Every vertex names a feature of the table, and every feature has vertices.
    let mesh = gltf.meshes().next().unwrap();
    let primitive = mesh.primitives().next().unwrap();
    let features =
        &raw["meshes"][0]["primitives"][0]["extensions"]["EXT_mesh_features"]["featureIds"][0];
    assert_eq!(features["featureCount"].as_u64(), Some(count as u64));
    assert_eq!(features["propertyTable"], 0);
    // The feature-id attribute (an application-specific `_` name, which glTF allows).
    let attribute = raw["meshes"][0]["primitives"][0]["attributes"]["_FEATURE_ID_0"]
        .as_u64()
        .expect("a _FEATURE_ID_0 attribute");
    let accessor = &doc["accessors"][attribute as usize];
    let ids: Vec<f32> = view(accessor["bufferView"].as_u64().unwrap())
        .chunks(4)
        .map(|c| f32::from_le_bytes(c.try_into().unwrap()))
        .collect();
    let mut used = vec![false; count];
    for id in &ids {
        assert!(
            id.fract() == 0.0 && (*id as usize) < count,
            "feature id {id}"
        );
        used[*id as usize] = true;
    }
    assert!(used.iter().all(|u| *u), "a feature without vertices");
    let position = primitive.get(&gltf::Semantic::Positions).unwrap();
    assert_eq!(position.count(), ids.len());
    let positions: Vec<[f32; 3]> = view(
        doc["accessors"][position.index()]["bufferView"]
            .as_u64()
            .unwrap(),
    )
    .chunks(12)
    .map(|c| {
        let f = |k: usize| f32::from_le_bytes(c[k * 4..k * 4 + 4].try_into().unwrap());
        [f(0), f(1), f(2)]
    })
    .collect();
    // glTF (e, u, -n): the mean east and north of a feature's vertices, and its highest up.
    let mut tops = vec![[0.0f64, 0.0, f64::NEG_INFINITY, 0.0]; count];
    for (p, id) in positions.iter().zip(&ids) {
        let t = &mut tops[*id as usize];
        t[0] += p[0] as f64;
        t[1] -= p[2] as f64;
        t[2] = t[2].max(p[1] as f64);
        t[3] += 1.0;
    }
    let tops_enu = tops
        .iter()
        .map(|t| [t[0] / t[3], t[1] / t[3], t[2]])
        .collect();
    let bounds = primitive.bounding_box();
    Tile {
        ids: strings("id"),
        regions: strings("region"),
        heights_m: numbers("height_m"),
        values: numbers("value"),
        bounds: [bounds.min, bounds.max],
        tops_enu,
        value_description:
            metadata["schema"]["classes"]["building"]["properties"]["value"]["description"]
                .as_str()
                .unwrap()
                .to_owned(),
    }
}

/// The whole tileset as `token` gets it.
async fn tiles(server: &Server, token: &str) -> (Value, Vec<Tile>) {
    let (status, body) = get(
        server,
        token,
        "/api/scenes/demo_district/tiles/tileset.json",
    )
    .await;
    assert_eq!(status, 200);
    let tileset: Value = serde_json::from_slice(&body).unwrap();
    let mut out = Vec::new();
    for child in tileset["root"]["children"].as_array().unwrap() {
        let uri = child["content"]["uri"].as_str().unwrap();
        let (status, glb) = get(
            server,
            token,
            &format!("/api/scenes/demo_district/tiles/{uri}"),
        )
        .await;
        assert_eq!(status, 200, "{uri}");
        let tile = read_tile(&glb);
        // The child's box (z-up ENU) holds the tile's vertices (glTF y-up: e, u, -n).
        let b = child["boundingVolume"]["box"].as_array().unwrap();
        let b: Vec<f64> = b.iter().map(|v| v.as_f64().unwrap()).collect();
        let (lo, hi) = (tile.bounds[0], tile.bounds[1]);
        for (axis, (min, max)) in [
            (0, (lo[0] as f64, hi[0] as f64)),
            (1, (-hi[2] as f64, -lo[2] as f64)),
            (2, (lo[1] as f64, hi[1] as f64)),
        ] {
            let (centre, half) = (b[axis], b[3 + axis * 4]);
            assert!(
                min >= centre - half - 1e-3 && max <= centre + half + 1e-3,
                "{uri}: axis {axis} {min}..{max} outside {centre}±{half}"
            );
        }
        out.push(tile);
    }
    (tileset, out)
}

/// The value the API gives each region of the district, grid cells to the district itself,
/// for `token`, in the tiles' period.
async fn api_values(server: &Server, token: &str, period: &str) -> HashMap<String, Option<f64>> {
    let mut out = HashMap::new();
    for level in ["grid", "community", "township", "county"] {
        let (status, body) = get(
            server,
            token,
            &format!("/api/indicators/hotline_on_time_rate/values?level={level}&grain=year&from={period}&to={period}&region=320102"),
        )
        .await;
        assert_eq!(status, 200, "{}", String::from_utf8_lossy(&body));
        let v: Value = serde_json::from_slice(&body).unwrap();
        for r in v["rows"].as_array().unwrap() {
            out.insert(
                r["region_code"].as_str().unwrap().to_owned(),
                r["value"].as_f64(),
            );
        }
    }
    out
}

/// A building's region and the regions above it up to the district: a grid cell
/// `<community>-nnn`, then its community (12 digits), township (9) and county (6).
fn ancestry(region: &str) -> Vec<String> {
    let mut chain = vec![region.to_owned()];
    let community = region.split('-').next().unwrap_or(region);
    for len in [12, 9, 6] {
        if community.len() >= len && chain.last().map(String::as_str) != Some(&community[..len]) {
            chain.push(community[..len].to_owned());
        }
    }
    chain
}

/// Checks a building's tile value against the API: its region's value; where the API has
/// none for the region (no data, or withheld from this caller), nothing or the value of a
/// region above it that the caller sees (what the twin shows), never a withheld one.
fn check_value(
    id: &str,
    region: &str,
    tile_value: f64,
    api: &HashMap<String, Option<f64>>,
) -> bool {
    let close = |v: f64| (tile_value - v).abs() <= 1e-9 * v.abs().max(1.0);
    let chain = ancestry(region);
    let Some(own) = api.get(&chain[0]) else {
        return false;
    };
    match own {
        Some(v) => assert!(close(*v), "{id} in {region}: tile {tile_value}, API {v}"),
        None => {
            let shown_above = chain[1..]
                .iter()
                .find_map(|r| api.get(r).copied().flatten());
            assert!(
                tile_value == NO_VALUE || shown_above.is_some_and(close),
                "{id} in {region}: the API has no value there, the tile has {tile_value} (above it: {shown_above:?})"
            );
        }
    }
    true
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tiles_carry_every_buildings_properties_as_the_api_gives_them() {
    let tmp = tempfile::tempdir().unwrap();
    let (server, db) = server(tmp.path());
    let (tileset, admin) = tiles(&server, &server.token).await;
    assert_eq!(tileset["asset"]["version"], "1.1");
    // The root places the tiles at the district (Xuanwu, Nanjing): its ENU origin in ECEF.
    let t: Vec<f64> = tileset["root"]["transform"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v.as_f64().unwrap())
        .collect();
    assert_eq!(t.len(), 16);
    let (x, y, z) = (t[12], t[13], t[14]);
    let lon = y.atan2(x).to_degrees();
    let lat = z.atan2(x.hypot(y)).to_degrees();
    assert!(
        (118.7..119.0).contains(&lon) && (31.9..32.2).contains(&lat),
        "{lon} {lat}"
    );
    assert!(!admin.is_empty());
    let period = admin[0]
        .value_description
        .rsplit(", ")
        .next()
        .unwrap()
        .to_owned();
    let values = api_values(&server, &server.token, &period).await;
    let (mut checked, mut buildings) = (0, 0);
    let mut seen = std::collections::HashSet::new();
    for tile in &admin {
        for k in 0..tile.ids.len() {
            assert!(
                seen.insert(tile.ids[k].clone()),
                "{} in two tiles",
                tile.ids[k]
            );
            assert!(tile.heights_m[k].is_finite() && tile.heights_m[k] >= 0.0);
            buildings += 1;
            if check_value(&tile.ids[k], &tile.regions[k], tile.values[k], &values) {
                checked += 1;
            }
        }
    }
    assert!(
        checked * 10 >= buildings * 9,
        "only {checked} of {buildings} buildings stand in a grid cell the API lists"
    );

    // A Nanjing viewer: the same buildings, and no value the API withholds from a viewer.
    let (_, viewer) = tiles(&server, VIEWER_NJ).await;
    let viewer_values = api_values(&server, VIEWER_NJ, &period).await;
    let mut withheld = 0;
    for tile in &viewer {
        for k in 0..tile.ids.len() {
            if viewer_values.get(&tile.regions[k]) == Some(&None)
                && values.get(&tile.regions[k]).is_some_and(|v| v.is_some())
            {
                withheld += 1;
            }
            check_value(
                &tile.ids[k],
                &tile.regions[k],
                tile.values[k],
                &viewer_values,
            );
        }
    }
    let total: usize = viewer.iter().map(|t| t.ids.len()).sum();
    assert_eq!(total, buildings);
    // The sample's small cells are suppressed for viewers: the check above saw some.
    assert!(
        withheld > 0,
        "no building stands in a cell withheld from the viewer"
    );
    // Outside the caller's scope the scene and its tiles are refused.
    for path in [
        "/api/scenes/demo_district/tiles/tileset.json",
        "/api/scenes/demo_district/tiles/t0.glb",
    ] {
        let (status, _) = get(&server, ANALYST_GULOU, path).await;
        assert_eq!(status, 403, "{path} for an analyst of another district");
    }
    for bad in ["t99999.glb", "..%2Ft0.glb", "t0.gltf", "tileset.json.glb"] {
        let (status, _) = get(
            &server,
            &server.token,
            &format!("/api/scenes/demo_district/tiles/{bad}"),
        )
        .await;
        assert_eq!(status, 404, "{bad}");
    }

    // `databrain tiles` writes the operator's tileset: the same tiles, byte for byte (run
    // once the server has let go of the database file).
    let mut served = HashMap::new();
    for child in tileset["root"]["children"].as_array().unwrap() {
        let uri = child["content"]["uri"].as_str().unwrap().to_owned();
        let (_, glb) = get(
            &server,
            &server.token,
            &format!("/api/scenes/demo_district/tiles/{uri}"),
        )
        .await;
        served.insert(uri, glb);
    }
    let mut server = server;
    assert!(server.terminate(std::time::Duration::from_secs(30)));
    let out = tmp.path().join("tiles");
    let printed = run(&[
        "tiles",
        "--db",
        db.to_str().unwrap(),
        "--scene",
        "demo_district",
        "--out",
        out.to_str().unwrap(),
    ]);
    assert!(printed.starts_with("wrote "), "{printed}");
    let written: Value =
        serde_json::from_slice(&std::fs::read(out.join("tileset.json")).unwrap()).unwrap();
    assert_eq!(written["root"]["children"], tileset["root"]["children"]);
    for child in written["root"]["children"].as_array().unwrap() {
        let uri = child["content"]["uri"].as_str().unwrap();
        let file = std::fs::read(out.join(uri)).unwrap();
        assert_eq!(Some(&file), served.get(uri), "{uri}");
    }
}

/// CesiumJS (from node_modules, no network) draws the tiles and a pick names a building and
/// its value as the tiles hold them.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cesium_draws_the_tiles_and_picks_a_building() {
    let tmp = tempfile::tempdir().unwrap();
    let (server, _db) = server(tmp.path());
    let (_, tiles) = tiles(&server, &server.token).await;
    let url = format!(
        "{}/tiles?scene=demo_district&token={}",
        server.base_url, server.token
    );
    let mut browser = Browser::open(tmp.path(), &url, (1280, 800)).await;
    let cdp = &mut browser.cdp;
    cdp.wait_for(
        "document.body.dataset.loaded || document.getElementById('message').textContent",
        "the tiles in CesiumJS",
    )
    .await;
    let message = cdp
        .eval("document.getElementById('message').textContent")
        .await;
    assert_eq!(message, "", "the page said: {message}");
    // Pick the tallest building at its roof (nothing stands in front of the top of it).
    let (tallest, top) = tiles
        .iter()
        .flat_map(|t| t.ids.iter().zip(&t.tops_enu))
        .max_by(|a, b| a.1[2].total_cmp(&b.1[2]))
        .unwrap();
    let picked = cdp
        .eval(&format!(
            "(() => {{ const id = pickAtLocal({}, {}, {}); return id && JSON.stringify([id, document.body.dataset.value, document.body.dataset.region]); }})()",
            top[0],
            top[1],
            top[2] - 0.5
        ))
        .await;
    let picked: Vec<String> =
        serde_json::from_str(picked.as_str().expect("a building at the tallest roof")).unwrap();
    assert_eq!(&picked[0], tallest, "the pick at the tallest roof");
    let (tile, k) = tiles
        .iter()
        .find_map(|t| t.ids.iter().position(|id| *id == picked[0]).map(|k| (t, k)))
        .expect("the picked id is a building of the tiles");
    assert_eq!(picked[2], tile.regions[k]);
    match tile.values[k] {
        NO_VALUE => assert_eq!(picked[1], ""),
        v => assert!((picked[1].parse::<f64>().unwrap() - v).abs() <= 1e-9 * v.abs().max(1.0)),
    }
    let panel = cdp
        .eval("document.getElementById('pickbody').innerText")
        .await;
    assert!(panel.as_str().unwrap().contains(&picked[0]), "{panel}");
}
