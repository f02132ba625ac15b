/*
 * Kazi demo program: maternal and newborn care by community health workers (CHWs), plus the ART
 * missed-appointment workflow of a health facility. README.md describes the forms, roles and hierarchy.
 *
 *   anc.visit                        pregnancy registration (app 'pregnancy' / SMS 'P') -> ANC contacts at 12, 20, 28, 36 weeks
 *   anc.delivery_reminder            pregnancy registration -> be ready for the delivery around the expected date
 *   danger_sign.follow_up            danger sign report -> follow-up visit the next day (priority 10)
 *   pnc.home_visit                   delivery (app 'delivery' / SMS 'D') -> postnatal visits on days 1, 3 and 7
 *   visit_request.home_visit         a client's SMS 'VR' from their own phone -> their CHW visits within 3 days
 *   newborn.home_check               newborn person (date_of_birth in the last 8 weeks) -> checks on days 3, 10, 42
 *   supervision.danger_sign_review   danger sign the CHW did not follow up -> CHW supervisor reviews the case
 *   art.verify_missed_appointment    missed_appointment from the ART register -> site supervisor verifies
 *   art.trace_client                 missed_appointment -> the client's CHW traces them at home
 *   art.escalate_unverified          missed_appointment still unverified after its window -> program officer
 *
 * Titles, labels and priority labels are translation keys (translations/messages-*.properties); each action's
 * form is a Kazi form in forms/<form>.json, which the web app fills in with the action's content.
 * Who gets which task is decided by permissions (app_settings.json), never by role names.
 */
var extras = require('./nools-extras');

// Gestational week of each ANC contact (WHO 2016 schedule, community contacts), by event id.
var ANC_CONTACTS = { 'anc-12w': 12, 'anc-20w': 20, 'anc-28w': 28, 'anc-36w': 36 };

function ancContact(id) {
  return {
    id: id,
    start: 7,
    end: 14,
    dueDate: function (event, c, r) {
      return extras.ancDueDate(this.lmp, ANC_CONTACTS[id], event, r);
    },
  };
}

function daysAfterDelivery(days) {
  return function () {
    return Utils.addDate(this.deliveredOn, days);
  };
}

function daysAfterBirth(days) {
  return function () {
    return Utils.addDate(this.bornOn, days);
  };
}

// Newborn checks stop being emitted once the baby is older than this (the last window closes on day 49).
var NEWBORN_PERIOD_DAYS = 56;

