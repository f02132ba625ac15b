// Task interaction tracking, the device's half (docs/interactions.md): while a tracked user is in the Tasks
// tab, what they do is noted as events (an action, maybe a ref and a detail, the time since the session
// began), kept per local day and user in IndexedDB ("kazi-tracking": one record per day and user in "days",
// the finished days' summaries in "summaries"), and sent with the sync once the day is over.
// Only users whose role holds can_track_task_interactions are tracked; for anyone else nothing is stored.
// Nothing here may slow or break the app: every entry point catches everything, and any failure turns
// tracking off for the page's lifetime. Never a name, a contact id, a displayed title, a form answer or a
// filter's value: refs are title keys, form ids and filter field ids, details are counts and positions.

import { localDay, newId } from './logic.js';

export const PERMISSION = 'can_track_task_interactions';
const DB_NAME = 'kazi-tracking';
const CAP = 500;          // events kept per user, device and day; the rest are counted in `dropped`
const BATCH = 100;        // summaries per POST
const SCROLL_MS = 2000;   // at most one task_list:scroll per 2 s
const DEVICE_KEY = 'kazi-device-id';
const VERSION_KEY = 'kazi-app-version';
const USED_KEY = 'kazi-tracking-used';
const REF = /^[A-Za-z0-9_.:-]{1,200}$/; // a title key, a form id or a filter field id; anything else is not sent

let on = false;        // tracking the current user
let broken = false;    // a failure: off until the page is loaded again
let user = null;
let session = null;    // {id, startedAt}
let lastScroll = -Infinity;
let pending = [];      // events not yet written
let pump = null;
let dbPromise = null;
const purged = new Set(); // untracked users whose leftovers were removed (once per page)

function off(err) {
  broken = true;
  on = false;
  session = null;
  pending = [];
  try { console.warn('kazi: interaction tracking turned off:', err?.message ?? err); } catch { /* nothing */ }
}

// Runs fn, never throws: a tracker failure turns tracking off, the app goes on.
function guard(fn) {
  try {
    const out = fn();
    return out instanceof Promise ? out.catch(off) : out;
  } catch (err) {
    off(err);
    return undefined;
  }
}

export const isOn = () => on;

export function deviceId() {
  let id = localStorage.getItem(DEVICE_KEY);
  if (!id || !/^[0-9a-f-]{36}$/.test(id)) {
    id = newId();
    localStorage.setItem(DEVICE_KEY, id);
  }
  return id;
}

const version = () => {
  const v = localStorage.getItem(VERSION_KEY);
  return v && /^[0-9a-f]{8,64}$/.test(v) ? v : 'unknown';
};

// The app's version is the service worker's VERSION (a hash of the app's files, written in by the server).
async function learnVersion() {
  try {
    const res = await fetch('sw.js', { cache: 'no-cache' });
    const m = /const VERSION = '([0-9a-f]{8,64})'/.exec(await res.text());
    if (m) localStorage.setItem(VERSION_KEY, m[1]);
  } catch { /* offline: the version learnt before, else "unknown" */ }
}

// ---------------------------------------------------------------------------------------------------
// IndexedDB

function db() {
  dbPromise ??= new Promise((resolve, reject) => {
    const r = indexedDB.open(DB_NAME, 1);
    r.onupgradeneeded = () => {
      r.result.createObjectStore('days', { keyPath: 'key' });
      r.result.createObjectStore('summaries', { keyPath: '_id' });
    };
    r.onsuccess = () => {
      localStorage.setItem(USED_KEY, '1');
      r.result.onversionchange = () => { r.result.close(); dbPromise = null; };
      resolve(r.result);
    };
    r.onerror = () => reject(r.error);
  });
  return dbPromise;
}

const req = (r) => new Promise((resolve, reject) => { r.onsuccess = () => resolve(r.result); r.onerror = () => reject(r.error); });

// fn(stores) issues its requests (awaiting only them); resolves with fn's value once committed.
async function inTx(fn) {
  const d = await db();
  const t = d.transaction(['days', 'summaries'], 'readwrite');
  const done = new Promise((resolve, reject) => { t.oncomplete = resolve; t.onerror = () => reject(t.error); t.onabort = () => reject(t.error); });
  const out = await fn(t.objectStore('days'), t.objectStore('summaries'));
  await done;
  return out;
}

// A finished day as the summary the server takes (docs/interactions.md, "The summary").
function summaryOf(rec) {
  const sessions = rec.sessions
    .map((s) => ({ session: s.session, startedAt: s.startedAt, events: [...s.events].sort((a, b) => a.offset - b.offset) }))
    .sort((a, b) => a.startedAt - b.startedAt);
  return {
    _id: `interaction-${rec.day}-${rec.user}-${rec.deviceId}`,
    type: 'interaction-log',
    metadata: { user: rec.user, deviceId: rec.deviceId, date: rec.day, version: rec.version },
    sessions,
    dropped: rec.dropped,
  };
}

// Days before today become summaries and their records go, in one transaction.
async function rollOver(days, summaries, today) {
  for (const rec of await req(days.getAll())) {
    if (rec.day >= today) continue;
    if (rec.sessions.length) summaries.put(summaryOf(rec));
    days.delete(rec.key);
  }
}

function apply(rec, e) {
  const sig = e.action === 'task_list:scroll' ? null : `${e.action}|${e.ref ?? ''}|${e.detail ?? ''}`;
  if (sig !== null && sig === rec.last) return; // consecutive identical events: kept once
  rec.last = sig;
  if (rec.kept >= CAP) { rec.dropped += 1; return; }
  let s = rec.sessions.find((x) => x.session === e.session);
  if (!s) { s = { session: e.session, startedAt: e.startedAt, events: [] }; rec.sessions.push(s); }
  const ev = { action: e.action };
  if (e.ref !== undefined) ev.ref = e.ref;
  if (e.detail !== undefined) ev.detail = e.detail;
  ev.offset = e.offset;
  s.events.push(ev);
  rec.kept += 1;
}

