// Task icons: a small set of inline SVGs (no icon font, no extra request), chosen by the task's `icon`
// name. Programs name icons freely ("icon-pregnancy", "medic-pregnancy", "icon-followup-general"...), so a
// name is matched by what it contains; anything else gets the generic clipboard.

const svg = (body) => `<svg viewBox="0 0 24 24" aria-hidden="true" focusable="false">${body}</svg>`;

export const ICONS = {
  pregnancy: svg('<circle cx="11" cy="4.5" r="2.5"/><path d="M9.5 8.5c-1.5 1-2 3-1.5 5l1 7.5M12 8.5c2 0 3 1.2 3.6 3 .9 2.6-.4 4.4-2.6 4.5l.5 4.5"/><path d="M14.6 11.7c1.9.6 2.9 2.1 2.4 3.6"/>'),
  delivery: svg('<rect x="3.5" y="5" width="17" height="15" rx="2"/><path d="M3.5 9.5h17M8 3v4M16 3v4"/><path d="M12 17.5s-3-1.8-3-3.7a1.6 1.6 0 0 1 3-.8 1.6 1.6 0 0 1 3 .8c0 1.9-3 3.7-3 3.7z"/>'),
  danger: svg('<path d="M12 3.5 2.5 20h19L12 3.5z"/><path d="M12 10v4.5M12 17.2v.1"/>'),
  'mother-child': svg('<circle cx="8" cy="5" r="2.3"/><circle cx="16.5" cy="10" r="1.8"/><path d="M4.5 21v-6.5c0-3 1.6-5.2 3.5-5.2s3.5 2.2 3.5 5.2V21M13.7 21v-4.2c0-2 1.3-3.4 2.8-3.4s2.8 1.4 2.8 3.4V21"/>'),
  baby: svg('<circle cx="12" cy="13" r="7.5"/><path d="M12 5.5c0-1.6 1.2-2.5 2.5-2M9.5 12v.1M14.5 12v.1M9.8 15.5c1.3 1.1 3.1 1.1 4.4 0"/>'),
  supervision: svg('<circle cx="8.5" cy="7.5" r="2.8"/><circle cx="16.5" cy="8.5" r="2.2"/><path d="M3 20c0-3.4 2.5-6 5.5-6s5.5 2.6 5.5 6M14.5 14.3c.6-.2 1.3-.3 2-.3 2.5 0 4.5 2.2 4.5 5"/>'),
  verify: svg('<rect x="5" y="4" width="14" height="17" rx="2"/><path d="M9 4V3h6v1.5H9z"/><path d="m8.5 13 2.5 2.5 4.5-5"/>'),
  'home-visit': svg('<path d="M3.5 11 12 4l8.5 7"/><path d="M5.5 9.5V20h13V9.5"/><path d="M10 20v-5.5h4V20"/>'),
  escalate: svg('<circle cx="12" cy="12" r="8.5"/><path d="M12 16.5v-8M8.5 11.5 12 8l3.5 3.5"/>'),
  generic: svg('<rect x="5" y="4" width="14" height="17" rx="2"/><path d="M9 4V3h6v1.5H9z"/><path d="M8.5 10h7M8.5 13.5h7M8.5 17h4"/>'),
  risk: svg('<path d="M12 3.5 2.5 20h19L12 3.5z"/><path d="M12 10v4.5M12 17.2v.1"/>'),
};

const RULES = [
  [/pregnan|anc|antenatal/, 'pregnancy'],
  [/deliver|birth|labou?r|edd/, 'delivery'],
  [/danger|risk|alert|warning|emergency/, 'danger'],
  [/mother|pnc|postnatal|postpartum/, 'mother-child'],
  [/baby|newborn|infant|child|immuni[sz]/, 'baby'],
  [/supervis|review|team|people/, 'supervision'],
  [/verif|check|confirm/, 'verify'],
  [/home|house|visit|famil|trace|tracing/, 'home-visit'],
  [/escalat|refer|backlog/, 'escalate'],
];

// The key of ICONS for a task's icon name.
export function iconKey(name) {
  const n = String(name ?? '').toLowerCase();
  for (const [re, key] of RULES) if (re.test(n)) return key;
  return 'generic';
}

export function iconSvg(name) {
  return ICONS[iconKey(name)];
}
