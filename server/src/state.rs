//! Shared server state.

use analytics::Engine;
use indicators::Catalogue;
use scenes::Scene;
use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use twin::{PreparedScene, Renderer};

/// Whether frames can be rendered, and why not.
pub enum Rendering {
    Available(Arc<RenderSlot>),
    Unavailable(String),
}

/// The renderer in use, replaced when its thread stops (a panic, a lost device): requests in
/// the meantime are answered 503 and `/api/health` says `degraded`.
pub struct RenderSlot {
    current: Mutex<Arc<Renderer>>,
    restarting: Arc<std::sync::atomic::AtomicBool>,
    restarts: Arc<std::sync::atomic::AtomicU64>,
}

impl RenderSlot {
    pub fn new(renderer: Renderer) -> RenderSlot {
        RenderSlot {
            current: Mutex::new(Arc::new(renderer)),
            restarting: Arc::default(),
            restarts: Arc::default(),
        }
    }

    /// The running renderer; when it has stopped, starts a new one in the background and
    /// says so.
    pub fn get(self: &Arc<Self>) -> Result<Arc<Renderer>, String> {
        let current = self.current.lock().expect("renderer lock").clone();
        if current.is_running() {
            return Ok(current);
        }
        use std::sync::atomic::Ordering;
        if !self.restarting.swap(true, Ordering::SeqCst) {
            let slot = self.clone();
            std::thread::spawn(move || {
                match Renderer::start() {
                    Ok(r) => {
                        *slot.current.lock().expect("renderer lock") = Arc::new(r);
                        slot.restarts.fetch_add(1, Ordering::SeqCst);
                        tracing::warn!("the renderer stopped and was restarted");
                    }
                    Err(e) => tracing::error!(error = %e, "the renderer could not be restarted"),
                }
                slot.restarting.store(false, Ordering::SeqCst);
            });
        }
        Err("the renderer stopped and is restarting; try again shortly".into())
    }

    pub fn adapter(&self) -> String {
        self.current
            .lock()
            .expect("renderer lock")
            .adapter()
            .to_owned()
    }

    pub fn restarts(&self) -> u64 {
        self.restarts.load(std::sync::atomic::Ordering::SeqCst)
    }
}

/// A prepared scene and the ingest it was prepared from.
#[derive(Clone)]
pub struct Prepared {
    pub ingest_id: i64,
    pub scene: Arc<PreparedScene>,
}

#[derive(Clone)]
pub struct AppState {
    pub engine: Arc<Engine>,
    /// The engine's catalogue (one definition for the API, the pages and the numbers).
    pub catalogue: Arc<Catalogue>,
    pub scenes: Arc<Vec<Scene>>,
    pub rendering: Arc<Rendering>,
    /// Prepared scenes by scene id.
    pub prepared: Arc<Mutex<HashMap<String, Prepared>>>,
    /// How long analysts' SQL may run.
    pub sql_timeout: std::time::Duration,
    /// Where relative file paths of scene layers are taken from.
    pub data_dir: std::path::PathBuf,
    /// Tokens, roles and scopes, the rate limiter and the audit log.
    pub auth: Arc<crate::http::auth::Auth>,
    /// Shared view sessions (walls) and their followers.
    pub sessions: Arc<crate::http::stream::Sessions>,
    /// Alerts and trends per data snapshot.
    pub answers: Arc<crate::http::Answers>,
    /// The newest commit, followed by event streams and streamed views.
    pub live: Arc<crate::http::events::Live>,
    /// Mappings by name for loads of foreign layouts (operator configuration: they hold SQL).
    pub mappings: Arc<std::collections::BTreeMap<String, analytics::Mapping>>,
    /// The time supervision runs on (task events, deadlines, escalation).
    pub clock: Clock,
    /// Whether the server makes a task of every critical alert without one (the rule of
    /// `serve --auto-tasks`).
    pub auto_tasks: bool,
    /// The pages' front-end libraries (ECharts), read once from `node_modules`.
    pub vendor: Arc<crate::http::vendor::Vendor>,
}

