"""attnlib must run on every torch its pyproject admits (``torch>=2.1``), e.g. Colab's own torch.

These machines carry one torch wheel (the one in requirements.txt) and PyPI's Linux wheels of older
releases are CUDA builds of several GB, so an old torch cannot be installed here to run the suite
against it. Instead this test audits attnlib's source: it collects every torch name attnlib uses
(``torch.x.y``, ``F.x``, ``nn.X``, after resolving imports), every keyword argument passed to one,
and every Tensor method called, and looks each one up in ``SINCE`` below, the torch release that
introduced it. A name missing from ``SINCE`` fails the test, so whoever starts using a new torch
API must look up when it appeared and record it; the newest entry in use must not be newer than the
pyproject floor. (The test.yml workflow's ``torch-floor`` job additionally runs the library tests on
torch 2.1 itself, on GitHub's runners, which can download it.)
"""

from __future__ import annotations

import ast
import re
from pathlib import Path

import pytest
import torch

ROOT = Path(__file__).resolve().parents[1]
OLD = "1.0"  # present long before any release attnlib could admit

# The release that introduced each torch API attnlib uses. Recorded by hand from PyTorch's release
# notes and docs; only entries newer than 1.x carry a real version, everything else is OLD.
SINCE: dict[str, str] = {
    # the ones that set the floor
    "torch.nn.functional.scaled_dot_product_attention": "2.0",
    "torch.nn.functional.scaled_dot_product_attention(scale=)": "2.1",
    "torch.nn.LayerNorm(bias=)": "2.1",
    "torch.utils._python_dispatch.TorchDispatchMode": "2.0",  # private; stable shape since 2.0
    "torch.load(weights_only=)": "1.13",
    "torch.autocast": "1.10",
    # with CUDA's amp; a device-type argument since 2.4 (attnlib falls back to the two old functions)
    "torch.is_autocast_enabled": "1.6",
    "torch.is_autocast_cpu_enabled": "1.10",  # with CPU autocast
    "torch.nan_to_num": "1.8",
    "torch.broadcast_shapes": "1.8",
    "torch.arccos": "1.8",
    "torch.optim.AdamW": "1.2",
    "Tensor.isneginf": "1.7",
    "Tensor.amax": "1.7",
    "Tensor.nan_to_num": "1.8",
    "Tensor.isposinf": "1.7",  # called as np.isposinf (viz); the collector only sees the name
    "Tensor.ravel": "1.8",  # np.ravel (viz)
    "Tensor.unique": OLD,  # np.unique (viz)
    "Tensor.is_complex": "1.6",
    "Tensor.real": "1.6",  # _validate.real (train); the collector only sees the name
    "Tensor.device": OLD,  # _validate.device (attention), not a torch call; the collector sees the name
    "Tensor.__init_subclass__": OLD,  # super().__init_subclass__ (widgets): Python's, not torch's
    "torch.promote_types": "1.5",  # tiled_attention's working dtype
    "Tensor.prod": "1.0",
    "Tensor.new_empty": "1.0",
    # MultiHeadAttention's fused projections: built on "meta", then materialised and drawn part by part
    "torch.nn.Linear(device=)": "1.9",  # the factory kwargs of modules
    "Module.to_empty": "1.10",  # not seen by the collector (a Module method); recorded for the reader
    "torch.aminmax": "1.11",  # _validate.targets: min and max in one reduction
    "torch.default_generator.manual_seed": OLD,  # checks: the reader's RNG put back as it was
    # the padding mask of Decoder (positions from each row's real tokens) and tiled_attention's GQA
    "Tensor.unflatten": "1.13",  # positional int dims (earlier only for named tensors)
    "Tensor.cumsum": "1.0",
    "Tensor.clamp_min": "1.0",
    "Tensor.new_ones": "1.0",
    # old APIs, all in torch 1.0, that the checkers and widgets began to use
    "torch.random.fork_rng": "1.0",
    "torch.random.fork_rng(devices=)": "1.0",
    "torch.nn.functional.cross_entropy(reduction=)": "1.0",
    "torch.clamp": "1.0",
    "torch.clamp(max=)": "1.0",
    "torch.nonzero": "1.0",
    "torch.diag": "1.0",
    "Tensor.roll": "1.0",
    "Tensor.mul": "1.0",
    "Tensor.diagonal": "1.0",
    "Tensor.ne": "1.0",
    "Tensor.atan2": "1.0",
    "torch.get_num_threads": "1.0",
    "torch.cuda.is_initialized": "1.1",
}
for _name in """
torch.Generator torch.Size torch.Tensor torch.allclose torch.arange torch.argsort torch.as_tensor
torch.backends torch.bfloat16 torch.bool torch.cat torch.cos torch.cuda.is_available
torch.cuda.synchronize torch.device torch.dtype torch.empty torch.equal torch.exp torch.float16
torch.float32 torch.float64 torch.full torch.int32 torch.int64 torch.isfinite torch.linspace torch.load
torch.log_softmax torch.logsumexp torch.long torch.manual_seed torch.matmul torch.maximum
torch.multinomial torch.nn.Dropout torch.nn.Embedding torch.nn.GELU torch.nn.LayerNorm torch.nn.Linear
torch.nn.Module torch.nn.ModuleList torch.nn.MultiheadAttention torch.nn.functional
torch.nn.functional.cosine_similarity torch.nn.functional.cross_entropy torch.nn.functional.dropout
torch.nn.functional.layer_norm torch.nn.functional.one_hot torch.nn.functional.softmax
torch.nn.functional.embedding torch.nn.init.normal_ torch.nn.init.zeros_ torch.nn.utils.clip_grad_norm_
torch.no_grad torch.ones torch.ones_like torch.optim.lr_scheduler.LambdaLR torch.rand torch.randint
torch.randn torch.randn_like torch.roll torch.save torch.sin torch.softmax torch.split torch.sqrt
torch.stack torch.tensor torch.topk torch.tril torch.triu torch.uint8 torch.where torch.zeros
torch.zeros_like torch.einsum torch.finfo torch.testing.assert_close
torch.allclose(atol=) torch.allclose(rtol=) torch.arange(device=) torch.arange(dtype=)
torch.argsort(descending=) torch.as_tensor(dtype=) torch.as_tensor(device=) torch.autocast(dtype=)
torch.autocast(enabled=) torch.cat(dim=) torch.empty(dtype=) torch.full(dtype=) torch.full(device=)
torch.load(map_location=) torch.log_softmax(dim=) torch.logsumexp(dim=) torch.logsumexp(keepdim=)
torch.multinomial(generator=) torch.nan_to_num(nan=) torch.nan_to_num(posinf=) torch.nan_to_num(neginf=)
torch.nn.Linear(bias=) torch.nn.functional.cosine_similarity(dim=) torch.nn.functional.cross_entropy(ignore_index=)
torch.nn.functional.dropout(p=) torch.nn.functional.dropout(training=)
torch.nn.functional.scaled_dot_product_attention(attn_mask=)
torch.nn.functional.scaled_dot_product_attention(dropout_p=)
torch.nn.functional.scaled_dot_product_attention(is_causal=) torch.nn.init.normal_(mean=)
torch.nn.init.normal_(std=) torch.ones(dtype=) torch.ones(device=) torch.optim.AdamW(lr=)
torch.optim.AdamW(weight_decay=) torch.optim.AdamW(betas=) torch.rand(generator=) torch.randint(generator=)
torch.randn(dtype=) torch.randn(generator=) torch.randn(device=) torch.roll(dims=) torch.roll(shifts=)
torch.softmax(dim=) torch.split(dim=) torch.tensor(device=) torch.tensor(dtype=) torch.topk(dim=)
torch.topk(largest=) torch.tril(diagonal=) torch.triu(diagonal=) torch.zeros(dtype=) torch.zeros(device=)
torch.nn.MultiheadAttention(batch_first=) torch.nn.MultiheadAttention(bias=)
Tensor.__init__ Tensor.abs Tensor.all Tensor.any Tensor.argmax Tensor.backward Tensor.bool
Tensor.clamp Tensor.clone Tensor.copy_ Tensor.cos Tensor.cpu Tensor.detach Tensor.double
Tensor.element_size Tensor.exp Tensor.expand Tensor.float Tensor.half Tensor.index Tensor.is_floating_point
Tensor.isclose Tensor.isfinite Tensor.isinf Tensor.item Tensor.log Tensor.masked_fill Tensor.max
Tensor.mean Tensor.median Tensor.min Tensor.new_full Tensor.new_zeros Tensor.nonzero Tensor.norm
Tensor.normal_ Tensor.numel Tensor.numpy Tensor.permute Tensor.reshape Tensor.sin Tensor.split
Tensor.sqrt Tensor.sum Tensor.to Tensor.tolist Tensor.transpose Tensor.tril Tensor.unbind
Tensor.unsqueeze Tensor.values Tensor.var Tensor.view Tensor.argsort Tensor.softmax Tensor.masked_fill_
Tensor.zero_ Tensor.fill_ Tensor.repeat Tensor.flatten Tensor.squeeze Tensor.long Tensor.int
Tensor.type Tensor.size Tensor.dim Tensor.matmul Tensor.pow Tensor.round Tensor.contiguous
torch.allclose(equal_nan=) torch.isinf torch.eye torch.eye(dtype=) Tensor.isnan Tensor.select
Tensor.triu Tensor.flip Tensor.where Tensor.floor Tensor.ceil Tensor.log10
torch.nn.init.kaiming_uniform_ torch.nn.init.kaiming_uniform_(a=) torch.nn.init.uniform_
torch.nn.functional.linear
""".split():
    SINCE.setdefault(_name, OLD)


