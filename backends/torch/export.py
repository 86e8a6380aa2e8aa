"""A compiled candidate as plain torch: one readable Python file, or an ONNX model.

Both start from :func:`plain_module`: the candidate traced again by ``torch.fx``
with a tracer whose leaves are torch's own modules (``nn.Linear``, ``nn.Conv2d``,
``nn.LayerNorm``, ...), so autoarch's blocks (``backends/torch/*.py``) are inlined
into torch calls. What tracing cannot go through is replaced by an equivalent:

- the custom kernels (``kernels.rational``, ``kernels.gla``) by their torch
  references, called as functions whose source the Python file carries;
- a block whose forward has data-dependent Python (``moe``'s routing) or writes
  into a tensor (``attention``'s symmetric matrices) by a traceable forward that
  computes the same;
- a sparsity mask by the masked weight itself (``parametrize`` removed, the masked
  values kept), so the file holds the weights the model computes with.

:func:`to_python` writes the traced graph out as an ``nn.Module`` class: its
``__init__`` builds each leaf module from its constructor arguments and registers
the parameters and buffers the forward reads; its ``forward`` is fx's generated
code. The weights go in a state dict file beside it, which the file's ``load()``
reads. :func:`to_onnx` exports the same module with ``torch.onnx`` (dynamic batch
axis). Both check their result against the compiled module before returning it.
"""

from __future__ import annotations

import contextlib
import copy
import inspect
import io
import math
import operator
import re
import textwrap
import types
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

import torch
import torch.fx as fx
import torch.nn.functional as F  # noqa: N812
from torch import nn
from torch.nn.utils import parametrize

from ... import kernels
from ...dsl.errors import CommandError
from ...kernels.gla import _chunked, _read_final_state
from ...kernels.rational import _grouped, _p_q, _reference
from .attention import Attention
from .kan import BSplineKAN
from .mlp import MixtureOfExperts
from .shape_ops import patchify

#: how close the exported model's outputs must be to the compiled module's
PY_ATOL = 1e-5
ONNX_ATOL = 1e-4
#: examples in the batch the checks run (the export's own trace uses another size,
#: so a batch size baked into the export shows as a mismatch)
CHECK_BATCH = 3
TRACE_BATCH = 2


class ExportError(CommandError):
    """A candidate that cannot be exported in the format asked for (one line)."""


# ---- the references that stand in for the kernels ----------------------------------


def rational_unit(x: torch.Tensor, numerator: torch.Tensor,
                  denominator: torch.Tensor) -> torch.Tensor:
    """KAT's group-rational unit P(x) / (1 + sum_i |b_i| |x|^i), per channel group."""
    return _reference(x, numerator, denominator)


def gated_linear_attention(q: torch.Tensor, k: torch.Tensor, v: torch.Tensor,
                           log_gates: torch.Tensor, causal: bool = True, *,
                           normalize: bool = True, chunk: int = 16) -> torch.Tensor:
    """Gated linear attention: causal in chunks of ``chunk`` positions, or every query
    reading the final state."""
    cum = torch.cumsum(log_gates, dim=-2)
    if not causal:
        return _read_final_state(q, k * torch.exp(cum[..., -1:, :] - cum), v, normalize)
    return _chunked(q, k, v, cum, normalize, chunk)


#: kernel -> (its stand-in, the functions whose source the Python file needs for it, in order)
STAND_INS: dict[Callable[..., Any], tuple[Callable[..., Any], tuple[Callable[..., Any], ...]]] = {
    kernels.rational: (rational_unit, (_grouped, _p_q, _reference, rational_unit)),
    kernels.gla: (gated_linear_attention, (_read_final_state, _chunked, gated_linear_attention)),
}
#: functions the lowering calls by name (``torch.fx.wrap``): their source goes in the file
OWN_FUNCTIONS: dict[Callable[..., Any], tuple[Callable[..., Any], ...]] = {
    patchify: (patchify,),
    **{ref: deps for ref, deps in STAND_INS.values()},
}


# ---- traceable forms of the blocks that are not traceable as they are ---------------


def _moe_forward(m: MixtureOfExperts, x: torch.Tensor) -> torch.Tensor:
    """MixtureOfExperts.forward without the data-dependent skip of an idle expert (an
    expert with no rows adds nothing) and without the auxiliary loss (training only)."""
    t = x.reshape(-1, x.shape[-1])
    probs = torch.softmax(m.router(t), dim=-1)
    gate, idx = probs.topk(m.top_k, dim=-1)
    out = torch.zeros_like(t)
    for e, expert in enumerate(m.experts):
        rows, slot = (idx == e).nonzero(as_tuple=True)
        out = out.index_add(0, rows, expert(t[rows]) * gate[rows, slot, None])
    return out.reshape(x.shape)


