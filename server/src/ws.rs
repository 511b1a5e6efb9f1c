//! The view stream, `GET /ws/view?scene=ID`: JPEG frames of a scene from a camera the browser
//! steers.
//!
//! Protocol. Server to browser: for every frame, a text message
//! `{"type":"frame","seq":N,"bytes":B,"width":W,"height":H,"camera":{...},...provenance}`
//! followed by a binary message with the JPEG; for every pick a text message
//! `{"type":"pick","x":..,"y":..,"hit":{...}|null}`. Browser to server, text messages:
//! `{"type":"orbit","d_yaw_deg":10,"d_pitch_deg":-5}`, `{"type":"zoom","factor":0.8}`,
//! `{"type":"pan","dx_px":40,"dy_px":-10}` (the content follows the pointer),
//! `{"type":"pick","x":320,"y":180}` (pixels of the current frame),
//! `{"type":"bookmark","name":"overview"}`, `{"type":"resize","width":1280,"height":720}`,
//! `{"type":"reset"}`. A frame is rendered only when the view changed (or it spins);
//! commands that arrive during a render are folded into the next one, so a slow client gets
//! the newest view rather than a queue. [`run_view`] is written over a generic `Sink`/`Stream`
//! so the protocol is tested without sockets.

use crate::error::AppError;
use crate::routes::{blocking, number, only_known};
use crate::state::AppState;
use crate::views;
use axum::extract::ws::rejection::WebSocketUpgradeRejection;
use axum::extract::ws::{Message, WebSocketUpgrade};
use axum::extract::{Query, State};
use axum::response::Response;
use futures_util::{Sink, SinkExt, Stream, StreamExt};
use scenes::OrbitCamera;
use serde_json::{Value, json};
use std::collections::HashMap;
use std::future::Future;
use std::time::Duration;

#[derive(Debug, Clone, PartialEq)]
pub enum Incoming {
    Text(String),
    Close,
}

#[derive(Debug, Clone, PartialEq)]
pub enum Outgoing {
    Text(String),
    Binary(Vec<u8>),
}

#[derive(Debug, Clone)]
pub struct ViewConfig {
    pub fps: f32,
    /// Degrees per second the camera turns by itself (0 for a still view).
    pub spin_deg_per_s: f32,
    /// Frame size at the start, pixels.
    pub size: (u32, u32),
    /// The scene's named cameras.
    pub bookmarks: Vec<(String, OrbitCamera)>,
}

#[derive(Debug, PartialEq)]
enum Command {
    Orbit { d_yaw_deg: f32, d_pitch_deg: f32 },
    Zoom { factor: f32 },
    Pan { dx_px: f32, dy_px: f32 },
    Pick { x: f32, y: f32 },
    Bookmark { name: String },
    Resize { width: u32, height: u32 },
    Reset,
}

/// Largest frame a viewer may ask for (a 4K wall).
const MAX_SIZE: (u32, u32) = (3840, 2160);

fn parse_command(text: &str) -> Result<Command, String> {
    let v: Value = serde_json::from_str(text).map_err(|e| format!("not JSON: {e}"))?;
    let num = |k: &str| -> Result<f32, String> {
        let x = v
            .get(k)
            .and_then(Value::as_f64)
            .ok_or_else(|| format!("{k} must be a number"))? as f32;
        if x.is_finite() {
            Ok(x)
        } else {
            Err(format!("{k} must be finite"))
        }
    };
    match v.get("type").and_then(Value::as_str) {
        Some("orbit") => Ok(Command::Orbit {
            d_yaw_deg: v.get("d_yaw_deg").map_or(Ok(0.0), |_| num("d_yaw_deg"))?,
            d_pitch_deg: v
                .get("d_pitch_deg")
                .map_or(Ok(0.0), |_| num("d_pitch_deg"))?,
        }),
        Some("zoom") => Ok(Command::Zoom {
            factor: num("factor")?,
        }),
        Some("pan") => Ok(Command::Pan {
            dx_px: v.get("dx_px").map_or(Ok(0.0), |_| num("dx_px"))?,
            dy_px: v.get("dy_px").map_or(Ok(0.0), |_| num("dy_px"))?,
        }),
        Some("pick") => Ok(Command::Pick {
            x: num("x")?,
            y: num("y")?,
        }),
        Some("bookmark") => Ok(Command::Bookmark {
            name: v
                .get("name")
                .and_then(Value::as_str)
                .ok_or("name must be a bookmark's name")?
                .to_owned(),
        }),
        Some("resize") => {
            let (w, h) = (num("width")?, num("height")?);
            let ok = |v: f32, max: u32| v.fract() == 0.0 && (16.0..=max as f32).contains(&v);
            if !(ok(w, MAX_SIZE.0) && ok(h, MAX_SIZE.1)) {
                return Err(format!(
                    "size {w}x{h} is outside 16..={}x16..={} whole pixels",
                    MAX_SIZE.0, MAX_SIZE.1
                ));
            }
            Ok(Command::Resize {
                width: w as u32,
                height: h as u32,
            })
        }
        Some("reset") => Ok(Command::Reset),
        Some(other) => Err(format!(
            "unknown command type {other:?} (expected orbit, zoom, pan, pick, bookmark, resize or reset)"
        )),
        None => Err("missing command type".into()),
    }
}