def _version(text: str) -> tuple[int, ...]:
    return tuple(int(p) for p in re.findall(r"\d+", text)[:2])


def torch_floor() -> str:
    text = (ROOT / "pyproject.toml").read_text()
    m = re.search(r'"torch\s*>=\s*([0-9.]+)', text)
    assert m, "pyproject.toml: no 'torch>=X' dependency found"
    return m.group(1)


def _torch_aliases(tree: ast.AST) -> dict[str, str]:
    """The names a module binds to torch or its members: {local name: dotted torch name}."""
    alias: dict[str, str] = {}
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            for a in node.names:
                if a.name.split(".")[0] == "torch":
                    alias[a.asname or "torch"] = a.name if a.asname else "torch"
        elif isinstance(node, ast.ImportFrom) and (node.module or "").split(".")[0] == "torch":
            for a in node.names:
                alias[a.asname or a.name] = f"{node.module}.{a.name}"
    return alias


def _dotted(n: ast.AST, alias: dict[str, str]) -> str | None:
    """The torch name an attribute chain (torch.nn.functional.x, F.x) spells, or None."""
    parts = []
    while isinstance(n, ast.Attribute):
        parts.append(n.attr)
        n = n.value
    if isinstance(n, ast.Name) and n.id in alias:
        return ".".join([alias[n.id], *parts[::-1]])
    return None


