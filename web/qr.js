// A QR code encoder (ISO/IEC 18004) for the invite link: byte mode, error
// correction level M (L when M does not fit), versions 1 to 10, written for
// duet. Reed-Solomon over GF(256) with the polynomial x^8+x^4+x^3+x^2+1, all
// eight masks scored with the standard penalty rules, the best one kept.
  // Per version 1..10 and level: [EC codewords per block, [blocks, data codewords]...].
const BLOCKS = {
  M: [null,
    [10, [1, 16]], [16, [1, 28]], [26, [1, 44]], [18, [2, 32]], [24, [2, 43]],
    [16, [4, 27]], [18, [4, 31]], [22, [2, 38], [2, 39]], [22, [3, 36], [2, 37]], [26, [4, 43], [1, 44]]],
  L: [null,
    [7, [1, 19]], [10, [1, 34]], [15, [1, 55]], [20, [1, 80]], [26, [1, 108]],
    [18, [2, 68]], [20, [2, 78]], [24, [2, 97]], [30, [2, 116]], [18, [2, 68], [2, 69]]],
};
const ALIGN = [null, [], [6, 18], [6, 22], [6, 26], [6, 30], [6, 34], [6, 22, 38], [6, 24, 42], [6, 26, 46], [6, 28, 50]];
const LEVEL_BITS = { L: 1, M: 0 };
const MAX_VERSION = 10;

// GF(256) log and antilog tables.
const EXP = new Array(512);
const LOG = new Array(256);
for (let i = 0, x = 1; i < 255; i++) {
  EXP[i] = x;
  LOG[x] = i;
  x <<= 1;
  if (x & 0x100) x ^= 0x11d;
}
for (let i = 255; i < 512; i++) EXP[i] = EXP[i - 255];
const mul = (a, b) => (a === 0 || b === 0 ? 0 : EXP[LOG[a] + LOG[b]]);

// The generator polynomial (x - a^0)(x - a^1)...(x - a^(n-1)), highest
// degree first, leading coefficient 1 left out.
function generator(n) {
  let g = [1];
  for (let i = 0; i < n; i++) {
    const next = new Array(g.length + 1).fill(0);
    for (let j = 0; j < g.length; j++) {
      next[j] ^= g[j];
      next[j + 1] ^= mul(g[j], EXP[i]);
    }
    g = next;
  }
  return g.slice(1);
}

// The n error correction codewords of data: the remainder of
// data(x) * x^n divided by the generator.
export function reedSolomon(data, n) {
  const g = generator(n);
  const rem = new Array(n).fill(0);
  for (const byte of data) {
    const factor = byte ^ rem.shift();
    rem.push(0);
    for (let i = 0; i < n; i++) rem[i] ^= mul(g[i], factor);
  }
  return rem;
}

function dataCapacity(version, level) {
  const [, ...groups] = BLOCKS[level][version];
  return groups.reduce((sum, [count, size]) => sum + count * size, 0);
}

// Mode indicator, character count, the bytes, terminator and padding.
export function encodeData(bytes, version, level) {
  const capacity = dataCapacity(version, level);
  const countBits = version <= 9 ? 8 : 16;
  const bits = [];
  const put = (value, n) => { for (let i = n - 1; i >= 0; i--) bits.push((value >>> i) & 1); };
  put(0b0100, 4);
  put(bytes.length, countBits);
  for (const b of bytes) put(b, 8);
  if (bits.length > capacity * 8) return null;
  put(0, Math.min(4, capacity * 8 - bits.length));
  while (bits.length % 8) bits.push(0);
  const codewords = [];
  for (let i = 0; i < bits.length; i += 8) {
    let v = 0;
    for (let j = 0; j < 8; j++) v = (v << 1) | bits[i + j];
    codewords.push(v);
  }
  for (let pad = 0xec; codewords.length < capacity; pad ^= 0xec ^ 0x11) codewords.push(pad);
  return codewords;
}

// Splits into blocks, adds each block's EC codewords, interleaves.
export function interleave(data, version, level) {
  const [ecPerBlock, ...groups] = BLOCKS[level][version];
  const blocks = [];
  let offset = 0;
  for (const [count, size] of groups) {
    for (let i = 0; i < count; i++) {
      const d = data.slice(offset, offset + size);
      offset += size;
      blocks.push({ data: d, ec: reedSolomon(d, ecPerBlock) });
    }
  }
  const out = [];
  const longest = Math.max(...blocks.map((b) => b.data.length));
  for (let i = 0; i < longest; i++) for (const b of blocks) if (i < b.data.length) out.push(b.data[i]);
  for (let i = 0; i < ecPerBlock; i++) for (const b of blocks) out.push(b.ec[i]);
  return out;
}