/// Serves one view until the browser closes it. `render` turns a camera and size into JPEG
/// bytes, `pick` a camera, size and pixel into what is there (JSON, `null` for nothing);
/// `provenance` is merged into every frame message.
pub async fn run_view<S, R, F, Fut, P, PFut>(
    mut sink: S,
    mut incoming: R,
    initial: OrbitCamera,
    config: ViewConfig,
    provenance: Value,
    mut render: F,
    mut pick: P,
) -> Result<(), String>
where
    S: Sink<Outgoing> + Unpin,
    R: Stream<Item = Incoming> + Unpin,
    F: FnMut(OrbitCamera, (u32, u32)) -> Fut,
    Fut: Future<Output = Result<Vec<u8>, String>>,
    P: FnMut(OrbitCamera, (u32, u32), [f32; 2]) -> PFut,
    PFut: Future<Output = Result<Value, String>>,
{
    let mut camera = initial;
    let mut size = config.size;
    let mut tick = tokio::time::interval(Duration::from_secs_f32(1.0 / config.fps));
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Skip);
    let mut dirty = true;
    let mut seq: u64 = 0;
    loop {
        tokio::select! {
            msg = incoming.next() => match msg {
                None | Some(Incoming::Close) => return Ok(()),
                Some(Incoming::Text(text)) => match parse_command(&text) {
                    Ok(Command::Orbit { d_yaw_deg, d_pitch_deg }) => { camera.orbit(d_yaw_deg, d_pitch_deg); dirty = true; }
                    Ok(Command::Zoom { factor }) => { camera.zoom(factor); dirty = true; }
                    Ok(Command::Pan { dx_px, dy_px }) => {
                        let m = camera.distance_m * 2.0 * (twin::FOV_DEG.to_radians() / 2.0).tan() / size.1 as f32;
                        camera.pan(-dx_px * m, dy_px * m);
                        dirty = true;
                    }
                    Ok(Command::Pick { x, y }) => {
                        let answer = if (0.0..size.0 as f32).contains(&x) && (0.0..size.1 as f32).contains(&y) {
                            let hit = pick(camera, size, [x, y]).await?;
                            json!({ "type": "pick", "x": x, "y": y, "hit": hit })
                        } else {
                            json!({ "type": "error", "message": format!("pick ({x}, {y}) is outside the {}x{} frame", size.0, size.1) })
                        };
                        sink.send(Outgoing::Text(answer.to_string())).await.map_err(|_| "the browser went away".to_string())?;
                    }
                    Ok(Command::Bookmark { name }) => match config.bookmarks.iter().find(|(n, _)| *n == name) {
                        Some((_, c)) => { camera = *c; dirty = true; }
                        None => {
                            let names: Vec<&str> = config.bookmarks.iter().map(|(n, _)| n.as_str()).collect();
                            let error = json!({ "type": "error", "message": format!("no bookmark {name:?} (the scene has: {})", names.join(", ")) });
                            sink.send(Outgoing::Text(error.to_string())).await.map_err(|_| "the browser went away".to_string())?;
                        }
                    },
                    Ok(Command::Resize { width, height }) => { size = (width, height); dirty = true; }
                    Ok(Command::Reset) => { camera = initial; dirty = true; }
                    Err(message) => {
                        let error = json!({ "type": "error", "message": message }).to_string();
                        sink.send(Outgoing::Text(error)).await.map_err(|_| "the browser went away".to_string())?;
                    }
                },
            },
            _ = tick.tick() => {
                if config.spin_deg_per_s != 0.0 {
                    camera.orbit(config.spin_deg_per_s / config.fps, 0.0);
                    dirty = true;
                }
                if !dirty {
                    continue;
                }
                dirty = false;
                let jpeg = render(camera, size).await?;
                seq += 1;
                let mut meta = json!({ "type": "frame", "seq": seq, "bytes": jpeg.len(), "width": size.0, "height": size.1, "camera": camera });
                if let (Some(m), Some(p)) = (meta.as_object_mut(), provenance.as_object()) {
                    m.extend(p.clone());
                }
                sink.send(Outgoing::Text(meta.to_string())).await.map_err(|_| "the browser went away".to_string())?;
                sink.send(Outgoing::Binary(jpeg)).await.map_err(|_| "the browser went away".to_string())?;
            }
        }
    }
}