def _bspline_forward(m: BSplineKAN, x: torch.Tensor) -> torch.Tensor:
    """BSplineKAN.forward on any leading axes (the bases and both linears are per
    position), so no reshape needs the leading shape unpacked."""
    weight = (m.spline_weight * m.spline_scaler[..., None]).flatten(1)
    return m.base(F.silu(x)) + F.linear(m.bases(x).flatten(-2), weight)


def _symmetric_by_scatter(m: Attention) -> torch.Tensor:
    """Attention.symmetric without item assignment: the upper triangles scattered
    into zeros at their flat positions."""
    h, dk = m.h, m.dk
    index = (m.rows * dk + m.cols).expand(h, -1)
    upper = m.a.new_zeros(h, dk * dk).scatter(1, index, m.a).view(h, dk, dk)
    return upper + upper.transpose(1, 2) - torch.diag_embed(upper.diagonal(dim1=1, dim2=2))


#: block class -> the forward traced in its place
FORWARDS: dict[type, Callable[..., Any]] = {
    MixtureOfExperts: _moe_forward,
    BSplineKAN: _bspline_forward,
}
#: block class -> {method name: replacement} for the time its forward is traced
METHODS: dict[type, dict[str, Callable[..., Any]]] = {
    Attention: {"symmetric": _symmetric_by_scatter},
}


def is_torch_leaf(m: nn.Module) -> bool:
    """A module of torch's own (``torch.nn``) with no submodules: kept as a module."""
    return type(m).__module__.startswith("torch.nn.modules.") and next(m.children(), None) is None


class PlainTracer(fx.Tracer):
    """Traces through everything but torch's own leaf modules; kernels become calls."""

    def __init__(self) -> None:
        super().__init__(autowrap_functions=tuple(STAND_INS))
        # buffers as graph inputs (get_attr), not as constants folded at trace time
        self.proxy_buffer_attributes = True

    def is_leaf_module(self, m: nn.Module, module_qualified_name: str) -> bool:
        return is_torch_leaf(m)

    def call_module(self, m: nn.Module, forward: Callable[..., Any], args: tuple[Any, ...],
                    kwargs: dict[str, Any]) -> Any:
        own = FORWARDS.get(type(m))
        if own is not None:
            return own(m, *args, **kwargs)
        methods = METHODS.get(type(m), {})
        for name, fn in methods.items():  # an instance attribute shadows the method
            object.__setattr__(m, name, types.MethodType(fn, m))
        try:
            return super().call_module(m, forward, args, kwargs)
        finally:
            for name in methods:
                m.__dict__.pop(name, None)


# ---- the plain module ---------------------------------------------------------------


def plain_module(model: nn.Module) -> fx.GraphModule:
    """``model`` (a compiled candidate) as a GraphModule of torch calls and torch's leaf
    modules only, its submodules, parameters and buffers at the top level.

    The result computes what ``model`` does (in eval mode; a copy, ``model`` is left as
    it is) and imports nothing of autoarch but the kernels' torch references.
    """
    work = copy.deepcopy(model)
    _bake_masks(work)
    work.eval()
    tracer = PlainTracer()
    try:
        graph = tracer.trace(work)
    except Exception as e:  # a user's op whose forward fx cannot trace, say
        raise ExportError(f"cannot trace the model into plain torch: {_first_line(e)}",
                          hint="an op whose forward has Python control flow on tensor "
                               "values cannot be exported") from None
    for node in graph.nodes:
        if node.op == "call_function" and node.target in STAND_INS:
            node.target = STAND_INS[node.target][0]
            node.kwargs = {k: v for k, v in node.kwargs.items() if k != "impl"}
    fx.GraphModule(work, graph)  # owns the graph, for the purity checks of:
    graph.eliminate_dead_code()
    root = nn.Module()
    names: dict[str, str] = {}
    for node in graph.nodes:
        if node.op not in ("call_module", "get_attr"):
            continue
        if node.target not in names:
            flat = _unique(re.sub(r"\W", "_", node.target), set(names.values()))
            names[node.target] = flat
            found = _fetch(work, node.target)
            if node.op == "call_module":
                root.add_module(flat, found)
            elif isinstance(found, nn.Parameter):
                root.register_parameter(flat, found)
            else:
                root.register_buffer(flat, found)
        node.target = names[node.target]
    plain = fx.GraphModule(root, graph, class_name=type(model).__name__)
    for attr in ("autoarch_input_shape", "autoarch_output_shape"):
        if hasattr(model, attr):
            setattr(plain, attr, getattr(model, attr))
    return plain


