// attnlib widget math: pure functions on plain arrays (no DOM, no imports).
//
// Every widget module of attnlib.widgets starts with this file (Python concatenates it in front of
// the widget's own code at import time), so the math that runs in the browser lives in one place.
// tests/test_widgets.py runs it under node and compares it with attnlib.attention / attnlib.softmax /
// attnlib.causal_mask, so the two cannot drift.
//
// Conventions (the same as attnlib's):
//   * a matrix is an array of rows; q (T_q, d), k (T_k, d), v (T_k, d_v);
//   * a pattern (the attention weights) is (T_q, T_k): row i holds query i's weights over the keys;
//   * causal masks are lower-right aligned: query i may see keys 0 .. i + (T_k - T_q);
//   * a query row whose keys are all masked gets zero weights (not NaN);
//   * temperature t divides the scaled scores: weights = softmax(q k^T * scale / t), scale = 1/sqrt(d).
// JavaScript numbers are float64.

/** (n, m) @ (m, p) -> (n, p). */
export function matmul(A, B) {
  const n = A.length;
  const m = B.length;
  const p = m ? B[0].length : 0;
  const C = [];
  for (let i = 0; i < n; i++) {
    const row = new Array(p).fill(0);
    for (let k = 0; k < m; k++) {
      const a = A[i][k];
      const Bk = B[k];
      for (let j = 0; j < p; j++) row[j] += a * Bk[j];
    }
    C.push(row);
  }
  return C;
}

/** (n, m) -> (m, n). */
export function transpose(A) {
  if (!A.length) return [];
  return A[0].map((_, j) => A.map((row) => row[j]));
}

/** Dot product of two equal-length vectors. */
export function dot(a, b) {
  let s = 0;
  for (let i = 0; i < a.length; i++) s += a[i] * b[i];
  return s;
}

/** Scaled scores q k^T * scale: q (T_q, d), k (T_k, d) -> (T_q, T_k). Default scale 1/sqrt(d). */
export function scaledScores(q, k, scale = null) {
  const d = q.length ? q[0].length : k.length ? k[0].length : 1;
  const s = scale === null || scale === undefined ? 1 / Math.sqrt(d) : scale;
  return q.map((qi) => k.map((kj) => dot(qi, kj) * s));
}

/** Boolean causal mask (T_q, T_k), true = may attend, lower-right aligned (as attnlib.causal_mask). */
export function causalMask(T_q, T_k = T_q) {
  const off = T_k - T_q;
  const M = [];
  for (let i = 0; i < T_q; i++) {
    const row = [];
    for (let j = 0; j < T_k; j++) row.push(j <= i + off);
    M.push(row);
  }
  return M;
}

/** Clamp a temperature to a small positive number (a zero or negative temperature is meaningless). */
export function safeTemperature(t) {
  const x = Number(t);
  return Number.isFinite(x) && x > 1e-12 ? x : 1e-12;
}

/**
 * Numerically stable softmax of one row (array of numbers, -Infinity allowed = masked).
 * softmax(row / temperature): subtract the row max, exponentiate, normalise.
 * A row that is entirely -Infinity gives all zeros.
 */
export function softmax(row, temperature = 1) {
  const t = safeTemperature(temperature);
  const z = row.map((x) => x / t);
  let m = -Infinity;
  for (const x of z) if (x > m) m = x;
  if (m === -Infinity || Number.isNaN(m)) return z.map(() => 0);
  const e = z.map((x) => (x === -Infinity ? 0 : Math.exp(x - m)));
  let s = 0;
  for (const x of e) s += x;
  return e.map((x) => x / s);
}

/** Apply a boolean mask (true = may attend) to scores: blocked entries become -Infinity. */
export function applyMask(scores, mask) {
  if (!mask) return scores.map((r) => r.slice());
  return scores.map((r, i) => r.map((x, j) => (mask[i][j] ? x : -Infinity)));
}

/**
 * Attention pattern of q (T_q, d) and k (T_k, d) -> (T_q, T_k).
 * opts: {causal=false, temperature=1, scale=1/sqrt(d), mask=null (boolean (T_q, T_k), true = may attend)}.
 * Equals attnlib.attention(q, k, v, mask, is_causal=causal, scale=scale / temperature, return_weights=True)[1].
 */
