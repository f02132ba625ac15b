#!/usr/bin/env node
/*
 * Kazi benchmark: run CHT's OWN task engine on a program folder + a population.
 *
 *   compile  cht-conf 6.6.1 (`cht --local --no-check --skip-version-check compile-app-settings` on a staged
 *            project: tasks.js, targets.js, helpers, task-schedules.json, app_settings/base_settings.json made
 *            from the program's settings, .eslintrc, a stub contact summary) -> app_settings.json tasks.rules
 *   run      cht-core 4.11's rules-engine as bundled in cht-conf-test-harness 5.0.4, on an in-memory PouchDB
 *            (pouchdb + pouchdb-adapter-memory, wired like the harness's core-adapter.js), with a fake Date
 *            (sinon, only `Date` is faked: timers stay real) set to `now`, in the timezone of the TZ env var.
 *
 * Modes
 *   bench (default)  --program DIR --population FILE --user-contact ID [--user-name NAME] [--roles a,b]
 *                    --now ISO|ms [--emission-repeats N] [--out-task-docs FILE]
 *       prints one JSON object: compile / load / index / pipeline / emission-pass wall times (ms), counts of
 *       emissions and task docs (by state), peak RSS.
 *       (a) pipeline      = rulesEngine.initialize(settings) + fetchTasksFor() + every task-doc write committed
 *                           (views already indexed for contacts/reports: indexing is reported apart as index_ms)
 *       (b) emission pass = RulesEmitter.getEmissionsFor(contacts, reports, []) over all containers, no writes
 *   case             --case FILE   (a conformance case: steps run on one engine + one DB, as the suite's
 *                    provenance describes) -> compares the task docs / emissions / tasks tab with `expected`.
 *   compile-only     --program DIR --compile-only
 *
 * Options
 *   --modules DIR    folder holding node_modules with cht-conf + cht-conf-test-harness (default:
 *                    $KAZI_CHT_MODULES or <repo>/bench/.work/cht)
 *   --work DIR       scratch folder for staged projects / compile cache (default: <modules>/../stage)
 *   --tz ZONE        sets TZ (the process re-executes itself when TZ differs)
 */
'use strict';

const fs = require('fs');
const path = require('path');
const crypto = require('crypto');
const { spawnSync } = require('child_process');
const { createRequire } = require('module');

// ---------------------------------------------------------------- arguments
const parseArgs = argv => {
  const args = { _: [] };
  for (let i = 0; i < argv.length; i++) {
    const a = argv[i];
    if (a.startsWith('--')) {
      const eq = a.indexOf('=');
      if (eq > 0) {
        args[a.slice(2, eq)] = a.slice(eq + 1);
      } else if (i + 1 < argv.length && !argv[i + 1].startsWith('--')) {
        args[a.slice(2)] = argv[++i];
      } else {
        args[a.slice(2)] = true;
      }
    } else {
      args._.push(a);
    }
  }
  return args;
};

const args = parseArgs(process.argv.slice(2));

// Timezone: the engine works in the process's local time. Re-exec when --tz asks for another zone
// (setting process.env.TZ at runtime also works in Node >= 13, but a fresh process is unambiguous).
const caseTz = () => {
  if (!args.case) {
    return undefined;
  }
  return JSON.parse(fs.readFileSync(args.case, 'utf8')).timezone;
};
const wantedTz = args.tz || caseTz();
if (wantedTz && process.env.TZ !== wantedTz) {
  const r = spawnSync(process.execPath, [...process.execArgv, __filename, ...process.argv.slice(2)], {
    stdio: 'inherit',
    env: { ...process.env, TZ: wantedTz },
  });
  process.exit(r.status === null ? 1 : r.status);
}

const REPO = path.resolve(__dirname, '..', '..');
const MODULES = path.resolve(args.modules || process.env.KAZI_CHT_MODULES || path.join(REPO, 'bench', '.work', 'cht'));
const WORK = path.resolve(args.work || path.join(MODULES, '..', 'stage'));
if (!fs.existsSync(path.join(MODULES, 'node_modules', 'cht-conf-test-harness'))) {
  console.error(`driver: cht-conf-test-harness not installed under ${MODULES} (run bench/cht/setup.sh)`);
  process.exit(2);
}
const req = createRequire(path.join(MODULES, 'package.json'));