pub async fn view(
    ws: Result<WebSocketUpgrade, WebSocketUpgradeRejection>,
    State(state): State<AppState>,
    Query(params): Query<HashMap<String, String>>,
) -> Result<Response, AppError> {
    only_known(
        &params,
        &["scene", "width", "height", "fps", "spin", "quality"],
    )?;
    let id = params
        .get("scene")
        .ok_or_else(|| AppError::bad("scene", "required"))?;
    let scene = state
        .scene(id)
        .cloned()
        .ok_or_else(|| AppError::NotFound(format!("unknown scene {id:?}")))?;
    let width = number(&params, "width", 640u32, 16..=4096)?;
    let height = number(&params, "height", 360u32, 16..=4096)?;
    let fps = number(&params, "fps", 4.0f32, 0.5..=30.0)?;
    let spin = number(&params, "spin", 0.0f32, -90.0..=90.0)?;
    let quality = number(&params, "quality", 80u8, 10..=100)?;
    let ws = ws.map_err(|e| {
        AppError::bad(
            "upgrade",
            format!("not a WebSocket request: {}", e.body_text()),
        )
    })?;
    let renderer = state.renderer()?;
    // Preparing here warms the cache for the first frame and names the period shown.
    let (state_for_prep, scene_for_prep) = (state.clone(), scene.clone());
    let prepared = blocking(move || views::prepared(&state_for_prep, &scene_for_prep)).await?;
    let provenance = json!({
        "scene": scene.id,
        "indicators": scene.binding.iter().map(|b| b.indicator.clone()).collect::<Vec<_>>(),
        "catalogue_version": state.catalogue.version,
        "snapshot": prepared.ingest_id,
        "period": prepared.scene.overlay.as_ref().map(|o| o.period.clone()),
    });
    let initial = scene.camera;
    let bookmarks: Vec<(String, OrbitCamera)> = scene
        .bookmarks
        .iter()
        .map(|b| (b.name.clone(), b.camera))
        .collect();
    Ok(ws.on_upgrade(move |socket| async move {
        let (sink, stream) = socket.split();
        let sink = Box::pin(sink.with(|o: Outgoing| async move {
            Ok::<_, axum::Error>(match o {
                Outgoing::Text(t) => Message::Text(t.into()),
                Outgoing::Binary(b) => Message::Binary(b.into()),
            })
        }));
        let stream = Box::pin(stream.filter_map(|m| async move {
            match m {
                Ok(Message::Text(t)) => Some(Incoming::Text(t.to_string())),
                Ok(Message::Close(_)) | Err(_) => Some(Incoming::Close),
                Ok(_) => None,
            }
        }));
        let (state_r, scene_r) = (state.clone(), scene.clone());
        let render = move |camera: OrbitCamera, (w, h): (u32, u32)| {
            let (state, scene, renderer) = (state_r.clone(), scene_r.clone(), renderer.clone());
            async move {
                blocking(move || {
                    let prepared = views::prepared(&state, &scene)?.scene;
                    let image = renderer.render(prepared, camera, w, h)?;
                    views::encode_jpeg(&image, quality)
                })
                .await
                .map_err(|e| e.to_string())
            }
        };
        let pick = move |camera: OrbitCamera, size: (u32, u32), at: [f32; 2]| {
            let (state, scene) = (state.clone(), scene.clone());
            async move {
                blocking(move || {
                    let prepared = views::prepared(&state, &scene)?.scene;
                    Ok(views::pick_json(&prepared, &camera, size, at))
                })
                .await
                .map_err(|e| e.to_string())
            }
        };
        let config = ViewConfig {
            fps,
            spin_deg_per_s: spin,
            size: (width, height),
            bookmarks: bookmarks.clone(),
        };
        if let Err(e) = run_view(sink, stream, initial, config, provenance, render, pick).await {
            tracing::info!(error = %e, "view stream ended");
        }
    }))
}

