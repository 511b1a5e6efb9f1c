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
// Streams a view into an <img>; reconnects a second after the stream ends (a restarted
// renderer, a restarted server). Returns a handle with send(), readyState and onjson.
function stream(img, query) {
  const proto = location.protocol === 'https:' ? 'wss' : 'ws';
  const conn = {
    ws: null, onjson: null,
    send(m) { if (this.ws && this.ws.readyState === 1) this.ws.send(m); },
    get readyState() { return this.ws ? this.ws.readyState : 3; },
  };
  function open() {
    const ws = new WebSocket(`${proto}://${location.host}/ws/view?${query}&token=${encodeURIComponent(TOKEN)}`);
    ws.binaryType = 'blob';
    ws.onmessage = (ev) => {
      if (typeof ev.data === 'string') {
        const m = JSON.parse(ev.data);
        if (m.type === 'frame') img.dataset.seq = m.seq;
        if (conn.onjson) conn.onjson(m);
        return;
      }
      const url = URL.createObjectURL(ev.data);
      const old = img.src; img.src = url;
      if (old.startsWith('blob:')) URL.revokeObjectURL(old);
    };
    ws.onclose = () => setTimeout(open, 1000);
    conn.ws = ws;
  }
  open();
  return conn;
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
