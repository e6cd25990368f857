// Text chat during a call. Messages travel over the call's own data channel
// (peer.js), browser to browser: the server never sees them and nothing is
// stored. Text is put on the page as text nodes only; the one piece of
// markup made from it is an <a> for an http(s) link, so whatever someone
// types (tags, scripts) shows as the characters they typed.

export const MAX_CHAT_CHARS = 2000;
// A partner who floods the chat must not grow the page without end.
export const MAX_CHAT_ENTRIES = 500;
const URL_LIKE = /\bhttps?:\/\/[^\s<>"]+/gi;
const TRAILING = /[.,;:!?'")\]}>]+$/;

// Splits text into plain parts { text } and links { text, url }. Only
// well-formed http and https URLs become links.
export function linkSegments(text) {
  const out = [];
  let last = 0;
  for (const m of text.matchAll(URL_LIKE)) {
    const raw = m[0].replace(TRAILING, '');
    let url = null;
    try { url = new URL(raw); } catch (e) { /* not a URL after all */ }
    if (!raw || !url || (url.protocol !== 'http:' && url.protocol !== 'https:')) continue;
    if (m.index > last) out.push({ text: text.slice(last, m.index) });
    out.push({ text: raw, url: url.href });
    last = m.index + raw.length;
  }
  if (last < text.length) out.push({ text: text.slice(last) });
  return out;
}

// $: getElementById; t: the page's texts; send(text) -> false when there is
// nobody to send to; onUnread(count) after each change of the unread count.
export function createChat({ $, t, send, onUnread }) {
  const entries = []; // { from: 'me' | 'peer' | 'note', text }
  let open = false;
  let unread = 0;
  let peerName = '';

  function entryNode(entry) {
    const box = document.createElement('div');
    box.className = `msg ${entry.from}`;
    if (entry.from === 'note') {
      box.textContent = t(entry.text);
      return box;
    }
    const who = document.createElement('span');
    who.className = 'who';
    who.textContent = entry.from === 'me' ? t('chat.you') : peerName;
    const body = document.createElement('p');
    for (const part of linkSegments(entry.text)) {
      if (!part.url) {
        body.append(document.createTextNode(part.text));
        continue;
      }
      const a = document.createElement('a');
      a.href = part.url;
      a.textContent = part.text;
      a.target = '_blank';
      a.rel = 'noopener noreferrer';
      body.append(a);
    }
    box.append(who, body);
    return box;
  }

  function add(entry) {
    entries.push(entry);
    const log = $('chat-log');
    log.append(entryNode(entry));
    if (entries.length > MAX_CHAT_ENTRIES) {
      entries.shift();
      log.firstElementChild.remove();
    }
    log.scrollTop = log.scrollHeight;
  }

  function setUnread(n) {
    unread = n;
    onUnread(unread);
  }

  function submit(ev) {
    ev.preventDefault();
    const input = $('chat-input');
    const text = input.value.trim().slice(0, MAX_CHAT_CHARS);
    if (!text) return;
    if (!send(text)) {
      add({ from: 'note', text: 'chat.notSent' });
      return;
    }
    add({ from: 'me', text });
    input.value = '';
  }

  $('chat-form').addEventListener('submit', submit);

  return {
    received(text) {
      const shown = String(text).slice(0, MAX_CHAT_CHARS);
      add({ from: 'peer', text: shown });
      // The log's own live region is in the closed panel: screen readers
      // hear a message that arrives then from this one.
      if (!open) {
        setUnread(unread + 1);
        $('chat-announce').textContent = t('chat.announce', { name: peerName, text: shown });
      }
    },
    setOpen(isOpen) {
      open = isOpen;
      if (open) setUnread(0);
    },
    setPeerName(name) { peerName = name; },
    // A new call starts with an empty chat.
    clear() {
      entries.length = 0;
      $('chat-log').replaceChildren();
      $('chat-announce').textContent = '';
      setUnread(0);
    },
    // Redraws the "You" labels and notes in the current language.
    render() {
      $('chat-log').replaceChildren(...entries.map(entryNode));
    },
    get unread() { return unread; },
  };
}
