// Shared by the wall, analyst and planner pages: the token from the page's URL, and fetch
// with it. Hand-written, no libraries.
const TOKEN = new URLSearchParams(location.search).get('token') || '';
const PARAMS = new URLSearchParams(location.search);
async function api(path) {
  const r = await fetch(path, { headers: { Authorization: 'Bearer ' + TOKEN } });
  const body = await r.json().catch(() => ({}));
  if (!r.ok) throw new Error(body.error || r.statusText);
  return body;
}
// POST a JSON body; an error carries the server's rule and message.
async function post(path, body) {
  const r = await fetch(path, {
    method: 'POST',
    headers: { Authorization: 'Bearer ' + TOKEN, 'Content-Type': 'application/json' },
    body: JSON.stringify(body),
  });
  const out = await r.json().catch(() => ({}));
  if (!r.ok) {
    const e = new Error(out.error || r.statusText);
    e.rule = out.rule; e.status = r.status;
    throw e;
  }
  return out;
}
function fmt(v, unit) {
  if (v === null || v === undefined) return '–';
  if (unit === 'ratio') return (v * 100).toFixed(1) + '%';
  return Math.abs(v) >= 1000 ? v.toFixed(0) : v.toFixed(2);
}
function esc(s) {
  return String(s).replace(/[&<>"]/g, c => ({ '&': '&amp;', '<': '&lt;', '>': '&gt;', '"': '&quot;' }[c]));
}
// A small SVG line chart of numbers (nulls skipped).
function sparkline(values, w, h, colour) {
  const pts = values.map((v, i) => [i, v]).filter(p => p[1] !== null && p[1] !== undefined);
  if (pts.length < 2) return `<svg width="${w}" height="${h}"></svg>`;
  const ys = pts.map(p => p[1]);
  const lo = Math.min(...ys), hi = Math.max(...ys), span = hi - lo || 1;
  const x = i => (i / (values.length - 1)) * (w - 4) + 2;
  const y = v => h - 2 - ((v - lo) / span) * (h - 4);
  const d = pts.map((p, k) => (k ? 'L' : 'M') + x(p[0]).toFixed(1) + ',' + y(p[1]).toFixed(1)).join(' ');
  return `<svg width="${w}" height="${h}" viewBox="0 0 ${w} ${h}"><path d="${d}" fill="none" stroke="${colour}" stroke-width="2"/></svg>`;
}
// Streams a view into a <canvas>; reconnects a second after the stream ends (a restarted
// renderer, a restarted server). Returns a handle with send(), readyState and onjson.
//
// The codec: H.264 decoded by WebCodecs where the browser has it (the server sends a
// keyframe first, on request and every few seconds, and a sharp JPEG still when the view
// rests), else JPEG frames. `codec=jpeg` in the page's URL asks for JPEG; a decoder that
// fails three times falls back to JPEG for good. The canvas says what it shows:
// data-codec, data-seq (the newest frame drawn), data-decoded (video frames decoded),
// data-stills, data-fallback (why it fell back), data-print (a 32x18 grey thumbnail of the
// newest decoded video frame, hex: what a test compares, at a cost of 576 pixels a frame).
const H264_PROBE = 'avc1.42E01F';
async function h264Decodes() {
  if (!('VideoDecoder' in window) || PARAMS.get('codec') === 'jpeg') return false;
  try { return (await VideoDecoder.isConfigSupported({ codec: H264_PROBE })).supported === true; }
  catch (e) { return false; }
}
function stream(canvas, query) {
  const proto = location.protocol === 'https:' ? 'wss' : 'ws';
  const ctx = canvas.getContext('2d');
  const conn = {
    ws: null, onjson: null,
    send(m) { if (this.ws && this.ws.readyState === 1) this.ws.send(m); },
    get readyState() { return this.ws ? this.ws.readyState : 3; },
  };
  let video = null;       // true once decided; false after a fallback
  let failures = 0;
  const thumb = new OffscreenCanvas(32, 18).getContext('2d', { willReadFrequently: true });
  const print = (picture) => {
    thumb.drawImage(picture, 0, 0, 32, 18);
    const d = thumb.getImageData(0, 0, 32, 18).data;
    let hex = '';
    for (let i = 0; i < d.length; i += 4) hex += (((d[i] * 3 + d[i + 1] * 6 + d[i + 2]) / 10) | 0).toString(16).padStart(2, '0');
    return hex;
  };
  const count = (k) => { canvas.dataset[k] = Number(canvas.dataset[k] || 0) + 1; };
  const draw = (picture, m) => {
    if (m.width && m.height && (canvas.width !== m.width || canvas.height !== m.height)) {
      canvas.width = m.width; canvas.height = m.height;
    }
    ctx.drawImage(picture, 0, 0, canvas.width, canvas.height);
    canvas.dataset.seq = m.seq;
  };
  async function open() {
    if (video === null) video = await h264Decodes();
    const codec = video ? 'h264' : 'jpeg';
    canvas.dataset.codec = codec;
    const ws = new WebSocket(`${proto}://${location.host}/ws/view?${query}&codec=${codec}&token=${encodeURIComponent(TOKEN)}`);
    ws.binaryType = 'arraybuffer';
    let next = null;          // the metadata of the binary message to come
    let decoder = null, configured = '', needKey = true;
    const metas = [];         // frames in the decoder, oldest first
    const reset = (why) => {
      failures += 1;
      if (decoder && decoder.state !== 'closed') decoder.close();
      decoder = null; configured = ''; needKey = true; metas.length = 0;
      if (failures >= 3) { video = false; canvas.dataset.fallback = why; ws.close(); return; }
      conn.send(JSON.stringify({ type: 'keyframe' }));
    };
    const decode = (m, data) => {
      if (needKey && !m.key) return;   // a delta frame needs the frames before it
      const wanted = m.codec_string || configured || H264_PROBE;
      try {
        if (!decoder || (m.key && wanted !== configured)) {
          if (decoder && decoder.state !== 'closed') decoder.close();
          decoder = new VideoDecoder({
            output: (frame) => {
              const fm = metas.shift() || m;
              draw(frame, fm); canvas.dataset.print = print(frame); frame.close(); count('decoded');
            },
            error: (e) => reset(String(e && e.message || e)),
          });
          decoder.configure({ codec: wanted, optimizeForLatency: true });
          configured = wanted;
        }
        needKey = false;
        metas.push(m);
        decoder.decode(new EncodedVideoChunk({ type: m.key ? 'key' : 'delta', timestamp: m.seq * 1000, data }));
      } catch (e) { reset(String(e && e.message || e)); }
    };
    ws.onmessage = (ev) => {
      if (typeof ev.data === 'string') {
        const m = JSON.parse(ev.data);
        if (m.type === 'frame') next = m;
        if (conn.onjson) conn.onjson(m);
        return;
      }
      const m = next; next = null;
      if (!m) return;
      if (m.codec === 'h264') { decode(m, ev.data); return; }
      createImageBitmap(new Blob([ev.data], { type: 'image/jpeg' })).then((bitmap) => {
        draw(bitmap, m); bitmap.close();
        if (m.still) count('stills');
      }, () => {});
    };
    ws.onclose = () => {
      if (decoder && decoder.state !== 'closed') decoder.close();
      setTimeout(open, video === false && canvas.dataset.fallback ? 0 : 1000);
    };
    conn.ws = ws;
  }
  open();
  return conn;
}
// Shows a picture (a snapshot) on a stream's canvas until the stream's first frame.
function placeholder(canvas, url) {
  const img = new Image();
  img.onload = () => { if (!canvas.dataset.seq) canvas.getContext('2d').drawImage(img, 0, 0, canvas.width, canvas.height); };
  img.src = url;
}
// Follows the data: the events of /ws/events (hello, snapshot, alert, cleared), each handed
// to `handlers[type]`; reconnects two seconds after the socket closes.
function follow(handlers, query) {
  const proto = location.protocol === 'https:' ? 'wss' : 'ws';
  (function open() {
    const ws = new WebSocket(`${proto}://${location.host}/ws/events?${query || ''}&token=${encodeURIComponent(TOKEN)}`);
    ws.onmessage = ev => { const m = JSON.parse(ev.data); if (handlers[m.type]) handlers[m.type](m.data); };
    ws.onclose = () => setTimeout(open, 2000);
  })();
}
// ---- Charts and maps (ECharts, served from /vendor by the server; see http/vendor.rs) ----
// Whether the person (or the test) asked for no motion: charts draw without animation and
// lists do not scroll by themselves.
const STILL = window.matchMedia && window.matchMedia('(prefers-reduced-motion: reduce)').matches;
// The pages' palette: dark 大屏 colours, one per series, and the status colours.
const PALETTE = ['#4fc3f7', '#ffb74d', '#81c784', '#e57373', '#ba68c8', '#fff176', '#4db6ac', '#f06292'];
const STATUS_COLOUR = { ok: '#1a9850', warning: '#d9a400', critical: '#d73027', no_data: '#555' };
// A length in CSS pixels for a design length `n` on a page sized in rem (1rem = 10 design
// pixels at 1920 wide): charts scale with the page instead of having a second layout.
function ui(n) {
  return n * parseFloat(getComputedStyle(document.documentElement).fontSize) / 10;
}
// The ECharts instance of `el` (made once), resized with the window. `el.dataset.ready` is set
// once a render with data has finished (what tests wait for).
const CHARTS = [];
function chart(el) {
  if (!window.echarts) {
    el.innerHTML = '<p class=warn>图表库未安装 The chart library is not installed on this server (make deps).</p>';
    throw new Error('ECharts is not installed (make deps)');
  }
  let c = echarts.getInstanceByDom(el);
  if (!c) {
    c = echarts.init(el, null, { renderer: 'canvas' });
    c.on('finished', () => { if (el.dataset.pending) { delete el.dataset.pending; el.dataset.ready = '1'; } });
    CHARTS.push(c);
  }
  return c;
}
// Sets a chart's option (replacing the old one) and marks it pending until drawn.
function draw(el, option) {
  const c = chart(el);
  el.dataset.pending = '1';
  delete el.dataset.ready;
  c.setOption(Object.assign({ animation: !STILL, backgroundColor: 'transparent' }, option), true);
  return c;
}
window.addEventListener('resize', () => CHARTS.forEach(c => c.resize()));
// The common look of an axis on the dark pages.
function axisStyle(extra) {
  return Object.assign({
    axisLine: { lineStyle: { color: '#5b6f8f' } },
    axisLabel: { color: '#b8c7dd', fontSize: ui(12) },
    nameTextStyle: { color: '#9fb3d1', fontSize: ui(12) },
    splitLine: { lineStyle: { color: '#1d2b44' } },
  }, extra || {});
}
// A value as an axis or tooltip shows it: ratios in percent, others as they are.
function axisValue(unit) {
  return unit === 'ratio' ? (v => +(v * 100).toFixed(1) + '%') : (v => Math.abs(v) >= 10000 ? (v / 10000).toFixed(1) + '万' : String(+v.toFixed(2)));
}
function unitLabel(unit) {
  return unit === 'ratio' ? '%' : unit;
}
// Registers the boundaries of `level` within `within` as an ECharts map (from the database,
// through /api/regions/shapes) and returns [map name, GeoJSON].
const MAPS = new Map();
async function regionMap(within, level) {
  const name = `${within}:${level}`;
  if (!MAPS.has(name)) {
    const geo = await api(`/api/regions/shapes?within=${encodeURIComponent(within)}&level=${encodeURIComponent(level)}`);
    // ECharts names map regions by `properties.name`; the division code is unique, names
    // need not be (two 新区 in two cities).
    for (const f of geo.features) { f.properties.label = f.properties.name; f.properties.name = f.properties.code; }
    echarts.registerMap(name, geo);
    MAPS.set(name, geo);
  }
  return [name, MAPS.get(name)];
}
// The levels from province to grid, and the one below a level.
const LEVELS = ['province', 'city', 'county', 'township', 'community', 'grid'];
function levelBelow(level) { const i = LEVELS.indexOf(level); return i >= 0 && i + 1 < LEVELS.length ? LEVELS[i + 1] : null; }
function levelOf(code) { return { 2: 'province', 4: 'city', 6: 'county', 9: 'township', 12: 'community' }[code.length] || 'grid'; }
const LEVEL_ZH = { province: '省', city: '市', county: '县区', township: '街镇', community: '社区', grid: '网格' };