const hr = () => Number(process.hrtime.bigint()) / 1e6; // ms, never faked (sinon fakes only Date here)
const log = (...m) => {
  if (!args.quiet) {
    console.error('[cht-driver]', ...m);
  }
};

// ---------------------------------------------------------------- program folder -> compiled settings
const readJson = p => JSON.parse(fs.readFileSync(p, 'utf8'));

const programSettings = programDir => {
  for (const name of ['app_settings.json', 'settings.json', path.join('app_settings', 'base_settings.json')]) {
    const p = path.join(programDir, name);
    if (fs.existsSync(p)) {
      return readJson(p);
    }
  }
  return {};
};

const listFiles = (dir, rel = '') => {
  const out = [];
  for (const entry of fs.readdirSync(path.join(dir, rel), { withFileTypes: true })) {
    const r = path.join(rel, entry.name);
    if (entry.isDirectory()) {
      if (['node_modules', '.git', '__pycache__', 'app_settings'].includes(entry.name)) {
        continue;
      }
      out.push(...listFiles(dir, r));
    } else if (/\.(js|json)$/.test(entry.name)) {
      out.push(r);
    }
  }
  return out.sort();
};

const ESLINTRC = {
  root: true,
  env: { es6: true, node: true },
  parserOptions: { ecmaVersion: 'latest' },
  globals: { Utils: 'readonly', user: 'readonly', cht: 'readonly' },
};

const compileProgram = programDir => {
  programDir = path.resolve(programDir);
  const files = listFiles(programDir);
  if (!files.includes('tasks.js')) {
    throw new Error(`${programDir}: no tasks.js (CHT's engine needs the JavaScript form of the program)`);
  }
  const settings = programSettings(programDir);
  const hash = crypto.createHash('sha256');
  hash.update('cht-conf-6.6.1\n' + JSON.stringify(settings));
  if (fs.existsSync(path.join(programDir, '.eslintrc'))) {
    hash.update('\n.eslintrc\n');
    hash.update(fs.readFileSync(path.join(programDir, '.eslintrc')));
  }
  for (const f of files) {
    hash.update(`\n${f}\n`);
    hash.update(fs.readFileSync(path.join(programDir, f)));
  }
  const key = hash.digest('hex').slice(0, 16);
  const stage = path.join(WORK, `${path.basename(programDir)}-${key}`);
  const compiled = path.join(stage, 'app_settings.json');
  if (fs.existsSync(compiled)) {
    return { appSettings: readJson(compiled), stage, compileMs: 0, cached: true };
  }
  fs.rmSync(stage, { recursive: true, force: true });
  fs.mkdirSync(path.join(stage, 'app_settings'), { recursive: true });
  for (const f of files) {
    if (['app_settings.json', 'settings.json', 'package.json', 'package-lock.json'].includes(f)) {
      continue;
    }
    fs.mkdirSync(path.dirname(path.join(stage, f)), { recursive: true });
    fs.copyFileSync(path.join(programDir, f), path.join(stage, f));
    fs.chmodSync(path.join(stage, f), 0o644);
  }
  if (!files.includes('targets.js')) {
    fs.writeFileSync(path.join(stage, 'targets.js'), 'module.exports = [];\n');
  }
  if (!fs.existsSync(path.join(stage, 'contact-summary.templated.js')) &&
      !fs.existsSync(path.join(stage, 'contact-summary.js'))) {
    fs.writeFileSync(path.join(stage, 'contact-summary.templated.js'),
      'module.exports = { fields: [], cards: [], context: {} };\n');
  }
  // the program's own .eslintrc when it has one (cht-conf halts on lint errors), else a permissive one
  if (fs.existsSync(path.join(programDir, '.eslintrc'))) {
    fs.copyFileSync(path.join(programDir, '.eslintrc'), path.join(stage, '.eslintrc'));
  } else {
    fs.writeFileSync(path.join(stage, '.eslintrc'), JSON.stringify(ESLINTRC, null, 2));
  }
  const base = { ...settings };
  delete base.tasks; // compiled afresh
  fs.writeFileSync(path.join(stage, 'app_settings', 'base_settings.json'), JSON.stringify(base, null, 2));

  const cht = path.join(MODULES, 'node_modules', 'cht-conf', 'src', 'bin', 'index.js');
  const t0 = hr();
  const r = spawnSync(process.execPath,
    [cht, '--local', '--no-check', '--skip-version-check', '--skip-dependency-check', 'compile-app-settings'],
    { cwd: stage, encoding: 'utf8', env: { ...process.env, NODE_OPTIONS: '' } });
  const compileMs = hr() - t0;
  if (r.status !== 0 || !fs.existsSync(compiled)) {
    throw new Error(`cht-conf compile-app-settings failed in ${stage}:\n${r.stdout}\n${r.stderr}`);
  }
  return { appSettings: readJson(compiled), stage, compileMs, cached: false };
};

