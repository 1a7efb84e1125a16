"""The one place where names from a model file become Python identifiers.

Names from a model are data: they only reach generated code through `identifier` /
`class_name` (which keep [A-Za-z0-9_] and never give a keyword, builtin or dunder), through
`repr` (string literals) or through `doc_text` (docstrings).
"""

from __future__ import annotations

import builtins
import keyword
import re
import unicodedata

RESERVED = (
    set(keyword.kwlist)
    | set(keyword.softkwlist)
    | set(dir(builtins))
    | {"self", "torch", "nn", "F", "math", "forward", "training", "Path", "np"}
    | {"build_model", "load_model", "WEIGHTS_DIR", "super", "cls"}
)
# Attribute names nn.Module already uses.
MODULE_ATTRS = {"training", "forward", "parameters", "buffers", "children", "modules", "state_dict",
                "eval", "train", "cuda", "cpu", "to", "type", "half", "float", "double", "apply",
                "register_buffer", "register_parameter", "add_module", "zero_grad", "weight", "bias"}


def identifier(text: str, default: str = "x") -> str:
    """snake_case ASCII identifier from any text; never a keyword/builtin."""
    text = unicodedata.normalize("NFKD", text).encode("ascii", "ignore").decode()
    text = re.sub(r"([a-z0-9])([A-Z])", r"\1_\2", text)
    text = re.sub(r"[^A-Za-z0-9]+", "_", text).strip("_").lower()
    if not text:
        text = default
    if text[0].isdigit():
        text = f"{default}_{text}"
    if text in RESERVED or text in MODULE_ATTRS:
        text = f"{text}_"
    return text


def class_name(text: str, default: str = "Block") -> str:
    """CamelCase class name: 'bottleneck_v2' -> 'BottleneckV2', 'unit_3' -> 'Unit'."""
    text = unicodedata.normalize("NFKD", text).encode("ascii", "ignore").decode()
    words = [w for w in re.split(r"[^A-Za-z0-9]+", text) if w]
    name = "".join(w[:1].upper() + w[1:] for w in words)
    name = re.sub(r"\d+$", "", name) if not re.search(r"V\d+$", name) else name
    if not name or not name[0].isalpha():
        name = default + name
    if name in RESERVED or keyword.iskeyword(name):
        name += "_"
    return name


def doc_text(text: str) -> str:
    """Any text, safe inside a triple-quoted docstring: backslashes, quotes, line breaks, NUL
    and non-ASCII characters (look-alikes included) are written as escapes."""
    return text.encode("unicode_escape").decode("ascii").replace('"', '\\"')


def role_name(text: str) -> str:
    """The scope's role without its instance number: 'unit_17' -> 'unit', 'conv2' -> 'conv2'."""
    return re.sub(r"_\d+$", "", text)


class Namespace:
    """Hands out unique identifiers within one scope (attributes, locals, classes)."""

    def __init__(self, taken: set[str] | None = None) -> None:
        self.taken = set(taken or ())

    def create(self, base: str) -> str:
        name, counter = base, 1
        while name in self.taken:
            counter += 1
            name = f"{base}_{counter}"
        self.taken.add(name)
        return name


# ops a mask goes through on its way into attention (cast, reshape, compare, combine)
MASK_PATH = {"cast", "unsqueeze", "reshape", "expand", "expand_to", "broadcast_to", "slice",
             "index", "squeeze", "logical_and", "logical_or", "logical_not", "equal", "not_equal",
             "less", "greater", "less_equal", "greater_equal", "where", "select", "sub", "mul",
             "add", "causal_mask", "minimum", "maximum", "transpose", "identity"}
GENERATED_INPUT = re.compile(r"(keras_tensor|input|inputs|args|x)(_\d+)*")


def role_names(graph, refs: list[str]) -> list[str]:
    """A module's forward parameters named by what they hold: a graph input by its own name
    (`padding_mask`), a mask made from one `attention_mask`, a float sequence [N, T, C]
    `hidden_states`, a rotary embedding's angles `cos` and `sin`, anything else `x`; unique
    in order (`hidden_states_2`)."""
    names = Namespace({"self"})
    return [names.create(_role(graph, ref)) for ref in refs]


def _role(graph, ref: str) -> str:
    name = ref.rpartition(":")[0]
    if name not in graph.nodes and not GENERATED_INPUT.fullmatch(name):
        return identifier(name)
    node = graph.nodes.get(name)
    if node is not None and node.op == "rotary_embedding":  # (made once, passed down)
        return ("cos", "sin")[int(ref.rpartition(":")[2]) % 2]
    info = graph.tensor(ref)
    if info.dtype == "bool" or _from_mask_input(graph, ref):
        return "attention_mask"
    if info.dtype.startswith(("float", "bfloat")) and info.rank == 3:
        return "hidden_states"
    return "x"


def _from_mask_input(graph, ref: str, depth: int = 8) -> bool:
    """`ref` is a graph input named as a mask, or made from one through MASK_PATH ops only."""
    name = ref.rpartition(":")[0]
    node = graph.nodes.get(name)
    if node is None:
        return "mask" in name.lower()
    if depth == 0 or node.op not in MASK_PATH or node.outputs[0].size:
        return False
    if node.outputs[0].dtype.startswith(("float", "bfloat")) and node.outputs[0].shape[-1:] != [None]:
        return False  # (a float mask is over the keys: its last size is the run-time length)
    return any(_from_mask_input(graph, source, depth - 1) for source in node.inputs)
