// SoftmaxExplorer: a temperature slider (log scale, 0.01 to 100) over softmax(scores / temperature),
// drawn as bars with their numbers. The math runs here (math.js), so it works in a static page.
// Traits read: labels, scores, temperature. Traits written back: temperature, weights.

function renderSoftmaxExplorer({ model, el }) {
  const root = widgetRoot(el, "softmax-explorer", "Softmax explorer");
  const get = (n) => model.get(n);

  const commit = (changes) => {
    for (const [k, v] of Object.entries(changes)) model.set(k, v);
    model.set("weights", softmax(get("scores"), get("temperature")));
    trySave(model);
  };

  const temp = slider({
    label: "temperature",
    min: -2,
    max: 2,
    step: 0.01,
    value: Math.log10(get("temperature")),
    oninput: (v) => commit({ temperature: Number((10 ** v).toPrecision(4)) }),
    cls: "attnlib-temperature",
  });
  const scale = h("span", { class: "attnlib-hint", text: "log scale: 0.01 (sharp, the largest score wins) … 100 (flat, uniform)" });
  const formula = h("div", { class: "attnlib-formula" });
  const body = h("div", { class: "attnlib-body" });
  const stats = h("div", { class: "attnlib-stats" });
  root.append(h("div", { class: "attnlib-controls" }, [temp.root, scale]), formula, body, stats);

  const draw = () => {
    const labels = get("labels");
    const sc = get("scores");
    const t = get("temperature");
    const w = softmax(sc, t);
    temp.input.value = String(Math.log10(t));
    temp.out.textContent = fmtSig(t);
    formula.textContent = `weights = softmax(scores / temperature), temperature = ${fmtSig(t)}`;
    let top = 0;
    w.forEach((x, i) => {
      if (x > w[top]) top = i;
    });
    body.replaceChildren(
      bars(
        labels.map((lab, i) => ({ label: lab, value: w[i], note: `score ${fmt(sc[i], 2)} → ${fmt(sc[i] / t, 2)}` })),
        { decimals: 3, highlight: top },
      ),
    );
    let ent = 0;
    for (const x of w) if (x > 0) ent -= x * Math.log2(x);
    stats.textContent =
      `largest weight ${fmt(w[top], 3)} on “${labels[top]}”; sum ${fmt(w.reduce((a, b) => a + b, 0), 3)}; ` +
      `entropy ${fmt(ent, 2)} bits (uniform: ${fmt(Math.log2(w.length), 2)})`;
  };

  draw();
  return listen(model, ["labels", "scores", "temperature"], draw);
}

export default { render: renderSoftmaxExplorer };