const extensionLibs = programDir => {
  const dir = path.join(programDir, 'extension-libs');
  const libs = {};
  if (fs.existsSync(dir)) {
    for (const f of fs.readdirSync(dir).filter(n => n.endsWith('.js')).sort()) {
      libs[f] = fs.readFileSync(path.join(dir, f), 'utf8');
    }
  }
  return libs;
};

// ---------------------------------------------------------------- population
// Accepted: a JSON array of docs; {docs: [...]}; {contacts: [...], reports: [...], task_docs?: [...]};
// JSON lines (one doc a line); a conformance case (its first step's `add`).
const loadPopulation = file => {
  const text = fs.readFileSync(file, 'utf8');
  let data;
  try {
    data = JSON.parse(text);
  } catch (e) {
    data = text.split('\n').filter(l => l.trim()).map(l => JSON.parse(l));
  }
  let docs;
  let meta = {};
  if (Array.isArray(data)) {
    docs = data;
  } else if (Array.isArray(data.docs)) {
    docs = data.docs;
    meta = data;
  } else if (data.steps) {
    docs = data.steps[0].add;
    meta = { user: data.user, timezone: data.timezone, now: data.steps[0].now };
  } else {
    docs = [...(data.contacts || []), ...(data.reports || []), ...(data.task_docs || data.tasks || [])];
    meta = data;
  }
  return { docs, meta };
};

// ---------------------------------------------------------------- CHT engine wiring
const stripRev = doc => {
  if (Array.isArray(doc)) {
    return doc.map(stripRev);
  }
  if (doc && typeof doc === 'object') {
    const out = {};
    for (const k of Object.keys(doc)) {
      if (k !== '_rev') {
        out[k] = stripRev(doc[k]);
      }
    }
    return out;
  }
  return doc;
};

const loadCht = () => {
  const bundles = req('cht-conf-test-harness/dist/all-chts-bundle.dev');
  const core = bundles['4.11'];
  core.version = '4.11';
  const PouchDB = req('pouchdb');
  PouchDB.plugin(req('pouchdb-adapter-memory'));
  const { getMonthStartDate } = req('cht-conf-test-harness/src/dateUtils');
  const sinon = req('sinon');
  return { core, PouchDB, getMonthStartDate, sinon };
};

