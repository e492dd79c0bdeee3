// OnlineSoftmaxStepper: one query's scores fed to the online softmax a tile of keys at a time. A
// slider (and two buttons) sets how many tiles have been folded in; a table shows, tile by tile, the
// running max m, the factor exp(m - m') that rescales the old sums when the max grows to m', the
// running sum l and the accumulator a (the chapter's m, ℓ and a; the traits m, l and acc); after the
// last tile a / ℓ is set against softmax(scores) @ values.
// The math is onlineSoftmaxSteps (tiling.js), so the widget works in a static page.
// Traits read: labels, scores, values, block, step. Written back: block, step, m, rescale, l, acc,
// out (acc / l; none of them before the first tile: null, [] for the lists).

function renderOnlineSoftmaxStepper({ model, el }) {
  const root = widgetRoot(el, "online-softmax-stepper", "The online softmax, tile by tile");
  const get = (n) => model.get(n);
  const nTiles = () => Math.ceil(get("scores").length / get("block"));

  const commit = (changes) => {
    for (const [k, v] of Object.entries(changes)) model.set(k, v);
    const step = Math.min(get("step"), nTiles());
    const s = step > 0 ? onlineSoftmaxSteps(get("scores"), get("values"), get("block"))[step - 1] : null;
    model.set("step", step);
    model.set("m", s ? s.m : null);
    model.set("rescale", s ? s.rescale : null);
    model.set("l", s ? s.l : null);
    model.set("acc", s ? s.acc : []);
    model.set("out", s ? s.acc.map((a) => a / s.l) : []);
    trySave(model);
  };

  const blockSlider = slider({ label: "keys per tile", min: 1, max: get("scores").length, step: 1,
    value: get("block"), oninput: (v) => commit({ block: v }), cls: "attnlib-block" });
  const stepSlider = slider({ label: "tiles done", min: 0, max: nTiles(), step: 1, value: get("step"),
    oninput: (v) => commit({ step: v }), cls: "attnlib-step" });
  const back = h("button", { type: "button", class: "attnlib-button attnlib-back", text: "◀ back",
    onclick: () => commit({ step: Math.max(0, get("step") - 1) }) });
  const next = h("button", { type: "button", class: "attnlib-button attnlib-next", text: "next tile ▶",
    onclick: () => commit({ step: Math.min(nTiles(), get("step") + 1) }) });
  const formula = h("div", { class: "attnlib-formula" });
  const keys = h("div", { class: "attnlib-scroll" });
  const table = h("div", { class: "attnlib-scroll" });
  const result = h("div", { class: "attnlib-facts" });
  root.append(
    h("div", { class: "attnlib-controls" }, [blockSlider.root, stepSlider.root, back, next]),
    formula, keys, table, result,
  );

  const vec = (xs) => `[${xs.map((x) => fmt(x, 3)).join(", ")}]`;

  const draw = () => {
    const labels = get("labels");
    const scores = get("scores");
    const values = get("values");
    const block = get("block");
    const n = nTiles();
    const step = Math.min(get("step"), n);
    const steps = onlineSoftmaxSteps(scores, values, block);
    blockSlider.input.value = String(block);
    blockSlider.out.textContent = String(block);
    stepSlider.input.max = String(n);
    stepSlider.input.value = String(step);
    stepSlider.out.textContent = `${step} of ${n}`;
    back.disabled = step === 0;
    next.disabled = step === n;
    formula.textContent =
      "m′ = max(m, tile max);  ℓ′ = ℓ·e^(m−m′) + Σ e^(s−m′);  a′ = a·e^(m−m′) + Σ e^(s−m′)·v";

    // the keys: done tiles plain, the tile just folded in marked, the rest faded
    const tileOf = (j) => Math.floor(j / block);
    const cls = (j) => (tileOf(j) === step - 1 ? "attnlib-current" : tileOf(j) >= step ? "attnlib-later" : "");
    const cell = (j, text) => h("td", { class: cls(j), text });
    keys.replaceChildren(
      h("table", { class: "attnlib-table attnlib-keys" }, [
        h("tbody", {}, [
          h("tr", {}, [h("th", { text: "key" }), ...labels.map((t, j) => cell(j, t))]),
          h("tr", {}, [h("th", { text: "tile" }), ...labels.map((_, j) => cell(j, String(tileOf(j) + 1)))]),
          h("tr", {}, [h("th", { text: "score s" }), ...scores.map((x, j) => cell(j, fmt(x, 2)))]),
          h("tr", {}, [h("th", { text: "value v" }), ...values.map((v, j) => cell(j, v.map((x) => fmt(x, 2)).join(", ")))]),
        ]),
      ]),
    );

    const rows = steps.slice(0, step).map((s, t) => {
      const grew = t > 0 && s.rescale < 1;
      return h("tr", { class: t === step - 1 ? "attnlib-selected" : "" }, [
        h("td", { text: `${t + 1}: ${labels.slice(s.start, s.end).join(" ")}` }),
        h("td", { text: fmt(s.tileMax, 2) }),
        h("td", { text: fmt(s.m, 2) }),
        h("td", { class: grew ? "attnlib-grew" : "", text: t === 0 ? "0 (m = −∞)" : fmt(s.rescale, 4) }),
        h("td", { text: fmt(s.l, 4) }),
        h("td", { text: vec(s.acc) }),
      ]);
    });
    const head = ["tile: keys", "tile max", "new max m′", "e^(m − m′)", "ℓ", "a"];
    table.replaceChildren(
      h("table", { class: "attnlib-table attnlib-steps" }, [
        h("thead", {}, [h("tr", {}, head.map((x) => h("th", { text: x })))]),
        h("tbody", {}, rows.length ? rows : [h("tr", {}, [h("td", { colspan: 6, text: "before the first tile: m = −∞, ℓ = 0, a = 0" })])]),
      ]),
    );

    const last = step > 0 ? steps[step - 1] : null;
    const grown = steps.slice(1, step).filter((s) => s.rescale < 1).length;
    const exact = weightedSum(softmax(scores), values);
    const facts = [];
    if (last) {
      facts.push(h("div", {}, `the max grew ${grown} time${grown === 1 ? "" : "s"} after the first tile` +
        (grown ? ": each time the old ℓ and a were multiplied by e^(m − m′) < 1 (in red)" : "")));
      const seen = step === n ? "all the keys" : `the ${last.end} keys seen so far`;
      facts.push(h("div", {}, [h("span", { text: "a / ℓ = " }),
        h("strong", { class: "attnlib-out", text: vec(last.acc.map((a) => a / last.l)) }),
        h("span", { text: ` (the softmax average over ${seen})` })]));
    }
    if (step === n) {
      const diff = Math.max(...exact.map((x, c) => Math.abs(x - last.acc[c] / last.l)));
      facts.push(h("div", {}, `softmax(scores) @ values = ${vec(exact)}: the same (largest difference ${diff.toExponential(1)})`));
    } else {
      facts.push(h("div", { class: "attnlib-hint" }, `${n - step} tile${n - step === 1 ? "" : "s"} to go; ` +
        `after the last, a / ℓ equals softmax(scores) @ values = ${vec(exact)}`));
    }
    result.replaceChildren(...facts);
  };

  draw();
  return listen(model, ["labels", "scores", "values", "block", "step"], draw);
}

export default { render: renderOnlineSoftmaxStepper };
