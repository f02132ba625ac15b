/*
 * The API tests' program: small enough to reason about every task it gives.
 *
 *   sick.followup   a `sick` report about a person -> a follow-up due `fields.days` days after the report,
 *                   with priority `fields.priority` when given; resolved by a later `followup` report
 *                   about the same person.
 *   person.welcome  a person with `role: client` -> a welcome visit due on their registration day.
 *
 * forms/followup.json is the follow-up's form and translations/ hold English and Chichewa texts (some keys
 * only in English, to show the fallback): the web app's routes are tested and documented with them.
 */
module.exports = [
  {
    name: 'sick.followup',
    icon: 'icon-followup',
    title: 'task.sick_followup',
    appliesTo: 'reports',
    appliesToType: ['sick'],
    priority: function (c, r) {
      var p = r.fields && r.fields.priority;
      return p ? { level: p, label: 'task.priority.high' } : undefined;
    },
    events: [{
      id: 'followup',
      dueDate: function (event, c, r) { return Utils.addDate(new Date(r.reported_date), r.fields.days || 0); },
      start: 30,
      end: 30,
    }],
    resolvedIf: function (c, r) {
      return c.reports.some(function (x) { return x.form === 'followup' && x.reported_date > r.reported_date; });
    },
    actions: [{ form: 'followup' }],
  },
  {
    name: 'person.welcome',
    title: 'task.person_welcome',
    appliesTo: 'contacts',
    appliesToType: ['person'],
    appliesIf: function (c) { return c.contact.role === 'client'; },
    events: [{ id: 'welcome', days: 0, start: 30, end: 30 }],
    resolvedIf: function (c) { return c.reports.some(function (x) { return x.form === 'welcome'; }); },
    actions: [{ type: 'contact' }],
  },
];
