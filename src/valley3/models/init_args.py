"""Components remember the arguments they were built with, so an export can rebuild the model without its YAML."""

from __future__ import annotations

import functools
import inspect
from typing import Any


def records_init_args(cls: type) -> type:
    """Class decorator: an instance of `cls` keeps `(cls, arguments given to its constructor)` in `_init_args`.

    Explicit on every component class that defines `__init__` (`tests/models/test_init_args.py` checks them).
    Only the outermost constructor records (a subclass calling `super().__init__` does not overwrite it), and only
    the arguments actually given, like a YAML that names what it changes. A subclass that is not decorated records
    nothing, so `describe` refuses it instead of writing its parent's arguments under its own name.
    """
    init = cls.__dict__["__init__"]
    signature = inspect.signature(init)

    @functools.wraps(init)
    def recording_init(self, *args: Any, **kw: Any) -> None:
        if type(self).__init__ is recording_init and "_init_args" not in self.__dict__:
            bound = signature.bind(self, *args, **kw).arguments
            bound.pop(next(iter(signature.parameters)))  # self
            for name, param in signature.parameters.items():
                if param.kind is inspect.Parameter.VAR_KEYWORD:
                    bound.update(bound.pop(name, {}))
                elif param.kind is inspect.Parameter.VAR_POSITIONAL and bound.pop(name, ()):
                    raise TypeError(f"{type(self).__name__} got *{name}; positional extras cannot be recorded")
            # object.__setattr__: nn.Module.__init__ may not have run yet.
            object.__setattr__(self, "_init_args", (type(self), dict(bound)))
        init(self, *args, **kw)

    recording_init.records_init_args = True
    cls.__init__ = recording_init
    return cls


def describe(obj: Any, drop: int = 0) -> dict[str, Any]:
    """`{"class_path", "init_args"}` of a recorded component, nested components described too.

    `drop` leaves out the first constructor parameters (a connector's widths, which OmniModel fills in).
    """
    if "_init_args" not in getattr(obj, "__dict__", {}):
        raise TypeError(f"{type(obj).__name__} does not record its constructor arguments (decorate its class with @records_init_args)")
    cls, args = obj._init_args
    dropped = [name for name in inspect.signature(cls.__init__).parameters][1 : 1 + drop]
    init_args = {}
    for name, value in args.items():
        if name in dropped:
            continue
        init_args[name] = _plain(value, f"{cls.__name__}.{name}", getattr(obj, name, None))
    return {"class_path": f"{cls.__module__}.{cls.__qualname__}", "init_args": init_args}


def _plain(value: Any, where: str, built: Any = None) -> Any:
    """A JSON value for one constructor argument; `built` is what the object made of it, if it kept it."""
    if value is None or isinstance(value, (bool, int, float, str)):
        return value
    if isinstance(value, (list, tuple)):
        return [_plain(v, where) for v in value]
    if isinstance(value, dict):
        return {str(k): _plain(v, f"{where}.{k}") for k, v in value.items()}
    if "_init_args" in getattr(value, "__dict__", {}):
        return describe(value)
    if callable(value) and built is not None and "_init_args" in getattr(built, "__dict__", {}):
        # A factory (class or partial) called with (in_dim, out_dim): described by what it built, minus the widths.
        return describe(built, drop=2)
    if hasattr(value, "__fspath__"):
        return str(value)
    raise TypeError(f"{where}: cannot record a {type(value).__name__} as a constructor argument")
