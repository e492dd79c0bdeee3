// attnlib widget UI helpers: plain DOM, no libraries. Concatenated after math.js and before each
// widget's own module by attnlib/widgets.py (so these names are module-level in every widget).

/** Create an element: h("div", {class: "x", text: "hi"}, [children]). */
function h(tag, attrs = {}, children = []) {
  const el = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs)) {
    if (v === null || v === undefined || v === false) continue;
    if (k === "text") el.textContent = v;
    else if (k === "class") el.className = v;
    else if (k === "style") el.style.cssText = v;
    else if (k.startsWith("on")) el.addEventListener(k.slice(2), v);
    else el.setAttribute(k, v === true ? "" : v);
  }
  for (const c of [].concat(children)) {
    if (c === null || c === undefined) continue;
    el.append(c instanceof Node ? c : document.createTextNode(String(c)));
  }
  return el;
}

const SVG_NS = "http://www.w3.org/2000/svg";

/** Create an SVG element with attributes. */
function svgEl(tag, attrs = {}, children = []) {
  const el = document.createElementNS(SVG_NS, tag);
  for (const [k, v] of Object.entries(attrs)) {
    if (k === "text") el.textContent = v;
    else el.setAttribute(k, String(v));
  }
  for (const c of [].concat(children)) if (c) el.append(c);
  return el;
}

/** Format a number with a fixed number of decimals; -0 shows as 0; -Infinity as "-inf". */
function fmt(x, decimals = 2) {
  if (x === -Infinity) return "-inf";
  if (x === Infinity) return "inf";
  if (!Number.isFinite(x)) return "nan";
  const r = x.toFixed(decimals);
  return Number(r) === 0 ? (0).toFixed(decimals) : r;
}

/** A colour-scale limit for a legend: at most 3 significant digits (1.0000001192092896 shows as 1). */
function fmtTick(x) {
  const r = Number(Number(x).toPrecision(3));
  return Object.is(r, -0) ? "0" : String(r).replace("-", "\u2212");
}

/** A temperature (or any positive number) for display: 3 significant digits. */
function fmtSig(x) {
  if (x >= 100) return x.toFixed(0);
  if (x >= 10) return x.toFixed(1);
  if (x >= 1) return x.toFixed(2);
  return x.toPrecision(2);
}

/** Background for a weight in [0, 1] (values outside are clipped): blue with alpha = weight. */
function weightColor(w) {
  const a = Math.max(0, Math.min(1, w));
  return `rgba(33, 102, 172, ${a.toFixed(3)})`;
}

/** Background for a signed number scaled by `hi` (diverging like attnlib.viz: blue negative, red positive). */
function signedColor(x, hi) {
  const a = Math.max(0, Math.min(1, Math.abs(x) / (hi || 1)));
  return x >= 0 ? `rgba(202, 0, 32, ${(0.85 * a).toFixed(3)})` : `rgba(33, 102, 172, ${(0.85 * a).toFixed(3)})`;
}

/** Send the model's pending changes to the kernel; harmless (and silent) in a static page with no kernel. */
function trySave(model) {
  try {
    model.save_changes();
  } catch (e) {
    // a static page has no kernel to sync with: the view keeps working from its own state
  }
}

/** Deep-copy a matrix (array of rows) so Backbone sees a new value on model.set. */
function copyMatrix(A) {
  return A.map((r) => r.slice());
}

/** A labelled native range slider. Returns {root, input, out}; `oninput(value)` is called on every move. */
function slider({ label, min, max, step, value, oninput, cls = "" }) {
  const input = h("input", { type: "range", min, max, step, class: "attnlib-slider " + cls });
  input.value = String(value);
  const out = h("output", { class: "attnlib-value" });
  const root = h("label", { class: "attnlib-control" }, [h("span", { class: "attnlib-label", text: label }), input, out]);
  input.addEventListener("input", () => oninput(Number(input.value)));
  return { root, input, out };
}

/** A labelled native <select>. options: [[value, text], ...]. */
function select({ label, options, value, onchange, cls = "" }) {
  const sel = h("select", { class: "attnlib-select " + cls });
  for (const [v, t] of options) sel.append(h("option", { value: String(v), text: t }));
  sel.value = String(value);
  sel.addEventListener("change", () => onchange(sel.value));
  const root = h("label", { class: "attnlib-control" }, [h("span", { class: "attnlib-label", text: label }), sel]);
  return { root, select: sel };
}

/** A labelled native checkbox. */
function checkbox({ label, checked, onchange, cls = "" }) {
  const input = h("input", { type: "checkbox", class: "attnlib-checkbox " + cls });
  input.checked = !!checked;
  input.addEventListener("change", () => onchange(input.checked));
  const root = h("label", { class: "attnlib-control attnlib-check" }, [input, h("span", { text: label })]);
  return { root, input };
}

/**
 * Heatmap of a pattern as an HTML table: rows = query tokens, columns = key tokens, the value
 * written in every cell. opts: {rowLabels, colLabels, masked (bool (T_q, T_k), true = blocked),
 * highlightRow, decimals, vmin = 0, vmax = 1 (colour range; vmin < 0 gives a blue/red diverging
 * scale), rowName = "query", colName = "key", caption, onRowClick(i)}.
 */
