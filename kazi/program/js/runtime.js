/*
 * The in-V8 half of Kazi's JavaScript program runtime.
 *
 * It runs a CHT program's tasks.js the way CHT does on a device: a CommonJS module graph (what
 * cht-conf's webpack bundle contains), re-evaluated for every contact container with the free
 * variables Utils, user, cht and c, and the emission loop of cht-conf's task emitter (docs/engine.md,
 * "Pipeline"). Python calls into it once per batch of containers (kazi/program/js/runtime.py): one
 * V8 round trip costs far more than a whole container, so nothing here is called per callback.
 */
(function (global) {
  'use strict';
  var hasOwn = Object.prototype.hasOwnProperty;
  var KD = global.__kaziDate;

  // ---------------------------------------------------------------------------------------------
  // Sandbox. V8 alone offers no file system, network or process API; what remains to remove is any
  // way of running code *after* a call has returned, outside its time limit: mini-racer's setTimeout
  // (built on Atomics.waitAsync), FinalizationRegistry callbacks (run after a garbage collection) and
  // WebAssembly's asynchronous compilation. Promise callbacks cannot be removed (await); runtime.py
  // checks after every call that none is still running.
  ['setTimeout', 'clearTimeout', '__timer_manager', '__TimerManager'].forEach(function (name) {
    try { (0, eval)(name + ' = undefined'); } catch (e) { /* not defined */ }
  });
  ['FinalizationRegistry', 'WebAssembly'].forEach(function (name) { delete global[name]; });
  if (global.Atomics) { delete global.Atomics.waitAsync; }

  // ---------------------------------------------------------------------------------------------
  // Modules. `files` maps a path relative to the program folder to its source; `resolved` maps
  // "<from module>\u0000<request>" to the resolved path (Python resolves statically, as a bundler).
  var program = { files: {}, resolved: {}, entry: 'tasks.js', compiled: {}, libCache: {}, extLibs: {} };

  function isLibrary(path) {
    return path.indexOf('node_modules/') === 0 || path.indexOf('/node_modules/') !== -1;
  }

  // The CHT globals (Utils, user, cht, c, emit, Task, Target) are closure variables around the module
  // function, as the parameters of CHT's `new Function` are around cht-conf's bundle: a module may then
  // declare its own `const c` or `let user`, which parameters of the module function would forbid.
  // Bare modules (no CHT globals) are what cht-conf require()s at compile time, where a top-level use of
  // Utils is a ReferenceError; the validator describes programs that way.
  var MODULE_PARAMS = 'exports, require, module, __filename, __dirname';
  var CHT_GLOBALS = 'Utils, user, cht, c, emit, Task, Target';

  // The module's source as Kazi compiles it. Header on the first line so that stack-trace (and
  // syntax-error) line numbers are the file's own.
  function wrap(path, bare) {
    var fn = '(function (' + MODULE_PARAMS + ') {' + program.files[path] + '\n})';
    return (bare ? fn : '(function (' + CHT_GLOBALS + ') { return ' + fn + '; })') + '\n//# sourceURL=' + path;
  }

  // Errors of a module's own text (syntax, JSON) name the module: their stack does not.
  function located(e, path) {
    if (e && typeof e === 'object' && e.kaziFile === undefined) {
      try { e.kaziFile = path; } catch (ignored) { /* frozen */ }
    }
    return e;
  }

  function compile(path, bare) {
    var key = (bare ? 'bare:' : '') + path;
    if (hasOwn.call(program.compiled, key)) { return program.compiled[key]; }
    var fn;
    if (/\.json$/.test(path)) {
      var data = program.files[path];
      fn = function (exports, require, module) {
        try {
          module.exports = JSON.parse(data);
        } catch (e) {
          throw located(e, path);
        }
      };
      if (!bare) { fn = (function (json) { return function () { return json; }; })(fn); }
    } else {
      try {
        fn = (0, eval)(wrap(path, bare));
      } catch (e) {
        throw located(e, path);
      }
    }
    program.compiled[key] = fn;
    return fn;
  }

  // Which program module exported each definition object first (the module that built it, as modules
  // finish before the modules requiring them): the file a timeout names, since it has no stack.
  var origins = new WeakMap();
  function noteOrigins(exported, path) {
    function note(v) {
      if (v !== null && typeof v === 'object' && !origins.has(v)) { origins.set(v, path); }
    }
    if (Array.isArray(exported)) {
      exported.forEach(note);
    } else if (exported !== null && typeof exported === 'object') {
      note(exported);
      Object.keys(exported).forEach(function (k) { note(exported[k]); });
    }
  }

  // Evaluate the module graph from `entry`. Program modules get a fresh cache per call (CHT
  // re-runs its bundle per container); installed libraries (node_modules) are evaluated once per
  // runtime, since re-running e.g. moment for every contact costs much and changes nothing.
  function evaluate(entry, env) {
    var cache = {};
    function load(path) {
      var lib = isLibrary(path);
      var store = lib ? program.libCache : cache;
      if (hasOwn.call(store, path)) { return store[path].exports; }
      var module = { exports: {}, id: path, filename: path, loaded: false };
      store[path] = module;
      var dir = path.indexOf('/') === -1 ? '.' : path.slice(0, path.lastIndexOf('/'));
      var req = function (request) {
        var key = path + '\u0000' + request;
        if (!hasOwn.call(program.resolved, key)) {
          var err = new Error("Cannot find module '" + request + "' from '" + path + "'");
          err.code = 'MODULE_NOT_FOUND';
          throw err;
        }
        return load(program.resolved[key]);
      };
      try {
        var fn = compile(path, lib || env.bare);
        if (!(lib || env.bare)) { fn = fn(env.Utils, env.user, env.cht, env.c, env.emit, env.Task, env.Target); }
        fn.call(module.exports, module.exports, req, module, path, dir);
      } catch (e) {
        delete store[path];
        throw e;
      }
      module.loaded = true;
      if (!lib) { noteOrigins(module.exports, path); }
      return module.exports;
    }
    return load(entry);
  }

  // ---------------------------------------------------------------------------------------------
  // Utils (cht-nootils 4.2.0 semantics, as bundled with cht-core 4.11; see kazi/engine/utils.py).
  var MS_IN_DAY = 24 * 60 * 60 * 1000;
  function makeUtils(schedules) {
    var Utils = {
      MS_IN_DAY: MS_IN_DAY,
      isTimely: function () { return true; },
      addDate: function (date, days) {
        var result;
        if (date) {
          result = new Date(date.getTime());
        } else {
          result = Utils.now();
        }
        result.setDate(result.getDate() + days);
        result.setHours(0, 0, 0, 0);
        return result;
      },
      getLmpDate: function (doc) {
        var weeks = doc.fields.last_menstrual_period || 4;
        return Utils.addDate(new Date(doc.reported_date), -7 * weeks);
      },
      // underscore's findWhere: the entry must have the key `name` (own or inherited) and ===.
      getSchedule: function (name) {
        var list = schedules || [];
        for (var i = 0; i < list.length; i++) {
          var entry = list[i];
          if (entry !== null && entry !== undefined && 'name' in Object(entry) && entry.name === name) {
            return entry;
          }
        }
        return undefined;
      },
      getMostRecentReport: function (reports, forms, fields) {
        var list = Array.isArray(forms) ? forms : [forms];
        var result = null;
        reports.forEach(function (report) {
          if (list.includes(report.form) && !report.deleted &&
            (!result || report.reported_date > result.reported_date) &&
            (!fields || (report.fields && Utils.fieldsMatch(report, fields)))) {
            result = report;
          }
        });
        return result;
      },
      getMostRecentTimestamp: function (reports, form, fields) {
        var report = Utils.getMostRecentReport(reports, form, fields);
        return report && report.reported_date;
      },
      // `form` is compared with === (cht-nootils as bundled with cht-core 4.11: an array never matches).
      isFormSubmittedInWindow: function (reports, form, start, end, count) {
        for (var i = 0; i < reports.length; i++) {
          var report = reports[i];
          if (report.form === form && report.reported_date >= start && report.reported_date <= end) {
            if (!count || (report.fields && report.fields.follow_up_count > count)) {
              return true;
            }
          }
        }
        return false;
      },
      isFirstReportNewer: function (firstReport, secondReport) {
        if (!firstReport || !firstReport.reported_date) { return null; }
        if (!secondReport || !secondReport.reported_date) { return true; }
        return firstReport.reported_date > secondReport.reported_date;
      },
      isDateValid: function (date) { return !isNaN(date.getTime()); },
      // underscore's propertyOf(report.fields)(path.split('.')): a null report or a non-string path throws.
      getField: function (report, path) {
        var value = report.fields;
        var parts = path.split('.');
        for (var i = 0; i < parts.length; i++) {
          if (value === null || value === undefined) { return undefined; }
          value = value[parts[i]];
        }
        return value;
      },
      fieldsMatch: function (report, fieldValues) {
        return Object.keys(fieldValues).every(function (path) {
          return Utils.getField(report, path) === fieldValues[path];
        });
      },
      now: function () { return new Date(); },
    };
    return Utils;
  }

  // ---------------------------------------------------------------------------------------------
  // cht.v1 (CHT's API inside tasks.js): permissions from the program settings and the user's roles, with the
  // semantics of kazi/engine/permissions.py (cht-core 4.11, the conformance suite's oracle, plus the
  // `admin` role): so that a tasks.js and its tasks.py twin agree. Roles are not filtered by
  // settings.roles; no (or empty) permission settings, roles that are not an array or an empty
  // permission list answer false; a permission that is not a string throws, as in CHT.
  var ADMIN_ROLES = ['_admin', 'admin'];
  function isPlainObject(v) { return v !== null && typeof v === 'object' && !Array.isArray(v); }
  function makeCht(roles, settings) {
    // roles: `user.roles` (webapp form), a roles array (documented form), else the session's roles;
    // settings: `{permissions: {...}}` (webapp form) or the permissions map itself (documented form).
    function resolve(user, chtSettings) {
      var r = roles;
      if (isPlainObject(user) && Array.isArray(user.roles)) {
        r = user.roles;
      } else if (Array.isArray(user)) {
        r = user;
      }
      var chosen = settings;
      if (isPlainObject(chtSettings) && Object.keys(chtSettings).length) {
        chosen = isPlainObject(chtSettings.permissions) ? chtSettings : { permissions: chtSettings };
      }
      return { roles: r, perms: permissionMap(chosen) };
    }
    function permissionMap(s) {
      var perms = isPlainObject(s) ? s.permissions : undefined;
      return isPlainObject(perms) && Object.keys(perms).length ? perms : null;
    }
    function split(list) {
      var out = { allowed: [], disallowed: [] };
      list.forEach(function (p) {
        if (typeof p !== 'string') { throw new TypeError('permission must be a string, got ' + typeof p); }
        if (p.charAt(0) === '!') { out.disallowed.push(p.slice(1)); } else { out.allowed.push(p); }
      });
      return out;
    }
    function roleHas(configured, userRoles) {
      if (Array.isArray(configured)) {
        return userRoles.some(function (r) { return typeof r === 'string' && configured.indexOf(r) !== -1; });
      }
      if (typeof configured === 'string') { // String.prototype.includes: a substring
        return userRoles.some(function (r) { return typeof r === 'string' && configured.indexOf(r) !== -1; });
      }
      return false;
    }
    function allPass(names, userRoles, perms, expected) {
      return names.every(function (name) {
        var configured = hasOwn.call(perms, name) ? perms[name] : undefined;
        if (!configured || (Array.isArray(configured) && !configured.length)) { return !expected; }
        return roleHas(configured, userRoles) === expected;
      });
    }
    function isAdmin(userRoles) {
      return userRoles.some(function (r) { return ADMIN_ROLES.indexOf(r) !== -1; });
    }
    return {
      v1: {
        hasPermissions: function (permissions, user, chtSettings) {
          var who = resolve(user, chtSettings);
          var list = typeof permissions === 'string' && permissions ? [permissions] : permissions;
          if (!Array.isArray(list) || !list.length || !Array.isArray(who.roles) || who.perms === null) { return false; }
          var parts = split(list);
          if (isAdmin(who.roles)) { return parts.disallowed.length === 0; }
          return allPass(parts.disallowed, who.roles, who.perms, false) &&
            allPass(parts.allowed, who.roles, who.perms, true);
        },
        hasAnyPermission: function (groups, user, chtSettings) {
          var who = resolve(user, chtSettings);
          if (!Array.isArray(groups) || !groups.length || !Array.isArray(who.roles) || who.perms === null) {
            return false;
          }
          if (!groups.every(Array.isArray)) { return false; }
          var parts = groups.map(split);
          if (isAdmin(who.roles)) {
            return !parts.every(function (g) { return g.disallowed.length > 0; });
          }
          return parts.some(function (g) {
            return allPass(g.allowed, who.roles, who.perms, true) && allPass(g.disallowed, who.roles, who.perms, false);
          });
        },
        getExtensionLib: function (id) {
          return hasOwn.call(program.extLibs, id) ? program.extLibs[id] : undefined;
        },
      },
    };
  }

  function loadExtensionLibs(libs) {
    program.extLibs = {};
    Object.keys(libs).forEach(function (id) {
      try {
        var module = { exports: {} };
        (0, eval)('(function (module) {' + libs[id] + '\n})\n//# sourceURL=extension-libs/' + id)(module);
        program.extLibs[id] = module.exports;
      } catch (e) {
        program.extLibs[id] = undefined; // CHT logs the load error and yields undefined
      }
    });
  }

  // ---------------------------------------------------------------------------------------------
  // The emission loop (cht-conf's task emitter, step by step). `current` says what runs, for error messages and
  // for naming the culprit after a timeout.
  var current = { container: -1, contact: null, definition: -1, name: null, file: null, callback: null };

  function call(cb, name, fn, self, args) {
    current.callback = name;
    var r = fn.apply(self, args);
    current.callback = null;
    return r;
  }

  function contactTypeOf(contact) {
    return contact.type === 'contact' ? contact.contact_type : contact.type;
  }

  function bindAll(obj, ctx) {
    Object.keys(obj).forEach(function (key) {
      var value = obj[key];
      if (typeof value === 'function') {
        obj[key] = value.bind(ctx);
      } else if (typeof value === 'object') {
        bindAll(value, ctx); // Object.keys(null) throws here, as in CHT
      }
    });
  }

  function deepCopy(value) {
    if (Array.isArray(value)) { return value.map(deepCopy); }
    if (value && typeof value === 'object' && !(value instanceof KD.NativeDate)) {
      var out = {};
      Object.keys(value).forEach(function (k) { out[k] = deepCopy(value[k]); });
      return out;
    }
    return value;
  }

  function defaultResolvedIf(contact, report, event, dueDate, utils) {
    var U = utils || currentUtils;
    var actions = (this && this.definition && this.definition.actions) || [];
    var form;
    for (var i = 0; i < actions.length; i++) {
      if (!actions[i].type || actions[i].type === 'report') { form = actions[i].form; break; }
    }
    if (!form) { throw new Error('Could not find the default resolving form!'); }
    var start = U.addDate(dueDate, -event.start).getTime();
    if (report) { start = Math.max(start, report.reported_date + 1); }
    var end = U.addDate(dueDate, event.end + 1).getTime();
    return U.isFormSubmittedInWindow(contact.reports, form, start, end);
  }

  function prepare(original) {
    var def = Object.assign({}, original, { defaultResolvedIf: defaultResolvedIf });
    if (typeof def.resolvedIf !== 'function') {
      def.resolvedIf = function (c, r, event, dueDate) {
        return def.defaultResolvedIf(c, r, event, dueDate, currentUtils);
      };
    }
    var ctx = {};
    bindAll(def, ctx);
    // `this.definition` is a deep copy of the bound definition, made on first use: most definitions never
    // read it, and the copy was a third of the per-container cost. Nothing but program callbacks can change
    // the definition in between, and they only reach it through this copy.
    Object.defineProperty(ctx, 'definition', {
      configurable: true, enumerable: true,
      get: function () {
        var copy = deepCopy(def);
        Object.defineProperty(ctx, 'definition', { value: copy, writable: true, configurable: true, enumerable: true });
        return copy;
      },
      set: function (v) {
        Object.defineProperty(ctx, 'definition', { value: v, writable: true, configurable: true, enumerable: true });
      },
    });
    return def;
  }

  function toJson(value) {
    if (value === undefined || typeof value === 'function' || typeof value === 'symbol') { return undefined; }
    return JSON.parse(JSON.stringify(value));
  }

  function dueMs(date) {
    if (date === null || date === undefined || date === false || date === '') { return null; }
    var t = date instanceof KD.NativeDate ? date.getTime() : new Date(date).getTime();
    return t !== t ? null : t;
  }

  function emitterFor(c, out) {
    return function emitTask(task) {
      var contact = task.contact, requester = c.contact ? c.contact._id : null;
      var shown = null;
      if (contact) {
        shown = {};
        if (contact._id !== undefined) { shown._id = contact._id; }
        if (contact.name !== undefined) { shown.name = contact.name; }
        shown = toJson(shown);
      }
      var actions = (task.actions || []).map(function (a) {
        var content = a.content;
        var json;
        if (content && typeof content === 'object') {
          var cc = content.contact;
          var hadContact = hasOwn.call(content, 'contact');
          if (hadContact) { delete content.contact; }
          json = toJson(content);
          if (hadContact) {
            content.contact = cc;
            if (cc && cc._id !== undefined) { json.contact = cc._id; }
          }
        } else {
          json = toJson(content);
        }
        var action = { type: a.type, label: a.label, content: json };
        if (a.form !== undefined) { action.form = a.form; }
        return toJson(action);
      });
      var e = {
        _id: task._id,
        requester: requester === undefined ? null : requester,
        contact: shown,
        title: toJson(task.title),
        dueDateMs: dueMs(task.date),
        readyStart: toJson(task.readyStart),
        readyEnd: toJson(task.readyEnd),
        resolved: !!task.resolved,
        deleted: !!task.deleted,
        actions: actions,
      };
      if (task.icon !== undefined) { e.icon = toJson(task.icon); }
      if (task.resolved !== undefined) {
        var raw = toJson(task.resolved);
        if (raw !== undefined) { e._k_resolved_raw = raw; }
      }
      if (hasOwn.call(task, 'priority') && task.priority !== undefined) { e.priority = toJson(task.priority); }
      if (hasOwn.call(task, 'priorityLabel') && task.priorityLabel !== undefined) {
        e.priorityLabel = toJson(task.priorityLabel);
      }
      out.push(e);
    };
  }

  function runDefinition(def, c, Utils, emitTask) {
    var r, i;

    function labelFor() {
      var label = def.contactLabel;
      if (!label) { return c.contact; }
      if (typeof label === 'function') { label = call(null, 'contactLabel', label, def, [c, r]); }
      return label ? { name: label } : c.contact;
    }

    function actionsFor(event) {
      return def.actions.map(function (action) {
        var content = { source: 'task', source_id: r ? r._id : c.contact && c.contact._id, contact: c.contact };
        if (action.modifyContent) {
          call(null, 'actions.modifyContent', action.modifyContent, action, [content, c, r, event]);
        }
        return { type: action.type || 'report', form: action.form, label: action.label || 'Follow up', content: content };
      });
    }

    // cht-conf's order: every event's due date first, then each event's task (its contactLabel,
    // resolvedIf, modifyContent and priority callbacks); callbacks sharing `this` can tell.
    function emitForEvents(scheduledTaskIdx) {
      var dueDate = null, due = [], idx;
      for (idx = 0; idx < def.events.length; idx++) {
        var ev = def.events[idx];
        if (ev.dueDate) {
          dueDate = call(null, 'events[' + idx + '].dueDate', ev.dueDate, ev, [ev, c, r, scheduledTaskIdx]);
        } else if (r && scheduledTaskIdx !== undefined) {
          dueDate = new Date(Utils.addDate(new Date(r.scheduled_tasks[scheduledTaskIdx].due), ev.days));
        } else if (r) {
          dueDate = new Date(Utils.addDate(new Date(r.reported_date), ev.days));
        } else {
          var base = c.contact.reported_date ? new Date(c.contact.reported_date) : new Date();
          dueDate = new Date(Utils.addDate(base, ev.days));
        }
        due.push(dueDate);
      }
      for (idx = 0; idx < def.events.length; idx++) {
        var event = def.events[idx];
        dueDate = due[idx];
        if (!Utils.isTimely(dueDate, event)) { continue; }
        var deleted;
        if (r) {
          deleted = !!r.deleted;
        } else {
          // Kazi fix (documented): CHT throws here for a deleted contact; Kazi treats it as deleted.
          deleted = !!(c.contact && c.contact.deleted);
        }
        var task = {
          _id: (r ? r._id : c.contact && c.contact._id) + '~' + (event.id || idx) + '~' + def.name,
          deleted: deleted,
          contact: labelFor(),
          icon: def.icon,
          date: dueDate,
          readyStart: event.start || 0,
          readyEnd: event.end || 0,
          title: def.title,
          resolved: call(null, 'resolvedIf', def.resolvedIf, def, [c, r, event, dueDate, scheduledTaskIdx]),
          actions: actionsFor(event),
        };
        if (scheduledTaskIdx !== undefined) { task._id += '-' + scheduledTaskIdx; }
        var priority = def.priority;
        if (typeof priority === 'function') {
          priority = call(null, 'priority', priority, def, [c, r, event, dueDate, scheduledTaskIdx]);
        }
        if (priority) {
          task.priority = priority.level;
          task.priorityLabel = priority.label;
        }
        emitTask(task);
      }
    }

    function forReport() {
      if (def.appliesToType && def.appliesToType.indexOf(r.form) === -1) { return; }
      if (def.appliesTo === 'scheduled_tasks') {
        if (def.appliesIf && r.scheduled_tasks) {
          for (i = 0; i < r.scheduled_tasks.length; i++) {
            if (call(null, 'appliesIf', def.appliesIf, def, [c, r, i])) { emitForEvents(i); }
          }
        }
        return;
      }
      if (def.appliesIf && !call(null, 'appliesIf', def.appliesIf, def, [c, r])) { return; }
      emitForEvents();
    }

    switch (def.appliesTo) {
      case 'reports':
      case 'scheduled_tasks':
        for (var k = 0; k < c.reports.length; k++) {
          r = c.reports[k];
          forReport();
        }
        break;
      case 'contacts':
        if (!c.contact) { break; }
        if (def.appliesToType && def.appliesToType.indexOf(contactTypeOf(c.contact)) === -1) { break; }
        if (def.appliesIf && !call(null, 'appliesIf', def.appliesIf, def, [c, r])) { break; }
        emitForEvents();
        break;
      default:
        throw new Error('Unrecognised task.appliesTo: ' + def.appliesTo);
    }
  }

  // ---------------------------------------------------------------------------------------------
  // Session state set by Python: settings, schedules, user, roles.
  var session = { settings: {}, schedules: [], user: undefined, roles: [] };
  var currentUtils = makeUtils([]);
  var Task = function (fields) { Object.assign(this, fields); };
  var Target = function (fields) { Object.assign(this, fields); };

  // What decides, without calling program code, whether a definition can emit for a container:
  // appliesTo and appliesToType. Read once per computation from one evaluation of the program, so
  // that containers no definition applies to (most people without reports) skip the per-container
  // evaluation. `null` (no shortcut) if the export is not a plain array of definitions.
  function templateFilters() {
    try {
      var env = { Utils: currentUtils, user: session.user, cht: session.cht, c: undefined, emit: null,
        Task: Task, Target: Target };
      var defs = evaluate(program.entry, env);
      if (!Array.isArray(defs)) { return null; }
      return defs.map(function (d) {
        if (!d || typeof d !== 'object') { return null; }
        var types = d.appliesToType;
        return { appliesTo: d.appliesTo, types: Array.isArray(types) ? types.slice() : (types ? null : undefined) };
      });
    } catch (e) {
      return null;
    }
  }

  // Could this definition call program code for this container? Mirrors runDefinition's guards.
  function mayApply(f, c) {
    if (!f) { return true; }
    if (f.types === null) { return true; }
    if (f.appliesTo === 'contacts') {
      if (!c.contact) { return false; }
      return !f.types || f.types.indexOf(contactTypeOf(c.contact)) !== -1;
    }
    if (f.appliesTo === 'reports' || f.appliesTo === 'scheduled_tasks') {
      if (!c.reports.length) { return false; }
      if (!f.types) { return true; }
      for (var i = 0; i < c.reports.length; i++) {
        if (f.types.indexOf(c.reports[i].form) !== -1) { return true; }
      }
      return false;
    }
    return true; // unknown appliesTo: let runDefinition throw as CHT does
  }

  function describeError(e) {
    var err = {
      message: e && e.message !== undefined ? String(e.message) : String(e),
      name: e && e.name ? String(e.name) : 'Error',
      stack: e && e.stack ? String(e.stack) : '',
      container: current.container,
      contact: current.contact,
      definition: current.definition,
      definitionName: current.name,
      definitionFile: current.file,
      callback: current.callback,
      file: e && typeof e === 'object' && typeof e.kaziFile === 'string' ? e.kaziFile : null,
    };
    return err;
  }

  var api = {
    loadProgram: function (spec) {
      program.files = spec.files;
      program.resolved = spec.resolved;
      program.entry = spec.entry;
      program.compiled = {};
      program.libCache = {};
      loadExtensionLibs(spec.extensionLibs || {});
      session.settings = spec.settings || {};
      session.schedules = spec.schedules || [];
      return true;
    },

    // The export described as data for the validator: functions and undefined become markers.
    // Evaluated like cht-conf does at compile time: no Utils, user or cht exist.
    describe: function () {
      function d(value, depth) {
        if (value === undefined) { return { $kazi: 'undefined' }; }
        if (typeof value === 'function') { return { $kazi: 'function' }; }
        if (value === null || typeof value !== 'object') {
          return typeof value === 'number' && !isFinite(value) ? { $kazi: 'object' } : value;
        }
        if (depth > 20) { return { $kazi: 'object' }; }
        if (Array.isArray(value)) { return value.map(function (v) { return d(v, depth + 1); }); }
        var p = Object.getPrototypeOf(value);
        if (p !== Object.prototype && p !== null) { return { $kazi: 'object' }; }
        var out = {};
        Object.keys(value).forEach(function (k) { out[k] = d(value[k], depth + 1); });
        return out;
      }
      try {
        var exported = evaluate(program.entry, { bare: true });
        return JSON.stringify({ ok: true, shape: d(exported, 0) });
      } catch (e) {
        return JSON.stringify({ ok: false, error: describeError(e) });
      }
    },

    // One computation's context: zone, now, user, roles.
    begin: function (spec) {
      KD.useZone(spec.tz);
      KD.setNow(spec.now);
      session.user = spec.user === null ? undefined : spec.user;
      session.roles = spec.roles || [];
      currentUtils = makeUtils(session.schedules);
      session.cht = makeCht(session.roles, session.settings);
      session.filters = templateFilters();
      return true;
    },

    // Emissions for a batch of containers (JSON in, JSON out). With collect=true an error in one
    // container is recorded and the rest go on; otherwise the first error ends the batch.
    emit: function (containersJson, collect) {
      var containers = JSON.parse(containersJson);
      var out = [], errors = [];
      var env = { Utils: currentUtils, user: session.user, cht: session.cht, c: null, emit: null, Task: Task, Target: Target };
      for (var n = 0; n < containers.length; n++) {
        var c = containers[n];
        current.container = n;
        current.contact = c.contact && c.contact._id !== undefined ? c.contact._id : null;
        current.definition = -1; current.name = null; current.file = null; current.callback = null;
        var mark = out.length;
        try {
          var filters = session.filters;
          if (filters) {
            var any = false;
            for (var f = 0; f < filters.length && !any; f++) { any = mayApply(filters[f], c); }
            if (!any) { continue; }
          }
          env.c = c;
          var tasks = evaluate(program.entry, env);
          var emitTask = emitterFor(c, out);
          for (var i = 0; i < tasks.length; i++) {
            current.definition = i;
            current.name = tasks[i] && typeof tasks[i].name === 'string' ? tasks[i].name : null;
            var t = tasks[i];
            current.file = t !== null && typeof t === 'object' ? origins.get(t) || null : null;
            var own = t && typeof t === 'object' ? {
              appliesTo: t.appliesTo,
              types: Array.isArray(t.appliesToType) ? t.appliesToType : (t.appliesToType ? null : undefined),
            } : null;
            if (own && !mayApply(own, c)) { continue; }
            runDefinition(prepare(t), c, currentUtils, emitTask);
          }
        } catch (e) {
          out.length = mark;
          errors.push(describeError(e));
          if (!collect) { break; }
        }
      }
      current.container = -1;
      return JSON.stringify({ emissions: out, errors: errors });
    },

    // The filters of the current computation, so that Python can skip containers before encoding them.
    filters: function () { return JSON.stringify(session.filters); },

    current: function () {
      return JSON.stringify({ container: current.container, contact: current.contact, definition: current.definition,
        definitionName: current.name, definitionFile: current.file, callback: current.callback });
    },

    // A module's source as compiled (for runtime.py to locate syntax errors: V8 reports their line only
    // for a script of its own).
    source: function (path) { return hasOwn.call(program.files, path) ? wrap(path, false) : null; },
  };

  global.__kazi = api;
})(globalThis);
