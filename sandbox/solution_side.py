"""The test harness's untrusted side: the solution's own process, which loads the solution and
answers the tests' requests on it.

Everything here runs next to the solution's code, so nothing here is trusted: the tests' side
takes only plain values and handles from this process, and decides every verdict itself.
Standard library only.
"""

from __future__ import annotations

import os
import sys
import types

import wire


class Callback:
    """An object of the tests' side that the tests passed to the solution (a key function, a
    generator): the solution may call it, iterate it and index it."""

    __slots__ = ("_endpoint", "_info")

    def __init__(self, endpoint, info: dict):
        self._endpoint = endpoint
        self._info = info

    def _ask(self, op: str, **fields):
        reply = self._endpoint.request({"op": op, "target": self._info["id"], **fields})
        if reply.get("re") == "stop":
            raise StopIteration
        if reply.get("re") == "raise":
            error = reply.get("error") or {}
            import builtins

            kind = getattr(builtins, str(error.get("type")), None) if error.get("builtin") else None
            if not (isinstance(kind, type) and issubclass(kind, Exception)):
                kind = RuntimeError
            raise kind(error.get("text", "the tests' callback failed"))
        return self._endpoint.objects.decode(reply.get("value"))

    def __call__(self, *args, **kwargs):
        encode = self._endpoint.objects.encode
        return self._ask("call", args=encode(list(args)), kwargs=encode(dict(kwargs)))

    def __iter__(self):
        return self._ask("iter")

    def __next__(self):
        return self._ask("next")

    def __len__(self):
        return self._ask("len")

    def __bool__(self):
        return self._ask("bool")

    def __getitem__(self, key):
        return self._ask("getitem", value=self._endpoint.objects.encode(key))

    def __hash__(self):
        return self._ask("hash")

    def __repr__(self):
        return self._ask("repr")


def _reference_of(obj) -> dict | None:
    if isinstance(obj, Callback):
        return {"$": "handle", "side": "t", "id": object.__getattribute__(obj, "_info")["id"]}
    return None


def serve(solution_path: str, channel: wire.Channel) -> None:
    """Load the solution, tell the tests' side its top-level names, then answer requests until
    the tests' side closes the wire. Never returns."""
    endpoint = wire.Endpoint(channel, wire.Objects("s", lambda info: Callback(endpoint, info), reference=_reference_of))
    objects = endpoint.objects
    module = types.ModuleType("solution")
    module.__file__ = solution_path
    sys.modules["solution"] = module
    try:
        with open(solution_path, encoding="utf-8") as handle:
            source = handle.read()
        exec(compile(source, solution_path, "exec"), module.__dict__)  # noqa: S102 - running it is the point
        names = {name: objects.encode(value) for name, value in list(module.__dict__.items())
                 if not (name.startswith("__") and name.endswith("__"))}
        channel.send({"re": "ok", "value": {"$": "dict", "v": [[name, value] for name, value in names.items()]}})
    except BaseException as exc:  # noqa: BLE001 - a solution that fails to load is reported, not fatal
        channel.send({"re": "raise", "error": objects.describe_error(exc)})
    while True:
        try:
            endpoint.answer(channel.receive())
        except wire.ProtocolError:
            break
    for stream in (sys.stdout, sys.stderr):
        try:
            stream.flush()
        except BaseException:  # noqa: BLE001, S110 - the solution may have replaced or closed them
            pass
    os._exit(0)
