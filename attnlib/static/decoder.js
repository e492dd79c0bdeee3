// attnlib.Decoder's forward pass in JavaScript: pure functions on typed arrays (no DOM, no imports).
//
// attnlib/widgets.py puts this file after math.js and before ui.js in the ModelExplorer's module,
// so the static page runs the very model the chapter trained, with no kernel. tests/test_explorer.py
// runs it under node (tests/js/eval_decoder.mjs) and compares it with attnlib.Decoder, also with
// heads switched off by attnlib.hooks.ablate_heads, so the two cannot drift.
//
// What Decoder computes (attnlib/decoder.py, multihead.py, mlp.py), for token ids t_0 .. t_{T-1}:
//   x = tok[t] + pos[0 .. T-1]                                       (T, d_model) residual stream
//   per block:  x += out_proj(heads(ln_1(x)))       causal self-attention, pre-LayerNorm
//               x += down(gelu(up(ln_2(x))))        exact (erf) GELU unless config.gelu is "tanh"
//   logits = ln_f(x) @ unembed^T                    unembed = tok when the embeddings are tied
// heads: q, k, v = the rows of qkv_proj (W_Q of every head, then W_K and W_V of every key/value
// head) applied to h: q (T, n_heads * d_head), k and v (T, n_kv_heads * d_head); query head h reads
// key/value head floor(h / (n_heads / n_kv_heads)) (GQA; as attnlib.attention.repeat_kv);
// pattern = softmax(q k^T / sqrt(d_head)) over the keys j <= i; a head that is switched off still
// computes its pattern but its output is zeroed before out_proj (as attnlib.hooks.ablate_heads).
// A Linear weight is PyTorch's (out, in), row-major: y[o] = sum_i W[o * in + i] x[i] (+ b[o]).
// Weights are float32 (or float16) as sent; every sum is done in float64.

/** Bytes of a base64 string (atob exists in browsers and in node >= 16). */
function base64Bytes(b64) {
  const s = atob(b64);
  const out = new Uint8Array(s.length);
  for (let i = 0; i < s.length; i++) out[i] = s.charCodeAt(i);
  return out;
}

/** An IEEE half (16 bits) as a number. */
function halfToFloat(u) {
  const sign = u & 0x8000 ? -1 : 1;
  const e = (u >> 10) & 0x1f;
  const f = u & 0x3ff;
  if (e === 0) return sign * f * 2 ** -24; // subnormal (or zero)
  if (e === 31) return f ? NaN : sign * Infinity;
  return sign * (1 + f / 1024) * 2 ** (e - 15);
}

/**
 * One tensor of the widget state, {dtype: "float32" | "float16", shape: [...], data: base64 of the
 * little-endian values in row-major order} -> Float32Array. Throws when the byte count does not
 * match the shape.
 */
export function decodeTensor(name, t) {
  const n = t.shape.reduce((a, b) => a * b, 1);
  const bytes = base64Bytes(t.data);
  const width = t.dtype === "float16" ? 2 : t.dtype === "float32" ? 4 : 0;
  if (!width) throw new Error(`${name}: unknown dtype ${t.dtype} (expected float32 or float16)`);
  if (bytes.length !== n * width) {
    throw new Error(`${name}: ${bytes.length} bytes for shape [${t.shape}] of ${t.dtype} (expected ${n * width})`);
  }
  const view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  const out = new Float32Array(n);
  if (width === 4) for (let i = 0; i < n; i++) out[i] = view.getFloat32(4 * i, true);
  else for (let i = 0; i < n; i++) out[i] = halfToFloat(view.getUint16(2 * i, true));
  return out;
}

/**
 * The model from the widget state: config {vocab_size, context_len, d_model, n_layers, n_heads,
 * n_kv_heads, d_head, d_mlp, bias, tie_embeddings, ln_eps, gelu} and weights {state-dict name:
 * tensor}. Checks every shape against the config. Returns {config, get(name) -> Float32Array|null}.
 */