// 15 format bits: level and mask, BCH(15,5) with 0x537, XOR 0x5412.
export function formatBits(level, mask) {
  const data = (LEVEL_BITS[level] << 3) | mask;
  let rem = data << 10;
  for (let i = 14; i >= 10; i--) if ((rem >>> i) & 1) rem ^= 0x537 << (i - 10);
  return ((data << 10) | rem) ^ 0x5412;
}

// 18 version bits (versions 7 and up): BCH(18,6) with 0x1f25.
export function versionBits(version) {
  let rem = version << 12;
  for (let i = 17; i >= 12; i--) if ((rem >>> i) & 1) rem ^= 0x1f25 << (i - 12);
  return (version << 12) | rem;
}

const MASKS = [
  (r, c) => (r + c) % 2 === 0,
  (r) => r % 2 === 0,
  (r, c) => c % 3 === 0,
  (r, c) => (r + c) % 3 === 0,
  (r, c) => (Math.floor(r / 2) + Math.floor(c / 3)) % 2 === 0,
  (r, c) => ((r * c) % 2) + ((r * c) % 3) === 0,
  (r, c) => (((r * c) % 2) + ((r * c) % 3)) % 2 === 0,
  (r, c) => (((r + c) % 2) + ((r * c) % 3)) % 2 === 0,
];

class Matrix {
  constructor(version) {
    this.size = 17 + 4 * version;
    this.dark = Array.from({ length: this.size }, () => new Array(this.size).fill(false));
    this.fixed = Array.from({ length: this.size }, () => new Array(this.size).fill(false));
  }
  set(r, c, dark) {
    this.dark[r][c] = dark;
    this.fixed[r][c] = true;
  }
}

function drawFunctionPatterns(m, version) {
  const n = m.size;
  // Timing patterns.
  for (let i = 0; i < n; i++) {
    m.set(6, i, i % 2 === 0);
    m.set(i, 6, i % 2 === 0);
  }
  // Finder patterns with their separators.
  for (const [fr, fc] of [[0, 0], [0, n - 7], [n - 7, 0]]) {
    for (let r = -1; r <= 7; r++) {
      for (let c = -1; c <= 7; c++) {
        const rr = fr + r;
        const cc = fc + c;
        if (rr < 0 || rr >= n || cc < 0 || cc >= n) continue;
        const ring = Math.max(Math.abs(r - 3), Math.abs(c - 3));
        m.set(rr, cc, ring !== 2 && ring !== 4);
      }
    }
  }
  // Alignment patterns, except where they would overlap a finder.
  const pos = ALIGN[version];
  for (const r of pos) {
    for (const c of pos) {
      if ((r === 6 && c === 6) || (r === 6 && c === pos[pos.length - 1]) || (r === pos[pos.length - 1] && c === 6)) continue;
      for (let dr = -2; dr <= 2; dr++) {
        for (let dc = -2; dc <= 2; dc++) m.set(r + dr, c + dc, Math.max(Math.abs(dr), Math.abs(dc)) !== 1);
      }
    }
  }
  // Reserve the format areas (written for real once the mask is chosen).
  drawFormat(m, 0);
  if (version >= 7) {
    const v = versionBits(version);
    for (let i = 0; i < 18; i++) {
      const bit = ((v >>> i) & 1) === 1;
      const a = n - 11 + (i % 3);
      const b = Math.floor(i / 3);
      m.set(b, a, bit);
      m.set(a, b, bit);
    }
  }
}

function drawFormat(m, bits) {
  const n = m.size;
  const bit = (i) => ((bits >>> i) & 1) === 1;
  // Around the top-left finder: bits 0-7 down column 8, bits 8-14 along row 8.
  for (let i = 0; i <= 5; i++) m.set(i, 8, bit(i));
  m.set(7, 8, bit(6));
  m.set(8, 8, bit(7));
  m.set(8, 7, bit(8));
  for (let i = 9; i < 15; i++) m.set(8, 14 - i, bit(i));
  // The copy: bits 0-7 along row 8 at the right, bits 8-14 up column 8 at the bottom.
  for (let i = 0; i < 8; i++) m.set(8, n - 1 - i, bit(i));
  for (let i = 8; i < 15; i++) m.set(n - 15 + i, 8, bit(i));
  m.set(n - 8, 8, true); // the dark module
}

