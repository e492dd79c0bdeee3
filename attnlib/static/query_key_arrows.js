// QueryKeyArrows: the keys as fixed arrows in a 2-D query/key space and one query arrow that the
// reader rotates (angle slider) and stretches (length slider), or drags with the pointer. Every move
// recomputes here (views.js queryRow) each key's dot product with the query, the scaled score and the
// softmax weight, so the widget also works in a static page with no kernel.
// Traits read: tokens, key_vectors (T, 2), angle (degrees), length, causal, query_index (-1: none), d_head,
// max_length, axis_labels, query_label, title, initial ({angle, length, causal}: what reset restores).
// Traits written back: angle, length, causal, and the results query (2,), dots, scores, weights (T,).

function renderQueryKeyArrows({ model, el }) {
  const get = (n) => model.get(n);
  const root = widgetRoot(el, "query-key-arrows", get("title"));
  const rowOf = () => {
    const qi = get("query_index");
    const q = polar(get("angle"), get("length"));
    return { q, ...queryRow(get("key_vectors"), q, { dHead: get("d_head"), causal: get("causal"), queryIndex: qi < 0 ? null : qi }) };
  };

  const commit = (changes) => {
    for (const [k, v] of Object.entries(changes)) model.set(k, v);
    const r = rowOf();
    model.set("query", r.q);
    model.set("dots", r.dots);
    model.set("scores", r.scores);
    model.set("weights", r.weights);
    trySave(model);
  };

  const angle = slider({
    label: "angle (degrees)",
    min: -180,
    max: 180,
    step: 1,
    value: get("angle"),
    oninput: (v) => commit({ angle: v }),
    cls: "attnlib-angle",
  });
  const length = slider({
    label: "length",
    min: 0,
    max: get("max_length"),
    step: 0.01,
    value: get("length"),
    oninput: (v) => commit({ length: v }),
    cls: "attnlib-length",
  });
  const causal = checkbox({
    label: "causal mask (the query sees only its own and earlier keys)",
    checked: get("causal"),
    onchange: (v) => commit({ causal: v }),
    cls: "attnlib-causal",
  });
  const reset = h("button", {
    type: "button",
    class: "attnlib-button attnlib-reset",
    text: "reset",
    onclick: () => commit({ ...get("initial") }),
  });
  const svg = svgEl("svg", { class: "attnlib-svg", role: "img" });
  const table = h("div", { class: "attnlib-arrows-table" });
  const summary = h("div", { class: "attnlib-stats" });
  root.append(
    h("div", { class: "attnlib-controls" }, [angle.root, length.root]),
    h("div", { class: "attnlib-controls" }, [get("query_index") >= 0 ? causal.root : null, reset]),
    h("div", { class: "attnlib-panes" }, [svg, table]),
    summary,
  );

  // the picture: a square around the origin that holds the longest query the slider allows
  const S = 400;
  const pad = 12;
  const scale = () => (S / 2 - pad) / Math.max(get("max_length"), 1e-9);
  const X = (x) => S / 2 + x * scale();
  const Y = (y) => S / 2 - y * scale();

  // dragging (or clicking) in the picture points the query at the pointer
  const pointAt = (e) => {
    const box = svg.getBoundingClientRect();
    const px = ((e.clientX - box.left) * S) / box.width - S / 2;
    const py = S / 2 - ((e.clientY - box.top) * S) / box.height;
    const len = Math.min(Math.hypot(px, py) / scale(), get("max_length"));
    commit({ angle: Math.round((Math.atan2(py, px) * 180) / Math.PI), length: Number(len.toFixed(2)) });
  };
  svg.addEventListener("pointerdown", (e) => pointAt(e));
  svg.addEventListener("pointermove", (e) => e.buttons && pointAt(e));

  const draw = () => {
    const toks = get("tokens");
    const K = get("key_vectors");
    const r = rowOf();
    const d = get("d_head");
    const [xName, yName] = get("axis_labels");
    angle.input.value = String(get("angle"));
    angle.out.textContent = `${fmt(get("angle"), 0)}°`;
    length.input.max = String(get("max_length"));
    length.input.value = String(get("length"));
    length.out.textContent = fmt(get("length"), 2);
    causal.input.checked = get("causal");

    svg.setAttribute("viewBox", `0 0 ${S} ${S}`);
    svg.setAttribute("width", S);
    svg.setAttribute("height", S);
    const axisNames = [
      { x: S - 4, y: Y(0) + 15, anchor: "end", text: `${xName} →` },
      { x: X(0) + 5, y: 12, anchor: "start", text: `↑ ${yName}` },
    ];
    const parts = [
      svgEl("title", { text: `keys (blue) and the ${get("query_label")} (red) in the plane of ${xName} and ${yName}` }),
      arrowMarkers(),
      svgEl("line", { class: "attnlib-grid", x1: 0, x2: S, y1: Y(0), y2: Y(0) }),
      svgEl("line", { class: "attnlib-grid", x1: X(0), x2: X(0), y1: 0, y2: S }),
      ...axisNames.map((a) => svgEl("text", { x: a.x, y: a.y, "text-anchor": a.anchor, class: "attnlib-axis-name", text: a.text })),
    ];
    const best = r.weights.indexOf(Math.max(...r.weights));
    K.forEach((kj, j) => {
      parts.push(svgEl("line", {
        x1: X(0), y1: Y(0), x2: X(kj[0]), y2: Y(kj[1]),
        class: "attnlib-key" + (r.visible[j] ? "" : " attnlib-key-masked"),
        "stroke-width": (1 + 4 * r.weights[j]).toFixed(2),
        "marker-end": "url(#attnlib-qk-key)",
      }));
    });
    parts.push(svgEl("line", {
      x1: X(0), y1: Y(0), x2: X(r.q[0]), y2: Y(r.q[1]), class: "attnlib-query-arrow", "marker-end": "url(#attnlib-qk-query)",
    }));
    // labels just beyond each tip, the query's first, none on top of another or of the axis names
    const tips = [[r.q, get("query_label"), true], ...K.map((kj, j) => [kj, toks[j], false])];
    const beyond = (p) => {
      const n = Math.hypot(p[0], p[1]) || 1;
      return { x: X(p[0]) + (6 * p[0]) / n, y: Y(p[1]) - (6 * p[1]) / n };
    };
    const spots = placeLabels(
      // the query's label above its shaft, ending at the tip; a key's label on its outer side
      tips.map(([p, text, isQuery], i) => (i === 0
        ? { x: X(p[0]), y: Y(p[1]) - 9, text, side: p[0] < 0 ? 1 : -1 }
        : { ...beyond(p), text, side: p[0] < 0 ? -1 : 1 })),
      { width: S, height: S, gap: 3, avoid: axisNames.map(textBox) },
    );
    spots.forEach((s, i) => {
      const [, text, isQuery] = tips[i];
      const cls = isQuery ? "attnlib-query-label" : "attnlib-key-label" + (r.visible[i - 1] ? "" : " attnlib-key-masked");
      parts.push(svgEl("text", { x: s.x, y: s.y, "text-anchor": s.anchor, class: cls, text }));
    });
    svg.replaceChildren(...parts);

    const rows = toks.map((t, j) => {
      const fill = h("span", { class: "attnlib-bar-fill" });
      fill.style.width = `${(100 * r.weights[j]).toFixed(1)}%`;
      return h("tr", { class: (j === best ? "attnlib-selected" : "") + (r.visible[j] ? "" : " attnlib-masked-row") }, [
        h("th", { scope: "row", text: t }),
        h("td", { text: fmt(r.dots[j], 2) }),
        h("td", { text: fmt(r.scores[j], 2) }),
        h("td", { class: "attnlib-bar-cell" }, r.visible[j]
          ? [h("span", { class: "attnlib-bar-track" }, [fill]), h("span", { class: "attnlib-bar-value", text: fmt(r.weights[j], 2) })]
          : [h("span", { class: "attnlib-bar-note", text: "masked (after the query)" })]),
      ]);
    });
    table.replaceChildren(
      h("table", { class: "attnlib-table" }, [
        h("caption", { text: `one row per key; the weights are the softmax of the column q·k / √${d}` }),
        h("thead", {}, [h("tr", {}, ["key", "q·k", `q·k / √${d}`, "weight"].map((x) => h("th", { scope: "col", text: x })))]),
        h("tbody", {}, rows),
      ]),
    );
    summary.textContent =
      `${get("query_label")} = (${fmt(r.q[0])}, ${fmt(r.q[1])}); largest weight: ${toks[best]} ` +
      `(${fmt(r.weights[best], 2)})`;
  };

  draw();
  return listen(model, ["tokens", "key_vectors", "angle", "length", "causal", "query_index", "d_head", "max_length", "axis_labels", "query_label"], draw);
}

/** The box of an SVG text {x, y, anchor, text} at 11 px, for placeLabels' avoid. */
function textBox(a) {
  const w = 6.2 * a.text.length;
  const x0 = a.anchor === "end" ? a.x - w : a.x;
  return { x0, x1: x0 + w, y0: a.y - 10, y1: a.y + 3 };
}

/** Arrow heads for the keys and the query. */
function arrowMarkers() {
  const defs = svgEl("defs");
  for (const [id, cls] of [["attnlib-qk-key", "attnlib-key-head"], ["attnlib-qk-query", "attnlib-query-head"]]) {
    defs.append(svgEl("marker", { id, viewBox: "0 0 10 10", refX: 9, refY: 5, markerWidth: 9, markerHeight: 9, orient: "auto-start-reverse", markerUnits: "userSpaceOnUse" }, [
      svgEl("path", { d: "M 0 0 L 10 5 L 0 10 z", class: cls }),
    ]));
  }
  return defs;
}

export default { render: renderQueryKeyArrows };
