"""The wire between the tests' process and the solution's: framed JSON on a pipe pair, and the
value codec both sides share.

Only plain data crosses by value: None, bool, int, float, complex, str, bytes, bytearray, tuple,
list, set, frozenset, dict, Decimal, Fraction, namedtuple (subclasses of these cross as their
base type). Anything else crosses as a handle naming an object that stays on its own side; the
other side reaches it only through requests. So whatever the solution does to its own process,
the tests' side receives nothing but plain values it rebuilds itself, and handles.

A request is `{"op": ..., "target": handle id, ...}`; its reply is `{"re": "ok", "value": ...}`,
`{"re": "raise", "error": {...}}` or `{"re": "stop"}` (an exhausted iterator). While a request is
out, the other side may send requests of its own (a callback the tests passed in); replies always
answer the innermost open request. Standard library only.
"""

from __future__ import annotations

import json
import os
import struct

HEADER = struct.Struct(">I")
MAX_MESSAGE = 32 * 2**20
MAX_DEPTH = 100
# Python refuses to print ints of more than 4300 digits; past this size they cross in hex.
HEX_INT_BITS = 4000 * 3
MUTABLE = (list, dict, set, bytearray)
# Checked by name: importing decimal and fractions costs more than a whole test run.
EXACT_NUMBERS = {("decimal", "Decimal"), ("fractions", "Fraction")}
PLAIN_BASES = (bool, int, float, complex, str, bytes, bytearray, tuple, list, dict, set, frozenset)


class ProtocolError(Exception):
    """The other side broke the protocol: it died, or sent something that is not a message."""


class Channel:
    def __init__(self, read_fd: int, write_fd: int):
        self.read_fd = read_fd
        self.write_fd = write_fd

    def send(self, message: dict) -> None:
        try:
            body = json.dumps(message).encode()
        except (ValueError, TypeError, RecursionError) as exc:
            raise Unsendable(f"cannot send: {exc}") from None
        if len(body) > MAX_MESSAGE:
            raise Unsendable(f"message of {len(body)} bytes is over {MAX_MESSAGE}")
        data = memoryview(HEADER.pack(len(body)) + body)
        try:
            while data:
                data = data[os.write(self.write_fd, data):]
        except OSError as exc:
            raise ProtocolError(f"the other side is gone ({exc.strerror})") from None

    def receive(self) -> dict:
        size = HEADER.unpack(self._read(HEADER.size))[0]
        if size > MAX_MESSAGE:
            raise ProtocolError(f"message of {size} bytes is over {MAX_MESSAGE}")
        try:
            message = json.loads(self._read(size))
        except (ValueError, RecursionError) as exc:
            raise ProtocolError(f"not a message: {exc}") from None
        if not isinstance(message, dict):
            raise ProtocolError("not a message: not an object")
        return message

    def _read(self, size: int) -> bytes:
        data = bytearray()
        while len(data) < size:
            try:
                chunk = os.read(self.read_fd, size - len(data))
            except OSError as exc:
                raise ProtocolError(f"the other side is gone ({exc.strerror})") from None
            if not chunk:
                raise ProtocolError("the other side is gone")
            data += chunk
        return bytes(data)


class Unsendable(ProtocolError):
    """A value too big or too strange to send; the wire itself is fine."""


class Endpoint:
    """One side of the wire: sends requests, and answers the other side's while it waits."""

    def __init__(self, channel: Channel, objects: Objects):
        self.channel = channel
        self.objects = objects

    def request(self, message: dict) -> dict:
        self.channel.send(message)
        while True:
            incoming = self.channel.receive()
            if "re" in incoming:
                return incoming
            if "op" not in incoming:
                raise ProtocolError("not a request or a reply")
            self.answer(incoming)

    def answer(self, message: dict) -> None:
        reply = self.objects.serve(message)
        try:
            self.channel.send(reply)
        except Unsendable as exc:
            self.channel.send({"re": "raise", "error": {"type": "ValueError", "builtin": True, "args": [],
                                                        "text": f"the result cannot cross to the other side: {exc}"}})