export function buildModel(config, weights) {
  const c = config;
  const inner = c.n_heads * c.d_head;
  const kvInner = c.n_kv_heads * c.d_head;
  const want = {
    "embed.tok.weight": [c.vocab_size, c.d_model],
    "embed.pos.weight": [c.context_len, c.d_model],
    "ln_f.weight": [c.d_model],
  };
  if (c.bias) want["ln_f.bias"] = [c.d_model];
  if (!c.tie_embeddings) want["unembed.weight"] = [c.vocab_size, c.d_model];
  for (let l = 0; l < c.n_layers; l++) {
    const p = `blocks.${l}.`;
    const lin = { "attn.qkv_proj": [inner + 2 * kvInner, c.d_model],
      "attn.out_proj": [c.d_model, inner], "mlp.up": [c.d_mlp, c.d_model], "mlp.down": [c.d_model, c.d_mlp] };
    for (const [name, shape] of Object.entries(lin)) {
      want[`${p}${name}.weight`] = shape;
      if (c.bias) want[`${p}${name}.bias`] = [shape[0]];
    }
    for (const ln of ["ln_1", "ln_2"]) {
      want[`${p}${ln}.weight`] = [c.d_model];
      if (c.bias) want[`${p}${ln}.bias`] = [c.d_model];
    }
  }
  const load = (name, shape) => {
    const t = weights[name];
    if (!t) throw new Error(`the weights have no ${name}`);
    if (t.shape.length !== shape.length || t.shape.some((s, i) => s !== shape[i])) {
      throw new Error(`${name} has shape [${t.shape}], expected [${shape}]`);
    }
    return decodeTensor(name, t);
  };
  const arrays = {};
  // weights exported before attnlib fused its projections (a page built then) hold q_proj, k_proj
  // and v_proj: their rows, concatenated in that order, are qkv_proj
  for (let l = 0; l < c.n_layers; l++) {
    const p = `blocks.${l}.attn.`;
    for (const kind of ["weight", "bias"]) {
      const parts = ["q_proj", "k_proj", "v_proj"].map((n) => `${p}${n}.${kind}`);
      if (weights[`${p}qkv_proj.${kind}`] || !parts.every((n) => weights[n])) continue;
      const rows = [inner, kvInner, kvInner];
      const got = parts.map((n, i) => load(n, kind === "weight" ? [rows[i], c.d_model] : [rows[i]]));
      const fused = new Float32Array(got.reduce((a, x) => a + x.length, 0));
      let at = 0;
      for (const x of got) {
        fused.set(x, at);
        at += x.length;
      }
      arrays[`${p}qkv_proj.${kind}`] = fused;
    }
  }
  for (const [name, shape] of Object.entries(want)) {
    if (!arrays[name]) arrays[name] = load(name, shape);
  }
  return { config: c, get: (name) => arrays[name] ?? null };
}

// Taylor coefficients of erf(x) * sqrt(pi) / 2 / x in powers of x^2: (-1)^n / (n! (2n + 1)).
const ERF_SERIES = (() => {
  const c = new Float64Array(49);
  let factorial = 1;
  for (let n = 0; n < c.length; n++) {
    if (n) factorial *= n;
    c[n] = (n % 2 ? -1 : 1) / (factorial * (2 * n + 1));
  }
  return c;
})();

/** erf(x) to about 1e-14: its Taylor series for |x| < 3, a continued fraction for erfc beyond. */
export function erf(x) {
  const a = Math.abs(x);
  if (a < 3) {
    // Horner in x^2, with as many terms as this |x| needs for float64 (the last is below 1e-17)
    const N = a < 1 ? 18 : a < 2 ? 32 : 48;
    const x2 = a * a;
    let s = ERF_SERIES[N];
    for (let n = N - 1; n >= 0; n--) s = s * x2 + ERF_SERIES[n];
    return Math.sign(x) * a * s * (2 / Math.sqrt(Math.PI));
  }
  // erfc(a) = exp(-a^2)/sqrt(pi) * 1/(a + (1/2)/(a + 1/(a + (3/2)/(a + 2/(a + ...))))), from the tail
  let f = a;
  for (let n = 60; n >= 1; n--) f = a + n / 2 / f;
  const erfc = Math.exp(-a * a) / Math.sqrt(Math.PI) / f;
  return Math.sign(x) * (1 - erfc);
}