def _bake_masks(work: nn.Module) -> None:
    """Each parametrized weight (a sparsity mask) becomes a plain parameter holding its
    masked values.

    Not ``parametrize.remove_parametrizations``: a deep copy shares its module classes
    with the original, and removing the last parametrization deletes the weight's
    property from that shared class, which would break the original model.
    """
    for m in list(work.modules()):
        if not parametrize.is_parametrized(m):
            continue
        values = {}
        for name, plist in m.parametrizations.items():
            values[name] = (getattr(m, name).detach().clone(), plist.original.requires_grad)
        m.__class__ = type(m).__bases__[0]  # this instance only: the class is shared
        del m._modules["parametrizations"]
        for name, (value, grad) in values.items():
            m.register_parameter(name, nn.Parameter(value, requires_grad=grad))


def _fetch(root: nn.Module, target: str) -> Any:
    obj: Any = root
    for part in target.split("."):
        obj = getattr(obj, part)
    return obj


def _unique(name: str, taken: set[str]) -> str:
    out, k = name, 1
    while out in taken:
        k += 1
        out = f"{name}_{k}"
    return out


def _first_line(e: BaseException) -> str:
    text = (str(e).strip().splitlines() or [type(e).__name__])[0]
    return text if len(text) <= 300 else text[:297] + "..."


_ANSI = re.compile(r"\x1b\[[0-9;]*m")


def _onnx_reason(e: BaseException) -> str:
    """What torch.onnx says went wrong: the op it has no ONNX function for, if that is
    it, else the first line of its exception summary (its first line says nothing)."""
    text = _ANSI.sub("", str(e))
    missing = re.search(r"No ONNX function found for <OpOverload\(op='([^']+)'", text)
    if missing:
        return f"torch.onnx has no ONNX function for {missing.group(1)}"
    summary = text.split("## Exception summary", 1)
    if len(summary) == 2:
        for line in summary[1].splitlines():
            found = re.match(r"<class '[\w.]*?(\w+)'>: (.*)", line.strip())
            if found:
                return _first_line(RuntimeError(f"{found.group(1)}: {found.group(2)}"))
    return _first_line(RuntimeError(text))


# ---- Python source --------------------------------------------------------------------


@dataclass
class PythonExport:
    """The Python file's text and the state dict its ``load()`` reads."""

    source: str
    state_dict: dict[str, torch.Tensor]
    class_name: str


def to_python(model: nn.Module, *, weights_file: str, doc: str = "",
              example: torch.Tensor | None = None) -> PythonExport:
    """The candidate as the source of one Python module of plain ``torch.nn`` code.

    The module defines the model's class (named as the compiled module's) and
    ``load(path=<weights_file beside this file>)``, which builds the class, loads the
    state dict and returns the model in eval mode. ``doc`` opens the module docstring.
    The source is run here (in a namespace of its own) and its outputs compared with
    ``model``'s on ``example`` (random inputs by default) before it is returned.

    Example:
        >>> out = to_python(model, weights_file="model.pt")
        >>> Path("model.py").write_text(out.source); torch.save(out.state_dict, "model.pt")
    """
    plain = plain_module(model)
    name = type(model).__name__
    if not name.isidentifier() or name in ("nn", "torch", "load"):
        name = "Model"
    lines_init, state = _init_lines(plain)
    forward, helpers, needs = _forward_source(plain)
    shape = tuple(getattr(model, "autoarch_input_shape", ()))
    source = _module_source(name, doc, weights_file, shape, lines_init, forward, helpers,
                            needs)
    out = PythonExport(source, state, name)
    check_python(out, model, example)
    return out


