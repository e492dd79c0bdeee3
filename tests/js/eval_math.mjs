// Evaluate attnlib/static/math.js and views.js (joined into one module, as attnlib.widgets joins
// them) on the cases in a JSON file and print the results as JSON.
// Used by tests/test_widgets.py, which compares them with attnlib (torch).
//   node tests/js/eval_math.mjs cases.json > results.json
// JSON has no -Infinity: a null inside a score row stands for -Infinity (a masked score).
import { readFileSync } from "node:fs";
import { fileURLToPath } from "node:url";
import { dirname, join } from "node:path";

const here = dirname(fileURLToPath(import.meta.url));
const read = (name) => readFileSync(join(here, "..", "..", "attnlib", "static", name), "utf8");
const src = read("math.js") + "\n\n" + read("views.js");
// Load the file as an ES module whatever the package type (it is plain .js, not .mjs).
const M = await import("data:text/javascript;base64," + Buffer.from(src).toString("base64"));

const unNull = (row) => row.map((x) => (x === null ? -Infinity : x));
const cases = JSON.parse(readFileSync(process.argv[2], "utf8"));

const results = cases.map((c) => {
  switch (c.op) {
    case "softmax":
      return M.softmax(unNull(c.row), c.temperature);
    case "causal_mask":
      return M.causalMask(c.T_q, c.T_k);
    case "scores":
      return M.scaledScores(c.q, c.k, c.scale ?? null);
    case "attention": {
      const r = M.attention(c.q, c.k, c.v, { causal: c.causal, temperature: c.temperature, scale: c.scale ?? null });
      return { weights: r.weights, out: r.out, scores: r.scores };
    }
    case "explorer":
      return M.explorerState(c.x, c.w_q, c.w_k, { causal: c.causal, temperature: c.temperature });
    case "value_update":
      return M.valueUpdate(c.points, c.values, c.query, M.normalize(c.raw));
    case "cost":
      return M.patternCost(c.n, c.n_heads, c.n_layers, c.bytes_per_entry);
    case "explorer_grid": {
      const r = M.explorerGrid(c.x, c.w_q, c.w_k, { show: c.show, causal: c.causal, temperature: c.temperature });
      return { values: r.values, vmin: r.vmin, vmax: r.vmax };
    }
    case "query_row": {
      const q = M.polar(c.angle, c.length);
      return { query: q, ...M.queryRow(c.keys, q, { dHead: c.d_head, causal: c.causal, queryIndex: c.query_index }) };
    }
    case "value_weights":
      return M.valueWeights(c.raw, c.query, c.causal);
    case "causal_value_update":
      return M.valueUpdate(c.points, c.values, c.query, M.valueWeights(c.raw, c.query, c.causal));
    case "nice_limit":
      return c.xs.map((x) => M.niceLimit(x));
    case "place_labels":
      return M.placeLabels(c.items, c.opts);
    case "crowds":
      return M.crowds(c.points, c.radius);
    case "format":
      return { bytes: M.formatBytes(c.bytes), int: M.formatInt(c.int) };
    default:
      throw new Error(`unknown op ${c.op}`);
  }
});
process.stdout.write(JSON.stringify(results));
