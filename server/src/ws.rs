//! The view stream, `GET /ws/view?scene=ID`: JPEG frames of a scene from a camera the browser
//! steers.
//!
//! Protocol. Server to browser: for every frame, a text message
//! `{"type":"frame","seq":N,"bytes":B,"camera":{...},...provenance}` followed by a binary
//! message with the JPEG. Browser to server, text messages:
//! `{"type":"orbit","d_yaw_deg":10,"d_pitch_deg":-5}`, `{"type":"zoom","factor":0.8}`,
//! `{"type":"reset"}`. A frame is rendered only when the camera changed (or the view spins);
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

#[derive(Debug, Clone, Copy)]
pub struct ViewConfig {
    pub fps: f32,
    /// Degrees per second the camera turns by itself (0 for a still view).
    pub spin_deg_per_s: f32,
}

#[derive(Debug, PartialEq)]
enum Command {
    Orbit { d_yaw_deg: f32, d_pitch_deg: f32 },
    Zoom { factor: f32 },
    Reset,
}

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
        Some("reset") => Ok(Command::Reset),
        Some(other) => Err(format!(
            "unknown command type {other:?} (expected orbit, zoom or reset)"
        )),
        None => Err("missing command type".into()),
    }
}

/// Serves one view until the browser closes it. `render` turns a camera into JPEG bytes;
/// `provenance` is merged into every frame message.
pub async fn run_view<S, R, F, Fut>(
    mut sink: S,
    mut incoming: R,
    initial: OrbitCamera,
    config: ViewConfig,
    provenance: Value,
    mut render: F,
) -> Result<(), String>
where
    S: Sink<Outgoing> + Unpin,
    R: Stream<Item = Incoming> + Unpin,
    F: FnMut(OrbitCamera) -> Fut,
    Fut: Future<Output = Result<Vec<u8>, String>>,
{
    let mut camera = initial;
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
                let jpeg = render(camera).await?;
                seq += 1;
                let mut meta = json!({ "type": "frame", "seq": seq, "bytes": jpeg.len(), "camera": camera });
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
        "width": width,
        "height": height,
    });
    let initial = scene.camera;
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
        let render = move |camera: OrbitCamera| {
            let (state, scene, renderer) = (state.clone(), scene.clone(), renderer.clone());
            async move {
                blocking(move || {
                    let prepared = views::prepared(&state, &scene)?.scene;
                    let image = renderer.render(prepared, camera, width, height)?;
                    views::encode_jpeg(&image, quality)
                })
                .await
                .map_err(|e| e.to_string())
            }
        };
        let config = ViewConfig {
            fps,
            spin_deg_per_s: spin,
        };
        if let Err(e) = run_view(sink, stream, initial, config, provenance, render).await {
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
        let render = move |c: OrbitCamera| {
            counter.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
            async move { Ok(format!("yaw={}", c.yaw_deg).into_bytes()) }
        };
        let config = ViewConfig {
            fps: 50.0,
            spin_deg_per_s: 0.0,
        };
        let task = tokio::spawn(run_view(
            sink,
            incoming,
            camera(),
            config,
            json!({"scene": "s"}),
            render,
        ));

        let Outgoing::Text(meta) = out_rx.recv().await.unwrap() else {
            panic!("expected metadata")
        };
        let meta: Value = serde_json::from_str(&meta).unwrap();
        assert_eq!(meta["seq"], 1);
        assert_eq!(meta["scene"], "s");
        assert_eq!(
            out_rx.recv().await.unwrap(),
            Outgoing::Binary(b"yaw=0".to_vec())
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
            Outgoing::Binary(b"yaw=30".to_vec())
        );

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