def _init_lines(plain: fx.GraphModule) -> tuple[list[str], dict[str, torch.Tensor]]:
    """``__init__``'s statements, and the state dict they make room for."""
    lines: list[str] = []
    state: dict[str, torch.Tensor] = {}
    for name, mod in plain.named_children():
        text = _constructor(mod)
        lines.append(f"self.{name} = {text}")
        params = list(mod.parameters())
        if params and not any(p.requires_grad for p in params):
            lines.append(f"self.{name}.requires_grad_(False)  # frozen")
        for k, v in mod.state_dict().items():
            state[f"{name}.{k}"] = v.detach().clone()
    for name, p in plain.named_parameters(recurse=False):
        empty = _empty(p)
        flag = "" if p.requires_grad else ", requires_grad=False"
        lines.append(f"self.{name} = nn.Parameter({empty}{flag})")
        state[name] = p.detach().clone()
    for name, b in plain.named_buffers(recurse=False):
        lines.append(f"self.register_buffer({name!r}, {_empty(b)})")
        state[name] = b.detach().clone()
    return lines, state


def _empty(t: torch.Tensor) -> str:
    shape = tuple(t.shape)
    dtype = "" if t.dtype == torch.float32 else f", dtype={t.dtype}"
    return f"torch.empty({shape}{dtype})"


def _constructor(mod: nn.Module) -> str:
    """``nn.Linear(in_features=..., ...)``: torch's own modules print their constructor's
    arguments (``extra_repr``); the text is rebuilt here and checked against ``mod``."""
    cls = type(mod)
    text = f"nn.{cls.__name__}({mod.extra_repr()})"
    try:
        if getattr(nn, cls.__name__, None) is not cls:
            raise ValueError(f"torch.nn.{cls.__name__} is not {cls.__qualname__}")
        rebuilt = eval(text, {"nn": nn, "torch": torch})  # noqa: S307 - text made above
    except Exception as e:
        raise ExportError(f"cannot write the constructor of {cls.__name__}: "
                          f"{_first_line(e)}") from None
    mine = {k: (tuple(v.shape), v.dtype) for k, v in mod.state_dict().items()}
    theirs = {k: (tuple(v.shape), v.dtype) for k, v in rebuilt.state_dict().items()}
    if mine != theirs or repr(rebuilt) != repr(mod):
        raise ExportError(f"cannot write the constructor of {cls.__name__}: {text} "
                          f"builds {rebuilt!r}, not {mod!r}")
    return text


_DELETES = re.compile(r";  (?:\w+ = )+None$")
#: a torch function as fx names it (its qualified name, often in ``torch._C``): written
#: under its public name instead (``F.gelu``, ``torch.special.i0e``) where it has one
_QUALIFIED = re.compile(r"\btorch\.(?:_C\.[\w.]+|nn\.functional\.\w+)")
_PUBLIC = (("F", "torch.nn.functional"), ("torch", "torch"), ("torch.special", "torch.special"),
           ("torch.linalg", "torch.linalg"), ("torch.fft", "torch.fft"))


def _forward_source(plain: fx.GraphModule) -> tuple[str, list[str], set[str]]:
    """The forward's source, the helper definitions it needs, and the other globals."""
    code = plain.graph.python_code(root_module="self")
    src = code.src[code.src.index("def forward"):]
    node_names = {n.name for n in plain.graph.nodes}
    helpers: list[str] = []
    defined: set[str] = set()
    needs: set[str] = set()
    renames: dict[str, str] = {}
    for gname, obj in code.globals.items():
        if not re.search(rf"\b{re.escape(gname)}\b", src):
            continue
        if obj in OWN_FUNCTIONS:
            for fn in OWN_FUNCTIONS[obj]:
                if fn.__name__ not in defined:
                    defined.add(fn.__name__)
                    helpers.append(_source_of(fn))
            want = obj.__name__
            if want in node_names:  # a local of the same name would hide the function
                raise ExportError(f"internal: the name {want} is taken in the forward")
            renames[gname] = want
        elif gname in ("inf", "nan"):
            needs.add(gname)
        elif obj is torch or gname == "torch":
            pass
        elif obj is operator:
            needs.add("operator")
        elif obj is math:
            needs.add("math")
        else:
            raise ExportError(f"cannot export a call of {obj!r} ({gname}) to Python",
                              hint="the op that calls it has no plain-torch form yet")
    for old, new in renames.items():
        src = re.sub(rf"\b{re.escape(old)}\b", new, src)
    src = _QUALIFIED.sub(_public_name, src)
    lines = [_DELETES.sub("", line.rstrip()) for line in src.splitlines()]
    body = "\n".join(line for line in lines if line.strip())
    return body, helpers, needs


