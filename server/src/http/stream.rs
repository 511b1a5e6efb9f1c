//! The view stream, `GET /ws/view?scene=ID`: frames of a scene from a camera the browser
//! steers, as JPEGs or (`codec=h264`) as H.264 video with sharp JPEG stills at rest.
//!
//! Protocol. Server to browser: for every frame, a text message
//! `{"type":"frame","seq":N,"bytes":B,"codec":"jpeg"|"h264","key":K,"still":S,"width":W,
//! "height":H,"camera":{...},...provenance}` followed by a binary message with the JPEG or the
//! H.264 access unit (Annex B; a keyframe's message adds `codec_string` for WebCodecs); a
//! still repeats the `seq` of the video frame it sharpens. For every pick a text message
//! `{"type":"pick","x":..,"y":..,"hit":{...}|null}`. Browser to server, text messages:
//! `{"type":"orbit","d_yaw_deg":10,"d_pitch_deg":-5}`, `{"type":"zoom","factor":0.8}`,
//! `{"type":"pan","dx_px":40,"dy_px":-10}` (the content follows the pointer),
//! `{"type":"pick","x":320,"y":180}` (pixels of the current frame),
//! `{"type":"bookmark","name":"overview"}`, `{"type":"resize","width":1280,"height":720}`,
//! `{"type":"indicator","id":"..."}`, `{"type":"period","period":"2024"}`,
//! `{"type":"layer","name":"choropleth","on":false}`, `{"type":"camera","camera":{...}}` (a
//! whole orbit camera, checked like a scene's), `{"type":"keyframe"}` (a video decoder's fresh
//! start), `{"type":"reset"}`. Indicator, period and
//! layer changes give the viewer its own variant of the scene (same geometry, its own
//! overlay; `views::prepared_variant`); a change the scene cannot show is answered with an
//! error and the last view stays. A frame is rendered only when the view changed (or it spins);
//! commands that arrive during a render are folded into the next one, so a slow client gets
//! the newest view rather than a queue. [`run_view`] is written over a generic `Sink`/`Stream`
//! so the protocol is tested without sockets.

use crate::error::AppError;
use crate::http::auth::Caller;
use crate::http::events::DataChange;
use crate::http::params::{self, number, only_known};
use crate::http::work::blocking;
use crate::state::AppState;
use crate::views;
use axum::extract::State;
use axum::extract::ws::rejection::WebSocketUpgradeRejection;
use axum::extract::ws::{Message, WebSocketUpgrade};
use axum::response::Response;
use futures_util::{Sink, SinkExt, Stream, StreamExt};
use scenes::OrbitCamera;
use serde_json::{Value, json};
use std::collections::HashMap;
use std::future::Future;
use std::sync::atomic::{AtomicBool, Ordering};
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
    /// The layers the scene shows at the start (what `layer` commands change).
    pub layers: twin::OverlayLayers,
    pub codec: Codec,
}

#[derive(Debug, PartialEq)]
enum Command {
    Orbit {
        d_yaw_deg: f32,
        d_pitch_deg: f32,
    },
    Zoom {
        factor: f32,
    },
    Pan {
        dx_px: f32,
        dy_px: f32,
    },
    Pick {
        x: f32,
        y: f32,
    },
    Bookmark {
        name: String,
    },
    Resize {
        width: u32,
        height: u32,
    },
    Indicator {
        id: String,
    },
    Period {
        period: String,
    },
    Layer {
        name: String,
        on: bool,
    },
    Camera(OrbitCamera),
    /// The browser's decoder needs a fresh start (it joined late, or lost a frame).
    Keyframe,
    Reset,
}

/// Why a frame was not rendered.
#[derive(Debug, PartialEq)]
pub enum RenderFailure {
    /// The viewer asked for something the scene cannot show (an unknown indicator or period).
    Refused(String),
    /// The renderer or the database failed.
    Failed(String),
}

use crate::http::scenes::MAX_SIZE;

/// How a stream's frames travel: a JPEG each, or H.264 with sharp JPEG stills at rest.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Codec {
    Jpeg,
    H264,
}

impl Codec {
    pub fn name(self) -> &'static str {
        match self {
            Codec::Jpeg => "jpeg",
            Codec::H264 => "h264",
        }
    }
}

/// What one frame is to be encoded as.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Encoding {
    /// A frame of a JPEG stream.
    Jpeg,
    /// The next frame of the video; an IDR keyframe when `key`.
    Video { key: bool },
    /// A sharp JPEG of a video stream's resting view (it does not touch the video's state).
    Still,
}

/// An encoded frame: the bytes of the binary message that follows the frame's metadata.
#[derive(Debug, Clone, PartialEq)]
pub struct Encoded {
    pub bytes: Vec<u8>,
    /// A decoder can start here (every JPEG; a video's IDR frames).
    pub key: bool,
}

impl Encoded {
    /// A JPEG (or a test's stand-in for one).
    pub fn jpeg(bytes: Vec<u8>) -> Encoded {
        Encoded { bytes, key: true }
    }
}

/// A video stream's keyframe at least this often, so a decoder that lost its way recovers
/// even without asking.
pub const KEYFRAME_EVERY: Duration = Duration::from_secs(10);
/// A video stream sends a sharp still once the view has rested this long.
pub const STILL_AFTER: Duration = Duration::from_millis(400);
/// The JPEG quality of a video stream's stills.
pub const STILL_QUALITY: u8 = 90;

/// The metadata of one frame message: what follows in the binary message and how to decode it.
fn frame_meta(seq: u64, encoding: Encoding, encoded: &Encoded) -> Value {
    let codec_name = match encoding {
        Encoding::Video { .. } => Codec::H264.name(),
        Encoding::Jpeg | Encoding::Still => Codec::Jpeg.name(),
    };
    let mut meta = json!({ "type": "frame", "seq": seq, "bytes": encoded.bytes.len(),
                           "codec": codec_name, "key": encoded.key,
                           "still": encoding == Encoding::Still });
    if codec_name == "h264"
        && encoded.key
        && let Some(s) = crate::video::codec_string(&encoded.bytes)
    {
        meta["codec_string"] = s.into();
    }
    meta
}

/// What a stream (a steered view or a session's leader) has sent and owes: its sequence
/// number, when its last keyframe went, and when the resting view's still is due.
struct Pace {
    seq: u64,
    last_key: tokio::time::Instant,
    still_due: Option<tokio::time::Instant>,
}

impl Pace {
    fn new() -> Pace {
        Pace {
            seq: 0,
            last_key: tokio::time::Instant::now(),
            still_due: None,
        }
    }

    /// How to encode a frame that must be drawn (the view changed, or a keyframe was asked
    /// for): a video's keyframe when asked or when the periodic one is due.
    fn changed(&self, codec: Codec, key_asked: bool) -> Encoding {
        match codec {
            Codec::Jpeg => Encoding::Jpeg,
            Codec::H264 => Encoding::Video {
                key: key_asked || self.last_key.elapsed() >= KEYFRAME_EVERY,
            },
        }
    }

