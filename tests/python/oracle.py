"""Helpers for comparing ironsafe's behaviour with the reference's."""

from __future__ import annotations

from typing import Any, Callable, Tuple


def outcome(call: Callable[[], Any]) -> Tuple[str, str]:
    """What ``call()`` does: ``("ok", "")``, or the type and message of what it raises."""
    try:
        call()
    except Exception as err:  # noqa: BLE001 - the outcome is compared
        return type(err).__name__, str(err)
    return "ok", ""
