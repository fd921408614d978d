"""Files shipped with the analyzer: the trained networks (``engines/``) and the example configs (``configs/``).

In a checkout they are the repository's top folders; an installed wheel carries
them inside the package as ``analyzer/engines`` and ``analyzer/configs``
(pyproject.toml maps the folders), so ``analyzer run`` works from any folder
either way.
"""

from __future__ import annotations

from importlib import resources
from pathlib import Path

from analyzer import REPO_ROOT


def shipped_path(relative: str | Path) -> Path:
    """``engines/...`` or ``configs/...``: the checkout's file when this is a checkout, else the wheel's."""
    in_checkout = REPO_ROOT / relative
    if in_checkout.exists():
        return in_checkout
    in_package = Path(str(resources.files("analyzer").joinpath(str(relative))))
    return in_package if in_package.exists() else in_checkout  # neither: the error names the checkout's path
