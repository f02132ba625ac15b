/*
 * Kazi's Date for program code: V8's own Date, with "local time" meaning the computation's IANA
 * zone (never the machine's) and "now" meaning the computation's instant.
 *
 * V8 fixes its time zone per process, while one Kazi process serves users in many zones, so the
 * local-time half of Date.prototype is redefined over a table of UTC offset changes that Python
 * computes from the IANA database (kazi/engine/dates.py) and hands in per zone. Absolute-time
 * methods (getTime, getUTC*, toISOString, toJSON...) stay native. Local -> UTC conversion uses the
 * offset in force before a change, as V8/ICU do for skipped and repeated wall times.
 *
 * Strings are parsed by V8 itself (its ISO and legacy parsers); only the strings V8 reads as local time
 * are re-read in the computation's zone, and never through the machine's zone (see parse()).
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
  var zone = { name: 'UTC', instants: [], offsets: [0], keys: [], lo: -Infinity, hi: Infinity, off: 0,
    dstInstants: [], dstFlags: [false], names: {} };
  var zones = {};
  var nowMs = 0;
  var scratch = new NativeDate(0);
  var hasOwn = Object.prototype.hasOwnProperty;

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

  // A wall time may lie beyond the +-8.64e15 a Date can hold (local time of the first and last valid
  // instants): the scratch date then holds it 400 years (a whole Gregorian cycle, whole weeks too)
  // nearer, and the years are given back. Returns the years to add to the scratch's year.
  var CYCLE_MS = 146097 * 86400000;
  function toScratch(w) {
    if (w > 8.64e15) { native.setTime.call(scratch, w - CYCLE_MS); return 400; }
    if (w < -8.64e15) { native.setTime.call(scratch, w + CYCLE_MS); return -400; }
    native.setTime.call(scratch, w);
    return 0;
  }

  function localGetter(utcName) {
    var fn = native[utcName];
    var isYear = utcName === 'getUTCFullYear';
    return function () {
      var w = wall(this);
      if (w !== w) { return NaN; }
      var years = toScratch(w);
      return isYear ? fn.call(scratch) + years : fn.call(scratch);
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
      var years = toScratch(w);
      var w2 = fn.apply(scratch, arguments);
      if (years && utcName !== 'setUTCFullYear') { w2 += years / 400 * CYCLE_MS; } // setFullYear sets the year
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
  // The name in toString() is what V8 asks ICU for: the zone's long *standard* or *daylight* name as of
  // today (TimeZone::getDisplayName(isDst, LONG)), chosen by whether the instant is in daylight time; not
  // the name in use at the instant (1900 in New York is "Eastern Standard Time", not "GMT-05:00").
  // dst interval i is [dstInstants[i - 1], dstInstants[i]). The name for an instant is the one in use at
  // an instant of the same kind nearest before now: `now` itself when it is of that kind, else the end of
  // the latest interval of that kind (the start of the next one if there is none before now).
  function zoneLongName(t) {
    if (!NativeDTF) { return ''; }
    var ins = zone.dstInstants, dst = zone.dstFlags;
    var flag = dst[upperBound(ins, t)];
    var k = upperBound(ins, nowMs), j, ref = t;
    for (j = k; j >= 0 && dst[j] !== flag; j--) { /* search back */ }
    if (j === k) {
      ref = nowMs;
    } else if (j >= 0) {
      ref = ins[j] - 1;
    } else {
      for (j = k + 1; j < dst.length && dst[j] !== flag; j++) { /* search forward */ }
      if (j < dst.length) { ref = ins[j - 1]; }
    }
    var key = j + ':' + k;
    if (hasOwn.call(zone.names, key)) { return zone.names[key]; }
    var name = '';
    try {
      var parts = new NativeDTF('en-US', { timeZone: zone.name, timeZoneName: 'long' }).formatToParts(ref);
      for (var i = 0; i < parts.length; i++) {
        if (parts[i].type === 'timeZoneName') { name = parts[i].value; }
      }
    } catch (e) { /* no name */ }
    zone.names[key] = name;
    return name;
  }
  function dateString(d) {
    var years = toScratch(wall(d));
    var y = native.getUTCFullYear.call(scratch) + years;
    // V8 writes the year with at least 4 digits, the sign included for negative years ("-1199", "-0001").
    return DAYS[native.getUTCDay.call(scratch)] + ' ' + MONTHS[native.getUTCMonth.call(scratch)] + ' ' +
      pad(native.getUTCDate.call(scratch), 2) + ' ' + (y < 0 ? '-' + pad(-y, 4) : pad(y, 4));
  }
  function timeString(d) {
    var t = native.getTime.call(d);
    var off = offsetAt(t);
    toScratch(t + off);
    var m = Math.trunc(off / 60000), sign = m < 0 ? '-' : '+'; // V8 truncates (LMT has seconds)
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
      return t !== t ? NaN : -offsetAt(t) / 60000 + 0; // + 0: V8 answers 0, never -0
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

  // Which strings V8 reads as local time. A whole-string ES5 ISO form (no surrounding space) is local
  // when it has a time and no offset; a date-only ISO form is UTC. Everything else goes through V8's
  // legacy parser, which reads local time unless the string names a zone: one of the words UT, UTC, GMT,
  // Z, [ECMP][SD]T after a number, or a sign after a time or after UT/UTC/GMT/Z ("10:00 +3",
  // "GMT-0500"). Parenthesised text is a comment, and a '-' right after a date number or a month name
  // separates the date ("7-Mar-2025"), it is no sign. This mirrors V8's DateParser token rules.
  var ISO_DATE_ONLY = /^([+-]\d{6}|\d{4})(-\d\d(-\d\d)?)?$/;
  var ISO_DATE_TIME = /^([+-]\d{6}|\d{4})(-\d\d(-\d\d)?)?T\d\d:\d\d(:\d\d(\.\d+)?)?(Z|[+-]\d\d:?\d\d)?$/i;
  var ZONE_WORDS = { ut: 1, utc: 1, z: 1, gmt: 1, cdt: 1, cst: 1, edt: 1, est: 1, mdt: 1, mst: 1, pdt: 1, pst: 1 };
  var MONTH_PREFIXES = 'jan feb mar apr may jun jul aug sep oct nov dec'.split(' ');

  // {local, open}: whether the legacy parser reads local time; `open` when a comment runs to the end.
  function legacyScan(s) {
    var i = 0, n = s.length, hasNumber = false, hasTime = false, inTime = false;
    while (i < n) {
      var ch = s.charAt(i);
      if (ch === '(') {
        var depth = 0;
        do {
          if (s.charAt(i) === '(') { depth++; } else if (s.charAt(i) === ')') { depth--; }
          i++;
        } while (depth > 0 && i < n);
        if (depth > 0) { return { local: true, open: true }; }
        continue;
      }
      if (ch >= '0' && ch <= '9') {
        var j = i;
        while (j < n && s.charAt(j) >= '0' && s.charAt(j) <= '9') { j++; }
        hasNumber = true;
        var timePart = inTime;
        if (s.charAt(j) === ':') { hasTime = true; inTime = true; timePart = true; }
        i = j;
        if (!timePart && s.charAt(i) === '-') { i++; } // a date separator, not a sign
        continue;
      }
      if (ch >= 'A' && !/\s/.test(ch)) {
        var k = i;
        while (k < n && s.charAt(k) >= 'A' && !/\s/.test(s.charAt(k)) && s.charAt(k) !== '(') { k++; }
        var word = s.slice(i, k).toLowerCase();
        i = k;
        if (hasNumber && hasOwn.call(ZONE_WORDS, word)) { return { local: false }; }
        if (word.length >= 3 && MONTH_PREFIXES.indexOf(word.slice(0, 3)) !== -1 && s.charAt(i) === '-') { i++; }
        inTime = false;
        continue;
      }
      if ((ch === '+' || ch === '-') && hasTime) { return { local: false }; }
      if (ch !== ':' && ch !== '.') { inTime = false; }
      i++;
    }
    return { local: true, open: false };
  }

  function parse(str) {
    var s = String(str);
    var t = nativeParse(s);
    if (t !== t) { return NaN; }
    var suffix;
    if (ISO_DATE_ONLY.test(s)) { return t; }
    var iso = ISO_DATE_TIME.exec(s);
    if (iso) {
      if (iso[6]) { return t; }
      suffix = 'Z';
    } else {
      var scan = legacyScan(s);
      if (!scan.local) { return t; }
      suffix = scan.open ? null : ' Z';
    }
    // The wall clock V8 read: the same string with a UTC marker appended, so the machine's zone (and its
    // DST gaps) never takes part. A comment left open at the end would swallow the marker: then undo the
    // machine's offset instead (exact outside the machine's own DST changes).
    var w = suffix === null ? NaN : nativeParse(s + suffix);
    if (w !== w) { w = t - native.getTimezoneOffset.call(new NativeDate(t)) * 60000; }
    return timeClip(wallToUtc(w));
  }

  function isObject(v) { return v !== null && (typeof v === 'object' || typeof v === 'function'); }

  // ECMA-262 ToPrimitive(v) with no hint: @@toPrimitive('default'), else valueOf then toString.
  function toPrimitive(v) {
    var exotic = v[Symbol.toPrimitive];
    if (exotic !== undefined && exotic !== null) {
      var r = exotic.call(v, 'default');
      if (isObject(r)) { throw new TypeError('Cannot convert object to primitive value'); }
      return r;
    }
    var names = ['valueOf', 'toString'];
    for (var i = 0; i < names.length; i++) {
      var fn = v[names[i]];
      if (typeof fn === 'function') {
        var out = fn.call(v);
        if (!isObject(out)) { return out; }
      }
    }
    throw new TypeError('Cannot convert object to primitive value');
  }

  function construct(args) {
    if (args.length === 0) { return nowMs; }
    if (args.length === 1) {
      var v = args[0];
      if (v instanceof NativeDate) { return native.getTime.call(v); }
      if (isObject(v)) { v = toPrimitive(v); }
      return typeof v === 'string' ? parse(v) : timeClip(+v);
    }
    var nums = Array.prototype.map.call(args, function (v) { return +v; }); // ToNumber: a BigInt throws
    var w = nativeUTC.apply(null, nums);
    if (w !== w && Math.abs(nums[0]) > 200000) {
      // The wall time is beyond what Date.UTC returns; the instant may not be (see toScratch).
      var sign = nums[0] > 0 ? 1 : -1;
      nums[0] -= sign * 400;
      w = nativeUTC.apply(null, nums) + sign * CYCLE_MS;
    }
    return timeClip(wallToUtc(w));
  }

  // A plain constructor rather than a Proxy: `instanceof Date` and `new Date()` stay fast, and
  // Date.prototype is V8's own, so every Date (from any library) is a real Date.
  function KaziDate(year, month, date, hours, minutes, seconds, ms) { // eslint-disable-line no-unused-vars
    if (!new.target) { return overrides.toString.call(new NativeDate(nowMs)); }
    return Reflect.construct(NativeDate, [construct(arguments)], new.target);
  }
  function now() { return nowMs; }
  Object.defineProperty(KaziDate, 'prototype', { value: proto, writable: false });
  Object.defineProperty(KaziDate, 'name', { value: 'Date' });
  KaziDate.now = now;
  KaziDate.parse = parse;
  KaziDate.UTC = nativeUTC;
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
    // dstInstants/dstFlags: when daylight-saving time starts or ends (runtime.py's _dst_changes), for the
    // zone's name in toString(); dstFlags[0] holds before the first instant.
    defineZone: function (name, instants, offsets, dstInstants, dstFlags) {
      var keys = [];
      for (var i = 0; i < instants.length; i++) {
        keys.push(instants[i] + Math.max(offsets[i], offsets[i + 1]));
      }
      zones[name] = { name: name, instants: instants, offsets: offsets, keys: keys, lo: 1, hi: 0, off: 0,
        dstInstants: dstInstants || [], dstFlags: dstFlags || [false], names: {} };
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
