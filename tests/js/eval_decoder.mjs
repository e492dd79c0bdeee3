// Run the ModelExplorer's JavaScript (the module the page loads) on the cases in a JSON file and
// print the results as JSON. Used by tests/test_explorer.py, which compares them with attnlib.
//   node tests/js/eval_decoder.mjs widget_module.mjs cases.json > results.json
// A case is {op, ...}:
//   forward:  {config, weights, ids, ablated} -> {logits (T, V), patterns (L, H, T, T)}
//   lens:     {config, weights, ids, ablated, position} -> {names, logits (stages, V) at position}
//   generate: {config, weights, ids, n, ablated, greedy, temperature, seed} -> ids
//   tokenize: {text, vocab, unk} -> {words, known, ids, unknown}
//   erf:      {xs} -> [erf(x)], and gelu: {xs, kind} -> [gelu(x)]
import { readFileSync } from "node:fs";
import { pathToFileURL } from "node:url";

const M = await import(pathToFileURL(process.argv[2]).href);
const cases = JSON.parse(readFileSync(process.argv[3], "utf8"));

const rows = (flat, n, m) => Array.from({ length: n }, (_, i) => Array.from(flat.subarray(i * m, (i + 1) * m)));

const results = cases.map((c) => {
  switch (c.op) {
    case "forward": {
      const net = M.buildModel(c.config, c.weights);
      const r = M.forward(net, c.ids, { ablated: c.ablated || [] });
      const T = c.ids.length;
      return {
        logits: rows(r.logits, T, c.config.vocab_size),
        patterns: r.patterns.map((layer) => layer.map((P) => rows(P, T, T))),
      };
    }
    case "lens": {
      const net = M.buildModel(c.config, c.weights);
      const r = M.forward(net, c.ids, { ablated: c.ablated || [] });
      return { names: M.stageNames(c.config), logits: M.logitLens(net, r, c.position) };
    }
    case "generate": {
      const net = M.buildModel(c.config, c.weights);
      return M.generate(net, c.ids, c.n, { greedy: c.greedy, temperature: c.temperature, seed: c.seed,
        ablated: c.ablated || [] });
    }
    case "build": {
      try {
        M.buildModel(c.config, c.weights);
        return { ok: true };
      } catch (e) {
        return { error: String(e.message) };
      }
    }
    case "tokenize":
      return M.tokenize(c.text, c.vocab, c.unk ?? null);
    case "erf":
      return c.xs.map((x) => M.erf(x));
    case "gelu":
      return c.xs.map((x) => M.gelu(x, c.kind));
    case "top":
      return M.topTokens(c.logits, c.k, c.temperature);
    default:
      throw new Error(`unknown op ${c.op}`);
  }
});
process.stdout.write(JSON.stringify(results));
