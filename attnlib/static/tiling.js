// The arithmetic of tiled attention, for the OnlineSoftmaxStepper and the TileExplorer: pure
// functions on plain arrays (no DOM). attnlib/widgets.py puts this file after math.js and before
// ui.js in those two widgets' modules. tests/test_widgets.py runs the modules under node
// (tests/js/eval_tiling.mjs) and compares these results with attnlib.softmax and with
// attnlib.efficient.tiled_attention(..., return_stats=True), so the page and the library agree.

/**
 * The online softmax of one query, fed its keys `block` at a time.
 * scores (T,), values (T, d_v). Before the first tile m = -Infinity, l = 0, acc = 0. For each tile:
 *   mNew = max(m, largest score of the tile)
 *   rescale = exp(m - mNew)            (1 when the max did not grow, 0 on the first tile)
 *   l   = l * rescale + sum exp(s - mNew)
 *   acc = acc * rescale + sum exp(s - mNew) * v
 * Returns one entry per tile: {start, end (keys start .. end - 1), tileMax, m, rescale, l, acc}.
 * After the last tile, acc / l equals softmax(scores) @ values.
 */
export function onlineSoftmaxSteps(scores, values, block) {
  const d = values.length ? values[0].length : 0;
  let m = -Infinity;
  let l = 0;
  let acc = new Array(d).fill(0);
  const steps = [];
  for (let start = 0; start < scores.length; start += block) {
    const end = Math.min(start + block, scores.length);
    let tileMax = -Infinity;
    for (let j = start; j < end; j++) tileMax = Math.max(tileMax, scores[j]);
    const mNew = Math.max(m, tileMax);
    const rescale = Math.exp(m - mNew); // exp(-Infinity) = 0 on the first tile
    l *= rescale;
    acc = acc.map((a) => a * rescale);
    for (let j = start; j < end; j++) {
      const p = Math.exp(scores[j] - mNew); // at most 1: every exponent is <= 0
      l += p;
      for (let c = 0; c < d; c++) acc[c] += p * values[j][c];
    }
    m = mNew;
    steps.push({ start, end, tileMax, m, rescale, l, acc: acc.slice() });
  }
  return steps;
}

/**
 * May query i attend to key j? The masks of attnlib.efficient, combined by AND:
 *   causal:      j <= i                                   (attnlib.causal_mask)
 *   window w>0:  |i - j| < w                              (sliding_window_mask; with causal,
 *                                                          the w most recent keys)
 *   sparse b>0:  same block of b, or j is a block's last  (block_sparse_mask, one summary key)
 */
export function mayAttend(i, j, { causal = false, window = 0, sparseBlock = 0 } = {}) {
  if (causal && j > i) return false;
  if (window > 0 && Math.abs(i - j) >= window) return false;
  if (sparseBlock > 0) {
    const sameBlock = Math.floor(i / sparseBlock) === Math.floor(j / sparseBlock);
    if (!sameBlock && j % sparseBlock !== sparseBlock - 1) return false;
  }
  return true;
}

/**
 * Tiled attention over T queries and T keys, in tiles of `block` a side (the last tile is shorter
 * when block does not divide T), as attnlib.efficient.tiled_attention(q, k, v, mask,
 * is_causal=causal, block_q=block, block_k=block) runs it for one head of width d (d_v = d), with
 * `mask` the window and block-sparse masks (none when both are 0).
 * opts: {causal, window, sparseBlock, d = 64}.
 * Returns:
 *   nTiles                  tiles a side; kept[a][b] = allowed entries of the pair (query tile a,
 *                           key tile b); a pair with none is skipped, one with some computed
 *   tilesComputed, tilesSkipped, tilesPartial (computed, but some entries masked)
 *   scoresKept              allowed (query, key) pairs; scoresComputed: entries of computed tiles
 *   qReads, kReads, vReads, maskReads, outWrites: slow-memory traffic in elements (TileStats)
 *   explicitReads, explicitWrites: the explicit path's (efficient.explicit_slow_memory)
 *   patternEntries = T * T; workingSet = block (2 d + block + 2): one query tile's q, m, l,
 *                           accumulator and tile of scores, the fast memory a step needs
 */
export function tileGrid(T, block, opts = {}) {
  const { causal = false, window = 0, sparseBlock = 0, d = 64 } = opts;
  const n = Math.ceil(T / block);
  const hasMask = window > 0 || sparseBlock > 0; // passed to tiled_attention as a bool mask
  const kept = [];
  const r = { nTiles: n, kept, tilesComputed: 0, tilesSkipped: 0, tilesPartial: 0, scoresKept: 0,
    scoresComputed: 0, qReads: 0, kReads: 0, vReads: 0, maskReads: 0, outWrites: T * d };
  for (let a = 0; a < n; a++) {
    const qs = a * block;
    const qe = Math.min(qs + block, T);
    const row = [];
    let queryTileUsed = false;
    for (let b = 0; b < n; b++) {
      const ks = b * block;
      const ke = Math.min(ks + block, T);
      // tiled_attention skips a tile above the diagonal before it reads the mask
      if (hasMask && !(causal && ks > qe - 1)) r.maskReads += (qe - qs) * (ke - ks);
      let count = 0;
      for (let i = qs; i < qe; i++) {
        for (let j = ks; j < ke; j++) if (mayAttend(i, j, opts)) count++;
      }
      row.push(count);
      r.scoresKept += count;
      if (count === 0) {
        r.tilesSkipped++;
        continue;
      }
      r.tilesComputed++;
      if (count < (qe - qs) * (ke - ks)) r.tilesPartial++;
      r.scoresComputed += (qe - qs) * (ke - ks);
      r.kReads += (ke - ks) * d; // the key tile and the value tile, again for every computed pair
      r.vReads += (ke - ks) * d;
      queryTileUsed = true;
    }
    if (queryTileUsed) r.qReads += (qe - qs) * d; // each query tile once
    kept.push(row);
  }
  r.explicitReads = 3 * T * d + 2 * T * T; // read Q, K, V, and the (T, T) matrix twice
  r.explicitWrites = 2 * T * T + T * d; // write the scores and the weights, then the output
  r.patternEntries = T * T;
  r.workingSet = block * (2 * d + block + 2);
  return r;
}
