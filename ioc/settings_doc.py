"""The settings table README shows, generated from the Settings model so the two cannot drift."""

from __future__ import annotations

from pathlib import Path

from ioc.settings import PROJECT_ROOT, Settings


def _default(value: object) -> str:
    if value is None or value == []:
        return "(unset)"
    if isinstance(value, Path):
        try:
            return "./" + str(value.relative_to(PROJECT_ROOT))
        except ValueError:
            return str(value)
    return str(value)


def settings_table(markdown: bool = True) -> str:
    rows = []
    for name, field in Settings.model_fields.items():
        default = field.get_default(call_default_factory=True)
        rows.append((f"IOC_{name.upper()}", _default(default), field.description or ""))
    if markdown:
        lines = ["| Variable | Default | Meaning |", "| --- | --- | --- |"]
        lines += [f"| `{env}` | `{default}` | {meaning} |" for env, default, meaning in rows]
        return "\n".join(lines)
    width = max(len(env) for env, _, _ in rows)
    return "\n".join(f"{env:<{width}}  {default:<22}  {meaning}" for env, default, meaning in rows)