class Engine {
  constructor(cht, appSettings, libs, { sideDb = false } = {}) {
    this.cht = cht;
    this.appSettings = appSettings;
    this.libs = libs;
    Engine.count = (Engine.count || 0) + 1;
    this.db = new cht.PouchDB(`kazi-bench-${process.pid}-${Engine.count}`, { adapter: 'memory' });
    this.pending = new Set();
    // track every write so "task docs written" really means committed (fetchTasksFor fires its temporal-state
    // commit without awaiting it, and the rules state store persists itself through db.put)
    for (const method of ['bulkDocs', 'put']) {
      const original = this.db[method].bind(this.db);
      this.db[method] = (...a) => {
        const p = original(...a);
        this.pending.add(p);
        const done = () => this.pending.delete(p);
        p.then(done, done);
        return p;
      };
    }
    this.lineage = cht.core.Lineage(Promise, this.db);
    if (sideDb) {
      return;
    }
    this.rulesEngine = cht.core.RulesEngineCore(this.db);
    this.emitterCalls = [];
    const emitter = cht.core.RulesEmitter;
    if (!emitter.__kaziWrapped) {
      const original = emitter.getEmissionsFor;
      emitter.getEmissionsFor = (...a) => {
        const t0 = hr();
        return original(...a).then(result => {
          Engine.current.emitterCalls.push({ ms: hr() - t0, tasks: result.tasks.slice(), targets: result.targets.length });
          return result;
        });
      };
      emitter.__kaziWrapped = true;
    }
    Engine.current = this;
  }

  async drain() {
    while (this.pending.size) {
      await Promise.allSettled(Array.from(this.pending));
    }
  }

  async loadDdocs() {
    await this.db.bulkDocs(this.cht.core.ddocs);
  }

  async upsertDocs(docs, chunk = 2000) {
    const ids = docs.map(d => d._id);
    const existing = new Map();
    for (let i = 0; i < ids.length; i += chunk) {
      const res = await this.db.allDocs({ keys: ids.slice(i, i + chunk) });
      for (const row of res.rows) {
        if (row.value && !row.value.deleted) {
          existing.set(row.id, row.value.rev);
        }
      }
    }
    for (let i = 0; i < docs.length; i += chunk) {
      const batch = docs.slice(i, i + chunk).map(d => {
        const doc = Object.assign({}, d);
        delete doc._rev;
        if (existing.has(doc._id)) {
          doc._rev = existing.get(doc._id);
        }
        return doc;
      });
      const res = await this.db.bulkDocs(batch);
      const errors = res.filter(r => r.error);
      if (errors.length) {
        throw new Error(`bulkDocs: ${errors.length} errors, first: ${JSON.stringify(errors[0])}`);
      }
    }
  }

  async removeDocs(ids) {
    for (const id of ids) {
      const doc = await this.db.get(id).catch(() => undefined);
      if (doc) {
        await this.db.remove(doc);
      }
    }
  }

  async hydratedUserContact(contactId) {
    const doc = await this.lineage.fetchHydratedDoc(contactId);
    return stripRev(doc);
  }

  // The user's contact hydrated by CHT's lineage library (fetchHydratedDoc: parents, and the primary contacts
  // of those parents) on a small side database holding only the docs it reads: the same result as on the full
  // database, without indexing the docs_by_id_lineage view over the whole population (a minute at 5,000
  // households) -- that index is not part of the task pipeline being measured.
  async hydratedUserContactFrom(docs, contactId) {
    const byId = new Map(docs.map(d => [d._id, d]));
    const wanted = new Map();
    let node = byId.get(contactId);
    if (!node) {
      throw new Error(`user contact ${contactId} is not in the population`);
    }
    while (node && !wanted.has(node._id)) {
      wanted.set(node._id, node);
      if (node.contact && node.contact._id && byId.has(node.contact._id)) {
        wanted.set(node.contact._id, byId.get(node.contact._id));
      }
      node = node.parent && node.parent._id ? byId.get(node.parent._id) : undefined;
    }
    const side = new Engine(this.cht, this.appSettings, this.libs, { sideDb: true });
    await side.loadDdocs();
    await side.upsertDocs(Array.from(wanted.values()));
    const contact = await side.hydratedUserContact(contactId);
    await side.db.destroy();
    return contact;
  }

