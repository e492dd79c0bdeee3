// TileExplorer: the (query tile, key tile) grid of tiled attention over T positions. Controls set
// the tile size, the causal mask, a sliding window and a block-sparse pattern; the grid shows which
// pairs a kernel computes whole, computes partly masked or skips, and the counts set the explicit
// path's (T, T) pattern and slow-memory traffic against the tiled path's. The math is tileGrid
// (tiling.js), so the widget works in a static page.
// Traits read: T, blocks, block, causal, window, sparse_block, d_head, bytes_per_entry.
// Written back: block, causal, window, sparse_block, tiles_computed, tiles_skipped, tiles_partial,
// scores_kept, tiled_traffic, explicit_traffic.

function renderTileExplorer({ model, el }) {
  const root = widgetRoot(el, "tile-explorer", "Which tiles does a kernel compute?");
  const get = (n) => model.get(n);
  const opts = () => ({ causal: get("causal"), window: get("window"), sparseBlock: get("sparse_block"), d: get("d_head") });

  const commit = (changes) => {
    for (const [k, v] of Object.entries(changes)) model.set(k, v);
    const r = tileGrid(get("T"), get("block"), opts());
    model.set("tiles_computed", r.tilesComputed);
    model.set("tiles_skipped", r.tilesSkipped);
    model.set("tiles_partial", r.tilesPartial);
    model.set("scores_kept", r.scoresKept);
    model.set("tiled_traffic", r.qReads + r.kReads + r.vReads + r.maskReads + r.outWrites);
    model.set("explicit_traffic", r.explicitReads + r.explicitWrites);
    trySave(model);
  };

  const blocks = () => get("blocks");
  const blockSlider = slider({ label: "tile size", min: 0, max: blocks().length - 1, step: 1,
    value: Math.max(0, blocks().indexOf(get("block"))), oninput: (i) => commit({ block: blocks()[i] }),
    cls: "attnlib-block" });
  const causalBox = checkbox({ label: "causal", checked: get("causal"), onchange: (c) => commit({ causal: c }),
    cls: "attnlib-causal" });
  const windowSlider = slider({ label: "window", min: 0, max: get("T"), step: 1, value: get("window"),
    oninput: (v) => commit({ window: v }), cls: "attnlib-window" });
  const sparseSlider = slider({ label: "sparse blocks", min: 0, max: get("T"), step: 1, value: get("sparse_block"),
    oninput: (v) => commit({ sparse_block: v }), cls: "attnlib-sparse" });
  const header = h("div", { class: "attnlib-formula" });
  const grid = h("div", { class: "attnlib-scroll" });
  const facts = h("div", { class: "attnlib-facts" });
  root.append(
    h("div", { class: "attnlib-controls" }, [blockSlider.root, causalBox.root, windowSlider.root, sparseSlider.root]),
    header, h("div", { class: "attnlib-panes" }, [grid, facts]),
  );

  const pct = (a, b) => `${((100 * a) / b).toFixed(1)}%`;
  // "4.0× less" when a > b, "2.0× more" when a < b
  const ratio = (a, b) => (a >= b ? `${fmtSig(a / b)}× less` : `${fmtSig(b / a)}× more`);

  const draw = () => {
    const T = get("T");
    const block = get("block");
    const o = opts();
    const bytes = get("bytes_per_entry");
    const r = tileGrid(T, block, o);
    const n = r.nTiles;
    blockSlider.input.max = String(blocks().length - 1);
    blockSlider.input.value = String(Math.max(0, blocks().indexOf(block)));
    blockSlider.out.textContent = String(block);
    causalBox.input.checked = o.causal;
    windowSlider.input.value = String(o.window);
    windowSlider.out.textContent = o.window ? String(o.window) : "none";
    sparseSlider.input.value = String(o.sparseBlock);
    sparseSlider.out.textContent = o.sparseBlock ? String(o.sparseBlock) : "none";
    const masks = [o.causal ? "causal" : null, o.window ? `window of ${o.window}` : null,
      o.sparseBlock ? `block-sparse, blocks of ${o.sparseBlock}` : null].filter((x) => x);
    header.textContent = `T = ${formatInt(T)} queries and keys in tiles of ${block}` +
      `${T % block ? ` (the last ${T % block} long)` : ""}; mask: ${masks.length ? masks.join(" AND ") : "none"}`;

    // the grid: one square per (query tile, key tile) pair
    const size = 256;
    const c = size / n;
    const svg = svgEl("svg", { class: "attnlib-svg attnlib-tile-grid", viewBox: `0 0 ${size} ${size}`, width: size, height: size,
      role: "img", "aria-label": `${r.tilesComputed} of ${n * n} tiles computed` });
    svg.append(svgEl("rect", { x: 0, y: 0, width: size, height: size, class: "attnlib-tile-skipped" }));
    r.kept.forEach((row, a) => row.forEach((count, b) => {
      if (count === 0) return;
      const rows = Math.min(block, T - a * block);
      const cols = Math.min(block, T - b * block);
      const kind = count === rows * cols ? "attnlib-tile-full" : "attnlib-tile-partial";
      svg.append(svgEl("rect", { x: b * c, y: a * c, width: c, height: c, class: kind }));
    }));
    grid.replaceChildren(
      h("div", { class: "attnlib-axis-title", text: "rows: query tiles ↓, columns: key tiles →" }),
      svg,
      h("div", { class: "attnlib-legend" }, [
        h("span", { class: "attnlib-swatch attnlib-tile-full" }), h("span", { text: "computed" }),
        h("span", { class: "attnlib-swatch attnlib-tile-partial" }), h("span", { text: "partly masked" }),
        h("span", { class: "attnlib-swatch attnlib-tile-skipped" }), h("span", { text: "skipped" }),
      ]),
    );

    const tiled = r.qReads + r.kReads + r.vReads + r.outWrites; // the mask's reads apart, below
    const explicit = r.explicitReads + r.explicitWrites;
    const b = (entries) => formatBytes(entries * bytes);
    facts.replaceChildren(
      h("div", { class: "attnlib-big" }, [h("span", { text: "tiles computed: " }),
        h("strong", { class: "attnlib-computed", text: `${formatInt(r.tilesComputed)} of ${formatInt(n * n)}` }),
        h("span", { text: ` (${pct(r.tilesSkipped, n * n)} skipped; ${formatInt(r.tilesPartial)} partly masked)` })]),
      h("div", {}, `scores kept: ${formatInt(r.scoresKept)} of ${formatInt(T * T)} (${pct(r.scoresKept, T * T)}); ` +
        `computed, whole tiles: ${formatInt(r.scoresComputed)}`),
      h("div", { class: "attnlib-subtitle", text: `memory, one head of width d = ${o.d}, ${bytes} bytes a number` }),
      h("div", {}, `explicit: the T × T pattern, ${formatInt(r.patternEntries)} entries = ${b(r.patternEntries)}`),
      h("div", {}, [h("span", { text: `tiled: one step's working set, ${block} × (2d + ${block} + 2) = ` +
        `${formatInt(r.workingSet)} numbers = ` }), h("strong", { class: "attnlib-memory", text: b(r.workingSet) }),
        h("span", { text: ` (${ratio(r.patternEntries, r.workingSet)})` })]),
      h("div", { class: "attnlib-subtitle", text: "slow-memory traffic (reads + writes)" }),
      h("div", {}, `explicit: ${formatInt(explicit)} numbers = ${b(explicit)}`),
      h("div", {}, [h("span", { text: `tiled, q, k, v and the output: ${formatInt(tiled)} numbers = ${b(tiled)} ` }),
        h("strong", { class: "attnlib-traffic", text: `(${ratio(explicit, tiled)})` })]),
      r.maskReads ? h("div", { class: "attnlib-hint" }, `tiled_attention also reads ${formatInt(r.maskReads)} ` +
        "entries of the boolean mask; a kernel that works the window or the blocks out from the positions reads none") : null,
    );
  };

  draw();
  return listen(model, ["T", "blocks", "block", "causal", "window", "sparse_block", "d_head", "bytes_per_entry"], draw);
}

export default { render: renderTileExplorer };