/** GELU as torch.nn.GELU: exact x * Phi(x) ("erf", the default) or its tanh approximation. */
export function gelu(x, kind = "erf") {
  if (kind === "tanh") {
    const u = Math.sqrt(2 / Math.PI) * (x + 0.044715 * x * x * x);
    return 0.5 * x * (1 + Math.tanh(u));
  }
  return 0.5 * x * (1 + erf(x / Math.SQRT2));
}

/** LayerNorm of each row of x (T, d) (biased variance, as torch), times w, plus b (or no bias). */
function layerNorm(x, T, d, w, b, eps) {
  const y = new Float64Array(T * d);
  for (let t = 0; t < T; t++) {
    const o = t * d;
    let mean = 0;
    for (let i = 0; i < d; i++) mean += x[o + i];
    mean /= d;
    let v = 0;
    for (let i = 0; i < d; i++) v += (x[o + i] - mean) ** 2;
    const r = 1 / Math.sqrt(v / d + eps);
    for (let i = 0; i < d; i++) y[o + i] = (x[o + i] - mean) * r * w[i] + (b ? b[i] : 0);
  }
  return y;
}

/** x (T, n_in) -> (T, n_out) by a PyTorch Linear weight W (n_out, n_in) and optional bias. */
function linear(x, T, nIn, W, b, nOut) {
  const y = new Float64Array(T * nOut);
  const n4 = nIn - (nIn % 4);
  for (let t = 0; t < T; t++) {
    const xo = t * nIn;
    for (let o = 0; o < nOut; o++) {
      const wo = o * nIn;
      // four running sums (independent, so the CPU overlaps them), added at the end
      let s0 = 0;
      let s1 = 0;
      let s2 = 0;
      let s3 = 0;
      let i = 0;
      for (; i < n4; i += 4) {
        s0 += W[wo + i] * x[xo + i];
        s1 += W[wo + i + 1] * x[xo + i + 1];
        s2 += W[wo + i + 2] * x[xo + i + 2];
        s3 += W[wo + i + 3] * x[xo + i + 3];
      }
      for (; i < nIn; i++) s0 += W[wo + i] * x[xo + i];
      y[t * nOut + o] = (b ? b[o] : 0) + (s0 + s1 + (s2 + s3));
    }
  }
  return y;
}

/** Turn a list of switched-off heads [[layer, head], ...] into a lookup "layer:head" -> true. */
function offSet(ablated) {
  const s = new Set();
  for (const [l, h] of ablated || []) s.add(`${l}:${h}`);
  return s;
}

/**
 * The forward pass over token ids (length T <= context_len).
 * opts: {ablated: [[layer, head], ...] heads switched off}.
 * Returns {T, logits: Float64Array (T * vocab_size), patterns: [layer][head] Float64Array (T * T),
 * row-major (query i, key j); masked (future) entries are 0, stages: the residual stream (T * d_model)
 * after every stage, in the order of stageNames (as attnlib.lens.residual_stages)}.
 */