module.exports = [
  {
    name: 'anc.visit',
    icon: 'icon-pregnancy',
    title: 'task.anc.visit.title',
    appliesTo: 'reports',
    appliesToType: ['pregnancy', 'P'],
    appliesIf: function (c, r) {
      if (!extras.doesHomeVisits(c.contact) || !extras.isNewestRegistration(c, r)) {
        return false;
      }
      this.lmp = extras.lmpOf(r);
      return Utils.isDateValid(this.lmp);
    },
    events: Object.keys(ANC_CONTACTS).map(ancContact),
    resolvedIf: function (c, r, event, dueDate) {
      // an ANC visit after the registration, inside the window; a pregnancy that ended needs no more visits
      return extras.pregnancyEnded(c, r) ||
        extras.submittedInWindow(c, 'anc_visit', dueDate, event, r.reported_date + 1);
    },
    actions: [
      {
        form: 'anc_visit',
        label: 'task.anc.visit.action',
        modifyContent: function (content, c, r, event) {
          content.source_report_id = r._id;
          content.anc_contact = event.id;
          content.gestation_weeks = ANC_CONTACTS[event.id];
          content.lmp_date = extras.formatDay(this.lmp);
          content.edd = extras.formatDay(extras.eddOf(this.lmp));
        },
      },
    ],
  },

  {
    name: 'anc.delivery_reminder',
    icon: 'icon-delivery',
    title: 'task.anc.delivery_reminder.title',
    appliesTo: 'reports',
    appliesToType: ['pregnancy', 'P'],
    appliesIf: function (c, r) {
      if (!extras.doesHomeVisits(c.contact) || !extras.isNewestRegistration(c, r)) {
        return false;
      }
      this.edd = extras.eddOf(extras.lmpOf(r));
      return Utils.isDateValid(this.edd);
    },
    // shown two weeks before the expected date, until three weeks after it
    events: [
      {
        start: 14,
        end: 21,
        dueDate: function () {
          return this.edd;
        },
      },
    ],
    resolvedIf: function (c, r) {
      return extras.pregnancyEnded(c, r);
    },
    actions: [
      {
        form: 'delivery',
        label: 'task.anc.delivery_reminder.action',
        modifyContent: function (content, c, r) {
          content.source_report_id = r._id;
          content.edd = extras.formatDay(this.edd);
          content.registered_by_sms = r.form === 'P' ? 'yes' : 'no';
        },
      },
    ],
  },

  {
    name: 'danger_sign.follow_up',
    icon: 'icon-danger',
    title: 'task.danger_sign.follow_up.title',
    appliesTo: 'reports',
    appliesToType: ['danger_sign'],
    appliesIf: function (c, r) {
      this.signs = extras.dangerSignsOf(r);
      return this.signs.length > 0 && extras.doesHomeVisits(c.contact);
    },
    events: [{ id: 'next-day', days: 1, start: 1, end: 2 }],
    priority: function () {
      return { level: 10, label: 'task.priority.high' };
    },
    // no resolvedIf: CHT's default resolution is exactly the rule wanted here, a danger_sign_follow_up
    // (the first action's form) submitted inside the window and after the danger sign report
    actions: [
      {
        form: 'danger_sign_follow_up',
        label: 'task.danger_sign.follow_up.action',
        modifyContent: function (content, c, r) {
          content.source_report_id = r._id;
          content.danger_signs = this.signs.join(' ');
          content.referred_to_facility = Utils.getField(r, 'referred_to_facility') || 'no';
        },
      },
    ],
  },

  {
    name: 'pnc.home_visit',
    icon: 'icon-mother-child',
    title: 'task.pnc.home_visit.title',
    appliesTo: 'reports',
    appliesToType: ['delivery', 'D'],
    appliesIf: function (c, r) {
      this.deliveredOn = extras.deliveryDay(r);
      return Utils.getField(r, 'mother_alive') !== 'no' && extras.doesHomeVisits(c.contact);
    },
    // counted from the day of delivery, not from the day it was reported; windows do not overlap
    events: [
      { id: 'pnc-day-1', start: 0, end: 1, dueDate: daysAfterDelivery(1) },
      { id: 'pnc-day-3', start: 0, end: 2, dueDate: daysAfterDelivery(3) },
      { id: 'pnc-day-7', start: 1, end: 3, dueDate: daysAfterDelivery(7) },
    ],
    // no resolvedIf: the default (a pnc_visit inside the window, after the delivery report) applies
    actions: [
      {
        form: 'pnc_visit',
        label: 'task.pnc.home_visit.action',
        modifyContent: function (content, c, r, event) {
          content.source_report_id = r._id;
          content.pnc_visit = event.id;
          content.delivery_date = extras.formatDay(this.deliveredOn);
          content.delivery_place = Utils.getField(r, 'delivery_place') || 'unknown';
        },
      },
    ],
  },

  {
    name: 'newborn.home_check',
    icon: 'icon-baby',
    title: 'task.newborn.home_check.title',
    appliesTo: 'contacts',
    appliesToType: ['person'],
    appliesIf: function (c) {
      if (c.contact.date_of_death) {
        return false;
      }
      var age = extras.ageInDays(c.contact);
      if (!(age >= 0 && age <= NEWBORN_PERIOD_DAYS) || !extras.doesHomeVisits(c.contact)) {
        return false;
      }
      this.bornOn = extras.parseDay(c.contact.date_of_birth);
      return true;
    },
    events: [
      { id: 'newborn-day-3', start: 1, end: 2, dueDate: daysAfterBirth(3) },
      { id: 'newborn-day-10', start: 3, end: 4, dueDate: daysAfterBirth(10) },
      { id: 'newborn-day-42', start: 7, end: 7, dueDate: daysAfterBirth(42) },
    ],
    resolvedIf: function (c, r, event, dueDate) {
      return extras.submittedInWindow(c, 'newborn_check', dueDate, event);
    },
    actions: [
      {
        form: 'newborn_check',
        label: 'task.newborn.home_check.action',
        modifyContent: function (content, c, r, event) {
          content.source_contact_id = c.contact._id;
          content.newborn_check = event.id;
          content.date_of_birth = c.contact.date_of_birth;
          content.sex = c.contact.sex;
        },
      },
      { type: 'contact', label: 'task.newborn.home_check.open_profile' },
    ],
  },

  {
    name: 'visit_request.home_visit',
    icon: 'icon-home-visit',
    title: 'task.visit_request.home_visit.title',
    appliesTo: 'reports',
    appliesToType: ['VR'],
    appliesIf: function (c, r) {
      // a client texted for a visit from their own phone (SMS 'VR'): their CHW goes within three days
      return extras.doesHomeVisits(c.contact);
    },
    events: [{ id: 'requested-visit', days: 0, start: 0, end: 3 }],
    priority: function () {
      return { level: 5, label: 'task.priority.requested' };
    },
    // no resolvedIf: the default (a home_visit form inside the window, after the request) applies
    actions: [
      {
        form: 'home_visit',
        label: 'task.visit_request.home_visit.action',
        modifyContent: function (content, c, r) {
          content.source_report_id = r._id;
          content.reason = Utils.getField(r, 'reason') || '';
        },
      },
    ],
  },

  {
    name: 'supervision.danger_sign_review',
    icon: 'icon-supervision',
    title: 'task.supervision.danger_sign_review.title',
    appliesTo: 'reports',
    appliesToType: ['danger_sign'],
    appliesIf: function (c, r) {
      this.signs = extras.dangerSignsOf(r);
      return this.signs.length > 0 && cht.v1.hasPermissions('can_supervise_chws') && extras.isInMyPlace(c.contact);
    },
    // the CHW's follow-up window closes at the end of day 3: the supervisor steps in from day 4, and has two
    // weeks (one supervision cycle: a visit to each CHW every other week) to review the case
    events: [{ id: 'review', days: 4, start: 0, end: 14 }],
    resolvedIf: function (c, r) {
      return !!extras.reportWithField(c, 'danger_sign_follow_up', 'source_report_id', r._id) ||
        !!extras.reportWithField(c, 'supervisor_case_review', 'source_report_id', r._id);
    },
    actions: [
      {
        form: 'supervisor_case_review',
        label: 'task.supervision.danger_sign_review.action',
        modifyContent: function (content, c, r) {
          content.source_report_id = r._id;
          content.reason = 'danger_sign_not_followed_up';
          content.danger_signs = this.signs.join(' ');
          content.chw_id = r.contact && r.contact._id;
        },
      },
    ],
  },

  {
    name: 'art.verify_missed_appointment',
    icon: 'icon-verify',
    title: 'task.art.verify_missed_appointment.title',
    appliesTo: 'reports',
    appliesToType: ['missed_appointment'],
    appliesIf: function (c, r) {
      // the register sends one report per missed appointment; each site supervisor verifies their facility's
      return cht.v1.hasPermissions('can_verify_missed_appointments') &&
        !!(user && user.parent) && Utils.getField(r, 'facility_id') === user.parent._id;
    },
    contactLabel: function (c, r) {
      // a client whose contact is not available to the user is shown with the register's name
      return c.contact && c.contact.name ? '' : Utils.getField(r, 'patient_name');
    },
    events: [
      {
        id: 'verify',
        start: 7,
        end: 21,
        dueDate: function (event, c, r) {
          return extras.verificationDueDate(r);
        },
      },
    ],
    priority: function (c, r) {
      return extras.lateClientPriority(extras.daysLate(r));
    },
    resolvedIf: function (c, r) {
      return !!extras.verificationOf(c, r);
    },
    actions: [
      {
        form: 'appointment_verification',
        label: 'task.art.verify_missed_appointment.action',
        modifyContent: function (content, c, r) {
          content.source_report_id = r._id;
          content.missed_appointment_id = r._id;
          content.patient_id = Utils.getField(r, 'patient_id');
          content.art_number = Utils.getField(r, 'art_number');
          content.appointment_date = Utils.getField(r, 'appointment_date');
          content.days_late = extras.daysLate(r);
        },
      },
    ],
  },

  {
    name: 'art.trace_client',
    icon: 'icon-home-visit',
    title: 'task.art.trace_client.title',
    appliesTo: 'reports',
    appliesToType: ['missed_appointment'],
    appliesIf: function (c, r) {
      // CHWs trace; someone who also verifies (an acting supervisor) does not trace their own list
      return cht.v1.hasPermissions(['can_trace_clients', '!can_verify_missed_appointments']) &&
        extras.isInMyPlace(c.contact);
    },
    events: [{ id: 'trace', days: 2, start: 2, end: 7 }],
    priority: function (c, r) {
      return extras.lateClientPriority(extras.daysLate(r));
    },
    resolvedIf: function (c, r) {
      return !!extras.tracingOf(c, r) || extras.caseClosed(extras.verificationOf(c, r));
    },
    actions: [
      {
        form: 'client_tracing',
        label: 'task.art.trace_client.action',
        modifyContent: function (content, c, r) {
          content.source_report_id = r._id;
          content.missed_appointment_id = r._id;
          content.appointment_date = Utils.getField(r, 'appointment_date');
          content.days_late = extras.daysLate(r);
        },
      },
      { type: 'contact', label: 'task.art.trace_client.open_profile' },
    ],
  },

  {
    name: 'art.escalate_unverified',
    icon: 'icon-escalate',
    title: 'task.art.escalate_unverified.title',
    appliesTo: 'reports',
    appliesToType: ['missed_appointment'],
    appliesIf: function (c, r) {
      return cht.v1.hasPermissions('can_review_verification_backlog');
    },
    // due the day after the site supervisor's verification window closed
    events: [
      {
        id: 'escalate',
        start: 0,
        end: 14,
        dueDate: function (event, c, r) {
          return Utils.addDate(extras.verificationDueDate(r), 22);
        },
      },
    ],
    // a verification closes the case; so does the program officer's own review of it (the task's form)
    resolvedIf: function (c, r) {
      return !!extras.verificationOf(c, r) ||
        !!extras.reportWithField(c, 'verification_backlog_review', 'source_report_id', r._id);
    },
    actions: [
      {
        form: 'verification_backlog_review',
        label: 'task.art.escalate_unverified.action',
        modifyContent: function (content, c, r) {
          content.source_report_id = r._id;
          content.facility_id = Utils.getField(r, 'facility_id');
          content.art_number = Utils.getField(r, 'art_number');
          content.days_late = extras.daysLate(r);
        },
      },
    ],
  },
];
