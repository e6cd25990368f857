// The QR encoder of web/qr.js against worked examples of ISO/IEC 18004 and,
// where zbarimg is installed, against a real decoder for every version and mask.
'use strict';

const { test, before } = require('node:test');
const assert = require('node:assert');
const fs = require('node:fs');
const os = require('node:os');
const path = require('node:path');
const { execFileSync } = require('node:child_process');

// web/qr.js is an ES module (web/package.json says so): import it.
let QR;
before(async () => { QR = await import('../../web/qr.js'); });

test('Reed-Solomon gives the EC codewords of the 1-M "HELLO WORLD" example', () => {
  const data = [32, 91, 11, 120, 209, 114, 220, 77, 67, 64, 236, 17, 236, 17, 236, 17];
  assert.deepStrictEqual(QR.reedSolomon(data, 10), [196, 35, 39, 119, 235, 215, 231, 226, 93, 23]);
});

test('format and version bits match the tables of the standard', () => {
  const bits = (v, n) => v.toString(2).padStart(n, '0');
  assert.strictEqual(bits(QR.formatBits('M', 0), 15), '101010000010010');
  assert.strictEqual(bits(QR.formatBits('M', 5), 15), '100000011001110');
  assert.strictEqual(bits(QR.formatBits('L', 4), 15), '110011000101111');
  assert.strictEqual(bits(QR.versionBits(7), 18), '000111110010010100');
  assert.strictEqual(bits(QR.versionBits(10), 18), '001010010011010011');
});

test('byte mode data codewords carry the mode, length, bytes and pad codewords', () => {
  const cw = QR.encodeData([0x61], 1, 'M'); // "a" in version 1-M
  assert.deepStrictEqual(cw.slice(0, 4), [0x40, 0x16, 0x10, 0xec]);
  assert.strictEqual(cw.length, 16);
  assert.strictEqual(cw[4], 0x11);
});

test('a link too long for version 10 is refused instead of mis-encoded', () => {
  assert.strictEqual(QR.encode('x'.repeat(400)), null);
  assert.ok(QR.encode('x'.repeat(200)));
});

function pgm(code, scale = 4) {
  const quiet = 4;
  const n = (code.size + 2 * quiet) * scale;
  const px = Buffer.alloc(n * n, 255);
  for (let y = 0; y < code.size; y++) {
    for (let x = 0; x < code.size; x++) {
      if (!code.modules[y][x]) continue;
      for (let dy = 0; dy < scale; dy++) for (let dx = 0; dx < scale; dx++) px[((y + quiet) * scale + dy) * n + (x + quiet) * scale + dx] = 0;
    }
  }
  return Buffer.concat([Buffer.from(`P5 ${n} ${n} 255\n`), px]);
}

test('zbarimg decodes every version 1-10, both levels and all eight masks', (t) => {
  try { execFileSync('zbarimg', ['--version'], { stdio: 'ignore' }); } catch (e) { t.skip('zbarimg (zbar-tools) is not installed'); return; }
  const file = path.join(fs.mkdtempSync(path.join(os.tmpdir(), 'duet-qr-')), 'q.pgm');
  const link = 'https://127.0.0.1:8443/?me=%E3%81%9F%E3%81%AA%E3%81%8B&peer=bob';
  const cases = [];
  // Each version, filled about as full as it goes (lengths near capacity), and a real link.
  const full = [14, 26, 42, 62, 84, 106, 122, 152, 180, 213];
  for (let v = 1; v <= 10; v++) cases.push({ text: 'duet'.repeat(70).slice(0, full[v - 1]), minVersion: v }, { text: link.slice(0, 10), minVersion: v });
  cases.push({ text: link, minVersion: 1 });
  const seen = new Set();
  for (const { text, minVersion } of cases) {
    for (const level of ['M', 'L']) {
      for (let mask = 0; mask < 8; mask++) {
        const code = QR.encode(text, { level, mask, minVersion });
        if (!code) continue;
        seen.add(`${code.version}${level}`);
        fs.writeFileSync(file, pgm(code));
        let out = '';
        try { out = execFileSync('zbarimg', ['-q', '--raw', file], { stdio: ['ignore', 'pipe', 'ignore'] }).toString().replace(/\n$/, ''); } catch (e) { /* no symbol found */ }
        assert.strictEqual(out, text, `version ${code.version}-${level} mask ${mask}, ${text.length} bytes`);
      }
    }
  }
  for (let v = 1; v <= 10; v++) assert.ok(seen.has(`${v}M`) && seen.has(`${v}L`), `version ${v} was covered`);
});