  chtScriptApi(roles) {
    const { DataSource } = this.cht.core;
    const datasource = DataSource.getDatasource(DataSource.getRemoteDataContext());
    const permissions = this.appSettings.permissions;
    const libs = this.libs;
    const cache = {};
    return {
      v1: {
        hasPermissions: (p, userRoles = roles, settings = permissions) => datasource.v1.hasPermissions(p, userRoles, settings),
        hasAnyPermission: (g, userRoles = roles, settings = permissions) => datasource.v1.hasAnyPermission(g, userRoles, settings),
        // not in the harness; as cht-core's webapp does it: new Function('module', source)(module); module.exports
        getExtensionLib: id => {
          if (!(id in cache)) {
            if (!(id in libs)) {
              return undefined;
            }
            const module = {};
            new Function('module', libs[id])(module);
            cache[id] = module.exports;
          }
          return cache[id];
        },
        analytics: { getTargetDocs: () => [] },
      },
    };
  }

  settings(userName, roles, userContact) {
    const tasks = this.appSettings.tasks || {};
    return {
      rules: tasks.rules,
      rulesAreDeclarative: !!tasks.isDeclarative,
      taskSchedules: tasks.schedules,
      targets: (tasks.targets && tasks.targets.items) || [],
      enableTasks: true,
      enableTargets: true,
      contact: userContact,
      user: { _id: `org.couchdb.user:${userName}`, roles },
      monthStartDate: this.cht.getMonthStartDate(this.appSettings),
      sessionId: this.db.name,
      chtScriptApi: this.chtScriptApi(roles),
    };
  }

  async taskDocs() {
    const res = await this.db.allDocs({ startkey: 'task~', endkey: 'task~\ufff0', include_docs: true });
    return res.rows.map(r => stripRev(r.doc));
  }

  async rulesInputs() {
    // what pouchdb-provider.allTaskData reads (uniqBy id)
    const docsOf = async (view) => {
      const res = await this.db.query(view, { include_docs: true });
      const seen = new Set();
      const out = [];
      for (const row of res.rows) {
        if (!seen.has(row.id) && row.doc) {
          seen.add(row.id);
          out.push(row.doc);
        }
      }
      return out;
    };
    return {
      contacts: await docsOf('medic-client/contacts_by_type'),
      reports: await docsOf('medic-client/reports_by_subject'),
    };
  }

  async warmViews() {
    await this.db.query('medic-client/contacts_by_type', { limit: 0 });
    await this.db.query('medic-client/reports_by_subject', { limit: 0 });
    await this.db.query('medic-client/tasks_by_contact', { limit: 0 });
    await this.db.query('medic-client/contacts_by_reference', { limit: 0 });
  }
}

const countBy = (items, f) => items.reduce((agg, x) => {
  const k = f(x);
  agg[k] = (agg[k] || 0) + 1;
  return agg;
}, {});

// contact containers + headless ones, as the rules emitter's marshaller builds them
const countContainers = (registrationUtils, contacts, reports) => {
  const subjects = new Set();
  for (const c of contacts) {
    registrationUtils.getSubjectIds(c).forEach(id => subjects.add(id));
  }
  const headless = new Set();
  for (const r of reports) {
    const s = registrationUtils.getSubjectId(r);
    if (!subjects.has(s)) {
      headless.add(s);
    }
  }
  return contacts.length + headless.size;
};

const parseNow = v => {
  if (v === undefined || v === true) {
    throw new Error('--now is required (ISO-8601 with offset, or epoch ms)');
  }
  return /^\d+$/.test(String(v)) ? Number(v) : Date.parse(v);
};

const rssMb = () => process.resourceUsage().maxRSS / 1024;