async function write(batch) {
  const today = localDay();
  await inTx(async (days, summaries) => {
    await rollOver(days, summaries, today);
    const recs = new Map();
    for (const e of batch) {
      if (e.day < today) continue; // its day is already summarised (events pending at midnight)
      const key = `${e.user}|${e.day}`;
      let rec = recs.get(key) ?? await req(days.get(key));
      rec ??= { key, user: e.user, day: e.day, deviceId: e.deviceId, version: 'unknown', sessions: [], kept: 0, dropped: 0, last: null };
      rec.version = version() !== 'unknown' ? version() : rec.version;
      apply(rec, e);
      recs.set(key, rec);
    }
    for (const rec of recs.values()) days.put(rec);
  });
}

function kick() {
  pump ??= (async () => {
    try {
      while (pending.length) {
        const batch = pending;
        pending = [];
        await write(batch);
      }
    } catch (err) {
      off(err);
    } finally {
      pump = null;
    }
  })();
}

// Resolves once every event noted so far is stored (tests and the sync wait on it).
export const flushed = () => guard(async () => { while (pump) await pump; });

// A day is over (local midnight, a sync): finished days become summaries, waiting to be sent.
export const dayOver = () => guard(async () => {
  if (!localStorage.getItem(USED_KEY)) return;
  await flushed();
  await inTx((days, summaries) => rollOver(days, summaries, localDay()));
});

// ---------------------------------------------------------------------------------------------------
// recording

// Note one event. `ref` and `detail` only for the actions that take them (docs/interactions.md, "Events").
export function track(action, ref, detail) {
  guard(() => {
    if (!on || !user) return;
    const now = Date.now();
    if (action === 'task_list:leave') {
      if (!session) return;
    } else if (!session) {
      session = { id: newId(), startedAt: now };
    }
    if (action === 'task_list:scroll') {
      if (now - lastScroll < SCROLL_MS) return;
      lastScroll = now;
    }
    const e = { user, deviceId: deviceId(), day: localDay(now), session: session.id, startedAt: session.startedAt, action, offset: Math.max(0, now - session.startedAt) };
    if (ref !== undefined) {
      if (typeof ref !== 'string' || !REF.test(ref)) return; // never anything but an identifier
      e.ref = ref;
    }
    if (detail !== undefined) {
      if (!Number.isInteger(detail) || detail < 0) return;
      e.detail = Math.min(detail, 1000000);
    }
    if (action === 'task_list:leave') session = null;
    pending.push(e);
    kick();
  });
}

export const inSession = () => on && session !== null;

// ---------------------------------------------------------------------------------------------------
// who is tracked

async function purge(username) {
  await flushed();
  await inTx(async (days, summaries) => {
    for (const rec of await req(days.getAll())) if (rec.user === username) days.delete(rec.key);
    for (const s of await req(summaries.getAll())) if (s.metadata?.user === username) summaries.delete(s._id);
  });
}

// The account changed (login, /me, logout): tracking on exactly when its permissions hold PERMISSION. An
// account that is not tracked (any more) has nothing on this device: what waited for it is removed.
export function configure(me) {
  guard(() => {
    const name = me?.username ?? null;
    const known = Array.isArray(me?.permissions); // the login's answer has no permissions: /me tells
    if (name && !known && name === user) return;
    const tracked = !broken && !!name && known && me.permissions.includes(PERMISSION);
    if (name !== user || !tracked) {
      if (on && session) track('task_list:leave');
      session = null;
    }
    const was = on && user === name;
    user = name;
    on = tracked;
    if (tracked && !was) {
      deviceId();
      learnVersion();
    }
    if (!tracked && !broken && known && name && !purged.has(name) && localStorage.getItem(USED_KEY)) {
      purged.add(name);
      purge(name).catch(off);
    }
  });
}

// ---------------------------------------------------------------------------------------------------
// sending: `post(batch)` is the API call (data.js); it throws {status, body} for an HTTP error and
// anything else for no answer

export function send(post) {
  return guard(async () => {
    if (!on || !user) return;
    const me = user;
    await dayOver();
    if (!navigator.onLine) return;
    let waiting = (await inTx((_, summaries) => req(summaries.getAll())))
      .filter((s) => s.metadata?.user === me)
      .sort((a, b) => (a._id < b._id ? -1 : 1));
    while (waiting.length && on && user === me) {
      const batch = waiting.slice(0, BATCH);
      const remove = (ids) => inTx((_, summaries) => { for (const id of ids) summaries.delete(id); });
      try {
        await post(batch);
        await remove(batch.map((s) => s._id));
        waiting = waiting.slice(batch.length);
      } catch (err) {
        if (err?.status === 422) {
          // refused for good: remove the refused ones (by index), send the others again
          const bad = new Set((err.body?.error?.problems ?? []).map((p) => p.index).filter((i) => Number.isInteger(i) && batch[i]));
          if (!bad.size) return;
          const refused = batch.filter((_, i) => bad.has(i)).map((s) => s._id);
          console.warn('kazi: interaction summaries refused by the server:', refused, err.message);
          await remove(refused);
          waiting = waiting.filter((s) => !refused.includes(s._id));
        } else if (err?.status === 403) {
          // not tracked (any more): stop, and drop what can never be accepted
          on = false;
          session = null;
          await purge(me);
          return;
        } else {
          return; // 401, 409, 413, 5xx, no answer: kept, sent at a later sync
        }
      }
    }
  });
}