def encode(value, handle, depth: int = 0, active: set | None = None):
    """`value` as JSON data; `handle(obj)` describes what cannot cross by value."""
    active = set() if active is None else active
    if value is None or value is True or value is False:
        return value
    kind = type(value)
    if kind is str:
        return value
    if kind is int:
        return value if value.bit_length() <= HEX_INT_BITS else {"$": "int", "v": hex(value)}
    if kind is float:
        return value
    if (kind.__module__, kind.__name__) in EXACT_NUMBERS:
        return {"$": kind.__name__.lower(), "v": str(value)}
    base = next((b for b in PLAIN_BASES if isinstance(value, b)), None)
    if base is None or depth > MAX_DEPTH or id(value) in active:
        return handle(value)
    if base is not kind:
        return _encode_subclass(value, base, handle, depth, active)
    if base is complex:
        return {"$": "complex", "v": [value.real, value.imag]}
    if base in (bytes, bytearray):
        return {"$": base.__name__, "v": value.hex()}
    active.add(id(value))
    try:
        if base is dict:
            return {"$": "dict", "v": [[encode(k, handle, depth + 1, active), encode(v, handle, depth + 1, active)]
                                       for k, v in value.items()]}
        items = [encode(item, handle, depth + 1, active) for item in value]
        return items if base is list else {"$": base.__name__, "v": items}
    finally:
        active.discard(id(value))


def _encode_subclass(value, base, handle, depth, active):
    fields = getattr(type(value), "_fields", None)
    if base is tuple and isinstance(fields, tuple) and all(isinstance(f, str) for f in fields):
        items = [encode(item, handle, depth + 1, active) for item in tuple.__iter__(value)]
        return {"$": "namedtuple", "name": type(value).__name__, "fields": list(fields), "v": items}
    if base in (bool, int):
        return encode(int(value) if base is int else bool(value), handle, depth, active)
    try:
        return encode(base(value), handle, depth, active)
    except Exception:  # noqa: BLE001 - a subclass that cannot become its base stays where it is
        return handle(value)


def decode(data, resolve, depth: int = 0, state: bool = False):
    """The value `data` stands for; `resolve(info)` turns a handle description into an object.
    With `state`, a snapshot's `state` entries become `State`s."""
    if depth > MAX_DEPTH + 2:
        raise ProtocolError("value nested too deep")
    if data is None or isinstance(data, (bool, int, float, str)):
        return data
    if isinstance(data, list):
        return [decode(item, resolve, depth + 1, state) for item in data]
    if not isinstance(data, dict):
        raise ProtocolError(f"not a value: {type(data).__name__}")
    tag, body = data.get("$"), data.get("v")
    try:
        if tag == "handle":
            return resolve(data)
        if tag == "state" and state:
            return State(str(data["type"]), decode(body, resolve, depth + 1, state))
        if tag == "int":
            return int(body, 16)
        if tag == "decimal":
            import decimal

            return decimal.Decimal(body)
        if tag == "fraction":
            import fractions

            return fractions.Fraction(body)
        if tag == "complex":
            return complex(float(body[0]), float(body[1]))
        if tag in ("bytes", "bytearray"):
            return (bytes if tag == "bytes" else bytearray).fromhex(body)
        if tag == "dict":
            return {decode(k, resolve, depth + 1, state): decode(v, resolve, depth + 1, state) for k, v in body}
        if tag in ("tuple", "set", "frozenset"):
            items = [decode(item, resolve, depth + 1, state) for item in body]
            return {"tuple": tuple, "set": set, "frozenset": frozenset}[tag](items)
        if tag == "namedtuple":
            return _namedtuple(data["name"], data["fields"])(*[decode(item, resolve, depth + 1, state) for item in body])
    except ProtocolError:
        raise
    except Exception as exc:  # noqa: BLE001 - whatever the other side sent, it is its fault
        raise ProtocolError(f"bad {tag} value: {type(exc).__name__}: {exc}") from None
    raise ProtocolError(f"unknown value tag {tag!r}")


_NAMEDTUPLES: dict = {}


def _namedtuple(name: str, fields: list):
    import collections

    key = (str(name), tuple(str(f) for f in fields))
    if key not in _NAMEDTUPLES:
        _NAMEDTUPLES[key] = collections.namedtuple(key[0], key[1], rename=True)
    return _NAMEDTUPLES[key]