    /// Whether a video's resting view is owed its still.
    fn still_is_due(&self) -> bool {
        self.still_due
            .is_some_and(|at| tokio::time::Instant::now() >= at)
    }

    /// Records a frame sent and gives its sequence number (a still keeps its frame's).
    fn sent(&mut self, encoding: Encoding, key: bool) -> u64 {
        match encoding {
            Encoding::Still => self.still_due = None,
            Encoding::Video { .. } => {
                self.seq += 1;
                self.still_due = Some(tokio::time::Instant::now() + STILL_AFTER);
                if key {
                    self.last_key = tokio::time::Instant::now();
                }
            }
            Encoding::Jpeg => self.seq += 1,
        }
        self.seq
    }
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
        Some("indicator") => Ok(Command::Indicator {
            id: v
                .get("id")
                .and_then(Value::as_str)
                .ok_or("id must be an indicator id")?
                .to_owned(),
        }),
        Some("period") => Ok(Command::Period {
            period: v
                .get("period")
                .and_then(Value::as_str)
                .ok_or("period must be a period such as 2024 or 2025-03, or latest")?
                .to_owned(),
        }),
        Some("layer") => Ok(Command::Layer {
            name: v
                .get("name")
                .and_then(Value::as_str)
                .ok_or("name must be buildings, choropleth, columns, labels, density or alerts")?
                .to_owned(),
            on: v
                .get("on")
                .and_then(Value::as_bool)
                .ok_or("on must be true or false")?,
        }),
        Some("camera") => {
            // A whole camera (e.g. from /api/scenes/{id}/focus): typed, then checked.
            let camera: OrbitCamera = serde_json::from_value(
                v.get("camera")
                    .cloned()
                    .ok_or("camera must be an orbit camera")?,
            )
            .map_err(|e| format!("camera: {e}"))?;
            camera.validate()?;
            if camera
                .target_en_m
                .iter()
                .any(|m| m.abs() > OrbitCamera::MAX_DISTANCE_M)
            {
                return Err(format!(
                    "camera.target_en_m is more than {} m from the scene centre",
                    OrbitCamera::MAX_DISTANCE_M
                ));
            }
            Ok(Command::Camera(camera))
        }
        Some("reset") => Ok(Command::Reset),
        Some("keyframe") => Ok(Command::Keyframe),
        Some(other) => Err(format!(
            "unknown command type {other:?} (expected orbit, zoom, pan, pick, bookmark, resize, indicator, period, layer, camera, keyframe or reset)"
        )),
        None => Err("missing command type".into()),
    }
}

/// Sends one message; the only failure is a browser that went away.
async fn send<S: Sink<Outgoing> + Unpin>(sink: &mut S, message: Outgoing) -> Result<(), String> {
    sink.send(message)
        .await
        .map_err(|_| "the browser went away".to_string())
}

/// Tells the browser what was wrong with what it sent.
async fn send_error<S: Sink<Outgoing> + Unpin>(sink: &mut S, message: &str) -> Result<(), String> {
    let error = json!({ "type": "error", "message": message });
    send(sink, Outgoing::Text(error.to_string())).await
}

/// Serves one view until the browser closes it. `render` turns a camera, size and variant
/// into a frame encoded as asked (a JPEG, the next video frame, or a still), `pick` a camera,
/// size and pixel into what is there (JSON, `null` for nothing); `provenance` is merged into
/// every frame message.
///
/// A video stream starts with a keyframe, sends one when the browser asks (`keyframe`) and at
/// least every [`KEYFRAME_EVERY`], and once the view has rested [`STILL_AFTER`] a sharp JPEG
/// still of it (carrying the sequence number of the frame it sharpens).
#[expect(
    clippy::too_many_arguments,
    reason = "the view's sockets, its start, the data it follows and its two kinds of work"
)]
pub async fn run_view<S, R, F, Fut, P, PFut>(
    mut sink: S,
    mut incoming: R,
    initial: OrbitCamera,
    config: ViewConfig,
    mut provenance: Value,
    mut changes: tokio::sync::watch::Receiver<Option<DataChange>>,
    mut render: F,
    mut pick: P,
) -> Result<(), String>
where
    S: Sink<Outgoing> + Unpin,
    R: Stream<Item = Incoming> + Unpin,
    F: FnMut(OrbitCamera, (u32, u32), views::Variant, Encoding) -> Fut,
    Fut: Future<Output = Result<Encoded, RenderFailure>>,
    P: FnMut(OrbitCamera, (u32, u32), [f32; 2], views::Variant) -> PFut,
    PFut: Future<Output = Result<Value, String>>,
{
    let mut camera = initial;
    let mut size = config.size;
    let mut variant = views::Variant::default();
    // The variant of the last frame that rendered, to go back to when a change is refused.
    let mut good_variant = variant.clone();
    let mut tick = tokio::time::interval(Duration::from_secs_f32(1.0 / config.fps));
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Skip);
    let mut dirty = true;
    let mut following = true;
    let video = config.codec == Codec::H264;
    let mut want_key = true;
    let mut pace = Pace::new();
    loop {
        tokio::select! {
            // New data: the next frame shows it and names its snapshot.
            changed = changes.changed(), if following => match changed {
                Ok(()) => {
                    if let Some(change) = changes.borrow_and_update().clone() {
                        provenance["snapshot"] = change.ingest_id.into();
                    }
                    dirty = true;
                }
                Err(_) => following = false,
            },
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
                        if (0.0..size.0 as f32).contains(&x) && (0.0..size.1 as f32).contains(&y) {
                            let hit = pick(camera, size, [x, y], good_variant.clone()).await?;
                            let answer = json!({ "type": "pick", "x": x, "y": y, "hit": hit });
                            send(&mut sink, Outgoing::Text(answer.to_string())).await?;
                        } else {
                            send_error(&mut sink, &format!("pick ({x}, {y}) is outside the {}x{} frame", size.0, size.1)).await?;
                        }
                    }
                    Ok(Command::Bookmark { name }) => match config.bookmarks.iter().find(|(n, _)| *n == name) {
                        Some((_, c)) => { camera = *c; dirty = true; }
                        None => {
                            let names: Vec<&str> = config.bookmarks.iter().map(|(n, _)| n.as_str()).collect();
                            send_error(&mut sink, &format!("no bookmark {name:?} (the scene has: {})", names.join(", "))).await?;
                        }
                    },
                    Ok(Command::Resize { width, height }) => match crate::video::check_size(width, height) {
                        Err(message) if video => send_error(&mut sink, &message).await?,
                        _ => { size = (width, height); want_key = true; dirty = true; }
                    },
                    Ok(Command::Keyframe) => { want_key = true; dirty = true; }
                    Ok(Command::Indicator { id }) => { variant.indicator = Some(id); dirty = true; }
                    Ok(Command::Period { period }) => { variant.period = Some(period); dirty = true; }
                    Ok(Command::Layer { name, on }) => {
                        let mut layers = variant.layers.unwrap_or(config.layers);
                        let flag = match name.as_str() {
                            "buildings" => Some(&mut layers.buildings),
                            "choropleth" => Some(&mut layers.choropleth),
                            "columns" => Some(&mut layers.columns),
                            "labels" => Some(&mut layers.labels),
                            "density" => Some(&mut layers.density),
                            "alerts" => Some(&mut layers.alerts),
                            _ => None,
                        };
                        match flag {
                            Some(f) => { *f = on; variant.layers = Some(layers); dirty = true; }
                            None => {
                                send_error(&mut sink, &format!("unknown layer {name:?} (buildings, choropleth, columns, labels, density, alerts)")).await?;
                            }
                        }
                    }
                    Ok(Command::Camera(c)) => { camera = c; dirty = true; }
                    Ok(Command::Reset) => { camera = initial; variant = views::Variant::default(); dirty = true; }
                    Err(message) => {
                        send_error(&mut sink, &message).await?;
                    }
                },
            },
            _ = tick.tick() => {
                if config.spin_deg_per_s != 0.0 {
                    camera.orbit(config.spin_deg_per_s / config.fps, 0.0);
                    dirty = true;
                }
                let encoding = if dirty {
                    pace.changed(config.codec, want_key)
                } else if pace.still_is_due() {
                    Encoding::Still
                } else {
                    continue;
                };
                dirty = false;
                let frame = match render(camera, size, variant.clone(), encoding).await {
                    Ok(frame) => { good_variant = variant.clone(); frame }
                    // A viewer's change the scene cannot show: say why and keep the last view.
                    Err(RenderFailure::Refused(message)) => {
                        variant = good_variant.clone();
                        send_error(&mut sink, &message).await?;
                        continue;
                    }
                    Err(RenderFailure::Failed(message)) => return Err(message),
                };
                let seq = pace.sent(encoding, frame.key);
                if let Encoding::Video { .. } = encoding && frame.key {
                    want_key = false;
                }
                let mut meta = frame_meta(seq, encoding, &frame);
                meta["width"] = size.0.into();
                meta["height"] = size.1.into();
                meta["camera"] = json!(camera);
                meta["variant"] = json!({ "indicator": variant.indicator, "period": variant.period });
                if let (Some(m), Some(p)) = (meta.as_object_mut(), provenance.as_object()) {
                    m.extend(p.clone());
                }
                send(&mut sink, Outgoing::Text(meta.to_string())).await?;
                send(&mut sink, Outgoing::Binary(frame.bytes)).await?;
            }
        }
    }
}