// ---------------------------------------------------------------- modes
const benchMode = async () => {
  const programDir = path.resolve(args.program);
  const t = {};
  let t0 = hr();
  const compiled = compileProgram(programDir);
  t.compile_ms = compiled.compileMs;
  log(`compiled ${programDir} (${compiled.cached ? 'cached' : `${Math.round(compiled.compileMs)} ms`}): ${compiled.stage}`);

  t0 = hr();
  const { docs, meta } = loadPopulation(args.population);
  t.parse_ms = hr() - t0;
  const metaUser = meta.user || {};
  const userContactId = args['user-contact'] || (metaUser.contact && metaUser.contact._id) || metaUser.contact_id;
  const userName = args['user-name'] || metaUser.name || userContactId;
  const roles = args.roles ? String(args.roles).split(',').filter(Boolean) : (metaUser.roles || ['chw']);
  const nowMs = parseNow(args.now || meta.now);
  if (!userContactId) {
    throw new Error('--user-contact is required');
  }

  const cht = loadCht();
  const clock = cht.sinon.useFakeTimers({ now: nowMs, toFake: ['Date'] });
  try {
    const engine = new Engine(cht, compiled.appSettings, extensionLibs(programDir));
    t0 = hr();
    const userContact = await engine.hydratedUserContactFrom(docs, userContactId);
    t.hydrate_user_ms = hr() - t0;
    const settings = engine.settings(userName, roles, userContact);
    if (args['out-user-contact']) {
      fs.writeFileSync(args['out-user-contact'], JSON.stringify(userContact, null, 2));
    }

    // (b) the emission pass alone, first, in a process holding nothing but the parsed docs: the rules emitter
    // over every container, no task-doc conversion, no writes. Its inputs are the docs CHT's views select
    // (the medic-client map functions of contacts_by_type and reports_by_subject, run in memory), task docs
    // none (as in the pipeline's first round). The best of the repeats is CHT's figure.
    t0 = hr();
    const { contacts, reports } = selectLikeViews(cht.core, docs);
    t.select_ms = hr() - t0;
    const repeats = Math.max(1, Number(args['emission-repeats'] || 3));
    const passes = [];
    let emissionCount = 0;
    cht.core.RulesEmitter.initialize(settings);
    for (let i = 0; i < repeats; i++) {
      const e0 = hr();
      const result = await cht.core.RulesEmitter.getEmissionsFor(contacts, reports, []);
      passes.push(hr() - e0);
      emissionCount = result.tasks.length;
      log(`emission pass ${i + 1}/${repeats}: ${Math.round(passes[i])} ms, ${emissionCount} emissions`);
    }
    cht.core.RulesEmitter.shutdown();
    engine.emitterCalls = [];
    t.emission_pass_ms = passes;
    t.emission_pass_min_ms = Math.min(...passes);
    t.emission_pass_median_ms = passes.slice().sort((a, b) => a - b)[Math.floor(passes.length / 2)];
    const rssEmission = rssMb();

    // (a) the pipeline: documents in PouchDB -> task documents written
    await engine.loadDdocs();
    log(`loading ${docs.length} docs into an in-memory PouchDB`);
    t0 = hr();
    await engine.upsertDocs(docs);
    await engine.drain();
    t.load_ms = hr() - t0;
    log(`loaded in ${Math.round(t.load_ms)} ms; indexing views`);
    t0 = hr();
    await engine.warmViews();
    t.index_ms = hr() - t0;
    log(`indexed in ${Math.round(t.index_ms)} ms`);

    log(`pipeline: initialize + fetchTasksFor() for ${userName} (${roles.join(',')}) at ${new Date(nowMs).toISOString()} TZ=${process.env.TZ}`);
    t0 = hr();
    await engine.rulesEngine.initialize(settings);
    const ready = await engine.rulesEngine.fetchTasksFor();
    await engine.drain();
    t.pipeline_ms = hr() - t0;
    const pipelineEmitter = engine.emitterCalls.slice();
    t.pipeline_emitter_ms = pipelineEmitter.reduce((sum, c) => sum + c.ms, 0);
    log(`pipeline done in ${Math.round(t.pipeline_ms)} ms (emitter inside it: ${Math.round(t.pipeline_emitter_ms)} ms)`);

    const taskDocs = await engine.taskDocs();
    if (args['out-task-docs']) {
      fs.writeFileSync(args['out-task-docs'], JSON.stringify(taskDocs));
    }
    const viewInputs = await engine.rulesInputs();
    const out = {
      engine: 'cht-core 4.11 rules-engine (cht-conf-test-harness 5.0.4), tasks compiled by cht-conf 6.6.1',
      node: process.version,
      tz: process.env.TZ,
      now_ms: nowMs,
      user: { name: userName, contact: userContactId, roles },
      docs_in: docs.length,
      contacts: contacts.length,
      reports: reports.length,
      containers: countContainers(cht.core.RegistrationUtils, contacts, reports),
      same_inputs_as_views: sameIds(viewInputs.contacts, contacts) && sameIds(viewInputs.reports, reports),
      emissions: pipelineEmitter.length ? pipelineEmitter[0].tasks.length : null,
      emissions_pass: emissionCount,
      task_docs: taskDocs.length,
      task_docs_by_state: countBy(taskDocs, d => d.state),
      ready_tasks: ready.length,
      times_ms: roundAll(t),
      peak_rss_emission_pass_mb: Math.round(rssEmission),
      peak_rss_mb: Math.round(rssMb()),
      compiled_stage: compiled.stage,
    };
    process.stdout.write(JSON.stringify(out, null, 2) + '\n');
  } finally {
    clock.restore();
  }
};

