// AttentionExplorer: pick a query token, a temperature, the causal mask and one weight of W_Q or
// W_K; the pattern softmax(x W_Q (x W_K)^T / sqrt(d_head) / temperature) is recomputed here, in the
// browser (math.js, views.js), so the widget also works in a static page with no kernel. The grid
// shows the raw scores q·k, the scaled scores or the weights (show); "reset" restores initial.
// Traits read: tokens, x, w_q, w_k, temperature, causal, query, edit_matrix, edit_row, edit_col,
// dim_labels, show, initial.
// Traits written back: those controls, plus weights (T, T) and scores (T, T).

function renderAttentionExplorer({ model, el }) {
  const root = widgetRoot(el, "attention-explorer", "Attention explorer");
  const get = (n) => model.get(n);

  const commit = (changes) => {
    for (const [k, v] of Object.entries(changes)) model.set(k, v);
    const st = explorerState(get("x"), get("w_q"), get("w_k"), {
      causal: get("causal"),
      temperature: get("temperature"),
    });
    model.set("weights", st.weights);
    model.set("scores", st.scores);
    trySave(model);
  };

  // ---- controls
  const tokens = () => get("tokens");
  const querySel = select({
    label: "query token",
    options: tokens().map((t, i) => [i, `${i}: ${t}`]),
    value: get("query"),
    onchange: (v) => commit({ query: Number(v) }),
    cls: "attnlib-query",
  });
  const temp = slider({
    label: "temperature",
    min: -2,
    max: 2,
    step: 0.01,
    value: Math.log10(get("temperature")),
    oninput: (v) => commit({ temperature: Number((10 ** v).toPrecision(4)) }),
    cls: "attnlib-temperature",
  });
  const causal = checkbox({
    label: "causal mask (a token sees only itself and earlier tokens)",
    checked: get("causal"),
    onchange: (v) => commit({ causal: v }),
    cls: "attnlib-causal",
  });
  const showSel = select({
    label: "grid shows",
    options: [
      ["raw", "raw scores q·k"],
      ["scaled", "scaled scores q·k / √d_head"],
      ["weights", "weights (softmax)"],
    ],
    value: get("show"),
    onchange: (v) => commit({ show: v }),
    cls: "attnlib-show",
  });
  const reset = h("button", {
    type: "button",
    class: "attnlib-button attnlib-reset",
    text: "reset",
    title: "restore the weights and the controls the explorer started with",
    onclick: () => commit({ ...get("initial") }),
  });

  const dModel = () => get("w_q").length;
  const dHead = () => (get("w_q")[0] || []).length;
  const range = (n) => Array.from({ length: n }, (_, i) => [i, String(i)]);
  const dimNames = () => {
    const d = get("dim_labels") || [];
    return Array.from({ length: dModel() }, (_, i) => [i, d[i] !== undefined && d[i] !== String(i) ? `${i}: ${d[i]}` : String(i)]);
  };
  const matSel = select({
    label: "matrix",
    options: [
      ["w_q", "W_Q (queries)"],
      ["w_k", "W_K (keys)"],
    ],
    value: get("edit_matrix"),
    onchange: (v) => commit({ edit_matrix: v }),
    cls: "attnlib-edit-matrix",
  });
  const rowSel = select({
    label: "row (embedding dim)",
    options: dimNames(),
    value: get("edit_row"),
    onchange: (v) => commit({ edit_row: Number(v) }),
    cls: "attnlib-edit-row",
  });
  const colSel = select({
    label: "column",
    options: range(dHead()),
    value: get("edit_col"),
    onchange: (v) => commit({ edit_col: Number(v) }),
    cls: "attnlib-edit-col",
  });
  const lim = () => {
    let m = 1;
    for (const M of [get("w_q"), get("w_k")]) for (const r of M) for (const x of r) m = Math.max(m, Math.abs(x));
    return Math.ceil(2 * m);
  };
  let L = lim(); // fixed while dragging; grows only if a value leaves the range
  const entry = slider({
    label: "value",
    min: -L,
    max: L,
    step: 0.01,
    value: 0,
    oninput: (v) => {
      const name = get("edit_matrix");
      const M = copyMatrix(get(name));
      M[get("edit_row")][get("edit_col")] = v;
      commit({ [name]: M });
    },
    cls: "attnlib-edit-value",
  });

  // the matrix being edited, folded away by default when it is tall; stays open/closed across redraws
  const matSummary = h("summary");
  const matBody = h("div");
  const matDetails = h("details", { class: "attnlib-matrix-details", open: dModel() <= 8 }, [matSummary, matBody]);
  root.append(
    h("div", { class: "attnlib-controls" }, [querySel.root, temp.root, causal.root]),
    h("div", { class: "attnlib-controls" }, [showSel.root, reset]),
    h("fieldset", { class: "attnlib-controls attnlib-editor" }, [
      h("legend", { text: "edit one weight" }),
      matSel.root,
      rowSel.root,
      colSel.root,
      entry.root,
      matDetails,
    ]),
  );
  const formula = h("div", { class: "attnlib-formula" });
  const leftPane = h("div");
  const sidePane = h("div", { class: "attnlib-side" });
  root.append(formula, h("div", { class: "attnlib-panes" }, [leftPane, sidePane]));

  // ---- drawing
  const draw = () => {
    const toks = tokens();
    const T = toks.length;
    const q = Math.min(Math.max(0, get("query")), T - 1);
    const t = get("temperature");
    const isCausal = get("causal");
    const show = get("show");
    const st = explorerState(get("x"), get("w_q"), get("w_k"), { causal: isCausal, temperature: t });
    const grid = explorerGrid(get("x"), get("w_q"), get("w_k"), { show, causal: isCausal, temperature: t });
    const blocked = isCausal ? causalMask(T, T).map((r) => r.map((b) => !b)) : null;

    setOptions(querySel.select, toks.map((tk, i) => [i, `${i}: ${tk}`]));
    setOptions(rowSel.select, dimNames());
    setOptions(colSel.select, range(dHead()));
    querySel.select.value = String(q);
    temp.input.value = String(Math.log10(t));
    temp.out.textContent = fmtSig(t);
    causal.input.checked = isCausal;
    showSel.select.value = show;
    const name = get("edit_matrix");
    const r = get("edit_row");
    const c = get("edit_col");
    matSel.select.value = name;
    rowSel.select.value = String(r);
    colSel.select.value = String(c);
    const val = (get(name)[r] || [])[c] ?? 0;
    if (Math.abs(val) > L) L = Math.ceil(Math.abs(val));
    entry.input.min = String(-L);
    entry.input.max = String(L);
    entry.input.value = String(val);
    entry.out.textContent = fmt(val, 2);

    const what = { raw: "raw scores q·k", scaled: `scaled scores q·k / √${dHead()}`, weights: "weights" }[show];
    formula.textContent =
      `weights = softmax(q·k / √d_head / temperature), d_head = ${dHead()}, temperature = ${fmtSig(t)}` +
      (isCausal ? ", causal" : "") + `; the grid shows the ${what}`;

    const heat = heatmap(grid.values, {
      rowLabels: toks,
      colLabels: toks,
      masked: blocked,
      highlightRow: q,
      vmin: grid.vmin,
      vmax: grid.vmax,
      caption: `${what}: rows = query, columns = key`,
      onRowClick: (i) => commit({ query: i }),
    });
    const items = toks.map((tok, j) => ({
      label: tok,
      value: st.weights[q][j],
      note: blocked && blocked[q][j] ? "masked" : show === "raw" ? `q·k ${fmt(grid.raw[q][j], 2)}` : `score ${fmt(st.scores[q][j], 2)}`,
    }));
    leftPane.replaceChildren(heat, weightLegend({ vmin: grid.vmin, vmax: grid.vmax, masked: isCausal || show === "weights" }));
    sidePane.replaceChildren(
      h("div", { class: "attnlib-subtitle", text: `query “${toks[q]}” attends to:` }),
      bars(items, { decimals: 3 }),
    );
    const M = get(name);
    let hi = 0;
    for (const row of M) for (const x of row) hi = Math.max(hi, Math.abs(x));
    const title = name === "w_q" ? "W_Q" : "W_K";
    matSummary.textContent = `${title} (d_model × d_head = ${dModel()} × ${dHead()}): click a cell to pick it`;
    matBody.replaceChildren(heatmapMatrix(M, r, c, hi, dimNames().map((x) => x[1]), (i, j) => commit({ edit_row: i, edit_col: j })));
  };

  draw();
  return listen(model, ["tokens", "x", "w_q", "w_k", "temperature", "causal", "query", "edit_matrix", "edit_row", "edit_col", "dim_labels", "show"], draw);
}

/** The weight matrix being edited, as a small signed table with the chosen entry outlined. */
function heatmapMatrix(M, r, c, hi, rowNames, onPick) {
  const table = h("table", { class: "attnlib-matrix" });
  const head = h("tr", {}, [h("th", { text: "" })]);
  (M[0] || []).forEach((_, j) => head.append(h("th", { text: String(j) })));
  table.append(h("thead", {}, [head]));
  const body = h("tbody");
  M.forEach((row, i) => {
    const tr = h("tr", {}, [h("th", { text: rowNames[i] ?? String(i) })]);
    row.forEach((x, j) => {
      const td = h("td", {
        text: fmt(x, 2),
        class: "attnlib-clickable" + (i === r && j === c ? " attnlib-picked" : ""),
        title: `row ${rowNames[i] ?? i}, column ${j}: click to edit`,
        onclick: () => onPick(i, j),
      });
      td.style.background = signedColor(x, hi);
      tr.append(td);
    });
    body.append(tr);
  });
  table.append(body);
  return h("div", { class: "attnlib-matrix-wrap" }, [table]);
}

export default { render: renderAttentionExplorer };
