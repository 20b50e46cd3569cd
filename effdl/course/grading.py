"""Grade-cell helpers: block the library's one-call answer while a student's function runs.

In a grade cell, compute `expected` with the real function (the *oracle*) first, then call the
student's function under `forbid`:

    expected = pareto_front(points, objectives)
    with forbid(pareto_front, namespace=globals(), check=(my_pareto_front,)):
        mine = my_pareto_front(points, objectives)   # or: return from a helper function
    assert mine == expected

Traps this module handles, and the ones it leaves to the cell:

- `unittest.mock.patch.dict(globals(), ...)` restores the *whole* dict on exit, so a name the
  cell binds inside the `with` vanishes. `forbid` restores only the bindings it replaced, so
  `mine` above survives; still, calling the student's function and returning its value
  (`run_blocked`) reads best.
- Patching one module attribute misses an alias (`sdpa = F.scaled_dot_product_attention`), the
  `from x import y` binding and re-exports. `forbid` replaces every binding found by identity
  (`value is oracle`) in the notebook's namespace, in every loaded `effdl` module and in every
  loaded module of the oracle's own package (torch.nn.functional and torch._C._nn for
  `F.scaled_dot_product_attention`).
- A default argument (`def f(x, sdpa=F.scaled_dot_product_attention)`) or a closure captures the
  oracle before any patch: `forbid` refuses up front when a checked function holds one.
- `try: oracle(...) except AssertionError: ...` hides the error: `forbid` counts the calls and
  fails on exit if there were any.

Not covered: an oracle stored in a container, an instance or a class attribute of the notebook,
or reached through another package's module. List those names as extra oracles.
Source: unittest.mock documentation (patch, patch.dict); nbgrader's autograded test cells.
"""

from __future__ import annotations

import contextlib
import functools
import sys
import types
from collections.abc import Callable, Iterable, Iterator, MutableMapping
from typing import Any

__all__ = ["forbid", "run_blocked"]

HINT = "write it from tensor operations"


class _Blocked:
    """A stand-in for one oracle: raises AssertionError at every call and counts the calls."""

    def __init__(self, oracle: Callable, hint: str):
        self.name = _name(oracle)
        self.message = f"{self.name} is blocked in this exercise: {hint}"
        self.calls = 0

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        self.calls += 1
        raise AssertionError(self.message)


def _name(oracle: Callable) -> str:
    module = getattr(oracle, "__module__", None) or ""
    name = getattr(oracle, "__qualname__", None) or getattr(oracle, "__name__", repr(oracle))
    return f"{module}.{name}" if module else name


def _captured(fn: Any, seen: set[int]) -> Iterator[Any]:
    """Yield every value `fn` carries from its definition: defaults, closure cells, partial args."""
    if id(fn) in seen:
        return
    seen.add(id(fn))
    if isinstance(fn, functools.partial):
        values = [fn.func, *fn.args, *fn.keywords.values()]
    elif isinstance(fn, types.FunctionType):
        cells = [c.cell_contents for c in fn.__closure__ or () if c.cell_contents is not None]
        values = [*(fn.__defaults__ or ()), *(fn.__kwdefaults__ or {}).values(), *cells]
    else:
        return
    for value in values:
        yield value
        yield from _captured(value, seen)  # a helper defined in an outer function


def _bindings(namespace: MutableMapping | None, oracles: tuple) -> Iterator[tuple[Any, str]]:
    """Yield (owner, name) for every binding of an oracle in the namespace and loaded modules."""
    by_id = {id(o): o for o in oracles}
    packages = {"effdl"} | {(getattr(o, "__module__", None) or "").split(".")[0] for o in oracles}
    owners = {} if namespace is None else {id(namespace): namespace}
    for name, module in list(sys.modules.items()):  # a module may sit there under two names
        if module is not None and name.split(".")[0] in packages:
            owners.setdefault(id(module), module)
    for owner in owners.values():
        items = owner.items() if owner is namespace else vars(owner).items()
        for name, value in list(items):
            if id(value) in by_id and by_id[id(value)] is value:  # .get would match None
                yield owner, name


@contextlib.contextmanager
def forbid(
    *oracles: Callable,
    namespace: MutableMapping[str, Any] | None = None,
    check: Iterable[Callable] | None = None,
    hint: str = HINT,
) -> Iterator[None]:
    """Return a context manager inside which each oracle raises AssertionError when called.

    `namespace` is the notebook's `globals()`. `check` lists the student's functions whose
    defaults and closures must not hold an oracle; by default, every function defined in
    `namespace` (its `__module__` is the namespace's `__name__`). On exit every binding is
    restored, also after an exception, and a call that was caught inside fails the cell.
    Source: EXERCISES.md of this project, "Blocking the one-call answer".
    """
    if not oracles or not all(callable(o) for o in oracles):
        raise TypeError(f"oracles must be one or more callables, got {oracles!r}")
    if namespace is not None and not isinstance(namespace, MutableMapping):
        raise TypeError(f"namespace must be a dict such as globals(), got {type(namespace)}")
    if check is None:
        owner = (namespace or {}).get("__name__")
        check = [
            v
            for v in (namespace or {}).values()
            if isinstance(v, types.FunctionType) and v.__module__ == owner
        ]
    for fn in check:
        for value in _captured(fn, set()):
            if any(value is o for o in oracles):
                raise AssertionError(
                    f"{getattr(fn, '__name__', fn)} holds {_name(value)} in a default argument "
                    f"or a closure; it is blocked in this exercise: {hint}"
                )
    stand_ins = {id(o): _Blocked(o, hint) for o in oracles}
    replaced: list[tuple[Any, str, Any]] = []
    try:
        for owner, name in _bindings(namespace, oracles):
            original = owner[name] if owner is namespace else vars(owner)[name]
            if owner is namespace:
                owner[name] = stand_ins[id(original)]
            else:
                setattr(owner, name, stand_ins[id(original)])
            replaced.append((owner, name, original))
        yield
    finally:
        for owner, name, original in reversed(replaced):
            if owner is namespace:
                owner[name] = original
            else:
                setattr(owner, name, original)
    called = [s for s in stand_ins.values() if s.calls]
    if called:
        raise AssertionError(
            "; ".join(
                f"{s.message} (called {s.calls} time(s); the error was caught)" for s in called
            )
        )


def run_blocked(
    fn: Callable,
    *args: Any,
    oracles: Iterable[Callable],
    namespace: MutableMapping[str, Any] | None = None,
    hint: str = HINT,
    **kwargs: Any,
) -> Any:
    """Return `fn(*args, **kwargs)`, run with every oracle blocked (see `forbid`).

    Source: EXERCISES.md of this project, "Blocking the one-call answer".
    """
    with forbid(*oracles, namespace=namespace, check=(fn,), hint=hint):
        return fn(*args, **kwargs)