export function attentionWeights(q, k, opts = {}) {
  const { causal = false, temperature = 1, scale = null, mask = null } = opts;
  const scores = scaledScores(q, k, scale);
  let m = mask;
  if (causal) {
    const c = causalMask(q.length, k.length);
    m = m ? m.map((r, i) => r.map((x, j) => x && c[i][j])) : c;
  }
  return applyMask(scores, m).map((r) => softmax(r, temperature));
}

/**
 * Full attention: {scores (T_q, T_k) scaled, before mask and temperature; weights (T_q, T_k); out (T_q, d_v)}.
 * opts as for attentionWeights.
 */
export function attention(q, k, v, opts = {}) {
  const scores = scaledScores(q, k, opts.scale ?? null);
  const weights = attentionWeights(q, k, opts);
  return { scores, weights, out: matmul(weights, v) };
}

/** Weighted sum of value vectors: weights (T,), values (T, d) -> (d,). */
export function weightedSum(weights, values) {
  const d = values.length ? values[0].length : 0;
  const out = new Array(d).fill(0);
  for (let j = 0; j < values.length; j++) {
    for (let c = 0; c < d; c++) out[c] += weights[j] * values[j][c];
  }
  return out;
}

/** Non-negative amounts -> weights that sum to 1 (negative amounts count as 0; all zero -> all zero). */
export function normalize(w) {
  const pos = w.map((x) => (Number.isFinite(x) && x > 0 ? x : 0));
  let s = 0;
  for (const x of pos) s += x;
  return s > 0 ? pos.map((x) => x / s) : pos.map(() => 0);
}

/** Elementwise a + b for vectors. */
export function addVec(a, b) {
  return a.map((x, i) => x + b[i]);
}

/**
 * Everything the attention explorer shows: x (T, d_model), w_q and w_k (d_model, d_head).
 * Returns {q (T, d_head), k (T, d_head), scores (T, T) = q k^T / sqrt(d_head), weights (T, T)}.
 */
export function explorerState(x, w_q, w_k, opts = {}) {
  const q = matmul(x, w_q);
  const k = matmul(x, w_k);
  const scores = scaledScores(q, k);
  const weights = attentionWeights(q, k, opts);
  return { q, k, scores, weights };
}

/**
 * Value update of one query: points (T, 2) embeddings, values (T, 2), weights (T,) over the keys.
 * Returns {delta = sum_j w_j v_j, updated = points[query] + delta}.
 */
export function valueUpdate(points, values, query, weights) {
  const delta = weightedSum(weights, values);
  return { delta, updated: addVec(points[query], delta) };
}

/**
 * Size of the attention patterns for a context of n tokens.
 * Returns {perHead: n^2, perLayer: n^2 * nHeads, total: n^2 * nHeads * nLayers, bytes*: entries * bytesPerEntry}.
 */
export function patternCost(n, nHeads, nLayers, bytesPerEntry) {
  const perHead = n * n;
  const perLayer = perHead * nHeads;
  const total = perLayer * nLayers;
  return {
    perHead,
    perLayer,
    total,
    bytesPerHead: perHead * bytesPerEntry,
    bytesPerLayer: perLayer * bytesPerEntry,
    bytesTotal: total * bytesPerEntry,
  };
}

/** A byte count in binary units: 1536 -> "1.5 KiB". */
export function formatBytes(b) {
  const units = ["B", "KiB", "MiB", "GiB", "TiB", "PiB"];
  let x = b;
  let u = 0;
  while (x >= 1024 && u < units.length - 1) {
    x /= 1024;
    u++;
  }
  return u === 0 ? `${x} B` : `${x.toFixed(x < 10 ? 2 : 1)} ${units[u]}`;
}

/** An integer with thousands separators: 4194304 -> "4,194,304" (locale-independent). */
export function formatInt(n) {
  const s = String(Math.round(Math.abs(n)));
  const parts = [];
  for (let i = s.length; i > 0; i -= 3) parts.unshift(s.slice(Math.max(0, i - 3), i));
  return (n < 0 ? "-" : "") + parts.join(",");
}
