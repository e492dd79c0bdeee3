// ModelExplorer: a trained attnlib.Decoder running in the page (decoder.js), with no kernel.
// Type a prompt (unknown words are flagged), read the next-token distribution at a temperature,
// generate a few tokens, step through the layers with the logit lens (the residual stream after
// every stage read through ln_f and the unembedding), look at every head's pattern, and switch heads
// off.
// Traits read: title, config, vocab, unk, weights, prompt, presets, temperature, top_k, layer, head,
// query, ablated, n_new, sample, seed, lens_stage, lens_word.
// Traits written back: the inputs the reader changes, and the results words, unknown, top, lens,
// generated.

function renderModelExplorer({ model, el }) {
  const root = widgetRoot(el, "model-explorer", model.get("title"));
  const get = (n) => model.get(n);
  const put = (changes) => {
    for (const [k, v] of Object.entries(changes)) model.set(k, v);
    trySave(model);
  };

  let net = null;
  let netError = null;
  const load = () => {
    try {
      net = buildModel(get("config"), get("weights"));
      netError = null;
    } catch (e) {
      net = null;
      netError = String(e && e.message ? e.message : e);
    }
  };
  load();

  // ---- prompt
  const input = h("input", { type: "text", class: "attnlib-prompt", spellcheck: "false", autocomplete: "off",
    "aria-label": "prompt" });
  input.value = get("prompt");
  input.addEventListener("input", () => put({ prompt: input.value }));
  const presetSel = h("select", { class: "attnlib-select attnlib-preset", "aria-label": "preset prompts" });
  presetSel.addEventListener("change", () => {
    if (presetSel.value !== "") {
      input.value = presetSel.value;
      put({ prompt: presetSel.value, query: -1 });
    }
  });
  const vocabBox = h("div", { class: "attnlib-vocab" });
  const vocabDetails = h("details", { class: "attnlib-vocab-details" }, [
    h("summary", { text: `the model's words (${get("vocab").length}): tap one to add it` }), vocabBox]);
  const fillVocab = () => {
    vocabBox.replaceChildren(...get("vocab").map((w) => h("button", { type: "button", class: "attnlib-button attnlib-word",
      text: w, onclick: () => {
        const t = input.value.replace(/\s+$/, "");
        input.value = (t ? t + " " : "") + w;
        put({ prompt: input.value, query: -1 });
      } })));
  };
  fillVocab();
  const tokenStrip = h("div", { class: "attnlib-tokens", "aria-label": "the prompt's words" });
  const promptNote = h("div", { class: "attnlib-hint attnlib-prompt-note" });

  // ---- prediction
  const temp = slider({ label: "temperature", min: -1, max: 1, step: 0.01, value: Math.log10(get("temperature")),
    oninput: (v) => put({ temperature: Number((10 ** v).toPrecision(4)) }), cls: "attnlib-temperature" });
  const prediction = h("div", { class: "attnlib-prediction attnlib-big" });
  const topBars = h("div", { class: "attnlib-top" });

  // ---- generation
  const mode = select({ label: "generate", options: [["greedy", "greedy (most likely)"], ["sample", "sample"]],
    value: get("sample") ? "sample" : "greedy", onchange: (v) => put({ sample: v === "sample" }), cls: "attnlib-mode" });
  const nNew = select({ label: "tokens", options: [1, 2, 4, 6, 8, 12, 16].map((n) => [n, String(n)]), value: get("n_new"),
    onchange: (v) => put({ n_new: Number(v) }), cls: "attnlib-n-new" });
  const seedIn = h("input", { type: "number", min: 0, step: 1, class: "attnlib-seed", "aria-label": "seed" });
  seedIn.value = String(get("seed"));
  seedIn.addEventListener("change", () => {
    const s = Math.max(0, Math.floor(Number(seedIn.value) || 0));
    put({ seed: s });
  });
  const seedLabel = h("label", { class: "attnlib-control" }, [h("span", { class: "attnlib-label", text: "seed" }), seedIn]);
  const genButton = h("button", { type: "button", class: "attnlib-button attnlib-generate", text: "generate ▶" });
  const genOut = h("div", { class: "attnlib-generated" });

  // ---- layer by layer: the logit lens at the query position
  const stageSlider = slider({ label: "stage", min: 0, max: 0, step: 1, value: 0,
    oninput: (v) => put({ lens_stage: v }), cls: "attnlib-lens-stage" });
  const lensQuery = select({ label: "at", options: [], value: "", onchange: (v) => put({ query: Number(v) }),
    cls: "attnlib-lens-query" });
  const lensWord = select({ label: "follow", options: [], value: "", onchange: (v) => put({ lens_word: v }),
    cls: "attnlib-lens-word" });
  const lensReading = h("div", { class: "attnlib-prediction attnlib-lens-reading" });
  const lensBars = h("div", { class: "attnlib-lens-top" });
  const lensTable = h("div", { class: "attnlib-lens-stages" });

  // ---- heads
  const layerSel = select({ label: "layer", options: [], value: get("layer"), onchange: (v) => put({ layer: Number(v) }),
    cls: "attnlib-layer" });
  const headSel = select({ label: "head", options: [], value: get("head"), onchange: (v) => put({ head: Number(v) }),
    cls: "attnlib-head" });
  const querySel = select({ label: "query", options: [], value: "", onchange: (v) => put({ query: Number(v) }),
    cls: "attnlib-query" });
  const patternBox = h("div", { class: "attnlib-pattern" });
  const grid = h("div", { class: "attnlib-ablation" });
  const allOn = h("button", { type: "button", class: "attnlib-button attnlib-all-on", text: "all heads on",
    onclick: () => put({ ablated: [] }) });
  const stats = h("div", { class: "attnlib-stats" });
  const errorBox = h("div", { class: "attnlib-error", role: "alert" });

  root.append(
    errorBox,
    h("div", { class: "attnlib-section" }, [
      h("div", { class: "attnlib-controls attnlib-prompt-row" }, [input, presetSel]),
      tokenStrip, promptNote, vocabDetails,
    ]),
    h("div", { class: "attnlib-section" }, [
      h("div", { class: "attnlib-subtitle", text: "Next token" }),
      h("div", { class: "attnlib-controls" }, [temp.root]),
      prediction, topBars,
      h("div", { class: "attnlib-controls" }, [mode.root, nNew.root, seedLabel, genButton]),
      genOut,
    ]),
    h("div", { class: "attnlib-section attnlib-lens" }, [
      h("div", { class: "attnlib-subtitle", text: "Layer by layer (logit lens)" }),
      h("div", { class: "attnlib-hint", text: "the residual stream at one position after each stage, read through " +
        "the final LayerNorm and the unembedding as if the model stopped there (temperature 1)" }),
      h("div", { class: "attnlib-controls" }, [stageSlider.root, lensQuery.root, lensWord.root]),
      lensReading, lensBars, lensTable,
    ]),
    h("div", { class: "attnlib-section" }, [
      h("div", { class: "attnlib-subtitle", text: "Attention patterns" }),
      h("div", { class: "attnlib-controls" }, [layerSel.root, headSel.root, querySel.root]),
      patternBox,
    ]),
    h("div", { class: "attnlib-section" }, [
      h("div", { class: "attnlib-subtitle", text: "Switch heads off" }),
      h("div", { class: "attnlib-hint", text: "unticked heads add nothing to the residual stream (their output is " +
        "zeroed before W_O); their patterns are still computed" }),
      grid, allOn,
    ]),
    stats,
  );

  const readPrompt = () => tokenize(get("prompt"), get("vocab"), get("unk") ?? null);
  const isOff = (l, hd) => get("ablated").some(([a, b]) => a === l && b === hd);
  const toggleHead = (l, hd, on) => {
    const rest = get("ablated").filter(([a, b]) => !(a === l && b === hd));
    put({ ablated: on ? rest : [...rest, [l, hd]].sort((x, y) => x[0] - y[0] || x[1] - y[1]) });
  };

  // a generated text belongs to the prompt, heads and settings it came from: cleared when they change
  const inputsKey = () => JSON.stringify([get("prompt"), get("ablated"), get("sample"), get("seed"), get("n_new"),
    get("temperature")]);
  let genKey = null;
  genButton.addEventListener("click", () => {
    if (!net) return;
    const tk = readPrompt();
    if (!tk.ids.length) return;
    const L = net.config.context_len;
    const start = tk.ids.slice(-L);
    const out = generate(net, start, get("n_new"), { greedy: !get("sample"), temperature: get("temperature"),
      seed: get("seed"), ablated: get("ablated") });
    const vocab = get("vocab");
    const added = out.slice(start.length).map((i) => vocab[i]);
    genKey = inputsKey();
    genOut.replaceChildren(h("span", { class: "attnlib-hint", text: "→ " }), h("span", { text: start.map((i) => vocab[i]).join(" ") + " " }),
      h("strong", { class: "attnlib-new-tokens", text: added.join(" ") }));
    put({ generated: added.join(" ") });
  });

  const drawAblation = (c) => {
    const table = h("table", { class: "attnlib-table attnlib-ablation-grid" });
    table.append(h("tr", {}, [h("th", { text: "" }), ...Array.from({ length: c.n_heads }, (_, j) => h("th", { text: `head ${j}` }))]));
    for (let l = 0; l < c.n_layers; l++) {
      const tr = h("tr", {}, [h("th", { text: `layer ${l}` })]);
      for (let hd = 0; hd < c.n_heads; hd++) {
        const box = h("input", { type: "checkbox", class: "attnlib-head-toggle", "data-layer": l, "data-head": hd,
          "aria-label": `layer ${l} head ${hd} on` });
        box.checked = !isOff(l, hd);
        box.addEventListener("change", () => toggleHead(l, hd, box.checked));
        tr.append(h("td", { class: l === get("layer") && hd === get("head") ? "attnlib-shown" : "" }, [box]));
      }
      table.append(tr);
    }
    grid.replaceChildren(table);
  };

  // The logit lens at query position q: a reading of the chosen stage (its top words as bars) and a
  // table of every stage (its top word, and the probability of the followed word). Returns the rows
  // of the `lens` trait: [stage, top word, its probability, the followed word's probability or null].
  const drawLens = (c, res, labels, q) => {
    const vocab = get("vocab");
    const names = stageNames(c);
    const S = names.length;
    const stage = Math.max(0, Math.min(get("lens_stage"), S - 1));
    const follow = vocab.indexOf(get("lens_word"));
    const probs = logitLens(net, res, q).map((row) => softmax(row, 1));
    stageSlider.input.max = String(S - 1);
    stageSlider.input.value = String(stage);
    stageSlider.out.textContent = names[stage];
    setOptions(lensQuery.select, labels.map((w, i) => [i, `${i}: ${w}`]));
    lensQuery.select.value = String(q);
    setOptions(lensWord.select, [["", "(none)"], ...vocab.map((w) => [w, w])]);
    lensWord.select.value = follow >= 0 ? vocab[follow] : "";
    const tops = probs.map((p) => argmax(p));
    const rows = names.map((n, s) => [n, vocab[tops[s]], probs[s][tops[s]], follow >= 0 ? probs[s][follow] : null]);
    const here = probs[stage];
    lensReading.replaceChildren(
      h("span", { text: `at “${labels[q]}”, ${stage === 0 ? "in the embedding" : `after ${names[stage]}`}` +
        `${stage === S - 1 ? " (the model's output)" : ""}, the stream reads ` }),
      h("strong", { class: "attnlib-lens-token", "data-token": vocab[tops[stage]], text: vocab[tops[stage]] }),
      h("span", { text: ` (${fmt(here[tops[stage]], 3)})` + (follow >= 0 && follow !== tops[stage] ?
        `; “${vocab[follow]}”: ${fmt(here[follow], 3)}` : "") }),
    );
    const k = Math.min(get("top_k"), c.vocab_size);
    const order = here.map((p, id) => ({ id, p })).sort((a, b) => b.p - a.p || a.id - b.id).slice(0, k);
    lensBars.replaceChildren(bars(order.map((x) => ({ label: vocab[x.id], value: x.p })),
      { decimals: 3, highlight: order.findIndex((x) => x.id === follow) }));
    const table = h("table", { class: "attnlib-table attnlib-lens-table" });
    table.append(h("tr", {}, [h("th", { text: "after" }), h("th", { text: "top word" }), h("th", { text: "p" }),
      ...(follow >= 0 ? [h("th", { text: `p(${vocab[follow]})` })] : [])]));
    rows.forEach(([n, w, p, pf], s) => {
      const tr = h("tr", { class: "attnlib-clickable" + (s === stage ? " attnlib-selected" : ""), "data-stage": s,
        title: `show ${n}` }, [h("th", { text: n }), h("td", { text: w }), h("td", { text: fmt(p, 3) }),
        ...(pf !== null ? [h("td", { class: "attnlib-lens-follow", text: fmt(pf, 3) })] : [])]);
      tr.addEventListener("click", () => put({ lens_stage: s }));
      table.append(tr);
    });
    lensTable.replaceChildren(table);
    return rows;
  };

  const draw = () => {
    errorBox.hidden = !netError;
    errorBox.textContent = netError ? `the model could not be loaded: ${netError}` : "";
    if (!net) return;
    const c = net.config;
    const vocab = get("vocab");
    if (genKey !== null && genKey !== inputsKey()) {
      genKey = null;
      genOut.replaceChildren();
    }
    if (document.activeElement !== input && input.value !== get("prompt")) input.value = get("prompt");
    const presets = get("presets");
    setOptions(presetSel, [["", "presets…"], ...presets.map((p) => [p, p])]);
    presetSel.value = presets.includes(get("prompt")) ? get("prompt") : "";

    // the prompt, word by word; unknown words are flagged, never silently dropped
    const tk = readPrompt();
    const unk = get("unk") ?? null;
    tokenStrip.replaceChildren(...tk.words.map((w, i) => h("span", {
      class: "attnlib-token" + (tk.known[i] ? "" : " attnlib-unknown"),
      title: tk.known[i] ? w : unk !== null ? `not in the vocabulary: read as ${unk}` : "not in the vocabulary: the model skips it",
      text: w,
    })));
    const notes = [];
    if (tk.unknown.length) {
      notes.push(`not in the model's vocabulary (${unk !== null ? `read as ${unk}` : "skipped"}): ` +
        tk.unknown.map((w) => `“${w}”`).join(", "));
    }
    const ids = tk.ids.slice(-c.context_len);
    if (tk.ids.length > c.context_len) notes.push(`the model reads the last ${c.context_len} words only`);
    promptNote.textContent = notes.join("; ");
    promptNote.classList.toggle("attnlib-warning", tk.unknown.length > 0);

    if (!ids.length) {
      prediction.textContent = "type a prompt in the model's words";
      topBars.replaceChildren();
      patternBox.replaceChildren();
      lensReading.textContent = "";
      lensBars.replaceChildren();
      lensTable.replaceChildren();
      drawAblation(c);
      model.set("words", tk.words);
      model.set("unknown", tk.unknown);
      model.set("top", []);
      model.set("lens", []);
      trySave(model);
      return;
    }
    const t0 = performance.now();
    const res = forward(net, ids, { ablated: get("ablated") });
    const ms = performance.now() - t0;
    const T = ids.length;
    const labels = ids.map((i) => vocab[i]);

    // next token
    const t = get("temperature");
    temp.input.value = String(Math.log10(t));
    temp.out.textContent = fmtSig(t);
    const row = logitsAt(res, T - 1, c.vocab_size);
    const top = topTokens(row, Math.min(get("top_k"), c.vocab_size), t);
    prediction.replaceChildren(
      h("span", { text: `after “${labels[T - 1]}” the model expects ` }),
      h("strong", { class: "attnlib-top-token", "data-token": vocab[top[0].id], text: vocab[top[0].id] }),
      h("span", { text: ` (${fmt(top[0].p, 3)})` }),
    );
    topBars.replaceChildren(bars(top.map((x) => ({ label: vocab[x.id], value: x.p })), { decimals: 3, highlight: 0 }));

    // patterns
    setOptions(layerSel.select, Array.from({ length: c.n_layers }, (_, l) => [l, String(l)]));
    setOptions(headSel.select, Array.from({ length: c.n_heads }, (_, j) => [j, String(j) + (isOff(get("layer"), j) ? " (off)" : "")]));
    const layer = Math.min(get("layer"), c.n_layers - 1);
    const head = Math.min(get("head"), c.n_heads - 1);
    layerSel.select.value = String(layer);
    headSel.select.value = String(head);
    const qWant = get("query");
    const q = qWant >= 0 && qWant < T ? qWant : T - 1;
    setOptions(querySel.select, labels.map((w, i) => [i, `${i}: ${w}`]));
    querySel.select.value = String(q);
    const P = res.patterns[layer][head];
    const values = [];
    const masked = [];
    for (let i = 0; i < T; i++) {
      values.push(Array.from(P.subarray(i * T, (i + 1) * T)));
      masked.push(Array.from({ length: T }, (_, j) => j > i));
    }
    let best = 0;
    for (let j = 1; j < T; j++) if (values[q][j] > values[q][best]) best = j;
    const heat = heatmap(values, {
        rowLabels: labels,
        colLabels: labels,
        masked,
        highlightRow: q,
        decimals: T > 12 ? 1 : 2,
        caption: `layer ${layer}, head ${head}${isOff(layer, head) ? " (switched off)" : ""}: rows = query, columns = key`,
        onRowClick: (i) => put({ query: i }),
      });
    // a future key is hatched and left blank: the query cannot see it (its weight is exactly 0)
    for (const td of heat.querySelectorAll("td.attnlib-masked")) td.textContent = "";
    patternBox.replaceChildren(
      heat,
      weightLegend({ masked: true }),
      h("div", { class: "attnlib-stats attnlib-pattern-note",
        text: `query ${q} “${labels[q]}” looks most at key ${best} “${labels[best]}” (${fmt(values[q][best], 2)})` }),
    );
    const lens = drawLens(c, res, labels, q);
    drawAblation(c);
    const nOff = get("ablated").length;
    stats.textContent = `${c.n_layers} layers × ${c.n_heads} heads, ${T} tokens; ${nOff} head${nOff === 1 ? "" : "s"} off; ` +
      `forward pass ${ms.toFixed(1)} ms in this browser`;

    model.set("words", tk.words);
    model.set("unknown", tk.unknown);
    model.set("top", top.map((x) => [vocab[x.id], x.p]));
    model.set("lens", lens);
    trySave(model);
  };

  draw();
  const offModel = listen(model, ["config", "weights"], () => {
    load();
    fillVocab();
    draw();
  });
  const offInputs = listen(model, ["prompt", "presets", "temperature", "top_k", "layer", "head", "query", "ablated",
    "vocab", "unk", "lens_stage", "lens_word"], draw);
  const offGen = listen(model, ["sample", "n_new", "seed"], () => {
    draw();
    mode.select.value = get("sample") ? "sample" : "greedy";
    nNew.select.value = String(get("n_new"));
    seedIn.value = String(get("seed"));
  });
  return () => {
    offModel();
    offInputs();
    offGen();
  };
}

export default { render: renderModelExplorer };
