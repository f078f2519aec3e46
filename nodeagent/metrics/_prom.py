"""prometheus_client's metric model, registry and process collector, without its HTTP side.

``import prometheus_client`` runs the package's ``__init__``, which loads its
exposition module: ssl, urllib.request, http.server, wsgiref and email,
about 7 MiB of the agent's RSS, for clients and servers the agent does not
use (it serves the text format itself: ``exposition``, ``server``). The
modules it does use import nothing of those. So, as the agent loads grpc
without ssl (``nodeagent.agent.daemon._import_grpc``), they are loaded here
under a bare stand-in for the package, which is then taken away: a later
``import prometheus_client`` (a test's parser) runs the real ``__init__``,
which finds these modules loaded and takes them as they are.
"""

from __future__ import annotations

import importlib
import importlib.util
import sys
import types
from typing import Any

__all__ = ["load"]

_MODULES = ("metrics_core", "samples", "registry", "process_collector", "utils")


def load() -> dict[str, Any]:
    """The modules above by their short names (``metrics_core``, ...)."""
    if "prometheus_client" not in sys.modules:
        spec = importlib.util.find_spec("prometheus_client")
        if spec is None or spec.submodule_search_locations is None:
            raise ImportError("prometheus_client is not installed")
        stand_in = types.ModuleType("prometheus_client")
        stand_in.__path__ = list(spec.submodule_search_locations)
        stand_in.__spec__ = spec
        sys.modules["prometheus_client"] = stand_in
        try:
            for name in _MODULES:
                importlib.import_module(f"prometheus_client.{name}")
        finally:
            del sys.modules["prometheus_client"]
    return {name: sys.modules.get(f"prometheus_client.{name}") or
            importlib.import_module(f"prometheus_client.{name}") for name in _MODULES}
