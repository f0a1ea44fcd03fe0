"""Which packages a job's entry point may come from.

Importing a job's module is running its code, on the master's checker and on every agent
that runs a worker.  So an entry point (``package.module:attribute``) is accepted only
from the shipped examples and the packages the operator lists in
``access.allowed_packages``; anything else is refused before any import.
"""
from __future__ import annotations

SHIPPED = ("mantis.examples",)


def allowed_packages(listed: str) -> tuple[str, ...]:
    """The shipped example package and the comma-separated ``listed`` ones, in that order."""
    extra = tuple(p.strip() for p in listed.split(",") if p.strip())
    return SHIPPED + tuple(p for p in extra if p not in SHIPPED)


def refusal(url: str, allowed: tuple[str, ...]) -> str | None:
    """Why the entry point ``url`` may not be loaded, or None when its module lies in
    one of the ``allowed`` packages (the package itself or any module below it).

    A malformed entry point (not exactly one ``:``) is left to the loader, which refuses
    it by its format before importing anything; so is an artifact URL (``https://...``),
    which is taken at create, as Mantis takes it, and refused at submit, never imported."""
    if url.count(":") != 1 or "://" in url:
        return None
    module = url.partition(":")[0].strip()
    for package in allowed:
        if module == package or module.startswith(package + "."):
            return None
    return (f"entry point '{url}' is not in an allowed package ({', '.join(allowed)}); "
            "the operator lists more in access.allowed_packages")
