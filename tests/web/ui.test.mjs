// The parts of web/ui.js that are rules rather than drawing: the server's
// id rules as the form checks them, and the call timer's format.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { idProblem, formatDuration } from '../../web/ui.js';

test('the form refuses the ids the server refuses', () => {
  assert.equal(idProblem(''), 'valid.empty');
  assert.equal(idProblem('a'.repeat(256)), '');
  assert.equal(idProblem('a'.repeat(257)), 'valid.tooLong');
  assert.equal(idProblem('あ'.repeat(85)), '', '255 bytes of UTF-8');
  assert.equal(idProblem('あ'.repeat(86)), 'valid.tooLong', '258 bytes of UTF-8');
  assert.equal(idProblem('a\u0007b'), 'valid.control');
  assert.equal(idProblem('a\u0085b'), 'valid.control', 'C1 controls too');
  assert.equal(idProblem('Zoë Ω'), '');
});

test('the call timer reads m:ss, and h:mm:ss after an hour', () => {
  assert.equal(formatDuration(0), '0:00');
  assert.equal(formatDuration(-5000), '0:00');
  assert.equal(formatDuration(59999), '0:59');
  assert.equal(formatDuration(61000), '1:01');
  assert.equal(formatDuration(3600000 + 62000), '1:01:02');
});