def _public_name(m: re.Match[str]) -> str:
    import importlib

    obj: Any = torch
    for part in m.group(0).split(".")[1:]:
        obj = getattr(obj, part, None)
    if obj is None:
        return m.group(0)
    for shown, module in _PUBLIC:
        space = vars(importlib.import_module(module))
        names = sorted(k for k, v in space.items() if v is obj and not k.startswith("_"))
        if names:
            return f"{shown}.{names[0]}"
    return m.group(0)


def _source_of(fn: Callable[..., Any]) -> str:
    src = textwrap.dedent(inspect.getsource(fn))
    # annotations stay valid Python; noqa marks mean nothing outside autoarch's linting
    return re.sub(r"  # noqa[^\n]*", "", src).rstrip() + "\n"


def _module_source(name: str, doc: str, weights_file: str, shape: tuple[int, ...],
                   init: list[str], forward: str, helpers: list[str], needs: set[str]) -> str:
    doc_lines = [doc.strip()] if doc.strip() else [f"The model {name}, in plain torch."]
    doc_lines += [
        "",
        "Plain torch.nn code: it needs torch, nothing else. The trained weights are in",
        f"{weights_file} beside this file:",
        "",
        "    model = load()                      # eval mode",
        "    y = model(x)                        # x: [batch, *input shape]",
        "",
        "`python THIS_FILE` loads the model and runs it on one random batch.",
    ]
    out = ['"""' + "\n".join(doc_lines).replace('"""', "'''") + '\n"""', ""]
    imports = sorted(f"import {m}" for m in needs & {"math", "operator"})
    out += imports + ["from pathlib import Path", "", "import torch",
                      "import torch.nn.functional as F  # noqa: N812", "from torch import nn",
                      ""]
    out += [f"{c} = float({c!r})" for c in sorted(needs & {"inf", "nan"})]
    out += [f"WEIGHTS = Path(__file__).with_name({weights_file!r})",
            f"INPUT_SHAPE = {shape!r}  # one example's shape; the batch axis comes first", "",
            ""]
    for h in helpers:
        out += [h, ""]
    out += [f"class {name}(nn.Module):", "    def __init__(self):",
            "        super().__init__()"]
    out += [f"        {line}" for line in init]
    out += [""]
    out += [textwrap.indent(forward, "    "), "", ""]
    out += [f"def load(path=WEIGHTS, map_location=\"cpu\") -> {name}:",
            f'    """{name} with the weights of ``path`` (a state dict), in eval mode."""',
            f"    model = {name}()",
            "    model.load_state_dict(torch.load(path, map_location=map_location, "
            "weights_only=True))",
            "    return model.eval()", "", ""]
    out += ['if __name__ == "__main__":', "    model = load()",
            "    x = torch.randn(2, *INPUT_SHAPE)",
            "    print(model(x).shape)", ""]
    return "\n".join(out)


def check_python(out: PythonExport, model: nn.Module, example: torch.Tensor | None = None
                 ) -> None:
    """Run ``out``'s source (no autoarch in its namespace) and compare with ``model``."""
    namespace: dict[str, Any] = {"__name__": "autoarch_export_check", "__file__": "<export>"}
    try:
        exec(compile(out.source, "<export>", "exec"), namespace)  # noqa: S102 - our text
        exported = namespace[out.class_name]()
        exported.load_state_dict(out.state_dict)
        exported.eval()
    except Exception as e:
        raise ExportError(f"internal: the exported Python does not load: "
                          f"{_first_line(e)}") from None
    x = example if example is not None else _example(model, CHECK_BATCH)
    want = _run(model, x)
    try:
        got = _run(exported, x)
    except Exception as e:
        raise ExportError(f"internal: the exported Python does not run: "
                          f"{_first_line(e)}") from None
    _compare(got, want, PY_ATOL, "the exported Python")


def _example(model: nn.Module, batch: int) -> torch.Tensor:
    shape = getattr(model, "autoarch_input_shape", None)
    if shape is None:
        raise ExportError("internal: the model does not say its input shape")
    gen = torch.Generator().manual_seed(0)
    return torch.randn(batch, *shape, generator=gen)


def _run(model: nn.Module, x: torch.Tensor) -> torch.Tensor:
    was = model.training
    model.eval()
    try:
        with torch.no_grad():
            return model(x)
    finally:
        model.train(was)


def _compare(got: Any, want: torch.Tensor, atol: float, what: str) -> None:
    got = torch.as_tensor(got)
    if tuple(got.shape) != tuple(want.shape):
        raise ExportError(f"internal: {what} gives shape {list(got.shape)}, the model "
                          f"{list(want.shape)}")
    err = (got.to(want.dtype) - want).abs().max().item() if want.numel() else 0.0
    if not err <= atol:
        raise ExportError(f"internal: {what} differs from the model by {err:.3g} "
                          f"(tolerance {atol:g})")