def _name_use(node: ast.AST, alias: dict[str, str]) -> str | None:
    """The torch name a node refers to, or None."""
    if isinstance(node, ast.Attribute):
        return _dotted(node, alias)
    if isinstance(node, ast.Name):
        return alias.get(node.id)
    return None


def _call_uses(node: ast.Call, alias: dict[str, str]) -> list[str]:
    """A call's uses: ``name(kw=)`` for each keyword of a torch function, else ``Tensor.method``
    for a method that torch.Tensor has."""
    func = node.func
    d = _dotted(func, alias) if isinstance(func, ast.Attribute) else (
        alias.get(func.id) if isinstance(func, ast.Name) else None)
    if d:
        return [f"{d}({k.arg}=)" for k in node.keywords if k.arg]
    if isinstance(func, ast.Attribute) and hasattr(torch.Tensor, func.attr):
        return [f"Tensor.{func.attr}"]
    return []


def torch_uses(package: Path = ROOT / "attnlib") -> dict[str, set[str]]:
    """Every torch name, torch keyword argument and Tensor method used under ``package``, with files."""
    uses: dict[str, set[str]] = {}
    for path in sorted(package.rglob("*.py")):
        tree = ast.parse(path.read_text(), filename=str(path))
        alias = _torch_aliases(tree)
        rel = str(path.relative_to(package.parent))
        names = set()
        for node in ast.walk(tree):
            d = _name_use(node, alias)
            if d:
                names.add(d)
            if isinstance(node, ast.Call):
                for use in _call_uses(node, alias):
                    uses.setdefault(use, set()).add(rel)
        for n in names:  # keep the longest chains only (torch.nn.functional.x, not torch.nn)
            if not any(o.startswith(n + ".") for o in names):
                uses.setdefault(n, set()).add(rel)
    return uses


def test_every_torch_api_attnlib_uses_is_recorded():
    uses = torch_uses()
    assert len(uses) > 50, "the audit found suspiciously few torch uses"
    missing = {name: sorted(files) for name, files in uses.items() if name not in SINCE}
    assert not missing, (
        "attnlib uses torch APIs this audit does not know; look up the torch release that introduced "
        f"each and add it to SINCE in {Path(__file__).name}: {missing}"
    )


def test_no_torch_api_newer_than_the_pyproject_floor():
    floor = torch_floor()
    uses = torch_uses()
    too_new = {n: (SINCE[n], sorted(f)) for n, f in uses.items() if n in SINCE and _version(SINCE[n]) > _version(floor)}
    assert not too_new, f"pyproject admits torch>={floor}, but attnlib uses newer APIs: {too_new}"


def test_the_floor_is_what_the_audit_needs():
    """The floor is no lower than the newest API in use (else it promises too much)."""
    uses = torch_uses()
    newest = max((_version(SINCE[n]) for n in uses if n in SINCE), default=(1, 0))
    assert _version(torch_floor()) >= newest


@pytest.mark.parametrize("api", ["torch.nn.LayerNorm(bias=)", "torch.nn.functional.scaled_dot_product_attention(scale=)"])
def test_the_audit_sees_the_apis_that_set_the_floor(api):
    # a guard on the collector itself: these two keyword arguments are why the floor is 2.1
    assert api in torch_uses()


def test_installed_torch_is_admitted():
    assert _version(torch.__version__) >= _version(torch_floor())