/// The "now" of the closed loop.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Clock {
    /// The wall clock, as China Standard Time (UTC+8), which the data's timestamps use.
    System,
    /// The latest time the data has reached (`analytics::Engine::data_now`): for the demo's
    /// simulated feed and for tests, where time moves as data arrives.
    Data,
}

impl Clock {
    /// Now, on this clock (blocking: the data clock asks the database).
    pub fn now(self, engine: &Engine) -> Result<chrono::NaiveDateTime, analytics::AnalyticsError> {
        let system = || chrono::Utc::now().naive_utc() + chrono::Duration::hours(8);
        Ok(match self {
            Clock::System => system(),
            Clock::Data => engine.data_now()?.unwrap_or_else(system),
        })
    }
}

/// Why a server cannot start on a database.
#[derive(Debug, thiserror::Error)]
pub enum OpenError {
    #[error(transparent)]
    Analytics(#[from] analytics::AnalyticsError),
    #[error(transparent)]
    Scenes(#[from] scenes::SceneError),
    #[error("{0}")]
    BadScene(String),
}

impl AppState {
    /// The server's state on the database file `db`: opened as its one writer and sealed (so
    /// analysts' SQL, in read-only transactions, cannot reach files or change settings), the
    /// built-in scenes checked, and the renderer started when a Vulkan device is there (else
    /// everything but pictures).
    pub fn open(db: &std::path::Path) -> Result<AppState, OpenError> {
        let engine = Engine::open_for_server(db)?;
        let scenes = scenes::builtin()?;
        crate::views::check_scenes(engine.catalogue(), &scenes).map_err(OpenError::BadScene)?;
        let rendering = match Renderer::start() {
            Ok(r) => {
                tracing::info!(adapter = r.adapter(), "rendering available");
                Rendering::Available(Arc::new(RenderSlot::new(r)))
            }
            Err(e) => {
                tracing::warn!(error = %e, "serving without rendering");
                Rendering::Unavailable(e.to_string())
            }
        };
        Ok(AppState::new(engine, scenes, rendering))
    }

    /// State over `engine`, serving the catalogue the engine computes with.
    pub fn new(engine: Engine, scenes: Vec<Scene>, rendering: Rendering) -> AppState {
        AppState {
            catalogue: engine.catalogue().clone(),
            engine: Arc::new(engine),
            scenes: Arc::new(scenes),
            rendering: Arc::new(rendering),
            prepared: Arc::new(Mutex::new(HashMap::new())),
            sql_timeout: std::time::Duration::from_secs(10),
            data_dir: std::env::current_dir().unwrap_or_default(),
            auth: Arc::new(crate::http::auth::Auth::default()),
            sessions: Arc::new(crate::http::stream::Sessions::default()),
            answers: Arc::new(crate::http::Answers::default()),
            live: Arc::new(crate::http::events::Live::default()),
            mappings: Arc::new(std::collections::BTreeMap::new()),
            clock: Clock::System,
            auto_tasks: false,
            vendor: crate::http::vendor::Vendor::shared(),
        }
    }

    pub fn with_clock(mut self, clock: Clock, auto_tasks: bool) -> AppState {
        self.clock = clock;
        self.auto_tasks = auto_tasks;
        self
    }

    /// The same state with these mappings (by name) for loads.
    pub fn with_mappings(
        mut self,
        mappings: std::collections::BTreeMap<String, analytics::Mapping>,
    ) -> AppState {
        self.mappings = Arc::new(mappings);
        self
    }

    /// The same state with these tokens.
    pub fn with_auth(mut self, auth: crate::http::auth::Auth) -> AppState {
        self.auth = Arc::new(auth);
        self
    }

    pub fn scene(&self, id: &str) -> Option<&Scene> {
        self.scenes.iter().find(|s| s.id == id)
    }

    pub fn renderer(&self) -> Result<Arc<Renderer>, crate::error::AppError> {
        match &*self.rendering {
            Rendering::Available(slot) => slot.get().map_err(crate::error::AppError::Unavailable),
            Rendering::Unavailable(why) => Err(crate::error::AppError::Unavailable(why.clone())),
        }
    }
}
