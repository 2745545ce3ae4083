"""Whether the Hugging Face Hub can be reached: when it cannot, offline mode is switched
on at once (huggingface_hub, transformers, timm and datasets read it), so that a
download fails in a second, or reads the cache, instead of after a minute of retries."""

from __future__ import annotations

import os
import urllib.error
import urllib.request

PROBE_SECONDS = 3.0  # the most one look at the Hub may take
_reachable: dict[str, bool] = {}  # endpoint -> answered (checked once per process)
_switched: list[str | None] = []  # HF_HUB_OFFLINE as it was, when vbprune switched it on

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
    """Whether ``endpoint`` answers within :data:`PROBE_SECONDS` (any HTTP status counts:
    it is there). Only a refused or unresolvable connection, or no answer in time, is
    "no": a certificate this Python cannot check says nothing about the Hub, whose own
    client may well reach it. Run in a thread, so that a slow name lookup (not covered
    by a socket timeout) cannot hold the command either."""
    import ssl
    import threading

    answer: list[bool] = []

    def probe() -> None:
        request = urllib.request.Request(f"{endpoint.rstrip('/')}/api/models?limit=1",
                                         method="HEAD")  # fmt: skip
        try:
            with urllib.request.urlopen(request, timeout=PROBE_SECONDS):
                answer.append(True)
        except urllib.error.HTTPError:  # it answered, with an error status
            answer.append(True)
        except urllib.error.URLError as error:
            answer.append(isinstance(error.reason, ssl.SSLError))  # reached, not checked
        except (OSError, ValueError):  # no route, no name, a timeout
            answer.append(False)

    thread = threading.Thread(target=probe, daemon=True)
    thread.start()
    thread.join(PROBE_SECONDS + 0.5)
    return bool(answer and answer[0])


def _go_offline() -> None:
    """Offline mode for this process (and the processes it starts)."""
    from huggingface_hub import constants

    _switched.append(os.environ.get("HF_HUB_OFFLINE"))
    os.environ["HF_HUB_OFFLINE"] = "1"
    constants.HF_HUB_OFFLINE = True
    try:
        import datasets.config
    except ImportError:  # pragma: no cover - a dependency of vbprune
        return
    datasets.config.HF_HUB_OFFLINE = True


def back_online() -> None:
    """Undo the offline mode :func:`hub_offline` switched on (not one the user set), and
    look again next time: before an upload, which needs the Hub whatever the cache."""
    if not _switched:
        return
    from huggingface_hub import constants

    before = _switched.pop()
    if before is None:
        os.environ.pop("HF_HUB_OFFLINE", None)
    else:
        os.environ["HF_HUB_OFFLINE"] = before
    constants.HF_HUB_OFFLINE = False
    _reachable.clear()
    try:
        import datasets.config
    except ImportError:  # pragma: no cover
        return
    datasets.config.HF_HUB_OFFLINE = False
