// ValueUpdateExplorer: the query's weights on the keys (sliders, renormalised to sum to 1) weight the
// changes the keys propose (each key's value times W_O); their sum, added to the query's embedding
// (the residual), is the update. 2-D embeddings and proposed changes (the trait `values`), drawn in an SVG with named axes. With the causal mask on, the keys
// after the query get weight 0 and no slider. The math runs here (math.js, views.js).
// Traits read: tokens, points (T, 2), values (T, 2), query, weights (T,), causal, axis_labels.
// Traits written back: query, causal, weights (normalised), delta (2,), updated (2,).

function renderValueUpdateExplorer({ model, el }) {
  const root = widgetRoot(el, "value-update-explorer", "Proposed changes: their weighted sum moves the query");
  const get = (n) => model.get(n);
  let raw = get("weights").slice(); // slider positions; weights = raw / sum(raw)
  let own = false; // true while this view writes weights, so it does not reset its own sliders

  const commit = (changes) => {
    own = true;
    for (const [k, v] of Object.entries(changes)) model.set(k, v);
    const w = valueWeights(raw, get("query"), get("causal"));
    const r = valueUpdate(get("points"), get("values"), get("query"), w);
    model.set("weights", w);
    model.set("delta", r.delta);
    model.set("updated", r.updated);
    own = false;
    trySave(model);
  };

  const toks = () => get("tokens");
  const querySel = select({
    label: "query token",
    options: toks().map((t, i) => [i, `${i}: ${t}`]),
    value: get("query"),
    onchange: (v) => commit({ query: Number(v) }),
    cls: "attnlib-query",
  });
  const uniform = h("button", {
    type: "button",
    class: "attnlib-button",
    text: "uniform weights",
    onclick: () => {
      raw = toks().map(() => 1);
      commit({});
    },
  });
  const causal = checkbox({
    label: "causal mask (a token takes only from itself and earlier tokens)",
    checked: get("causal"),
    onchange: (v) => commit({ causal: v }),
    cls: "attnlib-causal",
  });
  const subtitle = h("div", { class: "attnlib-subtitle" });
  const sliders = h("div", { class: "attnlib-weight-sliders" });
  const table = h("div");
  const figure = h("div", { class: "attnlib-figure" });
  const summary = h("div", { class: "attnlib-stats" });
  root.append(
    h("div", { class: "attnlib-controls" }, [querySel.root, uniform, causal.root]),
    h("div", { class: "attnlib-panes" }, [h("div", {}, [subtitle, sliders, table]), figure]),
    summary,
  );

  let sliderEls = [];
  const buildSliders = () => {
    sliderEls = toks().map((t, j) =>
      slider({
        label: t,
        min: 0,
        max: 1,
        step: 0.01,
        value: raw[j] ?? 0,
        oninput: (v) => {
          raw[j] = v;
          commit({});
        },
        cls: `attnlib-weight attnlib-weight-${j}`,
      }),
    );
  };
  buildSliders();

  const draw = () => {
    const T = toks().length;
    if (!own) raw = get("weights").slice();
    if (sliderEls.length !== T) buildSliders();
    setOptions(querySel.select, toks().map((t, i) => [i, `${i}: ${t}`]));
    const q = Math.min(Math.max(0, get("query")), T - 1);
    querySel.select.value = String(q);
    const isCausal = get("causal");
    const w = valueWeights(raw, q, isCausal);
    const P = get("points");
    const V = get("values");
    const [xName, yName] = get("axis_labels");
    const r = valueUpdate(P, V, q, w);
    causal.input.checked = isCausal;
    subtitle.textContent = `weight of “${toks()[q]}” on each key (renormalised to sum to 1)`;
    // a slider per key the query may see; the masked keys (after the query) get none
    sliders.replaceChildren(...sliderEls.map((s, j) => {
      if (isCausal && j > q) {
        return h("div", { class: "attnlib-control attnlib-masked-key" }, [
          h("span", { class: "attnlib-label", text: toks()[j] }),
          h("span", { class: "attnlib-hint", text: `masked: comes after “${toks()[q]}”` }),
        ]);
      }
      s.input.value = String(raw[j]);
      s.out.textContent = fmt(w[j], 2);
      return s.root;
    }));
    const rows = toks().map((t, j) =>
      h("tr", { class: j === q ? "attnlib-selected" : "" }, [
        h("th", { scope: "row", text: t }),
        h("td", { text: isCausal && j > q ? "masked" : fmt(w[j], 2) }),
        h("td", { text: `(${fmt(V[j][0])}, ${fmt(V[j][1])})` }),
        h("td", { text: `(${fmt(w[j] * V[j][0])}, ${fmt(w[j] * V[j][1])})` }),
      ]),
    );
    table.replaceChildren(
      h("table", { class: "attnlib-table" }, [
        h("caption", { text: `one row per key; vectors are (${xName}, ${yName})` }),
        h("thead", {}, [h("tr", {}, ["key", "weight w", "proposed change c", "w × c"].map((x) => h("th", { scope: "col", text: x })))]),
        h("tbody", {}, rows),
      ]),
    );
    figure.replaceChildren(valueSvg(toks(), P, V, q, w, r, [xName, yName]));
    summary.textContent =
      `query “${toks()[q]}” at (${fmt(P[q][0])}, ${fmt(P[q][1])}) + change Σ w × c ` +
      `(${fmt(r.delta[0])}, ${fmt(r.delta[1])}) = updated (${fmt(r.updated[0])}, ${fmt(r.updated[1])})`;
  };

  draw();
  return listen(model, ["tokens", "points", "values", "query", "weights", "causal", "axis_labels"], draw);
}