#[cfg(test)]
mod tests {
    use super::*;
    use futures_util::{sink, stream};
    use tokio::sync::mpsc;

    fn camera() -> OrbitCamera {
        OrbitCamera {
            yaw_deg: 0.0,
            pitch_deg: 45.0,
            distance_m: 1000.0,
            target_en_m: [0.0, 0.0],
        }
    }

    #[test]
    fn commands_parse() {
        assert_eq!(
            parse_command(r#"{"type":"orbit","d_yaw_deg":10,"d_pitch_deg":-5}"#),
            Ok(Command::Orbit {
                d_yaw_deg: 10.0,
                d_pitch_deg: -5.0
            })
        );
        assert_eq!(
            parse_command(r#"{"type":"zoom","factor":0.5}"#),
            Ok(Command::Zoom { factor: 0.5 })
        );
        assert!(
            parse_command(r#"{"type":"fly"}"#)
                .unwrap_err()
                .contains("unknown command type")
        );
        assert!(parse_command("nope").unwrap_err().starts_with("not JSON"));
        assert!(
            parse_command(r#"{"type":"zoom"}"#)
                .unwrap_err()
                .contains("factor")
        );
    }

    #[tokio::test]
    async fn orbit_renders_a_new_frame_and_idle_views_render_nothing() {
        let (in_tx, in_rx) = mpsc::channel::<Incoming>(8);
        let (out_tx, mut out_rx) = mpsc::channel::<Outgoing>(8);
        let incoming = Box::pin(stream::unfold(in_rx, |mut rx| async move {
            rx.recv().await.map(|m| (m, rx))
        }));
        let sink = Box::pin(sink::unfold(out_tx, |tx, item: Outgoing| async move {
            tx.send(item).await.map_err(|_| ())?;
            Ok::<_, ()>(tx)
        }));
        let renders = std::sync::Arc::new(std::sync::atomic::AtomicUsize::new(0));
        let counter = renders.clone();
        let render = move |c: OrbitCamera, (w, h): (u32, u32)| {
            counter.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
            async move { Ok(format!("yaw={} {w}x{h}", c.yaw_deg).into_bytes()) }
        };
        // A pick answers with the pixel and the camera's yaw, so the test sees both arrive.
        let pick = |c: OrbitCamera, _size: (u32, u32), at: [f32; 2]| async move {
            Ok(json!({ "id": format!("b{}-{}", at[0], at[1]), "yaw": c.yaw_deg }))
        };
        let far = OrbitCamera {
            distance_m: 5000.0,
            ..camera()
        };
        let config = ViewConfig {
            fps: 50.0,
            spin_deg_per_s: 0.0,
            size: (320, 180),
            bookmarks: vec![("far".into(), far)],
        };
        let task = tokio::spawn(run_view(
            sink,
            incoming,
            camera(),
            config,
            json!({"scene": "s"}),
            render,
            pick,
        ));

        let Outgoing::Text(meta) = out_rx.recv().await.unwrap() else {
            panic!("expected metadata")
        };
        let meta: Value = serde_json::from_str(&meta).unwrap();
        assert_eq!(meta["seq"], 1);
        assert_eq!(meta["scene"], "s");
        assert_eq!(
            out_rx.recv().await.unwrap(),
            Outgoing::Binary(b"yaw=0 320x180".to_vec())
        );

        // Idle: several ticks pass without a render.
        tokio::time::sleep(Duration::from_millis(100)).await;
        assert_eq!(renders.load(std::sync::atomic::Ordering::SeqCst), 1);

        in_tx
            .send(Incoming::Text(r#"{"type":"orbit","d_yaw_deg":30}"#.into()))
            .await
            .unwrap();
        let Outgoing::Text(meta) = out_rx.recv().await.unwrap() else {
            panic!("expected metadata")
        };
        assert!(meta.contains("\"seq\":2"));
        assert_eq!(
            out_rx.recv().await.unwrap(),
            Outgoing::Binary(b"yaw=30 320x180".to_vec())
        );

        // A pick answers in place, without a frame.
        in_tx
            .send(Incoming::Text(r#"{"type":"pick","x":10,"y":20}"#.into()))
            .await
            .unwrap();
        let Outgoing::Text(answer) = out_rx.recv().await.unwrap() else {
            panic!("expected a pick")
        };
        let answer: Value = serde_json::from_str(&answer).unwrap();
        assert_eq!(
            (answer["type"].as_str(), answer["hit"]["id"].as_str()),
            (Some("pick"), Some("b10-20"))
        );
        assert_eq!(answer["hit"]["yaw"], 30.0);
        assert_eq!(renders.load(std::sync::atomic::Ordering::SeqCst), 2);

        // A resize and a bookmark each give a frame of the new kind.
        in_tx
            .send(Incoming::Text(
                r#"{"type":"resize","width":640,"height":360}"#.into(),
            ))
            .await
            .unwrap();
        let Outgoing::Text(meta) = out_rx.recv().await.unwrap() else {
            panic!("expected metadata")
        };
        assert!(meta.contains("\"width\":640"), "{meta}");
        assert_eq!(
            out_rx.recv().await.unwrap(),
            Outgoing::Binary(b"yaw=30 640x360".to_vec())
        );
        in_tx
            .send(Incoming::Text(r#"{"type":"bookmark","name":"far"}"#.into()))
            .await
            .unwrap();
        let Outgoing::Text(meta) = out_rx.recv().await.unwrap() else {
            panic!("expected metadata")
        };
        assert!(meta.contains("\"distance_m\":5000"), "{meta}");
        let _ = out_rx.recv().await.unwrap();
        for (bad, says) in [
            (
                r#"{"type":"bookmark","name":"moon"}"#,
                "no bookmark \"moon\" (the scene has: far)",
            ),
            (
                r#"{"type":"pick","x":700,"y":20}"#,
                "outside the 640x360 frame",
            ),
            (
                r#"{"type":"resize","width":9999,"height":10}"#,
                "is outside",
            ),
        ] {
            in_tx.send(Incoming::Text(bad.into())).await.unwrap();
            let Outgoing::Text(err) = out_rx.recv().await.unwrap() else {
                panic!("expected an error")
            };
            let err: Value = serde_json::from_str(&err).unwrap();
            assert_eq!(err["type"], "error");
            assert!(err["message"].as_str().unwrap().contains(says), "{err}");
        }

        // A pan moves the target (one frame), by metres per pixel at the camera distance.
        in_tx
            .send(Incoming::Text(r#"{"type":"pan","dx_px":100}"#.into()))
            .await
            .unwrap();
        let Outgoing::Text(meta) = out_rx.recv().await.unwrap() else {
            panic!("expected metadata")
        };
        let meta: Value = serde_json::from_str(&meta).unwrap();
        let target = meta["camera"]["target_en_m"].as_array().unwrap();
        let moved = target[0]
            .as_f64()
            .unwrap()
            .hypot(target[1].as_f64().unwrap());
        // 100 px of 360 at 5 km with a 40° field of view: about 1011 m.
        assert!((moved - 1011.0).abs() < 2.0, "{moved}");
        let _ = out_rx.recv().await.unwrap();

        in_tx
            .send(Incoming::Text(r#"{"type":"warp"}"#.into()))
            .await
            .unwrap();
        let Outgoing::Text(err) = out_rx.recv().await.unwrap() else {
            panic!("expected an error")
        };
        assert!(err.contains("unknown command type"));

        in_tx.send(Incoming::Close).await.unwrap();
        assert_eq!(task.await.unwrap(), Ok(()));
    }
}