const sameIds = (a, b) => a.length === b.length && a.every((d, i) => d._id === b[i]._id);

// CouchDB collation, enough for view keys (null < booleans < numbers < strings < arrays < objects)
const collate = (a, b) => {
  const rank = v => (v === null || v === undefined ? 0 : typeof v === 'boolean' ? 1 : typeof v === 'number' ? 2 :
    typeof v === 'string' ? 3 : Array.isArray(v) ? 4 : 5);
  const ra = rank(a);
  const rb = rank(b);
  if (ra !== rb) {
    return ra - rb;
  }
  if (ra === 4) {
    for (let i = 0; i < Math.min(a.length, b.length); i++) {
      const c = collate(a[i], b[i]);
      if (c) {
        return c;
      }
    }
    return a.length - b.length;
  }
  if (ra === 1 || ra === 2) {
    return a - b;
  }
  if (ra === 3) {
    return a < b ? -1 : a > b ? 1 : 0;
  }
  return 0;
};

// The docs (and order) the rules engine's full refresh reads from contacts_by_type / reports_by_subject
// (include_docs, de-duplicated by id), computed with the design doc's own map functions.
const selectLikeViews = (core, docs) => {
  const ddoc = core.ddocs.find(d => d._id === '_design/medic-client');
  const run = viewName => {
    const rows = [];
    let current;
    const emit = (key, value) => rows.push({ key, id: current._id, doc: current });
    const map = new Function('emit', `return (${ddoc.views[viewName].map});`)(emit);
    for (const doc of docs) {
      current = doc;
      map(doc);
    }
    rows.sort((x, y) => collate(x.key, y.key) || (x.id < y.id ? -1 : x.id > y.id ? 1 : 0));
    const seen = new Set();
    return rows.filter(r => !seen.has(r.id) && seen.add(r.id)).map(r => r.doc);
  };
  return { contacts: run('contacts_by_type'), reports: run('reports_by_subject') };
};

const roundAll = obj => {
  const out = {};
  for (const [k, v] of Object.entries(obj)) {
    out[k] = Array.isArray(v) ? v.map(x => Math.round(x * 10) / 10) : Math.round(v * 10) / 10;
  }
  return out;
};

// JSON with sorted keys, for comparisons
const canon = v => {
  if (Array.isArray(v)) {
    return '[' + v.map(canon).join(',') + ']';
  }
  if (v && typeof v === 'object') {
    return '{' + Object.keys(v).filter(k => v[k] !== undefined).sort().map(k => JSON.stringify(k) + ':' + canon(v[k])).join(',') + '}';
  }
  return JSON.stringify(v);
};