/// The shared sessions (walls and their followers), by name, scene, size, codec and audience.
#[derive(Default)]
pub struct Sessions {
    map: std::sync::Mutex<HashMap<String, Session>>,
}

struct Session {
    frames: FrameSender,
    wants_key: std::sync::Arc<AtomicBool>,
    leader: tokio::task::JoinHandle<()>,
}

type FrameSender = tokio::sync::watch::Sender<Option<std::sync::Arc<SharedFrame>>>;
type FrameReceiver = tokio::sync::watch::Receiver<Option<std::sync::Arc<SharedFrame>>>;

/// What a follower holds of its session: the newest frame, and the flag that asks the leader
/// for a keyframe (a video follower that joined late or missed a frame).
pub struct Following {
    pub frames: FrameReceiver,
    pub wants_key: std::sync::Arc<AtomicBool>,
}

impl Sessions {
    /// Follows the session `key`, starting its leader with `start` (given the frames' sender
    /// and the keyframe flag) when none is running. Joining asks for a keyframe.
    pub fn follow(
        &self,
        key: &str,
        start: impl FnOnce(FrameSender, std::sync::Arc<AtomicBool>) -> tokio::task::JoinHandle<()>,
    ) -> Following {
        let mut map = self.map.lock().expect("sessions lock");
        if let Some(session) = map.get(key)
            && !session.leader.is_finished()
        {
            session.wants_key.store(true, Ordering::SeqCst);
            return Following {
                frames: session.frames.subscribe(),
                wants_key: session.wants_key.clone(),
            };
        }
        let (tx, rx) = tokio::sync::watch::channel(None);
        let wants_key = std::sync::Arc::new(AtomicBool::new(true));
        let leader = start(tx.clone(), wants_key.clone());
        map.insert(
            key.to_owned(),
            Session {
                frames: tx,
                wants_key: wants_key.clone(),
                leader,
            },
        );
        Following {
            frames: rx,
            wants_key,
        }
    }

    /// Sessions with a running leader.
    pub fn running(&self) -> usize {
        let map = self.map.lock().expect("sessions lock");
        map.values().filter(|s| !s.leader.is_finished()).count()
    }
}

/// One frame of a shared session, as every follower receives it: the same bytes for all.
#[derive(Debug)]
pub struct SharedFrame {
    pub seq: u64,
    pub meta: String,
    pub encoding: Encoding,
    pub frame: Encoded,
}

/// Where a shared session's camera is at `t` seconds: the scene's tour (each bookmark for its
/// seconds, then from the top), else the starting camera; either turning at `spin` degrees a
/// second (0 for still views between the tour's cuts).
pub fn session_camera(
    initial: OrbitCamera,
    tour: &[(OrbitCamera, f32)],
    spin_deg_per_s: f32,
    t: f32,
) -> OrbitCamera {
    let total: f32 = tour.iter().map(|(_, s)| s).sum();
    if total > 0.0 {
        let mut at = t % total;
        for (camera, seconds) in tour {
            if at < *seconds {
                let mut c = *camera;
                c.orbit(spin_deg_per_s * at, 0.0);
                return c;
            }
            at -= seconds;
        }
    }
    let mut c = initial;
    c.orbit(spin_deg_per_s * t, 0.0);
    c
}

