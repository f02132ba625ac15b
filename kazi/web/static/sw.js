// Kazi's service worker (scope /app/): keeps the app's shell on the device so the app opens without a
// connection. Data (tasks, forms, translations, queued reports) is the app's business, in IndexedDB; this
// worker never touches /api/ requests. The server writes a hash of the app's files into VERSION, so any
// change to a file is a new worker, a new cache and the old one removed.
const VERSION = '__KAZI_VERSION__';
const CACHE = `kazi-shell-${VERSION}`;
const SHELL = ['./', 'app.css', 'app.js', 'logic.js', 'data.js', 'icons.js', 'tracker.js', 'analytics.js', 'supervision.js', 'supervision-logic.js', 'supervision.css', 'manifest.webmanifest', 'icon.svg'];
const scoped = (path) => new URL(path, self.registration.scope).href;

self.addEventListener('install', (event) => {
  event.waitUntil((async () => {
    const cache = await caches.open(CACHE);
    await cache.addAll(SHELL.map((p) => new Request(scoped(p), { cache: 'no-cache' })));
    await self.skipWaiting();
  })());
});

self.addEventListener('activate', (event) => {
  event.waitUntil((async () => {
    for (const key of await caches.keys()) {
      if (key.startsWith('kazi-shell-') && key !== CACHE) await caches.delete(key);
    }
    await self.clients.claim();
  })());
});

self.addEventListener('fetch', (event) => {
  const req = event.request;
  if (req.method !== 'GET') return;
  const url = new URL(req.url);
  if (url.origin !== self.location.origin || !url.href.startsWith(self.registration.scope)) return;
  event.respondWith((async () => {
    const cache = await caches.open(CACHE);
    // Every page of the app is the same document (routes are in the hash).
    const key = req.mode === 'navigate' ? scoped('./') : req;
    const hit = await cache.match(key, { ignoreSearch: true });
    if (hit) return hit;
    return fetch(req);
  })());
});