// Codeword bits in the two-column zigzag, right to left, skipping column 6.
function placeData(m, codewords) {
  const n = m.size;
  let bitIndex = 0;
  const total = codewords.length * 8;
  let upward = true;
  for (let right = n - 1; right >= 1; right -= 2) {
    if (right === 6) right = 5;
    for (let k = 0; k < n; k++) {
      const r = upward ? n - 1 - k : k;
      for (const c of [right, right - 1]) {
        if (m.fixed[r][c]) continue;
        let dark = false;
        if (bitIndex < total) dark = ((codewords[bitIndex >>> 3] >>> (7 - (bitIndex & 7))) & 1) === 1;
        bitIndex++;
        m.dark[r][c] = dark;
      }
    }
    upward = !upward;
  }
}

function applyMask(m, mask) {
  const f = MASKS[mask];
  for (let r = 0; r < m.size; r++) for (let c = 0; c < m.size; c++) if (!m.fixed[r][c] && f(r, c)) m.dark[r][c] = !m.dark[r][c];
}

function penalty(m) {
  const n = m.size;
  const d = m.dark;
  let score = 0;
  // Rule 1: runs of five or more of one colour, in rows and columns.
  for (let pass = 0; pass < 2; pass++) {
    for (let i = 0; i < n; i++) {
      let run = 1;
      for (let j = 1; j <= n; j++) {
        const same = j < n && (pass ? d[j][i] === d[j - 1][i] : d[i][j] === d[i][j - 1]);
        if (same) run++;
        else {
          if (run >= 5) score += 3 + (run - 5);
          run = 1;
        }
      }
    }
  }
  // Rule 2: 2x2 blocks of one colour.
  for (let r = 0; r < n - 1; r++) {
    for (let c = 0; c < n - 1; c++) if (d[r][c] === d[r][c + 1] && d[r][c] === d[r + 1][c] && d[r][c] === d[r + 1][c + 1]) score += 3;
  }
  // Rule 3: finder-like 1:1:3:1:1 with four light modules on one side.
  const patterns = [[1, 0, 1, 1, 1, 0, 1, 0, 0, 0, 0], [0, 0, 0, 0, 1, 0, 1, 1, 1, 0, 1]];
  for (let i = 0; i < n; i++) {
    for (let j = 0; j + 11 <= n; j++) {
      for (const p of patterns) {
        let row = true;
        let col = true;
        for (let k = 0; k < 11; k++) {
          if (d[i][j + k] !== (p[k] === 1)) row = false;
          if (d[j + k][i] !== (p[k] === 1)) col = false;
        }
        if (row) score += 40;
        if (col) score += 40;
      }
    }
  }
  // Rule 4: how far the share of dark modules is from half, in 5 % steps.
  let darkCount = 0;
  for (const row of d) for (const v of row) if (v) darkCount++;
  const k = Math.floor(Math.abs(darkCount * 20 - n * n * 10) / (n * n));
  score += 10 * k;
  return score;
}

// Encodes text (as UTF-8) and returns {version, level, mask, size, modules}
// where modules[row][col] is true for dark, or null if it does not fit.
export function encode(text, options = {}) {
  const bytes = Array.from(new TextEncoder().encode(text));
  const levels = options.level ? [options.level] : ['M', 'L'];
  for (const level of levels) {
    for (let version = options.minVersion || 1; version <= MAX_VERSION; version++) {
      const data = encodeData(bytes, version, level);
      if (!data) continue;
      const codewords = interleave(data, version, level);
      let best = null;
      const masks = options.mask !== undefined ? [options.mask] : [0, 1, 2, 3, 4, 5, 6, 7];
      for (const mask of masks) {
        const m = new Matrix(version);
        drawFunctionPatterns(m, version);
        placeData(m, codewords);
        applyMask(m, mask);
        drawFormat(m, formatBits(level, mask));
        const score = penalty(m);
        if (!best || score < best.score) best = { score, mask, m };
      }
      return { version, level, mask: best.mask, size: best.m.size, modules: best.m.dark };
    }
  }
  return null;
}