# ---- ONNX -------------------------------------------------------------------------


def to_onnx(model: nn.Module, *, op_of: Callable[[str], str | None] | None = None) -> bytes:
    """The candidate as an ONNX model (opset of torch's exporter, dynamic batch axis),
    checked with onnxruntime against ``model`` before it is returned.

    ``op_of(module_name)`` describes the op a top-level submodule lowers (``op 'moe'
    at file:line:col``), for the message when one cannot be expressed in ONNX.
    """
    ort = _onnx_modules()
    plain = plain_module(model)
    try:
        data = _export_onnx(plain, _example(model, TRACE_BATCH))
    except Exception as e:
        culprit = _failing_part(model, op_of)
        if culprit is not None:
            raise ExportError(f"{culprit} cannot be expressed in ONNX: {_onnx_reason(e)}",
                              hint="export it with --format py or pt") from None
        raise ExportError(f"torch.onnx cannot export this model: {_onnx_reason(e)}",
                          hint="export it with --format py or pt") from None
    x = _example(model, CHECK_BATCH)
    want = _run(model, x)
    try:
        session = ort.InferenceSession(data, providers=["CPUExecutionProvider"])
        feed = {session.get_inputs()[0].name: x.numpy()}
        got = session.run(None, feed)[0]
    except Exception as e:
        raise ExportError(f"onnxruntime cannot run the exported model: {_first_line(e)}",
                          hint="export it with --format py or pt") from None
    _compare(torch.from_numpy(got), want, ONNX_ATOL, "onnxruntime's output")
    return data


def _onnx_modules() -> Any:
    try:
        import onnx  # noqa: F401
        import onnxruntime as ort
        import onnxscript  # noqa: F401  (torch's exporter needs it)
    except ImportError as e:
        raise ExportError(f"ONNX export needs onnx, onnxscript and onnxruntime ({e.name} "
                          "is missing)", hint='pip install "autoarch[export]"') from None
    return ort


def _export_onnx(module: nn.Module, example: torch.Tensor) -> bytes:
    import logging
    import warnings

    batch = torch.export.Dim("batch", min=1)
    quiet = logging.getLogger("torch.onnx")  # it logs what it skips (torchvision's ops)
    level = quiet.level
    quiet.setLevel(logging.ERROR)
    try:
        with warnings.catch_warnings(), contextlib.redirect_stdout(io.StringIO()):
            warnings.simplefilter("ignore")
            program = torch.onnx.export(module, (example,), dynamo=True, external_data=False,
                                        dynamic_shapes=({0: batch},), verbose=False)
    finally:
        quiet.setLevel(level)
    if program is None:
        raise RuntimeError("torch.onnx.export returned no program")
    buf = io.BytesIO()
    program.save(buf)
    return buf.getvalue()


def _failing_part(model: nn.Module, op_of: Callable[[str], str | None] | None) -> str | None:
    """The first top-level submodule of ``model`` that cannot be exported on its own."""
    inputs = dict(_module_inputs(model))
    for name, mod in model.named_children():
        if name not in inputs:
            continue
        try:
            sub = _wrap_child(mod)
            _export_onnx(plain_module(sub), inputs[name])
        except Exception:
            op = op_of(name) if op_of is not None else None
            return f"{op} (module {name})" if op else f"module {name}"
    return None


def _module_inputs(model: nn.Module) -> Iterator[tuple[str, torch.Tensor]]:
    """Each top-level submodule's input on an example batch."""
    seen: dict[str, torch.Tensor] = {}
    hooks = []
    for name, mod in model.named_children():
        def hook(_m: nn.Module, args: tuple[Any, ...], name: str = name) -> None:
            if args and isinstance(args[0], torch.Tensor) and name not in seen:
                seen[name] = args[0].detach()
        hooks.append(mod.register_forward_pre_hook(hook))
    try:
        _run(model, _example(model, TRACE_BATCH))
    finally:
        for h in hooks:
            h.remove()
    yield from seen.items()


def _wrap_child(mod: nn.Module) -> nn.Module:
    class _One(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.inner = mod

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            return self.inner(x)

    return _One()


__all__ = ["ExportError", "PythonExport", "check_python", "plain_module", "to_onnx",
           "to_python"]
