// The side panels of the call screen (devices, connection, chat): one open
// at a time, each with the button that opens it (aria-expanded says which),
// closed with its × button or Escape, focus moved in and given back.

// names: the panels' names; panel `x` is #x-panel, its button #x-btn.
// onChange(name, open) runs after a panel opens or closes.
export function createPanels($, names, onChange = () => {}) {
  let current = '';

  function set(name, open) {
    $(`${name}-panel`).hidden = !open;
    $(`${name}-btn`).setAttribute('aria-expanded', String(open));
    $(`${name}-btn`).classList.toggle('active', open);
    onChange(name, open);
  }

  function close(giveFocusBack = true) {
    if (!current) return;
    const name = current;
    current = '';
    set(name, false);
    if (giveFocusBack) $(`${name}-btn`).focus();
  }

  function show(name) {
    if (current === name) return;
    close(false);
    current = name;
    set(name, true);
    const first = $(`${name}-panel`).querySelector('input, select, button:not(.panel-close)');
    (first || $(`${name}-panel`).querySelector('.panel-close')).focus();
  }

  for (const name of names) {
    $(`${name}-btn`).setAttribute('aria-controls', `${name}-panel`);
    $(`${name}-btn`).setAttribute('aria-expanded', 'false');
    $(`${name}-btn`).addEventListener('click', () => (current === name ? close() : show(name)));
    $(`${name}-panel`).querySelector('.panel-close').addEventListener('click', () => close());
    $(`${name}-panel`).addEventListener('keydown', (ev) => { if (ev.key === 'Escape') close(); });
  }

  return {
    show,
    close,
    get current() { return current; },
  };
}
