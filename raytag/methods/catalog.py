"""The registered methods in words: ``raytag methods`` and the README's generated tables.

Everything here is read from the methods' declarations (:mod:`raytag.methods`): name, summary,
settings with their defaults and descriptions, the wrappers each accepts, the teacher key. The
README holds two generated blocks between markers (:data:`BLOCKS`); :func:`updated_readme`
rewrites them and a test fails when the README differs from what it would write.
"""

from __future__ import annotations

import re
from typing import Any

from pydantic import BaseModel

from raytag.methods import DEFAULT_METHOD, accepted_wrappers, methods, objective_sections, wrappers
from raytag.methods.base import Method, Wrapper

BLOCKS = ("methods", "objective-settings")
"""The README's generated blocks, each between ``<!-- generated: NAME ... -->`` and
``<!-- end generated: NAME -->``."""


def default_text(value: Any) -> str:
    """A default as a job file writes it: ``none``, ``true``, ``0.8``, ``10``."""
    if value is None:
        return "none"
    if isinstance(value, bool):
        return str(value).lower()
    if isinstance(value, float):
        return f"{value:g}"
    return str(value)


def settings_of(model: type[BaseModel]) -> list[tuple[str, str, str]]:
    """``(key, default, description)`` per field of a settings class, in declaration order."""
    return [(key, default_text(field.default), field.description or "") for key, field in model.model_fields.items()]


def _where(cls: type[Method]) -> str:
    """Where a method's settings live in a job."""
    if issubclass(cls, Wrapper):
        return f"objective.{cls.section}" if cls.section else ""
    return "objective"


def _combines(cls: type[Method]) -> str:
    return ", ".join(accepted_wrappers(cls)) or "none"


def listing() -> str:
    """The text ``raytag methods`` prints: every base method, then every wrapper."""
    lines = []
    for title, table in (("methods (objective.name)", methods()), ("wrappers (switched on by their key)", wrappers())):
        lines.append(f"{title}:")
        for name, cls in table.items():
            lines.append(f"  {name}: {cls.summary}")
            if issubclass(cls, Wrapper):
                lines.append(f"      switch    {cls.switch}")
            settings = settings_of(cls.Settings)
            shown = ", ".join(f"{key}={default}" for key, default, _ in settings) or "none"
            where = _where(cls)
            lines.append(f"      settings  {shown}" + (f"  (in {where})" if settings and where else ""))
            lines.append(f"      wrappers  {_combines(cls)}")
            lines.append(f"      teacher   {cls.teacher_key or 'none'}")
        lines.append("")
    return "\n".join(lines).rstrip() + "\n"


def _cell(text: str) -> str:
    return text.replace("|", "\\|")


def methods_table() -> str:
    """Markdown: one row per method and wrapper."""
    rows = ["| method | what it does | settings (defaults) | wrappers it combines with | teacher key |", "|---|---|---|---|---|"]
    for name, cls in [*methods().items(), *wrappers().items()]:
        where = _where(cls)
        settings = ", ".join(f"`{key}` ({default})" for key, default, _ in settings_of(cls.Settings)) or "none"
        if settings != "none" and where != "objective":
            settings = f"in `{where}`: {settings}"
        label = f"`{name}`" if not issubclass(cls, Wrapper) else f"`{name}` (wrapper; `{cls.switch}`)"
        teacher = f"`{cls.teacher_key}`" if cls.teacher_key else "none"
        rows.append(f"| {label} | {_cell(cls.summary)} | {_cell(settings)} | {_combines(cls)} | {teacher} |")
    return "\n".join(rows)


def settings_table() -> str:
    """Markdown: every key of the ``objective`` section, which method takes it, default, meaning."""
    rows = ["| key | default | for | meaning |", "|---|---|---|---|",
            f"| `objective.name` | `{DEFAULT_METHOD}` | every job | the training method: {', '.join(f'`{n}`' for n in methods())} |"]
    for name, cls in methods().items():
        for key, default, description in settings_of(cls.Settings):
            rows.append(f"| `objective.{key}` | {default} | `{name}` | {_cell(description)} |")
    owners = {cls.section: name for name, cls in wrappers().items() if cls.section}
    for section, model in objective_sections().items():
        for key, default, description in settings_of(model):
            rows.append(f"| `objective.{section}.{key}` | {default} | `{owners[section]}` | {_cell(description)} |")
    return "\n".join(rows)


def blocks() -> dict[str, str]:
    """The README's generated blocks by name (see :data:`BLOCKS`)."""
    return {"methods": methods_table(), "objective-settings": settings_table()}


def markdown() -> str:
    """Both blocks with their markers, as ``raytag methods --markdown`` prints them."""
    return "\n\n".join(_marked(name, text) for name, text in blocks().items()) + "\n"


def _marked(name: str, text: str) -> str:
    return (f"<!-- generated: {name} (raytag methods --markdown; edit the methods, not this table) -->\n"
            f"{text}\n<!-- end generated: {name} -->")


def updated_readme(text: str) -> str:
    """``text`` (a README) with every generated block rewritten from the methods.

    Raises:
        ValueError: if a block's markers are missing.
    """
    for name, block in blocks().items():
        pattern = re.compile(rf"<!-- generated: {re.escape(name)} .*?-->\n.*?<!-- end generated: {re.escape(name)} -->",
                             re.DOTALL)
        if not pattern.search(text):
            raise ValueError(f"the README has no generated block {name!r} (markers <!-- generated: {name} ... -->)")
        text = pattern.sub(lambda _: _marked(name, block), text, count=1)
    return text
