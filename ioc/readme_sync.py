"""Keep README's settings table equal to the Settings model (``python -m ioc.readme_sync``)."""

from __future__ import annotations

import re
import sys

from ioc.settings import PROJECT_ROOT
from ioc.settings_doc import settings_table

README = PROJECT_ROOT / "README.md"
_BLOCK = re.compile(r"(<!-- settings-table:start -->\n)(.*?)(<!-- settings-table:end -->)", re.S)


def render(text: str) -> str:
    return _BLOCK.sub(lambda m: m.group(1) + settings_table(markdown=True) + "\n" + m.group(3), text)


def main() -> int:
    text = README.read_text(encoding="utf-8")
    new = render(text)
    if new != text:
        README.write_text(new, encoding="utf-8")
        print("README.md settings table updated")
    return 0


if __name__ == "__main__":
    sys.exit(main())
