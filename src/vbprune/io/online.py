"""Whether the Hugging Face Hub can be reached: when it cannot, offline mode is switched
on at once (huggingface_hub, transformers, timm and datasets read it), so that a
download fails in a second, or reads the cache, instead of after a minute of retries."""

from __future__ import annotations

import os
import urllib.error
import urllib.request

PROBE_SECONDS = 3.0  # the most one look at the Hub may take
_reachable: dict[str, bool] = {}  # endpoint -> answered (checked once per process)

OFFLINE_HINT = (
    "the Hub cannot be reached (or HF_HUB_OFFLINE is set) and it is not in the local cache"
)


def hub_offline() -> bool:
    """True when downloads can only come from the cache: ``HF_HUB_OFFLINE`` is set, or
    the Hub endpoint did not answer within :data:`PROBE_SECONDS` (then offline mode is
    switched on for this process)."""
    from huggingface_hub import constants

    if constants.HF_HUB_OFFLINE:
        return True
    endpoint = constants.ENDPOINT
    if endpoint not in _reachable:
        _reachable[endpoint] = _answers(endpoint)
        if not _reachable[endpoint]:
            _go_offline()
    return not _reachable[endpoint]


def _answers(endpoint: str) -> bool:
    """Whether ``endpoint`` answers at all (any HTTP status counts: it is there)."""
    request = urllib.request.Request(f"{endpoint.rstrip('/')}/api/models?limit=1", method="HEAD")
    try:
        with urllib.request.urlopen(request, timeout=PROBE_SECONDS):
            return True
    except urllib.error.HTTPError:  # it answered, with an error status
        return True
    except (urllib.error.URLError, OSError, ValueError):  # no route, no name, timeout
        return False


def _go_offline() -> None:
    """Offline mode for this process (and the processes it starts)."""
    from huggingface_hub import constants

    os.environ["HF_HUB_OFFLINE"] = "1"
    constants.HF_HUB_OFFLINE = True
    try:
        import datasets.config
    except ImportError:  # pragma: no cover - a dependency of vbprune
        return
    datasets.config.HF_HUB_OFFLINE = True
