"""The engine's layers import one way: errors and ports are leaves, and no engine module imports one that
imports it back (counting imports made only for the type checker: a cycle there is a cycle in the design)."""

from __future__ import annotations

import grimp
import pytest

ENGINE = "linkmeter.engine"


@pytest.fixture(scope="module")
def graph() -> grimp.ImportGraph:
    return grimp.build_graph("linkmeter", exclude_type_checking_imports=False, cache_dir=None)


@pytest.fixture(scope="module")
def runtime_graph() -> grimp.ImportGraph:
    return grimp.build_graph("linkmeter", exclude_type_checking_imports=True, cache_dir=None)


def linkmeter_imports(graph: grimp.ImportGraph, module: str) -> set[str]:
    return {m for m in graph.find_modules_directly_imported_by(module) if m.startswith("linkmeter")}


def test_errors_is_a_leaf(graph: grimp.ImportGraph) -> None:
    assert linkmeter_imports(graph, f"{ENGINE}.errors") == set()


def test_ports_import_nothing_from_linkmeter_at_run_time(graph: grimp.ImportGraph,
                                                         runtime_graph: grimp.ImportGraph) -> None:
    assert linkmeter_imports(runtime_graph, f"{ENGINE}.ports") == set()
    # For the type checker only: the response types of the contracts, which import no port back.
    assert linkmeter_imports(graph, f"{ENGINE}.ports") == {f"{ENGINE}.http", f"{ENGINE}.dns"}


def test_the_settings_parser_imports_only_the_errors(graph: grimp.ImportGraph) -> None:
    assert linkmeter_imports(graph, f"{ENGINE}.env") == {f"{ENGINE}.errors"}


@pytest.mark.parametrize(("importer", "imported"), [
    # The old cycle: CallContext named the clients, which imported ProviderError from provider.py.
    ("http", "provider"), ("dns", "provider"), ("ssrf", "provider"), ("bodies", "provider"),
    ("state.redis_state", "runner"), ("state.cache", "runner"), ("settings", "runner"),  # EngineState, deadline
    ("call", "runner"),
])
def test_lower_modules_do_not_reach_up(graph: grimp.ImportGraph, importer: str, imported: str) -> None:
    assert graph.find_shortest_chain(f"{ENGINE}.{importer}", f"{ENGINE}.{imported}") is None


def test_no_engine_module_imports_one_that_imports_it_back(graph: grimp.ImportGraph) -> None:
    modules = sorted(graph.find_descendants(ENGINE) | {ENGINE})
    cycles = [(module, imported) for module in modules for imported in sorted(linkmeter_imports(graph, module))
              if imported.startswith(ENGINE) and graph.find_shortest_chain(imported, module)]
    assert cycles == []
