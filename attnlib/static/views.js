// What the teaching widgets show, computed from math.js: pure functions, no DOM.
//
// attnlib/widgets.py joins this file after math.js into the modules of the widgets that need it
// (AttentionExplorer, QueryKeyArrows, ValueUpdateExplorer), so it may call math.js's functions.
// tests/test_widgets.py runs it under node and compares it with attnlib.

/** The smallest "round" number >= |x| with two significant digits (4.53 -> 4.6), as attnlib.viz.nice_limit. */
export function niceLimit(x) {
  const a = Math.abs(Number(x));
  if (!Number.isFinite(a) || a === 0) return 1;
  const scale = 10 ** (Math.floor(Math.log10(a)) - 1);
  return Number((Math.ceil(a / scale - 1e-4) * scale).toPrecision(6));
}

/**
 * The grid the attention explorer shows, for show = "raw" (q·k), "scaled" (q·k / sqrt(d_head)) or
 * "weights" (the softmax of the scaled scores over the visible keys, divided by the temperature).
 * opts: {show = "weights", causal = false, temperature = 1}.
 * Returns {values (T, T), vmin, vmax (the colour range: 0..1 for weights, symmetric for scores),
 * raw, scores, weights}.
 */
export function explorerGrid(x, w_q, w_k, opts = {}) {
  const { show = "weights", causal = false, temperature = 1 } = opts;
  const st = explorerState(x, w_q, w_k, { causal, temperature });
  const raw = matmul(st.q, transpose(st.k));
  const values = show === "raw" ? raw : show === "scaled" ? st.scores : st.weights;
  let vmin = 0;
  let vmax = 1;
  if (show !== "weights") {
    const visible = causal ? causalMask(values.length, values.length) : null;
    let hi = 0;
    values.forEach((row, i) => row.forEach((v, j) => {
      if (!visible || visible[i][j]) hi = Math.max(hi, Math.abs(v));
    }));
    vmax = niceLimit(hi);
    vmin = -vmax;
  }
  return { values, vmin, vmax, raw, scores: st.scores, weights: st.weights };
}

/** A 2-D arrow from its angle (degrees, counter-clockwise from the x axis) and length. */
export function polar(angle, length) {
  const a = (angle * Math.PI) / 180;
  return [length * Math.cos(a), length * Math.sin(a)];
}

/**
 * One query against every key: keys (T, 2), query (2,).
 * opts: {dHead = 2 (the scale is 1/sqrt(dHead)), causal = false, queryIndex = null (the query's
 * position: under the causal mask it sees keys 0 .. queryIndex only)}.
 * Returns {dots (T,) = keys · query, scores (T,) = dots / sqrt(dHead), weights (T,) = the softmax
 * of the scores over the visible keys, visible (T,) booleans}.
 */
export function queryRow(keys, query, opts = {}) {
  const { dHead = 2, causal = false, queryIndex = null } = opts;
  const dots = keys.map((kj) => dot(kj, query));
  const scores = dots.map((s) => s / Math.sqrt(dHead));
  const visible = keys.map((_, j) => !causal || queryIndex === null || j <= queryIndex);
  const weights = softmax(scores.map((s, j) => (visible[j] ? s : -Infinity)));
  return { dots, scores, weights, visible };
}

/**
 * The weights of the value-update widget: the slider positions raw (T,) with the keys after the
 * query set to 0 when causal, renormalised to sum to 1 (all zero: no change).
 */
export function valueWeights(raw, query, causal = false) {
  return normalize(raw.map((r, j) => (causal && j > query ? 0 : r)));
}

/**
 * Place text labels next to points so that no two overlap: for each label, in order, the first of
 * a few offsets (right or left of the point, then one, two, three lines up or down) whose box
 * overlaps no label placed before and stays inside the picture (else the first offset).
 * items: [{x, y, text, side = 1 (1: try right of the point first, -1: left)}] in pixels.
 * opts: {width, height (the picture), charWidth = 6.5, lineHeight = 13, gap = 7, avoid = [] (boxes
 * already taken, such as axis names)}.
 * Returns [{x, y, anchor ("start" or "end", for SVG text-anchor), box {x0, x1, y0, y1}}].
 */
export function placeLabels(items, opts = {}) {
  const { width = Infinity, height = Infinity, charWidth = 6.5, lineHeight = 13, gap = 7, avoid = [] } = opts;
  const placed = [];
  const taken = avoid.map((box) => ({ box }));
  const free = (b) =>
    b.x0 >= 0 && b.x1 <= width && b.y0 >= 0 && b.y1 <= height &&
    [...taken, ...placed].every((p) => b.x1 <= p.box.x0 || p.box.x1 <= b.x0 || b.y1 <= p.box.y0 || p.box.y1 <= b.y0);
  for (const { x, y, text, side = 1 } of items) {
    const w = String(text).length * charWidth;
    let first = null;
    let found = null;
    for (const line of [0, -1, 1, -2, 2, -3, 3]) {
      for (const s of [side, -side]) {
        const tx = x + s * gap;
        const ty = y + line * lineHeight + 0.35 * lineHeight; // the text's baseline
        const box = { x0: s > 0 ? tx : tx - w, x1: s > 0 ? tx + w : tx, y0: ty - 0.8 * lineHeight, y1: ty + 0.2 * lineHeight };
        const c = { x: tx, y: ty, anchor: s > 0 ? "start" : "end", box };
        first = first ?? c;
        if (free(box)) {
          found = c;
          break;
        }
      }
      if (found) break;
    }
    placed.push(found ?? first);
  }
  return placed;
}

/**
 * Groups of points (pixels) closer than `radius` to one another (single linkage), so that a crowd
 * of points gets one label instead of a pile of overlapping ones. points: [[x, y]]; returns arrays
 * of indices, in the order of their first member.
 */
export function crowds(points, radius = 12) {
  const group = points.map((_, i) => i);
  const find = (i) => (group[i] === i ? i : (group[i] = find(group[i])));
  points.forEach((a, i) => points.forEach((b, j) => {
    if (j > i && Math.hypot(a[0] - b[0], a[1] - b[1]) < radius) group[find(j)] = find(i);
  }));
  const out = new Map();
  points.forEach((_, i) => {
    const r = find(i);
    if (!out.has(r)) out.set(r, []);
    out.get(r).push(i);
  });
  return [...out.values()];
}
