// The call's safety code on the page (verify.js derives it): the "Verify"
// panel with the code and "They match" / "They differ", the "Verified"
// badge, and the code's line in the connection panel. The state belongs to
// one peer connection: a new one starts over and clears the mark; an ICE
// restart keeps both (same DTLS session). A partner's device verified on an
// earlier call (identity.js) is recognised at once, and one whose
// certificate changed is said before anything else.

// Digits one by one for screen readers ("6 1 5 1, 4 6 3 9"), as people
// read them aloud.
export function spokenCode(code) {
  return code.split(' ').map((group) => group.split('').join(' ')).join(', ');
}

// $: getElementById; t: the page's texts; peerName(): who the call is
// with; hangUp(): ends the call; onMatch(): "They match" was pressed;
// onChanged(): a verified partner came back with another certificate.
export function createVerification({ $, t, peerName, hangUp, onMatch = () => {}, onChanged = () => {} }) {
  let state = ''; // '', working, ready, changed, verified, differ, failed
  let recognised = false; // verified on an earlier call, not compared in this one
  let code = '';
  let problem = '';
  let suspicious = false; // the partner broke the exchange: maybe someone in the middle

  function render() {
    const name = peerName();
    const stateEl = $('verify-state');
    stateEl.dataset.state = state;
    let words = '';
    if (state === 'working') words = t('verify.state.working');
    else if (state === 'ready') words = t('verify.state.ready', { name });
    else if (state === 'changed') words = t('verify.state.changed', { name });
    else if (state === 'verified') words = t(recognised ? 'verify.state.recognised' : 'verify.state.verified', { name });
    else if (state === 'differ') words = t('verify.state.differ');
    else if (state === 'failed') words = t('verify.state.failed', { problem: t(problem) });
    else words = t('verify.state.none');
    if (stateEl.textContent !== words) stateEl.textContent = words;
    const codeEl = $('verify-code');
    codeEl.textContent = code;
    codeEl.hidden = !code;
    if (code) codeEl.setAttribute('aria-label', t('verify.codeSpoken', { digits: spokenCode(code) }));
    $('verify-how').textContent = t('verify.how', { name });
    $('verify-answer').hidden = state !== 'ready' && state !== 'changed';
    $('verify-hangup').hidden = state !== 'differ' && !(state === 'failed' && suspicious);
    $('verified-badge').hidden = state !== 'verified';
    $('verified-badge-text').textContent = t(recognised ? 'verify.badgeDevice' : 'verify.badge');
    $('verify-btn').classList.toggle('verified', state === 'verified');
    $('verify-btn').classList.toggle('warn', state === 'differ' || state === 'changed' || (state === 'failed' && suspicious));
    const line = $('stats-safety');
    line.hidden = !state;
    $('stats-safety-value').textContent = code
      ? `${code}${state === 'verified' ? ` · ${t('verify.badge')}` : ''}`
      : t(state === 'failed' ? 'verify.short.failed' : 'verify.short.working');
  }

  const comparing = () => state === 'ready' || state === 'changed';
  $('verify-match').addEventListener('click', () => {
    if (!comparing()) return;
    state = 'verified';
    recognised = false;
    onMatch();
    render();
    $('verify-state').focus();
  });
  $('verify-differ').addEventListener('click', () => {
    if (!comparing()) return;
    state = 'differ';
    render();
    $('verify-hangup').focus();
  });
  $('verify-hangup').addEventListener('click', () => hangUp());

  return {
    // A connection's data channel opened: its exchange is under way.
    working() {
      if (state) return;
      state = 'working';
      render();
    },
    // verify.js's result for this connection; seen: what this device
    // remembers of the partner's certificate ('same', 'changed' or '').
    result(r, seen = '') {
      if (r.code) {
        code = r.code;
        recognised = seen === 'same';
        state = { same: 'verified', changed: 'changed' }[seen] || 'ready';
        if (state === 'changed') onChanged();
      } else {
        state = r.problem === 'verify.problem.closed' ? '' : 'failed';
        problem = r.problem;
        suspicious = Boolean(r.suspicious);
      }
      render();
    },
    // The connection is gone: a new one gets a new code, unverified.
    reset() {
      state = '';
      recognised = false;
      code = '';
      problem = '';
      suspicious = false;
      render();
    },
    render,
    get state() { return state; },
  };
}