function heatmap(values, opts) {
  const {
    rowLabels,
    colLabels,
    masked = null,
    highlightRow = -1,
    decimals = 2,
    vmin = 0,
    vmax = 1,
    rowName = "query",
    colName = "key",
    caption = null,
    onRowClick = null,
  } = opts;
  const signed = vmin < 0;
  const hi = Math.max(Math.abs(vmin), Math.abs(vmax)) || 1;
  const strength = (x) => (signed ? Math.abs(x) / hi : (x - vmin) / (vmax - vmin || 1));
  const color = (x) => (signed ? signedColor(x, hi) : weightColor(strength(x)));
  const table = h("table", { class: "attnlib-heatmap" });
  const head = h("tr", {}, [h("th", { class: "attnlib-corner", title: `rows: ${rowName}; columns: ${colName}` }, [
    h("span", { class: "attnlib-axis-q", text: `${rowName} ↓` }),
    h("span", { class: "attnlib-axis-k", text: `${colName} →` }),
  ])]);
  colLabels.forEach((t, j) => head.append(h("th", { class: "attnlib-col", scope: "col", title: `${colName} ${j}: ${t}`, text: t })));
  table.append(h("thead", {}, [head]));
  const body = h("tbody");
  values.forEach((row, i) => {
    const tr = h("tr", { class: i === highlightRow ? "attnlib-selected" : "" });
    const th = h("th", { class: "attnlib-row", scope: "row", title: `${rowName} ${i}: ${rowLabels[i]}`, text: rowLabels[i] });
    if (onRowClick) {
      th.classList.add("attnlib-clickable");
      th.addEventListener("click", () => onRowClick(i));
    }
    tr.append(th);
    row.forEach((x, j) => {
      const isMasked = masked && masked[i][j];
      const td = h("td", {
        class: "attnlib-cell" + (isMasked ? " attnlib-masked" : ""),
        title: `${rowLabels[i]} → ${colLabels[j]}: ${fmt(x, 4)}${isMasked ? " (masked)" : ""}`,
        text: fmt(x, decimals),
      });
      if (!isMasked) {
        td.style.background = color(x);
        if (strength(x) > 0.6) td.classList.add("attnlib-dark");
      }
      tr.append(td);
    });
    body.append(tr);
  });
  table.append(body);
  return h("div", { class: "attnlib-heatmap-wrap" }, [
    h("div", { class: "attnlib-axis-title", text: caption ?? `attention pattern: rows = ${rowName}, columns = ${colName}` }),
    table,
  ]);
}

/** A colour legend from vmin to vmax (and the hatching of masked cells when `masked`). */
function weightLegend({ masked = true, vmin = 0, vmax = 1 } = {}) {
  const signed = vmin < 0;
  return h("div", { class: "attnlib-legend" }, [
    h("span", { text: fmtTick(vmin) }),
    h("span", { class: "attnlib-legend-bar" + (signed ? " attnlib-legend-signed" : "") }),
    h("span", { text: fmtTick(vmax) }),
    masked ? h("span", { class: "attnlib-legend-masked" }) : null,
    masked ? h("span", { text: "masked" }) : null,
  ]);
}

/**
 * Horizontal bars with labels and numbers: items [{label, value, note}], value in [0, 1].
 * Returns a <div class="attnlib-bars">.
 */
function bars(items, { decimals = 3, highlight = -1 } = {}) {
  const root = h("div", { class: "attnlib-bars" });
  items.forEach((it, i) => {
    const fill = h("span", { class: "attnlib-bar-fill" });
    fill.style.width = `${(100 * Math.max(0, Math.min(1, it.value))).toFixed(2)}%`;
    root.append(
      h("div", { class: "attnlib-bar-row" + (i === highlight ? " attnlib-selected" : "") }, [
        h("span", { class: "attnlib-bar-label", text: it.label }),
        h("span", { class: "attnlib-bar-track" }, [fill]),
        h("span", { class: "attnlib-bar-value", text: fmt(it.value, decimals) }),
        it.note !== undefined ? h("span", { class: "attnlib-bar-note", text: it.note }) : null,
      ]),
    );
  });
  return root;
}

/** Root element of a widget: class "attnlib-widget attnlib-<kind>". */
function widgetRoot(el, kind, title) {
  el.classList.add("attnlib-host");
  const root = h("div", { class: `attnlib-widget attnlib-${kind}` });
  if (title) root.append(h("div", { class: "attnlib-title", text: title }));
  el.replaceChildren(root);
  return root;
}

/** Subscribe to model changes; returns a function that unsubscribes (for render's cleanup). */
function listen(model, names, fn) {
  const events = names.map((n) => `change:${n}`);
  for (const ev of events) model.on(ev, fn);
  return () => {
    for (const ev of events) model.off(ev, fn);
  };
}

/** Replace a <select>'s options when they changed (e.g. new tokens from Python); keeps the value. */
function setOptions(sel, options) {
  const same =
    sel.options.length === options.length &&
    options.every(([v, t], i) => sel.options[i].value === String(v) && sel.options[i].text === t);
  if (same) return;
  sel.replaceChildren(...options.map(([v, t]) => h("option", { value: String(v), text: t })));
}
