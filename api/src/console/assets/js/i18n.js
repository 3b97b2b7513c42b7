// Two languages, English and Simplified Chinese: the browser's preference
// picks one (any `zh*` means Chinese), the header's switch overrides it and
// the choice is kept. Only the dictionary in use is loaded.

export const LANGS = ['en', 'zh-CN'];
const STORE = 'sluice.lang';

let dict = {};
let current = 'en';

function preferred() {
  try {
    const saved = localStorage.getItem(STORE);
    if (LANGS.includes(saved)) return saved;
  } catch {
    // Storage may be off (private mode); the browser's languages still apply.
  }
  const wanted = navigator.languages && navigator.languages.length ? navigator.languages : [navigator.language];
  for (const l of wanted) {
    if (!l) continue;
    if (l.toLowerCase().startsWith('zh')) return 'zh-CN';
    if (l.toLowerCase().startsWith('en')) return 'en';
  }
  return 'en';
}

async function load(lang) {
  const mod = lang === 'zh-CN' ? await import('./locales/zh-CN.js') : await import('./locales/en.js');
  dict = mod.default;
  current = lang;
  document.documentElement.lang = lang;
}

/** Load the language the viewer wants; call once before the first render. */
export function initLang() {
  return load(preferred());
}

/** Switch language and remember the choice. */
export async function setLang(lang) {
  try {
    localStorage.setItem(STORE, lang);
  } catch {
    // Not kept across visits then; the switch still works now.
  }
  await load(lang);
}

export function lang() {
  return current;
}

/** The text for `key`, with `{name}` placeholders filled from `vars`. */
export function t(key, vars) {
  let s = dict[key];
  if (s === undefined) s = key;
  if (vars) s = s.replace(/\{(\w+)\}/g, (m, k) => (vars[k] !== undefined ? String(vars[k]) : m));
  return s;
}