const caseMode = async () => {
  const casePath = path.resolve(args.case);
  const kase = readJson(casePath);
  const programDir = path.resolve(path.dirname(casePath), '..', '..', kase.config);
  const compiled = compileProgram(programDir);
  log(`case ${kase.id}: config ${programDir}, TZ=${process.env.TZ}, ${kase.steps.length} step(s)`);
  const cht = loadCht();
  const engine = new Engine(cht, compiled.appSettings, extensionLibs(programDir));
  await engine.loadDdocs();
  const report = { case: kase.id, steps: [], ok: true };
  for (const [i, step] of kase.steps.entries()) {
    const nowMs = Date.parse(step.now);
    const clock = cht.sinon.useFakeTimers({ now: nowMs, toFake: ['Date'] });
    try {
      engine.emitterCalls = [];
      await engine.removeDocs(step.remove || []);
      await engine.upsertDocs(step.add || []);
      const userContact = await engine.hydratedUserContact(kase.user.contact._id);
      const settings = engine.settings(kase.user.name, kase.user.roles, userContact);
      if (i === 0) {
        await engine.rulesEngine.initialize(settings);
      } else {
        await engine.rulesEngine.rulesConfigChange(settings);
        const { contacts, reports } = await engine.rulesInputs();
        const ids = new Set();
        for (const c of contacts) {
          cht.core.RegistrationUtils.getSubjectIds(c).forEach(id => ids.add(id));
        }
        for (const r of reports) {
          const s = cht.core.RegistrationUtils.getSubjectId(r);
          if (s) {
            ids.add(s);
          }
        }
        for (const d of await engine.taskDocs()) {
          if (d.requester) {
            ids.add(d.requester);
          }
        }
        await engine.rulesEngine.updateEmissionsFor(Array.from(ids));
      }
      const ready = await engine.rulesEngine.fetchTasksFor();
      await engine.drain();
      const taskDocs = (await engine.taskDocs()).sort((a, b) => (a._id < b._id ? -1 : a._id > b._id ? 1 : 0));
      const emissions = engine.emitterCalls.reduce((s, c) => s + c.tasks.length, 0);
      const exp = step.expected;
      const gotDocs = new Map(taskDocs.map(d => [d._id, canon(d)]));
      const expDocs = new Map(exp.task_docs.map(d => [d._id, canon(d)]));
      const missing = [...expDocs.keys()].filter(id => !gotDocs.has(id));
      const extra = [...gotDocs.keys()].filter(id => !expDocs.has(id));
      const differing = [...expDocs.keys()].filter(id => gotDocs.has(id) && gotDocs.get(id) !== expDocs.get(id));
      const tab = ready.map(d => d._id).sort();
      const s = {
        step: i + 1,
        now: step.now,
        emissions: emissions, expected_emissions: exp.emissions.length,
        task_docs: taskDocs.length, expected_task_docs: exp.task_docs.length,
        tasks_tab: tab.length, expected_tasks_tab: exp.tasks_tab.length,
        task_docs_missing: missing.length, task_docs_extra: extra.length, task_docs_differing: differing.length,
        tasks_tab_equal: canon(tab) === canon(exp.tasks_tab),
      };
      s.ok = s.emissions === s.expected_emissions && !missing.length && !extra.length && !differing.length && s.tasks_tab_equal;
      if (!s.ok) {
        s.examples = { missing: missing.slice(0, 3), extra: extra.slice(0, 3), differing: differing.slice(0, 3) };
        if (differing.length) {
          s.first_difference = { got: JSON.parse(gotDocs.get(differing[0])), expected: JSON.parse(expDocs.get(differing[0])) };
        }
        report.ok = false;
      }
      report.steps.push(s);
    } finally {
      clock.restore();
    }
  }
  process.stdout.write(JSON.stringify(report, null, 2) + '\n');
  process.exitCode = report.ok ? 0 : 1;
};

const main = async () => {
  if (args.case) {
    return caseMode();
  }
  if (!args.program) {
    throw new Error('usage: driver.js --program DIR (--compile-only | --population FILE --user-contact ID --now T) | --case FILE');
  }
  if (args['compile-only']) {
    const c = compileProgram(args.program);
    process.stdout.write(JSON.stringify({ stage: c.stage, compile_ms: Math.round(c.compileMs), cached: c.cached }) + '\n');
    return;
  }
  return benchMode();
};

main().catch(err => {
  console.error(err && err.stack || err);
  process.exit(1);
});
