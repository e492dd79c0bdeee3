// CostExplorer: how big the attention patterns get as the context grows (n^2 entries per head).
// A slider picks the context length among `context_lens`; the numbers come from math.js.
// Traits read: context_lens, context_len, n_heads, n_layers, bytes_per_entry, label.
// Traits written back: context_len, entries (n^2, one head, one layer), memory_bytes (all heads
// and layers, one sequence).

function renderCostExplorer({ model, el }) {
  const root = widgetRoot(el, "cost-explorer", "The cost of a long context");
  const get = (n) => model.get(n);
  const lens = () => get("context_lens");
  const idx = () => Math.max(0, lens().indexOf(get("context_len")));

  const commit = (n) => {
    model.set("context_len", n);
    const c = patternCost(n, get("n_heads"), get("n_layers"), get("bytes_per_entry"));
    model.set("entries", c.perHead);
    model.set("memory_bytes", c.bytesTotal);
    trySave(model);
  };
  const ctx = slider({
    label: "context length",
    min: 0,
    max: lens().length - 1,
    step: 1,
    value: idx(),
    oninput: (i) => commit(lens()[i]),
    cls: "attnlib-context",
  });
  const header = h("div", { class: "attnlib-formula" });
  const facts = h("div", { class: "attnlib-facts" });
  const table = h("div");
  root.append(h("div", { class: "attnlib-controls" }, [ctx.root]), header, facts, table);

  const draw = () => {
    const L = lens();
    const i = idx();
    const n = L[i];
    const H = get("n_heads");
    const Ly = get("n_layers");
    const b = get("bytes_per_entry");
    const c = patternCost(n, H, Ly, b);
    ctx.input.max = String(L.length - 1);
    ctx.input.value = String(i);
    ctx.out.textContent = formatInt(n);
    const label = get("label");
    header.textContent =
      `${label ? label + ": " : ""}${H} heads × ${Ly} layers, ${b} bytes per entry; ` +
      `one pattern = context² entries`;
    const prev = i > 0 ? L[i - 1] : null;
    facts.replaceChildren(
      h("div", { class: "attnlib-big" }, [
        h("span", { text: "entries in one pattern (one head, one layer): " }),
        h("strong", { class: "attnlib-entries", text: `${formatInt(n)}² = ${formatInt(c.perHead)}` }),
      ]),
      h("div", {}, `all ${H} heads of one layer: ${formatInt(c.perLayer)} entries = ${formatBytes(c.bytesPerLayer)}`),
      h("div", {}, [
        h("span", { text: `all ${Ly} layers: ${formatInt(c.total)} entries = ` }),
        h("strong", { class: "attnlib-memory", text: formatBytes(c.bytesTotal) }),
        h("span", { text: " for one sequence, if every pattern were stored at once" }),
      ]),
      prev
        ? h("div", { class: "attnlib-hint" }, `from ${formatInt(prev)} to ${formatInt(n)} tokens: ${fmtSig(n / prev)}× the context, ${fmtSig((n * n) / (prev * prev))}× the entries`)
        : null,
    );
    const maxE = L[L.length - 1] ** 2;
    const rows = L.map((m, j) => {
      const cj = patternCost(m, H, Ly, b);
      const fill = h("span", { class: "attnlib-bar-fill" });
      fill.style.width = `${((100 * m * m) / maxE).toFixed(3)}%`;
      return h("tr", { class: j === i ? "attnlib-selected" : "" }, [
        h("td", { text: formatInt(m) }),
        h("td", { text: formatInt(cj.perHead) }),
        h("td", { text: formatBytes(cj.bytesPerLayer) }),
        h("td", { text: formatBytes(cj.bytesTotal) }),
        h("td", { class: "attnlib-bar-cell" }, [h("span", { class: "attnlib-bar-track" }, [fill])]),
      ]);
    });
    table.replaceChildren(
      h("table", { class: "attnlib-table" }, [
        h("thead", {}, [
          h("tr", {}, ["context", "entries per pattern", "one layer", "all layers", "entries (linear scale)"].map((x) => h("th", { text: x }))),
        ]),
        h("tbody", {}, rows),
      ]),
    );
  };

  draw();
  return listen(model, ["context_lens", "context_len", "n_heads", "n_layers", "bytes_per_entry", "label"], draw);
}

export default { render: renderCostExplorer };