export function forward(model, ids, opts = {}) {
  const c = model.config;
  const g = model.get;
  const T = ids.length;
  const D = c.d_model;
  const dh = c.d_head;
  const H = c.n_heads;
  const rep = c.n_heads / c.n_kv_heads;
  if (T < 1 || T > c.context_len) throw new Error(`forward: ${T} tokens; the model reads 1 to ${c.context_len}`);
  const off = offSet(opts.ablated);
  const tok = g("embed.tok.weight");
  const pos = g("embed.pos.weight");
  const x = new Float64Array(T * D);
  for (let t = 0; t < T; t++) {
    const id = ids[t];
    if (!(Number.isInteger(id) && id >= 0 && id < c.vocab_size)) throw new Error(`forward: token id ${id} is not in [0, ${c.vocab_size})`);
    for (let i = 0; i < D; i++) x[t * D + i] = tok[id * D + i] + pos[t * D + i];
  }
  const scale = 1 / Math.sqrt(dh);
  const patterns = [];
  const stages = [x.slice()];
  const inner = H * dh;
  const kvInner = c.n_kv_heads * dh;
  for (let l = 0; l < c.n_layers; l++) {
    const p = `blocks.${l}.`;
    const h1 = layerNorm(x, T, D, g(p + "ln_1.weight"), g(p + "ln_1.bias"), c.ln_eps);
    // rows [from, from + n) of the fused weight (width D) and bias (width 1): views, no copy
    const W = g(p + "attn.qkv_proj.weight");
    const b = g(p + "attn.qkv_proj.bias");
    const rows = (a, from, n, width) => a && a.subarray(from * width, (from + n) * width);
    const q = linear(h1, T, D, rows(W, 0, inner, D), rows(b, 0, inner, 1), inner);
    const k = linear(h1, T, D, rows(W, inner, kvInner, D), rows(b, inner, kvInner, 1), kvInner);
    const v = linear(h1, T, D, rows(W, inner + kvInner, kvInner, D), rows(b, inner + kvInner, kvInner, 1), kvInner);
    const heads = new Float64Array(T * inner); // the heads' outputs side by side, as before out_proj
    const layerPatterns = [];
    for (let hh = 0; hh < H; hh++) {
      const kv = Math.floor(hh / rep) * dh;
      const P = new Float64Array(T * T);
      const on = !off.has(`${l}:${hh}`);
      for (let i = 0; i < T; i++) {
        const qo = i * inner + hh * dh;
        let m = -Infinity;
        for (let j = 0; j <= i; j++) {
          const ko = j * kvInner + kv;
          let s = 0;
          for (let e = 0; e < dh; e++) s += q[qo + e] * k[ko + e];
          s *= scale;
          P[i * T + j] = s;
          if (s > m) m = s;
        }
        let z = 0;
        for (let j = 0; j <= i; j++) {
          const e = Math.exp(P[i * T + j] - m);
          P[i * T + j] = e;
          z += e;
        }
        for (let j = 0; j <= i; j++) P[i * T + j] /= z;
        if (on) {
          for (let j = 0; j <= i; j++) {
            const w = P[i * T + j];
            const vo = j * kvInner + kv;
            for (let e = 0; e < dh; e++) heads[qo + e] += w * v[vo + e];
          }
        }
      }
      layerPatterns.push(P);
    }
    patterns.push(layerPatterns);
    const a = linear(heads, T, inner, g(p + "attn.out_proj.weight"), g(p + "attn.out_proj.bias"), D);
    for (let i = 0; i < T * D; i++) x[i] += a[i];
    stages.push(x.slice());
    const h2 = layerNorm(x, T, D, g(p + "ln_2.weight"), g(p + "ln_2.bias"), c.ln_eps);
    const u = linear(h2, T, D, g(p + "mlp.up.weight"), g(p + "mlp.up.bias"), c.d_mlp);
    for (let i = 0; i < u.length; i++) u[i] = gelu(u[i], c.gelu);
    const mo = linear(u, T, c.d_mlp, g(p + "mlp.down.weight"), g(p + "mlp.down.bias"), D);
    for (let i = 0; i < T * D; i++) x[i] += mo[i];
    stages.push(x.slice());
  }
  const hf = layerNorm(x, T, D, g("ln_f.weight"), g("ln_f.bias"), c.ln_eps);
  const U = c.tie_embeddings ? tok : g("unembed.weight");
  const logits = linear(hf, T, D, U, null, c.vocab_size);
  return { T, logits, patterns, stages };
}

/** The stages of a decoder-only model, as attnlib.lens.stage_names: embedding, attention 0, MLP 0, ... */
export function stageNames(config) {
  const names = ["embedding"];
  for (let l = 0; l < config.n_layers; l++) names.push(`attention ${l}`, `MLP ${l}`);
  return names;
}

