/*
 * Kazi's Date for program code: V8's own Date, with "local time" meaning the computation's IANA
 * zone (never the machine's) and "now" meaning the computation's instant.
 *
 * V8 fixes its time zone per process, while one Kazi process serves users in many zones, so the
 * local-time half of Date.prototype is redefined over a table of UTC offset changes that Python
 * computes from the IANA database (kazi/engine/dates.py) and hands in per zone. Absolute-time
 * methods (getTime, getUTC*, toISOString, toJSON...) stay native. Local -> UTC conversion uses the
 * offset in force before a change, as V8/ICU do for skipped and repeated wall times.
 */
(function (global) {
  'use strict';
  var NativeDate = global.Date;
  var proto = NativeDate.prototype;
  var native = {};
  ['getTime', 'setTime', 'getTimezoneOffset', 'getUTCFullYear', 'getUTCMonth', 'getUTCDate', 'getUTCDay',
    'getUTCHours', 'getUTCMinutes', 'getUTCSeconds', 'getUTCMilliseconds', 'setUTCFullYear', 'setUTCMonth',
    'setUTCDate', 'setUTCHours', 'setUTCMinutes', 'setUTCSeconds', 'setUTCMilliseconds', 'toLocaleString',
    'toLocaleDateString', 'toLocaleTimeString'].forEach(function (name) {
    native[name] = proto[name];
  });
  var nativeParse = NativeDate.parse;
  var nativeUTC = NativeDate.UTC;
  var NativeDTF = global.Intl && global.Intl.DateTimeFormat;

  // Zone state, switched per computation by KaziDate.useZone().
  var zone = { name: 'UTC', instants: [], offsets: [0], keys: [], lo: -Infinity, hi: Infinity, off: 0 };
  var zones = {};
  var nowMs = 0;
  var scratch = new NativeDate(0);

  function upperBound(arr, x) {
    var lo = 0, hi = arr.length;
    while (lo < hi) {
      var mid = (lo + hi) >>> 1;
      if (arr[mid] <= x) { lo = mid + 1; } else { hi = mid; }
    }
    return lo;
  }

  // UTC offset (ms) at a UTC instant; the last interval is cached (dates cluster).
  function offsetAt(t) {
    if (t >= zone.lo && t < zone.hi) { return zone.off; }
    var i = upperBound(zone.instants, t);
    zone.lo = i > 0 ? zone.instants[i - 1] : -Infinity;
    zone.hi = i < zone.instants.length ? zone.instants[i] : Infinity;
    zone.off = zone.offsets[i];
    return zone.off;
  }

  // A wall time written as UTC -> the UTC instant (earlier offset in gaps and overlaps).
  function wallToUtc(w) {
    if (w !== w) { return NaN; }
    return w - zone.offsets[upperBound(zone.keys, w)];
  }

  function timeClip(t) {
    if (!isFinite(t) || Math.abs(t) > 8.64e15) { return NaN; }
    return Math.trunc(t) + 0;
  }

  function wall(d) {
    var t = native.getTime.call(d);
    return t !== t ? NaN : t + offsetAt(t);
  }

  function localGetter(utcName) {
    var fn = native[utcName];
    return function () {
      var w = wall(this);
      if (w !== w) { return NaN; }
      native.setTime.call(scratch, w);
      return fn.call(scratch);
    };
  }

  // setX(...) in local time: edit the wall clock with the native UTC setter, then map it back.
  function localSetter(utcName, nanBase) {
    var fn = native[utcName];
    return function () {
      var t = native.getTime.call(this);
      var w;
      if (t !== t) {
        if (!nanBase) {
          for (var i = 0; i < arguments.length; i++) { +arguments[i]; } // ToNumber side effects
          return NaN;
        }
        w = 0; // setFullYear on an invalid date starts from +0 (ECMA-262)
      } else {
        w = t + offsetAt(t);
      }
      native.setTime.call(scratch, w);
      var w2 = fn.apply(scratch, arguments);
      return native.setTime.call(this, timeClip(wallToUtc(w2)));
    };
  }

  var DAYS = ['Sun', 'Mon', 'Tue', 'Wed', 'Thu', 'Fri', 'Sat'];
  var MONTHS = ['Jan', 'Feb', 'Mar', 'Apr', 'May', 'Jun', 'Jul', 'Aug', 'Sep', 'Oct', 'Nov', 'Dec'];
  function pad(n, w) {
    var s = String(Math.abs(n));
    while (s.length < w) { s = '0' + s; }
    return (n < 0 ? '-' : '') + s;
  }
  function zoneLongName(t) {
    if (!NativeDTF) { return ''; }
    try {
      var parts = new NativeDTF('en-US', { timeZone: zone.name, timeZoneName: 'long' }).formatToParts(t);
      for (var i = 0; i < parts.length; i++) {
        if (parts[i].type === 'timeZoneName') { return parts[i].value; }
      }
    } catch (e) { /* fall through */ }
    return '';
  }
  function dateString(d) {
    var w = wall(d);
    native.setTime.call(scratch, w);
    var y = native.getUTCFullYear.call(scratch);
    return DAYS[native.getUTCDay.call(scratch)] + ' ' + MONTHS[native.getUTCMonth.call(scratch)] + ' ' +
      pad(native.getUTCDate.call(scratch), 2) + ' ' + (y < 0 ? '-' + pad(-y, 6) : pad(y, 4));
  }
  function timeString(d) {
    var t = native.getTime.call(d);
    var off = offsetAt(t);
    native.setTime.call(scratch, t + off);
    var m = Math.round(off / 60000), sign = m < 0 ? '-' : '+';
    m = Math.abs(m);
    var name = zoneLongName(t);
    return pad(native.getUTCHours.call(scratch), 2) + ':' + pad(native.getUTCMinutes.call(scratch), 2) + ':' +
      pad(native.getUTCSeconds.call(scratch), 2) + ' GMT' + sign + pad(Math.floor(m / 60), 2) + pad(m % 60, 2) +
      (name ? ' (' + name + ')' : '');
  }

  var overrides = {
    getFullYear: localGetter('getUTCFullYear'),
    getMonth: localGetter('getUTCMonth'),
    getDate: localGetter('getUTCDate'),
    getDay: localGetter('getUTCDay'),
    getHours: localGetter('getUTCHours'),
    getMinutes: localGetter('getUTCMinutes'),
    getSeconds: localGetter('getUTCSeconds'),
    getMilliseconds: localGetter('getUTCMilliseconds'),
    getYear: function () { var y = overrides.getFullYear.call(this); return y !== y ? NaN : y - 1900; },
    getTimezoneOffset: function () {
      var t = native.getTime.call(this);
      return t !== t ? NaN : -offsetAt(t) / 60000;
    },
    setFullYear: localSetter('setUTCFullYear', true),
    setMonth: localSetter('setUTCMonth', false),
    setDate: localSetter('setUTCDate', false),
    setHours: localSetter('setUTCHours', false),
    setMinutes: localSetter('setUTCMinutes', false),
    setSeconds: localSetter('setUTCSeconds', false),
    setMilliseconds: localSetter('setUTCMilliseconds', false),
    setYear: function (y) {
      y = +y;
      if (y !== y) { return native.setTime.call(this, NaN); }
      var yi = Math.trunc(y);
      return overrides.setFullYear.call(this, yi >= 0 && yi <= 99 ? 1900 + yi : y);
    },
    toString: function () {
      var t = native.getTime.call(this);
      return t !== t ? 'Invalid Date' : dateString(this) + ' ' + timeString(this);
    },
    toDateString: function () {
      var t = native.getTime.call(this);
      return t !== t ? 'Invalid Date' : dateString(this);
    },
    toTimeString: function () {
      var t = native.getTime.call(this);
      return t !== t ? 'Invalid Date' : timeString(this);
    },
  };
  ['toLocaleString', 'toLocaleDateString', 'toLocaleTimeString'].forEach(function (name) {
    overrides[name] = function (locales, options) {
      var opts = Object.assign({}, options || {});
      if (opts.timeZone === undefined) { opts.timeZone = zone.name; }
      return native[name].call(this, locales, opts);
    };
  });
  Object.keys(overrides).forEach(function (name) {
    Object.defineProperty(proto, name, { value: overrides[name], writable: true, configurable: true });
  });

  // Which strings V8 reads as local time: ISO date-times without an offset and legacy strings
  // without a zone; ISO date-only forms are UTC.
  var ISO_DATE_ONLY = /^[+-]?\d{4,6}(-\d\d(-\d\d)?)?$/;
  var ISO_DATE_TIME = /^[+-]?\d{4,6}(-\d\d(-\d\d)?)?T\d\d:\d\d(:\d\d(\.\d+)?)?(Z|[+-]\d\d:\d\d)?$/i;
  var LEGACY_ZONE = /(^|[^a-z])(z|ut|utc|gmt|[ecmp][sd]t)([^a-z]|$)|\d\d?:\d\d(:\d\d(\.\d+)?)?\s*[+-]\d\d:?\d\d/i;

  function parse(str) {
    var s = String(str);
    var t = nativeParse(s);
    if (t !== t) { return NaN; }
    var trimmed = s.trim();
    var local;
    if (ISO_DATE_ONLY.test(trimmed)) {
      local = false;
    } else {
      var iso = ISO_DATE_TIME.exec(trimmed);
      local = iso ? !iso[5] : !LEGACY_ZONE.test(trimmed);
    }
    if (!local) { return t; }
    // V8 read the wall clock in the machine's zone; undo that, then read it in ours.
    var machineOff = -native.getTimezoneOffset.call(new NativeDate(t)) * 60000;
    return timeClip(wallToUtc(t + machineOff));
  }

  function construct(args) {
    if (args.length === 0) { return nowMs; }
    if (args.length === 1) {
      var v = args[0];
      if (v instanceof NativeDate) { return native.getTime.call(v); }
      if (v !== null && typeof v === 'object') {
        var prim = v[Symbol.toPrimitive] ? v[Symbol.toPrimitive]('default') : v.valueOf();
        if (prim !== null && typeof prim === 'object') { prim = v.toString(); }
        v = prim;
      }
      return typeof v === 'string' ? parse(v) : timeClip(+v);
    }
    var w = nativeUTC.apply(null, args);
    return timeClip(wallToUtc(w));
  }

  var KaziDate = new Proxy(NativeDate, {
    construct: function (target, args, newTarget) {
      return Reflect.construct(target, [construct(args)], newTarget);
    },
    apply: function () {
      return overrides.toString.call(new NativeDate(nowMs));
    },
    get: function (target, key, receiver) {
      if (key === 'now') { return now; }
      if (key === 'parse') { return parse; }
      return Reflect.get(target, key, receiver);
    },
  });
  function now() { return nowMs; }
  Object.defineProperty(proto, 'constructor', { value: KaziDate, writable: true, configurable: true });

  if (NativeDTF) {
    global.Intl.DateTimeFormat = new Proxy(NativeDTF, {
      construct: function (target, args, newTarget) {
        var opts = Object.assign({}, args[1] || {});
        if (opts.timeZone === undefined) { opts.timeZone = zone.name; }
        return Reflect.construct(target, [args[0], opts], newTarget);
      },
      apply: function (target, thisArg, args) {
        var opts = Object.assign({}, args[1] || {});
        if (opts.timeZone === undefined) { opts.timeZone = zone.name; }
        return target(args[0], opts);
      },
    });
  }

  global.Date = KaziDate;
  global.__kaziDate = {
    // instants/offsets as computed by kazi.engine.dates.transitions()
    defineZone: function (name, instants, offsets) {
      var keys = [];
      for (var i = 0; i < instants.length; i++) {
        keys.push(instants[i] + Math.max(offsets[i], offsets[i + 1]));
      }
      zones[name] = { name: name, instants: instants, offsets: offsets, keys: keys, lo: 1, hi: 0, off: 0 };
    },
    hasZone: function (name) { return Object.prototype.hasOwnProperty.call(zones, name); },
    useZone: function (name) {
      zone = zones[name];
      zone.lo = 1; zone.hi = 0; // invalidate the cache
    },
    setNow: function (ms) { nowMs = ms; },
    getNow: function () { return nowMs; },
    NativeDate: NativeDate,
  };
})(globalThis);