/// Renders a shared session for as long as anyone follows it: a frame whenever the camera
/// moves, published to a `watch` channel (followers always get the newest frame, never a
/// queue). One render and one encoding serve every follower. A video session draws a
/// keyframe when `wants_key` is raised (a follower joined or lost its place) and at least
/// every [`KEYFRAME_EVERY`], and a still once the camera rests.
#[expect(
    clippy::too_many_arguments,
    reason = "the session's channel, its camera, rate, codec and the data it follows"
)]
pub async fn run_leader<F, Fut>(
    tx: tokio::sync::watch::Sender<Option<std::sync::Arc<SharedFrame>>>,
    wants_key: std::sync::Arc<AtomicBool>,
    mut camera_at: impl FnMut(f32) -> OrbitCamera,
    fps: f32,
    codec: Codec,
    mut provenance: Value,
    mut changes: tokio::sync::watch::Receiver<Option<DataChange>>,
    mut render: F,
) where
    F: FnMut(OrbitCamera, Encoding) -> Fut,
    Fut: Future<Output = Result<Encoded, String>>,
{
    let started = tokio::time::Instant::now();
    let mut tick = tokio::time::interval(Duration::from_secs_f32(1.0 / fps));
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Skip);
    let mut last: Option<OrbitCamera> = None;
    let mut pace = Pace::new();
    loop {
        tick.tick().await;
        if tx.receiver_count() == 0 {
            return;
        }
        let camera = camera_at(started.elapsed().as_secs_f32());
        // New data is drawn even when the camera rests.
        if changes.has_changed().unwrap_or(false) {
            if let Some(change) = changes.borrow_and_update().clone() {
                provenance["snapshot"] = change.ingest_id.into();
            }
            last = None;
        }
        // Taken, not read: a follower that asks while this frame renders asks again after.
        let key_asked = wants_key.swap(false, Ordering::SeqCst);
        let moved = last != Some(camera);
        let encoding = match codec {
            // (A JPEG is a keyframe: a follower that joins gets the current view at once.)
            _ if moved || key_asked => pace.changed(codec, key_asked),
            Codec::H264 if pace.still_is_due() => Encoding::Still,
            Codec::Jpeg | Codec::H264 => continue,
        };
        match render(camera, encoding).await {
            Ok(frame) => {
                let seq = pace.sent(encoding, frame.key);
                let mut meta = frame_meta(seq, encoding, &frame);
                meta["camera"] = json!(camera);
                meta["follow"] = true.into();
                if let (Some(m), Some(p)) = (meta.as_object_mut(), provenance.as_object()) {
                    m.extend(p.clone());
                }
                last = Some(camera);
                let shared = SharedFrame {
                    seq,
                    meta: meta.to_string(),
                    encoding,
                    frame,
                };
                if tx.send(Some(std::sync::Arc::new(shared))).is_err() {
                    return;
                }
            }
            Err(e) => {
                // The next tick tries again (with the keyframe, if one was asked for).
                if key_asked {
                    wants_key.store(true, Ordering::SeqCst);
                }
                tracing::warn!(error = %e, "a shared session's render failed");
            }
        }
    }
}

/// Forwards a shared session's newest frames to one follower until it leaves. Followers
/// cannot steer; what they send is answered with an error message (but `keyframe`, which
/// asks the leader for one). A video follower sends a P-frame only right after the frame it
/// refers to: one that missed a frame (a slow link: the channel keeps only the newest) skips
/// to the next keyframe and asks for it, rather than queueing or showing broken pictures.
pub async fn run_follower<S, R>(
    mut sink: S,
    mut incoming: R,
    following: Following,
) -> Result<(), String>
where
    S: Sink<Outgoing> + Unpin,
    R: Stream<Item = Incoming> + Unpin,
{
    let Following {
        frames: mut rx,
        wants_key,
    } = following;
    // The sequence number of the last video frame this follower was sent.
    let mut last_video: Option<u64> = None;
    loop {
        tokio::select! {
            msg = incoming.next() => match msg {
                None | Some(Incoming::Close) => return Ok(()),
                Some(Incoming::Text(text)) => {
                    if parse_command(&text) == Ok(Command::Keyframe) {
                        last_video = None;
                        wants_key.store(true, Ordering::SeqCst);
                    } else {
                        send_error(&mut sink, "this view follows a shared session and cannot be steered").await?;
                    }
                }
            },
            changed = rx.changed() => {
                if changed.is_err() {
                    return Ok(());
                }
                let Some(f) = rx.borrow_and_update().clone() else { continue };
                if let Encoding::Video { .. } = f.encoding {
                    let in_step = f.frame.key || last_video.is_some_and(|s| f.seq == s + 1);
                    if !in_step {
                        last_video = None;
                        wants_key.store(true, Ordering::SeqCst);
                        continue;
                    }
                    last_video = Some(f.seq);
                }
                send(&mut sink, Outgoing::Text(f.meta.clone())).await?;
                send(&mut sink, Outgoing::Binary(f.frame.bytes.clone())).await?;
            }
        }
    }
}

/// A stream's encoder: the JPEG quality, and for a video stream its H.264 encoder (one
/// bitstream, so one lock; frames of one stream are drawn one at a time anyway).
#[derive(Clone)]
struct FrameEncoder {
    quality: u8,
    video: Option<std::sync::Arc<std::sync::Mutex<crate::video::VideoEncoder>>>,
}

impl FrameEncoder {
    fn new(codec: Codec, quality: u8, size: (u32, u32), fps: f32) -> Result<Self, AppError> {
        let video = match codec {
            Codec::Jpeg => None,
            Codec::H264 => Some(std::sync::Arc::new(std::sync::Mutex::new(
                crate::video::VideoEncoder::new(size, fps)?,
            ))),
        };
        Ok(FrameEncoder { quality, video })
    }

    fn encode(&self, image: &image::RgbaImage, encoding: Encoding) -> Result<Encoded, AppError> {
        match (encoding, &self.video) {
            (Encoding::Video { key }, Some(video)) => {
                let frame = video
                    .lock()
                    .map_err(|_| AppError::Internal("the H.264 encoder failed before".into()))?
                    .encode(image, key)?;
                Ok(Encoded {
                    bytes: frame.bytes,
                    key: frame.key,
                })
            }
            (Encoding::Still, _) => Ok(Encoded::jpeg(views::encode_jpeg(
                image,
                self.quality.max(STILL_QUALITY),
            )?)),
            _ => Ok(Encoded::jpeg(views::encode_jpeg(image, self.quality)?)),
        }
    }
}

/// Draws one frame of a prepared scene and encodes it (blocking work).
fn frame_encoded(
    renderer: &twin::Renderer,
    prepared: std::sync::Arc<twin::PreparedScene>,
    camera: OrbitCamera,
    (width, height): (u32, u32),
    encoder: &FrameEncoder,
    encoding: Encoding,
) -> Result<Encoded, AppError> {
    let image = renderer.render(prepared, camera, width, height)?;
    encoder.encode(&image, encoding)
}

/// The view stream: a WebSocket of frames and provenance (see the README for messages).
#[utoipa::path(get, path = "/ws/view", tag = "scenes",
    params(
        ("scene" = String, Query, description = "a scene id in scope"),
        ("width" = Option<u32>, Query, description = "16..=3840, at most 3840x2160 in all"),
        ("height" = Option<u32>, Query, description = "16..=3840"),
        ("fps" = Option<f32>, Query, description = "0.5..=30 (default 4)"),
        ("spin" = Option<f32>, Query, description = "degrees per second, -90..=90"),
        ("quality" = Option<u8>, Query, description = "JPEG 10..=100"),
        ("codec" = Option<String>, Query, description = "jpeg (default) or h264: Constrained Baseline H.264 for WebCodecs, even sizes up to 3840x2160, with JPEG stills at rest"),
        ("follow" = Option<String>, Query, description = "join the shared session of this name"),
    ),
    responses((status = 101, description = "switching to WebSocket")))]
