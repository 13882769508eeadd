"""The vendored fixtures (tests/fixtures/) must equal the team's shared copies when those are present."""

import hashlib
from pathlib import Path

import pytest
from conftest import FIXTURES, REPO

SHARED = REPO.parent / "shared"


def _digests(root: Path) -> dict[str, str]:
    return {
        str(p.relative_to(root)): hashlib.sha256(p.read_bytes()).hexdigest()
        for p in sorted(root.rglob("*"))
        if p.is_file()
    }


@pytest.mark.parametrize(("vendored", "shared"), [("golden", "golden"), ("synthetic", "videos/synthetic")])
def test_vendored_copy_matches_shared(vendored, shared):
    src = SHARED / shared
    if not src.is_dir():
        pytest.skip(f"{src} not present (only the team's machines have ../shared)")
    assert _digests(FIXTURES / vendored) == _digests(src), f"re-copy {src} into tests/fixtures/{vendored}"
