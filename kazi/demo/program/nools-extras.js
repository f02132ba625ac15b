/*
 * Helpers shared by the task definitions of Kazi's demo program (see tasks.js and README.md).
 *
 * CHT defines the globals `Utils`, `user` and `cht` only while the compiled rules run for one contact;
 * cht-conf (and `kazi validate`) also require() this file on its own to check the definitions, so every
 * use of a global sits inside a function.
 */

// Forms that register a pregnancy: the app form and the SMS code.
var PREGNANCY_FORMS = ['pregnancy', 'P'];
// Forms that end a pregnancy: a delivery (app form or SMS code) or a pregnancy loss.
var PREGNANCY_END_FORMS = ['delivery', 'D', 'pregnancy_loss'];
// Verification outcomes after which nobody needs to look for the client any more.
var CASE_CLOSING_OUTCOMES = ['returned_to_care', 'transferred_out', 'deceased'];

var DAY_PATTERN = /^(\d{4})-(\d{2})-(\d{2})$/;

function twoDigits(n) {
  return n < 10 ? '0' + n : String(n);
}

// Form fields hold calendar days as 'YYYY-MM-DD'; they mean local midnight of that day.
function parseDay(value) {
  var m = typeof value === 'string' ? DAY_PATTERN.exec(value) : null;
  return m ? new Date(Number(m[1]), Number(m[2]) - 1, Number(m[3])) : new Date(NaN);
}

// The inverse of parseDay, for form inputs; '' when the date is unknown.
function formatDay(date) {
  if (!date || !Utils.isDateValid(date)) {
    return '';
  }
  return date.getFullYear() + '-' + twoDigits(date.getMonth() + 1) + '-' + twoDigits(date.getDate());
}

function dayOf(report) {
  return Utils.addDate(new Date(report.reported_date), 0);
}

// Whole calendar days from one date to another, counted between local midnights (DST-safe).
function daysBetween(from, to) {
  return Math.round((Utils.addDate(to, 0).getTime() - Utils.addDate(from, 0).getTime()) / Utils.MS_IN_DAY);
}

// The instants (ms) an event's window spans, computed the way CHT's default resolution does: from the
// first visible day's midnight to the midnight after the last visible day (inclusive). `notBefore`
// keeps the report that created the task from resolving it.
function eventWindow(dueDate, event, notBefore) {
  var start = Utils.addDate(dueDate, -event.start).getTime();
  return {
    start: notBefore && notBefore > start ? notBefore : start,
    end: Utils.addDate(dueDate, event.end + 1).getTime(),
  };
}

function submittedInWindow(c, form, dueDate, event, notBefore) {
  var w = eventWindow(dueDate, event, notBefore);
  return Utils.isFormSubmittedInWindow(c.reports, form, w.start, w.end);
}

// The most recent live report of `form` whose `fields[field]` equals `value`, or null.
function reportWithField(c, form, field, value) {
  for (var i = c.reports.length - 1; i >= 0; i--) {
    var candidate = c.reports[i];
    if (candidate.form === form && !candidate.deleted && Utils.getField(candidate, field) === value) {
      return candidate;
    }
  }
  return null;
}

// Is `contact` below the user's own place (a CHW's area, a supervisor's health facility)?
// Contacts carry their ancestors as a minified `parent` chain.
function isInMyPlace(contact) {
  var home = user && user.parent && user.parent._id;
  if (!home || !contact) {
    return false;
  }
  for (var place = contact.parent; place; place = place.parent) {
    if (place._id === home) {
      return true;
    }
  }
  return false;
}

// Household-level care (pregnancy, delivery, newborn) is the CHW's job; supervisors synchronise the same
// households but must not get the CHWs' visits.
function doesHomeVisits(contact) {
  return cht.v1.hasPermissions('can_do_home_visits') && isInMyPlace(contact);
}

// --- pregnancy ---------------------------------------------------------------------------------------------

// The app form records the LMP as a date; the SMS form 'P' records weeks since the LMP, which
// Utils.getLmpDate converts (4 weeks when missing).
function lmpOf(registration) {
  if (registration.form === 'P') {
    return Utils.getLmpDate(registration);
  }
  return parseDay(Utils.getField(registration, 'lmp_date'));
}

function eddOf(lmp) {
  return Utils.addDate(lmp, 280);
}

// Only the woman's newest registration drives tasks: an older one belongs to a previous pregnancy.
function isNewestRegistration(c, registration) {
  var newest = Utils.getMostRecentReport(c.reports, PREGNANCY_FORMS);
  return !!newest && newest._id === registration._id;
}

