// Run the tiling math of a widget's module (attnlib/static/tiling.js, as the page loads it inside
// the OnlineSoftmaxStepper's or the TileExplorer's module) on the cases in a JSON file and print
// the results as JSON. Used by tests/test_widgets.py, which compares them with attnlib.
//   node tests/js/eval_tiling.mjs widget_module.mjs cases.json > results.json
// A case is {op, ...}:
//   steps:  {scores, values, block}                  -> onlineSoftmaxSteps(...)
//   grid:   {T, block, causal, window, sparse_block, d} -> tileGrid(...)
//   allow:  {T, causal, window, sparse_block}          -> the (T, T) mask of mayAttend
import { readFileSync } from "node:fs";
import { pathToFileURL } from "node:url";

const M = await import(pathToFileURL(process.argv[2]).href);
const cases = JSON.parse(readFileSync(process.argv[3], "utf8"));

const opts = (c) => ({ causal: c.causal, window: c.window, sparseBlock: c.sparse_block, d: c.d });

const results = cases.map((c) => {
  switch (c.op) {
    case "steps":
      // JSON has no -Infinity: the steps hold only finite numbers (m after a tile is finite)
      return M.onlineSoftmaxSteps(c.scores, c.values, c.block);
    case "grid":
      return M.tileGrid(c.T, c.block, opts(c));
    case "allow":
      return Array.from({ length: c.T }, (_, i) => Array.from({ length: c.T }, (_, j) => M.mayAttend(i, j, opts(c))));
    default:
      throw new Error(`unknown op ${c.op}`);
  }
});
process.stdout.write(JSON.stringify(results));