pub async fn view(
    ws: Result<WebSocketUpgrade, WebSocketUpgradeRejection>,
    State(state): State<AppState>,
    caller: Caller,
    params::Params(params): params::Params,
) -> Result<Response, AppError> {
    only_known(
        &params,
        &[
            "scene", "width", "height", "fps", "spin", "quality", "follow", "codec",
        ],
    )?;
    let id = params
        .get("scene")
        .ok_or_else(|| AppError::bad("scene", "required"))?;
    let scene = crate::http::scenes::scene_for(&state, &caller, id)?;
    let width = number(&params, "width", 640u32, 16..=MAX_SIZE.0)?;
    let height = number(&params, "height", 360u32, 16..=MAX_SIZE.0)?;
    crate::http::scenes::check_size(width, height)?;
    let audience = caller.audience(&state);
    let fps = number(&params, "fps", 4.0f32, 0.5..=30.0)?;
    let spin = number(&params, "spin", 0.0f32, -90.0..=90.0)?;
    let quality = number(&params, "quality", 80u8, 10..=100)?;
    let codec = match params.get("codec").map(String::as_str) {
        None | Some("jpeg") => Codec::Jpeg,
        Some("h264") => {
            crate::video::check_size(width, height).map_err(|m| AppError::bad("width", m))?;
            Codec::H264
        }
        Some(other) => {
            return Err(AppError::bad(
                "codec",
                format!("{other:?} is not a codec here (jpeg or h264)"),
            ));
        }
    };
    // A joining follower's encoder goes unused when its session already runs (it is cheap).
    let encoder = FrameEncoder::new(codec, quality, (width, height), fps)?;
    let ws = params::upgrade(ws)?;
    let renderer = state.renderer()?;
    // Preparing here warms the cache for the first frame and names the period shown.
    let (state_for_prep, scene_for_prep, audience_for_prep) =
        (state.clone(), scene.clone(), audience.clone());
    let prepared =
        blocking(move || views::prepared(&state_for_prep, &scene_for_prep, &audience_for_prep))
            .await?;
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
    let follow = params.get("follow").cloned();
    let layers = scene
        .binding
        .as_ref()
        .map(|b| twin::OverlayLayers {
            buildings: b.show.contains(&scenes::Show::Buildings),
            choropleth: b.show.contains(&scenes::Show::Choropleth),
            columns: b.show.contains(&scenes::Show::Columns),
            labels: b.show.contains(&scenes::Show::Labels),
            density: b.show.contains(&scenes::Show::Density),
            alerts: b.show.contains(&scenes::Show::Alerts),
        })
        .unwrap_or_default();
    if let Some(name) = &follow
        && (name.is_empty() || name.len() > 64)
    {
        return Err(AppError::bad(
            "follow",
            "a session name of 1 to 64 characters",
        ));
    }
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
        if let Some(name) = follow {
            // One render for every follower of the session.
            // Followers share a render only with followers who see the same values.
            let key = format!(
                "{name}|{}|{width}x{height}|{}|{}",
                scene.id,
                codec.name(),
                audience.key()
            );
            let (state_l, scene_l, renderer_l, audience_l) = (
                state.clone(),
                scene.clone(),
                renderer.clone(),
                audience.clone(),
            );
            let tour: Vec<(OrbitCamera, f32)> = scene
                .tour
                .iter()
                .filter_map(|stop| {
                    let b = scene.bookmarks.iter().find(|b| b.name == stop.bookmark)?;
                    Some((b.camera, stop.seconds))
                })
                .collect();
            let changes = state.live.watch();
            let following = state.sessions.follow(&key, move |tx, wants_key| {
                tokio::spawn(async move {
                    let render = move |camera: OrbitCamera, encoding: Encoding| {
                        let (state, scene, renderer, audience, encoder) = (
                            state_l.clone(),
                            scene_l.clone(),
                            renderer_l.clone(),
                            audience_l.clone(),
                            encoder.clone(),
                        );
                        async move {
                            blocking(move || {
                                let prepared = views::prepared(&state, &scene, &audience)?.scene;
                                frame_encoded(
                                    &renderer,
                                    prepared,
                                    camera,
                                    (width, height),
                                    &encoder,
                                    encoding,
                                )
                            })
                            .await
                            .map_err(|e| e.to_string())
                        }
                    };
                    let camera_at = move |t: f32| session_camera(initial, &tour, spin, t);
                    run_leader(
                        tx, wants_key, camera_at, fps, codec, provenance, changes, render,
                    )
                    .await;
                })
            });
            if let Err(e) = run_follower(sink, stream, following).await {
                tracing::info!(error = %e, "follower left");
            }
            return;
        }
        let changes = state.live.watch();
        let (state_r, scene_r, audience_r) = (state.clone(), scene.clone(), audience.clone());
        let render = move |camera: OrbitCamera,
                           (w, h): (u32, u32),
                           variant: views::Variant,
                           encoding: Encoding| {
            let (state, scene, renderer, audience, encoder) = (
                state_r.clone(),
                scene_r.clone(),
                renderer.clone(),
                audience_r.clone(),
                encoder.clone(),
            );
            async move {
                let prepared = {
                    let (state, scene) = (state.clone(), scene.clone());
                    blocking(move || {
                        Ok(views::prepared_variant(&state, &scene, &variant, &audience)?.scene)
                    })
                    .await
                    .map_err(|e| match e {
                        AppError::BadParameter { .. } | AppError::NotFound(_) => {
                            RenderFailure::Refused(e.to_string())
                        }
                        other => RenderFailure::Failed(other.to_string()),
                    })?
                };
                blocking(move || {
                    frame_encoded(&renderer, prepared, camera, (w, h), &encoder, encoding)
                })
                .await
                .map_err(|e| RenderFailure::Failed(e.to_string()))
            }
        };
        let pick =
            move |camera: OrbitCamera, size: (u32, u32), at: [f32; 2], variant: views::Variant| {
                let (state, scene, audience) = (state.clone(), scene.clone(), audience.clone());
                async move {
                    blocking(move || {
                        let prepared =
                            views::prepared_variant(&state, &scene, &variant, &audience)?.scene;
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
            layers,
            codec,
        };
        if let Err(e) = run_view(
            sink, stream, initial, config, provenance, changes, render, pick,
        )
        .await
        {
            tracing::info!(error = %e, "view stream ended");
        }
    }))
}