/**
 * The 2-D picture: embeddings as dots, the weighted proposed changes chained tip to tail from the query, the
 * update; the axes carry the names of the two coordinates, and a crowd of nearby dots one label.
 */
function valueSvg(tokens, P, V, q, w, r, [xName, yName]) {
  const W = 420;
  const H = 320;
  const pad = 34;
  const chain = [P[q]];
  w.forEach((wj, j) => {
    const last = chain[chain.length - 1];
    chain.push([last[0] + wj * V[j][0], last[1] + wj * V[j][1]]);
  });
  const all = [...P, ...chain, [0, 0]];
  let [x0, x1, y0, y1] = [Infinity, -Infinity, Infinity, -Infinity];
  for (const [x, y] of all) {
    x0 = Math.min(x0, x);
    x1 = Math.max(x1, x);
    y0 = Math.min(y0, y);
    y1 = Math.max(y1, y);
  }
  const padR = pad + 80; // room for the labels right of the dots
  const k = Math.min((W - pad - padR) / Math.max(x1 - x0, 1e-9), (H - 2 * pad) / Math.max(y1 - y0, 1e-9));
  const cx = (x0 + x1) / 2;
  const cy = (y0 + y1) / 2;
  const X = (x) => pad + (W - pad - padR) / 2 + (x - cx) * k;
  const Y = (y) => H / 2 - (y - cy) * k;

  const svg = svgEl("svg", { class: "attnlib-svg", viewBox: `0 0 ${W} ${H}`, width: W, height: H, role: "img" });
  svg.append(svgEl("title", { text: "embeddings (dots), weighted proposed changes chained from the query, and the updated query" }));
  const defs = svgEl("defs");
  for (const [id, color] of [
    ["attnlib-arrow-delta", "rgb(230, 120, 0)"],
    ["attnlib-arrow-part", "rgba(33, 102, 172, 0.8)"],
  ]) {
    defs.append(
      svgEl("marker", { id, viewBox: "0 0 10 10", refX: 9, refY: 5, markerWidth: 7, markerHeight: 7, orient: "auto-start-reverse" }, [
        svgEl("path", { d: "M 0 0 L 10 5 L 0 10 z", fill: color }),
      ]),
    );
  }
  svg.append(defs);
  svg.append(svgEl("line", { class: "attnlib-grid", x1: 0, x2: W, y1: Y(0), y2: Y(0) }));
  svg.append(svgEl("line", { class: "attnlib-grid", x1: X(0), x2: X(0), y1: 0, y2: H }));
  // weighted proposed changes, tip to tail, starting at the query's embedding
  const parts = []; // their labels, placed with the others below
  w.forEach((wj, j) => {
    const a = chain[j];
    const b = chain[j + 1];
    const len = Math.hypot(b[0] - a[0], b[1] - a[1]) * k;
    if (len < 2) return;
    svg.append(
      svgEl("line", {
        x1: X(a[0]), y1: Y(a[1]), x2: X(b[0]), y2: Y(b[1]),
        stroke: "rgba(33, 102, 172, 0.8)", "stroke-width": 1.5, "stroke-dasharray": "4 3",
        "marker-end": "url(#attnlib-arrow-part)",
      }),
    );
    if (len > 40) parts.push({ x: (X(a[0]) + X(b[0])) / 2, y: (Y(a[1]) + Y(b[1])) / 2, text: `${fmt(wj)}·c(${tokens[j]})`, small: true });
  });
  // the total change (proposed by attention), from the query to its updated position
  svg.append(
    svgEl("line", {
      x1: X(P[q][0]), y1: Y(P[q][1]), x2: X(r.updated[0]), y2: Y(r.updated[1]),
      stroke: "rgb(230, 120, 0)", "stroke-width": 2.5, "marker-end": "url(#attnlib-arrow-delta)",
    }),
  );
  P.forEach((p, j) => {
    const isQ = j === q;
    svg.append(svgEl("circle", { cx: X(p[0]), cy: Y(p[1]), r: isQ ? 6 : 4.5, fill: isQ ? "rgb(230, 120, 0)" : "rgba(128, 128, 128, 0.8)" }));
  });
  svg.append(svgEl("circle", { cx: X(r.updated[0]), cy: Y(r.updated[1]), r: 6, fill: "none", stroke: "rgb(230, 120, 0)", "stroke-width": 2.5 }));
  // the axes' names, then the labels: the query's, the update's, one per crowd of the other dots
  const axisNames = [
    { x: W - 4, y: Y(0) - 5, anchor: "end", text: `${xName} →` },
    { x: X(0) + 5, y: 12, anchor: "start", text: `↑ ${yName}` },
  ];
  const others = P.map((_, j) => j).filter((j) => j !== q);
  const groups = crowds(others.map((j) => [X(P[j][0]), Y(P[j][1])])).map((g) => g.map((i) => others[i]));
  const items = [
    { x: X(P[q][0]), y: Y(P[q][1]), text: tokens[q], bold: true },
    { x: X(r.updated[0]), y: Y(r.updated[1]), text: `${tokens[q]} (updated)`, bold: true },
    ...groups.map((g) => ({ x: X(P[g[0]][0]), y: Y(P[g[0]][1]), text: g.map((j) => tokens[j]).join(", ") })),
    ...parts,
  ];
  const avoid = axisNames.map((a) => ({ x0: a.anchor === "end" ? a.x - 6.5 * a.text.length : a.x, x1: a.anchor === "end" ? a.x : a.x + 6.5 * a.text.length, y0: a.y - 11, y1: a.y + 3 }));
  const spots = placeLabels(items, { width: W, height: H, avoid });
  for (const a of axisNames) svg.append(svgEl("text", { x: a.x, y: a.y, "text-anchor": a.anchor, "font-size": 11, opacity: 0.75, text: a.text }));
  spots.forEach((s, i) => {
    const it = items[i];
    const style = it.small ? { "font-size": 10, opacity: 0.8 } : { "font-weight": it.bold ? 700 : 400 };
    svg.append(svgEl("text", { x: s.x, y: s.y, "text-anchor": s.anchor, ...style, text: it.text }));
  });
  return svg;
}

export default { render: renderValueUpdateExplorer };