// A delivery or loss reported after the registration ends that pregnancy.
function pregnancyEnded(c, registration) {
  var end = Utils.getMostRecentReport(c.reports, PREGNANCY_END_FORMS);
  return Utils.isFirstReportNewer(end, registration) === true;
}

// Due date of the ANC contact at `week` weeks of gestation. A contact whose window had already closed when
// the woman was registered can no longer happen: it gets an Invalid Date, and CHT (like Kazi) drops
// emissions without a valid date instead of showing a task that was never doable.
function ancDueDate(lmp, week, event, registration) {
  var due = Utils.addDate(lmp, 7 * week);
  if (Utils.addDate(due, event.end).getTime() < dayOf(registration).getTime()) {
    return new Date(NaN);
  }
  return due;
}

// --- delivery and newborns ---------------------------------------------------------------------------------

// The app form records the delivery date; an SMS 'D' is taken to be sent on the day of the delivery.
function deliveryDay(delivery) {
  var day = parseDay(Utils.getField(delivery, 'delivery_date'));
  return Utils.isDateValid(day) ? day : dayOf(delivery);
}

function ageInDays(person) {
  var dob = parseDay(person.date_of_birth);
  return Utils.isDateValid(dob) ? daysBetween(dob, Utils.now()) : NaN;
}

// `danger_signs` is a space-separated multiple choice; 'none' (or nothing) means no sign was seen.
function dangerSignsOf(report) {
  var value = Utils.getField(report, 'danger_signs');
  if (typeof value !== 'string') {
    return [];
  }
  return value.split(' ').filter(function (sign) {
    return sign && sign !== 'none';
  });
}

// --- ART missed appointments -------------------------------------------------------------------------------

function appointmentDay(missed) {
  return parseDay(Utils.getField(missed, 'appointment_date'));
}

// Days the client is late today; the register's own count when the appointment date is unreadable.
function daysLate(missed) {
  var appointment = appointmentDay(missed);
  if (!Utils.isDateValid(appointment)) {
    return Number(Utils.getField(missed, 'days_missed')) || 0;
  }
  return daysBetween(appointment, Utils.now());
}

// Verification is due two weeks after the missed appointment: clients who come back on their own within
// a week never need it, so the task only becomes visible a week after the appointment.
function verificationDueDate(missed) {
  var appointment = appointmentDay(missed);
  return Utils.addDate(Utils.isDateValid(appointment) ? appointment : dayOf(missed), 14);
}

function verificationOf(c, missed) {
  return reportWithField(c, 'appointment_verification', 'missed_appointment_id', missed._id);
}

function tracingOf(c, missed) {
  return reportWithField(c, 'client_tracing', 'missed_appointment_id', missed._id);
}

// The site supervisor's verification found the client back in care, transferred or deceased.
function caseClosed(verification) {
  return !!verification && CASE_CLOSING_OUTCOMES.indexOf(Utils.getField(verification, 'outcome')) !== -1;
}

// The longer a client has been out of care, the higher the task sorts (CHT sorts numeric levels, high first).
function lateClientPriority(days) {
  if (days >= 60) {
    return { level: 9, label: 'task.priority.art.ltfu_risk' };
  }
  if (days >= 28) {
    return { level: 7, label: 'task.priority.high' };
  }
  if (days >= 14) {
    return { level: 5, label: 'task.priority.medium' };
  }
  return { level: 3, label: 'task.priority.low' };
}

module.exports = {
  PREGNANCY_FORMS: PREGNANCY_FORMS,
  PREGNANCY_END_FORMS: PREGNANCY_END_FORMS,
  parseDay: parseDay,
  formatDay: formatDay,
  dayOf: dayOf,
  daysBetween: daysBetween,
  eventWindow: eventWindow,
  submittedInWindow: submittedInWindow,
  reportWithField: reportWithField,
  isInMyPlace: isInMyPlace,
  doesHomeVisits: doesHomeVisits,
  lmpOf: lmpOf,
  eddOf: eddOf,
  isNewestRegistration: isNewestRegistration,
  pregnancyEnded: pregnancyEnded,
  ancDueDate: ancDueDate,
  deliveryDay: deliveryDay,
  ageInDays: ageInDays,
  dangerSignsOf: dangerSignsOf,
  appointmentDay: appointmentDay,
  daysLate: daysLate,
  verificationDueDate: verificationDueDate,
  verificationOf: verificationOf,
  tracingOf: tracingOf,
  caseClosed: caseClosed,
  lateClientPriority: lateClientPriority,
};
