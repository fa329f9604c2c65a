"""The shape of the package, held by tests: no import cycles (deferred and TYPE_CHECKING
imports included) and no module past the size at which it should be two modules.

The layers themselves are `.importlinter`'s contracts, checked by `lint-imports` in
`make lint`; these are the invariants import-linter has no contract type for.
"""

from __future__ import annotations

from graphlib import CycleError, TopologicalSorter
from pathlib import Path

import grimp
import pytest

PACKAGE = Path(__file__).resolve().parents[1] / "relay"
MAX_MODULE_LINES = 400


def test_no_import_cycles_among_modules() -> None:
    graph = grimp.build_graph("relay", cache_dir=None)
    imports = {module: graph.find_modules_directly_imported_by(module) for module in graph.modules}
    try:
        TopologicalSorter(imports).prepare()
    except CycleError as exc:
        pytest.fail(f"import cycle: {' -> '.join(exc.args[1])}")


def test_the_cycle_check_sees_a_cycle() -> None:
    # The check above is only worth something if a cycle makes it fail.
    with pytest.raises(CycleError):
        TopologicalSorter({"a": {"b"}, "b": {"a"}}).prepare()


@pytest.mark.parametrize(
    "path", sorted(PACKAGE.rglob("*.py")), ids=lambda p: str(p.relative_to(PACKAGE))
)
def test_no_module_over_400_lines(path: Path) -> None:
    lines = len(path.read_text(encoding="utf-8").splitlines())
    assert lines <= MAX_MODULE_LINES, f"{path.name} has {lines} lines: split it in two"