#[cfg(test)]
mod tests {
    use super::*;
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
        // A whole camera: typed, finite, above the ground, near the scene.
        assert_eq!(
            parse_command(
                r#"{"type":"camera","camera":{"yaw_deg":0,"pitch_deg":45,"distance_m":1000,"target_en_m":[0,0]}}"#
            ),
            Ok(Command::Camera(camera()))
        );
        for bad in [
            r#"{"type":"camera"}"#,
            r#"{"type":"camera","camera":{"yaw_deg":0,"pitch_deg":95,"distance_m":1000}}"#,
            r#"{"type":"camera","camera":{"yaw_deg":0,"pitch_deg":45,"distance_m":0.5}}"#,
            r#"{"type":"camera","camera":{"yaw_deg":0,"pitch_deg":45,"distance_m":1000,"target_en_m":[1e9,0]}}"#,
            r#"{"type":"camera","camera":{"yaw_deg":0,"pitch_deg":45,"distance_m":1000,"fov":90}}"#,
            r#"{"type":"camera","camera":{"yaw_deg":"north","pitch_deg":45,"distance_m":1000}}"#,
        ] {
            assert!(parse_command(bad).is_err(), "{bad}");
        }
        assert!(
            parse_command(r#"{"type":"zoom"}"#)
                .unwrap_err()
                .contains("factor")
        );
    }