class State:
    """What an object is made of, for comparing by value on the tests' side: its type's name and
    its fields. Two objects are equal when both are, whatever their own `__eq__` says."""

    __slots__ = ("type", "value")

    def __init__(self, type_name: str, value):
        self.type = type_name
        self.value = value

    def __eq__(self, other):
        return isinstance(other, State) and self.type == other.type and self.value == other.value

    def __hash__(self):
        return hash(self.type)

    def __repr__(self):
        return f"<{self.type} {self.value!r}>"


def snapshot(value, depth: int = 0, seen: set | None = None):
    """`value` by value all the way down: objects become their type name and fields."""
    seen = set() if seen is None else seen

    def fields(obj):
        if id(obj) in seen or depth > MAX_DEPTH:
            return {"$": "state", "type": "<cycle>", "v": None}
        seen.add(id(obj))
        try:
            return {"$": "state", "type": _type_name(obj), "v": snapshot(_fields_of(obj), depth + 1, seen)}
        finally:
            seen.discard(id(obj))

    return encode(value, fields)


def _type_name(obj) -> str:
    kind = type(obj)
    return f"{getattr(kind, '__module__', '?')}.{getattr(kind, '__qualname__', kind.__name__)}"


def _fields_of(obj) -> dict:
    if callable(obj) or isinstance(obj, type(os)):
        return {"identity": id(obj)}  # functions, classes, modules: equal only to themselves
    found = {}
    if isinstance(getattr(obj, "__dict__", None), dict):
        found.update(obj.__dict__)
    for kind in type(obj).__mro__:
        for name in getattr(kind, "__slots__", ()) if isinstance(getattr(kind, "__slots__", ()), (tuple, list)) else ():
            if hasattr(obj, name):
                found[name] = getattr(obj, name)
    return found if found or hasattr(obj, "__dict__") else {"repr": repr(obj)}


class Objects:
    """This side's objects the other side holds handles to, and the requests it may make on them.

    `callbacks_only` is the tests' side: the solution may call what the tests passed it (a key
    function, a generator), iterate it, index it, and nothing else: no attributes, since a public
    attribute path leads from a generator to its frame's globals and from there anywhere. Its
    errors come back without a traceback, which would quote the tests' lines."""

    CALLBACK_OPS = frozenset({"call", "iter", "next", "len", "bool", "repr", "str", "hash", "getitem"})

    def __init__(self, side: str, proxy, callbacks_only: bool = False, reference=None):
        self.side = side
        self.proxy = proxy  # info -> local stand-in for an object of the other side
        self.reference = reference or (lambda obj: None)  # a stand-in -> the other side's handle
        self.callbacks_only = callbacks_only
        self.by_id: dict[int, object] = {}
        self.ids: dict[int, int] = {}

    def handle(self, obj) -> dict:
        theirs = self.reference(obj)
        if theirs is not None:
            return theirs
        key = self.ids.get(id(obj))
        if key is None or self.by_id.get(key) is not obj:
            key = len(self.by_id) + 1
            self.by_id[key] = obj
            self.ids[id(obj)] = key
        return {"$": "handle", "side": self.side, "id": key, **describe(obj)}

    def resolve(self, info: dict):
        if info.get("side") == self.side:
            try:
                return self.by_id[info["id"]]
            except (KeyError, TypeError):
                raise ProtocolError(f"no such object: {info.get('id')!r}") from None
        return self.proxy(info)

    def encode(self, value):
        return encode(value, self.handle)

    def decode(self, data):
        return decode(data, self.resolve)

    def serve(self, message: dict) -> dict:
        op = message.get("op")
        try:
            if self.callbacks_only and op not in self.CALLBACK_OPS:
                raise PermissionError(f"{op}: not allowed on the tests' objects")
            target = self.by_id[message["target"]]
            if op == "next":
                try:
                    return {"re": "ok", "value": self.encode(next(target))}
                except StopIteration:
                    return {"re": "stop"}
            if op == "snapshot":
                return {"re": "ok", "value": snapshot(target)}
            if op == "call":
                return self._call(target, message)
            return {"re": "ok", "value": self.encode(_perform(op, target, message, self.decode))}
        except BaseException as exc:  # noqa: BLE001 - everything the code raises goes back to the caller
            return {"re": "raise", "error": self.describe_error(exc)}

    def _call(self, target, message: dict) -> dict:
        """Call, and send back the arguments the call changed in place (a list it sorted)."""
        args = self.decode(message.get("args", []))
        kwargs = self.decode(message.get("kwargs", {"$": "dict", "v": []}))
        value = self.encode(target(*args, **kwargs))
        changed = {str(key): self.encode(arg) for key, arg in [*enumerate(args), *kwargs.items()]
                   if type(arg) in MUTABLE}
        return {"re": "ok", "value": value, "changed": changed}

    def describe_error(self, exc: BaseException) -> dict:
        import traceback

        kind = type(exc)
        if self.callbacks_only:
            return {"type": kind.__name__, "builtin": kind.__module__ == "builtins", "text": _safe_str(exc)}
        try:
            args = encode(exc.args, repr)
        except Exception:  # noqa: BLE001
            args = []
        return {
            "type": kind.__name__,
            "builtin": kind.__module__ == "builtins",
            "class": self.handle(kind),
            "args": args,
            "text": _safe_str(exc),
            "traceback": "".join(traceback.format_exception(kind, exc, exc.__traceback__))[-4000:],
        }


