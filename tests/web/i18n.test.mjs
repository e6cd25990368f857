// Every text the page shows exists in both languages, with the same
// placeholders, and every key the page names exists: index.html's
// data-i18n and data-i18n-attr, and the t('…') / format(…, '…') keys written
// out in the modules (keys built at run time come from tables of literals,
// which this finds too). A missing key would show as the key itself.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync, readdirSync } from 'node:fs';
import { MESSAGES } from '../../web/i18n.js';

const web = new URL('../../web/', import.meta.url);
const read = (name) => readFileSync(new URL(name, web), 'utf8');
const placeholders = (text) => [...text.matchAll(/\{(\w+)\}/g)].map((m) => m[1]).sort();

test('English and Japanese have the same keys and the same placeholders', () => {
  const en = Object.keys(MESSAGES.en).sort();
  const ja = Object.keys(MESSAGES.ja).sort();
  assert.deepEqual(en.filter((k) => !(k in MESSAGES.ja)), [], 'keys missing in Japanese');
  assert.deepEqual(ja.filter((k) => !(k in MESSAGES.en)), [], 'keys only in Japanese');
  for (const key of en) {
    assert.deepEqual(placeholders(MESSAGES.ja[key]), placeholders(MESSAGES.en[key]), `placeholders of ${key}`);
  }
});

test('every key index.html and the modules name exists', () => {
  const html = read('index.html');
  const named = [...html.matchAll(/data-i18n="([^"]+)"/g)].map((m) => m[1]);
  for (const m of html.matchAll(/data-i18n-attr="([^"]+)"/g)) {
    for (const pair of m[1].split(';')) named.push(pair.split(':')[1]);
  }
  // Every quoted string in the modules that looks like a key of ours.
  const prefixes = new Set(Object.keys(MESSAGES.en).map((k) => k.split('.')[0]));
  for (const file of readdirSync(web).filter((f) => f.endsWith('.js') && f !== 'i18n.js')) {
    for (const m of read(file).matchAll(/'([a-z]+(?:\.[a-zA-Z0-9]+)+)'/g)) {
      if (prefixes.has(m[1].split('.')[0]) && !/\.(js|css|html|png|svg|webmanifest)$/.test(m[1])) named.push(m[1]);
    }
  }
  assert.ok(named.length > 200, `found ${named.length} keys: the patterns still match the code`);
  assert.deepEqual([...new Set(named.filter((k) => !(k in MESSAGES.en)))], [], 'keys the page names but i18n.js lacks');
});
