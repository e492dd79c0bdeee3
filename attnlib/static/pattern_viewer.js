// PatternViewer: a dropdown picks one of several attention patterns (a head, a layer, ...) and shows
// it as a heatmap with its numbers. Pure display: no math beyond row sums, so it works anywhere.
// Traits read: names, patterns (n, T_q, T_k), q_tokens, k_tokens, selected, decimals, title, caption,
// vmin, vmax, row_name, col_name.
// Traits written back: selected.

function renderPatternViewer({ model, el }) {
  const root = widgetRoot(el, "pattern-viewer", model.get("title"));
  const get = (n) => model.get(n);
  const names = () => get("names");

  const pick = select({
    label: "pattern",
    options: names().map((n) => [n, n]),
    value: get("selected"),
    onchange: (v) => {
      model.set("selected", v);
      trySave(model);
    },
    cls: "attnlib-pattern-select",
  });
  const step = (d) => {
    const ns = names();
    const i = Math.max(0, ns.indexOf(get("selected")));
    model.set("selected", ns[(i + d + ns.length) % ns.length]);
    trySave(model);
  };
  const prev = h("button", { type: "button", class: "attnlib-button", text: "◀ previous", onclick: () => step(-1) });
  const next = h("button", { type: "button", class: "attnlib-button", text: "next ▶", onclick: () => step(1) });
  const info = h("div", { class: "attnlib-stats" });
  const body = h("div", { class: "attnlib-body" });
  root.append(h("div", { class: "attnlib-controls" }, [pick.root, prev, next]), body, info);

  const draw = () => {
    const ns = names();
    setOptions(pick.select, ns.map((n) => [n, n]));
    const i = Math.max(0, ns.indexOf(get("selected")));
    pick.select.value = ns[i];
    const P = get("patterns")[i];
    const qt = get("q_tokens");
    const kt = get("k_tokens");
    const scale = { vmin: get("vmin"), vmax: get("vmax") };
    body.replaceChildren(
      heatmap(P, {
        rowLabels: qt,
        colLabels: kt,
        decimals: get("decimals"),
        rowName: get("row_name"),
        colName: get("col_name"),
        caption: get("caption") || null,
        ...scale,
      }),
      weightLegend({ masked: false, ...scale }),
    );
    // where does each query look most?
    const tops = P.map((row, r) => {
      let j = 0;
      row.forEach((x, c) => {
        if (x > row[j]) j = c;
      });
      return `${qt[r]}→${kt[j]}`;
    });
    info.hidden = get("vmin") < 0; // "largest key per query" means something for weights only
    info.textContent = `“${ns[i]}” (${P.length} × ${kt.length}); largest ${get("col_name")} per ${get("row_name")}: ${tops.join(", ")}`;
  };

  draw();
  return listen(model, ["names", "patterns", "q_tokens", "k_tokens", "selected", "decimals", "vmin", "vmax", "row_name", "col_name", "caption"], draw);
}

export default { render: renderPatternViewer };