def describe(obj) -> dict:
    """What the other side may know of an object without asking: its kind and type name."""
    info = {"type": _type_name(obj), "callable": callable(obj)}
    if isinstance(obj, type(os)):
        info.update(kind="module", module=getattr(obj, "__name__", ""))
    elif isinstance(obj, type) and issubclass(obj, BaseException):
        builtin = next((k.__name__ for k in obj.__mro__ if k.__module__ == "builtins"), "Exception")
        info.update(kind="exception", name=obj.__name__, base=builtin)
    elif isinstance(obj, type):
        info.update(kind="class", name=obj.__name__)
    else:
        info.update(kind="object")
    return info


def _safe_str(value) -> str:
    try:
        return str(value)[:2000]
    except Exception:  # noqa: BLE001
        return f"<unprintable {type(value).__name__}>"


def _perform(op: str, target, message: dict, decode_value):
    import operator

    name = message.get("name")
    if op == "getattr":
        return getattr(target, name)
    if op == "setattr":
        return setattr(target, name, decode_value(message.get("value")))
    if op == "delattr":
        return delattr(target, name)
    if op in ("getitem", "delitem", "contains", "instancecheck", "subclasscheck", "format", "round"):
        other = decode_value(message.get("value"))
        return {
            "getitem": operator.getitem, "delitem": operator.delitem, "contains": operator.contains,
            "instancecheck": lambda cls, obj: isinstance(obj, cls), "subclasscheck": lambda cls, sub: issubclass(sub, cls),
            "format": format, "round": lambda obj, digits: round(obj) if digits is None else round(obj, digits),
        }[op](target, other)
    if op == "setitem":
        return operator.setitem(target, decode_value(message.get("key")), decode_value(message.get("value")))
    if op == "operator":
        function = getattr(operator, name) if name in OPERATORS else None
        if function is None:
            raise ValueError(f"unknown operator {name!r}")
        operands = [target, *(decode_value(v) for v in message.get("others", []))]
        return function(*(reversed(operands) if message.get("reflected") else operands))
    if op == "enter":
        return target.__enter__()
    if op == "exit":
        return target.__exit__(None, None, None)
    unary = {"iter": iter, "len": len, "bool": bool, "repr": repr, "str": str, "hash": hash,
             "int": int, "float": float, "index": operator.index}
    if op in unary:
        return unary[op](target)
    raise ValueError(f"unknown request {op!r}")


OPERATORS = frozenset({
    "add", "sub", "mul", "truediv", "floordiv", "mod", "pow", "matmul", "and_", "or_", "xor", "lshift", "rshift",
    "lt", "le", "gt", "ge", "eq", "ne", "neg", "pos", "abs", "invert",
})
