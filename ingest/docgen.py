"""Generate the payload part of docs/mqtt.md (and, on demand, a JSON Schema) from the pydantic
models of :mod:`ioc.contract.schemas`, so that the contract cannot drift from the code.

    python -m ingest.docgen                # rewrite the generated section of docs/mqtt.md
    python -m ingest.docgen --check        # exit 1 when it is stale (a test runs this)
    python -m ingest.docgen --json-schema  # print the JSON Schema of every payload
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

from ioc.contract.schemas import REGISTRY, SNAPSHOT_MAX_BYTES, Envelope
from ioc.contract.topics import Channel

DOCS = Path(__file__).resolve().parent.parent / "docs"
MQTT_MD = DOCS / "mqtt.md"
BEGIN = "<!-- BEGIN GENERATED: payloads (python -m ingest.docgen) -->"
END = "<!-- END GENERATED: payloads -->"


def _entries() -> list[tuple[str, Channel, type[Envelope]]]:
    order = {c: i for i, c in enumerate(Channel)}
    return sorted(((k, c, m) for (k, c), m in REGISTRY.items()), key=lambda e: (order[e[1]], e[0] != "*", e[0]))


def _type(prop: dict[str, Any], defs: dict[str, Any]) -> str:
    if "$ref" in prop:
        return _type(defs[prop["$ref"].split("/")[-1]], defs)
    if "anyOf" in prop:
        kinds = [_type(p, defs) for p in prop["anyOf"]]
        return " or ".join(k for k in kinds if k != "null") + (" or null" if "null" in kinds else "")
    if "const" in prop:
        return f"`{json.dumps(prop['const'])}`"
    if "enum" in prop:
        return "one of " + ", ".join(f"`{v}`" for v in prop["enum"])
    kind = prop.get("type", "any")
    if kind == "array":
        if "prefixItems" in prop:
            return f"array of {len(prop['prefixItems'])} {_type(prop['prefixItems'][0], defs)}"
        return f"array of {_type(prop.get('items', {}), defs)}"
    if kind == "object" and "additionalProperties" in prop and isinstance(prop["additionalProperties"], dict):
        return f"object of {_type(prop['additionalProperties'], defs)}"
    if kind == "string" and prop.get("format") == "date-time":
        return "string (RFC 3339 date-time)"
    return str(kind)


def _limits(prop: dict[str, Any]) -> str:
    parts = []
    for key, label in (
        ("minimum", ">="),
        ("maximum", "<="),
        ("minLength", "min length"),
        ("maxLength", "max length"),
        ("minProperties", "min keys"),
        ("maxProperties", "max keys"),
        ("maxItems", "max items"),
    ):
        if key in prop:
            parts.append(f"{label} {prop[key]}")
    if "pattern" in prop:
        parts.append(f"pattern `{prop['pattern']}`")
    for sub in prop.get("anyOf", []):
        if sub.get("type") != "null":
            inner = _limits(sub)
            if inner:
                parts.append(inner)
    return "; ".join(parts)


def _model_section(kind: str, channel: Channel, model: type[Envelope]) -> list[str]:
    schema = model.model_json_schema()
    defs = schema.get("$defs", {})
    required = set(schema.get("required", []))
    where = "any kind" if kind == "*" else f"kind `{kind}`"
    lines = [
        f"### `{channel.value}` ({where}): `{model.__name__}`",
        "",
        " ".join((model.__doc__ or "").split()),
        "",
        f"Topic `ioc/v1/<unit>/{kind if kind != '*' else '<kind>'}/<device_id>/{channel.value}`, "
        f"at most {model.max_bytes} bytes, table `{model.table}`.",
        "",
        "| field | type | required | limits | meaning |",
        "|---|---|---|---|---|",
    ]
    for name, prop in schema["properties"].items():
        description = " ".join(str(prop.get("description", "")).split()).replace("|", "\\|")
        limits = _limits(prop).replace("|", "\\|")
        typ = _type(prop, defs).replace("|", "\\|")
        lines.append(f"| `{name}` | {typ} | {'yes' if name in required else 'no'} | {limits} | {description} |")
    examples = (model.model_config.get("json_schema_extra") or {}).get("examples", [])  # type: ignore[union-attr]
    for example in examples:
        model.model_validate_json(json.dumps(example))  # an example that does not validate fails the generation
        lines += ["", "```json", json.dumps(example, ensure_ascii=False), "```"]
    lines.append("")
    return lines


def render_payloads() -> str:
    lines = [
        BEGIN,
        "",
        "Every JSON payload is an object with `v` (schema version, `1`), `id` (message id, unique per device) and "
        "`ts` (device time with a UTC offset); unknown fields are refused, numbers must be finite, strings "
        "carry no NUL. `python -m ingest.docgen --json-schema` prints the JSON Schema of every payload.",
        "",
    ]
    for kind, channel, model in _entries():
        lines += _model_section(kind, channel, model)
    lines += [
        "### `snapshot` (any kind): binary JPEG",
        "",
        f"The raw JPEG bytes (starting `FF D8 FF`, ending `FF D9`), at most {SNAPSHOT_MAX_BYTES} bytes. "
        "Optional MQTT 5 user properties `id` (message id; default: the sha256 of the image) and `ts` "
        "(RFC 3339 with offset; default: reception time). Stored as a `snapshot` row of `device_events` "
        "with the image's sha256, size and reference.",
        "",
        END,
    ]
    return "\n".join(lines)


def render_schema() -> str:
    schemas = {}
    for kind, channel, model in _entries():
        key = f"{'any' if kind == '*' else kind}/{channel.value}"
        schemas[key] = model.model_json_schema()
    document = {
        "$schema": "https://json-schema.org/draft/2020-12/schema",
        "title": "ioc MQTT payloads, schema version 1 (generated by python -m ingest.docgen)",
        "description": "Keys are <kind>/<channel>; 'any' applies to every kind without its own entry.",
        "payloads": schemas,
    }
    return json.dumps(document, indent=2, ensure_ascii=False, sort_keys=False) + "\n"


def render_mqtt_md(text: str) -> str:
    if BEGIN not in text or END not in text:
        raise ValueError(f"{MQTT_MD} lacks the generated-section markers")
    head, rest = text.split(BEGIN, 1)
    _, tail = rest.split(END, 1)
    return head + render_payloads() + tail


def is_stale() -> bool:
    text = MQTT_MD.read_text(encoding="utf-8")
    return render_mqtt_md(text) != text


def main(argv: list[str]) -> int:
    if "--json-schema" in argv:
        sys.stdout.write(render_schema())
        return 0
    if "--check" in argv:
        if is_stale():
            print(f"{MQTT_MD} is stale: run python -m ingest.docgen", file=sys.stderr)
            return 1
        return 0
    MQTT_MD.write_text(render_mqtt_md(MQTT_MD.read_text(encoding="utf-8")), encoding="utf-8")
    return 0


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main(sys.argv[1:]))
