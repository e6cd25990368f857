// eslint for duet's JavaScript (run by tools/lint): the recommended rules,
// which look for bugs (undefined or unused names, unreachable code, constant
// conditions, duplicate keys...), not for layout. Layout is left alone: the
// code has one consistent style of its own and no formatter enforces it.
import js from '@eslint/js';
import globals from 'globals';

export default [
  {
    // Installed packages, and the screenshots the browser tests write.
    ignores: ['**/node_modules/', 'build*/', 'tests/browser/screenshots/'],
  },
  js.configs.recommended,
  {
    rules: {
      // `catch (e) { ... }` with e unused is the code's habit wherever an
      // error is expected and answered without looking at it (a refused
      // setRemoteDescription, a closed socket); eslint 9 flags those by default.
      'no-unused-vars': ['error', { caughtErrors: 'none' }],
    },
  },
  {
    // The web client: ES modules loaded by the browser (web/index.html).
    files: ['web/**/*.js'],
    languageOptions: {
      ecmaVersion: 2022,
      sourceType: 'module',
      globals: { ...globals.browser },
    },
  },
  {
    // The web client's logic under Node's own test runner, with fakes for
    // the browser objects (tests/web/fakes.mjs).
    files: ['tests/web/**/*.mjs'],
    languageOptions: {
      ecmaVersion: 2022,
      sourceType: 'module',
      globals: { ...globals.node },
    },
  },
  {
    // The browser tests: CommonJS under node --test, driving Chromium through
    // playwright-core. The functions given to page.evaluate() and
    // page.waitForFunction() run in the page, so the browser's names
    // (document, window, RTCPeerConnection...) are known here too.
    files: ['tests/browser/**/*.js'],
    languageOptions: {
      ecmaVersion: 2022,
      sourceType: 'commonjs',
      globals: { ...globals.node, ...globals.browser },
    },
  },
  {
    // The integration tests' Web Push service and webhook receiver
    // (push_harness.py and webhook_harness.py start them): Node.js, CommonJS.
    files: ['tests/push-service/**/*.js', 'tests/webhook-receiver/**/*.js'],
    languageOptions: {
      ecmaVersion: 2022,
      sourceType: 'commonjs',
      globals: { ...globals.node },
    },
  },
  {
    // The benchmark's reference servers (tests/bench/run): Node.js, CommonJS.
    files: ['tests/bench/**/*.js'],
    languageOptions: {
      ecmaVersion: 2022,
      sourceType: 'commonjs',
      globals: { ...globals.node },
    },
  },
];