    #[tokio::test]
    async fn orbit_renders_a_new_frame_and_idle_views_render_nothing() {
        let (in_tx, incoming, sink, mut out_rx) = super::test_pipes::pipes(8);
        let renders = std::sync::Arc::new(std::sync::atomic::AtomicUsize::new(0));
        let counter = renders.clone();
        // The render refuses the period "1999", as the real one refuses an unknown period.
        let render = move |c: OrbitCamera, (w, h): (u32, u32), v: views::Variant, e: Encoding| {
            counter.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
            async move {
                assert_eq!(e, Encoding::Jpeg, "a JPEG stream asks for JPEGs only");
                if v.period.as_deref() == Some("1999") {
                    return Err(RenderFailure::Refused("no data in 1999".into()));
                }
                Ok(Encoded::jpeg(
                    format!("yaw={} {w}x{h} {:?}", c.yaw_deg, v.period).into_bytes(),
                ))
            }
        };
        // A pick answers with the pixel and the camera's yaw, so the test sees both arrive.
        let pick = |c: OrbitCamera, _size: (u32, u32), at: [f32; 2], _v: views::Variant| async move {
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
            layers: twin::OverlayLayers::default(),
            codec: Codec::Jpeg,
        };
        let live = crate::http::events::Live::default();
        let task = tokio::spawn(run_view(
            sink,
            incoming,
            camera(),
            config,
            json!({"scene": "s", "snapshot": 1}),
            live.watch(),
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
            Outgoing::Binary(b"yaw=0 320x180 None".to_vec())
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
            Outgoing::Binary(b"yaw=30 320x180 None".to_vec())
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

        // New data: a frame at rest, naming the new snapshot.
        live.publish(crate::http::events::DataChange {
            ingest_id: 7,
            table: "work_orders".into(),
            rows_changed: 3,
            at: "now".into(),
        });
        let Outgoing::Text(meta) = out_rx.recv().await.unwrap() else {
            panic!("expected metadata")
        };
        let meta: Value = serde_json::from_str(&meta).unwrap();
        assert_eq!(
            (meta["seq"].as_u64(), meta["snapshot"].as_i64()),
            (Some(3), Some(7))
        );
        let _ = out_rx.recv().await.unwrap();
        assert_eq!(renders.load(std::sync::atomic::Ordering::SeqCst), 3);

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
            Outgoing::Binary(b"yaw=30 640x360 None".to_vec())
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

        // Another period renders; a period the scene cannot show is refused and the last
        // view stays.
        in_tx
            .send(Incoming::Text(
                r#"{"type":"period","period":"2024"}"#.into(),
            ))
            .await
            .unwrap();
        let _ = out_rx.recv().await.unwrap();
        let Outgoing::Binary(frame) = out_rx.recv().await.unwrap() else {
            panic!("expected a frame")
        };
        assert!(
            String::from_utf8(frame)
                .unwrap()
                .ends_with("Some(\"2024\")")
        );
        in_tx
            .send(Incoming::Text(
                r#"{"type":"period","period":"1999"}"#.into(),
            ))
            .await
            .unwrap();
        let Outgoing::Text(err) = out_rx.recv().await.unwrap() else {
            panic!("expected an error")
        };
        assert!(err.contains("no data in 1999"), "{err}");
        for bad in [
            r#"{"type":"layer","name":"fog","on":true}"#,
            r#"{"type":"indicator"}"#,
        ] {
            in_tx.send(Incoming::Text(bad.into())).await.unwrap();
            let Outgoing::Text(err) = out_rx.recv().await.unwrap() else {
                panic!("expected an error")
            };
            assert!(err.contains("\"error\""), "{err}");
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

    /// The next frame message and its bytes.
    async fn next_frame(out_rx: &mut mpsc::Receiver<Outgoing>) -> (Value, Vec<u8>) {
        let Some(Outgoing::Text(meta)) = out_rx.recv().await else {
            panic!("expected metadata")
        };
        let meta: Value = serde_json::from_str(&meta).unwrap();
        assert_eq!(meta["type"], "frame", "{meta}");
        let Some(Outgoing::Binary(bytes)) = out_rx.recv().await else {
            panic!("expected the frame's bytes")
        };
        assert_eq!(meta["bytes"].as_u64(), Some(bytes.len() as u64));
        (meta, bytes)
    }

    #[tokio::test]
    async fn a_video_stream_keys_when_it_starts_or_is_asked_and_sends_a_still_at_rest() {
        let (in_tx, incoming, sink, mut out_rx) = super::test_pipes::pipes(8);
        let asked = std::sync::Arc::new(std::sync::Mutex::new(Vec::<Encoding>::new()));
        let log = asked.clone();
        // The stand-in encoder writes what it was asked for; a video keyframe is a key.
        let render = move |c: OrbitCamera, (w, h): (u32, u32), _v: views::Variant, e: Encoding| {
            log.lock().unwrap().push(e);
            async move {
                Ok(Encoded {
                    bytes: format!("{e:?} yaw={} {w}x{h}", c.yaw_deg).into_bytes(),
                    key: !matches!(e, Encoding::Video { key: false }),
                })
            }
        };
        let pick = |_c: OrbitCamera, _s: (u32, u32), _at: [f32; 2], _v: views::Variant| async move {
            Ok(Value::Null)
        };
        let config = ViewConfig {
            fps: 50.0,
            spin_deg_per_s: 0.0,
            size: (320, 180),
            bookmarks: vec![],
            layers: twin::OverlayLayers::default(),
            codec: Codec::H264,
        };
        let live = crate::http::events::Live::default();
        let task = tokio::spawn(run_view(
            sink,
            incoming,
            camera(),
            config,
            json!({"scene": "s"}),
            live.watch(),
            render,
            pick,
        ));
        // The first frame is a keyframe of the video.
        let (meta, bytes) = next_frame(&mut out_rx).await;
        assert_eq!(
            (
                meta["seq"].as_u64(),
                meta["codec"].as_str(),
                meta["key"].as_bool()
            ),
            (Some(1), Some("h264"), Some(true))
        );
        assert_eq!(meta["still"], false);
        assert_eq!(bytes, b"Video { key: true } yaw=0 320x180");
        // At rest: a sharp JPEG still of the same frame (same seq), then nothing.
        let (meta, bytes) = next_frame(&mut out_rx).await;
        assert_eq!(
            (
                meta["seq"].as_u64(),
                meta["codec"].as_str(),
                meta["still"].as_bool()
            ),
            (Some(1), Some("jpeg"), Some(true))
        );
        assert_eq!(bytes, b"Still yaw=0 320x180");
        tokio::time::sleep(STILL_AFTER + Duration::from_millis(200)).await;
        assert_eq!(
            asked.lock().unwrap().len(),
            2,
            "a resting view rendered again"
        );
        // A move is a P-frame; asking for a keyframe gets one.
        in_tx
            .send(Incoming::Text(r#"{"type":"orbit","d_yaw_deg":30}"#.into()))
            .await
            .unwrap();
        let (meta, bytes) = next_frame(&mut out_rx).await;
        assert_eq!(
            (meta["seq"].as_u64(), meta["key"].as_bool()),
            (Some(2), Some(false))
        );
        assert_eq!(bytes, b"Video { key: false } yaw=30 320x180");
        in_tx
            .send(Incoming::Text(r#"{"type":"keyframe"}"#.into()))
            .await
            .unwrap();
        let (meta, _) = next_frame(&mut out_rx).await;
        assert_eq!(
            (meta["seq"].as_u64(), meta["key"].as_bool()),
            (Some(3), Some(true))
        );
        // A size H.264 cannot code is refused and the stream goes on; a good one starts a
        // new sequence with a keyframe.
        in_tx
            .send(Incoming::Text(
                r#"{"type":"resize","width":641,"height":360}"#.into(),
            ))
            .await
            .unwrap();
        // (A still of frame 3 may come first on a slow machine.)
        let err = loop {
            match out_rx.recv().await {
                Some(Outgoing::Text(t)) if t.contains("\"error\"") => break t,
                Some(_) => continue,
                None => panic!("expected an error"),
            }
        };
        assert!(err.contains("even width and height"), "{err}");
        in_tx
            .send(Incoming::Text(
                r#"{"type":"resize","width":640,"height":360}"#.into(),
            ))
            .await
            .unwrap();
        let (meta, bytes) = loop {
            let (meta, bytes) = next_frame(&mut out_rx).await;
            if meta["still"] == false {
                break (meta, bytes);
            }
        };
        assert_eq!(
            (meta["seq"].as_u64(), meta["width"].as_u64()),
            (Some(4), Some(640))
        );
        assert_eq!(bytes, b"Video { key: true } yaw=30 640x360");
        in_tx.send(Incoming::Close).await.unwrap();
        assert_eq!(task.await.unwrap(), Ok(()));
    }
}

#[cfg(test)]
mod session_tests {
    use super::*;
    use std::sync::Arc;
    use std::sync::atomic::AtomicUsize;
    fn camera() -> OrbitCamera {
        OrbitCamera {
            yaw_deg: 0.0,
            pitch_deg: 45.0,
            distance_m: 1000.0,
            target_en_m: [0.0, 0.0],
        }
    }

    #[test]
    fn a_tour_visits_its_bookmarks_in_turn() {
        let far = OrbitCamera {
            distance_m: 5000.0,
            ..camera()
        };
        let tour = [(camera(), 2.0), (far, 3.0)];
        assert_eq!(session_camera(camera(), &tour, 0.0, 1.0), camera());
        assert_eq!(session_camera(camera(), &tour, 0.0, 4.0), far);
        assert_eq!(session_camera(camera(), &tour, 0.0, 5.5), camera());
        // With spin, each stop turns from its bookmark.
        let c = session_camera(camera(), &tour, 10.0, 4.0);
        assert_eq!(c.distance_m, 5000.0);
        assert!((c.yaw_deg - 20.0).abs() < 1e-4, "{}", c.yaw_deg);
        // Without a tour the camera spins.
        let c = session_camera(camera(), &[], 10.0, 3.0);
        assert!((c.yaw_deg - 30.0).abs() < 1e-4);
    }

    #[tokio::test]
    async fn followers_share_one_render_and_get_the_same_frames() {
        let renders = Arc::new(AtomicUsize::new(0));
        let counter = renders.clone();
        let render = move |c: OrbitCamera, e: Encoding| {
            counter.fetch_add(1, Ordering::SeqCst);
            async move {
                assert_eq!(e, Encoding::Jpeg);
                Ok(Encoded::jpeg(format!("yaw={:.0}", c.yaw_deg).into_bytes()))
            }
        };
        let (tx, rx) = tokio::sync::watch::channel(None);
        let wants_key = Arc::new(AtomicBool::new(true));
        // Three followers, each with its own socket.
        let mut outs = Vec::new();
        let mut ins = Vec::new();
        let mut tasks = Vec::new();
        for _ in 0..3 {
            let (in_tx, incoming, sink, out_rx) = super::test_pipes::pipes(64);
            let following = Following {
                frames: rx.clone(),
                wants_key: wants_key.clone(),
            };
            tasks.push(tokio::spawn(run_follower(sink, incoming, following)));
            ins.push(in_tx);
            outs.push(out_rx);
        }
        drop(rx);
        // The camera turns 90 degrees a second; frames at 20 per second.
        let live = crate::http::events::Live::default();
        let leader = tokio::spawn(run_leader(
            tx,
            wants_key.clone(),
            |t| session_camera(camera(), &[], 90.0, t),
            20.0,
            Codec::Jpeg,
            json!({ "scene": "wall" }),
            live.watch(),
            render,
        ));
        let mut seqs: Vec<Vec<u64>> = vec![Vec::new(); 3];
        for (k, out) in outs.iter_mut().enumerate() {
            while seqs[k].len() < 3 {
                if let Some(Outgoing::Text(meta)) = out.recv().await {
                    let v: Value = serde_json::from_str(&meta).unwrap();
                    assert_eq!(v["follow"], true);
                    assert_eq!(v["scene"], "wall");
                    seqs[k].push(v["seq"].as_u64().unwrap());
                }
            }
        }
        // A follower that speaks is told it cannot steer.
        ins[0]
            .send(Incoming::Text(r#"{"type":"orbit","d_yaw_deg":5}"#.into()))
            .await
            .unwrap();
        for in_tx in &ins {
            in_tx.send(Incoming::Close).await.unwrap();
        }
        for t in tasks {
            assert_eq!(t.await.unwrap(), Ok(()));
        }
        // With everyone gone the leader stops; every frame was rendered once for all three.
        leader.await.unwrap();
        let rendered = renders.load(Ordering::SeqCst) as u64;
        let highest = seqs.iter().flatten().copied().max().unwrap();
        assert!(
            rendered >= highest && rendered <= highest + 3,
            "{rendered} renders, seq {highest}"
        );
        // Followers may join a frame late but see the same sequence numbers.
        for s in &seqs {
            assert!(s.windows(2).all(|w| w[1] > w[0]), "{s:?}");
        }
    }

    fn shared(seq: u64, encoding: Encoding, key: bool) -> Option<Arc<SharedFrame>> {
        let frame = Encoded {
            bytes: format!("{seq} {encoding:?}").into_bytes(),
            key,
        };
        let meta = frame_meta(seq, encoding, &frame).to_string();
        Some(Arc::new(SharedFrame {
            seq,
            meta,
            encoding,
            frame,
        }))
    }

    #[tokio::test]
    async fn a_video_follower_that_misses_a_frame_waits_for_the_next_keyframe() {
        let (tx, rx) = tokio::sync::watch::channel(None);
        let wants_key = Arc::new(AtomicBool::new(false));
        let (in_tx, incoming, sink, mut out_rx) = super::test_pipes::pipes(64);
        let following = Following {
            frames: rx,
            wants_key: wants_key.clone(),
        };
        let task = tokio::spawn(run_follower(sink, incoming, following));
        let sent = |seq, encoding, key| {
            tx.send(shared(seq, encoding, key)).unwrap();
        };
        let mut next = async || -> Vec<u8> {
            let Some(Outgoing::Text(_)) = out_rx.recv().await else {
                panic!("expected metadata")
            };
            let Some(Outgoing::Binary(bytes)) = out_rx.recv().await else {
                panic!("expected bytes")
            };
            bytes
        };
        sent(1, Encoding::Video { key: true }, true);
        assert_eq!(next().await, b"1 Video { key: true }");
        sent(2, Encoding::Video { key: false }, false);
        assert_eq!(next().await, b"2 Video { key: false }");
        // Frame 3 never reached this follower: frame 4 cannot be decoded without it.
        sent(4, Encoding::Video { key: false }, false);
        for _ in 0..200 {
            if wants_key.load(Ordering::SeqCst) {
                break;
            }
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
        assert!(
            wants_key.swap(false, Ordering::SeqCst),
            "the follower asked for a keyframe"
        );
        // A still needs no reference: it is shown. The next P-frame is not; the keyframe is.
        sent(4, Encoding::Still, true);
        assert_eq!(next().await, b"4 Still");
        sent(5, Encoding::Video { key: false }, false);
        sent(6, Encoding::Video { key: true }, true);
        assert_eq!(next().await, b"6 Video { key: true }");
        sent(7, Encoding::Video { key: false }, false);
        assert_eq!(next().await, b"7 Video { key: false }");
        // A follower may ask for a keyframe itself (its decoder failed); it cannot steer.
        in_tx
            .send(Incoming::Text(r#"{"type":"keyframe"}"#.into()))
            .await
            .unwrap();
        in_tx
            .send(Incoming::Text(r#"{"type":"orbit","d_yaw_deg":5}"#.into()))
            .await
            .unwrap();
        let Some(Outgoing::Text(err)) = out_rx.recv().await else {
            panic!("expected an error")
        };
        assert!(err.contains("cannot be steered"), "{err}");
        assert!(wants_key.load(Ordering::SeqCst));
        in_tx.send(Incoming::Close).await.unwrap();
        assert_eq!(task.await.unwrap(), Ok(()));
    }

    #[tokio::test]
    async fn a_video_leader_keys_for_each_joiner_and_stills_at_rest() {
        let asked = Arc::new(std::sync::Mutex::new(Vec::<Encoding>::new()));
        let log = asked.clone();
        let render = move |_c: OrbitCamera, e: Encoding| {
            log.lock().unwrap().push(e);
            async move {
                Ok(Encoded {
                    bytes: format!("{e:?}").into_bytes(),
                    key: !matches!(e, Encoding::Video { key: false }),
                })
            }
        };
        let (tx, mut rx) = tokio::sync::watch::channel(None);
        let wants_key = Arc::new(AtomicBool::new(true));
        let live = crate::http::events::Live::default();
        // A camera that rests: frames come only for joiners and the still.
        let leader = tokio::spawn(run_leader(
            tx,
            wants_key.clone(),
            |_t| camera(),
            50.0,
            Codec::H264,
            json!({ "scene": "wall" }),
            live.watch(),
            render,
        ));
        let mut next = async || {
            rx.changed().await.unwrap();
            let f = rx.borrow_and_update().clone().unwrap();
            (f.seq, f.encoding)
        };
        assert_eq!(next().await, (1, Encoding::Video { key: true }));
        assert_eq!(next().await, (1, Encoding::Still));
        tokio::time::sleep(STILL_AFTER + Duration::from_millis(200)).await;
        assert_eq!(asked.lock().unwrap().len(), 2, "a resting session rendered");
        // Someone joins: a keyframe of the same view, then its still.
        wants_key.store(true, Ordering::SeqCst);
        assert_eq!(next().await, (2, Encoding::Video { key: true }));
        assert_eq!(next().await, (2, Encoding::Still));
        assert!(!wants_key.load(Ordering::SeqCst));
        drop(rx);
        leader.await.unwrap();
    }
}

/// A browser's two directions, as channels, for the protocol tests.
#[cfg(test)]
mod test_pipes {
    use super::{Incoming, Outgoing};
    use futures_util::{Sink, Stream, sink, stream};
    use tokio::sync::mpsc;

    /// What the test sends, the stream a view reads, the sink it writes, what the test reads
    /// (up to `capacity` messages waiting).
    #[expect(
        clippy::type_complexity,
        reason = "the four ends, named by their use at each call"
    )]
    pub fn pipes(
        capacity: usize,
    ) -> (
        mpsc::Sender<Incoming>,
        std::pin::Pin<Box<impl Stream<Item = Incoming>>>,
        std::pin::Pin<Box<impl Sink<Outgoing, Error = ()>>>,
        mpsc::Receiver<Outgoing>,
    ) {
        let (in_tx, in_rx) = mpsc::channel::<Incoming>(8);
        let (out_tx, out_rx) = mpsc::channel::<Outgoing>(capacity);
        let incoming = Box::pin(stream::unfold(in_rx, |mut rx| async move {
            rx.recv().await.map(|m| (m, rx))
        }));
        let sink = Box::pin(sink::unfold(out_tx, |tx, item: Outgoing| async move {
            tx.send(item).await.map_err(|_| ())?;
            Ok::<_, ()>(tx)
        }));
        (in_tx, incoming, sink, out_rx)
    }
}
