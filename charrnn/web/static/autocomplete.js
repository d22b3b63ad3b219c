// The autocomplete box: completions float beside the caret; Tab or a click accepts one, Up/Down choose,
// Escape hides them. With auto-space (the answer's auto_space), accepting a word the model expects a space
// after types that space too; Enter typed right after it takes the space's place, and punctuation moves the
// space after itself, as phone keyboards do (benchmarks/bench_ksr.py's Page does the same). Gradio's Textbox fires `.input` on keypress only, so edits that make none (Backspace,
// paste, an accepted completion) get a synthetic keypress to ask for new completions.
// The popup's gr.HTML calls this from its js_on_load with Gradio's `element`, `props` and `watch`
// (charrnn/web/tabs/autocomplete.py); the page loads this file from the app itself (charrnn/web/app.py).
// The Textbox's .input event runs only in the browser: it hands the settings to charrnnAutocompleteAsk,
// which asks the app's /api/page/complete (charrnn/web/rest.py) and shows the answer; one request at a
// time, and while one is out only the latest text waits (Gradio's trigger_mode "always_last").
window.charrnnAutocomplete = function (element, props, watch) {
  const area = () => document.querySelector('#ac-input textarea');
  const cps = (s) => Array.from(s || '');
  let selected = 0, dismissed = null, sawKey = false, spaced = null;  // spaced: the text after an auto-space
  const SMART = ['.', ',', ';', ':', '!', '?', 'Enter'];
  const state = () => props.value || {};
  function extra() {
    const t = area(), d = state();
    if (!t || d.text_len === undefined || d.text_len < 0) return null;
    if (t.selectionStart !== t.value.length || t.selectionEnd !== t.value.length) return null;
    const v = cps(t.value);
    if (v.length < d.text_len) return null;
    const head = v.slice(0, d.text_len), tail = cps(d.tail || '');
    if (tail.length && head.slice(-tail.length).join('') !== tail.join('')) return null;
    return v.slice(d.text_len).join('');
  }
  function visible() { return Array.from(element.querySelectorAll('.ac-item')).filter(b => !b.hidden); }
  function caret(t) {
    const cs = getComputedStyle(t), div = document.createElement('div');
    for (const p of ['boxSizing','width','borderTopWidth','borderRightWidth','borderBottomWidth','borderLeftWidth',
      'paddingTop','paddingRight','paddingBottom','paddingLeft','fontStyle','fontVariant','fontWeight','fontSize',
      'lineHeight','fontFamily','letterSpacing','wordSpacing','tabSize','textTransform','textIndent'])
      div.style[p] = cs[p];
    Object.assign(div.style, {position: 'absolute', visibility: 'hidden', whiteSpace: 'pre-wrap',
      overflowWrap: 'break-word', top: '0', left: '-9999px'});
    div.textContent = t.value;
    const span = document.createElement('span'); span.textContent = '\u200b'; div.appendChild(span);
    document.body.appendChild(div);
    const r = {top: span.offsetTop - t.scrollTop, left: span.offsetLeft - t.scrollLeft,
               h: parseFloat(cs.lineHeight) || parseFloat(cs.fontSize) * 1.4};
    div.remove();
    return r;
  }
  function refresh() {
    const pop = element.querySelector('.ac-pop'), t = area();
    if (!pop || !t) return;
    const x = extra(), ex = cps(x);
    element.querySelectorAll('.ac-item').forEach(b => {
      const c = cps(b.dataset.text);
      const ok = x !== null && c.length > ex.length && c.slice(0, ex.length).join('') === x;
      b.hidden = !ok;
      b.querySelector('.ac-typed').textContent = ok ? x : '';
      b.dataset.rest = ok ? c.slice(ex.length).join('') : '';  // what accepting it types
      b.querySelector('.ac-rest').textContent = b.dataset.rest.replace(/\n/g, '\u23ce');  // a new line as ⏎
    });
    const items = visible();
    if (selected >= items.length) selected = 0;
    items.forEach((b, i) => b.classList.toggle('ac-selected', i === selected));
    const open = items.length > 0 && document.activeElement === t && dismissed !== t.value;
    pop.classList.toggle('ac-open', open);
    if (!open) return;
    const rect = t.getBoundingClientRect(), c = caret(t);
    const top = Math.min(rect.top + c.top + c.h + 2, rect.bottom + 4);
    const left = Math.max(8, Math.min(rect.left + c.left, window.innerWidth - pop.offsetWidth - 8));
    pop.style.top = top + 'px'; pop.style.left = left + 'px';
  }
  function accept(b) {
    const t = area(); if (!t || !b) return;
    t.focus();
    const space = !!state().auto_space && b.dataset.space === '1';
    t.value = t.value + b.dataset.rest + (space ? ' ' : '');
    spaced = space ? t.value : null;
    t.selectionStart = t.selectionEnd = t.value.length;
    t.dispatchEvent(new Event('input', {bubbles: true}));
    refresh();
  }
  function ask() {  // what Gradio's Textbox listens to for its .input event
    const t = area(); if (t) t.dispatchEvent(new KeyboardEvent('keypress', {bubbles: true, key: 'Unidentified'}));
  }
  element.addEventListener('mousedown', (e) => { if (e.target.closest('.ac-item')) e.preventDefault(); });
  element.addEventListener('click', (e) => { const b = e.target.closest('.ac-item'); if (b) accept(b); });
  let answers = 0, shownAnswers = 0;
  function shown() {
    shownAnswers = answers;
    window.__acShown = {len: state().text_len, n: visible().length, t: performance.now()};
    selected = 0; refresh();
    window.__acShown.n = visible().length;
  }
  watch('value', shown);
  const url = new URL('api/page/complete', document.baseURI);
  let asking = false, waiting = null;
  function failed(message) { return {text_len: -1, completions: [], status: message}; }
  async function answer(body) {
    try {
      const r = await fetch(url, {method: 'POST', headers: {'Content-Type': 'application/json'},
                                  credentials: 'same-origin', body: JSON.stringify(body)});
      const d = await r.json().catch(() => ({}));
      return r.ok ? d : failed(d.error || d.detail || r.statusText);
    } catch (e) { return failed('no answer from the app: ' + e.message); }
  }
  async function send(body) {
    if (asking) { waiting = body; return; }
    asking = true;
    const d = await keep(body);
    props.value = d;
    const k = ++answers;
    setTimeout(() => { if (shownAnswers < k) shown(); }, 0);  // where `watch` does not see a value set here
    asking = false;
    if (waiting) { const next = waiting; waiting = null; send(next); }
  }
  let session = '';  // the key of this page's adapted model, as the answers give it (serve/adaptation.py)
  async function keep(body) {
    const d = await answer(body);
    if (d.session) session = d.session;
    return d;
  }
  window.charrnnAutocompleteAsk = (model, text, num, until, maxLen, phrases, phraseProb, autoSpace, adapt) =>
    send({model: model || '', text: text || '', num: num, until: until, max_len: maxLen,
          phrases: phrases ? undefined : 'off', phrase_prob: phraseProb, auto_space: !!autoSpace,  // on: the default
          adapt: !!adapt, session: session});
  window.charrnnAutocompleteForget = async () => {
    if (!session) return;
    await fetch(new URL('api/forget', document.baseURI), {method: 'POST', credentials: 'same-origin',
      headers: {'Content-Type': 'application/json'}, body: JSON.stringify({session: session})}).catch(() => null);
    props.value = {text_len: -1, completions: [], status: 'forgot what it learned from your text'};
  };
  if (!window.__acInstalled) {
    window.__acInstalled = true;
    document.addEventListener('keypress', (e) => {
      if (e.target === area() && e.isTrusted) { sawKey = true; window.__acKeyT = performance.now(); }
    }, true);
    document.addEventListener('input', (e) => {
      const t = area(); if (e.target !== t) return;
      dismissed = null; window.__acInputT = performance.now();
      if (e.isTrusted && sawKey) sawKey = false; else setTimeout(ask, 0);
      refresh();
    }, true);
    document.addEventListener('keydown', (e) => {
      const t = area(); if (e.target !== t) return;
      if (spaced !== null && t.value === spaced && SMART.includes(e.key)) {
        t.value = t.value.slice(0, -1);  // the punctuation or new line takes the auto-space's place
        if (e.key !== 'Enter') {  // and a punctuation mark moves the space after itself
          e.preventDefault();
          t.value += e.key + ' ';
          spaced = t.value;
          t.selectionStart = t.selectionEnd = t.value.length;
          t.dispatchEvent(new Event('input', {bubbles: true}));
          return;
        }
        t.selectionStart = t.selectionEnd = t.value.length;
      }
      if (e.key !== 'Tab') spaced = null;
      const items = visible(), open = element.querySelector('.ac-pop.ac-open');
      if (!open || !items.length) return;
      if (e.key === 'Tab' && !e.shiftKey) { e.preventDefault(); accept(items[selected]); }
      else if (e.key === 'ArrowDown') { e.preventDefault(); selected = (selected + 1) % items.length; refresh(); }
      else if (e.key === 'ArrowUp') {
        e.preventDefault(); selected = (selected + items.length - 1) % items.length; refresh();
      }
      else if (e.key === 'Escape') { e.preventDefault(); dismissed = t.value; refresh(); }
    }, true);
    for (const ev of ['selectionchange', 'focusin', 'focusout']) document.addEventListener(ev, () => refresh());
    window.addEventListener('resize', () => refresh());
    document.addEventListener('scroll', () => refresh(), true);
  }
};