/**
 * The logit lens at position t (as attnlib.lens.logit_lens): the residual stream after every stage,
 * read through the final LayerNorm and the unembedding. Returns one plain array (vocab_size) of
 * logits per stage; the last equals the model's logits at t.
 */
export function logitLens(model, result, t) {
  const c = model.config;
  const D = c.d_model;
  if (!(Number.isInteger(t) && t >= 0 && t < result.T)) throw new Error(`logitLens: position ${t} is not in [0, ${result.T})`);
  const g = model.get;
  const U = c.tie_embeddings ? g("embed.tok.weight") : g("unembed.weight");
  return result.stages.map((x) => {
    const h = layerNorm(x.subarray(t * D, (t + 1) * D), 1, D, g("ln_f.weight"), g("ln_f.bias"), c.ln_eps);
    return Array.from(linear(h, 1, D, U, null, c.vocab_size));
  });
}

/** One position's logits (row t of the (T, V) result) as a plain array. */
export function logitsAt(result, t, V) {
  return Array.from(result.logits.subarray(t * V, (t + 1) * V));
}

/**
 * Split a text the way attnlib.Tokenizer.split does (lower case; runs of letters, digits and
 * apostrophes, or any other single non-space character) and look every word up.
 * Returns {words, ids (the ids the model reads), unknown (the words not in the vocabulary)}.
 * An unknown word maps to `unk` when the tokenizer has one; otherwise the model skips it.
 */
export function tokenize(text, vocab, unk = null) {
  const index = new Map(vocab.map((w, i) => [w, i]));
  const words = String(text).toLowerCase().match(/[A-Za-z0-9']+|[^\sA-Za-z0-9']/g) || [];
  const ids = [];
  const unknown = [];
  const known = [];
  for (const w of words) {
    if (index.has(w)) {
      ids.push(index.get(w));
      known.push(true);
    } else {
      unknown.push(w);
      known.push(false);
      if (unk !== null && index.has(unk)) ids.push(index.get(unk));
    }
  }
  return { words, known, ids, unknown };
}

/** A seeded pseudo-random generator (mulberry32): returns a function giving numbers in [0, 1). */
export function seededRandom(seed) {
  let s = seed >>> 0;
  return () => {
    s = (s + 0x6d2b79f5) >>> 0;
    let t = s;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

/** Index of the largest entry (the first one on ties, as torch.argmax on CPU). */
export function argmax(row) {
  let k = 0;
  for (let i = 1; i < row.length; i++) if (row[i] > row[k]) k = i;
  return k;
}

/**
 * Append n tokens to ids, one forward pass each over the last context_len tokens (as
 * Decoder.generate). opts: {greedy = true, temperature = 1, seed = 0, ablated}. Greedy takes the
 * most likely token (Decoder.generate with temperature=0); otherwise it samples from
 * softmax(logits / temperature) with a seeded generator of its own (not torch's).
 */
export function generate(model, ids, n, opts = {}) {
  const { greedy = true, temperature = 1, seed = 0, ablated = [] } = opts;
  const V = model.config.vocab_size;
  const L = model.config.context_len;
  const out = ids.slice();
  const rand = seededRandom(seed);
  for (let s = 0; s < n; s++) {
    const window = out.slice(Math.max(0, out.length - L));
    const r = forward(model, window, { ablated });
    const row = logitsAt(r, window.length - 1, V);
    if (greedy) {
      out.push(argmax(row));
    } else {
      const p = softmax(row, temperature);
      let u = rand();
      let pick = p.length - 1;
      for (let i = 0; i < p.length; i++) {
        u -= p[i];
        if (u < 0) {
          pick = i;
          break;
        }
      }
      out.push(pick);
    }
  }
  return out;
}

/** The k most likely next tokens: [{id, p}] sorted by probability, from logits and a temperature. */
export function topTokens(logits, k, temperature = 1) {
  const p = softmax(logits, temperature);
  return p
    .map((x, id) => ({ id, p: x }))
    .sort((a, b) => b.p - a.p || a.id - b.id)
    .slice(0, k);
}
